//! `/livez`, `/readyz`, `/metrics`.

use bytes::Bytes;
use c2c_plugin_api::{ApiError, JsonResponse};
use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::App;

/// `/livez`: the process is up.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Live {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// `/readyz`: the policy is loaded, the store open and LiveKit reachable.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Ready {
    /// Always `ready` (otherwise the answer is a 503 error).
    #[schema(example = "ready")]
    status: &'static str,
    /// Tenants in the loaded policy.
    tenants: usize,
}

/// The `/livez` body, written from a static buffer: probes hit it often. A unit test
/// keeps it equal to the serialised [`Live`].
const LIVE_BODY: &[u8] = b"{\"status\":\"ok\"}";

pub fn livez() -> JsonResponse {
    JsonResponse::raw(
        StatusCode::OK,
        "application/json",
        Bytes::from_static(LIVE_BODY),
    )
}

pub async fn readyz(app: &App) -> JsonResponse {
    match app.is_ready().await {
        Ok(()) => {
            let p = app.policy().get();
            JsonResponse::json(
                StatusCode::OK,
                &Ready {
                    status: "ready",
                    tenants: p.tenants.len(),
                },
            )
        }
        Err(why) => ApiError::unavailable("not_ready", why.to_string(), 1).into(),
    }
}

pub fn metrics(app: &App) -> JsonResponse {
    JsonResponse::raw(
        StatusCode::OK,
        "text/plain; version=0.0.4",
        Bytes::from(c2c_metrics::render(app.registry())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_body_is_the_serialised_schema_type() {
        let typed = serde_json::to_vec(&Live { status: "ok" }).unwrap();
        assert_eq!(typed, LIVE_BODY);
    }
}
