//! Command-line interface.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "c2c-gateway",
    version,
    about = "Multi-tenant click-to-call gateway for CRMs"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve(ServeArgs),
    /// Policy tools.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// API key tools.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// CRM webhook tools.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Re-send a tenant's CRM webhooks created since TIME, with their original
    /// webhook-id. Against a running gateway (--gateway + owner key) it re-queues them
    /// through the owner API; otherwise it opens the data directory (refused while a
    /// gateway holds it) and delivers them itself.
    Replay {
        #[arg(long)]
        tenant: String,
        /// RFC 3339 time (2026-11-20T00:00:00Z) or a duration ago (90m, 6h, 2d).
        #[arg(long)]
        since: String,
        /// Base URL of a running gateway, e.g. http://127.0.0.1:8080.
        #[arg(long, env = "C2C_GATEWAY_URL")]
        gateway: Option<String>,
        /// Owner key for --gateway (read from the environment, never from argv, so it
        /// stays out of shell history and process lists).
        #[arg(long = "owner-key-env", default_value = "C2C_OWNER_KEY")]
        owner_key_env: String,
        #[arg(long, env = "C2C_POLICIES", default_value = "./policies")]
        policies: PathBuf,
        #[arg(long, env = "C2C_DATA", default_value = "./data")]
        data: PathBuf,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Policy directory (gateway.toml + tenants/*.toml).
    #[arg(long, env = "C2C_POLICIES", default_value = "./policies")]
    pub policies: PathBuf,
    /// Data directory (the embedded sled store).
    #[arg(long, env = "C2C_DATA", default_value = "./data")]
    pub data: PathBuf,
    /// Listen address; overrides `server.listen` in gateway.toml (default 127.0.0.1:8080).
    #[arg(long, env = "C2C_LISTEN")]
    pub listen: Option<String>,
    /// SIP edge listen address, UDP and TCP on the same port.
    #[arg(long, env = "C2C_SIP_LISTEN", default_value = "127.0.0.1:5060")]
    pub sip_listen: std::net::SocketAddr,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy directory; prints every error and exits 1 if there is any.
    Check { dir: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Mint a new inbound API key. Prints the key once and the TOML to paste.
    Mint {
        /// Tenant the key is for (a `calls` key for tenants/<ID>.toml).
        #[arg(long, conflicts_with = "owner", required_unless_present = "owner")]
        tenant: Option<String>,
        /// Mint a platform owner key (for gateway.toml) instead.
        #[arg(long)]
        owner: bool,
        /// Key id to write into the TOML (default: <tenant>-<date>).
        #[arg(long)]
        id: Option<String>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            crate::logging::init();
            match crate::server::serve(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("c2c-gateway: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Policy(PolicyCommand::Check { dir }) => policy_check(&dir),
        Command::Webhooks(WebhooksCommand::Replay {
            tenant,
            since,
            gateway,
            owner_key_env,
            policies,
            data,
        }) => crate::replay_cli::run(crate::replay_cli::ReplayArgs {
            tenant,
            since,
            gateway,
            owner_key_env,
            policies,
            data,
        }),
        Command::Keys(KeysCommand::Mint { tenant, owner, id }) => {
            keys_mint(tenant.as_deref(), owner, id.as_deref());
            ExitCode::SUCCESS
        }
    }
}

fn policy_check(dir: &Path) -> ExitCode {
    match c2c_tenancy::load_dir(dir) {
        Ok(p) => {
            println!(
                "policy OK: {} tenant(s), {} key(s), answer detection {}",
                p.tenants.len(),
                p.keys.len(),
                p.gateway.answer_detection.as_str()
            );
            ExitCode::SUCCESS
        }
        Err(errs) => {
            for e in &errs.0 {
                eprintln!("{e}");
            }
            eprintln!("{} error(s)", errs.0.len());
            ExitCode::FAILURE
        }
    }
}

fn keys_mint(tenant: Option<&str>, owner: bool, id: Option<&str>) {
    let k = c2c_tenancy::keys::mint();
    let day = crate::app::today_utc();
    let (section, scope, default_id, file) = match (tenant, owner) {
        (Some(t), _) => (
            "api_keys",
            "calls",
            format!("{t}-{day}"),
            format!("tenants/{t}.toml"),
        ),
        (None, _) => (
            "owner_keys",
            "owner",
            format!("owner-{day}"),
            "gateway.toml".into(),
        ),
    };
    let id = id.map(str::to_string).unwrap_or(default_id);
    println!("key (shown once; store it in your secret manager):");
    println!("{}", k.key);
    println!();
    println!("paste into policies/{file}:");
    println!("[[{section}]]");
    println!("id = \"{id}\"");
    println!("sha256 = \"{}\"", k.sha256_hex);
    println!("scopes = [\"{scope}\"]");
}
