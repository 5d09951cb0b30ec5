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
//! Such a transaction runs `SET LOCAL synchronous_commit TO off`: its commit is visible
//! to every session at once and reaches the disk with the next WAL flush (the WAL
//! writer's, within `wal_writer_delay`, or any durable commit's, which flushes all WAL
//! before its own). An engine that does not know the setting (it is probed once, at
//! open: [`probe`]) commits these durably like everything else.

use std::future::Future;

use deadpool_postgres::Object;
use tokio_postgres::types::ToSql;
use tokio_postgres::Statement;

/// Opens a transaction whose commit does not wait for the WAL flush.
pub(crate) const BEGIN_RELAXED: &str = "BEGIN; SET LOCAL synchronous_commit TO off";
/// Makes the transaction already open commit without waiting for the WAL flush.
pub(crate) const RELAX: &str = "SET LOCAL synchronous_commit TO off";

/// Whether the engine takes [`RELAX`] (PostgreSQL and YugabyteDB do). A refusal leaves
/// the probe's transaction aborted: it is rolled back so the connection goes back to
/// the pool clean.
pub(crate) async fn probe(client: &Object) -> bool {
    match client
        .batch_execute(&format!("{BEGIN_RELAXED}; COMMIT"))
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

/// Runs `st` as its own transaction; with `relaxed`, one whose commit does not wait
/// for the WAL flush. The three messages (open, statement, commit) go out together:
/// one round trip, like the statement alone. A failed statement aborts the transaction,
/// and the `COMMIT` already sent then ends it as a rollback, so the connection is never
/// left inside a transaction.
pub(crate) async fn execute(
    c: &Object,
    relaxed: bool,
    st: &Statement,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, tokio_postgres::Error> {
    if !relaxed {
        return c.execute(st, params).await;
    }
    pipelined(
        c.batch_execute(BEGIN_RELAXED),
        c.execute(st, params),
        c.batch_execute("COMMIT"),
    )
    .await
}

/// [`execute`] of `first`, then `then` (a query) in the same transaction, committed
/// (without waiting for the WAL flush when `relaxed`) or rolled back as one; the four
/// messages go out together. Answers `first`'s rows written and `then`'s rows.
pub(crate) async fn execute_then_query(
    c: &Object,
    relaxed: bool,
    first: (&Statement, &[&(dyn ToSql + Sync)]),
    then: (&Statement, &[&(dyn ToSql + Sync)]),
) -> Result<(u64, Vec<tokio_postgres::Row>), tokio_postgres::Error> {
    let begin = if relaxed { BEGIN_RELAXED } else { "BEGIN" };
    pipelined(
        c.batch_execute(begin),
        async {
            // Both sent on this block's first poll, in order (see `pipelined`).
            let (n, rows) =
                tokio::join!(biased; c.execute(first.0, first.1), c.query(then.0, then.1));
            Ok((n?, rows?))
        },
        c.batch_execute("COMMIT"),
    )
    .await
}

/// Runs the three requests of [`execute`]'s transaction to the end and answers the
/// first error. A request is sent when its future is first polled, and a biased
/// `join!` polls the three in the order given, every one on its first poll, whatever
/// the others answer: BEGIN, the statement, COMMIT. Not `try_join!`: it stops at the
/// first error, also within its first poll, so a refusal that came back before the
/// COMMIT was polled (the task descheduled, the server quick) left the COMMIT unsent
/// and the pooled connection inside an aborted transaction.
async fn pipelined<E, T>(
    begin: impl Future<Output = Result<(), E>>,
    statement: impl Future<Output = Result<T, E>>,
    commit: impl Future<Output = Result<(), E>>,
) -> Result<T, E> {
    let (begin, n, commit) = tokio::join!(biased; begin, statement, commit);
    // A failed BEGIN fails the statement too: it is the cause.
    begin?;
    let n = n?;
    commit?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::pipelined;

    #[tokio::test]
    async fn the_commit_is_sent_when_the_statement_fails_at_once() {
        let commit_sent = AtomicBool::new(false);
        let commit = async {
            commit_sent.store(true, Ordering::SeqCst);
            Ok(())
        };
        let r = pipelined(async { Ok(()) }, async { Err::<u64, _>("refused") }, commit).await;
        assert_eq!(r, Err("refused"));
        assert!(commit_sent.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn the_first_error_is_the_answer() {
        let r = pipelined(
            async { Err("begin") },
            async { Err::<u64, _>("aborted") },
            async { Ok(()) },
        )
        .await;
        assert_eq!(r, Err("begin"));
        let r = pipelined(async { Ok(()) }, async { Ok(3) }, async { Err("commit") }).await;
        assert_eq!(r, Err("commit"));
        let r = pipelined::<&str, u64>(async { Ok(()) }, async { Ok(3) }, async { Ok(()) }).await;
        assert_eq!(r, Ok(3));
    }
}
