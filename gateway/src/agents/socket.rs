//! The presence WebSocket (`GET /api/c2c/agents/presence`), served on a task of its own.
//!
//! Pingora reads the upgrade request; [`take_over`] answers the handshake and moves the
//! connection out of Pingora's per-connection state (about 40 KiB of it per idle
//! connection, measured: BENCHMARKS.md), so ten thousand agents' sockets cost a few KiB
//! each. The frames follow docs/agents.md: an `auth` frame first, then
//! `set_availability` and `ping`; the hub's events go out as they come.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use c2c_agents::presence::close;
use c2c_agents::{Availability, PresenceClaims, SessionCtl, SessionRef, SetError};

use crate::app::App;
use crate::clock::now_ms;
use crate::detach::{detach, Detached};

/// The largest frame a browser may send (an auth frame is a few hundred bytes).
const MAX_FRAME: usize = 4096;
/// The first frame must be an `auth` frame and arrive within this.
const AUTH_WINDOW: Duration = Duration::from_secs(10);
/// Availability changes: a burst of this many, then one per second.
const SET_BURST: u32 = 10;
/// Frames of any kind per [`FLOOD_WINDOW`] before the socket is closed `4429`.
const FLOOD_FRAMES: u32 = 60;
const FLOOD_WINDOW: Duration = Duration::from_secs(10);

/// What [`take_over`] did with a request.
pub enum Handshake {
    /// Not a valid WebSocket upgrade to the presence path: the usual phases answer it.
    NotOne,
    /// The `101` could not be written: the client is gone.
    Failed,
    /// `101` sent: serve the stream with [`serve`].
    Done,
}

/// Answers a presence socket's opening handshake with `101`.
pub async fn take_over(session: &mut ServerSession) -> Handshake {
    let Some(key) = handshake_key(session.req_header()) else {
        return Handshake::NotOne;
    };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let Some(resp) = switching_protocols(&accept) else {
        return Handshake::NotOne;
    };
    match session.write_response_header(Box::new(resp)).await {
        Ok(()) => Handshake::Done,
        Err(_) => Handshake::Failed,
    }
}

fn switching_protocols(accept: &str) -> Option<ResponseHeader> {
    let mut resp = ResponseHeader::build(101, Some(3)).ok()?;
    resp.insert_header("upgrade", "websocket").ok()?;
    resp.insert_header("connection", "Upgrade").ok()?;
    resp.insert_header("sec-websocket-accept", accept).ok()?;
    Some(resp)
}

/// The `Sec-WebSocket-Key` of a valid WebSocket upgrade to the presence path.
fn handshake_key(req: &pingora::http::RequestHeader) -> Option<String> {
    if req.method != http::Method::GET || req.uri.path() != crate::routes::PRESENCE_PATH {
        return None;
    }
    let h = &req.headers;
    if !crate::detach::asks_websocket_upgrade(h) {
        return None;
    }
    if h.get("sec-websocket-version").and_then(|v| v.to_str().ok()) != Some("13") {
        return None;
    }
    let key = h.get("sec-websocket-key")?.to_str().ok()?;
    // 16 random bytes, base64: 24 characters.
    (key.len() == 24).then(|| key.to_owned())
}

/// What a browser sends.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientFrame {
    Auth {
        token: String,
        #[serde(default)]
        resume: Option<String>,
    },
    SetAvailability {
        availability: String,
    },
    /// Takes the inbound call offered to this agent (answered `accepted` or `error`).
    Accept {
        call_id: String,
    },
    /// Turns the offer down: the next agent is offered the call.
    Reject {
        call_id: String,
    },
    Ping,
}

/// Why a socket ended, for the log line and `c2c_presence_refused_total{reason}`.
#[derive(Clone, Copy)]
enum End {
    ClientClosed,
    Closed(u16, &'static str),
}

/// Serves one presence socket until it closes.
pub async fn serve(app: Arc<App>, stream: Stream, peer: Option<IpAddr>) {
    let stream = detach(stream);
    let config = WebSocketConfig::default()
        // The codec's read buffer is allocated up front: a frame is at most 4 KiB, and
        // an idle socket should not hold 128 KiB (the default).
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME));
    let mut ws = WebSocketStream::from_raw_socket(stream, Role::Server, Some(config)).await;
    let authenticating = app.agents().authenticating();
    let claims = match authenticate(&app, &mut ws).await {
        Ok(c) => c,
        Err((code, why)) => {
            drop(authenticating);
            refuse(&app, code);
            close_with(&mut ws, code, why).await;
            return;
        }
    };
    drop(authenticating);
    let knobs = app.policy().get().gateway.presence;
    if app.is_draining() {
        close_with(&mut ws, close::GOING_AWAY, "the gateway is shutting down").await;
        return;
    }
    let resume = claims.1.as_deref();
    let opened = app
        .agents()
        .hub()
        .open(&claims.0, resume, knobs.max_sessions, now_ms());
    let opened = match opened {
        Ok(o) => o,
        Err(e) => {
            refuse(&app, 1013);
            tracing::warn!(error = %e, "presence socket refused");
            close_with(&mut ws, 1013, "presence sessions full; retry later").await;
            return;
        }
    };
    let session = opened.session;
    app.metrics()
        .presence_sessions
        .set(app.agents().hub().sessions() as i64);
    app.agents().update_gauges(session.tenant());
    let started = Instant::now();
    let socket = Socket {
        session: &session,
        events: opened.events,
        ctl: opened.ctl,
    };
    let end = run(&app, &mut ws, socket, opened.presence, knobs.heartbeat).await;
    // The hub first: the session is over whatever the closing handshake takes.
    finish(&app, &session, knobs.grace);
    let (code, why) = match end {
        End::ClientClosed => (1000, "client closed"),
        End::Closed(code, why) => {
            refuse(&app, code);
            close_with(&mut ws, code, why).await;
            (code, why)
        }
    };
    tracing::info!(
        tenant = session.tenant(),
        agent = session.agent_id().unwrap_or("-"),
        supervisor = session.supervisor(),
        peer = ?peer,
        seconds = started.elapsed().as_secs(),
        code,
        reason = why,
        "presence socket closed"
    );
}

type Ws = WebSocketStream<Detached>;

/// Waits for the `auth` frame and checks its token. The error is the close to send.
async fn authenticate(
    app: &App,
    ws: &mut Ws,
) -> Result<(PresenceClaims, Option<String>), (u16, &'static str)> {
    let first = match tokio::time::timeout(AUTH_WINDOW, ws.next()).await {
        Err(_) => return Err((close::AUTH_TIMEOUT, "no auth frame in time")),
        Ok(None) | Ok(Some(Err(_))) => return Err((1000, "closed before auth")),
        Ok(Some(Ok(m))) => m,
    };
    let Message::Text(text) = first else {
        return Err((
            close::BAD_FRAME,
            "the first frame must be a JSON auth frame",
        ));
    };
    let Ok(ClientFrame::Auth { token, resume }) = serde_json::from_str(&text) else {
        return Err((
            close::BAD_FRAME,
            "the first frame must be a JSON auth frame",
        ));
    };
    let claims = app
        .agents()
        .signer()
        .verify(&token, now_ms())
        .map_err(|e| {
            tracing::debug!(error = %e, "presence token refused");
            (close::UNAUTHORIZED, "invalid or expired presence token")
        })?;
    if app.policy().get().tenant(&claims.tenant).is_none() {
        return Err((close::UNAUTHORIZED, "invalid or expired presence token"));
    }
    if let Some(agent) = &claims.agent_id {
        if app
            .agents()
            .directory()
            .telephony(&claims.tenant, agent)
            .is_none()
        {
            return Err((close::REMOVED, "the agent is not registered"));
        }
    }
    Ok((claims, resume))
}

/// Frame budget of one socket: availability changes by token bucket, and a hard cap on
/// frames of any kind per window.
struct Budget {
    set_tokens: f64,
    refilled: Instant,
    window: Instant,
    frames: u32,
}

impl Budget {
    fn new(now: Instant) -> Self {
        Self {
            set_tokens: f64::from(SET_BURST),
            refilled: now,
            window: now,
            frames: 0,
        }
    }

    /// False when the socket sent too many frames and must be closed.
    fn frame(&mut self, now: Instant) -> bool {
        if now.duration_since(self.window) >= FLOOD_WINDOW {
            self.window = now;
            self.frames = 0;
        }
        self.frames += 1;
        self.frames <= FLOOD_FRAMES
    }

    fn allow_set(&mut self, now: Instant) -> bool {
        let refill = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.set_tokens = (self.set_tokens + refill).min(f64::from(SET_BURST));
        if self.set_tokens >= 1.0 {
            self.set_tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the loop of one session listens to besides the socket.
struct Socket<'a> {
    session: &'a SessionRef,
    events: mpsc::Receiver<Arc<str>>,
    ctl: Arc<SessionCtl>,
}

/// The session's loop: frames in, hub events out, closes the hub asks for, heartbeats.
async fn run(
    app: &Arc<App>,
    ws: &mut Ws,
    sock: Socket<'_>,
    presence: c2c_agents::AgentPresence,
    heartbeat: Duration,
) -> End {
    let Socket {
        session: s,
        mut events,
        ctl,
    } = sock;
    let ready = serde_json::json!({
        "type": "ready",
        "session_id": s.resume_key(),
        "agent_id": s.agent_id(),
        "supervisor": s.supervisor(),
        "availability": presence.availability,
        "telephony_enabled": s.agent_id().and_then(|a| app.agents().directory().telephony(s.tenant(), a)).unwrap_or(false),
        "on_call": presence.on_call,
        "heartbeat_seconds": heartbeat.as_secs(),
        "grace_seconds": app.policy().get().gateway.presence.grace.as_secs(),
    });
    if send(ws, ready.to_string(), heartbeat).await.is_err() {
        return End::ClientClosed;
    }
    if s.supervisor()
        && send(ws, snapshot(app, s.tenant()), heartbeat)
            .await
            .is_err()
    {
        return End::ClientClosed;
    }
    let mut budget = Budget::new(Instant::now());
    let mut seen = Instant::now();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    loop {
        tokio::select! {
            frame = ws.next() => {
                seen = Instant::now();
                let reply = match frame {
                    None | Some(Err(tungstenite::Error::ConnectionClosed)) => return End::ClientClosed,
                    Some(Err(tungstenite::Error::Capacity(_))) => return End::Closed(1009, "frame over 4 KiB"),
                    Some(Err(_)) => return End::ClientClosed,
                    Some(Ok(m)) => {
                        if !budget.frame(seen) {
                            return End::Closed(close::FLOOD, "too many frames");
                        }
                        match on_frame(app, s, m, &mut budget) {
                            Ok(reply) => reply,
                            Err(end) => return end,
                        }
                    }
                };
                if let Some(r) = reply {
                    if send(ws, r, heartbeat).await.is_err() {
                        return End::ClientClosed;
                    }
                }
            }
            (code, why) = ctl.closed() => {
                // What was queued before the close goes first (a `replaced` notice).
                while let Ok(t) = events.try_recv() {
                    if send(ws, t.to_string(), heartbeat).await.is_err() {
                        return End::ClientClosed;
                    }
                }
                return End::Closed(code, why);
            }
            out = events.recv() => match out {
                Some(t) => {
                    if send(ws, t.to_string(), heartbeat).await.is_err() {
                        return End::ClientClosed;
                    }
                }
                // The hub forgot this session; it set the reason in `ctl` first (removed,
                // replaced, too slow), which this branch may see before `ctl.closed()`.
                None => {
                    let (code, why) = ctl
                        .requested()
                        .unwrap_or((close::TOO_SLOW, "too slow to read events"));
                    return End::Closed(code, why);
                }
            },
            _ = tick.tick() => {
                if seen.elapsed() > heartbeat * 2 {
                    return End::Closed(1001, "no heartbeat answer");
                }
                let ping = ws.send(Message::Ping(Default::default()));
                if tokio::time::timeout(heartbeat, ping).await.map_or(true, |r| r.is_err()) {
                    return End::ClientClosed;
                }
            }
        }
    }
}

/// One frame from the browser: the reply to send, or the end of the socket.
fn on_frame(
    app: &Arc<App>,
    s: &SessionRef,
    m: Message,
    budget: &mut Budget,
) -> Result<Option<String>, End> {
    let text = match m {
        Message::Text(t) => t,
        Message::Binary(_) => return Err(End::Closed(1003, "binary frames are not accepted")),
        Message::Close(_) => return Err(End::ClientClosed),
        // Pings are answered by the codec; a pong is what the heartbeat waits for.
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Ok(None),
    };
    let frame: ClientFrame = serde_json::from_str(&text)
        .map_err(|_| End::Closed(close::BAD_FRAME, "not a JSON frame of a known type"))?;
    match frame {
        ClientFrame::Ping => Ok(Some(r#"{"type":"pong"}"#.to_owned())),
        ClientFrame::Auth { .. } => Err(End::Closed(close::BAD_FRAME, "already authenticated")),
        ClientFrame::Accept { call_id } => Ok(offer_answer(app, s, call_id, true)),
        ClientFrame::Reject { call_id } => Ok(offer_answer(app, s, call_id, false)),
        ClientFrame::SetAvailability { availability } => {
            let Some(to) = Availability::parse(&availability) else {
                return Ok(Some(error_frame(
                    "invalid_availability",
                    "availability must be available, away or offline",
                )));
            };
            if !budget.allow_set(Instant::now()) {
                return Ok(Some(error_frame(
                    "rate_limited",
                    "too many availability changes; at most 10 per 10 seconds",
                )));
            }
            let agents = app.agents();
            let telephony = s
                .agent_id()
                .and_then(|a| agents.directory().telephony(s.tenant(), a))
                .unwrap_or(false);
            match agents.hub().set(s, to, telephony, now_ms()) {
                Ok(()) => {
                    // Check, act, check again: telephony turned off between the read
                    // above and the set must still leave the agent offline (the
                    // registry is written before presence is told).
                    let still = s
                        .agent_id()
                        .and_then(|a| agents.directory().telephony(s.tenant(), a))
                        .unwrap_or(false);
                    if !still {
                        if let Some(a) = s.agent_id() {
                            agents
                                .hub()
                                .telephony_changed(s.tenant(), a, false, now_ms());
                        }
                    }
                    agents.update_gauges(s.tenant());
                    Ok(None)
                }
                Err(SetError::AgentDisabled) => Ok(Some(error_frame(
                    "agent_disabled",
                    "the agent is not enabled for telephony: only offline is allowed",
                ))),
                Err(SetError::NoAgent) => Ok(Some(error_frame(
                    "no_agent",
                    "a supervisor-only session has no availability to set",
                ))),
                Err(SetError::Replaced) => Err(End::Closed(close::REPLACED, "replaced")),
            }
        }
    }
}

/// An accept or reject of an inbound offer. It is answered through the session's event
/// queue (`accepted`, or an `error` naming the call) by a task, so the socket loop
/// never waits for the room to be created.
fn offer_answer(app: &Arc<App>, s: &SessionRef, call_id: String, accept: bool) -> Option<String> {
    let Some(agent) = s.agent_id().map(str::to_owned) else {
        return Some(error_frame(
            "no_agent",
            "a supervisor-only session cannot take calls",
        ));
    };
    let app = app.clone();
    let tenant = s.tenant().to_owned();
    tokio::spawn(async move {
        let inbound = app.inbound();
        let text = if accept {
            match inbound.accept(&tenant, &agent, &call_id).await {
                Ok(a) => crate::inbound::frames::accepted(&a),
                Err(e) => crate::inbound::frames::offer_error(&call_id, &e),
            }
        } else {
            match inbound.reject(&tenant, &agent, &call_id).await {
                Ok(()) => return,
                Err(e) => crate::inbound::frames::offer_error(&call_id, &e),
            }
        };
        app.agents().hub().send_to_agent(&tenant, &agent, &text);
    });
    None
}

fn error_frame(code: &str, message: &str) -> String {
    serde_json::json!({ "type": "error", "code": code, "message": message }).to_string()
}

/// The tenant's agents as of now, for a supervisor that just connected (serialised
/// straight from the views: no intermediate JSON tree for a tenant of thousands).
fn snapshot(app: &App, tenant: &str) -> String {
    #[derive(serde::Serialize)]
    struct Snapshot {
        #[serde(rename = "type")]
        kind: &'static str,
        agents: Vec<crate::agents::AgentView>,
    }
    let agents = app.agents();
    let (all, _) = agents.directory().page(tenant, None, usize::MAX);
    let snap = Snapshot {
        kind: "agents",
        agents: all.iter().map(|a| agents.view(a)).collect(),
    };
    // Strings, booleans and numbers: serialising cannot fail.
    serde_json::to_string(&snap).unwrap_or_default()
}

/// Sends a text frame; a browser that does not take it within a heartbeat is gone.
async fn send(ws: &mut Ws, text: String, within: Duration) -> Result<(), ()> {
    match tokio::time::timeout(within, ws.send(Message::text(text))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

async fn close_with(ws: &mut Ws, code: u16, why: &'static str) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: why.into(),
    };
    // Best effort: the peer may be gone already. Then the closing handshake (RFC 6455
    // §7.1.1): read until the peer's close or EOF, so that frames it sent meanwhile are
    // consumed; closing the socket over unread data would reset the connection and the
    // browser would never see the close code.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        if ws.close(Some(frame)).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
}

/// Counts a socket the gateway refused or closed, by a short reason for the close code
/// (`c2c_presence_refused_total{reason}`). Normal ends (1000, 1001) are not refusals.
fn refuse(app: &App, code: u16) {
    let reason = match code {
        close::BAD_FRAME => "bad_frame",
        close::UNAUTHORIZED => "unauthorized",
        close::AUTH_TIMEOUT => "auth_timeout",
        close::REMOVED => "removed",
        close::FLOOD => "flood",
        1003 => "binary_frame",
        1008 => "too_slow",
        1009 => "frame_too_big",
        1013 => "full",
        _ => return,
    };
    app.metrics()
        .presence_refused
        .with_label_values(&[reason])
        .inc();
}

/// The socket is gone: tell the hub, and run the grace timer if one is due.
fn finish(app: &Arc<App>, s: &SessionRef, grace: Duration) {
    let agents = app.agents();
    let due = agents.hub().close(s, grace.as_millis() as u64, now_ms());
    app.metrics()
        .presence_sessions
        .set(agents.hub().sessions() as i64);
    agents.update_gauges(s.tenant());
    if due {
        let app = app.clone();
        let s = s.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            app.agents().hub().expire(&s, now_ms());
            app.agents().update_gauges(s.tenant());
        });
    }
}
