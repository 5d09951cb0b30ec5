//! Editing one policy file's key list in place, safely next to a running gateway.
//!
//! Edits go through `toml_edit`, so comments, ordering and formatting of everything else
//! survive. Before anything is written, the whole policy directory is validated with
//! the loader as if the edited file were already in place (`load_dir_with`); only a
//! valid set is written, to a temp file in the same directory that is fsynced and then
//! renamed over the original, so the gateway's hot reload (which polls every second)
//! only ever reads the old or the new complete file.

use std::io::Write;
use std::path::{Path, PathBuf};

use toml_edit::{value, Array, ArrayOfTables, DocumentMut, Item, Table};

/// Why a policy file could not be edited. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The file (or directory) could not be read or written.
    #[error("{0}")]
    Io(String),
    /// No tenant file has this id.
    #[error("unknown tenant '{id}': no file in {dir} has id = \"{id}\"")]
    UnknownTenant { id: String, dir: String },
    /// The whole policy set would be invalid after the edit.
    #[error("nothing was written: the policy would be invalid after this change ({} error(s)):\n{}", .0.0.len(), .0)]
    Invalid(c2c_tenancy::PolicyErrors),
}

/// Whose keys: a tenant's (`tenants/<file>.toml`, `[[api_keys]]`, scope `calls`) or the
/// platform owner's (`gateway.toml`, `[[owner_keys]]`, scope `owner`).
#[derive(Debug, Clone)]
pub enum KeyOwner {
    Tenant(String),
    Owner,
}

impl KeyOwner {
    /// The table array holding the keys.
    pub fn section(&self) -> &'static str {
        match self {
            KeyOwner::Tenant(_) => "api_keys",
            KeyOwner::Owner => "owner_keys",
        }
    }

    /// The scope new keys get.
    pub fn scope(&self) -> &'static str {
        match self {
            KeyOwner::Tenant(_) => "calls",
            KeyOwner::Owner => "owner",
        }
    }

    /// For messages: "tenant acme" or "the platform owner".
    pub fn describe(&self) -> String {
        match self {
            KeyOwner::Tenant(t) => format!("tenant {t}"),
            KeyOwner::Owner => "the platform owner".into(),
        }
    }
}

/// A parsed policy file being edited.
pub struct PolicyFile {
    pub path: PathBuf,
    pub doc: DocumentMut,
}

impl PolicyFile {
    /// Finds and parses the file holding `owner`'s keys. Tenant files are found by their
    /// `id`, not their file name (the loader does not tie the two together).
    pub fn locate(policies: &Path, owner: &KeyOwner) -> Result<Self, EditError> {
        match owner {
            KeyOwner::Owner => Self::read(policies.join("gateway.toml")),
            KeyOwner::Tenant(id) => {
                let dir = policies.join("tenants");
                let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
                    .map_err(|e| EditError::Io(format!("cannot read {}: {e}", dir.display())))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                    .collect();
                paths.sort();
                for p in paths {
                    let f = Self::read(p)?;
                    if f.doc.get("id").and_then(Item::as_str) == Some(id.as_str()) {
                        return Ok(f);
                    }
                }
                Err(EditError::UnknownTenant {
                    id: id.clone(),
                    dir: dir.display().to_string(),
                })
            }
        }
    }

    pub fn read(path: PathBuf) -> Result<Self, EditError> {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| EditError::Io(format!("cannot read {}: {e}", path.display())))?;
        let doc = text
            .parse::<DocumentMut>()
            .map_err(|e| EditError::Io(format!("{} is not valid TOML: {e}", path.display())))?;
        Ok(Self { path, doc })
    }

    /// Ids of the keys in `section`, in file order.
    pub fn key_ids(&self, section: &str) -> Vec<String> {
        self.doc
            .get(section)
            .and_then(Item::as_array_of_tables)
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.get("id").and_then(Item::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Ids of the section's keys whose `scopes` include `scope`.
    pub fn key_ids_with_scope(&self, section: &str, scope: &str) -> Vec<String> {
        self.doc
            .get(section)
            .and_then(Item::as_array_of_tables)
            .map(|a| {
                a.iter()
                    .filter(|t| {
                        t.get("scopes")
                            .and_then(Item::as_array)
                            .is_some_and(|s| s.iter().any(|v| v.as_str() == Some(scope)))
                    })
                    .filter_map(|t| t.get("id").and_then(Item::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Appends a key entry right after the section's last entry (or at the end of the
    /// file when the section is new).
    pub fn add_key(&mut self, section: &str, id: &str, sha256_hex: &str, scope: &str) {
        let mut t = Table::new();
        t.insert("id", value(id));
        t.insert("sha256", value(sha256_hex));
        let mut scopes = Array::new();
        scopes.push(scope);
        t.insert("scopes", value(scopes));
        let item = self
            .doc
            .entry(section)
            .or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()));
        if let Some(aot) = item.as_array_of_tables_mut() {
            // Same position as the last entry: rendered directly after it.
            if let Some(pos) = aot.iter().last().and_then(Table::position) {
                t.set_position(pos);
            }
            aot.push(t);
        }
    }

    /// Removes the key with this id; false if there is none.
    pub fn remove_key(&mut self, section: &str, id: &str) -> bool {
        let Some(aot) = self
            .doc
            .get_mut(section)
            .and_then(Item::as_array_of_tables_mut)
        else {
            return false;
        };
        let Some(i) = aot
            .iter()
            .position(|t| t.get("id").and_then(Item::as_str) == Some(id))
        else {
            return false;
        };
        aot.remove(i);
        if aot.is_empty() {
            self.doc.remove(section);
        }
        true
    }

    /// Validates the whole policy set with this file as edited, then writes it
    /// atomically. Nothing is written when validation fails.
    pub fn validate_and_write(&self, policies: &Path) -> Result<c2c_tenancy::Policy, EditError> {
        let text = self.doc.to_string();
        let overlay = [(self.path.clone(), text.clone())];
        let policy = c2c_tenancy::load_dir_with(policies, &overlay).map_err(EditError::Invalid)?;
        write_atomically(&self.path, text.as_bytes())
            .map_err(|e| EditError::Io(format!("cannot write {}: {e}", self.path.display())))?;
        Ok(policy)
    }
}

/// Temp file in the same directory, fsync, rename over `path`, fsync the directory.
/// The temp name does not end in `.toml`, so the loader never picks it up.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        if let Ok(meta) = std::fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: &str = "# Tenant file.\nid = \"t\"\n\n# current key\n[[api_keys]]\nid = \"k1\"\nsha256 = \"aa\"\nscopes = [\"calls\"]\n\n# old key, rolling over\n[[api_keys]]\nid = \"k0\"\nsha256 = \"bb\"\nscopes = [\"calls\"]\n\n[dlt]\nprincipal_entity_id = \"1\" # keep me\n";

    fn file(text: &str) -> PolicyFile {
        PolicyFile {
            path: PathBuf::from("t.toml"),
            doc: text.parse().unwrap(),
        }
    }

    #[test]
    fn a_new_key_follows_the_last_one_and_comments_stay() {
        let mut f = file(TENANT);
        f.add_key("api_keys", "k2", "cc", "calls");
        let out = f.doc.to_string();
        let k0 = out.find("id = \"k0\"").unwrap();
        let k2 = out.find("id = \"k2\"").unwrap();
        let dlt = out.find("[dlt]").unwrap();
        assert!(k0 < k2 && k2 < dlt, "{out}");
        assert!(out.starts_with("# Tenant file.\nid = \"t\"\n\n# current key\n[[api_keys]]"));
        assert!(out.contains("principal_entity_id = \"1\" # keep me"));
        assert_eq!(f.key_ids("api_keys"), ["k1", "k0", "k2"]);
    }

    #[test]
    fn removing_a_key_takes_its_comment_and_nothing_else() {
        let mut f = file(TENANT);
        assert!(f.remove_key("api_keys", "k0"));
        assert!(!f.remove_key("api_keys", "nope"));
        let out = f.doc.to_string();
        assert!(
            !out.contains("rolling over") && !out.contains("\"k0\""),
            "{out}"
        );
        assert!(out.contains("# current key") && out.contains("# keep me"));
        assert_eq!(f.key_ids("api_keys"), ["k1"]);
    }

    #[test]
    fn the_first_key_of_a_tenant_gets_a_section() {
        let mut f = file("id = \"g\"\n\n[dlt]\nprincipal_entity_id = \"1\"\n");
        f.add_key("api_keys", "g1", "dd", "calls");
        let out = f.doc.to_string();
        assert!(out.contains("[[api_keys]]\nid = \"g1\""), "{out}");
        let reparsed: DocumentMut = out.parse().unwrap();
        assert!(reparsed["dlt"].is_table());
    }
}
