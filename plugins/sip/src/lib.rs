//! The gateway's SIP edge: a transaction-stateful proxy between LiveKit SIP and the
//! tenants' carrier trunks, in both directions.
//!
//! **Outbound** (LiveKit SIP -> edge -> carrier): an INVITE from an allowed LiveKit node
//! carrying `X-C2C-Call-Id`. Tenant and trunk come from `X-C2C-Tenant` / `X-C2C-Trunk`
//! when LiveKit forwards them (CreateSIPParticipant `headers`), otherwise from the
//! Request-URI user matched as `trunk prefix + 10 digits` across all tenants (see
//! [`identify`]). The carrier gets `prefix + number` in the Request-URI and To; LiveKit
//! gets back exactly what it sent.
//!
//! **Inbound** (carrier -> edge, held, then -> LiveKit SIP): any other INVITE whose
//! Request-URI (or To) user is a tenant's inbound number (DID, `+91…`, `91…`, `0…` or
//! 10 digits), from that number's trunk `sources` (or its carrier address). The edge
//! answers `100` and `180` itself and holds the INVITE, with no LiveKit resources,
//! reporting it through [`SipObserver::on_inbound`]; the gateway finds an agent and
//! then [`InboundControl::forward`]s it to LiveKit SIP into a room (Request-URI and To
//! user = the room, `X-C2C-Call-Id`/`X-C2C-Tenant` added) or
//! [`InboundControl::reject`]s it (also after the forward while LiveKit has not
//! answered: the final at once to the carrier, CANCEL to LiveKit). The room never
//! reaches the carrier (To and From users are swapped back to the DID), nor do
//! LiveKit's provisionals. Outcomes are counted in `c2c_sip_inbound_total{outcome}`
//! (see [`InboundOutcome`]).
//!
//! Owns: SIP over UDP and TCP on one address; a raw-bytes normaliser and stream framer
//! in front of the parser (rsip lives only in `parse.rs`); RFC 3261 §16-17 / RFC 3581
//! proxying (Max-Forwards, 100 Trying, our Via with `rport`, Record-Route `;lr`,
//! responses by Via, 2xx retransmissions, our ACK for non-2xx, CANCEL, loose routing,
//! timer C); tenant/trunk identification, the dial-prefix rewrite (never visible
//! upstream) and the room rewrite of inbound calls (never visible to the carrier); the
//! DLT gate (403 + Warning, nothing reaches the carrier); edge hygiene (source
//! allow-list — no open relay —, flood limits, scanner drop, per-tenant CPS and
//! concurrency caps, held inbound calls included); per-trunk response codes and timing
//! metrics; and reporting what it sees through [`SipObserver`], correlated by
//! `X-C2C-Call-Id` (held inbound calls by their SIP Call-ID).
//!
//! **Anchored media** (trunks with `media = "anchor"`, both directions): the SDP both
//! sides get names the edge's own address and a port pair per side from
//! [`MediaConfig`]'s range, and a relay per call (`c2c-media`) carries RTP and RTCP
//! between them, latching each side's real source; its events and counts reach the
//! observer ([`SipObserver::on_media_event`], [`SipObserver::on_media_report`]). An
//! anchored INVITE without an offer it can anchor gets 488, one the port range cannot
//! hold 503 (an inbound one when the gateway forwards it: [`InboundError::Media`])
//! (docs/media.md).
//!
//! Must not: depend on Pingora, `c2c-callstate` or `c2c-livekit`; relay anything from
//! a source that is not an allowed LiveKit node (except inbound INVITEs from a trunk's
//! carrier sources, and in-dialog requests and CANCELs of known calls from their
//! carrier); pass `X-C2C-*` headers between carrier and LiveKit other than its own;
//! log full phone numbers; label metrics by call or number; hold anything unbounded
//! (16 KiB per message, bounded transaction/dialog/connection tables and queues; held
//! calls are bounded by the dialog table and by `inbound_hold_max`).

mod carriers;
mod config;
mod dialog;
mod did;
mod edge;
mod error;
mod flow;
mod framing;
mod hdr;
mod inbound;
mod limits;
mod media;
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
    default_scanners, AllowedRegion, CallLimits, Cidr, FloodLimits, MediaConfig, SipConfig,
    SipTimers, TenantCaps,
};
pub use edge::{SipEdge, SipEdgeHandle};
pub use error::{ParseError, SipError};
pub use inbound::{InboundControl, InboundError, InboundForward};
pub use media::{AudioTarget, MediaEvent, MediaIo, RelayConfig, RelayReport, Side, StreamReport};
pub use metrics::{code_label, InboundOutcome, SipMetrics, CODES};
pub use observer::{InboundCall, InboundGone, NoopObserver, SipObserver};
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
