//! [`MemWalletStore`]: the wallet store in memory, for tests.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::hold::plan_hold;
use crate::ledger::{plan_append, replay};
use crate::store::{check_hold_args, check_settle_args, MAX_STATEMENT_PAGE};
use crate::{
    check_tenant, Appended, Balance, Hold, HoldPlaced, LedgerEntry, NewEntry, Settled, WalletError,
    WalletStore,
};

/// [`WalletStore`] in memory, for tests: one mutex, so an append is one atomic step.
#[derive(Default)]
pub struct MemWalletStore {
    wallets: Mutex<BTreeMap<String, MemWallet>>,
}

#[derive(Default)]
struct MemWallet {
    balance: Balance,
    entries: Vec<LedgerEntry>,
    requests: HashMap<String, usize>,
    holds: BTreeMap<String, Hold>,
}

/// Appends `entry` to `w` (of `tenant`), or answers its replay.
fn append_to(tenant: &str, w: &mut MemWallet, entry: &NewEntry) -> Result<Appended, WalletError> {
    if let Some(i) = entry.request_id.as_ref().and_then(|r| w.requests.get(r)) {
        return replay(w.entries[*i].clone(), entry);
    }
    let (e, after) = plan_append(tenant, w.balance, entry)?;
    if let Some(r) = &entry.request_id {
        w.requests.insert(r.clone(), w.entries.len());
    }
    w.entries.push(e.clone());
    w.balance = after;
    Ok(Appended {
        entry: e,
        replayed: false,
    })
}

impl MemWalletStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl WalletStore for MemWalletStore {
    async fn append(&self, tenant: &str, entry: &NewEntry) -> Result<Appended, WalletError> {
        check_tenant(tenant)?;
        entry.validate()?;
        let mut all = self.wallets.lock();
        // Nothing is created for a refused append.
        let mut w = all.remove(tenant).unwrap_or_default();
        let answer = append_to(tenant, &mut w, entry);
        if !w.entries.is_empty() || !w.holds.is_empty() {
            all.insert(tenant.to_owned(), w);
        }
        answer
    }

    async fn balance(&self, tenant: &str) -> Result<Balance, WalletError> {
        check_tenant(tenant)?;
        Ok(self
            .wallets
            .lock()
            .get(tenant)
            .map(|w| w.balance)
            .unwrap_or_default())
    }

    async fn statement(
        &self,
        tenant: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, WalletError> {
        check_tenant(tenant)?;
        let all = self.wallets.lock();
        let Some(w) = all.get(tenant) else {
            return Ok(Vec::new());
        };
        Ok(w.entries
            .iter()
            .filter(|e| e.seq > after_seq)
            .take(limit.min(MAX_STATEMENT_PAGE))
            .cloned()
            .collect())
    }

    async fn balances(&self) -> Result<Vec<(String, Balance)>, WalletError> {
        Ok(self
            .wallets
            .lock()
            .iter()
            .filter(|(_, w)| !w.entries.is_empty())
            .map(|(t, w)| (t.clone(), w.balance))
            .collect())
    }

    async fn place_hold(
        &self,
        tenant: &str,
        call_id: &str,
        amount_paise: i64,
        at_ms: u64,
    ) -> Result<HoldPlaced, WalletError> {
        check_hold_args(tenant, call_id)?;
        let mut all = self.wallets.lock();
        let w = all.entry(tenant.to_owned()).or_default();
        let held: i64 = w.holds.values().map(|h| h.amount_paise).sum();
        let available = w.balance.balance_paise.saturating_sub(held);
        if let Some(h) = w.holds.get(call_id) {
            return Ok(HoldPlaced {
                hold: h.clone(),
                existing: true,
                available_after_paise: available,
            });
        }
        let after = plan_hold(available, amount_paise)?;
        let hold = Hold {
            call_id: call_id.to_owned(),
            amount_paise,
            at_ms,
        };
        w.holds.insert(call_id.to_owned(), hold.clone());
        Ok(HoldPlaced {
            hold,
            existing: false,
            available_after_paise: after,
        })
    }

    async fn settle(
        &self,
        tenant: &str,
        call_id: &str,
        charge: Option<&NewEntry>,
    ) -> Result<Settled, WalletError> {
        check_settle_args(tenant, call_id, charge)?;
        let mut all = self.wallets.lock();
        let w = all.entry(tenant.to_owned()).or_default();
        // One step: a refused charge releases nothing either.
        let charge = charge.map(|c| append_to(tenant, w, c)).transpose()?;
        let released = w.holds.remove(call_id);
        Ok(Settled { released, charge })
    }

    async fn holds(&self, tenant: &str) -> Result<Vec<Hold>, WalletError> {
        check_tenant(tenant)?;
        Ok(self
            .wallets
            .lock()
            .get(tenant)
            .map(|w| w.holds.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn all_holds(&self) -> Result<Vec<(String, Hold)>, WalletError> {
        Ok(self
            .wallets
            .lock()
            .iter()
            .flat_map(|(t, w)| w.holds.values().map(|h| (t.clone(), h.clone())))
            .collect())
    }
}
