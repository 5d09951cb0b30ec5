//! What the sled wallet keeps in memory next to its tree: every open hold and each
//! tenant's balance as last written.
//!
//! Why: a charged call reads its tenant's wallet three times on its way (click2call's
//! check, `/connect`'s hold, the settle) and the balance watch reads every hold every
//! two seconds. Each was a sled read (and a JSON decode of the hold) on a proxy thread;
//! they are now map lookups. The tree stays the durable copy: the mirror is rebuilt from
//! it when the store opens, and every write of a hold or a balance goes through the one
//! lock that guards this mirror (the store's append lock), so the two never differ. A
//! mirror entry changes only after the tree write it mirrors succeeded.

use std::collections::{BTreeMap, HashMap};

use crate::hold::Hold;
use crate::ledger::Balance;
use crate::store::{decode_balance, key, BALANCE, HOLD};
use crate::WalletError;

/// One tenant's part of the mirror.
#[derive(Default)]
struct TenantHeld {
    /// The open holds' amounts added up.
    sum: i64,
    /// The open holds, in call id order (the order `WalletStore::holds` promises).
    holds: BTreeMap<String, Hold>,
    /// The balance as last read or written; `None` until the first look.
    balance: Option<Balance>,
}

/// The in-memory mirror (see the module docs). Only used under the store's append lock.
#[derive(Default)]
pub(crate) struct Held {
    /// In tenant order, for `all_holds`.
    tenants: BTreeMap<String, TenantHeld>,
}

impl Held {
    /// The mirror of `tree`'s holds (balances are read on first use).
    pub(crate) fn load(tree: &sled::Tree) -> Result<Self, WalletError> {
        let mut held = Self::default();
        for kv in tree.scan_prefix(HOLD) {
            let (k, v) = kv?;
            let hold: Hold = serde_json::from_slice(&v)?;
            held.insert(&tenant_of_hold_key(&k), hold);
        }
        Ok(held)
    }

    /// The tenant's open holds added up.
    pub(crate) fn sum(&self, tenant: &str) -> i64 {
        self.tenants.get(tenant).map_or(0, |t| t.sum)
    }

    /// The call's open hold.
    pub(crate) fn hold(&self, tenant: &str, call_id: &str) -> Option<&Hold> {
        self.tenants.get(tenant)?.holds.get(call_id)
    }

    /// Records a hold written to the tree.
    pub(crate) fn insert(&mut self, tenant: &str, hold: Hold) {
        let t = self.tenant(tenant);
        t.sum = t.sum.saturating_add(hold.amount_paise);
        if let Some(before) = t.holds.insert(hold.call_id.clone(), hold) {
            t.sum = t.sum.saturating_sub(before.amount_paise);
        }
    }

    /// Forgets a hold removed from the tree.
    pub(crate) fn remove(&mut self, tenant: &str, call_id: &str) {
        if let Some(t) = self.tenants.get_mut(tenant) {
            if let Some(h) = t.holds.remove(call_id) {
                t.sum = t.sum.saturating_sub(h.amount_paise);
            }
        }
    }

    /// The tenant's open holds, in call id order.
    pub(crate) fn holds(&self, tenant: &str) -> Vec<Hold> {
        self.tenants
            .get(tenant)
            .map(|t| t.holds.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every open hold, in tenant then call id order.
    pub(crate) fn all(&self) -> Vec<(String, Hold)> {
        self.tenants
            .iter()
            .flat_map(|(tenant, t)| t.holds.values().map(|h| (tenant.clone(), h.clone())))
            .collect()
    }

    /// The tenant's balance: the mirror's, or read from the tree once.
    pub(crate) fn balance(
        &mut self,
        tree: &sled::Tree,
        tenant: &str,
    ) -> Result<Balance, WalletError> {
        if let Some(b) = self.tenants.get(tenant).and_then(|t| t.balance) {
            return Ok(b);
        }
        let b = decode_balance(tree.get(key(BALANCE, tenant, None))?.as_deref())?;
        self.tenant(tenant).balance = Some(b);
        Ok(b)
    }

    /// Records balances written to the tree.
    pub(crate) fn set_balances(&mut self, written: HashMap<String, Balance>) {
        for (tenant, b) in written {
            self.tenant(&tenant).balance = Some(b);
        }
    }

    fn tenant(&mut self, tenant: &str) -> &mut TenantHeld {
        self.tenants.entry(tenant.to_owned()).or_default()
    }
}

/// The tenant of a `h/<tenant>\0<call>` key.
fn tenant_of_hold_key(k: &[u8]) -> String {
    let rest = &k[HOLD.len()..];
    let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end]).into_owned()
}
