//! Where the owner's DLT decisions persist: the [`DltStore`] trait, its sled
//! implementation (the gateway's embedded store, tree `dlt`) and an in-memory one for
//! tests. A shared backend (PostgreSQL) implements the same trait and passes the same
//! contract ([`crate::contract`], feature `contract`).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::{AuditEntry, DltError, OutboundOverride};

/// Persistence of the per-tenant override and its audit trail. Object-safe
/// (`Arc<dyn DltStore>`): toggles are rare owner actions, so dispatch costs nothing
/// that matters, and [`crate::DltRegistry`] answers the per-call gate from memory.
#[async_trait]
pub trait DltStore: Send + Sync {
    /// Every tenant's override (read once, when the registry opens).
    async fn overrides(&self) -> Result<Vec<(String, OutboundOverride)>, DltError>;

    /// Stores `o` as the tenant's override and appends `entry` to its audit trail, in
    /// one atomic step, durable on return.
    async fn record(
        &self,
        tenant_id: &str,
        o: &OutboundOverride,
        entry: &AuditEntry,
    ) -> Result<(), DltError>;

    /// The tenant's override, if the owner ever toggled it.
    async fn current(&self, tenant_id: &str) -> Result<Option<OutboundOverride>, DltError>;

    /// The tenant's `max` newest audit entries, oldest first.
    async fn audit(&self, tenant_id: &str, max: usize) -> Result<Vec<AuditEntry>, DltError>;

    /// A number that grows with every [`DltStore::record`], whoever made it, and is
    /// cheap to read: a fleet's nodes poll it to learn that another node changed an
    /// override ([`crate::DltRegistry::refresh`]). Whoever reads revision `r` and then
    /// [`DltStore::overrides`] sees at least every record that `r` counts.
    async fn revision(&self) -> Result<u64, DltError>;
}

const STATE: &[u8] = b"s/";
const AUDIT: &[u8] = b"a/";
/// The revision counter (u64 BE), outside both prefixes.
const REVISION: &[u8] = b"meta/revision";

/// The `dlt` tree of the gateway's sled database: `s/<tenant>` -> override JSON,
/// `a/<tenant>\0<seq u64 BE>` -> audit entry JSON, `meta/revision` -> u64 BE (the
/// number of records ever made).
pub struct SledDltStore {
    tree: sled::Tree,
    db: sled::Db,
}

impl SledDltStore {
    pub fn open(db: &sled::Db) -> Result<Self, DltError> {
        Ok(Self {
            tree: db.open_tree("dlt")?,
            db: db.clone(),
        })
    }

    /// [`DltStore::overrides`] without a runtime (the registry opens synchronously).
    pub fn load_overrides(&self) -> Result<Vec<(String, OutboundOverride)>, DltError> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(STATE) {
            let (k, v) = kv?;
            let tenant = String::from_utf8_lossy(&k[STATE.len()..]).into_owned();
            out.push((tenant, serde_json::from_slice(&v)?));
        }
        Ok(out)
    }

    /// [`DltStore::revision`] without a runtime.
    pub fn load_revision(&self) -> Result<u64, DltError> {
        Ok(read_u64(self.tree.get(REVISION)?.as_deref()))
    }
}

fn read_u64(v: Option<&[u8]>) -> u64 {
    v.and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

#[async_trait]
impl DltStore for SledDltStore {
    async fn overrides(&self) -> Result<Vec<(String, OutboundOverride)>, DltError> {
        self.load_overrides()
    }

    async fn record(
        &self,
        tenant_id: &str,
        o: &OutboundOverride,
        entry: &AuditEntry,
    ) -> Result<(), DltError> {
        let seq = self.db.generate_id()?;
        let mut batch = sled::Batch::default();
        batch.insert(key(STATE, tenant_id, None), serde_json::to_vec(o)?);
        batch.insert(key(AUDIT, tenant_id, Some(seq)), serde_json::to_vec(entry)?);
        self.tree.apply_batch(batch)?;
        // Counted after the batch is in: a reader of the new revision sees the record.
        self.tree.update_and_fetch(REVISION, |old| {
            Some((read_u64(old) + 1).to_be_bytes().to_vec())
        })?;
        self.tree.flush_async().await?;
        Ok(())
    }

    async fn current(&self, tenant_id: &str) -> Result<Option<OutboundOverride>, DltError> {
        match self.tree.get(key(STATE, tenant_id, None))? {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }

    async fn audit(&self, tenant_id: &str, max: usize) -> Result<Vec<AuditEntry>, DltError> {
        let mut prefix = key(AUDIT, tenant_id, None);
        prefix.push(0);
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(&prefix).rev().take(max) {
            let (_, v) = kv?;
            out.push(serde_json::from_slice(&v)?);
        }
        out.reverse();
        Ok(out)
    }

    async fn revision(&self) -> Result<u64, DltError> {
        self.load_revision()
    }
}

/// `prefix + tenant [+ 0x00 + seq BE]`: tenant ids cannot contain 0x00, so one tenant's
/// audit range never overlaps another's ("acme" vs "acme-2").
fn key(prefix: &[u8], tenant: &str, seq: Option<u64>) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + tenant.len() + 9);
    k.extend_from_slice(prefix);
    k.extend_from_slice(tenant.as_bytes());
    if let Some(s) = seq {
        k.push(0);
        k.extend_from_slice(&s.to_be_bytes());
    }
    k
}

/// [`DltStore`] in memory, for tests: one mutex, so a record is one atomic step.
#[derive(Default)]
pub struct MemDltStore {
    state: Mutex<MemState>,
}

#[derive(Default)]
struct MemState {
    overrides: BTreeMap<String, OutboundOverride>,
    audit: HashMap<String, Vec<AuditEntry>>,
    revision: u64,
}

impl MemDltStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl DltStore for MemDltStore {
    async fn overrides(&self) -> Result<Vec<(String, OutboundOverride)>, DltError> {
        let s = self.state.lock();
        Ok(s.overrides
            .iter()
            .map(|(t, o)| (t.clone(), o.clone()))
            .collect())
    }

    async fn record(
        &self,
        tenant_id: &str,
        o: &OutboundOverride,
        entry: &AuditEntry,
    ) -> Result<(), DltError> {
        let mut s = self.state.lock();
        s.overrides.insert(tenant_id.to_owned(), o.clone());
        s.audit
            .entry(tenant_id.to_owned())
            .or_default()
            .push(entry.clone());
        s.revision += 1;
        Ok(())
    }

    async fn current(&self, tenant_id: &str) -> Result<Option<OutboundOverride>, DltError> {
        Ok(self.state.lock().overrides.get(tenant_id).cloned())
    }

    async fn audit(&self, tenant_id: &str, max: usize) -> Result<Vec<AuditEntry>, DltError> {
        let s = self.state.lock();
        let trail = s
            .audit
            .get(tenant_id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        Ok(trail[trail.len().saturating_sub(max)..].to_vec())
    }

    async fn revision(&self) -> Result<u64, DltError> {
        Ok(self.state.lock().revision)
    }
}
