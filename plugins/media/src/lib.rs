//! Media on the SIP edge (issue 24): what an anchored call's RTP tells, and the ports the
//! relay hands out.
//!
//! - [`stats`]: one direction of one call's RTP, packet by packet (parsed with
//!   `rtp-rs`): packets, bytes, loss from extended sequence numbers and interarrival
//!   jitter as RFC 3550 appendix A.3 and A.8 define them, the longest silence between
//!   two packets, and what was not RTP at all.
//! - [`ports`]: the relay's port pairs (even RTP port, RTCP on the next), from a
//!   configured range, reused least recently freed first.
//!
//! - [`relay`]: one anchored call's RTP and RTCP relayed both ways between the carrier
//!   and LiveKit, latching each side's real source, with early media, dead air and
//!   one-way audio raised as events.
//!
//! - [`sdp`]: where a side wants its audio, and a body pointed at the edge's ports.
//!
//! - [`engine`]: where relays run — a task per call on the tokio runtime, or every call
//!   on one media thread driving an `io_uring`.
//!
//! `stats`, `ports` and `sdp` do no I/O; the relay owns its sockets and feeds them.

pub mod engine;
pub mod ports;
pub mod relay;
pub mod sdp;
pub mod stats;
#[cfg(target_os = "linux")]
mod uring;

pub use engine::{MediaEngine, MediaIo, DEFAULT_BATCH};
pub use ports::{PortPair, PortPool, PortRangeError, PortsExhausted};
pub use relay::{Endpoint, MediaEvent, Relay, RelayConfig, RelayReport, Side};
pub use sdp::{AudioTarget, SdpError};
pub use stats::{NotRtp, StreamReport, StreamStats};
