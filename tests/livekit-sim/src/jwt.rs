//! Minimal HS256 JWT encoding.
//!
//! The simulator signs webhook tokens itself (rather than through
//! `livekit_api::access_token::AccessToken`) for two reasons: the Go server's webhook
//! token carries `iat`, which the Rust `Claims` type has no field for, and tests
//! need tokens the SDK refuses to build (already expired, wrong secret).

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::SimError;

/// Header as golang-jwt writes it for `SigningMethodHS256`.
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Signs `claims` as a compact HS256 JWT with `secret`.
pub fn sign_hs256<T: Serialize>(claims: &T, secret: &str) -> Result<String, SimError> {
    let payload = serde_json::to_vec(claims).map_err(|e| SimError::Encode(e.to_string()))?;
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|e| SimError::Encode(e.to_string()))?;
    mac.update(signing_input.as_bytes());
    let sig = mac.finalize().into_bytes();
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// Seconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use livekit_api::access_token::{Claims, TokenVerifier};

    #[test]
    fn sdk_verifier_accepts_our_tokens() {
        let now = now_unix() as usize;
        let claims = Claims {
            iss: "key".into(),
            nbf: now,
            exp: now + 60,
            sub: "someone".into(),
            ..Default::default()
        };
        let token = sign_hs256(&claims, "secret").unwrap();
        let back = TokenVerifier::with_api_key("key", "secret")
            .verify(&token)
            .unwrap();
        assert_eq!(back.sub, "someone");
        assert!(TokenVerifier::with_api_key("key", "other")
            .verify(&token)
            .is_err());
    }
}
