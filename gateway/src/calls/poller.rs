//! Answer detection by polling (`answer_detection = "poll"`), and the reconcile pass run
//! once at start in every mode.
//!
//! Each pass reads the open-call index (never the whole history) and samples LiveKit's
//! ListParticipants for calls that are dialling, ringing or active, with a bounded
//! number of requests in flight. If a pass takes longer than the interval, the next one
//! starts right after it: load on LiveKit adapts instead of piling up.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use c2c_callstate::{CallEvent, CallRecord, Phase};
use c2c_livekit::{LiveKitError, ParticipantSnapshot};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::Semaphore;

use crate::app::App;

/// LiveKit requests in flight per pass.
const MAX_IN_FLIGHT: usize = 32;
/// Identity the gateway gives the customer's SIP participant.
pub const SIP_IDENTITY: &str = "sip-customer";

/// The customer's SIP leg in a sample of a room, if it is there.
pub fn customer_leg(parts: &[ParticipantSnapshot]) -> Option<&ParticipantSnapshot> {
    parts
        .iter()
        .find(|p| p.kind_sip || p.identity == SIP_IDENTITY)
}

/// What one sample of a room says about a call.
pub fn events_from_sample(rec: &CallRecord, parts: &[ParticipantSnapshot]) -> Vec<CallEvent> {
    let mut out = Vec::new();
    match customer_leg(parts) {
        Some(p) => match p.call_status.as_deref() {
            Some("ringing") => out.push(CallEvent::Ringing),
            Some("active") => out.push(CallEvent::Answered),
            Some("hangup") => out.push(CallEvent::CustomerLeft {
                sip_code: p.sip_code,
                disconnect_reason: p.disconnect_reason.clone(),
            }),
            _ => {}
        },
        // Seen ringing or answered, gone now: it ended between samples (LiveKit removes
        // departed participants, so the code is lost here; the dial watcher reports it).
        // While still DIALING the participant may simply not exist yet — the dial runs in
        // the background — so absence proves nothing; the dial watcher and the ring timer
        // decide those calls.
        None if matches!(rec.phase, Phase::Ringing | Phase::Active) => {
            out.push(CallEvent::CustomerLeft {
                sip_code: None,
                disconnect_reason: None,
            })
        }
        None => {}
    }
    let agent_here = parts.iter().any(|p| p.identity == rec.agent_id);
    if agent_here && !rec.agent_present {
        out.push(CallEvent::AgentJoined);
    } else if !agent_here && rec.agent_present && rec.phase != Phase::Initiated {
        out.push(CallEvent::AgentLeft);
    }
    out
}

/// Open calls read from the store per chunk: a pass holds at most this many records,
/// whatever the number of open calls.
const CHUNK: usize = 256;

/// Samples every open call once, walking the open-call index in bounded chunks.
pub async fn pass(app: &Arc<App>) {
    let sem = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    let policy = app.policy.get();
    let mut after: Option<String> = None;
    let mut open = 0usize;
    loop {
        let chunk = match app.store.open_calls_after(after.as_deref(), CHUNK) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "cannot read open calls");
                return;
            }
        };
        let Some(last) = chunk.last() else {
            break;
        };
        after = Some(last.call_id.clone());
        open += chunk.len();
        for rec in chunk {
            if rec.phase == Phase::Initiated {
                continue;
            }
            let Some(client) = app.livekit.client_for_tenant(&policy, &rec.tenant) else {
                continue;
            };
            let Ok(permit) = sem.clone().acquire_owned().await else {
                return;
            };
            let app = app.clone();
            tasks.spawn(async move {
                let _permit = permit;
                let events = match client.list_participants(&rec.room).await {
                    Ok(parts) => events_from_sample(&rec, &parts),
                    Err(LiveKitError::NotFound(_)) => vec![CallEvent::RoomFinished],
                    Err(e) => {
                        app.metrics.livekit_errors.with_label_values(&["list_participants"]).inc();
                        tracing::debug!(error = %e, "ListParticipants failed; will retry next pass");
                        vec![]
                    }
                };
                for ev in events {
                    if let Err(e) = crate::calls::apply(&app, &rec.call_id, ev).await {
                        tracing::warn!(error = %e, "poll event not applied");
                    }
                }
            });
            // Reap finished tasks as we go so the set stays bounded too.
            while tasks.try_join_next().is_some() {}
        }
    }
    while tasks.join_next().await.is_some() {}
    app.metrics.open_calls.set(open as i64);
}

/// The poller as a Pingora background service.
pub struct Poller {
    pub app: Arc<App>,
}

#[async_trait]
impl BackgroundService for Poller {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let interval = self.app.policy.get().gateway.calls.poll_interval;
            let started = tokio::time::Instant::now();
            pass(&self.app).await;
            let wait = interval
                .saturating_sub(started.elapsed())
                .max(Duration::from_millis(10));
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
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
        }
    }

    #[test]
    fn a_missing_leg_while_dialing_is_not_a_hangup() {
        // The dial runs in the background: the SIP participant may not exist yet.
        assert!(events_from_sample(&rec(Phase::Dialing), &[agent()]).is_empty());
    }

    #[test]
    fn a_leg_gone_after_ringing_ends_the_call() {
        let ev = events_from_sample(&rec(Phase::Ringing), &[agent()]);
        assert_eq!(
            ev,
            vec![CallEvent::CustomerLeft {
                sip_code: None,
                disconnect_reason: None
            }]
        );
    }

    #[test]
    fn an_absent_agent_is_reported_once_the_call_is_connected() {
        let ev = events_from_sample(&rec(Phase::Active), &[]);
        assert!(ev.contains(&CallEvent::AgentLeft), "{ev:?}");
    }
}
