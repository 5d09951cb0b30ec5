//! `c2c-gateway keys mint|rotate|revoke`: inbound API keys of tenants and owner keys.
//!
//! `mint` only prints a key and the TOML to paste. `rotate` mints a key and writes it
//! into the policy file; the keys already there stay valid, so a CRM rolls over at its
//! own pace and the old key is revoked afterwards. `revoke` removes one key by id and
//! refuses to remove the last one unless `--force` (that would lock the tenant, or the
//! owner, out). Both edit through [`crate::policy_edit`]: validated, then written
//! atomically for the running gateway's hot reload.

use super::common::{CliResult, Failure};
use super::{KeysCommand, KeysRevokeArgs, KeysRotateArgs, KeysTarget};
use crate::policy_edit::{KeyOwner, PolicyFile};

/// Runs a `keys` subcommand.
pub fn run(cmd: KeysCommand) -> CliResult {
    match cmd {
        KeysCommand::Mint { target, id } => {
            mint(&target.owner_of(), id.as_deref());
            Ok(())
        }
        KeysCommand::Rotate(a) => rotate(a),
        KeysCommand::Revoke(a) => revoke(a),
    }
}

impl KeysTarget {
    /// Whose keys the flags name.
    pub fn owner_of(&self) -> KeyOwner {
        match &self.tenant {
            Some(t) => KeyOwner::Tenant(t.clone()),
            None => KeyOwner::Owner,
        }
    }
}

/// `<tenant>-<YYYYMMDD>` or `owner-<YYYYMMDD>`.
fn default_id(owner: &KeyOwner) -> String {
    let day = crate::clock::today_utc();
    match owner {
        KeyOwner::Tenant(t) => format!("{t}-{day}"),
        KeyOwner::Owner => format!("owner-{day}"),
    }
}

fn mint(owner: &KeyOwner, id: Option<&str>) {
    let k = c2c_tenancy::keys::mint();
    let file = match owner {
        KeyOwner::Tenant(t) => format!("tenants/{t}.toml"),
        KeyOwner::Owner => "gateway.toml".into(),
    };
    let id = id.map(str::to_string).unwrap_or_else(|| default_id(owner));
    println!("key (shown once; store it in your secret manager):");
    println!("{}", k.key);
    println!();
    println!("paste into policies/{file}:");
    println!("[[{}]]", owner.section());
    println!("id = \"{id}\"");
    println!("sha256 = \"{}\"", k.sha256_hex);
    println!("scopes = [\"{}\"]", owner.scope());
}

fn rotate(a: KeysRotateArgs) -> CliResult {
    let owner = a.target.owner_of();
    let mut file = PolicyFile::locate(&a.policy.policies, &owner)?;
    let taken = file.key_ids(owner.section());
    let id = match a.id {
        Some(id) if taken.contains(&id) => {
            return Err(Failure::failed(format!(
                "key id {id:?} is already used in {}",
                file.path.display()
            )))
        }
        Some(id) => id,
        // Several rotations a day: k-20261121, k-20261121-2, ...
        None => {
            let base = default_id(&owner);
            (1..)
                .map(|n| {
                    if n == 1 {
                        base.clone()
                    } else {
                        format!("{base}-{n}")
                    }
                })
                .find(|c| !taken.contains(c))
                .unwrap_or(base)
        }
    };
    let k = c2c_tenancy::keys::mint();
    file.add_key(owner.section(), &id, &k.sha256_hex, owner.scope());
    file.validate_and_write(&a.policy.policies)?;
    let others = taken.len();
    println!(
        "new key {id} for {} written to {}",
        owner.describe(),
        file.path.display()
    );
    println!("key (shown once; store it in your secret manager):");
    println!("{}", k.key);
    println!(
        "{others} older key(s) stay valid until revoked (c2c-gateway keys revoke --key-id ID); \
         a running gateway picks the new key up within about a second"
    );
    Ok(())
}

fn revoke(a: KeysRevokeArgs) -> CliResult {
    let owner = a.target.owner_of();
    let mut file = PolicyFile::locate(&a.policy.policies, &owner)?;
    let ids = file.key_ids(owner.section());
    if !ids.contains(&a.key_id) {
        return Err(Failure::failed(format!(
            "{} has no key with id {:?} in {} (its keys: {})",
            owner.describe(),
            a.key_id,
            file.path.display(),
            if ids.is_empty() {
                "none".to_string()
            } else {
                ids.join(", ")
            }
        )));
    }
    // The last key with the owner's main scope (`calls` for a tenant: the CRM backend;
    // `owner`): revoking it locks that caller out even if e.g. a `console` key remains.
    let primary = file.key_ids_with_scope(owner.section(), owner.scope());
    if primary == [a.key_id.clone()] && !a.force {
        return Err(Failure::failed(format!(
            "refusing to revoke {:?}, the last {:?} key of {}: nothing could authenticate as it \
             afterwards; rotate first, or pass --force",
            a.key_id,
            owner.scope(),
            owner.describe()
        )));
    }
    file.remove_key(owner.section(), &a.key_id);
    file.validate_and_write(&a.policy.policies)?;
    println!(
        "key {} of {} revoked in {}; a running gateway refuses it within about a second",
        a.key_id,
        owner.describe(),
        file.path.display()
    );
    Ok(())
}
