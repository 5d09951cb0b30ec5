//! Authenticates LiveKit traffic (signalling and the server API) before any upstream
//! connection: the LiveKit access token must be signed by a known project's key and be
//! within its validity window. Its issuer picks the tenant and so the destination: a
//! bring-your-own project's own URL, or the region of the call's tenant (platform
//! project). Anything else is a 401 and never reaches an upstream.

use std::sync::Arc;

use async_trait::async_trait;
use c2c_plugin_api::{ApiError, Decision, Plugin, RequestCtx, RequestHead, UpstreamChoice};
use http::StatusCode;

use crate::app::App;
use crate::routes;

pub struct EdgeAuth {
    app: Arc<App>,
}

impl EdgeAuth {
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

/// The token from `?access_token=` (browsers' WebSocket) or `Authorization: Bearer`.
pub fn token<'a>(head: &RequestHead<'a>) -> Option<std::borrow::Cow<'a, str>> {
    if let Some(q) = head.uri.query() {
        for pair in q.split('&') {
            if let Some(v) = pair.strip_prefix("access_token=") {
                return Some(percent_decode(v));
            }
        }
    }
    head.header(http::header::AUTHORIZATION)
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(|t| std::borrow::Cow::Borrowed(t.trim()))
}

/// JWTs are base64url and dots; only `%xx` escapes need undoing, and a token with
/// anything stranger simply fails verification.
fn percent_decode(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains('%') {
        return std::borrow::Cow::Borrowed(v);
    }
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(x) = u8::from_str_radix(&v[i + 1..i + 3], 16) {
                out.push(x);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    std::borrow::Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn unauthorized(why: &str) -> Decision {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        format!("LiveKit access token refused: {why}"),
    )
    .into()
}

#[async_trait]
impl Plugin for EdgeAuth {
    fn name(&self) -> &'static str {
        "edge_auth"
    }

    async fn on_request(&self, head: &RequestHead<'_>, ctx: &mut RequestCtx) -> Decision {
        if !ctx.route.is_some_and(|r| routes::is_livekit_route(&r)) {
            return Decision::Continue;
        }
        let Some(tok) = token(head) else {
            return unauthorized("missing (send ?access_token= or Authorization: Bearer)");
        };
        let verified = match self.app.livekit.verifier().verify_access_token(&tok) {
            Ok(v) => v,
            Err(e) => {
                self.app
                    .metrics
                    .auth_failures
                    .with_label_values(&["livekit_token"])
                    .inc();
                return unauthorized(e.reason());
            }
        };
        let policy = self.app.policy.get();
        // A bring-your-own project: straight to its own LiveKit.
        if let Some(t) = policy.tenant_by_livekit_key(&verified.api_key) {
            ctx.resource_tenant = Some(t.id.clone());
            let url = self
                .app
                .livekit
                .resolved_url(t.livekit.as_ref().map(|p| p.url.as_str()).unwrap_or(""));
            ctx.upstream = Some(UpstreamChoice::Url(url));
            return Decision::Continue;
        }
        // The platform project: the region of the call's tenant, when the token is for
        // one of our call rooms; else the default region.
        let tenant = verified
            .room
            .as_deref()
            .and_then(|r| r.strip_prefix("c2c-"))
            .map(|hex| format!("c2c_{hex}"))
            .and_then(|id| self.app.store.get(&id).ok().flatten())
            .map(|rec| rec.tenant);
        let region = tenant
            .as_deref()
            .and_then(|t| policy.tenant(t))
            .map(|t| t.region.clone())
            .or_else(|| self.app.edge.default_region.clone());
        ctx.resource_tenant = tenant;
        match region {
            Some(r) if self.app.edge.contains(&r) => {
                ctx.upstream = Some(UpstreamChoice::Region(r));
                Decision::Continue
            }
            _ => ApiError::unavailable(
                "no_upstream",
                "no LiveKit region is configured for this tenant",
                5,
            )
            .into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_of_tokens() {
        assert_eq!(percent_decode("a.b.c"), "a.b.c");
        assert_eq!(percent_decode("a%2Eb"), "a.b");
        assert_eq!(percent_decode("a%2"), "a%2");
    }
}
