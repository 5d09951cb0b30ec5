//! The fleet's PostgreSQL store for the offline commands (`db check`, `db export`,
//! `calls show`, `webhooks replay`): when `--policies`' gateway.toml says `[store] kind =
//! "postgres"`, they work on the shared database (URL from the same `url_env` /
//! `url_file` as the gateways) instead of `--data`, and may run while gateways serve.
//!
//! Only `[store] kind` is read before deciding, so a sled user's commands never depend
//! on the rest of the policy being loadable in the operator's shell.

use std::path::Path;
use std::sync::Arc;

use c2c_store_pg::{PgCallStore, PgStore};
use c2c_tenancy::StoreKind;

use super::common::{load_policy, Failure};

/// True when `dir/gateway.toml` names the PostgreSQL backend.
fn names_postgres(dir: &Path) -> Result<bool, Failure> {
    let path = dir.join("gateway.toml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        // No policy here: the embedded store in --data, as always.
        return Ok(false);
    };
    let doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| Failure::failed(format!("{}: {e}", path.display())))?;
    Ok(doc
        .get("store")
        .and_then(|s| s.get("kind"))
        .and_then(|k| k.as_str())
        == Some("postgres"))
}

/// The shared call store, or `None` when the policy keeps the embedded sled store.
pub async fn open(policies: &Path) -> Result<Option<Arc<PgCallStore>>, Failure> {
    let Some(shared) = open_database(policies).await? else {
        return Ok(None);
    };
    let store = PgCallStore::new(shared)
        .await
        .map_err(|e| Failure::failed(format!("cannot open the PostgreSQL call store: {e}")))?;
    Ok(Some(Arc::new(store)))
}

/// The shared database (schema migrated), or `None` when the policy keeps the embedded
/// sled store.
pub async fn open_database(policies: &Path) -> Result<Option<Arc<PgStore>>, Failure> {
    if !names_postgres(policies)? {
        return Ok(None);
    }
    let policy = load_policy(policies)?;
    let StoreKind::Postgres(pg) = &policy.gateway.store else {
        return Ok(None);
    };
    let mut opts = crate::stores::pg_options(pg, &policy);
    opts.node_name = format!("{} (cli)", opts.node_name);
    let shared = PgStore::open(opts)
        .await
        .map_err(|e| Failure::failed(format!("cannot open the PostgreSQL store: {e}")))?;
    Ok(Some(shared))
}
