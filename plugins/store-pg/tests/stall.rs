//! A database that stops answering without closing anything (SIGSTOP: a stalled disk, a
//! paused VM): the server's `statement_timeout` cannot fire, so the store's own deadline
//! must. Every operation fails as "unavailable" within its deadline, and once the
//! server answers again the store serves again without being reopened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use c2c_callstate::store::contract::call;
use c2c_callstate::{CallStore, SeenEvents, StoreError};
use c2c_store_pg::{PgCallStore, PgOptions, PgSeenEvents, PgStore};
use c2c_test_support::pg::PgServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_database_fails_operations_within_the_deadline_and_recovers() {
    let pg = PgServer::start();
    pg.create_database("stall");
    let mut o = PgOptions::new(pg.url("stall"));
    o.statement_timeout = Duration::from_millis(500);
    o.pool_size = 4;
    let shared = PgStore::open(o).await.unwrap();
    let store: Arc<dyn CallStore> = Arc::new(PgCallStore::new(shared.clone()).await.unwrap());
    let seen = PgSeenEvents::new(shared.clone());
    let rec = call("acme", 1_764_000_000_000);
    store.create(&rec).await.unwrap();
    // Warm the pool: these connections are open when the server freezes.
    for _ in 0..4 {
        store.get(&rec.call_id).await.unwrap();
    }

    pg.freeze();
    // Two statement timeouts plus a second: 2 s here.
    let deadline = Duration::from_millis(2_000);
    for what in ["get", "create", "seen"] {
        let t = Instant::now();
        let r = match what {
            "get" => store.get(&rec.call_id).await.map(|_| ()),
            "create" => store.create(&call("acme", 1_764_000_000_001)).await,
            _ => seen.insert("EV_1", 1).await,
        };
        let took = t.elapsed();
        assert!(
            matches!(r, Err(StoreError::Backend(_))),
            "{what} on a frozen database: {r:?}"
        );
        assert!(
            took < deadline + Duration::from_millis(1_500),
            "{what} took {took:?}, past its deadline"
        );
    }
    assert!(store.ping().await.is_err(), "readiness sees the stall");

    pg.thaw();
    // The connections that were open during the stall are dropped, not reused: the next
    // operations open fresh ones and succeed.
    let t = Instant::now();
    loop {
        match store.get(&rec.call_id).await {
            Ok(Some(r)) => {
                assert_eq!(r.call_id, rec.call_id);
                break;
            }
            other => {
                assert!(
                    t.elapsed() < Duration::from_secs(10),
                    "no recovery after thaw: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    store.ping().await.unwrap();
    seen.insert("EV_2", 2).await.unwrap();
    assert!(seen.contains("EV_2").await.unwrap());
}
