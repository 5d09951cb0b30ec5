//! Placing the customer leg and watching its outcome.
//!
//! The gateway dials with `wait_until_answered`: LiveKit's CreateSIPParticipant then
//! returns when the customer answers, or fails with the carrier's exact SIP status in the
//! Twirp error meta (`sip_status_code`) — the one place LiveKit exposes it without the
//! gateway's own SIP edge. A dial that *returned* is never taken as an answer, though: an
//! older LiveKit, a proxy timing out the long request or a server ignoring the flag
//! returns at once, and a busy customer would reach the CRM as ANSWERED. So after a dial
//! returns the gateway looks at the room once: the customer's leg `active` is the answer;
//! `dialing`/`ringing` leave the answer to the configured detection (polling, LiveKit's
//! webhooks with the browser's report, the SIP edge's 200).

use std::sync::Arc;
use std::time::Duration;

use c2c_callstate::{CallEvent, DialResult, LegSeen};
use c2c_livekit::{CallDial, LiveKitClient, LiveKitError};
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::app::App;
use crate::calls::hangup::DialGuard;
use crate::calls::poller::leg_seen;

/// How long `/connect` waits for an immediate failure (LiveKit unreachable) before it
/// answers `ringing`; anything later reaches the CRM through the webhook.
pub const EARLY_WINDOW: Duration = Duration::from_millis(800);

/// What a finished CreateSIPParticipant request says, before looking at the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialVerdict {
    /// The dial's own result, final.
    Result(DialResult),
    /// The dial returned: the leg exists, and only the room can say whether the customer
    /// answered.
    Accepted,
    /// The request failed in a way that does not say whether LiveKit placed the call (a
    /// timeout, a reset, a proxy's 5xx page): the room tells.
    AskTheRoom,
}

/// Classifies a finished dial request.
pub fn verdict(result: &Result<(), LiveKitError>) -> DialVerdict {
    match result {
        Ok(()) => DialVerdict::Accepted,
        Err(LiveKitError::Rejected {
            sip_status_code: Some(code),
            ..
        }) => DialVerdict::Result(DialResult::Rejected { sip_code: *code }),
        // LiveKit gave up ringing (its ringing_timeout) or the room was deleted under
        // the dial (hangup): the gateway's own ring timer / hangup already decides.
        Err(LiveKitError::Rejected { code, .. }) if code == "canceled" || code == "aborted" => {
            DialVerdict::Result(DialResult::Canceled)
        }
        Err(LiveKitError::NotFound(_)) => DialVerdict::Result(DialResult::Canceled),
        Err(LiveKitError::Unavailable(_) | LiveKitError::BadResponse(_)) => DialVerdict::AskTheRoom,
        Err(_) => DialVerdict::Result(DialResult::Failed {
            reason: "livekit_unavailable".into(),
        }),
    }
}

/// Starts the dial in the background and returns its outcome as applied to the call, if
/// the dial ended within [`EARLY_WINDOW`].
///
/// `in_flight` is taken before the call is stored as DIALING (so a `/hangup` right after
/// `/connect`, or the start-up reconcile, knows this process waits for the dial) and is
/// released once the dial's outcome is applied.
pub async fn start(
    app: &Arc<App>,
    client: Arc<LiveKitClient>,
    in_flight: DialGuard,
    dial: CallDial,
) -> Option<DialResult> {
    let (tx, rx) = oneshot::channel();
    let app2 = app.clone();
    let call_id = dial.call_id.clone();
    let span = crate::calls::span(&call_id);
    tokio::spawn(
        async move {
            let _in_flight = in_flight;
            let room = dial.room.clone();
            let result = client.dial_and_wait(&dial).await.map(|_| ());
            if let Err(e) = &result {
                app2.metrics
                    .livekit_errors
                    .with_label_values(&["create_sip_participant"])
                    .inc();
                tracing::info!(error = %e, "dial ended without answer");
            }
            let applied = settle(&app2, &client, &call_id, &room, verdict(&result)).await;
            let _ = tx.send(applied);
        }
        .instrument(span),
    );
    tokio::time::timeout(EARLY_WINDOW, rx)
        .await
        .ok()
        .and_then(Result::ok)
}

/// Applies a finished dial's outcome — with, where the dial's own word is not enough,
/// what one look at the room shows of the customer's leg, in the same transition (one
/// durable write): an accepted dial is only answered if the leg is `active`. Returns the
/// outcome applied.
async fn settle(
    app: &Arc<App>,
    client: &LiveKitClient,
    call_id: &str,
    room: &str,
    verdict: DialVerdict,
) -> DialResult {
    let result = match verdict {
        DialVerdict::Result(r) => r,
        DialVerdict::Accepted => DialResult::Accepted {
            leg: look_at_leg(app, client, room).await,
        },
        DialVerdict::AskTheRoom => match look_at_leg(app, client, room).await {
            // LiveKit placed the call; only its answer to us was lost.
            LegSeen::NotThere => DialResult::Failed {
                reason: "livekit_unavailable".into(),
            },
            leg => DialResult::Lost { leg },
        },
    };
    if let Err(e) = crate::calls::apply(app, call_id, CallEvent::Dial(result.clone())).await {
        tracing::warn!(error = %e, "dial outcome not applied");
    }
    result
}

/// The customer's leg as one ListParticipants shows it. A failed look counts as not
/// seen: polling, webhooks or the SIP edge still report what follows.
async fn look_at_leg(app: &App, client: &LiveKitClient, room: &str) -> LegSeen {
    match client.list_participants(room).await {
        Ok(parts) => leg_seen(&parts),
        Err(e) => {
            app.metrics
                .livekit_errors
                .with_label_values(&["list_participants"])
                .inc();
            tracing::debug!(error = %e, "cannot look at the room after the dial");
            LegSeen::NotThere
        }
    }
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
    fn a_returned_dial_is_accepted_not_answered() {
        assert_eq!(verdict(&Ok(())), DialVerdict::Accepted);
    }

    #[test]
    fn failures_carry_the_carriers_code_or_ask_the_room() {
        assert_eq!(
            verdict(&rejected("resource_exhausted", Some(486))),
            DialVerdict::Result(DialResult::Rejected { sip_code: 486 })
        );
        assert_eq!(
            verdict(&rejected("canceled", None)),
            DialVerdict::Result(DialResult::Canceled)
        );
        // A timeout or a proxy's error page: the call may well be ringing.
        assert_eq!(
            verdict(&Err(LiveKitError::Unavailable("timed out".into()))),
            DialVerdict::AskTheRoom
        );
        assert!(matches!(
            verdict(&Err(LiveKitError::Unauthorized("bad key".into()))),
            DialVerdict::Result(DialResult::Failed { .. })
        ));
    }
}
