//! CRM webhook delivery as a background service of the call lifecycle (the timers and
//! the start-up reconcile are `signals::timers`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use c2c_callstate::CallStore;
use c2c_crm_webhooks::{Deliverer, DeliveryPolicy, WebhookMetrics};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::app::App;
use crate::calls::outbox::PolicyEndpoints;

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
    store: Arc<dyn CallStore>,
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
        Arc::new(c2c_crm_webhooks::CallStoreOutbox::new(store)),
        endpoints,
        policy,
        metrics,
    )
    .map_err(DelivererError::Config)
}

/// The serving gateway's deliverer, with the extended payload of the tenants that opted
/// in (`calls::media_payload`).
pub fn deliverer(app: &Arc<App>) -> Result<Deliverer, DelivererError> {
    let d = build_deliverer(
        &app.policy().get().gateway.webhooks,
        app.store().clone(),
        app.endpoints().clone(),
    )?;
    d.set_extension(Arc::new(super::media_payload::MediaPayload::new(
        app.store().clone(),
        app.policy().clone(),
        app.calls().media_waiters().clone(),
        app.metrics().webhook_media_missing.clone(),
    )));
    Ok(d)
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
