//! What the SIP edge's media relay tells the call: dead air (`MediaTimeout`) ends only an
//! answered call, as `media_timeout`, with the same effects as any other end.

use super::*;
use crate::CallMedia;

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

#[test]
fn the_relays_report_is_recorded_once_in_any_phase() {
    let report = CallMedia {
        media_timeout: true,
        strangers: 3,
        ..CallMedia::default()
    };
    // Usually after the end (the relay stops with the dialog): no phase change; the one
    // effect tells a webhook waiting for the media (`media_in_payload`) it may go.
    let ended = step(
        &in_phase(Active),
        &CallEvent::AgentHangup,
        ANSWER_AT + 9_000,
    )
    .record;
    let t = step(
        &ended,
        &CallEvent::Media(Box::new(report.clone())),
        ANSWER_AT + 9_100,
    );
    assert_eq!(t.record.phase, Ended);
    assert_eq!(t.record.media.as_ref(), Some(&report));
    assert_eq!(t.record.version, ended.version + 1);
    assert_eq!(t.effects, vec![Effect::MediaRecorded]);
    // A redelivered report changes nothing.
    let other = CallMedia::default();
    let again = step(
        &t.record,
        &CallEvent::Media(Box::new(other)),
        ANSWER_AT + 9_200,
    );
    assert_eq!(again.record, t.record);
    assert!(again.effects.is_empty(), "{:?}", again.effects);
}
