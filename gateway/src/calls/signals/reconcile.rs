//! Start-up: calls whose dial was in flight when the previous process died.
//!
//! A dial request dies with the process that sent it, but LiveKit goes on with the call:
//! the customer may be ringing, talking, or long gone with a carrier code nobody will
//! ever report. Left alone such a call rings out on the gateway's timer and reaches the
//! CRM as NOT_ANSWERED `ring_timeout` — the wrong outcome for a trunk that failed in the
//! ~150 ms the dial was in flight. So before anything else, each such call is settled
//! from what LiveKit shows now: a leg still in the room is followed as usual (polling,
//! webhooks, timers); no leg means the outcome is unknowable and the record says so
//! (`Dial(Lost)`: FAILED `dial_interrupted`).

use std::sync::Arc;
use std::time::Duration;

use c2c_callstate::{CallEvent, CallRecord, DialResult, LegSeen};
use c2c_livekit::LiveKitError;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::app::App;
use crate::calls::signals::room::leg_seen;

/// Looks at each room this many times (LiveKit may be restarting too) before giving up
/// on seeing the leg.
const ATTEMPTS: u32 = 5;
const RETRY: Duration = Duration::from_secs(1);
/// Rooms looked at at once.
const CONCURRENCY: usize = 32;

/// At start: the calls this node drives whose dial or held caller died with the last
/// process ([`lost_dials`], [`interrupted_inbound`]).
pub async fn at_start(app: &Arc<App>) {
    let open = match app.store().driven_calls().await {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "cannot read open calls to settle interrupted calls");
            return;
        }
    };
    interrupted_inbound(app, &open, app.started_ms()).await;
    // Dials that died with the previous process first: until they are settled, a
    // missing leg in a room sample would prove nothing.
    lost_dials(app, &open, app.started_ms()).await;
}

/// Settles the calls of `open` whose dial was in flight somewhere else before
/// `before_ms` (the previous process; in a fleet, the node that died). Returns how many
/// it settled.
pub async fn lost_dials(app: &Arc<App>, open: &[CallRecord], before_ms: u64) -> usize {
    // A dial this process started is not lost.
    let pending: Vec<CallRecord> = open
        .iter()
        .filter(|r| {
            r.dial_pending()
                && r.connected_ms.is_some_and(|c| c < before_ms)
                && !app.calls().dials().in_flight(&r.call_id)
        })
        .cloned()
        .collect();
    if pending.is_empty() {
        return 0;
    }
    tracing::info!(
        calls = pending.len(),
        "settling calls whose dial was in flight at the last stop"
    );
    // Concurrently but bounded: with LiveKit down, each look may take seconds.
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = JoinSet::new();
    for rec in pending {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let app = app.clone();
        let span = crate::calls::span(&rec.call_id);
        tasks.spawn(
            async move {
                let _permit = permit;
                let leg = leg_in_room(&app, &rec).await;
                let seen = format!("{leg:?}");
                let ev = CallEvent::Dial(DialResult::Lost { leg });
                match crate::calls::apply(&app, &rec.call_id, ev).await {
                    Ok(after) => {
                        tracing::info!(
                            leg = %seen,
                            ended = after.is_ended(),
                            "interrupted dial settled"
                        );
                        true
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "interrupted dial not settled");
                        false
                    }
                }
            }
            .instrument(span),
        );
    }
    let mut settled = 0;
    while let Some(done) = tasks.join_next().await {
        settled += usize::from(done.unwrap_or(false));
    }
    settled
}

/// The customer's leg as the call's room shows it now. A room LiveKit no longer has, or
/// a LiveKit that stays unreachable, shows no leg.
async fn leg_in_room(app: &App, rec: &CallRecord) -> LegSeen {
    let Some(client) = app
        .livekit()
        .client_for_tenant(&app.policy().get(), &rec.tenant)
    else {
        return LegSeen::NotThere;
    };
    for attempt in 1..=ATTEMPTS {
        match client.list_participants(&rec.room).await {
            Ok(parts) => return leg_seen(&parts),
            Err(LiveKitError::NotFound(_)) => return LegSeen::NotThere,
            Err(e) => {
                app.metrics()
                    .livekit_errors
                    .with_label_values(&["list_participants"])
                    .inc();
                tracing::warn!(attempt, error = %e, "cannot look at an interrupted dial's room");
                if attempt < ATTEMPTS {
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }
    LegSeen::NotThere
}

/// Inbound calls of `open` that were still ringing or connecting when the process
/// holding their caller died (the previous process; in a fleet, the node that died):
/// their carrier INVITE was held by that process's SIP edge and is gone with it (the
/// carrier times out on its own), so nobody can answer them any more. Each ends MISSED
/// `gateway_restarted` now, instead of waiting for its ring backstop.
pub async fn interrupted_inbound(app: &Arc<App>, open: &[CallRecord], before_ms: u64) -> usize {
    let mut ended = 0;
    for rec in open.iter().filter(|r| {
        r.is_inbound()
            && r.phase != c2c_callstate::Phase::Active
            && r.created_ms < before_ms
            && !app.inbound().is_inbound(&r.call_id)
    }) {
        let ev = CallEvent::Missed {
            reason: "gateway_restarted".into(),
        };
        match crate::calls::apply(app, &rec.call_id, ev)
            .instrument(crate::calls::span(&rec.call_id))
            .await
        {
            Ok(r) if r.is_ended() => ended += 1,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(call_id = %rec.call_id, error = %e, "interrupted inbound call not ended")
            }
        }
    }
    if ended > 0 {
        tracing::info!(
            calls = ended,
            "inbound calls interrupted by the last stop ended MISSED"
        );
    }
    ended
}
