//! A small SIP user agent so the simulator can dial a real trunk the way LiveKit
//! SIP does ([`crate::SimConfig::sip_outbound`], [`call`]), answer inbound calls
//! the way LiveKit SIP does ([`crate::SimConfig::sip_inbound`], [`inbound`]), and
//! call a SIP edge the way a carrier does ([`carrier`], on a socket of its own).
//!
//! **Owns:** one transport per simulator — a UDP socket, or for TCP a listener plus
//! one connection per next hop — and a demultiplexer from Call-ID to the task
//! playing that call. Messages are hand-parsed and built in [`message`] (no
//! dependency on the gateway's SIP crate, so the simulator works against any proxy).
//!
//! **Bounded:** at most `SimLimits::max_sip_calls` calls tracked at once (calls
//! that have ended but still absorb retransmissions — UDP only, 64*T1 — are
//! evicted first), 32 queued messages per call (more are dropped, as a datagram
//! would be), 16 KiB per message, [`MAX_TCP_CONNECTIONS`] TCP connections.
//! An INVITE without To tag for an unknown Call-ID starts an inbound call (when
//! inbound is on); other requests for unknown Call-IDs get `481` (`OPTIONS`:
//! `200`), responses are dropped.
//!
//! **Must not:** carry media (the SDP offer names a port nobody listens on),
//! authenticate (401/407 end the call like any other final response), or resolve
//! host names (a route or Contact that is not an IP literal is reached through
//! the configured proxy).

pub(crate) mod call;
pub(crate) mod carrier;
mod dialog;
pub(crate) mod inbound;
pub(crate) mod message;
mod transport;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use rand::Rng;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::SipTransport;
use crate::twirp::{code, TwirpError};
use crate::SimError;

use self::message::{response_to, tag_of, Message};

/// `User-Agent` on every request (LiveKit SIP's value; never a scanner's).
pub(crate) const USER_AGENT: &str = "LiveKit";
/// Messages queued per call before further ones are dropped.
const CALL_QUEUE: usize = 32;
/// Most TCP connections (outgoing and accepted) at once.
pub(crate) const MAX_TCP_CONNECTIONS: usize = 64;
/// Most entries in a CreateSIPParticipant `headers` map.
const MAX_EXTRA_HEADERS: usize = 32;
const MAX_HEADER_NAME: usize = 64;
const MAX_HEADER_VALUE: usize = 1024;

/// One received message and where it came from (for TCP: the connection's key).
#[derive(Debug)]
pub(crate) struct Inbound {
    pub msg: Message,
    pub peer: SocketAddr,
}

struct Slot {
    id: u64,
    tx: mpsc::Sender<Inbound>,
    /// The call is over and only absorbs retransmissions: evictable.
    lingering: bool,
}

struct TcpConn {
    id: u64,
    tx: mpsc::Sender<Vec<u8>>,
}

/// How the UA's one socket is set up (from `SipOutbound` and/or `SipInbound`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UaConfig {
    pub transport: SipTransport,
    /// Where to bind (port 0: chosen by the OS); also what Via and Contact carry.
    pub bind: SocketAddr,
    /// RFC 3261 timer T1.
    pub t1: Duration,
    /// The outbound trunk's address: set when CreateSIPParticipant dials real SIP.
    pub proxy: Option<SocketAddr>,
}

/// The simulator's SIP user agent: transport and Call-ID demultiplexer.
pub(crate) struct Ua {
    config: UaConfig,
    /// Our address as put in Via and Contact (the UDP socket, or the TCP listener).
    local: SocketAddr,
    udp: Option<Arc<UdpSocket>>,
    tcp: Mutex<HashMap<SocketAddr, TcpConn>>,
    calls: Mutex<HashMap<String, Slot>>,
    max_calls: usize,
    next_id: AtomicU64,
    shutdown: watch::Receiver<bool>,
    weak: Weak<Ua>,
    /// Set once at start when inbound calls are answered.
    inbound: OnceLock<Arc<inbound::Service>>,
}

/// A registered Call-ID: messages for it arrive on `rx`; dropping `registration`
/// unregisters it.
pub(crate) struct CallSlot {
    pub call_id: String,
    pub rx: mpsc::Receiver<Inbound>,
    pub registration: Registration,
}

pub(crate) struct Registration {
    ua: Weak<Ua>,
    call_id: String,
    id: u64,
}

impl Registration {
    /// Marks the call as over (evictable when the table is full).
    pub(crate) fn set_lingering(&self) {
        if let Some(ua) = self.ua.upgrade() {
            if let Some(slot) = ua.calls.lock().get_mut(&self.call_id) {
                if slot.id == self.id {
                    slot.lingering = true;
                }
            }
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(ua) = self.ua.upgrade() {
            let mut calls = ua.calls.lock();
            if calls.get(&self.call_id).is_some_and(|s| s.id == self.id) {
                calls.remove(&self.call_id);
            }
        }
    }
}

/// `n` random bytes as lower-case hex.
pub(crate) fn random_hex(n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n).map(|_| format!("{:02x}", rng.gen::<u8>())).collect()
}

impl Ua {
    /// Binds the transport and starts its receive task.
    pub(crate) async fn start(
        config: UaConfig,
        max_calls: usize,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(Arc<Ua>, JoinHandle<()>), SimError> {
        if config
            .proxy
            .is_some_and(|p| p.is_ipv4() != config.bind.is_ipv4())
        {
            return Err(SimError::Config(
                "sip_outbound: local_ip and proxy must be the same address family".to_owned(),
            ));
        }
        if config.t1.is_zero() {
            return Err(SimError::Config("sip: t1 must be > 0".to_owned()));
        }
        let bind = config.bind;
        match config.transport {
            SipTransport::Udp => {
                let socket = Arc::new(UdpSocket::bind(bind).await?);
                let local = socket.local_addr()?;
                let ua = Self::new(config, local, Some(socket.clone()), max_calls, shutdown);
                let task = tokio::spawn(transport::udp_loop(ua.clone(), socket));
                Ok((ua, task))
            }
            SipTransport::Tcp => {
                let listener = TcpListener::bind(bind).await?;
                let local = listener.local_addr()?;
                let ua = Self::new(config, local, None, max_calls, shutdown);
                let task = tokio::spawn(transport::tcp_accept(ua.clone(), listener));
                Ok((ua, task))
            }
        }
    }

    fn new(
        config: UaConfig,
        local: SocketAddr,
        udp: Option<Arc<UdpSocket>>,
        max_calls: usize,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Ua> {
        Arc::new_cyclic(|weak| Ua {
            config,
            local,
            udp,
            tcp: Mutex::new(HashMap::new()),
            calls: Mutex::new(HashMap::new()),
            max_calls: max_calls.max(1),
            next_id: AtomicU64::new(1),
            shutdown,
            weak: weak.clone(),
            inbound: OnceLock::new(),
        })
    }

    /// Starts answering inbound INVITEs with `service` (once, at start).
    pub(crate) fn set_inbound(&self, service: Arc<inbound::Service>) {
        let _ = self.inbound.set(service);
    }

    pub(crate) fn inbound(&self) -> Option<&Arc<inbound::Service>> {
        self.inbound.get()
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub(crate) fn config(&self) -> &UaConfig {
        &self.config
    }

    /// The outbound trunk's address, when dialling real SIP.
    pub(crate) fn proxy(&self) -> Option<SocketAddr> {
        self.config.proxy
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// Calls tracked now (lingering ones included).
    pub(crate) fn calls(&self) -> usize {
        self.calls.lock().len()
    }

    /// Registers a fresh Call-ID. Full table: evicts a lingering call, or fails
    /// with Twirp `resource_exhausted`.
    pub(crate) fn register(&self) -> Result<CallSlot, TwirpError> {
        self.register_id(random_hex(16)).ok_or_else(|| {
            TwirpError::new(code::RESOURCE_EXHAUSTED, "simulator SIP call limit reached")
        })
    }

    /// Registers `call_id` (the far end's, for an inbound call). `None` when the
    /// table is full of live calls or the Call-ID is taken.
    pub(crate) fn register_id(&self, call_id: String) -> Option<CallSlot> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(CALL_QUEUE);
        let mut calls = self.calls.lock();
        if calls.contains_key(&call_id) {
            return None;
        }
        if calls.len() >= self.max_calls {
            let evict = calls
                .iter()
                .find(|(_, s)| s.lingering)
                .map(|(k, _)| k.clone());
            match evict {
                // Dropping its sender ends the lingering task.
                Some(k) => {
                    calls.remove(&k);
                }
                None => return None,
            }
        }
        calls.insert(
            call_id.clone(),
            Slot {
                id,
                tx,
                lingering: false,
            },
        );
        Some(CallSlot {
            call_id: call_id.clone(),
            rx,
            registration: Registration {
                ua: self.weak.clone(),
                call_id,
                id,
            },
        })
    }

    /// Sends `bytes` to `dest` without waiting: a full socket buffer or queue loses
    /// the message, as the network could (UDP retransmissions recover).
    pub(crate) fn send(&self, dest: SocketAddr, bytes: Vec<u8>) {
        if let Some(socket) = &self.udp {
            if let Err(e) = socket.try_send_to(&bytes, dest) {
                tracing::debug!(%dest, error = %e, "livekit-sim sip: send failed");
            }
            return;
        }
        let tx = {
            let mut conns = self.tcp.lock();
            match conns.get(&dest) {
                Some(conn) => conn.tx.clone(),
                None => {
                    if conns.len() >= MAX_TCP_CONNECTIONS {
                        tracing::debug!(%dest, "livekit-sim sip: too many TCP connections");
                        return;
                    }
                    let (tx, rx) = mpsc::channel(CALL_QUEUE);
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                    conns.insert(dest, TcpConn { id, tx: tx.clone() });
                    tokio::spawn(transport::tcp_conn(
                        self.weak.clone(),
                        dest,
                        id,
                        None,
                        rx,
                        self.shutdown.clone(),
                    ));
                    tx
                }
            }
        };
        if tx.try_send(bytes).is_err() {
            tracing::debug!(%dest, "livekit-sim sip: TCP queue full");
        }
    }

    /// Hands a received message to its call, or answers it statelessly.
    pub(crate) fn dispatch(&self, msg: Message, peer: SocketAddr) {
        let Some(call_id) = msg.call_id() else {
            return;
        };
        let tx = self.calls.lock().get(call_id).map(|s| s.tx.clone());
        if let Some(tx) = tx {
            // Full queue: dropped, like a lost datagram.
            let _ = tx.try_send(Inbound { msg, peer });
            return;
        }
        match msg.method() {
            None | Some("ACK") => {}
            // A new dialog (no To tag): an inbound call, when inbound is on.
            Some("INVITE") if msg.header("to").and_then(tag_of).is_none() => {
                match (self.inbound.get(), self.weak.upgrade()) {
                    (Some(service), Some(ua)) => service.on_invite(&ua, Inbound { msg, peer }),
                    _ => self.send(peer, unknown_call(&msg)),
                }
            }
            Some("OPTIONS") => {
                let resp = response_to(&msg, 200, "OK", &random_hex(8))
                    .header("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS")
                    .header("User-Agent", USER_AGENT)
                    .finish(None, b"");
                self.send(peer, resp);
            }
            Some(_) => self.send(peer, unknown_call(&msg)),
        }
    }

    fn tcp_register_accepted(&self, peer: SocketAddr) -> Option<(u64, mpsc::Receiver<Vec<u8>>)> {
        let mut conns = self.tcp.lock();
        if conns.len() >= MAX_TCP_CONNECTIONS {
            return None;
        }
        let (tx, rx) = mpsc::channel(CALL_QUEUE);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        conns.insert(peer, TcpConn { id, tx });
        Some((id, rx))
    }

    fn tcp_unregister(&self, peer: SocketAddr, id: u64) {
        let mut conns = self.tcp.lock();
        if conns.get(&peer).is_some_and(|c| c.id == id) {
            conns.remove(&peer);
        }
    }
}

fn unknown_call(msg: &Message) -> Vec<u8> {
    response_to(msg, 481, "Call/Transaction Does Not Exist", &random_hex(8)).finish(None, b"")
}

/// Validates a CreateSIPParticipant `headers` map for use as SIP headers
/// (sorted by name, as LiveKit SIP sends them). Names must be tokens, values
/// single-line; headers the UA sets itself cannot be overridden.
pub(crate) fn extra_headers(
    map: &HashMap<String, String>,
) -> Result<Vec<(String, String)>, TwirpError> {
    const RESERVED: &[&str] = &[
        "via",
        "from",
        "to",
        "call-id",
        "cseq",
        "max-forwards",
        "contact",
        "content-length",
        "content-type",
        "route",
        "record-route",
        "user-agent",
    ];
    let invalid = |msg: String| TwirpError::new(code::INVALID_ARGUMENT, msg);
    if map.len() > MAX_EXTRA_HEADERS {
        return Err(invalid(format!(
            "at most {MAX_EXTRA_HEADERS} SIP headers are allowed"
        )));
    }
    let sorted: BTreeMap<&String, &String> = map.iter().collect();
    let mut out = Vec::with_capacity(sorted.len());
    for (name, value) in sorted {
        let lower = name.to_ascii_lowercase();
        let name_ok = !name.is_empty()
            && name.len() <= MAX_HEADER_NAME
            && name.bytes().all(message::is_token_byte)
            && name.len() > 1
            && !RESERVED.contains(&lower.as_str());
        if !name_ok {
            return Err(invalid(format!("invalid SIP header name {name:?}")));
        }
        let value_ok = value.len() <= MAX_HEADER_VALUE
            && !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0);
        if !value_ok {
            return Err(invalid(format!("invalid value for SIP header {name:?}")));
        }
        out.push((name.clone(), value.trim().to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_headers_are_checked_and_sorted() {
        let mut map = HashMap::new();
        map.insert("X-C2C-Tenant".to_owned(), "acme".to_owned());
        map.insert("X-C2C-Call-Id".to_owned(), "call_1".to_owned());
        let h = extra_headers(&map).unwrap();
        assert_eq!(h[0].0, "X-C2C-Call-Id");
        assert_eq!(h[1].0, "X-C2C-Tenant");
        for (k, v) in [
            ("X-Bad", "a\r\nVia: x"),
            ("Bad Name", "v"),
            ("Call-ID", "x"),
            ("i", "x"),
            ("", "x"),
        ] {
            let mut map = HashMap::new();
            map.insert(k.to_owned(), v.to_owned());
            assert!(extra_headers(&map).is_err(), "{k:?}");
        }
    }
}
