//! The Pingora `ProxyHttp` implementation. It stays thin: each hook adapts the session
//! into a [`RequestHead`], runs the plugin chain, and writes what the chain decided.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use c2c_plugin_api::{ApiError, Decision, JsonResponse, PluginChain, RequestCtx, RequestHead};
use pingora::connectors::ConnectorOptions;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::http::ServerSession;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use crate::agents::socket::Handshake;
use crate::app::App;
use crate::body;
use crate::client_errors;
use crate::edge::MAX_CONNECT_ATTEMPTS;
use crate::routes;
use crate::rtc::RtcEdge;

pub struct GatewayProxy {
    chain: Arc<PluginChain>,
    app: Arc<App>,
    /// Signalling WebSockets, taken out of the proxy phases after their head.
    rtc: RtcEdge,
    /// Per source IP rate of presence handshakes, which are taken over before the chain
    /// (and its per-IP limit) runs: the same limit, counted here.
    presence_rate: pingora_limits::rate::Rate,
}

/// Per-request state: the plugins' context plus what the proxy glue tracks for
/// upstream selection and metrics.
pub struct GatewayCtx {
    pub req: RequestCtx,
    /// Upstreams that refused a connection during this request.
    tried: Vec<SocketAddr>,
    /// The (region, upstream host) that served the request, for metrics.
    served: Option<(String, String)>,
    /// An upgraded (WebSocket) session is open.
    ws: bool,
}

impl GatewayProxy {
    /// `upstream`: how TLS upstreams are connected (Pingora's server configuration).
    pub fn new(chain: PluginChain, app: Arc<App>, upstream: Option<ConnectorOptions>) -> Self {
        let chain = Arc::new(chain);
        Self {
            rtc: RtcEdge::new(app.clone(), chain.clone(), upstream),
            chain,
            app,
            presence_rate: pingora_limits::rate::Rate::new(std::time::Duration::from_secs(1)),
        }
    }

    /// A presence socket's handshake: answered `101` here and served on its own task
    /// (crate::agents::socket), so the socket holds none of Pingora's per-connection
    /// state. Anything else, including a malformed handshake, goes on to the chain.
    async fn take_over_presence(
        &self,
        mut session: Box<ServerSession>,
    ) -> Option<Box<ServerSession>> {
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        if let Some(ip) = peer {
            let rps = self.app.policy().get().gateway.per_ip_rps;
            if self.presence_rate.observe(&ip, 1) > i64::from(rps) as isize {
                self.app
                    .metrics()
                    .limit_rejections
                    .with_label_values(&["-", "ip_rate"])
                    .inc();
                if let Some((h, body)) = client_errors::to_pingora(crate::chain::limits::too_many(
                    "source address request rate",
                )) {
                    let _ = session.write_error_response(h, body).await;
                }
                return None;
            }
        }
        let max = self.app.policy().get().gateway.presence.max_sessions;
        if self.app.agents().presence_full(max) {
            self.app
                .metrics()
                .presence_refused
                .with_label_values(&["full"])
                .inc();
            let full = ApiError::unavailable(
                "presence_full",
                "this gateway holds its maximum of presence sockets; retry shortly",
                5,
            );
            if let Some((h, body)) = client_errors::to_pingora(full) {
                let _ = session.write_error_response(h, body).await;
            }
            return None;
        }
        match crate::agents::socket::take_over(&mut session).await {
            Handshake::NotOne => return Some(session),
            Handshake::Failed => return None,
            Handshake::Done => {}
        }
        let ServerSession::H1(h1) = *session else {
            return None;
        };
        let stream = h1.into_inner();
        tokio::spawn(crate::agents::socket::serve(self.app.clone(), stream, peer));
        None
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
        // A failed write means the client is gone: its side, not the gateway's.
        session
            .write_response_header(Box::new(h), empty)
            .await
            .map_err(|e| e.into_down())?;
        if !empty {
            session
                .write_response_body(Some(resp.body), true)
                .await
                .map_err(|e| e.into_down())?;
        }
        Ok(())
    }
}

impl GatewayProxy {
    /// Writes a local response whose body arrives in chunks (chunked transfer coding),
    /// after the plugins' `on_local_response` like any local answer. Memory stays at
    /// what the channel holds; a failed write (client gone) drops the receiver, which
    /// stops the producer.
    async fn respond_streamed(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        mut resp: JsonResponse,
        mut body: tokio::sync::mpsc::Receiver<Bytes>,
    ) -> Result<()> {
        {
            let head = head_of(session.req_header(), None);
            self.chain.on_local_response(&head, ctx, &mut resp);
        }
        ctx.status = resp.status.as_u16();
        let mut h = ResponseHeader::build(resp.status, Some(resp.headers.len() + 1))?;
        for (name, value) in resp.headers {
            h.append_header(name, value)?;
        }
        h.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
        session.write_response_header(Box::new(h), false).await?;
        while let Some(chunk) = body.recv().await {
            session.write_response_body(Some(chunk), false).await?;
        }
        session.write_response_body(None, true).await
    }
}

/// The plugins' view of a request head.
pub(crate) fn head_of(
    req: &pingora::http::RequestHeader,
    peer: Option<std::net::IpAddr>,
) -> RequestHead<'_> {
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
    // Small bodies arrive in one chunk: hand it on without copying.
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                let have = first.as_ref().map_or(0, Bytes::len) + buf.len();
                if have + chunk.len() > body::MAX_BODY_BYTES {
                    return Err(BodyError::TooLarge);
                }
                match first.take() {
                    None if buf.is_empty() => first = Some(chunk),
                    prev => {
                        if let Some(p) = prev {
                            buf.extend_from_slice(&p);
                        }
                        buf.extend_from_slice(&chunk);
                    }
                }
            }
            Ok(None) => return Ok(first.unwrap_or_else(|| buf.freeze())),
            Err(e) => return Err(BodyError::Io(e)),
        }
    }
}

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = GatewayCtx;

    fn new_ctx(&self) -> GatewayCtx {
        GatewayCtx {
            req: RequestCtx::default(),
            tried: Vec::new(),
            served: None,
            ws: false,
        }
    }

    /// Runs the chain's `on_request`; for local routes reads the body and runs
    /// `on_body`, then answers. Returns `Ok(true)` whenever the gateway answered.
    async fn request_filter(&self, session: &mut Session, gctx: &mut GatewayCtx) -> Result<bool> {
        let ctx = &mut gctx.req;
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
            // Broken chunked framing, a body shorter than its Content-Length, a reset:
            // the client's error. Answered 400 (a half-closed client still reads it);
            // if it is gone, the 400 still counts and nothing is logged above debug.
            Err(BodyError::Io(e)) => {
                tracing::debug!(route = ctx.route_name(), error = %e, "request body unreadable");
                session.set_keepalive(None);
                let resp = client_errors::body_error(&e).into();
                if let Err(we) = self.respond(session, ctx, resp).await {
                    tracing::debug!(error = %we, "client gone before its 400 was sent");
                }
                return Ok(true);
            }
        };
        let decision = {
            let head = head_of(session.req_header(), peer);
            self.chain.on_body(&head, &body, ctx).await
        };
        let resp = match decision {
            Decision::Respond(r) => r,
            Decision::Continue => ApiError::internal("no plugin answered this route").into(),
        };
        // The one streamed answer (a store backup can be gigabytes): the handler gave
        // the head, the body comes from the store as it is copied.
        if ctx.route == Some(routes::OWNER_BACKUP) && resp.status == http::StatusCode::OK {
            match crate::api::backup::start(&self.app) {
                Ok(body) => self.respond_streamed(session, ctx, resp, body).await?,
                Err(e) => self.respond(session, ctx, e.into()).await?,
            }
            return Ok(true);
        }
        self.respond(session, ctx, resp).await?;
        Ok(true)
    }

    /// Picks the upstream the edge plugin chose: a healthy member of the region (or a
    /// fallback region), skipping upstreams this request already failed to reach; or a
    /// bring-your-own project's URL. No read/idle timeouts: a call's signalling
    /// WebSocket may be quiet for minutes and must not be cut.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut GatewayCtx,
    ) -> Result<Box<HttpPeer>> {
        let (region, up) = self
            .app
            .edge()
            .pick(ctx.req.upstream.as_ref(), &ctx.tried)
            .map_err(|e| Error::explain(ErrorType::HTTPStatus(e.status()), e.to_string()))?;
        let sni = if up.tls {
            up.host.split(':').next().unwrap_or("").to_string()
        } else {
            String::new()
        };
        let mut peer = HttpPeer::new(up.addr, up.tls, sni);
        peer.options.connection_timeout = Some(std::time::Duration::from_secs(2));
        ctx.tried.push(up.addr);
        ctx.served = Some((region, up.host));
        Ok(Box::new(peer))
    }

    /// Passive failover: a connect error retries the next healthy upstream.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut GatewayCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some((region, host)) = &ctx.served {
            tracing::warn!(%region, upstream = %host, "LiveKit upstream refused a connection; trying the next");
        }
        if ctx.tried.len() < MAX_CONNECT_ATTEMPTS {
            e.set_retry(true);
        }
        e
    }

    /// LiveKit sees its own host, as if the client had connected directly.
    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut GatewayCtx,
    ) -> Result<()> {
        if let Some((_, host)) = &ctx.served {
            req.insert_header(http::header::HOST, host.as_str())?;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut GatewayCtx,
    ) -> Result<()> {
        ctx.req.status = resp.status.as_u16();
        if resp.status == http::StatusCode::SWITCHING_PROTOCOLS && !ctx.ws {
            ctx.ws = true;
            self.app.metrics().websocket_sessions.inc();
        }
        Ok(())
    }

    /// Proxy failures (no healthy upstream, LiveKit unreachable) answer in the gateway's
    /// one JSON error shape instead of Pingora's empty error page. Failures on the
    /// client's side (a broken request body, a hang-up) are its error: 400 while the
    /// request is being read, nothing once the answer has begun, logged at debug.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut GatewayCtx,
    ) -> FailToProxy {
        let started = session.response_written().is_some();
        let client = client_errors::is_client_error(e);
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            _ if client => client_errors::client_error_status(e, started),
            _ => match e.esource() {
                ErrorSource::Upstream => 502,
                _ => 500,
            },
        };
        if client {
            tracing::debug!(route = ctx.req.route_name(), error = %e, status = code, "client-side failure");
        }
        if code > 0 && !started {
            let err = match code {
                _ if client => client_errors::body_error(e),
                502..=504 => ApiError::unavailable(
                    "livekit_unavailable",
                    "no LiveKit upstream could be reached for this request; retry shortly",
                    2,
                ),
                _ => ApiError::new(
                    http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::BAD_GATEWAY),
                    "proxy_error",
                    "the request could not be proxied",
                ),
            };
            let mut resp: JsonResponse = err.into();
            resp.status = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::BAD_GATEWAY);
            if let Err(we) = self.respond(session, &mut ctx.req, resp).await {
                tracing::debug!(error = %we, "could not send the error response");
            }
        }
        ctx.req.status = code;
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// Client-side failures were logged at debug by `fail_to_proxy`; Pingora would log
    /// them again at ERROR.
    fn suppress_error_log(&self, _session: &Session, _ctx: &GatewayCtx, e: &Error) -> bool {
        client_errors::is_client_error(e)
    }

    /// The presence WebSocket (see [`GatewayProxy::take_over_presence`]) and LiveKit's
    /// signalling WebSockets (see [`crate::rtc`]) leave Pingora here; every other
    /// request goes on. While draining, nothing is taken: the proxy phases answer.
    async fn take_over(&self, session: Box<ServerSession>) -> Option<Box<ServerSession>> {
        if self.app.is_draining() {
            return Some(session);
        }
        if session.req_header().uri.path() == routes::PRESENCE_PATH
            && matches!(*session, ServerSession::H1(_))
        {
            return self.take_over_presence(session).await;
        }
        if RtcEdge::takes(&session) {
            self.rtc.serve(session).await;
            return None;
        }
        Some(session)
    }

    /// A request Pingora refused before any hook ran (unparsable head: 400, CONNECT:
    /// 405) gets the JSON error shape too, and is counted like any request (route
    /// `unmatched`; vendored pingora-proxy patch, see plugins/vendor/README.md).
    fn early_error_response(&self, status: u16) -> Option<(ResponseHeader, Bytes)> {
        let ctx = RequestCtx {
            status,
            ..RequestCtx::default()
        };
        self.chain.on_logging(&ctx);
        client_errors::to_pingora(client_errors::early_error(status))
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, gctx: &mut GatewayCtx) {
        let ctx = &mut gctx.req;
        if ctx.status == 0 {
            ctx.status = session
                .response_written()
                .map(|r| r.status.as_u16())
                .unwrap_or(0);
        }
        if gctx.ws {
            self.app.metrics().websocket_sessions.dec();
        }
        if let Some((region, host)) = &gctx.served {
            crate::edge::count_proxied(self.app.metrics(), region, host, ctx.status);
        }
        self.chain.on_logging(ctx);
    }
}
