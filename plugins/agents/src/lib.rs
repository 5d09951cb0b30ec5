//! Agents: the people who place and take calls.
//!
//! Owns: the per-tenant registry (an [`Agent`] has a name and a telephony switch; its id
//! is the `agent_id` string CRMs already send), stored through [`AgentStore`] and held
//! in memory by [`Directory`] (which follows other nodes' writes on a shared store); live presence ([`PresenceHub`]: sessions, availability,
//! on-call, who hears of changes); presence tokens ([`PresenceSigner`]); and the outbound
//! rules ([`gate_outbound`]: registration, telephony, one call at a time).
//!
//! Must not: know about HTTP or sockets. The gateway runs the WebSocket and maps
//! [`OutboundRefusal`] to `403 agent_not_registered`, `403 agent_disabled` and
//! `409 agent_busy`.

mod agent;
#[cfg(any(test, feature = "contract"))]
pub mod contract;
mod directory;
pub mod presence;
mod store;
mod token;

pub use agent::{
    check_field, Agent, AgentUpdate, AuditEntry, Availability, InvalidField, MAX_FIELD,
};
pub use directory::{gate_outbound, Directory, DirectoryChange, OutboundRefusal};
pub use presence::{
    AgentPresence, Busy, Opened, PresenceHub, Reason, SessionCtl, SessionRef, SetError,
};
pub use store::{AgentStore, AgentStoreError, MemAgentStore, PresenceSecret, SledAgentStore};
pub use token::{random_id, PresenceClaims, PresenceSigner, TokenError};

#[cfg(test)]
mod presence_tests;
