//! Reading and validating a policy directory into a [`Policy`].
//!
//! Owns: the order of a load (read every file, then validate `gateway.toml` and each
//! tenant file) and error collection. Each section of a file is validated by its own
//! module, which turns the on-disk shape (`crate::file`) into the internal one
//! (`crate::policy`) and reports problems by file and key path; nothing here stops at
//! the first problem.

mod agents;
mod api_keys;
mod billing;
mod calls;
mod dlt;
mod gateway;
mod inbound;
mod limits;
mod livekit;
mod read;
mod regions;
mod server;
mod simulator;
mod sip;
mod store;
mod syntax;
mod tenant;
mod trunks;
mod webhooks;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{PolicyError, PolicyErrors};
use crate::file::{GatewayFile, TenantFile};
use crate::keyring::KeyRing;
use crate::policy::Policy;

pub use syntax::{is_e164, valid_id};

/// Collects errors for one file.
struct Errs<'a> {
    file: &'a Path,
    out: &'a mut Vec<PolicyError>,
}

impl Errs<'_> {
    fn push(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.out.push(PolicyError::new(self.file, key, reason));
    }
}

/// Loads `dir/gateway.toml` and every `dir/tenants/*.toml`.
///
/// Returns every problem found, not just the first.
pub fn load_dir(dir: &Path) -> Result<Policy, PolicyErrors> {
    load_dir_with(dir, &[])
}

/// Like [`load_dir`], but each `(path, text)` in `overlay` is read as if `path` (one of
/// the directory's policy files, as `dir/gateway.toml` or `dir/tenants/<file>.toml`)
/// contained `text`; a tenant file in `overlay` that does not exist yet is read as if it
/// did (provisioning validates a new tenant before writing its file). Tools that edit a policy file validate the whole resulting policy
/// set this way before writing anything; secret file references still resolve against
/// the real directory.
pub fn load_dir_with(dir: &Path, overlay: &[(PathBuf, String)]) -> Result<Policy, PolicyErrors> {
    let mut errors = Vec::new();
    let gw_path = dir.join("gateway.toml");
    let gw_file: Option<GatewayFile> = read::read_toml(&gw_path, overlay, &mut errors);
    let tenant_files = read_tenant_files(dir, overlay, &mut errors);
    let Some(gw_file) = gw_file else {
        return Err(PolicyErrors(errors));
    };

    let mut ring = KeyRing::default();
    let mut key_ids: HashMap<String, PathBuf> = HashMap::new();
    let gateway = {
        let mut e = Errs {
            file: &gw_path,
            out: &mut errors,
        };
        let g = gateway::validate(&gw_file, dir, &mut e);
        for (i, k) in gw_file.owner_keys.iter().enumerate() {
            api_keys::add(
                k,
                &format!("owner_keys[{i}]"),
                None,
                &mut ring,
                &mut key_ids,
                &mut e,
            );
        }
        g
    };

    let mut tenants = BTreeMap::new();
    let mut seen_files: HashMap<String, PathBuf> = HashMap::new();
    let mut paths: Vec<(String, PathBuf)> = Vec::new();
    for (path, tf) in tenant_files {
        let mut e = Errs {
            file: &path,
            out: &mut errors,
        };
        if let Some(prev) = seen_files.get(&tf.id) {
            e.push(
                "id",
                format!(
                    "duplicate tenant id {:?}, already defined in {}",
                    tf.id,
                    prev.display()
                ),
            );
            continue;
        }
        seen_files.insert(tf.id.clone(), path.clone());
        for (i, k) in tf.api_keys.iter().enumerate() {
            api_keys::add(
                k,
                &format!("api_keys[{i}]"),
                Some(&tf.id),
                &mut ring,
                &mut key_ids,
                &mut e,
            );
        }
        let t = tenant::validate(tf, &path, dir, &gateway, &mut e);
        paths.push((t.id.clone(), path.clone()));
        tenants.insert(t.id.clone(), Arc::new(t));
    }
    inbound::check_unique_dids(
        paths
            .iter()
            .filter_map(|(id, p)| tenants.get(id).map(|t| (p.as_path(), t.as_ref()))),
        &mut errors,
    );

    if errors.is_empty() {
        Ok(Policy::new(gateway, tenants, ring))
    } else {
        Err(PolicyErrors(errors))
    }
}

/// Every `dir/tenants/*.toml` that parses, in file-name order.
fn read_tenant_files(
    dir: &Path,
    overlay: &[(PathBuf, String)],
    errors: &mut Vec<PolicyError>,
) -> Vec<(PathBuf, TenantFile)> {
    let mut tenant_files = Vec::new();
    let tenants_dir = dir.join("tenants");
    match std::fs::read_dir(&tenants_dir) {
        Ok(entries) => {
            let mut paths: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            let new_files = overlay.iter().map(|(p, _)| p).filter(|p| {
                p.parent() == Some(tenants_dir.as_path())
                    && p.extension().is_some_and(|x| x == "toml")
            });
            paths.extend(new_files.cloned());
            paths.sort();
            paths.dedup();
            for p in paths {
                if let Some(t) = read::read_toml::<TenantFile>(&p, overlay, errors) {
                    tenant_files.push((p, t));
                }
            }
        }
        Err(e) => errors.push(PolicyError::new(
            &tenants_dir,
            "-",
            format!("cannot read the tenants directory: {e}"),
        )),
    }
    tenant_files
}
