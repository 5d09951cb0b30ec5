//! The edge's side of anchoring: one relay per anchored call on the edge's
//! [`MediaEngine`] (the io_uring media thread, or a task on the edge's runtime), driven
//! by the core's [`MediaOp`]s, its events and final counts passed to the observer and
//! the metrics.
//!
//! Each call gets a small supervisor task that owns its [`Relay`]: it forwards the
//! core's commands (a side's new address, the answer), raises the relay's events, and
//! when the call is over (the core's `Stop`, or the edge shutting down) stops the
//! relay, and only then gives the ports back to the pool: a port is never handed to a
//! new call while an old socket still holds it.

use std::collections::HashMap;
use std::sync::Arc;

use c2c_media::{Endpoint, MediaEngine, PortPool, Relay, RelayConfig};
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

use super::anchors::Legs;
use super::metrics::MediaMetrics;
use super::{AudioTarget, LegSockets, MediaEvent, MediaOp, Side, Start};
use crate::observer::SipObserver;

/// Commands queued per call; a call gets a handful in its life (answers, re-INVITEs).
const COMMANDS: usize = 16;

enum Cmd {
    Remote(Side, AudioTarget),
    Answered,
}

/// The running relays by SIP Call-ID.
pub(crate) struct Relays {
    cfg: RelayConfig,
    engine: MediaEngine,
    pool: Arc<Mutex<PortPool>>,
    metrics: MediaMetrics,
    /// Dropping a call's sender is its stop: the supervisor finishes the queued
    /// commands, then stops.
    calls: Mutex<HashMap<String, mpsc::Sender<Cmd>>>,
    /// SIP Call-IDs of calls whose relay heard dead air, for the edge's core
    /// (`Proxy::dead_air`).
    dead_air: mpsc::Sender<String>,
}

/// What a supervisor needs besides its relay.
struct Supervised {
    key: String,
    dead_air: mpsc::Sender<String>,
    call_id: Option<String>,
    trunk: String,
    legs: Legs,
    pool: Arc<Mutex<PortPool>>,
    metrics: MediaMetrics,
    observer: Arc<dyn SipObserver>,
}

impl Relays {
    /// `dead_air` receives the SIP Call-ID of each call whose relay heard dead air.
    pub fn new(
        cfg: RelayConfig,
        engine: MediaEngine,
        pool: Arc<Mutex<PortPool>>,
        metrics: MediaMetrics,
        dead_air: mpsc::Sender<String>,
    ) -> Self {
        metrics.pairs.set(pool.lock().capacity() as i64);
        Self {
            cfg,
            engine,
            pool,
            metrics,
            calls: Mutex::new(HashMap::new()),
            dead_air,
        }
    }

    /// Carries out one of the core's media operations (on the edge's runtime).
    pub fn apply(
        &self,
        op: MediaOp,
        observer: &Arc<dyn SipObserver>,
        shutdown: &watch::Receiver<bool>,
    ) {
        match op {
            MediaOp::Start(start) => self.start(*start, observer, shutdown.clone()),
            MediaOp::Remote { key, side, target } => self.command(&key, Cmd::Remote(side, target)),
            MediaOp::Answered { key } => self.command(&key, Cmd::Answered),
            MediaOp::Stop { key } => {
                self.calls.lock().remove(&key);
            }
        }
    }

    fn command(&self, key: &str, cmd: Cmd) {
        let calls = self.calls.lock();
        let Some(tx) = calls.get(key) else { return };
        if tx.try_send(cmd).is_err() {
            tracing::warn!("media relay command queue full; command dropped");
        }
    }

    fn start(&self, s: Start, observer: &Arc<dyn SipObserver>, shutdown: watch::Receiver<bool>) {
        let Start {
            key,
            call_id,
            trunk,
            legs,
            sockets,
            offerer,
        } = s;
        self.metrics
            .pairs_in_use
            .set(self.pool.lock().in_use() as i64);
        let (carrier, livekit_end) = endpoints(sockets);
        let relay = match self.engine.start(carrier, livekit_end, self.cfg) {
            Ok(r) => r,
            Err(e) => {
                // A socket the engine could not take, or the media thread's queue full:
                // the call runs without its relay (no audio); its ports are free again
                // at once (the engine dropped the sockets).
                tracing::error!(error = %e, engine = self.engine.name(), "media relay could not start");
                self.metrics.event(&trunk, "relay_unstarted");
                self.release(legs);
                return;
            }
        };
        self.metrics.calls.with_label_values(&[&trunk]).inc();
        let (tx, rx) = mpsc::channel(COMMANDS);
        // The offer's address first: where the offerer's audio goes until it latches.
        let _ = tx.try_send(Cmd::Remote(offerer.0, offerer.1));
        if let Some(old) = self.calls.lock().insert(key.clone(), tx) {
            drop(old); // a Call-ID reused after a lost Stop: the old relay ends
        }
        let sup = Supervised {
            key,
            dead_air: self.dead_air.clone(),
            call_id,
            trunk,
            legs,
            pool: self.pool.clone(),
            metrics: self.metrics.clone(),
            observer: observer.clone(),
        };
        tokio::spawn(supervise(relay, rx, sup, shutdown));
    }

    fn release(&self, legs: Legs) {
        let mut pool = self.pool.lock();
        pool.release(legs.carrier);
        pool.release(legs.livekit);
        self.metrics.pairs_in_use.set(pool.in_use() as i64);
    }
}

fn endpoints(s: LegSockets) -> (Endpoint, Endpoint) {
    (
        Endpoint {
            rtp: s.carrier_rtp,
            rtcp: s.carrier_rtcp,
        },
        Endpoint {
            rtp: s.livekit_rtp,
            rtcp: s.livekit_rtcp,
        },
    )
}

async fn supervise(
    mut relay: Relay,
    mut cmds: mpsc::Receiver<Cmd>,
    sup: Supervised,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Remote(side, target)) => relay.set_remote(side, target).await,
                Some(Cmd::Answered) => relay.answered().await,
                None => break,
            },
            ev = relay.next_event() => match ev {
                Some(ev) => raised(&sup, ev),
                None => break,
            },
            _ = shutdown.changed() => break,
        }
    }
    let report = relay.stop().await;
    {
        // The relay's sockets are closed: the ports may go to the next call.
        let mut pool = sup.pool.lock();
        pool.release(sup.legs.carrier);
        pool.release(sup.legs.livekit);
        sup.metrics.pairs_in_use.set(pool.in_use() as i64);
    }
    let Some(report) = report else {
        tracing::error!(trunk = %sup.trunk, "media relay ended without its report");
        return;
    };
    sup.metrics.report(&sup.trunk, &report);
    if let Some(call_id) = &sup.call_id {
        sup.observer.on_media_report(call_id, &report);
    }
}

fn raised(sup: &Supervised, ev: MediaEvent) {
    let name = match ev {
        MediaEvent::MediaTimeout => "media_timeout",
        MediaEvent::OneWayAudio { .. } => "one_way_audio",
    };
    sup.metrics.event(&sup.trunk, name);
    tracing::info!(trunk = %sup.trunk, call_id = sup.call_id.as_deref().unwrap_or(""), event = name, "anchored call media event");
    if ev == MediaEvent::MediaTimeout && sup.dead_air.try_send(sup.key.clone()).is_err() {
        // The edge is stopping, or thousands of calls went silent at once: the dialog
        // then keeps its ports until a BYE or its own expiry.
        tracing::warn!(trunk = %sup.trunk, "dead air not passed to the SIP core; the dialog keeps its expiry");
    }
    if let Some(call_id) = &sup.call_id {
        sup.observer.on_media_event(call_id, ev);
    }
}
