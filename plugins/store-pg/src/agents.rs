//! [`PgAgentStore`]: the agent registry, its audit trail and the presence-token secret
//! (`c2c_agents::AgentStore`) on the shared database.
//!
//! Every registry write is one transaction that first increments the counter row
//! `c2c_agent_revision` (the lock it takes orders concurrent writes, so the revision
//! grows in commit order; see [`crate::dlt`] for why not a sequence), then writes the
//! agent and its audit lines keyed by (tenant, revision, line). The secret is one row
//! inserted with `ON CONFLICT DO NOTHING` and read back: nodes racing to create it all
//! read the one that won.

use std::sync::Arc;

use async_trait::async_trait;
use c2c_agents::{Agent, AgentStore, AgentStoreError, AuditEntry, PresenceSecret};
use rand::RngCore;

use crate::dlt::{
    db_ms, ms_from_db, next_revision, read_revision, retry_pause, retryable, TX_RETRIES,
};
use crate::PgStore;

/// `c2c_agents`: one row per registered agent; `c2c_agent_audit`: one row per audit
/// line, `old_value`/`new_value` as JSON text; `c2c_agent_revision`: the counter row
/// (id 1); `c2c_agent_secret`: the presence-token secret (id 1).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS c2c_agents (
    tenant TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    name TEXT NOT NULL,
    telephony_enabled BOOLEAN NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, agent_id)
);
CREATE TABLE IF NOT EXISTS c2c_agent_audit (
    tenant TEXT NOT NULL,
    revision BIGINT NOT NULL,
    line INT NOT NULL,
    at_ms BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    field TEXT NOT NULL,
    old_value TEXT NOT NULL,
    new_value TEXT NOT NULL,
    PRIMARY KEY (tenant, revision, line)
);
CREATE TABLE IF NOT EXISTS c2c_agent_revision (
    id INT PRIMARY KEY,
    revision BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS c2c_agent_secret (
    id INT PRIMARY KEY,
    secret BYTEA NOT NULL
);
";

const REVISION_TABLE: &str = "c2c_agent_revision";

pub(crate) fn store_err(e: impl std::error::Error + Send + Sync + 'static) -> AgentStoreError {
    AgentStoreError::Backend(Box::new(e))
}

/// [`AgentStore`] on the shared database.
pub struct PgAgentStore {
    pg: Arc<PgStore>,
}

/// A registry write, run (again, after a serialization failure) in one transaction.
enum Write<'a> {
    Put(&'a Agent),
    Remove { tenant: &'a str, agent_id: &'a str },
}

impl PgAgentStore {
    pub fn new(pg: Arc<PgStore>) -> Self {
        Self { pg }
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, AgentStoreError> {
        self.pg.checkout().await.map_err(store_err)
    }

    /// Runs `write` with its audit lines; false when a remove found no agent (nothing
    /// is written then).
    async fn write(&self, write: Write<'_>, audit: &[AuditEntry]) -> Result<bool, AgentStoreError> {
        // Serialised once, outside the retries.
        let mut lines = Vec::with_capacity(audit.len());
        for e in audit {
            lines.push((
                e,
                serde_json::to_string(&e.old)?,
                serde_json::to_string(&e.new)?,
            ));
        }
        let mut client = self.client().await?;
        let mut attempt = 0;
        loop {
            match try_write(&mut client, &write, &lines).await {
                Err(e) if retryable(&e) && attempt < TX_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(retry_pause(attempt)).await;
                }
                r => return r.map_err(store_err),
            }
        }
    }
}

async fn try_write(
    client: &mut deadpool_postgres::Object,
    write: &Write<'_>,
    lines: &[(&AuditEntry, String, String)],
) -> Result<bool, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    // The counter first, in every write: one lock order, no deadlock between writers.
    let revision = next_revision(&tx, REVISION_TABLE).await?;
    let tenant = match write {
        Write::Put(a) => {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO c2c_agents
                         (tenant, agent_id, name, telephony_enabled, created_ms, updated_ms)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (tenant, agent_id) DO UPDATE SET
                         name = excluded.name, telephony_enabled = excluded.telephony_enabled,
                         created_ms = excluded.created_ms, updated_ms = excluded.updated_ms",
                )
                .await?;
            tx.execute(
                &stmt,
                &[
                    &a.tenant,
                    &a.agent_id,
                    &a.name,
                    &a.telephony_enabled,
                    &db_ms(a.created_ms),
                    &db_ms(a.updated_ms),
                ],
            )
            .await?;
            a.tenant.as_str()
        }
        Write::Remove { tenant, agent_id } => {
            let stmt = tx
                .prepare_cached("DELETE FROM c2c_agents WHERE tenant = $1 AND agent_id = $2")
                .await?;
            if tx.execute(&stmt, &[tenant, agent_id]).await? == 0 {
                // Nothing removed: the counter's increment goes with the rollback.
                tx.rollback().await?;
                return Ok(false);
            }
            tenant
        }
    };
    if !lines.is_empty() {
        let stmt = tx
            .prepare_cached(
                "INSERT INTO c2c_agent_audit
                     (tenant, revision, line, at_ms, key_id, agent_id, field, old_value, new_value)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .await?;
        for (line, (e, old, new)) in (0i32..).zip(lines) {
            tx.execute(
                &stmt,
                &[
                    &tenant,
                    &revision,
                    &line,
                    &db_ms(e.at_ms),
                    &e.key_id,
                    &e.agent_id,
                    &e.field,
                    old,
                    new,
                ],
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(true)
}

/// The operations themselves; [`AgentStore`] runs each within the store's deadline
/// ([`crate::PgStore::within`]).
impl PgAgentStore {
    async fn all_now(&self) -> Result<Vec<Agent>, AgentStoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT tenant, agent_id, name, telephony_enabled, created_ms, updated_ms
                 FROM c2c_agents ORDER BY tenant, agent_id",
            )
            .await
            .map_err(store_err)?;
        let rows = client.query(&stmt, &[]).await.map_err(store_err)?;
        Ok(rows
            .iter()
            .map(|r| Agent {
                tenant: r.get(0),
                agent_id: r.get(1),
                name: r.get(2),
                telephony_enabled: r.get(3),
                created_ms: ms_from_db(r.get(4)),
                updated_ms: ms_from_db(r.get(5)),
            })
            .collect())
    }

    async fn put_now(&self, agent: &Agent, audit: &[AuditEntry]) -> Result<(), AgentStoreError> {
        self.write(Write::Put(agent), audit).await.map(|_| ())
    }

    async fn remove_now(
        &self,
        tenant: &str,
        agent_id: &str,
        audit: &[AuditEntry],
    ) -> Result<bool, AgentStoreError> {
        self.write(Write::Remove { tenant, agent_id }, audit).await
    }

    async fn audit_now(
        &self,
        tenant: &str,
        max: usize,
    ) -> Result<Vec<AuditEntry>, AgentStoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT at_ms, key_id, agent_id, field, old_value, new_value
                 FROM c2c_agent_audit WHERE tenant = $1
                 ORDER BY revision DESC, line DESC LIMIT $2",
            )
            .await
            .map_err(store_err)?;
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        let rows = client
            .query(&stmt, &[&tenant, &limit])
            .await
            .map_err(store_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows.iter().rev() {
            out.push(AuditEntry {
                at_ms: ms_from_db(r.get(0)),
                key_id: r.get(1),
                agent_id: r.get(2),
                field: r.get(3),
                old: serde_json::from_str(r.get(4))?,
                new: serde_json::from_str(r.get(5))?,
            });
        }
        Ok(out)
    }

    async fn presence_secret_now(&self) -> Result<PresenceSecret, AgentStoreError> {
        let client = self.client().await?;
        let mut fresh = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut fresh);
        let insert = client
            .prepare_cached(
                "INSERT INTO c2c_agent_secret (id, secret) VALUES (1, $1)
                 ON CONFLICT (id) DO NOTHING",
            )
            .await
            .map_err(store_err)?;
        // Insert-if-absent, then read whichever insert won (ours or another node's).
        client
            .execute(&insert, &[&&fresh[..]])
            .await
            .map_err(store_err)?;
        let select = client
            .prepare_cached("SELECT secret FROM c2c_agent_secret WHERE id = 1")
            .await
            .map_err(store_err)?;
        let row = client.query_one(&select, &[]).await.map_err(store_err)?;
        let stored: &[u8] = row.get(0);
        stored
            .try_into()
            .map_err(|_| AgentStoreError::Backend("presence secret is not 32 bytes".into()))
    }

    async fn revision_now(&self) -> Result<u64, AgentStoreError> {
        let client = self.client().await?;
        read_revision(&client, REVISION_TABLE)
            .await
            .map_err(store_err)
    }
}

#[async_trait]
impl AgentStore for PgAgentStore {
    async fn all(&self) -> Result<Vec<Agent>, AgentStoreError> {
        self.pg
            .within_or(self.all_now(), AgentStoreError::Backend)
            .await
    }

    async fn put(&self, agent: &Agent, audit: &[AuditEntry]) -> Result<(), AgentStoreError> {
        self.pg
            .within_or(self.put_now(agent, audit), AgentStoreError::Backend)
            .await
    }

    async fn remove(
        &self,
        tenant: &str,
        agent_id: &str,
        audit: &[AuditEntry],
    ) -> Result<bool, AgentStoreError> {
        self.pg
            .within_or(
                self.remove_now(tenant, agent_id, audit),
                AgentStoreError::Backend,
            )
            .await
    }

    async fn audit(&self, tenant: &str, max: usize) -> Result<Vec<AuditEntry>, AgentStoreError> {
        self.pg
            .within_or(self.audit_now(tenant, max), AgentStoreError::Backend)
            .await
    }

    async fn presence_secret(&self) -> Result<PresenceSecret, AgentStoreError> {
        self.pg
            .within_or(self.presence_secret_now(), AgentStoreError::Backend)
            .await
    }

    async fn revision(&self) -> Result<u64, AgentStoreError> {
        self.pg
            .within_or(self.revision_now(), AgentStoreError::Backend)
            .await
    }

    fn shared(&self) -> bool {
        true
    }

    async fn claim_busy(
        &self,
        tenant: &str,
        agent_id: &str,
        call_id: &str,
    ) -> Result<Option<String>, AgentStoreError> {
        self.pg
            .within_or(
                self.claim_busy_now(tenant, agent_id, call_id),
                AgentStoreError::Backend,
            )
            .await
    }

    async fn release_busy(
        &self,
        tenant: &str,
        agent_id: &str,
        call_id: &str,
    ) -> Result<(), AgentStoreError> {
        self.pg
            .within_or(
                self.release_busy_now(tenant, agent_id, call_id),
                AgentStoreError::Backend,
            )
            .await
    }
}
