//! Which call each agent is on, shared by the fleet (`c2c_agent_busy`): the fleet-wide
//! half of "one call at a time per agent". A node's presence hub only sees the calls it
//! started; this row is claimed at `/connect` under the table's primary key, so of two
//! nodes claiming one agent at the same instant one waits for the other's insert and
//! then finds the agent busy. A row whose call has ended is taken over by the next
//! claim, so a lost release never blocks an agent.

use c2c_agents::AgentStoreError;

use crate::agents::{store_err, PgAgentStore};

/// Migration 4.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS c2c_agent_busy (
    tenant TEXT COLLATE \"C\" NOT NULL,
    agent_id TEXT COLLATE \"C\" NOT NULL,
    call_id TEXT COLLATE \"C\" NOT NULL,
    claimed_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, agent_id)
);
";

/// Granted (a row returned) when the agent is free, already on this call, or on a call
/// that is no longer open.
const CLAIM: &str = "INSERT INTO c2c_agent_busy AS b (tenant, agent_id, call_id, claimed_ms)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (tenant, agent_id) DO UPDATE
        SET call_id = excluded.call_id, claimed_ms = excluded.claimed_ms
        WHERE b.call_id = excluded.call_id
           OR NOT EXISTS (SELECT 1 FROM c2c_calls c WHERE c.call_id = b.call_id AND c.is_open)
    RETURNING call_id";
const HOLDER: &str = "SELECT call_id FROM c2c_agent_busy WHERE tenant = $1 AND agent_id = $2";
const RELEASE: &str =
    "DELETE FROM c2c_agent_busy WHERE tenant = $1 AND agent_id = $2 AND call_id = $3";

/// Claims tried before answering: a holder that releases between the claim and the
/// look at who holds it leaves no row to name.
const ATTEMPTS: usize = 3;

impl PgAgentStore {
    pub(crate) async fn claim_busy_now(
        &self,
        tenant: &str,
        agent_id: &str,
        call_id: &str,
    ) -> Result<Option<String>, AgentStoreError> {
        let c = self.client().await?;
        // Prepared once per pooled connection: a statement sent as text is parsed and
        // planned on every execution (pg_stat_statements showed each release planned).
        let claim = c.prepare_cached(CLAIM).await.map_err(store_err)?;
        let holder = c.prepare_cached(HOLDER).await.map_err(store_err)?;
        let now = i64::try_from(crate::calls::now_ms()).unwrap_or(i64::MAX);
        for _ in 0..ATTEMPTS {
            let granted = c
                .query(&claim, &[&tenant, &agent_id, &call_id, &now])
                .await
                .map_err(store_err)?;
            if !granted.is_empty() {
                return Ok(None);
            }
            let holder = c
                .query(&holder, &[&tenant, &agent_id])
                .await
                .map_err(store_err)?;
            if let Some(row) = holder.first() {
                let other: String = row.try_get(0).map_err(store_err)?;
                return Ok(Some(other));
            }
        }
        Err(store_err(std::io::Error::other(
            "the agent's claim kept changing hands",
        )))
    }

    pub(crate) async fn release_busy_now(
        &self,
        tenant: &str,
        agent_id: &str,
        call_id: &str,
    ) -> Result<(), AgentStoreError> {
        let c = self.client().await?;
        let release = c.prepare_cached(RELEASE).await.map_err(store_err)?;
        c.execute(&release, &[&tenant, &agent_id, &call_id])
            .await
            .map_err(store_err)?;
        Ok(())
    }
}
