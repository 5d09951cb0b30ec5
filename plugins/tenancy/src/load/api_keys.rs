//! `[[owner_keys]]` (gateway.toml) and `[[api_keys]]` (tenant files): key hashes, ids
//! and scopes, added to the one [`KeyRing`] of the policy.
//!
//! Owns: uniqueness of hashes and ids across all files, and which scopes each kind of
//! key may carry.

use std::collections::HashMap;
use std::path::PathBuf;

use c2c_plugin_api::Scope;

use super::Errs;
use crate::file::KeyEntry;
use crate::keyring::{KeyRecord, KeyRing};
use crate::keys;

/// Validates the key at `at` and adds it to `ring`; `tenant` is `None` for owner keys.
pub(super) fn add(
    k: &KeyEntry,
    at: &str,
    tenant: Option<&str>,
    ring: &mut KeyRing,
    ids: &mut HashMap<String, PathBuf>,
    e: &mut Errs<'_>,
) {
    let Some(hash) = keys::parse_hash(&k.sha256) else {
        e.push(
            format!("{at}.sha256"),
            "must be 64 hex digits (the SHA-256 of the key)",
        );
        return;
    };
    if ring.contains(&hash) {
        e.push(
            format!("{at}.sha256"),
            "this key hash is already used by another key",
        );
        return;
    }
    if k.id.trim().is_empty() {
        e.push(format!("{at}.id"), "must not be empty");
    }
    if let Some(prev) = ids.get(&k.id) {
        e.push(
            format!("{at}.id"),
            format!("duplicate key id {:?} (also in {})", k.id, prev.display()),
        );
        return;
    }
    ids.insert(k.id.clone(), e.file.to_path_buf());
    let scopes = scopes(k, at, tenant, e);
    ring.insert(KeyRecord {
        hash,
        id: k.id.as_str().into(),
        tenant: tenant.map(Into::into),
        scopes: scopes.into(),
    });
}

/// The key's scopes that are known and allowed for its kind (owner or tenant).
fn scopes(k: &KeyEntry, at: &str, tenant: Option<&str>, e: &mut Errs<'_>) -> Vec<Scope> {
    let mut scopes = Vec::new();
    for (i, s) in k.scopes.iter().enumerate() {
        match Scope::parse(s) {
            Some(Scope::Owner) if tenant.is_some() => e.push(
                format!("{at}.scopes[{i}]"),
                "tenant keys cannot carry the owner scope; owner keys live in gateway.toml",
            ),
            Some(Scope::Calls | Scope::Console) if tenant.is_none() => e.push(
                format!("{at}.scopes[{i}]"),
                "owner keys carry the owner scope only",
            ),
            Some(sc) => scopes.push(sc),
            None => e.push(
                format!("{at}.scopes[{i}]"),
                format!("unknown scope {s:?}; known scopes: calls, console, owner"),
            ),
        }
    }
    if k.scopes.is_empty() {
        e.push(format!("{at}.scopes"), "at least one scope is required");
    }
    scopes
}
