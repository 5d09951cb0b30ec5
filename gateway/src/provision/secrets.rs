//! Secret files a provisioning request creates: `secrets/<tenant>-<what>-<random>.secret`
//! under the policy directory, mode 0600, fsynced before the policy file that names them
//! is written.
//!
//! Every secret gets a new file (never an overwrite), so until the tenant file is
//! renamed into place the gateway keeps reading the old secret from the old file, and a
//! failed change only has to delete what it created. After a change lands, the files it
//! replaced are deleted if (and only if) they follow this naming: a file an operator
//! made by hand may be shared and is left alone.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::RngCore;

/// Directory under the policy directory, as policy files reference it.
const DIR: &str = "secrets";

/// Secret files written for one change, deleted again unless the change is kept.
pub struct StagedSecrets {
    policies: PathBuf,
    created: Vec<PathBuf>,
    kept: bool,
}

impl StagedSecrets {
    pub fn new(policies: &Path) -> Self {
        Self {
            policies: policies.to_path_buf(),
            created: Vec::new(),
            kept: false,
        }
    }

    /// Writes `secret` to a new file and returns the reference for the policy file
    /// (`secrets/<tenant>-<what>-<random>.secret`, relative to the policy directory).
    pub fn write(&mut self, tenant: &str, what: &str, secret: &str) -> std::io::Result<String> {
        let dir = self.policies.join(DIR);
        std::fs::create_dir_all(&dir)?;
        let mut r = [0u8; 6];
        rand::rngs::OsRng.fill_bytes(&mut r);
        let name = format!("{tenant}-{what}-{}.secret", hex::encode(r));
        let path = dir.join(&name);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&path)?;
        self.created.push(path.clone());
        f.write_all(secret.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::File::open(&dir)?.sync_all()?;
        Ok(format!("{DIR}/{name}"))
    }

    /// The change landed: keep what was written.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for StagedSecrets {
    fn drop(&mut self) {
        if !self.kept {
            for p in &self.created {
                // Best effort: an orphaned secret file is named by nothing and harmless.
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Deletes a secret file a landed change no longer references, if provisioning made it
/// for this tenant (see the module doc).
pub fn remove_replaced(policies: &Path, tenant: &str, reference: &str) {
    let Some(name) = reference.strip_prefix(&format!("{DIR}/")) else {
        return;
    };
    let ours = name.starts_with(&format!("{tenant}-"))
        && name.ends_with(".secret")
        && !name.contains('/')
        && !name.contains("..");
    if ours {
        if let Err(e) = std::fs::remove_file(policies.join(DIR).join(name)) {
            tracing::warn!(file = name, error = %e, "cannot delete a replaced secret file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_files_vanish_unless_kept() {
        let d = tempfile::tempdir().unwrap();
        let mut s = StagedSecrets::new(d.path());
        let r = s.write("acme", "crm-outbound", "k3y").unwrap();
        assert!(r.starts_with("secrets/acme-crm-outbound-") && r.ends_with(".secret"));
        let path = d.path().join(&r);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "k3y\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        drop(s);
        assert!(!path.exists());

        let mut s = StagedSecrets::new(d.path());
        let r = s.write("acme", "livekit", "s").unwrap();
        s.keep();
        assert!(d.path().join(&r).exists());
    }

    #[test]
    fn only_provisioned_files_of_the_tenant_are_removed() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("secrets")).unwrap();
        for f in [
            "acme-crm-outbound-00.secret",
            "shared.key",
            "globex-x-00.secret",
        ] {
            std::fs::write(d.path().join("secrets").join(f), "x").unwrap();
        }
        remove_replaced(d.path(), "acme", "secrets/acme-crm-outbound-00.secret");
        remove_replaced(d.path(), "acme", "secrets/shared.key");
        remove_replaced(d.path(), "acme", "secrets/globex-x-00.secret");
        remove_replaced(d.path(), "acme", "../acme-x.secret");
        let left: Vec<_> = std::fs::read_dir(d.path().join("secrets"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(!left.contains(&"acme-crm-outbound-00.secret".to_string()));
    }
}
