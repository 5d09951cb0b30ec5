//! `GET /api/c2c/analytics` (outcomes, failures by SIP code, by day) and
//! `GET /api/c2c/calls` (a tenant's call log). A tenant key sees its own tenant; the
//! owner key names one with `tenant=`. Analytics reads the store's per-day tallies (one
//! small value per day and trunk, kept in the same batch as every call write), never the
//! call records themselves.

use std::collections::BTreeMap;

use c2c_plugin_api::{ApiError, JsonResponse, RequestCtx, RequestHead};
use chrono::{Duration, NaiveDate, Utc};
use http::StatusCode;

use c2c_callstate::DayTally;

use crate::api::contract::view;
use crate::api::errors;
use crate::api::report_types::{
    AnalyticsReport, CallLogEntry, CallLogPage, DayCounts, Outcomes, TrunkMedia, TrunkUsage,
};
use crate::app::App;

/// Longest analytics range: a quarter keeps one answer bounded.
pub const MAX_RANGE_DAYS: i64 = 92;

fn bad(code: &'static str, msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, msg)
}

/// The tenant the request may see.
pub(crate) fn tenant_of(
    app: &App,
    ctx: &RequestCtx,
    q: &BTreeMap<String, String>,
) -> Result<String, ApiError> {
    let asked = q
        .get("tenant")
        .map(String::as_str)
        .filter(|t| !t.is_empty());
    let id = match (ctx.tenant(), asked) {
        (Some(own), None) => own.to_string(),
        (Some(own), Some(t)) if t == own => own.to_string(),
        (Some(_), Some(_)) => {
            return Err(ApiError::forbidden(
                "a tenant key can only read its own tenant",
            ))
        }
        (None, Some(t)) => t.to_string(),
        (None, None) => {
            return Err(bad(
                "missing_tenant",
                "the owner key must name a tenant with tenant=",
            ))
        }
    };
    if app.policy().get().tenant(&id).is_none() {
        return Err(ApiError::not_found(format!("unknown tenant '{id}'")));
    }
    Ok(id)
}

fn date(
    q: &BTreeMap<String, String>,
    key: &str,
    default: NaiveDate,
) -> Result<NaiveDate, ApiError> {
    // Present but empty is an error, not the default: the parameter is documented as a
    // date, and `from=` silently meaning "a week ago" hides a client bug.
    match q.get(key).map(String::as_str) {
        None => Ok(default),
        Some(v) => NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
            bad(
                "invalid_date",
                format!("{key} must be a date like 2026-11-21 (UTC), got {v:?}"),
            )
        }),
    }
}

/// `from`/`to` as UTC dates (inclusive), defaulting to the last 7 days.
fn range(q: &BTreeMap<String, String>) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let today = Utc::now().date_naive();
    let to = date(q, "to", today)?;
    let from = date(q, "from", to - Duration::days(6))?;
    if from > to {
        return Err(bad("invalid_range", "from must not be after to"));
    }
    let days = (to - from).num_days() + 1;
    if days > MAX_RANGE_DAYS {
        return Err(bad(
            "range_too_large",
            format!("the range spans {days} days; ask for at most {MAX_RANGE_DAYS} days at a time"),
        ));
    }
    Ok((from, to))
}

fn day_counts(d: NaiveDate, day: &DayTally) -> DayCounts {
    DayCounts {
        date: d.format("%Y-%m-%d").to_string(),
        total: day.total,
        answered: day.answered,
        not_answered: day.not_answered,
        failed: day.failed,
        missed: day.missed,
        in_progress: day.in_progress,
        inbound: day.inbound,
        talk_seconds: day.talk_ms.div_ceil(1000),
        spend_paise: day.charge_paise,
    }
}

/// Minutes and spend per trunk (the one asked for, else every trunk of the tenant's
/// policy): one tally read per trunk.
async fn trunk_usage(
    app: &App,
    tenant: &str,
    only: Option<&str>,
    (from, to): (NaiveDate, NaiveDate),
) -> Result<Vec<TrunkUsage>, ApiError> {
    let ymd = |d: NaiveDate| d.format("%Y%m%d").to_string();
    let trunks: Vec<String> = match only {
        Some(t) => vec![t.to_owned()],
        None => app
            .policy()
            .get()
            .tenant(tenant)
            .map(|t| t.trunks.iter().map(|tr| tr.label.clone()).collect())
            .unwrap_or_default(),
    };
    let mut out = Vec::with_capacity(trunks.len());
    for trunk in trunks {
        let days = app
            .store()
            .day_tallies(tenant, &ymd(from), &ymd(to), Some(&trunk))
            .await
            .map_err(errors::call_store)?;
        let mut all = DayTally::default();
        let mut by_day = Vec::new();
        for (day, tally) in &days {
            all.merge(tally);
            if let Ok(d) = NaiveDate::parse_from_str(day, "%Y%m%d") {
                by_day.push(day_counts(d, tally));
            }
        }
        out.push(TrunkUsage {
            trunk,
            total: all.total,
            answered: all.answered,
            talk_seconds: all.talk_ms.div_ceil(1000),
            spend_paise: all.charge_paise,
            media: trunk_media(&all),
            by_day,
        });
    }
    Ok(out)
}

fn trunk_media(t: &DayTally) -> TrunkMedia {
    let rate = |n: u64| {
        if t.media_calls == 0 {
            0.0
        } else {
            n as f64 / t.media_calls as f64
        }
    };
    TrunkMedia {
        calls: t.media_calls,
        early_media_rate: rate(t.early_media),
        one_way_audio_rate: rate(t.one_way_audio),
        media_timeouts: t.media_timeouts,
        median_jitter_ms: t.median_jitter_bucket_ms().filter(|b| *b != u32::MAX),
    }
}

pub async fn analytics(
    app: &App,
    ctx: &mut RequestCtx,
    head: &RequestHead<'_>,
) -> Result<JsonResponse, ApiError> {
    let q = crate::api::query_params(head);
    let tenant = tenant_of(app, ctx, &q)?;
    let (from, to) = range(&q)?;
    let trunk = q.get("trunk").filter(|t| !t.is_empty()).cloned();
    let ymd = |d: NaiveDate| d.format("%Y%m%d").to_string();
    // One small tally per day and trunk, kept by the store with every write.
    let tallies = app
        .store()
        .day_tallies(&tenant, &ymd(from), &ymd(to), trunk.as_deref())
        .await
        .map_err(errors::call_store)?;
    let mut all = DayTally::default();
    let mut by_day = Vec::with_capacity(tallies.len());
    let mut d = from;
    while d <= to {
        let day = tallies.get(&ymd(d)).cloned().unwrap_or_default();
        all.merge(&day);
        by_day.push(day_counts(d, &day));
        d += Duration::days(1);
    }
    let by_trunk = trunk_usage(app, &tenant, trunk.as_deref(), (from, to)).await?;
    let ended = all.answered + all.not_answered + all.failed + all.missed;
    let dlt_refusals = app
        .refusals()
        .counts(&tenant, &ymd(from), &ymd(to), trunk.as_deref());
    let report = AnalyticsReport {
        tenant,
        from: from.format("%Y-%m-%d").to_string(),
        to: to.format("%Y-%m-%d").to_string(),
        trunk,
        total: all.total,
        inbound: all.inbound,
        outcomes: Outcomes {
            answered: all.answered,
            not_answered: all.not_answered,
            failed: all.failed,
            missed: all.missed,
            in_progress: all.in_progress,
        },
        answer_rate: if ended == 0 {
            0.0
        } else {
            all.answered as f64 / ended as f64
        },
        failures_by_sip_code: all
            .failures_by_sip_code
            .iter()
            .map(|(c, n)| (c.to_string(), *n))
            .collect(),
        failures_by_cause: all.failures_by_cause,
        talk_seconds: all.talk_ms.div_ceil(1000),
        spend_paise: all.charge_paise,
        by_day,
        dlt_refusals,
        by_trunk,
    };
    Ok(JsonResponse::json(StatusCode::OK, &report))
}

pub async fn call_log(
    app: &App,
    ctx: &mut RequestCtx,
    head: &RequestHead<'_>,
) -> Result<JsonResponse, ApiError> {
    let q = crate::api::query_params(head);
    let tenant = tenant_of(app, ctx, &q)?;
    let (from, to) = range(&q)?;
    let from_ms = from
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or(0)
        .max(0) as u64;
    let to_ms = (to + Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or(0)
        .max(0) as u64;
    let limit = match q.get("limit") {
        None => 50,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=c2c_callstate::MAX_PAGE).contains(n))
            .ok_or_else(|| {
                bad(
                    "invalid_limit",
                    format!("limit must be 1-{}", c2c_callstate::MAX_PAGE),
                )
            })?,
    };
    let status = q
        .get("status")
        .map(|s| s.to_ascii_uppercase())
        .filter(|s| !s.is_empty());
    if let Some(s) = &status {
        const KNOWN: [&str; 9] = [
            "INITIATED",
            "DIALING",
            "RINGING",
            "ACTIVE",
            "ENDED",
            "ANSWERED",
            "NOT_ANSWERED",
            "FAILED",
            "MISSED",
        ];
        if !KNOWN.contains(&s.as_str()) {
            return Err(bad(
                "invalid_status",
                format!("status must be one of {}", KNOWN.join(", ")),
            ));
        }
    }
    let page = app
        .store()
        .list_by_tenant(
            &tenant,
            from_ms,
            to_ms,
            limit,
            q.get("cursor").map(String::as_str),
        )
        .await
        .map_err(|e| match e {
            c2c_callstate::StoreError::InvalidInput { .. }
            | c2c_callstate::StoreError::Corrupt { .. } => {
                bad("invalid_cursor", "cursor is not one this endpoint returned")
            }
            other => errors::call_store(other),
        })?;
    // The status filter applies within the page; the cursor still walks every call, so
    // a page may hold fewer than `limit` calls but none is ever skipped.
    let calls = page
        .records
        .iter()
        .filter(|r| {
            status.as_deref().is_none_or(|s| {
                r.phase.as_str() == s || r.call_status.is_some_and(|c| c.as_str() == s)
            })
        })
        .map(|r| CallLogEntry {
            call: view(r),
            created_at_ms: r.created_ms,
            trunk: &r.trunk_label,
            direction: r.direction,
        })
        .collect();
    Ok(JsonResponse::json(
        StatusCode::OK,
        &CallLogPage {
            tenant: &tenant,
            calls,
            next_cursor: page.next_cursor,
        },
    ))
}
