//! One outgoing call (UAC): INVITE transaction (RFC 3261 §17.1.1, timers A/B), ACK
//! for 2xx (new transaction, through the route set) and non-2xx (hop-by-hop, same
//! branch), CANCEL (§9.1) on ringing timeout or when `alive` goes while ringing, BYE
//! (§15) when it goes while active or at `max_call_duration`, and the callee's BYE
//! answered. What happens is reported to a [`CallEvents`]: LiveKit SIP's outbound
//! participant ([`Script`], driven exactly as scripted scenarios drive it), or the
//! simulator playing a carrier ([`super::carrier`]).
//!
//! The task ends when the call is over — after 64*T1 of absorbing
//! retransmissions on UDP — or at simulator shutdown (a last BYE/CANCEL is sent
//! once, unanswered).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::dialog::{after, INVITE_CSEQ};
use super::dialog::{new_branch, sdp_offer, via_value, Dialog, Pending, Retransmit};
use super::message::{escape_user, host_literal, hostport, response_to, Builder, Message};
use super::{random_hex, CallSlot, Inbound, Registration, Ua, USER_AGENT};
use crate::config::SipTransport;
use crate::sip_dialer::Script;

use std::sync::Arc;

/// What the dial request asked for.
pub(crate) struct Dial {
    /// The outbound trunk's address (`SipOutbound::proxy`).
    pub proxy: SocketAddr,
    pub call_to: String,
    pub from_user: String,
    pub headers: Vec<(String, String)>,
    pub ringing_timeout: Duration,
    pub max_call_duration: Duration,
}

/// What a call reports as it goes. Every method is called at most once per call,
/// except that nothing follows the end (`hangup`, `reject`, `ring_timeout`,
/// `no_response`).
pub(crate) trait CallEvents: Send + 'static {
    /// The first 18x.
    fn ring(&self);
    /// A 2xx (already ACKed). False ends the call at once (BYE).
    fn answer(&self) -> bool;
    /// The callee's BYE, or `max_call_duration` (our BYE follows).
    fn hangup(&self);
    /// A 3xx-6xx final response (ACKed) with the far end's reason phrase.
    fn reject(&self, sip_code: u16, phrase: &str);
    /// `ringing_timeout` passed (the CANCEL follows).
    fn ring_timeout(&self);
    /// Timer B: no response at all, after `provisional` provisionals.
    fn no_response(&self, provisional: usize);
}

impl CallEvents for Script {
    fn ring(&self) {
        Script::ring(self);
    }
    fn answer(&self) -> bool {
        Script::answer(self)
    }
    fn hangup(&self) {
        Script::hangup(self);
    }
    fn reject(&self, sip_code: u16, phrase: &str) {
        Script::reject(self, sip_code, phrase);
    }
    fn ring_timeout(&self) {
        Script::ring_timeout(self);
    }
    fn no_response(&self, provisional: usize) {
        Script::no_response(self, provisional);
    }
}

/// Plays one call to its end.
pub(crate) async fn run<E: CallEvents>(
    ua: Arc<Ua>,
    slot: CallSlot,
    dial: Dial,
    script: E,
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

/// Where the call is, for answering the far end's requests.
#[derive(Clone, Copy)]
enum Phase<'a> {
    /// INVITE sent, no 2xx yet.
    Early,
    Confirmed(&'a Dialog),
    /// Over; absorbing retransmissions.
    Ended,
}

struct Call<E> {
    ua: Arc<Ua>,
    script: E,
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

impl<E: CallEvents> Call<E> {
    fn new(ua: Arc<Ua>, call_id: String, dial: &Dial, script: E) -> Self {
        let config = ua.config().clone();
        let local = ua.local_addr();
        let transport = config.transport.via_token();
        let local_host = host_literal(local.ip());
        let request_uri = format!(
            "sip:{}@{}",
            escape_user(&dial.call_to),
            hostport(dial.proxy)
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
            proxy: dial.proxy,
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
                            let cancelling = abandoned || cancel.is_some();
                            return self.answered(sig, &inbound.msg, cancelling).await;
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
    /// A 2xx to the INVITE: ACK it, then keep the dialog, or end it at once when we
    /// were cancelling (answered while we gave up) or the script refuses the answer.
    async fn answered(
        &mut self,
        sig: &mut Signals,
        resp: &Message,
        cancelling: bool,
    ) -> Option<Dialog> {
        let mut dialog = Dialog::from_2xx(resp, &self.request_uri, &self.to, self.proxy);
        self.ack_2xx(&dialog);
        if cancelling || !self.script.answer() {
            self.bye(sig, &mut dialog).await;
            return None;
        }
        Some(dialog)
    }

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
