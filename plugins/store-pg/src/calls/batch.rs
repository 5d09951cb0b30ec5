//! The node's queue of call writes: what queued while the previous batch was being
//! written goes to the database in one statement, hence one durable commit.
//!
//! Why: the database's CPU per call write is mostly the statement's and the commit's
//! overhead, not the row's (`tests/bench/pg-batch.sh`: four writes in one statement
//! cost 0.41x of four statements), and the database sessions of a busy fleet spend most
//! of their time in the durable commit (BENCHMARKS.md, issue 22). Nothing waits for a
//! window: an idle node writes each write at once, alone, with the statement it always
//! used ([`CallWrite::run`]); a busy one in batches as large as the load makes them.
//!
//! What a write in a batch does is what it would do alone:
//! - an update is conditional on its own row's version and driver, and the statement
//!   answers which rows it wrote; the others were written over by someone else, and
//!   their callers re-read and run their transition again, as after a lone write;
//! - a new call is inserted only if its id is free;
//! - tally deltas and webhooks are written for the rows written, and only for them.
//!
//! One call is written at most once per statement (an `UPDATE .. FROM` that joins a row
//! twice updates it once, with either join row): a second write of a call that queued
//! behind its first goes in the next statement, in queue order (made before the first
//! committed, it usually finds the row changed, and its caller reads again). The rows
//! are bound in call id order, and the update reads them in that order (a nested loop
//! over the batch: `tests/plans.rs`), so two nodes' batches lock the rows they share in
//! the same order. A connection keeps the plan it made for its first batches, though:
//! made while the table was young, it is a hash join over a sequential scan, which
//! locks rows in the table's order (the same for every node) and reads the whole table
//! at every batch until an `ANALYZE` makes it plan again. Pinning the nested loop with
//! planner settings local to the batch's transaction made the statement cheaper and the
//! benchmark no faster (BENCHMARKS.md, issue 22). Should two batches still deadlock, or
//! the database refuse a batch as such (a serialization failure on an engine that runs
//! every transaction SERIALIZABLE, a constraint, a statement it does not support), its
//! writes are written again one at a time, each with its own answer.
//!
//! The queue is bounded ([`QUEUE`]); when it is full, the caller writes on its own
//! connection. A write whose caller stopped waiting (its deadline ran out, its request
//! went away) is dropped before it is written: nobody learnt of it, and a transition's
//! effects never run.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use c2c_callstate::StoreError;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::tallies;
use super::write::{CallWrite, Written};
use super::{to_u64, PgCallStore};
use crate::error::backend;
use crate::PgStore;

/// Writes queued at most; beyond, a caller writes on its own connection. Four batches:
/// a caller's deadline covers its wait in the queue too, so a deep queue in front of a
/// slow database would turn waits into deadlines run out (which mark the pool stalled).
///
/// One batch is written at a time. Two in flight made batches smaller (3.1 write
/// transactions per lifecycle against 2.65 with one) and cost the database 4-5 % more
/// CPU per lifecycle, with no better p99 (BENCHMARKS.md, issue 22). The price: a batch
/// that waits on a row lock (another node's write to one of its calls) holds up this
/// node's writes until that short transaction commits; a deadlock between two nodes'
/// batches is broken by the database within `deadlock_timeout` (1 s) and the refused
/// batch then goes one write at a time.
const QUEUE: usize = 4 * MAX_BATCH;
/// Writes in one statement at most.
const MAX_BATCH: usize = 64;

/// Every write of the batch, one row each (`$3`-`$10`; `$10` NULL: a new call), with
/// their tally deltas (`$11`-`$16`, by call id) and webhooks (`$17`-`$30`, by call id;
/// `$30` the end of this node's delivery claim on it, NULL: unclaimed, `handoff.rs`);
/// `$1` is this node, the driver written. Answers the call ids written, and the seq of
/// the webhook each enqueued (NULL: none).
pub const BATCH: &str = "
WITH job AS (
    SELECT * FROM unnest($3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::boolean[],
        $8::text[], $9::bigint[], $10::text[])
        AS j(call_id, tenant, created_ms, version, is_open, record, prev_version, prev_driver)
), ins AS (
    INSERT INTO c2c_calls (call_id, tenant, created_ms, version, is_open, driver, record)
    SELECT j.call_id, j.tenant, j.created_ms, j.version, j.is_open, $1::text, j.record
    FROM job j WHERE j.prev_driver IS NULL
    ON CONFLICT (call_id) DO NOTHING
    RETURNING call_id
), upd AS (
    UPDATE c2c_calls c
    SET tenant = j.tenant, created_ms = j.created_ms, version = j.version,
        is_open = j.is_open, driver = $1::text, record = j.record
    FROM job j
    WHERE c.call_id = j.call_id AND c.version = j.prev_version AND c.driver = j.prev_driver
    RETURNING c.call_id
), done AS (
    SELECT call_id FROM ins UNION ALL SELECT call_id FROM upd
), tally AS (
    INSERT INTO c2c_tallies (tenant, day, trunk, shard, metric, n)
    SELECT t.tenant, t.day, t.trunk, abs(pg_backend_pid() % $2::integer)::smallint, t.metric,
        sum(t.n)::bigint
    FROM unnest($11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::bigint[])
        AS t(call_id, tenant, day, trunk, metric, n)
    WHERE t.call_id IN (SELECT call_id FROM done)
    GROUP BY t.tenant, t.day, t.trunk, t.metric
    HAVING sum(t.n) <> 0
    ORDER BY t.tenant, t.day, t.trunk, t.metric
    ON CONFLICT (tenant, day, trunk, shard, metric) DO UPDATE SET n = c2c_tallies.n + excluded.n
), ob AS (
    INSERT INTO c2c_outbox (seq, webhook_id, call_id, tenant, payload_json, created_ms, attempts,
        next_attempt_ms, state, last_error, delivered_ms, replayed_ms, retry_after, claimed_by,
        claim_until_ms)
    SELECT COALESCE(w.seq, nextval('c2c_outbox_seq')), w.webhook_id, w.call_id, w.tenant,
        w.payload_json, w.created_ms, w.attempts, w.next_attempt_ms, w.state, w.last_error,
        w.delivered_ms, w.replayed_ms, w.retry_after,
        CASE WHEN w.claim_until IS NULL THEN NULL ELSE $1::text END, COALESCE(w.claim_until, 0)
    FROM unnest($17::text[], $18::bigint[], $19::text[], $20::text[], $21::text[],
        $22::bigint[], $23::bigint[], $24::bigint[], $25::text[], $26::text[], $27::bigint[],
        $28::bigint[], $29::boolean[], $30::bigint[])
        AS w(call_id, seq, webhook_id, tenant, payload_json, created_ms, attempts,
            next_attempt_ms, state, last_error, delivered_ms, replayed_ms, retry_after,
            claim_until)
    WHERE w.call_id IN (SELECT call_id FROM done)
    ON CONFLICT (call_id) DO NOTHING
    RETURNING call_id, seq
)
SELECT d.call_id, ob.seq FROM done d LEFT JOIN ob ON ob.call_id = d.call_id";

/// One write as queued, and where its answer goes.
struct Job {
    write: CallWrite,
    reply: oneshot::Sender<Result<Written, StoreError>>,
}

/// The sending side of the node's write queue; the writer ends when this is dropped.
pub(super) struct WriteQueue {
    jobs: mpsc::Sender<Job>,
    counts: Arc<Counts>,
}

/// What the writer did since it started (tests and benchmarks read it).
#[derive(Default)]
struct Counts {
    statements: AtomicU64,
    writes: AtomicU64,
    refused: AtomicU64,
    /// The engine does not support [`BATCH`] (CockroachDB refuses two modifications of
    /// one table in a statement unless a cluster setting allows them): every write goes
    /// alone from then on, instead of a refused statement before every batch.
    unsupported: AtomicBool,
}

/// Statements of more than one write since the node started: how many, the writes in
/// them, and how many the database refused (their writes then went one at a time).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteBatchCounts {
    pub statements: u64,
    pub writes: u64,
    pub refused: u64,
}

impl WriteQueue {
    /// Starts the writer on `pg`'s I/O runtime (the runtimes that call the store come
    /// and go; that one lives as long as the pool).
    pub(super) fn start(pg: &Arc<PgStore>) -> WriteQueue {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let counts = Arc::new(Counts::default());
        pg.io_handle()
            .spawn(drain(Arc::downgrade(pg), rx, Arc::clone(&counts)));
        WriteQueue { jobs, counts }
    }

    pub(super) fn counts(&self) -> WriteBatchCounts {
        let c = &self.counts;
        WriteBatchCounts {
            statements: c.statements.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
        }
    }
}

impl PgCallStore {
    /// Writes `w` through the queue, or on a connection of its own when the queue is
    /// full.
    pub(super) async fn write_queued(&self, w: CallWrite) -> Result<Written, StoreError> {
        let (reply, answer) = oneshot::channel();
        let w = match self.queue.jobs.try_send(Job { write: w, reply }) {
            Ok(()) => {
                return answer.await.unwrap_or_else(|_| {
                    Err(backend(std::io::Error::other(
                        "the call write queue stopped before the write was answered",
                    )))
                })
            }
            Err(TrySendError::Full(job) | TrySendError::Closed(job)) => job.write,
        };
        let c = self.client().await?;
        w.run(&c, self.node_id()).await
    }
}

/// Holds the store weakly: the store owns the runtime this task runs on, so a strong
/// reference would keep both alive for good. One batch at a time (see [`QUEUE`]): the
/// writes that arrive while a statement is being written make the next one.
async fn drain(pg: Weak<PgStore>, mut rx: mpsc::Receiver<Job>, counts: Arc<Counts>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let batch = std::mem::replace(&mut jobs, Vec::with_capacity(MAX_BATCH));
        let Some(pg) = pg.upgrade() else {
            for job in batch {
                let _ = job
                    .reply
                    .send(Err(backend(std::io::Error::other("the store is closed"))));
            }
            continue;
        };
        write_batch(&pg, batch, &counts).await;
        crate::pool::release(pg);
    }
}

/// Writes `batch` in statements of one write per call, in queue order, and answers
/// every job.
async fn write_batch(pg: &PgStore, mut batch: Vec<Job>, counts: &Counts) {
    // Stable: a call's writes stay in queue order.
    batch.sort_by(|a, b| a.write.call_id.cmp(&b.write.call_id));
    while !batch.is_empty() {
        let (round, later) = first_of_each_call(batch);
        batch = later;
        let answers = write_round(pg, &round, counts).await;
        for (job, answer) in round.into_iter().zip(answers) {
            // A caller that stopped waiting does not need the answer.
            let _ = job.reply.send(answer);
        }
    }
}

/// Splits jobs sorted by call id into the first of each call (still in call id order)
/// and the rest (still sorted). A job whose caller stopped waiting (its deadline ran
/// out, its request went away) is dropped: nobody would learn of its write, and a
/// transition's effects would never run.
fn first_of_each_call(batch: Vec<Job>) -> (Vec<Job>, Vec<Job>) {
    let mut round: Vec<Job> = Vec::with_capacity(batch.len());
    let mut later = Vec::new();
    for job in batch.into_iter().filter(|j| !j.reply.is_closed()) {
        match round.last() {
            Some(prev) if prev.write.call_id == job.write.call_id => later.push(job),
            _ => round.push(job),
        }
    }
    (round, later)
}

/// One statement for `round` (one write per call, in call id order); the answers in
/// its order. A statement the database refuses is written again one write at a time.
/// Each statement runs within the store's deadline ([`PgStore::within`]).
async fn write_round(
    pg: &PgStore,
    round: &[Job],
    counts: &Counts,
) -> Vec<Result<Written, StoreError>> {
    let node = pg.node_id();
    let c = match pg.within(pg.client()).await {
        Ok(c) => c,
        Err(e) => return fan_out(&e, round.len()),
    };
    if round.len() == 1 || counts.unsupported.load(Ordering::Relaxed) {
        return one_at_a_time(pg, &c, node, round).await;
    }
    counts.statements.fetch_add(1, Ordering::Relaxed);
    counts
        .writes
        .fetch_add(round.len() as u64, Ordering::Relaxed);
    let e = match pg
        .within(async { Ok(run_batch(&c, node, round).await) })
        .await
    {
        Ok(Ok(written)) => return written.into_iter().map(Ok).collect(),
        Ok(Err(e)) if refused(&e) => e,
        Ok(Err(e)) => return fan_out(&backend(e), round.len()),
        Err(e) => return fan_out(&e, round.len()),
    };
    // The database refused the statement as a whole: nothing of it was written, and
    // the connection is still good.
    counts.refused.fetch_add(1, Ordering::Relaxed);
    if e.code() == Some(&SqlState::FEATURE_NOT_SUPPORTED) {
        // Said once per process: an engine that lacks the statement lacks it for good.
        counts.unsupported.store(true, Ordering::Relaxed);
        tracing::warn!(error = %e, "the database does not take batched call writes; writing each call alone from now on");
    } else {
        tracing::debug!(error = %e, writes = round.len(), "a batch of call writes was refused; writing them one at a time");
    }
    one_at_a_time(pg, &c, node, round).await
}

/// A refusal of the statement itself, after which its writes may go one at a time:
/// a deadlock with another node's batch, a serialization failure (engines that run
/// SERIALIZABLE), a constraint, or an engine that does not support it. Not a timeout,
/// a shutdown or a lost connection: the writes would meet the same fate again.
fn refused(e: &tokio_postgres::Error) -> bool {
    let Some(code) = e.code() else {
        return false;
    };
    [
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::FEATURE_NOT_SUPPORTED,
    ]
    .contains(code)
        || code.code().starts_with("23")
}

/// The same failure for every write of a round: not known to be written or not (a
/// deadline that ran out, a connection that went away), as it would be alone.
fn fan_out(e: &StoreError, n: usize) -> Vec<Result<Written, StoreError>> {
    tracing::warn!(error = %e, writes = n, "a batch of call writes failed");
    let why = e.to_string();
    (0..n)
        .map(|_| Err(backend(std::io::Error::other(why.clone()))))
        .collect()
}

/// A failure that is not the write's own: no answer from the database (a deadline run
/// out, a connection lost, the pool empty), as opposed to an error it answered for
/// this statement.
fn database_away(e: &StoreError) -> bool {
    match e {
        StoreError::Backend(b) => b
            .downcast_ref::<tokio_postgres::Error>()
            .is_none_or(|e| e.code().is_none()),
        _ => false,
    }
}

/// Each write of `round` in a statement of its own, in order. After a failure that is
/// not the write's own (the database away or stalled), the rest get it too rather
/// than a deadline each.
async fn one_at_a_time(
    pg: &PgStore,
    c: &deadpool_postgres::Object,
    node: &str,
    round: &[Job],
) -> Vec<Result<Written, StoreError>> {
    let mut answers = Vec::with_capacity(round.len());
    for (i, job) in round.iter().enumerate() {
        let answer = pg.within(job.write.run(c, node)).await;
        if let Err(e) = &answer {
            if database_away(e) {
                let rest = fan_out(e, round.len() - i - 1);
                answers.push(answer);
                answers.extend(rest);
                break;
            }
        }
        answers.push(answer);
    }
    answers
}

/// [`BATCH`] for `round`; what each write did, in its order.
async fn run_batch(
    c: &deadpool_postgres::Object,
    node: &str,
    round: &[Job],
) -> Result<Vec<Written>, tokio_postgres::Error> {
    let cols = Columns::of(round);
    let st = c.prepare_cached(BATCH).await?;
    let rows = c.query(&st, &cols.params(&node)).await?;
    let mut written: Vec<Written> = vec![None; round.len()];
    for row in &rows {
        let call_id: &str = row.try_get(0)?;
        let seq: Option<i64> = row.try_get(1)?;
        // `round` is in call id order, one write per call.
        if let Ok(i) = round.binary_search_by(|j| j.write.call_id.as_str().cmp(call_id)) {
            written[i] = Some(seq.map(to_u64));
        }
    }
    Ok(written)
}

/// A round's writes as [`BATCH`]'s arrays (borrowed from the writes).
#[derive(Default)]
struct Columns<'a> {
    call_ids: Vec<&'a str>,
    tenants: Vec<&'a str>,
    created_ms: Vec<i64>,
    versions: Vec<i64>,
    open: Vec<bool>,
    records: Vec<&'a str>,
    prev_versions: Vec<Option<i64>>,
    prev_drivers: Vec<Option<&'a str>>,
    tally: TallyColumns<'a>,
    webhook: WebhookColumns<'a>,
}

#[derive(Default)]
struct TallyColumns<'a> {
    call_ids: Vec<&'a str>,
    tenants: Vec<&'a str>,
    days: Vec<&'a str>,
    trunks: Vec<&'a str>,
    metrics: Vec<&'a str>,
    deltas: Vec<i64>,
}

#[derive(Default)]
struct WebhookColumns<'a> {
    call_ids: Vec<&'a str>,
    seqs: Vec<Option<i64>>,
    webhook_ids: Vec<&'a str>,
    tenants: Vec<&'a str>,
    payloads: Vec<&'a str>,
    created_ms: Vec<i64>,
    attempts: Vec<i64>,
    next_attempt_ms: Vec<i64>,
    states: Vec<&'a str>,
    last_errors: Vec<Option<&'a str>>,
    delivered_ms: Vec<Option<i64>>,
    replayed_ms: Vec<Option<i64>>,
    retry_after: Vec<bool>,
    claim_until: Vec<Option<i64>>,
}

impl<'a> Columns<'a> {
    fn of(round: &'a [Job]) -> Columns<'a> {
        let mut c = Columns::default();
        for w in round.iter().map(|j| &j.write) {
            c.call_ids.push(&w.call_id);
            c.tenants.push(&w.tenant);
            c.created_ms.push(w.created_ms);
            c.versions.push(w.version);
            c.open.push(w.open);
            c.records.push(&w.json);
            c.prev_versions.push(w.condition.as_ref().map(|(v, _)| *v));
            c.prev_drivers
                .push(w.condition.as_ref().map(|(_, d)| d.as_str()));
            let (t, rows) = (&mut c.tally, &w.tallies);
            for i in 0..rows.len() {
                t.call_ids.push(&w.call_id);
                t.tenants.push(&rows.tenants[i]);
                t.days.push(&rows.days[i]);
                t.trunks.push(&rows.trunks[i]);
                t.metrics.push(&rows.metrics[i]);
                t.deltas.push(rows.deltas[i]);
            }
            if let Some(hook) = &w.webhook {
                let (h, e, cols) = (&mut c.webhook, &hook.entry, &hook.columns);
                h.call_ids.push(&w.call_id);
                h.seqs.push(hook.seq);
                h.webhook_ids.push(&e.webhook_id);
                h.tenants.push(&e.tenant);
                h.payloads.push(&e.payload_json);
                h.created_ms.push(cols.created_ms);
                h.attempts.push(cols.attempts);
                h.next_attempt_ms.push(cols.next_attempt_ms);
                h.states.push(cols.state);
                h.last_errors.push(e.last_error.as_deref());
                h.delivered_ms.push(cols.delivered_ms);
                h.replayed_ms.push(cols.replayed_ms);
                h.retry_after.push(e.retry_after);
                h.claim_until.push(hook.claim_until);
            }
        }
        c
    }

    /// [`BATCH`]'s parameters, in order.
    fn params<'p>(&'p self, node: &'p &'p str) -> [&'p (dyn ToSql + Sync); 30] {
        let (t, h) = (&self.tally, &self.webhook);
        [
            node,
            &tallies::SHARDS_PARAM,
            &self.call_ids,
            &self.tenants,
            &self.created_ms,
            &self.versions,
            &self.open,
            &self.records,
            &self.prev_versions,
            &self.prev_drivers,
            &t.call_ids,
            &t.tenants,
            &t.days,
            &t.trunks,
            &t.metrics,
            &t.deltas,
            &h.call_ids,
            &h.seqs,
            &h.webhook_ids,
            &h.tenants,
            &h.payloads,
            &h.created_ms,
            &h.attempts,
            &h.next_attempt_ms,
            &h.states,
            &h.last_errors,
            &h.delivered_ms,
            &h.replayed_ms,
            &h.retry_after,
            &h.claim_until,
        ]
    }
}
