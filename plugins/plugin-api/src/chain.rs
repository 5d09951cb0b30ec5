//! The `Plugin` trait and the ordered chain the gateway runs.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{Decision, JsonResponse, RequestCtx, RequestHead};

/// One concern of the gateway (routing, auth, DLT gate, an API, ...).
///
/// Hooks run in chain order; the first `Decision::Respond` ends the chain for that
/// phase and the gateway writes the response. Every hook has a default that does
/// nothing, so a plugin implements only the phases it cares about.
#[async_trait]
pub trait Plugin: Send + Sync {
    /// A short stable name for logs.
    fn name(&self) -> &'static str;

    /// Runs once per request after the request head has been read and before any body
    /// byte is read or any upstream is chosen — for every request, proxied or local,
    /// including `Upgrade` (WebSocket) requests.
    ///
    /// May: route, authenticate, authorise, rate-limit, and answer on its own (`Respond`).
    /// Must not: block, or read the body (it is not available yet).
    /// Default: `Continue`.
    async fn on_request(&self, _head: &RequestHead<'_>, _ctx: &mut RequestCtx) -> Decision {
        Decision::Continue
    }

    /// Runs only for routes the gateway answers itself (`RouteInfo::local`), after the
    /// whole body has been read within the gateway's size bound (oversized bodies were
    /// already answered with 413 and never reach this hook).
    ///
    /// May: parse the body and answer. The last plugin of the chain for a local route
    /// must answer; if every plugin continues, the gateway answers 500 (a wiring bug).
    /// Default: `Continue`.
    async fn on_body(
        &self,
        _head: &RequestHead<'_>,
        _body: &Bytes,
        _ctx: &mut RequestCtx,
    ) -> Decision {
        Decision::Continue
    }

    /// Runs for every response the gateway writes itself (including error responses
    /// from earlier hooks), just before it is sent.
    ///
    /// May: add headers (CORS, caching). Must not: change the status or the body.
    /// Default: nothing.
    fn on_local_response(
        &self,
        _head: &RequestHead<'_>,
        _ctx: &RequestCtx,
        _resp: &mut JsonResponse,
    ) {
    }

    /// Runs once when the request is finished, whatever happened (success, error,
    /// client gone). `ctx.status` holds the final status (0 if none was sent).
    ///
    /// May: record metrics and access logs. Must not: fail or block.
    /// Default: nothing.
    fn on_logging(&self, _ctx: &RequestCtx) {}
}

/// The ordered list of plugins the gateway runs for each request.
#[derive(Clone, Default)]
pub struct PluginChain {
    plugins: Vec<Arc<dyn Plugin>>,
}

impl PluginChain {
    pub fn new(plugins: Vec<Arc<dyn Plugin>>) -> Self {
        Self { plugins }
    }

    pub async fn on_request(&self, head: &RequestHead<'_>, ctx: &mut RequestCtx) -> Decision {
        for p in &self.plugins {
            if let Decision::Respond(r) = p.on_request(head, ctx).await {
                return Decision::Respond(r);
            }
        }
        Decision::Continue
    }

    pub async fn on_body(
        &self,
        head: &RequestHead<'_>,
        body: &Bytes,
        ctx: &mut RequestCtx,
    ) -> Decision {
        for p in &self.plugins {
            if let Decision::Respond(r) = p.on_body(head, body, ctx).await {
                return Decision::Respond(r);
            }
        }
        Decision::Continue
    }

    pub fn on_local_response(
        &self,
        head: &RequestHead<'_>,
        ctx: &RequestCtx,
        resp: &mut JsonResponse,
    ) {
        for p in &self.plugins {
            p.on_local_response(head, ctx, resp);
        }
    }

    pub fn on_logging(&self, ctx: &RequestCtx) {
        for p in &self.plugins {
            p.on_logging(ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ApiError;
    use http::{HeaderMap, Method, StatusCode, Uri};
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Count(AtomicUsize);
    #[async_trait]
    impl Plugin for Count {
        fn name(&self) -> &'static str {
            "count"
        }
        async fn on_request(&self, _h: &RequestHead<'_>, _c: &mut RequestCtx) -> Decision {
            self.0.fetch_add(1, Ordering::SeqCst);
            Decision::Continue
        }
    }

    struct Deny;
    #[async_trait]
    impl Plugin for Deny {
        fn name(&self) -> &'static str {
            "deny"
        }
        async fn on_request(&self, _h: &RequestHead<'_>, _c: &mut RequestCtx) -> Decision {
            ApiError::unauthorized().into()
        }
    }

    #[tokio::test]
    async fn respond_stops_the_chain() {
        let after = Arc::new(Count(AtomicUsize::new(0)));
        let chain = PluginChain::new(vec![Arc::new(Deny), after.clone()]);
        let (m, u, h) = (Method::GET, Uri::from_static("/x"), HeaderMap::new());
        let head = RequestHead {
            method: &m,
            uri: &u,
            headers: &h,
            peer: None,
        };
        let mut ctx = RequestCtx::default();
        match chain.on_request(&head, &mut ctx).await {
            Decision::Respond(r) => assert_eq!(r.status, StatusCode::UNAUTHORIZED),
            Decision::Continue => panic!("deny must respond"),
        }
        assert_eq!(after.0.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn continue_runs_every_plugin() {
        let a = Arc::new(Count(AtomicUsize::new(0)));
        let chain = PluginChain::new(vec![a.clone(), a.clone()]);
        let (m, u, h) = (Method::GET, Uri::from_static("/x"), HeaderMap::new());
        let head = RequestHead {
            method: &m,
            uri: &u,
            headers: &h,
            peer: None,
        };
        assert!(matches!(
            chain.on_request(&head, &mut RequestCtx::default()).await,
            Decision::Continue
        ));
        assert_eq!(a.0.load(Ordering::SeqCst), 2);
    }
}
