//! The proxy core: synchronous and socket-free. The edge feeds it decoded messages and
//! timer ticks; it answers with [`Action`]s (bytes to send, observations to deliver)
//! that the edge carries out after releasing the core's lock.
//!
//! Split by concern: `inbound` (classification of new calls; inbound admission and
//! hold), `held` (a held inbound call: forward, reject, cancel, expiry), `abandon` (a
//! forwarded inbound call the gateway rejects before LiveKit answered), `invite` (new
//! outbound calls: admission, then forwarding or refusal), `indialog` (ACK, CANCEL,
//! loose routing of BYE, re-INVITE and the rest), `downstream` (responses from the
//! next hop), `timers`.
//!
//! Who may send what: allowed LiveKit nodes anything; a carrier (a trunk's carrier
//! address or inbound `sources`) new inbound INVITEs and out-of-dialog OPTIONS; either
//! side of a known call its in-dialog requests and CANCEL. Everyone else gets 403.

mod abandon;
mod downstream;
mod held;
mod inbound;
mod indialog;
mod invite;
mod media;
mod timers;

#[cfg(test)]
mod tests;

pub use held::Forward;

use std::sync::Arc;

use bytes::Bytes;
use rand::Rng;
use tokio::time::Instant;

use crate::carriers::CarrierIps;
use crate::config::SipConfig;
use crate::dialog::DialogTable;
use crate::error::ParseError;
use crate::error::SipError;
use crate::flow::{Flow, Transport};
use crate::hdr::{split_list, via, Via};
use crate::limits::CallRate;
use crate::media::anchors::Anchors;
use crate::media::metrics::MediaMetrics;
use crate::media::MediaOp;
use crate::message::{is_c2c_header, OutRequest, SipMsg};
use crate::metrics::SipMetrics;
use crate::normalize::NormalizedMessage;
use crate::observer::Observation;
use crate::parse::{Host, Method, SipUri, StartLine};
use crate::resolver::Resolver;
use crate::response::{reply, stamped_vias, ReplyBase};
use crate::sources::{OutboundGate, PolicySource};
use crate::txn::TxnTable;
use c2c_media::PortPool;
use parking_lot::Mutex;

/// Prefix of every branch we create: the RFC 3261 magic cookie plus our mark.
pub const BRANCH_PREFIX: &str = "z9hG4bK-c2c-";
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS";

/// What the edge must do after a core call.
#[derive(Debug)]
pub enum Action {
    Send { to: Flow, data: Bytes },
    Observe(Observation),
    Media(MediaOp),
}

/// Our own address as written into Via and Record-Route.
#[derive(Debug, Clone)]
pub struct Local {
    pub host: Host,
    pub port: u16,
}

pub struct Proxy {
    cfg: Arc<SipConfig>,
    me: Local,
    policy: Arc<dyn PolicySource>,
    dlt: Arc<dyn OutboundGate>,
    metrics: SipMetrics,
    resolver: Arc<Resolver>,
    carriers: Arc<CarrierIps>,
    txns: TxnTable,
    dialogs: DialogTable,
    /// Held inbound calls by SIP Call-ID (each also has a dialog entry).
    held: held::HeldTable,
    /// Anchored calls' ports and SDP.
    anchors: Anchors,
    media_metrics: MediaMetrics,
    rate: CallRate,
    next_sweep: Instant,
    out: Vec<Action>,
    /// What never changes in our Via and Record-Route values, per transport (UDP, TCP),
    /// written once: building them with `format!` was a measurable share of each
    /// forwarded request's CPU.
    via_head: [String; 2],
    record_route: [String; 2],
}

/// Index into [`Proxy`]'s per-transport strings.
fn tix(t: Transport) -> usize {
    match t {
        Transport::Udp => 0,
        Transport::Tcp => 1,
    }
}

impl Proxy {
    pub fn new(
        cfg: Arc<SipConfig>,
        me: Local,
        policy: Arc<dyn PolicySource>,
        dlt: Arc<dyn OutboundGate>,
        metrics: SipMetrics,
        resolver: Arc<Resolver>,
        carriers: Arc<CarrierIps>,
    ) -> Result<Self, SipError> {
        let m = cfg.media;
        let pool =
            PortPool::new(m.port_min, m.port_max).map_err(|e| SipError::Config(e.to_string()))?;
        let address = match (m.address, &me.host) {
            (Some(a), _) => a,
            (None, Host::Ip(ip)) => *ip,
            (None, Host::Name(_)) => cfg.listen.ip(),
        };
        let anchors = Anchors::new(address, cfg.listen.ip(), Arc::new(Mutex::new(pool)));
        let via_head = [Transport::Udp, Transport::Tcp]
            .map(|t| format!("SIP/2.0/{} {}:{};branch=", t.as_str(), me.host, me.port));
        let record_route = [
            format!("<sip:{}:{};lr>", me.host, me.port),
            format!("<sip:{}:{};transport=tcp;lr>", me.host, me.port),
        ];
        Ok(Self {
            via_head,
            record_route,
            media_metrics: metrics.media.clone(),
            anchors,
            txns: TxnTable::new(cfg.max_transactions),
            dialogs: DialogTable::new(cfg.max_dialogs),
            held: held::HeldTable::new(),
            cfg,
            me,
            policy,
            dlt,
            metrics,
            resolver,
            carriers,
            rate: CallRate::default(),
            next_sweep: Instant::now(),
            out: Vec::new(),
        })
    }

    /// The media port pool, shared with the relays (which give ports back).
    pub fn media_pool(&self) -> Arc<Mutex<PortPool>> {
        self.anchors.pool()
    }

    /// Handles one valid message from `from`.
    pub fn handle(&mut self, now: Instant, from: Flow, msg: &SipMsg) -> Vec<Action> {
        match &msg.start {
            StartLine::Response { code, .. } => self.on_response(now, msg, *code),
            StartLine::Request { method, uri } => self.on_request(now, from, msg, method, uri),
        }
        self.finish()
    }

    /// Answers a request that failed parsing or validation (400/416/505), if a
    /// response can be formed; otherwise it is dropped.
    pub fn reject(&mut self, from: Flow, n: &NormalizedMessage, err: &ParseError) -> Vec<Action> {
        match ReplyBase::from_normalized(n, from.addr) {
            Some(base) if !n.start_line.starts_with("ACK ") => {
                let top = n
                    .headers
                    .iter()
                    .find(|h| h.name == "Via")
                    .and_then(|h| split_list(&h.value).ok())
                    .and_then(|l| l.first().and_then(|v| via(v).ok()));
                let (code, reason) = err.status();
                self.metrics
                    .malformed
                    .with_label_values(&["rejected"])
                    .inc();
                let to = match &top {
                    Some(v) => reply_flow(from, v),
                    None => from,
                };
                let tag = new_tag();
                self.send(to, reply(&base, code, reason, Some(&tag), &[]));
            }
            _ => self.metrics.malformed.with_label_values(&["dropped"]).inc(),
        }
        self.finish()
    }

    /// What the core produced without a caller to hand it to yet (a forward that
    /// failed after answering the carrier itself).
    pub fn pending(&mut self) -> Vec<Action> {
        self.finish()
    }

    /// The earliest pending timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.txns.next_deadline()
    }

    fn finish(&mut self) -> Vec<Action> {
        for key in self.dialogs.take_unanchored() {
            self.anchors.forget(&key);
            self.out.push(Action::Media(MediaOp::Stop { key }));
        }
        self.metrics.transactions.set(self.txns.len() as i64);
        self.metrics.dialogs.set(self.dialogs.len() as i64);
        std::mem::take(&mut self.out)
    }

    fn send(&mut self, to: Flow, data: Bytes) {
        self.out.push(Action::Send { to, data });
    }

    fn observe(&mut self, o: Observation) {
        self.out.push(Action::Observe(o));
    }

    fn on_request(&mut self, now: Instant, from: Flow, msg: &SipMsg, method: &Method, uri: &str) {
        if let Some(ua) = msg.header("User-Agent") {
            let ua = ua.to_ascii_lowercase();
            if self
                .cfg
                .scanner_user_agents
                .iter()
                .any(|s| ua.contains(&s.to_ascii_lowercase()))
            {
                self.metrics.scanners_dropped.inc();
                return;
            }
        }
        let ip = from.addr.ip();
        let known = self.cfg.allowed_region(ip).is_some()
            || self.dialogs.is_peer(&msg.call_id, ip)
            || self.carriers.contains(ip);
        if !known {
            self.metrics.refused_sources.inc();
            tracing::debug!(source = %from.addr.ip(), method = method.as_str(), "SIP request from a source not on the allow-list refused");
            if *method != Method::Ack {
                self.reply(from, msg, 403, "Forbidden", &[]);
            }
            return;
        }
        match method {
            Method::Ack => return self.on_ack(now, from, msg, uri),
            Method::Cancel => return self.on_cancel(now, from, msg),
            _ => {}
        }
        if let Some(id) = self.txns.by_server(&server_key(msg, method)) {
            return self.absorb_retransmission(id);
        }
        if let Some(req) = msg.header("Proxy-Require") {
            let req = req.to_string();
            return self.reply(from, msg, 420, "Bad Extension", &[("Unsupported", req)]);
        }
        if msg.max_forwards == Some(0) {
            return self.reply(from, msg, 483, "Too Many Hops", &[]);
        }
        if msg.to_tag.is_some() {
            return self.in_dialog(now, from, msg, method, uri);
        }
        match method {
            Method::Invite => self.initial_invite(now, from, msg, uri),
            Method::Options => self.reply(
                from,
                msg,
                200,
                "OK",
                &[
                    ("Allow", ALLOW.into()),
                    ("Accept", "application/sdp".into()),
                ],
            ),
            Method::Bye => self.reply(from, msg, 481, "Call/Transaction Does Not Exist", &[]),
            _ => self.reply(
                from,
                msg,
                405,
                "Method Not Allowed",
                &[("Allow", ALLOW.into())],
            ),
        }
    }

    fn absorb_retransmission(&mut self, id: crate::txn::TxnId) {
        let Some(t) = self.txns.get(id) else { return };
        let to = t.upstream;
        let data = match &t.last_response {
            Some(r) => Some(r.clone()),
            None if t.invite => Some(reply(&t.reply, 100, "Trying", None, &[])),
            None => None,
        };
        if let Some(d) = data {
            self.send(to, d);
        }
    }

    /// A stateless response to `msg`, sent where responses to it go.
    fn reply(
        &mut self,
        from: Flow,
        msg: &SipMsg,
        code: u16,
        reason: &str,
        extra: &[(&str, String)],
    ) {
        let base = ReplyBase::from_msg(msg, from.addr);
        let tag = new_tag();
        self.send(
            reply_flow(from, &msg.via),
            reply(&base, code, reason, Some(&tag), extra),
        );
    }

    fn is_me(&self, u: &SipUri) -> bool {
        u.host == self.me.host && u.port.unwrap_or(5060) == self.me.port
    }

    /// Our Via value (with a fresh branch) for a request leaving over `t`.
    fn new_via(&self, t: Transport) -> (String, String) {
        let mut hex = [0u8; 24];
        let random = rand::thread_rng().gen::<[u8; 12]>();
        let mut branch = String::with_capacity(BRANCH_PREFIX.len() + hex.len());
        branch.push_str(BRANCH_PREFIX);
        if hex::encode_to_slice(random, &mut hex).is_ok() {
            // Hex digits are ASCII.
            branch.push_str(std::str::from_utf8(&hex).unwrap_or_default());
        }
        (self.via_with(t, &branch), branch)
    }

    /// Our Via value with branch `branch`.
    fn via_with(&self, t: Transport, branch: &str) -> String {
        let head = &self.via_head[tix(t)];
        let mut v = String::with_capacity(head.len() + branch.len() + 6);
        v.push_str(head);
        v.push_str(branch);
        v.push_str(";rport");
        v
    }

    fn record_route(&self, t: Transport) -> String {
        self.record_route[tix(t)].clone()
    }

    /// Whether any Via was written by us (a request looping back).
    fn looped(&self, msg: &SipMsg) -> bool {
        // Only a Via with our branch prefix can be ours: most requests have none, and
        // skip parsing their Vias a second time (validation parsed them once).
        if !msg
            .headers_named("Via")
            .any(|h| h.value.contains(BRANCH_PREFIX))
        {
            return false;
        }
        msg.headers_named("Via")
            .filter_map(|h| split_list(&h.value).ok())
            .flatten()
            .filter_map(|v| via(v).ok())
            .any(|v| {
                v.branch().is_some_and(|b| b.starts_with(BRANCH_PREFIX))
                    && v.host == self.me.host
                    && v.port.unwrap_or(5060) == self.me.port
            })
    }
}

/// Where responses to a request go (RFC 3261 §18.2.2, RFC 3581): the same TCP
/// connection; over UDP the source address when `rport` was asked for, else the
/// source IP and the Via port.
pub fn reply_flow(from: Flow, v: &Via) -> Flow {
    match from.transport {
        Transport::Tcp => from,
        Transport::Udp if v.rport().is_some() => from,
        Transport::Udp => Flow::udp(std::net::SocketAddr::new(
            from.addr.ip(),
            v.port.unwrap_or(5060),
        )),
    }
}

/// Server transaction key (RFC 3261 §17.2.3); ACK matches its INVITE. RFC 2543
/// requests without the magic cookie are keyed by their dialog and CSeq.
pub fn server_key(msg: &SipMsg, method: &Method) -> String {
    let class = match method {
        Method::Ack => "INVITE",
        m => m.as_str(),
    };
    match msg.via.branch() {
        Some(b) if b.starts_with("z9hG4bK") && b.len() > 7 => {
            use std::fmt::Write;
            // One allocation: `sent_by()` would make a string only to copy it here.
            let mut k = String::with_capacity(b.len() + class.len() + 48);
            k.push_str(b);
            k.push('|');
            let _ = write!(k, "{}", msg.via.host);
            if let Some(p) = msg.via.port {
                let _ = write!(k, ":{p}");
            }
            k.push('|');
            k.push_str(class);
            k
        }
        _ => format!(
            "2543|{}|{}|{}|{}|{class}",
            msg.call_id,
            msg.cseq,
            msg.from_tag.as_deref().unwrap_or(""),
            msg.via.sent_by()
        ),
    }
}

/// What every relayed request gets on its way: Max-Forwards one lower (70 when it had
/// none) and the sender's Via stamped with the address it really came from.
fn relay_hop(out: &mut OutRequest, msg: &SipMsg, from: Flow) {
    out.set(
        "Max-Forwards",
        msg.max_forwards
            .map_or(70, |m| m.saturating_sub(1))
            .to_string(),
    );
    if let Some(v) = out.get_mut("Via") {
        if let Some(s) = stamped_vias(std::iter::once(v.as_str()), from.addr).pop() {
            *v = s;
        }
    }
}

pub fn new_tag() -> String {
    hex::encode(rand::thread_rng().gen::<[u8; 8]>())
}
