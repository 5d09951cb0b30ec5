//! What one look at a call's LiveKit room says: the customer's SIP leg (by identity or
//! kind) and its `sip.callStatus`, the agent's presence, and the call events that follow.
//! Used by the poller, the start-up reconcile, the dial's look after it returns and the
//! hangup resolver, so they read a room the same way.

use c2c_callstate::{CallEvent, CallRecord, LegSeen, Phase};
use c2c_livekit::ParticipantSnapshot;

/// Identity the gateway gives the customer's SIP participant.
pub const SIP_IDENTITY: &str = "sip-customer";

/// The customer's SIP leg in a sample of a room, if it is there.
pub fn customer_leg(parts: &[ParticipantSnapshot]) -> Option<&ParticipantSnapshot> {
    parts
        .iter()
        .find(|p| p.kind_sip || p.identity == SIP_IDENTITY)
}

/// How long after LiveKit accepted a dial the customer's leg may take to show up in the
/// room before its absence means it is gone. LiveKit adds the leg before it answers the
/// dial; the grace covers a server that does not.
pub const LEG_APPEAR_GRACE_MS: u64 = 2_000;

/// What a sample of a room shows of the customer's leg.
pub fn leg_seen(parts: &[ParticipantSnapshot]) -> LegSeen {
    match customer_leg(parts) {
        None => LegSeen::NotThere,
        Some(p) => match p.call_status.as_deref() {
            Some("ringing") => LegSeen::Ringing,
            Some("active") => LegSeen::Active,
            Some("hangup") => LegSeen::Left {
                sip_code: p.sip_code,
                disconnect_reason: p.disconnect_reason.clone(),
            },
            // `dialing`, `automation`, or no status yet.
            _ => LegSeen::Dialing,
        },
    }
}

/// What one sample of a room, taken at `now_ms`, says about a call.
pub fn events_from_sample(
    rec: &CallRecord,
    parts: &[ParticipantSnapshot],
    now_ms: u64,
) -> Vec<CallEvent> {
    let mut out = Vec::new();
    match leg_seen(parts) {
        LegSeen::NotThere => {
            // The leg is gone: it ended between samples (LiveKit removes departed
            // participants, so its code is lost here). But while the dial request is
            // still in flight its own answer — with the carrier's exact code — is on the
            // way, so absence proves nothing yet; and right after the dial returned, a leg
            // that was never seen may not have appeared yet.
            if leg_absence_is_final(rec, now_ms) {
                out.push(CallEvent::CustomerLeft {
                    sip_code: None,
                    disconnect_reason: None,
                });
            }
        }
        leg => out.extend(leg.event().filter(|ev| !already_past(rec, ev))),
    }
    let agent_here = parts.iter().any(|p| p.identity == rec.agent_id);
    if agent_here && !rec.agent_present {
        out.push(CallEvent::AgentJoined);
    } else if !agent_here && rec.agent_present && rec.phase != Phase::Initiated {
        out.push(CallEvent::AgentLeft);
    }
    out
}

/// Whether `rec` is already past where `ev` would take it (the leg ringing, answered).
/// Phases only advance, so the call's latest record is past it too and the event is a
/// no-op there; applying it anyway cost the store a read to confirm that, for every
/// answered call on every poll pass until it ended (BENCHMARKS.md, issue 22).
fn already_past(rec: &CallRecord, ev: &CallEvent) -> bool {
    match ev {
        CallEvent::Ringing => matches!(rec.phase, Phase::Ringing | Phase::Active | Phase::Ended),
        CallEvent::Answered => matches!(rec.phase, Phase::Active | Phase::Ended),
        _ => false,
    }
}

/// Whether the customer's leg missing from a sample means it has ended.
fn leg_absence_is_final(rec: &CallRecord, now_ms: u64) -> bool {
    match (rec.phase, rec.dial_returned_ms) {
        (_, None) => false,
        (Phase::Ringing | Phase::Active, Some(_)) => true,
        (Phase::Dialing, Some(at)) => now_ms >= at.saturating_add(LEG_APPEAR_GRACE_MS),
        (Phase::Initiated | Phase::Ended, _) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2c_callstate::{CallKnobs, NewCall};

    fn rec(phase: Phase) -> CallRecord {
        let (mut r, _) = CallRecord::new(
            NewCall {
                call_id: "c2c_0123456789abcdef0123456789abcdef".into(),
                room: "c2c-0123456789abcdef0123456789abcdef".into(),
                tenant: "acme".into(),
                case_id: "c".into(),
                customer_crm_id: "x".into(),
                agent_id: "agent-42".into(),
                customer_number: "9530251797".into(),
                phone_from: "+919999999999".into(),
                trunk_label: "t".into(),
            },
            &CallKnobs::default(),
            0,
        );
        r.phase = phase;
        r.agent_present = true;
        r
    }

    fn agent() -> ParticipantSnapshot {
        ParticipantSnapshot {
            identity: "agent-42".into(),
            kind_sip: false,
            call_status: None,
            disconnect_reason: None,
            sip_code: None,
            publishes_audio: true,
        }
    }

    fn leg(status: &str) -> ParticipantSnapshot {
        ParticipantSnapshot {
            identity: SIP_IDENTITY.into(),
            kind_sip: true,
            call_status: Some(status.into()),
            disconnect_reason: None,
            sip_code: None,
            publishes_audio: true,
        }
    }

    fn left() -> Vec<CallEvent> {
        vec![CallEvent::CustomerLeft {
            sip_code: None,
            disconnect_reason: None,
        }]
    }

    #[test]
    fn a_missing_leg_while_the_dial_is_in_flight_proves_nothing() {
        // The dial's own answer, with the carrier's exact code, is still to come.
        for phase in [Phase::Dialing, Phase::Ringing, Phase::Active] {
            assert!(events_from_sample(&rec(phase), &[agent()], 10_000).is_empty());
        }
    }

    #[test]
    fn a_leg_gone_after_the_dial_returned_ends_the_call() {
        for phase in [Phase::Ringing, Phase::Active] {
            let mut r = rec(phase);
            r.dial_returned_ms = Some(5_000);
            assert_eq!(events_from_sample(&r, &[agent()], 5_001), left());
        }
        // A leg never seen ringing gets a moment to appear after LiveKit accepted the dial.
        let mut r = rec(Phase::Dialing);
        r.dial_returned_ms = Some(5_000);
        assert!(events_from_sample(&r, &[agent()], 5_000 + LEG_APPEAR_GRACE_MS - 1).is_empty());
        assert_eq!(
            events_from_sample(&r, &[agent()], 5_000 + LEG_APPEAR_GRACE_MS),
            left()
        );
    }

    #[test]
    fn only_an_active_leg_is_an_answer() {
        let r = rec(Phase::Dialing);
        assert!(events_from_sample(&r, &[agent(), leg("dialing")], 0).is_empty());
        assert_eq!(
            events_from_sample(&r, &[agent(), leg("ringing")], 0),
            vec![CallEvent::Ringing]
        );
        assert_eq!(
            events_from_sample(&r, &[agent(), leg("active")], 0),
            vec![CallEvent::Answered]
        );
    }

    #[test]
    fn a_leg_state_the_call_is_past_is_no_event() {
        // Ringing again, or answered again: the machine would ignore it on this record and
        // on any later one (phases only advance), so the store is not asked.
        for phase in [Phase::Ringing, Phase::Active] {
            assert!(events_from_sample(&rec(phase), &[agent(), leg("ringing")], 0).is_empty());
        }
        assert!(events_from_sample(&rec(Phase::Active), &[agent(), leg("active")], 0).is_empty());
        // Behind the sample, it still moves the call.
        assert_eq!(
            events_from_sample(&rec(Phase::Ringing), &[agent(), leg("active")], 0),
            vec![CallEvent::Answered]
        );
        // A leg that hung up is news in every phase the poller looks at.
        let mut hung = leg("hangup");
        hung.sip_code = Some(486);
        let ev = events_from_sample(&rec(Phase::Active), &[agent(), hung], 0);
        assert!(
            matches!(
                ev[..],
                [CallEvent::CustomerLeft {
                    sip_code: Some(486),
                    ..
                }]
            ),
            "{ev:?}"
        );
    }

    #[test]
    fn an_absent_agent_is_reported_once_the_call_is_connected() {
        let ev = events_from_sample(&rec(Phase::Active), &[], 0);
        assert!(ev.contains(&CallEvent::AgentLeft), "{ev:?}");
    }
}
