//! Catch-up after a CRM outage: which tenants' delayed jobs to bring forward, and how many.
//!
//! During an outage every job of the tenant climbs the backoff schedule; after the
//! endpoint recovers, each would wait out its own step (up to hours). A 2xx proves the
//! endpoint works again, so the jobs waiting on a backoff are brought forward (made due
//! now in the store, [`crate::OutboxSource::bring_forward`]) — but only as fast as the
//! endpoint keeps proving it:
//!
//! - only after a success, and each refill needs a success since the previous one;
//! - at most `per_tenant_concurrency` brought-forward jobs not yet attempted
//!   (`outstanding`), refilled once half of them have been attempted, so the tenant's
//!   slots stay busy without a burst beyond them;
//! - a brought-forward job that fails again keeps its new backoff step (the attempt
//!   counted) and is *burned*: not brought forward again until it has been attempted on
//!   its own schedule. A flapping endpoint, or a payload the CRM always refuses, thus
//!   gets at most one extra attempt per job per scheduled attempt;
//! - jobs whose time is the CRM's `Retry-After` are never moved (the store skips them);
//! - a tenant is *drained* once a pass finds fewer jobs than it asked for, and stays so
//!   until one of its attempts fails: a healthy tenant costs no store reads here.
//!
//! Pure state, no I/O: the deliverer records what happened to each handled job
//! ([`CatchUp::seen`]), asks which tenants want a pass ([`CatchUp::wanted`]), runs it
//! against the store and reports back ([`CatchUp::brought`]). Nothing here is
//! persistent: after a restart every tenant starts undrained, so the first success
//! re-derives the episode from the store (brought-forward due times are durable there).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::backoff::MAX_STEP;

/// What happened to a handled job, as far as catch-up cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// 2xx: the endpoint works.
    Delivered,
    /// Attempted (or refused before sending) and will be retried on a backoff.
    Failed,
    /// Parked, given up or disabled: says nothing about the endpoint working.
    Other,
}

/// A pass that brought jobs forward, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    /// First batch since the tenant was last drained.
    pub started: bool,
    /// Nothing more waits on a backoff; `total` jobs were brought forward in all.
    pub finished: bool,
    pub total: u64,
}

#[derive(Debug, Default)]
struct Tenant {
    /// A delivery succeeded since the last pass.
    proven: bool,
    /// The last pass found fewer jobs than it asked for and nothing failed since.
    drained: bool,
    /// Brought forward, not attempted since: seq -> when (ms).
    outstanding: HashMap<u64, u64>,
    /// Failed right after being brought forward: seq -> when (ms).
    burned: HashMap<u64, u64>,
    /// Jobs brought forward since the tenant was last drained (0: no episode running).
    episode: u64,
}

#[derive(Debug)]
pub(crate) struct CatchUp {
    batch: usize,
    /// An outstanding job not attempted for this long is forgotten (it was delivered
    /// elsewhere, purged, or is stuck behind its tenant's slots), so it cannot hold the
    /// tenant's catch-up back for good.
    stale_ms: u64,
    // One entry per tenant ever seen, like the deliverer's semaphores: bounded by policy.
    tenants: HashMap<String, Tenant>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl CatchUp {
    /// `batch`: the tenant's concurrency limit. `stale`: see [`CatchUp::stale_ms`].
    pub(crate) fn new(batch: usize, stale: Duration) -> Self {
        Self {
            batch: batch.max(1),
            stale_ms: ms(stale),
            tenants: HashMap::new(),
        }
    }

    /// Records a handled job (its new state already stored). True when the tenant now
    /// wants a pass: wake the loop.
    pub(crate) fn seen(&mut self, tenant: &str, seq: u64, what: Seen, now_ms: u64) -> bool {
        let t = match self.tenants.get_mut(tenant) {
            Some(t) => t,
            None => self.tenants.entry(tenant.to_owned()).or_default(),
        };
        let brought = t.outstanding.remove(&seq).is_some();
        // Attempted on its own schedule (or brought and attempted): eligible again.
        t.burned.remove(&seq);
        match what {
            Seen::Delivered => t.proven = true,
            Seen::Failed => {
                // The latest word from the endpoint is a failure: wait for a success, and
                // look for delayed jobs again after it.
                t.proven = false;
                t.drained = false;
                if brought {
                    t.burned.insert(seq, now_ms);
                }
            }
            Seen::Other => t.proven = false,
        }
        t.proven && !t.drained && room(self.batch, t) > 0
    }

    /// Tenants that want a pass now and how many jobs each may bring forward.
    pub(crate) fn wanted(&mut self, now_ms: u64) -> Vec<(String, usize)> {
        let (batch, stale) = (self.batch, self.stale_ms);
        let mut out = Vec::new();
        for (name, t) in &mut self.tenants {
            if !t.proven || t.drained {
                continue;
            }
            t.outstanding
                .retain(|_, at| now_ms.saturating_sub(*at) < stale);
            // After its longest backoff step a burned job has had its own attempt.
            t.burned
                .retain(|_, at| now_ms.saturating_sub(*at) <= ms(MAX_STEP));
            let n = room(batch, t);
            if n > 0 {
                out.push((name.clone(), n));
            }
        }
        out
    }

    /// Seqs of `tenant` a pass must leave where they are.
    pub(crate) fn exclusions(&self, tenant: &str) -> HashSet<u64> {
        self.tenants
            .get(tenant)
            .map(|t| {
                t.outstanding
                    .keys()
                    .chain(t.burned.keys())
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A pass for `tenant` asked for `asked` jobs and brought `seqs` forward.
    pub(crate) fn brought(
        &mut self,
        tenant: &str,
        asked: usize,
        seqs: &[u64],
        now_ms: u64,
    ) -> Progress {
        let t = match self.tenants.get_mut(tenant) {
            Some(t) => t,
            None => self.tenants.entry(tenant.to_owned()).or_default(),
        };
        let started = t.episode == 0 && !seqs.is_empty();
        t.episode += seqs.len() as u64;
        t.outstanding.extend(seqs.iter().map(|&s| (s, now_ms)));
        // The next refill needs a new success.
        t.proven = false;
        let finished = seqs.len() < asked;
        let total = t.episode;
        if finished {
            t.drained = true;
            t.episode = 0;
        }
        Progress {
            started,
            finished: finished && total > 0,
            total,
        }
    }
}

/// How many more may be brought forward: refill to `batch` once half of the outstanding
/// batch has been attempted.
fn room(batch: usize, t: &Tenant) -> usize {
    let out = t.outstanding.len();
    if out.saturating_mul(2) > batch {
        0
    } else {
        batch - out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALE: Duration = Duration::from_secs(30);

    #[test]
    fn only_a_success_starts_a_pass_and_a_healthy_tenant_costs_nothing() {
        let mut c = CatchUp::new(4, STALE);
        assert!(c.wanted(0).is_empty());
        assert!(!c.seen("acme", 1, Seen::Failed, 0));
        assert!(
            c.wanted(0).is_empty(),
            "a failure alone brings nothing forward"
        );
        assert!(c.seen("acme", 2, Seen::Delivered, 10));
        assert_eq!(c.wanted(10), vec![("acme".to_string(), 4)]);
        // The store had fewer than asked: drained, and further successes do nothing.
        let p = c.brought("acme", 4, &[1], 10);
        assert_eq!(
            p,
            Progress {
                started: true,
                finished: true,
                total: 1
            }
        );
        assert!(!c.seen("acme", 1, Seen::Delivered, 20));
        assert!(!c.seen("acme", 3, Seen::Delivered, 30));
        assert!(c.wanted(30).is_empty());
        // A new failure undrains it; the next success asks again.
        c.seen("acme", 4, Seen::Failed, 40);
        assert!(c.seen("acme", 5, Seen::Delivered, 50));
        assert_eq!(c.wanted(50), vec![("acme".to_string(), 4)]);
    }

    #[test]
    fn refills_after_half_the_batch_and_never_beyond_it() {
        let mut c = CatchUp::new(4, STALE);
        c.seen("acme", 100, Seen::Delivered, 0);
        let p = c.brought("acme", 4, &[1, 2, 3, 4], 0);
        assert!(p.started && !p.finished);
        assert!(
            c.wanted(0).is_empty(),
            "the next refill needs a new success"
        );
        assert!(
            !c.seen("acme", 1, Seen::Delivered, 1),
            "3 outstanding: no room"
        );
        assert!(c.seen("acme", 2, Seen::Delivered, 2));
        assert_eq!(c.wanted(2), vec![("acme".to_string(), 2)]);
        let ex = c.exclusions("acme");
        assert_eq!(ex, HashSet::from([3, 4]));
        let p = c.brought("acme", 2, &[5, 6], 2);
        assert!(!p.started && !p.finished && p.total == 6);
    }

    #[test]
    fn a_brought_job_that_fails_again_is_burned_and_stops_the_refill() {
        let mut c = CatchUp::new(2, STALE);
        c.seen("acme", 100, Seen::Delivered, 0);
        c.brought("acme", 2, &[1, 2], 0);
        assert!(
            !c.seen("acme", 1, Seen::Failed, 5),
            "a failure stops the refill"
        );
        assert!(c.wanted(5).is_empty());
        // Another success: a pass again, which leaves the re-failed job on its schedule.
        assert!(c.seen("acme", 2, Seen::Delivered, 6));
        assert!(c.exclusions("acme").contains(&1), "burned");
        // Attempted again on its own schedule: eligible again.
        c.seen("acme", 1, Seen::Failed, 10_000);
        assert!(!c.exclusions("acme").contains(&1));
        // Burned entries expire after the longest backoff step.
        c.seen("acme", 200, Seen::Delivered, 20_000);
        c.brought("acme", 2, &[7, 8], 20_000);
        c.seen("acme", 7, Seen::Failed, 20_001);
        c.seen("acme", 8, Seen::Delivered, 20_002);
        assert!(c.exclusions("acme").contains(&7));
        c.wanted(20_002 + ms(MAX_STEP) + 1);
        assert!(!c.exclusions("acme").contains(&7));
    }

    #[test]
    fn stale_outstanding_jobs_do_not_block_the_tenant() {
        let mut c = CatchUp::new(2, STALE);
        c.seen("acme", 100, Seen::Delivered, 0);
        c.brought("acme", 2, &[1, 2], 0);
        // Never seen again (purged, delivered elsewhere); a success of another job.
        assert!(!c.seen("acme", 3, Seen::Delivered, 1));
        assert!(c.wanted(1).is_empty());
        assert_eq!(c.wanted(ms(STALE) + 1), vec![("acme".to_string(), 2)]);
    }

    #[test]
    fn tenants_are_independent() {
        let mut c = CatchUp::new(4, STALE);
        c.seen("beta", 1, Seen::Failed, 0);
        c.seen("acme", 2, Seen::Failed, 0);
        c.seen("acme", 3, Seen::Delivered, 1);
        assert_eq!(c.wanted(1), vec![("acme".to_string(), 4)]);
        c.seen("acme", 4, Seen::Other, 2);
        assert!(c.wanted(2).is_empty(), "parked or given up proves nothing");
    }
}
