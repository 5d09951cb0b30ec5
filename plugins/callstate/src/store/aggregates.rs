//! Per-day call counters: `a/<tenant>\0<YYYYMMDD>\0<trunk>` -> [`DayTally`].
//!
//! Analytics over a month must not read a month of call records (a million records is
//! seconds of decoding), so every write that changes what a call counts as — its day, trunk,
//! outcome or failure code — adjusts its day's tally in the same atomic batch as the record.
//! A query then reads one small value per day and trunk. The tallies are derived data: a
//! store written before they existed (no `m/aggregates` marker) gets them rebuilt from the
//! records when it is opened, and [`SledCallStore::verify_aggregates`] recomputes them to
//! prove they agree.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sled::Batch;

use super::journal::Writes;
use super::keys;
use super::sled_calls::{decode, encode, lock, SledCallStore};
use crate::error::StoreError;
use crate::record::{CallRecord, CallStatus, FailureCause};

/// Bumped when the tally format or its counting rules change: a store whose marker differs
/// gets its tallies rebuilt on open.
/// 2: `failures_by_cause`. 3: `missed`, `inbound`. 4: `talk_ms`, `charge_paise`.
/// 5: anchored calls' media (`media_calls` .. `jitter_ms_buckets`).
const AGGREGATES_VERSION: &[u8] = b"5";

/// Upper bounds (ms) of the buckets anchored calls are counted in by the carrier's
/// jitter; the last holds everything above 200 ms.
pub const JITTER_BUCKETS_MS: [u32; 10] = [1, 2, 5, 10, 20, 30, 50, 100, 200, u32::MAX];

/// What one UTC day of one tenant's trunk amounts to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayTally {
    pub total: u64,
    pub answered: u64,
    pub not_answered: u64,
    pub failed: u64,
    /// Calls without a terminal outcome yet.
    pub in_progress: u64,
    /// Inbound calls nobody answered.
    #[serde(default)]
    pub missed: u64,
    /// Inbound calls (of `total`, whatever their outcome).
    #[serde(default)]
    pub inbound: u64,
    /// SIP final codes of NOT_ANSWERED and FAILED calls.
    #[serde(default)]
    pub failures_by_sip_code: BTreeMap<u16, u64>,
    /// NOT_ANSWERED and FAILED calls by [`FailureCause`] (its wire name).
    #[serde(default)]
    pub failures_by_cause: BTreeMap<String, u64>,
    /// Talk time of the ended, answered calls, answer to end, in ms: the minutes a
    /// trunk carried (metered for BYOT tenants, paid for by managed ones).
    #[serde(default)]
    pub talk_ms: u64,
    /// What the ended managed calls were charged, in paise (each call's charge as its
    /// end fixed it; calls that were not charged add nothing).
    #[serde(default)]
    pub charge_paise: u64,
    /// Anchored calls whose media the SIP edge reported (docs/media.md), and of them
    /// those with early media, one-way audio and dead air (`media_timeout`).
    #[serde(default)]
    pub media_calls: u64,
    #[serde(default)]
    pub early_media: u64,
    #[serde(default)]
    pub one_way_audio: u64,
    #[serde(default)]
    pub media_timeouts: u64,
    /// Anchored calls by the jitter of the carrier's RTP (calls where the carrier sent
    /// at least two packets): bucket upper bound in ms ([`JITTER_BUCKETS_MS`]) ->
    /// calls. Enough for a median per day and trunk.
    #[serde(default)]
    pub jitter_ms_buckets: BTreeMap<u32, u64>,
}

impl DayTally {
    /// Adds `other` into `self` (summing days or trunks).
    pub fn merge(&mut self, other: &DayTally) {
        self.total += other.total;
        self.answered += other.answered;
        self.not_answered += other.not_answered;
        self.failed += other.failed;
        self.in_progress += other.in_progress;
        self.missed += other.missed;
        self.inbound += other.inbound;
        self.talk_ms += other.talk_ms;
        self.charge_paise += other.charge_paise;
        self.media_calls += other.media_calls;
        self.early_media += other.early_media;
        self.one_way_audio += other.one_way_audio;
        self.media_timeouts += other.media_timeouts;
        for (b, n) in &other.jitter_ms_buckets {
            *self.jitter_ms_buckets.entry(*b).or_default() += n;
        }
        for (code, n) in &other.failures_by_sip_code {
            *self.failures_by_sip_code.entry(*code).or_default() += n;
        }
        for (cause, n) in &other.failures_by_cause {
            *self.failures_by_cause.entry(cause.clone()).or_default() += n;
        }
    }

    /// Counts one call in (`add`) or out of (`!add`) the tally. Every backend keeps its
    /// tallies with this one rule, so they agree on what a day amounts to.
    pub fn count(&mut self, c: &TallyContribution, add: bool) {
        let step = |v: &mut u64| {
            *v = if add {
                v.saturating_add(1)
            } else {
                v.saturating_sub(1)
            }
        };
        step(&mut self.total);
        match c.status {
            Some(CallStatus::Answered) => step(&mut self.answered),
            Some(CallStatus::NotAnswered) => step(&mut self.not_answered),
            Some(CallStatus::Failed) => step(&mut self.failed),
            Some(CallStatus::Missed) => step(&mut self.missed),
            None => step(&mut self.in_progress),
        }
        if c.inbound {
            step(&mut self.inbound);
        }
        let amount = |v: &mut u64, n: u64| {
            *v = if add {
                v.saturating_add(n)
            } else {
                v.saturating_sub(n)
            }
        };
        amount(&mut self.talk_ms, c.talk_ms);
        amount(&mut self.charge_paise, c.charge_paise);
        if let Some(code) = c.failure_code {
            let n = self.failures_by_sip_code.entry(code).or_default();
            step(n);
            if *n == 0 {
                self.failures_by_sip_code.remove(&code);
            }
        }
        if let Some(cause) = c.cause {
            let n = self
                .failures_by_cause
                .entry(cause.as_str().to_owned())
                .or_default();
            step(n);
            if *n == 0 {
                self.failures_by_cause.remove(cause.as_str());
            }
        }
        if let Some(m) = c.media {
            step(&mut self.media_calls);
            for (flag, v) in [
                (m.early_media, &mut self.early_media),
                (m.one_way_audio, &mut self.one_way_audio),
                (m.media_timeout, &mut self.media_timeouts),
            ] {
                if flag {
                    step(v);
                }
            }
            if let Some(b) = m.jitter_bucket_ms {
                let n = self.jitter_ms_buckets.entry(b).or_default();
                step(n);
                if *n == 0 {
                    self.jitter_ms_buckets.remove(&b);
                }
            }
        }
    }

    /// The upper bound (ms) of the jitter bucket holding the median anchored call;
    /// `None` without anchored calls.
    pub fn median_jitter_bucket_ms(&self) -> Option<u32> {
        let calls: u64 = self.jitter_ms_buckets.values().sum();
        let mut seen = 0;
        for (bound, n) in &self.jitter_ms_buckets {
            seen += n;
            if seen * 2 >= calls && calls > 0 {
                return Some(*bound);
            }
        }
        None
    }

    /// No call counts here (a backend drops such a tally rather than store zeros).
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// How many records a tally rebuild reads between two progress reports.
pub const PROGRESS_EVERY: u64 = 10_000;

/// A tally's key and what is wrong with it.
pub(super) type TallyMismatch = (Vec<u8>, String);

/// Which tally a call counts in: its tenant, the UTC day (`YYYYMMDD`) of its
/// `created_ms`, and its trunk label.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TallySlot {
    pub tenant: String,
    pub day: String,
    pub trunk: String,
}

/// What a record contributes to the tallies: which tally, and as what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TallyContribution {
    pub slot: TallySlot,
    pub status: Option<CallStatus>,
    /// The SIP final code of a NOT_ANSWERED or FAILED call.
    pub failure_code: Option<u16>,
    pub cause: Option<FailureCause>,
    pub inbound: bool,
    /// Answer to end of an ended, answered call (0 otherwise).
    pub talk_ms: u64,
    /// The charge the call's end fixed (0 for a call not charged).
    pub charge_paise: u64,
    /// An anchored call's media, once reported.
    pub media: Option<MediaContribution>,
}

/// What an anchored call's media report adds to its tally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaContribution {
    pub early_media: bool,
    pub one_way_audio: bool,
    pub media_timeout: bool,
    /// The [`JITTER_BUCKETS_MS`] bound the carrier's jitter falls under (None: the
    /// carrier sent too little RTP for a jitter).
    pub jitter_bucket_ms: Option<u32>,
}

impl MediaContribution {
    fn of(m: &crate::record::CallMedia) -> MediaContribution {
        let jitter_ms = m.from_carrier.jitter_us.div_ceil(1000);
        let jitter_bucket_ms = (m.from_carrier.packets >= 2).then(|| {
            JITTER_BUCKETS_MS
                .iter()
                .copied()
                .find(|b| u64::from(*b) >= jitter_ms)
                .unwrap_or(u32::MAX)
        });
        MediaContribution {
            early_media: m.early_media,
            one_way_audio: m.one_way_silent.is_some(),
            media_timeout: m.media_timeout,
            jitter_bucket_ms,
        }
    }
}

impl TallyContribution {
    /// Fails (`InvalidInput`) when `created_ms` is no calendar day.
    pub fn of(rec: &CallRecord) -> Result<TallyContribution, StoreError> {
        let day = keys::utc_day(rec.created_ms)?;
        let failure_code = match rec.call_status {
            Some(CallStatus::NotAnswered | CallStatus::Failed) => rec.sip_disconnect_code,
            _ => None,
        };
        Ok(TallyContribution {
            slot: TallySlot {
                tenant: rec.tenant.clone(),
                day,
                trunk: rec.trunk_label.clone(),
            },
            status: rec.call_status,
            failure_code,
            cause: FailureCause::of(rec),
            inbound: rec.is_inbound(),
            talk_ms: match (rec.answered_ms, rec.ended_ms) {
                (Some(a), Some(e)) => e.saturating_sub(a),
                _ => 0,
            },
            charge_paise: rec.billing.and_then(|b| b.charge_paise).unwrap_or(0),
            media: rec.media.as_ref().map(MediaContribution::of),
        })
    }

    /// The sled key of its tally (`a/<tenant>\0<day>\0<trunk>`).
    fn key(&self) -> Vec<u8> {
        keys::aggregate(&self.slot.tenant, &self.slot.day, &self.slot.trunk)
    }
}

/// Serialises tally read-modify-writes. One lock for the store: the critical section is an
/// in-memory read plus a journaled write (microseconds), and only creates and outcome changes
/// take it, so contention stays far below the call stripes'.
pub(super) struct AggregateLock(Mutex<()>);

impl AggregateLock {
    pub(super) fn new() -> Self {
        AggregateLock(Mutex::new(()))
    }
}

impl SledCallStore {
    /// Applies `batch` (a record write) together with the tally change from `before` to
    /// `after`. Every record write goes through here so the tallies cannot drift.
    pub(super) fn apply_with_tallies(
        &self,
        mut batch: Writes,
        before: Option<&CallRecord>,
        after: &CallRecord,
    ) -> Result<(), StoreError> {
        let new = TallyContribution::of(after)?;
        let old = before.map(TallyContribution::of).transpose()?;
        if old.as_ref() == Some(&new) {
            return self.inner.journal.apply(self.tree(), &batch);
        }
        let _g = lock(&self.inner.aggregate_lock.0);
        let new_key = new.key();
        let mut changed: Vec<(Vec<u8>, DayTally)> = Vec::with_capacity(2);
        if let Some(old) = &old {
            let old_key = old.key();
            let mut t = self.read_tally(&old_key)?;
            t.count(old, false);
            changed.push((old_key, t));
        }
        let mut t = match changed.iter_mut().find(|(k, _)| *k == new_key) {
            Some((_, t)) => std::mem::take(t),
            None => self.read_tally(&new_key)?,
        };
        t.count(&new, true);
        changed.retain(|(k, _)| *k != new_key);
        changed.push((new_key, t));
        for (k, t) in changed {
            if t.is_empty() {
                batch.remove(k);
            } else {
                batch.insert(k, encode(&t)?);
            }
        }
        self.inner.journal.apply(self.tree(), &batch)
    }

    /// Adds what `rec` counts for to its purged-calls tally (`pa/`, next to the day's
    /// `a/` tally, which stays as it is so analytics keep the old day). A recount of the
    /// records plus the purged tallies then still equals the day's tally, so `check` and
    /// a rebuild agree after a purge. Caller holds the aggregate lock
    /// ([`Self::lock_aggregates`]) until `batch` is applied.
    pub(super) fn count_purged(
        &self,
        batch: &mut Writes,
        rec: &CallRecord,
    ) -> Result<(), StoreError> {
        let c = TallyContribution::of(rec)?;
        let key = keys::purged_aggregate_for(&c.key());
        let mut t = self.read_tally(&key)?;
        t.count(&c, true);
        batch.insert(key, encode(&t)?);
        Ok(())
    }

    /// Serialises tally writes (see [`AggregateLock`]).
    pub(super) fn lock_aggregates(&self) -> std::sync::MutexGuard<'_, ()> {
        lock(&self.inner.aggregate_lock.0)
    }

    fn read_tally(&self, key: &[u8]) -> Result<DayTally, StoreError> {
        match self.tree().get(key)? {
            Some(v) => decode(key, &v),
            None => Ok(DayTally::default()),
        }
    }

    /// Tallies of `tenant` for UTC days `from..=to` (`YYYYMMDD`), optionally one trunk:
    /// one entry per day that had calls, trunks summed, oldest first. Reads one small value
    /// per day and trunk, never a call record.
    pub fn day_tallies(
        &self,
        tenant: &str,
        from_day: &str,
        to_day: &str,
        trunk: Option<&str>,
    ) -> Result<BTreeMap<String, DayTally>, StoreError> {
        keys::check_id("tenant", tenant)?;
        let start = keys::aggregate_day(tenant, from_day);
        let mut end = keys::aggregate_day(tenant, to_day);
        // Past every trunk of `to_day`: its keys continue after the day's `\0`.
        end.push(0xff);
        let day_at = start.len() - from_day.len() - 1;
        let mut out: BTreeMap<String, DayTally> = BTreeMap::new();
        for item in self.tree().range(start..end) {
            let (k, v) = item?;
            let rest = k.get(day_at..).unwrap_or_default();
            let Some(sep) = rest.iter().position(|b| *b == 0) else {
                continue;
            };
            let (day, key_trunk) = (&rest[..sep], &rest[sep + 1..]);
            if trunk.is_some_and(|t| t.as_bytes() != key_trunk) {
                continue;
            }
            let tally: DayTally = decode(&k, &v)?;
            out.entry(String::from_utf8_lossy(day).into_owned())
                .or_default()
                .merge(&tally);
        }
        Ok(out)
    }

    /// Recomputes every tally from the call records plus the purged-calls tallies. A
    /// record that does not decode is skipped (logged; `check()` reports it): one bad
    /// record must not stop the store from opening or the other days from being counted.
    /// `progress` gets the number of records read every [`PROGRESS_EVERY`].
    fn recompute_tallies(
        &self,
        progress: &mut dyn FnMut(u64),
    ) -> Result<BTreeMap<Vec<u8>, DayTally>, StoreError> {
        let mut out: BTreeMap<Vec<u8>, DayTally> = BTreeMap::new();
        let mut read = 0u64;
        for item in self.tree().scan_prefix(keys::RECORD) {
            read += 1;
            if read.is_multiple_of(PROGRESS_EVERY) {
                progress(read);
            }
            let (k, v) = item?;
            let rec: CallRecord = match decode(&k, &v) {
                Ok(rec) => rec,
                Err(e) => {
                    tracing::warn!(error = %e, "call record skipped while counting tallies");
                    continue;
                }
            };
            let c = TallyContribution::of(&rec)?;
            out.entry(c.key()).or_default().count(&c, true);
        }
        // Calls purged by retention still count on their day.
        for item in self.tree().scan_prefix(keys::PURGED_AGGREGATE) {
            let (k, v) = item?;
            match decode::<DayTally>(&k, &v) {
                Ok(t) => out
                    .entry(keys::aggregate_for_purged(&k))
                    .or_default()
                    .merge(&t),
                Err(e) => tracing::warn!(error = %e, "purged-calls tally skipped while counting"),
            }
        }
        Ok(out)
    }

    /// The number of stored tallies, and each tally (key, what is wrong) that differs
    /// from a recount of the records. A full scan: for integrity checks, not for serving.
    pub(super) fn tally_mismatches(&self) -> Result<(u64, Vec<TallyMismatch>), StoreError> {
        let want = self.recompute_tallies(&mut |_| {})?;
        let mut stored = 0;
        let mut wrong = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for item in self.tree().scan_prefix(keys::AGGREGATE) {
            let (k, v) = item?;
            stored += 1;
            let have: Result<DayTally, _> = decode(&k, &v);
            match (have, want.get(k.as_ref())) {
                (Ok(h), Some(w)) if h == *w => {}
                (Ok(h), Some(w)) => wrong.push((
                    k.to_vec(),
                    format!("stored {h:?}, the records add up to {w:?}"),
                )),
                (Ok(_), None) => wrong.push((
                    k.to_vec(),
                    "no call record (live or purged) counts here".into(),
                )),
                (Err(e), _) => wrong.push((k.to_vec(), e.to_string())),
            }
            seen.insert(k.to_vec());
        }
        for k in want.keys().filter(|k| !seen.contains(*k)) {
            wrong.push((
                k.clone(),
                "calls on this day and trunk have no tally".into(),
            ));
        }
        Ok((stored, wrong))
    }

    /// Printable keys of the tallies that differ from a recount of the records: empty
    /// when they are right.
    pub fn verify_aggregates(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .tally_mismatches()?
            .1
            .iter()
            .map(|(k, _)| keys::printable(k))
            .collect())
    }

    /// Forces a tally rebuild at the next open (after records were repaired by hand, or
    /// to exercise the rebuild): drops the marker that says the tallies are current.
    pub fn invalidate_tallies(&self) -> Result<(), StoreError> {
        self.tree().remove(keys::AGGREGATES_MARKER)?;
        self.tree().flush()?;
        Ok(())
    }

    /// True when the tallies were written by this version's counting rules.
    pub fn tallies_current(&self) -> Result<bool, StoreError> {
        Ok(self.tree().get(keys::AGGREGATES_MARKER)?.as_deref() == Some(AGGREGATES_VERSION))
    }

    /// Rebuilds the tallies from the records unless the marker says they are current;
    /// true when it rebuilt. A full scan (`progress` gets the records read so far): runs
    /// at open, before any writer exists.
    pub fn ensure_aggregates(&self, progress: &mut dyn FnMut(u64)) -> Result<bool, StoreError> {
        if self.tallies_current()? {
            return Ok(false);
        }
        let want = self.recompute_tallies(progress)?;
        let mut b = Batch::default();
        for item in self.tree().scan_prefix(keys::AGGREGATE) {
            b.remove(item?.0);
        }
        for (k, t) in &want {
            b.insert(k.as_slice(), encode(t)?);
        }
        b.insert(keys::AGGREGATES_MARKER, AGGREGATES_VERSION);
        self.tree().apply_batch(b)?;
        self.tree().flush()?;
        tracing::info!(tallies = want.len(), "rebuilt per-day call tallies");
        Ok(true)
    }
}
