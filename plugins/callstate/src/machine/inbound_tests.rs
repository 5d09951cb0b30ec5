//! The inbound rows of the transition table: born RINGING, offers, accept, answer, and
//! every unanswered end being MISSED with the caller released.

use super::*;
use crate::record::{Direction, NewInboundCall, OfferOutcome, WebhookPayload};

const T0: u64 = 1_700_000_000_000;
const RING: u64 = 60_000;

fn knobs() -> CallKnobs {
    CallKnobs::default()
}

fn fresh() -> CallRecord {
    let new = NewInboundCall {
        call_id: "c2c_0123456789abcdef0123456789abcdef".into(),
        room: "c2c-0123456789abcdef0123456789abcdef".into(),
        tenant: "acme".into(),
        caller: "+919812345678".into(),
        did: "+918045678901".into(),
        trunk_label: "airtel-mum".into(),
    };
    let (r, fx) = CallRecord::new_inbound(new, RING, &knobs(), T0);
    let at_ms = T0 + RING + knobs().inbound_connect_ms;
    assert_eq!(
        fx,
        vec![
            Effect::Created,
            Effect::ArmTimer {
                kind: TimerKind::RingTimeout,
                at_ms
            }
        ]
    );
    r
}

fn step(rec: &CallRecord, ev: CallEvent, now: u64) -> Transition {
    transition(rec, &ev, &knobs(), now).expect("transition")
}

fn offered(agent: &str) -> CallEvent {
    CallEvent::Offered {
        agent_id: agent.into(),
    }
}

fn accepted(agent: &str) -> CallEvent {
    CallEvent::Accepted {
        agent_id: agent.into(),
    }
}

#[test]
fn born_ringing_inbound_with_no_dial_in_flight() {
    let r = fresh();
    assert_eq!(r.phase, Phase::Ringing);
    assert_eq!(r.direction, Direction::Inbound);
    assert!(!r.dial_pending());
    assert!(r.agent_id.is_empty());
}

#[test]
fn offers_are_recorded_with_their_outcomes() {
    let r = step(&fresh(), offered("a1"), T0 + 10).record;
    let r = step(
        &r,
        CallEvent::OfferEnded {
            agent_id: "a1".into(),
            outcome: OfferOutcome::Rejected,
        },
        T0 + 20,
    )
    .record;
    let r = step(&r, offered("a2"), T0 + 30).record;
    let t = step(&r, accepted("a2"), T0 + 40);
    let r = t.record;
    assert_eq!(r.agent_id, "a2");
    assert_eq!(r.connected_ms, Some(T0 + 40));
    let outcomes: Vec<_> = r
        .offers
        .iter()
        .map(|o| (o.agent_id.as_str(), o.outcome))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("a1", Some(OfferOutcome::Rejected)),
            ("a2", Some(OfferOutcome::Accepted))
        ]
    );
    // The ring backstop now bounds the connect: LiveKit must answer in time.
    assert_eq!(
        r.timer(TimerKind::RingTimeout),
        Some(T0 + 40 + knobs().inbound_connect_ms)
    );
    // A second accept (another agent, or a double click) finds the offer gone.
    let err = transition(&r, &accepted("a1"), &knobs(), T0 + 50).unwrap_err();
    assert!(matches!(
        err,
        TransitionError::Conflict {
            code: "offer_gone",
            ..
        }
    ));
}

#[test]
fn an_answer_before_any_accept_is_ignored() {
    let t = step(&fresh(), CallEvent::Answered, T0 + 5);
    assert!(t.effects.is_empty());
    assert_eq!(t.record.phase, Phase::Ringing);
}

#[test]
fn accepted_then_answered_ends_answered_with_the_inbound_payload() {
    let r = step(&fresh(), offered("a1"), T0 + 10).record;
    let r = step(&r, accepted("a1"), T0 + 20).record;
    let r = step(
        &r,
        CallEvent::LeadFound {
            lead_id: "lead-7".into(),
        },
        T0 + 25,
    )
    .record;
    let t = step(&r, CallEvent::Answered, T0 + 1_000);
    assert_eq!(t.record.phase, Phase::Active);
    let t = step(
        &t.record,
        CallEvent::CustomerLeft {
            sip_code: None,
            disconnect_reason: None,
        },
        T0 + 43_000,
    );
    assert!(!t.effects.contains(&Effect::RefuseCaller));
    let Some(WebhookPayload::Inbound(p)) = t.record.webhook_payload() else {
        panic!("inbound payload");
    };
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(
        json,
        concat!(
            r#"{"call_id":"c2c_0123456789abcdef0123456789abcdef","direction":"inbound","#,
            r#""phone_from":"+919812345678","phone_to":"+918045678901","#,
            r#""call_status":"ANSWERED","duration_seconds":42,"agent_id":"a1","lead_id":"lead-7"}"#
        )
    );
}

#[test]
fn every_unanswered_end_is_missed_and_releases_the_caller() {
    let offered = step(&fresh(), offered("a1"), T0 + 10).record;
    let accepted = step(&offered, accepted("a1"), T0 + 20).record;
    let cases: Vec<(CallRecord, CallEvent)> = vec![
        (
            offered.clone(),
            CallEvent::Missed {
                reason: "caller_hung_up".into(),
            },
        ),
        (offered.clone(), CallEvent::Timer(TimerKind::RingTimeout)),
        (
            accepted.clone(),
            CallEvent::CustomerLeft {
                sip_code: Some(487),
                disconnect_reason: None,
            },
        ),
        (accepted.clone(), CallEvent::RoomFinished),
        (accepted.clone(), CallEvent::HangupRequested),
    ];
    for (rec, ev) in cases {
        let now = rec.timer(TimerKind::RingTimeout).unwrap_or(T0) + 1;
        let t = step(&rec, ev.clone(), now);
        assert_eq!(t.record.phase, Phase::Ended, "{ev:?}");
        assert_eq!(t.record.call_status, Some(CallStatus::Missed), "{ev:?}");
        assert!(t.effects.contains(&Effect::RefuseCaller), "{ev:?}");
        assert!(t.effects.contains(&Effect::EnqueueWebhook), "{ev:?}");
        assert!(
            t.record.offers.iter().all(|o| o.outcome.is_some()),
            "{ev:?}: no offer left open"
        );
        assert_eq!(
            t.record.webhook_payload().unwrap().call_status(),
            CallStatus::Missed
        );
    }
}

#[test]
fn connect_is_refused_and_inbound_events_mean_nothing_to_outbound_calls() {
    let err = transition(&fresh(), &CallEvent::Connect, &knobs(), T0 + 1).unwrap_err();
    assert!(matches!(
        err,
        TransitionError::Conflict {
            code: "inbound_call",
            ..
        }
    ));
    let out = CallRecord::new(super::tests::new_call(), &knobs(), T0).0;
    for ev in [
        offered("a"),
        accepted("a"),
        CallEvent::Missed { reason: "x".into() },
    ] {
        let t = step(&out, ev, T0 + 1);
        assert_eq!(t.record, out);
    }
}

#[test]
fn an_outbound_record_without_the_new_fields_reads_back_unchanged() {
    let out = CallRecord::new(super::tests::new_call(), &knobs(), T0).0;
    let json = serde_json::to_string(&out).unwrap();
    assert!(
        !json.contains("direction") && !json.contains("offers"),
        "{json}"
    );
    let back: CallRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(back, out);
    let inbound = serde_json::to_string(&fresh()).unwrap();
    assert!(inbound.contains(r#""direction":"inbound""#), "{inbound}");
}
