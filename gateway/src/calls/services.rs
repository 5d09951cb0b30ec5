//! Background services of the call lifecycle: timers (plus start-up reconcile and
//! housekeeping) and CRM webhook delivery.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use c2c_callstate::SledCallStore;
use c2c_crm_webhooks::{Deliverer, DeliveryPolicy, WebhookMetrics};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tracing::Instrument;

use crate::app::App;
use crate::calls::outbox::{PolicyEndpoints, StoreOutbox};

/// Timer events applied at once.
const TIMER_CONCURRENCY: usize = 64;

/// Fires call timers; at start re-arms open calls and reconciles them with LiveKit.
pub struct TimerService {
    pub app: Arc<App>,
}

#[async_trait]
impl BackgroundService for TimerService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let app = self.app.clone();
        // Nothing writes a call before the store is fully open (crate::lifecycle).
        if !app.serving_before(&mut shutdown).await {
            return;
        }
        match crate::calls::rearm_open_calls(&app) {
            Ok(n) if n > 0 => tracing::info!(
                open_calls = n,
                "open calls reloaded; reconciling with LiveKit"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot reload open calls"),
        }
        // Dials that died with the previous process first: until they are settled, a
        // missing leg in a room sample would prove nothing.
        crate::calls::reconcile::lost_dials(&app).await;
        // What happened while we were down: one sample of every open call.
        crate::calls::poller::pass(&app).await;
        let housekeeping = {
            let app = app.clone();
            let mut shutdown = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        _ = tokio::time::sleep(Duration::from_secs(600)) => {}
                    }
                    crate::api::livekit_webhook::prune_seen(&app);
                }
            })
        };
        // Timers fire concurrently (each apply waits for a durable write), but at most
        // TIMER_CONCURRENCY at once: a burst of expired timers after a restart must not
        // become thousands of tasks.
        let fire_app = app.clone();
        let permits = Arc::new(tokio::sync::Semaphore::new(TIMER_CONCURRENCY));
        app.calls()
            .timers()
            .run(shutdown, move |id, ev| {
                let app = fire_app.clone();
                let permits = permits.clone();
                async move {
                    let Ok(permit) = permits.acquire_owned().await else {
                        return;
                    };
                    let span = crate::calls::span(&id);
                    tokio::spawn(
                        async move {
                            let _permit = permit;
                            if let Err(e) = crate::calls::apply(&app, &id, ev).await {
                                tracing::warn!(error = %e, "timer event not applied");
                            }
                        }
                        .instrument(span),
                    );
                }
            })
            .await;
        housekeeping.abort();
    }
}

/// Why the CRM webhook deliverer cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum DelivererError {
    #[error("webhook HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("webhook metrics: {0}")]
    Metrics(prometheus::Error),
    #[error("webhook deliverer: {0}")]
    Config(c2c_crm_webhooks::ConfigError),
}

/// Builds the CRM webhook deliverer from policy (the serving gateway and the
/// `webhooks replay` CLI share this, so both send with the same client rules).
pub fn build_deliverer(
    w: &c2c_tenancy::WebhookPolicy,
    store: SledCallStore,
    endpoints: Arc<PolicyEndpoints>,
) -> Result<Deliverer, DelivererError> {
    let mut builder = reqwest::Client::builder()
        // Never follow redirects: a CRM endpoint that moved must be re-configured, and a
        // redirect could point us at an internal address.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(w.timeout)
        .pool_max_idle_per_host(w.per_tenant_concurrency);
    if !w.allow_private_targets {
        builder = builder.dns_resolver(c2c_crm_webhooks::SsrfGuardResolver::shared());
    }
    let client = builder.build().map_err(DelivererError::Client)?;
    let policy = DeliveryPolicy {
        max_age: w.max_age,
        per_tenant_concurrency: w.per_tenant_concurrency,
        request_timeout: w.timeout,
        allow_private_targets: w.allow_private_targets,
        ..DeliveryPolicy::default()
    };
    let metrics = WebhookMetrics::register().map_err(DelivererError::Metrics)?;
    Deliverer::new(
        client,
        Arc::new(StoreOutbox { store }),
        endpoints,
        policy,
        metrics,
    )
    .map_err(DelivererError::Config)
}

/// The serving gateway's deliverer.
pub fn deliverer(app: &Arc<App>) -> Result<Deliverer, DelivererError> {
    build_deliverer(
        &app.policy().get().gateway.webhooks,
        app.store().clone(),
        app.endpoints().clone(),
    )
}

/// How long a kick waits for more terminal transitions before waking the deliverer.
const KICK_COALESCE: Duration = Duration::from_millis(10);

/// Delivers CRM webhooks from the outbox until shutdown.
pub struct DeliveryService {
    pub app: Arc<App>,
    pub deliverer: Deliverer,
}

#[async_trait]
impl BackgroundService for DeliveryService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if !self.app.serving_before(&mut shutdown).await {
            return;
        }
        // Terminal transitions notify `webhook_kick`; forward it to the deliverer's own.
        let kick = self.deliverer.kick_handle();
        let ours = self.app.calls().delivery_kick();
        let mut stop = shutdown.clone();
        let fwd = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = ours.notified() => {
                        // Coalesce a burst of terminal transitions into one outbox scan:
                        // a few milliseconds of webhook latency buy far fewer scans
                        // under load.
                        tokio::time::sleep(KICK_COALESCE).await;
                        kick.notify_one();
                    }
                }
            }
        });
        self.deliverer.run(shutdown).await;
        fwd.abort();
    }
}
