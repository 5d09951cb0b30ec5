//! Due timers become `Timer(kind)` events. At start the service first re-arms every open
//! call's timers from the store, settles dials that died with the last process
//! (`reconcile`) and looks at every open call's room once (`poller::pass`), then fires
//! timers as they come due; it also prunes old LiveKit webhook ids now and then.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tracing::Instrument;

use crate::app::App;

/// Timer events applied at once.
const TIMER_CONCURRENCY: usize = 64;
/// A timer whose event could not be stored (the store is away) fires again this much
/// later.
const TIMER_RETRY_MS: u64 = 1_000;

/// Fires call timers; at start re-arms open calls and reconciles them with LiveKit.
pub struct TimerService {
    pub app: Arc<App>,
}

#[async_trait]
impl BackgroundService for TimerService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let app = self.app.clone();
        // Nothing writes a call before the store is fully open (crate::lifecycle).
        if !app.serving_before(&mut shutdown).await {
            return;
        }
        match crate::calls::rearm_open_calls(&app).await {
            Ok(n) if n > 0 => tracing::info!(
                open_calls = n,
                "open calls reloaded; reconciling with LiveKit"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot reload open calls"),
        }
        crate::calls::signals::reconcile::at_start(&app).await;
        // What happened while we were down: one sample of every open call.
        crate::calls::signals::poller::pass(&app).await;
        let housekeeping = {
            let app = app.clone();
            let mut shutdown = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        _ = tokio::time::sleep(Duration::from_secs(600)) => {}
                    }
                    crate::api::livekit_webhook::prune_seen(&app).await;
                }
            })
        };
        // Timers fire concurrently (each apply waits for a durable write), but at most
        // TIMER_CONCURRENCY at once: a burst of expired timers after a restart must not
        // become thousands of tasks.
        let fire_app = app.clone();
        let permits = Arc::new(tokio::sync::Semaphore::new(TIMER_CONCURRENCY));
        app.calls()
            .timers()
            .run(shutdown, move |id, ev| {
                let app = fire_app.clone();
                let permits = permits.clone();
                async move {
                    let Ok(permit) = permits.acquire_owned().await else {
                        return;
                    };
                    let span = crate::calls::span(&id);
                    tokio::spawn(
                        async move {
                            let _permit = permit;
                            let kind = match &ev {
                                c2c_callstate::CallEvent::Timer(k) => Some(*k),
                                _ => None,
                            };
                            // Only the call's driver acts on its timers (a fleet).
                            match crate::calls::apply_as_driver(&app, &id, ev).await {
                                Ok(_) => {}
                                Err(c2c_callstate::StoreError::NotFound) => {}
                                Err(e) => {
                                    // The store is away: the deadline stays in the record,
                                    // and the timer in memory, tried again shortly.
                                    tracing::warn!(error = %e, "timer event not applied; retrying in 1 s");
                                    if let Some(kind) = kind {
                                        app.calls().arm_timer(&id, kind, crate::clock::now_ms() + TIMER_RETRY_MS);
                                    }
                                }
                            }
                        }
                        .instrument(span),
                    );
                }
            })
            .await;
        housekeeping.abort();
    }
}
