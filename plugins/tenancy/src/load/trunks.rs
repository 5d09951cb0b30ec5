//! `[[trunks]]` of a tenant file: labels, LiveKit trunk ids, dial prefixes, caller IDs,
//! carriers and the one default trunk.

use std::collections::HashSet;

use super::syntax::{is_e164, valid_cidr, valid_id, valid_sip_uri};
use super::Errs;
use crate::dlt::CallCategory;
use crate::file::TrunkEntry;
use crate::policy::{MediaMode, Trunk};

pub(super) fn validate(entries: &[TrunkEntry], e: &mut Errs<'_>) -> Vec<Trunk> {
    let mut labels = HashSet::new();
    let mut defaults = 0;
    let mut trunks = Vec::new();
    for (i, t) in entries.iter().enumerate() {
        let at = format!("trunks[{i}]");
        trunk(&at, t, &mut labels, e);
        if t.default {
            defaults += 1;
            if defaults > 1 {
                e.push(format!("{at}.default"), "only one trunk may be the default");
            }
        }
        trunks.push(Trunk {
            label: t.label.clone(),
            livekit_trunk_id: t.livekit_trunk_id.clone(),
            prefix: t.prefix.clone(),
            default_did: t.default_did.clone(),
            carrier: t.carrier.clone(),
            default: t.default,
            enabled: t.enabled,
            sources: t.sources.clone(),
            rate: match (t.paise_per_pulse, t.pulse_seconds) {
                (None, None) => None,
                (Some(p), Some(s)) => super::billing::rate(&at, p, s, e),
                _ => {
                    e.push(
                        format!("{at}.paise_per_pulse"),
                        "a trunk's rate needs both paise_per_pulse and pulse_seconds",
                    );
                    None
                }
            },
            media: match t.media.as_deref() {
                None => MediaMode::Direct,
                Some(m) => MediaMode::parse(m).unwrap_or_else(|| {
                    e.push(format!("{at}.media"), "must be \"direct\" or \"anchor\"");
                    MediaMode::Direct
                }),
            },
            category: match t.category.as_deref() {
                None => CallCategory::Service,
                Some(c) => CallCategory::parse(c).unwrap_or_else(|| {
                    e.push(
                        format!("{at}.category"),
                        "must be \"promotional\", \"service\" or \"transactional\"",
                    );
                    CallCategory::Service
                }),
            },
        });
    }
    trunks
}

/// One trunk's own keys; records its label in `labels`.
fn trunk(at: &str, t: &TrunkEntry, labels: &mut HashSet<String>, e: &mut Errs<'_>) {
    if !valid_id(&t.label) {
        e.push(
            format!("{at}.label"),
            "must be lowercase letters, digits and dashes",
        );
    }
    if !labels.insert(t.label.clone()) {
        e.push(
            format!("{at}.label"),
            format!("duplicate trunk label {:?}", t.label),
        );
    }
    if t.livekit_trunk_id.trim().is_empty() {
        e.push(format!("{at}.livekit_trunk_id"), "must not be empty");
    }
    if !t.prefix.bytes().all(|b| b.is_ascii_digit()) || t.prefix.len() > 12 {
        e.push(format!("{at}.prefix"), "must be digits only (at most 12)");
    }
    if !is_e164(&t.default_did) {
        e.push(
            format!("{at}.default_did"),
            "must be in E.164, like +919999999999",
        );
    }
    if !valid_sip_uri(&t.carrier) {
        e.push(
            format!("{at}.carrier"),
            "must be a SIP URI like sip:10.0.0.5:5060",
        );
    }
    for (j, src) in t.sources.iter().enumerate() {
        if !valid_cidr(src) {
            e.push(
                format!("{at}.sources[{j}]"),
                "must be an IP address or CIDR like 203.0.113.0/24",
            );
        }
    }
}
