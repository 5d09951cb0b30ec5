//! c2c-gateway: the Pingora server assembly and the glue between Pingora and the
//! domain plugins.
//!
//! Owns: the CLI, start-up and shutdown, the `ProxyHttp` implementation (which only runs
//! the plugin chain), the route table, the HTTP API handlers, policy hot reload and the
//! mapping of every domain error to the one JSON error shape.
//!
//! Must not: hold domain logic. Number rules live in `c2c-dialplan`, the DLT flag in
//! `c2c-dlt`, policies and keys in `c2c-tenancy`.

pub mod agents;
pub mod api;
pub mod app;
pub mod body;
pub mod build;
pub mod calls;
pub mod chain;
pub mod cli;
pub mod client_errors;
pub mod clock;
pub mod detach;
pub mod dlt_audit;
pub mod dlt_lists;
pub mod edge;
pub mod error;
pub mod fleet;
pub mod inbound;
pub mod lifecycle;
pub mod logging;
pub mod policy_edit;
pub mod provision;
pub mod proxy;
pub mod reload;
pub mod retention;
pub mod routes;
pub mod rtc;
pub mod server;
pub mod sip;
pub mod start_only;
pub mod stores;
