//! Inbound calls: a customer calls one of a tenant's numbers (DIDs) and an available
//! agent takes the call with the caller's lead on screen.
//!
//! The SIP edge holds the carrier's INVITE (100, 180) and reports it
//! ([`InboundService::on_sip_inbound`]); [`ring`] stores the call (born RINGING) and
//! offers it to one agent at a time over the presence channel, longest idle first,
//! while [`lookup`] asks the CRM for the lead; the `incoming` event goes out when both
//! the offer and the lead are ready, or `lead_wait` after the offer without the lead
//! (the seed's 1500 ms race, resolved once, here). [`accept`] creates the room, answers
//! the agent like `/click2call` does, and has the edge forward the INVITE to LiveKit SIP
//! so LiveKit's dispatch rule puts the caller into that room (docs/inbound.md).
//!
//! Everything durable is in the call record (offers, accept, lead, the end); what is
//! here is only the live part: which task rings which call, and the edge's handle. A
//! call that ends unanswered for any reason gets `Effect::RefuseCaller`, which gives the
//! held INVITE its final response ([`InboundService::refuse_caller`]).

pub mod accept;
pub(crate) mod frames;
pub mod lookup;
mod metrics;
mod ring;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use c2c_callstate::CallRecord;
use c2c_sip::{InboundCall, InboundControl};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::app::App;
pub use accept::AcceptAnswer;
pub use metrics::InboundMetrics;

/// Held calls reported by the edge and not yet taken by the dispatcher. Beyond this the
/// edge's call is refused `503` at once rather than queued without bound.
const QUEUE: usize = 1024;
/// Inbound calls this process rings or connects at once (the edge's dialog table and
/// the tenants' concurrency caps bound them first; this bounds the maps here).
const MAX_CALLS: usize = 20_000;
/// Cancels that arrived before their call was registered (the dispatcher is a queue
/// behind the edge), remembered this many at most.
const EARLY_GONE: usize = 1024;
/// The latest stored calls' SIP Call-IDs, for [`InboundService::call_for_sip`].
const RECENT: usize = 256;

/// Why an accept or reject of an offer is refused. Mapped to HTTP in `api::errors`
/// and to presence `error` frames by [`InboundRefusal::code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundRefusal {
    #[error("the call is no longer offered (taken, ended, or the caller hung up)")]
    OfferGone,
    #[error("the call is offered to another agent")]
    NotOffered,
    #[error("LiveKit could not take the call: {0}")]
    Unavailable(String),
}

impl InboundRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            InboundRefusal::OfferGone => "offer_gone",
            InboundRefusal::NotOffered => "not_offered",
            InboundRefusal::Unavailable(_) => "livekit_unavailable",
        }
    }
}

/// What reaches a ringing call's task.
enum Signal {
    Accept {
        agent_id: String,
        reply: oneshot::Sender<Result<AcceptAnswer, InboundRefusal>>,
    },
    Reject {
        agent_id: String,
        reply: oneshot::Sender<Result<(), InboundRefusal>>,
    },
    /// The caller hung up while the INVITE was held (CANCEL).
    CallerGone,
    /// The record ended (timer, restart reconcile, any other path).
    Ended,
}

/// Why a stored call was not registered for ringing.
enum NotRegistered {
    CallerGone,
    Full,
}

/// A held call as the edge reported it, and when.
struct Held {
    call: InboundCall,
    at: Instant,
}

/// One inbound call of this process.
struct Entry {
    tenant: String,
    sip_call_id: String,
    /// The ringing task's inbox; closed once the call is accepted or over.
    signals: mpsc::Sender<Signal>,
    /// The accepted agent and its answer, so a repeated accept gets the same room.
    answer: Option<(String, AcceptAnswer)>,
}

#[derive(Default)]
struct Calls {
    by_id: HashMap<String, Entry>,
    by_sip: HashMap<String, String>,
    early_gone: VecDeque<String>,
    /// `(SIP Call-ID, call id)` of the latest stored calls, ended ones included.
    recent: VecDeque<(String, String)>,
}

/// The inbound calls of this process: one handle, kept by [`App`].
pub struct InboundService {
    calls: Mutex<Calls>,
    edge: OnceLock<InboundControl>,
    /// The edge's UDP address (set once, when the edge starts).
    edge_addr: OnceLock<SocketAddr>,
    queue: mpsc::Sender<Held>,
    inbox: Mutex<Option<mpsc::Receiver<Held>>>,
    http: reqwest::Client,
    metrics: InboundMetrics,
}

impl InboundService {
    /// `allow_private`: `webhooks.allow_private_targets` (lookups go to the CRM too, so
    /// they follow the same address rules).
    pub fn new(
        registry: &prometheus::Registry,
        allow_private: bool,
    ) -> Result<Self, crate::error::StartError> {
        let (queue, inbox) = mpsc::channel(QUEUE);
        Ok(Self {
            calls: Mutex::new(Calls::default()),
            edge: OnceLock::new(),
            edge_addr: OnceLock::new(),
            queue,
            inbox: Mutex::new(Some(inbox)),
            http: lookup::client(allow_private).map_err(crate::error::StartError::LookupClient)?,
            metrics: InboundMetrics::register(registry)?,
        })
    }

    pub fn metrics(&self) -> &InboundMetrics {
        &self.metrics
    }

    /// The running SIP edge's control handle (set once, when the edge starts).
    pub fn set_edge(&self, control: InboundControl) {
        if self.edge.set(control).is_err() {
            tracing::warn!("SIP edge control set twice; the first is kept");
        }
    }

    fn edge(&self) -> Option<&InboundControl> {
        self.edge.get()
    }

    /// The running SIP edge's bound UDP address (set once, when the edge starts).
    pub fn set_edge_addr(&self, addr: SocketAddr) {
        let _ = self.edge_addr.set(addr);
    }

    /// Where carriers send INVITEs to this process: the SIP edge's UDP address, `None`
    /// while no edge runs. An unspecified bind address reads as loopback.
    pub fn edge_addr(&self) -> Option<SocketAddr> {
        let mut a = *self.edge_addr.get()?;
        if a.ip().is_unspecified() {
            a.set_ip(match a {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        Some(a)
    }

    /// The call stored for the carrier INVITE with this SIP Call-ID, among the latest
    /// [`RECENT`] (so one the gateway ended at once, e.g. `no_agent`, is found too).
    pub fn call_for_sip(&self, sip_call_id: &str) -> Option<String> {
        let c = self.calls.lock();
        c.recent
            .iter()
            .rev()
            .find(|(sip, _)| sip == sip_call_id)
            .map(|(_, id)| id.clone())
    }

    /// Remembers that `call_id` was stored for `sip_call_id` ([`Self::call_for_sip`]).
    fn stored(&self, sip_call_id: &str, call_id: &str) {
        let mut c = self.calls.lock();
        if c.recent.len() >= RECENT {
            c.recent.pop_front();
        }
        c.recent
            .push_back((sip_call_id.to_owned(), call_id.to_owned()));
    }

    /// The edge holds a carrier INVITE for a DID (called on the SIP path: never blocks).
    pub fn on_sip_inbound(&self, call: InboundCall) {
        let sip = call.sip_call_id.clone();
        if let Err(e) = self.queue.try_send(Held {
            call,
            at: Instant::now(),
        }) {
            drop(e);
            self.metrics
                .refused
                .with_label_values(&["queue_full"])
                .inc();
            tracing::warn!("inbound queue full; call refused 503");
            self.reject_sip(sip, 503);
        }
    }

    /// The caller hung up while held (CANCEL; the edge answered it 487).
    pub fn on_sip_gone(&self, sip_call_id: &str) {
        let mut c = self.calls.lock();
        let tx = c
            .by_sip
            .get(sip_call_id)
            .and_then(|id| c.by_id.get(id))
            .map(|e| e.signals.clone());
        match tx {
            Some(tx) => {
                drop(c);
                // The task may be busy for a moment; a full inbox means it is already
                // ending the call, so nothing is lost by dropping this one.
                let _ = tx.try_send(Signal::CallerGone);
            }
            None => {
                if c.early_gone.len() >= EARLY_GONE {
                    c.early_gone.pop_front();
                }
                c.early_gone.push_back(sip_call_id.to_owned());
            }
        }
    }

    /// Whether `call_id` is an inbound call of this process: the edge's answer and end
    /// of such a call are always applied (it is the edge's own observation), whatever
    /// `answer_detection` says for outbound calls.
    pub fn is_inbound(&self, call_id: &str) -> bool {
        self.calls.lock().by_id.contains_key(call_id)
    }

    /// Registers a ringing call; refused when the caller already hung up (its cancel
    /// overtook the dispatcher) or this process rings [`MAX_CALLS`] already.
    fn register(
        &self,
        call_id: &str,
        tenant: &str,
        sip: &str,
        tx: mpsc::Sender<Signal>,
    ) -> Result<(), NotRegistered> {
        let mut c = self.calls.lock();
        if let Some(i) = c.early_gone.iter().position(|s| s == sip) {
            c.early_gone.remove(i);
            return Err(NotRegistered::CallerGone);
        }
        if c.by_id.len() >= MAX_CALLS {
            return Err(NotRegistered::Full);
        }
        c.by_sip.insert(sip.to_owned(), call_id.to_owned());
        c.by_id.insert(
            call_id.to_owned(),
            Entry {
                tenant: tenant.to_owned(),
                sip_call_id: sip.to_owned(),
                signals: tx,
                answer: None,
            },
        );
        self.metrics.ringing.set(c.by_id.len() as i64);
        Ok(())
    }

    fn remember_answer(&self, call_id: &str, agent_id: &str, a: &AcceptAnswer) {
        if let Some(e) = self.calls.lock().by_id.get_mut(call_id) {
            e.answer = Some((agent_id.to_owned(), a.clone()));
        }
    }

    /// The record ended: the ringing task (if any) stops, the call is forgotten.
    pub fn ended(&self, call_id: &str) {
        let mut c = self.calls.lock();
        if let Some(e) = c.by_id.remove(call_id) {
            c.by_sip.remove(&e.sip_call_id);
            let _ = e.signals.try_send(Signal::Ended);
        }
        self.metrics.ringing.set(c.by_id.len() as i64);
    }

    /// `Effect::RefuseCaller`: the held INVITE gets `480` (a no-op when the edge no
    /// longer holds it: forwarded, cancelled or already answered).
    pub fn refuse_caller(&self, rec: &CallRecord) {
        let sip = self
            .calls
            .lock()
            .by_id
            .get(&rec.call_id)
            .map(|e| e.sip_call_id.clone());
        if let Some(sip) = sip {
            self.reject_sip(sip, 480);
        }
    }

    fn reject_sip(&self, sip: String, code: u16) {
        let Some(edge) = self.edge().cloned() else {
            return;
        };
        tokio::spawn(async move {
            if let Err(e) = edge.reject(&sip, code).await {
                tracing::debug!(error = %e, code, "held INVITE not refused (no longer held)");
            }
        });
    }

    /// The agent accepts the offer of `call_id`: the answer `/click2call` would give.
    /// Accepting again (a retry after a lost answer) gets the same answer.
    pub async fn accept(
        &self,
        tenant: &str,
        agent_id: &str,
        call_id: &str,
    ) -> Result<AcceptAnswer, InboundRefusal> {
        if let Some(a) = self.accepted_answer(tenant, agent_id, call_id) {
            return Ok(a);
        }
        let (reply, answer) = oneshot::channel();
        self.signal(tenant, call_id, agent_id, |agent_id| Signal::Accept {
            agent_id,
            reply,
        })?;
        answer.await.map_err(|_| InboundRefusal::OfferGone)?
    }

    /// The agent turns the offer down: the next agent is offered the call.
    pub async fn reject(
        &self,
        tenant: &str,
        agent_id: &str,
        call_id: &str,
    ) -> Result<(), InboundRefusal> {
        let (reply, done) = oneshot::channel();
        self.signal(tenant, call_id, agent_id, |agent_id| Signal::Reject {
            agent_id,
            reply,
        })?;
        done.await.map_err(|_| InboundRefusal::OfferGone)?
    }

    /// Sends `make(agent)` to the ringing task of `call_id` (of `tenant` only: another
    /// tenant's call looks like no call).
    fn signal(
        &self,
        tenant: &str,
        call_id: &str,
        agent_id: &str,
        make: impl FnOnce(String) -> Signal,
    ) -> Result<(), InboundRefusal> {
        let c = self.calls.lock();
        let e = c
            .by_id
            .get(call_id)
            .filter(|e| e.tenant == tenant)
            .ok_or(InboundRefusal::OfferGone)?;
        if let Some((who, _)) = &e.answer {
            return Err(if who == agent_id {
                InboundRefusal::OfferGone
            } else {
                InboundRefusal::NotOffered
            });
        }
        e.signals
            .try_send(make(agent_id.to_owned()))
            .map_err(|_| InboundRefusal::OfferGone)
    }

    /// The answer already given to `agent_id` for `call_id`, if it accepted it.
    pub fn accepted_answer(
        &self,
        tenant: &str,
        agent_id: &str,
        call_id: &str,
    ) -> Option<AcceptAnswer> {
        let c = self.calls.lock();
        let e = c.by_id.get(call_id).filter(|e| e.tenant == tenant)?;
        e.answer
            .as_ref()
            .filter(|(who, _)| who == agent_id)
            .map(|(_, a)| a.clone())
    }

    /// Takes held calls off the queue and rings each in its own task, until shutdown.
    /// Started once the store serves.
    pub async fn run(app: Arc<App>) {
        let Some(mut inbox) = app.inbound().inbox.lock().take() else {
            return;
        };
        while let Some(held) = inbox.recv().await {
            let app = app.clone();
            tokio::spawn(ring::run(app, held.call, held.at));
        }
    }
}
