#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `CallStore` contract suite on [`PgCallStore`], against a real PostgreSQL: one
//! server for this test binary (its watchdog stops it when the process exits), one
//! database, and a fresh schema per case.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use c2c_callstate::store::contract::Fixture;
use c2c_store_pg::{PgCallStore, PgOptions, PgStore};
use c2c_test_support::pg::PgServer;

/// One server for this test binary, database `db`; cases keep apart by schema.
fn server() -> &'static PgServer {
    c2c_test_support::pg::shared()
}

async fn open() -> Fixture {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let pg = server();
    let mut opts = PgOptions::new(pg.url("db"));
    opts.schema = Some(format!("contract_{}", NEXT.fetch_add(1, Ordering::Relaxed)));
    opts.pool_size = 8;
    let store = PgStore::open(opts)
        .await
        .expect("open the PostgreSQL store");
    let calls = PgCallStore::new(store).await.expect("register the node");
    (Box::new(()), Arc::new(calls))
}

/// The macro evaluates the fixture inside each case's multi-threaded tokio runtime:
/// the pool's connections must live on that runtime, so open it there.
fn fixture() -> Fixture {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(open()))
}

c2c_callstate::call_store_contract!(postgres, fixture());
