//! The CRM-webhook outbox, with delivery claims for a fleet.
//!
//! Every node runs a deliverer over the one outbox; how it claims entries, and how the
//! fleet holds a tenant's delivery concurrency, is `claims.rs`. Progress clears the
//! claim.

use c2c_callstate::{OutboxBacklog, OutboxEntry, OutboxState, StoreError};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::{bound, check_id, col, prep, query, to_i64, to_u64, tx_execute, tx_query, PgCallStore};
use crate::error::backend;
use crate::relaxed::{self, relax_call, relaxed_update, Relaxable};

/// The entry's columns, in [`entry_of`]'s order.
macro_rules! cols {
    () => {
        "seq, webhook_id, call_id, tenant, payload_json, created_ms, attempts, \
         next_attempt_ms, state, last_error, delivered_ms, replayed_ms, retry_after"
    };
}
pub(super) use cols;

const GET: &str = concat!("SELECT ", cols!(), " FROM c2c_outbox WHERE seq = $1");
const GET_LOCKED: &str = concat!(
    "SELECT ",
    cols!(),
    " FROM c2c_outbox WHERE seq = $1 FOR UPDATE"
);
const SEQ_OF_CALL: &str = "SELECT seq FROM c2c_outbox WHERE call_id = $1";
const NEXT_SEQ: &str = "SELECT nextval('c2c_outbox_seq')";
/// A tenant event's entry, unless one with its id (`call_id`) exists on any node.
const ENQUEUE_EVENT: &str = "INSERT INTO c2c_outbox (seq, webhook_id, call_id, tenant,
    payload_json, created_ms, attempts, next_attempt_ms, state, retry_after)
    VALUES (nextval('c2c_outbox_seq'), $1, $2, $3, $4, $5, 0, $5, 'pending', false)
    ON CONFLICT (call_id) DO NOTHING
    RETURNING seq";

/// A delivery attempt's outcome over the stored entry; clears the claim.
macro_rules! progress {
    () => {
        "UPDATE c2c_outbox SET webhook_id = $2, tenant = $3, payload_json = $4,
    created_ms = $5, attempts = $6, next_attempt_ms = $7, state = $8, last_error = $9,
    delivered_ms = $10, replayed_ms = $11, retry_after = $12,
    claimed_by = NULL, claim_until_ms = 0
    WHERE seq = $1"
    };
}
const PROGRESS: &str = progress!();

/// [`PROGRESS`], in its two forms (`relaxed.rs`).
const PROGRESS_FORMS: Relaxable = Relaxable {
    durable: PROGRESS,
    relaxed: relaxed_update!(progress!()),
};

/// What a delivery attempt changed (`OutboxEntry::take_progress`'s fields) onto the
/// stored entry; clears the claim.
macro_rules! attempt {
    () => {
        "UPDATE c2c_outbox SET attempts = $2, next_attempt_ms = $3, state = $4,
    last_error = $5, delivered_ms = $6, retry_after = $7,
    claimed_by = NULL, claim_until_ms = 0
    WHERE seq = $1"
    };
}

/// [`attempt!`], in its two forms (`relaxed.rs`).
const ATTEMPT: Relaxable = Relaxable {
    durable: attempt!(),
    relaxed: relaxed_update!(attempt!()),
};

/// [`attempt!`] and, in the same statement, the claim of the entry `$10` for `$8`
/// until `$9` if it is still pending, due at `$11` and no node's live claim
/// (`handoff.rs`: the tenant's first entry waiting for one of this node's slots, which
/// the attempt frees). Answers the rows the attempt wrote and the seq claimed (NULL:
/// none). One statement, so both commit or neither does.
macro_rules! attempt_claiming {
    ($relax:expr) => {
        concat!(
            "WITH a AS (",
            attempt!(),
            " RETURNING 1), c AS (UPDATE c2c_outbox SET claimed_by = $8, claim_until_ms = $9
    WHERE seq = $10 AND state = 'pending' AND next_attempt_ms <= $11
      AND (claimed_by IS NULL OR claim_until_ms < $11)
    RETURNING seq)
SELECT (SELECT count(*) FROM a), (SELECT seq FROM c)",
            $relax
        )
    };
}

/// [`attempt_claiming!`], durable (`tests/plans.rs` checks its plan).
pub const ATTEMPT_CLAIMING: &str = attempt_claiming!("");

/// [`ATTEMPT_CLAIMING`], in its two forms (`relaxed.rs`).
const ATTEMPT_CLAIMING_FORMS: Relaxable = Relaxable {
    durable: ATTEMPT_CLAIMING,
    relaxed: attempt_claiming!(concat!(", ", relax_call!())),
};

const BACKOFFS: &str = "SELECT seq FROM c2c_outbox
    WHERE state = 'pending' AND tenant = $1 AND next_attempt_ms > $2 AND NOT retry_after
      AND seq > $3
    ORDER BY seq LIMIT $4
    FOR UPDATE SKIP LOCKED";
const BRING_FORWARD: &str = "UPDATE c2c_outbox SET next_attempt_ms = $1 WHERE seq = ANY($2)";

const BACKLOG: &str = "SELECT tenant, count(*), min(created_ms) FROM c2c_outbox
    WHERE state = 'pending' GROUP BY tenant";

const BY_TENANT: &str = concat!(
    "SELECT ",
    cols!(),
    " FROM c2c_outbox WHERE tenant = $1 AND created_ms >= $2 ORDER BY seq LIMIT $3"
);
const COUNT_BY_TENANT: &str =
    "SELECT count(*) FROM c2c_outbox WHERE tenant = $1 AND created_ms >= $2";

/// Rows a claim reads per statement, at least.
const MIN_CHUNK: usize = 32;

pub(super) fn state_str(s: OutboxState) -> &'static str {
    match s {
        OutboxState::Pending => "pending",
        OutboxState::Delivered => "delivered",
        OutboxState::Failed => "failed",
        OutboxState::Disabled => "disabled",
    }
}

fn state_of(s: &str) -> Result<OutboxState, StoreError> {
    Ok(match s {
        "pending" => OutboxState::Pending,
        "delivered" => OutboxState::Delivered,
        "failed" => OutboxState::Failed,
        "disabled" => OutboxState::Disabled,
        other => {
            return Err(backend(std::io::Error::other(format!(
                "outbox state {other:?} unknown to this build"
            ))))
        }
    })
}

/// An entry's integer and state columns as stored.
pub(super) struct Columns {
    pub created_ms: i64,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub state: &'static str,
    pub delivered_ms: Option<i64>,
    pub replayed_ms: Option<i64>,
}

impl Columns {
    pub(super) fn of(e: &OutboxEntry) -> Result<Columns, StoreError> {
        Ok(Columns {
            created_ms: to_i64(e.created_ms, "outbox created_ms")?,
            attempts: i64::from(e.attempts),
            next_attempt_ms: to_i64(e.next_attempt_ms, "outbox next_attempt_ms")?,
            state: state_str(e.state),
            delivered_ms: e
                .delivered_ms
                .map(|v| to_i64(v, "outbox delivered_ms"))
                .transpose()?,
            replayed_ms: e
                .replayed_ms
                .map(|v| to_i64(v, "outbox replayed_ms"))
                .transpose()?,
        })
    }
}

/// An entry from a row that starts with [`cols!`].
pub(super) fn entry_of(r: &Row) -> Result<OutboxEntry, StoreError> {
    Ok(OutboxEntry {
        seq: to_u64(col(r, 0)?),
        webhook_id: col(r, 1)?,
        call_id: col(r, 2)?,
        tenant: col(r, 3)?,
        payload_json: col(r, 4)?,
        created_ms: to_u64(col(r, 5)?),
        attempts: u32::try_from(col::<i64>(r, 6)?).unwrap_or(u32::MAX),
        next_attempt_ms: to_u64(col(r, 7)?),
        state: state_of(&col::<String>(r, 8)?)?,
        last_error: col(r, 9)?,
        delivered_ms: col::<Option<i64>>(r, 10)?.map(to_u64),
        replayed_ms: col::<Option<i64>>(r, 11)?.map(to_u64),
        retry_after: col(r, 12)?,
    })
}

impl PgCallStore {
    pub(super) async fn next_seq(&self) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let rows = query(&c, NEXT_SEQ, &[]).await?;
        let seq: i64 = rows.first().map(|r| col(r, 0)).transpose()?.unwrap_or(0);
        Ok(to_u64(seq))
    }

    /// See `CallStore::outbox_enqueue_event`.
    pub(super) async fn enqueue_event(&self, e: &OutboxEntry) -> Result<Option<u64>, StoreError> {
        if !e.is_event() {
            return Err(StoreError::InvalidInput { what: "event id" });
        }
        let c = self.client().await?;
        let created = to_i64(e.created_ms, "created_ms")?;
        let rows = query(
            &c,
            ENQUEUE_EVENT,
            &[
                &e.webhook_id,
                &e.call_id,
                &e.tenant,
                &e.payload_json,
                &created,
            ],
        )
        .await?;
        let seq = rows
            .first()
            .map(|r| col::<i64>(r, 0).map(to_u64))
            .transpose()?;
        if seq.is_some() {
            // Enqueued unclaimed: only a claim transaction hands it out.
            self.handoff.read_database_next();
        }
        Ok(seq)
    }

    pub(super) async fn entry(&self, seq: u64) -> Result<Option<OutboxEntry>, StoreError> {
        let Ok(seq) = i64::try_from(seq) else {
            return Ok(None);
        };
        let c = self.client().await?;
        query(&c, GET, &[&seq])
            .await?
            .first()
            .map(entry_of)
            .transpose()
    }

    pub(super) async fn seq_for_call(&self, call_id: &str) -> Result<Option<u64>, StoreError> {
        check_id("call_id", call_id)?;
        let c = self.client().await?;
        let rows = query(&c, SEQ_OF_CALL, &[&call_id]).await?;
        Ok(rows
            .first()
            .map(|r| col::<i64>(r, 0))
            .transpose()?
            .map(to_u64))
    }

    /// Stores the entry as given (like the other backends) and clears its claim;
    /// `durable`: the commit waits for the WAL flush (`relaxed.rs` for why progress need
    /// not).
    pub(super) async fn store_progress(
        &self,
        e: &OutboxEntry,
        durable: bool,
    ) -> Result<(), StoreError> {
        let Ok(seq) = i64::try_from(e.seq) else {
            return Err(StoreError::OutboxNotFound(e.seq));
        };
        let w = Columns::of(e)?;
        let relaxed = !durable && self.pg.relaxed_commits();
        self.write_entry(
            e.seq,
            &PROGRESS_FORMS,
            relaxed,
            &progress_params(&seq, e, &w),
        )
        .await?;
        // The write cleared the claim.
        self.handoff.settled(&e.tenant, e.seq);
        self.retry_noted(e);
        Ok(())
    }

    /// See `CallStore::outbox_record_attempt`: one statement, no read; the commit does
    /// not wait for the WAL flush. The slot it frees takes the tenant's first entry
    /// waiting for one, in the same transaction (`handoff.rs`).
    pub(super) async fn store_attempt(&self, a: &OutboxEntry) -> Result<(), StoreError> {
        let Ok(seq) = i64::try_from(a.seq) else {
            return Err(StoreError::OutboxNotFound(a.seq));
        };
        let w = Columns::of(a)?;
        let params: [&(dyn ToSql + Sync); 7] = [
            &seq,
            &w.attempts,
            &w.next_attempt_ms,
            &w.state,
            &a.last_error,
            &w.delivered_ms,
            &a.retry_after,
        ];
        let Some(next) = self.handoff.next_waiting(&a.tenant, a.seq) else {
            self.write_entry(a.seq, &ATTEMPT, self.pg.relaxed_commits(), &params)
                .await?;
            // The write cleared the claim.
            self.handoff.settled(&a.tenant, a.seq);
            self.retry_noted(a);
            return Ok(());
        };
        let now = super::now_ms();
        let until = now.saturating_add(self.claim_ms());
        let (me, until_i, next_seq, now_i) =
            (self.node_id(), bound(until), bound(next.seq), bound(now));
        let [p1, p2, p3, p4, p5, p6, p7] = params;
        let both: [&(dyn ToSql + Sync); 11] =
            [p1, p2, p3, p4, p5, p6, p7, &me, &until_i, &next_seq, &now_i];
        let c = self.client().await?;
        // On failure neither is written: the waiting entry stays unclaimed, for any claim.
        let row = relaxed::query_one(
            &c,
            self.pg.relaxed_commits(),
            &ATTEMPT_CLAIMING_FORMS,
            &both,
        )
        .await
        .map_err(backend)?;
        let n: i64 = col(&row, 0)?;
        let claimed: Option<i64> = col(&row, 1)?;
        self.handoff.settled(&a.tenant, a.seq);
        if claimed.is_some() {
            self.handoff.took_next(next, until);
        }
        if n == 0 {
            return Err(StoreError::OutboxNotFound(a.seq));
        }
        self.retry_noted(a);
        Ok(())
    }

    /// An entry stored pending is due again (a retry, or one put back as it was): the
    /// node's poll then reads the database (`handoff.rs`).
    fn retry_noted(&self, e: &OutboxEntry) {
        if e.state == OutboxState::Pending {
            self.handoff.retry_at(e.next_attempt_ms);
        }
    }

    /// One write to the existing entry `seq` (`relaxed`: see `relaxed.rs`). Never
    /// resurrects or invents entries: only a call's end creates them.
    async fn write_entry(
        &self,
        seq: u64,
        sql: &Relaxable,
        relaxed: bool,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<(), StoreError> {
        let c = self.client().await?;
        let n = relaxed::update(&c, relaxed, sql, params)
            .await
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::OutboxNotFound(seq));
        }
        Ok(())
    }

    pub(super) async fn requeue(&self, seq: u64, now_ms: u64) -> Result<OutboxEntry, StoreError> {
        let Ok(seq_i) = i64::try_from(seq) else {
            return Err(StoreError::OutboxNotFound(seq));
        };
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(backend)?;
        let rows = tx_query(&tx, GET_LOCKED, &[&seq_i]).await?;
        let mut e = rows
            .first()
            .map(entry_of)
            .transpose()?
            .ok_or(StoreError::OutboxNotFound(seq))?;
        e.requeue(now_ms);
        let w = Columns::of(&e)?;
        tx_execute(&tx, PROGRESS, &progress_params(&seq_i, &e, &w)).await?;
        tx.commit().await.map_err(backend)?;
        self.handoff.settled(&e.tenant, seq);
        self.handoff.read_database_next();
        Ok(e)
    }

    pub(super) async fn bring_forward(
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
        let now = to_i64(now_ms, "now_ms")?;
        let chunk = limit.max(MIN_CHUNK);
        let chunk_i = bound(chunk as u64);
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(backend)?;
        let mut after = i64::MIN;
        'chunks: loop {
            let rows = tx_query(&tx, BACKOFFS, &[&tenant, &now, &after, &chunk_i]).await?;
            for r in &rows {
                after = col(r, 0)?;
                let seq = to_u64(after);
                if !eligible(seq) {
                    continue;
                }
                moved.push(seq);
                if moved.len() >= limit {
                    break 'chunks;
                }
            }
            if rows.len() < chunk {
                break;
            }
        }
        if !moved.is_empty() {
            let seqs: Vec<i64> = moved.iter().map(|s| bound(*s)).collect();
            tx_execute(&tx, BRING_FORWARD, &[&now, &seqs]).await?;
        }
        tx.commit().await.map_err(backend)?;
        if !moved.is_empty() {
            self.handoff.read_database_next();
        }
        Ok(moved)
    }

    pub(super) async fn backlog(&self) -> Result<OutboxBacklog, StoreError> {
        let c = self.client().await?;
        let mut b = OutboxBacklog::default();
        for r in query(&c, BACKLOG, &[]).await? {
            let (tenant, n, oldest): (String, i64, i64) = (col(&r, 0)?, col(&r, 1)?, col(&r, 2)?);
            let oldest = to_u64(oldest);
            b.pending += to_u64(n);
            b.oldest_created_ms = Some(b.oldest_created_ms.map_or(oldest, |o| o.min(oldest)));
            b.oldest_by_tenant.insert(tenant, oldest);
        }
        Ok(b)
    }

    pub(super) async fn by_tenant_since(
        &self,
        tenant: &str,
        since_ms: u64,
        max: usize,
    ) -> Result<(Vec<OutboxEntry>, u64), StoreError> {
        let since = bound(since_ms);
        let max = bound(max as u64);
        let c = self.client().await?;
        let (page, count) = (prep(&c, BY_TENANT).await?, prep(&c, COUNT_BY_TENANT).await?);
        // Both in one round trip (the connection pipelines them).
        let (page_params, count_params): ([&(dyn ToSql + Sync); 3], [&(dyn ToSql + Sync); 2]) =
            ([&tenant, &since, &max], [&tenant, &since]);
        let (rows, total) = tokio::try_join!(
            c.query(&page, &page_params),
            c.query_one(&count, &count_params),
        )
        .map_err(backend)?;
        let entries = rows.iter().map(entry_of).collect::<Result<Vec<_>, _>>()?;
        Ok((entries, to_u64(col(&total, 0)?)))
    }
}

/// `PROGRESS`'s parameters: the entry's every field, by seq.
fn progress_params<'a>(
    seq: &'a i64,
    e: &'a OutboxEntry,
    w: &'a Columns,
) -> [&'a (dyn ToSql + Sync); 12] {
    [
        seq,
        &e.webhook_id,
        &e.tenant,
        &e.payload_json,
        &w.created_ms,
        &w.attempts,
        &w.next_attempt_ms,
        &w.state,
        &e.last_error,
        &w.delivered_ms,
        &w.replayed_ms,
        &e.retry_after,
    ]
}
