//! Token buckets: per-source flood limits and per-tenant call rates. Both maps are
//! bounded (sources by configuration, tenants by policy).

use std::collections::HashMap;
use std::net::IpAddr;

use tokio::time::Instant;

use crate::config::FloodLimits;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            last: now,
        }
    }

    fn take(&mut self, rate: f64, burst: f64, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Per-source message rate (pike-style).
pub struct FloodGuard {
    limits: FloodLimits,
    sources: HashMap<IpAddr, Bucket>,
}

impl FloodGuard {
    pub fn new(limits: FloodLimits) -> Self {
        Self {
            limits,
            sources: HashMap::new(),
        }
    }

    /// Whether one more message from `ip` is within limits.
    pub fn allow(&mut self, ip: IpAddr, allowed_source: bool, now: Instant) -> bool {
        let rate = if allowed_source {
            match self.limits.allowed_messages_per_second {
                Some(r) => f64::from(r),
                None => return true,
            }
        } else {
            f64::from(self.limits.messages_per_second)
        };
        let burst = f64::from(self.limits.burst.max(1)).max(rate);
        if !self.sources.contains_key(&ip) && self.sources.len() >= self.limits.max_sources {
            // Forget sources whose buckets have refilled; if none, refuse newcomers.
            self.sources.retain(|_, b| {
                now.saturating_duration_since(b.last).as_secs_f64() * rate + b.tokens < burst
            });
            if self.sources.len() >= self.limits.max_sources {
                return false;
            }
        }
        self.sources
            .entry(ip)
            .or_insert_with(|| Bucket::full(burst, now))
            .take(rate, burst, now)
    }
}

/// New calls per second per tenant.
#[derive(Default)]
pub struct CallRate {
    tenants: HashMap<String, Bucket>,
}

impl CallRate {
    /// Takes a token for `tenant` at `cps` calls per second (burst = cps).
    pub fn allow(&mut self, tenant: &str, cps: u32, now: Instant) -> bool {
        let rate = f64::from(cps.max(1));
        if let Some(b) = self.tenants.get_mut(tenant) {
            return b.take(rate, rate, now);
        }
        if self.tenants.len() >= 10_000 {
            self.tenants.clear();
        }
        let mut b = Bucket::full(rate, now);
        let ok = b.take(rate, rate, now);
        self.tenants.insert(tenant.to_string(), b);
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_refill() {
        let now = Instant::now();
        let mut g = FloodGuard::new(FloodLimits {
            messages_per_second: 2,
            burst: 2,
            allowed_messages_per_second: None,
            max_sources: 1,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(g.allow(a, false, now));
        assert!(g.allow(a, false, now));
        assert!(!g.allow(a, false, now));
        assert!(!g.allow(b, false, now), "table full");
        assert!(g.allow(a, true, now), "allowed sources are exempt");
        let later = now + Duration::from_secs(2);
        assert!(g.allow(b, false, later), "refilled source evicted");
        let mut r = CallRate::default();
        assert!(r.allow("acme", 1, now));
        assert!(!r.allow("acme", 1, now));
        assert!(r.allow("acme", 1, now + Duration::from_millis(1100)));
    }
}
