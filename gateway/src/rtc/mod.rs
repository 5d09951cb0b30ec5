//! LiveKit signalling WebSockets (`GET /rtc` and paths under it, upgraded), taken out of
//! Pingora after their head.
//!
//! Through Pingora's proxy phases an upgraded request keeps the whole HTTP/1 proxy state
//! alive for the socket's life: both sessions with their buffers, the task pipes, the
//! duplex loop's futures. That was 62 KiB per idle socket against nginx's 18 KiB
//! (BENCHMARKS.md, issue 26), and agents hold these sockets open all day. Here the
//! opening handshake runs the same plugin chain as any request (the router, the token
//! check that picks the tenant and the region, the limits, the access log), the upstream
//! is picked and connected like the proxy phases do it (a healthy member of the region,
//! then its fallbacks, the next one when a connect fails), the request head is forwarded
//! with LiveKit's own `Host`, and LiveKit's answer goes back as it came. After a `101`
//! the two sockets leave Pingora and are relayed by [`relay`] with no buffer of their
//! own while idle. Anything else LiveKit answers is passed on and the connection closed.
//!
//! What is not taken over stays on the proxy phases: `/rtc/validate` and other plain
//! requests, HTTP/2, requests with a body, and every request while the gateway drains.

mod answer;
pub mod relay;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use c2c_plugin_api::UpstreamChoice;
use c2c_plugin_api::{ApiError, Decision, JsonResponse, PluginChain, RequestCtx};
use http::StatusCode;
use pingora::connectors::{ConnectorOptions, TransportConnector};
use pingora::http::RequestHeader;
use pingora::protocols::http::ServerSession;
use pingora::upstreams::peer::{HttpPeer, ALPN};
use tokio::io::AsyncWriteExt;

use crate::app::App;
use crate::client_errors;
use crate::detach::{detach, Detached};
use crate::edge::{Upstream, MAX_CONNECT_ATTEMPTS};
use crate::proxy::head_of;
use answer::{read_answer, read_refusal_body, refusal_head, AnswerHead};

/// How long an upstream has to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long LiveKit has to answer the handshake: its head, and a refusal's body.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The signalling edge: the plugin chain it runs on a handshake, and the connector for
/// TLS upstreams (plain ones are connected directly).
pub struct RtcEdge {
    app: Arc<App>,
    chain: Arc<PluginChain>,
    connector: TransportConnector,
}

/// Where a handshake went, for the `c2c_proxied_requests_total` labels.
type Served = Option<(String, String)>;

impl RtcEdge {
    pub fn new(app: Arc<App>, chain: Arc<PluginChain>, upstream: Option<ConnectorOptions>) -> Self {
        Self {
            app,
            chain,
            connector: TransportConnector::new(upstream),
        }
    }

    /// Whether this request is a signalling socket's opening handshake that the edge
    /// takes over: HTTP/1.1, `GET` to `/rtc` or under it, asking for a WebSocket, and
    /// with no body (a handshake has none; one that claims a body stays on the proxy
    /// phases, which frame it).
    pub fn takes(session: &ServerSession) -> bool {
        if !matches!(session, ServerSession::H1(_)) {
            return false;
        }
        let req = session.req_header();
        let no_body = !req.headers.contains_key(http::header::TRANSFER_ENCODING)
            && req
                .headers
                .get(http::header::CONTENT_LENGTH)
                .is_none_or(|v| v.as_bytes() == b"0");
        req.method == http::Method::GET
            && crate::routes::is_rtc_path(req.uri.path())
            && crate::detach::asks_websocket_upgrade(&req.headers)
            && no_body
    }

    /// Serves one handshake, and after a `101` hands the relay to a task of its own.
    /// The connection never goes back to Pingora.
    pub async fn serve(&self, mut session: Box<ServerSession>) {
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let mut ctx = RequestCtx::default();
        let decision = {
            let head = head_of(session.req_header(), peer);
            self.chain.on_request(&head, &mut ctx).await
        };
        if let Decision::Respond(resp) = decision {
            self.answer_locally(&mut session, &mut ctx, resp).await;
            self.chain.on_logging(&ctx);
            return;
        }
        let mut served: Served = None;
        let (up, mut upstream) = match self.connect(ctx.upstream.as_ref(), &mut served).await {
            Ok(c) => c,
            Err(status) => {
                self.answer_locally(&mut session, &mut ctx, unavailable(status))
                    .await;
                self.finish(&ctx, &served);
                return;
            }
        };
        let head = request_head(session.req_header(), &up.host);
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, async {
            upstream.write_all(&head).await?;
            upstream.flush().await?;
            read_answer(&mut upstream).await
        })
        .await;
        let (answer, read) = match answer {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                tracing::warn!(upstream = %up.host, error = %e, "LiveKit's answer to a signalling handshake was unusable");
                let resp = unavailable(StatusCode::BAD_GATEWAY);
                self.answer_locally(&mut session, &mut ctx, resp).await;
                self.finish(&ctx, &served);
                return;
            }
            Err(_) => {
                tracing::warn!(upstream = %up.host, "LiveKit did not answer a signalling handshake in time");
                let resp = unavailable(StatusCode::GATEWAY_TIMEOUT);
                self.answer_locally(&mut session, &mut ctx, resp).await;
                self.finish(&ctx, &served);
                return;
            }
        };
        ctx.status = answer.status;
        if answer.status != 101 {
            self.pass_refusal(&mut session, &mut ctx, answer, read, upstream)
                .await;
            self.finish(&ctx, &served);
            return;
        }
        let ServerSession::H1(h1) = *session else {
            // `takes` admits HTTP/1.1 only.
            return;
        };
        let client = detach(h1.into_inner());
        let app = self.app.clone();
        let chain = self.chain.clone();
        app.metrics().websocket_sessions.inc();
        // LiveKit's head goes back as it came (its `Sec-WebSocket-Accept`, protocol and
        // extensions), with whatever it sent after it in the same read.
        tokio::spawn(async move {
            let mut client = client;
            if let Detached::Tcp(s) = &client {
                // Signalling messages are small and latency-bound, as on the upstream.
                let _ = s.set_nodelay(true);
            }
            // Flushed: a TLS client's stream buffers what it is given.
            let sent = match client.write_all(&read).await {
                Ok(()) => client.flush().await,
                Err(e) => Err(e),
            };
            let end = match sent {
                Ok(()) => {
                    drop(read);
                    relay::run(client, upstream).await
                }
                Err(_) => relay::RelayEnd::Failed,
            };
            tracing::debug!(?end, "signalling socket ended");
            app.metrics().websocket_sessions.dec();
            if let Some((region, host)) = &served {
                crate::edge::count_proxied(app.metrics(), region, host, ctx.status);
            }
            chain.on_logging(&ctx);
        });
    }

    /// The request's metrics and access-log line, for a handshake that ends here.
    fn finish(&self, ctx: &RequestCtx, served: &Served) {
        if let Some((region, host)) = served {
            crate::edge::count_proxied(self.app.metrics(), region, host, ctx.status);
        }
        self.chain.on_logging(ctx);
    }

    /// A healthy upstream for the chain's choice, connected; the next one when a
    /// connect fails. `Err` is the status to answer: 503 when no upstream is left, 502
    /// when none would take the connection.
    async fn connect(
        &self,
        choice: Option<&UpstreamChoice>,
        served: &mut Served,
    ) -> Result<(Upstream, Detached), StatusCode> {
        let mut tried: Vec<SocketAddr> = Vec::new();
        for _ in 0..MAX_CONNECT_ATTEMPTS {
            let (region, up) = self.app.edge().pick(choice, &tried).map_err(|e| {
                tracing::warn!(error = %e, "no LiveKit upstream for a signalling handshake");
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_GATEWAY)
            })?;
            tried.push(up.addr);
            *served = Some((region, up.host.clone()));
            match self.open(&up).await {
                Ok(stream) => return Ok((up, stream)),
                Err(e) => {
                    let region = served.as_ref().map_or("", |s| s.0.as_str());
                    tracing::warn!(%region, upstream = %up.host, error = %e, "LiveKit upstream refused a connection; trying the next");
                }
            }
        }
        Err(StatusCode::BAD_GATEWAY)
    }

    /// A plain upstream is a tokio socket from the start (nothing of Pingora's to
    /// detach); a TLS one goes through Pingora's connector (its trust settings, SNI).
    async fn open(
        &self,
        up: &Upstream,
    ) -> Result<Detached, Box<dyn std::error::Error + Send + Sync>> {
        if !up.tls {
            let s = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(up.addr))
                .await
                .map_err(|_| "connect timed out")??;
            s.set_nodelay(true)?;
            return Ok(Detached::Tcp(s));
        }
        let sni = up.host.split(':').next().unwrap_or("").to_string();
        let mut peer = HttpPeer::new(up.addr, true, sni);
        peer.options.connection_timeout = Some(CONNECT_TIMEOUT);
        // A WebSocket upgrade is HTTP/1.1's.
        peer.options.alpn = ALPN::H1;
        Ok(Detached::Pingora(self.connector.new_stream(&peer).await?))
    }

    /// A gateway-made answer (a refused token, a limit, no upstream), after the
    /// plugins' `on_local_response`; the connection is closed after it.
    async fn answer_locally(
        &self,
        session: &mut ServerSession,
        ctx: &mut RequestCtx,
        mut resp: JsonResponse,
    ) {
        {
            let head = head_of(session.req_header(), None);
            self.chain.on_local_response(&head, ctx, &mut resp);
        }
        ctx.status = resp.status.as_u16();
        if let Some((h, body)) = client_errors::json_to_pingora(resp) {
            if let Err(e) = session.write_error_response(h, body).await {
                tracing::debug!(error = %e, "client gone before its answer was sent");
            }
        }
    }

    /// LiveKit refused the handshake (a 401 for its own token check, a 404): its
    /// status, headers and body go back, framed by length, and the connection closes.
    async fn pass_refusal(
        &self,
        session: &mut ServerSession,
        ctx: &mut RequestCtx,
        answer: AnswerHead,
        read: BytesMut,
        mut upstream: Detached,
    ) {
        let body = tokio::time::timeout(
            ANSWER_TIMEOUT,
            read_refusal_body(&mut upstream, &answer, read),
        )
        .await;
        let body = match body {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                tracing::warn!(status = answer.status, error = %e, "LiveKit's refusal of a signalling handshake was unreadable");
                self.answer_locally(session, ctx, unavailable(StatusCode::BAD_GATEWAY))
                    .await;
                return;
            }
            Err(_) => {
                tracing::warn!(
                    status = answer.status,
                    "LiveKit's refusal of a signalling handshake did not arrive in time"
                );
                self.answer_locally(session, ctx, unavailable(StatusCode::GATEWAY_TIMEOUT))
                    .await;
                return;
            }
        };
        let Some(h) = refusal_head(&answer, body.len()) else {
            self.answer_locally(session, ctx, unavailable(StatusCode::BAD_GATEWAY))
                .await;
            return;
        };
        if let Err(e) = session.write_error_response(h, body).await {
            tracing::debug!(error = %e, "client gone before LiveKit's refusal was passed on");
        }
    }
}

/// The proxy phases' answer when LiveKit cannot be reached (see `fail_to_proxy`).
fn unavailable(status: StatusCode) -> JsonResponse {
    let mut resp: JsonResponse = ApiError::unavailable(
        "livekit_unavailable",
        "no LiveKit upstream could be reached for this request; retry shortly",
        2,
    )
    .into();
    resp.status = status;
    resp
}

/// The handshake as forwarded: the request line and headers as they came, `Host`
/// replaced by LiveKit's own (as if the browser had connected directly).
fn request_head(req: &RequestHeader, host: &str) -> Vec<u8> {
    let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = Vec::with_capacity(256 + target.len() + req.headers.len() * 48);
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &req.headers {
        if name == http::header::HOST {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_forwarded_head_keeps_the_request_and_names_livekits_host() {
        let mut req =
            RequestHeader::build("GET", b"/rtc?access_token=t&auto_subscribe=1", None).unwrap();
        req.insert_header("host", "gateway.example").unwrap();
        req.insert_header("upgrade", "websocket").unwrap();
        req.insert_header("connection", "Upgrade").unwrap();
        req.append_header("sec-websocket-protocol", "a").unwrap();
        req.append_header("sec-websocket-protocol", "b").unwrap();
        let head = String::from_utf8(request_head(&req, "10.0.0.7:7880")).unwrap();
        assert!(
            head.starts_with(
                "GET /rtc?access_token=t&auto_subscribe=1 HTTP/1.1\r\nhost: 10.0.0.7:7880\r\n"
            ),
            "{head}"
        );
        assert!(!head.contains("gateway.example"), "{head}");
        assert!(
            head.contains("upgrade: websocket\r\n") && head.contains("connection: Upgrade\r\n")
        );
        assert!(
            head.contains("sec-websocket-protocol: a\r\nsec-websocket-protocol: b\r\n"),
            "{head}"
        );
        assert!(head.ends_with("\r\n\r\n"));
    }
}
