//! Calls' holds and settles on PostgreSQL, written in batches.
//!
//! Every money movement of a tenant takes its `c2c_wallets` row lock, so one busy
//! tenant's holds and settles queue on that lock one durable transaction each: with
//! a wallet, one node ran about half as many lifecycles per second (BENCHMARKS.md,
//! issue 23: 4 -> 7.5 WAL syncs per lifecycle). So calls' holds and settles go to one
//! writer task per node, which takes everything that queued while its previous batch
//! was being written and writes each tenant's share in **one transaction** (the
//! tenants' transactions side by side, so one tenant's lock wait or failure holds up
//! only its own calls): its row lock taken once, its open holds read once, every hold
//! checked against what is left after the ones before it in the batch, every charge
//! planned on the balance the one before left, then a few statements (`UNNEST` of
//! arrays: rows inserted and deleted in one statement each) and one commit. Nothing
//! waits for a window: an idle node writes each job at once, a busy one in batches as
//! large as the load makes them. A hold whose caller stopped waiting is dropped before
//! it is written.
//!
//! The answers are the ones a transaction per job would give, in queue order: a hold
//! refused for want of balance or a settle whose charge reuses a request id is refused
//! alone and writes nothing; the rest of the batch commits. A hold placed and settled
//! in the same batch is never written. A tenant's batch the database refuses is
//! retried whole (serialization failures, deadlocks) or answered with the error, every
//! job of it alike.
//!
//! The queue is bounded ([`QUEUE`]): when it is full, a hold runs in a transaction of
//! its own on the caller's task (`/connect` waits for it), and a settle waits for room
//! (so it never overtakes its call's hold still in the queue).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Weak};

use c2c_billing::ledger::{plan_append, replay};
use c2c_billing::{
    Appended, Balance, Hold, HoldPlaced, LedgerEntry, NewEntry, Settled, WalletError,
};
use deadpool_postgres::Transaction;
use tokio::sync::{mpsc, oneshot};

use crate::dlt::{db_ms, retry_pause, retryable, TX_RETRIES};
use crate::wallet::{
    entry_of, hold_of, lock_wallet, retrying, store_err, Tried, ENTRY_COLUMNS, HOLD_COLUMNS,
};
use crate::PgStore;

/// Jobs queued at most; beyond, a job is written by its caller.
pub(crate) const QUEUE: usize = 4096;
/// Jobs written in one transaction at most.
const MAX_BATCH: usize = 256;

/// One call's hold or settle, as queued.
pub(crate) enum Job {
    Hold {
        tenant: String,
        call_id: String,
        amount_paise: i64,
        at_ms: u64,
        reply: oneshot::Sender<Result<HoldPlaced, WalletError>>,
    },
    Settle {
        tenant: String,
        call_id: String,
        charge: Option<NewEntry>,
        reply: oneshot::Sender<Result<Settled, WalletError>>,
    },
}

impl Job {
    fn tenant(&self) -> &str {
        match self {
            Job::Hold { tenant, .. } | Job::Settle { tenant, .. } => tenant,
        }
    }

    /// A hold nobody waits for any more.
    fn abandoned(&self) -> bool {
        matches!(self, Job::Hold { reply, .. } if reply.is_closed())
    }

    /// Answers the job with a batch's failure.
    fn fail(self, why: &str) {
        let err = || WalletError::Backend(Box::new(BatchFailed(why.to_owned())));
        match self {
            Job::Hold { reply, .. } => {
                let _ = reply.send(Err(err()));
            }
            Job::Settle { reply, .. } => {
                let _ = reply.send(Err(err()));
            }
        }
    }
}

/// A batch the database did not take (the message is the driver's).
#[derive(Debug, thiserror::Error)]
#[error("wallet batch not written: {0}")]
struct BatchFailed(String);

/// The answer a job gets once its batch commits.
enum Answer {
    Hold(Result<HoldPlaced, WalletError>),
    Settle(Result<Settled, WalletError>),
}

/// Starts the writer on `pg`'s I/O runtime (the runtimes that call the store come and
/// go; that one lives as long as the pool). It ends when the returned sender and its
/// clones are dropped.
pub(crate) fn start(pg: &Arc<PgStore>) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel(QUEUE);
    pg.io_handle().spawn(drain(Arc::downgrade(pg), rx));
    tx
}

/// Holds the store weakly: the store owns the runtime this task runs on, so a strong
/// reference would keep both alive for good.
async fn drain(pg: Weak<PgStore>, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        // A hold whose caller stopped waiting is not placed: its `/connect` answered an
        // error and dialled nothing. (A settle is written all the same: it is owed.)
        let mut by_tenant: BTreeMap<String, Vec<Job>> = BTreeMap::new();
        for job in jobs.drain(..).filter(|j| !j.abandoned()) {
            by_tenant
                .entry(job.tenant().to_owned())
                .or_default()
                .push(job);
        }
        let Some(pg) = pg.upgrade() else {
            by_tenant
                .into_values()
                .flatten()
                .for_each(|j| j.fail("the store is closed"));
            continue;
        };
        // A transaction per tenant, run side by side: a tenant whose row another node
        // holds, or whose batch fails, delays and fails only its own calls.
        let written = futures_util::future::join_all(by_tenant.into_values().map(|batch| {
            let pg = &pg;
            async move {
                let r = pg
                    .within_or(write_retrying(pg, &batch), WalletError::Backend)
                    .await;
                (batch, r)
            }
        }))
        .await;
        crate::pool::release(pg);
        for (batch, r) in written {
            answer(batch, r);
        }
    }
}

/// Sends each job of a tenant's batch its answer.
fn answer(batch: Vec<Job>, written: Result<Vec<Answer>, WalletError>) {
    match written {
        Ok(answers) => {
            for (job, answer) in batch.into_iter().zip(answers) {
                // A caller that stopped waiting does not need the answer; the write
                // stands (the wallet sweep settles what it holds).
                match (job, answer) {
                    (Job::Hold { reply, .. }, Answer::Hold(a)) => {
                        let _ = reply.send(a);
                    }
                    (Job::Settle { reply, .. }, Answer::Settle(a)) => {
                        let _ = reply.send(a);
                    }
                    (job, _) => job.fail("answers out of order"),
                }
            }
        }
        Err(e) => {
            // The commit may have landed before the deadline ran out: every job here
            // is idempotent (a retried hold is `existing`, a settle a replay).
            let why = e.to_string();
            tracing::warn!(error = %why, jobs = batch.len(), "wallet batch not written");
            for job in batch {
                job.fail(&why);
            }
        }
    }
}

async fn write_retrying(pg: &PgStore, jobs: &[Job]) -> Result<Vec<Answer>, WalletError> {
    let client = async { pg.checkout().await.map_err(store_err) };
    retrying!(client, |c| try_batch(&mut c, jobs)).await
}

/// One tenant's wallet as the batch sees it: read under its row lock, changed job by
/// job in memory, written at the end.
struct Wallet {
    balance: Balance,
    /// Open holds, the batch's own new ones included.
    holds: HashMap<String, Hold>,
    held: i64,
    /// Request ids of charges this batch's settles carry, as the ledger has them.
    posted: HashMap<String, LedgerEntry>,
    /// Holds to insert and to delete, charges to insert.
    new_holds: BTreeSet<String>,
    gone_holds: Vec<String>,
    entries: Vec<LedgerEntry>,
}

impl Wallet {
    fn available(&self) -> i64 {
        self.balance.balance_paise.saturating_sub(self.held)
    }

    fn hold(&mut self, call_id: &str, amount: i64, at_ms: u64) -> Result<HoldPlaced, WalletError> {
        let available = self.available();
        if let Some(h) = self.holds.get(call_id) {
            return Ok(HoldPlaced {
                hold: h.clone(),
                existing: true,
                available_after_paise: available,
            });
        }
        let after = c2c_billing::plan_hold(available, amount)?;
        let hold = Hold {
            call_id: call_id.to_owned(),
            amount_paise: amount,
            at_ms,
        };
        self.holds.insert(call_id.to_owned(), hold.clone());
        self.new_holds.insert(call_id.to_owned());
        self.held += amount;
        Ok(HoldPlaced {
            hold,
            existing: false,
            available_after_paise: after,
        })
    }

    /// The charge first: a refused one leaves the hold where it was, as the
    /// transaction of a lone settle would.
    fn settle(
        &mut self,
        tenant: &str,
        call_id: &str,
        charge: Option<&NewEntry>,
    ) -> Result<Settled, WalletError> {
        let charge = match charge {
            None => None,
            Some(c) => Some(self.charge(tenant, c)?),
        };
        let released = self.holds.remove(call_id);
        if let Some(h) = &released {
            self.held -= h.amount_paise;
            // A hold of this batch is simply not written.
            if !self.new_holds.remove(call_id) {
                self.gone_holds.push(call_id.to_owned());
            }
        }
        Ok(Settled { released, charge })
    }

    fn charge(&mut self, tenant: &str, c: &NewEntry) -> Result<Appended, WalletError> {
        if let Some(first) = c.request_id.as_ref().and_then(|r| self.posted.get(r)) {
            return replay(first.clone(), c);
        }
        let (entry, after) = plan_append(tenant, self.balance, c)?;
        self.balance = after;
        if let Some(r) = &c.request_id {
            self.posted.insert(r.clone(), entry.clone());
        }
        self.entries.push(entry.clone());
        Ok(Appended {
            entry,
            replayed: false,
        })
    }
}

async fn try_batch(
    client: &mut deadpool_postgres::Object,
    jobs: &[Job],
) -> Result<Vec<Answer>, Tried<Vec<Answer>>> {
    let tx = client.transaction().await?;
    let mut wallets = read_wallets(&tx, jobs).await?;
    let answers: Vec<Answer> = jobs
        .iter()
        .map(|job| {
            let not_read = || WalletError::Corrupt(format!("wallet of {} not read", job.tenant()));
            let w = wallets.get_mut(job.tenant());
            match (job, w) {
                (
                    Job::Hold {
                        call_id,
                        amount_paise,
                        at_ms,
                        ..
                    },
                    Some(w),
                ) => Answer::Hold(w.hold(call_id, *amount_paise, *at_ms)),
                (
                    Job::Settle {
                        tenant,
                        call_id,
                        charge,
                        ..
                    },
                    Some(w),
                ) => Answer::Settle(w.settle(tenant, call_id, charge.as_ref())),
                (Job::Hold { .. }, None) => Answer::Hold(Err(not_read())),
                (Job::Settle { .. }, None) => Answer::Settle(Err(not_read())),
            }
        })
        .collect();
    for (tenant, w) in &wallets {
        write_wallet(&tx, tenant, w).await?;
    }
    tx.commit().await?;
    Ok(answers)
}

/// Locks every tenant's row of the batch (in tenant order) and reads its open holds and
/// the charges its settles might have posted before.
async fn read_wallets<T>(
    tx: &Transaction<'_>,
    jobs: &[Job],
) -> Result<BTreeMap<String, Wallet>, Tried<T>> {
    let mut request_ids: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for job in jobs {
        let rids = request_ids.entry(job.tenant()).or_default();
        if let Job::Settle {
            charge: Some(c), ..
        } = job
        {
            if let Some(r) = &c.request_id {
                rids.push(r);
            }
        }
    }
    let list_holds = tx
        .prepare_cached(&format!(
            "SELECT {HOLD_COLUMNS} FROM c2c_wallet_holds WHERE tenant = $1"
        ))
        .await?;
    let find_posted = tx
        .prepare_cached(&format!(
            "SELECT {ENTRY_COLUMNS} FROM c2c_wallet_ledger
             WHERE tenant = $1 AND request_id = ANY($2)"
        ))
        .await?;
    let mut out = BTreeMap::new();
    for (tenant, rids) in request_ids {
        let balance = lock_wallet(tx, tenant).await?;
        let mut holds = HashMap::new();
        let mut held = 0i64;
        for row in tx.query(&list_holds, &[&tenant]).await? {
            let h = hold_of(&row);
            held = held.saturating_add(h.amount_paise);
            holds.insert(h.call_id.clone(), h);
        }
        let mut posted = HashMap::new();
        if !rids.is_empty() {
            for row in tx.query(&find_posted, &[&tenant, &rids]).await? {
                let e = entry_of(&row).map_err(|e| Tried::Done(Err(e)))?;
                if let Some(r) = e.request_id.clone() {
                    posted.insert(r, e);
                }
            }
        }
        let w = Wallet {
            balance,
            holds,
            held,
            posted,
            new_holds: BTreeSet::new(),
            gone_holds: Vec::new(),
            entries: Vec::new(),
        };
        out.insert(tenant.to_owned(), w);
    }
    Ok(out)
}

/// Writes what the batch changed in one tenant's wallet: a statement per kind of change.
async fn write_wallet<T>(tx: &Transaction<'_>, tenant: &str, w: &Wallet) -> Result<(), Tried<T>> {
    if !w.gone_holds.is_empty() {
        let delete = tx
            .prepare_cached("DELETE FROM c2c_wallet_holds WHERE tenant = $1 AND call_id = ANY($2)")
            .await?;
        tx.execute(&delete, &[&tenant, &w.gone_holds]).await?;
    }
    if !w.new_holds.is_empty() {
        let (mut ids, mut amounts, mut ats) = (Vec::new(), Vec::new(), Vec::new());
        for id in &w.new_holds {
            if let Some(h) = w.holds.get(id) {
                ids.push(h.call_id.as_str());
                amounts.push(h.amount_paise);
                ats.push(db_ms(h.at_ms));
            }
        }
        let insert = tx
            .prepare_cached(&format!(
                "INSERT INTO c2c_wallet_holds (tenant, {HOLD_COLUMNS})
                 SELECT $1, * FROM UNNEST($2::TEXT[], $3::BIGINT[], $4::BIGINT[])"
            ))
            .await?;
        tx.execute(&insert, &[&tenant, &ids, &amounts, &ats])
            .await?;
    }
    if !w.entries.is_empty() {
        insert_entries(tx, tenant, &w.entries).await?;
        let update = tx
            .prepare_cached(
                "UPDATE c2c_wallets SET balance_paise = $2, entries = $3 WHERE tenant = $1",
            )
            .await?;
        tx.execute(
            &update,
            &[&tenant, &w.balance.balance_paise, &db_ms(w.balance.entries)],
        )
        .await?;
    }
    Ok(())
}

async fn insert_entries<T>(
    tx: &Transaction<'_>,
    tenant: &str,
    entries: &[LedgerEntry],
) -> Result<(), Tried<T>> {
    let seqs: Vec<i64> = entries.iter().map(|e| db_ms(e.seq)).collect();
    let ats: Vec<i64> = entries.iter().map(|e| db_ms(e.at_ms)).collect();
    let kinds: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
    let amounts: Vec<i64> = entries.iter().map(|e| e.amount_paise).collect();
    let afters: Vec<i64> = entries.iter().map(|e| e.balance_after_paise).collect();
    let actors: Vec<&str> = entries.iter().map(|e| e.actor.as_str()).collect();
    let reasons: Vec<&str> = entries.iter().map(|e| e.reason.as_str()).collect();
    let calls: Vec<Option<&str>> = entries.iter().map(|e| e.call_id.as_deref()).collect();
    let rids: Vec<Option<&str>> = entries.iter().map(|e| e.request_id.as_deref()).collect();
    let insert = tx
        .prepare_cached(&format!(
            "INSERT INTO c2c_wallet_ledger ({ENTRY_COLUMNS})
             SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::BIGINT[],
                 $6::BIGINT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::TEXT[])"
        ))
        .await?;
    tx.execute(
        &insert,
        &[
            &tenant, &seqs, &ats, &kinds, &amounts, &afters, &actors, &reasons, &calls, &rids,
        ],
    )
    .await?;
    Ok(())
}
