//! Inbound offers: which agent gets the next offer of a call (available with a live
//! session, on no call, offered nothing else, longest idle first), holding that agent
//! for the call while the offer is open, and reaching the agent's session.

use std::sync::Arc;

use tokio::sync::futures::Notified;

use super::PresenceHub;
use crate::agent::Availability;

impl PresenceHub {
    /// Picks the agent to offer `call_id` to and holds it for that call until
    /// [`Self::end_offer`]: available, with a live session (an offer must reach someone),
    /// on no call, not being offered another call, not in `skip`; the one idle longest.
    /// `None` when nobody qualifies now.
    pub fn reserve_for_offer(
        &self,
        tenant: &str,
        call_id: &str,
        skip: &[String],
    ) -> Option<String> {
        let mut st = self.state.lock();
        let t = st.tenants.get_mut(tenant)?;
        let (agent_id, a) = t
            .agents
            .iter_mut()
            .filter(|(id, a)| {
                a.presence().availability == Availability::Available
                    && a.live.is_some()
                    && a.calls.is_empty()
                    && a.offer.is_none()
                    && !skip.iter().any(|s| s == *id)
            })
            .min_by_key(|(_, a)| a.idle_since)?;
        a.offer = Some(call_id.to_owned());
        Some(agent_id.clone())
    }

    /// Whether any of the tenant's agents could be offered a call now or once an offer
    /// ends (available with a live session, not on a call).
    pub fn anyone_to_offer(&self, tenant: &str) -> bool {
        let st = self.state.lock();
        st.tenants.get(tenant).is_some_and(|t| {
            t.agents.values().any(|a| {
                a.presence().availability == Availability::Available
                    && a.live.is_some()
                    && a.calls.is_empty()
            })
        })
    }

    /// The offer of `call_id` to the agent is over (accepted, rejected, timed out or
    /// cancelled): the agent may be offered other calls.
    pub fn end_offer(&self, tenant: &str, agent_id: &str, call_id: &str) {
        let mut st = self.state.lock();
        let Some(t) = st.tenants.get_mut(tenant) else {
            return;
        };
        if let Some(a) = t.agents.get_mut(agent_id) {
            if a.offer.as_deref() == Some(call_id) {
                a.offer = None;
            }
        }
        super::prune(t, agent_id);
        drop(st);
        self.freed.notify_waiters();
    }

    /// The call the agent is being offered, if any.
    pub fn offered_call(&self, tenant: &str, agent_id: &str) -> Option<String> {
        let st = self.state.lock();
        st.tenants
            .get(tenant)
            .and_then(|t| t.agents.get(agent_id))
            .and_then(|a| a.offer.clone())
    }

    /// Queues `text` for the agent's live session; false when it has none (or was too
    /// slow and has just been closed for it).
    pub fn send_to_agent(&self, tenant: &str, agent_id: &str, text: &Arc<str>) -> bool {
        let mut st = self.state.lock();
        let Some(t) = st.tenants.get_mut(tenant) else {
            return false;
        };
        let Some(id) = t
            .agents
            .get(agent_id)
            .and_then(|a| a.live.as_ref())
            .map(|l| l.id)
        else {
            return false;
        };
        t.deliver(id, text);
        t.peers.contains_key(&id)
    }

    /// Resolves when an agent may have become free to be offered a call. Create it
    /// before looking ([`Self::reserve_for_offer`]) so a change in between is not missed.
    pub fn freed(&self) -> Notified<'_> {
        self.freed.notified()
    }
}
