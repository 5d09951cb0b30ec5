//! Durable CRM-webhook outbox entries: the stored form, and what `c2c-crm-webhooks`
//! delivers (it works on [`OutboxEntry`] directly).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::record::{CallRecord, CALL_ID_PREFIX};

/// Where an entry is in its life. Only `Pending` entries are ever sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Waiting for its next attempt at `next_attempt_ms`.
    Pending,
    /// The CRM answered 2xx. Terminal.
    Delivered,
    /// Gave up after the deliverer's `max_age` of failures. Terminal (a replay may
    /// requeue it).
    Failed,
    /// The tenant's endpoint answered 410 Gone, or stayed disabled by policy past
    /// `max_age`. Terminal (a replay may requeue it).
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Outbox sequence number (store key); unique per entry.
    pub seq: u64,
    /// `msg_` + the call id's hex: the Standard Webhooks `webhook-id`, stable across
    /// retries and replays so the CRM can dedupe.
    pub webhook_id: String,
    pub call_id: String,
    pub tenant: String,
    /// The exact POST body (and what is signed). Contains the customer's number: never log.
    pub payload_json: String,
    /// When the call ended (the webhook was enqueued); the backlog gauges' age.
    pub created_ms: u64,
    /// Delivery attempts made so far (parking does not count).
    pub attempts: u32,
    pub next_attempt_ms: u64,
    pub state: OutboxState,
    /// Short, PII-free reason of the last failure ("http 500", "timeout", ...).
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
    /// Replay (`webhooks replay`): back to pending, due at `now_ms`, attempts and errors
    /// reset, `replayed_ms = now_ms` (the retry window starts again), same `webhook_id`.
    pub fn requeue(&mut self, now_ms: u64) {
        self.state = OutboxState::Pending;
        self.next_attempt_ms = now_ms;
        self.attempts = 0;
        self.last_error = None;
        self.delivered_ms = None;
        self.retry_after = false;
        self.replayed_ms = Some(now_ms);
    }

    /// The pending entry for an ENDED call, due immediately (at `ended_ms`).
    pub fn for_call(rec: &CallRecord, seq: u64) -> Result<OutboxEntry, StoreError> {
        let payload = rec.webhook_payload().ok_or(StoreError::NotEnded)?;
        let payload_json = serde_json::to_string(&payload).map_err(StoreError::Serialize)?;
        let created_ms = rec.ended_ms.unwrap_or(rec.created_ms);
        Ok(Self::fresh(
            seq,
            webhook_id_for(&rec.call_id),
            rec.call_id.clone(),
            rec.tenant.clone(),
            payload_json,
            created_ms,
        ))
    }

    /// A new pending entry, due at `created_ms`, never attempted.
    fn fresh(
        seq: u64,
        webhook_id: String,
        call_id: String,
        tenant: String,
        payload_json: String,
        created_ms: u64,
    ) -> OutboxEntry {
        OutboxEntry {
            seq,
            webhook_id,
            call_id,
            tenant,
            payload_json,
            created_ms,
            attempts: 0,
            next_attempt_ms: created_ms,
            state: OutboxState::Pending,
            last_error: None,
            delivered_ms: None,
            replayed_ms: None,
            retry_after: false,
        }
    }

    pub fn is_pending(&self) -> bool {
        self.state == OutboxState::Pending
    }

    /// Pending and its next attempt time has come.
    pub fn is_due(&self, now_ms: u64) -> bool {
        self.is_pending() && self.next_attempt_ms <= now_ms
    }

    /// Where the deliverer's retry budget (`max_age`) starts: the last replay if there was
    /// one (a replayed webhook gets the full window again), else `created_ms`.
    pub fn retry_window_start_ms(&self) -> u64 {
        self.replayed_ms.unwrap_or(self.created_ms)
    }

    /// Time spent in the retry window at `now_ms` (0 if the clock went backwards).
    pub fn retry_age_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.retry_window_start_ms())
    }

    /// Copies what a delivery attempt may change (attempts, next attempt, state, last
    /// error, delivered time, `retry_after`) from `delivered` onto this stored entry.
    /// Identity and history (payload, webhook id, tenant, `created_ms`, `replayed_ms`)
    /// stay the store's.
    pub fn take_progress(&mut self, delivered: &OutboxEntry) {
        self.attempts = delivered.attempts;
        self.next_attempt_ms = delivered.next_attempt_ms;
        self.state = delivered.state;
        self.last_error.clone_from(&delivered.last_error);
        self.delivered_ms = delivered.delivered_ms;
        self.retry_after = delivered.retry_after;
    }
}

/// `msg_` + the call id without its `c2c_` prefix.
/// What starts the `call_id` of an outbox entry that is no call's webhook but a tenant
/// event (a low wallet balance): `evt_` + lowercase letters, digits, `_` and `-`. Call
/// ids start with `c2c_`, so the two never collide, and the outbox's one-entry-per-id
/// rule makes an event's enqueue idempotent.
pub const EVENT_ID_PREFIX: &str = "evt_";

/// An event id as [`EVENT_ID_PREFIX`] describes (at most 160 bytes).
pub fn is_event_id(id: &str) -> bool {
    id.strip_prefix(EVENT_ID_PREFIX).is_some_and(|rest| {
        !rest.is_empty()
            && id.len() <= 160
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    })
}

impl OutboxEntry {
    /// The pending entry of a tenant event, due at `created_ms`. `webhook_id` is
    /// `msg_` + the event id: stable, so a receiver de-duplicates retries.
    pub fn for_event(
        event_id: &str,
        tenant: &str,
        payload_json: String,
        created_ms: u64,
        seq: u64,
    ) -> Result<OutboxEntry, StoreError> {
        if !is_event_id(event_id) {
            return Err(StoreError::InvalidInput { what: "event id" });
        }
        Ok(Self::fresh(
            seq,
            format!("msg_{event_id}"),
            event_id.to_owned(),
            tenant.to_owned(),
            payload_json,
            created_ms,
        ))
    }

    /// True for a tenant event's entry (no call record behind it).
    pub fn is_event(&self) -> bool {
        is_event_id(&self.call_id)
    }
}

pub fn webhook_id_for(call_id: &str) -> String {
    format!(
        "msg_{}",
        call_id.strip_prefix(CALL_ID_PREFIX).unwrap_or(call_id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> OutboxEntry {
        OutboxEntry {
            seq: 7,
            webhook_id: "msg_abc".into(),
            call_id: "c2c_abc".into(),
            tenant: "acme".into(),
            payload_json: "{}".into(),
            created_ms: 1_000,
            attempts: 0,
            next_attempt_ms: 2_000,
            state: OutboxState::Pending,
            last_error: None,
            delivered_ms: None,
            replayed_ms: None,
            retry_after: false,
        }
    }

    #[test]
    fn due_only_when_pending_and_time_reached() {
        let mut e = entry();
        assert!(!e.is_due(1_999));
        assert!(e.is_due(2_000));
        e.state = OutboxState::Delivered;
        assert!(!e.is_due(5_000));
    }

    #[test]
    fn the_retry_window_starts_at_the_last_replay() {
        let mut e = entry();
        assert_eq!(e.retry_window_start_ms(), 1_000);
        assert_eq!(e.retry_age_ms(500), 0);
        assert_eq!(e.retry_age_ms(4_000), 3_000);
        e.replayed_ms = Some(3_000);
        assert_eq!(e.retry_window_start_ms(), 3_000);
        assert_eq!(e.retry_age_ms(4_000), 1_000);
        assert_eq!(e.created_ms, 1_000);
    }

    #[test]
    fn progress_is_taken_and_identity_kept() {
        let mut stored = entry();
        stored.replayed_ms = Some(1_500);
        let mut delivered = entry();
        delivered.payload_json = "changed".into();
        delivered.created_ms = 9;
        delivered.replayed_ms = None;
        delivered.attempts = 3;
        delivered.next_attempt_ms = 8_000;
        delivered.state = OutboxState::Failed;
        delivered.last_error = Some("http 500".into());
        delivered.delivered_ms = Some(7_000);
        delivered.retry_after = true;
        stored.take_progress(&delivered);
        let mut want = entry();
        want.replayed_ms = Some(1_500);
        want.attempts = 3;
        want.next_attempt_ms = 8_000;
        want.state = OutboxState::Failed;
        want.last_error = Some("http 500".into());
        want.delivered_ms = Some(7_000);
        want.retry_after = true;
        assert_eq!(stored, want);
    }

    /// The stored form (sled values) is this JSON; existing data must stay readable.
    #[test]
    fn the_stored_form_is_unchanged() {
        let mut e = entry();
        let plain = r#"{"seq":7,"webhook_id":"msg_abc","call_id":"c2c_abc","tenant":"acme","payload_json":"{}","created_ms":1000,"attempts":0,"next_attempt_ms":2000,"state":"pending","last_error":null,"delivered_ms":null}"#;
        assert_eq!(serde_json::to_string(&e).unwrap(), plain);
        assert_eq!(serde_json::from_str::<OutboxEntry>(plain).unwrap(), e);
        e.state = OutboxState::Disabled;
        e.replayed_ms = Some(5);
        e.retry_after = true;
        let full = r#"{"seq":7,"webhook_id":"msg_abc","call_id":"c2c_abc","tenant":"acme","payload_json":"{}","created_ms":1000,"attempts":0,"next_attempt_ms":2000,"state":"disabled","last_error":null,"delivered_ms":null,"replayed_ms":5,"retry_after":true}"#;
        assert_eq!(serde_json::to_string(&e).unwrap(), full);
        assert_eq!(serde_json::from_str::<OutboxEntry>(full).unwrap(), e);
    }
}
