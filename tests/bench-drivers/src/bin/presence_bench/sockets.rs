//! The agents' side: registry writes and presence tokens over HTTP, then one task per
//! presence socket (auth, `ready`, availability changes on command, pongs to the gateway's
//! heartbeat pings), and the supervisor socket that times the fan-out.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// acme's `calls` key (policies/tenants/acme.toml, gateway/tests/common ACME_KEY).
const KEY: &str = "c2c_bCk65WthOJFJPJbeJjWz3VWCPmlwiI22tBd0";
const PRESENCE_PATH: &str = "/api/c2c/agents/presence";
/// Connect, handshake, auth and `ready`, per socket.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

type Ws = WebSocketStream<TcpStream>;

pub fn agent_id(i: usize) -> String {
    format!("pb-{i:05}")
}

pub const SUPERVISOR: &str = "pb-supervisor";

/// Runs `f(0..n)` with at most `concurrency` in flight, on the calling task; the results
/// in order.
pub async fn each<T, F, Fut>(n: usize, concurrency: usize, f: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T>,
{
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<T>>> = Mutex::new((0..n).map(|_| None).collect());
    let worker = || async {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                return;
            }
            let v = f(i).await;
            out.lock().unwrap()[i] = Some(v);
        }
    };
    futures_util::future::join_all((0..concurrency.max(1)).map(|_| worker())).await;
    out.into_inner()
        .unwrap()
        .into_iter()
        .map(|v| v.expect("every index ran"))
        .collect()
}

/// `PUT /api/c2c/agents/{id}`, telephony on. Err: what went wrong.
pub async fn register(c: &reqwest::Client, base: &str, id: &str) -> Result<(), String> {
    let r = c
        .put(format!("{base}/api/c2c/agents/{id}"))
        .header("x-api-key", KEY)
        .json(&json!({"name": id, "telephony_enabled": true}))
        .send()
        .await
        .map_err(|e| format!("PUT agent: {e}"))?;
    let s = r.status().as_u16();
    if s == 200 || s == 201 {
        Ok(())
    } else {
        Err(format!(
            "PUT agent: {s} {}",
            r.text().await.unwrap_or_default()
        ))
    }
}

/// `POST /api/c2c/agents/{id}/session`: the presence token.
pub async fn token(
    c: &reqwest::Client,
    base: &str,
    id: &str,
    supervisor: bool,
) -> Result<String, String> {
    let r = c
        .post(format!("{base}/api/c2c/agents/{id}/session"))
        .header("x-api-key", KEY)
        .json(&json!({"supervisor": supervisor}))
        .send()
        .await
        .map_err(|e| format!("POST session: {e}"))?;
    let s = r.status().as_u16();
    let v: serde_json::Value = r.json().await.map_err(|e| format!("session JSON: {e}"))?;
    match v["token"].as_str() {
        Some(t) if s == 200 => Ok(t.to_owned()),
        _ => Err(format!("POST session: {s} {v}")),
    }
}

/// What the socket tasks record, shared with the main task.
#[derive(Default)]
pub struct Stats {
    /// Changes sent and not yet seen by the supervisor: (agent index, available?) -> sent.
    pub pending: Mutex<HashMap<(u32, bool), Instant>>,
    /// Send -> supervisor receives the matching `availability` event, microseconds.
    pub fanout_us: Mutex<Vec<u64>>,
    /// Send -> the agent's own session receives its confirmation, microseconds.
    pub own_us: Mutex<Vec<u64>>,
    /// Anything else that happened on the sockets after they opened, by kind (error
    /// frames by code, closes by code, transport errors).
    pub other: Mutex<BTreeMap<String, u64>>,
    /// Availability events the supervisor got that match no pending change.
    pub unmatched: AtomicU64,
    /// The benchmark is tearing down: closes are expected, not counted.
    pub stopping: AtomicBool,
}

impl Stats {
    fn note(&self, what: String) {
        if !self.stopping.load(Ordering::Relaxed) {
            *self.other.lock().unwrap().entry(what).or_default() += 1;
        }
    }
}

fn client_config() -> WebSocketConfig {
    // The gateway's frames are small; the supervisor's one snapshot is the largest (about
    // 200 bytes per agent), well under the default message limit. A small read buffer
    // keeps ten thousand client sockets cheap for the load generator too.
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// Opens a presence socket, authenticates and waits for `ready`.
async fn open(addr: SocketAddr, token: &str) -> Result<Ws, String> {
    let go = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
        let url = format!("ws://{addr}{PRESENCE_PATH}");
        let (mut ws, _) =
            tokio_tungstenite::client_async_with_config(url, tcp, Some(client_config()))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
        let auth = json!({"type": "auth", "token": token}).to_string();
        ws.send(Message::text(auth))
            .await
            .map_err(|e| format!("auth send: {e}"))?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: serde_json::Value =
                        serde_json::from_str(&t).map_err(|e| format!("ready JSON: {e}"))?;
                    if v["type"] == "ready" {
                        return Ok(ws);
                    }
                    return Err(format!("first frame not ready: {v}"));
                }
                Some(Ok(Message::Close(c))) => {
                    return Err(format!(
                        "closed before ready: {}",
                        c.map_or("-".into(), |c| format!(
                            "{} {}",
                            u16::from(c.code),
                            c.reason
                        ))
                    ))
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(format!("before ready: {e}")),
                None => return Err("closed before ready".into()),
            }
        }
    };
    tokio::time::timeout(OPEN_TIMEOUT, go)
        .await
        .unwrap_or_else(|_| Err("no ready in 30 s".into()))
}

/// An `availability` (or any) event as the sockets receive it.
#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    availability: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

/// Starts agent socket `idx`: it opens (at most `permits` opening at once), reports the
/// outcome on `opened`, then sets availability on each command (true: available, false:
/// away) until the command channel closes.
pub fn spawn_agent(
    idx: u32,
    addr: SocketAddr,
    token: String,
    permits: Arc<Semaphore>,
    stats: Arc<Stats>,
    opened: mpsc::UnboundedSender<(u32, Result<(), String>)>,
) -> mpsc::Sender<bool> {
    let (tx, mut rx) = mpsc::channel::<bool>(2);
    tokio::spawn(async move {
        let permit = permits.acquire_owned().await;
        let ws = open(addr, &token).await;
        drop(permit);
        drop(token);
        let mut ws = match ws {
            Ok(ws) => {
                let _ = opened.send((idx, Ok(())));
                ws
            }
            Err(e) => {
                let _ = opened.send((idx, Err(e)));
                return;
            }
        };
        drop(opened);
        let mut sent: Option<(bool, Instant)> = None;
        loop {
            tokio::select! {
                cmd = rx.recv() => {
                    let Some(available) = cmd else {
                        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                        return;
                    };
                    let to = if available { "available" } else { "away" };
                    let frame = format!(r#"{{"type":"set_availability","availability":"{to}"}}"#);
                    let t = Instant::now();
                    stats.pending.lock().unwrap().insert((idx, available), t);
                    sent = Some((available, t));
                    if let Err(e) = ws.send(Message::text(frame)).await {
                        stats.note(format!("agent send error: {e}"));
                        return;
                    }
                }
                m = ws.next() => match m {
                    Some(Ok(Message::Text(t))) => {
                        let now = Instant::now();
                        let Ok(ev) = serde_json::from_str::<Event>(&t) else {
                            stats.note("agent: unparsable frame".into());
                            continue;
                        };
                        match ev.kind.as_str() {
                            "availability" if ev.reason.as_deref() == Some("set") => {
                                let av = ev.availability.as_deref() == Some("available");
                                if let Some((want, at)) = sent.take() {
                                    if want == av {
                                        let us = now.duration_since(at).as_micros() as u64;
                                        stats.own_us.lock().unwrap().push(us);
                                    }
                                }
                            }
                            "error" => stats.note(format!("agent error frame: {}", ev.code.unwrap_or_default())),
                            "pong" => {}
                            other => stats.note(format!("agent frame: {other}")),
                        }
                    }
                    Some(Ok(Message::Close(c))) => {
                        stats.note(format!("agent closed by the gateway: {}", c.map_or(0, |c| u16::from(c.code))));
                        return;
                    }
                    // Pings are answered by the codec on the next read or write.
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        stats.note(format!("agent socket error: {e}"));
                        return;
                    }
                    None => {
                        stats.note("agent socket ended".into());
                        return;
                    }
                },
            }
        }
    });
    tx
}

/// Opens the supervisor socket (ready, then the `agents` snapshot) and starts its reader,
/// which times every `availability` event against [`Stats::pending`]. Returns the
/// snapshot's size (agents in it), or why it failed.
pub async fn spawn_supervisor(
    addr: SocketAddr,
    token: &str,
    stats: Arc<Stats>,
) -> Result<usize, String> {
    let mut ws = open(addr, token).await?;
    let snapshot = loop {
        match tokio::time::timeout(OPEN_TIMEOUT, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: serde_json::Value =
                    serde_json::from_str(&t).map_err(|e| format!("snapshot JSON: {e}"))?;
                if v["type"] != "agents" {
                    return Err(format!("expected the agents snapshot, got {}", v["type"]));
                }
                break v["agents"].as_array().map_or(0, Vec::len);
            }
            Ok(Some(Ok(_))) => continue,
            other => return Err(format!("no snapshot: {other:?}")),
        }
    };
    tokio::spawn(async move {
        loop {
            let m = ws.next().await;
            let now = Instant::now();
            match m {
                Some(Ok(Message::Text(t))) => {
                    let Ok(ev) = serde_json::from_str::<Event>(&t) else {
                        stats.note("supervisor: unparsable frame".into());
                        continue;
                    };
                    if ev.kind != "availability" || ev.reason.as_deref() != Some("set") {
                        stats.note(format!(
                            "supervisor frame: {} {}",
                            ev.kind,
                            ev.reason.unwrap_or_default()
                        ));
                        continue;
                    }
                    let idx = ev
                        .agent_id
                        .as_deref()
                        .and_then(|a| a.strip_prefix("pb-"))
                        .and_then(|n| n.parse::<u32>().ok());
                    let av = ev.availability.as_deref() == Some("available");
                    let at = idx.and_then(|i| stats.pending.lock().unwrap().remove(&(i, av)));
                    match at {
                        Some(at) => {
                            let us = now.duration_since(at).as_micros() as u64;
                            stats.fanout_us.lock().unwrap().push(us);
                        }
                        None => {
                            stats.unmatched.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Some(Ok(Message::Close(c))) => {
                    stats.note(format!(
                        "supervisor closed by the gateway: {}",
                        c.map_or(0, |c| u16::from(c.code))
                    ));
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    stats.note(format!("supervisor socket error: {e}"));
                    return;
                }
                None => return,
            }
        }
    });
    Ok(snapshot)
}
