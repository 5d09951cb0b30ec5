//! LiveKit's signalling endpoint as a proxy in front of it sees it, following
//! `pkg/service/rtcservice.go` and `auth.go` (routes `/rtc`, `/rtc/validate`,
//! `/rtc/v1`, `/rtc/v1/validate`):
//!
//! 1. the API-key middleware: a *present but bad* token gets the plain-text 401
//!    shared with Twirp ([`crate::auth`]); `/validate` answers carry
//!    `Access-Control-Allow-Origin: *`; other `/rtc/...` paths are 404;
//! 2. `/rtc` and `/rtc/v1` without `Connection: upgrade` + `Upgrade: websocket`: bare 404;
//! 3. join validation (plain text): no token -> 401 `no permissions to access the
//!    room`; no `roomJoin` -> 401 `permissions denied`; empty identity or room -> 400;
//!    `/rtc/v1*` needs `join_request` (base64url `WrappedJoinRequest`) -> 400;
//!    `/validate` answers 200 `success` here;
//! 4. RFC 6455 handshake checks (405 not GET, 400 bad version/key), the session bound
//!    (503 `node has exceeded its configured limit`), the participant joins the room
//!    (`participant_joined`), then `101 Switching Protocols` and [`session`] runs.
//!
//! Not simulated: media, SDP/ICE, reconnects, `publish`/`attributes`/`metadata`
//! parameters, gzip-compressed join requests (accepted without inflating), compression.

mod session;

use std::sync::Arc;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use livekit_api::access_token::{Claims, VideoGrants};
use livekit_protocol as proto;
use prost::Message as _;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::auth;
use crate::core::Core;
use crate::twirp::{text_response, HttpResponse};

pub(crate) use session::RtcSessions;

const RTC_PATH: &str = "/rtc";
/// `rtc.ErrPermissionDenied`: no token at all (or no video grant).
const NO_ROOM_PERMISSION: &str = "no permissions to access the room";
/// `service.ErrPermissionDenied`: a token without `roomJoin`.
const PERMISSION_DENIED: &str = "permissions denied";
/// Go's `http.DefaultMaxHeaderBytes`, LiveKit's cap on an uncompressed join request.
const MAX_JOIN_REQUEST_BYTES: usize = 1 << 20;
const WEBSOCKET_VERSION: &str = "13";

/// Go's `base64.URLEncoding` (padded) as sent, also accepting unpadded input.
const URL_SAFE_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// True for every path this module answers (and counts), known or not.
pub(crate) fn is_rtc_path(path: &str) -> bool {
    path == RTC_PATH || path.starts_with("/rtc/")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Connect { v1: bool },
    Validate { v1: bool },
}

fn route(path: &str) -> Option<Route> {
    match path {
        "/rtc" => Some(Route::Connect { v1: false }),
        "/rtc/v1" => Some(Route::Connect { v1: true }),
        "/rtc/validate" => Some(Route::Validate { v1: false }),
        "/rtc/v1/validate" => Some(Route::Validate { v1: true }),
        _ => None,
    }
}

/// A join that passed validation: who joins which room.
pub(crate) struct JoinGrant {
    pub room: String,
    pub claims: Claims,
    pub v1: bool,
}

/// A refusal before any upgrade, written as LiveKit's `HandleError` does.
#[derive(Debug, PartialEq, Eq)]
struct Reject {
    status: StatusCode,
    msg: &'static str,
}

impl Reject {
    fn new(status: StatusCode, msg: &'static str) -> Self {
        Self { status, msg }
    }
    fn into_response(self) -> HttpResponse {
        text_response(self.status, self.msg)
    }
}

/// Every `/rtc*` request (see [`is_rtc_path`]) lands here.
pub(crate) async fn handle(core: &Arc<Core>, req: Request<Incoming>) -> HttpResponse {
    core.counters.rtc_connection();
    core.counters.request();
    let latency = core.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if core.faults.unavailable() {
        return text_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "livekit-sim: unavailable (fault injection)",
        );
    }
    let route = route(req.uri().path());
    let mut resp = respond(core, req, route);
    if matches!(route, Some(Route::Validate { .. })) {
        resp.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    resp
}

fn respond(core: &Arc<Core>, mut req: Request<Incoming>, route: Option<Route>) -> HttpResponse {
    let claims = match auth::authenticate(
        req.headers(),
        req.uri().query(),
        &core.api_key,
        &core.api_secret,
    ) {
        Ok(claims) => claims,
        Err(e) => return e.into_response(),
    };
    let Some(route) = route else {
        return text_response(StatusCode::NOT_FOUND, "404 page not found");
    };
    match route {
        Route::Validate { v1 } => match validate(claims, req.uri().query(), v1) {
            Ok(_) => text_response(StatusCode::OK, "success"),
            Err(reject) => reject.into_response(),
        },
        Route::Connect { v1 } => {
            if !is_websocket_upgrade(req.headers()) {
                return empty(StatusCode::NOT_FOUND);
            }
            let grant = match validate(claims, req.uri().query(), v1) {
                Ok(grant) => grant,
                Err(reject) => return reject.into_response(),
            };
            let accept = match handshake_accept(req.method(), req.headers()) {
                Ok(accept) => accept,
                Err(bad) => return bad.into_response(),
            };
            let on_upgrade = hyper::upgrade::on(&mut req);
            match session::start(core, on_upgrade, grant) {
                Ok(()) => switching_protocols(&accept),
                Err(reject) => text_response(reject.0, reject.1),
            }
        }
    }
}

/// `validateInternal` + `ValidateConnectRequest`, minus the room allocator.
fn validate(claims: Option<Claims>, query: Option<&str>, v1: bool) -> Result<JoinGrant, Reject> {
    let Some(claims) = claims else {
        return Err(Reject::new(StatusCode::UNAUTHORIZED, NO_ROOM_PERMISSION));
    };
    if claims.video == VideoGrants::default() {
        return Err(Reject::new(StatusCode::UNAUTHORIZED, NO_ROOM_PERMISSION));
    }
    if v1 {
        check_join_request(query_param(query, "join_request").as_deref())?;
    }
    if !claims.video.room_join {
        return Err(Reject::new(StatusCode::UNAUTHORIZED, PERMISSION_DENIED));
    }
    if claims.sub.is_empty() {
        return Err(Reject::new(
            StatusCode::BAD_REQUEST,
            "identity cannot be empty",
        ));
    }
    if claims.video.room.is_empty() {
        return Err(Reject::new(StatusCode::BAD_REQUEST, "no room name"));
    }
    Ok(JoinGrant {
        room: claims.video.room.clone(),
        claims,
        v1,
    })
}

/// The `/rtc/v1` `join_request` parameter: base64url of a `WrappedJoinRequest`.
fn check_join_request(param: Option<&str>) -> Result<(), Reject> {
    let bad = |msg| Reject::new(StatusCode::BAD_REQUEST, msg);
    let param = param
        .filter(|p| !p.is_empty())
        .ok_or_else(|| bad("join_request is required"))?;
    let raw = URL_SAFE_ANY_PADDING
        .decode(param)
        .map_err(|_| bad("cannot base64 decode wrapped join request"))?;
    let wrapped = proto::WrappedJoinRequest::decode(raw.as_slice())
        .map_err(|_| bad("cannot unmarshal wrapped join request"))?;
    if wrapped.compression == proto::wrapped_join_request::Compression::None as i32 {
        if wrapped.join_request.len() > MAX_JOIN_REQUEST_BYTES {
            return Err(bad("join request too large"));
        }
        proto::JoinRequest::decode(wrapped.join_request.as_slice())
            .map_err(|_| bad("cannot unmarshal join request"))?;
    }
    Ok(())
}

/// First value of `name` in a query string, percent-decoded (Go's `r.FormValue`).
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// gorilla's `IsWebSocketUpgrade`: `Connection: upgrade` and `Upgrade: websocket`.
fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    has_token(headers, &header::CONNECTION, "upgrade")
        && has_token(headers, &header::UPGRADE, "websocket")
}

fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Why gorilla's `Upgrader.Upgrade` refuses a handshake (after validation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BadHandshake {
    NotGet,
    Version,
    Key,
}

impl BadHandshake {
    fn into_response(self) -> HttpResponse {
        match self {
            BadHandshake::NotGet => text_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "websocket: upgrade request method is not GET",
            ),
            BadHandshake::Version => {
                let mut resp = text_response(
                    StatusCode::BAD_REQUEST,
                    "websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header",
                );
                resp.headers_mut().insert(
                    header::SEC_WEBSOCKET_VERSION,
                    HeaderValue::from_static(WEBSOCKET_VERSION),
                );
                resp
            }
            BadHandshake::Key => text_response(
                StatusCode::BAD_REQUEST,
                "websocket: not a websocket handshake: 'Sec-WebSocket-Key' header must be \
                 Base64 encoded value of 16-byte in length",
            ),
        }
    }
}

/// The rest of the RFC 6455 opening handshake; returns the `Sec-WebSocket-Accept` value.
fn handshake_accept(method: &Method, headers: &HeaderMap) -> Result<String, BadHandshake> {
    if method != Method::GET {
        return Err(BadHandshake::NotGet);
    }
    if !has_token(headers, &header::SEC_WEBSOCKET_VERSION, WEBSOCKET_VERSION) {
        return Err(BadHandshake::Version);
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|v| v.as_bytes())
        .filter(|k| STANDARD.decode(k).is_ok_and(|raw| raw.len() == 16))
        .ok_or(BadHandshake::Key)?;
    Ok(derive_accept_key(key))
}

fn switching_protocols(accept: &str) -> HttpResponse {
    let mut resp = empty(StatusCode::SWITCHING_PROTOCOLS);
    let headers = resp.headers_mut();
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}

/// A status with an empty body and no content type (Go's bare `WriteHeader`).
fn empty(status: StatusCode) -> HttpResponse {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use livekit_api::access_token::VideoGrants;

    fn claims(video: VideoGrants, sub: &str) -> Option<Claims> {
        Some(Claims {
            sub: sub.into(),
            video,
            ..Default::default()
        })
    }

    fn join(room: &str) -> VideoGrants {
        VideoGrants {
            room_join: true,
            room: room.into(),
            ..Default::default()
        }
    }

    fn wrapped(compression: i32, inner: Vec<u8>) -> String {
        let raw = proto::WrappedJoinRequest {
            compression,
            join_request: inner,
        }
        .encode_to_vec();
        base64::engine::general_purpose::URL_SAFE.encode(raw)
    }

    #[test]
    fn routes_and_paths() {
        assert!(is_rtc_path("/rtc") && is_rtc_path("/rtc/v1/validate") && is_rtc_path("/rtc/x"));
        assert!(!is_rtc_path("/rtcx") && !is_rtc_path("/twirp/rtc"));
        assert_eq!(route("/rtc/v1"), Some(Route::Connect { v1: true }));
        assert_eq!(route("/rtc/validate"), Some(Route::Validate { v1: false }));
        assert_eq!(route("/rtc/"), None);
    }

    #[test]
    fn validation_statuses_match_livekit() {
        let status = |c: Option<Claims>| validate(c, None, false).err().map(|r| r.status);
        assert_eq!(status(None), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(
            status(claims(VideoGrants::default(), "a")),
            Some(StatusCode::UNAUTHORIZED)
        );
        let admin_only = VideoGrants {
            room_admin: true,
            room: "r".into(),
            ..Default::default()
        };
        assert_eq!(
            validate(claims(admin_only, "a"), None, false).err(),
            Some(Reject::new(StatusCode::UNAUTHORIZED, PERMISSION_DENIED))
        );
        assert_eq!(status(claims(join("r"), "")), Some(StatusCode::BAD_REQUEST));
        assert_eq!(status(claims(join(""), "a")), Some(StatusCode::BAD_REQUEST));
        let ok = validate(claims(join("r"), "a"), None, false).unwrap();
        assert_eq!((ok.room.as_str(), ok.claims.sub.as_str()), ("r", "a"));
    }

    #[test]
    fn v1_needs_a_join_request() {
        let v1 = |q: Option<&str>| validate(claims(join("r"), "a"), q, true).err();
        assert_eq!(
            v1(None),
            Some(Reject::new(
                StatusCode::BAD_REQUEST,
                "join_request is required"
            ))
        );
        assert_eq!(
            v1(Some("join_request=%%%")).map(|r| r.status),
            Some(StatusCode::BAD_REQUEST)
        );
        let plain = wrapped(
            0,
            proto::JoinRequest {
                participant_sid: "PA_x".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        );
        assert_eq!(v1(Some(&format!("join_request={plain}"))), None);
        let unpadded = plain.trim_end_matches('=');
        assert_eq!(v1(Some(&format!("join_request={unpadded}"))), None);
        let garbage = wrapped(0, vec![0xff; 8]);
        assert_eq!(
            v1(Some(&format!("join_request={garbage}"))),
            Some(Reject::new(
                StatusCode::BAD_REQUEST,
                "cannot unmarshal join request"
            ))
        );
        // gzip payloads are accepted without inflating.
        assert_eq!(
            v1(Some(&format!("join_request={}", wrapped(1, vec![1])))),
            None
        );
    }

    #[test]
    fn handshake_checks() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        assert!(is_websocket_upgrade(&h));
        h.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        h.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        // RFC 6455 section 1.3's example.
        assert_eq!(
            handshake_accept(&Method::GET, &h).unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(
            handshake_accept(&Method::POST, &h),
            Err(BadHandshake::NotGet)
        );
        h.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("c2hvcnQ="),
        );
        assert_eq!(handshake_accept(&Method::GET, &h), Err(BadHandshake::Key));
        h.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        let bad = handshake_accept(&Method::GET, &h).unwrap_err();
        assert_eq!(bad, BadHandshake::Version);
        let resp = bad.into_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(resp.headers()[header::SEC_WEBSOCKET_VERSION], "13");
        h.remove(header::UPGRADE);
        assert!(!is_websocket_upgrade(&h));
    }
}
