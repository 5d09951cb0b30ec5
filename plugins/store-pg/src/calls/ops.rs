//! Operator tools on the shared database: streaming walks over every record and outbox
//! entry (`db export`, `calls show`, `webhooks replay`) and the integrity check
//! (`db check`).
//!
//! The database keeps its own indexes, so what can drift is what this crate derives:
//! the index columns next to a record's JSON (tenant, time, version, the open flag), a
//! driver on every open call, one webhook per ENDED call and none for the others,
//! claims only on pending entries, and the tallies against a recount of the records
//! plus the purged-calls tallies. Reads go page by page (no long transaction), so on a
//! live fleet a call written during the walk may show as a transient problem: run it
//! again, or on a quiet database, before acting on one.

use std::collections::{BTreeMap, BTreeSet};

use c2c_callstate::store::{TallyContribution, MAX_PROBLEMS};
use c2c_callstate::{
    CallRecord, CheckReport, OutboxEntry, Problem, ProblemKind, StoreError, PROGRESS_EVERY,
};

use super::outbox::{cols, entry_of};
use super::tallies::{count_into, CounterKey, PURGED_SUMS};
use super::{col, decode_record, query, to_u64, PgCallStore};

/// Rows per page of a walk.
const PAGE: i64 = 500;

const RECORDS: &str = "SELECT call_id, record FROM c2c_calls
    WHERE call_id > $1 ORDER BY call_id LIMIT $2";
const OUTBOX: &str = concat!(
    "SELECT ",
    cols!(),
    " FROM c2c_outbox WHERE seq > $1 ORDER BY seq LIMIT $2"
);
const CHECK_RECORDS: &str = "SELECT c.call_id, c.tenant, c.created_ms, c.version, c.is_open,
        c.driver, c.record, o.seq
    FROM c2c_calls c LEFT JOIN c2c_outbox o ON o.call_id = c.call_id
    WHERE c.call_id > $1 ORDER BY c.call_id LIMIT $2";
const CHECK_OUTBOX: &str = concat!(
    "SELECT x.*, c.tenant FROM (SELECT ",
    cols!(),
    ", claimed_by FROM c2c_outbox WHERE seq > $1 ORDER BY seq LIMIT $2) x
    LEFT JOIN c2c_calls c ON c.call_id = x.call_id ORDER BY x.seq"
);
const TALLY_SUMS: &str = "SELECT tenant, day, trunk, metric, SUM(n)::bigint FROM c2c_tallies
    GROUP BY tenant, day, trunk, metric";

/// The report being built, the progress callback, and the recount of the tallies.
struct Scan<'p> {
    report: CheckReport,
    scanned: u64,
    progress: &'p mut dyn FnMut(u64),
    recount: BTreeMap<CounterKey, i64>,
}

impl Scan<'_> {
    fn tick(&mut self) {
        self.scanned += 1;
        if self.scanned.is_multiple_of(PROGRESS_EVERY) {
            (self.progress)(self.scanned);
        }
    }

    fn add(&mut self, kind: ProblemKind, key: String, detail: impl Into<String>) {
        let r = &mut self.report;
        r.problem_count += 1;
        if r.problems.len() < MAX_PROBLEMS {
            r.problems.push(Problem {
                kind,
                key,
                detail: detail.into(),
            });
        }
    }
}

impl PgCallStore {
    /// Every call record in call-id order, a page at a time, until `f` answers false.
    /// Returns how many `f` saw. A record that does not decode is an error (`check`
    /// lists them all).
    pub async fn scan_records(
        &self,
        f: &mut (dyn FnMut(&CallRecord) -> bool + Send),
    ) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let (mut after, mut seen) = (String::new(), 0u64);
        loop {
            let rows = query(&c, RECORDS, &[&after, &PAGE]).await?;
            for r in &rows {
                after = col(r, 0)?;
                let rec = decode_record(&after, &col::<String>(r, 1)?)?;
                seen += 1;
                if !f(&rec) {
                    return Ok(seen);
                }
            }
            if (rows.len() as i64) < PAGE {
                return Ok(seen);
            }
        }
    }

    /// Every outbox entry in seq order (oldest first), a page at a time, until `f`
    /// answers false. Returns how many `f` saw.
    pub async fn scan_outbox(
        &self,
        f: &mut (dyn FnMut(&OutboxEntry) -> bool + Send),
    ) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let (mut after, mut seen) = (i64::MIN, 0u64);
        loop {
            let rows = query(&c, OUTBOX, &[&after, &PAGE]).await?;
            for r in &rows {
                let e = entry_of(r)?;
                after = col(r, 0)?;
                seen += 1;
                if !f(&e) {
                    return Ok(seen);
                }
            }
            if (rows.len() as i64) < PAGE {
                return Ok(seen);
            }
        }
    }

    /// [`Self::check_with_progress`] without progress.
    pub async fn check(&self) -> Result<CheckReport, StoreError> {
        self.check_with_progress(&mut |_| {}).await
    }

    /// Verifies everything that can drift (see the module docs); `progress` hears the
    /// rows read every [`PROGRESS_EVERY`]. Read-only.
    pub async fn check_with_progress(
        &self,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<CheckReport, StoreError> {
        let mut scan = Scan {
            report: CheckReport::default(),
            scanned: 0,
            progress,
            recount: BTreeMap::new(),
        };
        self.check_records(&mut scan).await?;
        self.check_outbox(&mut scan).await?;
        self.check_tallies(&mut scan).await?;
        (scan.progress)(scan.scanned);
        Ok(scan.report)
    }

    async fn check_records(&self, s: &mut Scan<'_>) -> Result<(), StoreError> {
        let c = self.client().await?;
        let mut after = String::new();
        loop {
            let rows = query(&c, CHECK_RECORDS, &[&after, &PAGE]).await?;
            for r in &rows {
                after = col(r, 0)?;
                s.tick();
                s.report.records += 1;
                s.report.tenant_index += 1;
                let (tenant, created, version, open, driver, json, seq): (
                    String,
                    i64,
                    i64,
                    bool,
                    String,
                    String,
                    Option<i64>,
                ) = (
                    col(r, 1)?,
                    col(r, 2)?,
                    col(r, 3)?,
                    col(r, 4)?,
                    col(r, 5)?,
                    col(r, 6)?,
                    col(r, 7)?,
                );
                if open {
                    s.report.open_index += 1;
                }
                let key = format!("c2c_calls/{after}");
                let rec: CallRecord = match serde_json::from_str(&json) {
                    Ok(rec) => rec,
                    Err(e) => {
                        s.add(ProblemKind::Undecodable, key, e.to_string());
                        continue;
                    }
                };
                if rec.call_id != after {
                    s.add(
                        ProblemKind::Mismatch,
                        key,
                        format!("record holds call_id {:?}", rec.call_id),
                    );
                    continue;
                }
                if rec.tenant != tenant
                    || rec.created_ms != to_u64(created)
                    || rec.version != to_u64(version)
                {
                    s.add(
                        ProblemKind::Mismatch,
                        key.clone(),
                        format!(
                            "columns say tenant {tenant:?} at {created} version {version}, the record {:?} at {} version {}",
                            rec.tenant, rec.created_ms, rec.version
                        ),
                    );
                }
                if open == rec.is_ended() {
                    s.add(
                        ProblemKind::Mismatch,
                        key.clone(),
                        format!(
                            "open flag {open} for a call in phase {}",
                            rec.phase.as_str()
                        ),
                    );
                }
                if open && driver.is_empty() {
                    s.add(
                        ProblemKind::MissingIndex,
                        key.clone(),
                        "open call without a driver",
                    );
                }
                match TallyContribution::of(&rec) {
                    Ok(_) => count_into(&mut s.recount, &rec, 1)?,
                    Err(_) => s.add(
                        ProblemKind::Mismatch,
                        key.clone(),
                        "created_ms is not a valid time",
                    ),
                }
                match (rec.webhook_payload().is_some(), seq) {
                    (true, None) => {
                        s.add(ProblemKind::Webhook, key, "ENDED call has no outbox entry")
                    }
                    (false, Some(seq)) => s.add(
                        ProblemKind::Webhook,
                        key,
                        format!(
                            "call in phase {} has an outbox entry ({seq}) but no webhook payload",
                            rec.phase.as_str()
                        ),
                    ),
                    _ => {}
                }
            }
            if (rows.len() as i64) < PAGE {
                return Ok(());
            }
        }
    }

    async fn check_outbox(&self, s: &mut Scan<'_>) -> Result<(), StoreError> {
        let c = self.client().await?;
        let mut after = i64::MIN;
        loop {
            let rows = query(&c, CHECK_OUTBOX, &[&after, &PAGE]).await?;
            for r in &rows {
                after = col(r, 0)?;
                s.tick();
                s.report.outbox += 1;
                s.report.webhook_index += 1;
                let key = format!("c2c_outbox/{after}");
                let e = match entry_of(r) {
                    Ok(e) => e,
                    Err(err) => {
                        s.add(ProblemKind::Undecodable, key, err.to_string());
                        continue;
                    }
                };
                if e.is_pending() {
                    s.report.pending_index += 1;
                }
                let claimed_by: Option<String> = col(r, 13)?;
                // (An entry of a call that is not ENDED is reported with the record.)
                let call_tenant: Option<String> = col(r, 14)?;
                match call_tenant {
                    // A tenant event's entry has no call behind it.
                    None if e.is_event() => {}
                    None => s.add(
                        ProblemKind::Dangling,
                        key.clone(),
                        format!("outbox entry for call {} without record", e.call_id),
                    ),
                    Some(t) if t != e.tenant => s.add(
                        ProblemKind::Mismatch,
                        key.clone(),
                        format!("entry says tenant {:?}, record says {t:?}", e.tenant),
                    ),
                    Some(_) => {}
                }
                if claimed_by.is_some() && !e.is_pending() {
                    s.add(
                        ProblemKind::Mismatch,
                        key,
                        "a finished entry still carries a delivery claim",
                    );
                }
            }
            if (rows.len() as i64) < PAGE {
                return Ok(());
            }
        }
    }

    /// Stored tally sums against the recount of the records plus the purged tallies.
    async fn check_tallies(&self, s: &mut Scan<'_>) -> Result<(), StoreError> {
        let c = self.client().await?;
        let mut want = std::mem::take(&mut s.recount);
        let mut purged_slots = BTreeSet::new();
        for r in query(&c, PURGED_SUMS, &[]).await? {
            let key: CounterKey = (col(&r, 0)?, col(&r, 1)?, col(&r, 2)?, col(&r, 3)?);
            purged_slots.insert((key.0.clone(), key.1.clone(), key.2.clone()));
            *want.entry(key).or_default() += col::<i64>(&r, 4)?;
        }
        let mut stored: BTreeMap<CounterKey, i64> = BTreeMap::new();
        let mut slots = BTreeSet::new();
        for r in query(&c, TALLY_SUMS, &[]).await? {
            let key: CounterKey = (col(&r, 0)?, col(&r, 1)?, col(&r, 2)?, col(&r, 3)?);
            slots.insert((key.0.clone(), key.1.clone(), key.2.clone()));
            stored.insert(key, col(&r, 4)?);
        }
        s.report.tallies = slots.len() as u64;
        s.report.purged_tallies = purged_slots.len() as u64;
        // Differences per tally: (tenant, day, trunk) -> "metric: stored a, want b".
        let mut wrong: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
        let keys: BTreeSet<&CounterKey> = stored.keys().chain(want.keys()).collect();
        for k in keys {
            let (have, need) = (
                stored.get(k).copied().unwrap_or(0),
                want.get(k).copied().unwrap_or(0),
            );
            if have != need {
                wrong
                    .entry((k.0.clone(), k.1.clone(), k.2.clone()))
                    .or_default()
                    .push(format!(
                        "{}: stored {have}, the records add up to {need}",
                        k.3
                    ));
            }
        }
        for ((tenant, day, trunk), diffs) in wrong {
            s.add(
                ProblemKind::Tally,
                format!("c2c_tallies/{tenant}/{day}/{trunk}"),
                diffs.join("; "),
            );
        }
        Ok(())
    }
}
