//! Inbound calls, second half: what happens to a held call.
//!
//! A held call is a server transaction toward the carrier (answering retransmissions
//! with our 180) with no client side yet, plus the INVITE as received. It ends in one
//! of four ways, each counted in `c2c_sip_inbound_total`:
//! - the gateway forwards it ([`Proxy::forward_inbound`]): the kept INVITE goes to
//!   LiveKit SIP and from then on the transaction is an ordinary proxied INVITE (timers
//!   A/B/C, CANCEL, relayed finals), except that LiveKit's provisionals are absorbed;
//! - the gateway rejects it ([`Proxy::reject_inbound`]) with a final of its choice;
//! - the carrier cancels it (CANCEL, or BYE on the early dialog): 487,
//!   [`InboundGone::CallerCancelled`];
//! - it is held for `inbound_hold_max`: 480, [`InboundGone::HoldExpired`].
//!
//! A forwarded call the gateway rejects before LiveKit's final is `abandon.rs`'s.
//!
//! Until a final response went out, our 180 is sent again every minute
//! ([`RING_REFRESH`], RFC 3261 §13.3.1.1), also while LiveKit rings after the forward.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::invite::valid_call_id;
use super::{is_c2c_header, relay_hop, Action, Proxy};
use crate::did;
use crate::flow::Flow;
use crate::inbound::InboundError;
use crate::message::{OutRequest, SipMsg};
use crate::metrics::InboundOutcome;
use crate::observer::{InboundGone, Observation};
use crate::parse::{Method, SipUri};
use crate::response::reply;
use crate::txn::{ClientState, DownBase, TxnId, TxnTimer};

/// How often our 180 is repeated while the carrier waits for a final.
pub(super) const RING_REFRESH: Duration = Duration::from_secs(60);

/// One held call (by SIP Call-ID in [`Proxy`]'s held table). The table holds only calls
/// that also have a dialog entry, so it is bounded by `max_dialogs`.
pub(super) struct Held {
    /// Its INVITE server transaction.
    pub txn: TxnId,
    pub tenant: String,
    /// The To user as the carrier sent it.
    pub to_user: String,
    /// The INVITE as received (at most one message: 16 KiB).
    pub invite: SipMsg,
    /// Where it came from (its Via is stamped with this address when forwarded).
    pub from: Flow,
}

pub(super) type HeldTable = HashMap<String, Held>;

/// A forward the control API has checked and resolved: where LiveKit SIP is, and what
/// the INVITE must carry.
#[derive(Debug, Clone)]
pub struct Forward {
    /// The target as configured (`sip:host:port[;transport=tcp]`).
    pub uri: SipUri,
    /// Where it resolved to.
    pub target: Flow,
    pub room: String,
    pub call_id: String,
    pub tenant: String,
}

impl Proxy {
    /// Forwards held call `sip_call_id` to LiveKit SIP (see the module documentation):
    /// Request-URI `sip:<room>@<target>`, To user = room (host kept), the carrier's
    /// `X-C2C-*` and Route removed, `X-C2C-Call-Id`/`X-C2C-Tenant` added, Max-Forwards
    /// one lower, Record-Route, our Via with a new branch. The dialog now routes between the
    /// carrier and LiveKit, with the room swapped back to the DID toward the carrier.
    pub fn forward_inbound(
        &mut self,
        now: Instant,
        sip_call_id: &str,
        f: Forward,
    ) -> Result<Vec<Action>, InboundError> {
        let h = self.held.get(sip_call_id).ok_or(InboundError::NotHeld)?;
        if h.tenant != f.tenant {
            return Err(InboundError::BadTarget(format!(
                "the call belongs to tenant {:?}, not {:?}",
                h.tenant, f.tenant
            )));
        }
        if !valid_call_id(&f.call_id) || !valid_room(&f.room) {
            return Err(InboundError::BadTarget(
                "room and call id must be 1-128 letters, digits, '-', '_', '.' or ':'".into(),
            ));
        }
        let anchor = self.anchor_inbound(now, sip_call_id, &f.tenant)?;
        let Some(h) = self.held.remove(sip_call_id) else {
            return Err(InboundError::NotHeld);
        };
        let msg = &h.invite;
        let ruri = format!("sip:{}@{}{}", f.room, f.uri.host_port(), f.uri.params);
        let mut out = OutRequest::from_msg(msg, format!("INVITE {ruri} SIP/2.0"));
        out.retain(|n, _| !is_c2c_header(n) && !n.eq_ignore_ascii_case("Route"));
        let to = msg.header("To").unwrap_or_default();
        let new_to = did::set_user(to, &f.room)
            .unwrap_or_else(|| format!("<sip:{}@{}>", f.room, f.uri.host_port()));
        out.set("To", new_to.clone());
        out.set("X-C2C-Call-Id", f.call_id.clone());
        out.set("X-C2C-Tenant", f.tenant.clone());
        relay_hop(&mut out, msg, h.from);
        out.push_front("Record-Route", self.record_route(h.from.transport));
        if h.from.transport != f.target.transport {
            out.push_front("Record-Route", self.record_route(f.target.transport));
        }
        let (via, branch) = self.new_via(f.target.transport);
        out.push_front("Via", via.clone());
        if let Some(o) = &anchor {
            out.body = o.body.clone();
        }
        let request = out.to_bytes();

        let (t1, long, timer_c) = (
            self.cfg.timers.t1,
            self.cfg.timers.long(),
            self.cfg.timers.timer_c,
        );
        self.txns.rekey_branch(h.txn, branch);
        let Some(t) = self.txns.get_mut(h.txn) else {
            if let Some(o) = anchor {
                self.unanchor(o);
            }
            return Err(InboundError::NotHeld);
        };
        t.target = f.target;
        t.request = request.clone();
        t.state = ClientState::Calling;
        t.interval = t1;
        t.base = DownBase {
            ruri,
            via,
            routes: Vec::new(),
            from: msg.header("From").unwrap_or_default().to_string(),
            to: new_to,
            call_id: msg.call_id.clone(),
            cseq: msg.cseq,
        };
        t.swap = Some(("To", f.room.clone(), h.to_user.clone()));
        if let Some(c) = t.call.as_mut() {
            c.call_id = Some(f.call_id.clone());
        }
        t.media_from = anchor.is_some().then_some(c2c_media::Side::Carrier);
        self.txns.disarm(h.txn, TxnTimer::Hold);
        if f.target.transport == crate::flow::Transport::Udp {
            self.txns.arm(h.txn, TxnTimer::Retransmit, now + t1);
        }
        self.txns.arm(h.txn, TxnTimer::Timeout, now + long);
        self.txns.arm(h.txn, TxnTimer::C, now + timer_c);
        self.txns
            .arm(h.txn, TxnTimer::Expire, now + timer_c + long * 2);
        let trunk = self.dialogs.get_mut(sip_call_id).map(|d| {
            d.c2c_call_id = Some(f.call_id.clone());
            d.callee = f.target;
            d.dialed_user = f.room.clone();
            d.expires = now + timer_c + long * 3;
            d.forwarded = Some(h.txn);
            d.media = anchor.is_some();
            d.trunk.clone()
        });
        // The relay runs only with a dialog whose end stops it.
        match (anchor, trunk) {
            (Some(o), Some(trunk)) => {
                self.start_anchor(sip_call_id, Some(f.call_id.clone()), &trunk, o)
            }
            (Some(o), None) => self.unanchor(o),
            (None, _) => {}
        }
        self.send(f.target, request);
        self.metrics.inbound(InboundOutcome::Forwarded);
        tracing::info!(tenant = %f.tenant, call_id = %f.call_id, target = %f.target.addr, "SIP inbound call forwarded to LiveKit");
        Ok(self.finish())
    }

    /// Rejects inbound call `sip_call_id` with `code` (300-699): the carrier gets it from
    /// the held transaction (retransmitted over UDP until its ACK, which is absorbed).
    /// A call already forwarded but without a final from LiveKit is abandoned
    /// ([`Proxy::abandon_forwarded`]: the same final to the carrier, CANCEL to LiveKit).
    pub fn reject_inbound(
        &mut self,
        now: Instant,
        sip_call_id: &str,
        code: u16,
    ) -> Result<Vec<Action>, InboundError> {
        if !(300..=699).contains(&code) {
            return Err(InboundError::BadTarget(format!(
                "{code} is not a final failure status (300-699)"
            )));
        }
        let Some(h) = self.held.remove(sip_call_id) else {
            return self.abandon_forwarded(now, sip_call_id, code);
        };
        self.end_held(
            now,
            h.txn,
            code,
            reason_phrase(code),
            InboundOutcome::Rejected,
        );
        Ok(self.finish())
    }

    /// A CANCEL (or BYE) from the carrier for held call `sip_call_id`, whose INVITE
    /// transaction is `id`: 487 to the INVITE and the gateway told. `false` when that
    /// call is not held (the CANCEL then goes the ordinary way).
    pub(super) fn cancel_held(&mut self, now: Instant, sip_call_id: &str, id: TxnId) -> bool {
        if self.held.get(sip_call_id).is_none_or(|h| h.txn != id) {
            return false;
        }
        let Some(h) = self.held.remove(sip_call_id) else {
            return false;
        };
        self.end_held(
            now,
            h.txn,
            487,
            "Request Terminated",
            InboundOutcome::Cancelled,
        );
        tracing::info!("SIP inbound call cancelled by the caller while held");
        self.observe(Observation::InboundGone {
            sip_call_id: sip_call_id.to_string(),
            why: InboundGone::CallerCancelled,
        });
        true
    }

    /// An in-dialog request on a held call's early dialog (our 180's tag). Only the
    /// carrier may send one: BYE ends the call like CANCEL (the caller may end an early
    /// dialog so, RFC 3261 §15), anything else gets 501; an ACK is dropped.
    pub(super) fn held_in_dialog(
        &mut self,
        now: Instant,
        from: Flow,
        msg: &SipMsg,
        method: &Method,
        upstream: Flow,
    ) {
        if *method == Method::Ack {
            return;
        }
        let caller = self
            .dialogs
            .get(&msg.call_id)
            .is_some_and(|d| msg.from_tag.as_deref().unwrap_or("") == d.caller_tag);
        if !caller || from.addr.ip() != upstream.addr.ip() {
            return self.reply(from, msg, 403, "Forbidden", &[]);
        }
        if *method == Method::Bye {
            self.reply(from, msg, 200, "OK", &[]);
            if let Some(id) = self.held.get(&msg.call_id).map(|h| h.txn) {
                self.cancel_held(now, &msg.call_id, id);
            }
            return;
        }
        self.reply(from, msg, 501, "Not Implemented", &[]);
    }

    /// Timer: our 180 once more, while no final went out.
    pub(super) fn ring_again(&mut self, now: Instant, id: TxnId) {
        let Some(t) = self.txns.get(id) else { return };
        if t.final_sent.is_some()
            || matches!(t.state, ClientState::Completed | ClientState::Accepted)
        {
            return;
        }
        let (to, data) = (t.upstream, t.last_response.clone());
        if let Some(data) = data {
            self.send(to, data);
        }
        self.txns.arm(id, TxnTimer::Ring, now + RING_REFRESH);
    }

    /// Timer: the hold of a call nobody forwarded or rejected is over.
    pub(super) fn hold_expired(&mut self, now: Instant, id: TxnId) {
        let Some(call_id) = self.txns.get(id).and_then(|t| t.dialog.clone()) else {
            return;
        };
        if self.held.get(&call_id).is_none_or(|h| h.txn != id) {
            return;
        }
        self.held.remove(&call_id);
        self.end_held(
            now,
            id,
            480,
            "Temporarily Unavailable",
            InboundOutcome::Expired,
        );
        tracing::info!(hold_max = ?self.cfg.inbound_hold_max, "SIP inbound call held too long: 480");
        self.observe(Observation::InboundGone {
            sip_call_id: call_id,
            why: InboundGone::HoldExpired,
        });
    }

    /// Sends a held call's final `code` (already out of the held table), counts it and
    /// forgets its dialog; the transaction lingers to absorb the ACK.
    pub(super) fn end_held(
        &mut self,
        now: Instant,
        id: TxnId,
        code: u16,
        reason: &str,
        outcome: InboundOutcome,
    ) {
        let (t1, long) = (self.cfg.timers.t1, self.cfg.timers.long());
        let Some(t) = self.txns.get_mut(id) else {
            return;
        };
        t.state = ClientState::Completed;
        let data = reply(&t.reply, code, reason, Some(&t.local_tag), &[]);
        self.txns.disarm(id, TxnTimer::Ring);
        self.txns.disarm(id, TxnTimer::Hold);
        self.txns.arm(id, TxnTimer::Expire, now + long);
        self.final_upstream(now, id, code, data, t1);
        self.metrics.inbound(outcome);
    }
}

/// The reason phrase of a final the gateway chose.
pub(super) fn reason_phrase(code: u16) -> &'static str {
    match code {
        404 => "Not Found",
        480 => "Temporarily Unavailable",
        486 => "Busy Here",
        487 => "Request Terminated",
        503 => "Service Unavailable",
        603 => "Decline",
        300..=399 => "Redirection",
        400..=499 => "Request Failed",
        500..=599 => "Server Error",
        _ => "Global Failure",
    }
}

/// A room id LiveKit's Callee rule accepts as To user (and safe in a SIP URI user).
fn valid_room(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 128
        && r.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}
