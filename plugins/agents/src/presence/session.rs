//! What the hub hands out and answers with: sessions, their close flag, presence as
//! events show it, and the hub's errors.

use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{mpsc, Notify};

use crate::agent::Availability;

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

    /// The close asked for, if any.
    pub fn requested(&self) -> Option<(u16, &'static str)> {
        *self.close.lock()
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
    pub(super) const OFFLINE: Self = Self {
        availability: Availability::Offline,
        on_call: false,
    };
}

/// A session the hub knows: what the socket task keeps to speak to the hub.
#[derive(Debug, Clone)]
pub struct SessionRef {
    pub(super) id: u64,
    pub(super) tenant: String,
    pub(super) agent_id: Option<String>,
    pub(super) supervisor: bool,
    /// Presented by a reconnect (`resume`) to keep the availability of this session.
    pub(super) resume_key: String,
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
