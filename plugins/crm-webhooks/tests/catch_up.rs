//! Catch-up after a CRM outage (issue 18): once a tenant's endpoint answers 2xx again, its
//! jobs parked on long backoff steps are brought forward and drain in seconds, within the
//! tenant's concurrency, with their stable ids; a flapping endpoint is not hammered, the
//! CRM's `Retry-After` holds, and other tenants are left alone. Plus the backlog gauge.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use c2c_callstate::{OutboxEntry, OutboxState};
use c2c_crm_webhooks::{Deliverer, DeliveryPolicy, WebhookMetrics};
use common::*;
use tokio::sync::watch;

/// After the third failure a job waits up to 4 h (full jitter over the capped step):
/// "parked", as the jobs were on the 30-minute step.
fn parking_policy(per_tenant: usize) -> DeliveryPolicy {
    DeliveryPolicy {
        schedule: vec![
            Duration::from_millis(10),
            Duration::from_millis(20),
            Duration::from_secs(4 * 3600),
        ],
        per_tenant_concurrency: per_tenant,
        retry_after_cap: Duration::from_secs(3600),
        ..fast_policy()
    }
}

struct Fixture {
    outbox: Arc<MemOutbox>,
    deliverer: Deliverer,
    stop: watch::Sender<bool>,
    run: tokio::task::JoinHandle<()>,
}

fn start(policy: DeliveryPolicy, outbox: Arc<MemOutbox>, resolver: Arc<MapResolver>) -> Fixture {
    let deliverer = Deliverer::new(
        client(Duration::from_secs(15)),
        outbox.clone(),
        resolver,
        policy,
        WebhookMetrics::new().unwrap(),
    )
    .unwrap();
    let (stop, rx) = watch::channel(false);
    let d = deliverer.clone();
    let run = tokio::spawn(async move { d.run(rx).await });
    Fixture {
        outbox,
        deliverer,
        stop,
        run,
    }
}

impl Fixture {
    async fn stop(&mut self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), &mut self.run)
            .await
            .expect("run loop stops")
            .unwrap();
    }
}

/// What the receiver answered, per request: (api key, webhook-id, status).
type Log = Arc<Mutex<Vec<(String, String, u16)>>>;

fn log_reply(log: &Log, r: &Request, reply: Reply) -> Reply {
    log.lock().unwrap().push((
        r.header("x-api-key").unwrap_or("").to_owned(),
        r.header("webhook-id").unwrap_or("").to_owned(),
        reply.status,
    ));
    reply
}

/// Waits until every job in `seqs` has failed at least 3 times: parked on the long step.
async fn wait_parked(outbox: &MemOutbox, seqs: impl Iterator<Item = u64> + Clone) {
    assert!(
        wait_until(Duration::from_secs(10), || seqs
            .clone()
            .all(|s| outbox.get(s).attempts >= 3))
        .await,
        "jobs did not reach the long backoff step"
    );
}

#[tokio::test]
async fn a_recovered_endpoint_drains_the_tenants_backlog_in_seconds_within_its_concurrency() {
    const PER_TENANT: usize = 3;
    let up = Arc::new(AtomicBool::new(false));
    let log: Log = Arc::default();
    let (u, l) = (up.clone(), log.clone());
    let sink = Sink::start(move |_, r| {
        let acme = r.header("x-api-key") == Some("k-acme");
        let reply = if acme && u.load(Ordering::SeqCst) {
            // Slow enough that the tenant's slots fill up while it drains.
            Reply::status(200).delay(Duration::from_millis(40))
        } else {
            Reply::status(503)
        };
        log_reply(&l, r, reply)
    })
    .await;
    let (outbox, resolver) = (MemOutbox::new(), MapResolver::new());
    resolver.set("acme", endpoint(sink.url("/acme"), "k-acme"));
    resolver.set("beta", endpoint(sink.url("/beta"), "k-beta"));
    let acme: Vec<u64> = (1..=24).collect();
    let beta: Vec<u64> = (101..=104).collect();
    for &s in &acme {
        outbox.insert(job(s, "acme"));
    }
    for &s in &beta {
        outbox.insert(job(s, "beta"));
    }
    let mut f = start(parking_policy(PER_TENANT), outbox, resolver);
    wait_parked(&f.outbox, acme.iter().chain(&beta).copied()).await;
    let parked: HashMap<u64, OutboxEntry> =
        f.outbox.all().into_iter().map(|j| (j.seq, j)).collect();
    let beta_requests = |log: &Log| {
        log.lock()
            .unwrap()
            .iter()
            .filter(|(k, _, _)| k == "k-beta")
            .count()
    };
    let beta_before = beta_requests(&log);

    // The CRM is back; a call ends and its webhook goes through at once.
    up.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    f.outbox.insert(job(50, "acme"));
    f.deliverer.kick();
    let all_acme: Vec<u64> = acme.iter().copied().chain([50]).collect();
    let drained = wait_until(Duration::from_secs(5), || {
        all_acme
            .iter()
            .all(|&s| f.outbox.state(s) == OutboxState::Delivered)
    })
    .await;
    let took = t0.elapsed();
    let left: Vec<u64> = all_acme
        .iter()
        .copied()
        .filter(|&s| f.outbox.state(s) != OutboxState::Delivered)
        .collect();
    assert!(
        drained,
        "{} of 25 still pending {took:?} after recovery: {left:?}",
        left.len()
    );
    let end = now_ms();
    f.stop().await;

    // Never more than the tenant's concurrency at the receiver, and it was used.
    let max = sink.max_in_flight_for("k-acme");
    assert!(max <= PER_TENANT, "{max} in flight for acme");
    assert!(max >= 2, "the backlog drained one at a time");
    // Each webhook accepted exactly once, under its own stable id, and the stored attempt
    // count is every request ever made for it (bringing forward did not reset it).
    let sent_log = log.lock().unwrap().clone();
    for &s in &all_acme {
        let j = f.outbox.get(s);
        let sent: Vec<u16> = sent_log
            .iter()
            .filter(|(_, id, _)| *id == j.webhook_id)
            .map(|(_, _, st)| *st)
            .collect();
        assert_eq!(
            sent.iter().filter(|st| **st == 200).count(),
            1,
            "seq {s}: {sent:?}"
        );
        assert_eq!(j.attempts as usize, sent.len(), "seq {s}");
        if s != 50 {
            assert_eq!(j.attempts, parked[&s].attempts + 1, "seq {s}");
        }
    }
    // The other tenant's endpoint still fails: none of its jobs was brought forward.
    // (A job whose own jittered step ended during the test may have had its attempt.)
    assert!(f
        .outbox
        .brought
        .lock()
        .unwrap()
        .iter()
        .all(|(t, ..)| t == "acme"));
    let mut natural = 0;
    for &s in &beta {
        let (before, now) = (&parked[&s], f.outbox.get(s));
        if before.next_attempt_ms > end {
            assert_eq!(
                (now.attempts, now.next_attempt_ms, now.state),
                (
                    before.attempts,
                    before.next_attempt_ms,
                    OutboxState::Pending
                ),
                "beta seq {s} moved"
            );
        } else {
            natural += 1;
        }
    }
    assert_eq!(beta_requests(&log) - beta_before, natural);
}

#[tokio::test]
async fn a_flapping_endpoint_gets_one_batch_per_success_and_refailed_jobs_keep_their_backoff() {
    const PER_TENANT: usize = 3;
    // How many 200s the receiver may still give; everything else is 503.
    let grants = Arc::new(AtomicUsize::new(0));
    let log: Log = Arc::default();
    let (g, l) = (grants.clone(), log.clone());
    let sink = Sink::start(move |_, r| {
        let ok = g
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        log_reply(&l, r, Reply::status(if ok { 200 } else { 503 }))
    })
    .await;
    let (outbox, resolver) = (MemOutbox::new(), MapResolver::new());
    resolver.set("acme", endpoint(sink.url("/acme"), "k-acme"));
    let backlog: Vec<u64> = (1..=20).collect();
    for &s in &backlog {
        outbox.insert(job(s, "acme"));
    }
    let mut f = start(parking_policy(PER_TENANT), outbox, resolver);
    wait_parked(&f.outbox, backlog.iter().copied()).await;
    let parked: HashMap<u64, OutboxEntry> =
        f.outbox.all().into_iter().map(|j| (j.seq, j)).collect();
    let requests_before = log.lock().unwrap().len();

    // One success, then the endpoint fails again.
    grants.store(1, Ordering::SeqCst);
    f.outbox.insert(job(50, "acme"));
    f.deliverer.kick();
    assert!(
        wait_until(Duration::from_secs(3), || f.outbox.state(50)
            == OutboxState::Delivered)
        .await
    );
    // Let the brought-forward batch be attempted, and any further (wrong) refill happen.
    let first: Vec<u64> = {
        assert!(
            wait_until(Duration::from_secs(3), || {
                let b = f.outbox.brought.lock().unwrap();
                b.first().is_some_and(|(_, _, seqs)| {
                    seqs.iter()
                        .all(|&s| f.outbox.get(s).attempts > parked[&s].attempts)
                })
            })
            .await
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let b = f.outbox.brought.lock().unwrap();
        assert_eq!(b.len(), 1, "one pass per success: {b:?}");
        b[0].2.clone()
    };
    assert_eq!(
        first,
        vec![1, 2, 3],
        "oldest first, one batch of the concurrency"
    );
    let after_first = log.lock().unwrap().len() - requests_before;
    assert_eq!(
        after_first,
        1 + PER_TENANT,
        "the success and one failed batch"
    );
    let now = now_ms();
    for &s in &backlog {
        let (before, j) = (&parked[&s], f.outbox.get(s));
        assert_eq!(j.state, OutboxState::Pending);
        if first.contains(&s) {
            // Failed again: attempt counted, back on its (long) backoff step.
            assert_eq!(j.attempts, before.attempts + 1, "seq {s}");
            assert!(j.next_attempt_ms >= now.saturating_sub(1_000), "seq {s}");
            assert!(!j.retry_after);
        } else if before.next_attempt_ms > now {
            assert_eq!(j.next_attempt_ms, before.next_attempt_ms, "seq {s} moved");
        }
    }

    // The next success brings the next batch, never the jobs that just failed again.
    grants.store(1, Ordering::SeqCst);
    f.outbox.insert(job(51, "acme"));
    f.deliverer.kick();
    assert!(
        wait_until(Duration::from_secs(3), || f
            .outbox
            .brought
            .lock()
            .unwrap()
            .len()
            == 2)
        .await
    );
    let second = f.outbox.brought.lock().unwrap()[1].2.clone();
    f.stop().await;
    assert_eq!(second.len(), PER_TENANT);
    assert!(
        second.iter().all(|s| !first.contains(s)),
        "re-failed jobs brought forward again: {first:?} then {second:?}"
    );
}

#[tokio::test]
async fn retry_after_from_the_crm_is_honoured_during_catch_up() {
    let up = Arc::new(AtomicBool::new(false));
    let log: Log = Arc::default();
    let (u, l) = (up.clone(), log.clone());
    let held = job(1, "acme").webhook_id;
    let h = held.clone();
    let sink = Sink::start(move |_, r| {
        let reply = if r.header("webhook-id") == Some(h.as_str()) {
            // This job is told to come back in 20 s, whatever else happens.
            Reply::status(503).header("Retry-After", "20")
        } else if u.load(Ordering::SeqCst) {
            Reply::status(200)
        } else {
            Reply::status(503)
        };
        log_reply(&l, r, reply)
    })
    .await;
    let (outbox, resolver) = (MemOutbox::new(), MapResolver::new());
    resolver.set("acme", endpoint(sink.url("/acme"), "k-acme"));
    for s in 1..=6 {
        outbox.insert(job(s, "acme"));
    }
    let mut f = start(parking_policy(4), outbox, resolver);
    wait_parked(&f.outbox, 2..=6).await;
    assert!(wait_until(Duration::from_secs(3), || f.outbox.get(1).attempts >= 1).await);
    let before = f.outbox.get(1);
    assert!(before.retry_after);
    assert!(before.next_attempt_ms > now_ms() + 15_000);

    up.store(true, Ordering::SeqCst);
    f.outbox.insert(job(50, "acme"));
    f.deliverer.kick();
    assert!(
        wait_until(Duration::from_secs(5), || (2..=6)
            .chain([50])
            .all(|s| f.outbox.state(s) == OutboxState::Delivered))
        .await,
        "the backlog was not brought forward"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    f.stop().await;
    let after = f.outbox.get(1);
    assert_eq!(
        (after.state, after.attempts, after.next_attempt_ms),
        (
            OutboxState::Pending,
            before.attempts,
            before.next_attempt_ms
        ),
        "the job the CRM told to wait was sent early"
    );
    let sent_held = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, id, _)| *id == held)
        .count();
    assert_eq!(sent_held as u32, before.attempts);
}

#[tokio::test]
async fn without_catch_up_parked_jobs_wait_for_their_own_step() {
    let up = Arc::new(AtomicBool::new(false));
    let u = up.clone();
    let sink =
        Sink::start(move |_, _| Reply::status(if u.load(Ordering::SeqCst) { 200 } else { 503 }))
            .await;
    let (outbox, resolver) = (MemOutbox::new(), MapResolver::new());
    resolver.set("acme", endpoint(sink.url("/acme"), "k-acme"));
    for s in 1..=5 {
        outbox.insert(job(s, "acme"));
    }
    let policy = DeliveryPolicy {
        catch_up: false,
        ..parking_policy(4)
    };
    let mut f = start(policy, outbox, resolver);
    wait_parked(&f.outbox, 1..=5).await;
    up.store(true, Ordering::SeqCst);
    f.outbox.insert(job(50, "acme"));
    f.deliverer.kick();
    assert!(
        wait_until(Duration::from_secs(3), || f.outbox.state(50)
            == OutboxState::Delivered)
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    f.stop().await;
    assert!(f.outbox.brought.lock().unwrap().is_empty());
    let still = (1..=5)
        .filter(|&s| f.outbox.state(s) == OutboxState::Pending)
        .count();
    assert!(still >= 4, "only {still} of 5 still parked");
}

#[tokio::test]
async fn backlog_gauge_reports_the_oldest_pending_age_per_tenant_and_drops_to_zero() {
    let up = Arc::new(AtomicBool::new(false));
    let u = up.clone();
    let sink = Sink::start(move |_, r| {
        let acme = r.header("x-api-key") == Some("k-acme");
        Reply::status(if acme && u.load(Ordering::SeqCst) {
            200
        } else {
            503
        })
    })
    .await;
    let (outbox, resolver) = (MemOutbox::new(), MapResolver::new());
    resolver.set("acme", endpoint(sink.url("/acme"), "k-acme"));
    resolver.set("beta", endpoint(sink.url("/beta"), "k-beta"));
    let now = now_ms();
    for (s, tenant, age_s) in [(1, "acme", 90), (2, "acme", 30), (3, "beta", 600)] {
        let mut j = job(s, tenant);
        j.created_ms = now - age_s * 1_000;
        outbox.insert(j);
    }
    let mut f = start(parking_policy(4), outbox, resolver);
    let m = f.deliverer.metrics().clone();
    // stats_interval is 50 ms in these tests.
    assert!(
        wait_until(Duration::from_secs(3), || m
            .backlog_oldest_age_seconds("acme")
            > 0.0)
        .await
    );
    let (acme, beta) = (
        m.backlog_oldest_age_seconds("acme"),
        m.backlog_oldest_age_seconds("beta"),
    );
    assert!((90.0..95.0).contains(&acme), "acme {acme}");
    assert!((600.0..605.0).contains(&beta), "beta {beta}");
    assert!(m.oldest_pending_age_seconds() >= 600.0);

    wait_parked(&f.outbox, 1..=3).await;
    up.store(true, Ordering::SeqCst);
    f.outbox.insert(job(50, "acme"));
    f.deliverer.kick();
    assert!(
        wait_until(Duration::from_secs(5), || m
            .backlog_oldest_age_seconds("acme")
            == 0.0)
        .await,
        "acme's backlog age stayed at {}",
        m.backlog_oldest_age_seconds("acme")
    );
    assert!([1, 2, 50]
        .iter()
        .all(|&s| f.outbox.state(s) == OutboxState::Delivered));
    assert!(
        m.backlog_oldest_age_seconds("beta") >= 600.0,
        "beta still waits"
    );
    f.stop().await;
}
