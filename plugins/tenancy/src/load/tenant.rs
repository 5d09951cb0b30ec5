//! A tenant file (`tenants/<id>.toml`) apart from its keys and trunks: identity,
//! region, allowed origins, `[livekit]`, `[crm_webhook]` and `[limits]` (`[dlt]` is `dlt.rs`).

use std::path::Path;

use super::syntax::{is_http_url, valid_id};
use super::{agents, dlt, inbound, livekit, trunks, Errs};
use crate::file::{CrmWebhookSection, TenantFile, TenantLimitsSection};
use crate::policy::{CrmWebhook, GatewayConfig, Tenant, TenantLimits};
use crate::secret;

/// The tenant of `tf`, read from `path`; `gw` is the already validated gateway.toml
/// (regions and the platform's LiveKit project a tenant may rely on).
pub(super) fn validate(
    tf: TenantFile,
    path: &Path,
    dir: &Path,
    gw: &GatewayConfig,
    e: &mut Errs<'_>,
) -> Tenant {
    identity(&tf, path, e);
    let region = tf.region.clone().unwrap_or_else(|| "singapore".to_string());
    if tf.livekit.is_none() && !gw.regions.iter().any(|r| r.name == region) {
        e.push(
            "region",
            format!("region {region:?} is not defined in gateway.toml [[regions]]"),
        );
    }
    allowed_origins(&tf.allowed_origins, e);
    let livekit = tf
        .livekit
        .as_ref()
        .and_then(|lk| livekit::project(lk, "livekit", dir, e));
    if tf.livekit.is_none() && gw.livekit.is_none() {
        e.push(
            "livekit",
            "no [livekit] section and gateway.toml has no platform [livekit] to fall back to",
        );
    }
    let crm_webhook = tf.crm_webhook.as_ref().and_then(|c| crm_webhook(c, dir, e));
    let trunks = trunks::validate(&tf.trunks, e);
    let dlt = dlt::tenant(&tf.dlt, dir, &trunks, &gw.dlt, e);
    let limits = limits(&tf.limits, e);
    let inbound = inbound::validate(&tf.inbound, &trunks, crm_webhook.is_some(), e);
    Tenant {
        id: tf.id,
        name: tf.name,
        region,
        allowed_origins: tf.allowed_origins,
        livekit,
        crm_webhook,
        dlt,
        limits,
        agents: agents::tenant(&tf.agents),
        trunks,
        inbound,
    }
}

/// `id` (which names the file) and `name`.
fn identity(tf: &TenantFile, path: &Path, e: &mut Errs<'_>) {
    if !valid_id(&tf.id) {
        e.push("id", "must be 1-63 lowercase letters, digits and dashes");
    }
    if path.file_stem().and_then(|s| s.to_str()) != Some(tf.id.as_str()) {
        e.push("id", format!("must match the file name ({}.toml)", tf.id));
    }
    if tf.name.trim().is_empty() {
        e.push("name", "must not be empty");
    }
}

/// `allowed_origins`: browser origins, scheme and host only.
fn allowed_origins(origins: &[String], e: &mut Errs<'_>) {
    for (i, o) in origins.iter().enumerate() {
        let ok = url::Url::parse(o)
            .map(|u| matches!(u.scheme(), "http" | "https") && u.path() == "/")
            .unwrap_or(false);
        if !ok {
            e.push(
                format!("allowed_origins[{i}]"),
                "must be an origin like https://crm.example.com (scheme and host, no path)",
            );
        }
    }
}

/// `[crm_webhook]`; `None` when its outbound key does not resolve.
fn crm_webhook(c: &CrmWebhookSection, dir: &Path, e: &mut Errs<'_>) -> Option<CrmWebhook> {
    if !is_http_url(&c.url) || c.url.starts_with("ws") {
        e.push("crm_webhook.url", "must be an http(s):// URL");
    }
    let key = secret::resolve(
        c.outbound_key_env.as_deref(),
        c.outbound_key_file.as_deref(),
        dir,
    )
    .map_err(|r| e.push("crm_webhook.outbound_key_env", r))
    .ok()?;
    let signing = match (&c.signing_secret_env, &c.signing_secret_file) {
        (None, None) => None,
        (env, file) => secret::resolve(env.as_deref(), file.as_deref(), dir)
            .map_err(|r| e.push("crm_webhook.signing_secret_env", r))
            .ok(),
    };
    Some(CrmWebhook {
        url: c.url.clone(),
        outbound_key: key,
        signing_secret: signing,
        low_balance_webhook: c.low_balance_webhook.unwrap_or(false),
        media_in_payload: c.media_in_payload.unwrap_or(false),
    })
}

/// A tenant's `[limits]`: its API request rate and concurrent calls.
fn limits(l: &TenantLimitsSection, e: &mut Errs<'_>) -> TenantLimits {
    let rps = l.requests_per_second.unwrap_or(50);
    let calls = l.max_concurrent_calls.unwrap_or(100);
    if !(1..=100_000).contains(&rps) {
        e.push("limits.requests_per_second", "must be between 1 and 100000");
    }
    if !(1..=1_000_000).contains(&calls) {
        e.push(
            "limits.max_concurrent_calls",
            "must be between 1 and 1000000",
        );
    }
    TenantLimits {
        requests_per_second: rps,
        max_concurrent_calls: calls,
    }
}
