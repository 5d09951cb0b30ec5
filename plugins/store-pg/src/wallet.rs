//! [`PgWalletStore`]: managed tenants' wallet ledgers (`c2c_billing::WalletStore`) on
//! the shared database.
//!
//! An append is one transaction: it takes the tenant's `c2c_wallets` row lock first
//! (`SELECT .. FOR UPDATE`, creating the row on the tenant's first entry), then looks up the
//! request id, asks `c2c_billing::ledger::plan_append` and writes the entry and the new
//! balance. Taking the lock before the request-id lookup is what makes a retried
//! request safe: the second of two concurrent appends with one request id waits for the
//! first, then sees its entry (READ COMMITTED reads the latest commit per statement) and
//! answers it as a replay instead of tripping the unique index.
//!
//! Holds (`c2c_wallet_holds`, migration 3) take the same row lock: a hold's check of
//! what is available and its insert, and a settle's release and charge, are serialised
//! with every other money movement of the tenant. Calls' holds and settles are written
//! in batches, one transaction for all that queued meanwhile (`crate::wallet_batch`).

use std::sync::Arc;

use async_trait::async_trait;
use c2c_billing::ledger::{plan_append, replay};
use c2c_billing::{
    check_call_id, check_charge, check_tenant, plan_hold, Appended, Balance, EntryKind, Hold,
    HoldPlaced, LedgerEntry, NewEntry, Settled, WalletError, WalletStore, MAX_STATEMENT_PAGE,
};
use deadpool_postgres::Transaction;
use tokio_postgres::Row;

use crate::dlt::{db_ms, ms_from_db, retry_pause, retryable, TX_RETRIES};
use crate::wallet_batch::{self, Job};
use crate::PgStore;
use tokio::sync::{mpsc, oneshot};

/// `c2c_wallets`: each tenant's balance and entry count (the last seq);
/// `c2c_wallet_ledger`: every entry, keyed by tenant and seq, a request id at most once
/// per tenant (NULLs do not collide in a unique index).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS c2c_wallets (
    tenant TEXT PRIMARY KEY,
    balance_paise BIGINT NOT NULL,
    entries BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS c2c_wallet_ledger (
    tenant TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    amount_paise BIGINT NOT NULL,
    balance_after_paise BIGINT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    call_id TEXT,
    request_id TEXT,
    PRIMARY KEY (tenant, seq),
    UNIQUE (tenant, request_id)
);
";

/// `c2c_wallet_holds`: one row per call in progress that holds money.
pub(crate) const HOLDS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS c2c_wallet_holds (
    tenant TEXT NOT NULL,
    call_id TEXT NOT NULL,
    amount_paise BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, call_id)
);
";

/// Takes the tenant's wallet row lock, answering its balance. A lock, not an upsert
/// that rewrites the row: every rewrite of a tenant's one hot row leaves a dead version
/// that the next lookups walk until it is pruned (the batched holds and settles take
/// this lock several hundred times a second).
const LOCK_WALLET: &str =
    "SELECT balance_paise, entries FROM c2c_wallets WHERE tenant = $1 FOR UPDATE";
/// A tenant's first money movement creates its row (then locks it with [`LOCK_WALLET`]).
const CREATE_WALLET: &str = "INSERT INTO c2c_wallets (tenant, balance_paise, entries)
    VALUES ($1, 0, 0) ON CONFLICT (tenant) DO NOTHING";

/// What a tenant may spend on new calls: its balance (zero without a wallet row) minus
/// its open holds.
const AVAILABLE: &str =
    "SELECT (COALESCE((SELECT balance_paise FROM c2c_wallets WHERE tenant = $1), 0)
    - COALESCE((SELECT SUM(amount_paise) FROM c2c_wallet_holds WHERE tenant = $1), 0))::BIGINT";

pub(crate) const HOLD_COLUMNS: &str = "call_id, amount_paise, at_ms";

pub(crate) const ENTRY_COLUMNS: &str =
    "tenant, seq, at_ms, kind, amount_paise, balance_after_paise, \
                             actor, reason, call_id, request_id";

pub(crate) fn store_err(e: impl std::error::Error + Send + Sync + 'static) -> WalletError {
    WalletError::Backend(Box::new(e))
}

pub(crate) fn entry_of(row: &Row) -> Result<LedgerEntry, WalletError> {
    let tenant: &str = row.get(0);
    let seq = ms_from_db(row.get(1));
    let kind: &str = row.get(3);
    Ok(LedgerEntry {
        id: format!("{tenant}/{seq}"),
        seq,
        at_ms: ms_from_db(row.get(2)),
        kind: EntryKind::parse(kind)
            .ok_or_else(|| WalletError::Corrupt(format!("entry {tenant}/{seq}: kind '{kind}'")))?,
        amount_paise: row.get(4),
        balance_after_paise: row.get(5),
        actor: row.get(6),
        reason: row.get(7),
        call_id: row.get(8),
        request_id: row.get(9),
    })
}

fn balance_of(row: &Row, first: usize) -> Balance {
    Balance {
        balance_paise: row.get(first),
        entries: ms_from_db(row.get(first + 1)),
    }
}

/// What one try of the append transaction ended with.
pub(crate) enum Tried<T = Appended> {
    Done(Result<T, WalletError>),
    /// A driver error: retried when it is a serialization failure or deadlock.
    Db(tokio_postgres::Error),
}

impl<T> From<tokio_postgres::Error> for Tried<T> {
    fn from(e: tokio_postgres::Error) -> Self {
        Tried::Db(e)
    }
}

pub(crate) fn hold_of(row: &Row) -> Hold {
    Hold {
        call_id: row.get(0),
        amount_paise: row.get(1),
        at_ms: ms_from_db(row.get(2)),
    }
}

pub(crate) async fn lock_wallet<T>(
    tx: &Transaction<'_>,
    tenant: &str,
) -> Result<Balance, Tried<T>> {
    let lock = tx.prepare_cached(LOCK_WALLET).await?;
    if let Some(row) = tx.query_opt(&lock, &[&tenant]).await? {
        return Ok(balance_of(&row, 0));
    }
    let create = tx.prepare_cached(CREATE_WALLET).await?;
    tx.execute(&create, &[&tenant]).await?;
    Ok(balance_of(&tx.query_one(&lock, &[&tenant]).await?, 0))
}

/// Appends `e` inside `tx`, which holds the tenant's row lock (`cur` its balance).
/// `Tried::Done` carries a replay or a refusal: nothing written.
async fn append_in(
    tx: &Transaction<'_>,
    tenant: &str,
    cur: Balance,
    e: &NewEntry,
) -> Result<Appended, Tried> {
    if let Some(rid) = &e.request_id {
        let find = tx
            .prepare_cached(&format!(
                "SELECT {ENTRY_COLUMNS} FROM c2c_wallet_ledger
                 WHERE tenant = $1 AND request_id = $2"
            ))
            .await?;
        if let Some(row) = tx.query_opt(&find, &[&tenant, rid]).await? {
            return Err(Tried::Done(entry_of(&row).and_then(|f| replay(f, e))));
        }
    }
    let (entry, after) = match plan_append(tenant, cur, e) {
        Ok(planned) => planned,
        Err(refused) => return Err(Tried::Done(Err(refused))),
    };
    let insert = tx
        .prepare_cached(&format!(
            "INSERT INTO c2c_wallet_ledger ({ENTRY_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .await?;
    tx.execute(
        &insert,
        &[
            &tenant,
            &db_ms(entry.seq),
            &db_ms(entry.at_ms),
            &entry.kind.as_str(),
            &entry.amount_paise,
            &entry.balance_after_paise,
            &entry.actor,
            &entry.reason,
            &entry.call_id,
            &entry.request_id,
        ],
    )
    .await?;
    let update = tx
        .prepare_cached("UPDATE c2c_wallets SET balance_paise = $2, entries = $3 WHERE tenant = $1")
        .await?;
    tx.execute(
        &update,
        &[&tenant, &after.balance_paise, &db_ms(after.entries)],
    )
    .await?;
    Ok(Appended {
        entry,
        replayed: false,
    })
}

async fn try_append(
    client: &mut deadpool_postgres::Object,
    tenant: &str,
    e: &NewEntry,
) -> Result<Appended, Tried> {
    let tx = client.transaction().await?;
    let cur = lock_wallet(&tx, tenant).await?;
    // A replay or refusal returns before the commit: the transaction rolls back.
    let appended = append_in(&tx, tenant, cur, e).await?;
    tx.commit().await?;
    Ok(appended)
}

async fn try_hold(
    client: &mut deadpool_postgres::Object,
    tenant: &str,
    call_id: &str,
    amount: i64,
    at_ms: u64,
) -> Result<HoldPlaced, Tried<HoldPlaced>> {
    let tx = client.transaction().await?;
    let cur = lock_wallet(&tx, tenant).await?;
    let list = tx
        .prepare_cached(&format!(
            "SELECT {HOLD_COLUMNS} FROM c2c_wallet_holds WHERE tenant = $1"
        ))
        .await?;
    let holds: Vec<Hold> = tx
        .query(&list, &[&tenant])
        .await?
        .iter()
        .map(hold_of)
        .collect();
    let held: i64 = holds.iter().map(|h| h.amount_paise).sum();
    let available = cur.balance_paise.saturating_sub(held);
    if let Some(hold) = holds.into_iter().find(|h| h.call_id == call_id) {
        return Err(Tried::Done(Ok(HoldPlaced {
            hold,
            existing: true,
            available_after_paise: available,
        })));
    }
    let after = match plan_hold(available, amount) {
        Ok(after) => after,
        Err(refused) => return Err(Tried::Done(Err(refused))),
    };
    let insert = tx
        .prepare_cached(&format!(
            "INSERT INTO c2c_wallet_holds (tenant, {HOLD_COLUMNS}) VALUES ($1, $2, $3, $4)"
        ))
        .await?;
    tx.execute(&insert, &[&tenant, &call_id, &amount, &db_ms(at_ms)])
        .await?;
    tx.commit().await?;
    Ok(HoldPlaced {
        hold: Hold {
            call_id: call_id.to_owned(),
            amount_paise: amount,
            at_ms,
        },
        existing: false,
        available_after_paise: after,
    })
}

/// Runs one transaction (`$try` on the connection `$client` answers) until it answers, retrying
/// serialization failures and deadlocks. A macro, not a function taking a closure: the
/// closure would return a future borrowing both the connection and the caller's
/// arguments, which a higher-ranked bound cannot express.
macro_rules! retrying {
    ($client:expr, |$c:ident| $try:expr) => {
        async {
            let mut $c = $client.await?;
            let mut attempt = 0;
            loop {
                match $try.await {
                    Ok(done) => return Ok(done),
                    Err(Tried::Done(answer)) => return answer,
                    Err(Tried::Db(err)) if retryable(&err) && attempt < TX_RETRIES => {
                        attempt += 1;
                        tokio::time::sleep(retry_pause(attempt)).await;
                    }
                    Err(Tried::Db(err)) => return Err(store_err(err)),
                }
            }
        }
    };
}
pub(crate) use retrying;

/// `c2c_billing::WalletStore` on the shared database.
pub struct PgWalletStore {
    pg: Arc<PgStore>,
    /// Calls' holds and settles, written in batches (`crate::wallet_batch`).
    jobs: mpsc::Sender<Job>,
}

/// The writer ended without answering (the store is closing).
fn writer_gone() -> WalletError {
    WalletError::Backend("the wallet's batch writer stopped".into())
}

impl PgWalletStore {
    /// Starts the store's batch writer on `pg`'s I/O runtime.
    pub fn new(pg: Arc<PgStore>) -> Self {
        let jobs = wallet_batch::start(&pg);
        Self { pg, jobs }
    }

    /// Queues `job` for the writer and waits for its answer; `None` when the queue is
    /// full (the caller then writes it itself).
    async fn queued<T>(
        &self,
        job: Job,
        answer: oneshot::Receiver<Result<T, WalletError>>,
    ) -> Option<Result<T, WalletError>> {
        self.jobs.try_send(job).ok()?;
        Some(self.answer(answer).await)
    }

    /// The writer's answer, within the store's deadline.
    async fn answer<T>(
        &self,
        answer: oneshot::Receiver<Result<T, WalletError>>,
    ) -> Result<T, WalletError> {
        let waited = async { answer.await.unwrap_or_else(|_| Err(writer_gone())) };
        self.pg.within_or(waited, WalletError::Backend).await
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, WalletError> {
        self.pg.checkout().await.map_err(store_err)
    }

    /// Rows of one read-only statement.
    async fn rows(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, WalletError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(store_err)?;
        client.query(&stmt, params).await.map_err(store_err)
    }

    async fn balance_now(&self, tenant: &str) -> Result<Balance, WalletError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT balance_paise, entries FROM c2c_wallets WHERE tenant = $1")
            .await
            .map_err(store_err)?;
        let row = client
            .query_opt(&stmt, &[&tenant])
            .await
            .map_err(store_err)?;
        Ok(row.map(|r| balance_of(&r, 0)).unwrap_or_default())
    }

    async fn statement_now(
        &self,
        tenant: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, WalletError> {
        // Seqs are stored as BIGINT: one above i64::MAX follows no entry.
        let Ok(after) = i64::try_from(after_seq) else {
            return Ok(Vec::new());
        };
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {ENTRY_COLUMNS} FROM c2c_wallet_ledger
                 WHERE tenant = $1 AND seq > $2 ORDER BY seq LIMIT $3"
            ))
            .await
            .map_err(store_err)?;
        let limit = i64::try_from(limit.min(MAX_STATEMENT_PAGE)).unwrap_or(0);
        let rows = client
            .query(&stmt, &[&tenant, &after, &limit])
            .await
            .map_err(store_err)?;
        rows.iter().map(entry_of).collect()
    }

    async fn balances_now(&self) -> Result<Vec<(String, Balance)>, WalletError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT tenant, balance_paise, entries FROM c2c_wallets")
            .await
            .map_err(store_err)?;
        let rows = client.query(&stmt, &[]).await.map_err(store_err)?;
        let mut all: Vec<(String, Balance)> =
            rows.iter().map(|r| (r.get(0), balance_of(r, 1))).collect();
        // Byte order, as the sled store answers, whatever the database's collation.
        all.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        Ok(all)
    }
}

#[async_trait]
impl WalletStore for PgWalletStore {
    async fn append(&self, tenant: &str, entry: &NewEntry) -> Result<Appended, WalletError> {
        check_tenant(tenant)?;
        entry.validate()?;
        let op = retrying!(self.client(), |c| try_append(&mut c, tenant, entry));
        self.pg.within_or(op, WalletError::Backend).await
    }

    async fn balance(&self, tenant: &str) -> Result<Balance, WalletError> {
        check_tenant(tenant)?;
        self.pg
            .within_or(self.balance_now(tenant), WalletError::Backend)
            .await
    }

    async fn statement(
        &self,
        tenant: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, WalletError> {
        check_tenant(tenant)?;
        self.pg
            .within_or(
                self.statement_now(tenant, after_seq, limit),
                WalletError::Backend,
            )
            .await
    }

    async fn balances(&self) -> Result<Vec<(String, Balance)>, WalletError> {
        self.pg
            .within_or(self.balances_now(), WalletError::Backend)
            .await
    }

    async fn place_hold(
        &self,
        tenant: &str,
        call_id: &str,
        amount_paise: i64,
        at_ms: u64,
    ) -> Result<HoldPlaced, WalletError> {
        check_tenant(tenant)?;
        check_call_id(call_id)?;
        let (reply, answer) = oneshot::channel();
        let job = Job::Hold {
            tenant: tenant.to_owned(),
            call_id: call_id.to_owned(),
            amount_paise,
            at_ms,
            reply,
        };
        if let Some(done) = self.queued(job, answer).await {
            return done;
        }
        let op = retrying!(self.client(), |c| try_hold(
            &mut c,
            tenant,
            call_id,
            amount_paise,
            at_ms
        ));
        self.pg.within_or(op, WalletError::Backend).await
    }

    async fn settle(
        &self,
        tenant: &str,
        call_id: &str,
        charge: Option<&NewEntry>,
    ) -> Result<Settled, WalletError> {
        check_tenant(tenant)?;
        check_call_id(call_id)?;
        if let Some(c) = charge {
            check_charge(call_id, c)?;
        }
        let (reply, answer) = oneshot::channel();
        let job = Job::Settle {
            tenant: tenant.to_owned(),
            call_id: call_id.to_owned(),
            charge: charge.cloned(),
            reply,
        };
        // Through the queue even when it is full (a settle is off every caller's
        // critical path): written inline, it could overtake its call's hold still
        // queued, and that hold would then stay until the wallet sweep.
        let queued = async { self.jobs.send(job).await.map_err(|_| writer_gone()) };
        self.pg.within_or(queued, WalletError::Backend).await?;
        self.answer(answer).await
    }

    async fn holds(&self, tenant: &str) -> Result<Vec<Hold>, WalletError> {
        check_tenant(tenant)?;
        let sql = format!(
            "SELECT {HOLD_COLUMNS} FROM c2c_wallet_holds WHERE tenant = $1 ORDER BY call_id"
        );
        let rows = self
            .pg
            .within_or(self.rows(&sql, &[&tenant]), WalletError::Backend)
            .await?;
        let mut out: Vec<Hold> = rows.iter().map(hold_of).collect();
        out.sort_by(|a, b| a.call_id.as_bytes().cmp(b.call_id.as_bytes()));
        Ok(out)
    }

    /// The balance minus the tenant's holds in one statement (one snapshot).
    async fn available(&self, tenant: &str) -> Result<i64, WalletError> {
        check_tenant(tenant)?;
        let rows = self
            .pg
            .within_or(self.rows(AVAILABLE, &[&tenant]), WalletError::Backend)
            .await?;
        Ok(rows.first().map_or(0, |r| r.get(0)))
    }

    async fn all_holds(&self) -> Result<Vec<(String, Hold)>, WalletError> {
        let sql = format!("SELECT {HOLD_COLUMNS}, tenant FROM c2c_wallet_holds");
        let rows = self
            .pg
            .within_or(self.rows(&sql, &[]), WalletError::Backend)
            .await?;
        let mut out: Vec<(String, Hold)> = rows.iter().map(|r| (r.get(3), hold_of(r))).collect();
        // Byte order, as the sled store answers, whatever the database's collation.
        out.sort_by(|a, b| {
            (a.0.as_bytes(), a.1.call_id.as_bytes()).cmp(&(b.0.as_bytes(), b.1.call_id.as_bytes()))
        });
        Ok(out)
    }
}
