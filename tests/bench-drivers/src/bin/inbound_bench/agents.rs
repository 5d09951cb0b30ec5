//! The agents: registered, each on its own presence WebSocket, available. An agent
//! timestamps every `incoming` event as it reads it and tells the carrier; in answer
//! mode it accepts, and on `accepted` joins the room through the simulator's hook (the
//! browser joining and publishing its microphone), which is what lets LiveKit answer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use c2c_bench_drivers::http1;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::carrier::Carrier;

/// acme's `calls` key (policies/tenants/acme.toml).
pub const KEY: &str = "c2c_bCk65WthOJFJPJbeJjWz3VWCPmlwiI22tBd0";

/// What the agents saw, per run.
#[derive(Default)]
pub struct AgentStats {
    /// `incoming` events whose lead is the one the CRM answered for that caller.
    pub lead_ok: u64,
    /// ... with `lead: null` (the lookup lost the race with `lead_wait_ms`).
    pub lead_missing: u64,
    /// ... with somebody else's lead.
    pub lead_wrong: u64,
    /// Accept sent -> `accepted` read, µs.
    pub accept_us: Vec<u64>,
    /// Everything else, by kind (cancel reasons, error codes, failed joins, closes).
    pub other: BTreeMap<String, u64>,
}

impl AgentStats {
    fn note(&mut self, what: String) {
        *self.other.entry(what).or_default() += 1;
    }
}

#[derive(Deserialize)]
struct Frame {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    lead: Option<serde_json::Value>,
    #[serde(default)]
    room: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    availability: Option<String>,
}

pub fn agent_id(i: usize) -> String {
    format!("ib-{i:04}")
}

/// Registers agent `id` (telephony on) and mints its presence token.
pub async fn register(c: &reqwest::Client, base: &str, id: &str) -> Result<String, String> {
    let r = c
        .put(format!("{base}/api/c2c/agents/{id}"))
        .header("x-api-key", KEY)
        .json(&json!({"name": id, "telephony_enabled": true}))
        .send()
        .await
        .map_err(|e| format!("PUT agent: {e}"))?;
    if !r.status().is_success() {
        return Err(format!("PUT agent {id}: {}", r.status()));
    }
    let r = c
        .post(format!("{base}/api/c2c/agents/{id}/session"))
        .header("x-api-key", KEY)
        .json(&json!({}))
        .send()
        .await
        .map_err(|e| format!("POST session: {e}"))?;
    let v: serde_json::Value = r.json().await.map_err(|e| format!("session: {e}"))?;
    v["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("session of {id}: {v}"))
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Opens the presence socket, authenticates, and makes the agent available.
async fn open(gw: SocketAddr, token: &str) -> Result<Ws, String> {
    let tcp = TcpStream::connect(gw)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let cfg = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let url = format!("ws://{gw}/api/c2c/agents/presence");
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(cfg))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let send = |v: serde_json::Value| Message::text(v.to_string());
    ws.send(send(json!({"type": "auth", "token": token})))
        .await
        .map_err(|e| e.to_string())?;
    wait_for(&mut ws, |f| f.kind == "ready").await?;
    ws.send(send(
        json!({"type": "set_availability", "availability": "available"}),
    ))
    .await
    .map_err(|e| e.to_string())?;
    wait_for(&mut ws, |f| {
        f.kind == "availability" && f.availability.as_deref() == Some("available")
    })
    .await?;
    Ok(ws)
}

async fn wait_for(ws: &mut Ws, want: impl Fn(&Frame) -> bool) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let f: Frame = serde_json::from_str(&t).map_err(|e| e.to_string())?;
                if f.kind == "error" {
                    return Err(format!("error frame: {t}"));
                }
                if want(&f) {
                    return Ok(());
                }
            }
            Ok(Some(Ok(_))) => {}
            other => return Err(format!("socket before ready: {other:?}")),
        }
    }
}

/// Everything an agent task needs.
pub struct Shared {
    pub gw: SocketAddr,
    pub sim: SocketAddr,
    pub carrier: Arc<Carrier>,
    /// Accept every offer (answer mode), or only read it (offer mode: the carrier
    /// cancels).
    pub accept: bool,
    pub stats: Mutex<AgentStats>,
}

/// Opens agent `id`'s socket (at most `permits` opening at once), reports on `ready`,
/// then serves offers until the socket closes.
pub fn spawn(
    id: String,
    token: String,
    s: Arc<Shared>,
    permits: Arc<Semaphore>,
    ready: mpsc::UnboundedSender<Result<(), String>>,
) {
    tokio::spawn(async move {
        let permit = permits.acquire_owned().await;
        let ws = open(s.gw, &token).await;
        drop(permit);
        let mut ws = match ws {
            Ok(ws) => {
                let _ = ready.send(Ok(()));
                ws
            }
            Err(e) => {
                let _ = ready.send(Err(format!("{id}: {e}")));
                return;
            }
        };
        drop(ready);
        let mut sim = http1::Conn::new(s.sim);
        let join_body = json!({"identity": id}).to_string().into_bytes();
        let mut accept_sent: Option<Instant> = None;
        loop {
            let m = ws.next().await;
            let at = Instant::now();
            let t = match m {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Close(c))) => {
                    let code = c.map_or(0, |c| u16::from(c.code));
                    s.stats
                        .lock()
                        .unwrap()
                        .note(format!("socket closed {code}"));
                    return;
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    s.stats.lock().unwrap().note(format!("socket error: {e}"));
                    return;
                }
                None => return,
            };
            let Ok(f) = serde_json::from_str::<Frame>(&t) else {
                s.stats.lock().unwrap().note("unparsable frame".into());
                continue;
            };
            match f.kind.as_str() {
                "incoming" => {
                    let from = f.from.as_deref().unwrap_or("");
                    s.carrier.incoming(from, at);
                    {
                        let mut st = s.stats.lock().unwrap();
                        match f.lead.as_ref().filter(|l| !l.is_null()) {
                            None => st.lead_missing += 1,
                            Some(l) if l["phone"] == from => st.lead_ok += 1,
                            Some(_) => st.lead_wrong += 1,
                        }
                    }
                    if s.accept {
                        let call_id = f.call_id.unwrap_or_default();
                        let frame = json!({"type": "accept", "call_id": call_id}).to_string();
                        accept_sent = Some(Instant::now());
                        if let Err(e) = ws.send(Message::text(frame)).await {
                            s.stats
                                .lock()
                                .unwrap()
                                .note(format!("accept not sent: {e}"));
                            return;
                        }
                    }
                }
                "accepted" => {
                    if let Some(sent) = accept_sent.take() {
                        let us = at.saturating_duration_since(sent).as_micros() as u64;
                        s.stats.lock().unwrap().accept_us.push(us);
                    }
                    let room = f.room.unwrap_or_default();
                    let path = format!("/sim/rooms/{room}/join");
                    match sim.post(&path, Some(&join_body), None).await {
                        Ok(r) if (200..300).contains(&r.status) => {}
                        Ok(r) => s.stats.lock().unwrap().note(format!("join {}", r.status)),
                        Err(e) => s.stats.lock().unwrap().note(format!("join failed: {e}")),
                    }
                }
                "incoming_cancelled" => {
                    let why = f.reason.unwrap_or_default();
                    s.stats
                        .lock()
                        .unwrap()
                        .note(format!("incoming_cancelled {why}"));
                }
                "incoming_update" => s.stats.lock().unwrap().note("incoming_update".into()),
                "error" => {
                    let code = f.code.unwrap_or_default();
                    s.stats.lock().unwrap().note(format!("error frame {code}"));
                }
                "availability" | "pong" => {}
                other => s.stats.lock().unwrap().note(format!("frame {other}")),
            }
        }
    });
}
