//! Presence tokens: what the CRM backend mints for an agent's browser
//! (`POST /api/c2c/agents/{id}/session`) and the browser presents in the first frame
//! of its presence socket.
//!
//! `pt1.<payload>.<mac>`: the payload is base64url JSON (tenant, agent, supervisor flag,
//! expiry), the MAC is HMAC-SHA256 over `pt1.<payload>` with the store's presence secret,
//! checked in constant time. Signed rather than stored, so minting writes nothing and any
//! gateway on the same store verifies it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::store::PresenceSecret;

const PREFIX: &str = "pt1.";
/// Tokens longer than this are refused before any decoding.
const MAX_TOKEN: usize = 1024;

/// Who a presence token speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceClaims {
    #[serde(rename = "t")]
    pub tenant: String,
    /// The agent; None for a supervisor-only session (the console's Agents page).
    #[serde(rename = "a")]
    pub agent_id: Option<String>,
    /// The session also receives the tenant's other agents' availability.
    #[serde(rename = "s")]
    pub supervisor: bool,
    /// Expiry, Unix milliseconds.
    #[serde(rename = "e")]
    pub exp_ms: u64,
    /// Random, so two tokens minted in the same millisecond differ.
    #[serde(rename = "n")]
    pub nonce: String,
}

/// Why a presence token is refused. Deliberately coarse towards the client (one close
/// code), precise in logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a presence token")]
    Malformed,
    #[error("bad signature")]
    BadSignature,
    #[error("expired")]
    Expired,
}

/// Mints and verifies presence tokens with one secret.
pub struct PresenceSigner {
    secret: PresenceSecret,
}

impl PresenceSigner {
    pub fn new(secret: PresenceSecret) -> Self {
        Self { secret }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length: this cannot fail.
        #[allow(clippy::expect_used)]
        Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC accepts any key length")
    }

    pub fn mint(&self, claims: &PresenceClaims) -> String {
        // Claims are plain strings and numbers: serialising them cannot fail.
        let json = serde_json::to_vec(claims).unwrap_or_default();
        let mut token = String::with_capacity(PREFIX.len() + json.len() * 2 + 48);
        token.push_str(PREFIX);
        B64.encode_string(&json, &mut token);
        let mut mac = self.mac();
        mac.update(token.as_bytes());
        let tag = mac.finalize().into_bytes();
        token.push('.');
        B64.encode_string(tag, &mut token);
        token
    }

    pub fn verify(&self, token: &str, now_ms: u64) -> Result<PresenceClaims, TokenError> {
        if token.len() > MAX_TOKEN || !token.starts_with(PREFIX) {
            return Err(TokenError::Malformed);
        }
        let (signed, tag) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let tag = B64.decode(tag).map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        mac.verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        let payload = B64
            .decode(&signed[PREFIX.len()..])
            .map_err(|_| TokenError::Malformed)?;
        let claims: PresenceClaims =
            serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if claims.exp_ms <= now_ms {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// A random nonce for [`PresenceClaims::nonce`] (and session ids): 16 bytes, hex.
pub fn random_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp_ms: u64) -> PresenceClaims {
        PresenceClaims {
            tenant: "acme".into(),
            agent_id: Some("a1".into()),
            supervisor: false,
            exp_ms,
            nonce: random_id(),
        }
    }

    #[test]
    fn round_trip_and_expiry() {
        let s = PresenceSigner::new([7; 32]);
        let c = claims(10_000);
        let t = s.mint(&c);
        assert!(t.starts_with("pt1."));
        assert_eq!(s.verify(&t, 9_999).unwrap(), c);
        assert_eq!(s.verify(&t, 10_000), Err(TokenError::Expired));
    }

    #[test]
    fn forged_and_foreign_tokens_are_refused() {
        let s = PresenceSigner::new([7; 32]);
        let other = PresenceSigner::new([8; 32]);
        let t = s.mint(&claims(10_000));
        assert_eq!(other.verify(&t, 1), Err(TokenError::BadSignature));
        // A payload edited to another tenant keeps the old tag: refused.
        let (_, tag) = t.rsplit_once('.').unwrap();
        let mut forged_claims = claims(10_000);
        forged_claims.tenant = "globex".into();
        let forged_payload = B64.encode(serde_json::to_vec(&forged_claims).unwrap());
        let forged = format!("pt1.{forged_payload}.{tag}");
        assert_eq!(s.verify(&forged, 1), Err(TokenError::BadSignature));
        for junk in [
            "",
            "pt1.",
            "pt1..",
            "x.y.z",
            "pt1.@@@.###",
            &"pt1.".repeat(400),
        ] {
            assert!(s.verify(junk, 1).is_err(), "{junk:?}");
        }
    }
}
