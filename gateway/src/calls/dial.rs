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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use c2c_callstate::{CallEvent, CallRecord, DialResult, LegSeen};
use c2c_dialplan::DialPlan;
use c2c_livekit::{CallDial, LiveKitClient, LiveKitError};
use parking_lot::Mutex;
use tokio::sync::watch;
use tracing::Instrument;

use crate::app::App;
use crate::calls::signals::room::leg_seen;

/// How much longer LiveKit rings than the gateway's ring timer (see [`prepare`]):
/// enough for a late timer, the write that ends the call and the room's deletion.
const RING_BACKSTOP: Duration = Duration::from_secs(3);

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

/// Dials in flight in this process, so `/connect` can wait for a dial's early result and
/// `/hangup` for its outcome. An entry lives from the `Dial` effect to the dial's
/// outcome being applied: at most one per open call.
#[derive(Default)]
pub struct DialsInFlight {
    by_call: Mutex<HashMap<String, watch::Receiver<Option<DialResult>>>>,
}

/// Held by the dial task. It publishes the applied outcome; dropped without one (a
/// panicking or cancelled task) it still wakes the waiters and forgets the dial.
pub struct DialGuard {
    dials: Arc<DialsInFlight>,
    call_id: String,
    done: watch::Sender<Option<DialResult>>,
}

impl DialGuard {
    fn finish(self, result: DialResult) {
        self.done.send_replace(Some(result));
    }
}

impl Drop for DialGuard {
    fn drop(&mut self) {
        // Waiters then see either the result or, without one, the sender gone.
        self.dials.by_call.lock().remove(&self.call_id);
    }
}

/// What a wait for a dial found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialWait {
    /// The dial finished with this outcome applied (`None`: it ended without one).
    Finished(Option<DialResult>),
    /// No dial of this call is in flight in this process.
    NotInFlight,
    /// Still dialling when the wait ran out.
    Pending,
}

impl DialsInFlight {
    fn begin(self: &Arc<Self>, call_id: &str) -> DialGuard {
        let (done, rx) = watch::channel(None);
        self.by_call.lock().insert(call_id.to_owned(), rx);
        DialGuard {
            dials: self.clone(),
            call_id: call_id.to_owned(),
            done,
        }
    }

    /// True while this process waits for the call's dial.
    pub fn in_flight(&self, call_id: &str) -> bool {
        self.by_call.lock().contains_key(call_id)
    }

    /// Waits at most `limit` for the call's dial to finish.
    pub async fn wait(&self, call_id: &str, limit: Duration) -> DialWait {
        let rx = self.by_call.lock().get(call_id).cloned();
        let Some(mut rx) = rx else {
            return DialWait::NotInFlight;
        };
        let waited = tokio::time::timeout(limit, rx.wait_for(Option::is_some))
            .await
            .map(|r| r.map(|result| result.clone()));
        match waited {
            Ok(Ok(result)) => DialWait::Finished(result),
            // The guard went away without a result: finished all the same.
            Ok(Err(_)) => DialWait::Finished(None),
            Err(_) => DialWait::Pending,
        }
    }
}

/// Carries out a call's `Dial` effect: CreateSIPParticipant in the background, the
/// outcome applied to the call when it comes. The dial is registered before this returns,
/// so `/connect` can wait for its early result ([`DialsInFlight::wait`]).
pub fn start(app: &Arc<App>, rec: &CallRecord) {
    let guard = app.calls().dials().begin(&rec.call_id);
    let app = app.clone();
    let call_id = rec.call_id.clone();
    let span = crate::calls::span(&call_id);
    let prepared = prepare(&app, rec);
    tokio::spawn(
        async move {
            let result = match prepared {
                Ok((client, dial)) => dial_and_settle(&app, &client, &dial).await,
                // Nothing was dialled: the call ends FAILED with the reason.
                Err(reason) => {
                    tracing::warn!(reason, "cannot dial");
                    let result = DialResult::Failed {
                        reason: reason.to_owned(),
                    };
                    apply(&app, &call_id, result.clone()).await;
                    result
                }
            };
            guard.finish(result);
        }
        .instrument(span),
    );
}

/// The LiveKit client and the CreateSIPParticipant request for a call, from the policy
/// in force (a prefix edited since click2call applies to the dial), or the short reason
/// (a `disconnect_reason` code) why there is none.
fn prepare(app: &App, rec: &CallRecord) -> Result<(Arc<LiveKitClient>, CallDial), &'static str> {
    let policy = app.policy().get();
    let tenant = policy.tenant(&rec.tenant).ok_or("tenant_removed")?;
    let n = DialPlan::new(tenant)
        .preview(
            &rec.trunk_label,
            &rec.customer_number,
            Some(&rec.phone_from),
        )
        .map_err(|e| e.code())?;
    let client = app
        .livekit()
        .client_for_tenant(&policy, &tenant.id)
        .ok_or("no_livekit_project")?;
    let knobs = &policy.gateway.calls;
    let dial = CallDial {
        trunk_id: n.livekit_trunk_id,
        call_to: n.dialed,
        room: rec.room.clone(),
        sip_number: n.caller_id,
        // The gateway's own ring timer ends the call (`ring_timeout`); LiveKit's
        // `ringing_timeout` is only a backstop in case the gateway is down then. Equal,
        // the two raced: LiveKit's CANCEL came back from the carrier as a 487 that reads
        // as the customer's end (`customer_left`) whenever the gateway's timer ran a
        // moment late (seen in a fresh-clone run of `.ci/run`).
        ring_timeout: knobs.ring_timeout + RING_BACKSTOP,
        // The gateway's own max-duration timer ends the call; LiveKit's limit is only a
        // backstop in case the gateway is down at that moment.
        max_duration: knobs.max_duration + Duration::from_secs(30),
        call_id: rec.call_id.clone(),
        tenant: Some(rec.tenant.clone()),
        category: rec.call_category.clone(),
    };
    Ok((client, dial))
}

/// CreateSIPParticipant, then its outcome (and what the room shows) applied to the call.
async fn dial_and_settle(app: &Arc<App>, client: &LiveKitClient, dial: &CallDial) -> DialResult {
    let result = client.dial_and_wait(dial).await.map(|_| ());
    if let Err(e) = &result {
        app.metrics()
            .livekit_errors
            .with_label_values(&["create_sip_participant"])
            .inc();
        tracing::info!(error = %e, "dial ended without answer");
    }
    settle(app, client, &dial.call_id, &dial.room, verdict(&result)).await
}

async fn apply(app: &Arc<App>, call_id: &str, result: DialResult) {
    if let Err(e) = crate::calls::apply(app, call_id, CallEvent::Dial(result)).await {
        tracing::warn!(error = %e, "dial outcome not applied");
    }
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
    apply(app, call_id, result.clone()).await;
    result
}

/// The customer's leg as one ListParticipants shows it. A failed look counts as not
/// seen: polling, webhooks or the SIP edge still report what follows.
async fn look_at_leg(app: &App, client: &LiveKitClient, room: &str) -> LegSeen {
    match client.list_participants(room).await {
        Ok(parts) => leg_seen(&parts),
        Err(e) => {
            app.metrics()
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

    #[tokio::test]
    async fn a_wait_ends_with_the_applied_result_or_at_the_limit() {
        let dials = Arc::new(DialsInFlight::default());
        assert_eq!(
            dials.wait("none", Duration::from_millis(1)).await,
            DialWait::NotInFlight
        );
        let guard = dials.begin("c1");
        assert!(dials.in_flight("c1"));
        assert_eq!(
            dials.wait("c1", Duration::from_millis(20)).await,
            DialWait::Pending
        );
        let d2 = dials.clone();
        let waiter = tokio::spawn(async move { d2.wait("c1", Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        guard.finish(DialResult::Canceled);
        assert_eq!(
            waiter.await.unwrap(),
            DialWait::Finished(Some(DialResult::Canceled))
        );
        assert!(!dials.in_flight("c1"));
    }

    #[tokio::test]
    async fn a_dial_task_that_dies_still_wakes_its_waiters() {
        let dials = Arc::new(DialsInFlight::default());
        let guard = dials.begin("c1");
        let d2 = dials.clone();
        let waiter = tokio::spawn(async move { d2.wait("c1", Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(guard);
        assert_eq!(waiter.await.unwrap(), DialWait::Finished(None));
        assert!(dials.by_call.lock().is_empty());
    }
}
