//! Standard Webhooks signing (<https://www.standardwebhooks.com/>):
//! `webhook-signature: v1,<base64(HMAC-SHA256(secret, "{id}.{ts}.{body}"))>`.
//!
//! The secret is the raw key bytes; the conventional `whsec_<base64>` text form is
//! decoded by [`decode_secret`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::digest::{Digest, Key, KeyInit};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::SecretError;

type HmacSha256 = Hmac<Sha256>;

/// Signature scheme/version tag of Standard Webhooks.
pub const VERSION_PREFIX: &str = "v1,";

/// Prefix of the textual secret form used by Standard Webhooks / Svix.
pub const SECRET_PREFIX: &str = "whsec_";

/// HMAC keyed with `secret`, built without a fallible constructor: RFC 2104 hashes
/// keys longer than the block and zero-pads shorter ones, which is exactly what
/// `new_from_slice` does internally; doing it here avoids an `expect` on an error
/// that cannot happen.
fn mac_for(secret: &[u8]) -> HmacSha256 {
    let mut key = Key::<HmacSha256>::default();
    if secret.len() <= key.len() {
        key[..secret.len()].copy_from_slice(secret);
    } else {
        let digest = Sha256::digest(secret);
        key[..digest.len()].copy_from_slice(&digest);
    }
    <HmacSha256 as KeyInit>::new(&key)
}

fn mac_over(secret: &[u8], id: &str, ts: u64, body: &[u8]) -> HmacSha256 {
    let mut mac = mac_for(secret);
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `webhook-signature` header value for one attempt: `v1,<base64>`.
pub fn sign(secret: &[u8], id: &str, ts: u64, body: &[u8]) -> String {
    let tag = mac_over(secret, id, ts, body).finalize().into_bytes();
    format!("{VERSION_PREFIX}{}", STANDARD.encode(tag))
}

/// Receiver-side check (used by tests and by anyone verifying our webhooks): true
/// if any space-separated `v1,` signature in `header` matches. Constant-time
/// comparison. Timestamp freshness is the receiver's policy and not checked here.
pub fn verify(secret: &[u8], id: &str, ts: u64, body: &[u8], header: &str) -> bool {
    header
        .split_ascii_whitespace()
        .filter_map(|s| s.strip_prefix(VERSION_PREFIX))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .any(|sig| mac_over(secret, id, ts, body).verify_slice(&sig).is_ok())
}

/// Decode a secret given as `whsec_<base64>` (or bare base64) into key bytes.
pub fn decode_secret(text: &str) -> Result<Vec<u8>, SecretError> {
    let b64 = text.trim();
    let b64 = b64.strip_prefix(SECRET_PREFIX).unwrap_or(b64);
    if b64.is_empty() {
        return Err(SecretError::Empty);
    }
    let key = STANDARD.decode(b64).map_err(|_| SecretError::NotBase64)?;
    if key.is_empty() {
        return Err(SecretError::Empty);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Independent computation with the hmac crate's own slice constructor.
    fn reference(secret: &[u8], msg: &[u8]) -> String {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(secret).expect("hmac takes any key");
        mac.update(msg);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn published_standard_webhooks_vector() {
        // Test vector from the Standard Webhooks reference libraries (also
        // recomputed with Python's hmac module while writing this test).
        let key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn matches_independent_hmac_for_short_block_and_long_keys() {
        let body = br#"{"call_id":"c2c_00","call_status":"ANSWERED"}"#;
        for key in [
            b"k".to_vec(),
            vec![0x5a; 64],  // exactly one block
            vec![0xa5; 65],  // longer than a block: must be hashed first
            vec![0x01; 200], // much longer
        ] {
            let got = sign(&key, "msg_c2c_00", 1_700_000_000, body);
            let mut msg = b"msg_c2c_00.1700000000.".to_vec();
            msg.extend_from_slice(body);
            let want = reference(&key, &msg);
            assert_eq!(got, want, "key length {}", key.len());
        }
    }

    #[test]
    fn verify_round_trip_and_rejections() {
        let key = b"super-secret".to_vec();
        let body = br#"{"a":1}"#;
        let sig = sign(&key, "msg_1", 42, body);
        assert!(verify(&key, "msg_1", 42, body, &sig));
        // Several signatures (key rotation) separated by spaces.
        let multi = format!("v1,AAAA {sig}");
        assert!(verify(&key, "msg_1", 42, body, &multi));
        assert!(!verify(&key, "msg_2", 42, body, &sig), "id is signed");
        assert!(
            !verify(&key, "msg_1", 43, body, &sig),
            "timestamp is signed"
        );
        assert!(
            !verify(&key, "msg_1", 42, br#"{"a":2}"#, &sig),
            "body is signed"
        );
        assert!(!verify(b"other", "msg_1", 42, body, &sig), "key matters");
        assert!(!verify(&key, "msg_1", 42, body, "v2,abc"));
        assert!(!verify(&key, "msg_1", 42, body, ""));
    }

    #[test]
    fn decode_secret_forms() {
        assert_eq!(decode_secret("whsec_AQID").unwrap(), vec![1, 2, 3]);
        assert_eq!(decode_secret("AQID").unwrap(), vec![1, 2, 3]);
        assert_eq!(decode_secret("whsec_"), Err(SecretError::Empty));
        assert_eq!(decode_secret("whsec_***"), Err(SecretError::NotBase64));
    }
}
