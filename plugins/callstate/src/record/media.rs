//! What the SIP edge's relay measured on an anchored call (docs/media.md): stored on the
//! record when the relay stops (after the call's end, usually), shown by
//! `GET /api/c2c/calls/{call_id}` as `media`. Integers only, so the record stays `Eq`
//! and its JSON exact: jitter in microseconds, loss as counts.

use serde::{Deserialize, Serialize};

/// One direction's RTP as the relay counted it (RFC 3550 loss and jitter).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaStream {
    pub packets: u64,
    pub bytes: u64,
    /// Packets the sequence numbers say were sent.
    pub expected: u64,
    /// expected - received, never below zero.
    pub lost: u64,
    /// Interarrival jitter (RFC 3550 A.8), microseconds.
    pub jitter_us: u64,
    /// The longest time between two packets, milliseconds.
    pub max_gap_ms: u64,
}

impl MediaStream {
    /// `lost / expected` in percent (0 when nothing was expected).
    pub fn loss_percent(&self) -> f64 {
        if self.expected == 0 {
            0.0
        } else {
            self.lost as f64 * 100.0 / self.expected as f64
        }
    }
}

/// An anchored call's media.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallMedia {
    pub from_carrier: MediaStream,
    pub from_livekit: MediaStream,
    /// The carrier sent RTP before the answer (an announcement, a caller tune).
    pub early_media: bool,
    /// How long early media ran until the answer (None: none, or never answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_media_ms: Option<u64>,
    /// `carrier` or `livekit`: the side that sent nothing while the other did, after
    /// the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_way_silent: Option<String>,
    /// No RTP from the carrier for `media_timeout_seconds` after the answer.
    pub media_timeout: bool,
    /// Packets from third parties on the call's ports, dropped.
    pub strangers: u64,
}
