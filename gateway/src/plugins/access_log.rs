//! Request metrics and the access log (debug level; numbers never appear in paths we log
//! because call routes carry only opaque call ids).

use std::sync::Arc;

use async_trait::async_trait;
use c2c_plugin_api::{Plugin, RequestCtx};

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

    fn on_logging(&self, ctx: &RequestCtx) {
        let route = ctx.route_name();
        let elapsed = ctx.started.elapsed();
        let m = &self.app.metrics;
        let status = c2c_metrics::status_label(ctx.status);
        m.http_requests.with_label_values(&[route, &status]).inc();
        m.http_duration
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
        tracing::debug!(
            route,
            status = ctx.status,
            elapsed_us = elapsed.as_micros() as u64,
            tenant = ctx.tenant().unwrap_or("-"),
            "request"
        );
    }
}
