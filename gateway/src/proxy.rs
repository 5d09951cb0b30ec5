//! The Pingora `ProxyHttp` implementation. It stays thin: each hook adapts the session
//! into a [`RequestHead`], runs the plugin chain, and writes what the chain decided.

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use c2c_plugin_api::{ApiError, Decision, JsonResponse, PluginChain, RequestCtx, RequestHead};
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};

use crate::body;

pub struct GatewayProxy {
    chain: PluginChain,
}

impl GatewayProxy {
    pub fn new(chain: PluginChain) -> Self {
        Self { chain }
    }

    /// Writes a locally generated response after the plugins' `on_local_response`.
    async fn respond(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        mut resp: JsonResponse,
    ) -> Result<()> {
        {
            let req = session.req_header();
            let head = head_of(req, None);
            self.chain.on_local_response(&head, ctx, &mut resp);
        }
        ctx.status = resp.status.as_u16();
        let mut h = ResponseHeader::build(resp.status, Some(resp.headers.len() + 1))?;
        for (name, value) in resp.headers {
            h.append_header(name, value)?;
        }
        h.insert_header(http::header::CONTENT_LENGTH, resp.body.len())?;
        let empty = resp.body.is_empty();
        session.write_response_header(Box::new(h), empty).await?;
        if !empty {
            session.write_response_body(Some(resp.body), true).await?;
        }
        Ok(())
    }
}

fn head_of(req: &pingora::http::RequestHeader, peer: Option<std::net::IpAddr>) -> RequestHead<'_> {
    RequestHead {
        method: &req.method,
        uri: &req.uri,
        headers: &req.headers,
        peer,
    }
}

/// Why a body could not be read.
enum BodyError {
    TooLarge,
    Io(Box<Error>),
}

/// Reads the whole request body, refusing more than [`body::MAX_BODY_BYTES`] as soon as
/// the bound is crossed (chunked bodies have no Content-Length to check up front).
async fn read_body_bounded(session: &mut Session) -> std::result::Result<Bytes, BodyError> {
    let mut buf = BytesMut::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > body::MAX_BODY_BYTES {
                    return Err(BodyError::TooLarge);
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(buf.freeze()),
            Err(e) => return Err(BodyError::Io(e)),
        }
    }
}

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::default()
    }

    /// Runs the chain's `on_request`; for local routes reads the body and runs
    /// `on_body`, then answers. Returns `Ok(true)` whenever the gateway answered.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let decision = {
            let head = head_of(session.req_header(), peer);
            self.chain.on_request(&head, ctx).await
        };
        if let Decision::Respond(r) = decision {
            // The body (if any) was not read; don't try to reuse the connection.
            session.set_keepalive(None);
            self.respond(session, ctx, r).await?;
            return Ok(true);
        }
        let local = ctx.route.is_some_and(|r| r.local);
        if !local {
            return Ok(false);
        }
        let body = match read_body_bounded(session).await {
            Ok(b) => b,
            Err(BodyError::TooLarge) => {
                session.set_keepalive(None);
                self.respond(session, ctx, body::too_large().into()).await?;
                return Ok(true);
            }
            Err(BodyError::Io(e)) => return Err(e),
        };
        let decision = {
            let head = head_of(session.req_header(), peer);
            self.chain.on_body(&head, &body, ctx).await
        };
        let resp = match decision {
            Decision::Respond(r) => r,
            Decision::Continue => ApiError::internal("no plugin answered this route").into(),
        };
        self.respond(session, ctx, resp).await?;
        Ok(true)
    }

    /// No route is proxied yet; the router answers every request before this point.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        Err(Error::explain(
            ErrorType::HTTPStatus(502),
            "no upstream for this route",
        ))
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        if ctx.status == 0 {
            ctx.status = session
                .response_written()
                .map(|r| r.status.as_u16())
                .unwrap_or(0);
        }
        self.chain.on_logging(ctx);
    }
}
