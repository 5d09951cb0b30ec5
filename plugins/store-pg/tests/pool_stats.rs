#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `PgStore::pool_stats`: what an operator reads to size `store.pool_size` (the gateway
//! exports it as `c2c_store_pool_*`): connections busy and idle, operations waiting,
//! the time checkouts waited, and the checkouts that found no connection in time.

use std::time::Duration;

use c2c_store_pg::{PgOptions, PgStore};
use c2c_test_support::pg::PgServer;

fn server() -> &'static PgServer {
    c2c_test_support::pg::shared()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_one_held_makes_the_next_checkout_wait_then_counts_it_exhausted() {
    let mut o = PgOptions::new(server().url("db"));
    o.schema = Some("pool_stats".to_owned());
    o.pool_size = 1;
    o.statement_timeout = Duration::from_millis(300);
    let pg = PgStore::open(o).await.unwrap();

    let before = pg.pool_stats();
    assert_eq!(before.max_size, 1);
    assert_eq!((before.waiting, before.exhausted), (0, 0));

    let held = pg.client().await.unwrap();
    let busy = pg.pool_stats();
    assert_eq!((busy.open, busy.idle), (1, 0), "{busy:?}");
    assert_eq!(busy.checkouts, before.checkouts + 1);

    // A second operation finds no connection free: it waits, visibly, for the wait
    // timeout (the statement timeout), then fails.
    let pg2 = pg.clone();
    let second = tokio::spawn(async move { pg2.client().await.map(|_| ()) });
    let mut saw_waiting = false;
    for _ in 0..20 {
        if pg.pool_stats().waiting == 1 {
            saw_waiting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        saw_waiting,
        "the waiting checkout shows: {:?}",
        pg.pool_stats()
    );
    assert!(
        second.await.unwrap().is_err(),
        "no connection within the timeout"
    );

    let after = pg.pool_stats();
    assert_eq!(after.exhausted, 1, "{after:?}");
    assert_eq!(after.checkouts, before.checkouts + 2);
    assert_eq!(after.waiting, 0);
    let waited = Duration::from_nanos(after.wait_ns - busy.wait_ns);
    assert!(
        waited >= Duration::from_millis(290),
        "the failed checkout waited the timeout: {waited:?}"
    );

    // Given back, the connection is idle and the next checkout takes it at once.
    drop(held);
    let idle = pg.pool_stats();
    assert_eq!((idle.open, idle.idle), (1, 1), "{idle:?}");
    let again = pg.client().await.unwrap();
    drop(again);
    assert_eq!(
        pg.pool_stats().exhausted,
        1,
        "a checkout that got one is not counted"
    );
}
