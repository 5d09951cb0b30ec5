//! Answer detection by polling (`answer_detection = "poll"`), and the pass over every
//! open call run once at start in every mode.
//!
//! Each pass reads the open-call index (never the whole history) and samples LiveKit's
//! ListParticipants for calls that are dialling, ringing or active, with a bounded
//! number of requests in flight. If a pass takes longer than the interval, the next one
//! starts right after it: load on LiveKit adapts instead of piling up.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use c2c_callstate::{CallEvent, CallRecord, Phase};
use c2c_livekit::LiveKitError;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::app::App;
use crate::calls::signals::room::events_from_sample;

/// LiveKit requests in flight per pass.
const MAX_IN_FLIGHT: usize = 32;
/// Open calls read from the store per chunk: a pass holds at most this many records,
/// whatever the number of open calls.
const CHUNK: usize = 256;

/// Samples every open call once, walking the open-call index in bounded chunks.
pub async fn pass(app: &Arc<App>) {
    let sem = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    let policy = app.policy().get();
    let mut after: Option<String> = None;
    let mut open = 0usize;
    loop {
        // The calls this node drives (on one process: all open calls).
        let chunk = match app
            .store()
            .driven_calls_after(after.as_deref(), CHUNK)
            .await
        {
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
        if !sample(app, &policy, chunk, &sem, &mut tasks).await {
            return;
        }
    }
    while tasks.join_next().await.is_some() {}
    app.metrics().open_calls.set(open as i64);
}

/// One look at the rooms of calls this node just took over from a node that died.
pub async fn sample_calls(app: &Arc<App>, calls: Vec<CallRecord>) {
    let sem = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    let policy = app.policy().get();
    for chunk in calls.chunks(CHUNK) {
        if !sample(app, &policy, chunk.to_vec(), &sem, &mut tasks).await {
            return;
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Samples the rooms of `chunk` (at most [`MAX_IN_FLIGHT`] at once, tasks in `tasks`).
/// False when the semaphore closed.
async fn sample(
    app: &Arc<App>,
    policy: &c2c_tenancy::Policy,
    chunk: Vec<CallRecord>,
    sem: &Arc<Semaphore>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> bool {
    {
        for rec in chunk {
            // Nothing to look at before the dial; and until LiveKit answered an inbound
            // call there is either no room yet or the SIP edge is the one that sees the
            // caller (CANCEL, LiveKit's final), so a sample would only mislead.
            if rec.phase == Phase::Initiated || (rec.is_inbound() && rec.phase != Phase::Active) {
                continue;
            }
            let Some(client) = app.livekit().client_for_tenant(policy, &rec.tenant) else {
                continue;
            };
            let Ok(permit) = sem.clone().acquire_owned().await else {
                return false;
            };
            let app = app.clone();
            let span = crate::calls::span(&rec.call_id);
            tasks.spawn(async move {
                let _permit = permit;
                let events = match client.list_participants(&rec.room).await {
                    Ok(parts) => events_from_sample(&rec, &parts, crate::clock::now_ms()),
                    Err(LiveKitError::NotFound(_)) => vec![CallEvent::RoomFinished],
                    Err(e) => {
                        app.metrics().livekit_errors.with_label_values(&["list_participants"]).inc();
                        tracing::debug!(error = %e, "ListParticipants failed; will retry next pass");
                        vec![]
                    }
                };
                for ev in events {
                    // Only the driver acts on what it sampled; a call another node took
                    // over in the meantime is that node's to sample.
                    match crate::calls::apply_as_driver(&app, &rec.call_id, ev).await {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(e) => tracing::warn!(error = %e, "poll event not applied"),
                    }
                }
            }.instrument(span));
            // Reap finished tasks as we go so the set stays bounded too.
            while tasks.try_join_next().is_some() {}
        }
    }
    true
}

/// The poller as a Pingora background service.
pub struct Poller {
    pub app: Arc<App>,
}

#[async_trait]
impl BackgroundService for Poller {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if !self.app.serving_before(&mut shutdown).await {
            return;
        }
        loop {
            let interval = self.app.policy().get().gateway.calls.poll_interval;
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
