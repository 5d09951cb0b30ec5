//! The inbound half of the machine: a record born RINGING (the carrier rings while
//! agents are offered the call), offers and their outcomes, the lead, the accept; and
//! what every end of an unanswered inbound call means (MISSED, and the held caller must
//! get a final response). Everything after the answer is the shared machine's.

use super::{arm_timer, cancel_timer, CallEvent, CallKnobs, Effect, TransitionError};
use crate::record::{
    ArmedTimer, CallRecord, CallStatus, Direction, NewInboundCall, OfferEntry, OfferOutcome, Phase,
    TimerKind, MAX_OFFERS,
};

impl CallRecord {
    /// A fresh inbound record (version 1), already RINGING, and its effects. Its
    /// `RingTimeout` is the durable backstop of the ring: the gateway's offer loop ends
    /// the call at `ring_timeout_ms` itself, but if the process dies meanwhile the
    /// restarted gateway re-arms this timer from the store and the call still ends.
    pub fn new_inbound(
        new: NewInboundCall,
        ring_timeout_ms: u64,
        knobs: &CallKnobs,
        now_ms: u64,
    ) -> (CallRecord, Vec<Effect>) {
        let kind = TimerKind::RingTimeout;
        let at_ms = now_ms
            .saturating_add(ring_timeout_ms)
            .saturating_add(knobs.inbound_connect_ms);
        let rec = CallRecord {
            call_id: new.call_id,
            tenant: new.tenant,
            case_id: String::new(),
            customer_crm_id: String::new(),
            agent_id: String::new(),
            customer_number: new.caller,
            phone_from: new.did,
            trunk_label: new.trunk_label,
            room: new.room,
            phase: Phase::Ringing,
            call_status: None,
            created_ms: now_ms,
            connected_ms: None,
            ringing_ms: Some(now_ms),
            answered_ms: None,
            ended_ms: None,
            disconnect_reason: None,
            sip_disconnect_code: None,
            agent_present: false,
            timers: vec![ArmedTimer { kind, at_ms }],
            version: 1,
            // No CreateSIPParticipant is ever in flight for an inbound call: nothing
            // the hangup resolver should wait for.
            dial_returned_ms: Some(now_ms),
            hangup_requested_ms: None,
            direction: Direction::Inbound,
            offers: Vec::new(),
            lead_id: None,
            billing: None,
            media: None,
            call_category: None,
        };
        (rec, vec![Effect::Created, Effect::ArmTimer { kind, at_ms }])
    }
}

/// Inbound-only handling of `ev`: `Some` when it was handled here, `None` to fall
/// through to the shared machine.
pub(super) fn step(
    rec: &CallRecord,
    next: &mut CallRecord,
    ev: &CallEvent,
    knobs: &CallKnobs,
    now_ms: u64,
    fx: &mut Vec<Effect>,
) -> Option<Result<(), TransitionError>> {
    let open = rec.phase == Phase::Ringing;
    let accepted = !rec.agent_id.is_empty();
    match ev {
        CallEvent::Offered { agent_id } => {
            if open && !accepted && next.offers.len() < MAX_OFFERS {
                next.offers.push(OfferEntry {
                    agent_id: agent_id.clone(),
                    offered_ms: now_ms,
                    outcome: None,
                    ended_ms: None,
                });
            }
        }
        CallEvent::OfferEnded { agent_id, outcome } => {
            close_offer(next, agent_id, *outcome, now_ms)
        }
        CallEvent::Accepted { agent_id } => {
            if !open || accepted {
                return Some(Err(super::conflict(
                    "offer_gone",
                    "the call is no longer offered",
                )));
            }
            next.agent_id = agent_id.clone();
            next.connected_ms = Some(now_ms);
            next.agent_present = true;
            close_offer(next, agent_id, OfferOutcome::Accepted, now_ms);
            // From here LiveKit must answer (the agent joins and publishes) within the
            // connect allowance, or the call ends MISSED.
            let at = now_ms.saturating_add(knobs.inbound_connect_ms);
            arm_timer(next, TimerKind::RingTimeout, at, fx);
        }
        CallEvent::LeadFound { lead_id } => {
            if rec.lead_id.is_none() && !lead_id.is_empty() {
                next.lead_id = Some(lead_id.chars().take(128).collect());
            }
        }
        CallEvent::Missed { reason } => {
            if open {
                super::end_with(next, CallStatus::Missed, reason, now_ms, fx);
            }
        }
        // Only an accepted call is forwarded to LiveKit: an answer before that is
        // nobody's and cannot be.
        CallEvent::Answered if !accepted => {}
        CallEvent::Connect => {
            return Some(Err(super::conflict(
                "inbound_call",
                "an inbound call is joined by accepting its offer, not by /connect",
            )))
        }
        // Before the answer there is nothing to find out: it is the agent's hangup.
        CallEvent::HangupRequested if open => super::agent_hangup(next, now_ms, fx),
        _ => return None,
    }
    Some(Ok(()))
}

/// What ending means for an inbound call, applied after every transition: an end
/// without an answer is MISSED whatever the shared machine called it, open offers are
/// cancelled, and the carrier's held INVITE must get its final response.
pub(super) fn settle(rec: &CallRecord, next: &mut CallRecord, now_ms: u64, fx: &mut Vec<Effect>) {
    if rec.is_ended() || !next.is_ended() {
        return;
    }
    if next.call_status != Some(CallStatus::Answered) {
        next.call_status = Some(CallStatus::Missed);
        // Before `Ended`: the runner forgets the live call (and its SIP Call-ID) there.
        let at = fx
            .iter()
            .position(|e| *e == Effect::Ended)
            .unwrap_or(fx.len());
        fx.insert(at, Effect::RefuseCaller);
    }
    for o in next.offers.iter_mut().filter(|o| o.outcome.is_none()) {
        o.outcome = Some(OfferOutcome::Cancelled);
        o.ended_ms = Some(now_ms);
    }
    cancel_timer(next, TimerKind::RingTimeout, fx);
}

fn close_offer(next: &mut CallRecord, agent_id: &str, outcome: OfferOutcome, now_ms: u64) {
    if let Some(o) = next
        .offers
        .iter_mut()
        .rev()
        .find(|o| o.agent_id == agent_id && o.outcome.is_none())
    {
        o.outcome = Some(outcome);
        o.ended_ms = Some(now_ms);
    }
}
