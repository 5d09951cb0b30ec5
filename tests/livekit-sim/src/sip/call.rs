//! One outbound call as LiveKit SIP places it: INVITE transaction (RFC 3261
//! §17.1.1, timers A/B), ACK for 2xx (new transaction, through the route set)
//! and non-2xx (hop-by-hop, same branch), CANCEL (§9.1) on ringing timeout or
//! when the participant goes while ringing, BYE (§15) when it goes while
//! active, and the callee's BYE answered. The participant is driven through
//! [`Script`] exactly as scripted scenarios drive it.
//!
//! The task ends when the call is over — after 64*T1 of absorbing
//! retransmissions on UDP — or at simulator shutdown (a last BYE/CANCEL is sent
//! once, unanswered).

use std::net::SocketAddr;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::message::{
    escape_user, host_literal, hostport, name_addr, response_to, Builder, Message, SipUri,
};
use super::{random_hex, CallSlot, Inbound, Registration, Ua, USER_AGENT};
use crate::config::SipTransport;
use crate::sip_dialer::Script;

use std::sync::Arc;

const INVITE_CSEQ: u32 = 1;
/// Longest timer the call arms (keeps `Instant + Duration` from overflowing).
const MAX_TIMER: Duration = Duration::from_secs(366 * 24 * 3600);

/// What the dial request asked for.
pub(crate) struct Dial {
    pub call_to: String,
    pub from_user: String,
    pub headers: Vec<(String, String)>,
    pub ringing_timeout: Duration,
    pub max_call_duration: Duration,
}

/// Plays one call to its end.
pub(crate) async fn run(
    ua: Arc<Ua>,
    slot: CallSlot,
    dial: Dial,
    script: Script,
    alive: oneshot::Receiver<()>,
) {
    let CallSlot {
        call_id,
        rx,
        registration,
    } = slot;
    let mut sig = Signals {
        rx,
        alive,
        alive_gone: false,
        shutdown: ua.shutdown_signal(),
    };
    let mut call = Call::new(ua, call_id, &dial, script);
    if let Some(dialog) = call.invite(&mut sig, &dial).await {
        call.active(&mut sig, dialog, dial.max_call_duration).await;
    }
    call.linger(&mut sig, &registration).await;
}

struct Signals {
    rx: mpsc::Receiver<Inbound>,
    /// Resolves (Err) when the participant is dropped from its room.
    alive: oneshot::Receiver<()>,
    alive_gone: bool,
    shutdown: watch::Receiver<bool>,
}

enum Event {
    Msg(Inbound),
    /// The earliest deadline passed.
    Timer,
    /// The participant left the room (DeleteRoom, RemoveParticipant, ...).
    AliveGone,
    Shutdown,
    /// The UA unregistered the call (evicted): nothing more will arrive.
    Closed,
}

async fn next_event(sig: &mut Signals, deadline: Option<Instant>) -> Event {
    let sleep = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    let event = tokio::select! {
        biased;
        _ = sig.shutdown.wait_for(|s| *s) => Event::Shutdown,
        _ = &mut sig.alive, if !sig.alive_gone => Event::AliveGone,
        m = sig.rx.recv() => match m {
            Some(m) => Event::Msg(m),
            None => Event::Closed,
        },
        _ = sleep => Event::Timer,
    };
    if matches!(event, Event::AliveGone) {
        sig.alive_gone = true;
    }
    event
}

fn earliest(deadlines: &[Option<Instant>]) -> Option<Instant> {
    deadlines.iter().flatten().min().copied()
}

fn after(d: Duration) -> Instant {
    Instant::now() + d.min(MAX_TIMER)
}

/// Timer A / E: first at T1, then doubling up to `cap`; never on reliable transports.
struct Retransmit {
    next: Option<Instant>,
    interval: Duration,
    cap: Duration,
}

impl Retransmit {
    fn start(reliable: bool, t1: Duration, cap: Duration) -> Self {
        Self {
            next: (!reliable).then(|| after(t1)),
            interval: t1,
            cap,
        }
    }

    fn due(&self, now: Instant) -> bool {
        self.next.is_some_and(|n| now >= n)
    }

    fn advance(&mut self, now: Instant) {
        self.interval = self.interval.saturating_mul(2).min(self.cap);
        if self.next.is_some() {
            self.next = Some(now + self.interval);
        }
    }

    /// A provisional answer to a non-INVITE request: keep going at the cap (T2).
    fn slow(&mut self) {
        self.interval = self.cap;
    }

    fn stop(&mut self) {
        self.next = None;
    }
}

/// A CANCEL or BYE waiting for its final response.
struct Pending {
    bytes: Vec<u8>,
    dest: SocketAddr,
    branch: String,
    retrans: Retransmit,
    give_up: Instant,
}

/// The confirmed dialog: where in-dialog requests go (RFC 3261 §12.2.1.1).
struct Dialog {
    /// `To` of the 2xx (carries the remote tag).
    remote_to: String,
    request_uri: String,
    routes: Vec<String>,
    dest: SocketAddr,
    cseq: u32,
}

impl Dialog {
    /// From a 2xx: remote target = Contact, route set = Record-Route reversed.
    fn from_2xx(resp: &Message, invite_uri: &str, to: &str, proxy: SocketAddr) -> Dialog {
        let remote_to = resp.header("to").unwrap_or(to).to_owned();
        let target = resp
            .list("contact")
            .first()
            .and_then(|c| name_addr(c))
            .map_or_else(|| invite_uri.to_owned(), |na| na.uri.to_owned());
        let route_set: Vec<String> = resp
            .list("record-route")
            .into_iter()
            .rev()
            .map(str::to_owned)
            .collect();
        let addr_of = |uri: &str| {
            SipUri::parse(uri)
                .and_then(|u| u.socket_addr())
                .unwrap_or(proxy)
        };
        let first = route_set
            .first()
            .and_then(|r| name_addr(r))
            .map(|na| na.uri.to_owned());
        let (request_uri, routes, dest) = match first {
            None => (target.clone(), Vec::new(), addr_of(&target)),
            Some(first_uri) => {
                let loose = SipUri::parse(&first_uri).is_some_and(|u| u.loose_route());
                let dest = addr_of(&first_uri);
                if loose {
                    (target, route_set, dest)
                } else {
                    // Strict router (RFC 2543): it becomes the Request-URI and the
                    // remote target goes last in the Route header.
                    let mut routes: Vec<String> = route_set.into_iter().skip(1).collect();
                    routes.push(format!("<{target}>"));
                    (first_uri, routes, dest)
                }
            }
        };
        Dialog {
            remote_to,
            request_uri,
            routes,
            dest,
            cseq: INVITE_CSEQ,
        }
    }
}

/// Where the call is, for answering the far end's requests.
#[derive(Clone, Copy)]
enum Phase<'a> {
    /// INVITE sent, no 2xx yet.
    Early,
    Confirmed(&'a Dialog),
    /// Over; absorbing retransmissions.
    Ended,
}

struct Call {
    ua: Arc<Ua>,
    script: Script,
    call_id: String,
    proxy: SocketAddr,
    t1: Duration,
    reliable: bool,
    transport: &'static str,
    request_uri: String,
    from: String,
    to: String,
    /// The INVITE's Via (CANCEL and non-2xx ACK reuse it).
    via: String,
    branch: String,
    local_tag: String,
    contact: String,
    sdp: Vec<u8>,
    invite: Vec<u8>,
    /// The last ACK and its destination, re-sent when the final response repeats.
    ack: Option<(Vec<u8>, SocketAddr)>,
}

impl Call {
    fn new(ua: Arc<Ua>, call_id: String, dial: &Dial, script: Script) -> Call {
        let config = ua.config().clone();
        let local = ua.local_addr();
        let transport = config.transport.via_token();
        let local_host = host_literal(local.ip());
        let request_uri = format!(
            "sip:{}@{}",
            escape_user(&dial.call_to),
            hostport(config.proxy)
        );
        let local_tag = random_hex(8);
        let from = if dial.from_user.is_empty() {
            format!("<sip:{local_host}>;tag={local_tag}")
        } else {
            format!(
                "<sip:{}@{local_host}>;tag={local_tag}",
                escape_user(&dial.from_user)
            )
        };
        let to = format!("<{request_uri}>");
        let contact = match config.transport {
            SipTransport::Udp => format!("<sip:livekit@{}>", hostport(local)),
            SipTransport::Tcp => format!("<sip:livekit@{};transport=tcp>", hostport(local)),
        };
        let branch = new_branch();
        let via = via_value(transport, local, &branch);
        let sdp = sdp_offer(local.ip());
        let mut call = Call {
            ua,
            script,
            call_id,
            proxy: config.proxy,
            t1: config.t1,
            reliable: config.transport == SipTransport::Tcp,
            transport,
            request_uri,
            from,
            to,
            via,
            branch,
            local_tag,
            contact,
            sdp,
            invite: Vec::new(),
            ack: None,
        };
        call.invite = call.build_invite(&dial.headers);
        call
    }

    fn build_invite(&self, extra: &[(String, String)]) -> Vec<u8> {
        let mut b = Builder::request("INVITE", &self.request_uri)
            .header("Via", &self.via)
            .header("Max-Forwards", "70")
            .header("From", &self.from)
            .header("To", &self.to)
            .header("Call-ID", &self.call_id)
            .header("CSeq", &format!("{INVITE_CSEQ} INVITE"))
            .header("Contact", &self.contact)
            .header("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS")
            .header("User-Agent", USER_AGENT);
        for (name, value) in extra {
            b = b.header(name, value);
        }
        b.finish(Some("application/sdp"), &self.sdp)
    }

    fn t2(&self) -> Duration {
        // T2 = 4 s for T1 = 500 ms; scaled with a shortened T1.
        self.t1.saturating_mul(8)
    }

    fn timeout_64t1(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// The INVITE transaction. Returns the dialog when answered and still wanted.
    async fn invite(&mut self, sig: &mut Signals, dial: &Dial) -> Option<Dialog> {
        self.ua.send(self.proxy, self.invite.clone());
        let mut retrans = Retransmit::start(self.reliable, self.t1, self.timeout_64t1());
        let timer_b = after(self.timeout_64t1());
        let ring_deadline = after(dial.ringing_timeout);
        let mut provisional = 0usize;
        let mut rang = false;
        // The participant has left (ring timeout, room deleted, removed): cancel.
        let mut abandoned = false;
        let mut cancel: Option<Pending> = None;
        loop {
            let deadline = earliest(&[
                retrans.next,
                (provisional == 0).then_some(timer_b),
                (!abandoned).then_some(ring_deadline),
                cancel.as_ref().and_then(|c| c.retrans.next),
                cancel.as_ref().map(|c| c.give_up),
            ]);
            match next_event(sig, deadline).await {
                Event::Shutdown => {
                    if provisional > 0 && cancel.is_none() {
                        let c = self.cancel_request();
                        self.ua.send(c.dest, c.bytes);
                    }
                    return None;
                }
                Event::Closed => return None,
                Event::AliveGone => {
                    abandoned = true;
                    if provisional > 0 && cancel.is_none() {
                        cancel = Some(self.send_cancel());
                    }
                }
                Event::Timer => {
                    let now = Instant::now();
                    if retrans.due(now) {
                        self.ua.send(self.proxy, self.invite.clone());
                        retrans.advance(now);
                    }
                    if let Some(c) = &mut cancel {
                        if c.retrans.due(now) {
                            self.ua.send(c.dest, c.bytes.clone());
                            c.retrans.advance(now);
                        }
                        if now >= c.give_up {
                            // No final response within 64*T1 of the CANCEL (§9.1).
                            return None;
                        }
                    }
                    if !abandoned && now >= ring_deadline {
                        self.script.ring_timeout();
                        abandoned = true;
                        if provisional > 0 && cancel.is_none() {
                            cancel = Some(self.send_cancel());
                        }
                    }
                    if provisional == 0 && now >= timer_b {
                        // Timer B: nobody answered at all.
                        if !abandoned {
                            self.script.no_response(provisional);
                        }
                        return None;
                    }
                }
                Event::Msg(inbound) => {
                    let Some((code, reason)) = inbound.msg.status() else {
                        self.answer_request(&inbound, Phase::Early);
                        continue;
                    };
                    if inbound.msg.top_branch() != Some(self.branch.as_str()) {
                        continue; // not ours (stray or for another transaction)
                    }
                    match inbound.msg.cseq().map(|(_, m)| m) {
                        Some("CANCEL") if code >= 200 => {
                            if let Some(c) = &mut cancel {
                                c.retrans.stop();
                            }
                        }
                        Some("INVITE") if code < 200 => {
                            retrans.stop();
                            provisional += 1;
                            if code > 100 && !rang && !abandoned {
                                rang = true;
                                self.script.ring();
                            }
                            if abandoned && cancel.is_none() {
                                cancel = Some(self.send_cancel());
                            }
                        }
                        Some("INVITE") if code < 300 => {
                            let mut dialog = Dialog::from_2xx(
                                &inbound.msg,
                                &self.request_uri,
                                &self.to,
                                self.proxy,
                            );
                            self.ack_2xx(&dialog);
                            if abandoned || cancel.is_some() {
                                // Answered while we cancelled: hang up at once.
                                self.bye(sig, &mut dialog).await;
                                return None;
                            }
                            if !self.script.answer() {
                                self.bye(sig, &mut dialog).await;
                                return None;
                            }
                            return Some(dialog);
                        }
                        Some("INVITE") => {
                            let reason = reason.to_owned();
                            self.ack_non_2xx(&inbound.msg);
                            if !abandoned {
                                self.script.reject(code, &reason);
                            }
                            return None;
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// The confirmed call, until either side hangs up or the duration cap.
    async fn active(&mut self, sig: &mut Signals, mut dialog: Dialog, max: Duration) {
        let hangup_at = after(max);
        loop {
            match next_event(sig, Some(hangup_at)).await {
                Event::Shutdown => {
                    let bye = self.bye_request(&mut dialog);
                    self.ua.send(bye.dest, bye.bytes);
                    return;
                }
                Event::Closed => return,
                Event::AliveGone => {
                    // Already left the room with its reason: tell the callee.
                    self.bye(sig, &mut dialog).await;
                    return;
                }
                Event::Timer => {
                    if Instant::now() >= hangup_at {
                        self.script.hangup();
                        self.bye(sig, &mut dialog).await;
                        return;
                    }
                }
                Event::Msg(inbound) => {
                    if inbound.msg.status().is_some() {
                        self.absorb_response(&inbound.msg);
                    } else if self.answer_request(&inbound, Phase::Confirmed(&dialog)) {
                        self.script.hangup();
                        return;
                    }
                }
            }
        }
    }

    /// Sends BYE in the dialog and waits (bounded) for its final response.
    async fn bye(&mut self, sig: &mut Signals, dialog: &mut Dialog) {
        let mut pending = self.bye_request(dialog);
        self.ua.send(pending.dest, pending.bytes.clone());
        loop {
            let deadline = earliest(&[pending.retrans.next, Some(pending.give_up)]);
            match next_event(sig, deadline).await {
                Event::Shutdown | Event::Closed => return,
                Event::AliveGone => {}
                Event::Timer => {
                    let now = Instant::now();
                    if pending.retrans.due(now) {
                        self.ua.send(pending.dest, pending.bytes.clone());
                        pending.retrans.advance(now);
                    }
                    if now >= pending.give_up {
                        return;
                    }
                }
                Event::Msg(inbound) => match inbound.msg.status() {
                    Some((code, _))
                        if inbound.msg.top_branch() == Some(pending.branch.as_str()) =>
                    {
                        if code >= 200 {
                            return;
                        }
                        pending.retrans.slow();
                    }
                    Some(_) => self.absorb_response(&inbound.msg),
                    None => {
                        // A crossing BYE is answered; ours still completes.
                        self.answer_request(&inbound, Phase::Confirmed(dialog));
                    }
                },
            }
        }
    }

    /// After the end: absorb retransmissions for 64*T1 on UDP (timers D/J).
    async fn linger(&mut self, sig: &mut Signals, registration: &Registration) {
        if self.reliable {
            return;
        }
        registration.set_lingering();
        let until = after(self.timeout_64t1());
        loop {
            match next_event(sig, Some(until)).await {
                Event::Shutdown | Event::Closed => return,
                Event::AliveGone => {}
                Event::Timer => {
                    if Instant::now() >= until {
                        return;
                    }
                }
                Event::Msg(inbound) => {
                    if inbound.msg.status().is_some() {
                        self.absorb_response(&inbound.msg);
                    } else {
                        self.answer_request(&inbound, Phase::Ended);
                    }
                }
            }
        }
    }

    /// A repeated final response to the INVITE gets the same ACK again.
    fn absorb_response(&self, resp: &Message) {
        let is_invite_final = resp.status().is_some_and(|(c, _)| c >= 200)
            && resp.cseq().is_some_and(|(_, m)| m == "INVITE");
        if is_invite_final {
            if let Some((bytes, dest)) = &self.ack {
                self.ua.send(*dest, bytes.clone());
            }
        }
    }

    /// Answers a request from the far end. Returns true for a BYE in the
    /// confirmed dialog (the call ends).
    fn answer_request(&self, inbound: &Inbound, phase: Phase<'_>) -> bool {
        let req = &inbound.msg;
        let Some(method) = req.method() else {
            return false;
        };
        let respond = |code: u16, reason: &str| {
            response_to(req, code, reason, &self.local_tag)
                .header("User-Agent", USER_AGENT)
                .finish(None, b"")
        };
        let dialog = match phase {
            Phase::Confirmed(d) => Some(d),
            Phase::Early | Phase::Ended => None,
        };
        let (bytes, is_bye) = match method {
            "ACK" => return false,
            "BYE" => match phase {
                Phase::Confirmed(_) => (respond(200, "OK"), true),
                // A retransmission of the BYE that ended the call.
                Phase::Ended => (respond(200, "OK"), false),
                // The callee must not BYE an early dialog (RFC 3261 §15).
                Phase::Early => (respond(481, "Call/Transaction Does Not Exist"), false),
            },
            "INVITE" if dialog.is_some() => {
                // Session refresh / re-INVITE: accept with the same offer.
                let b = response_to(req, 200, "OK", &self.local_tag)
                    .header("Contact", &self.contact)
                    .header("User-Agent", USER_AGENT)
                    .finish(Some("application/sdp"), &self.sdp);
                (b, false)
            }
            "OPTIONS" | "INFO" | "UPDATE" | "NOTIFY" | "MESSAGE" if dialog.is_some() => {
                (respond(200, "OK"), false)
            }
            "OPTIONS" => (respond(200, "OK"), false),
            "INVITE" | "CANCEL" | "INFO" | "UPDATE" | "NOTIFY" | "MESSAGE" | "PRACK" => {
                (respond(481, "Call/Transaction Does Not Exist"), false)
            }
            _ => (respond(501, "Not Implemented"), false),
        };
        self.ua.send(inbound.peer, bytes);
        is_bye
    }

    fn cancel_request(&self) -> Pending {
        let bytes = Builder::request("CANCEL", &self.request_uri)
            .header("Via", &self.via)
            .header("Max-Forwards", "70")
            .header("From", &self.from)
            .header("To", &self.to)
            .header("Call-ID", &self.call_id)
            .header("CSeq", &format!("{INVITE_CSEQ} CANCEL"))
            .header("User-Agent", USER_AGENT)
            .finish(None, b"");
        Pending {
            bytes,
            dest: self.proxy,
            branch: self.branch.clone(),
            retrans: Retransmit::start(self.reliable, self.t1, self.t2()),
            give_up: after(self.timeout_64t1()),
        }
    }

    fn send_cancel(&self) -> Pending {
        let pending = self.cancel_request();
        self.ua.send(pending.dest, pending.bytes.clone());
        pending
    }

    fn bye_request(&self, dialog: &mut Dialog) -> Pending {
        dialog.cseq = dialog.cseq.saturating_add(1);
        let branch = new_branch();
        let bytes = Builder::request("BYE", &dialog.request_uri)
            .header(
                "Via",
                &via_value(self.transport, self.ua.local_addr(), &branch),
            )
            .header("Max-Forwards", "70")
            .headers("Route", dialog.routes.iter().map(String::as_str))
            .header("From", &self.from)
            .header("To", &dialog.remote_to)
            .header("Call-ID", &self.call_id)
            .header("CSeq", &format!("{} BYE", dialog.cseq))
            .header("User-Agent", USER_AGENT)
            .finish(None, b"");
        Pending {
            bytes,
            dest: dialog.dest,
            branch,
            retrans: Retransmit::start(self.reliable, self.t1, self.t2()),
            give_up: after(self.timeout_64t1()),
        }
    }

    /// ACK for a 2xx: its own transaction, sent through the route set (§13.2.2.4).
    fn ack_2xx(&mut self, dialog: &Dialog) {
        let branch = new_branch();
        let bytes = Builder::request("ACK", &dialog.request_uri)
            .header(
                "Via",
                &via_value(self.transport, self.ua.local_addr(), &branch),
            )
            .header("Max-Forwards", "70")
            .headers("Route", dialog.routes.iter().map(String::as_str))
            .header("From", &self.from)
            .header("To", &dialog.remote_to)
            .header("Call-ID", &self.call_id)
            .header("CSeq", &format!("{INVITE_CSEQ} ACK"))
            .header("User-Agent", USER_AGENT)
            .finish(None, b"");
        self.ua.send(dialog.dest, bytes.clone());
        self.ack = Some((bytes, dialog.dest));
    }

    /// ACK for a 3xx-6xx: part of the INVITE transaction, same branch, to the
    /// same hop (§17.1.1.3).
    fn ack_non_2xx(&mut self, resp: &Message) {
        let to = resp.header("to").unwrap_or(&self.to).to_owned();
        let bytes = Builder::request("ACK", &self.request_uri)
            .header("Via", &self.via)
            .header("Max-Forwards", "70")
            .header("From", &self.from)
            .header("To", &to)
            .header("Call-ID", &self.call_id)
            .header("CSeq", &format!("{INVITE_CSEQ} ACK"))
            .header("User-Agent", USER_AGENT)
            .finish(None, b"");
        self.ua.send(self.proxy, bytes.clone());
        self.ack = Some((bytes, self.proxy));
    }
}

fn new_branch() -> String {
    format!("z9hG4bK{}", random_hex(12))
}

fn via_value(transport: &str, local: SocketAddr, branch: &str) -> String {
    format!(
        "SIP/2.0/{transport} {};branch={branch};rport",
        hostport(local)
    )
}

/// A minimal offer: one PCMU/8000 audio stream (plus telephone-event) on a
/// random even port. No media flows.
fn sdp_offer(ip: std::net::IpAddr) -> Vec<u8> {
    let mut rng = rand::thread_rng();
    let port = rng.gen_range(5_000u16..30_000) * 2;
    let session: u32 = rng.gen();
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    format!(
        "v=0\r\n\
         o=LiveKit {session} {session} IN {family} {ip}\r\n\
         s=LiveKit\r\n\
         c=IN {family} {ip}\r\n\
         t=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-16\r\n\
         a=ptime:20\r\n\
         a=sendrecv\r\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(text: &str) -> Message {
        Message::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn dialog_follows_loose_record_route() {
        let proxy: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let r = resp(
            "SIP/2.0 200 OK\r\nTo: <sip:1@127.0.0.1:5060>;tag=r\r\n\
             Record-Route: <sip:10.0.0.2:5062;lr>, <sip:10.0.0.1:5061;lr>\r\n\
             Contact: <sip:callee@10.0.0.3:5080>\r\n\r\n",
        );
        let d = Dialog::from_2xx(&r, "sip:1@127.0.0.1:5060", "<sip:1@x>", proxy);
        assert_eq!(d.request_uri, "sip:callee@10.0.0.3:5080");
        assert_eq!(
            d.routes,
            vec!["<sip:10.0.0.1:5061;lr>", "<sip:10.0.0.2:5062;lr>"]
        );
        assert_eq!(d.dest, "10.0.0.1:5061".parse().unwrap());
        assert_eq!(d.remote_to, "<sip:1@127.0.0.1:5060>;tag=r");
    }

    #[test]
    fn dialog_without_routes_and_with_strict_router() {
        let proxy: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let r = resp("SIP/2.0 200 OK\r\nm: <sip:callee@10.0.0.3>\r\n\r\n");
        let d = Dialog::from_2xx(&r, "sip:1@127.0.0.1:5060", "<sip:1@x>", proxy);
        assert_eq!(d.dest, "10.0.0.3:5060".parse().unwrap());
        assert!(d.routes.is_empty());
        let r = resp(
            "SIP/2.0 200 OK\r\nRecord-Route: <sip:proxy.example>\r\n\
             Contact: <sip:callee@10.0.0.3>\r\n\r\n",
        );
        let d = Dialog::from_2xx(&r, "sip:1@127.0.0.1:5060", "<sip:1@x>", proxy);
        assert_eq!(d.request_uri, "sip:proxy.example");
        assert_eq!(d.routes, vec!["<sip:callee@10.0.0.3>"]);
        assert_eq!(d.dest, proxy, "host names go through the proxy");
    }

    #[test]
    fn retransmit_schedule_doubles_and_caps() {
        let t1 = Duration::from_millis(500);
        let mut r = Retransmit::start(false, t1, Duration::from_secs(4));
        let now = Instant::now();
        let mut intervals = Vec::new();
        for _ in 0..5 {
            r.advance(now);
            intervals.push(r.interval);
        }
        assert_eq!(intervals, [1, 2, 4, 4, 4].map(Duration::from_secs).to_vec());
        assert!(Retransmit::start(true, t1, t1).next.is_none());
    }

    #[test]
    fn sdp_is_pcmu() {
        let sdp = String::from_utf8(sdp_offer("127.0.0.1".parse().unwrap())).unwrap();
        assert!(sdp.contains("m=audio "));
        assert!(sdp.contains("a=rtpmap:0 PCMU/8000"));
        assert!(sdp.contains("c=IN IP4 127.0.0.1"));
    }
}
