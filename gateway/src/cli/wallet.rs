//! `c2c-gateway wallet show|post`: a managed tenant's wallet from the shell.
//!
//! With `--gateway` both go through the owner API of a running gateway (`GET
//! /api/c2c/wallet`, `POST /api/c2c/owner/tenants/{tenant}/wallet/entries`, owner key
//! from the environment). Without it they open the store the policy names: the fleet's
//! PostgreSQL database (gateways may be running), or the sled store in `--data`
//! (refused while a gateway holds it). A direct post is recorded with the actor
//! `cli:<$USER>`.

use std::sync::Arc;

use c2c_billing::{SledWalletStore, WalletStore};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::common::{
    block_on, load_policy, open_db, print_json, CliResult, DataArgs, Failure, GatewayArgs,
    PolicyArgs,
};
use crate::api::wallet::{not_managed, owner_entry};

/// `wallet ...` subcommands.
#[derive(Debug, Subcommand)]
pub enum WalletCommand {
    /// The balance and a page of the statement (JSON, or CSV with --csv).
    Show(ShowArgs),
    /// Post a top-up, adjustment or refund (audited in the ledger with who and why).
    Post(PostArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[arg(long)]
    pub tenant: String,
    /// Entries with a seq above this.
    #[arg(long, default_value_t = 0)]
    pub after: u64,
    /// Entries per page (1-1000).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Print the page as CSV instead of JSON.
    #[arg(long)]
    pub csv: bool,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

/// What an operator may post (calls post their own charges).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    TopUp,
    Adjustment,
    Refund,
}

impl Kind {
    fn api(self) -> &'static str {
        match self {
            Kind::TopUp => "top_up",
            Kind::Adjustment => "adjustment",
            Kind::Refund => "refund",
        }
    }

    fn entry(self) -> c2c_billing::EntryKind {
        match self {
            Kind::TopUp => c2c_billing::EntryKind::TopUp,
            Kind::Adjustment => c2c_billing::EntryKind::Adjustment,
            Kind::Refund => c2c_billing::EntryKind::Refund,
        }
    }
}

#[derive(Debug, Args)]
pub struct PostArgs {
    #[arg(long)]
    pub tenant: String,
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// Signed paise (₹1 = 100): positive for a top-up or refund, either sign for an
    /// adjustment.
    #[arg(long, allow_hyphen_values = true)]
    pub paise: i64,
    /// Why the money moved; kept in the ledger.
    #[arg(long)]
    pub reason: String,
    /// Makes a retry safe: the same id answers the first entry and moves no money.
    #[arg(long)]
    pub request_id: Option<String>,
    /// The call a refund is for.
    #[arg(long)]
    pub call_id: Option<String>,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

pub fn run(cmd: WalletCommand) -> CliResult {
    match cmd {
        WalletCommand::Show(a) => show(a),
        WalletCommand::Post(a) => post(a),
    }
}

/// The wallets of the store the policy names (see the module doc).
async fn open_wallets(
    policy: &PolicyArgs,
    data: &DataArgs,
) -> Result<Arc<dyn WalletStore>, Failure> {
    if let Some(pg) = super::shared_store::open_database(&policy.policies).await? {
        return Ok(Arc::new(c2c_store_pg::PgWalletStore::new(pg)));
    }
    let db = open_db(&data.data, false, true)?;
    let s = SledWalletStore::open(&db)
        .map_err(|e| Failure::failed(format!("cannot open the wallets: {e}")))?;
    Ok(Arc::new(s))
}

fn show(a: ShowArgs) -> CliResult {
    if !(1..=c2c_billing::MAX_STATEMENT_PAGE).contains(&a.limit) {
        return Err(Failure::Usage(format!(
            "--limit must be 1-{}",
            c2c_billing::MAX_STATEMENT_PAGE
        )));
    }
    if let Some(r) = a.gateway.remote()? {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("tenant", &a.tenant)
            .append_pair("after", &a.after.to_string())
            .append_pair("limit", &a.limit.to_string())
            .finish();
        let path = if a.csv {
            "/api/c2c/wallet/statement.csv"
        } else {
            "/api/c2c/wallet"
        };
        return block_on(async move {
            match r.get(&format!("{path}?{query}")).await? {
                serde_json::Value::String(csv) => print!("{csv}"),
                v => print_json(&v),
            }
            Ok(())
        });
    }
    let policy = load_policy(&a.policy.policies)?;
    let tenant = policy
        .tenant(&a.tenant)
        .ok_or_else(|| Failure::failed(format!("unknown tenant '{}'", a.tenant)))?;
    let mode = tenant.billing_mode();
    block_on(async move {
        let wallets = open_wallets(&a.policy, &a.data).await?;
        let read =
            |e: c2c_billing::WalletError| Failure::failed(format!("cannot read the wallet: {e}"));
        let balance = wallets.balance(&a.tenant).await.map_err(read)?;
        let statement = wallets
            .statement(&a.tenant, a.after, a.limit)
            .await
            .map_err(read)?;
        if a.csv {
            let csv = crate::api::wallet_csv::statement(&statement);
            print!("{}", String::from_utf8_lossy(&csv));
            return Ok(());
        }
        print_json(&json!({
            "tenant": a.tenant,
            "billing_mode": mode,
            "balance_paise": balance.balance_paise,
            "balance_inr": crate::api::wallet::inr(balance.balance_paise),
            "entries": balance.entries,
            "statement": statement,
        }));
        Ok(())
    })
}

fn post(a: PostArgs) -> CliResult {
    if let Some(r) = a.gateway.remote()? {
        return block_on(async move {
            let v = r
                .post(
                    &format!("/api/c2c/owner/tenants/{}/wallet/entries", a.tenant),
                    &json!({
                        "kind": a.kind.api(),
                        "amount_paise": a.paise,
                        "reason": a.reason,
                        "request_id": a.request_id,
                        "call_id": a.call_id,
                    }),
                )
                .await?;
            print_json(&v);
            Ok(())
        });
    }
    let policy = load_policy(&a.policy.policies)?;
    let tenant = policy
        .tenant(&a.tenant)
        .ok_or_else(|| Failure::failed(format!("unknown tenant '{}'", a.tenant)))?;
    if let Some(why) = not_managed(tenant) {
        return Err(Failure::failed(why));
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
    let entry = owner_entry(
        a.kind.entry(),
        a.paise,
        &a.reason,
        format!("cli:{user}"),
        a.call_id.clone(),
        a.request_id.clone(),
    );
    block_on(async move {
        let wallets = open_wallets(&a.policy, &a.data).await?;
        let appended = wallets
            .append(&a.tenant, &entry)
            .await
            .map_err(|e| Failure::failed(format!("the entry was not written: {e}")))?;
        print_json(&json!({
            "tenant": a.tenant,
            "entry": appended.entry,
            "replayed": appended.replayed,
        }));
        Ok(())
    })
}
