//! Anchored media on the SIP edge (docs/media.md): for a trunk with `media = "anchor"`
//! the edge points both sides' SDP at its own ports and relays RTP and RTCP between
//! them (`c2c-media`'s relay), measuring what passes.
//!
//! Split like the rest of the edge: [`anchors`] is the core's side (synchronous, under
//! the core's lock: ports reserved and bound when the INVITE is admitted, SDP rewritten
//! as messages pass), [`relays`] the edge's side (the relay of each call on the
//! runtime, its events and its final report; ports go back to the pool only once the
//! relay has closed its sockets). The core tells the edge what to do with
//! [`MediaOp`]s, as it does with the bytes it sends.

pub(crate) mod anchors;
pub(crate) mod metrics;
pub(crate) mod relays;

use std::net::UdpSocket;

pub use c2c_media::{
    AudioTarget, MediaEvent, MediaIo, RelayConfig, RelayReport, Side, StreamReport,
};

use anchors::Legs;

/// What the core asks of the media runner, for the call with SIP Call-ID `key`.
#[derive(Debug)]
pub enum MediaOp {
    /// A call was anchored: start relaying on its sockets.
    Start(Box<Start>),
    /// A side's SDP (an answer, a re-INVITE, an UPDATE) says where it wants audio now.
    Remote {
        key: String,
        side: Side,
        target: AudioTarget,
    },
    /// The call was answered (its first 2xx passed the edge).
    Answered { key: String },
    /// The call is over (or forgotten): stop relaying, report, free the ports.
    Stop { key: String },
}

/// A call's relay, as the core opened it.
#[derive(Debug)]
pub struct Start {
    pub key: String,
    /// `X-C2C-Call-Id`: what the observer hears the call's media events under.
    pub call_id: Option<String>,
    pub trunk: String,
    pub legs: Legs,
    pub sockets: LegSockets,
    /// The side whose offer the INVITE carried (LiveKit outbound, the carrier inbound),
    /// and where it wants audio.
    pub offerer: (Side, AudioTarget),
}

/// The four sockets of an anchored call, bound when it was admitted: RTP and RTCP
/// facing the carrier, and facing LiveKit.
#[derive(Debug)]
pub struct LegSockets {
    pub carrier_rtp: UdpSocket,
    pub carrier_rtcp: UdpSocket,
    pub livekit_rtp: UdpSocket,
    pub livekit_rtcp: UdpSocket,
}
