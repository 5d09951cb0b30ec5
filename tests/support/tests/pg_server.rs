#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The PostgreSQL harness itself: starts, answers, restarts on the same port, and
//! leaves nothing behind.

use c2c_test_support::pg::PgServer;

#[test]
fn starts_answers_restarts_and_cleans_up() {
    let mut pg = PgServer::start();
    let db = pg.create_database("harness");
    assert_eq!(pg.psql(&db, "SELECT 1 + 1"), "2");
    pg.psql(&db, "CREATE TABLE t (x INT); INSERT INTO t VALUES (7)");
    pg.stop();
    pg.run();
    assert_eq!(
        pg.psql(&db, "SELECT x FROM t"),
        "7",
        "data survives a restart"
    );
    drop(pg);
}
