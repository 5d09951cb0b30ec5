//! One call's media state, whatever engine moves its packets: the latches, the counts,
//! early media, dead air and one-way audio. Pure: it is handed each datagram with the
//! time it was read, and answers where to send it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::{MediaEvent, RelayConfig, RelayReport, Side};
use crate::sdp::AudioTarget;
use crate::stats::{NotRtp, StreamStats};

/// Largest datagram read; RTP of voice is a few hundred bytes.
pub(crate) const MAX_DATAGRAM: usize = 2048;
/// RTP clock of the G.711 codecs the trunks carry.
const CLOCK_RATE: u32 = 8_000;
/// How long before the answer the carrier's first audio may come and still be the
/// answer's own (see `State::answered`). Early media that counts (a ringback, an
/// announcement) runs for seconds.
const ANSWER_RACE: Duration = Duration::from_millis(100);

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

pub(crate) struct State {
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
    pub(crate) fn new(cfg: RelayConfig) -> Self {
        State {
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
        }
    }

    fn ms(&self, at: Instant) -> f64 {
        at.duration_since(self.t0).as_secs_f64() * 1000.0
    }

    /// Whether peer `i`, latched to `latched` on the socket a datagram came in on,
    /// takes one from `src`; a refusal counts a stranger.
    fn admit(&mut self, i: usize, latched: Option<SocketAddr>, src: SocketAddr) -> bool {
        let ok = self.peers[i].admits(latched, src);
        if !ok {
            self.strangers += 1;
        }
        ok
    }

    /// Counts an RTP datagram from `src` on `side`'s socket; answers where to relay it.
    pub(crate) fn on_rtp(
        &mut self,
        side: Side,
        src: SocketAddr,
        data: &[u8],
        now: Instant,
    ) -> Option<SocketAddr> {
        let i = idx(side);
        let latched = self.peers[i].rtp;
        if !self.admit(i, latched, src) {
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
    pub(crate) fn on_rtcp(
        &mut self,
        side: Side,
        src: SocketAddr,
        data: &[u8],
    ) -> Option<SocketAddr> {
        let i = idx(side);
        let latched = self.peers[i].rtcp;
        if !self.admit(i, latched, src) {
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
    pub(crate) fn set_remote(&mut self, side: Side, target: AudioTarget, now: Instant) {
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

    pub(crate) fn answered(&mut self, now: Instant) {
        if self.answered_at.is_some() {
            return;
        }
        self.answered_at = Some(now);
        // A carrier starts its audio with its 200 OK: the first packets can reach the
        // relay a moment before the edge has handled the 200 and said so (another thread,
        // a queue). Audio that came less than `ANSWER_RACE` before the answer is the
        // answer's own, not early media (seen in CI: 0.05 ms "early" on a plain answer).
        if self
            .early_first
            .is_some_and(|first| now.duration_since(first) < ANSWER_RACE)
        {
            self.early_first = None;
        }
        self.early_ms = self
            .early_first
            .map(|first| now.duration_since(first).as_secs_f64() * 1000.0);
    }

    /// The next instant a timer needs a look (None: nothing armed).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
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
    pub(crate) fn due(&mut self, now: Instant) -> Vec<MediaEvent> {
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

    pub(crate) fn report(&self) -> RelayReport {
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
