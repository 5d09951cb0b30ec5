//! [`PgSeenEvents`]: the de-duplication set of LiveKit webhook ids
//! (`c2c_callstate::SeenEvents`) in one table shared by the fleet, so a webhook LiveKit
//! retries against another node is still answered `duplicate`.
//!
//! One row per id. Recording is one `INSERT .. ON CONFLICT DO UPDATE`: two nodes
//! recording the same id at once both succeed and leave one row. Pruning deletes in
//! bounded batches so no single statement holds a huge transaction (CockroachDB limits
//! their size).

use std::sync::Arc;

use async_trait::async_trait;
use c2c_callstate::{SeenEvents, StoreError};

use crate::dlt::db_ms;
use crate::error::backend;
use crate::PgStore;

/// `c2c_livekit_seen`: event id -> when it was recorded (Unix ms); the index on the time
/// serves pruning.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS c2c_livekit_seen (
    event_id TEXT PRIMARY KEY,
    at_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS c2c_livekit_seen_at ON c2c_livekit_seen (at_ms);
";

/// Rows one prune statement deletes at most.
const PRUNE_BATCH: u64 = 5_000;

/// [`SeenEvents`] on the shared database.
pub struct PgSeenEvents {
    pg: Arc<PgStore>,
}

impl PgSeenEvents {
    pub fn new(pg: Arc<PgStore>) -> Self {
        Self { pg }
    }
}

/// The operations themselves; [`SeenEvents`] runs each within the store's deadline
/// ([`crate::PgStore::within`]).
impl PgSeenEvents {
    async fn contains_now(&self, event_id: &str) -> Result<bool, StoreError> {
        let client = self.pg.client().await?;
        let stmt = client
            .prepare_cached("SELECT 1 FROM c2c_livekit_seen WHERE event_id = $1")
            .await
            .map_err(backend)?;
        let row = client
            .query_opt(&stmt, &[&event_id])
            .await
            .map_err(backend)?;
        Ok(row.is_some())
    }

    async fn insert_now(&self, event_id: &str, at_ms: u64) -> Result<(), StoreError> {
        let client = self.pg.client().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO c2c_livekit_seen (event_id, at_ms) VALUES ($1, $2)
                 ON CONFLICT (event_id) DO UPDATE SET at_ms = excluded.at_ms",
            )
            .await
            .map_err(backend)?;
        client
            .execute(&stmt, &[&event_id, &db_ms(at_ms)])
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn prune_before_now(&self, cutoff_ms: u64) -> Result<u64, StoreError> {
        let client = self.pg.client().await?;
        let stmt = client
            .prepare_cached(
                "DELETE FROM c2c_livekit_seen WHERE event_id IN (
                     SELECT event_id FROM c2c_livekit_seen WHERE at_ms < $1 LIMIT $2)",
            )
            .await
            .map_err(backend)?;
        let cutoff = db_ms(cutoff_ms);
        let limit = PRUNE_BATCH as i64;
        let mut pruned = 0;
        loop {
            let n = client
                .execute(&stmt, &[&cutoff, &limit])
                .await
                .map_err(backend)?;
            pruned += n;
            if n < PRUNE_BATCH {
                return Ok(pruned);
            }
        }
    }
}

#[async_trait]
impl SeenEvents for PgSeenEvents {
    async fn contains(&self, event_id: &str) -> Result<bool, StoreError> {
        self.pg
            .within_or(self.contains_now(event_id), StoreError::Backend)
            .await
    }

    async fn insert(&self, event_id: &str, at_ms: u64) -> Result<(), StoreError> {
        self.pg
            .within_or(self.insert_now(event_id, at_ms), StoreError::Backend)
            .await
    }

    async fn prune_before(&self, cutoff_ms: u64) -> Result<u64, StoreError> {
        self.pg
            .within_or(self.prune_before_now(cutoff_ms), StoreError::Backend)
            .await
    }
}
