//! Who ended the call when a browser posts `/hangup`.
//!
//! The contract's snippet posts `/hangup` in two cases: the agent clicked hang up, and
//! the customer's SIP participant left the room (`ParticipantDisconnected`). The second
//! races the gateway's own signals — the dial result (busy, failed), the poller, LiveKit's
//! `participant_left` webhook — and often wins. Taking every `/hangup` as the agent's
//! would turn a busy customer into "agent_cancelled" and a 503 trunk failure into
//! NOT_ANSWERED instead of FAILED. So a `/hangup` on a dialled call first looks at the
//! room once: a customer leg that is still up means the agent hung up; one that is gone
//! means the customer left, and the event says so.
//!
//! That look (and, for a dial still in flight, the wait for its result) takes up to
//! [`SAMPLE_TIMEOUT`] + [`DIAL_SETTLE`], which the agent's button must not wait for:
//! `/hangup` stores `HangupRequested` durably and answers at once, and the state machine's
//! `ResolveHangup` effect runs [`spawn_resolve`] in the background. If the gateway dies
//! before it reports, the record's `HangupSettle` timer ends the call as the agent's.

use std::sync::Arc;
use std::time::Duration;

use c2c_callstate::{CallEvent, CallRecord, Phase};
use c2c_livekit::{LiveKitError, ParticipantSnapshot};
use tracing::Instrument;

use crate::app::App;
use crate::calls::dial::DialWait;
use crate::calls::signals::room::customer_leg;

/// How long the resolver waits for LiveKit's participant list. Past it the hangup is the
/// agent's: a slow LiveKit must not keep the customer's phone ringing.
pub const SAMPLE_TIMEOUT: Duration = Duration::from_millis(1000);

/// How long `/hangup` on a still-DIALING call with no customer leg in the room waits for
/// the in-flight dial to report. The leg is either not created yet (the agent was quick;
/// nothing comes and the hangup is the agent's) or already rejected, and then LiveKit's
/// answer to CreateSIPParticipant, carrying the carrier's SIP code, is milliseconds away.
pub const DIAL_SETTLE: Duration = Duration::from_millis(1500);

/// The `HangupSettle` backstop: longer than the resolver can take.
pub const SETTLE_LIMIT: Duration =
    Duration::from_millis(SAMPLE_TIMEOUT.as_millis() as u64 + DIAL_SETTLE.as_millis() as u64 + 500);

/// What one look at the room says about a `/hangup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HangupCause {
    /// The customer's leg is up (or the call was never dialled): the agent hung up.
    Agent,
    /// The customer's leg has ended; carries what LiveKit still shows of it.
    Customer(CallEvent),
    /// The dial is in flight and no customer leg is in the room: the dial's own result
    /// decides.
    AwaitDial,
}

/// Classifies a `/hangup` on `rec` from a sample of its room.
pub fn cause_from_sample(rec: &CallRecord, parts: &[ParticipantSnapshot]) -> HangupCause {
    if !matches!(rec.phase, Phase::Dialing | Phase::Ringing | Phase::Active) {
        return HangupCause::Agent;
    }
    match customer_leg(parts) {
        Some(p) if p.call_status.as_deref() == Some("hangup") => {
            HangupCause::Customer(CallEvent::CustomerLeft {
                sip_code: p.sip_code,
                disconnect_reason: p.disconnect_reason.clone(),
            })
        }
        Some(_) => HangupCause::Agent,
        None if rec.dial_pending() => HangupCause::AwaitDial,
        None => HangupCause::Customer(CallEvent::CustomerLeft {
            sip_code: None,
            disconnect_reason: None,
        }),
    }
}

fn sample_failed(app: &App, error: &str) {
    app.metrics()
        .livekit_errors
        .with_label_values(&["list_participants"])
        .inc();
    tracing::warn!(
        error,
        "cannot sample the room on hangup; taking it as the agent's"
    );
}

/// Works out whose `/hangup` `rec` carries and ends the call accordingly, in the
/// background (the `ResolveHangup` effect).
pub fn spawn_resolve(app: &Arc<App>, rec: &CallRecord) {
    let app = app.clone();
    let rec = rec.clone();
    let span = crate::calls::span(&rec.call_id);
    tokio::spawn(
        async move {
            let cause = hangup_event(&app, &rec).await;
            let ended = match cause {
                Some(ev) => match crate::calls::apply(&app, &rec.call_id, ev).await {
                    Ok(now) => now.is_ended(),
                    Err(e) => {
                        tracing::warn!(error = %e, "hangup cause not applied");
                        false
                    }
                },
                None => false,
            };
            // Whatever the cause, /hangup ends the call (a no-op if another signal did).
            if !ended {
                if let Err(e) =
                    crate::calls::apply(&app, &rec.call_id, CallEvent::AgentHangup).await
                {
                    // The HangupSettle timer ends it later.
                    tracing::warn!(error = %e, "agent hangup not applied");
                }
            }
        }
        .instrument(span),
    );
}

/// The event a `/hangup` on `rec` means, after looking at the room (and, for a dial whose
/// leg is missing, waiting for the dial). `None`: the dial reported meanwhile and its
/// outcome is applied; whatever is left to do is the agent's.
pub async fn hangup_event(app: &App, rec: &CallRecord) -> Option<CallEvent> {
    if !matches!(rec.phase, Phase::Dialing | Phase::Ringing | Phase::Active) {
        return Some(CallEvent::AgentHangup);
    }
    let client = app
        .livekit()
        .client_for_tenant(&app.policy().get(), &rec.tenant)?;
    let parts =
        match tokio::time::timeout(SAMPLE_TIMEOUT, client.list_participants(&rec.room)).await {
            Ok(Ok(parts)) => parts,
            // The room is already gone (another teardown won): nothing left to tell apart.
            Ok(Err(LiveKitError::NotFound(_))) => return Some(CallEvent::AgentHangup),
            // LiveKit failing or slow must not hold the agent's button: count it, and take
            // the hangup as the agent's.
            Ok(Err(e)) => {
                sample_failed(app, &e.to_string());
                return Some(CallEvent::AgentHangup);
            }
            Err(_) => {
                sample_failed(app, "timed out");
                return Some(CallEvent::AgentHangup);
            }
        };
    match cause_from_sample(rec, &parts) {
        HangupCause::Agent => Some(CallEvent::AgentHangup),
        HangupCause::Customer(ev) => Some(ev),
        HangupCause::AwaitDial => match app.calls().dials().wait(&rec.call_id, DIAL_SETTLE).await {
            DialWait::Pending => Some(CallEvent::AgentHangup),
            DialWait::Finished(_) | DialWait::NotInFlight => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::signals::room::SIP_IDENTITY;
    use c2c_callstate::{CallKnobs, NewCall};

    fn rec(phase: Phase) -> CallRecord {
        let (mut r, _) = CallRecord::new(
            NewCall {
                call_id: "c2c_x".into(),
                room: "room".into(),
                tenant: "acme".into(),
                case_id: "c".into(),
                customer_crm_id: "k".into(),
                agent_id: "agent-1".into(),
                customer_number: "9530251797".into(),
                phone_from: "+919999999999".into(),
                trunk_label: "t".into(),
            },
            &CallKnobs {
                ring_timeout_ms: 1,
                agent_drop_grace_ms: 1,
                max_duration_ms: 1,
                unconnected_expiry_ms: 1,
                hangup_settle_ms: 1,
                inbound_connect_ms: 1,
            },
            0,
        );
        r.phase = phase;
        r
    }

    fn sip(status: &str, code: Option<u16>) -> ParticipantSnapshot {
        ParticipantSnapshot {
            identity: SIP_IDENTITY.into(),
            kind_sip: true,
            call_status: Some(status.into()),
            disconnect_reason: None,
            sip_code: code,
            publishes_audio: true,
        }
    }

    fn agent() -> ParticipantSnapshot {
        ParticipantSnapshot {
            identity: "agent-1".into(),
            kind_sip: false,
            call_status: None,
            disconnect_reason: None,
            sip_code: None,
            publishes_audio: true,
        }
    }

    #[test]
    fn a_live_customer_leg_means_the_agent_hung_up() {
        for (phase, status) in [
            (Phase::Dialing, "dialing"),
            (Phase::Ringing, "ringing"),
            (Phase::Active, "active"),
        ] {
            assert_eq!(
                cause_from_sample(&rec(phase), &[agent(), sip(status, None)]),
                HangupCause::Agent
            );
        }
    }

    #[test]
    fn a_gone_customer_leg_means_the_customer_left() {
        for phase in [Phase::Ringing, Phase::Active] {
            let mut r = rec(phase);
            r.dial_returned_ms = Some(1);
            assert_eq!(
                cause_from_sample(&r, &[agent()]),
                HangupCause::Customer(CallEvent::CustomerLeft {
                    sip_code: None,
                    disconnect_reason: None
                })
            );
        }
        assert_eq!(
            cause_from_sample(&rec(Phase::Ringing), &[agent(), sip("hangup", Some(486))]),
            HangupCause::Customer(CallEvent::CustomerLeft {
                sip_code: Some(486),
                disconnect_reason: None
            })
        );
    }

    #[test]
    fn a_dial_in_flight_without_a_leg_waits_for_the_dial() {
        for phase in [Phase::Dialing, Phase::Ringing] {
            assert_eq!(
                cause_from_sample(&rec(phase), &[agent()]),
                HangupCause::AwaitDial
            );
        }
    }

    #[test]
    fn undialled_and_ended_calls_are_the_agents() {
        for phase in [Phase::Initiated, Phase::Ended] {
            assert_eq!(cause_from_sample(&rec(phase), &[]), HangupCause::Agent);
        }
    }
}
