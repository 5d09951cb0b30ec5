//! `[inbound]` of a tenant file: the DIDs customers call (each on one of the tenant's
//! trunks), the CRM's lead lookup and the ring timings. DIDs unique across tenants are
//! checked by the loader once every tenant is read ([`check_unique_dids`]).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use super::syntax::{is_e164, is_http_url};
use super::Errs;
use crate::error::PolicyError;
use crate::file::TenantInboundSection;
use crate::policy::{InboundNumber, Tenant, TenantInbound, Trunk};

pub(super) fn validate(
    s: &TenantInboundSection,
    trunks: &[Trunk],
    has_webhook: bool,
    e: &mut Errs<'_>,
) -> TenantInbound {
    let mut ranged = |key: &str, v: Option<u64>, default: u64, min: u64, max: u64| {
        let v = v.unwrap_or(default);
        if !(min..=max).contains(&v) {
            e.push(
                format!("inbound.{key}"),
                format!("must be between {min} and {max}"),
            );
        }
        v
    };
    let ring_agent = ranged("ring_agent_seconds", s.ring_agent_seconds, 20, 5, 120);
    let ring_timeout = ranged(
        "inbound_ring_timeout_seconds",
        s.inbound_ring_timeout_seconds,
        60,
        5,
        300,
    );
    let lead_wait = ranged("lead_wait_ms", s.lead_wait_ms, 1500, 0, 10_000);
    let lookup_timeout = ranged("lookup_timeout_ms", s.lookup_timeout_ms, 3000, 100, 10_000);
    if ring_agent > ring_timeout {
        e.push(
            "inbound.ring_agent_seconds",
            "must not be longer than inbound_ring_timeout_seconds",
        );
    }
    if let Some(u) = &s.lookup_url {
        if !is_http_url(u) || !(u.starts_with("http://") || u.starts_with("https://")) {
            e.push("inbound.lookup_url", "must be an http(s):// URL");
        }
        // The lookup authenticates with the tenant's outbound key, which lives there.
        if !has_webhook {
            e.push(
                "inbound.lookup_url",
                "needs [crm_webhook] (the lookup sends its outbound key)",
            );
        }
    }
    let mut seen = HashSet::new();
    let mut numbers = Vec::new();
    for (i, n) in s.numbers.iter().enumerate() {
        let at = format!("inbound.numbers[{i}]");
        if !is_e164(&n.did) {
            e.push(format!("{at}.did"), "must be in E.164, like +918045678901");
        } else if !seen.insert(n.did.clone()) {
            e.push(format!("{at}.did"), format!("duplicate number {}", n.did));
        }
        if !trunks.iter().any(|t| t.label == n.trunk) {
            e.push(
                format!("{at}.trunk"),
                format!("{:?} is not a trunk of this tenant", n.trunk),
            );
        }
        numbers.push(InboundNumber {
            did: n.did.clone(),
            trunk: n.trunk.clone(),
        });
    }
    TenantInbound {
        lookup_url: s.lookup_url.clone(),
        lookup_timeout: Duration::from_millis(lookup_timeout),
        lead_wait: Duration::from_millis(lead_wait),
        ring_agent: Duration::from_secs(ring_agent),
        ring_timeout: Duration::from_secs(ring_timeout),
        numbers,
    }
}

/// A DID routes to exactly one tenant: a number declared by two tenant files is an
/// error in the second file (in file-name order).
pub(super) fn check_unique_dids<'a>(
    tenants: impl IntoIterator<Item = (&'a Path, &'a Tenant)>,
    errors: &mut Vec<PolicyError>,
) {
    let mut owner: HashMap<&str, &str> = HashMap::new();
    for (path, t) in tenants {
        for (i, n) in t.inbound.numbers.iter().enumerate() {
            match owner.get(n.did.as_str()) {
                Some(other) if *other != t.id => errors.push(PolicyError::new(
                    path,
                    format!("inbound.numbers[{i}].did"),
                    format!("{} is already an inbound number of tenant {other:?}", n.did),
                )),
                Some(_) => {}
                None => {
                    owner.insert(&n.did, &t.id);
                }
            }
        }
    }
}
