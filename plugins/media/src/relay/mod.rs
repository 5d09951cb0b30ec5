//! One anchored call's media: RTP and RTCP relayed both ways between the carrier and
//! LiveKit through the edge's own ports, counted as it passes.
//!
//! **Latching** (symmetric RTP, for NAT): each side's real source is learned from its
//! first RTP packet that parses, whatever the SDP said; from then on packets from any
//! other source are dropped and counted (`strangers`), and what goes to that side goes
//! to the latched source — except that a source with the SDP's own IP takes over from
//! one with another IP (`relatched`), so a stranger that got in first does not keep the
//! call. Until a side has sent anything, the relay sends to the address its SDP gave
//! ([`Relay::set_remote`]; a changed address after a re-INVITE or UPDATE releases the
//! latch). RTCP latches the same way on its own port, and only RTCP passes there.
//! RTCP multiplexed on the RTP port (`a=rtcp-mux`) is relayed with the RTP. While the
//! carrier's SDP says it sends nothing (`a=recvonly` / `inactive`: the call is on hold)
//! its silence is neither dead air nor one-way audio; back off hold, the dead-air
//! timeout starts again.
//!
//! **What it tells**: per direction a [`StreamReport`]; RTP from the carrier before the
//! answer is early media (when it started and how long it ran until the answer); after
//! the answer, no RTP from the carrier for `media_timeout` raises
//! [`MediaEvent::MediaTimeout`] (the call should end, as rtpengine's media timeout does),
//! and RTP flowing one way only `one_way_after` after the answer raises
//! [`MediaEvent::OneWayAudio`]. Each is raised once. Timers sleep to their deadline and
//! look again only if a packet moved it: no ticking per call.
//!
//! What does not parse as RTP is not relayed (and does not latch).
//!
//! **Where it runs**: [`crate::MediaEngine`] decides — a task per call on the caller's
//! tokio runtime ([`task`]), or every call on one media thread driving an `io_uring`
//! ([`crate::uring`], Linux). Both feed the same [`state::State`]: latching, counting
//! and timers are written once.

pub(crate) mod state;
pub(crate) mod task;

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::sdp::AudioTarget;
use crate::stats::StreamReport;

/// The relay's knobs (per trunk, from the edge's configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayConfig {
    /// After the answer, this long without RTP from the carrier is dead air.
    pub media_timeout: Duration,
    /// After the answer, RTP one way only for this long is one-way audio.
    pub one_way_after: Duration,
}

/// A side of the anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Carrier,
    Livekit,
}

/// The edge's two sockets facing one side (RTP, and RTCP on the port above), bound and
/// handed to a [`MediaEngine`](crate::MediaEngine), which owns them from then on (it
/// sets their blocking mode itself).
#[derive(Debug)]
pub struct Endpoint {
    pub rtp: std::net::UdpSocket,
    pub rtcp: std::net::UdpSocket,
}

/// What the relay raises while the call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaEvent {
    /// No RTP from the carrier for `media_timeout` after the answer.
    MediaTimeout,
    /// `one_way_after` after the answer, RTP had come from one side only; `silent` is
    /// the side that sent nothing.
    OneWayAudio { silent: Side },
}

/// What the relay counted.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RelayReport {
    pub from_carrier: StreamReport,
    pub from_livekit: StreamReport,
    /// When the carrier's first RTP came before the answer, ms after the relay started.
    pub early_media_started_ms: Option<f64>,
    /// How long early media ran until the answer (None: no early media, or no answer).
    pub early_media_ms: Option<f64>,
    /// Packets from a source other than the side's latched one, dropped.
    pub strangers: u64,
    /// Times a side's latch moved to a source with its SDP's address.
    pub relatched: u64,
    /// Datagrams on an RTCP port that were not RTCP, dropped.
    pub not_rtcp: u64,
    /// RTCP packets relayed (both ways).
    pub rtcp_relayed: u64,
    /// RTP with nowhere to go yet (the other side had no address), dropped.
    pub undeliverable: u64,
    pub one_way: Option<Side>,
    pub media_timeout: bool,
}

/// What a relay is told while it runs (both engines).
pub(crate) enum Control {
    Answered,
    Remote(Side, AudioTarget),
    Report(oneshot::Sender<RelayReport>),
}

/// How a [`Relay`] reaches the engine that runs it.
enum Runner {
    /// A task on a tokio runtime: dropping `control` ends it, `done` answers its counts.
    Task {
        control: mpsc::Sender<Control>,
        done: tokio::task::JoinHandle<RelayReport>,
    },
    /// A call on the media thread; dropping the handle stops it there.
    #[cfg(target_os = "linux")]
    Uring(crate::uring::CallHandle),
}

/// A running relay; dropping it (or [`Relay::stop`]) ends it and closes its sockets.
pub struct Relay {
    runner: Runner,
    events: mpsc::Receiver<MediaEvent>,
}

/// Events queued per relay: a call raises at most two.
pub(crate) const EVENTS: usize = 4;

impl Relay {
    pub(crate) fn on_task(
        control: mpsc::Sender<Control>,
        done: tokio::task::JoinHandle<RelayReport>,
        events: mpsc::Receiver<MediaEvent>,
    ) -> Self {
        Self {
            runner: Runner::Task { control, done },
            events,
        }
    }

    #[cfg(target_os = "linux")]
    pub(crate) fn on_uring(
        call: crate::uring::CallHandle,
        events: mpsc::Receiver<MediaEvent>,
    ) -> Self {
        Self {
            runner: Runner::Uring(call),
            events,
        }
    }

    async fn send(&self, c: Control) {
        match &self.runner {
            Runner::Task { control, .. } => {
                let _ = control.send(c).await;
            }
            #[cfg(target_os = "linux")]
            Runner::Uring(call) => call.control(c),
        }
    }

    /// The call was answered (the 200 OK passed the edge).
    pub async fn answered(&self) {
        self.send(Control::Answered).await;
    }

    /// Where `side` receives RTP and RTCP, from its SDP ([`crate::sdp::audio_target`]).
    /// A changed address (a re-INVITE or UPDATE moved the media) releases that side's
    /// latches; the same address again keeps them. `0.0.0.0` (a hold) receives nothing.
    pub async fn set_remote(&self, side: Side, target: AudioTarget) {
        self.send(Control::Remote(side, target)).await;
    }

    /// The counts so far (None once the relay has ended).
    pub async fn report(&self) -> Option<RelayReport> {
        let (tx, rx) = oneshot::channel();
        self.send(Control::Report(tx)).await;
        rx.await.ok()
    }

    /// The next event (None once the relay has ended).
    pub async fn next_event(&mut self) -> Option<MediaEvent> {
        self.events.recv().await
    }

    /// Ends the relay and answers its final counts, once its sockets are closed (so
    /// their ports may go to the next call).
    pub async fn stop(self) -> Option<RelayReport> {
        match self.runner {
            Runner::Task { control, done } => {
                drop(control);
                done.await.ok()
            }
            #[cfg(target_os = "linux")]
            Runner::Uring(call) => call.stop().await,
        }
    }
}
