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
//! Nothing here does I/O: the relay owns the sockets and the clock and feeds these.

pub mod ports;
pub mod stats;

pub use ports::{PortPair, PortPool, PortRangeError, PortsExhausted};
pub use stats::{NotRtp, StreamReport, StreamStats};
