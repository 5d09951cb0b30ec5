//! `[dlt]` of gateway.toml (the platform's caller-ID series, default calling hours and
//! list size) and of a tenant file (Principal Entity, outbound flag, entity class,
//! registered numbers, calling hours, DND and consent lists), and the rule that each
//! trunk's default caller ID fits its call category (`policy check` refuses it early,
//! so no call is ever refused for the trunk's own number).

use std::path::{Path, PathBuf};

use super::syntax::is_e164;
use super::Errs;
use crate::dlt::{CallerIdSeries, CallingHours, DltRules, EntityClass};
use crate::file::{DltSection, GatewayDltSection};
use crate::policy::{DltPolicy, Trunk};

/// No real list comes close; the bound keeps a typo from reserving the machine's memory.
const MAX_LIST_NUMBERS: usize = 500_000_000;

pub(super) fn rules(s: &GatewayDltSection, e: &mut Errs<'_>) -> DltRules {
    let d = DltRules::default();
    let calling_hours = match s.calling_hours.as_deref() {
        None => d.calling_hours,
        Some(w) => CallingHours::parse(w).unwrap_or_else(|why| {
            e.push("dlt.calling_hours", why);
            d.calling_hours
        }),
    };
    let mut series = |key: &str, v: &Option<Vec<String>>, default: Vec<String>| match v {
        None => default,
        Some(prefixes) => {
            if prefixes.is_empty()
                || prefixes
                    .iter()
                    .any(|p| p.is_empty() || p.len() > 9 || !p.bytes().all(|b| b.is_ascii_digit()))
            {
                e.push(
                    format!("dlt.{key}"),
                    "must be a non-empty list of national-number prefixes (digits), like [\"140\"]",
                );
            }
            prefixes.clone()
        }
    };
    let series = CallerIdSeries {
        promotional: series(
            "promotional_series",
            &s.promotional_series,
            d.series.promotional,
        ),
        government: series(
            "government_series",
            &s.government_series,
            d.series.government,
        ),
        financial: series("financial_series", &s.financial_series, d.series.financial),
    };
    let max_list_numbers = s.max_list_numbers.unwrap_or(d.max_list_numbers);
    if !(1..=MAX_LIST_NUMBERS).contains(&max_list_numbers) {
        e.push(
            "dlt.max_list_numbers",
            format!("must be between 1 and {MAX_LIST_NUMBERS}"),
        );
    }
    DltRules {
        calling_hours,
        series,
        max_list_numbers,
    }
}

/// A tenant's `[dlt]`; `trunks` are its validated trunks, whose default caller IDs must
/// fit their categories under `rules`.
pub(super) fn tenant(
    d: &DltSection,
    dir: &Path,
    trunks: &[Trunk],
    rules: &DltRules,
    e: &mut Errs<'_>,
) -> DltPolicy {
    let pe = d.principal_entity_id.trim();
    if pe.is_empty() || !pe.bytes().all(|b| b.is_ascii_digit()) {
        e.push(
            "dlt.principal_entity_id",
            "must be the numeric DLT Principal Entity id",
        );
    }
    let entity_class = match d.entity_class.as_deref() {
        None => EntityClass::Commercial,
        Some(c) => EntityClass::parse(c).unwrap_or_else(|| {
            e.push(
                "dlt.entity_class",
                "must be \"commercial\", \"government\" or \"financial\"",
            );
            EntityClass::Commercial
        }),
    };
    let registered_numbers = match &d.registered_numbers {
        Some(numbers) => {
            for (i, n) in numbers.iter().enumerate() {
                if !is_e164(n) {
                    e.push(
                        format!("dlt.registered_numbers[{i}]"),
                        "must be in E.164, like +912240001234",
                    );
                }
            }
            numbers.clone()
        }
        // Declared nowhere: the numbers the tenant already put on its trunks.
        None => trunks.iter().map(|t| t.default_did.clone()).collect(),
    };
    let calling_hours = d.calling_hours.as_deref().and_then(|w| {
        CallingHours::parse(w)
            .map_err(|why| e.push("dlt.calling_hours", why))
            .ok()
    });
    let dnd_file = list_path("dlt.dnd_file", d.dnd_file.as_deref(), dir, e);
    let consent_file = list_path("dlt.consent_file", d.consent_file.as_deref(), dir, e);
    for (i, t) in trunks.iter().enumerate() {
        if let Err(why) = rules.series.check(
            t.category,
            entity_class,
            &t.default_did,
            &registered_numbers,
        ) {
            e.push(
                format!("trunks[{i}].default_did"),
                format!("does not fit the trunk's category ({}): {why}", t.category),
            );
        }
    }
    DltPolicy {
        principal_entity_id: pe.to_string(),
        outbound_enabled: d.outbound_enabled,
        entity_class,
        registered_numbers,
        calling_hours,
        dnd_file,
        consent_file,
    }
}

/// A list file's path, relative to the policy directory. The file itself is read by the
/// DLT registry (it may be large, and is reloaded apart from the policy), not here.
fn list_path(key: &str, p: Option<&str>, dir: &Path, e: &mut Errs<'_>) -> Option<PathBuf> {
    let p = p?;
    let rel = Path::new(p);
    if p.trim().is_empty()
        || rel.is_absolute()
        || rel
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        e.push(
            key,
            "must be a path inside the policy directory, like \"dlt/acme-dnd.txt\"",
        );
        return None;
    }
    Some(dir.join(rel))
}
