//! `MemCallStore`: the [`CallStore`] contract kept in memory, for the gateway's own tests
//! (and any test that wants a store without a data directory).
//!
//! One mutex guards the whole state, so every write — record, indexes, tally, outbox
//! entry — is one atomic step, and a transition runs on the latest record with no other
//! writer in between. Nothing survives the process: "durable" means "applied", so
//! `wait_durable` returns at once. The tenant-time index uses the sled key layout
//! (`keys::tenant`), which gives `list_by_tenant` and the retention purge the same order,
//! cursors and tenant jumps as [`super::SledCallStore`] (the purge walk is shared code).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use super::aggregates::{TallyContribution, TallySlot};
use super::call_store::TransitionFn;
use super::keys;
use super::plan::TransitionPlan;
use super::retention::{purge_batch, Kept, PurgeTarget};
use super::{
    Applied, CallPage, CallStore, DayTally, OutboxBacklog, OutboxEntry, PurgeCursor, PurgeReport,
    MAX_PAGE,
};
use crate::error::StoreError;

use crate::record::CallRecord;

/// In-memory [`CallStore`]. Not shared between processes and gone when dropped.
#[derive(Default)]
pub struct MemCallStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    records: BTreeMap<String, CallRecord>,
    /// Tenant-time index keys in the sled layout (`t/<tenant>\0<created_ms BE><call_id>`).
    by_tenant: BTreeSet<Vec<u8>>,
    /// Ids of calls not yet ENDED.
    open: BTreeSet<String>,
    outbox: BTreeMap<u64, OutboxEntry>,
    /// Seqs of entries in state `Pending`.
    pending: BTreeSet<u64>,
    /// The one webhook of each call that has one.
    webhook_of_call: BTreeMap<String, u64>,
    tallies: BTreeMap<TallySlot, DayTally>,
    /// What purged calls counted for (their day's tally keeps counting them).
    purged_tallies: BTreeMap<TallySlot, DayTally>,
    /// The last seq handed out.
    last_seq: u64,
}

impl MemCallStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every write checks all it can before it changes anything, so a panic while the
        // lock is held (a caller's callback) cannot leave half a write behind.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn next_seq(&mut self) -> u64 {
        self.last_seq += 1;
        self.last_seq
    }

    /// Moves the call's tally contribution from `before` to `after`; drops emptied tallies.
    fn count(&mut self, before: Option<&TallyContribution>, after: &TallyContribution) {
        if before == Some(after) {
            return;
        }
        if let Some(old) = before {
            if let Some(t) = self.tallies.get_mut(&old.slot) {
                t.count(old, false);
                if t.is_empty() {
                    self.tallies.remove(&old.slot);
                }
            }
        }
        self.tallies
            .entry(after.slot.clone())
            .or_default()
            .count(after, true);
    }

    /// Stores an entry and keeps the pending index in step.
    fn put_outbox(&mut self, e: OutboxEntry) {
        if e.is_pending() {
            self.pending.insert(e.seq);
        } else {
            self.pending.remove(&e.seq);
        }
        self.outbox.insert(e.seq, e);
    }

    /// The one write of an update (see `SledCallStore::write_locked`): checks first, then
    /// changes record, open index, outbox and tally together.
    fn write(
        &mut self,
        prev: &CallRecord,
        rec: &CallRecord,
        outbox: Option<OutboxEntry>,
    ) -> Result<Option<u64>, StoreError> {
        let before = TallyContribution::of(prev)?;
        let after = TallyContribution::of(rec)?;
        if outbox.as_ref().is_some_and(|e| e.call_id != rec.call_id) {
            return Err(StoreError::InvalidInput {
                what: "outbox entry call_id",
            });
        }
        let mut enqueued = None;
        // One webhook per call, whatever the callers do.
        if let Some(e) = outbox.filter(|_| !self.webhook_of_call.contains_key(&rec.call_id)) {
            self.webhook_of_call.insert(rec.call_id.clone(), e.seq);
            enqueued = Some(e.seq);
            self.put_outbox(e);
        }
        if rec.is_ended() {
            self.open.remove(&rec.call_id);
        }
        self.records.insert(rec.call_id.clone(), rec.clone());
        self.count(Some(&before), &after);
        Ok(enqueued)
    }

    fn transition(&mut self, call_id: &str, f: TransitionFn<'_>) -> Result<Applied, StoreError> {
        let cur = self
            .records
            .get(call_id)
            .cloned()
            .ok_or(StoreError::NotFound)?;
        TransitionPlan::new(cur, f, || Ok(self.next_seq()))?
            .apply(|prev, record, outbox| self.write(prev, record, outbox))
    }

    fn list_by_tenant(
        &self,
        tenant: &str,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<CallPage, StoreError> {
        let limit = limit.min(MAX_PAGE);
        let (start, end) = keys::tenant_page(tenant, from_ms, to_ms, cursor)?;
        let mut page = CallPage {
            records: Vec::new(),
            next_cursor: None,
        };
        if limit == 0 || start >= end {
            return Ok(page);
        }
        let id_at = keys::tenant_prefix(tenant).len() + 8;
        let range = (Bound::Included(start), Bound::Excluded(end));
        for k in self.by_tenant.range::<Vec<u8>, _>(range) {
            let Some(rec) = k
                .get(id_at..)
                .and_then(|id| self.records.get(&*String::from_utf8_lossy(id)))
            else {
                continue;
            };
            if page.records.len() == limit {
                page.next_cursor = page
                    .records
                    .last()
                    .map(|r| keys::encode_cursor(r.created_ms, &r.call_id));
                break;
            }
            page.records.push(rec.clone());
        }
        Ok(page)
    }

    fn bring_forward(
        &mut self,
        tenant: &str,
        now_ms: u64,
        limit: usize,
        eligible: &mut (dyn FnMut(u64) -> bool + Send),
    ) -> Vec<u64> {
        let mut moved = Vec::new();
        if limit == 0 {
            return moved;
        }
        let pending: Vec<u64> = self.pending.iter().copied().collect();
        for seq in pending {
            let Some(e) = self.outbox.get_mut(&seq) else {
                continue;
            };
            // The sled store skips these from its index value alone, before `eligible`.
            if e.next_attempt_ms <= now_ms || e.tenant != tenant {
                continue;
            }
            if !eligible(seq) || e.retry_after {
                continue;
            }
            e.next_attempt_ms = now_ms;
            moved.push(seq);
            if moved.len() >= limit {
                break;
            }
        }
        moved
    }
}

/// The purge walk over a locked state (`RefCell`: the walk reads the index between the
/// purges it makes, never while one runs).
struct PurgeView<'s>(RefCell<&'s mut State>);

impl PurgeTarget for PurgeView<'_> {
    fn index_from<'a>(
        &'a self,
        start: &[u8],
    ) -> Box<dyn Iterator<Item = Result<Vec<u8>, StoreError>> + 'a> {
        let mut next: Vec<u8> = start.to_vec();
        // Looks each key up from where the last one ended, so purges in between (which
        // remove index keys) never invalidate the walk.
        Box::new(std::iter::from_fn(move || {
            let state = self.0.borrow();
            let k = state.by_tenant.range(next.clone()..).next()?.clone();
            next = k.clone();
            next.push(0);
            Some(Ok(k))
        }))
    }

    fn purge_one(
        &self,
        call_id: &str,
        index_key: &[u8],
        cutoff_ms: u64,
    ) -> Result<Result<(), Kept>, StoreError> {
        let mut guard = self.0.borrow_mut();
        let state = &mut **guard;
        let Some(rec) = state.records.get(call_id) else {
            return Ok(Err(Kept::Missing));
        };
        if !rec.is_ended() || rec.ended_ms.unwrap_or(rec.created_ms) >= cutoff_ms {
            return Ok(Err(Kept::Open));
        }
        let seq = state.webhook_of_call.get(call_id).copied();
        if let Some(e) = seq.and_then(|s| state.outbox.get(&s)) {
            if e.is_pending() {
                return Ok(Err(Kept::Pending));
            }
        }
        let purged = TallyContribution::of(rec)?;
        if let Some(seq) = seq {
            state.outbox.remove(&seq);
            state.pending.remove(&seq);
            state.webhook_of_call.remove(call_id);
        }
        state.records.remove(call_id);
        state.by_tenant.remove(index_key);
        state.open.remove(call_id);
        state
            .purged_tallies
            .entry(purged.slot.clone())
            .or_default()
            .count(&purged, true);
        Ok(Ok(()))
    }
}

#[async_trait]
impl CallStore for MemCallStore {
    async fn create(&self, rec: &CallRecord) -> Result<(), StoreError> {
        keys::check_id("call_id", &rec.call_id)?;
        keys::check_id("tenant", &rec.tenant)?;
        let counts = TallyContribution::of(rec)?;
        let mut s = self.state();
        if s.records.contains_key(&rec.call_id) {
            return Err(StoreError::AlreadyExists);
        }
        s.records.insert(rec.call_id.clone(), rec.clone());
        s.by_tenant
            .insert(keys::tenant(&rec.tenant, rec.created_ms, &rec.call_id));
        if !rec.is_ended() {
            s.open.insert(rec.call_id.clone());
        }
        s.count(None, &counts);
        Ok(())
    }

    async fn apply(
        &self,
        prev_version: u64,
        new_record: &CallRecord,
        enqueue_webhook: Option<OutboxEntry>,
    ) -> Result<Option<u64>, StoreError> {
        keys::check_id("call_id", &new_record.call_id)?;
        let mut s = self.state();
        let cur = s
            .records
            .get(&new_record.call_id)
            .cloned()
            .ok_or(StoreError::NotFound)?;
        if cur.version != prev_version {
            return Err(StoreError::VersionConflict {
                expected: prev_version,
                found: cur.version,
            });
        }
        s.write(&cur, new_record, enqueue_webhook)
    }

    async fn apply_transition_boxed(
        &self,
        call_id: &str,
        f: TransitionFn<'_>,
    ) -> Result<Applied, StoreError> {
        keys::check_id("call_id", call_id)?;
        self.state().transition(call_id, f)
    }

    async fn get(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        keys::check_id("call_id", call_id)?;
        Ok(self.state().records.get(call_id).cloned())
    }

    async fn open_calls(&self) -> Result<Vec<CallRecord>, StoreError> {
        let s = self.state();
        Ok(s.open
            .iter()
            .filter_map(|id| s.records.get(id).cloned())
            .collect())
    }

    async fn open_calls_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let s = self.state();
        let start = match after {
            Some(a) => Bound::Excluded(a.to_owned()),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for id in s.open.range((start, Bound::Unbounded)) {
            if let Some(rec) = s.records.get(id) {
                out.push(rec.clone());
                // Checked after the push: a limit of 0 still returns one call, as sled's.
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    async fn list_by_tenant(
        &self,
        tenant: &str,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<CallPage, StoreError> {
        keys::check_id("tenant", tenant)?;
        self.state()
            .list_by_tenant(tenant, from_ms, to_ms, limit, cursor)
    }

    async fn day_tallies(
        &self,
        tenant: &str,
        from_day: &str,
        to_day: &str,
        trunk: Option<&str>,
    ) -> Result<BTreeMap<String, DayTally>, StoreError> {
        keys::check_id("tenant", tenant)?;
        let s = self.state();
        let mut out: BTreeMap<String, DayTally> = BTreeMap::new();
        let slots = s
            .tallies
            .iter()
            .filter(|(slot, _)| slot.tenant == tenant)
            .filter(|(slot, _)| slot.day.as_str() >= from_day && slot.day.as_str() <= to_day)
            .filter(|(slot, _)| trunk.is_none_or(|t| t == slot.trunk));
        for (slot, tally) in slots {
            out.entry(slot.day.clone()).or_default().merge(tally);
        }
        Ok(out)
    }

    /// Kept from the first call on: there are no older counting rules in memory.
    fn tallies_current(&self) -> Result<bool, StoreError> {
        Ok(true)
    }

    fn ensure_aggregates(&self, _progress: &mut dyn FnMut(u64)) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn next_outbox_seq(&self) -> Result<u64, StoreError> {
        Ok(self.state().next_seq())
    }

    async fn outbox_get(&self, seq: u64) -> Result<Option<OutboxEntry>, StoreError> {
        Ok(self.state().outbox.get(&seq).cloned())
    }

    async fn outbox_seq_for_call(&self, call_id: &str) -> Result<Option<u64>, StoreError> {
        keys::check_id("call_id", call_id)?;
        Ok(self.state().webhook_of_call.get(call_id).copied())
    }

    async fn outbox_due_admitted(
        &self,
        now_ms: u64,
        limit: usize,
        admit: &mut (dyn for<'t> FnMut(u64, &'t str) -> bool + Send),
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let s = self.state();
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        for e in s.pending.iter().filter_map(|seq| s.outbox.get(seq)) {
            if e.next_attempt_ms > now_ms || !admit(e.seq, &e.tenant) {
                continue;
            }
            out.push(e.clone());
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    async fn outbox_record_progress(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        let mut s = self.state();
        // Never resurrect or invent entries: only the store creates them.
        if !s.outbox.contains_key(&entry.seq) {
            return Err(StoreError::OutboxNotFound(entry.seq));
        }
        s.put_outbox(entry.clone());
        Ok(())
    }

    async fn outbox_enqueue_event(&self, entry: &OutboxEntry) -> Result<Option<u64>, StoreError> {
        if !entry.is_event() {
            return Err(StoreError::InvalidInput { what: "event id" });
        }
        let mut s = self.state();
        if s.webhook_of_call.contains_key(&entry.call_id) {
            return Ok(None);
        }
        let mut e = entry.clone();
        e.seq = s.next_seq();
        s.webhook_of_call.insert(e.call_id.clone(), e.seq);
        let seq = e.seq;
        s.put_outbox(e);
        Ok(Some(seq))
    }

    async fn outbox_update(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        self.outbox_record_progress(entry).await
    }

    async fn outbox_requeue(&self, seq: u64, now_ms: u64) -> Result<OutboxEntry, StoreError> {
        let mut s = self.state();
        let mut e = s
            .outbox
            .get(&seq)
            .cloned()
            .ok_or(StoreError::OutboxNotFound(seq))?;
        e.requeue(now_ms);
        s.put_outbox(e.clone());
        Ok(e)
    }

    async fn outbox_bring_forward(
        &self,
        tenant: &str,
        now_ms: u64,
        limit: usize,
        eligible: &mut (dyn FnMut(u64) -> bool + Send),
    ) -> Result<Vec<u64>, StoreError> {
        Ok(self.state().bring_forward(tenant, now_ms, limit, eligible))
    }

    async fn outbox_backlog(&self) -> Result<OutboxBacklog, StoreError> {
        let s = self.state();
        let mut b = OutboxBacklog::default();
        for e in s.pending.iter().filter_map(|seq| s.outbox.get(seq)) {
            b.pending += 1;
            let created = e.created_ms;
            b.oldest_created_ms = Some(b.oldest_created_ms.map_or(created, |o| o.min(created)));
            let oldest = b
                .oldest_by_tenant
                .entry(e.tenant.clone())
                .or_insert(created);
            *oldest = (*oldest).min(created);
        }
        Ok(b)
    }

    async fn outbox_by_tenant_since_capped(
        &self,
        tenant: &str,
        since_ms: u64,
        max: usize,
    ) -> Result<(Vec<OutboxEntry>, u64), StoreError> {
        let s = self.state();
        let mut out = Vec::new();
        let mut matched = 0u64;
        for e in s.outbox.values() {
            if e.tenant == tenant && e.created_ms >= since_ms {
                matched += 1;
                if out.len() < max {
                    out.push(e.clone());
                }
            }
        }
        Ok((out, matched))
    }

    async fn purge_ended_before(
        &self,
        cutoff_ms: u64,
        after: Option<&PurgeCursor>,
        max: usize,
    ) -> Result<(PurgeReport, Option<PurgeCursor>), StoreError> {
        let mut guard = self.state();
        let view = PurgeView(RefCell::new(&mut *guard));
        purge_batch(&view, cutoff_ms, after, max)
    }

    async fn wait_durable(&self) -> Result<(), StoreError> {
        // Applied is as durable as memory gets.
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
