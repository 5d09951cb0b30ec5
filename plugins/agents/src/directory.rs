//! The registry in memory: every registered agent, per tenant, sorted by id. Loaded from
//! the store at start and updated after each durable write, so click2call's gating and
//! listings never wait on the store.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use parking_lot::RwLock;

use crate::agent::Agent;

#[derive(Default)]
pub struct Directory {
    tenants: RwLock<HashMap<String, BTreeMap<String, Agent>>>,
}

impl Directory {
    pub fn load(all: Vec<Agent>) -> Self {
        let d = Self::default();
        {
            let mut t = d.tenants.write();
            for a in all {
                t.entry(a.tenant.clone())
                    .or_default()
                    .insert(a.agent_id.clone(), a);
            }
        }
        d
    }

    pub fn get(&self, tenant: &str, agent_id: &str) -> Option<Agent> {
        self.tenants.read().get(tenant)?.get(agent_id).cloned()
    }

    /// `Some(telephony_enabled)` for a registered agent, without copying the record.
    pub fn telephony(&self, tenant: &str, agent_id: &str) -> Option<bool> {
        let t = self.tenants.read();
        t.get(tenant)?.get(agent_id).map(|a| a.telephony_enabled)
    }

    /// Up to `limit` agents with ids after `after`, and the cursor of the next page.
    pub fn page(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<Agent>, Option<String>) {
        let t = self.tenants.read();
        let Some(agents) = t.get(tenant) else {
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
        self.tenants
            .write()
            .entry(agent.tenant.clone())
            .or_default()
            .insert(agent.agent_id.clone(), agent);
    }

    pub fn remove(&self, tenant: &str, agent_id: &str) -> Option<Agent> {
        self.tenants.write().get_mut(tenant)?.remove(agent_id)
    }

    /// Registered agents of the tenant.
    pub fn count(&self, tenant: &str) -> usize {
        self.tenants.read().get(tenant).map_or(0, BTreeMap::len)
    }

    /// Tenants with at least one registered agent.
    pub fn tenants(&self) -> Vec<String> {
        self.tenants
            .read()
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
    use super::*;
    use crate::contract::agent;

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
