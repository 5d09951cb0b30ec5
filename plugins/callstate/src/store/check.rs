//! Integrity scan of the `calls` tree (`c2c-gateway db check`).
//!
//! Walks every keyspace of the layout in the parent module once, in key order, and
//! cross-checks each entry against what it must agree with: index entries (`o/`, `t/`,
//! `d/`, `w/`, `wp/`, `wi/`) point at an existing record or outbox entry and agree with
//! it; every record decodes and is in all of its indexes; every ENDED call with a
//! webhook payload has exactly one outbox entry. Memory stays constant in the size of
//! the store: each entry is checked by point lookups, never by collecting key sets.
//!
//! Only the keyspaces listed above are scanned, so keyspaces added later (e.g.
//! aggregates) are neither reported as unknown nor checked until a check is added here.

use serde::Serialize;

use super::keys;
use super::sled_calls::{decode, SledCallStore};
use super::OutboxEntry;
use crate::error::StoreError;
use crate::record::CallRecord;

/// Problems kept in a report; the count goes on past it, so a badly damaged store
/// still yields a bounded report with the true total.
pub const MAX_PROBLEMS: usize = 1000;

/// What kind of inconsistency a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A record or outbox entry does not decode, or its key is malformed.
    Undecodable,
    /// An index entry points at a record or outbox entry that does not exist.
    Dangling,
    /// An index entry and the value it points at disagree (tenant, time, state, seq).
    Mismatch,
    /// A record or outbox entry lacks one of the index entries it must have.
    MissingIndex,
    /// An ENDED call with a webhook payload has no outbox entry, or more than one.
    Webhook,
    /// A per-day tally (what analytics reads) differs from a recount of the records.
    Tally,
}

/// One inconsistency: the key where it was found and a sentence saying what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The key, printable (`t/acme\0...` with non-text bytes hex-escaped).
    pub key: String,
    pub detail: String,
}

/// Entry counts per keyspace plus the problems found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub records: u64,
    pub open_index: u64,
    pub tenant_index: u64,
    pub day_index: u64,
    pub outbox: u64,
    pub pending_index: u64,
    pub webhook_index: u64,
    /// Per-day tallies (`a/`).
    pub tallies: u64,
    /// Purged-calls tallies (`pa/`, written by the retention purge).
    pub purged_tallies: u64,
    /// Total problems found (may exceed `problems.len()`, see [`MAX_PROBLEMS`]).
    pub problem_count: u64,
    pub problems: Vec<Problem>,
}

impl CheckReport {
    /// True when no problem was found.
    pub fn is_clean(&self) -> bool {
        self.problem_count == 0
    }

    fn add(&mut self, kind: ProblemKind, key: &[u8], detail: impl Into<String>) {
        self.problem_count += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem {
                kind,
                key: keys::printable(key),
                detail: detail.into(),
            });
        }
    }
}

/// How often [`SledCallStore::check_with_progress`] reports: often enough for a
/// progress line, rarely enough to cost nothing per entry.
pub const PROGRESS_EVERY: u64 = 1024;

/// A report being built plus the progress callback. Derefs to the report, so the scans
/// read as if they filled a [`CheckReport`] directly.
pub(super) struct Scan<'p> {
    report: CheckReport,
    scanned: u64,
    progress: &'p mut dyn FnMut(u64),
}

impl Scan<'_> {
    /// Counts one scanned entry.
    pub(super) fn tick(&mut self) {
        self.scanned += 1;
        if self.scanned.is_multiple_of(PROGRESS_EVERY) {
            (self.progress)(self.scanned);
        }
    }
}

impl std::ops::Deref for Scan<'_> {
    type Target = CheckReport;
    fn deref(&self) -> &CheckReport {
        &self.report
    }
}

impl std::ops::DerefMut for Scan<'_> {
    fn deref_mut(&mut self) -> &mut CheckReport {
        &mut self.report
    }
}

/// The part of a [`CallRecord`] the index checks read.
#[derive(serde::Deserialize)]
struct RecordHead {
    tenant: String,
    created_ms: u64,
    phase: crate::record::Phase,
}

impl RecordHead {
    fn is_ended(&self) -> bool {
        self.phase == crate::record::Phase::Ended
    }
}

/// Key bytes for a human: text as is, other bytes as `\xNN`.
/// The bare keyspace prefix (`t/`, `d/`) of a key builder's output for empty parts: the
/// layout is defined once, in `keys`, and this file only reads it.
fn bare_prefix(mut built: Vec<u8>) -> Vec<u8> {
    while built.last() == Some(&0) {
        built.pop();
    }
    built
}

impl SledCallStore {
    /// Scans the whole `calls` tree for inconsistencies. Read-only; safe to run on a live
    /// store, though entries written during the scan may then show up as transient
    /// problems (the CLI runs it with the gateway stopped).
    pub fn check(&self) -> Result<CheckReport, StoreError> {
        self.check_with_progress(&mut |_| {})
    }

    /// [`Self::check`], calling `progress` with the number of entries scanned so far
    /// every [`PROGRESS_EVERY`] entries, so a command line can show how far it got.
    pub fn check_with_progress(
        &self,
        progress: &mut dyn FnMut(u64),
    ) -> Result<CheckReport, StoreError> {
        let mut scan = Scan {
            report: CheckReport::default(),
            scanned: 0,
            progress,
        };
        let r = &mut scan;
        self.check_records(r)?;
        self.check_open(r)?;
        self.check_tenant_index(r)?;
        self.check_day_index(r)?;
        self.check_outbox(r)?;
        self.check_pending(r)?;
        self.check_webhook_index(r)?;
        let (stored, wrong) = self.tally_mismatches()?;
        r.tallies = stored;
        for item in self.tree().scan_prefix(keys::PURGED_AGGREGATE) {
            item?;
            r.purged_tallies += 1;
        }
        for (key, detail) in wrong {
            r.add(ProblemKind::Tally, &key, detail);
        }
        (scan.progress)(scan.scanned);
        Ok(scan.report)
    }

    /// The fields of a record that its index entries must agree with. Decoding only
    /// these (serde skips the rest without allocating) keeps the index scans cheap.
    fn record_at(&self, call_id: &str) -> Result<Option<RecordHead>, StoreError> {
        let key = keys::record(call_id);
        match self.tree().get(&key)? {
            // An undecodable record is reported by the record scan; here it is "absent".
            Some(v) => Ok(decode::<RecordHead>(&key, &v).ok()),
            None => Ok(None),
        }
    }

    fn entry_at(&self, seq: u64) -> Result<Option<OutboxEntry>, StoreError> {
        let key = keys::outbox(seq);
        match self.tree().get(&key)? {
            Some(v) => Ok(decode::<OutboxEntry>(&key, &v).ok()),
            None => Ok(None),
        }
    }

    fn check_records(&self, r: &mut Scan<'_>) -> Result<(), StoreError> {
        for item in self.tree().scan_prefix(keys::RECORD) {
            let (k, v) = item?;
            r.records += 1;
            r.tick();
            let rec: CallRecord = match decode(&k, &v) {
                Ok(rec) => rec,
                Err(e) => {
                    r.add(ProblemKind::Undecodable, &k, e.to_string());
                    continue;
                }
            };
            let id = &k[keys::RECORD.len()..];
            if id != rec.call_id.as_bytes() {
                r.add(
                    ProblemKind::Mismatch,
                    &k,
                    format!("record holds call_id {:?}", rec.call_id),
                );
                continue;
            }
            let t = keys::tenant(&rec.tenant, rec.created_ms, &rec.call_id);
            if !self.tree().contains_key(&t)? {
                r.add(ProblemKind::MissingIndex, &t, "tenant index entry missing");
            }
            if keys::utc_day(rec.created_ms).is_err() {
                r.add(ProblemKind::Mismatch, &k, "created_ms is not a valid time");
            }
            let o = keys::open(&rec.call_id);
            if !rec.is_ended() && !self.tree().contains_key(&o)? {
                r.add(
                    ProblemKind::MissingIndex,
                    &o,
                    "call is not ENDED but missing from the open index",
                );
            }
            self.check_call_webhook(&rec, r)?;
        }
        Ok(())
    }

    /// An ENDED call with a payload has exactly one outbox entry: `wi/` names it, and
    /// the outbox scan reports any other entry for the same call as a duplicate.
    fn check_call_webhook(&self, rec: &CallRecord, r: &mut Scan<'_>) -> Result<(), StoreError> {
        let wi = keys::webhook_index(&rec.call_id);
        let seq = self.tree().get(&wi)?.and_then(|v| keys::tail_u64(&v));
        let wants = rec.webhook_payload().is_some();
        match (wants, seq) {
            (true, None) => r.add(
                ProblemKind::Webhook,
                &keys::record(&rec.call_id),
                "ENDED call has no outbox entry (no webhook index)",
            ),
            (true, Some(seq)) => match self.entry_at(seq)? {
                Some(e) if e.call_id == rec.call_id => {}
                Some(_) => {} // reported by the webhook-index scan
                None => r.add(
                    ProblemKind::Webhook,
                    &keys::record(&rec.call_id),
                    format!("ENDED call's outbox entry {seq} does not exist"),
                ),
            },
            (false, Some(seq)) => r.add(
                ProblemKind::Webhook,
                &wi,
                format!(
                    "call in phase {} has an outbox entry ({seq}) but no webhook payload",
                    rec.phase.as_str()
                ),
            ),
            (false, None) => {}
        }
        Ok(())
    }

    fn check_open(&self, r: &mut Scan<'_>) -> Result<(), StoreError> {
        for item in self.tree().scan_prefix(keys::OPEN) {
            let (k, _) = item?;
            r.open_index += 1;
            r.tick();
            let id = String::from_utf8_lossy(&k[keys::OPEN.len()..]).into_owned();
            match self.record_at(&id)? {
                None => r.add(ProblemKind::Dangling, &k, "open index entry without record"),
                Some(rec) if rec.is_ended() => r.add(
                    ProblemKind::Mismatch,
                    &k,
                    "open index entry for an ENDED call",
                ),
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn check_tenant_index(&self, r: &mut Scan<'_>) -> Result<(), StoreError> {
        let prefix = bare_prefix(keys::tenant_prefix(""));
        for item in self.tree().scan_prefix(&prefix) {
            let (k, _) = item?;
            r.tenant_index += 1;
            r.tick();
            // t/<tenant>\0<created_ms u64 BE><call_id>
            let rest = &k[prefix.len()..];
            let Some(nul) = rest.iter().position(|&b| b == 0) else {
                r.add(ProblemKind::Undecodable, &k, "malformed tenant index key");
                continue;
            };
            let tenant = String::from_utf8_lossy(&rest[..nul]);
            let Some(ms) = rest.get(nul + 1..nul + 9).and_then(keys::tail_u64) else {
                r.add(ProblemKind::Undecodable, &k, "malformed tenant index key");
                continue;
            };
            let id = String::from_utf8_lossy(&rest[nul + 9..]).into_owned();
            match self.record_at(&id)? {
                None => r.add(
                    ProblemKind::Dangling,
                    &k,
                    "tenant index entry without record",
                ),
                Some(rec) if rec.tenant != tenant || rec.created_ms != ms => r.add(
                    ProblemKind::Mismatch,
                    &k,
                    format!(
                        "index says tenant {tenant:?} at {ms}, record says {:?} at {}",
                        rec.tenant, rec.created_ms
                    ),
                ),
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The legacy day index (`d/`, no longer written: day queries read the tenant-time
    /// index) is not required, but entries a store still holds must agree with their
    /// records.
    fn check_day_index(&self, r: &mut Scan<'_>) -> Result<(), StoreError> {
        let prefix = bare_prefix(keys::day_prefix("", ""));
        for item in self.tree().scan_prefix(&prefix) {
            let (k, _) = item?;
            r.day_index += 1;
            r.tick();
            // d/<tenant>\0<YYYYMMDD>\0<call_id>
            let mut parts = k[prefix.len()..].splitn(3, |&b| b == 0);
            let (Some(tenant), Some(day), Some(id)) = (parts.next(), parts.next(), parts.next())
            else {
                r.add(ProblemKind::Undecodable, &k, "malformed day index key");
                continue;
            };
            let (tenant, day) = (
                String::from_utf8_lossy(tenant),
                String::from_utf8_lossy(day),
            );
            match self.record_at(&String::from_utf8_lossy(id))? {
                None => r.add(ProblemKind::Dangling, &k, "day index entry without record"),
                Some(rec) => {
                    let rec_day = keys::utc_day(rec.created_ms).unwrap_or_default();
                    if rec.tenant != tenant || rec_day != day {
                        r.add(
                            ProblemKind::Mismatch,
                            &k,
                            format!(
                                "index says tenant {tenant:?} on {day}, record says {:?} on {rec_day}",
                                rec.tenant
                            ),
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

mod outbox;
#[cfg(test)]
mod tests;
