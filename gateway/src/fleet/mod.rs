//! One node of a fleet: several gateways on one shared store (`[store] kind =
//! "postgres"`). The store does the hard part (conditional writes, the driver of each
//! open call, claims; `CallStore`'s "Fleet"); this service keeps this node's side of it:
//!
//! - **lease**: renewed every third of `store.lease_ms`, from start to shutdown; at a
//!   clean shutdown it is given up so other nodes take the calls over at once;
//! - **take-over**: every [`CLAIM_EVERY`], the open calls of nodes whose lease ran out
//!   become this node's: their timers are armed here, inbound calls whose caller was held
//!   by the dead node end MISSED, dials that died with it are settled, and each room is
//!   looked at once (what happened while nobody watched);
//! - **fleet-wide state**: the open calls per tenant (the concurrent-call cap) every
//!   [`COUNT_EVERY`], and the DLT overrides and the agent directory when another node
//!   changed them (a cheap revision read every [`REVISION_EVERY`]): a DLT flip on one
//!   node holds on all within a second, without `LISTEN/NOTIFY`.
//!
//! On a single process (sled, memory) the service does not run.

mod metrics;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use c2c_store_pg::PgStore;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

pub use metrics::FleetMetrics;

use crate::app::App;
use crate::clock::now_ms;

/// How often orphaned calls are looked for: the take-over delay is the lease plus up to
/// this.
pub const CLAIM_EVERY: Duration = Duration::from_millis(500);
/// How often the fleet's open calls per tenant are read.
pub const COUNT_EVERY: Duration = Duration::from_millis(250);
/// How often the DLT and agent revisions are read.
pub const REVISION_EVERY: Duration = Duration::from_millis(500);
/// Calls taken over per claim (the rest on the next round).
const CLAIM_BATCH: usize = 500;

/// The fleet node's background work.
pub struct FleetService {
    app: Arc<App>,
    /// The shared database: its connection pool is sampled with each lease renewal,
    /// and its options say how long the lease lasts.
    pg: Arc<PgStore>,
    metrics: FleetMetrics,
}

impl FleetService {
    pub fn new(app: Arc<App>, pg: Arc<PgStore>) -> prometheus::Result<Self> {
        let metrics = FleetMetrics::register(app.registry())?;
        Ok(Self { app, pg, metrics })
    }
}

#[async_trait]
impl BackgroundService for FleetService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let renew_every = self.pg.options().lease / 3;
        let mut renew = tokio::time::interval(renew_every);
        let mut claim = tokio::time::interval(CLAIM_EVERY);
        let mut count = tokio::time::interval(COUNT_EVERY);
        let mut revision = tokio::time::interval(REVISION_EVERY);
        for t in [&mut renew, &mut claim, &mut count, &mut revision] {
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = renew.tick() => {
                    self.metrics.pool.sample(self.pg.pool_stats());
                    self.renew().await
                }
                _ = claim.tick(), if self.app.is_serving() => self.claim().await,
                _ = count.tick() => self.count().await,
                _ = revision.tick() => refresh_shared(&self.app).await,
            }
        }
        // Pingora stops background services after the drain, when nothing new comes in.
        match self.app.store().release_lease().await {
            Ok(()) => {
                tracing::info!("fleet: lease given up; other nodes take this node's calls over")
            }
            Err(e) => {
                tracing::warn!(error = %e, "fleet: could not give the lease up; other nodes take over when it runs out")
            }
        }
    }
}

impl FleetService {
    async fn renew(&self) {
        match self.app.store().renew_lease(now_ms()).await {
            Ok(until) => {
                self.metrics.renewals.with_label_values(&["ok"]).inc();
                self.metrics
                    .lease_until
                    .set((until.min(i64::MAX as u64)) as i64);
            }
            Err(e) => {
                self.metrics.renewals.with_label_values(&["error"]).inc();
                tracing::warn!(error = %e, "fleet: lease not renewed; the calls this node drives may be taken over");
            }
        }
    }

    async fn claim(&self) {
        let at = now_ms();
        let claimed = match self.app.store().claim_orphaned_calls(at, CLAIM_BATCH).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "fleet: cannot look for calls to take over");
                return;
            }
        };
        if claimed.is_empty() {
            return;
        }
        self.metrics.taken_over.inc_by(claimed.len() as u64);
        tracing::info!(
            calls = claimed.len(),
            "fleet: took over the open calls of a node whose lease ran out"
        );
        adopt(&self.app, claimed, at).await;
    }

    async fn count(&self) {
        let before = self.app.calls().slots().snapshot();
        match self.app.store().fleet_open_counts().await {
            Ok(Some(counts)) => self.app.calls().slots().fleet_counts(counts, before),
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "fleet: open calls per tenant not read"),
        }
    }
}

/// Calls this node just took over from a node that died: the same steps a restart takes
/// with its own calls (`calls::rearm_open_calls`, `reconcile`, the first poll pass).
pub async fn adopt(app: &Arc<App>, claimed: Vec<c2c_callstate::CallRecord>, at_ms: u64) {
    for rec in &claimed {
        for t in &rec.timers {
            app.calls().arm_timer(&rec.call_id, t.kind, t.at_ms);
        }
    }
    app.agents().hub().restore_calls(
        claimed
            .iter()
            .filter(|r| r.connected_ms.is_some())
            .map(|r| (r.tenant.as_str(), r.agent_id.as_str(), r.call_id.as_str())),
    );
    use crate::calls::signals::{poller, reconcile};
    reconcile::interrupted_inbound(app, &claimed, at_ms).await;
    reconcile::lost_dials(app, &claimed, at_ms).await;
    // What happened while nobody drove them: one look at each room still open.
    let mut still_open = Vec::with_capacity(claimed.len());
    for rec in claimed {
        match app.store().get(&rec.call_id).await {
            Ok(Some(r)) if !r.is_ended() => still_open.push(r),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(call_id = %rec.call_id, error = %e, "fleet: taken-over call not re-read")
            }
        }
    }
    poller::sample_calls(app, still_open).await;
}

/// DLT overrides and the agent directory as other nodes left them: each refresh is one
/// revision read when nothing moved.
async fn refresh_shared(app: &App) {
    match app.dlt().refresh().await {
        Ok(true) => tracing::info!("fleet: DLT overrides changed on another node; reloaded"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "fleet: DLT overrides not reloaded"),
    }
    match app.agents().refresh().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            changes = n,
            "fleet: agents changed on another node; reloaded"
        ),
        Err(e) => tracing::warn!(error = %e, "fleet: agent directory not reloaded"),
    }
}
