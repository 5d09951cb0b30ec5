//! Request metrics and the access log (debug level; numbers never appear in paths we log
//! because call routes carry only opaque call ids), and the `Server-Timing` header that
//! tells a caller how much of a response's latency was LiveKit's.

use std::sync::Arc;

use async_trait::async_trait;
use c2c_plugin_api::{JsonResponse, Plugin, RequestCtx, RequestHead};
use http::HeaderValue;

use crate::app::App;

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
        let m = &self.app.metrics;
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
        tracing::debug!(
            route,
            status = ctx.status,
            elapsed_us = elapsed.as_micros() as u64,
            tenant = ctx.tenant().unwrap_or("-"),
            "request"
        );
    }
}
