//! Where wallets persist: the [`WalletStore`] trait, its sled implementation (tree
//! `wallet` of the gateway's database) and an in-memory one for tests.

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::durability::OwnFlush;
use crate::hold::{check_call_id, check_charge, plan_hold};
use crate::ledger::replay;
use crate::sled_held::Held;
use crate::sled_settle::{plan, Overlay, SettleQueue};
use crate::Durability;
use crate::WalletError;
use crate::{
    check_tenant, Appended, Balance, Hold, HoldPlaced, LedgerCheck, LedgerEntry, LedgerFault,
    NewEntry, Settled,
};

/// Most entries one [`WalletStore::statement`] call returns.
pub const MAX_STATEMENT_PAGE: usize = 1_000;

/// Persistence of every tenant's wallet ledger. Object-safe (`Arc<dyn WalletStore>`).
///
/// **Promises** (the contract suite checks them): an append writes its entry and the
/// new balance in one atomic step and returns once both are durable; appends to one
/// tenant are serialised, so seqs run 1, 2, 3, ... without gaps and each entry's balance
/// after is the one before plus its amount; a refused append (invalid, below its floor,
/// a reused request id) writes nothing; a request id is remembered per tenant for good.
#[async_trait]
pub trait WalletStore: Send + Sync {
    /// Appends `entry` to `tenant`'s ledger (see the trait's promises). When the
    /// entry's request id was used before, answers that entry with `replayed` (or
    /// [`WalletError::RequestIdReused`] when kind or amount differ).
    async fn append(&self, tenant: &str, entry: &NewEntry) -> Result<Appended, WalletError>;

    /// The tenant's balance (zero, no entries, for a tenant that never had one).
    async fn balance(&self, tenant: &str) -> Result<Balance, WalletError>;

    /// Up to `limit` entries (at most [`MAX_STATEMENT_PAGE`]) with a seq above
    /// `after_seq`, oldest first.
    async fn statement(
        &self,
        tenant: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, WalletError>;

    /// Every tenant with a ledger and its balance, in tenant order.
    async fn balances(&self) -> Result<Vec<(String, Balance)>, WalletError>;

    /// Sets `amount_paise` aside for `call_id` when the tenant has that much available
    /// (balance minus every open hold), checked and written in one atomic step, so calls
    /// starting at once cannot together hold more than there is
    /// ([`WalletError::InsufficientBalance`], nothing written). A call that holds
    /// already gets its hold back (`existing`): a retried `/connect` takes nothing twice.
    async fn place_hold(
        &self,
        tenant: &str,
        call_id: &str,
        amount_paise: i64,
        at_ms: u64,
    ) -> Result<HoldPlaced, WalletError>;

    /// Ends `call_id`'s hold and appends its charge (if any: an unanswered call costs
    /// nothing) in one atomic step. Idempotent: settling again releases nothing and
    /// answers the charge as a replay, so the runner and a recovery sweep may both
    /// settle a call. The charge must be the call's own ([`crate::call_charge`]).
    async fn settle(
        &self,
        tenant: &str,
        call_id: &str,
        charge: Option<&NewEntry>,
    ) -> Result<Settled, WalletError>;

    /// The tenant's open holds, in call id order.
    async fn holds(&self, tenant: &str) -> Result<Vec<Hold>, WalletError>;

    /// Every tenant's open holds, in tenant then call id order (the recovery sweep).
    async fn all_holds(&self) -> Result<Vec<(String, Hold)>, WalletError>;

    /// What the tenant may spend on new calls: the balance minus its open holds (read
    /// in two steps: for a check before a call, not for the hold itself).
    async fn available(&self, tenant: &str) -> Result<i64, WalletError> {
        let balance = self.balance(tenant).await?.balance_paise;
        let held: i64 = self
            .holds(tenant)
            .await?
            .iter()
            .map(|h| h.amount_paise)
            .sum();
        Ok(balance.saturating_sub(held))
    }
}

/// The checks every backend makes before a hold or a settle.
pub(crate) fn check_hold_args(tenant: &str, call_id: &str) -> Result<(), WalletError> {
    check_tenant(tenant)?;
    check_call_id(call_id)
}

/// [`check_hold_args`] and, for a settle, the charge's own checks.
pub(crate) fn check_settle_args(
    tenant: &str,
    call_id: &str,
    charge: Option<&NewEntry>,
) -> Result<(), WalletError> {
    check_hold_args(tenant, call_id)?;
    charge.map_or(Ok(()), |c| check_charge(call_id, c))
}

/// Reads `tenant`'s whole ledger a page at a time and checks that it adds up to the
/// balance the store holds (`db check`). `Ok(Err(fault))`: the store answered, the
/// ledger is wrong.
pub async fn check_ledger(
    s: &dyn WalletStore,
    tenant: &str,
) -> Result<Result<Balance, LedgerFault>, WalletError> {
    // The balance first: appends made while the pages are read come after it, and the
    // check stops at its last seq.
    let stored = s.balance(tenant).await?;
    let mut check = LedgerCheck::default();
    let mut after = 0;
    while after < stored.entries {
        let page = s.statement(tenant, after, MAX_STATEMENT_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in page.iter().filter(|e| e.seq <= stored.entries) {
            if let Err(fault) = check.push(e) {
                return Ok(Err(fault));
            }
        }
    }
    Ok(check.finish(stored))
}

pub(crate) const BALANCE: &[u8] = b"b/";
pub(crate) const ENTRY: &[u8] = b"e/";
pub(crate) const REQUEST: &[u8] = b"r/";
pub(crate) const HOLD: &[u8] = b"h/";

/// The `wallet` tree: `b/<tenant>` -> balance (i64 BE) + entries (u64 BE),
/// `e/<tenant>\0<seq u64 BE>` -> entry JSON, `r/<tenant>\0<request id>` -> seq (u64 BE),
/// `h/<tenant>\0<call id>` -> hold JSON.
pub struct SledWalletStore {
    tree: sled::Tree,
    /// Serialises every write of the tree (appends, holds, settle batches), and guards
    /// the in-memory mirror of the holds and balances (`crate::sled_held`).
    appends: std::sync::Arc<Mutex<Held>>,
    /// Calls' settles, written in batches (`crate::sled_settle`).
    settles: SettleQueue,
    /// What an append (an owner's or operator's entry) waits for before it answers.
    durability: std::sync::Arc<dyn Durability>,
    /// What a call's hold and settle wait for (see [`SledWalletStore::open_with`]).
    call_durability: std::sync::Arc<dyn Durability>,
}

/// `prefix + tenant`, then `\0 + tail` when there is one: tenant ids hold no NUL, so one
/// tenant's range never overlaps another's ("acme" vs "acme-2").
pub(crate) fn key(prefix: &[u8], tenant: &str, tail: Option<&[u8]>) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + tenant.len() + 1 + tail.map_or(0, <[u8]>::len));
    k.extend_from_slice(prefix);
    k.extend_from_slice(tenant.as_bytes());
    if let Some(t) = tail {
        k.push(0);
        k.extend_from_slice(t);
    }
    k
}

pub(crate) fn encode_balance(b: Balance) -> [u8; 16] {
    let mut v = [0; 16];
    v[..8].copy_from_slice(&b.balance_paise.to_be_bytes());
    v[8..].copy_from_slice(&b.entries.to_be_bytes());
    v
}

pub(crate) fn decode_balance(v: Option<&[u8]>) -> Result<Balance, WalletError> {
    let Some(v) = v else {
        return Ok(Balance::default());
    };
    let (a, b) = (v.get(..8), v.get(8..16));
    match (
        a.and_then(|a| a.try_into().ok()),
        b.and_then(|b| b.try_into().ok()),
    ) {
        (Some(a), Some(b)) if v.len() == 16 => Ok(Balance {
            balance_paise: i64::from_be_bytes(a),
            entries: u64::from_be_bytes(b),
        }),
        _ => Err(WalletError::Corrupt(format!(
            "a balance of {} bytes",
            v.len()
        ))),
    }
}

pub(crate) fn decode_seq(v: &[u8]) -> Result<u64, WalletError> {
    v.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| WalletError::Corrupt(format!("a request's seq of {} bytes", v.len())))
}

/// What the append transaction decided.
pub(crate) enum Outcome {
    Written(LedgerEntry),
    Replay(LedgerEntry),
}

impl SledWalletStore {
    /// The `wallet` tree of `db`, each write made durable by a flush of its own.
    pub fn open(db: &sled::Db) -> Result<Self, WalletError> {
        let tree = db.open_tree("wallet")?;
        let own = std::sync::Arc::new(OwnFlush(tree.clone()));
        Self::assemble(tree, own.clone(), own)
    }

    fn assemble(
        tree: sled::Tree,
        durability: std::sync::Arc<dyn Durability>,
        call_durability: std::sync::Arc<dyn Durability>,
    ) -> Result<Self, WalletError> {
        let appends = std::sync::Arc::new(Mutex::new(Held::load(&tree)?));
        let settles = SettleQueue::start(tree.clone(), appends.clone())?;
        Ok(Self {
            tree,
            appends,
            settles,
            durability,
            call_durability,
        })
    }

    /// The `wallet` tree of `db`: appends wait for `durability` (a group commit over the
    /// same database), holds and settles for `call_durability`. The gateway passes a
    /// barrier that does not wait for the latter, because the call store's own writes
    /// cover them: a hold is followed by `/connect`'s durable DIALING write (one flush of
    /// the database covers both, and nothing is dialled before it), and a settle is
    /// re-posted from the call's durable record by the wallet sweep if a crash loses it.
    /// That saves two flushes of the database per call (tests/bench/wallet.sh).
    pub fn open_with(
        db: &sled::Db,
        durability: std::sync::Arc<dyn Durability>,
        call_durability: std::sync::Arc<dyn Durability>,
    ) -> Result<Self, WalletError> {
        Self::assemble(db.open_tree("wallet")?, durability, call_durability)
    }

    /// Decides and applies one append. The store's mutex serialises appends (this
    /// process owns the sled database), and the entry, the balance and the request id
    /// go in one atomic batch. Not a sled transaction: sled 0.34 transactions that
    /// only read, run while `flush_async` calls are in flight, hang every flusher
    /// (reproduced on upstream 0.34.7 with eight tasks; plain writes do not).
    fn append_now(&self, tenant: &str, e: &NewEntry) -> Result<Outcome, WalletError> {
        let mut held = self.appends.lock();
        let mut batch = sled::Batch::default();
        let mut overlay = Overlay::default();
        let outcome = plan(&self.tree, tenant, e, &mut batch, &mut overlay)?;
        self.tree.apply_batch(batch)?;
        held.set_balances(overlay.into_balances());
        Ok(outcome)
    }

    fn hold_now(
        &self,
        tenant: &str,
        call_id: &str,
        amount_paise: i64,
        at_ms: u64,
    ) -> Result<HoldPlaced, WalletError> {
        let mut held = self.appends.lock();
        let balance = held.balance(&self.tree, tenant)?;
        let available = balance.balance_paise.saturating_sub(held.sum(tenant));
        if let Some(hold) = held.hold(tenant, call_id) {
            return Ok(HoldPlaced {
                hold: hold.clone(),
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
        let hkey = key(HOLD, tenant, Some(call_id.as_bytes()));
        self.tree.insert(hkey, serde_json::to_vec(&hold)?)?;
        held.insert(tenant, hold.clone());
        Ok(HoldPlaced {
            hold,
            existing: false,
            available_after_paise: after,
        })
    }

    /// [`WalletStore::holds`] without a runtime.
    pub fn load_holds(&self, tenant: &str) -> Result<Vec<Hold>, WalletError> {
        check_tenant(tenant)?;
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(key(HOLD, tenant, Some(b""))) {
            let (_, v) = kv?;
            out.push(serde_json::from_slice(&v)?);
        }
        Ok(out)
    }

    /// Waits until everything written so far is on disk.
    async fn durable(&self) -> Result<(), WalletError> {
        self.durability.sync().await
    }

    /// [`WalletStore::balances`] without a runtime (`db check` on a stopped store).
    pub fn load_balances(&self) -> Result<Vec<(String, Balance)>, WalletError> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(BALANCE) {
            let (k, v) = kv?;
            let tenant = String::from_utf8_lossy(&k[BALANCE.len()..]).into_owned();
            out.push((tenant, decode_balance(Some(&v))?));
        }
        Ok(out)
    }

    /// [`WalletStore::balance`] without a runtime.
    pub fn load_balance(&self, tenant: &str) -> Result<Balance, WalletError> {
        check_tenant(tenant)?;
        decode_balance(self.tree.get(key(BALANCE, tenant, None))?.as_deref())
    }

    /// [`WalletStore::statement`] without a runtime.
    pub fn load_statement(
        &self,
        tenant: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, WalletError> {
        check_tenant(tenant)?;
        let from = key(
            ENTRY,
            tenant,
            Some(&after_seq.saturating_add(1).to_be_bytes()),
        );
        let to = key(ENTRY, tenant, Some(&u64::MAX.to_be_bytes()));
        let mut out = Vec::new();
        if after_seq == u64::MAX {
            return Ok(out);
        }
        for kv in self
            .tree
            .range(from..=to)
            .take(limit.min(MAX_STATEMENT_PAGE))
        {
            let (_, v) = kv?;
            out.push(serde_json::from_slice(&v)?);
        }
        Ok(out)
    }
}

#[async_trait]
impl WalletStore for SledWalletStore {
    async fn append(&self, tenant: &str, entry: &NewEntry) -> Result<Appended, WalletError> {
        check_tenant(tenant)?;
        entry.validate()?;
        let outcome = self.append_now(tenant, entry)?;
        // A replay is durable already? Not necessarily: the first append may still be in
        // the page cache when its twin arrives, so both wait for the flush.
        self.durable().await?;
        match outcome {
            Outcome::Written(entry) => Ok(Appended {
                entry,
                replayed: false,
            }),
            Outcome::Replay(first) => replay(first, entry),
        }
    }

    async fn balance(&self, tenant: &str) -> Result<Balance, WalletError> {
        self.load_balance(tenant)
    }

    async fn statement(
        &self,
        tenant: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, WalletError> {
        self.load_statement(tenant, after_seq, limit)
    }

    async fn balances(&self) -> Result<Vec<(String, Balance)>, WalletError> {
        self.load_balances()
    }

    async fn place_hold(
        &self,
        tenant: &str,
        call_id: &str,
        amount_paise: i64,
        at_ms: u64,
    ) -> Result<HoldPlaced, WalletError> {
        check_hold_args(tenant, call_id)?;
        let placed = self.hold_now(tenant, call_id, amount_paise, at_ms)?;
        self.call_durability.sync().await?;
        Ok(placed)
    }

    async fn settle(
        &self,
        tenant: &str,
        call_id: &str,
        charge: Option<&NewEntry>,
    ) -> Result<Settled, WalletError> {
        check_settle_args(tenant, call_id, charge)?;
        let (released, outcome) = self.settles.settle(tenant, call_id, charge).await?;
        self.call_durability.sync().await?;
        let charge = match (outcome, charge) {
            (Some(Outcome::Written(entry)), _) => Some(Appended {
                entry,
                replayed: false,
            }),
            (Some(Outcome::Replay(first)), Some(c)) => Some(replay(first, c)?),
            _ => None,
        };
        Ok(Settled { released, charge })
    }

    /// From the in-memory mirror (`crate::sled_held`), not the tree.
    async fn holds(&self, tenant: &str) -> Result<Vec<Hold>, WalletError> {
        check_tenant(tenant)?;
        Ok(self.appends.lock().holds(tenant))
    }

    /// From the in-memory mirror: the balance watch reads every hold every two seconds.
    async fn all_holds(&self) -> Result<Vec<(String, Hold)>, WalletError> {
        Ok(self.appends.lock().all())
    }

    /// The balance minus the tenant's held sum, both from the in-memory mirror: no sled
    /// read on click2call's path.
    async fn available(&self, tenant: &str) -> Result<i64, WalletError> {
        check_tenant(tenant)?;
        let mut held = self.appends.lock();
        let balance = held.balance(&self.tree, tenant)?;
        Ok(balance.balance_paise.saturating_sub(held.sum(tenant)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::MemWalletStore;

    #[tokio::test]
    async fn memory_keeps_the_contract() {
        crate::contract::wallet_store_contract(Arc::new(MemWalletStore::new()))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn sled_keeps_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let s = Arc::new(SledWalletStore::open(&db).unwrap());
        crate::contract::wallet_store_contract(s).await.unwrap();
    }

    /// Every write waits for the durability it was opened with (the gateway's group
    /// commit), once; reads do not.
    #[tokio::test]
    async fn sled_writes_wait_for_the_durability_they_were_given() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Counting(AtomicUsize);
        #[async_trait]
        impl Durability for Counting {
            async fn sync(&self) -> Result<(), WalletError> {
                self.0.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let counting = Arc::new(Counting(AtomicUsize::new(0)));
        let calls = Arc::new(Counting(AtomicUsize::new(0)));
        let s = SledWalletStore::open_with(&db, counting.clone(), calls.clone()).unwrap();
        crate::contract::fill(&s, "acme", 3).await.unwrap();
        s.place_hold("acme", "c_1", 2, 1).await.unwrap();
        s.settle("acme", "c_1", None).await.unwrap();
        s.balance("acme").await.unwrap();
        s.holds("acme").await.unwrap();
        assert_eq!(counting.0.load(Ordering::SeqCst), 3, "the appends");
        assert_eq!(calls.0.load(Ordering::SeqCst), 2, "the hold and the settle");
    }

    /// The in-memory mirror (holds, held sums, balances) answers what the tree holds,
    /// through holds, retried holds, refusals, settles with and without a charge and
    /// owner appends, and again after a reopen rebuilt it from the tree.
    #[tokio::test]
    async fn the_sled_mirror_answers_what_the_tree_holds() {
        async fn agree(s: &SledWalletStore, tenants: &[&str]) {
            let mut all = Vec::new();
            for t in tenants {
                let tree_holds = s.load_holds(t).unwrap();
                assert_eq!(s.holds(t).await.unwrap(), tree_holds, "{t}'s holds");
                let held: i64 = tree_holds.iter().map(|h| h.amount_paise).sum();
                let balance = s.load_balance(t).unwrap().balance_paise;
                assert_eq!(s.available(t).await.unwrap(), balance - held, "{t}");
                all.extend(tree_holds.into_iter().map(|h| (t.to_string(), h)));
            }
            assert_eq!(s.all_holds().await.unwrap(), all);
        }
        let dir = tempfile::tempdir().unwrap();
        let tenants = ["acme", "acme-2"];
        {
            let db = sled::open(dir.path()).unwrap();
            let s = SledWalletStore::open(&db).unwrap();
            crate::contract::fill(&s, "acme", 10).await.unwrap(); // 55
            crate::contract::fill(&s, "acme-2", 4).await.unwrap(); // 10
            agree(&s, &tenants).await;
            s.place_hold("acme", "c2c_b", 20, 1).await.unwrap();
            s.place_hold("acme", "c2c_a", 5, 1).await.unwrap();
            s.place_hold("acme-2", "c2c_a", 7, 1).await.unwrap();
            // A retried hold takes nothing more; one beyond what is available, nothing.
            assert!(s.place_hold("acme", "c2c_a", 5, 2).await.unwrap().existing);
            assert!(s.place_hold("acme-2", "c2c_c", 4, 1).await.is_err());
            agree(&s, &tenants).await;
            let charge = crate::call_charge("c2c_b", 3, "talk".into(), 2);
            s.settle("acme", "c2c_b", Some(&charge)).await.unwrap();
            s.settle("acme", "c2c_b", Some(&charge)).await.unwrap();
            s.settle("acme-2", "c2c_a", None).await.unwrap();
            crate::contract::fill(&s, "acme-2", 1).await.unwrap();
            agree(&s, &tenants).await;
            assert_eq!(s.available("acme").await.unwrap(), 55 - 3 - 5);
            db.flush().unwrap();
        }
        let db = sled::open(dir.path()).unwrap();
        let s = SledWalletStore::open(&db).unwrap();
        agree(&s, &tenants).await;
        assert_eq!(s.holds("acme").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn sled_ledgers_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let s = SledWalletStore::open(&db).unwrap();
            crate::contract::fill(&s, "acme", 5).await.unwrap();
        }
        let db = sled::open(dir.path()).unwrap();
        let s = SledWalletStore::open(&db).unwrap();
        let b = check_ledger(&s, "acme").await.unwrap().unwrap();
        assert_eq!((b.balance_paise, b.entries), (15, 5));
    }

    #[tokio::test]
    async fn a_tampered_sled_ledger_fails_its_check() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let s = SledWalletStore::open(&db).unwrap();
        crate::contract::fill(&s, "acme", 3).await.unwrap();
        // Someone edits the balance by hand: the ledger no longer sums to it.
        let tree = db.open_tree("wallet").unwrap();
        let forged = Balance {
            balance_paise: 1_000_000,
            entries: 3,
        };
        tree.insert(key(BALANCE, "acme", None), &encode_balance(forged)[..])
            .unwrap();
        let fault = check_ledger(&s, "acme").await.unwrap().unwrap_err();
        assert!(
            matches!(
                fault,
                LedgerFault::Balance {
                    stored: 1_000_000,
                    sum: 6,
                    ..
                }
            ),
            "{fault}"
        );
    }
}
