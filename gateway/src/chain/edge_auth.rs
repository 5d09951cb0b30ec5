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

/// The token was sent more than once; `what` names how, for the 401's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("exactly one {what} is allowed")]
pub struct AmbiguousToken {
    pub what: &'static str,
}

/// The token from `?access_token=` (browsers' WebSocket) or `Authorization: Bearer`.
///
/// LiveKit reads the `Authorization` header when there is one and the first
/// `access_token` otherwise; the gateway verifies the token it routes by, so every way
/// two tokens could be told apart is refused: two `Authorization` headers, two
/// `access_token` parameters, or a parameter and a header that differ. The same token
/// in both places is one token.
pub fn token<'a>(
    head: &RequestHead<'a>,
) -> Result<Option<std::borrow::Cow<'a, str>>, AmbiguousToken> {
    let mut query = head
        .uri
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|pair| pair.strip_prefix("access_token="));
    let from_query = query.next().map(percent_decode);
    if query.next().is_some() {
        return Err(AmbiguousToken {
            what: "access_token parameter",
        });
    }
    let header = head
        .single_header(&http::header::AUTHORIZATION)
        .map_err(|_| AmbiguousToken {
            what: "Authorization header",
        })?;
    let from_header = header
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(|t| std::borrow::Cow::Borrowed(t.trim()));
    match (from_query, from_header) {
        (Some(q), Some(h)) if q != h => Err(AmbiguousToken {
            what: "access_token or Authorization: Bearer token",
        }),
        (Some(q), _) => Ok(Some(q)),
        (None, h) => Ok(h),
    }
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
        let tok = match token(head) {
            Ok(Some(tok)) => tok,
            Ok(None) => {
                return unauthorized("missing (send ?access_token= or Authorization: Bearer)")
            }
            Err(e) => {
                self.app
                    .metrics()
                    .auth_failures
                    .with_label_values(&["duplicate"])
                    .inc();
                return ApiError::ambiguous_credential(e.what).into();
            }
        };
        let verified = match self.app.livekit().verifier().verify_access_token(&tok) {
            Ok(v) => v,
            Err(e) => {
                self.app
                    .metrics()
                    .auth_failures
                    .with_label_values(&["livekit_token"])
                    .inc();
                return unauthorized(e.reason());
            }
        };
        let policy = self.app.policy().get();
        // A bring-your-own project: straight to its own LiveKit.
        if let Some(t) = policy.tenant_by_livekit_key(&verified.api_key) {
            ctx.resource_tenant = Some(t.id.clone());
            let url = self
                .app
                .livekit()
                .resolved_url(t.livekit.as_ref().map(|p| p.url.as_str()).unwrap_or(""));
            ctx.upstream = Some(UpstreamChoice::Url(url));
            return Decision::Continue;
        }
        // The platform project: the region of the call's tenant, when the token is for
        // one of our call rooms; else the default region.
        let call_id = verified
            .room
            .as_deref()
            .and_then(|r| r.strip_prefix("c2c-"))
            .map(|hex| format!("c2c_{hex}"));
        // A call's tenant never changes: what this node wrote last of the call answers
        // it without a read of a shared store (`get_recent`).
        let tenant = match call_id {
            Some(id) => self.app.store().get_recent(&id).await.ok().flatten(),
            None => None,
        }
        .map(|rec| rec.tenant);
        let region = tenant
            .as_deref()
            .and_then(|t| policy.tenant(t))
            .map(|t| t.region.clone())
            .or_else(|| self.app.edge().default_region.clone());
        ctx.resource_tenant = tenant;
        match region {
            Some(r) if self.app.edge().contains(&r) => {
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

    fn token_of(uri: &str, auth: &[&str]) -> Result<Option<String>, &'static str> {
        let mut headers = http::HeaderMap::new();
        for a in auth {
            headers.append(http::header::AUTHORIZATION, a.parse().unwrap());
        }
        let uri: http::Uri = uri.parse().unwrap();
        let head = RequestHead {
            method: &http::Method::GET,
            uri: &uri,
            headers: &headers,
            peer: None,
        };
        token(&head)
            .map(|t| t.map(|t| t.into_owned()))
            .map_err(|e| e.what)
    }

    #[test]
    fn one_token_in_one_place_or_the_same_token_in_both() {
        assert_eq!(
            token_of("/rtc?access_token=a%2Eb", &[]),
            Ok(Some("a.b".into()))
        );
        assert_eq!(token_of("/rtc", &["Bearer a"]), Ok(Some("a".into())));
        assert_eq!(
            token_of("/rtc?access_token=a", &["Bearer a"]),
            Ok(Some("a".into()))
        );
        assert_eq!(token_of("/rtc", &[]), Ok(None));
        assert_eq!(token_of("/rtc", &["Basic a"]), Ok(None));
    }

    #[test]
    fn two_tokens_are_refused_however_they_are_sent() {
        assert_eq!(
            token_of("/rtc", &["Bearer a", "Bearer b"]),
            Err("Authorization header")
        );
        assert_eq!(
            token_of("/rtc", &["Bearer a", "Bearer a"]),
            Err("Authorization header")
        );
        assert_eq!(
            token_of("/rtc?access_token=a&x=1&access_token=a", &[]),
            Err("access_token parameter")
        );
        assert!(token_of("/rtc?access_token=a", &["Bearer b"])
            .is_err_and(|w| w.starts_with("access_token or Authorization")));
    }

    #[test]
    fn percent_decoding_of_tokens() {
        assert_eq!(percent_decode("a.b.c"), "a.b.c");
        assert_eq!(percent_decode("a%2Eb"), "a.b");
        assert_eq!(percent_decode("a%2"), "a%2");
    }
}
