//! What an inbound call adds to the record: its direction, the offers made to agents,
//! the lead the CRM's lookup gave, and the webhook body the CRM gets for it.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{mask_number, CallRecord, CallStatus, CrmWebhookPayload};

/// Who placed the call. Part of the persisted record: a record without it is outbound
/// (every record written before inbound calls existed).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The CRM started it with `/click2call`.
    #[default]
    Outbound,
    /// A customer called one of the tenant's numbers.
    Inbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }

    pub fn is_outbound(&self) -> bool {
        *self == Direction::Outbound
    }
}

/// Most offers one record keeps: an inbound call rings for a bounded time, and one
/// offer lasts at least 5 s, so this only cuts a runaway loop.
pub const MAX_OFFERS: usize = 32;

/// How one offer of an inbound call to an agent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OfferOutcome {
    Accepted,
    Rejected,
    /// Not answered within `ring_agent_seconds`.
    Timeout,
    /// The caller hung up (or the call ended otherwise) while it was offered.
    Cancelled,
    /// The agent's session went away, or it could not be told.
    Failed,
}

/// One offer: to whom, when, and how it ended (`None` while it is open).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OfferEntry {
    pub agent_id: String,
    pub offered_ms: u64,
    pub outcome: Option<OfferOutcome>,
    pub ended_ms: Option<u64>,
}

/// Everything known when a carrier's call to a DID is taken in.
#[derive(Clone, PartialEq, Eq)]
pub struct NewInboundCall {
    pub call_id: String,
    pub room: String,
    pub tenant: String,
    /// The caller, in E.164 when it is a number we understand (else as the carrier sent it).
    pub caller: String,
    /// The DID the customer dialled (E.164).
    pub did: String,
    /// The carrier trunk it arrived on.
    pub trunk_label: String,
}

impl fmt::Debug for NewInboundCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewInboundCall")
            .field("call_id", &self.call_id)
            .field("tenant", &self.tenant)
            .field("caller", &mask_number(&self.caller))
            .field("did", &self.did)
            .field("trunk_label", &self.trunk_label)
            .finish_non_exhaustive()
    }
}

/// The CRM webhook for an inbound call. `direction` tells a receiver which shape it got;
/// the outbound body stays exactly as the integration guide defines it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "call_id": "c2c_ab12cd34ab12cd34ab12cd34ab12cd34",
    "direction": "inbound",
    "phone_from": "+919812345678",
    "phone_to": "+918045678901",
    "call_status": "ANSWERED",
    "duration_seconds": 42,
    "agent_id": "agent-42",
    "lead_id": "lead-7"
}))]
pub struct InboundWebhookPayload {
    pub call_id: String,
    /// Always `inbound`.
    pub direction: Direction,
    /// The caller, in E.164 when the carrier sent a number we understand.
    pub phone_from: String,
    /// The tenant's number the customer dialled (E.164).
    pub phone_to: String,
    /// `ANSWERED` or `MISSED`.
    #[schema(value_type = super::InboundCallStatus)]
    pub call_status: CallStatus,
    /// Whole seconds from answer to hangup; 0 when missed.
    pub duration_seconds: u64,
    /// The agent who answered; empty when nobody did.
    pub agent_id: String,
    /// The lead the CRM's lookup returned (its `lead_id`), when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<String>,
}

impl fmt::Debug for InboundWebhookPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundWebhookPayload")
            .field("call_id", &self.call_id)
            .field("phone_from", &mask_number(&self.phone_from))
            .field("call_status", &self.call_status)
            .field("duration_seconds", &self.duration_seconds)
            .field("agent_id", &self.agent_id)
            .finish_non_exhaustive()
    }
}

/// The body of a call's terminal webhook, by direction. Serialises as the bare payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum WebhookPayload {
    Outbound(CrmWebhookPayload),
    Inbound(InboundWebhookPayload),
}

impl WebhookPayload {
    pub fn call_status(&self) -> CallStatus {
        match self {
            WebhookPayload::Outbound(p) => p.call_status,
            WebhookPayload::Inbound(p) => p.call_status,
        }
    }

    pub fn duration_seconds(&self) -> u64 {
        match self {
            WebhookPayload::Outbound(p) => p.duration_seconds,
            WebhookPayload::Inbound(p) => p.duration_seconds,
        }
    }
}

impl CallRecord {
    pub fn is_inbound(&self) -> bool {
        self.direction == Direction::Inbound
    }

    /// The inbound webhook body of an ENDED inbound call.
    pub(super) fn inbound_payload(&self) -> Option<InboundWebhookPayload> {
        Some(InboundWebhookPayload {
            call_id: self.call_id.clone(),
            direction: Direction::Inbound,
            phone_from: self.customer_number.clone(),
            phone_to: self.phone_from.clone(),
            call_status: self.call_status?,
            duration_seconds: self.duration_seconds(),
            agent_id: self.agent_id.clone(),
            lead_id: self.lead_id.clone(),
        })
    }

    /// The offer to `agent_id` still open, if any.
    pub fn open_offer(&self, agent_id: &str) -> Option<&OfferEntry> {
        self.offers
            .iter()
            .rev()
            .find(|o| o.agent_id == agent_id && o.outcome.is_none())
    }
}
