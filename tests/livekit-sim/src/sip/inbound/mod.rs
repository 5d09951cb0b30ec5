//! Inbound calls as LiveKit SIP answers them (`livekit/sip pkg/sip/inbound.go`,
//! summarised in `docs/inbound-design.md` §1): an INVITE on the simulator's SIP
//! socket gets `100 Processing`, is matched to a trunk (To user, source address,
//! From user), gets `180 Ringing` (repeated every `ring_interval`, To tag = the
//! call's `SCL_` id), is dispatched by a rule into a room where a SIP participant
//! joins (`sip.callStatus = ringing`), and is answered `200 OK` once another
//! participant publishes audio there ([`seat`]); [`call`] plays the rest (CANCEL,
//! BYE both ways, ring timeout, room deleted, retransmissions).
//!
//! Differences from LiveKit, on purpose: no media and no digest challenge (a trunk
//! with `auth_username` is matched as if the caller had authenticated); a rule with a
//! PIN is answered `501` (no DTMF prompt); every final >= 300 is replayed to a retry
//! with the same Call-ID and From tag for 60 s (LiveKit caches only the rejections
//! sent before the call starts); `sip.callStatus = active` is set with the 200
//! (LiveKit waits for the first RTP packet, at most 1 s).

mod call;
mod events;
mod log;
mod seat;
mod uas;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use livekit_protocol as proto;
use parking_lot::Mutex;

use super::message::{response_to, tag_of};
use super::{Inbound, Ua, USER_AGENT};
use crate::ids::{guid, SIP_CALL_PREFIX};
use crate::rooms::SharedRooms;
use crate::sip_rules::matching::{self, CallFacts, Dispatch};
use crate::sip_rules::SipRules;

pub use self::log::{InboundCallRecord, InboundState};
use self::log::{InboundLog, RejectedInvites, REJECTED_TTL};

/// LiveKit SIP's ring window when the trunk sets none (`defaultRingingTimeout`).
const DEFAULT_RINGING_TIMEOUT: Duration = Duration::from_secs(180);

/// What the inbound side starts from.
pub(crate) struct Settings {
    pub ring_interval: Duration,
    pub no_trunk_404: bool,
    pub no_rule_404: bool,
    /// Call length cap when the trunk sets none.
    pub max_call_duration: Duration,
    pub log_capacity: usize,
    pub rejected_capacity: usize,
}

/// Shared by every inbound call: the configuration it is matched against, the
/// rooms it joins, and the bounded logs.
pub(crate) struct Service {
    rooms: SharedRooms,
    rules: Arc<Mutex<SipRules>>,
    log: InboundLog,
    rejected: RejectedInvites,
    ring_interval: Duration,
    max_call_duration: Duration,
    no_trunk_404: AtomicBool,
    no_rule_404: AtomicBool,
}

/// How the trunk or rule decision ended a call before it reached a room.
pub(super) enum Verdict {
    /// A final response (code, reason).
    Reject(u16, &'static str),
    /// No rule: nothing more is sent (LiveKit OSS's DROP).
    Drop,
}

impl Service {
    pub(crate) fn new(rooms: SharedRooms, rules: Arc<Mutex<SipRules>>, s: Settings) -> Self {
        Self {
            rooms,
            rules,
            log: InboundLog::new(s.log_capacity),
            rejected: RejectedInvites::new(s.rejected_capacity, REJECTED_TTL),
            ring_interval: s.ring_interval.max(Duration::from_millis(10)),
            max_call_duration: s.max_call_duration,
            no_trunk_404: AtomicBool::new(s.no_trunk_404),
            no_rule_404: AtomicBool::new(s.no_rule_404),
        }
    }

    pub(crate) fn set_no_trunk_404(&self, on: bool) {
        self.no_trunk_404.store(on, Ordering::Relaxed);
    }

    pub(crate) fn set_no_rule_404(&self, on: bool) {
        self.no_rule_404.store(on, Ordering::Relaxed);
    }

    pub(crate) fn calls(&self) -> Vec<InboundCallRecord> {
        self.log.snapshot()
    }

    /// A new dialog's INVITE (unknown Call-ID, no To tag): replays a remembered
    /// rejection, or starts the call's task.
    pub(crate) fn on_invite(self: &Arc<Self>, ua: &Arc<Ua>, inbound: Inbound) {
        let msg = &inbound.msg;
        let stateless = |code: u16, reason: &str| {
            response_to(msg, code, reason, &guid(SIP_CALL_PREFIX))
                .header("User-Agent", USER_AGENT)
                .finish(None, b"")
        };
        let (Some(call_id), Some(from_tag)) = (msg.call_id(), msg.header("from").and_then(tag_of))
        else {
            // LiveKit refuses an INVITE it cannot key a call by (`newInbound`).
            ua.send(inbound.peer, stateless(400, "Bad request"));
            return;
        };
        if let Some(r) = self.rejected.get(call_id, from_tag) {
            ua.send(inbound.peer, stateless(r.code, &r.reason));
            return;
        }
        let Some(slot) = ua.register_id(call_id.to_owned()) else {
            ua.send(inbound.peer, stateless(503, "Try again later"));
            return;
        };
        tokio::spawn(call::run(self.clone(), ua.clone(), slot, inbound));
    }

    /// Trunk matching (`GetAuthCredentials`): `Ok(None)` goes on without a trunk (OSS).
    fn trunk(&self, facts: &CallFacts) -> Result<Option<proto::SipInboundTrunkInfo>, Verdict> {
        let rules = self.rules.lock();
        match matching::match_trunk(rules.trunks(), facts) {
            Err(e) => {
                tracing::debug!(error = %e, "livekit-sim sip: trunk conflict");
                Err(Verdict::Reject(503, "Try again later"))
            }
            Ok(None) if self.no_trunk_404.load(Ordering::Relaxed) => {
                Err(Verdict::Reject(404, "No trunk found"))
            }
            Ok(t) => Ok(t.cloned()),
        }
    }

    /// Rule matching and evaluation (`EvaluateSIPDispatchRules`).
    fn dispatch(
        &self,
        trunk: Option<&proto::SipInboundTrunkInfo>,
        facts: &CallFacts,
        lk_call_id: &str,
    ) -> Result<Dispatch, Verdict> {
        let rules = self.rules.lock();
        match matching::match_rule(trunk, rules.rules(), facts) {
            Err(e) => {
                tracing::debug!(error = %e, "livekit-sim sip: dispatch rule conflict");
                Err(Verdict::Reject(503, "Try again later"))
            }
            Ok(None) if self.no_rule_404.load(Ordering::Relaxed) => Err(Verdict::Reject(
                404,
                "Does not match Trunks or Dispatch Rules",
            )),
            Ok(None) => Err(Verdict::Drop),
            Ok(Some(rule)) => Ok(matching::evaluate(trunk, rule, facts, lk_call_id)),
        }
    }

    fn remember_rejection(&self, call_id: &str, from_tag: &str, code: u16, reason: &str) {
        self.rejected.add(call_id, from_tag, code, reason);
    }
}
