//! Bearer-token authentication and grant checks, mirroring LiveKit's
//! `pkg/service/auth.go`.
//!
//! Two layers, as in the Go server:
//! * the HTTP middleware rejects a *present but bad* token with a plain-text 401
//!   (`invalid authorization header...`, `invalid authorization token...`,
//!   `invalid API key`) — not Twirp JSON;
//! * a request with no token passes the middleware, and each handler then fails its
//!   grant check with Twirp `unauthenticated` / `permissions denied` (also 401).

use http::{header::AUTHORIZATION, HeaderMap, StatusCode};
use livekit_api::access_token::{AccessTokenError, Claims, TokenVerifier};

use crate::twirp::{text_response, HttpResponse, TwirpError};

const BEARER_PREFIX: &str = "Bearer ";
const ACCESS_TOKEN_PARAM: &str = "access_token";

/// A token was presented and rejected by the middleware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthError {
    BadHeader,
    Malformed,
    UnknownApiKey,
    Invalid(String),
}

impl AuthError {
    /// The plain-text 401 that LiveKit's `HandleError` writes.
    pub(crate) fn into_response(self) -> HttpResponse {
        let body = match self {
            AuthError::BadHeader => {
                format!("invalid authorization header. Must start with {BEARER_PREFIX}")
            }
            AuthError::Malformed => "invalid authorization token".to_owned(),
            AuthError::UnknownApiKey => "invalid API key".to_owned(),
            AuthError::Invalid(why) => format!("invalid authorization token: {why}"),
        };
        text_response(StatusCode::UNAUTHORIZED, body)
    }
}

/// Returns the verified claims, `None` when no token was sent, or the rejection.
pub(crate) fn authenticate(
    headers: &HeaderMap,
    query: Option<&str>,
    api_key: &str,
    api_secret: &str,
) -> Result<Option<Claims>, AuthError> {
    let token = match headers.get(AUTHORIZATION) {
        Some(value) => {
            let value = value.to_str().map_err(|_| AuthError::BadHeader)?;
            match value.strip_prefix(BEARER_PREFIX) {
                Some(token) => token.to_owned(),
                None => return Err(AuthError::BadHeader),
            }
        }
        None => query_token(query).unwrap_or_default(),
    };
    if token.is_empty() {
        return Ok(None);
    }
    // Verify first (it checks the issuer too) and decode the token a second time only to
    // tell apart why it was rejected: the accepted path, nearly every request, then parses
    // the token once instead of twice (JWT handling was 12 % of the simulator's CPU).
    match TokenVerifier::with_api_key(api_key, api_secret).verify(&token) {
        Ok(claims) => Ok(Some(claims)),
        Err(e) => {
            let unverified = Claims::from_unverified(&token).map_err(|_| AuthError::Malformed)?;
            if unverified.iss != api_key {
                return Err(AuthError::UnknownApiKey);
            }
            Err(AuthError::Invalid(describe(&e)))
        }
    }
}

fn query_token(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == ACCESS_TOKEN_PARAM).then(|| v.to_owned())
    })
}

fn describe(e: &AccessTokenError) -> String {
    // `AccessTokenError::Encoding` displays as "failed to encode jwt" even for
    // verification failures; the inner jsonwebtoken error says what went wrong.
    match e {
        AccessTokenError::Encoding(inner) => inner.to_string(),
        other => other.to_string(),
    }
}

/// `EnsureCreatePermission` (CreateRoom, DeleteRoom).
pub(crate) fn require_create(claims: Option<&Claims>) -> Result<(), TwirpError> {
    match claims {
        Some(c) if c.video.room_create => Ok(()),
        _ => Err(TwirpError::permission_denied()),
    }
}

/// `EnsureListPermission` (ListRooms).
pub(crate) fn require_list(claims: Option<&Claims>) -> Result<(), TwirpError> {
    match claims {
        Some(c) if c.video.room_list => Ok(()),
        _ => Err(TwirpError::permission_denied()),
    }
}

/// `EnsureAdminPermission`: roomAdmin *for this room* (participant APIs).
pub(crate) fn require_admin(claims: Option<&Claims>, room: &str) -> Result<(), TwirpError> {
    match claims {
        Some(c) if c.video.room_admin && c.video.room == room => Ok(()),
        _ => Err(TwirpError::permission_denied()),
    }
}

/// `EnsureSIPCallPermission` (CreateSIPParticipant).
pub(crate) fn require_sip_call(claims: Option<&Claims>) -> Result<(), TwirpError> {
    match claims {
        Some(c) if c.sip.call => Ok(()),
        _ => Err(TwirpError::permission_denied()),
    }
}

/// `EnsureSIPAdminPermission` (inbound trunks and dispatch rules).
pub(crate) fn require_sip_admin(claims: Option<&Claims>) -> Result<(), TwirpError> {
    match claims {
        Some(c) if c.sip.admin => Ok(()),
        _ => Err(TwirpError::permission_denied()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::{now_unix, sign_hs256};
    use http::HeaderValue;
    use livekit_api::access_token::{AccessToken, VideoGrants};

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn accepts_sdk_token_and_checks_grants() {
        let token = AccessToken::with_api_key("k", "s")
            .with_grants(VideoGrants {
                room_admin: true,
                room: "r1".into(),
                ..Default::default()
            })
            .to_jwt()
            .unwrap();
        let claims = authenticate(&headers(&format!("Bearer {token}")), None, "k", "s")
            .unwrap()
            .unwrap();
        assert!(require_admin(Some(&claims), "r1").is_ok());
        assert!(require_admin(Some(&claims), "r2").is_err());
        assert!(require_create(Some(&claims)).is_err());
        assert!(require_sip_call(Some(&claims)).is_err());
        assert!(require_create(None).is_err());
    }

    #[test]
    fn rejections() {
        assert_eq!(
            authenticate(&headers("Basic abc"), None, "k", "s"),
            Err(AuthError::BadHeader)
        );
        assert_eq!(
            authenticate(&headers("Bearer not-a-jwt"), None, "k", "s"),
            Err(AuthError::Malformed)
        );
        let other = AccessToken::with_api_key("other", "s").to_jwt().unwrap();
        assert_eq!(
            authenticate(&headers(&format!("Bearer {other}")), None, "k", "s"),
            Err(AuthError::UnknownApiKey)
        );
        let wrong_secret = AccessToken::with_api_key("k", "nope").to_jwt().unwrap();
        assert!(matches!(
            authenticate(&headers(&format!("Bearer {wrong_secret}")), None, "k", "s"),
            Err(AuthError::Invalid(_))
        ));
        let now = now_unix() as usize;
        let expired = sign_hs256(
            &Claims {
                iss: "k".into(),
                nbf: now - 7200,
                exp: now - 3600,
                ..Default::default()
            },
            "s",
        )
        .unwrap();
        assert!(matches!(
            authenticate(&headers(&format!("Bearer {expired}")), None, "k", "s"),
            Err(AuthError::Invalid(_))
        ));
        assert_eq!(authenticate(&HeaderMap::new(), None, "k", "s"), Ok(None));
    }

    #[test]
    fn token_from_query() {
        let token = AccessToken::with_api_key("k", "s").to_jwt().unwrap();
        let q = format!("x=1&access_token={token}");
        assert!(authenticate(&HeaderMap::new(), Some(&q), "k", "s")
            .unwrap()
            .is_some());
    }
}
