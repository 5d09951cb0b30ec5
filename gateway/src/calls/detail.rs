//! One call as the platform owner sees it: the stored record (phone numbers masked, as
//! in logs) and the state of its CRM webhook in the outbox. Built in one place so the
//! owner API (`GET /api/c2c/owner/calls/{id}`) and `c2c-gateway calls show` print the
//! same document whichever way they read the store.

use c2c_callstate::{CallStore, OutboxEntry, OutboxState, StoreError};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// One call for the owner: `GET /api/c2c/owner/calls/{call_id}` and `calls show`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallDetail {
    /// The stored call record, field for field as the store keeps it (its on-disk
    /// format), with phone numbers masked.
    #[schema(value_type = Object)]
    pub call: Value,
    /// The call's CRM webhook; null while none is enqueued (the call has not ended).
    pub webhook: Option<WebhookDelivery>,
}

/// Delivery state of a CRM webhook, without its body (which carries the number).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDelivery {
    pub seq: u64,
    /// `pending`, `delivered`, `failed` (gave up), `disabled` (the CRM answered 410), or
    /// `missing` when the call's index names an entry that is not there (`db check`
    /// reports it; every other field is then null).
    pub state: &'static str,
    /// The `webhook-id` header value, stable across retries and replays.
    pub webhook_id: Option<String>,
    pub attempts: Option<u32>,
    /// Unix milliseconds.
    pub created_ms: Option<u64>,
    pub next_attempt_ms: Option<u64>,
    pub delivered_ms: Option<u64>,
    /// When an operator last replayed it.
    pub replayed_ms: Option<u64>,
    pub last_error: Option<String>,
}

/// The detail document, or `None` for an unknown call.
pub async fn call_detail(
    store: &dyn CallStore,
    call_id: &str,
) -> Result<Option<CallDetail>, StoreError> {
    let Some(rec) = store.get(call_id).await? else {
        return Ok(None);
    };
    let mut call = serde_json::to_value(&rec).map_err(StoreError::Serialize)?;
    mask_numbers(&mut call);
    let webhook = match store.outbox_seq_for_call(call_id).await? {
        None => None,
        Some(seq) => Some(match store.outbox_get(seq).await? {
            Some(e) => webhook_view(&e),
            None => WebhookDelivery {
                seq,
                state: "missing",
                webhook_id: None,
                attempts: None,
                created_ms: None,
                next_attempt_ms: None,
                delivered_ms: None,
                replayed_ms: None,
                last_error: None,
            },
        }),
    };
    Ok(Some(CallDetail { call, webhook }))
}

/// Delivery state of an outbox entry.
fn webhook_view(e: &OutboxEntry) -> WebhookDelivery {
    WebhookDelivery {
        seq: e.seq,
        state: match e.state {
            OutboxState::Pending => "pending",
            OutboxState::Delivered => "delivered",
            OutboxState::Failed => "failed",
            OutboxState::Disabled => "disabled",
        },
        webhook_id: Some(e.webhook_id.clone()),
        attempts: Some(e.attempts),
        created_ms: Some(e.created_ms),
        next_attempt_ms: Some(e.next_attempt_ms),
        delivered_ms: e.delivered_ms,
        replayed_ms: e.replayed_ms,
        last_error: e.last_error.clone(),
    }
}

/// Masks every phone field of a record or webhook payload object.
pub fn mask_numbers(v: &mut Value) {
    for f in ["customer_number", "phone_from", "phone_to"] {
        if let Some(Value::String(s)) = v.get_mut(f) {
            *s = c2c_dialplan::mask(s);
        }
    }
}
