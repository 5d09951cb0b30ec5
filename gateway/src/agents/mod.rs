//! Agents inside the gateway: the registry, presence and gating of `c2c-agents`, wired
//! to the store, the metrics and the calls.
//!
//! - [`AgentService`]: one handle (registry writes, listings, tokens, gating, on-call);
//! - [`socket`]: the presence WebSocket, served on its own task after Pingora reads the
//!   upgrade request (`GatewayProxy::take_over`).

mod service;
pub mod socket;

pub use service::{refusal_code, AgentService, AgentView, ClaimError, PendingGuard, SessionGrant};
