//! One call as the platform owner sees it: the stored record (phone numbers masked, as
//! in logs) and the state of its CRM webhook in the outbox. Built in one place so the
//! owner API (`GET /api/c2c/owner/calls/{id}`) and `c2c-gateway calls show` print the
//! same document whichever way they read the store.

use c2c_callstate::{OutboxEntry, SledCallStore, StoreError};
use serde_json::{json, Value};

/// The detail document, or `None` for an unknown call.
pub fn call_detail(store: &SledCallStore, call_id: &str) -> Result<Option<Value>, StoreError> {
    let Some(rec) = store.get(call_id)? else {
        return Ok(None);
    };
    let mut call = serde_json::to_value(&rec).map_err(StoreError::Serialize)?;
    mask_numbers(&mut call);
    let webhook = match store.outbox_seq_for_call(call_id)? {
        None => Value::Null,
        Some(seq) => match store.outbox_get(seq)? {
            Some(e) => webhook_view(&e),
            None => json!({ "seq": seq, "state": "missing" }),
        },
    };
    Ok(Some(json!({ "call": call, "webhook": webhook })))
}

/// Delivery state of an outbox entry, without its body (which carries the number).
pub fn webhook_view(e: &OutboxEntry) -> Value {
    json!({
        "seq": e.seq,
        "webhook_id": e.webhook_id,
        "state": e.state,
        "attempts": e.attempts,
        "created_ms": e.created_ms,
        "next_attempt_ms": e.next_attempt_ms,
        "delivered_ms": e.delivered_ms,
        "replayed_ms": e.replayed_ms,
        "last_error": e.last_error,
    })
}

/// Masks every phone field of a record or webhook payload object.
pub fn mask_numbers(v: &mut Value) {
    for f in ["customer_number", "phone_from", "phone_to"] {
        if let Some(Value::String(s)) = v.get_mut(f) {
            *s = c2c_dialplan::mask(s);
        }
    }
}
