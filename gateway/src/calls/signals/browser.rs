//! The agent's browser: what its `/status` reports mean. (Its `/hangup` is always
//! `HangupRequested`; whose hangup it was is `calls::hangup`'s to find out.)

use c2c_callstate::CallEvent;
use c2c_tenancy::AnswerDetection;

/// The event a `/status` report amounts to in answer-detection `mode`, if any. The
/// browser's ANSWERED comes from the customer's leg turning `active` in its room: an
/// observation, the answer signal in `webhook` mode (LiveKit has no webhook for it) and
/// a quicker one in `poll` mode. In `sip` mode the SIP edge's 200 OK is authoritative
/// and the report only a UI hint.
pub fn report_event(status: &str, mode: AnswerDetection) -> Option<CallEvent> {
    match status.trim().to_ascii_uppercase().as_str() {
        "ANSWERED" | "ACTIVE" if mode != AnswerDetection::Sip => Some(CallEvent::Answered),
        "RINGING" => Some(CallEvent::Ringing),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answered_counts_except_in_sip_mode() {
        for mode in [AnswerDetection::Poll, AnswerDetection::Webhook] {
            assert_eq!(report_event(" answered ", mode), Some(CallEvent::Answered));
            assert_eq!(report_event("ACTIVE", mode), Some(CallEvent::Answered));
        }
        assert_eq!(report_event("ANSWERED", AnswerDetection::Sip), None);
        assert_eq!(
            report_event("ringing", AnswerDetection::Sip),
            Some(CallEvent::Ringing)
        );
        assert_eq!(report_event("anything else", AnswerDetection::Poll), None);
    }
}
