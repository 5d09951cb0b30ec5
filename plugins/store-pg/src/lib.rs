//! PostgreSQL backend of the gateway's store traits, for a fleet: several gateways on
//! one shared database, none of them a single point of failure.
//!
//! - [`PgStore`]: the connection pool and this node's identity, opened once (schema
//!   migrations applied under a lock, [`migrate`]); every trait object below shares it;
//! - [`PgCallStore`]: `c2c_callstate::CallStore` (records, indexes, sharded per-day
//!   tallies, the webhook outbox with claims, retention) plus the fleet's ownership of
//!   open calls (node leases, drivers, take-over);
//! - [`PgSeenEvents`], [`PgDltStore`], [`PgAgentStore`], [`PgWalletStore`]: the other
//!   store traits.
//!
//! **SQL dialect.** Only what PostgreSQL, CockroachDB and YugabyteDB all accept: no
//! advisory locks (the migration lock is a leased row), no `LISTEN/NOTIFY` (changes are
//! found by polling a cheap query), no `LOCK TABLE`; `INSERT .. ON CONFLICT`,
//! `FOR UPDATE SKIP LOCKED`, partial indexes and sequences are common to all three.

mod agent_busy;
mod agents;
mod calls;
mod config;
mod dlt;
mod error;
pub mod migrate;
mod pool;
mod relaxed;
mod seen;
mod wallet;
mod wallet_batch;

pub use agents::PgAgentStore;
#[doc(hidden)]
pub use calls::{
    DeliveryCounts, WriteBatchCounts, ATTEMPT_CLAIMING, BATCH, LIVE_CLAIMS, PENDING_TENANTS,
};
pub use calls::{PgCallStore, OPTIMISTIC_TRIES};
pub use config::{PgOptions, DEFAULT_LEASE};
pub use dlt::PgDltStore;
pub use error::{backend, PgError};
pub use pool::{PgStore, PoolStats};
pub use seen::PgSeenEvents;
pub use wallet::PgWalletStore;
