//! Inbound API keys: minting, format checks and hashing.
//!
//! Format: `c2c_` + 30 base62 characters of OS randomness (~178 bits) + 6 base62
//! characters of CRC-32 over the random part — the GitHub `ghp_` scheme. The prefix makes
//! leaked keys easy to find with secret scanners; the checksum lets us reject typos and
//! garbage without a lookup. Only the SHA-256 of a key is ever stored: the key has far
//! more entropy than a password, so a fast hash is the right tool (no salt/KDF needed).

use rand::RngCore;
use sha2::{Digest, Sha256};

pub const KEY_PREFIX: &str = "c2c_";
const RANDOM_LEN: usize = 30;
const CHECK_LEN: usize = 6;
pub const KEY_LEN: usize = KEY_PREFIX.len() + RANDOM_LEN + CHECK_LEN;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// SHA-256 of a key, as stored in policy files (lowercase hex there).
pub type KeyHash = [u8; 32];

/// A freshly minted key: the secret (shown once) and what goes into policy.
#[derive(Debug)]
pub struct MintedKey {
    pub key: String,
    pub sha256_hex: String,
}

/// Mints a new key from the OS random generator.
pub fn mint() -> MintedKey {
    let mut rng = rand::rngs::OsRng;
    let mut body = String::with_capacity(KEY_LEN);
    body.push_str(KEY_PREFIX);
    // Rejection sampling keeps every base62 digit uniform (248 = 4 * 62).
    while body.len() < KEY_PREFIX.len() + RANDOM_LEN {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        for x in b {
            if x < 248 && body.len() < KEY_PREFIX.len() + RANDOM_LEN {
                body.push(BASE62[(x % 62) as usize] as char);
            }
        }
    }
    let check = checksum(&body[KEY_PREFIX.len()..]);
    body.extend(check.iter().map(|&b| b as char));
    let sha256_hex = hex::encode(hash(&body));
    MintedKey {
        key: body,
        sha256_hex,
    }
}

/// Six base62 digits of CRC-32 (CRC-32 < 62^6, so nothing is lost).
fn checksum(random: &str) -> [u8; CHECK_LEN] {
    let mut n = crc32fast::hash(random.as_bytes()) as u64;
    let mut out = [b'0'; CHECK_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// True when `key` has our prefix, length, alphabet and a valid checksum.
///
/// This is a cheap pre-filter, not authentication: it runs in time independent of any
/// stored secret, and a key that passes must still be found by its hash.
pub fn well_formed(key: &str) -> bool {
    if key.len() != KEY_LEN || !key.starts_with(KEY_PREFIX) {
        return false;
    }
    let rest = &key[KEY_PREFIX.len()..];
    if !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let (random, check) = rest.split_at(RANDOM_LEN);
    checksum(random) == check.as_bytes()
}

pub fn hash(key: &str) -> KeyHash {
    Sha256::digest(key.as_bytes()).into()
}

/// Parses a policy file's `sha256` value (64 lowercase or uppercase hex digits).
pub fn parse_hash(hex_str: &str) -> Option<KeyHash> {
    if hex_str.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_str, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_are_well_formed_and_unique() {
        let a = mint();
        let b = mint();
        assert_ne!(a.key, b.key);
        assert!(well_formed(&a.key), "{}", a.key);
        assert_eq!(a.key.len(), KEY_LEN);
        assert_eq!(hex::encode(hash(&a.key)), a.sha256_hex);
        assert_eq!(parse_hash(&a.sha256_hex), Some(hash(&a.key)));
    }

    #[test]
    fn checksum_catches_a_typo() {
        let k = mint().key;
        let mut bytes = k.into_bytes();
        let i = KEY_PREFIX.len() + 3;
        bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(bytes).unwrap();
        assert!(!well_formed(&typo));
    }

    #[test]
    fn malformed_keys_are_rejected() {
        for k in [
            "",
            "c2c_",
            "xyz_012345678901234567890123456789012345",
            "c2c_!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
        ] {
            assert!(!well_formed(k), "{k}");
        }
    }

    #[test]
    fn bad_hashes_do_not_parse() {
        assert!(parse_hash("abc").is_none());
        assert!(parse_hash(&"z".repeat(64)).is_none());
    }
}
