//! `c2c-gateway webhooks replay`: re-send a tenant's CRM webhooks created since a time,
//! with their original `webhook-id`. With `--gateway` it re-queues them through the
//! owner API of the running gateway; otherwise it opens the data directory (refused
//! while a gateway holds it) and delivers them itself.
//!
//! At most `--max` webhooks (default 10,000, the oldest first). A summary goes to
//! stderr either way: how many matched, how many were re-queued, how long it took.
//! When the cap left some out the command says so and exits 1, so a script notices.

use std::sync::Arc;

use c2c_crm_webhooks::Outcome;
use serde_json::json;

use super::common::{load_policy, open_db, runtime, CliResult, Failure, Remote};
use super::progress::{summary, thousands, took, Progress};
use super::ReplayArgs;
use crate::app::PolicyHandle;
use crate::calls::outbox::PolicyEndpoints;
use crate::calls::replay;
use crate::clock::now_ms;

/// What a replay did, for the summary.
struct Done {
    matched: u64,
    requeued: u64,
    /// Delivered by this command (direct mode only).
    delivered: Option<u64>,
}

/// Runs `webhooks replay`.
pub fn run(a: ReplayArgs) -> CliResult {
    let remote = a.gateway.remote()?;
    let max = replay::check_max(Some(a.max)).map_err(|e| Failure::Usage(e.to_string()))?;
    let mut progress = Progress::new("re-sent", "webhooks");
    let done = runtime()?.block_on(async {
        match remote {
            Some(r) => via_api(&r, &a, max).await,
            None => direct(&a, max, &mut progress).await,
        }
    })?;
    let delivered = done
        .delivered
        .map(|d| format!(", {} delivered", thousands(d)))
        .unwrap_or_default();
    summary(format!(
        "webhooks replay: {} matched for tenant {} since {}, {} re-queued{delivered} (--max {}) in {}",
        thousands(done.matched),
        a.tenant,
        a.since,
        thousands(done.requeued),
        thousands(max as u64),
        took(progress.elapsed())
    ));
    if done.matched > done.requeued {
        return Err(Failure::failed(format!(
            "replay cut short by --max {max}: {} webhooks matched but only the oldest {} were re-queued; run again with a larger --max (at most {}) to send the rest",
            thousands(done.matched),
            thousands(done.requeued),
            thousands(replay::MAX_LIMIT as u64)
        )));
    }
    Ok(())
}

async fn via_api(r: &Remote, a: &ReplayArgs, max: usize) -> Result<Done, Failure> {
    let v = r
        .post(
            "/api/c2c/webhooks/replay",
            &json!({"tenant": a.tenant, "since": a.since, "max": max}),
        )
        .await?;
    println!("{v}");
    let requeued = v["requeued"].as_u64().unwrap_or(0);
    Ok(Done {
        // A gateway from before `matched` was added answered only what it re-queued.
        matched: v["matched"].as_u64().unwrap_or(requeued),
        requeued,
        delivered: None,
    })
}

async fn direct(a: &ReplayArgs, max: usize, progress: &mut Progress) -> Result<Done, Failure> {
    let policy = load_policy(&a.policy.policies)?;
    if policy.tenant(&a.tenant).is_none() {
        return Err(Failure::failed(format!("unknown tenant '{}'", a.tenant)));
    }
    let now = now_ms();
    let since = replay::parse_since(&a.since, now).map_err(|e| Failure::Usage(e.to_string()))?;
    let webhooks = policy.gateway.webhooks;
    // The fleet's database when the policy names it (gateways may be running: the
    // re-queued entries are then theirs to deliver too, with the same webhook-id).
    let store: Arc<dyn c2c_callstate::CallStore> =
        match super::shared_store::open(&a.policy.policies).await? {
            Some(pg) => pg,
            None => {
                let db = open_db(&a.data.data, false, true)?;
                Arc::new(
                    c2c_callstate::SledCallStore::open_with_db(db)
                        .map_err(|e| Failure::failed(format!("cannot open the call store: {e}")))?,
                )
            }
        };
    let done = replay::requeue(&*store, &a.tenant, since, now, max, &mut |_| {})
        .await
        .map_err(|e| Failure::failed(format!("cannot re-queue webhooks: {e}")))?;
    let handle = Arc::new(PolicyHandle::new(a.policy.policies.clone(), policy));
    let deliverer = crate::calls::services::build_deliverer(
        &webhooks,
        store.clone(),
        Arc::new(PolicyEndpoints::new(handle)),
    )
    .map_err(|e| Failure::Failed(e.to_string()))?;
    let total = done.entries.len() as u64;
    let mut delivered = 0;
    for (i, e) in done.entries.iter().enumerate() {
        let outcome = deliverer
            .deliver_once(e.clone())
            .await
            .map_err(|e| Failure::failed(format!("delivery failed: {e}")))?;
        if matches!(outcome, Outcome::Delivered { .. }) {
            delivered += 1;
        }
        println!("{} {:?}", e.webhook_id, outcome);
        progress.update(i as u64 + 1, Some(total));
    }
    progress.finish(total, Some(total));
    println!(
        "{} webhook(s) re-sent for tenant {}, {delivered} delivered; the rest stay queued for the gateway",
        done.entries.len(),
        a.tenant
    );
    Ok(Done {
        matched: done.matched,
        requeued: total,
        delivered: Some(delivered),
    })
}
