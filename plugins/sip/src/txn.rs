//! The bounded transaction table and its timers.
//!
//! One [`Txn`] pairs the server transaction toward the sender (upstream) with the
//! client transaction toward the next hop (downstream); the edge never forks. Timers
//! live in a min-heap with lazy invalidation: an entry fires only if the transaction
//! still holds the same deadline for that timer.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::flow::Flow;
use crate::response::ReplyBase;

pub type TxnId = u64;

/// A transaction's timers (RFC 3261 §17, proxy timer C), not the call core's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TxnTimer {
    /// A/E: retransmit our request downstream (UDP).
    Retransmit,
    /// B/F: no final response downstream.
    Timeout,
    /// Proxy timer C for INVITE.
    C,
    /// G: retransmit our non-2xx final upstream (UDP) until ACK.
    FinalRetransmit,
    /// Retransmit our CANCEL downstream (UDP).
    CancelRetransmit,
    /// Forget the transaction.
    Expire,
    /// Inbound: re-send our 180 upstream (RFC 3261 §13.3.1.1: a provisional at least
    /// every minute) until a final response went out.
    Ring,
    /// Inbound: the hold of a call nobody forwarded or rejected ends (480).
    Hold,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    Calling,
    Proceeding,
    /// Final non-2xx received (INVITE) or any final (non-INVITE).
    Completed,
    /// 2xx to INVITE received: further 2xx are forwarded (RFC 6026).
    Accepted,
}

/// What our own ACK / CANCEL for the forwarded request copy.
#[derive(Debug, Clone)]
pub struct DownBase {
    pub ruri: String,
    pub via: String,
    pub routes: Vec<String>,
    pub from: String,
    pub to: String,
    pub call_id: String,
    pub cseq: u32,
}

/// Correlation and timing of a call's initial INVITE.
#[derive(Debug, Clone)]
pub struct CallCtx {
    pub call_id: Option<String>,
    pub trunk: String,
    pub started: Instant,
    pub saw_18x: bool,
    /// An inbound call (carrier upstream, LiveKit downstream once forwarded):
    /// LiveKit's provisionals are absorbed, and its timing is not carrier timing.
    pub inbound: bool,
}

/// A user-part swap to apply to responses relayed upstream: (header, from, to).
pub type Swap = (&'static str, String, String);

#[derive(Debug, Clone)]
pub struct Txn {
    /// Method of the proxied request.
    pub method: String,
    pub invite: bool,
    pub server_key: String,
    pub upstream: Flow,
    pub reply: ReplyBase,
    pub local_tag: String,
    /// Last response sent upstream (resent when the request is retransmitted).
    pub last_response: Option<Bytes>,
    pub final_sent: Option<u16>,
    pub branch: String,
    pub target: Flow,
    pub request: Bytes,
    pub state: ClientState,
    pub base: DownBase,
    pub interval: Duration,
    pub cancel: CancelState,
    pub call: Option<CallCtx>,
    /// Dialog (Call-ID) this transaction belongs to.
    pub dialog: Option<String>,
    pub swap: Option<Swap>,
    /// An anchored call's request: the side it came from (its answer's SDP, from the
    /// other side, is rewritten toward this one).
    pub media_from: Option<crate::media::Side>,
    /// The offer of an anchored in-dialog request (re-INVITE, UPDATE), applied to the
    /// relay only when a 2xx accepts it: a refused offer leaves the session as it was.
    pub media_offer: Option<crate::media::AudioTarget>,
    /// Our own request, not a relayed one (the BYE to a LiveKit 200 that came after
    /// the carrier had its final): nothing goes upstream, its responses are absorbed.
    pub local: bool,
    timers: HashMap<TxnTimer, Instant>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelState {
    None,
    /// CANCEL requested before any provisional: send on the first one.
    Pending,
    Sent {
        request: Bytes,
        interval: Duration,
    },
    Done,
}

/// What a new transaction starts from: its server side (the request as received and
/// where responses go) and its client side (our request and where it goes).
pub struct NewTxn<'a> {
    /// Method of the proxied request.
    pub method: &'a str,
    pub server_key: String,
    pub upstream: Flow,
    pub reply: ReplyBase,
    pub local_tag: String,
    pub branch: String,
    pub target: Flow,
    pub request: Bytes,
    pub base: DownBase,
    /// Timer T1: the first retransmission interval.
    pub t1: Duration,
}

impl Txn {
    pub fn new(n: NewTxn<'_>) -> Self {
        Self {
            method: n.method.to_string(),
            invite: n.method == "INVITE",
            server_key: n.server_key,
            upstream: n.upstream,
            reply: n.reply,
            local_tag: n.local_tag,
            last_response: None,
            final_sent: None,
            branch: n.branch,
            target: n.target,
            request: n.request,
            state: ClientState::Calling,
            base: n.base,
            interval: n.t1,
            cancel: CancelState::None,
            call: None,
            dialog: None,
            swap: None,
            media_from: None,
            media_offer: None,
            local: false,
            timers: HashMap::new(),
        }
    }
}

/// The table: transactions by id, by server key, by our branch; plus the timer heap.
pub struct TxnTable {
    txns: HashMap<TxnId, Txn>,
    by_server: HashMap<String, TxnId>,
    by_branch: HashMap<String, TxnId>,
    heap: BinaryHeap<Reverse<(Instant, TxnId, TxnTimer)>>,
    next_id: TxnId,
    max: usize,
}

impl TxnTable {
    pub fn new(max: usize) -> Self {
        Self {
            txns: HashMap::new(),
            by_server: HashMap::new(),
            by_branch: HashMap::new(),
            heap: BinaryHeap::new(),
            next_id: 1,
            max,
        }
    }

    pub fn len(&self) -> usize {
        self.txns.len()
    }

    pub fn is_full(&self) -> bool {
        self.txns.len() >= self.max
    }

    /// Inserts; `None` when the table is full.
    pub fn insert(&mut self, t: Txn) -> Option<TxnId> {
        if self.is_full() {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.by_server.insert(t.server_key.clone(), id);
        self.by_branch.insert(t.branch.clone(), id);
        self.txns.insert(id, t);
        Some(id)
    }

    pub fn get(&self, id: TxnId) -> Option<&Txn> {
        self.txns.get(&id)
    }

    pub fn get_mut(&mut self, id: TxnId) -> Option<&mut Txn> {
        self.txns.get_mut(&id)
    }

    pub fn by_server(&self, key: &str) -> Option<TxnId> {
        self.by_server.get(key).copied()
    }

    pub fn by_branch(&self, branch: &str) -> Option<TxnId> {
        self.by_branch.get(branch).copied()
    }

    /// Gives transaction `id` a new client branch (a held inbound INVITE when it is
    /// forwarded): responses are matched by the new one only.
    pub fn rekey_branch(&mut self, id: TxnId, branch: String) {
        let Some(t) = self.txns.get_mut(&id) else {
            return;
        };
        if self.by_branch.get(&t.branch) == Some(&id) {
            self.by_branch.remove(&t.branch);
        }
        self.by_branch.insert(branch.clone(), id);
        t.branch = branch;
    }

    pub fn remove(&mut self, id: TxnId) -> Option<Txn> {
        let t = self.txns.remove(&id)?;
        if self.by_server.get(&t.server_key) == Some(&id) {
            self.by_server.remove(&t.server_key);
        }
        if self.by_branch.get(&t.branch) == Some(&id) {
            self.by_branch.remove(&t.branch);
        }
        Some(t)
    }

    /// Sets (or replaces) a timer.
    pub fn arm(&mut self, id: TxnId, k: TxnTimer, at: Instant) {
        if let Some(t) = self.txns.get_mut(&id) {
            t.timers.insert(k, at);
            self.heap.push(Reverse((at, id, k)));
        }
        if self.heap.len() > 8 * self.txns.len() + 1024 {
            self.compact();
        }
    }

    pub fn disarm(&mut self, id: TxnId, k: TxnTimer) {
        if let Some(t) = self.txns.get_mut(&id) {
            t.timers.remove(&k);
        }
    }

    /// Timers due at `now`, in deadline order; each is disarmed as it is returned.
    pub fn pop_due(&mut self, now: Instant) -> Vec<(TxnId, TxnTimer)> {
        let mut out = Vec::new();
        while let Some(Reverse((at, id, k))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            if let Some(t) = self.txns.get_mut(&id) {
                if t.timers.get(&k) == Some(&at) {
                    t.timers.remove(&k);
                    out.push((id, k));
                }
            }
        }
        out
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    fn compact(&mut self) {
        let mut heap = BinaryHeap::with_capacity(self.txns.len() * 2);
        for (id, t) in &self.txns {
            for (k, at) in &t.timers {
                heap.push(Reverse((*at, *id, *k)));
            }
        }
        self.heap = heap;
    }
}
