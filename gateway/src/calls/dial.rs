//! Placing the customer leg and watching its outcome.
//!
//! The gateway dials with `wait_until_answered`: LiveKit's CreateSIPParticipant then
//! returns when the customer answers, or fails with the carrier's exact SIP status in the
//! Twirp error meta (`sip_status_code`) — the one place LiveKit exposes it without the
//! gateway's own SIP edge. So in every answer-detection mode the dial itself is a first,
//! exact signal: answered, or ended with its code. Polling, webhooks and the browser's
//! report still run as configured (ringing, hangups after answer, agent presence).

use std::sync::Arc;
use std::time::Duration;

use c2c_callstate::CallEvent;
use c2c_livekit::{CallDial, LiveKitClient, LiveKitError};
use tokio::sync::oneshot;

use crate::app::App;

/// How long `/connect` waits for an immediate failure (LiveKit unreachable) before it
/// answers `ringing`; anything later reaches the CRM through the webhook.
pub const EARLY_WINDOW: Duration = Duration::from_millis(800);

/// The event a finished dial means for the call, if any.
pub fn event_for(result: &Result<(), LiveKitError>) -> Option<CallEvent> {
    match result {
        Ok(()) => Some(CallEvent::Answered),
        Err(LiveKitError::Rejected {
            sip_status_code: Some(code),
            ..
        }) => Some(CallEvent::CustomerLeft {
            sip_code: Some(*code),
            disconnect_reason: None,
        }),
        // LiveKit gave up ringing (its ringing_timeout) or the room was deleted under
        // the dial (hangup): the gateway's own ring timer / hangup already decides.
        Err(LiveKitError::Rejected { code, .. }) if code == "canceled" || code == "aborted" => None,
        Err(LiveKitError::NotFound(_)) => None,
        Err(_) => Some(CallEvent::DialFailed {
            sip_code: None,
            reason: "livekit_unavailable".into(),
        }),
    }
}

/// Starts the dial in the background and returns the early result, if the dial ended
/// within [`EARLY_WINDOW`].
pub async fn start(
    app: &Arc<App>,
    client: Arc<LiveKitClient>,
    call_id: String,
    dial: CallDial,
) -> Option<Result<(), LiveKitError>> {
    let (tx, rx) = oneshot::channel();
    let app2 = app.clone();
    // Registered before /connect answers, so a /hangup right after it finds the dial.
    let in_flight = app.dials.begin(&call_id);
    tokio::spawn(async move {
        let _in_flight = in_flight;
        let result = client.dial_and_wait(&dial).await.map(|_| ());
        if let Err(e) = &result {
            app2.metrics
                .livekit_errors
                .with_label_values(&["create_sip_participant"])
                .inc();
            tracing::info!(error = %e, "dial ended without answer");
        }
        if let Some(ev) = event_for(&result) {
            if let Err(e) = crate::calls::apply(&app2, &call_id, ev).await {
                tracing::warn!(error = %e, "dial outcome not applied");
            }
        }
        let _ = tx.send(result);
    });
    tokio::time::timeout(EARLY_WINDOW, rx)
        .await
        .ok()
        .and_then(Result::ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(code: &str, sip: Option<u16>) -> Result<(), LiveKitError> {
        Err(LiveKitError::Rejected {
            code: code.into(),
            msg: "m".into(),
            sip_status_code: sip,
        })
    }

    #[test]
    fn outcomes_map_to_events() {
        assert_eq!(event_for(&Ok(())), Some(CallEvent::Answered));
        assert_eq!(
            event_for(&rejected("resource_exhausted", Some(486))),
            Some(CallEvent::CustomerLeft {
                sip_code: Some(486),
                disconnect_reason: None
            })
        );
        assert_eq!(event_for(&rejected("canceled", None)), None);
        assert!(matches!(
            event_for(&Err(LiveKitError::Unavailable("down".into()))),
            Some(CallEvent::DialFailed { .. })
        ));
    }
}
