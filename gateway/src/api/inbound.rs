//! `POST /api/c2c/calls/{call_id}/accept`: the HTTP way to take an inbound call offered
//! to an agent (the presence channel's `accept` is the other). The agent proves who it
//! is with its presence token (`Authorization: Bearer pt1.…`), never in the URL.

use std::sync::Arc;

use http::StatusCode;

use c2c_plugin_api::{ApiError, JsonResponse, RequestCtx, RequestHead};

use super::calls::stored_call;
use super::errors;
use crate::app::App;
use crate::clock::now_ms;

pub async fn accept(
    app: &Arc<App>,
    ctx: &mut RequestCtx,
    head: &RequestHead<'_>,
) -> Result<JsonResponse, ApiError> {
    let bearer = head
        .single_header(&http::header::AUTHORIZATION)
        .map_err(|_| ApiError::ambiguous_credential("Authorization header"))?
        .and_then(|b| b.strip_prefix("Bearer "))
        .map(str::trim);
    let claims = bearer.and_then(|t| app.agents().signer().verify(t, now_ms()).ok());
    let Some(claims) = claims else {
        app.metrics()
            .auth_failures
            .with_label_values(&["presence_token"])
            .inc();
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "send the agent's presence token as Authorization: Bearer <token>",
        ));
    };
    let Some(agent_id) = claims.agent_id.as_deref() else {
        return Err(ApiError::forbidden(
            "a supervisor-only presence token cannot take calls",
        ));
    };
    // Another tenant's call looks like no call at all.
    let rec = stored_call(app, ctx.param(0).unwrap_or_default()).await?;
    if rec.tenant != claims.tenant || !rec.is_inbound() {
        return Err(errors::unknown_call());
    }
    ctx.resource_tenant = Some(rec.tenant.clone());
    let answer = app
        .inbound()
        .accept(&claims.tenant, agent_id, &rec.call_id)
        .await
        .map_err(|e| errors::inbound_refused(&e))?;
    Ok(JsonResponse::json(StatusCode::OK, &answer)
        .with_header(http::header::CACHE_CONTROL, "no-store"))
}
