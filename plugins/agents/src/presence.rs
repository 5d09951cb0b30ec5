//! Live presence: which agents have a session, their availability, which calls they are
//! on, and who is told about changes. In memory, one lock: presence is per process and
//! starts empty at every start (every session reconnects and starts offline — the rule).
//!
//! The hub never touches a socket. [`PresenceHub::open`] makes each session a bounded
//! event queue and a [`SessionCtl`]; an event is serialised once and the same `Arc<str>`
//! is queued to every recipient. Closing a session never goes through its queue (a full
//! queue must not swallow a `replaced` close): it is a flag the socket task waits on. A
//! session whose queue is full (a reader that stopped reading) is closed `1008` and
//! forgotten by the hub at once, so fan-out never waits for a slow browser.

/// Frames one session may have queued; beyond this it is closed as too slow.
pub const SESSION_QUEUE: usize = 64;

/// Close codes of the presence socket (see docs/agents.md).
pub mod close {
    pub const GOING_AWAY: u16 = 1001;
    pub const TOO_SLOW: u16 = 1008;
    pub const BAD_FRAME: u16 = 4400;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const AUTH_TIMEOUT: u16 = 4408;
    pub const REPLACED: u16 = 4409;
    pub const REMOVED: u16 = 4410;
    pub const FLOOD: u16 = 4429;
}

mod offers;
mod session;
mod state;

pub use session::{
    AgentPresence, Busy, OpenError, Opened, Reason, SessionCtl, SessionRef, SetError,
};

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::agent::Availability;
use crate::token::{random_id, PresenceClaims};
use state::{assign, notify, prune, AgentState, Dropped, Live, Peer, TelephonyEvent, TenantState};

#[derive(Default)]
struct HubState {
    tenants: HashMap<String, TenantState>,
    next_id: u64,
    sessions: usize,
}

/// Live presence of every tenant's agents in this process.
#[derive(Default)]
pub struct PresenceHub {
    state: Mutex<HubState>,
    /// Woken when an agent may have become free to be offered a call (available, a call
    /// or an offer ended): inbound calls waiting for an agent wait on it, not on a timer.
    freed: tokio::sync::Notify,
}

impl PresenceHub {
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a session for `claims`. A session for an agent that already has one replaces
    /// it (the old one is sent `replaced` and closed `4409`). The agent starts offline
    /// unless `resume` names the session it reconnects for (dropped within the grace, or
    /// not yet noticed as dropped): then it keeps that session's availability.
    pub fn open(
        &self,
        claims: &PresenceClaims,
        resume: Option<&str>,
        max_sessions: usize,
        now_ms: u64,
    ) -> Result<Opened, OpenError> {
        let mut st = self.state.lock();
        if st.sessions >= max_sessions {
            return Err(OpenError::Full(max_sessions));
        }
        st.sessions += 1;
        st.next_id += 1;
        let id = st.next_id;
        let session = SessionRef {
            id,
            tenant: claims.tenant.clone(),
            agent_id: claims.agent_id.clone(),
            supervisor: claims.supervisor,
            resume_key: random_id(),
        };
        let (tx, events) = mpsc::channel(SESSION_QUEUE);
        let ctl = Arc::new(SessionCtl::default());
        let t = st.tenants.entry(claims.tenant.clone()).or_default();
        t.peers.insert(
            id,
            Peer {
                tx,
                ctl: ctl.clone(),
            },
        );
        if session.supervisor {
            t.watchers.push(id);
        }
        let presence = match &session.agent_id {
            None => AgentPresence::OFFLINE,
            Some(agent_id) => {
                let a = t.agents.entry(agent_id.clone()).or_default();
                let resumed = resume.and_then(|r| {
                    let live = a.live.as_ref().filter(|l| l.resume_key == r);
                    let dropped = a.dropped.as_ref().filter(|d| d.resume_key == r);
                    live.map(|_| a.presence().availability)
                        .or(dropped.map(|d| d.availability))
                });
                let old = a.live.take().map(|l| l.id);
                a.dropped = None;
                a.live = Some(Live {
                    id,
                    resume_key: session.resume_key.clone(),
                });
                let next = resumed.unwrap_or(Availability::Offline);
                let changed = a.presence().availability != next;
                assign(&mut t.counts, a, next);
                let p = a.presence();
                let reason = match old {
                    Some(old) => {
                        t.deliver(old, &Arc::from(r#"{"type":"replaced"}"#));
                        t.forget(old, close::REPLACED, "replaced");
                        Reason::Replaced
                    }
                    None => Reason::SessionStart,
                };
                if changed {
                    notify(t, agent_id, &p, reason, now_ms, false);
                }
                p
            }
        };
        Ok(Opened {
            session,
            presence,
            events,
            ctl,
        })
    }

    /// The socket of `s` is gone. Returns true when the agent was left available or away
    /// and a grace timer must run ([`Self::expire`]); false when nothing more is due.
    pub fn close(&self, s: &SessionRef, grace_ms: u64, now_ms: u64) -> bool {
        let mut st = self.state.lock();
        st.sessions = st.sessions.saturating_sub(1);
        let Some(t) = st.tenants.get_mut(&s.tenant) else {
            return false;
        };
        t.peers.remove(&s.id);
        t.watchers.retain(|w| *w != s.id);
        let mut grace = false;
        if let Some(agent_id) = &s.agent_id {
            if let Some(a) = t.agents.get_mut(agent_id) {
                // Forgotten by the hub already (its queue was full): its grace is due.
                grace = a.dropped.as_ref().is_some_and(|d| d.id == s.id);
                if a.live.as_ref().is_some_and(|l| l.id == s.id) {
                    a.live = None;
                    let availability = a.presence().availability;
                    if availability == Availability::Offline {
                        // Nothing to keep for a reconnect.
                    } else if grace_ms > 0 {
                        a.dropped = Some(Dropped {
                            id: s.id,
                            resume_key: s.resume_key.clone(),
                            availability,
                        });
                        grace = true;
                    } else {
                        assign(&mut t.counts, a, Availability::Offline);
                        let p = a.presence();
                        notify(t, agent_id, &p, Reason::Disconnected, now_ms, false);
                    }
                }
            }
            prune(t, agent_id);
        }
        grace
    }

    /// The grace of a dropped session ran out: unless the agent reconnected, it is
    /// offline now.
    pub fn expire(&self, s: &SessionRef, now_ms: u64) {
        let mut st = self.state.lock();
        let Some(agent_id) = &s.agent_id else { return };
        let Some(t) = st.tenants.get_mut(&s.tenant) else {
            return;
        };
        if let Some(a) = t.agents.get_mut(agent_id) {
            if a.dropped.as_ref().is_some_and(|d| d.id == s.id) {
                a.dropped = None;
                assign(&mut t.counts, a, Availability::Offline);
                let p = a.presence();
                notify(t, agent_id, &p, Reason::Disconnected, now_ms, false);
            }
        }
        prune(t, agent_id);
    }

    /// The agent of `s` asks for `to`. `telephony_enabled` is the registry's word now.
    /// The agent's own session always gets the resulting event (its confirmation).
    pub fn set(
        &self,
        s: &SessionRef,
        to: Availability,
        telephony_enabled: bool,
        now_ms: u64,
    ) -> Result<(), SetError> {
        let agent_id = s.agent_id.as_deref().ok_or(SetError::NoAgent)?;
        if !telephony_enabled && to != Availability::Offline {
            return Err(SetError::AgentDisabled);
        }
        let mut st = self.state.lock();
        let t = st.tenants.get_mut(&s.tenant).ok_or(SetError::Replaced)?;
        let a = t.agents.get_mut(agent_id).ok_or(SetError::Replaced)?;
        if a.live.as_ref().is_none_or(|l| l.id != s.id) {
            return Err(SetError::Replaced);
        }
        let changed = a.availability != Some(to);
        assign(&mut t.counts, a, to);
        let p = a.presence();
        notify(t, agent_id, &p, Reason::Set, now_ms, !changed);
        drop(st);
        if to == Availability::Available {
            self.freed.notify_waiters();
        }
        Ok(())
    }

    /// The registry turned telephony on or off: the agent's session and the tenant's
    /// supervisors hear it, and an agent turned off is offline at once.
    pub fn telephony_changed(&self, tenant: &str, agent_id: &str, enabled: bool, now_ms: u64) {
        if !enabled {
            self.force_offline(tenant, agent_id, Reason::TelephonyDisabled, now_ms);
        }
        let mut st = self.state.lock();
        let Some(t) = st.tenants.get_mut(tenant) else {
            return;
        };
        let ev = TelephonyEvent {
            kind: "telephony",
            agent_id,
            telephony_enabled: enabled,
            at_ms: now_ms,
        };
        let text: Arc<str> = Arc::from(serde_json::to_string(&ev).unwrap_or_default());
        let own = t
            .agents
            .get(agent_id)
            .and_then(|a| a.live.as_ref())
            .map(|l| l.id);
        let targets: Vec<u64> = own
            .into_iter()
            .chain(t.watchers.iter().copied().filter(|w| Some(*w) != own))
            .collect();
        for id in targets {
            t.deliver(id, &text);
        }
    }

    /// The agent was removed from the registry: offline, and its session closed `4410`.
    pub fn removed(&self, tenant: &str, agent_id: &str, now_ms: u64) {
        self.force_offline(tenant, agent_id, Reason::Removed, now_ms);
        let mut st = self.state.lock();
        let Some(t) = st.tenants.get_mut(tenant) else {
            return;
        };
        let live = t
            .agents
            .get_mut(agent_id)
            .and_then(|a| {
                a.dropped = None;
                a.live.take()
            })
            .map(|l| l.id);
        if let Some(id) = live {
            t.forget(id, close::REMOVED, "agent removed");
        }
        prune(t, agent_id);
    }

    fn force_offline(&self, tenant: &str, agent_id: &str, reason: Reason, now_ms: u64) {
        let mut st = self.state.lock();
        let Some(t) = st.tenants.get_mut(tenant) else {
            return;
        };
        if let Some(a) = t.agents.get_mut(agent_id) {
            a.dropped = None;
            if a.presence().availability != Availability::Offline {
                assign(&mut t.counts, a, Availability::Offline);
                let p = a.presence();
                notify(t, agent_id, &p, reason, now_ms, false);
            }
        }
        prune(t, agent_id);
    }

    /// The agent's call `call_id` connects: it is on a call until [`Self::release_call`].
    /// Refused when the agent is on another call and `allow_concurrent` is false;
    /// claiming the same call again is a no-op.
    pub fn claim_call(
        &self,
        tenant: &str,
        agent_id: &str,
        call_id: &str,
        allow_concurrent: bool,
        now_ms: u64,
    ) -> Result<(), Busy> {
        let mut st = self.state.lock();
        // Look up before inserting: the keys are copied only the first time.
        if !st.tenants.contains_key(tenant) {
            st.tenants.insert(tenant.to_owned(), TenantState::default());
        }
        let Some(t) = st.tenants.get_mut(tenant) else {
            return Ok(());
        };
        if !t.agents.contains_key(agent_id) {
            t.agents.insert(agent_id.to_owned(), AgentState::default());
        }
        let Some(a) = t.agents.get_mut(agent_id) else {
            return Ok(());
        };
        if a.calls.iter().any(|c| c == call_id) {
            return Ok(());
        }
        if let Some(other) = a.calls.first().filter(|_| !allow_concurrent) {
            return Err(Busy {
                call_id: other.clone(),
            });
        }
        a.calls.push(call_id.to_owned());
        let p = a.presence();
        if a.calls.len() == 1 {
            notify(t, agent_id, &p, Reason::CallStarted, now_ms, false);
        }
        Ok(())
    }

    /// The call ended (or never dialled): the agent is free of it.
    pub fn release_call(&self, tenant: &str, agent_id: &str, call_id: &str, now_ms: u64) {
        let mut st = self.state.lock();
        let Some(t) = st.tenants.get_mut(tenant) else {
            return;
        };
        if let Some(a) = t.agents.get_mut(agent_id) {
            let before = a.calls.len();
            a.calls.retain(|c| c != call_id);
            if before == 1 && a.calls.is_empty() {
                t.counts.tick += 1;
                a.idle_since = t.counts.tick;
                let p = a.presence();
                notify(t, agent_id, &p, Reason::CallEnded, now_ms, false);
            }
        }
        prune(t, agent_id);
        drop(st);
        self.freed.notify_waiters();
    }

    /// At start: the connected open calls of the store, `(tenant, agent, call)`. Only
    /// adds: a `/connect` that claimed while the store was being read keeps its claim.
    pub fn restore_calls<'a>(&self, calls: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>) {
        let mut st = self.state.lock();
        for (tenant, agent, call) in calls {
            let a = st
                .tenants
                .entry(tenant.to_owned())
                .or_default()
                .agents
                .entry(agent.to_owned())
                .or_default();
            if !a.calls.iter().any(|c| c == call) {
                a.calls.push(call.to_owned());
            }
        }
    }

    /// The agent's presence now (offline and free when it has none).
    pub fn presence(&self, tenant: &str, agent_id: &str) -> AgentPresence {
        let st = self.state.lock();
        st.tenants
            .get(tenant)
            .and_then(|t| t.agents.get(agent_id))
            .map_or(AgentPresence::OFFLINE, AgentState::presence)
    }

    /// The call the agent is on other than `except`, if any (for `409 agent_busy`).
    pub fn current_call(
        &self,
        tenant: &str,
        agent_id: &str,
        except: Option<&str>,
    ) -> Option<String> {
        let st = self.state.lock();
        st.tenants
            .get(tenant)
            .and_then(|t| t.agents.get(agent_id))
            .and_then(|a| a.calls.iter().find(|c| Some(c.as_str()) != except).cloned())
    }

    /// How many of the tenant's agents are available and away (the rest are offline).
    pub fn counts(&self, tenant: &str) -> (usize, usize) {
        let st = self.state.lock();
        let Some(t) = st.tenants.get(tenant) else {
            return (0, 0);
        };
        t.agents
            .values()
            .fold((0, 0), |(av, aw), a| match a.presence().availability {
                Availability::Available => (av + 1, aw),
                Availability::Away => (av, aw + 1),
                Availability::Offline => (av, aw),
            })
    }

    /// Open sessions in this process.
    pub fn sessions(&self) -> usize {
        self.state.lock().sessions
    }

    /// Shutdown: every session is closed `1001 going away`.
    pub fn close_all(&self) {
        let st = self.state.lock();
        for p in st.tenants.values().flat_map(|t| t.peers.values()) {
            p.ctl
                .close(close::GOING_AWAY, "the gateway is shutting down");
        }
    }
}
