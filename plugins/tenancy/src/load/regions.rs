//! `[[regions]]`: LiveKit edges, their upstreams, fallback order and the SIP nodes the
//! SIP edge accepts calls from.

use std::collections::HashSet;

use super::syntax::{is_http_url, valid_cidr, valid_id, valid_sip_uri};
use super::Errs;
use crate::file::RegionEntry;
use crate::policy::Region;

pub(super) fn validate(entries: &[RegionEntry], e: &mut Errs<'_>) -> Vec<Region> {
    let mut names = HashSet::new();
    let mut regions = Vec::new();
    for (i, r) in entries.iter().enumerate() {
        region(i, r, &mut names, e);
        regions.push(Region {
            name: r.name.clone(),
            upstreams: r.upstreams.clone(),
            fallback: r.fallback.clone(),
            sip_sources: r.sip_sources.clone(),
            livekit_sip: r.livekit_sip.clone(),
        });
    }
    // Fallbacks may name regions defined further down, so they are checked once every
    // name is known.
    for (i, r) in regions.iter().enumerate() {
        for (j, fb) in r.fallback.iter().enumerate() {
            if !names.contains(fb) || fb == &r.name {
                e.push(
                    format!("regions[{i}].fallback[{j}]"),
                    format!("{fb:?} is not another region defined in this file"),
                );
            }
        }
    }
    regions
}

/// One region's own keys; records its name in `names`.
fn region(i: usize, r: &RegionEntry, names: &mut HashSet<String>, e: &mut Errs<'_>) {
    if !valid_id(&r.name) {
        e.push(
            format!("regions[{i}].name"),
            "must be lowercase letters, digits and dashes",
        );
    }
    if !names.insert(r.name.clone()) {
        e.push(
            format!("regions[{i}].name"),
            format!("duplicate region {:?}", r.name),
        );
    }
    if r.upstreams.is_empty() {
        e.push(
            format!("regions[{i}].upstreams"),
            "at least one upstream URL is required",
        );
    }
    for (j, u) in r.upstreams.iter().enumerate() {
        if !is_http_url(u) {
            e.push(
                format!("regions[{i}].upstreams[{j}]"),
                "must be an http(s):// or ws(s):// URL",
            );
        }
    }
    if r.livekit_sip.as_deref().is_some_and(|u| !valid_sip_uri(u)) {
        e.push(
            format!("regions[{i}].livekit_sip"),
            "must be a SIP URI like sip:10.2.0.9:5060 (;transport=tcp allowed)",
        );
    }
    for (j, src) in r.sip_sources.iter().enumerate() {
        if !valid_cidr(src) {
            e.push(
                format!("regions[{i}].sip_sources[{j}]"),
                "must be an IP address or CIDR like 10.1.0.0/16",
            );
        }
    }
}
