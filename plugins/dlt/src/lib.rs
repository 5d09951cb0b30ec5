//! The DLT outbound gate.
//!
//! Indian regulation (TCCCPR / DLT) forbids outbound commercial calls until the caller's
//! Principal Entity is registered and bound to its telephony provider. The platform owner
//! verifies that binding by hand and then flips the tenant's outbound-enable flag.
//!
//! Owns: the effective outbound flag per tenant (policy's `dlt.outbound_enabled` is the
//! initial value; the owner's toggle, persisted in sled, overrides it and survives
//! restarts and policy reloads; stored through [`DltStore`]) and the audit trail of every
//! toggle (who, when, old -> new, note). In a fleet on one shared store, each node's
//! in-memory copy follows the others' toggles through [`DltRegistry::refresh`].
//!
//! Also owns the per-call rules beyond the switch ([`check_call`]: caller-ID series,
//! calling hours in IST, DND scrubbing against each tenant's lists, [`ListRegistry`]).
//!
//! Must not: know about HTTP. The gateway maps [`DltPending`] to `403 dlt_pending`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use c2c_tenancy::Tenant;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

#[cfg(any(test, feature = "contract"))]
pub mod contract;
mod lists;
pub mod numbers;
mod rules;
mod store;
pub use lists::{ListKind, ListRegistry, ListReload, ListState};
pub use numbers::NumberSet;
pub use rules::{check_call, ist_timestamp, CallFacts, DltRefusal, DltRule};
pub use store::{DltStore, MemDltStore, SledDltStore};

/// A call attempt for a tenant whose outbound calling is off.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "outbound calling is disabled for tenant '{tenant}': its DLT Principal Entity \
     ({principal_entity_id}) binding has not been verified yet. Complete the Principal \
     Entity registration and telemarketer binding, then ask the platform owner to enable \
     outbound calling"
)]
pub struct DltPending {
    pub tenant: String,
    pub principal_entity_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DltError {
    #[error("DLT store error: {0}")]
    Store(#[from] sled::Error),
    #[error("DLT record is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// A backend's own failure (a networked store's driver), for backends outside
    /// this crate.
    #[error("DLT store backend error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// The owner's last decision for a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundOverride {
    pub enabled: bool,
    pub verified_by: String,
    pub note: String,
    pub key_id: String,
    pub at_ms: u64,
}

/// One audit line: who changed the flag, when, and from what to what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub at_ms: u64,
    pub verified_by: String,
    /// The owner key that made the change.
    pub key_id: String,
    pub old: bool,
    pub new: bool,
    pub note: String,
}

/// A toggle request from the owner.
#[derive(Debug, Clone)]
pub struct Toggle<'a> {
    pub enabled: bool,
    pub verified_by: &'a str,
    pub note: &'a str,
    pub key_id: &'a str,
}

/// The gate's state: the owner overrides, persisted through a [`DltStore`], plus an
/// in-memory copy for the hot path.
///
/// Reads (every call attempt) hit only the in-memory map; writes (rare owner actions)
/// go to the store, durably, and only then become visible, so what a caller sees is
/// always what survives a crash. Other processes' writes to a shared store arrive with
/// [`DltRegistry::refresh`], which the gateway calls periodically.
pub struct DltRegistry {
    store: Arc<dyn DltStore>,
    overrides: RwLock<HashMap<String, bool>>,
    /// Serialises toggles and refreshes (so each audit line's `old` is the value it
    /// really replaced, and a refresh never undoes a toggle it did not read); holds the
    /// store revision the map reflects (None: unknown, the next refresh reads).
    writes: tokio::sync::Mutex<Option<u64>>,
    /// The DND and consent lists; files, not the store: per node, like policy files.
    lists: ListRegistry,
}

/// Owners read the trail in the console; a bound keeps a runaway script from making
/// one response enormous.
pub const MAX_AUDIT_READ: usize = 1000;

impl DltRegistry {
    /// The registry of the `dlt` tree of the gateway's sled database.
    pub fn open(db: &sled::Db) -> Result<Self, DltError> {
        let store = SledDltStore::open(db)?;
        // The revision first: a record landing in between is read again by a refresh.
        let revision = store.load_revision()?;
        let overrides = store.load_overrides()?;
        Ok(Self::from_parts(Arc::new(store), overrides, revision))
    }

    /// A registry on a new, empty [`MemDltStore`] (a gateway run with in-memory stores).
    pub fn in_memory() -> Self {
        Self::from_parts(Arc::new(MemDltStore::new()), Vec::new(), 0)
    }

    /// The registry of any [`DltStore`] (the in-memory one in tests, a shared backend).
    pub async fn with_store(store: Arc<dyn DltStore>) -> Result<Self, DltError> {
        let revision = store.revision().await?;
        let overrides = store.overrides().await?;
        Ok(Self::from_parts(store, overrides, revision))
    }

    fn from_parts(
        store: Arc<dyn DltStore>,
        overrides: Vec<(String, OutboundOverride)>,
        revision: u64,
    ) -> Self {
        Self {
            store,
            overrides: RwLock::new(enabled_map(overrides)),
            writes: tokio::sync::Mutex::new(Some(revision)),
            lists: ListRegistry::default(),
        }
    }

    /// Every tenant's DND and consent lists (read by [`ListRegistry::reload`]).
    pub fn lists(&self) -> &ListRegistry {
        &self.lists
    }

    /// The per-call rules (caller-ID series, calling hours, DND) for `call` of `tenant`
    /// at `now_ms` (Unix ms); the outbound switch is [`Self::check`].
    pub fn check_call(
        &self,
        rules: &c2c_tenancy::DltRules,
        tenant: &Tenant,
        call: &CallFacts<'_>,
        now_ms: u64,
    ) -> Result<c2c_tenancy::CallCategory, DltRefusal> {
        check_call(rules, &self.lists, tenant, call, now_ms)
    }

    /// Catches up with writes other processes made to a shared store: reads the store's
    /// revision and, when it moved since the map was last read, re-reads every override
    /// and replaces the map. True when an effective flag changed. Cheap when nothing
    /// moved (one revision read), so a fleet calls it every second or so.
    pub async fn refresh(&self) -> Result<bool, DltError> {
        let mut known = self.writes.lock().await;
        self.refresh_locked(&mut known).await
    }

    async fn refresh_locked(&self, known: &mut Option<u64>) -> Result<bool, DltError> {
        // Revision before overrides: a record in between only makes the next refresh
        // read again.
        let revision = self.store.revision().await?;
        if *known == Some(revision) {
            return Ok(false);
        }
        let fresh = enabled_map(self.store.overrides().await?);
        let changed = {
            let mut map = self.overrides.write();
            let changed = *map != fresh;
            *map = fresh;
            changed
        };
        *known = Some(revision);
        Ok(changed)
    }

    /// The effective flag: the owner's override if any, else the policy's initial value.
    pub fn outbound_enabled(&self, tenant: &Tenant) -> bool {
        self.overrides
            .read()
            .get(&tenant.id)
            .copied()
            .unwrap_or(tenant.dlt.outbound_enabled)
    }

    /// The gate every call attempt passes.
    pub fn check(&self, tenant: &Tenant) -> Result<(), DltPending> {
        if self.outbound_enabled(tenant) {
            Ok(())
        } else {
            Err(DltPending {
                tenant: tenant.id.clone(),
                principal_entity_id: tenant.dlt.principal_entity_id.clone(),
            })
        }
    }

    /// Records the owner's decision durably, then makes it effective.
    pub async fn set(&self, tenant: &Tenant, t: Toggle<'_>) -> Result<AuditEntry, DltError> {
        let mut known = self.writes.lock().await;
        // Another node may have toggled since the last refresh: `old` is the flag in
        // force now, not this node's possibly stale copy.
        self.refresh_locked(&mut known).await?;
        let old = self.outbound_enabled(tenant);
        let at_ms = now_ms();
        let o = OutboundOverride {
            enabled: t.enabled,
            verified_by: t.verified_by.to_string(),
            note: t.note.to_string(),
            key_id: t.key_id.to_string(),
            at_ms,
        };
        let entry = AuditEntry {
            at_ms,
            verified_by: t.verified_by.to_string(),
            key_id: t.key_id.to_string(),
            old,
            new: t.enabled,
            note: t.note.to_string(),
        };
        self.store.record(&tenant.id, &o, &entry).await?;
        self.overrides.write().insert(tenant.id.clone(), t.enabled);
        Ok(entry)
    }

    /// The current override, if the owner ever toggled this tenant.
    pub async fn current(&self, tenant_id: &str) -> Result<Option<OutboundOverride>, DltError> {
        self.store.current(tenant_id).await
    }

    /// The audit trail, oldest first, at most [`MAX_AUDIT_READ`] newest entries.
    pub async fn audit(&self, tenant_id: &str) -> Result<Vec<AuditEntry>, DltError> {
        self.store.audit(tenant_id, MAX_AUDIT_READ).await
    }
}

fn enabled_map(overrides: Vec<(String, OutboundOverride)>) -> HashMap<String, bool> {
    overrides.into_iter().map(|(t, o)| (t, o.enabled)).collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{registries_share_the_store, store_contract, tenant, toggle};

    #[tokio::test]
    async fn policy_value_applies_until_the_owner_toggles() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let reg = DltRegistry::open(&db).unwrap();
        let t = tenant("acme", false);
        let err = reg.check(&t).unwrap_err();
        assert!(err.to_string().contains("1101"));
        let e = reg.set(&t, toggle(true)).await.unwrap();
        assert!(!e.old && e.new);
        assert!(reg.check(&t).is_ok());
    }

    #[tokio::test]
    async fn override_and_audit_survive_reopen_and_beat_policy() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let reg = DltRegistry::open(&db).unwrap();
            let t = tenant("acme", true);
            reg.set(&t, toggle(false)).await.unwrap();
            reg.set(&t, toggle(true)).await.unwrap();
            reg.set(&t, toggle(false)).await.unwrap();
        }
        let db = sled::open(dir.path()).unwrap();
        let reg = DltRegistry::open(&db).unwrap();
        // Policy says true (e.g. after a reload), the owner's last word was false.
        assert!(!reg.outbound_enabled(&tenant("acme", true)));
        let trail = reg.audit("acme").await.unwrap();
        let flips: Vec<(bool, bool)> = trail.iter().map(|a| (a.old, a.new)).collect();
        assert_eq!(flips, vec![(true, false), (false, true), (true, false)]);
        assert_eq!(trail[0].verified_by, "ops@platform");
        assert_eq!(trail[0].key_id, "owner-1");
    }

    #[tokio::test]
    async fn tenants_do_not_share_audit_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let reg = DltRegistry::open(&db).unwrap();
        reg.set(&tenant("acme", false), toggle(true)).await.unwrap();
        reg.set(&tenant("acme-2", false), toggle(true))
            .await
            .unwrap();
        assert_eq!(reg.audit("acme").await.unwrap().len(), 1);
        assert_eq!(reg.audit("acme-2").await.unwrap().len(), 1);
        assert!(reg.audit("nobody").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn sled_store_keeps_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        store_contract(Arc::new(SledDltStore::open(&db).unwrap()))
            .await
            .unwrap();
        // Two handles on one database (what a second registry of the process gets).
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        registries_share_the_store(
            Arc::new(SledDltStore::open(&db).unwrap()),
            Arc::new(SledDltStore::open(&db).unwrap()),
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn memory_store_keeps_the_contract() {
        store_contract(Arc::new(MemDltStore::new())).await.unwrap();
        let shared: Arc<dyn DltStore> = Arc::new(MemDltStore::new());
        registries_share_the_store(shared.clone(), shared)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn sled_revision_survives_reopen_and_counts_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let revision = {
            let db = sled::open(dir.path()).unwrap();
            let reg = DltRegistry::open(&db).unwrap();
            reg.set(&tenant("acme", false), toggle(true)).await.unwrap();
            reg.set(&tenant("acme", false), toggle(false))
                .await
                .unwrap();
            SledDltStore::open(&db).unwrap().load_revision().unwrap()
        };
        assert_eq!(revision, 2);
        let db = sled::open(dir.path()).unwrap();
        let store = Arc::new(SledDltStore::open(&db).unwrap());
        assert_eq!(store.revision().await.unwrap(), 2);
        let reg = DltRegistry::open(&db).unwrap();
        assert!(
            !reg.refresh().await.unwrap(),
            "opened at the newest revision"
        );
    }

    #[tokio::test]
    async fn refresh_replaces_the_map_only_when_the_store_moved() {
        let store = Arc::new(MemDltStore::new());
        let reg = DltRegistry::with_store(store.clone()).await.unwrap();
        let t = tenant("acme", false);
        // A write behind the registry's back (another node on a shared store).
        let (o, a) = (
            OutboundOverride {
                enabled: true,
                verified_by: "ops".into(),
                note: String::new(),
                key_id: "k".into(),
                at_ms: 1,
            },
            AuditEntry {
                at_ms: 1,
                verified_by: "ops".into(),
                key_id: "k".into(),
                old: false,
                new: true,
                note: String::new(),
            },
        );
        store.record("acme", &o, &a).await.unwrap();
        assert!(!reg.outbound_enabled(&t));
        assert!(reg.refresh().await.unwrap());
        assert!(reg.outbound_enabled(&t));
        // The same value recorded again moves the revision but no flag.
        store.record("acme", &o, &a).await.unwrap();
        assert!(!reg.refresh().await.unwrap());
        assert!(reg.outbound_enabled(&t));
    }
}
