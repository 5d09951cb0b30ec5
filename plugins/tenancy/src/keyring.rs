//! Lookup of inbound keys by their SHA-256.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use c2c_plugin_api::{Principal, Scope};
use subtle::ConstantTimeEq;

use crate::keys::{self, KeyHash};

/// A key entry as the auth plugin needs it.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub hash: KeyHash,
    pub id: Arc<str>,
    /// `None` for owner keys from `gateway.toml`.
    pub tenant: Option<Arc<str>>,
    pub scopes: Arc<[Scope]>,
}

/// All active keys of all tenants plus the owner keys.
///
/// Lookup hashes the presented key and finds the entry by that digest. Finding by digest
/// leaks nothing useful through timing (an attacker would need a SHA-256 preimage), and
/// the final equality check is constant-time anyway, so a partial match cannot be
/// observed either.
#[derive(Debug, Default)]
pub struct KeyRing {
    by_hash: HashMap<KeyHash, KeyRecord, BuildHasherDefault<DigestHasher>>,
}

/// Hashes a map key that is itself a SHA-256 digest by taking eight of its bytes.
///
/// A digest is already uniformly distributed, so running SipHash over it again only
/// costs time on every authenticated request. Flooding is not a concern: requests only
/// look keys up, and the map's contents come from the operator's policy files.
#[derive(Debug, Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` arrives as a length prefix, then one write of the digest. Eight bytes
        // of each write are plenty, and shorter writes still hash.
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
    }
}

/// Why a key was refused. The HTTP layer maps all of these to the same 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRejection {
    Missing,
    Malformed,
    Unknown,
}

impl KeyRing {
    pub(crate) fn insert(&mut self, rec: KeyRecord) {
        self.by_hash.insert(rec.hash, rec);
    }

    pub(crate) fn contains(&self, hash: &KeyHash) -> bool {
        self.by_hash.contains_key(hash)
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Authenticates a presented `X-api-key` value.
    pub fn authenticate(&self, presented: Option<&str>) -> Result<Principal, KeyRejection> {
        let key = presented.map(str::trim).filter(|k| !k.is_empty());
        let Some(key) = key else {
            return Err(KeyRejection::Missing);
        };
        if !keys::well_formed(key) {
            return Err(KeyRejection::Malformed);
        }
        let digest = keys::hash(key);
        match self.by_hash.get(&digest) {
            Some(rec) if bool::from(rec.hash.ct_eq(&digest)) => Ok(Principal {
                tenant: rec.tenant.clone(),
                key_id: rec.id.clone(),
                scopes: rec.scopes.clone(),
            }),
            _ => Err(KeyRejection::Unknown),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash;

    fn ring_with(key: &str, tenant: Option<&str>, scopes: Vec<Scope>) -> KeyRing {
        let mut r = KeyRing::default();
        r.insert(KeyRecord {
            hash: keys::hash(key),
            id: "k1".into(),
            tenant: tenant.map(Into::into),
            scopes: scopes.into(),
        });
        r
    }

    #[test]
    fn known_key_authenticates_with_its_scopes() {
        let k = keys::mint().key;
        let r = ring_with(&k, Some("acme"), vec![Scope::Calls]);
        let p = r.authenticate(Some(&k)).unwrap();
        assert_eq!(p.tenant.as_deref(), Some("acme"));
        assert!(p.has(Scope::Calls) && !p.has(Scope::Owner));
    }

    #[test]
    fn missing_malformed_and_unknown_are_refused() {
        let r = ring_with(&keys::mint().key, Some("acme"), vec![Scope::Calls]);
        assert_eq!(r.authenticate(None), Err(KeyRejection::Missing));
        assert_eq!(r.authenticate(Some("  ")), Err(KeyRejection::Missing));
        assert_eq!(r.authenticate(Some("nope")), Err(KeyRejection::Malformed));
        let other = keys::mint().key;
        assert_eq!(r.authenticate(Some(&other)), Err(KeyRejection::Unknown));
    }

    #[test]
    fn many_keys_each_find_their_own_record() {
        let mut r = KeyRing::default();
        let keys: Vec<String> = (0..500).map(|_| keys::mint().key).collect();
        for (i, k) in keys.iter().enumerate() {
            r.insert(KeyRecord {
                hash: keys::hash(k),
                id: format!("k{i}").into(),
                tenant: Some("acme".into()),
                scopes: vec![Scope::Calls].into(),
            });
        }
        assert_eq!(r.len(), 500);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(&*r.authenticate(Some(k)).unwrap().key_id, format!("k{i}"));
        }
        // The digest hasher reads the digest itself: distinct digests, distinct hashes.
        let distinct: std::collections::HashSet<u64> = keys
            .iter()
            .map(|k| {
                let mut h = DigestHasher::default();
                keys::hash(k).hash(&mut h);
                h.finish()
            })
            .collect();
        assert_eq!(distinct.len(), 500);
    }
}
