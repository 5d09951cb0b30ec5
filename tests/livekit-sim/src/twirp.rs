//! Twirp v8 wire rules as LiveKit's Go servers apply them: POST only, path
//! `/twirp/<pkg>.<Service>/<Method>`, `application/protobuf` or `application/json`
//! bodies (media type compared case-insensitively, parameters ignored), and errors as
//! JSON `{"code","msg","meta"}` with twirp's HTTP status mapping.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::Full;
use serde::{de::DeserializeOwned, Serialize};

use crate::protojson::{self, Shape};

/// The HTTP response type every simulator handler produces.
pub type HttpResponse = Response<Full<Bytes>>;

/// Twirp error codes (`github.com/twitchtv/twirp/errors.go`).
pub mod code {
    pub const CANCELED: &str = "canceled";
    pub const UNKNOWN: &str = "unknown";
    pub const INVALID_ARGUMENT: &str = "invalid_argument";
    pub const MALFORMED: &str = "malformed";
    pub const DEADLINE_EXCEEDED: &str = "deadline_exceeded";
    pub const NOT_FOUND: &str = "not_found";
    pub const BAD_ROUTE: &str = "bad_route";
    pub const ALREADY_EXISTS: &str = "already_exists";
    pub const PERMISSION_DENIED: &str = "permission_denied";
    pub const UNAUTHENTICATED: &str = "unauthenticated";
    pub const RESOURCE_EXHAUSTED: &str = "resource_exhausted";
    pub const FAILED_PRECONDITION: &str = "failed_precondition";
    pub const ABORTED: &str = "aborted";
    pub const OUT_OF_RANGE: &str = "out_of_range";
    pub const UNIMPLEMENTED: &str = "unimplemented";
    pub const INTERNAL: &str = "internal";
    pub const UNAVAILABLE: &str = "unavailable";
    pub const DATA_LOSS: &str = "dataloss";
}

/// `twirp.ServerHTTPStatusFromErrorCode`.
pub fn http_status(code: &str) -> StatusCode {
    match code {
        code::CANCELED | code::DEADLINE_EXCEEDED => StatusCode::REQUEST_TIMEOUT,
        code::INVALID_ARGUMENT | code::MALFORMED | code::OUT_OF_RANGE => StatusCode::BAD_REQUEST,
        code::NOT_FOUND | code::BAD_ROUTE => StatusCode::NOT_FOUND,
        code::ALREADY_EXISTS | code::ABORTED => StatusCode::CONFLICT,
        code::PERMISSION_DENIED => StatusCode::FORBIDDEN,
        code::UNAUTHENTICATED => StatusCode::UNAUTHORIZED,
        code::RESOURCE_EXHAUSTED => StatusCode::TOO_MANY_REQUESTS,
        code::FAILED_PRECONDITION => StatusCode::PRECONDITION_FAILED,
        code::UNIMPLEMENTED => StatusCode::NOT_IMPLEMENTED,
        code::UNAVAILABLE => StatusCode::SERVICE_UNAVAILABLE,
        // internal, dataloss, unknown and anything unrecognised.
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A Twirp error as sent on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TwirpError {
    pub code: String,
    pub msg: String,
    /// Go's twerrJSON has `meta,omitempty`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
}

impl TwirpError {
    pub fn new(code: &str, msg: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            msg: msg.into(),
            meta: BTreeMap::new(),
        }
    }

    pub fn with_meta(mut self, key: &str, value: impl Into<String>) -> Self {
        self.meta.insert(key.to_owned(), value.into());
        self
    }

    /// twirp's `badRouteError`: carries `twirp_invalid_route = "<METHOD> <path>"`.
    pub fn bad_route(msg: impl Into<String>, method: &str, path: &str) -> Self {
        Self::new(code::BAD_ROUTE, msg).with_meta("twirp_invalid_route", format!("{method} {path}"))
    }

    /// What LiveKit's `twirpAuthError(ErrPermissionDenied)` sends when a token lacks a grant.
    pub fn permission_denied() -> Self {
        Self::new(code::UNAUTHENTICATED, "permissions denied")
    }

    pub fn status(&self) -> StatusCode {
        http_status(&self.code)
    }

    /// Error responses are always JSON, whatever the request's content type.
    pub fn into_response(self) -> HttpResponse {
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| {
            br#"{"code":"internal","msg":"There was an error but it could not be serialized into JSON"}"#
                .to_vec()
        });
        bytes_response(self.status(), "application/json", body)
    }
}

/// Request/response encoding selected by the request's `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Protobuf,
    Json,
}

impl Codec {
    /// Mirrors the generated `serve<Method>` switch: lower-cased media type before any `;`.
    pub fn from_content_type(value: Option<&str>) -> Option<Self> {
        let raw = value.unwrap_or("");
        let media = raw
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/protobuf" => Some(Codec::Protobuf),
            "application/json" => Some(Codec::Json),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Codec::Protobuf => "application/protobuf",
            Codec::Json => "application/json",
        }
    }

    /// Decodes a request body; failures are Twirp `malformed` like the Go server's.
    pub fn decode<M>(self, body: &[u8]) -> Result<M, TwirpError>
    where
        M: prost::Message + Default + DeserializeOwned,
    {
        match self {
            Codec::Protobuf => M::decode(body).map_err(|e| {
                TwirpError::new(
                    code::MALFORMED,
                    format!("the protobuf request could not be decoded: {e}"),
                )
            }),
            Codec::Json => serde_json::from_slice(body).map_err(|e| {
                TwirpError::new(
                    code::MALFORMED,
                    format!("the json request could not be decoded: {e}"),
                )
            }),
        }
    }

    /// Encodes a successful response (200) in the request's codec.
    pub(crate) fn respond<M>(self, msg: &M, shape: Shape) -> HttpResponse
    where
        M: prost::Message + Serialize,
    {
        let body = match self {
            Codec::Protobuf => Ok(msg.encode_to_vec()),
            Codec::Json => protojson::to_twirp_json(msg, shape),
        };
        match body {
            Ok(body) => bytes_response(StatusCode::OK, self.content_type(), body),
            Err(e) => TwirpError::new(
                code::INTERNAL,
                format!("failed to marshal json response: {e}"),
            )
            .into_response(),
        }
    }
}

/// Splits `/twirp/livekit.RoomService/CreateRoom` into (prefix, "livekit.RoomService",
/// "CreateRoom") the way twirp's `parseTwirpPath` does.
pub fn parse_path(path: &str) -> (String, &str, &str) {
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() < 2 {
        return (String::new(), "", "");
    }
    let method = parts[parts.len() - 1];
    let service = parts[parts.len() - 2];
    let prefix = parts[..parts.len() - 2].join("/");
    (prefix, service, method)
}

pub(crate) fn bytes_response(
    status: StatusCode,
    content_type: &str,
    body: Vec<u8>,
) -> HttpResponse {
    let len = body.len();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    resp
}

/// Plain-text responses, as LiveKit's HTTP middleware writes them (e.g. auth failures).
pub(crate) fn text_response(status: StatusCode, body: impl Into<String>) -> HttpResponse {
    bytes_response(
        status,
        "text/plain; charset=utf-8",
        body.into().into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping_matches_twirp() {
        assert_eq!(http_status(code::UNAUTHENTICATED), StatusCode::UNAUTHORIZED);
        assert_eq!(http_status(code::NOT_FOUND), StatusCode::NOT_FOUND);
        assert_eq!(http_status(code::BAD_ROUTE), StatusCode::NOT_FOUND);
        assert_eq!(
            http_status(code::RESOURCE_EXHAUSTED),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            http_status(code::FAILED_PRECONDITION),
            StatusCode::PRECONDITION_FAILED
        );
        assert_eq!(http_status(code::CANCELED), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(
            http_status(code::UNAVAILABLE),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            http_status(code::DATA_LOSS),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(http_status(code::MALFORMED), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn content_type_parsing() {
        assert_eq!(
            Codec::from_content_type(Some("application/json;charset=UTF-8")),
            Some(Codec::Json)
        );
        assert_eq!(
            Codec::from_content_type(Some(" Application/Protobuf ")),
            Some(Codec::Protobuf)
        );
        assert_eq!(Codec::from_content_type(Some("text/plain")), None);
        assert_eq!(Codec::from_content_type(None), None);
    }

    #[test]
    fn error_json_omits_empty_meta() {
        let body = serde_json::to_string(&TwirpError::new(code::NOT_FOUND, "x")).unwrap();
        assert_eq!(body, r#"{"code":"not_found","msg":"x"}"#);
        let e = TwirpError::bad_route("no handler", "GET", "/twirp/a.B/C");
        assert_eq!(e.meta["twirp_invalid_route"], "GET /twirp/a.B/C");
    }

    #[test]
    fn parse_path_like_twirp() {
        let (prefix, svc, method) = parse_path("/twirp/livekit.SIP/CreateSIPParticipant");
        assert_eq!(
            (prefix.as_str(), svc, method),
            ("/twirp", "livekit.SIP", "CreateSIPParticipant")
        );
    }
}
