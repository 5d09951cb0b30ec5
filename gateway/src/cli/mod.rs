//! Command-line interface: `serve` runs the gateway; every other command is an owner
//! tool (one module each) that works on the policy directory, on a stopped gateway's
//! data directory, or through a running gateway's owner API (`--gateway`).
//!
//! Exit codes: 0 ok, 1 the operation failed or found problems, 2 usage errors. Errors
//! go to stderr as one sentence.

mod backup;
mod calls;
mod common;
mod crm_sink;
mod db;
mod dlt;
mod health;
mod keys;
mod policy;
mod progress;
mod provision;
mod replay;
mod shared_store;
mod tenant;
mod wallet;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use crate::server::ServeArgs;

use common::{finish, CliResult, Failure};
pub use common::{DataArgs, GatewayArgs, PolicyArgs};

/// The parsed command line.
#[derive(Debug, Parser)]
#[command(
    name = "c2c-gateway",
    version = crate::build::VERSION_LINE,
    about = "Multi-tenant click-to-call gateway for CRMs"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve(ServeArgs),
    /// Policy tools.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Tenants and their DLT outbound flag.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// API key tools: mint, rotate (write into policy), revoke.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Call records.
    #[command(subcommand)]
    Calls(CallsCommand),
    /// Store tools (a stopped gateway's data directory).
    #[command(subcommand)]
    Db(DbCommand),
    /// CRM webhook tools.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// A managed tenant's wallet: balance, statement, top-ups and adjustments.
    #[command(subcommand)]
    Wallet(wallet::WalletCommand),
    /// DLT lists: compact a DND or consent list (docs/dlt.md).
    #[command(subcommand)]
    Dlt(dlt::DltCommand),
    /// Probe a running gateway's health endpoint; exit 0 on a 2xx answer (the
    /// container's HEALTHCHECK).
    Health(health::HealthArgs),
    /// Development tools.
    #[command(subcommand)]
    Dev(DevCommand),
}

/// `dev ...` subcommands.
#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// A local CRM webhook receiver: prints each webhook (headers that matter, JSON
    /// body) as one JSON line and answers 200.
    CrmSink(crm_sink::CrmSinkArgs),
}

/// `policy ...` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy directory; prints every error and exits 1 if there is any.
    Check {
        dir: PathBuf,
        /// The policy directory a gateway is running with: also list the settings that
        /// differ from it and take effect only after a restart (exit 0 all the same).
        #[arg(long, value_name = "RUNNING_DIR")]
        against: Option<PathBuf>,
    },
}

/// `tenant ...` subcommands.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// List tenants: id, name, trunks, effective DLT outbound flag and its source
    /// (`owner` override from the store, or the `policy` initial value).
    List(TenantListArgs),
    /// Set a tenant's DLT outbound flag (the owner toggle), with an audit entry.
    OutboundEnable(TenantOutboundArgs),
    /// Provision a tenant from a JSON spec (the owner API's POST body): its policy file,
    /// secret files and first API key (printed once). The billing mode is inferred.
    Add(provision::TenantAddArgs),
    /// Change a tenant from a JSON spec (the owner API's PATCH body).
    Edit(provision::TenantEditArgs),
    /// A tenant as provisioned (secrets masked), with its recent changes.
    Show(provision::TenantShowArgs),
}

/// Arguments of `tenant list`.
#[derive(Debug, Args)]
pub struct TenantListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

/// Arguments of `tenant outbound-enable`.
#[derive(Debug, Args)]
pub struct TenantOutboundArgs {
    /// Tenant id.
    pub tenant: String,
    /// Who verified the tenant's DLT Principal Entity binding (recorded in the audit).
    #[arg(long)]
    pub verified_by: String,
    /// Free text for the audit trail.
    #[arg(long)]
    pub note: Option<String>,
    /// Disable outbound calling instead of enabling it.
    #[arg(long)]
    pub disable: bool,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

/// `--tenant ID` or `--owner`: whose keys.
#[derive(Debug, Args)]
pub struct KeysTarget {
    /// A tenant's `calls` key (tenants/<file>.toml whose id is ID).
    #[arg(long, conflicts_with = "owner", required_unless_present = "owner")]
    pub tenant: Option<String>,
    /// A platform owner key (gateway.toml).
    #[arg(long)]
    pub owner: bool,
}

/// `keys ...` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Mint a new inbound API key. Prints the key once and the TOML to paste.
    Mint {
        #[command(flatten)]
        target: KeysTarget,
        /// Key id to write into the TOML (default: <tenant>-<date>).
        #[arg(long)]
        id: Option<String>,
    },
    /// Mint a key and write it into the policy file; existing keys stay valid.
    Rotate(KeysRotateArgs),
    /// Remove a key from the policy file (refuses the last one unless --force).
    Revoke(KeysRevokeArgs),
}

/// Arguments of `keys rotate`.
#[derive(Debug, Args)]
pub struct KeysRotateArgs {
    #[command(flatten)]
    pub target: KeysTarget,
    /// Id of the new key (default: <tenant>-<date>, made unique).
    #[arg(long)]
    pub id: Option<String>,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// Arguments of `keys revoke`.
#[derive(Debug, Args)]
pub struct KeysRevokeArgs {
    #[command(flatten)]
    pub target: KeysTarget,
    /// Id of the key to remove.
    #[arg(long)]
    pub key_id: String,
    /// Allow removing the last key.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// `calls ...` subcommands.
#[derive(Debug, Subcommand)]
pub enum CallsCommand {
    /// One call record (numbers masked) and its CRM webhook delivery state, as JSON.
    Show(CallsShowArgs),
}

/// Arguments of `calls show`.
#[derive(Debug, Args)]
pub struct CallsShowArgs {
    /// The call id (c2c_ + 32 hex).
    pub call_id: String,
    /// The policy directory: with `[store] kind = "postgres"` in its gateway.toml the
    /// command works on the fleet's database instead of --data.
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

/// `db ...` subcommands.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Integrity scan of the store; exits 1 when it finds problems.
    Check(DbCheckArgs),
    /// Call records (and optionally outbox entries) as JSON lines, numbers masked.
    Export(DbExportArgs),
    /// A consistent copy of the whole store into DIR: from a running gateway through
    /// its owner API (--gateway), or from a stopped gateway's --data.
    Backup(DbBackupArgs),
    /// Loads a backup (from `db backup`) into an empty data directory.
    Restore(DbRestoreArgs),
}

/// Arguments of `db backup`.
#[derive(Debug, Args)]
pub struct DbBackupArgs {
    /// Directory to write the backup into (created if missing; must not hold one).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

/// Arguments of `db restore`.
#[derive(Debug, Args)]
pub struct DbRestoreArgs {
    /// A directory written by `db backup` (or the backup file in it).
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
}

/// Arguments of `db check`.
#[derive(Debug, Args)]
pub struct DbCheckArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// The policy directory: with `[store] kind = "postgres"` in its gateway.toml the
    /// command works on the fleet's database instead of --data.
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

/// Arguments of `db export`.
#[derive(Debug, Args)]
pub struct DbExportArgs {
    /// Write to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also export the CRM webhook outbox entries.
    #[arg(long)]
    pub outbox: bool,
    /// Keep phone numbers in clear (the export then holds personal data).
    #[arg(long)]
    pub unmasked: bool,
    /// The policy directory: with `[store] kind = "postgres"` in its gateway.toml the
    /// command works on the fleet's database instead of --data.
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

/// `webhooks ...` subcommands.
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Re-send a tenant's CRM webhooks created since TIME, with their original
    /// webhook-id. Against a running gateway (--gateway + owner key) it re-queues them
    /// through the owner API; otherwise it opens the data directory (refused while a
    /// gateway holds it) and delivers them itself.
    Replay(ReplayArgs),
}

/// Arguments of `webhooks replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[arg(long)]
    pub tenant: String,
    /// RFC 3339 time (2026-11-20T00:00:00Z) or a duration ago (90m, 6h, 2d).
    #[arg(long)]
    pub since: String,
    /// Re-send at most this many (the oldest first). When more matched, the summary
    /// says how many and the command exits 1.
    #[arg(long, default_value_t = crate::calls::replay::DEFAULT_MAX)]
    pub max: usize,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

/// Parses the command line, runs the command and maps its outcome to the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: CliResult = match cli.command {
        Command::Serve(args) => {
            // Held until `serve` returns: dropping it flushes the log queue.
            let _log = crate::logging::init();
            crate::server::serve(args).map_err(|e| Failure::Failed(e.to_string()))
        }
        Command::Policy(PolicyCommand::Check { dir, against }) => {
            policy_check(&dir, against.as_deref())
        }
        Command::Tenant(cmd) => tenant::run(cmd),
        Command::Keys(cmd) => keys::run(cmd),
        Command::Calls(CallsCommand::Show(a)) => calls::show(a),
        Command::Db(DbCommand::Check(a)) => db::check(a),
        Command::Db(DbCommand::Export(a)) => db::export(a),
        Command::Db(DbCommand::Backup(a)) => backup::backup(a),
        Command::Db(DbCommand::Restore(a)) => backup::restore(a),
        Command::Webhooks(WebhooksCommand::Replay(a)) => replay::run(a),
        Command::Wallet(cmd) => wallet::run(cmd),
        Command::Dlt(cmd) => dlt::run(cmd),
        Command::Health(a) => health::run(a),
        Command::Dev(DevCommand::CrmSink(a)) => crm_sink::run(a),
    };
    finish(result)
}

fn policy_check(dir: &Path, against: Option<&Path>) -> CliResult {
    match c2c_tenancy::load_dir(dir) {
        Ok(p) => {
            println!(
                "policy OK: {} tenant(s), {} key(s), answer detection {}",
                p.tenants.len(),
                p.keys.len(),
                p.gateway.answer_detection.as_str()
            );
            against.map_or(Ok(()), |running| policy::print_start_only(&p, running))
        }
        Err(errs) => {
            for e in &errs.0 {
                eprintln!("{e}");
            }
            Err(Failure::failed(format!("{} error(s)", errs.0.len())))
        }
    }
}
