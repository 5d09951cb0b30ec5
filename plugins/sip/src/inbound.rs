//! The gateway's control of held inbound calls: forward one to LiveKit SIP, or reject
//! it (also once forwarded, until LiveKit answered). See [`InboundControl`].

use std::sync::Arc;

use tokio::time::Instant;

use crate::edge::Inner;
use crate::flow::{Flow, Transport};
use crate::parse::{uri, Host};
use crate::proxy::{Action, Forward};

/// Forwards or rejects the inbound calls the edge holds (reported by
/// [`crate::SipObserver::on_inbound`]); rejects forwarded ones LiveKit has not answered. Cheap to clone; every clone drives the same
/// running edge. Get it with [`crate::SipEdgeHandle::inbound`] before awaiting
/// `stopped`. Each method locks the proxy core, computes what to send, releases the
/// lock, then sends: they never block on the network while holding it.
#[derive(Clone)]
pub struct InboundControl {
    pub(crate) inner: Arc<Inner>,
}

/// Where and how a held call goes to LiveKit SIP (see [`InboundControl::forward`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundForward {
    /// LiveKit SIP of the call's region: `sip:host:port[;transport=tcp]` (a host name is
    /// resolved first, at most 5 s).
    pub target: String,
    /// The room LiveKit must put the caller in (its Callee dispatch rule takes the To
    /// user as room name): 1-128 letters, digits, `-`, `_` or `.`.
    pub room: String,
    /// The c2c call id: sent as `X-C2C-Call-Id`, and what the call's later
    /// observations (`on_response`, `on_answer`, `on_end`) are correlated by.
    pub call_id: String,
    /// The call's tenant (sent as `X-C2C-Tenant`); must be the one that owns the number.
    pub tenant: String,
}

/// Why a forward or reject did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    /// No call this method can act on has this SIP Call-ID: unknown, or already
    /// cancelled by the caller, expired, rejected or finished; for `forward` also
    /// already forwarded, for `reject` also answered by LiveKit (or the edge stopped).
    #[error("no held inbound call with this SIP Call-ID (unknown, or already cancelled, expired, forwarded or rejected; or answered or ended after the forward)")]
    NotHeld,
    /// The forward (target, room, call id, tenant) or the reject code is unusable; the
    /// call stays held.
    #[error("inbound call not forwarded: {0}")]
    BadTarget(String),
    /// The edge cannot open one more connection to the target now; the call stays held.
    #[error("SIP edge at capacity: no connection to the LiveKit SIP target available")]
    Full,
    /// The call's trunk is anchored and its media could not be: the carrier got the
    /// final response (488 for an offer that cannot be anchored, 503 when the media
    /// port range is used up) and the call is over.
    #[error("inbound call refused: its media could not be anchored ({code} {reason})")]
    Media { code: u16, reason: &'static str },
}

impl InboundControl {
    /// Forwards held call `sip_call_id` to LiveKit SIP at `f.target`, into room
    /// `f.room`. From then on the edge proxies the call like an outbound one in the
    /// other direction: LiveKit's provisionals are absorbed (the carrier already rings),
    /// its final is relayed to the carrier with the To user put back to the number the
    /// carrier called, a 2xx is reported as `on_response` + `on_answer` (correlated by
    /// `f.call_id`), a failure as `on_end`; ACK, BYE and re-INVITEs flow through the
    /// edge both ways and a BYE of the answered call is `on_end`. A CANCEL from the
    /// carrier now goes to LiveKit (once it sent a provisional) and its 487 back.
    pub async fn forward(&self, sip_call_id: &str, f: InboundForward) -> Result<(), InboundError> {
        if *self.inner.shutdown.borrow() {
            return Err(InboundError::NotHeld);
        }
        let u = uri(f.target.trim()).map_err(|e| {
            InboundError::BadTarget(format!("target {:?} is not a SIP URI: {e}", f.target))
        })?;
        let transport = Transport::from_param(u.transport.as_deref()).ok_or_else(|| {
            InboundError::BadTarget(format!("target {:?}: only udp or tcp", f.target))
        })?;
        if u.user.is_some() {
            return Err(InboundError::BadTarget(format!(
                "target {:?} must be sip:host:port, without a user",
                f.target
            )));
        }
        let addr = match (u.socket_addr(), &u.host) {
            (Some(a), _) => a,
            (None, Host::Name(n)) => self
                .inner
                .resolver
                .resolve(n, u.port.unwrap_or(5060))
                .await
                .ok_or_else(|| {
                    InboundError::BadTarget(format!("target host {n:?} does not resolve"))
                })?,
            (None, Host::Ip(_)) => unreachable_ip(&f.target)?,
        };
        if transport == Transport::Tcp && !self.inner.tcp.can_reach(addr) {
            return Err(InboundError::Full);
        }
        let target = Flow {
            transport,
            addr,
            conn: None,
        };
        let fwd = Forward {
            uri: u,
            target,
            room: f.room,
            call_id: f.call_id,
            tenant: f.tenant,
        };
        let (result, refused) = {
            let mut core = self.inner.core.lock();
            let r = core.forward_inbound(Instant::now(), sip_call_id, fwd);
            // A refusal the core sent itself (anchoring failed) still has to go out.
            let refused = if r.is_err() {
                core.pending()
            } else {
                Vec::new()
            };
            (r, refused)
        };
        match result {
            Ok(actions) => {
                self.run(actions).await;
                Ok(())
            }
            Err(e) => {
                self.run(refused).await;
                Err(e)
            }
        }
    }

    /// Rejects inbound call `sip_call_id`, held or forwarded but not answered: the
    /// carrier gets `code` (300-699) at once with its usual reason phrase (480
    /// Temporarily Unavailable, 486 Busy Here, 503 Service Unavailable, 404 Not Found,
    /// 603 Decline, else a generic one for the class), retransmitted over UDP until the
    /// carrier's ACK (absorbed). No observation follows (the gateway decided it).
    ///
    /// The gateway calls it whenever an inbound call ends unanswered. Held, that is all
    /// (`c2c_sip_inbound_total{outcome="rejected"}`). Already forwarded with no final
    /// from LiveKit yet (LiveKit silent after 100/180, e.g. no dispatch rule, or the
    /// gateway's connect allowance over), the call is abandoned
    /// (`outcome="abandoned"`): besides the carrier's final, LiveKit gets a CANCEL on the
    /// forwarded branch (at once if it sent a provisional, else on its first one; timers
    /// B and C still bound the transaction). LiveKit's 487 is ACKed, not relayed; a 200
    /// that crosses the CANCEL is ACKed and ended with a BYE from the edge, so nothing
    /// stays up in the room. `NotHeld` when the call is unknown, answered or finished.
    pub async fn reject(&self, sip_call_id: &str, code: u16) -> Result<(), InboundError> {
        if *self.inner.shutdown.borrow() {
            return Err(InboundError::NotHeld);
        }
        let actions = self
            .inner
            .core
            .lock()
            .reject_inbound(Instant::now(), sip_call_id, code)?;
        self.run(actions).await;
        Ok(())
    }

    async fn run(&self, actions: Vec<Action>) {
        self.inner.execute(actions).await;
        // New timers (retransmissions, B, C): the timer loop recomputes its deadline.
        self.inner.wake.notify_one();
    }
}

/// `SipUri::socket_addr` is `Some` for every IP host: kept total without a panic.
fn unreachable_ip(target: &str) -> Result<std::net::SocketAddr, InboundError> {
    Err(InboundError::BadTarget(format!(
        "target {target:?} has no usable address"
    )))
}
