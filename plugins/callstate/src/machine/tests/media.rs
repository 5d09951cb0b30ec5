//! What the SIP edge's media relay tells the call: dead air (`MediaTimeout`) ends only an
//! answered call, as `media_timeout`, with the same effects as any other end.

use super::*;

#[test]
fn media_timeout_ends_only_an_answered_call() {
    let t = step(
        &in_phase(Active),
        &CallEvent::MediaTimeout,
        ANSWER_AT + 31_000,
    );
    assert_eq!(t.record.phase, Ended);
    assert_eq!(t.record.call_status, Some(CallStatus::Answered));
    assert_eq!(t.record.disconnect_reason.as_deref(), Some("media_timeout"));
    assert_eq!(t.record.ended_ms, Some(ANSWER_AT + 31_000));
    // The room goes (LiveKit SIP then sends the carrier its BYE) and the CRM hears once.
    assert!(t.effects.contains(&Effect::DeleteRoom));
    assert!(t.effects.contains(&Effect::EnqueueWebhook));
    // Before the answer silence is the carrier's business (ringback gaps, announcements
    // that have ended); after the end nothing changes.
    for p in [Initiated, Dialing, Ringing, Ended] {
        assert_ignored(p, &CallEvent::MediaTimeout);
    }
}
