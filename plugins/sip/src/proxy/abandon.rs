//! Inbound calls, last part: the gateway gives up on a call it forwarded, before
//! LiveKit sent a final response ([`Proxy::abandon_forwarded`], what
//! [`Proxy::reject_inbound`] does once the call is no longer held).
//!
//! LiveKit SIP without a trunk or dispatch rule for the call stays silent after its
//! 100/180 (livekit/sip OSS), and the gateway's connect allowance can run out while
//! LiveKit still rings: the carrier must not wait for timer C (3 minutes). So:
//! - the carrier gets the gateway's final (e.g. 480) at once, from the edge's server
//!   transaction with our 180's To tag (retransmitted over UDP until its ACK, which is
//!   absorbed); it is counted in `c2c_sip_responses_total` and
//!   `c2c_sip_inbound_total{outcome="abandoned"}`, the call's dialog is forgotten (it no
//!   longer counts against the tenant's cap) and no observation follows;
//! - LiveKit gets a CANCEL on the forwarded branch: at once when it sent a provisional
//!   (its 100 counts), else on the first one (RFC 3261 §9.1, [`CancelState::Pending`]).
//!   The client transaction keeps timers A, B and C; LiveKit's 487 is ACKed and not
//!   relayed (the carrier has its final);
//! - a LiveKit 2xx that crosses the CANCEL is not relayed either: the edge ACKs it
//!   (the same ACK for every retransmission) and sends LiveKit a BYE from a local
//!   transaction, so no call stays up in the room ([`Proxy::answered_too_late`]). This
//!   holds for every forwarded inbound call whose carrier already has a final non-2xx
//!   from the edge (also after timer B or C).

use tokio::time::Instant;

use super::downstream::build_request;
use super::held::reason_phrase;
use super::{new_tag, Action, Proxy};
use crate::flow::Transport;
use crate::hdr::name_addr;
use crate::inbound::InboundError;
use crate::message::SipMsg;
use crate::metrics::InboundOutcome;
use crate::response::reply;
use crate::txn::{CancelState, ClientState, DownBase, NewTxn, Txn, TxnId, TxnTimer};

/// A forwarded inbound INVITE whose carrier already got a final non-2xx from the edge:
/// a 2xx from LiveKit must be ended here, not relayed.
pub(super) fn carrier_has_final(t: &Txn) -> bool {
    t.invite && t.call.as_ref().is_some_and(|c| c.inbound) && t.final_sent.is_some_and(|c| c >= 300)
}

impl Proxy {
    /// Rejects forwarded inbound call `sip_call_id` that has no final response yet (see
    /// the module documentation): `code` to the carrier now, CANCEL toward LiveKit.
    /// `NotHeld` when there is no such call (unknown, answered, or already finished).
    pub(super) fn abandon_forwarded(
        &mut self,
        now: Instant,
        sip_call_id: &str,
        code: u16,
    ) -> Result<Vec<Action>, InboundError> {
        let id = self
            .dialogs
            .get(sip_call_id)
            .filter(|d| d.inbound && !d.answered && !d.ended)
            .and_then(|d| d.forwarded)
            .ok_or(InboundError::NotHeld)?;
        let t1 = self.cfg.timers.t1;
        let Some(t) = self.txns.get_mut(id) else {
            return Err(InboundError::NotHeld);
        };
        let early = matches!(t.state, ClientState::Calling | ClientState::Proceeding);
        if !t.invite || t.final_sent.is_some() || !early {
            return Err(InboundError::NotHeld);
        }
        // The gateway decided it: no observation follows (nor for LiveKit's answer).
        let call_id = t.call.as_mut().and_then(|c| c.call_id.take());
        let data = reply(&t.reply, code, reason_phrase(code), Some(&t.local_tag), &[]);
        let cancel_now = t.cancel == CancelState::None && t.state == ClientState::Proceeding;
        if t.cancel == CancelState::None && !cancel_now {
            t.cancel = CancelState::Pending;
        }
        self.txns.disarm(id, TxnTimer::Ring);
        self.final_upstream(now, id, code, data, t1);
        if cancel_now {
            self.send_cancel(now, id);
        }
        self.metrics.inbound(InboundOutcome::Abandoned);
        tracing::info!(
            call_id = call_id.as_deref().unwrap_or(""),
            code,
            cancel = if cancel_now { "sent" } else { "on LiveKit's first provisional" },
            "SIP inbound call abandoned before LiveKit answered: final to the carrier, CANCEL to LiveKit"
        );
        Ok(self.finish())
    }

    /// A 2xx from LiveKit for a forwarded call whose carrier already has its final (see
    /// [`carrier_has_final`]): ACKed each time it arrives, never relayed; the first one
    /// is ended with our BYE. The request target is the 2xx's Contact and the next hop
    /// the LiveKit node the INVITE went to (the edge is LiveKit's adjacent hop: no Route).
    pub(super) fn answered_too_late(&mut self, now: Instant, id: TxnId, msg: &SipMsg) {
        let (t1, long) = (self.cfg.timers.t1, self.cfg.timers.long());
        let Some(t) = self.txns.get_mut(id) else {
            return;
        };
        let first = t.state != ClientState::Accepted;
        t.state = ClientState::Accepted;
        let target = t.target;
        let to = msg.header("To").unwrap_or_default().to_string();
        let ruri = msg
            .header("Contact")
            .and_then(|c| name_addr(c).ok())
            .map(|n| n.uri.to_string())
            .unwrap_or_else(|| t.base.ruri.clone());
        let ack_branch = format!("{}-ack", t.branch);
        let reply_base = t.reply.clone();
        let mut base = DownBase {
            ruri,
            via: String::new(),
            routes: Vec::new(),
            from: t.base.from.clone(),
            to: to.clone(),
            call_id: t.base.call_id.clone(),
            cseq: t.base.cseq,
        };
        base.via = self.via_with(target.transport, &ack_branch);
        self.send(target, build_request("ACK", &base, &to));
        if !first {
            return;
        }
        for k in [
            TxnTimer::Retransmit,
            TxnTimer::Timeout,
            TxnTimer::C,
            TxnTimer::CancelRetransmit,
        ] {
            self.txns.disarm(id, k);
        }
        self.txns.arm(id, TxnTimer::Expire, now + long);
        tracing::warn!(
            "SIP inbound: LiveKit answered after the carrier got its final; ACK and BYE to LiveKit"
        );

        let (via, branch) = self.new_via(target.transport);
        base.via = via;
        base.cseq = base.cseq.saturating_add(1);
        let request = build_request("BYE", &base, &to);
        self.send(target, request.clone());
        let mut bye = Txn::new(NewTxn {
            method: "BYE",
            // Nobody sends a request matching it: it has no upstream side.
            server_key: format!("local-{branch}"),
            upstream: target,
            reply: reply_base,
            local_tag: new_tag(),
            branch,
            target,
            request,
            base,
            t1,
        });
        bye.local = true;
        // A full table: the BYE went once, unretransmitted.
        if let Some(bid) = self.txns.insert(bye) {
            if target.transport == Transport::Udp {
                self.txns.arm(bid, TxnTimer::Retransmit, now + t1);
            }
            self.txns.arm(bid, TxnTimer::Timeout, now + long);
            self.txns.arm(bid, TxnTimer::Expire, now + long * 2);
        }
    }

    /// A response to one of our own requests (the BYE above): absorbed, ending its
    /// retransmissions once final.
    pub(super) fn local_response(&mut self, now: Instant, id: TxnId, code: u16) {
        let (t2, t4) = (self.cfg.timers.t2, self.cfg.timers.t2 + self.cfg.timers.t1);
        let Some(t) = self.txns.get_mut(id) else {
            return;
        };
        if t.state == ClientState::Completed {
            return;
        }
        if code < 200 {
            t.state = ClientState::Proceeding;
            t.interval = t2;
            return;
        }
        t.state = ClientState::Completed;
        t.final_sent = Some(code);
        self.txns.disarm(id, TxnTimer::Retransmit);
        self.txns.disarm(id, TxnTimer::Timeout);
        self.txns.arm(id, TxnTimer::Expire, now + t4);
        tracing::debug!(code, "SIP: LiveKit answered our BYE");
    }
}
