//! Calls the edge has let through, by SIP Call-ID: needed to route in-dialog requests
//! (only for known calls: no open relay), to undo the user rewrite on what flows back
//! (dial prefix outbound, room inbound), to correlate BYEs with `X-C2C-Call-Id`, and to
//! count concurrent calls per tenant (held inbound calls included). Bounded in size and
//! in age.
//!
//! The two sides are named by the initial INVITE: the caller (`upstream`, whose From
//! tag is `caller_tag`) and the callee it was forwarded to. Outbound the caller is
//! LiveKit and the callee the carrier; inbound the other way round.

use std::collections::HashMap;

use tokio::time::Instant;

use crate::flow::Flow;
use crate::txn::TxnId;

#[derive(Debug, Clone)]
pub struct Dialog {
    pub c2c_call_id: Option<String>,
    pub tenant: String,
    /// The carrier trunk's label.
    pub trunk: String,
    /// An inbound call: the carrier is the caller (`upstream`), LiveKit the callee.
    pub inbound: bool,
    /// From tag of the initial INVITE (the caller's side).
    pub caller_tag: String,
    /// The caller, as the INVITE arrived: LiveKit outbound, the carrier inbound.
    pub upstream: Flow,
    /// The callee, as we sent the INVITE: the carrier outbound, LiveKit inbound (the
    /// carrier's own flow while an inbound call is held and goes nowhere yet).
    pub callee: Flow,
    /// Request-URI/To user as the caller sent it, and as the callee got it: LiveKit's
    /// number and `prefix + number` outbound; the DID as the carrier sent it and the
    /// room inbound.
    pub orig_user: String,
    pub dialed_user: String,
    pub answered: bool,
    pub ended: bool,
    pub expires: Instant,
    /// Inbound, once forwarded to LiveKit: the INVITE's transaction (what a reject by
    /// the gateway before LiveKit's answer ends).
    pub forwarded: Option<TxnId>,
    /// Its media is anchored: when the dialog goes, so does its relay.
    pub media: bool,
    /// Its relay heard dead air: the gateway ends the call, and the dialog's expiry was
    /// brought forward in case no BYE ever comes (`Proxy::dead_air`).
    pub dead_air: bool,
}

pub struct DialogTable {
    map: HashMap<String, Dialog>,
    per_tenant: HashMap<String, u32>,
    max: usize,
    /// Anchored dialogs removed since [`Self::take_unanchored`] last ran: however a
    /// dialog goes (BYE, final, expiry), its relay is stopped.
    unanchored: Vec<String>,
}

impl DialogTable {
    pub fn new(max: usize) -> Self {
        Self {
            map: HashMap::new(),
            per_tenant: HashMap::new(),
            max,
            unanchored: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_full(&self) -> bool {
        self.map.len() >= self.max
    }

    pub fn active(&self, tenant: &str) -> u32 {
        self.per_tenant.get(tenant).copied().unwrap_or(0)
    }

    pub fn contains(&self, call_id: &str) -> bool {
        self.map.contains_key(call_id)
    }

    /// Inserts a new call; `false` if full or the Call-ID is taken.
    pub fn insert(&mut self, call_id: String, d: Dialog) -> bool {
        if self.is_full() || self.map.contains_key(&call_id) {
            return false;
        }
        *self.per_tenant.entry(d.tenant.clone()).or_default() += 1;
        self.map.insert(call_id, d);
        true
    }

    pub fn get(&self, call_id: &str) -> Option<&Dialog> {
        self.map.get(call_id)
    }

    /// Whether `ip` is either side of call `call_id`.
    pub fn is_peer(&self, call_id: &str, ip: std::net::IpAddr) -> bool {
        self.map
            .get(call_id)
            .is_some_and(|d| d.upstream.addr.ip() == ip || d.callee.addr.ip() == ip)
    }

    pub fn get_mut(&mut self, call_id: &str) -> Option<&mut Dialog> {
        self.map.get_mut(call_id)
    }

    pub fn remove(&mut self, call_id: &str) -> Option<Dialog> {
        let d = self.map.remove(call_id)?;
        if d.media {
            self.unanchored.push(call_id.to_string());
        }
        if let Some(n) = self.per_tenant.get_mut(&d.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_tenant.remove(&d.tenant);
            }
        }
        Some(d)
    }

    /// The SIP Call-IDs of anchored dialogs removed since the last call.
    pub fn take_unanchored(&mut self) -> Vec<String> {
        std::mem::take(&mut self.unanchored)
    }

    /// Removes and returns calls past their expiry.
    pub fn sweep(&mut self, now: Instant) -> Vec<(String, Dialog)> {
        let expired: Vec<String> = self
            .map
            .iter()
            .filter(|(_, d)| d.expires <= now)
            .map(|(k, _)| k.clone())
            .collect();
        expired
            .into_iter()
            .filter_map(|k| self.remove(&k).map(|d| (k, d)))
            .collect()
    }
}
