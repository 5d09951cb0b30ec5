//! Rate limits: per tenant on authenticated routes, per source IP on unauthenticated
//! ones (browser endpoints, LiveKit webhooks and signalling). Answered with 429 and
//! `Retry-After`, counted in `c2c_limit_rejections_total`.
//!
//! Counting uses pingora-limits' count-min sketch over one-second windows: constant
//! memory whatever the number of tenants or addresses, no per-key allocation.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use c2c_plugin_api::{Access, ApiError, Decision, Plugin, RequestCtx, RequestHead};
use http::StatusCode;
use pingora_limits::rate::Rate;

use crate::app::App;

pub struct Limits {
    app: Arc<App>,
    per_tenant: Rate,
    per_ip: Rate,
}

impl Limits {
    pub fn new(app: Arc<App>) -> Self {
        Self {
            app,
            per_tenant: Rate::new(Duration::from_secs(1)),
            per_ip: Rate::new(Duration::from_secs(1)),
        }
    }
}

pub fn too_many(kind: &str) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many requests ({kind}); retry after the indicated delay"),
    )
    .with_retry_after(1)
}

#[async_trait]
impl Plugin for Limits {
    fn name(&self) -> &'static str {
        "limits"
    }

    /// Runs after auth (so the tenant is known) and before any work.
    async fn on_request(&self, head: &RequestHead<'_>, ctx: &mut RequestCtx) -> Decision {
        let Some(route) = ctx.route else {
            return Decision::Continue;
        };
        // Probes and scrapes are exempt: a monitoring storm must not hide the gateway.
        if matches!(route.name, "livez" | "readyz" | "metrics") {
            return Decision::Continue;
        }
        let policy = self.app.policy().get();
        match (route.access, ctx.tenant()) {
            (Access::Key(_) | Access::AnyKey(_), Some(tenant)) => {
                let Some(t) = policy.tenant(tenant) else {
                    return Decision::Continue;
                };
                let n = self.per_tenant.observe(&tenant, 1);
                if n > i64::from(policy.gateway.node_share(t.limits.requests_per_second)) as isize {
                    self.app
                        .metrics()
                        .limit_rejections
                        .with_label_values(&[tenant, "tenant_rate"])
                        .inc();
                    return too_many("tenant request rate").into();
                }
            }
            (Access::Public, _) => {
                let Some(ip) = head.peer else {
                    return Decision::Continue;
                };
                let n = self.per_ip.observe(&ip, 1);
                if n > i64::from(policy.gateway.node_share(policy.gateway.per_ip_rps)) as isize {
                    self.app
                        .metrics()
                        .limit_rejections
                        .with_label_values(&["-", "ip_rate"])
                        .inc();
                    return too_many("per-address request rate").into();
                }
            }
            _ => {}
        }
        Decision::Continue
    }
}
