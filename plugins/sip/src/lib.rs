//! The gateway's SIP edge: a transaction-stateful proxy between LiveKit SIP (upstream)
//! and the tenants' carrier trunks (downstream).
//!
//! Owns: SIP over UDP and TCP on one address; a raw-bytes normaliser and stream framer
//! in front of the parser (rsip lives only in `parse.rs`); RFC 3261 §16-17 / RFC 3581
//! proxying (Max-Forwards, 100 Trying, our Via with `rport`, Record-Route `;lr`,
//! responses by Via, 2xx retransmissions, our ACK for non-2xx, CANCEL, loose routing,
//! timer C); tenant/trunk identification and the dial-prefix rewrite (never visible
//! upstream); the DLT gate (403 + Warning, nothing reaches the carrier); edge hygiene
//! (source allow-list — no open relay —, flood limits, scanner drop, per-tenant CPS and
//! concurrency caps); per-trunk response codes and timing metrics; and reporting what
//! it sees through [`SipObserver`], correlated by `X-C2C-Call-Id`.
//!
//! Tenant and trunk of a call: `X-C2C-Tenant` / `X-C2C-Trunk` when LiveKit forwards
//! them (CreateSIPParticipant `headers`), otherwise the Request-URI user matched as
//! `trunk prefix + 10 digits` across all tenants (see [`identify`]). The carrier gets
//! `prefix + number` in the Request-URI and To; LiveKit gets back exactly what it sent.
//!
//! Must not: depend on Pingora, `c2c-callstate` or `c2c-livekit`; relay anything from
//! a source that is not an allowed LiveKit node (except in-dialog requests of known
//! calls from their carrier); log full phone numbers; label metrics by call or number;
//! hold anything unbounded (16 KiB per message, bounded transaction/dialog/connection
//! tables and queues).

mod carriers;
mod config;
mod dialog;
mod edge;
mod error;
mod flow;
mod framing;
mod hdr;
mod limits;
mod message;
mod metrics;
mod normalize;
mod observer;
mod parse;
mod proxy;
mod resolver;
mod response;
mod sockets;
mod sources;
mod tcp;
mod tenant;
mod txn;
mod udp_drops;
mod validate;

pub use config::{
    default_scanners, AllowedRegion, CallLimits, Cidr, FloodLimits, SipConfig, SipTimers,
    TenantCaps,
};
pub use edge::{SipEdge, SipEdgeHandle};
pub use error::{ParseError, SipError};
pub use metrics::{code_label, SipMetrics, CODES};
pub use observer::{NoopObserver, SipObserver};
pub use sockets::SipSockets;
pub use sources::{OutboundGate, PolicySource, StaticPolicy};
pub use tenant::{identify, CallRoute, RouteError};

/// The message pipeline, exposed for property tests and fuzzing: normaliser, stream
/// framer and full decode (normalise + parse + validate). Never panics on any input.
pub mod codec {
    pub use crate::framing::{next_frame, Frame, FrameError};
    pub use crate::message::{decode, Decoded, SipMsg};
    pub use crate::normalize::{normalize, Normalized, NormalizedMessage, RawHeader, MAX_MESSAGE};
    pub use crate::parse::{start_line, uri, Method, SipUri, StartLine};
}
