//! Content type, charset and declared size checks for local routes, before any body byte
//! is read.

use async_trait::async_trait;
use c2c_plugin_api::{Decision, Plugin, RequestCtx, RequestHead};
use http::Method;

use crate::body;

pub struct BodyRules;

#[async_trait]
impl Plugin for BodyRules {
    fn name(&self) -> &'static str {
        "body_rules"
    }

    async fn on_request(&self, head: &RequestHead<'_>, ctx: &mut RequestCtx) -> Decision {
        let Some(route) = ctx.route else {
            return Decision::Continue;
        };
        if !route.local {
            return Decision::Continue;
        }
        // A declared oversize body is refused without reading it; chunked bodies are
        // bounded while reading (see proxy.rs).
        if body::declared_length(head).is_some_and(|n| n > body::MAX_BODY_BYTES as u64) {
            return body::too_large().into();
        }
        let checked = if route.json_body
            && matches!(*head.method, Method::POST | Method::PUT | Method::PATCH)
        {
            body::require_json(head)
        } else {
            body::require_utf8_body(head)
        };
        match checked {
            Ok(()) => Decision::Continue,
            Err(e) => e.into(),
        }
    }
}
