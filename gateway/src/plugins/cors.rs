//! CORS for the browser endpoints, per tenant: only the call's tenant's
//! `allowed_origins` get `Access-Control-Allow-Origin`. Other origins get no CORS
//! headers, so browsers refuse to hand them the response.

use std::sync::Arc;

use async_trait::async_trait;
use c2c_plugin_api::{JsonResponse, Plugin, RequestCtx, RequestHead};
use http::{header, HeaderValue};

use crate::app::App;
use crate::routes;

pub struct Cors {
    app: Arc<App>,
}

impl Cors {
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
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
        let policy = self.app.policy.get();
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
                HeaderValue::from_static("Content-Type"),
            ));
            h.push((
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            ));
        }
    }
}
