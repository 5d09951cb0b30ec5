//! Tenants, policy files and inbound API keys.
//!
//! Owns: the on-disk policy formats (`policies/gateway.toml`, `policies/tenants/*.toml`),
//! their validation into one immutable [`Policy`], secret references, and key minting,
//! hashing and lookup ([`KeyRing`]).
//!
//! Must not: do I/O beyond reading the policy directory, hold mutable state (the owner's
//! DLT toggle lives in `c2c-dlt`), or know about HTTP servers. Reload scheduling belongs to
//! the gateway; this crate only answers "is this directory a valid policy, and which?".

pub mod dlt;
mod error;
mod file;
mod keyring;
pub mod keys;
mod load;
mod policy;
mod secret;

pub use dlt::{CallCategory, CallingHours, DltRules, EntityClass};
pub use error::{PolicyError, PolicyErrors};
pub use keyring::{KeyRecord, KeyRejection, KeyRing};
pub use load::{is_e164, load_dir, load_dir_with, valid_id};
pub use policy::*;
pub use secret::Secret;
