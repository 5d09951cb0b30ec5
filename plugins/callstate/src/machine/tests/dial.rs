//! What the dial's result does: a dial that returned is not an answer; a rejected or
//! unplaceable dial ends the call with the carrier's code; results out of phase change
//! nothing.

use super::*;

fn dial(r: DialResult) -> CallEvent {
    CallEvent::Dial(r)
}

#[test]
fn a_dial_that_returned_is_not_an_answer() {
    // LiveKit may return CreateSIPParticipant at once, whatever wait_until_answered says.
    for p in [Dialing, Ringing] {
        let rec = in_phase(p);
        assert!(rec.dial_pending());
        let accepted = DialResult::Accepted {
            leg: LegSeen::Dialing,
        };
        let t = step(&rec, &dial(accepted.clone()), T0 + 9_000);
        assert_eq!(
            t.record.phase, p,
            "a returned dial must not answer the call"
        );
        assert_eq!(t.record.answered_ms, None);
        assert_eq!(t.record.dial_returned_ms, Some(T0 + 9_000));
        assert!(!t.record.dial_pending());
        assert_eq!(t.record.version, rec.version + 1);
        assert!(t.effects.is_empty(), "{:?}", t.effects);
        // Only the first result counts.
        let again = step(&t.record, &dial(accepted), T0 + 9_500);
        assert_eq!(again.record, t.record);
    }
}

#[test]
fn an_accepted_dial_with_the_leg_active_is_answered_in_one_write() {
    // "The dial's own result showing the SIP participant active".
    let rec = in_phase(Ringing);
    let t = step(
        &rec,
        &dial(DialResult::Accepted {
            leg: LegSeen::Active,
        }),
        T0 + 9_000,
    );
    assert_eq!(t.record.phase, Active);
    assert_eq!(t.record.answered_ms, Some(T0 + 9_000));
    assert_eq!(t.record.dial_returned_ms, Some(T0 + 9_000));
    assert_eq!(t.record.version, rec.version + 1, "one durable write");
    assert!(t
        .effects
        .contains(&Effect::CancelTimer(TimerKind::RingTimeout)));
    // Seen ringing: RINGING; seen gone with a reason: the customer's outcome.
    let t = step(
        &in_phase(Dialing),
        &dial(DialResult::Accepted {
            leg: LegSeen::Ringing,
        }),
        T0 + 9_000,
    );
    assert_eq!(t.record.phase, Ringing);
    let gone = DialResult::Accepted {
        leg: LegSeen::Left {
            sip_code: None,
            disconnect_reason: Some("USER_REJECTED".into()),
        },
    };
    let t = end_via(Dialing, dial(gone), NotAnswered, "USER_REJECTED");
    assert!(t.record.dial_returned_ms.is_some());
}

#[test]
fn a_rejected_dial_ends_with_the_carriers_code() {
    for (code, status) in [(486, NotAnswered), (603, NotAnswered), (503, Failed)] {
        for p in [Dialing, Ringing] {
            let t = end_via(
                p,
                dial(DialResult::Rejected { sip_code: code }),
                status,
                "customer_left",
            );
            assert_eq!(t.record.sip_disconnect_code, Some(code));
            assert!(t.record.dial_returned_ms.is_some());
        }
    }
    // Answered by the browser's report while the dial still waited.
    end_via(
        Active,
        dial(DialResult::Rejected { sip_code: 487 }),
        Answered,
        "customer_left",
    );
    // After our own teardown the code is still recorded, nothing else changes.
    let ended = in_phase(Ended);
    let t = step(
        &ended,
        &dial(DialResult::Rejected { sip_code: 486 }),
        T0 + 70_000,
    );
    assert_eq!(t.record.sip_disconnect_code, Some(486));
    assert_eq!(t.record.phase, Ended);
    assert!(t.effects.is_empty());
}

#[test]
fn a_dial_livekit_could_not_place_fails_and_masks_digits() {
    let ev = dial(DialResult::Failed {
        reason: "INVITE sip:99119530251797@carrier failed: 503".into(),
    });
    let t = end_via(Dialing, ev, Failed, "INVITE sip:*@carrier failed: 503");
    assert_eq!(t.record.sip_disconnect_code, None);
    let empty = dial(DialResult::Failed {
        reason: "  ".into(),
    });
    end_via(Dialing, empty, Failed, "dial_failed");
}

#[test]
fn a_canceled_dial_leaves_the_verdict_to_timers() {
    for p in [Dialing, Ringing, Active] {
        let rec = in_phase(p);
        let t = step(&rec, &dial(DialResult::Canceled), T0 + 9_000);
        assert_eq!(t.record.phase, p);
        assert!(!t.record.dial_pending());
        assert!(t.effects.is_empty());
    }
}

#[test]
fn a_lost_dial_without_a_leg_says_so_instead_of_ringing_out() {
    let lost = |leg| dial(DialResult::Lost { leg });
    for p in [Dialing, Ringing] {
        end_via(p, lost(LegSeen::NotThere), Failed, "dial_interrupted");
    }
    end_via(Active, lost(LegSeen::NotThere), Answered, "customer_left");
    // With the leg still in the room the call goes on, followed by the usual signals.
    let rec = in_phase(Ringing);
    let t = step(&rec, &lost(LegSeen::Ringing), T0 + 9_000);
    assert_eq!(t.record.phase, Ringing);
    assert!(!t.record.dial_pending());
    assert!(t.effects.is_empty());
    // Answered while nobody listened: observed now.
    let t = step(&rec, &lost(LegSeen::Active), T0 + 9_000);
    assert_eq!(t.record.phase, Active);
    // Gone with LiveKit's reason: that reason, not dial_interrupted.
    let left = LegSeen::Left {
        sip_code: None,
        disconnect_reason: Some("SIP_TRUNK_FAILURE".into()),
    };
    end_via(Dialing, lost(left), Failed, "SIP_TRUNK_FAILURE");
}

#[test]
fn dial_results_before_connect_or_after_the_end_change_nothing() {
    for r in [
        DialResult::Accepted {
            leg: LegSeen::Active,
        },
        DialResult::Canceled,
        DialResult::Failed { reason: "x".into() },
        DialResult::Lost {
            leg: LegSeen::NotThere,
        },
    ] {
        assert_ignored(Initiated, &dial(r.clone()));
        assert_ignored(Ended, &dial(r));
    }
    assert_ignored(Initiated, &dial(DialResult::Rejected { sip_code: 486 }));
}
