//! [`PgDltStore`]: the owner's DLT overrides and their audit trail
//! (`c2c_dlt::DltStore`) on the shared database, plus the helpers the small stores of
//! this crate share (millisecond columns, transaction retries).
//!
//! **Revision.** `c2c_dlt_revision` is one counter row that every `record` increments
//! in its own transaction, first thing: the row lock orders concurrent records, so the
//! counter grows in commit order and a node that reads revision `r` then reads every
//! override committed with a revision up to `r`. (A sequence would not do: its numbers
//! are handed out at insert, not at commit, so a `MAX(seq)` poll can pass over a slower
//! transaction's smaller number for good.) The audit lines are keyed by that revision,
//! so each tenant's trail is in commit order too. Reading the revision is one
//! primary-key lookup.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use c2c_dlt::{AuditEntry, DltError, DltStore, OutboundOverride};
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;

use crate::PgStore;

/// `c2c_dlt_overrides`: the owner's last decision per tenant; `c2c_dlt_audit`: every
/// decision, keyed by tenant and the revision that recorded it; `c2c_dlt_revision`: the
/// counter row (id 1), created by the first record.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS c2c_dlt_overrides (
    tenant TEXT PRIMARY KEY,
    enabled BOOLEAN NOT NULL,
    verified_by TEXT NOT NULL,
    note TEXT NOT NULL,
    key_id TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    revision BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS c2c_dlt_audit (
    tenant TEXT NOT NULL,
    revision BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    verified_by TEXT NOT NULL,
    key_id TEXT NOT NULL,
    old_enabled BOOLEAN NOT NULL,
    new_enabled BOOLEAN NOT NULL,
    note TEXT NOT NULL,
    PRIMARY KEY (tenant, revision)
);
CREATE TABLE IF NOT EXISTS c2c_dlt_revision (
    id INT PRIMARY KEY,
    revision BIGINT NOT NULL
);
";

/// A Unix-ms time as a `BIGINT` (saturating: no real time comes near `i64::MAX`).
pub(crate) fn db_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// A `BIGINT` time or count back as `u64` (a negative one, which this crate never
/// writes, reads as 0).
pub(crate) fn ms_from_db(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// How many times a transaction is run again after a serialization failure.
pub(crate) const TX_RETRIES: u32 = 5;

/// True for the errors after which running the whole transaction again is right:
/// serialization failures (CockroachDB and YugabyteDB run transactions serializable or
/// snapshot and ask the client to retry) and deadlocks.
pub(crate) fn retryable(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    })
}

/// The pause before retry `attempt` (1-based): a few ms, growing, with jitter so two
/// nodes that collided do not collide again.
pub(crate) fn retry_pause(attempt: u32) -> Duration {
    Duration::from_millis(5 * u64::from(attempt) + rand::random::<u64>() % 10)
}

/// Takes the next value of a counter row (`c2c_*_revision`, id 1) inside `tx`, which then
/// holds the row's lock until it ends.
pub(crate) async fn next_revision(
    tx: &deadpool_postgres::Transaction<'_>,
    table: &str,
) -> Result<i64, tokio_postgres::Error> {
    let stmt = tx
        .prepare_cached(&format!(
            "INSERT INTO {table} (id, revision) VALUES (1, 1)
             ON CONFLICT (id) DO UPDATE SET revision = {table}.revision + 1
             RETURNING revision"
        ))
        .await?;
    Ok(tx.query_one(&stmt, &[]).await?.get(0))
}

/// The current value of a counter row (0 before the first write).
pub(crate) async fn read_revision(
    client: &deadpool_postgres::Object,
    table: &str,
) -> Result<u64, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!("SELECT revision FROM {table} WHERE id = 1"))
        .await?;
    let row = client.query_opt(&stmt, &[]).await?;
    Ok(row.map_or(0, |r| ms_from_db(r.get(0))))
}

const REVISION_TABLE: &str = "c2c_dlt_revision";

fn store_err(e: impl std::error::Error + Send + Sync + 'static) -> DltError {
    DltError::Backend(Box::new(e))
}

/// [`DltStore`] on the shared database.
pub struct PgDltStore {
    pg: Arc<PgStore>,
}

impl PgDltStore {
    pub fn new(pg: Arc<PgStore>) -> Self {
        Self { pg }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, DltError> {
        self.pg.checkout().await.map_err(store_err)
    }
}

const OVERRIDE_COLUMNS: &str = "enabled, verified_by, note, key_id, at_ms";

fn override_of(row: &Row, first: usize) -> OutboundOverride {
    OutboundOverride {
        enabled: row.get(first),
        verified_by: row.get(first + 1),
        note: row.get(first + 2),
        key_id: row.get(first + 3),
        at_ms: ms_from_db(row.get(first + 4)),
    }
}

async fn try_record(
    client: &mut deadpool_postgres::Object,
    tenant_id: &str,
    o: &OutboundOverride,
    entry: &AuditEntry,
) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let revision = next_revision(&tx, REVISION_TABLE).await?;
    let upsert = tx
        .prepare_cached(
            "INSERT INTO c2c_dlt_overrides
                 (tenant, enabled, verified_by, note, key_id, at_ms, revision)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (tenant) DO UPDATE SET
                 enabled = excluded.enabled, verified_by = excluded.verified_by,
                 note = excluded.note, key_id = excluded.key_id,
                 at_ms = excluded.at_ms, revision = excluded.revision",
        )
        .await?;
    tx.execute(
        &upsert,
        &[
            &tenant_id,
            &o.enabled,
            &o.verified_by,
            &o.note,
            &o.key_id,
            &db_ms(o.at_ms),
            &revision,
        ],
    )
    .await?;
    let audit = tx
        .prepare_cached(
            "INSERT INTO c2c_dlt_audit
                 (tenant, revision, at_ms, verified_by, key_id, old_enabled, new_enabled, note)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .await?;
    tx.execute(
        &audit,
        &[
            &tenant_id,
            &revision,
            &db_ms(entry.at_ms),
            &entry.verified_by,
            &entry.key_id,
            &entry.old,
            &entry.new,
            &entry.note,
        ],
    )
    .await?;
    tx.commit().await
}

/// The operations themselves; [`DltStore`] runs each within the store's deadline
/// ([`crate::PgStore::within`]).
impl PgDltStore {
    async fn overrides_now(&self) -> Result<Vec<(String, OutboundOverride)>, DltError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT tenant, {OVERRIDE_COLUMNS} FROM c2c_dlt_overrides ORDER BY tenant"
            ))
            .await
            .map_err(store_err)?;
        let rows = client.query(&stmt, &[]).await.map_err(store_err)?;
        Ok(rows.iter().map(|r| (r.get(0), override_of(r, 1))).collect())
    }

    async fn record_now(
        &self,
        tenant_id: &str,
        o: &OutboundOverride,
        entry: &AuditEntry,
    ) -> Result<(), DltError> {
        let mut client = self.client().await?;
        let mut attempt = 0;
        loop {
            match try_record(&mut client, tenant_id, o, entry).await {
                Err(e) if retryable(&e) && attempt < TX_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(retry_pause(attempt)).await;
                }
                r => return r.map_err(store_err),
            }
        }
    }

    async fn current_now(&self, tenant_id: &str) -> Result<Option<OutboundOverride>, DltError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {OVERRIDE_COLUMNS} FROM c2c_dlt_overrides WHERE tenant = $1"
            ))
            .await
            .map_err(store_err)?;
        let row = client
            .query_opt(&stmt, &[&tenant_id])
            .await
            .map_err(store_err)?;
        Ok(row.map(|r| override_of(&r, 0)))
    }

    async fn audit_now(&self, tenant_id: &str, max: usize) -> Result<Vec<AuditEntry>, DltError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT at_ms, verified_by, key_id, old_enabled, new_enabled, note
                 FROM c2c_dlt_audit WHERE tenant = $1 ORDER BY revision DESC LIMIT $2",
            )
            .await
            .map_err(store_err)?;
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        let rows = client
            .query(&stmt, &[&tenant_id, &limit])
            .await
            .map_err(store_err)?;
        Ok(rows
            .iter()
            .rev()
            .map(|r| AuditEntry {
                at_ms: ms_from_db(r.get(0)),
                verified_by: r.get(1),
                key_id: r.get(2),
                old: r.get(3),
                new: r.get(4),
                note: r.get(5),
            })
            .collect())
    }

    async fn revision_now(&self) -> Result<u64, DltError> {
        let client = self.client().await?;
        read_revision(&client, REVISION_TABLE)
            .await
            .map_err(store_err)
    }
}

#[async_trait]
impl DltStore for PgDltStore {
    async fn overrides(&self) -> Result<Vec<(String, OutboundOverride)>, DltError> {
        self.pg
            .within_or(self.overrides_now(), DltError::Backend)
            .await
    }

    async fn record(
        &self,
        tenant_id: &str,
        o: &OutboundOverride,
        entry: &AuditEntry,
    ) -> Result<(), DltError> {
        self.pg
            .within_or(self.record_now(tenant_id, o, entry), DltError::Backend)
            .await
    }

    async fn current(&self, tenant_id: &str) -> Result<Option<OutboundOverride>, DltError> {
        self.pg
            .within_or(self.current_now(tenant_id), DltError::Backend)
            .await
    }

    async fn audit(&self, tenant_id: &str, max: usize) -> Result<Vec<AuditEntry>, DltError> {
        self.pg
            .within_or(self.audit_now(tenant_id, max), DltError::Backend)
            .await
    }

    async fn revision(&self) -> Result<u64, DltError> {
        self.pg
            .within_or(self.revision_now(), DltError::Backend)
            .await
    }
}
