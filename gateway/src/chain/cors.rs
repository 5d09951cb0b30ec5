//! CORS for the browser endpoints, per tenant: only the call's tenant's
//! `allowed_origins` get `Access-Control-Allow-Origin`. Other origins get no CORS
//! headers, so browsers refuse to hand them the response.
//!
//! A refused origin is invisible to the CRM developer (the page sees a CORS error, the
//! CRM backend nothing), so each refusal is counted (`c2c_cors_refused_total`) and logged
//! once per tenant, origin and minute with the route.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use c2c_plugin_api::{JsonResponse, Plugin, RequestCtx, RequestHead};
use http::{header, HeaderValue};

use crate::app::App;
use crate::routes;

pub struct Cors {
    app: Arc<App>,
    refusals: RefusalLog,
}

impl Cors {
    pub fn new(app: Arc<App>) -> Self {
        Self {
            app,
            refusals: RefusalLog::default(),
        }
    }
}

/// How often one tenant's refused origin is logged.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// Tenant/origin pairs remembered at once: origins are whatever clients send, so a flood
/// of made-up ones must not grow memory (past it, new pairs go unlogged until old ones
/// expire; the counter still counts them).
const MAX_TRACKED: usize = 1024;
/// Longest origin written to the log.
const MAX_LOGGED_ORIGIN: usize = 200;

/// When each refused tenant/origin pair was last logged.
#[derive(Default)]
struct RefusalLog {
    last: parking_lot::Mutex<HashMap<String, Instant>>,
}

impl RefusalLog {
    /// True when this pair has not been logged in the last [`LOG_EVERY`].
    fn due(&self, tenant: &str, origin: &str, now: Instant) -> bool {
        let key = format!("{tenant}\0{origin}");
        let mut last = self.last.lock();
        if last.len() >= MAX_TRACKED {
            last.retain(|_, at| now.duration_since(*at) < LOG_EVERY);
        }
        let room = last.len() < MAX_TRACKED;
        match last.get_mut(&key) {
            Some(at) if now.duration_since(*at) < LOG_EVERY => false,
            Some(at) => {
                *at = now;
                true
            }
            None if room => {
                last.insert(key, now);
                true
            }
            None => false,
        }
    }
}

#[async_trait]
impl Plugin for Cors {
    fn name(&self) -> &'static str {
        "cors"
    }

    fn on_local_response(&self, head: &RequestHead<'_>, ctx: &RequestCtx, resp: &mut JsonResponse) {
        let Some(route) = ctx.route else {
            return;
        };
        if !routes::is_browser_route(&route) {
            return;
        }
        let (Some(origin), Some(tenant)) = (
            head.header(http::header::ORIGIN),
            ctx.resource_tenant.as_deref(),
        ) else {
            return;
        };
        let policy = self.app.policy().get();
        let allowed = policy.tenant(tenant).is_some_and(|t| {
            t.allowed_origins
                .iter()
                .any(|o| o.trim_end_matches('/') == origin)
        });
        // Vary even when refused: caches must not serve one origin's answer to another.
        let h = &mut resp.headers;
        h.push((header::VARY, HeaderValue::from_static("Origin")));
        let Ok(origin) = HeaderValue::from_str(origin) else {
            return;
        };
        if !allowed {
            self.app
                .metrics()
                .cors_refused
                .with_label_values(&[tenant, route.name])
                .inc();
            let origin = head.header(http::header::ORIGIN).unwrap_or_default();
            if self.refusals.due(tenant, origin, Instant::now()) {
                let shown: String = origin.chars().take(MAX_LOGGED_ORIGIN).collect();
                tracing::warn!(
                    origin = %shown,
                    tenant,
                    route = route.name,
                    "browser request refused by CORS: the origin is not in the tenant's \
                     allowed_origins (logged once per origin and minute)"
                );
            }
            return;
        }
        h.push((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin));
        if route == routes::CALL_PREFLIGHT {
            h.push((
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST"),
            ));
            h.push((
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                // Authorization: the call's agent token for /token, the presence token for /accept.
                HeaderValue::from_static("Content-Type, Authorization"),
            ));
            h.push((
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_origin_is_logged_once_a_minute_per_tenant() {
        let log = RefusalLog::default();
        let t0 = Instant::now();
        assert!(log.due("acme", "https://crm.example", t0));
        assert!(!log.due("acme", "https://crm.example", t0 + Duration::from_secs(59)));
        assert!(log.due("globex", "https://crm.example", t0), "per tenant");
        assert!(log.due("acme", "https://other.example", t0), "per origin");
        assert!(log.due("acme", "https://crm.example", t0 + LOG_EVERY));
    }

    #[test]
    fn made_up_origins_cannot_grow_the_log() {
        let log = RefusalLog::default();
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED * 3 {
            log.due("acme", &format!("https://{i}.example"), t0);
        }
        assert_eq!(log.last.lock().len(), MAX_TRACKED);
        // Once the old entries expire there is room again.
        assert!(log.due("acme", "https://late.example", t0 + LOG_EVERY));
    }
}
