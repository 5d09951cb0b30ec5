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

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::sdp::AudioTarget;
use crate::stats::{NotRtp, StreamReport, StreamStats};

/// Largest datagram read; RTP of voice is a few hundred bytes.
const MAX_DATAGRAM: usize = 2048;
/// RTP clock of the G.711 codecs the trunks carry.
const CLOCK_RATE: u32 = 8_000;

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

/// The edge's two sockets facing one side (RTP, and RTCP on the port above).
#[derive(Debug)]
pub struct Endpoint {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
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

enum Control {
    Answered,
    Remote(Side, AudioTarget),
    Report(oneshot::Sender<RelayReport>),
}

/// A running relay; dropping it (or [`Relay::stop`]) ends it and closes its sockets.
pub struct Relay {
    control: mpsc::Sender<Control>,
    events: mpsc::Receiver<MediaEvent>,
    done: tokio::task::JoinHandle<RelayReport>,
}

impl Relay {
    /// Starts relaying between `carrier` and `livekit` on the current runtime.
    pub fn start(carrier: Endpoint, livekit: Endpoint, cfg: RelayConfig) -> Self {
        let (control, inbox) = mpsc::channel(16);
        let (raise, events) = mpsc::channel(4);
        let done = tokio::spawn(run(carrier, livekit, cfg, inbox, raise));
        Self {
            control,
            events,
            done,
        }
    }

    /// The call was answered (the 200 OK passed the edge).
    pub async fn answered(&self) {
        let _ = self.control.send(Control::Answered).await;
    }

    /// Where `side` receives RTP and RTCP, from its SDP ([`crate::sdp::audio_target`]).
    /// A changed address (a re-INVITE or UPDATE moved the media) releases that side's
    /// latches; the same address again keeps them. `0.0.0.0` (a hold) receives nothing.
    pub async fn set_remote(&self, side: Side, target: AudioTarget) {
        let _ = self.control.send(Control::Remote(side, target)).await;
    }

    /// The counts so far (None once the relay has ended).
    pub async fn report(&self) -> Option<RelayReport> {
        let (tx, rx) = oneshot::channel();
        self.control.send(Control::Report(tx)).await.ok()?;
        rx.await.ok()
    }

    /// The next event (None once the relay has ended).
    pub async fn next_event(&mut self) -> Option<MediaEvent> {
        self.events.recv().await
    }

    /// Ends the relay and answers its final counts.
    pub async fn stop(self) -> Option<RelayReport> {
        let Relay { control, done, .. } = self;
        drop(control);
        done.await.ok()
    }
}

/// One side's addresses: what its SDP said and what its packets showed.
#[derive(Default)]
struct Peer {
    sdp: Option<AudioTarget>,
    rtp: Option<SocketAddr>,
    rtcp: Option<SocketAddr>,
}

/// An address media can be sent to: not `0.0.0.0` / `::` (an SDP hold) nor port 0.
fn sendable(a: SocketAddr) -> Option<SocketAddr> {
    (!a.ip().is_unspecified() && a.port() != 0).then_some(a)
}

impl Peer {
    fn rtp_target(&self) -> Option<SocketAddr> {
        self.rtp.or(self.sdp.map(|t| t.rtp)).and_then(sendable)
    }

    fn rtcp_target(&self) -> Option<SocketAddr> {
        self.rtcp.or(self.sdp.map(|t| t.rtcp)).and_then(sendable)
    }

    /// Whether a packet from `src` may pass, given the source latched so far. The
    /// first source latches (symmetric RTP: behind NAT the SDP's address is not where
    /// packets come from); a source with the SDP's own IP may then take over from one
    /// with another IP, so a stranger that got in first does not keep the call.
    fn admits(&self, latched: Option<SocketAddr>, src: SocketAddr) -> bool {
        match latched {
            None => true,
            Some(l) if l == src => true,
            Some(l) => {
                let sdp_ip = self.sdp.map(|t| t.rtp.ip());
                sdp_ip == Some(src.ip()) && l.ip() != src.ip()
            }
        }
    }
}

/// RTCP as RFC 3550 frames it: version 2, a packet type of 192..=223 (RFC 5761's
/// range), at least the 8-byte header of a report.
fn is_rtcp(data: &[u8]) -> bool {
    data.len() >= 8 && data[0] >> 6 == 2 && (192..=223).contains(&data[1])
}

struct State {
    cfg: RelayConfig,
    t0: Instant,
    peers: [Peer; 2],
    stats: [StreamStats; 2],
    answered_at: Option<Instant>,
    early_first: Option<Instant>,
    early_ms: Option<f64>,
    last_carrier: Option<Instant>,
    since_answer: [u64; 2],
    strangers: u64,
    relatched: u64,
    not_rtcp: u64,
    rtcp_relayed: u64,
    undeliverable: u64,
    one_way: Option<Side>,
    one_way_checked: bool,
    timed_out: bool,
}

fn idx(side: Side) -> usize {
    match side {
        Side::Carrier => 0,
        Side::Livekit => 1,
    }
}

fn other(side: Side) -> Side {
    match side {
        Side::Carrier => Side::Livekit,
        Side::Livekit => Side::Carrier,
    }
}

impl State {
    fn ms(&self, at: Instant) -> f64 {
        at.duration_since(self.t0).as_secs_f64() * 1000.0
    }

    /// Counts an RTP datagram from `src` on `side`'s socket; answers where to relay it.
    fn on_rtp(
        &mut self,
        side: Side,
        src: SocketAddr,
        data: &[u8],
        now: Instant,
    ) -> Option<SocketAddr> {
        let i = idx(side);
        let latched = self.peers[i].rtp;
        if !self.peers[i].admits(latched, src) {
            self.strangers += 1;
            return None;
        }
        let us = u64::try_from(now.duration_since(self.t0).as_micros()).unwrap_or(u64::MAX);
        match self.stats[i].on_packet(data, us) {
            Ok(()) => {}
            // RTCP multiplexed on the RTP port (RFC 5761, `a=rtcp-mux`): relayed where
            // RTP goes, latching nothing.
            Err(NotRtp::Rtcp) => {
                self.rtcp_relayed += 1;
                return self.peers[idx(other(side))].rtp_target();
            }
            // Not RTP: neither relayed nor latched.
            Err(NotRtp::Malformed(_)) => return None,
        }
        if latched.is_some_and(|l| l != src) {
            self.relatched += 1;
        }
        self.peers[i].rtp = Some(src);
        if side == Side::Carrier {
            self.last_carrier = Some(now);
            if self.answered_at.is_none() {
                self.early_first.get_or_insert(now);
            }
        }
        if self.answered_at.is_some() {
            self.since_answer[i] += 1;
        }
        let to = self.peers[idx(other(side))].rtp_target();
        if to.is_none() {
            self.undeliverable += 1;
        }
        to
    }

    /// RTCP from `src` on `side`'s RTCP socket; answers where to relay it.
    fn on_rtcp(&mut self, side: Side, src: SocketAddr, data: &[u8]) -> Option<SocketAddr> {
        let i = idx(side);
        let latched = self.peers[i].rtcp;
        if !self.peers[i].admits(latched, src) {
            self.strangers += 1;
            return None;
        }
        if !is_rtcp(data) {
            self.not_rtcp += 1;
            return None;
        }
        self.peers[i].rtcp = Some(src);
        let to = self.peers[idx(other(side))].rtcp_target();
        if to.is_some() {
            self.rtcp_relayed += 1;
        }
        to
    }

    /// A new SDP address for `side`. The same address again (a session refresh) keeps
    /// the latches: releasing them would reopen the call to the first stranger.
    fn set_remote(&mut self, side: Side, target: AudioTarget, now: Instant) {
        // Off hold, the carrier gets the whole dead-air timeout again.
        if side == Side::Carrier && target.sends && !self.carrier_sends() {
            self.last_carrier = Some(now);
        }
        let peer = &mut self.peers[idx(side)];
        let moved = peer.sdp.map(|t| (t.rtp, t.rtcp)) != Some((target.rtp, target.rtcp));
        if moved {
            *peer = Peer {
                sdp: Some(target),
                rtp: None,
                rtcp: None,
            };
        } else {
            // A direction change (hold, resume) at the same address keeps the latches.
            peer.sdp = Some(target);
        }
    }

    /// Whether the carrier's SDP lets it send (not `recvonly`/`inactive`: on hold its
    /// silence is not dead air).
    fn carrier_sends(&self) -> bool {
        self.peers[idx(Side::Carrier)].sdp.is_none_or(|t| t.sends)
    }

    fn answered(&mut self, now: Instant) {
        if self.answered_at.is_some() {
            return;
        }
        self.answered_at = Some(now);
        self.early_ms = self
            .early_first
            .map(|first| now.duration_since(first).as_secs_f64() * 1000.0);
    }

    /// The next instant a timer needs a look (None: nothing armed).
    fn next_deadline(&self) -> Option<Instant> {
        let answered = self.answered_at?;
        // A timeout too large to add to an instant is never due.
        let timeout = (!self.timed_out && self.carrier_sends())
            .then(|| {
                let heard = self.last_carrier.map_or(answered, |l| l.max(answered));
                heard.checked_add(self.cfg.media_timeout)
            })
            .flatten();
        let one_way = (!self.one_way_checked)
            .then(|| answered.checked_add(self.cfg.one_way_after))
            .flatten();
        [timeout, one_way].into_iter().flatten().min()
    }

    /// Raises what is due at `now`.
    fn due(&mut self, now: Instant) -> Vec<MediaEvent> {
        let mut out = Vec::new();
        let Some(answered) = self.answered_at else {
            return out;
        };
        let after = |d: Duration, from: Instant| from.checked_add(d).is_some_and(|t| now >= t);
        if !self.one_way_checked && after(self.cfg.one_way_after, answered) {
            self.one_way_checked = true;
            let silent = match self.since_answer {
                // A carrier on hold is silent by agreement, not one-way audio.
                [0, n] if n > 0 && self.carrier_sends() => Some(Side::Carrier),
                [n, 0] if n > 0 => Some(Side::Livekit),
                _ => None,
            };
            if let Some(silent) = silent {
                self.one_way = Some(silent);
                out.push(MediaEvent::OneWayAudio { silent });
            }
        }
        let heard = self.last_carrier.map_or(answered, |l| l.max(answered));
        if !self.timed_out && self.carrier_sends() && after(self.cfg.media_timeout, heard) {
            self.timed_out = true;
            out.push(MediaEvent::MediaTimeout);
        }
        out
    }

    fn report(&self) -> RelayReport {
        RelayReport {
            from_carrier: self.stats[0].report(),
            from_livekit: self.stats[1].report(),
            early_media_started_ms: self.early_first.map(|f| self.ms(f)),
            early_media_ms: self.early_ms,
            strangers: self.strangers,
            relatched: self.relatched,
            not_rtcp: self.not_rtcp,
            rtcp_relayed: self.rtcp_relayed,
            undeliverable: self.undeliverable,
            one_way: self.one_way,
            media_timeout: self.timed_out,
        }
    }
}

async fn run(
    carrier: Endpoint,
    livekit: Endpoint,
    cfg: RelayConfig,
    mut inbox: mpsc::Receiver<Control>,
    raise: mpsc::Sender<MediaEvent>,
) -> RelayReport {
    let mut s = State {
        cfg,
        t0: Instant::now(),
        peers: [Peer::default(), Peer::default()],
        stats: [StreamStats::new(CLOCK_RATE), StreamStats::new(CLOCK_RATE)],
        answered_at: None,
        early_first: None,
        early_ms: None,
        last_carrier: None,
        since_answer: [0, 0],
        strangers: 0,
        relatched: 0,
        not_rtcp: 0,
        rtcp_relayed: 0,
        undeliverable: 0,
        one_way: None,
        one_way_checked: false,
        timed_out: false,
    };
    let (mut b0, mut b1, mut b2, mut b3) = (
        [0u8; MAX_DATAGRAM],
        [0u8; MAX_DATAGRAM],
        [0u8; MAX_DATAGRAM],
        [0u8; MAX_DATAGRAM],
    );
    // One timer for both checks, armed at the earliest deadline known. A packet only
    // moves a deadline later, so the timer is not reset per packet: when it fires early
    // nothing is due and it is armed again at the deadline as it now stands.
    let far = || Instant::now() + Duration::from_secs(86_400);
    let mut armed = far();
    let timer = tokio::time::sleep_until(armed);
    tokio::pin!(timer);
    loop {
        if let Some(d) = s.next_deadline().filter(|d| *d < armed) {
            armed = d;
            timer.as_mut().reset(d);
        }
        tokio::select! {
            r = carrier.rtp.recv_from(&mut b0) => if let Ok((n, src)) = r {
                if let Some(to) = s.on_rtp(Side::Carrier, src, &b0[..n], Instant::now()) {
                    let _ = livekit.rtp.send_to(&b0[..n], to).await;
                }
            },
            r = livekit.rtp.recv_from(&mut b1) => if let Ok((n, src)) = r {
                if let Some(to) = s.on_rtp(Side::Livekit, src, &b1[..n], Instant::now()) {
                    let _ = carrier.rtp.send_to(&b1[..n], to).await;
                }
            },
            r = carrier.rtcp.recv_from(&mut b2) => if let Ok((n, src)) = r {
                if let Some(to) = s.on_rtcp(Side::Carrier, src, &b2[..n]) {
                    let _ = livekit.rtcp.send_to(&b2[..n], to).await;
                }
            },
            r = livekit.rtcp.recv_from(&mut b3) => if let Ok((n, src)) = r {
                if let Some(to) = s.on_rtcp(Side::Livekit, src, &b3[..n]) {
                    let _ = carrier.rtcp.send_to(&b3[..n], to).await;
                }
            },
            c = inbox.recv() => match c {
                Some(Control::Answered) => s.answered(Instant::now()),
                Some(Control::Remote(side, target)) => s.set_remote(side, target, Instant::now()),
                Some(Control::Report(reply)) => {
                    let _ = reply.send(s.report());
                }
                None => return s.report(),
            },
            _ = &mut timer => {
                for e in s.due(Instant::now()) {
                    // A full queue means nobody reads events: the report still has them.
                    let _ = raise.try_send(e);
                }
                armed = far();
                timer.as_mut().reset(armed);
            }
        }
    }
}
