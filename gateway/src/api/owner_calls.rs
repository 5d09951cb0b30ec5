//! `GET /api/c2c/owner/calls/{id}` (owner key): one call's stored record, phone numbers
//! masked, and its CRM webhook delivery state. `c2c-gateway calls show --gateway` reads
//! this while a gateway holds the data directory.

use c2c_plugin_api::{ApiError, JsonResponse, RequestCtx};
use http::StatusCode;

use crate::api::errors;
use crate::app::App;
use crate::calls::detail::call_detail;

/// `GET /api/c2c/owner/calls/{id}`.
pub async fn get(app: &App, ctx: &RequestCtx) -> Result<JsonResponse, ApiError> {
    let id = ctx
        .param(0)
        .ok_or_else(|| ApiError::internal("missing call id parameter"))?;
    if !c2c_callstate::is_valid_call_id(id) {
        return Err(errors::unknown_call());
    }
    let detail = call_detail(&**app.store(), id)
        .await
        .map_err(errors::call_store)?
        .ok_or_else(errors::unknown_call)?;
    Ok(JsonResponse::json(StatusCode::OK, &detail))
}
