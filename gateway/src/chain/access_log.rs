//! Request metrics, the access log, and the `Server-Timing` header that tells a caller
//! how much of a response's latency was LiveKit's.
//!
//! The access log is one line per request at info: route, status, tenant, the key's id
//! (never the key), the call id on call routes, latency and LiveKit's share of it. Probes
//! and scrapes (`/livez`, `/readyz`, `/metrics`), which an orchestrator sends every few
//! seconds, log at debug. Paths are never logged: call routes carry only opaque ids and
//! nothing else in a path is needed to follow a request.

use std::sync::Arc;

use async_trait::async_trait;
use c2c_plugin_api::{JsonResponse, Plugin, RequestCtx, RequestHead};
use http::HeaderValue;

use crate::app::App;
use crate::routes;

pub struct AccessLog {
    app: Arc<App>,
}

impl AccessLog {
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

#[async_trait]
impl Plugin for AccessLog {
    fn name(&self) -> &'static str {
        "access_log"
    }

    /// Requests that waited on LiveKit say for how long (W3C Server-Timing, in ms), so
    /// a CRM seeing a slow click2call can tell LiveKit's share from the gateway's.
    fn on_local_response(
        &self,
        _head: &RequestHead<'_>,
        ctx: &RequestCtx,
        resp: &mut JsonResponse,
    ) {
        if ctx.livekit_wait.is_zero() {
            return;
        }
        let ms = ctx.livekit_wait.as_secs_f64() * 1000.0;
        if let Ok(v) = HeaderValue::from_str(&format!("livekit;dur={ms:.3}")) {
            resp.headers
                .push((http::header::HeaderName::from_static("server-timing"), v));
        }
    }

    fn on_logging(&self, ctx: &RequestCtx) {
        let route = ctx.route_name();
        let elapsed = ctx.started.elapsed();
        let m = &self.app.metrics();
        let status = c2c_metrics::status_label(ctx.status);
        m.http_requests.with_label_values(&[route, &status]).inc();
        m.http_duration
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
        if !ctx.livekit_wait.is_zero() {
            m.http_gateway_duration
                .with_label_values(&[route])
                .observe(elapsed.saturating_sub(ctx.livekit_wait).as_secs_f64());
        }
        let tenant = ctx
            .tenant()
            .or(ctx.resource_tenant.as_deref())
            .unwrap_or("-");
        let key_id = ctx.principal.as_ref().map_or("-", |p| &*p.key_id);
        let call_id = call_id_of(ctx).unwrap_or("-");
        let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
        let livekit_ms = ctx.livekit_wait.as_secs_f64() * 1000.0;
        if is_probe(ctx) {
            tracing::debug!(route, status = ctx.status, elapsed_ms, "request");
        } else {
            tracing::info!(
                route,
                status = ctx.status,
                tenant,
                key_id,
                call_id,
                elapsed_ms,
                livekit_ms,
                "request"
            );
        }
    }
}

/// Orchestrator probes and metric scrapes: logged at debug only.
fn is_probe(ctx: &RequestCtx) -> bool {
    ctx.route
        .is_some_and(|r| matches!(r, routes::LIVEZ | routes::READYZ | routes::METRICS))
}

/// The call a call route addresses, if the id is well formed (anything else a client
/// put in the path stays out of the log).
fn call_id_of(ctx: &RequestCtx) -> Option<&str> {
    let route = ctx.route?;
    if !routes::is_browser_route(&route) {
        return None;
    }
    ctx.param(0)
        .filter(|id| c2c_callstate::is_valid_call_id(id))
}
