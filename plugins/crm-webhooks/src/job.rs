//! The unit of delivery. Field names mirror `c2c-callstate`'s `OutboxEntry` one for
//! one so the gateway's adapter is a plain field copy.

use serde::{Deserialize, Serialize};

/// Where a job is in its life. Only `Pending` jobs are ever sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobState {
    /// Waiting for its next attempt at `next_attempt_ms`.
    Pending,
    /// The CRM answered 2xx. Terminal.
    Delivered,
    /// Gave up after `max_age` of failures. Terminal (a replay may requeue it).
    Failed,
    /// The endpoint answered 410 Gone, or stayed disabled by policy past
    /// `max_age`. Terminal (a replay may requeue it).
    Disabled,
}

impl JobState {
    /// Terminal states are never picked up by the delivery loop again.
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobState::Pending)
    }
}

/// One webhook to deliver (one per ended call).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookJob {
    /// Outbox sequence number (store key); unique per job.
    pub seq: u64,
    /// Standard Webhooks `webhook-id`; stable across retries and replays so the
    /// CRM can deduplicate.
    pub webhook_id: String,
    pub call_id: String,
    pub tenant: String,
    /// Exact bytes to POST (and to sign). Contains the customer's number: never log.
    pub payload_json: String,
    pub created_ms: u64,
    /// Delivery attempts made so far (parking does not count).
    pub attempts: u32,
    pub next_attempt_ms: u64,
    pub state: JobState,
    /// Short, PII-free reason of the last failure ("http 500", "timeout", ...).
    pub last_error: Option<String>,
    pub delivered_ms: Option<u64>,
    /// `next_attempt_ms` is the time the CRM asked for with `Retry-After`, not a backoff
    /// step: catch-up after a recovered endpoint never moves it earlier.
    #[serde(default)]
    pub retry_after: bool,
}

impl WebhookJob {
    /// Age of the job at `now_ms` (0 if the clock went backwards).
    pub fn age_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.created_ms)
    }

    /// Pending and its next attempt time has come.
    pub fn is_due(&self, now_ms: u64) -> bool {
        self.state == JobState::Pending && self.next_attempt_ms <= now_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> WebhookJob {
        WebhookJob {
            seq: 7,
            webhook_id: "msg_abc".into(),
            call_id: "c2c_abc".into(),
            tenant: "acme".into(),
            payload_json: "{}".into(),
            created_ms: 1_000,
            attempts: 0,
            next_attempt_ms: 2_000,
            state: JobState::Pending,
            last_error: None,
            delivered_ms: None,
            retry_after: false,
        }
    }

    #[test]
    fn due_only_when_pending_and_time_reached() {
        let mut j = job();
        assert!(!j.is_due(1_999));
        assert!(j.is_due(2_000));
        j.state = JobState::Delivered;
        assert!(!j.is_due(5_000));
    }

    #[test]
    fn terminal_states() {
        assert!(!JobState::Pending.is_terminal());
        assert!(JobState::Delivered.is_terminal());
        assert!(JobState::Failed.is_terminal());
        assert!(JobState::Disabled.is_terminal());
    }

    #[test]
    fn age_saturates() {
        let j = job();
        assert_eq!(j.age_ms(500), 0);
        assert_eq!(j.age_ms(4_000), 3_000);
    }
}
