//! The delivery engine: one attempt per job ([`Deliverer::deliver_once`]) and the
//! polling loop ([`Deliverer::run`]) that feeds due jobs into it under a global
//! bound (`batch`) and a per-tenant bound (`per_tenant_concurrency`).
//!
//! Every attempt ends with the job's new state written through
//! [`OutboxSource::update`]; metrics are counted only after that write, so a
//! counted delivery is a stored one. If the write fails the job simply stays due
//! in the store and is sent again later with the same `webhook-id`.
//!
//! Before each fill the loop runs the catch-up passes [`crate::catchup`] asks for: a
//! tenant whose endpoint just answered 2xx gets a batch of its delayed jobs made due
//! ([`OutboxSource::bring_forward`]), which that same fill then starts.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use c2c_callstate::{OutboxBacklog, OutboxEntry, OutboxState};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tracing::{debug, error, info, warn};

use crate::attempt::{self, Attempt};
use crate::backoff;
use crate::catchup::{CatchUp, Seen};
use crate::error::{ConfigError, DeliverError};
use crate::metrics::{DeliveryResult, WebhookMetrics};
use crate::policy::DeliveryPolicy;
use crate::source::{EndpointResolver, OutboxSource, PayloadExtension};

/// What happened to a job in one pass. The job's new state is already stored
/// when this is returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx; state `Delivered`.
    Delivered { status: u16 },
    /// Failed, will be tried again at `next_attempt_ms`; state `Pending`.
    Retry {
        next_attempt_ms: u64,
        reason: String,
    },
    /// Failed and older than `max_age`; state `Failed`.
    Failed { reason: String },
    /// 410 Gone, or parked past `max_age`; state `Disabled`.
    Disabled { reason: String },
    /// The tenant's endpoint is disabled by policy; not attempted, looked at again
    /// at `next_attempt_ms`; state `Pending`, `attempts` unchanged.
    Parked { next_attempt_ms: u64 },
}

/// Delivers webhooks. Cheap to clone (clones share everything, including the
/// concurrency limits and the kick).
#[derive(Clone)]
pub struct Deliverer {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    source: Arc<dyn OutboxSource>,
    resolver: Arc<dyn EndpointResolver>,
    /// Set once, before the loop runs ([`Deliverer::set_extension`]).
    extension: std::sync::OnceLock<Arc<dyn PayloadExtension>>,
    policy: DeliveryPolicy,
    metrics: WebhookMetrics,
    global: Arc<Semaphore>,
    // One semaphore per tenant ever seen; tenants are bounded by policy, so this
    // map stays small and is never pruned.
    tenants: Mutex<HashMap<String, Arc<Semaphore>>>,
    // Seqs being delivered right now (loop or deliver_once), so a job is never
    // sent twice concurrently even though it stays "due" in the store meanwhile.
    inflight: Mutex<HashSet<u64>>,
    kick: Arc<Notify>,
    // Which tenants' delayed jobs to bring forward after their endpoint recovered.
    // Never held across an await or a store call.
    catchup: Mutex<CatchUp>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Critical sections never panic half-way; a poisoned lock still holds
    // consistent data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn now_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Marks a seq as in flight for as long as it lives (also on panic/cancel).
struct InflightGuard {
    inner: Arc<Inner>,
    seq: u64,
}

impl InflightGuard {
    fn claim(inner: &Arc<Inner>, seq: u64) -> Option<Self> {
        lock(&inner.inflight).insert(seq).then(|| Self {
            inner: Arc::clone(inner),
            seq,
        })
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        lock(&self.inner.inflight).remove(&self.seq);
    }
}

impl Deliverer {
    /// `client` is the process-wide client (built once with
    /// `redirect(Policy::none())`).
    pub fn new(
        client: reqwest::Client,
        source: Arc<dyn OutboxSource>,
        resolver: Arc<dyn EndpointResolver>,
        policy: DeliveryPolicy,
        metrics: WebhookMetrics,
    ) -> Result<Self, ConfigError> {
        policy.validate()?;
        // A brought-forward job not attempted within two request timeouts (plus the poll
        // that should have picked it) is stuck behind its tenant's slots or gone.
        let stale = policy
            .request_timeout
            .saturating_mul(2)
            .saturating_add(policy.poll_interval.saturating_mul(2));
        let catchup = CatchUp::new(policy.per_tenant_concurrency, stale);
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                source,
                resolver,
                extension: std::sync::OnceLock::new(),
                global: Arc::new(Semaphore::new(policy.batch)),
                policy,
                metrics,
                tenants: Mutex::new(HashMap::new()),
                inflight: Mutex::new(HashSet::new()),
                kick: Arc::new(Notify::new()),
                catchup: Mutex::new(catchup),
            }),
        })
    }

    pub fn policy(&self) -> &DeliveryPolicy {
        &self.inner.policy
    }

    /// Bodies beyond the contract for the tenants that opted in (see
    /// [`PayloadExtension`]). Only the first call counts; the extension is asked from
    /// then on.
    pub fn set_extension(&self, extension: Arc<dyn PayloadExtension>) {
        if self.inner.extension.set(extension).is_err() {
            warn!("a second webhook payload extension ignored");
        }
    }

    pub fn metrics(&self) -> &WebhookMetrics {
        &self.inner.metrics
    }

    /// Wake the run loop now (e.g. right after a webhook was enqueued) instead of
    /// at the next poll tick. Never lost: a kick while the loop is busy makes its
    /// next wait return at once.
    pub fn kick(&self) {
        self.inner.kick.notify_one();
    }

    /// The `Notify` behind [`Deliverer::kick`], for code that must not depend on
    /// this crate (call `notify_one()` on it).
    pub fn kick_handle(&self) -> Arc<Notify> {
        Arc::clone(&self.inner.kick)
    }

    /// Number of jobs being delivered right now.
    pub fn in_flight(&self) -> usize {
        lock(&self.inner.inflight).len()
    }

    /// One delivery pass for `job` (must be `Pending`), regardless of its
    /// `next_attempt_ms` — for a replay CLI after requeueing. Waits for the
    /// tenant's and the global concurrency slots, attempts (or parks), stores the
    /// new state through the source, and returns what happened.
    pub async fn deliver_once(&self, job: OutboxEntry) -> Result<Outcome, DeliverError> {
        if job.state != OutboxState::Pending {
            return Err(DeliverError::NotPending {
                seq: job.seq,
                state: job.state,
            });
        }
        let _claim = InflightGuard::claim(&self.inner, job.seq)
            .ok_or(DeliverError::InFlight { seq: job.seq })?;
        // Tenant slot first, so waiting on a busy tenant holds no global slot.
        let _tenant = self
            .tenant_semaphore(&job.tenant)
            .acquire_owned()
            .await
            .map_err(|_| DeliverError::Closed)?;
        let _global = Arc::clone(&self.inner.global)
            .acquire_owned()
            .await
            .map_err(|_| DeliverError::Closed)?;
        self.handle(job).await
    }

    /// Read the outbox stats (one pass) and set the gauges: the totals and each
    /// tenant's oldest undelivered webhook age (0 for a tenant whose backlog drained).
    pub async fn refresh_metrics(&self) -> Result<OutboxBacklog, DeliverError> {
        let stats = self.inner.source.stats().await?;
        let now = now_ms();
        let age_s = |created: u64| now.saturating_sub(created) as f64 / 1000.0;
        let oldest = stats.oldest_created_ms.map(age_s).unwrap_or(0.0);
        self.inner.metrics.set_outbox(stats.pending, oldest);
        let by_tenant: BTreeMap<String, f64> = stats
            .oldest_by_tenant
            .iter()
            .map(|(t, c)| (t.clone(), age_s(*c)))
            .collect();
        self.inner.metrics.set_backlog(&by_tenant);
        Ok(stats)
    }

    /// The delivery loop. Polls every `poll_interval`, on [`Deliverer::kick`], and
    /// when a finished attempt frees a slot while due jobs were left behind.
    /// Returns when `shutdown` becomes `true` (or its sender is dropped), after the
    /// attempts already in flight have finished and been stored (each is bounded by
    /// `request_timeout`); no new attempt starts after the signal.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let policy = &self.inner.policy;
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut tick = tokio::time::interval(policy.poll_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_stats: Option<Instant> = None;
        let mut backlog = false;
        info!(
            batch = policy.batch,
            per_tenant = policy.per_tenant_concurrency,
            "webhook delivery loop started"
        );
        loop {
            if *shutdown.borrow_and_update() {
                break;
            }
            tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    // A dropped sender can never signal again: treat it as shutdown.
                    if changed.is_err() {
                        break;
                    }
                    continue;
                }
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Err(e) = joined {
                        error!(panic = e.is_panic(), "webhook delivery task aborted");
                    }
                    // Only refetch on completion if due jobs were left behind.
                    if !backlog {
                        continue;
                    }
                }
                _ = self.inner.kick.notified() => {}
                _ = tick.tick() => {
                    if last_stats.is_none_or(|t| t.elapsed() >= policy.stats_interval) {
                        last_stats = Some(Instant::now());
                        if let Err(e) = self.refresh_metrics().await {
                            warn!(error = %e, "reading outbox stats failed");
                        }
                    }
                }
            }
            self.catch_up().await;
            backlog = self.fill(&mut tasks).await;
        }
        info!(
            in_flight = tasks.len(),
            "webhook delivery loop stopping; finishing in-flight attempts"
        );
        while let Some(joined) = tasks.join_next().await {
            if let Err(e) = joined {
                error!(panic = e.is_panic(), "webhook delivery task aborted");
            }
        }
        info!("webhook delivery loop stopped");
    }

    /// Bring forward the delayed jobs of tenants whose endpoint answered 2xx again (see
    /// [`crate::catchup`]): one store batch per such tenant, at most its concurrency limit,
    /// made due now so the `fill` that follows starts them.
    async fn catch_up(&self) {
        let inner = &self.inner;
        if !inner.policy.catch_up {
            return;
        }
        let now = now_ms();
        let wanted = lock(&inner.catchup).wanted(now);
        for (tenant, limit) in wanted {
            let mut keep = lock(&inner.catchup).exclusions(&tenant);
            keep.extend(lock(&inner.inflight).iter().copied());
            let mut eligible = |seq: u64| !keep.contains(&seq);
            let seqs = match inner
                .source
                .bring_forward(&tenant, now, limit, &mut eligible)
                .await
            {
                Ok(seqs) => seqs,
                Err(e) => {
                    // Left as it was: the next wake-up tries again.
                    warn!(%tenant, error = %e, "bringing delayed webhooks forward failed");
                    continue;
                }
            };
            let p = lock(&inner.catchup).brought(&tenant, limit, &seqs, now);
            if p.started {
                info!(%tenant, brought_forward = seqs.len(), "CRM webhook endpoint answers again; bringing its delayed webhooks forward");
            } else if !seqs.is_empty() {
                debug!(%tenant, brought_forward = seqs.len(), "more delayed webhooks brought forward");
            }
            if p.finished {
                info!(%tenant, total = p.total, "CRM webhook catch-up done: nothing waits on a backoff");
            }
        }
    }

    /// Fetch due jobs and start as many as the limits allow. Returns true when
    /// due jobs were (or may have been) left behind for lack of a slot.
    async fn fill(&self, tasks: &mut JoinSet<()>) -> bool {
        let inner = &self.inner;
        let free = inner.global.available_permits();
        if free == 0 {
            return true;
        }
        // Jobs in flight are still due in the store, and a tenant at its concurrency
        // limit cannot start another: the source skips both without reading them, so
        // `free` jobs are fetched and each can start.
        let in_flight = lock(&inner.inflight).clone();
        let mut room: HashMap<String, usize> = lock(&inner.tenants)
            .iter()
            .map(|(t, s)| (t.clone(), s.available_permits()))
            .collect();
        let per_tenant = inner.policy.per_tenant_concurrency;
        let mut tenant_full = false;
        let now = now_ms();
        let fetched = {
            let mut admit = |seq: u64, tenant: &str| {
                if in_flight.contains(&seq) {
                    return false;
                }
                let left = match room.get_mut(tenant) {
                    Some(left) => left,
                    None => room.entry(tenant.to_owned()).or_insert(per_tenant),
                };
                if *left == 0 {
                    // Due but waiting for its tenant: look again when a slot frees.
                    tenant_full = true;
                    return false;
                }
                *left -= 1;
                true
            };
            inner.source.due_held(now, free, &mut admit).await
        };
        let (jobs, held_back) = match fetched {
            Ok(fetched) => fetched,
            Err(e) => {
                warn!(error = %e, "fetching due webhooks failed");
                return false;
            }
        };
        // Due jobs left behind, by us (a tenant at its limit, no free slot) or by the
        // source (the fleet's per-tenant limit): look again when a job finishes.
        let mut backlog = tenant_full || held_back || jobs.len() >= free;
        for job in jobs {
            // Defensive: the source is trusted to filter, but a sloppy one must not
            // make us resend delivered webhooks.
            if !job.is_due(now) {
                continue;
            }
            let Some(claim) = InflightGuard::claim(inner, job.seq) else {
                continue;
            };
            let Ok(global) = Arc::clone(&inner.global).try_acquire_owned() else {
                backlog = true;
                break;
            };
            let Ok(tenant) = self.tenant_semaphore(&job.tenant).try_acquire_owned() else {
                backlog = true;
                continue;
            };
            let this = self.clone();
            tasks.spawn(async move {
                let permits: (OwnedSemaphorePermit, OwnedSemaphorePermit, InflightGuard) =
                    (global, tenant, claim);
                let seq = job.seq;
                if let Err(e) = this.handle(job).await {
                    warn!(seq, error = %e, "webhook result not stored; it stays due");
                }
                drop(permits);
            });
        }
        backlog
    }

    fn tenant_semaphore(&self, tenant: &str) -> Arc<Semaphore> {
        let mut map = lock(&self.inner.tenants);
        if let Some(s) = map.get(tenant) {
            return Arc::clone(s);
        }
        let s = Arc::new(Semaphore::new(self.inner.policy.per_tenant_concurrency));
        map.insert(tenant.to_owned(), Arc::clone(&s));
        s
    }

    /// Resolve, attempt (or park), store, then count. Caller holds the slots.
    async fn handle(&self, mut job: OutboxEntry) -> Result<Outcome, DeliverError> {
        let inner = &self.inner;
        let (outcome, counted) = match inner.resolver.resolve(&job.tenant) {
            Some(ep) if ep.disabled => self.park(&mut job, now_ms()),
            Some(ep) => {
                let extended = match inner.extension.get() {
                    Some(x) => x.body(&job).await,
                    None => None,
                };
                let body = extended.as_deref().unwrap_or(&job.payload_json);
                let attempt = attempt::post(&inner.client, &inner.policy, &job, body, &ep).await;
                job.attempts = job.attempts.saturating_add(1);
                if matches!(attempt, Attempt::Status { code: 410, .. }) {
                    // Tell policy at once so queued jobs of this tenant park
                    // instead of hitting the dead endpoint too.
                    warn!(tenant = %job.tenant, seq = job.seq, "CRM endpoint answered 410 Gone; disabling it");
                    inner.resolver.endpoint_gone(&job.tenant);
                }
                self.decide(&mut job, attempt, now_ms())
            }
            None => {
                job.attempts = job.attempts.saturating_add(1);
                let attempt = Attempt::NotSent("no webhook endpoint configured");
                self.decide(&mut job, attempt, now_ms())
            }
        };
        // Durable first: only a stored result counts as handled.
        inner.source.update(&job).await?;
        if let Some(result) = counted {
            inner.metrics.delivery(&job.tenant, result);
        }
        if inner.policy.catch_up {
            let seen = match &outcome {
                Outcome::Delivered { .. } => Seen::Delivered,
                Outcome::Retry { .. } => Seen::Failed,
                _ => Seen::Other,
            };
            if lock(&inner.catchup).seen(&job.tenant, job.seq, seen, now_ms()) {
                // The loop brings the tenant's delayed jobs forward on its next turn.
                inner.kick.notify_one();
            }
        }
        self.log(&job, &outcome);
        Ok(outcome)
    }

    fn park(&self, job: &mut OutboxEntry, now: u64) -> (Outcome, Option<DeliveryResult>) {
        let policy = &self.inner.policy;
        if job.retry_age_ms(now) >= ms(policy.max_age) {
            let reason = "endpoint disabled past max_age".to_owned();
            job.state = OutboxState::Disabled;
            job.last_error = Some(reason.clone());
            return (Outcome::Disabled { reason }, Some(DeliveryResult::Disabled));
        }
        job.next_attempt_ms = now.saturating_add(ms(policy.park_interval));
        job.retry_after = false;
        job.last_error = Some("endpoint disabled (parked)".to_owned());
        (
            Outcome::Parked {
                next_attempt_ms: job.next_attempt_ms,
            },
            None,
        )
    }

    /// Map an attempt to the job's next state (the spec's outcome table).
    fn decide(
        &self,
        job: &mut OutboxEntry,
        attempt: Attempt,
        now: u64,
    ) -> (Outcome, Option<DeliveryResult>) {
        let policy = &self.inner.policy;
        let (reason, retry_after) = match attempt {
            Attempt::Status { code, .. } if (200..300).contains(&code) => {
                job.state = OutboxState::Delivered;
                job.delivered_ms = Some(now);
                job.last_error = None;
                return (
                    Outcome::Delivered { status: code },
                    Some(DeliveryResult::Delivered),
                );
            }
            Attempt::Status { code: 410, .. } => {
                let reason = "http 410 gone: endpoint disabled".to_owned();
                job.state = OutboxState::Disabled;
                job.last_error = Some(reason.clone());
                return (Outcome::Disabled { reason }, Some(DeliveryResult::Disabled));
            }
            Attempt::Status { code, retry_after } => {
                let reason = if (300..400).contains(&code) {
                    format!("http {code} redirect not followed")
                } else {
                    format!("http {code}")
                };
                // Retry-After is only honoured where the spec says so.
                (reason, retry_after.filter(|_| code == 429 || code == 503))
            }
            Attempt::Transport(r) | Attempt::NotSent(r) => (r.to_owned(), None),
        };
        job.last_error = Some(reason.clone());
        if job.retry_age_ms(now) >= ms(policy.max_age) {
            job.state = OutboxState::Failed;
            return (Outcome::Failed { reason }, Some(DeliveryResult::Failed));
        }
        let delay = match retry_after {
            Some(wait) => backoff::clamp_retry_after(wait, policy.retry_after_cap),
            None => backoff::next_delay(&policy.schedule, job.attempts),
        };
        job.next_attempt_ms = now.saturating_add(ms(delay));
        // The CRM's own time is kept even when catch-up brings the tenant's backlog forward.
        job.retry_after = retry_after.is_some();
        (
            Outcome::Retry {
                next_attempt_ms: job.next_attempt_ms,
                reason,
            },
            Some(DeliveryResult::Retry),
        )
    }

    fn log(&self, job: &OutboxEntry, outcome: &Outcome) {
        let (tenant, seq, call_id, attempts) = (&job.tenant, job.seq, &job.call_id, job.attempts);
        match outcome {
            Outcome::Delivered { status } => {
                debug!(%tenant, seq, %call_id, attempts, status, "webhook delivered")
            }
            Outcome::Retry {
                next_attempt_ms,
                reason,
            } => {
                info!(%tenant, seq, %call_id, attempts, %reason, next_attempt_ms, "webhook attempt failed; will retry")
            }
            Outcome::Failed { reason } => {
                warn!(%tenant, seq, %call_id, attempts, %reason, "webhook given up after max_age")
            }
            Outcome::Disabled { reason } => {
                warn!(%tenant, seq, %call_id, attempts, %reason, "webhook disabled")
            }
            Outcome::Parked { next_attempt_ms } => {
                debug!(%tenant, seq, %call_id, next_attempt_ms, "webhook parked: endpoint disabled")
            }
        }
    }
}
