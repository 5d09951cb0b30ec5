//! Responses from the next hop: matched by our branch, relayed upstream by editing
//! bytes (pop our Via, undo the user rewrite, drop `X-C2C-*`), with our own ACK for
//! non-2xx finals, 2xx retransmissions forwarded, counting and observation of call
//! INVITEs. For a forwarded inbound call LiveKit's provisionals are absorbed: the
//! carrier already rings on our own 180; once the carrier has a final from the edge
//! (the gateway gave up, `abandon.rs`), LiveKit's finals are not relayed either.

use bytes::Bytes;
use tokio::time::Instant;

use super::abandon::carrier_has_final;
use super::{Proxy, BRANCH_PREFIX};
use crate::flow::Transport;
use crate::message::{edit, Edits, SipMsg};
use crate::observer::Observation;
use crate::tenant::swap_user;
use crate::txn::{CancelState, ClientState, DownBase, TxnId, TxnTimer};

impl Proxy {
    pub(super) fn on_response(&mut self, now: Instant, msg: &SipMsg, code: u16) {
        let id = msg
            .via
            .branch()
            .filter(|b| b.starts_with(BRANCH_PREFIX))
            .and_then(|b| self.txns.by_branch(b));
        let Some(id) = id else {
            self.metrics.unmatched.inc();
            return;
        };
        // Our branch carries 96 random bits: knowing it is what authenticates a
        // response (carriers may answer from another address than they were sent to).
        let Some(t) = self.txns.get(id) else { return };
        if msg.cseq_method == "CANCEL" {
            if let Some(t) = self.txns.get_mut(id) {
                if matches!(t.cancel, CancelState::Sent { .. }) && code >= 200 {
                    t.cancel = CancelState::Done;
                }
            }
            self.txns.disarm(id, TxnTimer::CancelRetransmit);
            return;
        }
        if msg.cseq_method != t.method {
            self.metrics.unmatched.inc();
            return;
        }
        if t.local {
            return self.local_response(now, id, code);
        }
        match code {
            100..=199 => self.provisional(now, id, msg, code),
            200..=299 if t.invite => self.invite_success(now, id, msg, code),
            _ if t.invite => self.invite_failure(now, id, msg, code),
            _ => self.non_invite_final(now, id, msg, code),
        }
    }

    /// The response as it goes upstream: our Via popped, the user rewrite undone, no
    /// `X-C2C-*` (LiveKit's `attributes_to_headers` must not reach a carrier).
    fn relay_bytes(&mut self, id: TxnId, msg: &SipMsg, code: u16) -> Bytes {
        let mut edits = Edits {
            pop_via: true,
            replace: Vec::new(),
            drop_c2c: true,
            body: self.anchor_response(id, msg, code),
        };
        if let Some((hdr, from_user, to_user)) = self.txns.get(id).and_then(|t| t.swap.as_ref()) {
            if let Some(new) = msg
                .header(hdr)
                .and_then(|v| swap_user(v, from_user, to_user))
            {
                edits.replace.push((hdr, new));
            }
        }
        edit(msg, &edits)
    }

    fn provisional(&mut self, now: Instant, id: TxnId, msg: &SipMsg, code: u16) {
        let timer_c = self.cfg.timers.timer_c;
        let t2 = self.cfg.timers.t2;
        let Some(t) = self.txns.get_mut(id) else {
            return;
        };
        if matches!(t.state, ClientState::Completed | ClientState::Accepted) {
            return;
        }
        let first = t.state == ClientState::Calling;
        t.state = ClientState::Proceeding;
        let invite = t.invite;
        let cancel_pending = t.cancel == CancelState::Pending;
        let inbound = t.call.as_ref().is_some_and(|c| c.inbound);
        if !invite {
            t.interval = t2;
        }
        if invite {
            if first {
                self.txns.disarm(id, TxnTimer::Retransmit);
            }
            self.txns.arm(id, TxnTimer::C, now + timer_c);
        }
        if cancel_pending {
            self.send_cancel(now, id);
        }
        if code == 100 || inbound {
            return;
        }
        let data = self.relay_bytes(id, msg, code);
        let Some(t) = self.txns.get_mut(id) else {
            return;
        };
        t.last_response = Some(data.clone());
        let up = t.upstream;
        let mut seen = None;
        if let Some(call) = t.call.as_mut() {
            let first_18x = (180..=189).contains(&code) && !call.saw_18x;
            if (180..=189).contains(&code) {
                call.saw_18x = true;
            }
            seen = Some((
                call.trunk.clone(),
                call.call_id.clone(),
                first_18x,
                now - call.started,
            ));
        }
        self.send(up, data);
        if let Some((trunk, call_id, first_18x, elapsed)) = seen {
            self.metrics.response(&trunk, code);
            if first_18x {
                self.metrics
                    .post_dial_delay
                    .with_label_values(&[&trunk])
                    .observe(elapsed.as_secs_f64());
            }
            if let (Some(call_id), true) = (call_id, (180..=189).contains(&code)) {
                self.observe(Observation::Response { call_id, code });
            }
        }
    }

    fn invite_success(&mut self, now: Instant, id: TxnId, msg: &SipMsg, code: u16) {
        if self.txns.get(id).is_some_and(carrier_has_final) {
            return self.answered_too_late(now, id, msg);
        }
        let long = self.cfg.timers.long();
        let data = self.relay_bytes(id, msg, code);
        let Some(t) = self.txns.get_mut(id) else {
            return;
        };
        let first = t.state != ClientState::Accepted;
        let up = t.upstream;
        t.state = ClientState::Accepted;
        if first {
            t.final_sent = Some(code);
            t.last_response = Some(data.clone());
        }
        let call = t.call.clone();
        let dialog = t.dialog.clone();
        let anchored = t.media_from.is_some();
        self.send(up, data);
        if !first {
            return;
        }
        if let (true, Some(_), Some(key)) = (anchored, &call, &dialog) {
            self.anchor_answered(key);
        }
        for k in [TxnTimer::Retransmit, TxnTimer::Timeout, TxnTimer::C] {
            self.txns.disarm(id, k);
        }
        self.txns.arm(id, TxnTimer::Expire, now + long);
        if let Some(call) = call {
            self.metrics.response(&call.trunk, code);
            // Inbound, INVITE -> 200 includes finding an agent: not carrier timing.
            if !call.inbound {
                self.metrics
                    .setup
                    .with_label_values(&[&call.trunk])
                    .observe((now - call.started).as_secs_f64());
            }
            if let Some(call_id) = call.call_id {
                self.observe(Observation::Response {
                    call_id: call_id.clone(),
                    code,
                });
                self.observe(Observation::Answer { call_id });
            }
            let max = self.cfg.max_dialog_duration;
            if let Some(d) = dialog.and_then(|k| self.dialogs.get_mut(&k)) {
                d.answered = true;
                d.expires = now + max;
            }
        }
    }

    fn invite_failure(&mut self, now: Instant, id: TxnId, msg: &SipMsg, code: u16) {
        let (long, t1) = (self.cfg.timers.long(), self.cfg.timers.t1);
        let Some(t) = self.txns.get(id) else { return };
        let ack = build_ack(&t.base, msg.header("To").unwrap_or_default());
        let target = t.target;
        self.send(target, ack);
        let Some(t) = self.txns.get_mut(id) else {
            return;
        };
        if matches!(t.state, ClientState::Completed | ClientState::Accepted) {
            return; // retransmission: ACKed again above
        }
        t.state = ClientState::Completed;
        let relay = t.final_sent.is_none();
        for k in [
            TxnTimer::Retransmit,
            TxnTimer::Timeout,
            TxnTimer::C,
            TxnTimer::CancelRetransmit,
        ] {
            self.txns.disarm(id, k);
        }
        self.txns.arm(id, TxnTimer::Expire, now + long);
        if relay {
            let data = self.relay_bytes(id, msg, code);
            self.final_upstream(now, id, code, data, t1);
        }
    }

    /// Sends a non-2xx final for an INVITE upstream (once), with timer G over UDP,
    /// counting and observing it, and forgets the call's dialog.
    pub(super) fn final_upstream(
        &mut self,
        now: Instant,
        id: TxnId,
        code: u16,
        data: Bytes,
        t1: std::time::Duration,
    ) {
        let Some(t) = self.txns.get_mut(id) else {
            return;
        };
        t.final_sent = Some(code);
        t.last_response = Some(data.clone());
        t.interval = t1;
        let up = t.upstream;
        let call = t.call.clone();
        let dialog = t.dialog.clone();
        self.send(up, data);
        if up.transport == Transport::Udp {
            self.txns.arm(id, TxnTimer::FinalRetransmit, now + t1);
        }
        if let Some(call) = call {
            self.metrics.response(&call.trunk, code);
            if let Some(call_id) = call.call_id {
                self.observe(Observation::Response {
                    call_id: call_id.clone(),
                    code,
                });
                self.observe(Observation::End {
                    call_id,
                    code: Some(code),
                });
            }
            if let Some(k) = dialog {
                self.dialogs.remove(&k);
            }
        }
    }

    fn non_invite_final(&mut self, now: Instant, id: TxnId, msg: &SipMsg, code: u16) {
        let data = self.relay_bytes(id, msg, code);
        let Some(t) = self.txns.get_mut(id) else {
            return;
        };
        if t.state == ClientState::Completed {
            return;
        }
        t.state = ClientState::Completed;
        t.final_sent = Some(code);
        t.last_response = Some(data.clone());
        let up = t.upstream;
        let bye_dialog = (t.method == "BYE").then(|| t.dialog.clone()).flatten();
        self.send(up, data);
        self.txns.disarm(id, TxnTimer::Retransmit);
        self.txns.disarm(id, TxnTimer::Timeout);
        self.txns.arm(
            id,
            TxnTimer::Expire,
            now + self.cfg.timers.t2 + self.cfg.timers.t1,
        );
        if let Some(k) = bye_dialog {
            self.dialogs.remove(&k);
        }
    }

    /// Sends our CANCEL for the INVITE of `id` (same branch, RFC 3261 §9.1).
    pub(super) fn send_cancel(&mut self, now: Instant, id: TxnId) {
        let (t1, long) = (self.cfg.timers.t1, self.cfg.timers.long());
        let Some(t) = self.txns.get_mut(id) else {
            return;
        };
        let req = build_cancel(&t.base);
        t.cancel = CancelState::Sent {
            request: req.clone(),
            interval: t1,
        };
        let target = t.target;
        self.send(target, req);
        if target.transport == Transport::Udp {
            self.txns.arm(id, TxnTimer::CancelRetransmit, now + t1);
        }
        self.txns.arm(id, TxnTimer::Timeout, now + long);
    }
}

/// One of our own requests without body: `method` to `base.ruri`, with `base`'s Via,
/// Route set, From, Call-ID and CSeq number, and To `to`.
pub fn build_request(method: &str, base: &DownBase, to: &str) -> Bytes {
    let mut b = format!("{method} {} SIP/2.0\r\n", base.ruri);
    b.push_str(&format!("Via: {}\r\n", base.via));
    for r in &base.routes {
        b.push_str(&format!("Route: {r}\r\n"));
    }
    b.push_str("Max-Forwards: 70\r\n");
    b.push_str(&format!("From: {}\r\nTo: {to}\r\n", base.from));
    b.push_str(&format!(
        "Call-ID: {}\r\nCSeq: {} {method}\r\n",
        base.call_id, base.cseq
    ));
    b.push_str("Content-Length: 0\r\n\r\n");
    Bytes::from(b)
}

/// Our ACK for a non-2xx final (RFC 3261 §17.1.1.3): same branch, the response's To.
pub fn build_ack(base: &DownBase, to: &str) -> Bytes {
    build_request("ACK", base, to)
}

/// Our CANCEL: same Request-URI, branch, From, To, Call-ID and CSeq number.
pub fn build_cancel(base: &DownBase) -> Bytes {
    build_request("CANCEL", base, &base.to)
}
