//! [`PgCallStore`]: `c2c_callstate::CallStore` on PostgreSQL, shared by a fleet of
//! gateways.
//!
//! Tables (schema [`SCHEMA`], migration 1):
//!
//! ```text
//! c2c_nodes          node_id PK, node_name, lease_until_ms, started_ms
//!                    one row per gateway process; its lease on the calls it drives
//! c2c_calls          call_id PK, tenant, created_ms, version, is_open, driver, record
//!                    record = CallRecord JSON; the other columns index it:
//!                    (tenant, created_ms, call_id)            list_by_tenant, purge
//!                    (call_id) WHERE is_open                  open_calls
//!                    (driver, call_id) WHERE is_open          driven_calls, take-over
//!                    (tenant) WHERE is_open                   fleet_open_counts
//! c2c_tallies        (tenant, day, trunk, shard, metric) PK, n
//!                    per-day counters as signed deltas, spread over SHARDS rows per
//!                    tally (shard = the session's pg_backend_pid()), summed on read
//! c2c_purged_tallies same layout: what purged calls counted for
//! c2c_calls_meta     key PK, value: the tally format ("tally_format")
//! c2c_outbox_seq     SEQUENCE of outbox seqs
//! c2c_outbox         seq PK, call_id UNIQUE (one webhook per call), the entry's fields
//!                    as columns, claimed_by + claim_until_ms (delivery claims)
//!                    (tenant, seq) WHERE pending              due scan (per tenant),
//!                                                             bring_forward, backlog
//!                    (tenant, seq)                            replay scan
//!                    (claim_until_ms) WHERE pending AND claimed
//!                                                             the fleet's live claims
//!                                                             (migration 5)
//! ```
//!
//! Text keys are `COLLATE "C"`: byte order, the order of the sled keys, so pages,
//! cursors and id order agree with the other backends.
//!
//! Every write the trait calls atomic is one transaction (most are one statement: the
//! record, its tally deltas and its outbox entry go in one `WITH` statement; a node's
//! new calls and transitions may share theirs with other calls' writes, `batch.rs`,
//! each still all or nothing and conditional on its own row). A write
//! to a call is conditional on the version and driver it was made from (`transition.rs`:
//! optimistic, with the row lock as the fallback for a hot call), so two writers never
//! both write over one version. A commit is durable when it returns
//! (`synchronous_commit` on), so [`CallStore::wait_durable`] has nothing to wait for;
//! the outbox's delivery claims and attempt progress are the exception, by design
//! (`relaxed.rs`).

mod batch;
mod cache;
mod claims;
mod fleet;
mod handoff;
mod ops;
mod outbox;
mod purge;
mod records;
mod tallies;
mod transition;
mod write;

/// The claim's reads and the batched call write, for the plan checks in `tests/plans.rs`.
#[doc(hidden)]
pub use batch::{WriteBatchCounts, BATCH};
#[doc(hidden)]
pub use claims::{LIVE_CLAIMS, PENDING_TENANTS};
#[doc(hidden)]
pub use handoff::DeliveryCounts;
#[doc(hidden)]
pub use outbox::ATTEMPT_CLAIMING;
pub use transition::OPTIMISTIC_TRIES;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use c2c_callstate::store::{StoreBackup, TransitionFn};
use c2c_callstate::{
    Applied, BackupError, CallPage, CallRecord, CallStore, DayTally, OutboxBacklog, OutboxEntry,
    PurgeCursor, PurgeReport, StoreError,
};
use deadpool_postgres::{Object, Transaction};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

use crate::error::backend;
use crate::PgStore;

/// The tally format this build writes: `c2c_callstate`'s counting rules (its private
/// `AGGREGATES_VERSION`, 5: anchored calls' media). Bump both
/// together; a database whose `c2c_calls_meta.tally_format` differs gets its tallies
/// rebuilt by [`CallStore::ensure_aggregates`].
macro_rules! tally_format {
    () => {
        "5"
    };
}
pub(crate) use tally_format;

/// The calls part of migration 1.
pub(crate) const SCHEMA: &str = concat!(
    r#"
CREATE TABLE c2c_nodes (
    node_id TEXT PRIMARY KEY,
    node_name TEXT NOT NULL,
    lease_until_ms BIGINT NOT NULL,
    started_ms BIGINT NOT NULL
);
CREATE TABLE c2c_calls (
    call_id TEXT COLLATE "C" PRIMARY KEY,
    tenant TEXT COLLATE "C" NOT NULL,
    created_ms BIGINT NOT NULL,
    version BIGINT NOT NULL,
    is_open BOOLEAN NOT NULL,
    driver TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX c2c_calls_tenant_time ON c2c_calls (tenant, created_ms, call_id);
CREATE INDEX c2c_calls_open ON c2c_calls (call_id) WHERE is_open;
CREATE INDEX c2c_calls_driven ON c2c_calls (driver, call_id) WHERE is_open;
CREATE INDEX c2c_calls_open_tenant ON c2c_calls (tenant) WHERE is_open;
CREATE TABLE c2c_tallies (
    tenant TEXT COLLATE "C" NOT NULL,
    day TEXT COLLATE "C" NOT NULL,
    trunk TEXT COLLATE "C" NOT NULL,
    shard SMALLINT NOT NULL,
    metric TEXT COLLATE "C" NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (tenant, day, trunk, shard, metric)
);
CREATE TABLE c2c_purged_tallies (
    tenant TEXT COLLATE "C" NOT NULL,
    day TEXT COLLATE "C" NOT NULL,
    trunk TEXT COLLATE "C" NOT NULL,
    shard SMALLINT NOT NULL,
    metric TEXT COLLATE "C" NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (tenant, day, trunk, shard, metric)
);
CREATE TABLE c2c_calls_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO c2c_calls_meta (key, value) VALUES ('tally_format', '"#,
    tally_format!(),
    r#"');
CREATE SEQUENCE c2c_outbox_seq;
CREATE TABLE c2c_outbox (
    seq BIGINT PRIMARY KEY,
    webhook_id TEXT NOT NULL,
    call_id TEXT COLLATE "C" NOT NULL UNIQUE,
    tenant TEXT COLLATE "C" NOT NULL,
    payload_json TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'disabled')),
    last_error TEXT,
    delivered_ms BIGINT,
    replayed_ms BIGINT,
    retry_after BOOLEAN NOT NULL,
    claimed_by TEXT,
    claim_until_ms BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX c2c_outbox_pending ON c2c_outbox (seq) WHERE state = 'pending';
CREATE INDEX c2c_outbox_tenant_pending ON c2c_outbox (tenant, seq) WHERE state = 'pending';
CREATE INDEX c2c_outbox_tenant ON c2c_outbox (tenant, seq);
CREATE INDEX c2c_outbox_claims ON c2c_outbox (tenant)
    WHERE state = 'pending' AND claimed_by IS NOT NULL;
"#
);

/// Migration 5: two indexes of the outbox that let the planner read the whole pending
/// backlog on every delivery claim (`claims.rs`; BENCHMARKS.md, issue 22).
///
/// - The fleet's live claims, keyed by expiry, replace the claims index keyed by
///   tenant. `claim_until_ms >= now` is this index's own condition, which no other
///   index of the outbox has; keyed by tenant, the index cost the same in the
///   planner's eyes as the pending ones, and it took those (89 buffers a claim at a
///   backlog of ~700).
/// - The pending entries in seq order go: the per-tenant pending index answers
///   everything it did (the backlog, grouped by tenant), and with statistics that say
///   pending entries are few (most are delivered) the planner answered the claim's
///   per-tenant skip scan from it, reading every pending entry and sorting them (721
///   buffers a claim). One index fewer is also one entry fewer written per webhook
///   enqueued and per claim.
pub(crate) const OUTBOX_INDEXES_V5: &str = "
CREATE INDEX IF NOT EXISTS c2c_outbox_live_claims ON c2c_outbox (claim_until_ms)
    WHERE state = 'pending' AND claimed_by IS NOT NULL;
DROP INDEX IF EXISTS c2c_outbox_claims;
DROP INDEX IF EXISTS c2c_outbox_pending;
";

/// The call store of one gateway process on the shared database: `CallStore` plus the
/// operator tools (`scan_records`, `scan_outbox`, `check`) that back `db check`,
/// `db export`, `calls show` and `webhooks replay` on PostgreSQL.
pub struct PgCallStore {
    pg: Arc<PgStore>,
    /// What this node wrote last of the calls it drives (see `cache.rs`).
    cache: cache::WrittenRecords,
    /// New calls and transitions, written in batches (`batch.rs`).
    queue: batch::WriteQueue,
    /// Nodes with a live lease, this one included, as counted at the last renewal
    /// (`fleet.rs`): a node's share of a tenant's delivery slots (`claims.rs`).
    live_nodes: std::sync::atomic::AtomicUsize,
    /// This node's webhook delivery claims, and the entries its writes enqueued
    /// claimed, waiting for its deliverer (`handoff.rs`).
    handoff: handoff::HandOff,
}

impl PgCallStore {
    /// Registers this node in `c2c_nodes` (its lease starts now) and answers the store.
    pub async fn new(pg: Arc<PgStore>) -> Result<PgCallStore, StoreError> {
        let store = PgCallStore {
            queue: batch::WriteQueue::start(&pg),
            pg,
            cache: cache::WrittenRecords::default(),
            live_nodes: std::sync::atomic::AtomicUsize::new(1),
            handoff: handoff::HandOff::default(),
        };
        store.register().await?;
        Ok(store)
    }

    /// Webhooks handed off to this node's deliverer and claim transactions so far
    /// (`handoff.rs`).
    #[doc(hidden)]
    pub fn delivery_counts(&self) -> DeliveryCounts {
        self.handoff.counts()
    }

    /// What the node's write queue batched so far (`batch.rs`).
    #[doc(hidden)]
    pub fn write_batches(&self) -> WriteBatchCounts {
        self.queue.counts()
    }

    /// This node's id (the `driver` of the calls it drives).
    pub fn node_id(&self) -> &str {
        self.pg.node_id()
    }

    pub(crate) async fn client(&self) -> Result<Object, StoreError> {
        self.pg.client().await
    }
}

// ---- small shared helpers ----

/// The store's id rule (the sled key rule): non-empty, at most 128 bytes, no `\0`.
pub(crate) fn check_id(what: &'static str, s: &str) -> Result<(), StoreError> {
    if s.is_empty() || s.len() > 128 || s.as_bytes().contains(&0) {
        return Err(StoreError::InvalidInput { what });
    }
    Ok(())
}

/// A stored integer column: must fit a `BIGINT`.
pub(crate) fn to_i64(v: u64, what: &'static str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::InvalidInput { what })
}

/// A bound in a comparison: saturates (`u64::MAX` means "everything").
pub(crate) fn bound(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored `BIGINT` back as the trait's `u64` (never negative as written).
pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// `d` in whole milliseconds, saturating.
pub(crate) fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn now_ms() -> u64 {
    to_u64(chrono::Utc::now().timestamp_millis())
}

pub(crate) async fn prep(c: &Object, sql: &str) -> Result<Statement, StoreError> {
    c.prepare_cached(sql).await.map_err(backend)
}

pub(crate) async fn query(
    c: &Object,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    let st = prep(c, sql).await?;
    c.query(&st, params).await.map_err(backend)
}

pub(crate) async fn tx_query(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    let st = tx.prepare_cached(sql).await.map_err(backend)?;
    tx.query(&st, params).await.map_err(backend)
}

pub(crate) async fn tx_execute(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, StoreError> {
    let st = tx.prepare_cached(sql).await.map_err(backend)?;
    tx.execute(&st, params).await.map_err(backend)
}

/// Column `i` of a row, or the backend error a type mismatch is.
pub(crate) fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    i: usize,
) -> Result<T, StoreError> {
    row.try_get(i).map_err(backend)
}

pub(crate) fn decode_record(call_id: &str, json: &str) -> Result<CallRecord, StoreError> {
    serde_json::from_str(json).map_err(|source| StoreError::Corrupt {
        key: format!("c2c_calls/{call_id}"),
        source,
    })
}

pub(crate) fn encode_record(rec: &CallRecord) -> Result<String, StoreError> {
    serde_json::to_string(rec).map_err(StoreError::Serialize)
}

/// Runs `fut` to completion from a blocking trait method (`tallies_current`,
/// `ensure_aggregates`): on a `spawn_blocking` thread or a multi-threaded runtime's
/// worker (`block_in_place`). The pool's connections live on the caller's runtime, so
/// there must be one.
pub(crate) fn block_on<F: std::future::Future>(fut: F) -> Result<F::Output, StoreError> {
    let handle = tokio::runtime::Handle::try_current().map_err(backend)?;
    Ok(tokio::task::block_in_place(|| handle.block_on(fut)))
}

#[async_trait]
impl CallStore for PgCallStore {
    async fn create(&self, rec: &CallRecord) -> Result<(), StoreError> {
        self.pg.within(self.create_record(rec)).await
    }

    async fn apply(
        &self,
        prev_version: u64,
        new_record: &CallRecord,
        enqueue_webhook: Option<OutboxEntry>,
    ) -> Result<Option<u64>, StoreError> {
        self.pg
            .within(self.apply_record(prev_version, new_record, enqueue_webhook.as_ref()))
            .await
    }

    async fn apply_transition_boxed(
        &self,
        call_id: &str,
        f: TransitionFn<'_>,
    ) -> Result<Applied, StoreError> {
        self.pg
            .within(self.transition(call_id, f, false))
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn get(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        self.pg.within(self.get_record(call_id)).await
    }

    /// The record this node wrote last (open calls it drives), without a round trip.
    async fn get_recent(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        match self.cache.peek(call_id) {
            Some(rec) => Ok(Some(rec)),
            None => self.get(call_id).await,
        }
    }

    async fn open_calls(&self) -> Result<Vec<CallRecord>, StoreError> {
        self.pg.within(self.open_records(None, None, None)).await
    }

    async fn open_calls_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        self.pg
            .within(self.open_records(None, after, Some(limit)))
            .await
    }

    async fn list_by_tenant(
        &self,
        tenant: &str,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<CallPage, StoreError> {
        self.pg
            .within(self.tenant_page(tenant, from_ms, to_ms, limit, cursor))
            .await
    }

    async fn apply_transition_if_driver_boxed(
        &self,
        call_id: &str,
        f: TransitionFn<'_>,
    ) -> Result<Option<Applied>, StoreError> {
        self.pg.within(self.transition(call_id, f, true)).await
    }

    async fn renew_lease(&self, now_ms: u64) -> Result<u64, StoreError> {
        self.pg.within(self.renew(now_ms)).await
    }

    async fn release_lease(&self) -> Result<(), StoreError> {
        self.pg.within(self.release()).await
    }

    async fn claim_orphaned_calls(
        &self,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        self.pg.within(self.claim_orphans(now_ms, limit)).await
    }

    async fn driven_calls(&self) -> Result<Vec<CallRecord>, StoreError> {
        self.pg
            .within(self.open_records(Some(self.node_id()), None, None))
            .await
    }

    async fn driven_calls_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        self.pg
            .within(self.open_records(Some(self.node_id()), after, Some(limit)))
            .await
    }

    async fn fleet_open_counts(&self) -> Result<Option<BTreeMap<String, u32>>, StoreError> {
        self.pg.within(self.open_counts()).await.map(Some)
    }

    async fn day_tallies(
        &self,
        tenant: &str,
        from_day: &str,
        to_day: &str,
        trunk: Option<&str>,
    ) -> Result<BTreeMap<String, DayTally>, StoreError> {
        self.pg
            .within(self.read_tallies(tenant, from_day, to_day, trunk))
            .await
    }

    fn tallies_current(&self) -> Result<bool, StoreError> {
        block_on(self.tally_format_current())?
    }

    fn ensure_aggregates(&self, progress: &mut dyn FnMut(u64)) -> Result<bool, StoreError> {
        block_on(self.rebuild_tallies_if_stale(progress))?
    }

    async fn next_outbox_seq(&self) -> Result<u64, StoreError> {
        self.pg.within(self.next_seq()).await
    }

    async fn outbox_get(&self, seq: u64) -> Result<Option<OutboxEntry>, StoreError> {
        self.pg.within(self.entry(seq)).await
    }

    async fn outbox_seq_for_call(&self, call_id: &str) -> Result<Option<u64>, StoreError> {
        self.pg.within(self.seq_for_call(call_id)).await
    }

    async fn outbox_enqueue_event(&self, entry: &OutboxEntry) -> Result<Option<u64>, StoreError> {
        self.pg.within(self.enqueue_event(entry)).await
    }

    async fn outbox_due_admitted(
        &self,
        now_ms: u64,
        limit: usize,
        admit: &mut (dyn for<'t> FnMut(u64, &'t str) -> bool + Send),
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        self.pg
            .within(self.claim_due(now_ms, limit, admit))
            .await
            .map(|(due, _)| due)
    }

    async fn outbox_due_held(
        &self,
        now_ms: u64,
        limit: usize,
        admit: &mut (dyn for<'t> FnMut(u64, &'t str) -> bool + Send),
    ) -> Result<(Vec<OutboxEntry>, bool), StoreError> {
        self.pg.within(self.claim_due(now_ms, limit, admit)).await
    }

    async fn outbox_record_progress(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        self.pg.within(self.store_progress(entry, false)).await
    }

    async fn outbox_update(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        self.pg.within(self.store_progress(entry, true)).await
    }

    async fn outbox_record_attempt(&self, attempt: &OutboxEntry) -> Result<(), StoreError> {
        self.pg.within(self.store_attempt(attempt)).await
    }

    async fn outbox_requeue(&self, seq: u64, now_ms: u64) -> Result<OutboxEntry, StoreError> {
        self.pg.within(self.requeue(seq, now_ms)).await
    }

    async fn outbox_bring_forward(
        &self,
        tenant: &str,
        now_ms: u64,
        limit: usize,
        eligible: &mut (dyn FnMut(u64) -> bool + Send),
    ) -> Result<Vec<u64>, StoreError> {
        self.pg
            .within(self.bring_forward(tenant, now_ms, limit, eligible))
            .await
    }

    async fn outbox_backlog(&self) -> Result<OutboxBacklog, StoreError> {
        self.pg.within(self.backlog()).await
    }

    async fn outbox_by_tenant_since_capped(
        &self,
        tenant: &str,
        since_ms: u64,
        max: usize,
    ) -> Result<(Vec<OutboxEntry>, u64), StoreError> {
        self.pg
            .within(self.by_tenant_since(tenant, since_ms, max))
            .await
    }

    async fn purge_ended_before(
        &self,
        cutoff_ms: u64,
        after: Option<&PurgeCursor>,
        max: usize,
    ) -> Result<(PurgeReport, Option<PurgeCursor>), StoreError> {
        self.purge(cutoff_ms, after, max).await
    }

    /// Nothing to wait for: a PostgreSQL commit is durable when it returns
    /// (`synchronous_commit` on, the server's default).
    async fn wait_durable(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.pg
            .within(async {
                let c = self.client().await?;
                c.simple_query("SELECT 1").await.map_err(backend)?;
                Ok(())
            })
            .await
    }

    /// Unsupported: back the database up with PostgreSQL's own tools (`pg_dump`, or base
    /// backups with WAL archiving for point-in-time recovery); they see every node's
    /// writes, which a backup taken through one gateway could not.
    fn begin_backup(&self) -> Result<Box<dyn StoreBackup>, BackupError> {
        Err(BackupError::Unsupported)
    }
}
