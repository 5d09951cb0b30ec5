//! [`PgWalletStore`]: managed tenants' wallet ledgers (`c2c_billing::WalletStore`) on
//! the shared database.
//!
//! An append is one transaction: it takes the tenant's `c2c_wallets` row lock first
//! (an upsert, so a tenant's first entry needs no separate create), then looks up the
//! request id, asks `c2c_billing::ledger::plan_append` and writes the entry and the new
//! balance. Taking the lock before the request-id lookup is what makes a retried
//! request safe: the second of two concurrent appends with one request id waits for the
//! first, then sees its entry (READ COMMITTED reads the latest commit per statement) and
//! answers it as a replay instead of tripping the unique index.

use std::sync::Arc;

use async_trait::async_trait;
use c2c_billing::ledger::{plan_append, replay};
use c2c_billing::{
    check_tenant, Appended, Balance, EntryKind, LedgerEntry, NewEntry, WalletError, WalletStore,
    MAX_STATEMENT_PAGE,
};
use tokio_postgres::Row;

use crate::dlt::{db_ms, ms_from_db, retry_pause, retryable, TX_RETRIES};
use crate::PgStore;

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

const ENTRY_COLUMNS: &str = "tenant, seq, at_ms, kind, amount_paise, balance_after_paise, \
                             actor, reason, call_id, request_id";

fn store_err(e: impl std::error::Error + Send + Sync + 'static) -> WalletError {
    WalletError::Backend(Box::new(e))
}

fn entry_of(row: &Row) -> Result<LedgerEntry, WalletError> {
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
enum Tried {
    Done(Result<Appended, WalletError>),
    /// A driver error: retried when it is a serialization failure or deadlock.
    Db(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for Tried {
    fn from(e: tokio_postgres::Error) -> Self {
        Tried::Db(e)
    }
}

async fn try_append(
    client: &mut deadpool_postgres::Object,
    tenant: &str,
    e: &NewEntry,
) -> Result<Appended, Tried> {
    let tx = client.transaction().await?;
    let lock = tx
        .prepare_cached(
            "INSERT INTO c2c_wallets (tenant, balance_paise, entries) VALUES ($1, 0, 0)
             ON CONFLICT (tenant) DO UPDATE SET tenant = excluded.tenant
             RETURNING balance_paise, entries",
        )
        .await?;
    let cur = balance_of(&tx.query_one(&lock, &[&tenant]).await?, 0);
    if let Some(rid) = &e.request_id {
        let find = tx
            .prepare_cached(&format!(
                "SELECT {ENTRY_COLUMNS} FROM c2c_wallet_ledger
                 WHERE tenant = $1 AND request_id = $2"
            ))
            .await?;
        if let Some(row) = tx.query_opt(&find, &[&tenant, rid]).await? {
            // Nothing written: the transaction ends without a commit.
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
    tx.commit().await?;
    Ok(Appended {
        entry,
        replayed: false,
    })
}

/// `c2c_billing::WalletStore` on the shared database.
pub struct PgWalletStore {
    pg: Arc<PgStore>,
}

impl PgWalletStore {
    pub fn new(pg: Arc<PgStore>) -> Self {
        Self { pg }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, WalletError> {
        self.pg.pool().get().await.map_err(store_err)
    }

    async fn append_now(&self, tenant: &str, e: &NewEntry) -> Result<Appended, WalletError> {
        let mut client = self.client().await?;
        let mut attempt = 0;
        loop {
            match try_append(&mut client, tenant, e).await {
                Ok(appended) => return Ok(appended),
                Err(Tried::Done(answer)) => return answer,
                Err(Tried::Db(err)) if retryable(&err) && attempt < TX_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(retry_pause(attempt)).await;
                }
                Err(Tried::Db(err)) => return Err(store_err(err)),
            }
        }
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
        self.pg
            .within_or(self.append_now(tenant, entry), WalletError::Backend)
            .await
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
}
