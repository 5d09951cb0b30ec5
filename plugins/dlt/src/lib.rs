//! The DLT outbound gate.
//!
//! Indian regulation (TCCCPR / DLT) forbids outbound commercial calls until the caller's
//! Principal Entity is registered and bound to its telephony provider. The platform owner
//! verifies that binding by hand and then flips the tenant's outbound-enable flag.
//!
//! Owns: the effective outbound flag per tenant (policy's `dlt.outbound_enabled` is the
//! initial value; the owner's toggle, persisted in sled, overrides it and survives
//! restarts and policy reloads) and the audit trail of every toggle (who, when, old ->
//! new, note).
//!
//! Must not: know about HTTP. The gateway maps [`DltPending`] to `403 dlt_pending`.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use c2c_tenancy::Tenant;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

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

/// Persisted owner overrides plus an in-memory copy for the hot path.
///
/// Reads (every call attempt) hit only the in-memory map; writes (rare owner actions)
/// go to sled, are flushed, and only then become visible, so what a caller sees is
/// always what survives a crash.
pub struct DltRegistry {
    tree: sled::Tree,
    db: sled::Db,
    overrides: RwLock<HashMap<String, bool>>,
    /// Serialises toggles so each audit line's `old` is the value it really replaced.
    write_lock: tokio::sync::Mutex<()>,
}

const STATE: &[u8] = b"s/";
const AUDIT: &[u8] = b"a/";
/// Owners read the trail in the console; a bound keeps a runaway script from making
/// one response enormous.
pub const MAX_AUDIT_READ: usize = 1000;

impl DltRegistry {
    pub fn open(db: &sled::Db) -> Result<Self, DltError> {
        let tree = db.open_tree("dlt")?;
        let mut overrides = HashMap::new();
        for kv in tree.scan_prefix(STATE) {
            let (k, v) = kv?;
            let tenant = String::from_utf8_lossy(&k[STATE.len()..]).into_owned();
            let o: OutboundOverride = serde_json::from_slice(&v)?;
            overrides.insert(tenant, o.enabled);
        }
        Ok(Self {
            tree,
            db: db.clone(),
            overrides: RwLock::new(overrides),
            write_lock: tokio::sync::Mutex::new(()),
        })
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
        let _guard = self.write_lock.lock().await;
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
        let seq = self.db.generate_id()?;
        let mut batch = sled::Batch::default();
        batch.insert(key(STATE, &tenant.id, None), serde_json::to_vec(&o)?);
        batch.insert(
            key(AUDIT, &tenant.id, Some(seq)),
            serde_json::to_vec(&entry)?,
        );
        self.tree.apply_batch(batch)?;
        self.tree.flush_async().await?;
        self.overrides.write().insert(tenant.id.clone(), t.enabled);
        Ok(entry)
    }

    /// The current override, if the owner ever toggled this tenant.
    pub fn current(&self, tenant_id: &str) -> Result<Option<OutboundOverride>, DltError> {
        match self.tree.get(key(STATE, tenant_id, None))? {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }

    /// The audit trail, oldest first, at most [`MAX_AUDIT_READ`] newest entries.
    pub fn audit(&self, tenant_id: &str) -> Result<Vec<AuditEntry>, DltError> {
        let mut prefix = key(AUDIT, tenant_id, None);
        prefix.push(0);
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(&prefix).rev().take(MAX_AUDIT_READ) {
            let (_, v) = kv?;
            out.push(serde_json::from_slice(&v)?);
        }
        out.reverse();
        Ok(out)
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2c_tenancy::DltPolicy;

    fn tenant(id: &str, initial: bool) -> Tenant {
        Tenant {
            id: id.into(),
            name: id.into(),
            region: "singapore".into(),
            allowed_origins: vec![],
            livekit: None,
            crm_webhook: None,
            dlt: DltPolicy {
                principal_entity_id: "1101".into(),
                outbound_enabled: initial,
            },
            limits: c2c_tenancy::TenantLimits {
                requests_per_second: 50,
                max_concurrent_calls: 100,
            },
            trunks: vec![],
        }
    }

    fn toggle(enabled: bool) -> Toggle<'static> {
        Toggle {
            enabled,
            verified_by: "ops@platform",
            note: "PE binding checked",
            key_id: "owner-1",
        }
    }

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
        let trail = reg.audit("acme").unwrap();
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
        assert_eq!(reg.audit("acme").unwrap().len(), 1);
        assert_eq!(reg.audit("acme-2").unwrap().len(), 1);
        assert!(reg.audit("nobody").unwrap().is_empty());
    }
}
