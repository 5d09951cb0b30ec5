//! `POST /api/c2c/webhooks/replay` (owner key): re-queue a tenant's CRM webhooks; the
//! running deliverer sends them with their original `webhook-id`.

use bytes::Bytes;
use c2c_plugin_api::{ApiError, JsonResponse};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::{now_ms, App};
use crate::body::parse_json;
use crate::calls::{replay, store_error};

/// Which webhooks to send again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"tenant": "acme", "since": "6h"}))]
pub(crate) struct ReplayRequest {
    tenant: String,
    /// RFC 3339 time or a duration ago (`90s`, `30m`, `6h`, `2d`).
    since: String,
}

/// The webhooks re-queued; each keeps its original `webhook-id`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReplayResponse<'a> {
    tenant: &'a str,
    requeued: usize,
    webhook_ids: Vec<&'a str>,
}

pub async fn handle(app: &App, body: &Bytes) -> Result<JsonResponse, ApiError> {
    let req: ReplayRequest = parse_json(body)?;
    if app.policy.get().tenant(&req.tenant).is_none() {
        return Err(ApiError::not_found(format!(
            "unknown tenant '{}'",
            req.tenant
        )));
    }
    let now = now_ms();
    let since = replay::parse_since(&req.since, now)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_since", e))?;
    let entries = replay::requeue(&app.store, &req.tenant, since, now)
        .await
        .map_err(store_error)?;
    app.webhook_kick.notify_one();
    tracing::info!(tenant = %req.tenant, count = entries.len(), "CRM webhooks re-queued by owner");
    Ok(JsonResponse::json(
        StatusCode::OK,
        &ReplayResponse {
            tenant: &req.tenant,
            requeued: entries.len(),
            webhook_ids: entries.iter().map(|e| e.webhook_id.as_str()).collect(),
        },
    ))
}
