//! `POST /api/c2c/webhooks/replay` (owner key): re-queue a tenant's CRM webhooks; the
//! running deliverer sends them with their original `webhook-id`. At most `max` per
//! request; the answer says how many matched, so a cap is never silent.

use bytes::Bytes;
use c2c_plugin_api::{ApiError, JsonResponse};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::errors;
use crate::app::App;
use crate::body::parse_json;
use crate::calls::replay;
use crate::clock::now_ms;

/// Which webhooks to send again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"tenant": "acme", "since": "6h", "max": 10000}))]
pub(crate) struct ReplayRequest {
    tenant: String,
    /// RFC 3339 time or a duration ago (`90s`, `30m`, `6h`, `2d`).
    since: String,
    /// Re-queue at most this many (the oldest first); default 10000, at most 100000.
    // Read as any JSON number: JSON Schema's `integer` admits `214.0`, so the handler,
    // not the parser, requires it to be whole.
    #[serde(default)]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 100000, default = 10000)]
    max: Option<f64>,
}

/// The webhooks re-queued; each keeps its original `webhook-id`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReplayResponse<'a> {
    tenant: &'a str,
    /// Webhooks of the tenant created since `since`, re-queued or not.
    matched: u64,
    /// Re-queued now: the oldest `max` of those that matched.
    requeued: usize,
    /// The cap that applied.
    max: usize,
    /// True when the cap left matching webhooks out (`matched > requeued`): replay
    /// again with a larger `max` to send the rest.
    capped: bool,
    webhook_ids: Vec<&'a str>,
}

pub async fn handle(app: &App, body: &Bytes) -> Result<JsonResponse, ApiError> {
    let req: ReplayRequest = parse_json(body)?;
    if app.policy().get().tenant(&req.tenant).is_none() {
        return Err(ApiError::not_found(format!(
            "unknown tenant '{}'",
            req.tenant
        )));
    }
    let now = now_ms();
    let since = replay::parse_since(&req.since, now).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_since",
            e.to_string(),
        )
    })?;
    let invalid_max = |e: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_max", e);
    let max = match req.max {
        None => None,
        // Whole and far inside usize; check_max then applies the real bounds.
        Some(m) if m.fract() == 0.0 && (0.0..=1e15).contains(&m) => Some(m as usize),
        Some(m) => {
            return Err(invalid_max(format!(
                "max must be a whole number between 1 and {}, not {m}",
                replay::MAX_LIMIT
            )))
        }
    };
    let max = replay::check_max(max).map_err(|e| invalid_max(e.to_string()))?;
    let done = replay::requeue(&**app.store(), &req.tenant, since, now, max, &mut |_| {})
        .await
        .map_err(errors::call_store)?;
    app.calls().kick_delivery();
    let count = done.entries.len();
    if done.capped() {
        tracing::warn!(tenant = %req.tenant, matched = done.matched, requeued = count, max, "CRM webhook replay cut short by its cap");
    } else {
        tracing::info!(tenant = %req.tenant, count, "CRM webhooks re-queued by owner");
    }
    Ok(JsonResponse::json(
        StatusCode::OK,
        &ReplayResponse {
            tenant: &req.tenant,
            matched: done.matched,
            requeued: count,
            max,
            capped: done.capped(),
            webhook_ids: done.entries.iter().map(|e| e.webhook_id.as_str()).collect(),
        },
    ))
}
