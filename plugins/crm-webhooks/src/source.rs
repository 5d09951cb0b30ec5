//! The two seams to the gateway: where jobs live ([`OutboxSource`]) and where each
//! tenant's CRM endpoint comes from ([`EndpointResolver`]). Both are implemented by
//! the gateway so this crate owns neither storage nor policy.

use std::fmt;

use async_trait::async_trait;
use c2c_callstate::{OutboxBacklog, OutboxEntry};

use crate::error::SourceError;

/// The deliverer's admission check for [`OutboxSource::due`]: `admit(seq, tenant)` is
/// false for a job already in flight or a tenant at its concurrency limit.
pub type Admit<'a> = dyn for<'t> FnMut(u64, &'t str) -> bool + Send + 'a;

/// The deliverer's filter for [`OutboxSource::bring_forward`]: `eligible(seq)` is false
/// for a job that must stay where it is (in flight, or failed again right after it was
/// brought forward).
pub type Eligible<'a> = dyn FnMut(u64) -> bool + Send + 'a;

/// The durable outbox (the gateway maps it onto the call store).
#[async_trait]
pub trait OutboxSource: Send + Sync {
    /// Up to `limit` jobs that are `Pending` with `next_attempt_ms <= now_ms` and that
    /// `admit(seq, tenant)` accepts, oldest first (by seq). Ask `admit` before reading
    /// a job where the source can (it refuses jobs already in flight and tenants at
    /// their concurrency limit, so those must not use up `limit`); every returned job
    /// must have been admitted.
    async fn due(
        &self,
        now_ms: u64,
        limit: usize,
        admit: &mut Admit<'_>,
    ) -> Result<Vec<OutboxEntry>, SourceError>;

    /// [`Self::due`], also saying whether due jobs were held back by the source itself
    /// (a fleet-wide per-tenant limit): the deliverer then fetches again when one of its
    /// jobs finishes. The default holds nothing back.
    async fn due_held(
        &self,
        now_ms: u64,
        limit: usize,
        admit: &mut Admit<'_>,
    ) -> Result<(Vec<OutboxEntry>, bool), SourceError> {
        Ok((self.due(now_ms, limit, admit).await?, false))
    }

    /// Durably store the job's new state: what an attempt changes (see
    /// [`OutboxEntry::take_progress`]); the job's identity and history stay the
    /// store's. Return only once it would survive a crash.
    async fn update(&self, job: &OutboxEntry) -> Result<(), SourceError>;

    /// Pending count and oldest pending `created_ms`, overall and per tenant (for the
    /// gauges). Called every `stats_interval`: one pass over the pending jobs at most.
    async fn stats(&self) -> Result<OutboxBacklog, SourceError>;

    /// Catch-up after `tenant`'s endpoint answered 2xx again: make up to `limit` of the
    /// tenant's `Pending` jobs that wait on a backoff (`next_attempt_ms > now_ms`) due at
    /// `now_ms`, oldest first, and return their seqs. Must leave alone jobs whose
    /// `retry_after` is set (the CRM's own time) and those `eligible(seq)` refuses, and
    /// change nothing but `next_attempt_ms` (attempts and `webhook_id` stay). Return only
    /// once the new times are durable (a restart finds the jobs due), keeping any due-time
    /// index in step with the jobs.
    async fn bring_forward(
        &self,
        tenant: &str,
        now_ms: u64,
        limit: usize,
        eligible: &mut Eligible<'_>,
    ) -> Result<Vec<u64>, SourceError>;
}

/// More than the contract's payload, for the tenants that opted in (the gateway adds
/// the media its SIP edge measured). Asked before every attempt of every job.
#[async_trait]
pub trait PayloadExtension: Send + Sync {
    /// The body to post for `job` instead of its stored payload, or `None` to post the
    /// stored one. It may wait, bounded, for what it adds (the job stays in flight
    /// meanwhile, holding one of its tenant's slots); it must not change the job.
    async fn body(&self, job: &OutboxEntry) -> Option<String>;
}

/// A tenant's CRM webhook endpoint, from policy.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    /// Sent as `X-api-key`.
    pub outbound_key: String,
    /// Raw HMAC key bytes (see [`crate::sign::decode_secret`] for `whsec_...`).
    pub signing_secret: Option<Vec<u8>>,
    /// Disabled endpoints are never called; their jobs are parked.
    pub disabled: bool,
}

// Hand-written so a stray `{:?}` never prints the key or secret.
impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url)
            .field("outbound_key", &"<redacted>")
            .field(
                "signing_secret",
                &self.signing_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("disabled", &self.disabled)
            .finish()
    }
}

/// Tenant -> endpoint lookup (the gateway's policy). Called right before every
/// attempt, so a policy reload or a 410 takes effect on the next job.
pub trait EndpointResolver: Send + Sync {
    /// `None` when the tenant has no webhook endpoint (jobs are retried with
    /// backoff until one appears or `max_age` passes).
    fn resolve(&self, tenant: &str) -> Option<Endpoint>;

    /// The tenant's endpoint answered `410 Gone`. The implementation should make
    /// `resolve` return `disabled: true` from now on, which parks the tenant's
    /// other jobs instead of attempting them.
    fn endpoint_gone(&self, tenant: &str);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_key_and_secret() {
        let ep = Endpoint {
            url: "https://crm.example/hook".into(),
            outbound_key: "sk_live_supersecret".into(),
            signing_secret: Some(b"hmac-key-bytes".to_vec()),
            disabled: false,
        };
        let s = format!("{ep:?}");
        assert!(s.contains("crm.example"));
        assert!(!s.contains("supersecret"));
        assert!(!s.contains("hmac-key"));
    }
}
