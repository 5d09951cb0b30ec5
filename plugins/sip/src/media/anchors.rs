//! The core's side of anchoring: each anchored call's two port pairs (one facing the
//! carrier, one facing LiveKit), reserved from the shared pool and bound at admission,
//! and the SDP rewrite of every message that passes with a body.
//!
//! The rule for a body from side X on its way to side Y: X's SDP says where X wants
//! audio (the relay sends there), and Y must send to the pair facing Y, so the body Y
//! gets names that pair. It holds for the INVITE's offer, the 18x/2xx answer, and
//! re-INVITEs, UPDATEs and their answers in either direction.
//!
//! Ports are bound here, under the core's lock, so that the SDP never names a port the
//! edge does not hold; a pair some other process holds is skipped. They go back to the
//! pool from the relay's task, once its sockets are closed ([`super::relays`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;

use c2c_media::{sdp, AudioTarget, PortPair, PortPool, SdpError, Side};
use parking_lot::Mutex;

use super::LegSockets;

/// Pairs tried per call before giving up when binds fail (ports taken by another
/// process): each failed pair goes to the back of the pool.
const BIND_TRIES: usize = 8;

/// An anchored call's two port pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Legs {
    /// Where the carrier sends (named in the SDP the carrier gets).
    pub carrier: PortPair,
    /// Where LiveKit sends (named in the SDP LiveKit gets).
    pub livekit: PortPair,
}

impl Legs {
    /// The pair `side` sends to.
    pub fn facing(&self, side: Side) -> PortPair {
        match side {
            Side::Carrier => self.carrier,
            Side::Livekit => self.livekit,
        }
    }
}

/// Why a call could not be anchored.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    /// Every pair is in use (or could not be bound): the call gets 503.
    #[error("media ports exhausted: {0}")]
    Exhausted(String),
    /// The offer cannot be anchored: the call gets 488.
    #[error(transparent)]
    Sdp(#[from] SdpError),
}

/// Anchored calls by SIP Call-ID, and where their ports come from.
pub struct Anchors {
    /// Written into the SDP both sides get.
    address: IpAddr,
    /// Where the sockets are bound (the SIP listen address; may be unspecified).
    bind: IpAddr,
    pool: Arc<Mutex<PortPool>>,
    calls: HashMap<String, Legs>,
}

impl Anchors {
    pub fn new(address: IpAddr, bind: IpAddr, pool: Arc<Mutex<PortPool>>) -> Self {
        Self {
            address,
            bind,
            pool,
            calls: HashMap::new(),
        }
    }

    /// Reserves and binds a call's two pairs.
    pub fn open(&mut self) -> Result<(Legs, LegSockets), AnchorError> {
        let carrier = self.bind_pair()?;
        let livekit = match self.bind_pair() {
            Ok(l) => l,
            Err(e) => {
                drop(carrier.1);
                self.pool.lock().release(carrier.0);
                return Err(e);
            }
        };
        let legs = Legs {
            carrier: carrier.0,
            livekit: livekit.0,
        };
        let sockets = LegSockets {
            carrier_rtp: carrier.1 .0,
            carrier_rtcp: carrier.1 .1,
            livekit_rtp: livekit.1 .0,
            livekit_rtcp: livekit.1 .1,
        };
        Ok((legs, sockets))
    }

    /// Gives back pairs of a call that was not started after all (its sockets closed).
    pub fn release(&self, legs: Legs) {
        let mut pool = self.pool.lock();
        pool.release(legs.carrier);
        pool.release(legs.livekit);
    }

    fn bind_pair(&mut self) -> Result<(PortPair, (UdpSocket, UdpSocket)), AnchorError> {
        let mut last = String::new();
        for _ in 0..BIND_TRIES {
            let pair = self
                .pool
                .lock()
                .allocate()
                .map_err(|e| AnchorError::Exhausted(e.to_string()))?;
            match (self.bind_one(pair.rtp), self.bind_one(pair.rtcp)) {
                (Ok(rtp), Ok(rtcp)) => return Ok((pair, (rtp, rtcp))),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(rtp = pair.rtp, error = %e, "media port pair taken by another process; skipped");
                    last = e.to_string();
                    self.pool.lock().release(pair);
                }
            }
        }
        Err(AnchorError::Exhausted(format!(
            "{BIND_TRIES} pairs in a row could not be bound: {last}"
        )))
    }

    fn bind_one(&self, port: u16) -> std::io::Result<UdpSocket> {
        let s = UdpSocket::bind(SocketAddr::new(self.bind, port))?;
        s.set_nonblocking(true)?;
        Ok(s)
    }

    /// Remembers an opened call's pairs under its SIP Call-ID.
    pub fn add(&mut self, key: String, legs: Legs) {
        self.calls.insert(key, legs);
    }

    pub fn forget(&mut self, key: &str) -> Option<Legs> {
        self.calls.remove(key)
    }

    /// `body` from `from` to the other side: where `from` wants audio, and the body
    /// the other side gets (naming the pair facing it). `None` when the call is not
    /// anchored.
    pub fn pass(
        &self,
        key: &str,
        from: Side,
        body: &str,
    ) -> Option<Result<(AudioTarget, String), SdpError>> {
        let legs = self.calls.get(key)?;
        Some(offer(body, self.address, legs.facing(other(from))))
    }

    pub fn pool(&self) -> Arc<Mutex<PortPool>> {
        self.pool.clone()
    }

    /// The address anchored SDP names.
    pub fn address(&self) -> IpAddr {
        self.address
    }
}

/// Where `body` wants audio, and `body` pointed at `address` / `pair`.
pub fn offer(
    body: &str,
    address: IpAddr,
    pair: PortPair,
) -> Result<(AudioTarget, String), SdpError> {
    let target = sdp::audio_target(body)?;
    let rewritten = sdp::rewrite(body, address, pair)?;
    Ok((target, rewritten))
}

pub fn other(side: Side) -> Side {
    match side {
        Side::Carrier => Side::Livekit,
        Side::Livekit => Side::Carrier,
    }
}
