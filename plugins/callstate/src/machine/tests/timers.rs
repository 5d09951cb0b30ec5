//! The call's timers: ring timeout, agent-drop grace, maximum duration and unconnected
//! expiry, each in its phase only, stale when fired early beyond the slack.

use super::*;

fn fire(rec: &CallRecord, kind: TimerKind) -> Transition {
    let at = rec.timer(kind).expect("armed");
    step(rec, &CallEvent::Timer(kind), at)
}

#[test]
fn ring_timeout_ends_unanswered() {
    for p in [Dialing, Ringing] {
        let rec = in_phase(p);
        let t = fire(&rec, TimerKind::RingTimeout);
        assert_ended(&rec, &t, NotAnswered, "ring_timeout", CONNECT_AT + RING);
    }
}

#[test]
fn ring_timeout_elsewhere_is_ignored() {
    for p in [Initiated, Active, Ended] {
        assert_ignored(p, &CallEvent::Timer(TimerKind::RingTimeout));
    }
}

#[test]
fn timers_fired_early_are_stale_but_slack_is_tolerated() {
    let rec = in_phase(Dialing);
    let at = rec.timer(TimerKind::RingTimeout).unwrap();
    let ev = CallEvent::Timer(TimerKind::RingTimeout);
    let early = step(&rec, &ev, at - TIMER_SLACK_MS - 1);
    assert_eq!(early.record, rec);
    assert!(early.effects.is_empty());
    let t = step(&rec, &ev, at - TIMER_SLACK_MS);
    assert_eq!(t.record.phase, Ended);
}

#[test]
fn agent_drop_grace_ends_the_call_if_agent_still_absent() {
    for (p, status) in [
        (Dialing, NotAnswered),
        (Ringing, NotAnswered),
        (Active, Answered),
    ] {
        let rec = step(&in_phase(p), &CallEvent::AgentLeft, T0 + 8_000).record;
        let t = fire(&rec, TimerKind::AgentDropGrace);
        assert_ended(&rec, &t, status, "agent_dropped", T0 + 8_000 + GRACE);
    }
}

#[test]
fn agent_drop_grace_is_ignored_when_present_unarmed_or_ended() {
    for p in [Initiated, Dialing, Ringing, Active, Ended] {
        assert_ignored(p, &CallEvent::Timer(TimerKind::AgentDropGrace));
    }
    // Left then rejoined: the old timer fires but the agent is back.
    let rec = step(&in_phase(Active), &CallEvent::AgentLeft, T0 + 8_000).record;
    let back = step(&rec, &CallEvent::AgentJoined, T0 + 9_000).record;
    let t = step(
        &back,
        &CallEvent::Timer(TimerKind::AgentDropGrace),
        T0 + 18_000,
    );
    assert_eq!(t.record, back);
    // Left, rejoined, left again: the first timer is stale against the new deadline.
    let again = step(&back, &CallEvent::AgentLeft, T0 + 15_000).record;
    let t = step(
        &again,
        &CallEvent::Timer(TimerKind::AgentDropGrace),
        T0 + 18_000,
    );
    assert_eq!(t.record, again);
    assert!(t.effects.is_empty());
}

#[test]
fn max_duration_ends_active_call_answered() {
    let rec = in_phase(Active);
    let t = fire(&rec, TimerKind::MaxDuration);
    assert_ended(&rec, &t, Answered, "max_duration", ANSWER_AT + MAX);
    assert_eq!(t.record.duration_seconds(), MAX / 1000);
}

#[test]
fn max_duration_elsewhere_is_ignored() {
    for p in [Initiated, Dialing, Ringing, Ended] {
        assert_ignored(p, &CallEvent::Timer(TimerKind::MaxDuration));
    }
}

#[test]
fn unconnected_expiry_fails_never_connected_call() {
    let rec = in_phase(Initiated);
    let t = fire(&rec, TimerKind::UnconnectedExpiry);
    assert_ended(&rec, &t, Failed, "never_connected", T0 + EXPIRY);
}

#[test]
fn unconnected_expiry_elsewhere_is_ignored() {
    for p in [Dialing, Ringing, Active, Ended] {
        assert_ignored(p, &CallEvent::Timer(TimerKind::UnconnectedExpiry));
    }
}
