//! Properties of [`transition`] over random sequences of events, with random gaps of
//! time between them (proptest). The table tests next door check each row; these check
//! what must hold whatever the order: every (phase, event) pair is handled, ENDED is
//! final, phases only move forward, `version` rises exactly when the record changes, and
//! a crash at any point loses nothing — the timers a restarted gateway re-arms from the
//! stored record are exactly those the effects armed, and an event delivered again after
//! the restart (at-least-once, a little later) changes nothing.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn knobs() -> CallKnobs {
    CallKnobs {
        ring_timeout_ms: 30_000,
        agent_drop_grace_ms: 10_000,
        max_duration_ms: 3_600_000,
        unconnected_expiry_ms: 60_000,
        hangup_settle_ms: 3_000,
        inbound_connect_ms: 30_000,
    }
}

use super::tests::new_call;

fn sip_code() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(486),
        Just(503),
        Just(603),
        Just(480),
        Just(404),
        300u16..700
    ]
}

fn reason() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("USER_REJECTED".to_owned())),
        Just(Some("SIP_TRUNK_FAILURE".to_owned())),
        Just(Some("CLIENT_INITIATED".to_owned())),
    ]
}

fn leg() -> impl Strategy<Value = LegSeen> {
    prop_oneof![
        Just(LegSeen::NotThere),
        Just(LegSeen::Dialing),
        Just(LegSeen::Ringing),
        Just(LegSeen::Active),
        (proptest::option::of(sip_code()), reason()).prop_map(|(sip_code, disconnect_reason)| {
            LegSeen::Left {
                sip_code,
                disconnect_reason,
            }
        }),
    ]
}

fn timer_kind() -> impl Strategy<Value = TimerKind> {
    proptest::sample::select(TimerKind::ALL.to_vec())
}

fn event() -> impl Strategy<Value = CallEvent> {
    prop_oneof![
        3 => Just(CallEvent::Connect),
        2 => leg().prop_map(|leg| CallEvent::Dial(DialResult::Accepted { leg })),
        1 => sip_code().prop_map(|sip_code| CallEvent::Dial(DialResult::Rejected { sip_code })),
        1 => Just(CallEvent::Dial(DialResult::Canceled)),
        1 => Just(CallEvent::Dial(DialResult::Failed { reason: "livekit_unavailable".into() })),
        1 => leg().prop_map(|leg| CallEvent::Dial(DialResult::Lost { leg })),
        2 => Just(CallEvent::Ringing),
        2 => Just(CallEvent::Answered),
        2 => (proptest::option::of(sip_code()), reason()).prop_map(|(sip_code, disconnect_reason)| {
            CallEvent::CustomerLeft { sip_code, disconnect_reason }
        }),
        1 => Just(CallEvent::HangupRequested),
        1 => Just(CallEvent::AgentHangup),
        1 => Just(CallEvent::AgentLeft),
        1 => Just(CallEvent::AgentJoined),
        3 => timer_kind().prop_map(CallEvent::Timer),
        1 => Just(CallEvent::RoomFinished),
        1 => sip_code().prop_map(|code| CallEvent::SipCode { code }),
        1 => Just(CallEvent::BalanceExhausted),
        1 => Just(CallEvent::MediaTimeout),
        1 => Just(CallEvent::Media(Box::default())),
    ]
}

/// Events with the milliseconds that pass before each (up to past every knob).
fn history() -> impl Strategy<Value = Vec<(CallEvent, u64)>> {
    proptest::collection::vec(
        (
            event(),
            prop_oneof![Just(0u64), 1u64..5_000, 5_000u64..4_000_000],
        ),
        1..40,
    )
}

fn rank(p: Phase) -> u8 {
    match p {
        Phase::Initiated => 0,
        Phase::Dialing => 1,
        Phase::Ringing => 2,
        Phase::Active => 3,
        Phase::Ended => 4,
    }
}

/// The record without its version, to compare contents.
fn content(r: &CallRecord) -> CallRecord {
    CallRecord {
        version: 0,
        ..r.clone()
    }
}

/// A timer runner's schedule as the effects leave it.
fn run_timers(schedule: &mut BTreeMap<TimerKind, u64>, effects: &[Effect]) {
    for e in effects {
        match e {
            Effect::ArmTimer { kind, at_ms } => {
                schedule.insert(*kind, *at_ms);
            }
            Effect::CancelTimer(kind) => {
                schedule.remove(kind);
            }
            _ => {}
        }
    }
}

fn recorded(r: &CallRecord) -> BTreeMap<TimerKind, u64> {
    r.timers.iter().map(|t| (t.kind, t.at_ms)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn any_history_keeps_the_machines_promises(events in history(), redelivery in 0u64..10_000) {
        let k = knobs();
        let mut now = 1_700_000_000_000u64;
        let (mut rec, created) = CallRecord::new(new_call(), &k, now);
        let mut schedule = BTreeMap::new();
        run_timers(&mut schedule, &created);
        prop_assert_eq!(&schedule, &recorded(&rec));
        for (ev, gap) in events {
            now += gap;
            let t = match transition(&rec, &ev, &k, now) {
                Ok(t) => t,
                Err(TransitionError::Conflict { .. }) => {
                    // Only a browser's /connect can be refused, and only once connected.
                    prop_assert_eq!(&ev, &CallEvent::Connect);
                    prop_assert_ne!(rec.phase, Phase::Initiated);
                    continue;
                }
            };
            let changed = content(&t.record) != content(&rec);
            if changed {
                prop_assert_eq!(t.record.version, rec.version + 1, "{:?}", ev);
            } else {
                prop_assert_eq!(t.record.version, rec.version, "{:?}", ev);
                prop_assert!(t.effects.is_empty(), "{:?}: {:?}", ev, t.effects);
            }
            prop_assert!(rank(t.record.phase) >= rank(rec.phase), "{:?} moved {:?} back to {:?}", ev, rec.phase, t.record.phase);
            if rec.phase == Phase::Ended {
                prop_assert_eq!(t.record.phase, Phase::Ended);
                prop_assert_eq!(t.record.call_status, rec.call_status);
                prop_assert_eq!(t.record.ended_ms, rec.ended_ms);
                prop_assert_eq!(&t.record.disconnect_reason, &rec.disconnect_reason);
                prop_assert!(!t.effects.contains(&Effect::EnqueueWebhook), "a second webhook");
            }
            if t.record.phase == Phase::Ended {
                prop_assert!(t.record.call_status.is_some() && t.record.ended_ms.is_some());
                prop_assert!(t.record.timers.is_empty());
                prop_assert!(t.record.webhook_payload().is_some());
            }
            // A crash right after this write: the restarted gateway re-arms the timers the
            // record holds, which must be exactly the runner's schedule.
            run_timers(&mut schedule, &t.effects);
            prop_assert_eq!(&schedule, &recorded(&t.record), "after {:?}", ev);
            // ... and the event delivered again (at-least-once), a little later, changes
            // nothing. (A timer that was not yet due may be due by then: that is a fire.)
            let stale_timer = matches!(ev, CallEvent::Timer(_)) && !changed;
            if ev != CallEvent::Connect && !stale_timer {
                let again = transition(&t.record, &ev, &k, now + redelivery).expect("redelivery");
                prop_assert_eq!(&again.record, &t.record, "redelivered {:?}", ev);
                prop_assert!(again.effects.is_empty(), "redelivered {:?}: {:?}", ev, again.effects);
            }
            rec = t.record;
        }
    }
}
