//! The plugin chain every HTTP request runs through, in order (see [`chain`]). Named
//! `chain` so it is not confused with the domain crates under the top-level `plugins/`.

pub mod access_log;
pub mod auth;
pub mod body_rules;
pub mod cors;
pub mod dlt_gate;
pub mod edge_auth;
pub mod limits;
pub mod router;

use std::sync::Arc;

use c2c_plugin_api::PluginChain;

use crate::app::App;

/// Builds the chain every request runs through.
///
/// Order matters: route first (404/405 need no auth), then auth (API keys, and LiveKit
/// tokens for proxied routes: before anything that reveals or changes state or touches
/// an upstream), then limits (the tenant is known by then), then body rules (415/413 for authenticated callers only,
/// so unauthenticated probes learn nothing about routes), then the DLT gate (needs the
/// tenant from auth), then the API that answers.
pub fn chain(app: &Arc<App>) -> PluginChain {
    PluginChain::new(vec![
        Arc::new(access_log::AccessLog::new(app.clone())),
        Arc::new(router::Router),
        Arc::new(auth::Auth::new(app.clone())),
        Arc::new(edge_auth::EdgeAuth::new(app.clone())),
        Arc::new(limits::Limits::new(app.clone())),
        Arc::new(body_rules::BodyRules),
        Arc::new(dlt_gate::DltGate::new(app.clone())),
        Arc::new(cors::Cors::new(app.clone())),
        Arc::new(crate::api::Api::new(app.clone())),
    ])
}
