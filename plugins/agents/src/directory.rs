//! The registry in memory: every registered agent, per tenant, sorted by id. Loaded from
//! the store at start and updated after each durable write, so click2call's gating and
//! listings never wait on the store. In a fleet on one shared store, other nodes'
//! writes arrive through [`Directory::refresh`].

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use parking_lot::RwLock;

use crate::agent::Agent;
use crate::store::{AgentStore, AgentStoreError};

type Tenants = HashMap<String, BTreeMap<String, Agent>>;

#[derive(Default)]
pub struct Directory {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    tenants: Tenants,
    /// Local writes ([`Directory::insert`], [`Directory::remove`]) ever made: a refresh
    /// whose read of the store raced one of them drops what it read.
    local_writes: u64,
    /// The store revision `tenants` reflects (None: unknown, the next refresh reads).
    revision: Option<u64>,
}

/// What a [`Directory::refresh`] changed, for the presence side (an agent turned off
/// goes offline, a removed one loses its session) and the per-tenant gauges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryChange {
    Added(Agent),
    Updated { old: Agent, new: Agent },
    Removed(Agent),
}

impl DirectoryChange {
    pub fn tenant(&self) -> &str {
        match self {
            Self::Added(a) | Self::Removed(a) | Self::Updated { new: a, .. } => &a.tenant,
        }
    }
}

fn index(all: Vec<Agent>) -> Tenants {
    let mut t = Tenants::new();
    for a in all {
        t.entry(a.tenant.clone())
            .or_default()
            .insert(a.agent_id.clone(), a);
    }
    t
}

/// The changes from `old` to `new`, in (tenant, agent) order within each tenant.
fn diff(old: &Tenants, new: &Tenants) -> Vec<DirectoryChange> {
    let mut out = Vec::new();
    for (tenant, agents) in new {
        let before = old.get(tenant);
        for (id, a) in agents {
            match before.and_then(|b| b.get(id)) {
                None => out.push(DirectoryChange::Added(a.clone())),
                Some(o) if o != a => out.push(DirectoryChange::Updated {
                    old: o.clone(),
                    new: a.clone(),
                }),
                Some(_) => {}
            }
        }
    }
    for (tenant, agents) in old {
        let after = new.get(tenant);
        for (id, a) in agents {
            if after.is_none_or(|n| !n.contains_key(id)) {
                out.push(DirectoryChange::Removed(a.clone()));
            }
        }
    }
    out
}

impl Directory {
    /// A directory of `all`, at no known store revision (the first
    /// [`Directory::refresh`] reads the store).
    pub fn load(all: Vec<Agent>) -> Self {
        Self {
            inner: RwLock::new(Inner {
                tenants: index(all),
                ..Inner::default()
            }),
        }
    }

    /// Loads every agent of `store`, noting the revision read.
    pub async fn open(store: &dyn AgentStore) -> Result<Self, AgentStoreError> {
        // The revision first: a write in between is read again by the next refresh.
        let revision = store.revision().await?;
        let d = Self::load(store.all().await?);
        d.inner.write().revision = Some(revision);
        Ok(d)
    }

    /// Catches up with writes other processes made to a shared store: reads the store's
    /// revision and, when it moved since the directory last read the store, re-reads
    /// every agent and replaces the directory, returning what changed. Cheap when
    /// nothing moved (one revision read), so a fleet calls it every second or so.
    ///
    /// A local [`Directory::insert`] or [`Directory::remove`] made while the store was
    /// being read wins: what was read is dropped and the next refresh reads again.
    pub async fn refresh(
        &self,
        store: &dyn AgentStore,
    ) -> Result<Vec<DirectoryChange>, AgentStoreError> {
        let (known, writes_before) = {
            let i = self.inner.read();
            (i.revision, i.local_writes)
        };
        let revision = store.revision().await?;
        if known == Some(revision) {
            return Ok(Vec::new());
        }
        let fresh = index(store.all().await?);
        let mut i = self.inner.write();
        if i.local_writes != writes_before {
            return Ok(Vec::new());
        }
        let changes = diff(&i.tenants, &fresh);
        i.tenants = fresh;
        i.revision = Some(revision);
        Ok(changes)
    }

    /// Replaces the whole directory with `all` (a fresh read of the store made by the
    /// caller), returning what changed. The store revision it reflects is unknown, so
    /// the next [`Directory::refresh`] reads the store again; a refresh racing with it
    /// drops what it read.
    pub fn replace_all(&self, all: Vec<Agent>) -> Vec<DirectoryChange> {
        let fresh = index(all);
        let mut i = self.inner.write();
        let changes = diff(&i.tenants, &fresh);
        i.tenants = fresh;
        i.local_writes += 1;
        i.revision = None;
        changes
    }

    pub fn get(&self, tenant: &str, agent_id: &str) -> Option<Agent> {
        self.inner
            .read()
            .tenants
            .get(tenant)?
            .get(agent_id)
            .cloned()
    }

    /// `Some(telephony_enabled)` for a registered agent, without copying the record.
    pub fn telephony(&self, tenant: &str, agent_id: &str) -> Option<bool> {
        let i = self.inner.read();
        i.tenants
            .get(tenant)?
            .get(agent_id)
            .map(|a| a.telephony_enabled)
    }

    /// Up to `limit` agents with ids after `after`, and the cursor of the next page.
    pub fn page(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<Agent>, Option<String>) {
        let i = self.inner.read();
        let Some(agents) = i.tenants.get(tenant) else {
            return (Vec::new(), None);
        };
        let from = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.to_owned()));
        let mut it = agents.range((from, Bound::Unbounded)).map(|(_, a)| a);
        let page: Vec<Agent> = it.by_ref().take(limit).cloned().collect();
        let next = match (it.next(), page.last()) {
            (Some(_), Some(last)) => Some(last.agent_id.clone()),
            _ => None,
        };
        (page, next)
    }

    pub fn insert(&self, agent: Agent) {
        let mut i = self.inner.write();
        i.local_writes += 1;
        i.tenants
            .entry(agent.tenant.clone())
            .or_default()
            .insert(agent.agent_id.clone(), agent);
    }

    pub fn remove(&self, tenant: &str, agent_id: &str) -> Option<Agent> {
        let mut i = self.inner.write();
        i.local_writes += 1;
        i.tenants.get_mut(tenant)?.remove(agent_id)
    }

    /// Registered agents of the tenant.
    pub fn count(&self, tenant: &str) -> usize {
        self.inner
            .read()
            .tenants
            .get(tenant)
            .map_or(0, BTreeMap::len)
    }

    /// Tenants with at least one registered agent.
    pub fn tenants(&self) -> Vec<String> {
        self.inner
            .read()
            .tenants
            .iter()
            .filter(|(_, a)| !a.is_empty())
            .map(|(t, _)| t.clone())
            .collect()
    }
}

/// Why click2call (or `/connect`) refuses an agent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundRefusal {
    #[error("agent '{0}' is not registered, and this tenant requires registration")]
    NotRegistered(String),
    #[error("agent '{0}' is not enabled for telephony")]
    Disabled(String),
    #[error("agent '{agent_id}' is already on call {call_id}")]
    Busy { agent_id: String, call_id: String },
}

/// The outbound rules in one place: `telephony` is the registry's entry (None: not
/// registered), `current_call` the call the agent is on. The rules are for registered
/// agents: an unregistered `agent_id` (a CRM that never registers agents, or a shared
/// id) is let through unless the tenant requires registration, so today's CRMs keep
/// working unmodified.
pub fn gate_outbound(
    agent_id: &str,
    telephony: Option<bool>,
    current_call: Option<String>,
    require_registration: bool,
    allow_concurrent_calls: bool,
) -> Result<(), OutboundRefusal> {
    match telephony {
        None if require_registration => {
            return Err(OutboundRefusal::NotRegistered(agent_id.to_owned()))
        }
        None => return Ok(()),
        Some(false) => return Err(OutboundRefusal::Disabled(agent_id.to_owned())),
        Some(true) => {}
    }
    match current_call {
        Some(call_id) if !allow_concurrent_calls => Err(OutboundRefusal::Busy {
            agent_id: agent_id.to_owned(),
            call_id,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::contract::{agent, created};
    use crate::{AuditEntry, MemAgentStore, PresenceSecret};

    #[tokio::test]
    async fn refresh_follows_another_nodes_writes() {
        let store = MemAgentStore::new();
        let a = agent("acme", "a1", "Asha", true);
        store.put(&a, &created(&a)).await.unwrap();
        let d = Directory::open(&store).await.unwrap();
        assert_eq!(d.get("acme", "a1"), Some(a.clone()));
        assert!(d.refresh(&store).await.unwrap().is_empty(), "nothing moved");
        // Another node adds one agent and turns the first one off.
        let b = agent("globex", "b1", "Bela", true);
        store.put(&b, &created(&b)).await.unwrap();
        let mut off = a.clone();
        off.telephony_enabled = false;
        off.updated_ms = 2_000;
        store
            .put(&off, &AuditEntry::diff(Some(&a), Some(&off), "k", 2_000))
            .await
            .unwrap();
        let mut changes = d.refresh(&store).await.unwrap();
        changes.sort_by(|x, y| x.tenant().cmp(y.tenant()));
        assert_eq!(
            changes,
            [
                DirectoryChange::Updated {
                    old: a.clone(),
                    new: off.clone()
                },
                DirectoryChange::Added(b.clone()),
            ]
        );
        assert_eq!(d.telephony("acme", "a1"), Some(false));
        assert_eq!(d.count("globex"), 1);
        // And removes one.
        store
            .remove(
                "acme",
                "a1",
                &AuditEntry::diff(Some(&off), None, "k", 3_000),
            )
            .await
            .unwrap();
        assert_eq!(
            d.refresh(&store).await.unwrap(),
            [DirectoryChange::Removed(off)]
        );
        assert_eq!(d.get("acme", "a1"), None);
        assert!(d.refresh(&store).await.unwrap().is_empty());
        // A directory built by `load` knows no revision: its first refresh reads, and
        // finds nothing new when it was loaded from the store's data.
        let loaded = Directory::load(store.all().await.unwrap());
        assert!(loaded.refresh(&store).await.unwrap().is_empty());
        assert_eq!(loaded.get("globex", "b1"), Some(b.clone()));
        // A wholesale replace reports its changes and leaves the revision unknown.
        let again = agent("acme", "a2", "Anu", false);
        store.put(&again, &created(&again)).await.unwrap();
        assert_eq!(
            loaded.replace_all(vec![again.clone()]),
            [
                DirectoryChange::Added(again),
                DirectoryChange::Removed(b.clone())
            ]
        );
        assert_eq!(
            loaded.refresh(&store).await.unwrap(),
            [DirectoryChange::Added(b)],
            "the next refresh reads the store"
        );
    }

    /// A store whose `all` lets the directory make a local write while it is read.
    struct RacingStore {
        inner: MemAgentStore,
        directory: parking_lot::Mutex<Option<Arc<Directory>>>,
    }

    #[async_trait::async_trait]
    impl AgentStore for RacingStore {
        async fn all(&self) -> Result<Vec<Agent>, AgentStoreError> {
            let all = self.inner.all().await?;
            let racing = self.directory.lock().take();
            if let Some(d) = racing {
                let late = agent("acme", "late", "Lata", true);
                self.inner.put(&late, &created(&late)).await?;
                d.insert(late);
            }
            Ok(all)
        }
        async fn put(&self, a: &Agent, audit: &[AuditEntry]) -> Result<(), AgentStoreError> {
            self.inner.put(a, audit).await
        }
        async fn remove(
            &self,
            tenant: &str,
            agent_id: &str,
            audit: &[AuditEntry],
        ) -> Result<bool, AgentStoreError> {
            self.inner.remove(tenant, agent_id, audit).await
        }
        async fn audit(
            &self,
            tenant: &str,
            max: usize,
        ) -> Result<Vec<AuditEntry>, AgentStoreError> {
            self.inner.audit(tenant, max).await
        }
        async fn presence_secret(&self) -> Result<PresenceSecret, AgentStoreError> {
            self.inner.presence_secret().await
        }
        async fn revision(&self) -> Result<u64, AgentStoreError> {
            self.inner.revision().await
        }
    }

    #[tokio::test]
    async fn a_local_write_during_a_refresh_is_never_undone() {
        let store = RacingStore {
            inner: MemAgentStore::new(),
            directory: parking_lot::Mutex::new(None),
        };
        let d = Arc::new(Directory::open(&store).await.unwrap());
        let a = agent("acme", "a1", "Asha", true);
        store.put(&a, &created(&a)).await.unwrap();
        *store.directory.lock() = Some(d.clone());
        // The read misses "late", which the directory got locally meanwhile: dropped.
        assert!(d.refresh(&store).await.unwrap().is_empty());
        assert!(d.get("acme", "late").is_some(), "the local write stands");
        // The next refresh reads both.
        let changes = d.refresh(&store).await.unwrap();
        assert_eq!(changes, [DirectoryChange::Added(a)]);
        assert_eq!(d.count("acme"), 2);
    }

    #[test]
    fn pages_follow_the_cursor() {
        let d = Directory::load(
            ["a", "b", "c", "d", "e"]
                .iter()
                .map(|id| agent("acme", id, "N", true))
                .chain([agent("globex", "a", "N", true)])
                .collect(),
        );
        let (p1, next) = d.page("acme", None, 2);
        assert_eq!(
            p1.iter().map(|a| a.agent_id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let (p2, next) = d.page("acme", next.as_deref(), 2);
        assert_eq!(
            p2.iter().map(|a| a.agent_id.as_str()).collect::<Vec<_>>(),
            ["c", "d"]
        );
        let (p3, next) = d.page("acme", next.as_deref(), 2);
        assert_eq!(p3.len(), 1);
        assert_eq!(next, None, "no cursor after the last page");
        let (exact, next) = d.page("acme", None, 5);
        assert_eq!(
            (exact.len(), next),
            (5, None),
            "a full last page has no cursor"
        );
        assert_eq!(d.count("globex"), 1);
        assert!(d.page("nobody", None, 5).0.is_empty());
    }

    #[test]
    fn gate_outbound_rules() {
        assert!(
            gate_outbound("a", None, None, false, false).is_ok(),
            "legacy CRMs"
        );
        assert_eq!(
            gate_outbound("a", None, None, true, false),
            Err(OutboundRefusal::NotRegistered("a".into()))
        );
        assert_eq!(
            gate_outbound("a", Some(false), None, false, false),
            Err(OutboundRefusal::Disabled("a".into()))
        );
        assert!(matches!(
            gate_outbound("a", Some(true), Some("c1".into()), false, false),
            Err(OutboundRefusal::Busy { .. })
        ));
        assert!(gate_outbound("a", Some(true), Some("c1".into()), false, true).is_ok());
        // An unregistered id may be shared by a legacy CRM: no busy rule for it.
        assert!(gate_outbound("a", None, Some("c1".into()), false, false).is_ok());
    }
}
