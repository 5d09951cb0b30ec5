//! Start-up as a background service: the slow part of opening the store runs after the
//! listener is up. (Draining on SIGTERM is `server::DrainThenTerminate`.)
//!
//! A tally rebuild after an upgrade reads every call record; run before the listener,
//! it would leave a liveness probe unanswered for as long as that takes and get the
//! process restarted in a loop. So the listener comes up first (`/livez` 200, `/readyz`
//! 503 with the progress), the rebuild runs on a blocking thread with progress in the
//! log, and only then does the gateway serve: call-store routes answer and the services
//! that write calls (timers, poller, webhook delivery, the SIP edge's observations) start.

use std::sync::Arc;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::app::App;

pub struct LifecycleService {
    pub app: Arc<App>,
}

#[async_trait]
impl BackgroundService for LifecycleService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // `changed` also returns when the server is going away: then nothing is left to do.
        let app = self.app.clone();
        let rebuild = tokio::task::spawn_blocking(move || {
            let progress_app = app.clone();
            app.store().ensure_aggregates(&mut |calls| {
                progress_app.set_starting(format!(
                    "rebuilding per-day call tallies: {calls} call records read"
                ));
                tracing::info!(calls, "rebuilding per-day call tallies");
            })
        });
        tokio::select! {
            _ = shutdown.changed() => {}
            done = rebuild => match done {
                Ok(Ok(rebuilt)) => {
                    if rebuilt {
                        tracing::info!("per-day call tallies rebuilt; serving");
                    }
                    self.app.set_serving();
                }
                Ok(Err(e)) => {
                    // Not serving: /readyz says why; nothing writes a call.
                    self.app.set_starting(format!("the store could not be opened: {e}"));
                    tracing::error!(error = %e, "cannot rebuild the call tallies; not serving");
                }
                Err(e) => {
                    self.app.set_starting(format!("the store could not be opened: {e}"));
                    tracing::error!(error = %e, "tally rebuild panicked; not serving");
                }
            }
        }
    }
}
