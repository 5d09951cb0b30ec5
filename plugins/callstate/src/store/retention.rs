//! Data retention: purging ended calls older than a cutoff (`calls.retention_days`).
//!
//! A purge removes a call's record (and with it the phone numbers), every index entry
//! that points at it (`t/`, the legacy `d/`, `o/`, `wi/`) and its finished CRM webhook
//! (`w/`, which holds the payload with the numbers). The per-day tallies (`a/`) stay, so
//! analytics still show old days; what the purged call counted for moves into a
//! purged-calls tally (`pa/`) in the same atomic write, so a recount of the records plus
//! the purged tallies still equals each day's tally and `check` stays clean.
//!
//! Never purged: a call that is not ENDED, or whose webhook is still pending (it may
//! yet be delivered, and the outbox entry needs its record). Failed and disabled
//! webhooks are finished and go with their call.
//!
//! Work is bounded: one batch looks at no more than `max` index entries, each purge is
//! one journaled write under the same locks a call update takes (held for microseconds,
//! never across the batch), and the batch ends with one group commit. A cursor lets the
//! caller resume where a batch stopped, so calls that must be kept are passed over once
//! per pass, not once per batch.

use super::journal::Writes;
use super::keys;
use super::sled_calls::{decode, lock, SledCallStore};
use super::OutboxEntry;
use crate::error::StoreError;

/// Where the next purge batch resumes: an opaque position in the backend's tenant-time
/// index. The sled and in-memory stores use the sled key of the last index entry looked
/// at; another backend may put what it needs in it ([`PurgeCursor::from_bytes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeCursor(Vec<u8>);

impl PurgeCursor {
    /// A backend's own position (for backends outside this crate).
    pub fn from_bytes(position: Vec<u8>) -> PurgeCursor {
        PurgeCursor(position)
    }

    /// What [`Self::from_bytes`] was given.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// What one purge batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Calls removed with their indexes and finished webhook.
    pub purged: u64,
    /// Created before the cutoff but not ENDED (or ended after it): kept.
    pub kept_open: u64,
    /// ENDED and older than the cutoff, but the CRM webhook is still pending: kept.
    pub kept_pending: u64,
    /// Index entries looked at (at most the batch's `max`).
    pub examined: u64,
}

/// Why one old call stays.
pub(super) enum Kept {
    Open,
    Pending,
    /// Gone already (purged or never fully written): nothing to do.
    Missing,
}

/// A store whose tenant-time index is laid out as sled keys (`keys::tenant`): the
/// purge walk below is shared by the sled and in-memory stores, so both resume their
/// cursors, jump tenants and count what they examine the same way.
pub(super) trait PurgeTarget {
    /// The index keys at or after `start`, in key order (keys of other keyspaces may
    /// follow; the walk stops at the first one).
    fn index_from<'a>(
        &'a self,
        start: &[u8],
    ) -> Box<dyn Iterator<Item = Result<Vec<u8>, StoreError>> + 'a>;

    /// Purges one call if it may go (`index_key` is its tenant-time index entry).
    fn purge_one(
        &self,
        call_id: &str,
        index_key: &[u8],
        cutoff_ms: u64,
    ) -> Result<Result<(), Kept>, StoreError>;
}

/// One purge batch over `target` (see [`SledCallStore::purge_ended_before`]).
pub(super) fn purge_batch(
    target: &dyn PurgeTarget,
    cutoff_ms: u64,
    after: Option<&PurgeCursor>,
    max: usize,
) -> Result<(PurgeReport, Option<PurgeCursor>), StoreError> {
    let mut r = PurgeReport::default();
    let tenant_prefix = keys::tenant_prefix("");
    let tenant_prefix = &tenant_prefix[..tenant_prefix.len() - 1]; // `t/`
    let mut start = match after {
        Some(PurgeCursor(k)) => {
            let mut k = k.clone();
            k.push(0); // the smallest key after the cursor
            k
        }
        None => tenant_prefix.to_vec(),
    };
    // Walk each tenant's index from its oldest entry while entries are older than the
    // cutoff, then jump to the next tenant: cost grows with old entries, not the store.
    'tenants: loop {
        let mut jump = None;
        for item in target.index_from(&start) {
            let k = item?;
            if !k.starts_with(tenant_prefix) {
                break 'tenants;
            }
            let Some((tenant, created_ms, call_id)) = keys::parse_tenant_key(&k) else {
                // Malformed (check reports it): step over it.
                start = k.clone();
                start.push(0);
                continue;
            };
            if created_ms >= cutoff_ms {
                jump = Some(keys::tenant_index_end(tenant));
                break;
            }
            if r.examined as usize >= max {
                return Ok((r, Some(PurgeCursor(last_key(&start)))));
            }
            r.examined += 1;
            match target.purge_one(call_id, &k, cutoff_ms)? {
                Ok(()) => r.purged += 1,
                Err(Kept::Open) => r.kept_open += 1,
                Err(Kept::Pending) => r.kept_pending += 1,
                Err(Kept::Missing) => {}
            }
            start = k.clone();
            start.push(0);
        }
        match jump {
            Some(next_tenant) => start = next_tenant,
            None => break,
        }
    }
    Ok((r, None))
}

impl SledCallStore {
    /// Purges ENDED calls created (and ended) before `cutoff_ms` whose webhook is not
    /// pending, looking at no more than `max` tenant-index entries from `after` (the
    /// cursor a previous batch returned; `None` starts a pass). Returns what it did and
    /// where to resume: `None` when the pass is complete. Durable on return.
    pub async fn purge_ended_before(
        &self,
        cutoff_ms: u64,
        after: Option<&PurgeCursor>,
        max: usize,
    ) -> Result<(PurgeReport, Option<PurgeCursor>), StoreError> {
        let (report, next) = purge_batch(self, cutoff_ms, after, max)?;
        if report.purged > 0 {
            self.inner.commit.commit().await?;
        }
        Ok((report, next))
    }
}

impl PurgeTarget for SledCallStore {
    fn index_from<'a>(
        &'a self,
        start: &[u8],
    ) -> Box<dyn Iterator<Item = Result<Vec<u8>, StoreError>> + 'a> {
        Box::new(
            self.tree()
                .range(start.to_vec()..)
                .map(|item| Ok(item?.0.to_vec())),
        )
    }

    fn purge_one(
        &self,
        call_id: &str,
        index_key: &[u8],
        cutoff_ms: u64,
    ) -> Result<Result<(), Kept>, StoreError> {
        // The locks a call's own update takes, in the same order (call, outbox,
        // tallies): no delivery, replay or transition of this call can interleave.
        let _call = self.lock_call(call_id);
        let Some(rec) = self.read_record(call_id)? else {
            // An index entry without its record: not ours to judge here (check reports
            // it, and removing it would hide the problem).
            return Ok(Err(Kept::Missing));
        };
        if !rec.is_ended() || rec.ended_ms.unwrap_or(rec.created_ms) >= cutoff_ms {
            return Ok(Err(Kept::Open));
        }
        let _outbox = lock(&self.inner.outbox_lock);
        let mut b = Writes::default();
        let wi = keys::webhook_index(call_id);
        if let Some(seq) = self.tree().get(&wi)?.and_then(|v| keys::tail_u64(&v)) {
            let wkey = keys::outbox(seq);
            if let Some(v) = self.tree().get(&wkey)? {
                let e: OutboxEntry = decode(&wkey, &v)?;
                if e.is_pending() {
                    return Ok(Err(Kept::Pending));
                }
                b.remove(wkey);
                b.remove(keys::outbox_pending(seq));
            }
            b.remove(wi);
        }
        b.remove(keys::record(call_id));
        b.remove(index_key);
        b.remove(keys::open(call_id));
        if let Ok(day) = keys::utc_day(rec.created_ms) {
            b.remove(keys::day(&rec.tenant, &day, call_id));
        }
        let _tallies = self.lock_aggregates();
        self.count_purged(&mut b, &rec)?;
        self.inner.journal.apply(self.tree(), &b)?;
        Ok(Ok(()))
    }
}

/// The cursor for a batch that stopped before `next_start` (a key built as "last key
/// looked at + 0x00", or the first key of a tenant's range).
fn last_key(next_start: &[u8]) -> Vec<u8> {
    match next_start.split_last() {
        Some((0, head)) => head.to_vec(),
        // A tenant's range start: resuming "after" it (+0x00) still lands before every
        // key of that tenant's index.
        _ => next_start.to_vec(),
    }
}
