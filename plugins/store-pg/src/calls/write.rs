//! [`CallWrite`]: one write of a call record (a new call, or an update conditional on
//! the version and driver it was made from) with its tally deltas and webhook, encoded
//! once and owned, so that it can be written on its own ([`CallWrite::run`]) or with
//! other calls' writes in one statement (`batch.rs`).

use c2c_callstate::{CallRecord, OutboxEntry, StoreError};
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use super::tallies::{self, TallyRows};
use super::transition::lost_race;
use super::{col, encode_record, to_i64, to_u64};
use crate::error::backend;

/// The tally deltas' upsert every statement with tallies carries, after its `rec`:
/// `$8` the shard count, `$9`-`$13` the deltas; written only if `rec` wrote a row.
macro_rules! tally_upsert {
    () => {
        "tally AS (
    INSERT INTO c2c_tallies (tenant, day, trunk, shard, metric, n)
    SELECT t.tenant, t.day, t.trunk, abs(pg_backend_pid() % $8::integer)::smallint, t.metric, t.n
    FROM unnest($9::text[], $10::text[], $11::text[], $12::text[], $13::bigint[])
        AS t(tenant, day, trunk, metric, n)
    WHERE EXISTS (SELECT 1 FROM rec)
    ON CONFLICT (tenant, day, trunk, shard, metric) DO UPDATE SET n = c2c_tallies.n + excluded.n
)"
    };
}

/// The conditional update of the record (`$1`-`$7`, only if the row holds version `$14`
/// and driver `$15`), first in [`WRITE`] and [`WRITE_WITH_WEBHOOK`].
macro_rules! update_rec {
    () => {
        "
WITH rec AS (
    UPDATE c2c_calls
    SET tenant = $2, created_ms = $3, version = $4, is_open = $5, driver = $6, record = $7
    WHERE call_id = $1 AND version = $14 AND driver = $15
    RETURNING call_id
), "
    };
}

/// A new call and its tally (only if the call id was free), in one statement.
const CREATE: &str = concat!(
    "
WITH rec AS (
    INSERT INTO c2c_calls (call_id, tenant, created_ms, version, is_open, driver, record)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (call_id) DO NOTHING
    RETURNING call_id
), ",
    tally_upsert!(),
    "
SELECT count(*)::bigint AS n, NULL::bigint AS seq FROM rec"
);

/// A record update (driver: this node) and its tally deltas, in one statement, only if
/// the row still holds version `$14` and driver `$15` (the record the update was made
/// from): `n` = 0 when another write got there first, and then nothing was written.
const WRITE: &str = concat!(
    update_rec!(),
    tally_upsert!(),
    "
SELECT count(*)::bigint AS n, NULL::bigint AS seq FROM rec"
);

/// [`WRITE`] for a write that moves no tally: most transitions of a call (ringing,
/// the agent's join, the connect) count the same as before. [`WRITE`] would still set
/// up the tally's `INSERT .. ON CONFLICT` node, its `unnest` and the `EXISTS` at every
/// execution (the executor's start-up is paid whether a row comes or not): 8 % of the
/// database's CPU per lifecycle (BENCHMARKS.md, issue 22). Answers the rows written
/// (0: another write got there first).
const WRITE_PLAIN: &str = "
UPDATE c2c_calls
SET tenant = $2, created_ms = $3, version = $4, is_open = $5, driver = $6, record = $7
WHERE call_id = $1 AND version = $8 AND driver = $9";

/// [`WRITE`] plus the call's webhook unless it has one (its seq from the sequence when
/// `$16` is NULL; `$28` the end of this node's delivery claim on it, NULL: unclaimed,
/// `handoff.rs`); answers the seq it enqueued.
const WRITE_WITH_WEBHOOK: &str = concat!(
    update_rec!(),
    tally_upsert!(),
    ", ob AS (
    INSERT INTO c2c_outbox (seq, webhook_id, call_id, tenant, payload_json, created_ms, attempts,
        next_attempt_ms, state, last_error, delivered_ms, replayed_ms, retry_after, claimed_by,
        claim_until_ms)
    SELECT COALESCE($16::bigint, nextval('c2c_outbox_seq')), $17::text, rec.call_id,
        $18::text, $19::text, $20::bigint, $21::bigint, $22::bigint, $23::text, $24::text,
        $25::bigint, $26::bigint, $27::boolean,
        CASE WHEN $28::bigint IS NULL THEN NULL ELSE $6::text END, COALESCE($28::bigint, 0)
    FROM rec
    ON CONFLICT (call_id) DO NOTHING
    RETURNING seq
)
SELECT (SELECT count(*) FROM rec)::bigint AS n, (SELECT seq FROM ob) AS seq"
);

/// What a write did: `None`, nothing (an update whose row no longer held the version or
/// driver it was made from, or a new call whose id was taken); `Some(seq)`, written,
/// with the seq of the webhook it enqueued if it enqueued one.
pub(super) type Written = Option<Option<u64>>;

/// The webhook a write enqueues unless the call has one.
pub(super) struct Webhook {
    pub entry: OutboxEntry,
    /// The entry's integer and state columns as stored.
    pub columns: super::outbox::Columns,
    /// `None`: the next value of the sequence, taken in the write.
    pub seq: Option<i64>,
    /// The end of this node's delivery claim on the entry, written with it (`None`:
    /// enqueued unclaimed; `handoff.rs`).
    pub claim_until: Option<i64>,
}

/// One write of a call, its values as the statements bind them. The driver written is
/// always this node (the store's `node_id`, bound at execution).
pub(super) struct CallWrite {
    pub call_id: String,
    pub tenant: String,
    pub created_ms: i64,
    pub version: i64,
    pub open: bool,
    pub json: String,
    /// `None`: a new call. Else the version and driver the row must still hold.
    pub condition: Option<(i64, String)>,
    pub tallies: TallyRows,
    pub webhook: Option<Webhook>,
}

impl CallWrite {
    /// A new call (the caller checked its ids).
    pub(super) fn create(rec: &CallRecord) -> Result<CallWrite, StoreError> {
        Self::new(None, rec, None)
    }

    /// `prev` (held by `prev_driver`) becomes `rec`, with `webhook` (and its seq, or
    /// `None` for the sequence's next) unless the call has one.
    pub(super) fn update(
        prev: &CallRecord,
        prev_driver: &str,
        rec: &CallRecord,
        webhook: Option<(&OutboxEntry, Option<i64>)>,
    ) -> Result<CallWrite, StoreError> {
        let condition = (to_i64(prev.version, "version")?, prev_driver.to_owned());
        let mut w = Self::new(Some(prev), rec, Some(condition))?;
        w.webhook = webhook
            .map(|(e, seq)| {
                Ok::<_, StoreError>(Webhook {
                    columns: super::outbox::Columns::of(e)?,
                    entry: e.clone(),
                    seq,
                    claim_until: None,
                })
            })
            .transpose()?;
        Ok(w)
    }

    /// The webhook is enqueued claimed by this node until `until_ms` (`handoff.rs`).
    pub(super) fn claim_webhook(&mut self, until_ms: u64) {
        if let Some(w) = &mut self.webhook {
            w.claim_until = Some(super::bound(until_ms));
        }
    }

    fn new(
        prev: Option<&CallRecord>,
        rec: &CallRecord,
        condition: Option<(i64, String)>,
    ) -> Result<CallWrite, StoreError> {
        Ok(CallWrite {
            call_id: rec.call_id.clone(),
            tenant: rec.tenant.clone(),
            created_ms: to_i64(rec.created_ms, "created_ms")?,
            version: to_i64(rec.version, "version")?,
            open: !rec.is_ended(),
            json: encode_record(rec)?,
            condition,
            tallies: tallies::delta(prev, Some(rec))?,
            webhook: None,
        })
    }

    /// Writes this alone, in one statement on `c` (a connection, or a transaction that
    /// holds the row lock); `node` is the driver written.
    pub(super) async fn run<C: GenericClient>(
        &self,
        c: &C,
        node: &str,
    ) -> Result<Written, StoreError> {
        // The record's columns, first in every statement.
        let record: [&(dyn ToSql + Sync); 7] = [
            &self.call_id,
            &self.tenant,
            &self.created_ms,
            &self.version,
            &self.open,
            &node,
            &self.json,
        ];
        let rows = &self.tallies;
        let tally: [&(dyn ToSql + Sync); 6] = [
            &tallies::SHARDS_PARAM,
            &rows.tenants,
            &rows.days,
            &rows.trunks,
            &rows.metrics,
            &rows.deltas,
        ];
        let mut params = record.to_vec();
        let Some((prev_version, prev_driver)) = &self.condition else {
            params.extend_from_slice(&tally);
            // A refusal here is an error, not a lost race: no other write can have
            // changed what a new call's write was made from.
            return query_written(c, CREATE, &params, false).await;
        };
        if self.webhook.is_none() && rows.deltas.is_empty() {
            params.extend_from_slice(&[prev_version, prev_driver]);
            let st = c.prepare_cached(WRITE_PLAIN).await.map_err(backend)?;
            return match c.execute(&st, &params).await {
                Ok(0) => Ok(None),
                Ok(_) => Ok(Some(None)),
                Err(e) if lost_race(&e) => Ok(None),
                Err(e) => Err(backend(e)),
            };
        }
        params.extend_from_slice(&tally);
        params.extend_from_slice(&[prev_version, prev_driver]);
        let Some(w) = &self.webhook else {
            return query_written(c, WRITE, &params, true).await;
        };
        let (e, cols) = (&w.entry, &w.columns);
        params.extend_from_slice(&[
            &w.seq,
            &e.webhook_id,
            &e.tenant,
            &e.payload_json,
            &cols.created_ms,
            &cols.attempts,
            &cols.next_attempt_ms,
            &cols.state,
            &e.last_error,
            &cols.delivered_ms,
            &cols.replayed_ms,
            &e.retry_after,
            &w.claim_until,
        ]);
        query_written(c, WRITE_WITH_WEBHOOK, &params, true).await
    }
}

/// Runs a statement that answers `(n, seq)`: rows written and the seq enqueued.
/// `conditional`: a refusal for a concurrent change means "not written".
async fn query_written<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    conditional: bool,
) -> Result<Written, StoreError> {
    let st = c.prepare_cached(sql).await.map_err(backend)?;
    let row = match c.query(&st, params).await {
        Ok(row) => row,
        // Refused for a concurrent change (a SERIALIZABLE engine): not written.
        Err(e) if conditional && lost_race(&e) => return Ok(None),
        Err(e) => return Err(backend(e)),
    };
    let row = row
        .first()
        .ok_or_else(|| backend(std::io::Error::other("write answered no row")))?;
    if col::<i64>(row, 0)? == 0 {
        return Ok(None);
    }
    Ok(Some(col::<Option<i64>>(row, 1)?.map(to_u64)))
}
