//! `c2c-gateway webhooks replay`: re-send a tenant's CRM webhooks created since a time,
//! with their original `webhook-id`. With `--gateway` it re-queues them through the
//! owner API of the running gateway; otherwise it opens the data directory (refused
//! while a gateway holds it) and delivers them itself.

use std::sync::Arc;

use c2c_crm_webhooks::Outcome;
use serde_json::json;

use super::common::{block_on, load_policy, open_db, CliResult, Failure, Remote};
use super::ReplayArgs;
use crate::app::{now_ms, PolicyHandle};
use crate::calls::outbox::PolicyEndpoints;
use crate::calls::replay;

/// Runs `webhooks replay`.
pub fn run(a: ReplayArgs) -> CliResult {
    let remote = a.gateway.remote()?;
    block_on(async move {
        let msg = match remote {
            Some(r) => via_api(&r, &a).await?,
            None => direct(&a).await?,
        };
        println!("{msg}");
        Ok(())
    })
}

async fn via_api(r: &Remote, a: &ReplayArgs) -> Result<String, Failure> {
    let v = r
        .post(
            "/api/c2c/webhooks/replay",
            &json!({"tenant": a.tenant, "since": a.since}),
        )
        .await?;
    Ok(v.to_string())
}

async fn direct(a: &ReplayArgs) -> Result<String, Failure> {
    let policy = load_policy(&a.policy.policies)?;
    if policy.tenant(&a.tenant).is_none() {
        return Err(Failure::failed(format!("unknown tenant '{}'", a.tenant)));
    }
    let now = now_ms();
    let since = replay::parse_since(&a.since, now).map_err(Failure::Usage)?;
    let webhooks = policy.gateway.webhooks;
    let db = open_db(&a.data.data, false, true)?;
    let store = c2c_callstate::SledCallStore::open_with_db(db)
        .map_err(|e| Failure::failed(format!("cannot open the call store: {e}")))?;
    let entries = replay::requeue(&store, &a.tenant, since, now)
        .await
        .map_err(|e| Failure::failed(format!("cannot re-queue webhooks: {e}")))?;
    let handle = Arc::new(PolicyHandle::new(a.policy.policies.clone(), policy));
    let deliverer = crate::calls::services::build_deliverer(
        &webhooks,
        store.clone(),
        Arc::new(PolicyEndpoints::new(handle)),
    )
    .map_err(Failure::Failed)?;
    let mut delivered = 0;
    let mut lines = Vec::new();
    for e in &entries {
        let job = crate::calls::outbox::job_of(e.clone());
        let outcome = deliverer
            .deliver_once(job)
            .await
            .map_err(|e| Failure::failed(format!("delivery failed: {e}")))?;
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
