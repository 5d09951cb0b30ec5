//! The hub's state behind its one lock: per tenant, the sessions (one handle each), the
//! agents present, the supervisors, the availability counts; and how an event reaches
//! its recipients.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::mpsc;

use super::close;
use super::session::{AgentPresence, Reason, SessionCtl};
use crate::agent::Availability;

#[derive(Serialize)]
pub(super) struct AvailabilityEvent<'a> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) agent_id: &'a str,
    pub(super) availability: Availability,
    pub(super) on_call: bool,
    pub(super) reason: Reason,
    pub(super) at_ms: u64,
}

#[derive(Serialize)]
pub(super) struct TelephonyEvent<'a> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) agent_id: &'a str,
    pub(super) telephony_enabled: bool,
    pub(super) at_ms: u64,
}

/// The hub's one handle on a session: its queue and close flag.
pub(super) struct Peer {
    pub(super) tx: mpsc::Sender<Arc<str>>,
    pub(super) ctl: Arc<SessionCtl>,
}

pub(super) struct Live {
    pub(super) id: u64,
    pub(super) resume_key: String,
}

pub(super) struct Dropped {
    pub(super) id: u64,
    pub(super) resume_key: String,
    pub(super) availability: Availability,
}

#[derive(Default)]
pub(super) struct AgentState {
    pub(super) availability: Option<Availability>,
    pub(super) live: Option<Live>,
    pub(super) dropped: Option<Dropped>,
    pub(super) calls: Vec<String>,
    /// The inbound call this agent is being offered, if any (one at a time).
    pub(super) offer: Option<String>,
    /// When the agent last became free to take a call (available, or its last call
    /// ended), as the tenant's change counter: inbound offers go longest idle first.
    pub(super) idle_since: u64,
}

impl AgentState {
    pub(super) fn presence(&self) -> AgentPresence {
        AgentPresence {
            availability: self.availability.unwrap_or(Availability::Offline),
            on_call: !self.calls.is_empty(),
        }
    }

    pub(super) fn is_idle(&self) -> bool {
        self.live.is_none()
            && self.dropped.is_none()
            && self.calls.is_empty()
            && self.offer.is_none()
    }
}

/// How many of a tenant's agents are available and away, kept with every change (a
/// gauge update must not walk every agent under the hub's lock).
#[derive(Default, Clone, Copy)]
pub(super) struct Counts {
    pub(super) available: usize,
    pub(super) away: usize,
    /// The tenant's change counter: a monotonic stamp for `AgentState::idle_since`
    /// (an order is all that is needed, and wall time may step back).
    pub(super) tick: u64,
}

impl Counts {
    pub(super) fn slot(&mut self, a: Availability) -> Option<&mut usize> {
        match a {
            Availability::Available => Some(&mut self.available),
            Availability::Away => Some(&mut self.away),
            Availability::Offline => None,
        }
    }
}

/// Sets the agent's availability, keeping the tenant's counts.
pub(super) fn assign(counts: &mut Counts, a: &mut AgentState, to: Availability) {
    if to == Availability::Available && a.presence().availability != to {
        counts.tick += 1;
        a.idle_since = counts.tick;
    }
    if let Some(n) = counts.slot(a.presence().availability) {
        *n = n.saturating_sub(1);
    }
    if let Some(n) = counts.slot(to) {
        *n += 1;
    }
    a.availability = Some(to);
}

#[derive(Default)]
pub(super) struct TenantState {
    pub(super) counts: Counts,
    pub(super) agents: HashMap<String, AgentState>,
    /// Every open session of the tenant, by id.
    pub(super) peers: HashMap<u64, Peer>,
    /// Supervisor sessions: every availability change of the tenant is sent to them.
    pub(super) watchers: Vec<u64>,
}

impl TenantState {
    /// Queues `text` for session `id`. A session whose queue is full is closed `1008`
    /// and forgotten (its agent keeps its availability for the grace, as on any drop).
    pub(super) fn deliver(&mut self, id: u64, text: &Arc<str>) {
        let full = match self.peers.get(&id) {
            Some(p) => p.tx.try_send(text.clone()).is_err(),
            None => false,
        };
        if full {
            self.forget(id, close::TOO_SLOW, "too slow to read events");
        }
    }

    /// Closes session `id` and removes it from the tenant: peer, watcher, live session.
    pub(super) fn forget(&mut self, id: u64, code: u16, why: &'static str) {
        if let Some(p) = self.peers.remove(&id) {
            p.ctl.close(code, why);
        }
        self.watchers.retain(|w| *w != id);
        for a in self.agents.values_mut() {
            if a.live.as_ref().is_some_and(|l| l.id == id) {
                let Some(l) = a.live.take() else { continue };
                let availability = a.presence().availability;
                if availability != Availability::Offline {
                    a.dropped = Some(Dropped {
                        id: l.id,
                        resume_key: l.resume_key,
                        availability,
                    });
                }
            }
        }
    }
}

/// Sends the agent's new presence to its own live session and (unless `own_only`) to the
/// tenant's supervisors (a supervisor that is this agent's session hears it once).
pub(super) fn notify(
    t: &mut TenantState,
    agent_id: &str,
    p: &AgentPresence,
    reason: Reason,
    now_ms: u64,
    own_only: bool,
) {
    let own = t
        .agents
        .get(agent_id)
        .and_then(|a| a.live.as_ref())
        .map(|l| l.id);
    // Nobody to tell (an agent without a session, a tenant without supervisors: every
    // click2call and hangup of such agents): no event is built.
    if own.is_none() && (own_only || t.watchers.is_empty()) {
        return;
    }
    let ev = AvailabilityEvent {
        kind: "availability",
        agent_id,
        availability: p.availability,
        on_call: p.on_call,
        reason,
        at_ms: now_ms,
    };
    // Plain strings, an enum and numbers: serialising cannot fail.
    let text: Arc<str> = Arc::from(serde_json::to_string(&ev).unwrap_or_default());
    if let Some(id) = own {
        t.deliver(id, &text);
    }
    if !own_only {
        let watchers: Vec<u64> = t
            .watchers
            .iter()
            .copied()
            .filter(|w| Some(*w) != own)
            .collect();
        for id in watchers {
            t.deliver(id, &text);
        }
    }
}

/// Forgets an agent with nothing left to remember (no session, no grace, no call), so a
/// tenant's map holds only agents that are or were just present.
pub(super) fn prune(t: &mut TenantState, agent_id: &str) {
    if t.agents.get(agent_id).is_some_and(AgentState::is_idle) {
        t.agents.remove(agent_id);
    }
}
