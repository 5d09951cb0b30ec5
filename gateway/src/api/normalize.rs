//! `POST /api/c2c/normalize`: the console's "Test normalize".

use bytes::Bytes;
use c2c_dialplan::{DialError, DialPlan};
use c2c_plugin_api::{ApiError, JsonResponse, RequestCtx};
use http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::app::App;
use crate::body::parse_json;

/// A number (and optional caller ID) to run through the tenant's dial plan.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"customer_number": "9530251797"}))]
pub(crate) struct NormalizeRequest {
    /// The customer's number as a CRM would send it.
    customer_number: String,
    /// Caller ID to present; defaults to the trunk's DID.
    #[serde(default)]
    did: Option<String>,
    /// Preview a specific trunk instead of the one calls would use.
    #[serde(default)]
    trunk: Option<String>,
}

pub fn handle(app: &App, ctx: &RequestCtx, body: &Bytes) -> Result<JsonResponse, ApiError> {
    let tenant = ctx
        .tenant()
        .ok_or_else(|| ApiError::forbidden("the tenant of this key no longer exists"))?;
    for_tenant(app, tenant, body)
}

/// Normalizes for a named tenant (the console names it; the owner key has none).
pub fn for_tenant(app: &App, tenant: &str, body: &Bytes) -> Result<JsonResponse, ApiError> {
    let req: NormalizeRequest = parse_json(body)?;
    let policy = app.policy.get();
    let tenant = policy
        .tenant(tenant)
        .ok_or_else(|| ApiError::forbidden("the tenant of this key no longer exists"))?;
    let plan = DialPlan::new(tenant);
    let n = match &req.trunk {
        Some(t) => plan.preview(t, &req.customer_number, req.did.as_deref()),
        None => plan.normalize(&req.customer_number, req.did.as_deref()),
    }
    .map_err(dial_error)?;
    Ok(JsonResponse::json(StatusCode::OK, &n))
}

/// Maps dial plan errors onto the HTTP error shape.
pub fn dial_error(e: DialError) -> ApiError {
    let status = match e {
        DialError::NoTrunk(_) => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, e.code(), e.to_string())
}
