//! One test (or table entry) per row of the transition table in the crate docs.

use super::*;
use crate::record::NewCall;
use CallStatus::*;
use Phase::*;

const T0: u64 = 1_700_000_000_000;
const RING: u64 = 30_000;
const GRACE: u64 = 10_000;
const MAX: u64 = 3_600_000;
const EXPIRY: u64 = 60_000;
const SETTLE: u64 = 3_000;

fn knobs() -> CallKnobs {
    CallKnobs {
        ring_timeout_ms: RING,
        agent_drop_grace_ms: GRACE,
        max_duration_ms: MAX,
        unconnected_expiry_ms: EXPIRY,
        hangup_settle_ms: SETTLE,
        inbound_connect_ms: 30_000,
    }
}

fn step(rec: &CallRecord, ev: &CallEvent, now: u64) -> Transition {
    transition(rec, ev, &knobs(), now).expect("transition")
}

/// The call every machine test starts from (also the property test's).
pub(super) fn new_call() -> NewCall {
    NewCall {
        call_id: "c2c_0123456789abcdef0123456789abcdef".into(),
        room: "c2c-0123456789abcdef0123456789abcdef".into(),
        tenant: "acme".into(),
        case_id: "case".into(),
        customer_crm_id: "crm".into(),
        agent_id: "agent".into(),
        customer_number: "9530251797".into(),
        phone_from: "+919999999999".into(),
        trunk_label: "trunk".into(),
    }
}

fn fresh() -> CallRecord {
    CallRecord::new(new_call(), &knobs(), T0).0
}

// Phase timeline of the fixtures: connect +1 s, ringing +2 s, answer +5 s, end +65 s.
const CONNECT_AT: u64 = T0 + 1_000;
const ANSWER_AT: u64 = T0 + 5_000;

fn in_phase(p: Phase) -> CallRecord {
    let r = fresh();
    if p == Initiated {
        return r;
    }
    let r = step(&r, &CallEvent::Connect, CONNECT_AT).record;
    if p == Dialing {
        return r;
    }
    let r = step(&r, &CallEvent::Ringing, T0 + 2_000).record;
    if p == Ringing {
        return r;
    }
    let r = step(&r, &CallEvent::Answered, ANSWER_AT).record;
    if p == Active {
        return r;
    }
    step(&r, &CallEvent::AgentHangup, T0 + 65_000).record
}

const ALL: [Phase; 5] = [Initiated, Dialing, Ringing, Active, Ended];

fn assert_ignored(p: Phase, ev: &CallEvent) {
    let rec = in_phase(p);
    let t = step(&rec, ev, rec.created_ms + 10_000_000);
    assert_eq!(t.record, rec, "{ev:?} in {p:?} must be ignored");
    assert!(t.effects.is_empty(), "{ev:?} in {p:?}: {:?}", t.effects);
}

fn end_effects() -> Vec<Effect> {
    let mut v = vec![Effect::Ended, Effect::DeleteRoom, Effect::EnqueueWebhook];
    v.extend(TimerKind::ALL.iter().map(|k| Effect::CancelTimer(*k)));
    v
}

#[track_caller]
fn assert_ended(prev: &CallRecord, t: &Transition, status: CallStatus, reason: &str, now: u64) {
    let r = &t.record;
    assert_eq!(r.phase, Ended);
    assert_eq!(r.call_status, Some(status));
    assert_eq!(r.disconnect_reason.as_deref(), Some(reason));
    assert_eq!(r.ended_ms, Some(now));
    assert!(r.timers.is_empty());
    assert_eq!(r.version, prev.version + 1);
    assert_eq!(t.effects, end_effects());
    assert!(r.webhook_payload().is_some());
}

#[track_caller]
fn end_via(p: Phase, ev: CallEvent, status: CallStatus, reason: &str) -> Transition {
    let rec = in_phase(p);
    let now = T0 + 20_000;
    let t = step(&rec, &ev, now);
    assert_ended(&rec, &t, status, reason, now);
    t
}

// ---- Connect ----

#[test]
fn connect_from_initiated_dials_and_arms_ring_timeout() {
    let rec = fresh();
    let t = step(&rec, &CallEvent::Connect, CONNECT_AT);
    let at = CONNECT_AT + RING;
    assert_eq!(t.record.phase, Dialing);
    assert_eq!(t.record.connected_ms, Some(CONNECT_AT));
    assert!(t.record.agent_present);
    assert_eq!(t.record.version, 2);
    assert_eq!(t.record.timer(TimerKind::RingTimeout), Some(at));
    assert_eq!(t.record.timer(TimerKind::UnconnectedExpiry), None);
    assert_eq!(
        t.effects,
        vec![
            Effect::CancelTimer(TimerKind::UnconnectedExpiry),
            Effect::ArmTimer {
                kind: TimerKind::RingTimeout,
                at_ms: at
            },
            Effect::Dial,
        ]
    );
}

#[test]
fn connect_when_connected_or_ended_conflicts() {
    for (p, code) in [
        (Dialing, "already_connected"),
        (Ringing, "already_connected"),
        (Active, "already_connected"),
        (Ended, "call_ended"),
    ] {
        let err = transition(&in_phase(p), &CallEvent::Connect, &knobs(), T0 + 9_000);
        match err {
            Err(TransitionError::Conflict { code: c, .. }) => assert_eq!(c, code, "{p:?}"),
            other => panic!("{p:?}: {other:?}"),
        }
    }
}

// ---- Ringing ----

#[test]
fn ringing_from_dialing_records_time_without_effects() {
    let rec = in_phase(Dialing);
    let t = step(&rec, &CallEvent::Ringing, T0 + 3_000);
    assert_eq!(t.record.phase, Ringing);
    assert_eq!(t.record.ringing_ms, Some(T0 + 3_000));
    assert_eq!(t.record.version, rec.version + 1);
    assert!(t.effects.is_empty());
}

#[test]
fn ringing_elsewhere_is_ignored() {
    for p in [Initiated, Ringing, Active, Ended] {
        assert_ignored(p, &CallEvent::Ringing);
    }
}

// ---- Answered ----

#[test]
fn answered_from_dialing_or_ringing_goes_active() {
    for p in [Dialing, Ringing] {
        let rec = in_phase(p);
        let now = T0 + 7_000;
        let t = step(&rec, &CallEvent::Answered, now);
        assert_eq!(t.record.phase, Active);
        assert_eq!(t.record.answered_ms, Some(now));
        assert_eq!(t.record.timer(TimerKind::RingTimeout), None);
        assert_eq!(t.record.timer(TimerKind::MaxDuration), Some(now + MAX));
        assert_eq!(
            t.effects,
            vec![
                Effect::CancelTimer(TimerKind::RingTimeout),
                Effect::ArmTimer {
                    kind: TimerKind::MaxDuration,
                    at_ms: now + MAX
                },
                Effect::Answered,
            ]
        );
    }
}

#[test]
fn answered_elsewhere_is_ignored() {
    for p in [Initiated, Active, Ended] {
        assert_ignored(p, &CallEvent::Answered);
    }
}

// ---- CustomerLeft ----

fn left(code: Option<u16>, reason: Option<&str>) -> CallEvent {
    CallEvent::CustomerLeft {
        sip_code: code,
        disconnect_reason: reason.map(str::to_owned),
    }
}

#[test]
fn customer_left_before_answer_is_classified() {
    let cases: &[(Option<u16>, Option<&str>, CallStatus)] = &[
        (Some(486), None, NotAnswered),
        (Some(600), None, NotAnswered),
        (Some(603), None, NotAnswered),
        (Some(404), None, NotAnswered),
        (Some(408), None, NotAnswered),
        (Some(480), None, NotAnswered),
        (Some(487), None, NotAnswered),
        (None, Some("USER_REJECTED"), NotAnswered),
        (None, Some("USER_UNAVAILABLE"), NotAnswered),
        (Some(503), Some("SIP_TRUNK_FAILURE"), Failed),
        (Some(500), None, Failed),
        (None, Some("SIP_TRUNK_FAILURE"), Failed),
        (None, Some("MEDIA_FAILURE"), Failed),
        // Gone before answer with no sign of failure (ring timeout, polled departure).
        (None, Some("CLIENT_INITIATED"), NotAnswered),
        (None, None, NotAnswered),
        // The exact code wins over LiveKit's bucket (403 is reported as USER_REJECTED).
        (Some(403), Some("USER_REJECTED"), Failed),
    ];
    for p in [Dialing, Ringing] {
        for (code, reason, status) in cases {
            let r = reason.unwrap_or("customer_left");
            let t = end_via(p, left(*code, *reason), *status, r);
            assert_eq!(t.record.sip_disconnect_code, *code);
            assert_eq!(t.record.duration_seconds(), 0);
        }
    }
}

#[test]
fn customer_left_uses_code_recorded_earlier() {
    let rec = in_phase(Ringing);
    let rec = step(&rec, &CallEvent::SipCode { code: 486 }, T0 + 9_000).record;
    let t = step(&rec, &left(None, None), T0 + 9_500);
    assert_ended(&rec, &t, NotAnswered, "customer_left", T0 + 9_500);
    assert_eq!(t.record.sip_disconnect_code, Some(486));
}

#[test]
fn customer_left_while_active_is_answered_with_duration() {
    let t = end_via(
        Active,
        left(None, Some("CLIENT_INITIATED")),
        Answered,
        "CLIENT_INITIATED",
    );
    assert_eq!(t.record.duration_seconds(), 15); // answered +5 s, ended +20 s
    assert_eq!(t.record.webhook_payload().unwrap().duration_seconds(), 15);
}

#[test]
fn customer_left_in_initiated_is_ignored() {
    assert_ignored(Initiated, &left(Some(486), None));
}

#[test]
fn customer_left_after_end_only_records_the_code() {
    assert_ignored(Ended, &left(None, Some("CLIENT_INITIATED")));
    let rec = in_phase(Ended);
    let t = step(&rec, &left(Some(487), None), T0 + 70_000);
    assert_eq!(t.record.phase, Ended);
    assert_eq!(t.record.call_status, rec.call_status);
    assert_eq!(t.record.sip_disconnect_code, Some(487));
    assert_eq!(t.record.version, rec.version + 1);
    assert!(t.effects.is_empty());
}

// ---- HangupRequested ----

#[test]
fn a_hangup_on_a_dialled_call_is_resolved_before_it_ends() {
    for p in [Dialing, Ringing, Active] {
        let rec = in_phase(p);
        let now = T0 + 20_000;
        let t = step(&rec, &CallEvent::HangupRequested, now);
        assert_eq!(t.record.phase, p, "the call ends once the cause is known");
        assert_eq!(t.record.hangup_requested_ms, Some(now));
        assert_eq!(t.record.timer(TimerKind::HangupSettle), Some(now + SETTLE));
        assert_eq!(
            t.effects,
            vec![
                Effect::ArmTimer {
                    kind: TimerKind::HangupSettle,
                    at_ms: now + SETTLE
                },
                Effect::ResolveHangup
            ]
        );
        // A second /hangup (double click, beacon after fetch) resolves nothing twice.
        let again = step(&t.record, &CallEvent::HangupRequested, now + 10);
        assert_eq!(again.record, t.record);
        assert!(again.effects.is_empty());
    }
}

#[test]
fn a_hangup_before_connect_ends_at_once_and_after_the_end_is_a_no_op() {
    end_via(
        Initiated,
        CallEvent::HangupRequested,
        Failed,
        "agent_cancelled",
    );
    assert_ignored(Ended, &CallEvent::HangupRequested);
}

#[test]
fn a_resolved_agent_hangup_ends_when_the_agent_asked() {
    let rec = in_phase(Active);
    let asked = ANSWER_AT + 4_000;
    let pending = step(&rec, &CallEvent::HangupRequested, asked).record;
    let t = step(&pending, &CallEvent::AgentHangup, asked + 40);
    assert_eq!(t.record.ended_ms, Some(asked));
    assert_eq!(t.record.duration_seconds(), 4);
    assert_eq!(t.record.disconnect_reason.as_deref(), Some("agent_hangup"));
}

#[test]
fn the_settle_timer_ends_an_unresolved_hangup_as_the_agents() {
    for (p, status, reason) in [
        (Ringing, NotAnswered, "agent_cancelled"),
        (Active, Answered, "agent_hangup"),
    ] {
        let asked = T0 + 20_000;
        let pending = step(&in_phase(p), &CallEvent::HangupRequested, asked).record;
        let fire = asked + SETTLE;
        let t = step(&pending, &CallEvent::Timer(TimerKind::HangupSettle), fire);
        assert_eq!(t.record.phase, Ended);
        assert_eq!(t.record.call_status, Some(status));
        assert_eq!(t.record.disconnect_reason.as_deref(), Some(reason));
        assert_eq!(t.record.ended_ms, Some(asked));
    }
}

#[test]
fn the_customer_leaving_while_a_hangup_resolves_is_the_customers() {
    let pending = step(&in_phase(Ringing), &CallEvent::HangupRequested, T0 + 20_000).record;
    let t = step(
        &pending,
        &CallEvent::CustomerLeft {
            sip_code: Some(486),
            disconnect_reason: None,
        },
        T0 + 20_005,
    );
    assert_eq!(t.record.call_status, Some(NotAnswered));
    assert_eq!(t.record.disconnect_reason.as_deref(), Some("customer_left"));
    assert_eq!(t.record.sip_disconnect_code, Some(486));
}

// ---- AgentHangup ----

#[test]
fn agent_hangup_by_phase() {
    end_via(Initiated, CallEvent::AgentHangup, Failed, "agent_cancelled");
    end_via(
        Dialing,
        CallEvent::AgentHangup,
        NotAnswered,
        "agent_cancelled",
    );
    end_via(
        Ringing,
        CallEvent::AgentHangup,
        NotAnswered,
        "agent_cancelled",
    );
    let t = end_via(Active, CallEvent::AgentHangup, Answered, "agent_hangup");
    assert_eq!(t.record.sip_disconnect_code, None);
    assert_ignored(Ended, &CallEvent::AgentHangup);
}

// ---- AgentLeft / AgentJoined ----

#[test]
fn agent_left_arms_grace_once() {
    for p in [Dialing, Ringing, Active] {
        let rec = in_phase(p);
        let now = T0 + 8_000;
        let t = step(&rec, &CallEvent::AgentLeft, now);
        assert_eq!(t.record.phase, p);
        assert!(!t.record.agent_present);
        assert_eq!(t.record.timer(TimerKind::AgentDropGrace), Some(now + GRACE));
        let arm = Effect::ArmTimer {
            kind: TimerKind::AgentDropGrace,
            at_ms: now + GRACE,
        };
        assert_eq!(t.effects, vec![arm]);
        // A duplicate report must not push the deadline out.
        let again = step(&t.record, &CallEvent::AgentLeft, now + 5_000);
        assert_eq!(again.record, t.record);
        assert!(again.effects.is_empty());
    }
}

#[test]
fn agent_left_in_initiated_or_ended_is_ignored() {
    assert_ignored(Initiated, &CallEvent::AgentLeft);
    assert_ignored(Ended, &CallEvent::AgentLeft);
}

#[test]
fn agent_joined_cancels_grace() {
    let rec = in_phase(Active);
    let gone = step(&rec, &CallEvent::AgentLeft, T0 + 8_000).record;
    let t = step(&gone, &CallEvent::AgentJoined, T0 + 9_000);
    assert!(t.record.agent_present);
    assert_eq!(t.record.timer(TimerKind::AgentDropGrace), None);
    assert_eq!(t.record.phase, Active);
    assert_eq!(
        t.effects,
        vec![Effect::CancelTimer(TimerKind::AgentDropGrace)]
    );
    // Already present and nothing armed: nothing to do.
    for p in [Dialing, Ringing, Active] {
        assert_ignored(p, &CallEvent::AgentJoined);
    }
}

#[test]
fn agent_joined_in_initiated_marks_present() {
    let rec = in_phase(Initiated);
    let t = step(&rec, &CallEvent::AgentJoined, T0 + 500);
    assert!(t.record.agent_present);
    assert_eq!(t.record.phase, Initiated);
    assert_eq!(t.record.version, rec.version + 1);
    assert!(t.effects.is_empty());
}

#[test]
fn agent_joined_after_end_is_ignored() {
    assert_ignored(Ended, &CallEvent::AgentJoined);
}

// ---- RoomFinished ----

#[test]
fn room_finished_by_phase() {
    end_via(Initiated, CallEvent::RoomFinished, Failed, "room_finished");
    end_via(
        Dialing,
        CallEvent::RoomFinished,
        NotAnswered,
        "room_finished",
    );
    end_via(
        Ringing,
        CallEvent::RoomFinished,
        NotAnswered,
        "room_finished",
    );
    end_via(Active, CallEvent::RoomFinished, Answered, "room_finished");
    assert_ignored(Ended, &CallEvent::RoomFinished);
}

// ---- SipCode ----

#[test]
fn sip_code_is_recorded_once_in_any_phase() {
    for p in ALL {
        let rec = in_phase(p);
        let t = step(&rec, &CallEvent::SipCode { code: 480 }, T0 + 30_000);
        assert_eq!(t.record.phase, p);
        assert_eq!(t.record.sip_disconnect_code, Some(480));
        assert_eq!(t.record.version, rec.version + 1);
        assert!(t.effects.is_empty());
        let again = step(&t.record, &CallEvent::SipCode { code: 503 }, T0 + 31_000);
        assert_eq!(again.record, t.record);
    }
}

// ---- cross-cutting ----

#[test]
fn ended_is_absorbing_for_every_event_but_connect_and_codes() {
    let events = [
        CallEvent::Ringing,
        CallEvent::Answered,
        CallEvent::AgentHangup,
        CallEvent::AgentLeft,
        CallEvent::AgentJoined,
        CallEvent::RoomFinished,
        CallEvent::Timer(TimerKind::RingTimeout),
        CallEvent::Timer(TimerKind::AgentDropGrace),
        CallEvent::Timer(TimerKind::MaxDuration),
        CallEvent::Timer(TimerKind::UnconnectedExpiry),
        CallEvent::Timer(TimerKind::HangupSettle),
        CallEvent::HangupRequested,
        CallEvent::Dial(DialResult::Accepted {
            leg: LegSeen::Active,
        }),
        CallEvent::Dial(DialResult::Failed { reason: "x".into() }),
        CallEvent::Dial(DialResult::Lost {
            leg: LegSeen::NotThere,
        }),
    ];
    for ev in &events {
        assert_ignored(Ended, ev);
    }
}

#[test]
fn duration_rounds_down_and_is_zero_if_never_answered() {
    let rec = in_phase(Active);
    let t = step(&rec, &CallEvent::AgentHangup, ANSWER_AT + 1_999);
    assert_eq!(t.record.duration_seconds(), 1);
    let t = step(&in_phase(Ringing), &CallEvent::AgentHangup, T0 + 99_000);
    assert_eq!(t.record.duration_seconds(), 0);
}

/// Managed calls: the charge their end fixes, and `BalanceExhausted`.
mod billing;
/// The dial's results (`CallEvent::Dial`).
mod dial;
/// The SIP edge's media observations (`CallEvent::MediaTimeout`).
mod media;
/// The call's timers (`CallEvent::Timer`).
mod timers;
