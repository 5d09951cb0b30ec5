//! The persisted call record, its phases and the CRM webhook payload built from it.

use std::fmt;

use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Prefix of every call id (`c2c_` + 32 lowercase hex).
pub const CALL_ID_PREFIX: &str = "c2c_";
/// Prefix of every LiveKit room name (`c2c-` + the same 32 hex).
pub const ROOM_PREFIX: &str = "c2c-";

/// Lifecycle phase. Only ever moves forward: INITIATED -> DIALING -> RINGING -> ACTIVE -> ENDED
/// (RINGING and ACTIVE may be skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Phase {
    Initiated,
    Dialing,
    Ringing,
    Active,
    Ended,
}

impl Phase {
    /// The wire name (same as the serde form).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Initiated => "INITIATED",
            Phase::Dialing => "DIALING",
            Phase::Ringing => "RINGING",
            Phase::Active => "ACTIVE",
            Phase::Ended => "ENDED",
        }
    }
}

/// Terminal outcome of a call, either direction. Serialised exactly as the contract
/// spells it. Its schema is `CallOutcome`; the outbound contract's `CallStatus` schema
/// keeps the three outbound outcomes ([`ContractCallStatus`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = CallOutcome)]
pub enum CallStatus {
    Answered,
    NotAnswered,
    Failed,
    /// An inbound call nobody answered (the caller hung up, no agent took it, it rang out).
    Missed,
}

/// The outbound webhook's `call_status` as the integration guide defines it (schema
/// only: the value is a [`CallStatus`], which an outbound call never has `MISSED` in).
#[derive(utoipa::ToSchema)]
#[schema(as = CallStatus)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(dead_code)]
pub enum ContractCallStatus {
    Answered,
    NotAnswered,
    Failed,
}

/// The inbound webhook's `call_status` (schema only).
#[derive(utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(dead_code)]
pub enum InboundCallStatus {
    Answered,
    Missed,
}

impl CallStatus {
    /// The wire name (same as the serde form); handy as a bounded metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Answered => "ANSWERED",
            CallStatus::NotAnswered => "NOT_ANSWERED",
            CallStatus::Failed => "FAILED",
            CallStatus::Missed => "MISSED",
        }
    }
}

/// Why a call that was not answered ended: the analytics' failure buckets. A hangup
/// before `/connect` is a terminal webhook like any other (the contract requires it), but
/// an agent cancelling is not a carrier's or LiveKit's failure, so it is counted apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureCause {
    /// NOT_ANSWERED by the customer's side: busy, declined, unavailable, rang out.
    Customer,
    /// FAILED by the carrier or the trunk (a SIP failure code, `SIP_TRUNK_FAILURE`, ...).
    Carrier,
    /// LiveKit could not place the call, or closed its room.
    LiveKit,
    /// The agent hung up before the customer answered (or before dialling).
    AgentCancelled,
    /// The agent's browser went away and did not come back within the grace.
    AgentDropped,
    /// The agent's browser never called `/connect`.
    NeverConnected,
    /// The gateway lost track of the dial (killed while it was in flight).
    Gateway,
}

impl FailureCause {
    pub const ALL: [FailureCause; 7] = [
        FailureCause::Customer,
        FailureCause::Carrier,
        FailureCause::LiveKit,
        FailureCause::AgentCancelled,
        FailureCause::AgentDropped,
        FailureCause::NeverConnected,
        FailureCause::Gateway,
    ];

    /// The wire name (analytics key; a bounded metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCause::Customer => "customer",
            FailureCause::Carrier => "carrier",
            FailureCause::LiveKit => "livekit",
            FailureCause::AgentCancelled => "agent_cancelled",
            FailureCause::AgentDropped => "agent_dropped",
            FailureCause::NeverConnected => "never_connected",
            FailureCause::Gateway => "gateway",
        }
    }

    /// The bucket of an ended, unanswered call; `None` for answered or open calls.
    pub fn of(rec: &CallRecord) -> Option<FailureCause> {
        let status = rec.call_status?;
        // A missed inbound call is counted as missed, not as a failure of anyone's.
        if matches!(status, CallStatus::Answered | CallStatus::Missed) {
            return None;
        }
        Some(match rec.disconnect_reason.as_deref().unwrap_or("") {
            "agent_cancelled" => FailureCause::AgentCancelled,
            "agent_dropped" => FailureCause::AgentDropped,
            "never_connected" => FailureCause::NeverConnected,
            "dial_interrupted" => FailureCause::Gateway,
            "livekit_unavailable" | "dial_failed" | "room_finished" => FailureCause::LiveKit,
            _ if status == CallStatus::NotAnswered => FailureCause::Customer,
            _ => FailureCause::Carrier,
        })
    }
}

/// The timers a call can have armed. Part of the persisted record (`timers`), so part of
/// the on-disk format: add kinds, never rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    RingTimeout,
    AgentDropGrace,
    MaxDuration,
    UnconnectedExpiry,
    /// Backstop of a `/hangup` whose cause is being resolved: if the resolver never
    /// reports (the gateway died meanwhile), the hangup is taken as the agent's.
    HangupSettle,
}

impl TimerKind {
    pub const ALL: [TimerKind; 5] = [
        TimerKind::RingTimeout,
        TimerKind::AgentDropGrace,
        TimerKind::MaxDuration,
        TimerKind::UnconnectedExpiry,
        TimerKind::HangupSettle,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TimerKind::RingTimeout => "ring_timeout",
            TimerKind::AgentDropGrace => "agent_drop_grace",
            TimerKind::MaxDuration => "max_duration",
            TimerKind::UnconnectedExpiry => "unconnected_expiry",
            TimerKind::HangupSettle => "hangup_settle",
        }
    }
}

/// A timer the record currently wants armed; kept in the record so a restarted gateway can
/// re-arm every timer from the store alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArmedTimer {
    pub kind: TimerKind,
    pub at_ms: u64,
}

/// Everything known when `/click2call` creates a call.
#[derive(Clone, PartialEq, Eq)]
pub struct NewCall {
    pub call_id: String,
    pub room: String,
    pub tenant: String,
    pub case_id: String,
    pub customer_crm_id: String,
    pub agent_id: String,
    /// Clean 10-digit national number (never the internal dial string).
    pub customer_number: String,
    /// Caller ID in E.164.
    pub phone_from: String,
    pub trunk_label: String,
}

impl fmt::Debug for NewCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewCall")
            .field("call_id", &self.call_id)
            .field("tenant", &self.tenant)
            .field("agent_id", &self.agent_id)
            .field("customer_number", &mask_number(&self.customer_number))
            .field("trunk_label", &self.trunk_label)
            .finish_non_exhaustive()
    }
}

/// The persisted state of one call. JSON (serde_json) is the storage format, so field names
/// are part of the on-disk format: add fields with `#[serde(default)]`, never rename.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    pub call_id: String,
    pub tenant: String,
    pub case_id: String,
    pub customer_crm_id: String,
    pub agent_id: String,
    /// Clean 10-digit national number (never the internal dial string).
    pub customer_number: String,
    /// Caller ID in E.164.
    pub phone_from: String,
    pub trunk_label: String,
    pub room: String,
    pub phase: Phase,
    pub call_status: Option<CallStatus>,
    pub created_ms: u64,
    pub connected_ms: Option<u64>,
    pub ringing_ms: Option<u64>,
    pub answered_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    pub disconnect_reason: Option<String>,
    pub sip_disconnect_code: Option<u16>,
    pub agent_present: bool,
    pub timers: Vec<ArmedTimer>,
    /// Bumped on every real change, so writers can skip no-ops and detect races.
    pub version: u64,
    /// When CreateSIPParticipant's own outcome reached us (or, after a restart, when the
    /// gateway gave up waiting for it). From `/connect` until then a dial request is in
    /// flight, and its answer — the one place LiveKit reports the carrier's exact SIP
    /// code — is still to come, so the customer's leg missing from a room sample proves
    /// nothing yet.
    #[serde(default)]
    pub dial_returned_ms: Option<u64>,
    /// When the browser posted `/hangup` on a dialled call. The call stays in its phase
    /// while the gateway finds out whose hangup it was (the customer's leg may already be
    /// gone), at most until the `HangupSettle` timer.
    #[serde(default)]
    pub hangup_requested_ms: Option<u64>,
    /// Outbound (`/click2call`) or inbound (a customer called a DID). For an inbound
    /// call `customer_number` is the caller and `phone_from` the DID it dialled.
    #[serde(default, skip_serializing_if = "Direction::is_outbound")]
    pub direction: Direction,
    /// Inbound: every offer to an agent, in order (at most [`MAX_OFFERS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offers: Vec<OfferEntry>,
    /// Inbound: the `lead_id` of the lead the CRM's lookup returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<String>,
    /// A managed tenant's call: its rate and hold, and once it ended its charge (written
    /// by the end transition, in the same write as the end). `None`: never charged
    /// (a BYOT tenant's call, an inbound call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing: Option<CallBilling>,
    /// An anchored call's media, once the SIP edge's relay reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<CallMedia>,
    /// The DLT category the click2call request named (`promotional`, `service`,
    /// `transactional`); `None`: its trunk's. `/connect` and the SIP edge check the
    /// call as this says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_category: Option<String>,
}

/// What a managed tenant's call costs (docs/billing.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallBilling {
    /// The rate when the call was created: an edit of the rate card applies to new
    /// calls, never to one already running.
    pub rate: c2c_billing::Rate,
    /// What `/connect` sets aside from the wallet: the cost of the tenant's
    /// `min_call_minutes` at this rate.
    pub hold_paise: u64,
    /// Talk time billed, answer to end (0 when the call was never answered). Set when
    /// the call ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billed_ms: Option<u64>,
    /// `rate.charge(billed_ms)`, set when the call ends: what its settle posts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge_paise: Option<u64>,
}

impl fmt::Debug for CallRecord {
    // Hand-written so `?record` in a log line never prints the customer's number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallRecord")
            .field("call_id", &self.call_id)
            .field("tenant", &self.tenant)
            .field("agent_id", &self.agent_id)
            .field("customer_number", &mask_number(&self.customer_number))
            .field("trunk_label", &self.trunk_label)
            .field("phase", &self.phase)
            .field("call_status", &self.call_status)
            .field("created_ms", &self.created_ms)
            .field("connected_ms", &self.connected_ms)
            .field("ringing_ms", &self.ringing_ms)
            .field("answered_ms", &self.answered_ms)
            .field("ended_ms", &self.ended_ms)
            .field("disconnect_reason", &self.disconnect_reason)
            .field("sip_disconnect_code", &self.sip_disconnect_code)
            .field("agent_present", &self.agent_present)
            .field("timers", &self.timers)
            .field("version", &self.version)
            .field("dial_returned_ms", &self.dial_returned_ms)
            .field("hangup_requested_ms", &self.hangup_requested_ms)
            .field("direction", &self.direction)
            .field("offers", &self.offers)
            .field("lead_id", &self.lead_id)
            .finish_non_exhaustive()
    }
}

impl CallRecord {
    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// True while the call's CreateSIPParticipant request has not answered: the dial's
    /// own result (answered, or the carrier's code) is still to come.
    pub fn dial_pending(&self) -> bool {
        matches!(self.phase, Phase::Dialing | Phase::Ringing | Phase::Active)
            && self.dial_returned_ms.is_none()
    }

    /// Deadline of an armed timer of this kind, if any.
    pub fn timer(&self, kind: TimerKind) -> Option<u64> {
        self.timers.iter().find(|t| t.kind == kind).map(|t| t.at_ms)
    }

    /// Whole seconds between answer and end (rounded down); 0 if never answered or not ended.
    pub fn duration_seconds(&self) -> u64 {
        match (self.answered_ms, self.ended_ms) {
            (Some(a), Some(e)) => e.saturating_sub(a) / 1000,
            _ => 0,
        }
    }

    /// The CRM webhook body, by direction; `None` until the call has ENDED.
    pub fn webhook_payload(&self) -> Option<WebhookPayload> {
        if !self.is_ended() {
            return None;
        }
        if self.is_inbound() {
            return self.inbound_payload().map(WebhookPayload::Inbound);
        }
        self.outbound_payload().map(WebhookPayload::Outbound)
    }

    /// The contract's outbound body of an ENDED call.
    fn outbound_payload(&self) -> Option<CrmWebhookPayload> {
        Some(CrmWebhookPayload {
            call_id: self.call_id.clone(),
            case_id: self.case_id.clone(),
            customer_crm_id: self.customer_crm_id.clone(),
            phone_to: self.customer_number.clone(),
            phone_from: self.phone_from.clone(),
            call_status: self.call_status?,
            duration_seconds: self.duration_seconds(),
            agent_id: self.agent_id.clone(),
        })
    }
}

/// The exact CRM webhook contract. Field order is the serialisation order and matches the
/// integration guide; do not reorder or add fields. Its JSON Schema (`ToSchema`) is how
/// the gateway's OpenAPI document tells CRM developers what their receiver gets.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "call_id": "c2c_ab12cd34ab12cd34ab12cd34ab12cd34",
    "case_id": "abc123",
    "customer_crm_id": "cust-99",
    "phone_to": "9530251797",
    "phone_from": "+919999999999",
    "call_status": "ANSWERED",
    "duration_seconds": 90,
    "agent_id": "agent-42"
}))]
pub struct CrmWebhookPayload {
    /// The `call_id` `/click2call` returned.
    pub call_id: String,
    /// Echoed from `/click2call`.
    pub case_id: String,
    /// Echoed from `/click2call`.
    pub customer_crm_id: String,
    /// Clean 10-digit number, never the dial prefix.
    pub phone_to: String,
    /// The caller ID presented to the customer, in E.164 (`+91...`).
    pub phone_from: String,
    /// The terminal outcome.
    #[schema(value_type = ContractCallStatus)]
    pub call_status: CallStatus,
    /// Whole seconds from answer to hangup; 0 when not answered.
    pub duration_seconds: u64,
    /// Echoed from `/click2call`.
    pub agent_id: String,
}

impl fmt::Debug for CrmWebhookPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrmWebhookPayload")
            .field("call_id", &self.call_id)
            .field("phone_to", &mask_number(&self.phone_to))
            .field("call_status", &self.call_status)
            .field("duration_seconds", &self.duration_seconds)
            .field("agent_id", &self.agent_id)
            .finish_non_exhaustive()
    }
}

/// A fresh `(call_id, room)` pair from 128 bits of OS randomness: the call id is the only
/// credential of the browser endpoints, so it must be unguessable.
pub fn new_call_id() -> (String, String) {
    let mut bytes = [0u8; 16];
    // A call id is a bearer capability for the browser endpoints, so it must come from a
    // CSPRNG. `ThreadRng` is one (ChaCha, seeded and periodically reseeded from the OS)
    // and, unlike `OsRng`, costs no `getrandom` syscall per call.
    rand::thread_rng().fill_bytes(&mut bytes);
    let hex = hex::encode(bytes);
    (
        format!("{CALL_ID_PREFIX}{hex}"),
        format!("{ROOM_PREFIX}{hex}"),
    )
}

/// True for `c2c_` + exactly 32 lowercase hex chars. Cheap gate before any store lookup.
pub fn is_valid_call_id(s: &str) -> bool {
    call_id_hex(s).is_some()
}

/// The 32-hex suffix of a well-formed call id.
pub fn call_id_hex(call_id: &str) -> Option<&str> {
    let hex = call_id.strip_prefix(CALL_ID_PREFIX)?;
    let ok = hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then_some(hex)
}

/// The room name that belongs to a well-formed call id.
pub fn room_for_call_id(call_id: &str) -> Option<String> {
    call_id_hex(call_id).map(|h| format!("{ROOM_PREFIX}{h}"))
}

/// Masks a phone number for logs: keeps the last 4 characters.
pub fn mask_number(n: &str) -> String {
    let count = n.chars().count();
    n.chars()
        .enumerate()
        .map(|(i, c)| if i + 4 < count { '*' } else { c })
        .collect()
}

mod inbound;
mod media;

pub use inbound::{
    Direction, InboundWebhookPayload, NewInboundCall, OfferEntry, OfferOutcome, WebhookPayload,
    MAX_OFFERS,
};
pub use media::{CallMedia, MediaStream};

#[cfg(test)]
mod tests;
