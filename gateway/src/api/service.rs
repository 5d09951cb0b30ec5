//! `/livez`, `/readyz`, `/metrics`.

use bytes::Bytes;
use c2c_plugin_api::{ApiError, JsonResponse};
use http::StatusCode;
use serde_json::json;

use crate::app::App;

pub fn livez() -> JsonResponse {
    JsonResponse::raw(
        StatusCode::OK,
        "application/json",
        Bytes::from_static(b"{\"status\":\"ok\"}"),
    )
}

pub fn readyz(app: &App) -> JsonResponse {
    match app.is_ready() {
        Ok(()) => {
            let p = app.policy.get();
            JsonResponse::json(
                StatusCode::OK,
                &json!({"status": "ready", "tenants": p.tenants.len()}),
            )
        }
        Err(why) => ApiError::unavailable("not_ready", why, 1).into(),
    }
}

pub fn metrics(app: &App) -> JsonResponse {
    JsonResponse::raw(
        StatusCode::OK,
        "text/plain; version=0.0.4",
        Bytes::from(c2c_metrics::render(&app.registry)),
    )
}
