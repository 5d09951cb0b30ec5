//! The contract between the gateway's proxy glue and its plugins.
//!
//! Owns: the per-request [`RequestCtx`], the read-only [`RequestHead`] view of a request,
//! the [`Decision`] a plugin returns, the one JSON error shape ([`ApiError`] ->
//! [`JsonResponse`]) and the [`Plugin`] trait with its [`PluginChain`].
//!
//! Must not: know about Pingora, sockets or any domain (tenants, calls). The gateway adapts
//! Pingora's `Session` into a [`RequestHead`] and runs the chain from its `ProxyHttp` hooks;
//! domain crates are wrapped in plugins by the gateway.

mod chain;
mod ctx;
mod response;

pub use chain::{Plugin, PluginChain};
pub use ctx::{
    Access, DuplicateHeader, Principal, RequestCtx, RequestHead, RouteInfo, Scope, UpstreamChoice,
    X_API_KEY,
};
pub use response::{ApiError, Decision, ErrorBody, ErrorDetail, JsonResponse};
