//! The simulator as a carrier: an INVITE for a DID to a SIP edge (a customer calling
//! one of a tenant's numbers), for tests and the console's Sandbox
//! ([`crate::SimHandle::dial_inbound`], `POST /sim/sip/dial-inbound`).
//!
//! The call is the same UAC as LiveKit SIP's outbound one ([`super::call`]: INVITE
//! retransmissions, ACK of 2xx and non-2xx, CANCEL, BYE), from its own UDP socket on
//! the simulator's SIP address — not the LiveKit SIP socket, because a proxy that
//! forwards the call back to this simulator keeps the Call-ID, and one socket would
//! take the forwarded INVITE for a message of the carrier's own call. Once answered
//! the call is held `hold`, then the carrier sends BYE; a final >= 300 is ACKed and
//! ends it. [`InboundDialRecord`] is what happened, kept for the last
//! [`MAX_DIALS`] calls.
//!
//! **Bounded:** at most [`MAX_DIALS`] calls remembered; a new one evicts the oldest
//! that has ended, and is refused while all of them are still going.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::oneshot;

use super::call::{self, CallEvents, Dial};
use super::Ua;
use crate::SimError;

/// Carrier calls remembered (and so running) at once.
pub const MAX_DIALS: usize = 64;
/// How long the carrier lets the call ring before it CANCELs: longer than any ring a
/// gateway may be configured for.
pub const RING_TIMEOUT: Duration = Duration::from_secs(320);
/// Longest hold after the answer.
pub const MAX_HOLD: Duration = Duration::from_secs(3600);
/// Longest DID or caller number (URI user part).
const MAX_USER: usize = 64;

/// A carrier call: its SIP Call-ID.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct InboundDialId(pub String);

impl InboundDialId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for InboundDialId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a carrier call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InboundDialState {
    /// INVITE sent, no 18x yet.
    Calling,
    /// An 18x arrived.
    Ringing,
    /// 200 OK (ACKed): held until `hold` passes or the far end hangs up.
    Answered,
    Ended,
}

/// One carrier call and how it went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InboundDialRecord {
    /// The SIP Call-ID (also what the edge reports the call by).
    pub id: InboundDialId,
    /// The SIP edge dialled.
    pub edge: SocketAddr,
    /// The number called (Request-URI and To user).
    pub did: String,
    /// The caller (From user).
    pub from: String,
    pub hold_ms: u64,
    pub state: InboundDialState,
    /// The INVITE's final response: 200 when answered, else the refusal's code.
    pub final_code: Option<u16>,
    /// How it ended: `hangup` (BYE, either side, after the answer), `rejected`
    /// (final >= 300), `cancelled` (the carrier hung up while ringing or answered:
    /// [`crate::SimHandle::hangup_inbound_dial`]), `ring_timeout`, `no_response`.
    pub ended_by: Option<String>,
    /// The reason phrase of a refusal.
    pub reason: Option<String>,
}

struct Entry {
    record: InboundDialRecord,
    /// Dropping it hangs the call up (CANCEL while ringing, BYE once answered).
    alive: Option<oneshot::Sender<()>>,
}

/// The carrier calls: a UDP UA of their own and the bounded log.
pub(crate) struct Carrier {
    ua: Arc<Ua>,
    dials: Arc<Mutex<VecDeque<Entry>>>,
    runtime: tokio::runtime::Handle,
}

/// What a dial asks for.
pub(crate) struct DialInbound<'a> {
    pub edge: SocketAddr,
    pub did: &'a str,
    pub from: &'a str,
    pub hold: Duration,
}

fn check_user(what: &str, s: &str) -> Result<(), SimError> {
    let ok = !s.is_empty()
        && s.len() <= MAX_USER
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-_.*#".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(SimError::Config(format!(
            "{what} must be 1-{MAX_USER} characters of 0-9, a-z, + - _ . * #"
        )))
    }
}

impl Carrier {
    /// `runtime`: where the call tasks run (the simulator's runtime, whoever calls).
    pub(crate) fn new(ua: Arc<Ua>, runtime: tokio::runtime::Handle) -> Self {
        Self {
            ua,
            dials: Arc::new(Mutex::new(VecDeque::new())),
            runtime,
        }
    }

    /// The carrier's own address (where the edge sees the INVITE come from).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.ua.local_addr()
    }

    /// Sends the INVITE and plays the call in a task; returns at once.
    pub(crate) fn dial(&self, d: &DialInbound<'_>) -> Result<InboundDialId, SimError> {
        check_user("did", d.did)?;
        check_user("from", d.from)?;
        if d.hold > MAX_HOLD {
            return Err(SimError::Config(format!(
                "hold must be at most {} s",
                MAX_HOLD.as_secs()
            )));
        }
        if d.edge.ip().is_unspecified() || d.edge.port() == 0 {
            return Err(SimError::Config(format!("edge {} is not dialable", d.edge)));
        }
        let mut dials = self.dials.lock();
        if dials.len() >= MAX_DIALS {
            let ended = dials
                .iter()
                .position(|e| e.record.state == InboundDialState::Ended)
                .ok_or(SimError::Limit("carrier calls"))?;
            dials.remove(ended);
        }
        let slot = self
            .ua
            .register()
            .map_err(|_| SimError::Limit("simulator SIP calls"))?;
        let id = InboundDialId(slot.call_id.clone());
        let (alive_tx, alive_rx) = oneshot::channel();
        dials.push_back(Entry {
            record: InboundDialRecord {
                id: id.clone(),
                edge: d.edge,
                did: d.did.to_owned(),
                from: d.from.to_owned(),
                hold_ms: u64::try_from(d.hold.as_millis()).unwrap_or(u64::MAX),
                state: InboundDialState::Calling,
                final_code: None,
                ended_by: None,
                reason: None,
            },
            alive: Some(alive_tx),
        });
        drop(dials);
        let dial = Dial {
            proxy: d.edge,
            call_to: d.did.to_owned(),
            from_user: d.from.to_owned(),
            headers: Vec::new(),
            ringing_timeout: RING_TIMEOUT,
            max_call_duration: d.hold,
        };
        let events = Events {
            dials: Arc::downgrade(&self.dials),
            id: id.clone(),
        };
        tracing::info!(%id, edge = %d.edge, did = %d.did, "livekit-sim: carrier call");
        self.runtime
            .spawn(call::run(self.ua.clone(), slot, dial, events, alive_rx));
        Ok(id)
    }

    pub(crate) fn get(&self, id: &str) -> Option<InboundDialRecord> {
        let dials = self.dials.lock();
        dials
            .iter()
            .find(|e| e.record.id.0 == id)
            .map(|e| e.record.clone())
    }

    /// Every remembered call, oldest first.
    pub(crate) fn list(&self) -> Vec<InboundDialRecord> {
        self.dials.lock().iter().map(|e| e.record.clone()).collect()
    }

    /// The carrier hangs up: CANCEL while ringing, BYE once answered. False for an
    /// unknown or ended call.
    pub(crate) fn hangup(&self, id: &str) -> bool {
        let mut dials = self.dials.lock();
        let Some(e) = dials
            .iter_mut()
            .find(|e| e.record.id.0 == id && e.record.state != InboundDialState::Ended)
        else {
            return false;
        };
        e.alive = None;
        e.record.state = InboundDialState::Ended;
        e.record.ended_by = Some("cancelled".to_owned());
        true
    }
}

/// Writes a call's events into its log entry (a no-op once it was evicted).
struct Events {
    dials: Weak<Mutex<VecDeque<Entry>>>,
    id: InboundDialId,
}

impl Events {
    fn update(&self, f: impl FnOnce(&mut InboundDialRecord)) {
        let Some(dials) = self.dials.upgrade() else {
            return;
        };
        let mut dials = dials.lock();
        if let Some(e) = dials.iter_mut().find(|e| e.record.id == self.id) {
            // A hangup asked for by the test has already ended it.
            if e.record.state != InboundDialState::Ended {
                f(&mut e.record);
            }
        }
    }

    fn end(&self, by: &str, code: Option<u16>, reason: Option<&str>) {
        self.update(|r| {
            r.state = InboundDialState::Ended;
            r.ended_by = Some(by.to_owned());
            if code.is_some() {
                r.final_code = code;
            }
            r.reason = reason.map(str::to_owned);
        });
    }
}

impl CallEvents for Events {
    fn ring(&self) {
        self.update(|r| r.state = InboundDialState::Ringing);
    }

    fn answer(&self) -> bool {
        let mut held = false;
        self.update(|r| {
            r.state = InboundDialState::Answered;
            r.final_code = Some(200);
            held = true;
        });
        held
    }

    fn hangup(&self) {
        self.end("hangup", None, None);
    }

    fn reject(&self, sip_code: u16, phrase: &str) {
        self.end("rejected", Some(sip_code), Some(phrase));
    }

    fn ring_timeout(&self) {
        self.end("ring_timeout", None, None);
    }

    fn no_response(&self, _provisional: usize) {
        self.end("no_response", None, None);
    }
}
