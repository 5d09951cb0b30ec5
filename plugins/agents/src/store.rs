//! Where agents live durably: one [`AgentStore`] trait, the embedded sled backend and an
//! in-memory one, both held to the suite in [`crate::contract`].
//!
//! The registry is small (people, not calls) and read on every click2call, so the
//! gateway keeps it in memory ([`crate::Directory`]) and uses the store for writes and
//! for loading at start; in a fleet, each node's directory follows the others' writes
//! through [`AgentStore::revision`] and [`crate::Directory::refresh`].

use std::collections::BTreeMap;

use async_trait::async_trait;
use parking_lot::Mutex;
use rand::RngCore;

use crate::agent::{Agent, AuditEntry};

#[derive(Debug, thiserror::Error)]
pub enum AgentStoreError {
    #[error("agent store error: {0}")]
    Sled(#[from] sled::Error),
    #[error("agent record is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// A backend's own failure (a networked store's driver), for backends outside
    /// this crate.
    #[error("agent store backend error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// The secret presence tokens are signed with: 32 random bytes, created once per store
/// and shared by every process that uses the store, so a token minted by one gateway
/// (or before a restart) is honoured by another.
pub type PresenceSecret = [u8; 32];

/// The durable side of the agent registry.
#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Every agent of every tenant (the directory loads them once, at start).
    async fn all(&self) -> Result<Vec<Agent>, AgentStoreError>;

    /// Writes `agent` (created or replaced) and appends `audit` to its tenant's trail,
    /// in one atomic step, durable on return.
    async fn put(&self, agent: &Agent, audit: &[AuditEntry]) -> Result<(), AgentStoreError>;

    /// Removes the agent and appends `audit`, atomically and durably. False when there
    /// was no such agent (nothing is written then).
    async fn remove(
        &self,
        tenant: &str,
        agent_id: &str,
        audit: &[AuditEntry],
    ) -> Result<bool, AgentStoreError>;

    /// The tenant's `max` newest audit lines, oldest first.
    async fn audit(&self, tenant: &str, max: usize) -> Result<Vec<AuditEntry>, AgentStoreError>;

    /// The presence-token secret, created on first use; every later call (from any
    /// process on this store) returns the same bytes.
    async fn presence_secret(&self) -> Result<PresenceSecret, AgentStoreError>;

    /// A number that grows with every write that changes the registry (a `put`, a
    /// `remove` that removed), whoever made it, and is cheap to read: a fleet's nodes
    /// poll it to learn that another node changed an agent. Whoever reads revision `r`
    /// and then [`AgentStore::all`] sees at least every write that `r` counts. The
    /// presence secret is not counted: it never changes once created.
    async fn revision(&self) -> Result<u64, AgentStoreError>;

    /// True for a store several gateways share: only then do [`AgentStore::claim_busy`]
    /// and [`AgentStore::release_busy`] do anything, and callers skip them otherwise.
    fn shared(&self) -> bool {
        false
    }

    /// Marks the agent as on `call_id` for every node sharing this store, unless it is
    /// on another call that is still open: `None` when granted (or already this call's),
    /// else the call it is on. One process alone needs none of this (its presence hub
    /// sees every call), so the embedded stores grant at once; a shared store decides
    /// atomically, so two nodes claiming one agent at the same instant cannot both win.
    async fn claim_busy(
        &self,
        _tenant: &str,
        _agent_id: &str,
        _call_id: &str,
    ) -> Result<Option<String>, AgentStoreError> {
        Ok(None)
    }

    /// Ends the agent's claim by `call_id` (no-op when another call holds it). A claim
    /// whose call ended is taken over by the next claim anyway; releasing it frees the
    /// agent the moment its hangup is durable.
    async fn release_busy(
        &self,
        _tenant: &str,
        _agent_id: &str,
        _call_id: &str,
    ) -> Result<(), AgentStoreError> {
        Ok(())
    }
}

const AGENT: &[u8] = b"a/";
const AUDIT: &[u8] = b"l/";
const SECRET: &[u8] = b"meta/presence_secret";
const REVISION: &[u8] = b"meta/revision";

/// The `agents` tree of the gateway's sled database:
/// `a/<tenant>\0<agent_id>` -> agent JSON, `l/<tenant>\0<seq u64 BE>` -> audit JSON,
/// `meta/presence_secret` -> 32 bytes, `meta/revision` -> u64 BE (registry writes ever
/// made). Tenant ids and agent ids never contain `\0`.
pub struct SledAgentStore {
    tree: sled::Tree,
    db: sled::Db,
}

impl SledAgentStore {
    pub fn open(db: &sled::Db) -> Result<Self, AgentStoreError> {
        Ok(Self {
            tree: db.open_tree("agents")?,
            db: db.clone(),
        })
    }

    fn audit_batch(
        &self,
        batch: &mut sled::Batch,
        tenant: &str,
        audit: &[AuditEntry],
    ) -> Result<(), AgentStoreError> {
        for entry in audit {
            let seq = self.db.generate_id()?;
            batch.insert(
                key(AUDIT, tenant, &seq.to_be_bytes()),
                serde_json::to_vec(entry)?,
            );
        }
        Ok(())
    }

    /// Applies a registry write, then counts it: a reader of the new revision sees it.
    async fn apply(&self, batch: sled::Batch) -> Result<(), AgentStoreError> {
        self.tree.apply_batch(batch)?;
        self.tree.update_and_fetch(REVISION, |old| {
            Some((read_u64(old) + 1).to_be_bytes().to_vec())
        })?;
        self.tree.flush_async().await?;
        Ok(())
    }
}

fn read_u64(v: Option<&[u8]>) -> u64 {
    v.and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

fn key(prefix: &[u8], tenant: &str, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + tenant.len() + 1 + rest.len());
    k.extend_from_slice(prefix);
    k.extend_from_slice(tenant.as_bytes());
    k.push(0);
    k.extend_from_slice(rest);
    k
}

#[async_trait]
impl AgentStore for SledAgentStore {
    async fn all(&self) -> Result<Vec<Agent>, AgentStoreError> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(AGENT) {
            let (_, v) = kv?;
            out.push(serde_json::from_slice(&v)?);
        }
        Ok(out)
    }

    async fn put(&self, agent: &Agent, audit: &[AuditEntry]) -> Result<(), AgentStoreError> {
        let mut batch = sled::Batch::default();
        batch.insert(
            key(AGENT, &agent.tenant, agent.agent_id.as_bytes()),
            serde_json::to_vec(agent)?,
        );
        self.audit_batch(&mut batch, &agent.tenant, audit)?;
        self.apply(batch).await
    }

    async fn remove(
        &self,
        tenant: &str,
        agent_id: &str,
        audit: &[AuditEntry],
    ) -> Result<bool, AgentStoreError> {
        let k = key(AGENT, tenant, agent_id.as_bytes());
        if self.tree.get(&k)?.is_none() {
            return Ok(false);
        }
        let mut batch = sled::Batch::default();
        batch.remove(k);
        self.audit_batch(&mut batch, tenant, audit)?;
        self.apply(batch).await?;
        Ok(true)
    }

    async fn audit(&self, tenant: &str, max: usize) -> Result<Vec<AuditEntry>, AgentStoreError> {
        let mut out = Vec::new();
        for kv in self
            .tree
            .scan_prefix(key(AUDIT, tenant, b""))
            .rev()
            .take(max)
        {
            let (_, v) = kv?;
            out.push(serde_json::from_slice(&v)?);
        }
        out.reverse();
        Ok(out)
    }

    async fn presence_secret(&self) -> Result<PresenceSecret, AgentStoreError> {
        let mut fresh = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut fresh);
        // Insert-if-absent: two processes racing on a fresh store both read the winner's.
        let _ = self
            .tree
            .compare_and_swap(SECRET, None as Option<&[u8]>, Some(&fresh[..]))?;
        self.tree.flush_async().await?;
        let stored = self
            .tree
            .get(SECRET)?
            .ok_or_else(|| AgentStoreError::Backend("presence secret vanished".into()))?;
        stored
            .as_ref()
            .try_into()
            .map_err(|_| AgentStoreError::Backend("presence secret is not 32 bytes".into()))
    }

    async fn revision(&self) -> Result<u64, AgentStoreError> {
        Ok(read_u64(self.tree.get(REVISION)?.as_deref()))
    }
}

/// [`AgentStore`] in memory (`serve --store memory`, tests): one mutex, so each write is
/// one atomic step.
#[derive(Default)]
pub struct MemAgentStore {
    state: Mutex<MemState>,
}

#[derive(Default)]
struct MemState {
    agents: BTreeMap<(String, String), Agent>,
    audit: BTreeMap<String, Vec<AuditEntry>>,
    secret: Option<PresenceSecret>,
    revision: u64,
}

impl MemAgentStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl AgentStore for MemAgentStore {
    async fn all(&self) -> Result<Vec<Agent>, AgentStoreError> {
        Ok(self.state.lock().agents.values().cloned().collect())
    }

    async fn put(&self, agent: &Agent, audit: &[AuditEntry]) -> Result<(), AgentStoreError> {
        let mut s = self.state.lock();
        s.agents.insert(
            (agent.tenant.clone(), agent.agent_id.clone()),
            agent.clone(),
        );
        s.audit
            .entry(agent.tenant.clone())
            .or_default()
            .extend_from_slice(audit);
        s.revision += 1;
        Ok(())
    }

    async fn remove(
        &self,
        tenant: &str,
        agent_id: &str,
        audit: &[AuditEntry],
    ) -> Result<bool, AgentStoreError> {
        let mut s = self.state.lock();
        if s.agents
            .remove(&(tenant.to_owned(), agent_id.to_owned()))
            .is_none()
        {
            return Ok(false);
        }
        s.audit
            .entry(tenant.to_owned())
            .or_default()
            .extend_from_slice(audit);
        s.revision += 1;
        Ok(true)
    }

    async fn audit(&self, tenant: &str, max: usize) -> Result<Vec<AuditEntry>, AgentStoreError> {
        let s = self.state.lock();
        let trail = s.audit.get(tenant).map(Vec::as_slice).unwrap_or_default();
        Ok(trail[trail.len().saturating_sub(max)..].to_vec())
    }

    async fn presence_secret(&self) -> Result<PresenceSecret, AgentStoreError> {
        let mut s = self.state.lock();
        Ok(*s.secret.get_or_insert_with(|| {
            let mut b = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut b);
            b
        }))
    }

    async fn revision(&self) -> Result<u64, AgentStoreError> {
        Ok(self.state.lock().revision)
    }
}
