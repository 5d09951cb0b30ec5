//! Wire types of the reports: `GET /api/c2c/analytics` and `GET /api/c2c/calls`.
//!
//! The handlers serialise these very types ([`AnalyticsReport`] in `analytics()`,
//! [`CallLogPage`] in `call_log()`), so the OpenAPI schema cannot drift from the output.
//! The analytics types reject unknown fields, so their schemas are closed
//! (`additionalProperties: false`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::contract::CallView;

/// Outcome counts of the calls in a range (optionally one trunk's).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsReport {
    /// The tenant reported on.
    pub tenant: String,
    /// First day of the range (UTC, `YYYY-MM-DD`, inclusive).
    pub from: String,
    /// Last day of the range (UTC, `YYYY-MM-DD`, inclusive).
    pub to: String,
    /// The trunk filter, if one was given.
    pub trunk: Option<String>,
    /// Calls created in the range.
    pub total: u64,
    /// Of `total`, the inbound calls (a customer called one of the tenant's numbers).
    pub inbound: u64,
    pub outcomes: Outcomes,
    /// ANSWERED / (ANSWERED + NOT_ANSWERED + FAILED + MISSED); 0 when none ended.
    pub answer_rate: f64,
    /// Count of NOT_ANSWERED and FAILED calls by their SIP final response code
    /// (`{"486": 3}`).
    pub failures_by_sip_code: BTreeMap<String, u64>,
    /// Count of NOT_ANSWERED and FAILED calls by cause, so an agent hanging up is never
    /// read as a carrier or LiveKit failure: `customer` (busy, declined, rang out),
    /// `carrier` (trunk or SIP failure), `livekit` (LiveKit could not place the call),
    /// `agent_cancelled` (the agent hung up before the answer, or before dialling),
    /// `agent_dropped` (the agent's browser went away), `never_connected` (the browser
    /// never called `/connect`), `gateway` (the dial was interrupted by a gateway
    /// restart). Causes with no calls are left out.
    #[schema(example = json!({"customer": 3, "agent_cancelled": 1}))]
    pub failures_by_cause: BTreeMap<String, u64>,
    /// Talk time of the answered calls that ended, answer to end, in seconds (rounded
    /// up): the minutes metered (BYOT) or paid for (managed).
    pub talk_seconds: u64,
    /// What the ended calls of a managed tenant were charged, in paise (0 for BYOT
    /// tenants and while `billing.charge_calls` is off).
    pub spend_paise: u64,
    /// One entry per day of the range, in order.
    pub by_day: Vec<DayCounts>,
    /// Usage per trunk of the tenant's policy (or the `trunk` asked for), each with
    /// its days: the usage report per day and trunk.
    pub by_trunk: Vec<TrunkUsage>,
    /// Calls the DLT rules refused in the range (of the trunk, if one was asked for), by
    /// rule: `caller_id_series`, `dnd_blocked`, `outside_calling_hours`,
    /// `dnd_unavailable` (docs/dlt.md). Counted by the gateway node that answers, from
    /// its refusal log: in a fleet, each node's own.
    #[schema(example = json!({"dnd_blocked": 12, "outside_calling_hours": 3}))]
    pub dlt_refusals: BTreeMap<String, u64>,
}

/// One trunk's minutes and spend over the range.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrunkUsage {
    pub trunk: String,
    pub total: u64,
    pub answered: u64,
    pub talk_seconds: u64,
    pub spend_paise: u64,
    /// Media of the trunk's anchored calls (`media = "anchor"`, docs/media.md).
    pub media: TrunkMedia,
    /// The days of the range with calls on this trunk, in order (days without any are
    /// left out).
    pub by_day: Vec<DayCounts>,
}

/// What the SIP edge measured of a trunk's anchored calls over the range.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrunkMedia {
    /// Anchored calls whose media was measured (0 on a `direct` trunk).
    pub calls: u64,
    /// Of them, the share with early media (the carrier's audio before the answer:
    /// announcements, caller tunes); 0 without calls.
    pub early_media_rate: f64,
    /// The share with one-way audio after the answer.
    pub one_way_audio_rate: f64,
    /// Calls ended by dead air (`media_timeout`).
    pub media_timeouts: u64,
    /// The median call's jitter of the carrier's RTP, as the upper bound (ms) of the
    /// bucket it falls in (1, 2, 5, 10, 20, 30, 50, 100, 200). Null above 200 ms, and
    /// without calls where the carrier sent audio.
    pub median_jitter_ms: Option<u32>,
}

/// Calls by terminal outcome; `IN_PROGRESS` counts calls not ended yet.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "SCREAMING_SNAKE_CASE")]
pub struct Outcomes {
    pub answered: u64,
    pub not_answered: u64,
    pub failed: u64,
    /// Inbound calls nobody answered.
    pub missed: u64,
    pub in_progress: u64,
}

/// One day's counts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DayCounts {
    /// UTC day, `YYYY-MM-DD`.
    pub date: String,
    pub total: u64,
    pub answered: u64,
    pub not_answered: u64,
    pub failed: u64,
    pub missed: u64,
    pub in_progress: u64,
    /// Of `total`, the inbound calls.
    pub inbound: u64,
    /// Talk time of the day's ended, answered calls, in seconds (rounded up).
    pub talk_seconds: u64,
    /// The day's charges, in paise.
    pub spend_paise: u64,
}

/// One page of a tenant's call log, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallLogPage<'a> {
    /// The tenant whose calls these are.
    pub tenant: &'a str,
    /// Up to `limit` calls (fewer when `status=` filtered some out).
    pub calls: Vec<CallLogEntry<'a>>,
    /// Pass as `cursor=` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A call as the call log lists it: the polling view plus when and on which trunk.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallLogEntry<'a> {
    #[serde(flatten)]
    pub call: CallView<'a>,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: u64,
    /// The trunk label the call used (for an inbound call, the one it arrived on).
    pub trunk: &'a str,
    /// `outbound` (`/click2call`) or `inbound` (a customer called a tenant's number).
    pub direction: c2c_callstate::Direction,
}
