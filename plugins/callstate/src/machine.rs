//! The pure transition function: `(CallRecord, CallEvent, knobs, now) -> (CallRecord, effects)`.
//! No I/O and no clock; see the crate docs for the full table.

use crate::record::{
    ArmedTimer, CallMedia, CallRecord, CallStatus, NewCall, OfferOutcome, Phase, TimerKind,
};

/// A fired timer is accepted up to this much before its recorded deadline: timer runners use
/// a monotonic clock while `now_ms` is wall time, and a valid fire that is ignored would leave
/// the call open forever. Much smaller than any knob, so stale re-armed timers still lose.
pub const TIMER_SLACK_MS: u64 = 1_000;

/// Longest `disconnect_reason` we keep from an external error text.
const MAX_REASON_LEN: usize = 96;

mod effects;
pub use effects::{CallKnobs, Effect};

impl CallRecord {
    /// A fresh INITIATED record (version 1) and its initial effects: the
    /// `UnconnectedExpiry` timer, so a call whose browser never connects still ends.
    pub fn new(new: NewCall, knobs: &CallKnobs, now_ms: u64) -> (CallRecord, Vec<Effect>) {
        let at_ms = now_ms.saturating_add(knobs.unconnected_expiry_ms);
        let kind = TimerKind::UnconnectedExpiry;
        let rec = CallRecord {
            call_id: new.call_id,
            tenant: new.tenant,
            case_id: new.case_id,
            customer_crm_id: new.customer_crm_id,
            agent_id: new.agent_id,
            customer_number: new.customer_number,
            phone_from: new.phone_from,
            trunk_label: new.trunk_label,
            room: new.room,
            phase: Phase::Initiated,
            call_status: None,
            created_ms: now_ms,
            connected_ms: None,
            ringing_ms: None,
            answered_ms: None,
            ended_ms: None,
            disconnect_reason: None,
            sip_disconnect_code: None,
            agent_present: false,
            timers: vec![ArmedTimer { kind, at_ms }],
            version: 1,
            dial_returned_ms: None,
            hangup_requested_ms: None,
            direction: Default::default(),
            offers: Vec::new(),
            lead_id: None,
            billing: None,
            media: None,
            call_category: None,
        };
        (rec, vec![Effect::Created, Effect::ArmTimer { kind, at_ms }])
    }
}

/// What CreateSIPParticipant itself answered. A dial that returned is never taken as an
/// answer: LiveKit may return at once (an older server, a proxy timing out the long
/// request, a server ignoring `wait_until_answered`), so the answer must be observed
/// (`sip.callStatus = active`, the SIP edge's 200, the browser's report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialResult {
    /// Returned without error, with what one look at the room right after showed of the
    /// customer's leg: the dial's own result says the leg exists, only `leg` can say it
    /// was answered.
    Accepted { leg: LegSeen },
    /// Failed with the carrier's final SIP status (Twirp meta `sip_status_code`).
    Rejected { sip_code: u16 },
    /// LiveKit gave up ringing or the room was deleted under the dial: no verdict of its
    /// own; the gateway's ring timer or the hangup already decides.
    Canceled,
    /// LiveKit could not place the call at all (unreachable, refused). `reason` is a short
    /// code shown to the browser, so digit runs are masked defensively.
    Failed { reason: String },
    /// The dial's own answer was lost (the process waiting for it died and this is
    /// found at restart, or the request failed in a way that does not say whether the
    /// call was placed); `leg` is what the room shows now. A leg still there is followed
    /// by polling, webhooks and timers. With no leg at all the carrier's code is
    /// unknowable and the record says so (`dial_interrupted`) rather than claiming a ring
    /// timeout.
    Lost { leg: LegSeen },
}

/// What one look at a call's room showed of the customer's SIP leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegSeen {
    /// Not in the room (or the room could not be looked at).
    NotThere,
    /// `sip.callStatus` `dialing` (or none yet).
    Dialing,
    Ringing,
    /// `sip.callStatus = active`: the customer answered.
    Active,
    /// `sip.callStatus = hangup`, with what LiveKit still shows of why.
    Left {
        sip_code: Option<u16>,
        disconnect_reason: Option<String>,
    },
}

impl LegSeen {
    /// The call event this observation amounts to, if any.
    pub fn event(&self) -> Option<CallEvent> {
        match self {
            LegSeen::NotThere | LegSeen::Dialing => None,
            LegSeen::Ringing => Some(CallEvent::Ringing),
            LegSeen::Active => Some(CallEvent::Answered),
            LegSeen::Left {
                sip_code,
                disconnect_reason,
            } => Some(CallEvent::CustomerLeft {
                sip_code: *sip_code,
                disconnect_reason: disconnect_reason.clone(),
            }),
        }
    }
}

/// What happened to a call. Events carry no time; `now_ms` is passed to [`transition`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// Browser POST /connect.
    Connect,
    /// CreateSIPParticipant's own outcome.
    Dial(DialResult),
    Ringing,
    /// Poll saw `sip.callStatus=active`, the browser reported ANSWERED, or the SIP edge saw 200.
    Answered,
    /// The SIP participant is gone. `disconnect_reason` is LiveKit's name, e.g. "USER_REJECTED".
    CustomerLeft {
        sip_code: Option<u16>,
        disconnect_reason: Option<String>,
    },
    /// Browser `/hangup` on a call whose cause must first be resolved (idempotent).
    HangupRequested,
    /// The hangup is the agent's (resolved, or nothing to resolve).
    AgentHangup,
    AgentLeft,
    AgentJoined,
    Timer(TimerKind),
    RoomFinished,
    /// The exact SIP code seen by the SIP edge or a webhook; recorded once, no phase change.
    SipCode {
        code: u16,
    },
    /// Inbound: the call was offered to this agent.
    Offered {
        agent_id: String,
    },
    /// Inbound: an offer ended without an accept (or the accept is recorded by `Accepted`).
    OfferEnded {
        agent_id: String,
        outcome: OfferOutcome,
    },
    /// Inbound: this agent accepted the offer (a conflict `offer_gone` once the call is
    /// taken or over).
    Accepted {
        agent_id: String,
    },
    /// Inbound: the CRM's lookup named the caller's lead.
    LeadFound {
        lead_id: String,
    },
    /// Inbound: the call ends unanswered (`caller_hung_up`, `no_agent`, `ring_timeout`,
    /// `gateway_restarted`, ...).
    Missed {
        reason: String,
    },
    /// A managed call's running charge would exceed what its wallet can pay, overdraft
    /// included (the gateway's balance watch, `calls::billing`). Ends an ACTIVE call
    /// ANSWERED with `balance_exhausted`; ignored in every other phase (an unanswered
    /// call costs nothing).
    BalanceExhausted,
    /// Dead air on an anchored call: the SIP edge saw no RTP from the carrier for
    /// `media_timeout_seconds` after the answer. Ends an ACTIVE call ANSWERED with
    /// `media_timeout` (as rtpengine's media timeout ends a call); ignored in every
    /// other phase (before the answer silence is the carrier's ringback gap).
    MediaTimeout,
    /// An anchored call's relay stopped and reported what it measured: recorded once,
    /// in any phase (it usually comes after the end), no phase change.
    Media(Box<CallMedia>),
}

/// The outcome of a transition. `record.version` equals the input's when nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The phase before the event.
    pub from: Phase,
    pub record: CallRecord,
    pub effects: Vec<Effect>,
}

impl Transition {
    /// `(before, after)` when the event moved the call to another phase.
    pub fn phase_change(&self) -> Option<(Phase, Phase)> {
        (self.from != self.record.phase).then_some((self.from, self.record.phase))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// Maps to HTTP 409 with `code`.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
}

/// Applies `ev` to `rec`. Harmless events that do not apply to the current phase return the
/// record unchanged with no effects (webhooks and pollers are at-least-once); only browser
/// requests that cannot be honoured (`Connect` twice or after the end) are errors.
pub fn transition(
    rec: &CallRecord,
    ev: &CallEvent,
    knobs: &CallKnobs,
    now_ms: u64,
) -> Result<Transition, TransitionError> {
    let mut next = rec.clone();
    let mut fx = Vec::new();
    step(rec, &mut next, ev, knobs, now_ms, &mut fx)?;
    if rec.is_inbound() {
        inbound::settle(rec, &mut next, now_ms, &mut fx);
    }
    if next != *rec {
        next.version = rec.version.saturating_add(1);
    } else {
        fx.clear();
    }
    Ok(Transition {
        from: rec.phase,
        record: next,
        effects: fx,
    })
}

/// Applies `ev` to `next`, which starts equal to `rec` (read `rec` for the state before).
fn step(
    rec: &CallRecord,
    next: &mut CallRecord,
    ev: &CallEvent,
    knobs: &CallKnobs,
    now_ms: u64,
    fx: &mut Vec<Effect>,
) -> Result<(), TransitionError> {
    use Phase::*;
    if rec.is_inbound() {
        if let Some(done) = inbound::step(rec, next, ev, knobs, now_ms, fx) {
            return done;
        }
    }
    let phase = rec.phase;
    match ev {
        CallEvent::Connect => match phase {
            Initiated => {
                next.phase = Dialing;
                next.connected_ms = Some(now_ms);
                // The contract makes the browser join and publish before /connect.
                next.agent_present = true;
                cancel_timer(next, TimerKind::UnconnectedExpiry, fx);
                let at = now_ms.saturating_add(knobs.ring_timeout_ms);
                arm_timer(next, TimerKind::RingTimeout, at, fx);
                fx.push(Effect::Dial);
            }
            Dialing | Ringing | Active => {
                return Err(conflict("already_connected", "call is already connected"))
            }
            Ended => return Err(conflict("call_ended", "call has already ended")),
        },
        CallEvent::Dial(result) => on_dial_result(next, result, knobs, now_ms, fx)?,
        CallEvent::Ringing => {
            if phase == Dialing {
                next.phase = Ringing;
                next.ringing_ms = Some(now_ms);
            }
        }
        CallEvent::Answered => {
            if matches!(phase, Dialing | Ringing) {
                next.phase = Active;
                next.answered_ms = Some(now_ms);
                cancel_timer(next, TimerKind::RingTimeout, fx);
                let at = now_ms.saturating_add(knobs.max_duration_ms);
                arm_timer(next, TimerKind::MaxDuration, at, fx);
                fx.push(Effect::Answered);
            }
        }
        CallEvent::CustomerLeft {
            sip_code,
            disconnect_reason,
        } => {
            if phase != Initiated {
                // Late participant_left after our own teardown still carries the real code.
                record_sip_code(next, *sip_code);
            }
            let reason = disconnect_reason
                .as_deref()
                .map(|r| sanitize_reason(r, "customer_left"))
                .unwrap_or_else(|| "customer_left".to_owned());
            match phase {
                Dialing | Ringing => {
                    let code = sip_code.or(rec.sip_disconnect_code);
                    let status = classify_unanswered(code, disconnect_reason.as_deref());
                    end(next, status, reason, now_ms, fx);
                }
                Active => end(next, CallStatus::Answered, reason, now_ms, fx),
                Initiated | Ended => {}
            }
        }
        CallEvent::HangupRequested => match phase {
            Dialing | Ringing | Active if rec.hangup_requested_ms.is_none() => {
                next.hangup_requested_ms = Some(now_ms);
                let at = now_ms.saturating_add(knobs.hangup_settle_ms);
                arm_timer(next, TimerKind::HangupSettle, at, fx);
                fx.push(Effect::ResolveHangup);
            }
            // Nothing dialled yet: nothing to find out.
            Initiated => agent_hangup(next, now_ms, fx),
            Dialing | Ringing | Active | Ended => {}
        },
        CallEvent::AgentHangup => agent_hangup(next, now_ms, fx),
        CallEvent::AgentLeft => {
            let already = !rec.agent_present && rec.timer(TimerKind::AgentDropGrace).is_some();
            // A duplicate "left" (poll + webhook) must not push the deadline out.
            if matches!(phase, Dialing | Ringing | Active) && !already {
                next.agent_present = false;
                let at = now_ms.saturating_add(knobs.agent_drop_grace_ms);
                arm_timer(next, TimerKind::AgentDropGrace, at, fx);
            }
        }
        CallEvent::AgentJoined => {
            if phase != Ended {
                next.agent_present = true;
                cancel_timer(next, TimerKind::AgentDropGrace, fx);
            }
        }
        CallEvent::Timer(kind) => {
            if timer_due(rec, *kind, now_ms) {
                on_timer(next, *kind, now_ms, fx);
            }
        }
        CallEvent::RoomFinished => {
            let status = match phase {
                Initiated => Some(CallStatus::Failed),
                Dialing | Ringing => Some(CallStatus::NotAnswered),
                Active => Some(CallStatus::Answered),
                Ended => None,
            };
            if let Some(s) = status {
                end_with(next, s, "room_finished", now_ms, fx);
            }
        }
        CallEvent::SipCode { code } => record_sip_code(next, Some(*code)),
        CallEvent::BalanceExhausted => {
            if phase == Active {
                end_with(next, CallStatus::Answered, "balance_exhausted", now_ms, fx)
            }
        }
        CallEvent::MediaTimeout => {
            if phase == Active {
                end_with(next, CallStatus::Answered, "media_timeout", now_ms, fx)
            }
        }
        CallEvent::Media(m) => {
            if next.media.is_none() {
                next.media = Some(CallMedia::clone(m));
                fx.push(Effect::MediaRecorded);
            }
        }
        // Inbound events mean nothing to an outbound call.
        CallEvent::Offered { .. }
        | CallEvent::OfferEnded { .. }
        | CallEvent::Accepted { .. }
        | CallEvent::LeadFound { .. }
        | CallEvent::Missed { .. } => {}
    }
    Ok(())
}

/// The dial's own outcome. Marks the dial as returned whatever it says; only a rejection
/// with a code, a failure to place the call, or a lost dial without a leg end the call.
fn on_dial_result(
    next: &mut CallRecord,
    result: &DialResult,
    knobs: &CallKnobs,
    now_ms: u64,
    fx: &mut Vec<Effect>,
) -> Result<(), TransitionError> {
    use Phase::*;
    let phase = next.phase;
    if matches!(phase, Dialing | Ringing | Active) && next.dial_returned_ms.is_none() {
        next.dial_returned_ms = Some(now_ms);
    }
    match result {
        DialResult::Canceled => {}
        // The room's word, in the same transition: one durable write for the dial's
        // outcome and what it proves.
        DialResult::Accepted { leg } | DialResult::Lost { leg } if *leg != LegSeen::NotThere => {
            if let Some(ev) = leg.event() {
                let before = next.clone();
                step(&before, next, &ev, knobs, now_ms, fx)?;
            }
        }
        DialResult::Accepted { .. } => {}
        DialResult::Rejected { sip_code } => {
            if phase != Initiated {
                // A late rejection after our own teardown still carries the real code.
                record_sip_code(next, Some(*sip_code));
            }
            match phase {
                Dialing | Ringing => {
                    let status = classify_unanswered(Some(*sip_code), None);
                    end_with(next, status, "customer_left", now_ms, fx)
                }
                // Answered (the browser's report) while the dial still waited: the customer
                // was connected, whatever the dial says now.
                Active => end_with(next, CallStatus::Answered, "customer_left", now_ms, fx),
                Initiated | Ended => {}
            }
        }
        DialResult::Failed { reason } => {
            if matches!(phase, Dialing | Ringing) {
                let reason = sanitize_reason(reason, "dial_failed");
                end(next, CallStatus::Failed, reason, now_ms, fx);
            }
        }
        DialResult::Lost { .. } => match phase {
            Dialing | Ringing => end_with(next, CallStatus::Failed, "dial_interrupted", now_ms, fx),
            Active => end_with(next, CallStatus::Answered, "customer_left", now_ms, fx),
            Initiated | Ended => {}
        },
    }
    Ok(())
}

/// The agent ended the call. It ends when the agent asked (`/hangup`), not when the
/// gateway finished finding out whose hangup it was.
fn agent_hangup(next: &mut CallRecord, now_ms: u64, fx: &mut Vec<Effect>) {
    use Phase::*;
    // Never before the answer: a customer who picked up while the hangup was being
    // resolved was connected, if only for an instant.
    let at = next
        .hangup_requested_ms
        .map_or(now_ms, |h| h.min(now_ms))
        .max(next.answered_ms.unwrap_or(0));
    let (status, reason) = match next.phase {
        Initiated => (CallStatus::Failed, "agent_cancelled"),
        Dialing | Ringing => (CallStatus::NotAnswered, "agent_cancelled"),
        Active => (CallStatus::Answered, "agent_hangup"),
        Ended => return,
    };
    end_with(next, status, reason, at, fx)
}

fn on_timer(next: &mut CallRecord, kind: TimerKind, now_ms: u64, fx: &mut Vec<Effect>) {
    use Phase::*;
    let phase = next.phase;
    match kind {
        TimerKind::RingTimeout if matches!(phase, Dialing | Ringing) => {
            end_with(next, CallStatus::NotAnswered, "ring_timeout", now_ms, fx)
        }
        TimerKind::HangupSettle if phase != Ended => agent_hangup(next, now_ms, fx),
        TimerKind::AgentDropGrace if !next.agent_present && phase != Ended => {
            let status = if phase == Active {
                CallStatus::Answered
            } else {
                CallStatus::NotAnswered
            };
            end_with(next, status, "agent_dropped", now_ms, fx)
        }
        TimerKind::MaxDuration if phase == Active => {
            end_with(next, CallStatus::Answered, "max_duration", now_ms, fx)
        }
        TimerKind::UnconnectedExpiry if phase == Initiated => {
            end_with(next, CallStatus::Failed, "never_connected", now_ms, fx)
        }
        _ => {}
    }
}

/// Outcome of a customer leg that ended before answer. The SIP code wins when known (it is
/// exact; LiveKit's reason buckets e.g. 403 into USER_REJECTED), then LiveKit's reason.
pub fn classify_unanswered(sip_code: Option<u16>, reason: Option<&str>) -> CallStatus {
    if let Some(code) = sip_code {
        return match code {
            486 | 600 | 603 | 404 | 408 | 480 | 487 => CallStatus::NotAnswered,
            _ => CallStatus::Failed,
        };
    }
    // No code and no reason (or a neutral one) means the leg went away before answer
    // without any sign of failure: that is what a LiveKit ring timeout or a polled
    // departure looks like, and the CRM should see the customer did not answer. Only a
    // reason that names a failure (trunk, media, ...) makes the call FAILED.
    match reason {
        None
        | Some("")
        | Some("UNKNOWN_REASON")
        | Some("CLIENT_INITIATED")
        | Some("USER_REJECTED")
        | Some("USER_UNAVAILABLE") => CallStatus::NotAnswered,
        _ => CallStatus::Failed,
    }
}

/// A timer event counts only if that timer is still armed and (almost) due; anything else is
/// a stale fire from before a cancel or re-arm.
fn timer_due(rec: &CallRecord, kind: TimerKind, now_ms: u64) -> bool {
    rec.timer(kind)
        .is_some_and(|at| now_ms.saturating_add(TIMER_SLACK_MS) >= at)
}

fn arm_timer(rec: &mut CallRecord, kind: TimerKind, at_ms: u64, fx: &mut Vec<Effect>) {
    rec.timers.retain(|t| t.kind != kind);
    rec.timers.push(ArmedTimer { kind, at_ms });
    fx.push(Effect::ArmTimer { kind, at_ms });
}

fn cancel_timer(rec: &mut CallRecord, kind: TimerKind, fx: &mut Vec<Effect>) {
    let before = rec.timers.len();
    rec.timers.retain(|t| t.kind != kind);
    if rec.timers.len() != before {
        fx.push(Effect::CancelTimer(kind));
    }
}

fn record_sip_code(rec: &mut CallRecord, code: Option<u16>) {
    if rec.sip_disconnect_code.is_none() {
        rec.sip_disconnect_code = code;
    }
}

fn end_with(rec: &mut CallRecord, s: CallStatus, reason: &str, now: u64, fx: &mut Vec<Effect>) {
    end(rec, s, reason.to_owned(), now, fx)
}

fn end(rec: &mut CallRecord, status: CallStatus, reason: String, now: u64, fx: &mut Vec<Effect>) {
    rec.phase = Phase::Ended;
    rec.call_status = Some(status);
    rec.ended_ms = Some(now);
    rec.disconnect_reason = Some(reason);
    rec.timers.clear();
    fx.push(Effect::Ended);
    if let Some(b) = rec.billing.as_mut() {
        // Billed from the answer to the end (nothing for a call never answered); the
        // charge is fixed here, in the end's own write, so no crash can change it.
        let billed = rec.answered_ms.map_or(0, |a| now.saturating_sub(a));
        b.billed_ms = Some(billed);
        b.charge_paise = Some(b.rate.charge(billed));
        fx.push(Effect::SettleWallet);
    }
    fx.push(Effect::DeleteRoom);
    fx.push(Effect::EnqueueWebhook);
    // Cancel every kind, not just the recorded ones: a runner may hold a timer the record
    // already dropped (e.g. the one that is firing right now).
    fx.extend(TimerKind::ALL.iter().map(|k| Effect::CancelTimer(*k)));
}

fn conflict(code: &'static str, message: &str) -> TransitionError {
    TransitionError::Conflict {
        code,
        message: message.to_owned(),
    }
}

mod inbound;
mod reason;

use reason::sanitize_reason;

#[cfg(test)]
mod inbound_tests;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;
