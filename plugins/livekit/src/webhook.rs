//! Verification of LiveKit webhooks for many projects at once.
//!
//! LiveKit signs each webhook with the project's API secret: `Authorization` holds
//! a raw HS256 JWT whose `iss` is the API key and whose `sha256` claim is
//! base64(SHA-256(body)). `livekit_api::webhooks::WebhookReceiver` handles one key
//! pair; here the (unverified) `iss` selects the secret, then the signature, the
//! time window and the body hash are checked, each failure with its own error.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use livekit_protocol as proto;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::client::{disconnect_reason_name, LiveKitProject, ATTR_CALL_STATUS};

/// Bodies larger than this are refused before hashing.
pub const MAX_WEBHOOK_BODY: usize = 1024 * 1024;
/// Tokens longer than this are refused before decoding.
const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Clock skew tolerated on `exp`/`nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// Why a webhook was refused. `reason()` is a stable, low-cardinality label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("missing Authorization header")]
    MissingAuthorization,
    #[error("malformed token: {0}")]
    MalformedToken(&'static str),
    #[error("unsupported token algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    #[error("unknown api key {0:?}")]
    UnknownApiKey(String),
    #[error("bad signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token has no sha256 claim")]
    MissingBodyHash,
    #[error("body does not match the signed sha256")]
    BodyMismatch,
    #[error("body larger than {MAX_WEBHOOK_BODY} bytes")]
    BodyTooLarge,
    #[error("body is not a LiveKit webhook event: {0}")]
    InvalidBody(String),
}

impl WebhookError {
    /// Label for metrics/logs.
    pub fn reason(&self) -> &'static str {
        match self {
            WebhookError::MissingAuthorization => "missing_auth",
            WebhookError::MalformedToken(_) => "malformed_token",
            WebhookError::UnsupportedAlgorithm(_) => "bad_algorithm",
            WebhookError::UnknownApiKey(_) => "unknown_key",
            WebhookError::BadSignature => "bad_signature",
            WebhookError::Expired => "expired",
            WebhookError::NotYetValid => "not_yet_valid",
            WebhookError::MissingBodyHash => "missing_hash",
            WebhookError::BodyMismatch => "body_mismatch",
            WebhookError::BodyTooLarge => "body_too_large",
            WebhookError::InvalidBody(_) => "invalid_body",
        }
    }
}

/// The parts of a LiveKit `WebhookEvent` the gateway uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEvent {
    /// Unique event id (`EV_…`) for de-duplication.
    pub id: String,
    /// `room_started`, `room_finished`, `participant_joined`, `participant_left`, …
    pub event: String,
    pub room_name: Option<String>,
    pub room_sid: Option<String>,
    pub participant: Option<WebhookParticipant>,
    /// Unix seconds.
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookParticipant {
    pub identity: String,
    /// `ParticipantInfo.Kind` name: `"SIP"`, `"STANDARD"`, `"AGENT"`, …
    pub kind: String,
    pub attributes: HashMap<String, String>,
    /// `DisconnectReason` name; `None` when `UNKNOWN_REASON`/absent.
    pub disconnect_reason: Option<String>,
}

impl WebhookParticipant {
    pub fn is_sip(&self) -> bool {
        self.kind == "SIP"
    }

    /// Attribute `sip.callStatus`.
    pub fn call_status(&self) -> Option<&str> {
        self.attributes.get(ATTR_CALL_STATUS).map(String::as_str)
    }
}

impl From<proto::WebhookEvent> for WebhookEvent {
    fn from(ev: proto::WebhookEvent) -> Self {
        let (room_name, room_sid) = match ev.room {
            Some(r) => (non_empty(r.name), non_empty(r.sid)),
            None => (None, None),
        };
        Self {
            id: ev.id,
            event: ev.event,
            room_name,
            room_sid,
            participant: ev.participant.map(|p| WebhookParticipant {
                kind: proto::participant_info::Kind::try_from(p.kind)
                    .map(|k| k.as_str_name().to_owned())
                    .unwrap_or_else(|_| p.kind.to_string()),
                disconnect_reason: disconnect_reason_name(p.disconnect_reason),
                identity: p.identity,
                attributes: p.attributes,
            }),
            created_at: ev.created_at,
        }
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: String,
    #[serde(default)]
    sub: String,
    exp: Option<f64>,
    nbf: Option<f64>,
    #[serde(default)]
    sha256: String,
    #[serde(default)]
    video: Option<VideoClaims>,
}

#[derive(Deserialize, Default)]
struct VideoClaims {
    #[serde(default)]
    room: Option<String>,
}

/// A verified LiveKit access token (what the gateway's edge needs to route it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The API key that signed it (`iss`): picks the project, hence tenant and region.
    pub api_key: String,
    /// `sub`: the participant identity (empty for server API tokens).
    pub identity: String,
    /// `video.room`, when the token is for one room.
    pub room: Option<String>,
}

/// Verifies webhooks from any configured project (API key -> secret).
#[derive(Clone)]
pub struct WebhookVerifier {
    secrets: HashMap<String, Vec<u8>>,
    leeway: Duration,
}

impl fmt::Debug for WebhookVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<&str> = self.secrets.keys().map(String::as_str).collect();
        keys.sort_unstable();
        f.debug_struct("WebhookVerifier")
            .field("api_keys", &keys)
            .field("leeway", &self.leeway)
            .finish()
    }
}

impl WebhookVerifier {
    /// From `(api_key, api_secret)` pairs. A key listed twice keeps its last secret.
    pub fn new<I, K, S>(keys: I) -> Self
    where
        I: IntoIterator<Item = (K, S)>,
        K: Into<String>,
        S: AsRef<[u8]>,
    {
        Self {
            secrets: keys
                .into_iter()
                .map(|(k, s)| (k.into(), s.as_ref().to_vec()))
                .collect(),
            leeway: DEFAULT_LEEWAY,
        }
    }

    /// From every project's key pair.
    pub fn from_projects<'a, I>(projects: I) -> Self
    where
        I: IntoIterator<Item = &'a LiveKitProject>,
    {
        Self::new(
            projects
                .into_iter()
                .map(|p| (p.api_key.clone(), p.api_secret.clone())),
        )
    }

    /// Sets the clock-skew tolerance for `exp`/`nbf`.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Verifies `authorization` (the raw JWT; a `Bearer ` prefix is tolerated)
    /// against `body` as received, and returns the API key that signed it and the
    /// parsed event.
    pub fn verify(
        &self,
        authorization: &str,
        body: &[u8],
    ) -> Result<(String, WebhookEvent), WebhookError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.verify_at(authorization, body, now)
    }

    /// [`verify`](Self::verify) at a given Unix time (for tests).
    pub fn verify_at(
        &self,
        authorization: &str,
        body: &[u8],
        now_unix: u64,
    ) -> Result<(String, WebhookEvent), WebhookError> {
        if body.len() > MAX_WEBHOOK_BODY {
            return Err(WebhookError::BodyTooLarge);
        }
        let claims = self.verify_jwt(authorization, now_unix)?;
        if claims.sha256.is_empty() {
            return Err(WebhookError::MissingBodyHash);
        }
        let signed_hash = STANDARD
            .decode(claims.sha256.as_bytes())
            .map_err(|_| WebhookError::BodyMismatch)?;
        let actual = Sha256::digest(body);
        if !bool::from(signed_hash.as_slice().ct_eq(actual.as_slice())) {
            return Err(WebhookError::BodyMismatch);
        }
        let event: proto::WebhookEvent =
            serde_json::from_slice(body).map_err(|e| WebhookError::InvalidBody(e.to_string()))?;
        Ok((claims.iss, WebhookEvent::from(event)))
    }
}

impl WebhookVerifier {
    /// Verifies a LiveKit access token (browser signalling, server API calls): HS256
    /// by a known project's secret, within `exp`/`nbf`. `Bearer ` prefix tolerated.
    pub fn verify_access_token(&self, token: &str) -> Result<VerifiedToken, WebhookError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.verify_access_token_at(token, now)
    }

    /// [`verify_access_token`](Self::verify_access_token) at a given Unix time.
    pub fn verify_access_token_at(
        &self,
        token: &str,
        now_unix: u64,
    ) -> Result<VerifiedToken, WebhookError> {
        let c = self.verify_jwt(token, now_unix)?;
        Ok(VerifiedToken {
            api_key: c.iss,
            identity: c.sub,
            room: c.video.and_then(|v| v.room).filter(|r| !r.is_empty()),
        })
    }

    /// A LiveKit access token signed by a known project, whatever its validity window:
    /// proof that the bearer was handed this token once (a call's token refresh accepts
    /// the token being replaced even if it has just expired in a throttled tab).
    pub fn verify_access_token_signature(
        &self,
        token: &str,
    ) -> Result<VerifiedToken, WebhookError> {
        let c = self.verify_signature(token)?;
        Ok(VerifiedToken {
            api_key: c.iss,
            identity: c.sub,
            room: c.video.and_then(|v| v.room).filter(|r| !r.is_empty()),
        })
    }

    /// Signature (key picked by `iss`) and validity window; nothing else.
    fn verify_jwt(&self, authorization: &str, now_unix: u64) -> Result<Claims, WebhookError> {
        let claims = self.verify_signature(authorization)?;
        let leeway = self.leeway.as_secs_f64();
        let now = now_unix as f64;
        let exp = claims
            .exp
            .ok_or(WebhookError::MalformedToken("no exp claim"))?;
        if now > exp + leeway {
            return Err(WebhookError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| now + leeway < nbf) {
            return Err(WebhookError::NotYetValid);
        }
        Ok(claims)
    }

    /// Signature (key picked by `iss`), nothing else.
    fn verify_signature(&self, authorization: &str) -> Result<Claims, WebhookError> {
        let token = authorization.trim();
        let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
        if token.is_empty() {
            return Err(WebhookError::MissingAuthorization);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(WebhookError::MalformedToken("too long"));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(sig_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(WebhookError::MalformedToken("not three segments"));
        };
        let header: Header = decode_json(header_b64)?;
        if header.alg != "HS256" {
            return Err(WebhookError::UnsupportedAlgorithm(header.alg));
        }
        // Unverified until the signature checks out; only `iss` is used to pick the key.
        let claims: Claims = decode_json(claims_b64)?;
        let secret = self
            .secrets
            .get(&claims.iss)
            .ok_or_else(|| WebhookError::UnknownApiKey(claims.iss.clone()))?;
        let signature = URL_SAFE_NO_PAD
            .decode(sig_b64)
            .map_err(|_| WebhookError::MalformedToken("signature is not base64url"))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret)
            .map_err(|_| WebhookError::MalformedToken("unusable secret"))?;
        mac.update(header_b64.as_bytes());
        mac.update(b".");
        mac.update(claims_b64.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| WebhookError::BadSignature)?;
        Ok(claims)
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(segment: &str) -> Result<T, WebhookError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| WebhookError::MalformedToken("segment is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| WebhookError::MalformedToken("segment is not JSON"))
}
