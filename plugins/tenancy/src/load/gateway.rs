//! `gateway.toml` as a whole: each section validated by its own module, assembled into
//! one [`GatewayConfig`].
//!
//! Owns: the order in which sections are validated (which is the order their errors are
//! reported in) and the top-level `answer_detection` key. Owner keys are added by the
//! caller, after this.

use std::path::Path;

use super::{
    agents, billing, calls, dlt, limits, livekit, regions, server, simulator, sip, store, webhooks,
    Errs,
};
use crate::file::GatewayFile;
use crate::policy::{AnswerDetection, GatewayConfig};

pub(super) fn validate(f: &GatewayFile, dir: &Path, e: &mut Errs<'_>) -> GatewayConfig {
    let srv = server::validate(&f.server, e);
    let regions = regions::validate(&f.regions, e);
    let livekit = f
        .livekit
        .as_ref()
        .and_then(|lk| livekit::project(lk, "livekit", dir, e));
    let answer_detection = answer_detection(f.answer_detection.as_deref(), e);
    let calls = calls::validate(&f.calls, e);
    let webhooks = webhooks::validate(&f.webhooks, e);
    let simulator = simulator::validate(&f.simulator, e);
    let per_ip_rps = limits::per_ip_rps(&f.limits, e);
    let sip = sip::validate(&f.sip, e);
    let store_cache_bytes = store::cache_bytes(&f.store, e);
    let (store, fleet_size) = store::validate(&f.store, dir, e);
    let health_check_interval = limits::health_check_interval(&f.limits, e);
    let presence = agents::presence(&f.agents, e);
    let billing = billing::validate(&f.billing, e);
    let dlt = dlt::rules(&f.dlt, e);
    // `[server.tls]` last: its errors have always come after every other section's.
    let tls = server::tls(f.server.tls.as_ref(), dir, e);
    GatewayConfig {
        listen: srv.listen,
        public_url: srv.public_url,
        threads: srv.threads,
        grace_period: srv.grace_period,
        regions,
        livekit,
        answer_detection,
        calls,
        webhooks,
        simulator,
        per_ip_rps,
        health_check_interval,
        tls,
        sip,
        store_cache_bytes,
        store,
        fleet_size,
        presence,
        billing,
        dlt,
    }
}

/// `answer_detection = "poll" | "webhook" | "sip"` (default `poll`).
fn answer_detection(v: Option<&str>, e: &mut Errs<'_>) -> AnswerDetection {
    match v.unwrap_or("poll") {
        "poll" => AnswerDetection::Poll,
        "webhook" => AnswerDetection::Webhook,
        "sip" => AnswerDetection::Sip,
        other => {
            e.push(
                "answer_detection",
                format!("{other:?} is not one of poll, webhook, sip"),
            );
            AnswerDetection::Poll
        }
    }
}
