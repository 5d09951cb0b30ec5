//! `c2c-gateway webhooks replay`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use c2c_crm_webhooks::Outcome;

use crate::app::{now_ms, PolicyHandle};
use crate::calls::outbox::PolicyEndpoints;
use crate::calls::replay;

pub struct ReplayArgs {
    pub tenant: String,
    pub since: String,
    pub gateway: Option<String>,
    pub owner_key_env: String,
    pub policies: PathBuf,
    pub data: PathBuf,
}

pub fn run(a: ReplayArgs) -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("c2c-gateway: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match &a.gateway {
        Some(url) => rt.block_on(via_api(url, &a)),
        None => rt.block_on(direct(&a)),
    };
    match result {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("c2c-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn via_api(base: &str, a: &ReplayArgs) -> Result<String, String> {
    let key = std::env::var(&a.owner_key_env)
        .map_err(|_| format!("set the owner key in ${} to use --gateway", a.owner_key_env))?;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("{}/api/c2c/webhooks/replay", base.trim_end_matches('/'));
    let resp = client
        .post(&url)
        .header("x-api-key", key)
        .json(&serde_json::json!({"tenant": a.tenant, "since": a.since}))
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(text)
    } else {
        Err(format!("{status}: {text}"))
    }
}

async fn direct(a: &ReplayArgs) -> Result<String, String> {
    let policy = c2c_tenancy::load_dir(&a.policies).map_err(|e| format!("invalid policy:\n{e}"))?;
    if policy.tenant(&a.tenant).is_none() {
        return Err(format!("unknown tenant '{}'", a.tenant));
    }
    let webhooks = policy.gateway.webhooks;
    let db = sled::Config::new()
        .path(a.data.join("store"))
        .cache_capacity(16 * 1024 * 1024)
        .open()
        .map_err(|e| {
            format!(
                "cannot open {} ({e}); if a gateway is running, use --gateway instead",
                a.data.display()
            )
        })?;
    let store = c2c_callstate::SledCallStore::open_with_db(db).map_err(|e| e.to_string())?;
    let now = now_ms();
    let since = replay::parse_since(&a.since, now)?;
    let entries = replay::requeue(&store, &a.tenant, since, now)
        .await
        .map_err(|e| e.to_string())?;
    let handle = Arc::new(PolicyHandle::new(a.policies.clone(), policy));
    let deliverer = crate::calls::services::build_deliverer(
        &webhooks,
        store.clone(),
        Arc::new(PolicyEndpoints::new(handle)),
    )?;
    let mut delivered = 0;
    let mut lines = Vec::new();
    for e in &entries {
        let job = crate::calls::outbox::job_of(e.clone());
        let outcome = deliverer
            .deliver_once(job)
            .await
            .map_err(|e| e.to_string())?;
        if matches!(outcome, Outcome::Delivered { .. }) {
            delivered += 1;
        }
        lines.push(format!("{} {:?}", e.webhook_id, outcome));
    }
    lines.push(format!(
        "{} webhook(s) re-sent for tenant {}, {delivered} delivered; the rest stay queued for the gateway",
        entries.len(),
        a.tenant
    ));
    Ok(lines.join("\n"))
}
