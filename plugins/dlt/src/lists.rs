//! Each tenant's do-not-disturb and consent lists, read from the files its policy names
//! and read again when a file changes.
//!
//! A list that cannot be read keeps the copy read before (a half-written upload never
//! empties a DND list); a tenant whose DND list was never read has no list to scrub
//! against, and its promotional calls are refused (`dnd_unavailable`) until one is:
//! failing closed is the only safe reading of "scrub against the register".

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use c2c_tenancy::Policy;
use parking_lot::RwLock;

use crate::numbers::NumberSet;

/// Which list of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    Dnd,
    Consent,
}

impl ListKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ListKind::Dnd => "dnd",
            ListKind::Consent => "consent",
        }
    }
}

/// A list as the gateway holds it.
#[derive(Debug, Clone)]
pub struct ListState {
    pub path: PathBuf,
    /// `None`: never read successfully.
    pub set: Option<Arc<NumberSet>>,
    /// When the set in force was read (Unix ms).
    pub loaded_at_ms: u64,
    /// The file's modification time when it was read (Unix ms): the list's age.
    pub modified_ms: u64,
    /// Why the last read failed, if it did (the set in force is the one before).
    pub error: Option<String>,
    stamp: Option<(u64, u64)>,
}

/// What one reload did to one list, for the log and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListReload {
    pub tenant: String,
    pub kind: ListKind,
    /// `Ok(numbers)` when read, `Err(reason)` when not.
    pub outcome: Result<usize, String>,
}

/// Every tenant's lists (module docs).
#[derive(Default)]
pub struct ListRegistry {
    lists: RwLock<HashMap<(String, ListKind), Arc<ListState>>>,
}

impl ListRegistry {
    /// The list of `tenant` of `kind`, as last read.
    pub fn get(&self, tenant: &str, kind: ListKind) -> Option<Arc<ListState>> {
        self.lists.read().get(&(tenant.to_string(), kind)).cloned()
    }

    /// Reads every list `policy` names whose file changed (size or modification time)
    /// or that is new; drops lists no tenant names any more. Blocking file I/O: call it
    /// off the async runtime. Returns what it read or failed to read.
    pub fn reload(&self, policy: &Policy, max_numbers: usize) -> Vec<ListReload> {
        let mut wanted = Vec::new();
        for t in policy.tenants.values() {
            if let Some(p) = &t.dlt.dnd_file {
                wanted.push(((t.id.clone(), ListKind::Dnd), p.clone()));
            }
            if let Some(p) = &t.dlt.consent_file {
                wanted.push(((t.id.clone(), ListKind::Consent), p.clone()));
            }
        }
        let mut reports = Vec::new();
        let mut next = HashMap::with_capacity(wanted.len());
        for (key, path) in wanted {
            let before = self.get(&key.0, key.1).filter(|s| s.path == path);
            let stamp = stamp(&path);
            if let Some(b) = &before {
                if b.stamp.is_some() && b.stamp == stamp.as_ref().ok().copied() {
                    next.insert(key, b.clone());
                    continue;
                }
            }
            let read = stamp.and_then(|st| {
                let f = std::fs::File::open(&path).map_err(|e| e.to_string())?;
                NumberSet::read(f, max_numbers)
                    .map(|set| (set, st))
                    .map_err(|e| e.to_string())
            });
            let state = match read {
                Ok((set, st)) => {
                    reports.push(ListReload {
                        tenant: key.0.clone(),
                        kind: key.1,
                        outcome: Ok(set.len()),
                    });
                    ListState {
                        path,
                        set: Some(Arc::new(set)),
                        loaded_at_ms: now_ms(),
                        modified_ms: st.1,
                        error: None,
                        stamp: Some(st),
                    }
                }
                Err(why) => {
                    let why = format!("{}: {why}", path.display());
                    reports.push(ListReload {
                        tenant: key.0.clone(),
                        kind: key.1,
                        outcome: Err(why.clone()),
                    });
                    match before {
                        // Kept; the stamp of what it was read from stays, so a fixed
                        // file is read again.
                        Some(b) => ListState {
                            error: Some(why),
                            ..(*b).clone()
                        },
                        None => ListState {
                            path,
                            set: None,
                            loaded_at_ms: 0,
                            modified_ms: 0,
                            error: Some(why),
                            stamp: None,
                        },
                    }
                }
            };
            next.insert(key, Arc::new(state));
        }
        *self.lists.write() = next;
        reports
    }
}

/// A file's (size, modification time in ms), or why it cannot be read.
fn stamp(path: &Path) -> Result<(u64, u64), String> {
    let m = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !m.is_file() {
        return Err("is not a file".into());
    }
    let modified = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Ok((m.len(), modified))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
