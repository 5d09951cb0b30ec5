//! Versioned schema migrations, applied at start under a lock so that two nodes starting
//! together never both apply one.
//!
//! The lock is a leased row (`c2c_schema_lock`), not an advisory lock: CockroachDB has
//! none. A node takes it with a conditional upsert that only succeeds when the row is
//! free or its lease ran out (a node that died mid-migration frees it after
//! [`LOCK_LEASE_MS`]); every migration runs in its own transaction together with the row
//! that records it in `c2c_schema_version`, so a migration is applied entirely or not at
//! all, exactly once.

use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::error::PgError;

/// One schema step. Never edit a released one: add the next.
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    /// Statements, run in order in one transaction.
    pub sql: &'static [&'static str],
}

/// Every migration, in version order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "calls, outbox, tallies, fleet nodes, LiveKit webhook ids, DLT, agents",
        sql: &[
            crate::calls::SCHEMA,
            crate::seen::SCHEMA,
            crate::dlt::SCHEMA,
            crate::agents::SCHEMA,
        ],
    },
    Migration {
        version: 2,
        name: "managed tenants' wallets: balances and the ledger",
        sql: &[crate::wallet::SCHEMA],
    },
    Migration {
        version: 3,
        name: "wallet holds of calls in progress",
        sql: &[crate::wallet::HOLDS_SCHEMA],
    },
    Migration {
        version: 4,
        name: "the call each agent is on, fleet-wide",
        sql: &[crate::agent_busy::SCHEMA],
    },
    Migration {
        version: 5,
        name: "the outbox's live delivery claims indexed by expiry, no seq-ordered pending index",
        sql: &[crate::calls::OUTBOX_INDEXES_V5],
    },
];

/// The schema version this build knows.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// A lock holder that stops renewing loses it after this long.
pub const LOCK_LEASE_MS: i64 = 60_000;
/// Longest a node waits for another node's migration before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(120);

const BOOTSTRAP: &str = "
CREATE TABLE IF NOT EXISTS c2c_schema_version (
    version INT PRIMARY KEY,
    name TEXT NOT NULL,
    applied_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS c2c_schema_lock (
    id INT PRIMARY KEY,
    holder TEXT NOT NULL,
    until_ms BIGINT NOT NULL
);";

/// True for the errors PostgreSQL gives when two sessions create the same object at
/// once (`IF NOT EXISTS` is not race-free there): the object exists now.
pub fn is_creation_race(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        *c == SqlState::UNIQUE_VIOLATION
            || *c == SqlState::DUPLICATE_TABLE
            || *c == SqlState::DUPLICATE_OBJECT
            || *c == SqlState::DUPLICATE_SCHEMA
    })
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The database's schema version (0: empty).
pub async fn current(client: &Client) -> Result<i32, PgError> {
    let row = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM c2c_schema_version",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Brings the schema to [`latest`]; `holder` names this node in the lock row.
pub async fn run(client: &mut Client, holder: &str) -> Result<(), PgError> {
    for attempt in 0.. {
        match client.batch_execute(BOOTSTRAP).await {
            Ok(()) => break,
            Err(e) if is_creation_race(&e) && attempt < 5 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let found = current(client).await?;
    if found > latest() {
        return Err(PgError::SchemaTooNew {
            found,
            known: latest(),
        });
    }
    if found == latest() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    loop {
        let now = now_ms();
        let took = client
            .execute(
                "INSERT INTO c2c_schema_lock (id, holder, until_ms) VALUES (1, $1, $2)
                 ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms
                 WHERE c2c_schema_lock.until_ms < $3",
                &[&holder, &(now + LOCK_LEASE_MS), &now],
            )
            .await?;
        if took == 1 {
            break;
        }
        if started.elapsed() > LOCK_WAIT {
            let row = client
                .query_opt("SELECT holder FROM c2c_schema_lock WHERE id = 1", &[])
                .await?;
            return Err(PgError::MigrationLock {
                holder: row.map(|r| r.get(0)).unwrap_or_default(),
                waited_s: LOCK_WAIT.as_secs(),
            });
        }
        // Another node migrates: when it is done there is nothing left for us.
        if current(client).await? == latest() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let result = apply_pending(client).await;
    // Released whatever happened; a failed release only delays the next node by the lease.
    if let Err(e) = client
        .execute(
            "DELETE FROM c2c_schema_lock WHERE id = 1 AND holder = $1",
            &[&holder],
        )
        .await
    {
        tracing::warn!(error = %e, "could not release the schema migration lock");
    }
    result
}

async fn apply_pending(client: &mut Client) -> Result<(), PgError> {
    let found = current(client).await?;
    for m in MIGRATIONS.iter().filter(|m| m.version > found) {
        let tx = client.transaction().await?;
        for sql in m.sql {
            tx.batch_execute(sql).await?;
        }
        tx.execute(
            "INSERT INTO c2c_schema_version (version, name, applied_ms) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &now_ms()],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "database schema migrated"
        );
    }
    Ok(())
}
