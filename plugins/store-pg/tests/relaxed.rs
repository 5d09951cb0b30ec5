#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The outbox's delivery claims and attempt progress commit without waiting for the WAL
//! flush (`src/relaxed.rs`): each in its own transaction that leaves the connection as
//! it found it, also when the statement fails.

use std::sync::Arc;

use c2c_callstate::store::contract::call;
use c2c_callstate::{transition, CallEvent, CallKnobs, CallStore, CallStoreExt};
use c2c_store_pg::{PgCallStore, PgOptions, PgStore};
use c2c_test_support::pg::PgServer;

/// One server for this test binary, database `db`; cases keep apart by schema.
fn server() -> &'static PgServer {
    c2c_test_support::pg::shared()
}

/// One connection in the pool: every operation below runs on the connection the check
/// then inspects.
async fn one_connection(schema: &str) -> (Arc<PgStore>, PgCallStore) {
    let mut o = PgOptions::new(server().url("db"));
    o.schema = Some(schema.to_owned());
    o.pool_size = 1;
    let pg = PgStore::open(o).await.unwrap();
    let calls = PgCallStore::new(pg.clone()).await.unwrap();
    (pg, calls)
}

/// The connection is outside any transaction with the server's commit setting: a
/// transaction left open would show its `SET LOCAL` (or refuse the query, if aborted).
async fn assert_clean(pg: &PgStore) {
    let c = pg.client().await.unwrap();
    let row = c
        .query_one("SELECT current_setting('synchronous_commit')", &[])
        .await
        .expect("the connection is not inside an aborted transaction");
    assert_eq!(row.get::<_, String>(0), "on");
}

/// An ended call's pending webhook entry.
async fn webhook(s: &PgCallStore, t0: u64) -> u64 {
    let rec = call("acme", t0);
    s.create(&rec).await.unwrap();
    for (ev, at) in [
        (CallEvent::Connect, t0 + 1_000),
        (CallEvent::Answered, t0 + 2_000),
        (CallEvent::AgentHangup, t0 + 62_000),
    ] {
        s.apply_transition(&rec.call_id, move |r| {
            transition(r, &ev, &CallKnobs::default(), at)
        })
        .await
        .unwrap();
    }
    s.outbox_seq_for_call(&rec.call_id).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_and_attempts_commit_relaxed_and_leave_the_connection_clean() {
    let (pg, s) = one_connection("relaxed_ok").await;
    assert!(
        pg.relaxed_commits(),
        "PostgreSQL takes SET LOCAL synchronous_commit"
    );
    let seq = webhook(&s, 1_000).await;

    let due = s.outbox_due(u64::MAX / 2, 10).await.unwrap();
    assert_eq!(due.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![seq]);
    assert_clean(&pg).await;
    let claimed = server().psql(
        "db",
        &format!("SELECT claimed_by FROM relaxed_ok.c2c_outbox WHERE seq = {seq}"),
    );
    assert_eq!(claimed, s.node_id(), "the claim committed");

    let mut attempt = due[0].clone();
    attempt.attempts = 1;
    attempt.last_error = Some("http 503".into());
    attempt.next_attempt_ms = 99_000;
    s.outbox_record_attempt(&attempt).await.unwrap();
    assert_clean(&pg).await;
    // Committed (visible to another session at once) and the claim cleared.
    let row = server().psql(
        "db",
        &format!(
            "SELECT attempts, last_error, next_attempt_ms, claimed_by IS NULL \
             FROM relaxed_ok.c2c_outbox WHERE seq = {seq}"
        ),
    );
    assert_eq!(row, "1|http 503|99000|t");

    s.outbox_record_progress(&attempt).await.unwrap();
    assert_clean(&pg).await;
}

/// Refused writes in a row, each followed by the check.
const REFUSALS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_record_rolls_back_and_leaves_the_connection_clean() {
    let (pg, s) = one_connection("relaxed_fail").await;
    let seq = webhook(&s, 1_000).await;
    // The database refuses this one write (a trigger), as it might a write for any
    // reason: the statement fails inside the relaxed transaction.
    server().psql(
        "db",
        "CREATE FUNCTION relaxed_fail.refuse() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.last_error = 'boom' THEN RAISE EXCEPTION 'refused'; END IF; \
         RETURN NEW; END $$; \
         CREATE TRIGGER refuse BEFORE UPDATE ON relaxed_fail.c2c_outbox \
         FOR EACH ROW EXECUTE FUNCTION relaxed_fail.refuse()",
    );
    let mut attempt = s.outbox_get(seq).await.unwrap().unwrap();
    attempt.attempts = 1;
    attempt.last_error = Some("boom".into());
    // Many times: the refusal may come back before the client has sent the COMMIT
    // (its thread descheduled, the server quick), which once left the connection
    // inside the aborted transaction about one time in thirty.
    for _ in 0..REFUSALS {
        let err = s.outbox_record_attempt(&attempt).await.unwrap_err();
        assert!(
            err.to_string().contains("refused") || format!("{err:?}").contains("refused"),
            "{err:?}"
        );
        assert_clean(&pg).await;
    }
    let stored = s.outbox_get(seq).await.unwrap().unwrap();
    assert_eq!(
        (stored.attempts, stored.last_error),
        (0, None),
        "nothing written"
    );

    // The same connection carries the next record as usual.
    attempt.last_error = Some("http 500".into());
    s.outbox_record_attempt(&attempt).await.unwrap();
    assert_eq!(s.outbox_get(seq).await.unwrap().unwrap().attempts, 1);
    assert_clean(&pg).await;
}
