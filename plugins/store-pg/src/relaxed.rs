//! Commits that need not wait for the disk: the webhook outbox's delivery claims and
//! the progress of delivery attempts.
//!
//! Every other write commits durably (`synchronous_commit` on: the commit returns once
//! its WAL is flushed). These two may be forgotten by a database crash without breaking
//! a promise: a lost claim leaves its entry unclaimed, and a lost delivery record leaves
//! it pending, so either way the webhook is sent again with the same `webhook-id`, the
//! outbox's at-least-once promise (`CallStore::outbox_record_progress` says the same
//! of every backend; sled writes that progress without a flush too). Waiting for the
//! flush cost each delivery two fsyncs while it held one of its tenant's few slots,
//! which capped a busy tenant's webhooks per second (BENCHMARKS.md, issue 22).
//!
//! Such a transaction sets `synchronous_commit` off for itself: a claim transaction
//! with `SET LOCAL` ([`RELAX`]), an attempt's one statement with `set_config(.., true)`
//! ([`relaxed_update!`]). Its commit is visible to every session at once and reaches
//! the disk with the next WAL flush (the WAL writer's, within `wal_writer_delay`, or
//! any durable commit's, which flushes all WAL before its own). An engine that does not
//! know the setting (it is probed once, at open: [`probe`]) commits these durably like
//! everything else.

use deadpool_postgres::Object;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

/// Makes the transaction already open commit without waiting for the WAL flush.
pub(crate) const RELAX: &str = "SET LOCAL synchronous_commit TO off";

/// The call that turns `synchronous_commit` off for the rest of the transaction it runs
/// in (`is_local`: true), in a select list; a statement outside a transaction block is
/// its own transaction. [`relaxed_update!`] and the outbox's attempt-and-claim statement
/// append it to their answer.
macro_rules! relax_call {
    () => {
        "set_config('synchronous_commit', 'off', true)"
    };
}
pub(crate) use relax_call;

/// Whether the engine takes [`RELAX`] and its `set_config` form (PostgreSQL and
/// YugabyteDB do). A refusal leaves
/// the probe's transaction aborted: it is rolled back so the connection goes back to
/// the pool clean.
pub(crate) async fn probe(client: &Object) -> bool {
    match client
        .batch_execute(&format!("BEGIN; {RELAX}; SELECT {}; COMMIT", relax_call!()))
        .await
    {
        Ok(()) => true,
        Err(e) => {
            if let Err(rb) = client.batch_execute("ROLLBACK").await {
                tracing::debug!(error = %rb, "rollback after the synchronous_commit probe");
            }
            tracing::info!(
                error = %e,
                "the database does not take SET LOCAL synchronous_commit: webhook claims \
                 and delivery progress commit durably like every other write"
            );
            false
        }
    }
}

/// An `UPDATE` of one outbox entry, in the two forms [`update`] runs: `durable`, and
/// `relaxed` (from [`relaxed_update!`]), for an engine that takes the setting.
pub(crate) struct Relaxable {
    pub durable: &'static str,
    pub relaxed: &'static str,
}

/// `$update` (an `UPDATE` without `RETURNING`) as one statement that answers the rows it
/// wrote (`count`), committed without waiting for the WAL flush.
///
/// Why in the statement: outside a transaction block a statement is its own
/// transaction, and `set_config(.., true)` sets `synchronous_commit` for that
/// transaction only. It commits as the statement ends with the setting in force (the
/// setting is undone after the commit record is written), so the connection goes
/// back to the pool as it was, also when the statement fails. One message instead of
/// three (`BEGIN; SET LOCAL ..`, the statement, `COMMIT`): two fewer simple queries for
/// the database to parse and answer per delivery (BENCHMARKS.md, issue 22). Checked
/// against PostgreSQL 15: five such statements, no WAL sync; five plain ones, five.
macro_rules! relaxed_update {
    ($update:expr) => {
        concat!(
            "WITH w AS (",
            $update,
            " RETURNING 1) SELECT count(*), ",
            $crate::relaxed::relax_call!(),
            " FROM w"
        )
    };
}
pub(crate) use relaxed_update;

/// Runs `sql` as its own transaction (one statement); with `relaxed`, its relaxed form.
/// Answers the rows written.
pub(crate) async fn update(
    c: &Object,
    relaxed: bool,
    sql: &Relaxable,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, tokio_postgres::Error> {
    if !relaxed {
        let st = c.prepare_cached(sql.durable).await?;
        return c.execute(&st, params).await;
    }
    let st = c.prepare_cached(sql.relaxed).await?;
    let n: i64 = c.query_one(&st, params).await?.try_get(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Runs `sql` (a query answering one row) as its own transaction, in its `relaxed` form
/// when asked.
pub(crate) async fn query_one(
    c: &Object,
    relaxed: bool,
    sql: &Relaxable,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Row, tokio_postgres::Error> {
    let st = c
        .prepare_cached(if relaxed { sql.relaxed } else { sql.durable })
        .await?;
    c.query_one(&st, params).await
}
