//! Settles of the sled wallet, written in batches.
//!
//! A call's settle (release its hold, post its charge) is not on any caller's critical
//! path: the call's durable record already fixes the charge, the hold keeps the money
//! unavailable until the settle lands, and the wallet sweep re-settles from the record
//! after a crash. So settles queue to one writer thread, which waits [`WINDOW`] after the
//! first and writes everything that arrived in one sled batch: one balance write per
//! tenant, one pass over the tree. Written one by one, every settle dirtied the wallet's
//! balance, ledger and hold pages again before the next flush of the database, and
//! charged calls ran at about 62 % of uncharged ones (BENCHMARKS.md, issue 23).
//!
//! The queue is bounded ([`QUEUE`]); when it is full a settle is written on the spot
//! instead of waiting, so nothing blocks and nothing is dropped.

use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::hold::Hold;
use crate::ledger::{plan_append, Balance, LedgerEntry, NewEntry};
use crate::sled_held::Held;
use crate::store::{
    decode_balance, decode_seq, encode_balance, key, Outcome, BALANCE, ENTRY, HOLD, REQUEST,
};
use crate::WalletError;

/// How long the writer gathers settles after the first one arrives.
pub const WINDOW: Duration = Duration::from_millis(10);
/// Settles queued at most; beyond, a settle is written by its caller.
pub const QUEUE: usize = 4096;
/// Settles written in one batch at most.
const MAX_BATCH: usize = 512;

/// What a settle decided: the hold it released and the charge it wrote or replayed.
pub(crate) type SettleResult = Result<(Option<Hold>, Option<Outcome>), WalletError>;

struct Job {
    tenant: String,
    call_id: String,
    charge: Option<NewEntry>,
    reply: tokio::sync::oneshot::Sender<SettleResult>,
}

/// What a batch planned so far, read before the tree: appends in one batch see each
/// other's balances and request ids.
#[derive(Default)]
pub(crate) struct Overlay {
    balances: HashMap<String, Balance>,
    requests: HashMap<(String, String), LedgerEntry>,
}

impl Overlay {
    /// The balances the batch wrote, for the in-memory mirror once it is applied.
    pub(crate) fn into_balances(self) -> HashMap<String, Balance> {
        self.balances
    }
}

/// What appending `e` writes, added to `batch` and `overlay` (a replay adds nothing).
/// Caller holds the append lock.
pub(crate) fn plan(
    tree: &sled::Tree,
    tenant: &str,
    e: &NewEntry,
    batch: &mut sled::Batch,
    overlay: &mut Overlay,
) -> Result<Outcome, WalletError> {
    if let Some(rid) = &e.request_id {
        if let Some(first) = overlay.requests.get(&(tenant.to_owned(), rid.clone())) {
            return Ok(Outcome::Replay(first.clone()));
        }
        if let Some(seq) = tree.get(key(REQUEST, tenant, Some(rid.as_bytes())))? {
            let seq = decode_seq(&seq)?;
            let first = tree
                .get(key(ENTRY, tenant, Some(&seq.to_be_bytes())))?
                .ok_or_else(|| {
                    WalletError::Corrupt(format!(
                        "request id '{rid}' points at missing entry {seq}"
                    ))
                })?;
            return Ok(Outcome::Replay(serde_json::from_slice(&first)?));
        }
    }
    let bkey = key(BALANCE, tenant, None);
    let cur = match overlay.balances.get(tenant) {
        Some(b) => *b,
        None => decode_balance(tree.get(&bkey)?.as_deref())?,
    };
    let (entry, after) = plan_append(tenant, cur, e)?;
    let seq = entry.seq.to_be_bytes();
    // The last balance inserted into a batch is the one written.
    batch.insert(bkey, &encode_balance(after)[..]);
    batch.insert(key(ENTRY, tenant, Some(&seq)), serde_json::to_vec(&entry)?);
    overlay.balances.insert(tenant.to_owned(), after);
    if let Some(rid) = &e.request_id {
        batch.insert(key(REQUEST, tenant, Some(rid.as_bytes())), &seq[..]);
        overlay
            .requests
            .insert((tenant.to_owned(), rid.clone()), entry.clone());
    }
    Ok(Outcome::Written(entry))
}

/// The settles of one batch, in order, under the append lock; one `apply_batch`.
fn write(
    tree: &sled::Tree,
    appends: &Mutex<Held>,
    jobs: &[(&str, &str, Option<&NewEntry>)],
) -> Vec<SettleResult> {
    let mut held = appends.lock();
    let mut batch = sled::Batch::default();
    let mut overlay = Overlay::default();
    let mut released: HashMap<(&str, &str), ()> = HashMap::new();
    let mut out = Vec::with_capacity(jobs.len());
    for &(tenant, call_id, charge) in jobs {
        let one = (|| {
            let outcome = charge
                .map(|c| plan(tree, tenant, c, &mut batch, &mut overlay))
                .transpose()?;
            let hkey = key(HOLD, tenant, Some(call_id.as_bytes()));
            // A second settle of the call in this batch releases nothing.
            let hold = if released.insert((tenant, call_id), ()).is_some() {
                None
            } else {
                held.hold(tenant, call_id).cloned()
            };
            batch.remove(hkey);
            Ok((hold, outcome))
        })();
        out.push(one);
    }
    if let Err(e) = tree.apply_batch(batch) {
        let msg = e.to_string();
        return jobs
            .iter()
            .map(|_| {
                Err(WalletError::Corrupt(format!(
                    "settle batch not written: {msg}"
                )))
            })
            .collect();
    }
    for (&(tenant, call_id, _), r) in jobs.iter().zip(&out) {
        if let Ok((Some(_), _)) = r {
            held.remove(tenant, call_id);
        }
    }
    held.set_balances(overlay.into_balances());
    out
}

/// The writer's end: the queue and the thread that drains it.
pub(crate) struct SettleQueue {
    /// `None` only while dropping.
    tx: Option<SyncSender<Job>>,
    tree: sled::Tree,
    appends: Arc<Mutex<Held>>,
    /// Joined on drop: the thread holds the tree, and so the database, open; a store
    /// reopened right after must find it closed.
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for SettleQueue {
    fn drop(&mut self) {
        // Closing the queue ends the writer once it has answered what it holds.
        self.tx = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl SettleQueue {
    /// Starts the writer thread; it ends when the queue is dropped.
    pub(crate) fn start(tree: sled::Tree, appends: Arc<Mutex<Held>>) -> Result<Self, WalletError> {
        let (tx, rx) = sync_channel(QUEUE);
        let (t, a) = (tree.clone(), appends.clone());
        let writer = std::thread::Builder::new()
            .name("wallet-settle".into())
            .spawn(move || drain(t, &a, &rx))
            .map_err(|e| WalletError::Corrupt(format!("cannot start the settle writer: {e}")))?;
        Ok(Self {
            tx: Some(tx),
            tree,
            appends,
            writer: Some(writer),
        })
    }

    /// Settles `call_id` in the next batch (or now, when the queue is full).
    pub(crate) async fn settle(
        &self,
        tenant: &str,
        call_id: &str,
        charge: Option<&NewEntry>,
    ) -> SettleResult {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            tenant: tenant.to_owned(),
            call_id: call_id.to_owned(),
            charge: charge.cloned(),
            reply,
        };
        let sent = match &self.tx {
            Some(tx) => tx.try_send(job),
            None => Err(TrySendError::Disconnected(job)),
        };
        match sent {
            Ok(()) => answer
                .await
                .unwrap_or_else(|_| Err(WalletError::Corrupt("the settle writer stopped".into()))),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                write(&self.tree, &self.appends, &[(tenant, call_id, charge)])
                    .pop()
                    .unwrap_or_else(|| Err(WalletError::Corrupt("empty settle batch".into())))
            }
        }
    }
}

/// The writer thread: waits for a settle, gathers for [`WINDOW`], writes, answers.
///
/// It sleeps through the window and then takes what queued, rather than receiving each
/// settle as it comes: a receiver blocked in `recv_timeout` is woken by every send (a
/// futex wake on the sender's proxy thread and a context switch here, per call), a
/// sleeping one by none.
fn drain(tree: sled::Tree, appends: &Mutex<Held>, rx: &Receiver<Job>) {
    let tree = &tree;
    while let Ok(first) = rx.recv() {
        std::thread::sleep(WINDOW);
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let args: Vec<(&str, &str, Option<&NewEntry>)> = jobs
            .iter()
            .map(|j| (j.tenant.as_str(), j.call_id.as_str(), j.charge.as_ref()))
            .collect();
        let results = write(tree, appends, &args);
        for (job, r) in jobs.into_iter().zip(results) {
            // A caller that stopped waiting does not need the answer; the write stands.
            let _ = job.reply.send(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::contract::fill;
    use crate::{call_charge, SledWalletStore, WalletStore};

    /// 40 calls settled at once, each twice (the runner and the sweep racing), land in
    /// a few batches: every charge once, every hold released once, the balance exact.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_settles_in_batches_charge_each_call_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let s = Arc::new(SledWalletStore::open(&db).unwrap());
        fill(&*s, "acme", 100).await.unwrap(); // 5,050 paise
        for i in 0..40 {
            s.place_hold("acme", &format!("c2c_{i:032x}"), 100, 1)
                .await
                .unwrap();
        }
        assert_eq!(s.available("acme").await.unwrap(), 5_050 - 4_000);
        let mut tasks = Vec::new();
        for i in 0..80 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let call = format!("c2c_{:032x}", i % 40);
                let c = call_charge(&call, 7, "talk".into(), 2);
                s.settle("acme", &call, Some(&c)).await.unwrap()
            }));
        }
        let mut released = 0;
        let mut written = 0;
        for t in tasks {
            let r = t.await.unwrap();
            released += usize::from(r.released.is_some());
            written += usize::from(r.charge.is_some_and(|c| !c.replayed));
        }
        assert_eq!((released, written), (40, 40));
        let b = s.balance("acme").await.unwrap();
        assert_eq!((b.balance_paise, b.entries), (5_050 - 280, 140));
        assert!(s.all_holds().await.unwrap().is_empty());
        assert_eq!(s.available("acme").await.unwrap(), 5_050 - 280);
        let check = crate::check_ledger(&*s, "acme").await.unwrap();
        assert!(check.is_ok(), "{check:?}");
    }

    /// The held sums are rebuilt from the holds when the store opens.
    #[tokio::test]
    async fn held_sums_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let s = SledWalletStore::open(&db).unwrap();
            fill(&s, "acme", 10).await.unwrap(); // 55
            s.place_hold("acme", "c2c_a", 20, 1).await.unwrap();
            s.place_hold("acme", "c2c_b", 30, 1).await.unwrap();
            s.settle("acme", "c2c_a", None).await.unwrap();
            db.flush().unwrap();
        }
        let db = sled::open(dir.path()).unwrap();
        let s = SledWalletStore::open(&db).unwrap();
        assert_eq!(s.available("acme").await.unwrap(), 25);
        assert!(s.place_hold("acme", "c2c_c", 26, 1).await.is_err());
        assert!(s.place_hold("acme", "c2c_c", 25, 1).await.is_ok());
    }
}
