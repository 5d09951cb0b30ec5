//! The per-call DLT rules beyond the outbound switch: caller-ID series, calling hours
//! and DND scrubbing (docs/dlt.md). The same check runs at the API (`/click2call`,
//! `/connect`) and at the SIP edge, so a call that skips the API meets it too.

use c2c_tenancy::{CallCategory, DltRules, Tenant, Trunk};

use crate::lists::{ListKind, ListRegistry};
use crate::numbers::parse_number;

/// Which rule refused a call: the error code at the API, the `rule` label of
/// `c2c_dlt_refusals_total` and the start of the SIP `Warning` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DltRule {
    /// The caller ID is not of the series the call's category needs (422).
    CallerIdSeries,
    /// A promotional call to a number on the tenant's DND list without consent (403).
    DndBlocked,
    /// A promotional call outside the tenant's calling hours (403).
    OutsideCallingHours,
    /// A promotional call for a tenant whose DND list could not be read (503).
    DndUnavailable,
}

impl DltRule {
    pub fn as_str(self) -> &'static str {
        match self {
            DltRule::CallerIdSeries => "caller_id_series",
            DltRule::DndBlocked => "dnd_blocked",
            DltRule::OutsideCallingHours => "outside_calling_hours",
            DltRule::DndUnavailable => "dnd_unavailable",
        }
    }
}

/// A call the rules refused: which rule, and a sentence saying exactly why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DltRefusal {
    pub rule: DltRule,
    pub message: String,
    /// For [`DltRule::OutsideCallingHours`]: when the window next opens (Unix ms).
    pub next_allowed_ms: Option<u64>,
}

/// What the rules look at in one call.
#[derive(Debug, Clone, Copy)]
pub struct CallFacts<'a> {
    pub trunk: &'a Trunk,
    /// The category the request named; `None`: the trunk's.
    pub category: Option<CallCategory>,
    /// The caller ID presented, E.164.
    pub caller_id: &'a str,
    /// The customer's number in any written form [`parse_number`] takes.
    pub number: &'a str,
}

/// Checks `call` of `tenant` under the platform's `rules` at `now_ms` (Unix ms),
/// scrubbing against `lists`. Returns the call's category.
pub fn check_call(
    rules: &DltRules,
    lists: &ListRegistry,
    tenant: &Tenant,
    call: &CallFacts<'_>,
    now_ms: u64,
) -> Result<CallCategory, DltRefusal> {
    let category = call.category.unwrap_or(call.trunk.category);
    rules
        .series
        .check(
            category,
            tenant.dlt.entity_class,
            call.caller_id,
            &tenant.dlt.registered_numbers,
        )
        .map_err(|m| DltRefusal {
            rule: DltRule::CallerIdSeries,
            message: m.0,
            next_allowed_ms: None,
        })?;
    if category != CallCategory::Promotional {
        return Ok(category);
    }
    let hours = tenant.dlt.calling_hours.unwrap_or(rules.calling_hours);
    if let Some(next) = hours.next_allowed(now_ms) {
        return Err(DltRefusal {
            rule: DltRule::OutsideCallingHours,
            message: format!(
                "promotional calls may be placed between {hours} IST only; the next \
                 allowed time is {}",
                ist_timestamp(next)
            ),
            next_allowed_ms: Some(next),
        });
    }
    if tenant.dlt.dnd_file.is_some() {
        scrub(lists, tenant, call.number)?;
    }
    Ok(category)
}

/// A promotional call to a number on the DND list needs the number on the consent list.
fn scrub(lists: &ListRegistry, tenant: &Tenant, number: &str) -> Result<(), DltRefusal> {
    let dnd = lists.get(&tenant.id, ListKind::Dnd);
    let Some(set) = dnd.as_ref().and_then(|l| l.set.clone()) else {
        let why = dnd
            .and_then(|l| l.error.clone())
            .unwrap_or_else(|| "it has not been read yet".into());
        return Err(DltRefusal {
            rule: DltRule::DndUnavailable,
            message: format!(
                "promotional calls are refused until the tenant's DND list can be read \
                 ({why})"
            ),
            next_allowed_ms: None,
        });
    };
    let Some(n) = parse_number(number) else {
        // Dial plans only pass ten-digit numbers; anything else is not a number the
        // register can clear.
        return Err(DltRefusal {
            rule: DltRule::DndBlocked,
            message: "the number cannot be checked against the DND register".into(),
            next_allowed_ms: None,
        });
    };
    if !set.contains(n) {
        return Ok(());
    }
    let consented = lists
        .get(&tenant.id, ListKind::Consent)
        .and_then(|l| l.set.clone())
        .is_some_and(|c| c.contains(n));
    if consented {
        return Ok(());
    }
    Err(DltRefusal {
        rule: DltRule::DndBlocked,
        message: "the customer's number is on the do-not-disturb register and has not \
                  consented to promotional calls from this tenant; place it as a service \
                  call only if it is one, or record the customer's consent"
            .into(),
        next_allowed_ms: None,
    })
}

/// `2026-12-05T09:00:00+05:30`.
pub fn ist_timestamp(unix_ms: u64) -> String {
    let Some(ist) = i32::try_from(c2c_tenancy::dlt::IST_OFFSET_SECONDS)
        .ok()
        .and_then(chrono::FixedOffset::east_opt)
    else {
        return String::new();
    };
    let secs = i64::try_from(unix_ms / 1000).unwrap_or(i64::MAX);
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| {
            t.with_timezone(&ist)
                .format("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        })
        .unwrap_or_default()
}
