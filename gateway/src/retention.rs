//! Call data retention (`calls.retention_days`): a background service that purges ended
//! calls older than the limit, with their phone numbers, indexes and finished webhooks,
//! while the per-day tallies stay (see `c2c_callstate`'s `retention.rs` for what goes
//! and what never does).
//!
//! A pass runs shortly after start and then every [`PASS_INTERVAL`], in batches of at
//! most [`BATCH`] index entries with a pause between them, so a first purge of a large
//! backlog never holds the store or the disk for long. The limit is read from the policy
//! in force at each pass: a reload applies it, and `0` (or leaving it out) turns
//! purging off.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use prometheus::IntCounter;

use crate::app::App;
use crate::clock::now_ms;

/// Time between two passes: retention is counted in days, so hourly is precise enough.
pub const PASS_INTERVAL: Duration = Duration::from_secs(3600);
/// Delay of the first pass: after start-up's own work (journal replay, timer re-arm and
/// the LiveKit reconcile) rather than during it.
pub const FIRST_PASS_DELAY: Duration = Duration::from_secs(5);
/// Index entries one batch looks at.
pub const BATCH: usize = 500;
/// Pause between batches: leaves the disk and the store's locks to calls.
pub const BATCH_PAUSE: Duration = Duration::from_millis(200);

pub struct RetentionService {
    app: Arc<App>,
    purged: IntCounter,
}

impl RetentionService {
    /// Registers `c2c_calls_purged_total` in the gateway's registry.
    pub fn new(app: Arc<App>) -> Result<Self, prometheus::Error> {
        let purged = IntCounter::new(
            "c2c_calls_purged_total",
            "Call records purged by calls.retention_days (with their indexes and finished webhooks)",
        )
        .and_then(|c| app.registry().register(Box::new(c.clone())).map(|()| c))?;
        Ok(Self { app, purged })
    }

    /// One pass over every tenant's calls; returns how many were purged, or `None` when
    /// shutdown interrupted it.
    async fn pass(&self, retention: Duration, shutdown: &mut ShutdownWatch) -> Option<u64> {
        let days = retention.as_secs() / 86_400;
        let cutoff = now_ms().saturating_sub(retention.as_millis() as u64);
        let (mut total, mut cursor, mut batch) = (0, None, 0u64);
        loop {
            let (r, next) = match self
                .app
                .store()
                .purge_ended_before(cutoff, cursor.as_ref(), BATCH)
                .await
            {
                Ok(done) => done,
                Err(e) => {
                    tracing::error!(error = %e, "retention purge failed; retrying at the next pass");
                    return Some(total);
                }
            };
            batch += 1;
            total += r.purged;
            self.purged.inc_by(r.purged);
            if r.examined > 0 {
                tracing::info!(
                    batch,
                    purged = r.purged,
                    kept_open = r.kept_open,
                    kept_pending_webhook = r.kept_pending,
                    retention_days = days,
                    "retention: purged ended calls older than the limit"
                );
            }
            cursor = next;
            if cursor.is_none() {
                return Some(total);
            }
            tokio::select! {
                _ = shutdown.changed() => return None,
                _ = tokio::time::sleep(BATCH_PAUSE) => {}
            }
        }
    }
}

#[async_trait]
impl BackgroundService for RetentionService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // Nothing writes a call before the store is fully open (crate::lifecycle).
        if !self.app.serving_before(&mut shutdown).await {
            return;
        }
        let mut wait = FIRST_PASS_DELAY;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = PASS_INTERVAL;
            let Some(retention) = self.app.policy().get().gateway.calls.retention else {
                continue;
            };
            match self.pass(retention, &mut shutdown).await {
                None => return,
                Some(n) if n > 0 => {
                    tracing::info!(purged = n, "retention pass complete");
                }
                Some(_) => {}
            }
        }
    }
}
