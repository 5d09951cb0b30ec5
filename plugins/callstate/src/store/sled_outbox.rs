//! Outbox operations of `SledCallStore`.

use super::journal::Writes;
use super::keys;
use super::sled_calls::{decode, encode, lock, SledCallStore};
use super::{OutboxBacklog, OutboxEntry};
use crate::error::StoreError;

impl SledCallStore {
    pub fn outbox_get(&self, seq: u64) -> Result<Option<OutboxEntry>, StoreError> {
        let key = keys::outbox(seq);
        match self.tree().get(&key)? {
            Some(v) => decode(format!("w/{seq}").as_bytes(), &v).map(Some),
            None => Ok(None),
        }
    }

    /// The seq of the call's webhook, if one was enqueued.
    pub fn outbox_seq_for_call(&self, call_id: &str) -> Result<Option<u64>, StoreError> {
        keys::check_id("call_id", call_id)?;
        Ok(self
            .tree()
            .get(keys::webhook_index(call_id))?
            .and_then(|v| keys::tail_u64(&v)))
    }

    pub fn outbox_due(&self, now_ms: u64, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.outbox_due_admitted(now_ms, limit, &mut |_, _| true)
    }

    /// Up to `limit` due pending entries, lowest seq first, reading only those that
    /// `admit(seq, tenant)` accepts. The deliverer refuses entries it has in flight and
    /// tenants at their concurrency limit, so the entries that cannot start now are
    /// skipped from the pending index alone instead of being read and decoded on every
    /// pass (which made delivery cost grow with the backlog).
    pub fn outbox_due_admitted(
        &self,
        now_ms: u64,
        limit: usize,
        admit: &mut dyn FnMut(u64, &str) -> bool,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        for item in self.tree().scan_prefix(keys::OUTBOX_PENDING) {
            let (k, v) = item?;
            // Not due yet: skipped from the index value alone.
            if keys::parse_pending_value(&v).is_some_and(|(next, _)| next > now_ms) {
                continue;
            }
            let Some(seq) = keys::tail_u64(&k) else {
                continue;
            };
            let indexed_tenant = keys::pending_tenant(&v);
            if indexed_tenant.is_some_and(|t| !admit(seq, t)) {
                continue;
            }
            let Some(e) = self.outbox_get(seq)? else {
                continue;
            };
            if !e.is_pending() || e.next_attempt_ms > now_ms {
                continue;
            }
            // An index value from before the tenant was stored in it: ask now, once the
            // entry is known to be due (an admission takes one of the tenant's slots).
            if indexed_tenant.is_none() && !admit(seq, &e.tenant) {
                continue;
            }
            out.push(e);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Pending count and the oldest pending `created_ms`, from the pending index only.
    pub fn outbox_stats(&self) -> Result<(u64, Option<u64>), StoreError> {
        let b = self.outbox_backlog()?;
        Ok((b.pending, b.oldest_created_ms))
    }

    /// The pending count and the oldest pending `created_ms`, overall and per tenant, in
    /// one pass over the pending index (its values carry both times and the tenant; only
    /// entries indexed before those were added are decoded).
    pub fn outbox_backlog(&self) -> Result<OutboxBacklog, StoreError> {
        let mut b = OutboxBacklog::default();
        for item in self.tree().scan_prefix(keys::OUTBOX_PENDING) {
            let (k, v) = item?;
            let indexed = keys::parse_pending_value(&v)
                .zip(keys::pending_tenant(&v))
                .map(|((_, created), tenant)| (created, tenant));
            let decoded;
            let (created, tenant) = match indexed {
                Some(found) => found,
                None => match keys::tail_u64(&k).map(|seq| self.outbox_get(seq)) {
                    Some(Ok(Some(e))) if e.is_pending() => {
                        decoded = e;
                        (decoded.created_ms, decoded.tenant.as_str())
                    }
                    Some(Err(e)) => return Err(e),
                    _ => continue,
                },
            };
            b.pending += 1;
            b.oldest_created_ms = Some(b.oldest_created_ms.map_or(created, |o| o.min(created)));
            // Allocates a tenant's name once, not once per entry.
            match b.oldest_by_tenant.get_mut(tenant) {
                Some(o) => *o = (*o).min(created),
                None => {
                    b.oldest_by_tenant.insert(tenant.to_owned(), created);
                }
            }
        }
        Ok(b)
    }

    /// Catch-up after a tenant's CRM endpoint answered again: makes up to `limit` of the
    /// tenant's pending entries that wait on a backoff (`next_attempt_ms > now_ms`) due at
    /// `now_ms`, lowest seq (oldest) first, and returns their seqs. Left alone: entries
    /// whose time is the CRM's own `Retry-After`, and those `eligible(seq)` refuses (the
    /// deliverer's in-flight and recently re-failed jobs). Attempts, webhook id and every
    /// other field stay as they are. The entries and their pending-index values change in
    /// one atomic batch, durable on return (one group commit for the whole batch), so a
    /// restart finds them due.
    ///
    /// Reads the pending index in seq order and stops at `limit`: with the tenant's backlog
    /// at the front of the index a batch costs about `limit` reads, not the whole backlog.
    pub async fn outbox_bring_forward(
        &self,
        tenant: &str,
        now_ms: u64,
        limit: usize,
        eligible: &mut (dyn FnMut(u64) -> bool + Send),
    ) -> Result<Vec<u64>, StoreError> {
        let moved = self.bring_forward_batch(tenant, now_ms, limit, eligible)?;
        if !moved.is_empty() {
            self.inner.commit.commit().await?;
        }
        Ok(moved)
    }

    fn bring_forward_batch(
        &self,
        tenant: &str,
        now_ms: u64,
        limit: usize,
        eligible: &mut (dyn FnMut(u64) -> bool + Send),
    ) -> Result<Vec<u64>, StoreError> {
        let mut moved = Vec::new();
        if limit == 0 {
            return Ok(moved);
        }
        let mut b = Writes::default();
        // Held across the read and the write so a delivery result stored meanwhile is not
        // overwritten with a stale copy (outbox_record_progress takes it too).
        let _g = lock(&self.inner.outbox_lock);
        for item in self.tree().scan_prefix(keys::OUTBOX_PENDING) {
            let (k, v) = item?;
            // Due already, or another tenant's: skipped from the index value alone.
            if keys::parse_pending_value(&v).is_some_and(|(next, _)| next <= now_ms)
                || keys::pending_tenant(&v).is_some_and(|t| t != tenant)
            {
                continue;
            }
            let Some(seq) = keys::tail_u64(&k) else {
                continue;
            };
            if !eligible(seq) {
                continue;
            }
            let Some(mut e) = self.outbox_get(seq)? else {
                continue;
            };
            if !e.is_pending() || e.tenant != tenant || e.next_attempt_ms <= now_ms || e.retry_after
            {
                continue;
            }
            e.next_attempt_ms = now_ms;
            b.insert(keys::outbox(seq), encode(&e)?);
            b.insert(
                keys::outbox_pending(seq),
                keys::pending_value(e.next_attempt_ms, e.created_ms, &e.tenant),
            );
            moved.push(seq);
            if moved.len() >= limit {
                break;
            }
        }
        if !moved.is_empty() {
            self.inner.journal.apply(self.tree(), &b)?;
        }
        Ok(moved)
    }

    pub fn outbox_by_tenant_since(
        &self,
        tenant: &str,
        since_ms: u64,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree().scan_prefix(keys::OUTBOX) {
            let (k, v) = item?;
            let e: OutboxEntry = decode(&k, &v)?;
            if e.tenant == tenant && e.created_ms >= since_ms {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Replay's scan: the first `max` entries of `tenant` created at or after `since_ms`
    /// (oldest first, by seq) and how many matched in all. Memory stays bounded by `max`
    /// however many match, and the caller can say how much a cap left out.
    pub fn outbox_by_tenant_since_capped(
        &self,
        tenant: &str,
        since_ms: u64,
        max: usize,
    ) -> Result<(Vec<OutboxEntry>, u64), StoreError> {
        let mut out = Vec::new();
        let mut matched = 0u64;
        for item in self.tree().scan_prefix(keys::OUTBOX) {
            let (k, v) = item?;
            let e: OutboxEntry = decode(&k, &v)?;
            if e.tenant == tenant && e.created_ms >= since_ms {
                matched += 1;
                if out.len() < max {
                    out.push(e);
                }
            }
        }
        Ok((out, matched))
    }

    /// Writes an entry and keeps the pending index in step. Caller holds `outbox_lock`.
    fn write_outbox_locked(&self, e: &OutboxEntry) -> Result<(), StoreError> {
        let mut b = Writes::default();
        b.insert(keys::outbox(e.seq), encode(e)?);
        if e.is_pending() {
            b.insert(
                keys::outbox_pending(e.seq),
                keys::pending_value(e.next_attempt_ms, e.created_ms, &e.tenant),
            );
        } else {
            b.remove(keys::outbox_pending(e.seq));
        }
        self.inner.journal.apply(self.tree(), &b)?;
        Ok(())
    }

    /// See `CallStore::outbox_enqueue_event`. The seq is the store's.
    pub async fn outbox_enqueue_event(
        &self,
        entry: &OutboxEntry,
    ) -> Result<Option<u64>, StoreError> {
        if !entry.is_event() {
            return Err(StoreError::InvalidInput { what: "event id" });
        }
        let enqueued = {
            let _g = lock(&self.inner.outbox_lock);
            let wi = keys::webhook_index(&entry.call_id);
            if self.tree().contains_key(&wi)? {
                None
            } else {
                let mut e = entry.clone();
                e.seq = self.next_outbox_seq()?;
                let mut b = Writes::default();
                b.insert(keys::outbox(e.seq), encode(&e)?);
                b.insert(
                    keys::outbox_pending(e.seq),
                    keys::pending_value(e.next_attempt_ms, e.created_ms, &e.tenant),
                );
                b.insert(wi, e.seq.to_be_bytes());
                self.inner.journal.apply(self.tree(), &b)?;
                Some(e.seq)
            }
        };
        self.inner.commit.commit().await?;
        Ok(enqueued)
    }

    pub async fn outbox_update(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        self.outbox_record_progress(entry)?;
        self.inner.commit.commit().await
    }

    /// Records a delivery attempt's outcome (delivered, next retry, failed) without
    /// waiting for the disk. It becomes durable with the next group commit or sled's own
    /// periodic flush (`flush_every_ms`, 500 ms). A crash inside that window can only
    /// forget progress, never a webhook: the entry is then sent again with the same
    /// `webhook-id`, which receivers de-duplicate (at-least-once, as documented). Waiting
    /// for the flush here held one of the tenant's delivery slots through an fsync per
    /// webhook, which capped a tenant's deliveries per second.
    pub fn outbox_record_progress(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        let _g = lock(&self.inner.outbox_lock);
        // Never resurrect or invent entries: only the store creates them.
        if !self.tree().contains_key(keys::outbox(entry.seq))? {
            return Err(StoreError::OutboxNotFound(entry.seq));
        }
        self.write_outbox_locked(entry)
    }

    pub async fn outbox_requeue(&self, seq: u64, now_ms: u64) -> Result<OutboxEntry, StoreError> {
        let e = {
            let _g = lock(&self.inner.outbox_lock);
            let mut e = self
                .outbox_get(seq)?
                .ok_or(StoreError::OutboxNotFound(seq))?;
            e.requeue(now_ms);
            self.write_outbox_locked(&e)?;
            e
        };
        self.inner.commit.commit().await?;
        Ok(e)
    }
}
