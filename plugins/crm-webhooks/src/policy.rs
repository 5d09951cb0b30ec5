//! The deliverer's tunables ([`DeliveryPolicy`]) and their validation.

use std::time::Duration;

use tokio::sync::Semaphore;

use crate::backoff;
use crate::error::ConfigError;

/// The spec's floor for `max_age`: a CRM outage over a weekend night must not
/// lose webhooks.
pub const MIN_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Tunables. Defaults follow the spec; tests shrink the schedule to milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// Upper bound of the jittered delay after the n-th failure (last repeats;
    /// each step capped at 4 h).
    pub schedule: Vec<Duration>,
    /// Give up (state `Failed`) on a failure once the job is older than this, counted
    /// from its last replay if any (`OutboxEntry::retry_window_start_ms`).
    /// Must be >= 24 h.
    pub max_age: Duration,
    /// Concurrent attempts per tenant.
    pub per_tenant_concurrency: usize,
    /// Concurrent attempts overall (never more than this many in flight).
    pub batch: usize,
    /// Per-request timeout (on top of the client's own).
    pub request_timeout: Duration,
    /// How often the loop polls the outbox when nobody kicks it.
    pub poll_interval: Duration,
    /// Longest wait honoured from a `Retry-After` header.
    pub retry_after_cap: Duration,
    /// How long a job of a disabled endpoint waits before it is looked at again.
    pub park_interval: Duration,
    /// How often the outbox gauges are refreshed (one `stats()` call each).
    pub stats_interval: Duration,
    /// Allow loopback/private/link-local targets (tests and labs only). Off by
    /// default: tenant URLs must not reach into our network (SSRF).
    pub allow_private_targets: bool,
    /// Catch-up: once a tenant's endpoint answers 2xx again, bring the tenant's jobs
    /// that wait on a backoff forward, `per_tenant_concurrency` at a time (see
    /// [`crate::catchup`]). On by default; off leaves every job on its own schedule
    /// (benchmarks compare both).
    pub catch_up: bool,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            schedule: backoff::default_schedule(),
            max_age: Duration::from_secs(72 * 3600),
            per_tenant_concurrency: 4,
            batch: 32,
            request_timeout: Duration::from_secs(15),
            poll_interval: Duration::from_secs(1),
            retry_after_cap: Duration::from_secs(3600),
            park_interval: Duration::from_secs(300),
            stats_interval: Duration::from_secs(5),
            allow_private_targets: false,
            catch_up: true,
        }
    }
}

impl DeliveryPolicy {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m| Err(ConfigError::InvalidPolicy(m));
        if self.schedule.is_empty() {
            return bad("schedule must not be empty");
        }
        if self.max_age < MIN_MAX_AGE {
            return bad("max_age must be at least 24 h");
        }
        if self.per_tenant_concurrency == 0 || self.batch == 0 {
            return bad("batch and per_tenant_concurrency must be >= 1");
        }
        if self.batch > Semaphore::MAX_PERMITS
            || self.per_tenant_concurrency > Semaphore::MAX_PERMITS
        {
            return bad("batch or per_tenant_concurrency too large");
        }
        if self.request_timeout.is_zero()
            || self.poll_interval.is_zero()
            || self.park_interval.is_zero()
            || self.stats_interval.is_zero()
        {
            return bad("timeouts and intervals must be > 0");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_valid_and_matches_spec() {
        let p = DeliveryPolicy::default();
        p.validate().unwrap();
        assert_eq!(p.per_tenant_concurrency, 4);
        assert_eq!(p.max_age, Duration::from_secs(72 * 3600));
        assert_eq!(p.request_timeout, Duration::from_secs(15));
        assert_eq!(p.poll_interval, Duration::from_secs(1));
        assert!(!p.allow_private_targets);
        assert!(p.catch_up);
    }

    #[test]
    fn policy_validation() {
        let ok = DeliveryPolicy::default();
        let cases: Vec<DeliveryPolicy> = vec![
            DeliveryPolicy {
                max_age: Duration::from_secs(23 * 3600),
                ..ok.clone()
            },
            DeliveryPolicy {
                schedule: vec![],
                ..ok.clone()
            },
            DeliveryPolicy {
                batch: 0,
                ..ok.clone()
            },
            DeliveryPolicy {
                per_tenant_concurrency: 0,
                ..ok.clone()
            },
            DeliveryPolicy {
                poll_interval: Duration::ZERO,
                ..ok.clone()
            },
        ];
        for p in cases {
            assert!(p.validate().is_err(), "{p:?}");
        }
    }
}
