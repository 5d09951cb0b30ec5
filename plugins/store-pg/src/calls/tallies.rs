//! Per-day tallies without a hot row.
//!
//! A tally (tenant, UTC day, trunk) is stored as signed counters, one row per metric
//! (`total`, `answered`, ..., `sip/<code>`, `cause/<name>`) and per shard, and a read
//! sums the shards. A write goes to the shard of the database session that runs it,
//! `abs(pg_backend_pid() % SHARDS)` (CockroachDB's session number may be negative), so
//! concurrent writes of one busy tenant and day update different rows: a session runs
//! one transaction at a time, and the sessions of a pool, opened one after another,
//! usually have consecutive process ids. A counter's shards need not agree with each
//! other (a call's `+1` may land on one and its `-1` on another): only their sum means
//! anything.
//!
//! Why not by call: a shard of `hash(call_id) % 16` let two of the 24 calls in flight
//! in `tests/bench/fleet.sh` meet on one row often, and the second waited for the
//! first's commit, WAL flush included: a tenth of the busy sessions' time was that wait
//! (`pg_stat_activity`'s `Lock:transactionid`, always on a write with tally deltas;
//! BENCHMARKS.md, issue 22).
//!
//! What a call counts as is `c2c_callstate`'s one rule ([`DayTally::count`]): a write
//! adds the difference between the record's contribution before and after, in the
//! same statement as the record.

use std::collections::BTreeMap;

use c2c_callstate::store::TallyContribution;
use c2c_callstate::{CallRecord, DayTally, StoreError};
use tokio_postgres::IsolationLevel;

use super::{check_id, col, decode_record, query, tally_format, tx_execute, tx_query, PgCallStore};
use crate::error::backend;

/// Rows each tally is spread over: at least a node's connections (`pool_size`,
/// 16 by default) times two, so two nodes' sessions rarely share one.
pub(super) const SHARDS: u32 = 32;

/// [`SHARDS`] as the writes' `$8` (`pg_backend_pid() % $8`).
pub(super) const SHARDS_PARAM: i32 = SHARDS as i32;

/// The tally format this build writes (see [`tally_format!`]).
pub(super) const TALLY_FORMAT: &str = tally_format!();

/// How many records a rebuild reads between two progress reports.
const PROGRESS_EVERY: u64 = 10_000;
/// Rows per statement when a rebuild writes the tallies back.
const INSERT_CHUNK: usize = 1_000;

/// `(tenant, day, trunk, metric)`: one counter of one tally, all shards.
pub(super) type CounterKey = (String, String, String, String);

/// The shard of `c2c_purged_tallies` a purged call's counts go to: FNV-1a of its id,
/// stable across builds and processes.
pub(super) fn shard(call_id: &str) -> i16 {
    let mut h: u32 = 0x811c_9dc5;
    for b in call_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h % SHARDS) as i16
}

/// A tally as `(metric, count)` pairs, zero counters left out. Destructures every
/// field, so a field added to [`DayTally`] fails to compile here until it is stored.
pub(super) fn flatten(t: &DayTally) -> Vec<(String, i64)> {
    let DayTally {
        total,
        answered,
        not_answered,
        failed,
        in_progress,
        missed,
        inbound,
        failures_by_sip_code,
        failures_by_cause,
        talk_ms,
        charge_paise,
        media_calls,
        early_media,
        one_way_audio,
        media_timeouts,
        jitter_ms_buckets,
    } = t;
    let mut out: Vec<(String, i64)> = [
        ("total", total),
        ("answered", answered),
        ("not_answered", not_answered),
        ("failed", failed),
        ("in_progress", in_progress),
        ("missed", missed),
        ("inbound", inbound),
        ("talk_ms", talk_ms),
        ("charge_paise", charge_paise),
        ("media_calls", media_calls),
        ("early_media", early_media),
        ("one_way_audio", one_way_audio),
        ("media_timeouts", media_timeouts),
    ]
    .into_iter()
    .map(|(m, n)| (m.to_owned(), clamp(*n)))
    .collect();
    out.extend(
        failures_by_sip_code
            .iter()
            .map(|(code, n)| (format!("sip/{code}"), clamp(*n))),
    );
    out.extend(
        failures_by_cause
            .iter()
            .map(|(cause, n)| (format!("cause/{cause}"), clamp(*n))),
    );
    out.extend(
        jitter_ms_buckets
            .iter()
            .map(|(bound, n)| (format!("jitter/{bound}"), clamp(*n))),
    );
    out.retain(|(_, n)| *n != 0);
    out
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Adds a summed counter back into a tally; false for a metric this build does not know.
pub(super) fn unflatten(t: &mut DayTally, metric: &str, n: i64) -> bool {
    let Ok(n) = u64::try_from(n) else {
        return true; // a negative sum counts nothing (check reports it)
    };
    if n == 0 {
        return true;
    }
    let slot = match metric {
        "total" => &mut t.total,
        "answered" => &mut t.answered,
        "not_answered" => &mut t.not_answered,
        "failed" => &mut t.failed,
        "in_progress" => &mut t.in_progress,
        "missed" => &mut t.missed,
        "inbound" => &mut t.inbound,
        "talk_ms" => &mut t.talk_ms,
        "charge_paise" => &mut t.charge_paise,
        "media_calls" => &mut t.media_calls,
        "early_media" => &mut t.early_media,
        "one_way_audio" => &mut t.one_way_audio,
        "media_timeouts" => &mut t.media_timeouts,
        m => {
            if let Some(b) = m
                .strip_prefix("jitter/")
                .and_then(|b| b.parse::<u32>().ok())
            {
                *t.jitter_ms_buckets.entry(b).or_default() += n;
                return true;
            }
            if let Some(code) = m.strip_prefix("sip/").and_then(|c| c.parse::<u16>().ok()) {
                *t.failures_by_sip_code.entry(code).or_default() += n;
                return true;
            }
            if let Some(cause) = m.strip_prefix("cause/") {
                *t.failures_by_cause.entry(cause.to_owned()).or_default() += n;
                return true;
            }
            return false;
        }
    };
    *slot += n;
    true
}

/// Counter changes as the arrays the write statements `unnest`, in key order (so every
/// writer locks tally rows in the same order), zero changes left out.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct TallyRows {
    pub tenants: Vec<String>,
    pub days: Vec<String>,
    pub trunks: Vec<String>,
    pub metrics: Vec<String>,
    pub deltas: Vec<i64>,
}

impl TallyRows {
    pub(super) fn from_counters(counters: BTreeMap<CounterKey, i64>) -> TallyRows {
        let mut rows = TallyRows::default();
        for ((tenant, day, trunk, metric), n) in counters.into_iter().filter(|(_, n)| *n != 0) {
            rows.tenants.push(tenant);
            rows.days.push(day);
            rows.trunks.push(trunk);
            rows.metrics.push(metric);
            rows.deltas.push(n);
        }
        rows
    }

    pub(super) fn len(&self) -> usize {
        self.deltas.len()
    }
}

/// Adds what `rec` counts for, `sign` times, into `counters`.
pub(super) fn count_into(
    counters: &mut BTreeMap<CounterKey, i64>,
    rec: &CallRecord,
    sign: i64,
) -> Result<(), StoreError> {
    let c = TallyContribution::of(rec)?;
    let mut t = DayTally::default();
    t.count(&c, true);
    for (metric, n) in flatten(&t) {
        let key = (
            c.slot.tenant.clone(),
            c.slot.day.clone(),
            c.slot.trunk.clone(),
            metric,
        );
        *counters.entry(key).or_default() += sign * n;
    }
    Ok(())
}

/// The counter changes of a record going from `before` to `after` (`None`: absent).
/// Fails (`InvalidInput`) for a `created_ms` that is no calendar day, before anything
/// is written.
pub(super) fn delta(
    before: Option<&CallRecord>,
    after: Option<&CallRecord>,
) -> Result<TallyRows, StoreError> {
    let mut counters = BTreeMap::new();
    if let Some(b) = before {
        count_into(&mut counters, b, -1)?;
    }
    if let Some(a) = after {
        count_into(&mut counters, a, 1)?;
    }
    Ok(TallyRows::from_counters(counters))
}

const DAYS: &str = "SELECT day, metric, SUM(n)::bigint FROM c2c_tallies
    WHERE tenant = $1 AND day >= $2 AND day <= $3 AND ($4::text IS NULL OR trunk = $4)
    GROUP BY day, metric";

const FORMAT: &str = "SELECT value FROM c2c_calls_meta WHERE key = 'tally_format'";
const LOCK_FORMAT: &str = "SELECT value FROM c2c_calls_meta WHERE key = 'tally_format' FOR UPDATE";
const SET_FORMAT: &str = "INSERT INTO c2c_calls_meta (key, value) VALUES ('tally_format', $1)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value";

const ALL_RECORDS: &str = "SELECT call_id, record FROM c2c_calls";
pub(super) const PURGED_SUMS: &str =
    "SELECT tenant, day, trunk, metric, SUM(n)::bigint FROM c2c_purged_tallies
    GROUP BY tenant, day, trunk, metric";
const INSERT_REBUILT: &str = "INSERT INTO c2c_tallies (tenant, day, trunk, shard, metric, n)
    SELECT t.tenant, t.day, t.trunk, 0, t.metric, t.n
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
        AS t(tenant, day, trunk, metric, n)";

/// How often a rebuild that lost a serialisation race (a call written meanwhile) is
/// tried again.
const REBUILD_TRIES: u32 = 5;

impl PgCallStore {
    pub(super) async fn read_tallies(
        &self,
        tenant: &str,
        from_day: &str,
        to_day: &str,
        trunk: Option<&str>,
    ) -> Result<BTreeMap<String, DayTally>, StoreError> {
        check_id("tenant", tenant)?;
        let c = self.client().await?;
        let rows = query(&c, DAYS, &[&tenant, &from_day, &to_day, &trunk]).await?;
        let mut out: BTreeMap<String, DayTally> = BTreeMap::new();
        for r in &rows {
            let (day, metric, n): (String, String, i64) = (col(r, 0)?, col(r, 1)?, col(r, 2)?);
            unflatten(out.entry(day).or_default(), &metric, n);
        }
        out.retain(|_, t| !t.is_empty());
        Ok(out)
    }

    pub(super) async fn tally_format_current(&self) -> Result<bool, StoreError> {
        let c = self.client().await?;
        let rows = query(&c, FORMAT, &[]).await?;
        let found: Option<String> = rows.first().map(|r| col(r, 0)).transpose()?;
        Ok(found.as_deref() == Some(TALLY_FORMAT))
    }

    /// Marks the tallies stale, so the next [`Self::rebuild_tallies_if_stale`] (at the
    /// next start, `ensure_aggregates`) recounts them: after records were repaired by
    /// hand, or to exercise the rebuild.
    pub async fn invalidate_tallies(&self) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(backend)?;
        tx_execute(&tx, SET_FORMAT, &[&"stale"]).await?;
        tx.commit().await.map_err(backend)
    }

    /// Recounts every tally from the records plus the purged-calls tallies unless the
    /// stored format is this build's; true when it rebuilt. One serialisable
    /// transaction: a call written meanwhile makes one side retry, never a wrong count.
    pub(super) async fn rebuild_tallies_if_stale(
        &self,
        progress: &mut dyn FnMut(u64),
    ) -> Result<bool, StoreError> {
        if self.tally_format_current().await? {
            return Ok(false);
        }
        let mut tries = 0;
        loop {
            tries += 1;
            match self.rebuild_once(progress).await {
                Err(e) if tries < REBUILD_TRIES && is_serialization(&e) => {
                    tracing::info!(error = %e, "tally rebuild raced a write; trying again");
                }
                done => return done,
            }
        }
    }

    async fn rebuild_once(&self, progress: &mut dyn FnMut(u64)) -> Result<bool, StoreError> {
        let mut c = self.client().await?;
        let tx = c
            .build_transaction()
            .isolation_level(IsolationLevel::Serializable)
            .start()
            .await
            .map_err(backend)?;
        // Another node may have rebuilt while this one waited for the lock.
        let format: Option<String> = tx_query(&tx, LOCK_FORMAT, &[])
            .await?
            .first()
            .map(|r| col(r, 0))
            .transpose()?;
        if format.as_deref() == Some(TALLY_FORMAT) {
            tx.rollback().await.map_err(backend)?;
            return Ok(false);
        }
        let mut counters: BTreeMap<CounterKey, i64> = BTreeMap::new();
        let st = tx.prepare_cached(ALL_RECORDS).await.map_err(backend)?;
        let portal = tx.bind(&st, &[]).await.map_err(backend)?;
        let mut read = 0u64;
        loop {
            let rows = tx.query_portal(&portal, 1_000).await.map_err(backend)?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                read += 1;
                if read.is_multiple_of(PROGRESS_EVERY) {
                    progress(read);
                }
                let id: String = col(r, 0)?;
                // One bad record must not stop the others being counted (check reports it).
                match decode_record(&id, &col::<String>(r, 1)?) {
                    Ok(rec) => count_into(&mut counters, &rec, 1)?,
                    Err(e) => tracing::warn!(error = %e, "call record skipped while counting"),
                }
            }
        }
        progress(read);
        for r in tx_query(&tx, PURGED_SUMS, &[]).await? {
            let key = (col(&r, 0)?, col(&r, 1)?, col(&r, 2)?, col(&r, 3)?);
            *counters.entry(key).or_default() += col::<i64>(&r, 4)?;
        }
        let slots = counters.len();
        tx_execute(&tx, "DELETE FROM c2c_tallies", &[]).await?;
        let rows = TallyRows::from_counters(counters);
        let mut at = 0;
        while at < rows.len() {
            let end = (at + INSERT_CHUNK).min(rows.len());
            tx_execute(
                &tx,
                INSERT_REBUILT,
                &[
                    &&rows.tenants[at..end],
                    &&rows.days[at..end],
                    &&rows.trunks[at..end],
                    &&rows.metrics[at..end],
                    &&rows.deltas[at..end],
                ],
            )
            .await?;
            at = end;
        }
        tx_execute(&tx, SET_FORMAT, &[&TALLY_FORMAT]).await?;
        tx.commit().await.map_err(backend)?;
        tracing::info!(
            records = read,
            counters = slots,
            "rebuilt per-day call tallies"
        );
        Ok(true)
    }
}

/// A serialisation failure (or deadlock): the transaction lost a race and may be tried
/// again.
fn is_serialization(e: &StoreError) -> bool {
    use tokio_postgres::error::SqlState;
    let StoreError::Backend(inner) = e else {
        return false;
    };
    inner
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(|e| e.code())
        .is_some_and(|c| {
            *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `c2c_callstate` keeps its format version private: this reads its source, so a
    /// change of its counting rules fails here until this store's format follows.
    #[test]
    fn the_tally_format_follows_c2c_callstate() {
        let src = include_str!("../../../callstate/src/store/aggregates.rs");
        let want = format!("const AGGREGATES_VERSION: &[u8] = b\"{TALLY_FORMAT}\";");
        assert!(
            src.contains(&want),
            "c2c_callstate's tally format changed: bump tally_format!"
        );
    }

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(
            shard("c2c_00000000000000000000000000000000"),
            shard("c2c_00000000000000000000000000000000")
        );
        let used: std::collections::BTreeSet<i16> =
            (0..200).map(|i| shard(&format!("c2c_{i:032x}"))).collect();
        assert_eq!(used.len(), SHARDS as usize);
        assert!(used.iter().all(|s| (0..SHARDS as i16).contains(s)));
    }

    #[test]
    fn a_tally_survives_flatten_and_unflatten() {
        let mut t = DayTally {
            total: 5,
            answered: 2,
            not_answered: 1,
            failed: 1,
            in_progress: 1,
            missed: 0,
            inbound: 3,
            ..DayTally::default()
        };
        t.failures_by_sip_code.insert(486, 1);
        t.failures_by_cause.insert("busy".into(), 2);
        let mut back = DayTally::default();
        for (m, n) in flatten(&t) {
            assert!(unflatten(&mut back, &m, n), "{m}");
        }
        assert_eq!(back, t);
        assert!(!unflatten(&mut back, "unknown", 1));
    }
}
