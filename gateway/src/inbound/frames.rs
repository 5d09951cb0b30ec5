//! The presence frames of an inbound call (docs/inbound.md, "Presence frames").

use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;

#[derive(Serialize)]
struct Incoming<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    call_id: &'a str,
    from: &'a str,
    to: &'a str,
    lead: Option<&'a RawValue>,
    ring_ms: u64,
    at_ms: u64,
}

/// `incoming`: the offer, with the lead when it is known (`null` otherwise).
pub fn incoming(
    call_id: &str,
    from: &str,
    to: &str,
    lead: Option<&RawValue>,
    ring_ms: u64,
    at_ms: u64,
) -> Arc<str> {
    text(&Incoming {
        kind: "incoming",
        call_id,
        from,
        to,
        lead,
        ring_ms,
        at_ms,
    })
}

#[derive(Serialize)]
struct Update<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    call_id: &'a str,
    lead: &'a RawValue,
}

/// `incoming_update`: the lead arrived after `incoming` went out.
pub fn incoming_update(call_id: &str, lead: &RawValue) -> Arc<str> {
    text(&Update {
        kind: "incoming_update",
        call_id,
        lead,
    })
}

#[derive(Serialize)]
struct Cancelled<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    call_id: &'a str,
    reason: &'a str,
}

/// `incoming_cancelled`: the offer is over (`caller_hung_up`, `offer_timeout`,
/// `failed`); the card must close.
pub fn incoming_cancelled(call_id: &str, reason: &str) -> Arc<str> {
    text(&Cancelled {
        kind: "incoming_cancelled",
        call_id,
        reason,
    })
}

/// `accepted`: the answer to an accept (the fields `/click2call` returns).
pub fn accepted(a: &super::AcceptAnswer) -> Arc<str> {
    #[derive(Serialize)]
    struct Accepted<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        #[serde(flatten)]
        answer: &'a super::AcceptAnswer,
    }
    text(&Accepted {
        kind: "accepted",
        answer: a,
    })
}

/// An `error` frame about one call's offer.
pub fn offer_error(call_id: &str, e: &super::InboundRefusal) -> Arc<str> {
    let v = serde_json::json!({
        "type": "error", "code": e.code(), "call_id": call_id, "message": e.to_string(),
    });
    Arc::from(v.to_string())
}

fn text<T: Serialize>(v: &T) -> Arc<str> {
    // Strings, numbers and already-valid JSON: serialising cannot fail.
    Arc::from(serde_json::to_string(v).unwrap_or_default())
}
