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

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{mpsc, Notify};

use crate::agent::Availability;
use crate::token::{random_id, PresenceClaims};

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

/// How the hub tells a socket task to close, outside the event queue.
#[derive(Default)]
pub struct SessionCtl {
    close: Mutex<Option<(u16, &'static str)>>,
    notify: Notify,
}

impl SessionCtl {
    /// Asks for the socket to close; the first request wins.
    pub fn close(&self, code: u16, why: &'static str) {
        self.close.lock().get_or_insert((code, why));
        // A permit is stored when nobody waits yet: `closed` cannot miss it.
        self.notify.notify_one();
    }

    /// Resolves once [`Self::close`] was called, with its code and reason.
    pub async fn closed(&self) -> (u16, &'static str) {
        loop {
            if let Some(c) = *self.close.lock() {
                return c;
            }
            self.notify.notified().await;
        }
    }
}

/// Why availability changed, as the `reason` of an `availability` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Set,
    SessionStart,
    Disconnected,
    Replaced,
    TelephonyDisabled,
    Removed,
    CallStarted,
    CallEnded,
}

/// An agent's presence as events and listings show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentPresence {
    pub availability: Availability,
    pub on_call: bool,
}

impl AgentPresence {
    const OFFLINE: Self = Self {
        availability: Availability::Offline,
        on_call: false,
    };
}

#[derive(Serialize)]
struct AvailabilityEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    agent_id: &'a str,
    availability: Availability,
    on_call: bool,
    reason: Reason,
    at_ms: u64,
}

#[derive(Serialize)]
struct TelephonyEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    agent_id: &'a str,
    telephony_enabled: bool,
    at_ms: u64,
}

/// A session the hub knows: what the socket task keeps to speak to the hub.
#[derive(Debug, Clone)]
pub struct SessionRef {
    id: u64,
    tenant: String,
    agent_id: Option<String>,
    supervisor: bool,
    /// Presented by a reconnect (`resume`) to keep the availability of this session.
    resume_key: String,
}

impl SessionRef {
    pub fn tenant(&self) -> &str {
        &self.tenant
    }
    pub fn agent_id(&self) -> Option<&str> {
        self.agent_id.as_deref()
    }
    pub fn supervisor(&self) -> bool {
        self.supervisor
    }
    pub fn resume_key(&self) -> &str {
        &self.resume_key
    }
}

/// What [`PresenceHub::open`] returns: the session, its agent's presence now, its event
/// queue and its close flag.
pub struct Opened {
    pub session: SessionRef,
    pub presence: AgentPresence,
    pub events: mpsc::Receiver<Arc<str>>,
    pub ctl: Arc<SessionCtl>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("this gateway holds its maximum of {0} presence sessions")]
    Full(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    #[error("the agent is not enabled for telephony: only offline is allowed")]
    AgentDisabled,
    #[error("a supervisor-only session has no availability to set")]
    NoAgent,
    #[error("this session was replaced by a newer one")]
    Replaced,
}

/// The agent's one call, or calls when the tenant allows several.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("agent is already on call {call_id}")]
pub struct Busy {
    pub call_id: String,
}

/// The hub's one handle on a session: its queue and close flag.
struct Peer {
    tx: mpsc::Sender<Arc<str>>,
    ctl: Arc<SessionCtl>,
}

struct Live {
    id: u64,
    resume_key: String,
}

struct Dropped {
    id: u64,
    resume_key: String,
    availability: Availability,
}

#[derive(Default)]
struct AgentState {
    availability: Option<Availability>,
    live: Option<Live>,
    dropped: Option<Dropped>,
    calls: Vec<String>,
}

impl AgentState {
    fn presence(&self) -> AgentPresence {
        AgentPresence {
            availability: self.availability.unwrap_or(Availability::Offline),
            on_call: !self.calls.is_empty(),
        }
    }

    fn is_idle(&self) -> bool {
        self.live.is_none() && self.dropped.is_none() && self.calls.is_empty()
    }
}

/// How many of a tenant's agents are available and away, kept with every change (a
/// gauge update must not walk every agent under the hub's lock).
#[derive(Default, Clone, Copy)]
struct Counts {
    available: usize,
    away: usize,
}

impl Counts {
    fn slot(&mut self, a: Availability) -> Option<&mut usize> {
        match a {
            Availability::Available => Some(&mut self.available),
            Availability::Away => Some(&mut self.away),
            Availability::Offline => None,
        }
    }
}

/// Sets the agent's availability, keeping the tenant's counts.
fn assign(counts: &mut Counts, a: &mut AgentState, to: Availability) {
    if let Some(n) = counts.slot(a.presence().availability) {
        *n = n.saturating_sub(1);
    }
    if let Some(n) = counts.slot(to) {
        *n += 1;
    }
    a.availability = Some(to);
}

#[derive(Default)]
struct TenantState {
    counts: Counts,
    agents: HashMap<String, AgentState>,
    /// Every open session of the tenant, by id.
    peers: HashMap<u64, Peer>,
    /// Supervisor sessions: every availability change of the tenant is sent to them.
    watchers: Vec<u64>,
}

impl TenantState {
    /// Queues `text` for session `id`. A session whose queue is full is closed `1008`
    /// and forgotten (its agent keeps its availability for the grace, as on any drop).
    fn deliver(&mut self, id: u64, text: &Arc<str>) {
        let full = match self.peers.get(&id) {
            Some(p) => p.tx.try_send(text.clone()).is_err(),
            None => false,
        };
        if full {
            self.forget(id, close::TOO_SLOW, "too slow to read events");
        }
    }

    /// Closes session `id` and removes it from the tenant: peer, watcher, live session.
    fn forget(&mut self, id: u64, code: u16, why: &'static str) {
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
                let p = a.presence();
                notify(t, agent_id, &p, Reason::CallEnded, now_ms, false);
            }
        }
        prune(t, agent_id);
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

/// Sends the agent's new presence to its own live session and (unless `own_only`) to the
/// tenant's supervisors (a supervisor that is this agent's session hears it once).
fn notify(
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
fn prune(t: &mut TenantState, agent_id: &str) {
    if t.agents.get(agent_id).is_some_and(AgentState::is_idle) {
        t.agents.remove(agent_id);
    }
}
