//! `GET|POST /api/telephony/config/owner/{tenant}/outbound-enable`: the platform owner's
//! DLT toggle and its audit trail.

use bytes::Bytes;
use c2c_dlt::{AuditEntry, Toggle};
use c2c_plugin_api::{ApiError, JsonResponse, RequestCtx};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::errors;
use crate::app::App;
use crate::body::parse_json;

/// The owner's toggle: who verified the tenant's DLT Principal Entity binding, and why.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enabled": true, "verified_by": "ops@platform", "note": "PE binding checked"}))]
pub(crate) struct ToggleRequest {
    /// The new outbound-enable flag.
    enabled: bool,
    /// Who verified the binding (required, at most 500 bytes).
    verified_by: String,
    /// Free text for the audit trail (at most 500 bytes).
    #[serde(default)]
    note: String,
}

/// A tenant's DLT outbound flag and its audit trail.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OutboundState<'a> {
    tenant: &'a str,
    /// Whether the tenant may place calls now.
    outbound_enabled: bool,
    /// `owner` once the owner toggled it, else `policy` (the policy file's initial value).
    source: FlagSource,
    principal_entity_id: &'a str,
    /// The policy file's `dlt.outbound_enabled`.
    policy_initial: bool,
    /// Past changes, oldest first.
    audit: Vec<AuditEntry>,
}

/// Where the current flag comes from.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FlagSource {
    Owner,
    Policy,
}

/// The answer to a toggle: the new flag and the audit entry recorded for it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OutboundChanged<'a> {
    tenant: &'a str,
    outbound_enabled: bool,
    principal_entity_id: &'a str,
    change: AuditEntry,
}

const MAX_TEXT: usize = 500;

fn tenant_param(ctx: &RequestCtx) -> Result<&str, ApiError> {
    ctx.param(0)
        .ok_or_else(|| ApiError::internal("missing tenant parameter"))
}

pub async fn get(app: &App, ctx: &RequestCtx) -> Result<JsonResponse, ApiError> {
    let id = tenant_param(ctx)?;
    let policy = app.policy().get();
    let tenant = policy
        .tenant(id)
        .ok_or_else(|| ApiError::not_found(format!("unknown tenant '{id}'")))?;
    let current = app.dlt().current(id).await.map_err(errors::dlt_store)?;
    let audit = app.dlt().audit(id).await.map_err(errors::dlt_store)?;
    Ok(JsonResponse::json(
        StatusCode::OK,
        &OutboundState {
            tenant: id,
            outbound_enabled: app.dlt().outbound_enabled(tenant),
            source: if current.is_some() {
                FlagSource::Owner
            } else {
                FlagSource::Policy
            },
            principal_entity_id: &tenant.dlt.principal_entity_id,
            policy_initial: tenant.dlt.outbound_enabled,
            audit,
        },
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
    let policy = app.policy().get();
    let tenant = policy
        .tenant(id)
        .ok_or_else(|| ApiError::not_found(format!("unknown tenant '{id}'")))?;
    let key_id = ctx.principal.as_ref().map(|p| &*p.key_id).unwrap_or("-");
    let entry = app
        .dlt()
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
        .map_err(errors::dlt_store)?;
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
        &OutboundChanged {
            tenant: id,
            outbound_enabled: entry.new,
            principal_entity_id: &tenant.dlt.principal_entity_id,
            change: entry,
        },
    ))
}
