//! One inbound call's task, in LiveKit SIP's order (`processInvite`,
//! `handleInvite`, `waitSubscribe`, `Accept`, `close`):
//! `100` -> trunk -> `180` (repeated) -> rule -> SIP participant joins -> wait for
//! audio in the room -> `200` -> until a BYE either way; ring timeout or the
//! participant removed before the answer -> `486 Rejected`; CANCEL -> `200` + `487`.
//! Afterwards, on UDP, the call lingers 64*T1 to absorb retransmissions and re-send
//! its final response until ACKed (RFC 3261 timers G/H, §13.3.1.4).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::super::dialog::{after, Retransmit};
use super::super::message::Message;
use super::super::{CallSlot, Inbound, Registration, Ua};
use super::events::{earliest, Event, Events};
use super::log::{InboundCallRecord, InboundState};
use super::seat::{join_attributes, Seat};
use super::uas::{party, Uas};
use super::{Service, Verdict, DEFAULT_RINGING_TIMEOUT};
use crate::ids::{guid, SIP_CALL_PREFIX};
use crate::sip_rules::matching::{CallFacts, Dispatch};

/// Plays one inbound call to its end.
pub(super) async fn run(svc: Arc<Service>, ua: Arc<Ua>, slot: CallSlot, first: Inbound) {
    let CallSlot {
        rx, registration, ..
    } = slot;
    let mut ev = Events {
        rx,
        shutdown: ua.shutdown_signal(),
        alive: None,
        changes: None,
    };
    let uas = Uas::new(&ua, first.msg, first.peer, guid(SIP_CALL_PREFIX));
    let mut call = Call {
        svc,
        ua,
        uas,
        last: Vec::new(),
        final_sent: None,
        final_retrans: None,
        seat: None,
        dispatch: None,
    };
    if call.setup(&mut ev).await {
        call.active(&mut ev).await;
    }
    call.linger(&mut ev, &registration).await;
}

struct Call {
    svc: Arc<Service>,
    ua: Arc<Ua>,
    uas: Uas,
    /// The most recent response to the INVITE, re-sent for a retransmitted INVITE.
    last: Vec<u8>,
    /// The final response to the INVITE, once sent.
    final_sent: Option<(u16, String)>,
    /// Re-sending the final response until the ACK (UDP): schedule and give-up time.
    final_retrans: Option<(Retransmit, Instant)>,
    seat: Option<Seat>,
    dispatch: Option<Dispatch>,
}

/// What a request during ringing does to the call.
enum Early {
    Continue,
    Cancelled,
    /// The caller's BYE on the early dialog (RFC 3261 §15).
    Bye,
}

impl Call {
    fn send(&self, bytes: Vec<u8>) {
        self.ua.send(self.uas.peer, bytes);
    }

    fn log(&self, f: impl FnOnce(&mut InboundCallRecord)) {
        self.svc.log.update(&self.uas.tag, f);
    }

    fn provisional(&mut self, code: u16, reason: &str) {
        self.last = self.uas.invite_response(code, reason, &[]);
        self.send(self.last.clone());
    }

    /// Sends the final response (after the join it carries `attributes_to_headers`,
    /// LiveKit's `fillHeaders`) and starts re-sending it until the ACK.
    fn finish(&mut self, code: u16, reason: &str) {
        let headers = match (&mut self.seat, &self.dispatch) {
            (Some(seat), Some(d)) => seat.headers(d, code < 300),
            _ => Vec::new(),
        };
        self.last = self.uas.invite_response(code, reason, &headers);
        self.send(self.last.clone());
        self.final_sent = Some((code, reason.to_owned()));
        if !self.uas.reliable {
            let retrans = Retransmit::start(false, self.uas.t1, self.uas.t2());
            self.final_retrans = Some((retrans, after(self.uas.timeout_64t1())));
        }
        if code >= 300 {
            let call_id = self.uas.invite.call_id().unwrap_or_default();
            self.svc
                .remember_rejection(call_id, &self.uas.from_tag, code, reason);
        }
        let state = if code < 300 {
            InboundState::Answered
        } else {
            InboundState::Rejected
        };
        self.log(|r| {
            r.final_code = Some(code);
            r.state = state;
        });
    }

    fn verdict(&mut self, v: Verdict) {
        match v {
            Verdict::Reject(code, reason) => self.finish(code, reason),
            Verdict::Drop => self.log(|r| r.state = InboundState::Dropped),
        }
    }

    /// From the INVITE to the answer. False when the call ended before it.
    async fn setup(&mut self, ev: &mut Events) -> bool {
        self.provisional(100, "Processing");
        let invite = &self.uas.invite;
        let (from_user, from_host) = party(invite.header("from").unwrap_or_default());
        let (to_user, _) = party(invite.header("to").unwrap_or_default());
        let facts = CallFacts {
            from_user,
            from_host,
            to_user,
            source_ip: self.uas.peer.ip(),
        };
        self.svc.log.push(InboundCallRecord {
            call_id: self.uas.tag.clone(),
            sip_call_id: invite.call_id().unwrap_or_default().to_owned(),
            from_user: facts.from_user.clone(),
            to_user: facts.to_user.clone(),
            source: self.uas.peer,
            trunk_id: None,
            rule_id: None,
            room: None,
            participant_identity: None,
            final_code: None,
            state: InboundState::Trying,
            headers: invite.headers().to_vec(),
        });
        let trunk = match self.svc.trunk(&facts) {
            Ok(t) => t,
            Err(v) => {
                self.verdict(v);
                return false;
            }
        };
        // LiveKit rings before it evaluates the dispatch rules (`StartRinging`).
        self.provisional(180, "Ringing");
        self.log(|r| r.state = InboundState::Ringing);
        let d = match self.svc.dispatch(trunk.as_ref(), &facts, &self.uas.tag) {
            Ok(d) => d,
            Err(v) => {
                self.verdict(v);
                return false;
            }
        };
        self.log(|r| {
            r.trunk_id = Some(d.trunk_id.clone());
            r.rule_id = Some(d.rule_id.clone());
            r.room = Some(d.room.clone());
            r.participant_identity = Some(d.identity.clone());
        });
        if !has_audio_offer(&self.uas.invite) {
            // No offer (delayed offer is unsupported, livekit/sip#402) or no audio.
            self.finish(400, "Bad Request");
            return false;
        }
        if d.pin_required {
            self.finish(501, "PIN prompts are not modelled by livekit-sim");
            return false;
        }
        let (alive_tx, alive_rx) = tokio::sync::oneshot::channel();
        let attributes = join_attributes(&d, &self.uas.invite);
        // Watch before joining, so no change between the join and the wait is missed.
        ev.changes = Some(self.svc.rooms.lock().watch_changes());
        match Seat::join(self.svc.rooms.clone(), &d, attributes, alive_tx) {
            Ok(seat) => self.seat = Some(seat),
            Err(e) => {
                tracing::debug!(error = %e.msg, "livekit-sim sip: inbound join failed");
                self.finish(486, "Rejected");
                return false;
            }
        }
        ev.alive = Some(alive_rx);
        let ringing = d.ringing_timeout.unwrap_or(DEFAULT_RINGING_TIMEOUT);
        self.dispatch = Some(d);
        let answered = self.wait_for_room(ev, ringing).await;
        ev.changes = None;
        answered
    }

    /// Rings until another participant's audio is in the room (then answers), or
    /// the call ends.
    async fn wait_for_room(&mut self, ev: &mut Events, ringing: Duration) -> bool {
        let ring_deadline = after(ringing);
        let mut next_ring = after(self.svc.ring_interval);
        loop {
            if self.seat.as_ref().is_some_and(Seat::ready) {
                self.answer();
                return true;
            }
            match ev
                .next(earliest(&[Some(next_ring), Some(ring_deadline)]))
                .await
            {
                Event::Changed => {}
                Event::Timer => {
                    let now = Instant::now();
                    if now >= ring_deadline {
                        // `waitSubscribe` timed out: the participant leaves, status kept.
                        self.leave(None);
                        self.finish(486, "Rejected");
                        return false;
                    }
                    if now >= next_ring {
                        self.send(self.last.clone());
                        next_ring = after(self.svc.ring_interval);
                    }
                }
                Event::AliveGone => {
                    // Removed, room deleted or evicted: already gone with its reason.
                    self.finish(486, "Rejected");
                    self.seat = None;
                    return false;
                }
                Event::Shutdown | Event::Closed => return false,
                Event::Msg(m) => match self.early_request(&m) {
                    Early::Continue => {}
                    Early::Cancelled => {
                        self.leave(Some("hangup"));
                        self.finish(487, "Request Terminated");
                        return false;
                    }
                    Early::Bye => {
                        // LiveKit answers the BYE and drops the INVITE without a final.
                        self.leave(Some("hangup"));
                        self.log(|r| r.state = InboundState::Ended);
                        return false;
                    }
                },
            }
        }
    }

    fn leave(&mut self, status: Option<&str>) {
        if let Some(seat) = &mut self.seat {
            seat.leave(status);
        }
    }

    fn answer(&mut self) {
        self.finish(200, "OK");
        if let Some(seat) = &mut self.seat {
            seat.set_status("active");
        }
    }

    fn early_request(&mut self, m: &Inbound) -> Early {
        let req = &m.msg;
        let Some(method) = req.method() else {
            return Early::Continue; // no request of ours is pending
        };
        let reply = |code: u16, reason: &str| self.uas.reply(req, code, reason);
        let bytes = match method {
            "ACK" => return Early::Continue,
            "INVITE" if self.uas.is_retransmission(req) => self.last.clone(),
            "INVITE" => reply(491, "Request Pending"),
            "CANCEL" if self.uas.cancels_invite(req) => {
                self.ua.send(m.peer, reply(200, "OK"));
                return Early::Cancelled;
            }
            "BYE" if self.uas.in_dialog(req) => {
                self.ua.send(m.peer, reply(200, "OK"));
                return Early::Bye;
            }
            "CANCEL" | "BYE" => reply(481, "Call/Transaction Does Not Exist"),
            "OPTIONS" | "INFO" | "UPDATE" | "NOTIFY" | "MESSAGE" | "PRACK" => reply(200, "OK"),
            _ => reply(405, "Method Not Allowed"),
        };
        self.ua.send(m.peer, bytes);
        Early::Continue
    }

    /// The answered call, until a BYE either way, the duration cap, the participant
    /// leaving, or shutdown.
    async fn active(&mut self, ev: &mut Events) {
        let cap = self
            .dispatch
            .as_ref()
            .and_then(|d| d.max_call_duration)
            .unwrap_or(self.svc.max_call_duration);
        let hangup_at = after(cap);
        loop {
            let retrans = self.final_retrans.as_ref();
            let deadline = earliest(&[
                retrans.and_then(|(r, _)| r.next),
                retrans.map(|(_, give_up)| *give_up),
                Some(hangup_at),
            ]);
            match ev.next(deadline).await {
                Event::Changed => {}
                Event::Closed => return,
                Event::Shutdown => {
                    // One BYE, unanswered: the simulator is going away.
                    let headers = self.bye_headers();
                    let mut dialog = self.uas.dialog();
                    let bye = self.uas.bye(&mut dialog, &headers);
                    self.ua.send(bye.dest, bye.bytes);
                    return;
                }
                Event::AliveGone => {
                    // Removed or room deleted: already gone with its reason; tell the caller.
                    self.hang_up(ev).await;
                    return;
                }
                Event::Timer => {
                    self.retransmit_final();
                    if Instant::now() >= hangup_at {
                        self.leave(Some("hangup"));
                        self.hang_up(ev).await;
                        return;
                    }
                }
                Event::Msg(m) => {
                    if self.confirmed_request(&m) {
                        self.leave(Some("hangup"));
                        self.log(|r| r.state = InboundState::Ended);
                        return;
                    }
                }
            }
        }
    }

    /// `attributes_to_headers` for a BYE (no trunk `headers`, as `fillHeaders`).
    fn bye_headers(&mut self) -> Vec<(String, String)> {
        match (&mut self.seat, &self.dispatch) {
            (Some(seat), Some(d)) => seat.headers(d, false),
            _ => Vec::new(),
        }
    }

    /// Re-sends the final response on timer G / the 2xx schedule until ACKed or 64*T1.
    fn retransmit_final(&mut self) {
        let now = Instant::now();
        let Some((retrans, give_up)) = &mut self.final_retrans else {
            return;
        };
        if now >= *give_up {
            self.final_retrans = None;
            return;
        }
        if retrans.due(now) {
            retrans.advance(now);
            self.send(self.last.clone());
        }
    }

    /// Answers a request in the confirmed call. True for the caller's BYE.
    fn confirmed_request(&mut self, m: &Inbound) -> bool {
        let req = &m.msg;
        let Some(method) = req.method() else {
            return false; // e.g. a late 200 to a BYE of ours that already gave up
        };
        let reply = |code: u16, reason: &str| self.uas.reply(req, code, reason);
        let (bytes, ends) = match method {
            "ACK" => {
                if self.uas.acks_invite(req) {
                    self.final_retrans = None;
                }
                return false;
            }
            "INVITE" if self.uas.is_retransmission(req) => (self.last.clone(), false),
            // A re-INVITE (session refresh): the same answer again.
            "INVITE" if self.uas.in_dialog(req) => (reply(200, "OK"), false),
            "BYE" if self.uas.in_dialog(req) => (reply(200, "OK"), true),
            // CANCEL after the 200 has no effect (RFC 3261 §9.2).
            "CANCEL" if self.uas.cancels_invite(req) => (reply(200, "OK"), false),
            "OPTIONS" | "INFO" | "UPDATE" | "NOTIFY" | "MESSAGE" => (reply(200, "OK"), false),
            "INVITE" | "BYE" | "CANCEL" => (reply(481, "Call/Transaction Does Not Exist"), false),
            _ => (reply(405, "Method Not Allowed"), false),
        };
        self.ua.send(m.peer, bytes);
        ends
    }

    /// Sends BYE through the caller's route set and waits (bounded) for its answer.
    async fn hang_up(&mut self, ev: &mut Events) {
        let headers = self.bye_headers();
        let mut dialog = self.uas.dialog();
        let mut pending = self.uas.bye(&mut dialog, &headers);
        self.ua.send(pending.dest, pending.bytes.clone());
        self.log(|r| r.state = InboundState::Ended);
        loop {
            let deadline = earliest(&[pending.retrans.next, Some(pending.give_up)]);
            match ev.next(deadline).await {
                Event::Shutdown | Event::Closed => return,
                Event::AliveGone | Event::Changed => {}
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
                Event::Msg(m) => match m.msg.status() {
                    Some((code, _)) if m.msg.top_branch() == Some(pending.branch.as_str()) => {
                        if code >= 200 {
                            return;
                        }
                        pending.retrans.slow();
                    }
                    Some(_) => {}
                    None => {
                        // A crossing BYE or a late ACK: answered; ours still completes.
                        self.confirmed_request(&m);
                    }
                },
            }
        }
    }

    /// After the end (UDP only): re-send the final until ACKed and absorb
    /// retransmissions for 64*T1.
    async fn linger(&mut self, ev: &mut Events, registration: &Registration) {
        if self.uas.reliable {
            return;
        }
        registration.set_lingering();
        let until = after(self.uas.timeout_64t1());
        loop {
            let retrans = self.final_retrans.as_ref().and_then(|(r, _)| r.next);
            match ev.next(earliest(&[retrans, Some(until)])).await {
                Event::Shutdown | Event::Closed => return,
                Event::AliveGone | Event::Changed => {}
                Event::Timer => {
                    self.retransmit_final();
                    if Instant::now() >= until {
                        return;
                    }
                }
                Event::Msg(m) => self.ended_request(&m),
            }
        }
    }

    fn ended_request(&mut self, m: &Inbound) {
        let req = &m.msg;
        let Some(method) = req.method() else {
            return;
        };
        let reply = |code: u16, reason: &str| self.uas.reply(req, code, reason);
        let bytes = match method {
            "ACK" => {
                if self.uas.acks_invite(req) {
                    self.final_retrans = None;
                }
                return;
            }
            "INVITE" if self.uas.is_retransmission(req) => self.last.clone(),
            // A retry of a rejected INVITE (same Call-ID and From tag, new branch)
            // gets the same rejection (LiveKit's `rejectedInvites`).
            "INVITE" => match &self.final_sent {
                Some((code, reason)) if *code >= 300 && !self.uas.in_dialog(req) => {
                    reply(*code, reason)
                }
                _ => reply(481, "Call/Transaction Does Not Exist"),
            },
            "BYE" if self.uas.in_dialog(req) => reply(200, "OK"),
            "CANCEL" if self.uas.cancels_invite(req) && self.final_sent.is_some() => {
                reply(200, "OK")
            }
            "OPTIONS" => reply(200, "OK"),
            _ => reply(481, "Call/Transaction Does Not Exist"),
        };
        self.ua.send(m.peer, bytes);
    }
}

/// Whether the INVITE carries an SDP offer with an audio stream.
fn has_audio_offer(invite: &Message) -> bool {
    String::from_utf8_lossy(&invite.body)
        .lines()
        .any(|l| l.trim_start().starts_with("m=audio "))
}
