//! `POST /webhooks/livekit`: LiveKit's signed webhooks (answer detection in `webhook`
//! mode, and teardown signals in every mode).
//!
//! Authentication is the signature: `Authorization` carries a JWT signed with the
//! issuing project's API secret whose `sha256` claim is the SHA-256 of the raw body. The
//! issuer picks the project; an event only touches calls of tenants on that project, so
//! one tenant's LiveKit credentials can never end another tenant's call.

use bytes::Bytes;
use c2c_livekit::WebhookEvent;
use c2c_plugin_api::{ApiError, JsonResponse, RequestHead};
use http::StatusCode;
use serde::Serialize;
use tracing::Instrument;
use utoipa::ToSchema;

use crate::api::errors;
use crate::app::App;
use crate::calls;
use crate::clock::now_ms;

/// Webhook tokens live 5 minutes; remembering ids for an hour covers every replay that
/// could still verify.
pub const SEEN_TTL_MS: u64 = 60 * 60 * 1000;

/// The acknowledgement LiveKit gets (any 2xx stops its retries).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookAck {
    result: WebhookResult,
}

/// What the gateway did with an event.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum WebhookResult {
    /// The event changed a call.
    Applied,
    /// Not about one of our calls, or nothing to do.
    Ignored,
    /// Seen before (same event id).
    Duplicate,
}

fn ok(result: WebhookResult) -> JsonResponse {
    JsonResponse::json(StatusCode::OK, &WebhookAck { result })
}

pub async fn handle(
    app: &std::sync::Arc<App>,
    head: &RequestHead<'_>,
    body: &Bytes,
) -> Result<JsonResponse, ApiError> {
    let verifier = app.livekit().verifier();
    // Two signatures: which one was verified would depend on who reads the request.
    let authorization = match head.single_header(&http::header::AUTHORIZATION) {
        Ok(a) => a.unwrap_or(""),
        Err(_) => {
            app.metrics()
                .auth_failures
                .with_label_values(&["duplicate"])
                .inc();
            return Err(ApiError::ambiguous_credential("Authorization header"));
        }
    };
    let (api_key, ev) = match verifier.verify(authorization, body) {
        Ok(v) => v,
        Err(e) => {
            app.metrics()
                .livekit_webhooks
                .with_label_values(&["rejected"])
                .inc();
            tracing::warn!(error = %e, "LiveKit webhook rejected");
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_signature",
                "webhook signature is missing, forged or expired",
            ));
        }
    };
    // A failed look-up counts as "not seen": a replayed event is a no-op anyway.
    if !ev.id.is_empty() && app.seen().contains(&ev.id).await.unwrap_or(false) {
        app.metrics()
            .livekit_webhooks
            .with_label_values(&["duplicate"])
            .inc();
        return Ok(ok(WebhookResult::Duplicate));
    }
    let result = dispatch(app, &api_key, &ev).await?;
    if !ev.id.is_empty() {
        // Recorded after the event was applied: if we crash in between, LiveKit's retry
        // is applied again, which the state machine treats as a no-op.
        let _ = app.seen().insert(&ev.id, now_ms()).await;
    }
    app.metrics()
        .livekit_webhooks
        .with_label_values(&["accepted"])
        .inc();
    Ok(ok(result))
}

async fn dispatch(
    app: &std::sync::Arc<App>,
    api_key: &str,
    ev: &WebhookEvent,
) -> Result<WebhookResult, ApiError> {
    let Some(call_id) = calls::signals::livekit::call_id_of(ev) else {
        return Ok(WebhookResult::Ignored);
    };
    // The project check and the event are decided on the record inside the store's
    // transition: no separate read first.
    let policy = app.policy().get();
    let mut foreign = false;
    let applied = calls::apply_decided(app, &call_id, |rec| {
        // The issuing project must be the call's tenant's project.
        let same_project = policy
            .tenant(&rec.tenant)
            .and_then(|t| policy.livekit_for(t))
            .is_some_and(|p| p.api_key == api_key);
        foreign = !same_project;
        if foreign {
            return None;
        }
        calls::signals::livekit::event_for(rec, ev)
    })
    .instrument(calls::span(&call_id))
    .await;
    match applied {
        Ok(Some(_)) => Ok(WebhookResult::Applied),
        Ok(None) => {
            if foreign {
                tracing::warn!("LiveKit webhook for a call of another project ignored");
            }
            Ok(WebhookResult::Ignored)
        }
        // Not one of our calls (or purged): nothing to do.
        Err(c2c_callstate::StoreError::NotFound) => Ok(WebhookResult::Ignored),
        Err(e) => Err(errors::call_store(e)),
    }
}

/// Forgets webhook ids older than [`SEEN_TTL_MS`].
pub async fn prune_seen(app: &App) {
    let cutoff = now_ms().saturating_sub(SEEN_TTL_MS);
    if let Err(e) = app.seen().prune_before(cutoff).await {
        // Only costs memory until the next pass; the ids are de-duplication hints.
        tracing::warn!(error = %e, "pruning LiveKit webhook ids failed");
    }
}
