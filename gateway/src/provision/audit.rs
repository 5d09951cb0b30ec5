//! The audit trail of provisioning: one JSON line per change to a tenant's policy file
//! (who, when, which fields, from what to what; secrets only as "replaced"), appended to
//! `<data>/policy-changes.jsonl` and fsynced before the change is acknowledged.
//!
//! It lives in the data directory, not the policy directory: the policy directory is
//! read every second by the hot reload and may be a read-only config map elsewhere. Like
//! the policy files themselves it is per node (docs/provisioning.md).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::view::FieldChange;

/// The file's name in the data directory.
pub const FILE: &str = "policy-changes.jsonl";
/// How much of the file's tail a read looks at: a few thousand changes, enough for any
/// screen, and a bounded read however old the file gets.
const TAIL_BYTES: u64 = 1 << 20;

/// One change to one tenant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyChange {
    pub at_ms: u64,
    /// `owner:<key id>` for the owner API, `cli` for the command line.
    pub actor: String,
    pub tenant: String,
    pub action: ChangeAction,
    pub changes: Vec<FieldChange>,
    /// The policy file's revision after the change.
    pub revision: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChangeAction {
    Create,
    Update,
}

/// The audit file of one data directory.
#[derive(Debug, Clone)]
pub struct PolicyAudit {
    path: PathBuf,
}

impl PolicyAudit {
    pub fn in_dir(data: &Path) -> Self {
        Self {
            path: data.join(FILE),
        }
    }

    /// Appends `c`, durable on return (blocking: call from a blocking thread).
    pub fn append(&self, c: &PolicyChange) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(c).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        f.write_all(&line)?;
        f.sync_data()
    }

    /// The last `max` changes of `tenant`, oldest first (blocking).
    pub fn recent(&self, tenant: &str, max: usize) -> std::io::Result<Vec<PolicyChange>> {
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let len = f.metadata()?.len();
        let start = len.saturating_sub(TAIL_BYTES);
        f.seek(SeekFrom::Start(start))?;
        let mut text = String::new();
        f.take(TAIL_BYTES).read_to_string(&mut text)?;
        // Starting mid-file, the first line is probably cut: skip it.
        let lines = text.lines().skip(usize::from(start > 0));
        let mut out: Vec<PolicyChange> = lines
            .filter_map(|l| serde_json::from_str::<PolicyChange>(l).ok())
            .filter(|c| c.tenant == tenant)
            .collect();
        let excess = out.len().saturating_sub(max);
        out.drain(..excess);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(tenant: &str, at_ms: u64) -> PolicyChange {
        PolicyChange {
            at_ms,
            actor: "cli".into(),
            tenant: tenant.into(),
            action: ChangeAction::Update,
            changes: vec![],
            revision: "r".into(),
        }
    }

    #[test]
    fn recent_changes_are_the_tenants_own_and_the_newest() {
        let d = tempfile::tempdir().unwrap();
        let a = PolicyAudit::in_dir(d.path());
        assert!(a.recent("t", 10).unwrap().is_empty());
        for i in 0..5 {
            a.append(&change("t", i)).unwrap();
            a.append(&change("u", i)).unwrap();
        }
        let r = a.recent("t", 3).unwrap();
        assert_eq!(r.iter().map(|c| c.at_ms).collect::<Vec<_>>(), [2, 3, 4]);
        assert!(r.iter().all(|c| c.tenant == "t"));
    }
}
