//! The decision a plugin returns and the single JSON response / error shape.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use serde::Serialize;

/// What a plugin hook decided.
///
/// `Continue` hands the request to the next plugin (and finally to the proxy or the local
/// handler); `Respond` ends the chain and the gateway writes the response as is. There is
/// deliberately no "skip the rest but keep proxying" variant: a plugin that wants the
/// request to reach an upstream simply continues.
#[derive(Debug)]
pub enum Decision {
    Continue,
    Respond(JsonResponse),
}

/// A complete response written by the gateway itself (never proxied).
#[derive(Debug, Clone)]
pub struct JsonResponse {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl JsonResponse {
    /// A JSON body from any serialisable value.
    ///
    /// Serialising our own response types cannot fail (no maps with non-string keys, no
    /// custom `Serialize` that errors), but if it ever did we answer 500 with the error
    /// shape rather than panicking inside a request.
    pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Self {
        // Our bodies are a few hundred bytes: one allocation instead of a growth series.
        let mut body = Vec::with_capacity(256);
        match serde_json::to_writer(&mut body, value) {
            Ok(()) => Self::raw(status, "application/json", Bytes::from(body)),
            Err(e) => ApiError::internal(format!("response serialisation failed: {e}")).into(),
        }
    }

    /// A body of any content type (used for `/metrics` text and static assets).
    pub fn raw(status: StatusCode, content_type: &'static str, body: Bytes) -> Self {
        Self {
            status,
            headers: vec![(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(content_type),
            )],
            body,
        }
    }

    /// An empty response (e.g. 204 for CORS pre-flight).
    pub fn empty(status: StatusCode) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Adds a header; values that are not valid header text are dropped rather than
    /// corrupting the response (callers only pass values they built themselves).
    pub fn with_header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }
}

/// The one error shape every endpoint uses:
/// `{"error": {"code": "dlt_pending", "message": "human sentence"}}`.
///
/// `code` is a stable machine-readable identifier CRMs may branch on; `message` is for
/// people and may change wording between releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429, 503).
    pub retry_after: Option<u64>,
}

/// The serialised form of an [`ApiError`]: the body of every error response. Public so
/// the gateway's OpenAPI document describes errors with the very type that writes them.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"error": {"code": "dlt_pending", "message": "outbound calling is disabled until the DLT Principal Entity is verified"}}))]
pub struct ErrorBody<'a> {
    /// What went wrong.
    pub error: ErrorDetail<'a>,
}

/// The `error` object: a stable machine-readable `code` and a human `message`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail<'a> {
    /// Stable identifier CRMs may branch on (`unauthorized`, `dlt_pending`, ...).
    pub code: &'a str,
    /// For people; the wording may change between releases.
    pub message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The single 401 for missing, malformed and unknown keys: the wording must not tell
    /// an attacker which of the three it was.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid X-api-key header is required",
        )
    }

    /// The 401 for a credential sent more than once (two `X-api-key` headers, two
    /// LiveKit tokens): which one counts would be a guess, and a proxy in front of the
    /// gateway may guess differently. `what` names it, e.g. "X-api-key header".
    pub fn ambiguous_credential(what: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("exactly one {what} is allowed; this request carries more than one"),
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>, retry: u64) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message).with_retry_after(retry)
    }
}

impl From<ApiError> for JsonResponse {
    fn from(e: ApiError) -> Self {
        let body = ErrorBody {
            error: ErrorDetail {
                code: e.code,
                message: &e.message,
            },
        };
        // Two `&str` fields always serialise.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut resp = JsonResponse::raw(e.status, "application/json", Bytes::from(bytes));
        if let Some(s) = e.retry_after {
            resp = resp.with_header(http::header::RETRY_AFTER, &s.to_string());
        }
        resp
    }
}

impl From<ApiError> for Decision {
    fn from(e: ApiError) -> Self {
        Decision::Respond(e.into())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_shape_is_the_contract_shape() {
        let r: JsonResponse = ApiError::new(StatusCode::FORBIDDEN, "dlt_pending", "why").into();
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"code": "dlt_pending", "message": "why"}})
        );
    }

    #[test]
    fn retry_after_becomes_a_header() {
        let r: JsonResponse = ApiError::unavailable("livekit_unavailable", "down", 5).into();
        assert!(r
            .headers
            .iter()
            .any(|(n, v)| n == http::header::RETRY_AFTER && v == "5"));
    }
}
