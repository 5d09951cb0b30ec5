//! `c2c-gateway tenant add|edit|show`: provisioning from the shell, with the same
//! request bodies as the owner API (`POST`/`PATCH /api/c2c/owner/tenants`).
//!
//! With `--gateway` the request goes through the running gateway's API (which reloads
//! before it answers). Without it the policy directory is written directly through
//! `crate::provision` (validated, atomic, audited in `--data`); a running gateway picks
//! the change up with its hot reload within a second.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Value};

use super::common::{block_on, load_policy, print_json, CliResult, Failure};
use super::{DataArgs, GatewayArgs, PolicyArgs};
use crate::provision::{Editor, Provisioner};

/// Audit actor of changes made here without a gateway.
const CLI_ACTOR: &str = "cli";
/// Largest spec file read (the API's body limit).
const MAX_SPEC: u64 = 64 * 1024;

/// Arguments of `tenant add`.
#[derive(Debug, Args)]
pub struct TenantAddArgs {
    /// The new tenant as JSON (the body of POST /api/c2c/owner/tenants), from this
    /// file, or `-` for standard input. Secrets belong in it, not in arguments.
    #[arg(long)]
    pub spec: PathBuf,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

/// Arguments of `tenant edit`.
#[derive(Debug, Args)]
pub struct TenantEditArgs {
    /// Tenant id.
    pub tenant: String,
    /// The change as JSON (the body of PATCH /api/c2c/owner/tenants/{tenant}), from this
    /// file, or `-` for standard input.
    #[arg(long)]
    pub spec: PathBuf,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

/// Arguments of `tenant show`.
#[derive(Debug, Args)]
pub struct TenantShowArgs {
    /// Tenant id.
    pub tenant: String,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

fn read_spec(path: &PathBuf) -> Result<Value, Failure> {
    let mut text = String::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin()
            .take(MAX_SPEC + 1)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(MAX_SPEC + 1).read_to_string(&mut text))
    };
    read.map_err(|e| Failure::failed(format!("cannot read {}: {e}", path.display())))?;
    if text.len() as u64 > MAX_SPEC {
        return Err(Failure::failed(format!(
            "{} is larger than {MAX_SPEC} bytes",
            path.display()
        )));
    }
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Failure::failed(format!("{} is not valid JSON: {e}", path.display())))?;
    if !v.is_object() {
        return Err(Failure::failed(format!(
            "{} must hold a JSON object",
            path.display()
        )));
    }
    Ok(v)
}

fn failed(e: crate::provision::ProvisionError) -> Failure {
    Failure::failed(format!("nothing was changed: {e}"))
}

pub fn add(a: TenantAddArgs) -> CliResult {
    let spec = read_spec(&a.spec)?;
    let remote = a.gateway.remote()?;
    block_on(async move {
        let out = match remote {
            Some(r) => r.post("/api/c2c/owner/tenants", &spec).await?,
            None => {
                let p = Provisioner::new(&a.policy.policies, &a.data.data);
                let done = p
                    .create(&spec, CLI_ACTOR, || async { Ok(()) })
                    .await
                    .map_err(failed)?;
                json!({"tenant": done.tenant_json(), "api_key": done.first_key, "change": done.change})
            }
        };
        eprintln!("The tenant's first API key is shown this once: store it now.");
        print_json(&out);
        Ok(())
    })
}

pub fn edit(a: TenantEditArgs) -> CliResult {
    let spec = read_spec(&a.spec)?;
    let remote = a.gateway.remote()?;
    block_on(async move {
        let out = match remote {
            Some(r) => r.patch(&tenant_path(&a.tenant), &spec).await?,
            None => {
                let p = Provisioner::new(&a.policy.policies, &a.data.data);
                let done = p
                    .update(&a.tenant, &spec, (Editor::Owner, CLI_ACTOR), || async {
                        Ok(())
                    })
                    .await
                    .map_err(failed)?;
                json!({"tenant": done.tenant_json(), "change": done.change})
            }
        };
        print_json(&out);
        Ok(())
    })
}

pub fn show(a: TenantShowArgs) -> CliResult {
    let remote = a.gateway.remote()?;
    block_on(async move {
        let out = match remote {
            Some(r) => r.get(&tenant_path(&a.tenant)).await?,
            None => {
                let policy = load_policy(&a.policy.policies)?;
                let p = Provisioner::new(&a.policy.policies, &a.data.data);
                let view = p.view(&policy, &a.tenant).await.map_err(failed)?;
                let changes = p.changes(&a.tenant, 50).await.map_err(failed)?;
                json!({"tenant": view, "changes": changes})
            }
        };
        print_json(&out);
        Ok(())
    })
}

fn tenant_path(id: &str) -> String {
    format!(
        "/api/c2c/owner/tenants/{}",
        percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
    )
}
