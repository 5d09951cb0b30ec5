//! `c2c-gateway tenant list` and `tenant outbound-enable`: the tenants of the policy
//! directory with their effective DLT outbound flag, and the owner's DLT toggle.
//!
//! The toggle goes through the same `c2c_dlt::DltRegistry::set` as the owner API
//! (`POST /api/telephony/config/owner/{tenant}/outbound-enable`), directly on the store
//! when no gateway runs, or through that API with `--gateway`; either way the same
//! override and audit line are persisted.

use std::path::Path;

use c2c_dlt::{DltRegistry, Toggle};
use serde_json::{json, Value};

use super::common::{block_on, load_policy, open_db, print_json, CliResult, Failure, Remote};
use super::{TenantCommand, TenantListArgs, TenantOutboundArgs};

/// Audit `key_id` of toggles made with the CLI on the store directly (no key was used).
pub const CLI_KEY_ID: &str = "cli";
/// Same bound as the owner API.
const MAX_TEXT: usize = 500;

/// Runs a `tenant` subcommand.
pub fn run(cmd: TenantCommand) -> CliResult {
    match cmd {
        TenantCommand::List(a) => block_on(list(a)),
        TenantCommand::OutboundEnable(a) => block_on(outbound_enable(a)),
        TenantCommand::Add(a) => super::provision::add(a),
        TenantCommand::Edit(a) => super::provision::edit(a),
        TenantCommand::Show(a) => super::provision::show(a),
    }
}

/// One row of `tenant list`.
struct Row {
    id: String,
    name: String,
    trunks: Vec<String>,
    enabled: bool,
    source: &'static str,
}

async fn list(a: TenantListArgs) -> CliResult {
    let policy = load_policy(&a.policy.policies)?;
    let remote = a.gateway.remote()?;
    let local = match &remote {
        Some(_) => None,
        None => local_overrides(&a.data.data)?,
    };
    let mut rows = Vec::new();
    for t in policy.tenants.values() {
        let (enabled, source) = match (&remote, &local) {
            (Some(r), _) => {
                let v = r.get(&outbound_path(&t.id)).await?;
                let src = if v["source"] == "owner" {
                    "owner"
                } else {
                    "policy"
                };
                (v["outbound_enabled"].as_bool().unwrap_or(false), src)
            }
            (None, Some(reg)) => (
                reg.outbound_enabled(t),
                match reg.current(&t.id).await {
                    Ok(Some(_)) => "owner",
                    Ok(None) => "policy",
                    Err(e) => return Err(Failure::failed(format!("cannot read DLT state: {e}"))),
                },
            ),
            (None, None) => (t.dlt.outbound_enabled, "policy"),
        };
        rows.push(Row {
            id: t.id.clone(),
            name: t.name.clone(),
            trunks: t.trunks.iter().map(|tr| tr.label.clone()).collect(),
            enabled,
            source,
        });
    }
    if a.json {
        let v: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({"id": r.id, "name": r.name, "trunks": r.trunks,
                       "outbound_enabled": r.enabled, "source": r.source})
            })
            .collect();
        print_json(&Value::Array(v));
    } else {
        print_table(&rows);
    }
    Ok(())
}

/// The DLT registry of a stopped gateway's store; `None` when no store exists yet (then
/// every tenant runs on its policy value).
fn local_overrides(data: &Path) -> Result<Option<DltRegistry>, Failure> {
    if !data.join("store").join("db").exists() {
        return Ok(None);
    }
    let db = open_db(data, false, true)?;
    DltRegistry::open(&db)
        .map(Some)
        .map_err(|e| Failure::failed(format!("cannot read DLT state: {e}")))
}

fn print_table(rows: &[Row]) {
    let header = ["ID", "NAME", "TRUNKS", "OUTBOUND", "SOURCE"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.name.clone(),
                r.trunks.join(","),
                if r.enabled { "enabled" } else { "disabled" }.to_string(),
                r.source.to_string(),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for c in &cells {
        for (w, s) in width.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    let line = |c: [&str; 5]| {
        let mut s = String::new();
        for (i, (cell, w)) in c.iter().zip(width).enumerate() {
            if i + 1 == c.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{s}");
    };
    line(header);
    for c in &cells {
        line([&c[0], &c[1], &c[2], &c[3], &c[4]]);
    }
}

fn outbound_path(tenant: &str) -> String {
    format!("/api/telephony/config/owner/{tenant}/outbound-enable")
}

async fn outbound_enable(a: TenantOutboundArgs) -> CliResult {
    let enabled = !a.disable;
    let verified_by = a.verified_by.trim();
    let note = a.note.as_deref().unwrap_or("").trim();
    if verified_by.is_empty() {
        return Err(Failure::Usage(
            "--verified-by must name who verified the Principal Entity binding".into(),
        ));
    }
    if verified_by.len() > MAX_TEXT || note.len() > MAX_TEXT {
        return Err(Failure::Usage(format!(
            "--verified-by and --note are limited to {MAX_TEXT} bytes"
        )));
    }
    if let Some(r) = a.gateway.remote()? {
        return via_gateway(&r, &a.tenant, enabled, verified_by, note).await;
    }
    let policy = load_policy(&a.policy.policies)?;
    let tenant = policy
        .tenant(&a.tenant)
        .ok_or_else(|| Failure::failed(format!("unknown tenant '{}'", a.tenant)))?;
    // A toggle may precede the gateway's first start: create the store if needed.
    std::fs::create_dir_all(&a.data.data).map_err(|e| {
        Failure::failed(format!(
            "cannot create data dir {}: {e}",
            a.data.data.display()
        ))
    })?;
    let db = open_db(&a.data.data, true, true)?;
    let reg = DltRegistry::open(&db)
        .map_err(|e| Failure::failed(format!("cannot read DLT state: {e}")))?;
    let entry = reg
        .set(
            tenant,
            Toggle {
                enabled,
                verified_by,
                note,
                key_id: CLI_KEY_ID,
            },
        )
        .await
        .map_err(|e| Failure::failed(format!("cannot record the toggle: {e}")))?;
    db.flush()
        .map_err(|e| Failure::failed(format!("cannot flush the store: {e}")))?;
    report(&a.tenant, entry.old, entry.new);
    Ok(())
}

async fn via_gateway(
    r: &Remote,
    tenant: &str,
    enabled: bool,
    verified_by: &str,
    note: &str,
) -> CliResult {
    let v = r
        .post(
            &outbound_path(tenant),
            &json!({"enabled": enabled, "verified_by": verified_by, "note": note}),
        )
        .await?;
    let old = v["change"]["old"].as_bool().unwrap_or(!enabled);
    report(
        tenant,
        old,
        v["outbound_enabled"].as_bool().unwrap_or(enabled),
    );
    Ok(())
}

fn report(tenant: &str, old: bool, new: bool) {
    let word = |b: bool| if b { "enabled" } else { "disabled" };
    println!(
        "tenant {tenant}: outbound calling {} (was {}); recorded in the audit trail",
        word(new),
        word(old)
    );
}
