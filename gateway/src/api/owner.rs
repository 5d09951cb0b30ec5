//! `GET|POST /api/telephony/config/owner/{tenant}/outbound-enable`: the platform owner's
//! DLT toggle and its audit trail.

use bytes::Bytes;
use c2c_dlt::Toggle;
use c2c_plugin_api::{ApiError, JsonResponse, RequestCtx};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::body::parse_json;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToggleRequest {
    enabled: bool,
    verified_by: String,
    #[serde(default)]
    note: String,
}

const MAX_TEXT: usize = 500;

fn tenant_param(ctx: &RequestCtx) -> Result<&str, ApiError> {
    ctx.param(0)
        .ok_or_else(|| ApiError::internal("missing tenant parameter"))
}

fn store_error(e: c2c_dlt::DltError) -> ApiError {
    tracing::error!(error = %e, "DLT store failure");
    ApiError::unavailable(
        "store_unavailable",
        "the DLT store is unavailable; try again",
        1,
    )
}

pub fn get(app: &App, ctx: &RequestCtx) -> Result<JsonResponse, ApiError> {
    let id = tenant_param(ctx)?;
    let policy = app.policy.get();
    let tenant = policy
        .tenant(id)
        .ok_or_else(|| ApiError::not_found(format!("unknown tenant '{id}'")))?;
    let current = app.dlt.current(id).map_err(store_error)?;
    let audit = app.dlt.audit(id).map_err(store_error)?;
    Ok(JsonResponse::json(
        StatusCode::OK,
        &json!({
            "tenant": id,
            "outbound_enabled": app.dlt.outbound_enabled(tenant),
            "source": if current.is_some() { "owner" } else { "policy" },
            "principal_entity_id": tenant.dlt.principal_entity_id,
            "policy_initial": tenant.dlt.outbound_enabled,
            "audit": audit,
        }),
    ))
}

pub async fn set(app: &App, ctx: &RequestCtx, body: &Bytes) -> Result<JsonResponse, ApiError> {
    let id = tenant_param(ctx)?;
    let req: ToggleRequest = parse_json(body)?;
    let verified_by = req.verified_by.trim();
    if verified_by.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "verified_by must name who verified the Principal Entity binding",
        ));
    }
    if verified_by.len() > MAX_TEXT || req.note.len() > MAX_TEXT {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("verified_by and note are limited to {MAX_TEXT} bytes"),
        ));
    }
    let policy = app.policy.get();
    let tenant = policy
        .tenant(id)
        .ok_or_else(|| ApiError::not_found(format!("unknown tenant '{id}'")))?;
    let key_id = ctx.principal.as_ref().map(|p| &*p.key_id).unwrap_or("-");
    let entry = app
        .dlt
        .set(
            tenant,
            Toggle {
                enabled: req.enabled,
                verified_by,
                note: req.note.trim(),
                key_id,
            },
        )
        .await
        .map_err(store_error)?;
    tracing::info!(
        tenant = id,
        old = entry.old,
        new = entry.new,
        verified_by,
        key_id,
        "DLT outbound flag changed"
    );
    Ok(JsonResponse::json(
        StatusCode::OK,
        &json!({
            "tenant": id,
            "outbound_enabled": entry.new,
            "principal_entity_id": tenant.dlt.principal_entity_id,
            "change": entry,
        }),
    ))
}
