//! Durable CRM-webhook outbox entries. Field names mirror `c2c-crm-webhooks`' `WebhookJob`
//! so the gateway's adapter is a field-by-field map.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::record::{CallRecord, CALL_ID_PREFIX};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    Pending,
    Delivered,
    /// Gave up (older than the deliverer's max age).
    Failed,
    /// The tenant's endpoint answered 410 Gone.
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub seq: u64,
    /// `msg_` + the call id's hex; stable across retries and replays so the CRM can dedupe.
    pub webhook_id: String,
    pub call_id: String,
    pub tenant: String,
    /// The exact POST body.
    pub payload_json: String,
    pub created_ms: u64,
    pub attempts: u32,
    pub next_attempt_ms: u64,
    pub state: OutboxState,
    pub last_error: Option<String>,
    pub delivered_ms: Option<u64>,
    /// When an operator last re-queued it (`webhooks replay`). Retry budgets count from
    /// here, so an old webhook replayed today gets the full retry window again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed_ms: Option<u64>,
    /// `next_attempt_ms` is the time the CRM asked for (`Retry-After`), not a backoff step:
    /// bringing a tenant's backlog forward after its endpoint recovered leaves it alone.
    #[serde(default, skip_serializing_if = "is_false")]
    pub retry_after: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The pending part of the outbox, read from the pending index in one pass (the
/// deliverer's gauges).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxBacklog {
    /// Entries in state `Pending` (due or not).
    pub pending: u64,
    /// `created_ms` of the oldest pending entry.
    pub oldest_created_ms: Option<u64>,
    /// `created_ms` of each tenant's oldest pending entry; tenants without one are absent.
    pub oldest_by_tenant: BTreeMap<String, u64>,
}

impl OutboxEntry {
    /// The pending entry for an ENDED call, due immediately (at `ended_ms`).
    pub fn for_call(rec: &CallRecord, seq: u64) -> Result<OutboxEntry, StoreError> {
        let payload = rec.webhook_payload().ok_or(StoreError::NotEnded)?;
        let payload_json = serde_json::to_string(&payload).map_err(StoreError::Serialize)?;
        let created_ms = rec.ended_ms.unwrap_or(rec.created_ms);
        Ok(OutboxEntry {
            seq,
            webhook_id: webhook_id_for(&rec.call_id),
            call_id: rec.call_id.clone(),
            tenant: rec.tenant.clone(),
            payload_json,
            created_ms,
            attempts: 0,
            next_attempt_ms: created_ms,
            state: OutboxState::Pending,
            last_error: None,
            delivered_ms: None,
            replayed_ms: None,
            retry_after: false,
        })
    }

    pub fn is_pending(&self) -> bool {
        self.state == OutboxState::Pending
    }
}

/// `msg_` + the call id without its `c2c_` prefix.
pub fn webhook_id_for(call_id: &str) -> String {
    format!(
        "msg_{}",
        call_id.strip_prefix(CALL_ID_PREFIX).unwrap_or(call_id)
    )
}
