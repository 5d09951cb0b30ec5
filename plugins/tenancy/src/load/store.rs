//! `[store]`: the backend and its settings.

use std::path::Path;
use std::time::Duration;

use super::Errs;
use crate::file::StoreSection;
use crate::policy::{PostgresStore, StoreKind};

/// `store.cache_mb` (default 64), in bytes.
pub(super) fn cache_bytes(s: &StoreSection, e: &mut Errs<'_>) -> u64 {
    let mb = s.cache_mb.unwrap_or(64);
    if !(4..=65_536).contains(&mb) {
        e.push("store.cache_mb", "must be between 4 and 65536");
    }
    mb * 1024 * 1024
}

/// `store.kind` (`sled`, the default, or `postgres`) with the PostgreSQL settings, and
/// `store.fleet_size` (default 1).
pub(super) fn validate(s: &StoreSection, dir: &Path, e: &mut Errs<'_>) -> (StoreKind, u32) {
    let fleet_size = s.fleet_size.unwrap_or(1);
    if !(1..=64).contains(&fleet_size) {
        e.push("store.fleet_size", "must be between 1 and 64");
    }
    let pg_keys = [
        ("url_env", s.url_env.is_some()),
        ("url_file", s.url_file.is_some()),
        ("pool_size", s.pool_size.is_some()),
        ("statement_timeout_ms", s.statement_timeout_ms.is_some()),
        ("schema", s.schema.is_some()),
        ("lease_ms", s.lease_ms.is_some()),
        ("node_name", s.node_name.is_some()),
    ];
    match s.kind.as_deref().unwrap_or("sled") {
        "sled" => {
            for (key, set) in pg_keys {
                if set {
                    e.push(format!("store.{key}"), "only used with kind = \"postgres\"");
                }
            }
            if fleet_size > 1 {
                e.push(
                    "store.fleet_size",
                    "a fleet needs the shared store: kind = \"postgres\"",
                );
            }
            (StoreKind::Sled, fleet_size)
        }
        "postgres" => (StoreKind::Postgres(postgres(s, dir, e)), fleet_size),
        other => {
            e.push(
                "store.kind",
                format!("{other:?} is not one of sled, postgres"),
            );
            (StoreKind::Sled, fleet_size)
        }
    }
}

fn postgres(s: &StoreSection, dir: &Path, e: &mut Errs<'_>) -> PostgresStore {
    let url = match crate::secret::resolve(s.url_env.as_deref(), s.url_file.as_deref(), dir) {
        Ok(u) => u,
        Err(reason) => {
            e.push("store.url_env", reason);
            crate::Secret::new("")
        }
    };
    if s.cache_mb.is_some() {
        e.push("store.cache_mb", "only used with kind = \"sled\"");
    }
    let pool_size = s.pool_size.unwrap_or(16);
    if !(1..=512).contains(&pool_size) {
        e.push("store.pool_size", "must be between 1 and 512");
    }
    let timeout_ms = s.statement_timeout_ms.unwrap_or(5_000);
    if !(100..=60_000).contains(&timeout_ms) {
        e.push(
            "store.statement_timeout_ms",
            "must be between 100 and 60000",
        );
    }
    let lease_ms = s.lease_ms.unwrap_or(5_000);
    if !(1_000..=60_000).contains(&lease_ms) {
        e.push("store.lease_ms", "must be between 1000 and 60000");
    }
    if let Some(schema) = &s.schema {
        let ok = !schema.is_empty()
            && schema.len() <= 63
            && schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !schema.as_bytes()[0].is_ascii_digit();
        if !ok {
            e.push(
                "store.schema",
                "lowercase letters, digits and _, at most 63, not starting with a digit",
            );
        }
    }
    if let Some(name) = &s.node_name {
        if name.trim().is_empty() || name.len() > 64 {
            e.push("store.node_name", "must be 1 to 64 characters");
        }
    }
    PostgresStore {
        url,
        pool_size,
        statement_timeout: Duration::from_millis(timeout_ms),
        schema: s.schema.clone(),
        lease: Duration::from_millis(lease_ms),
        node_name: s.node_name.clone(),
    }
}
