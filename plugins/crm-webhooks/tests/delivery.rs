//! End-to-end delivery against a real HTTP sink on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use c2c_callstate::OutboxState;
use c2c_crm_webhooks::{
    sign, DeliverError, Deliverer, DeliveryPolicy, DeliveryResult, Outcome, WebhookMetrics,
};
use common::*;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::watch;

struct Fixture {
    outbox: Arc<MemOutbox>,
    resolver: Arc<MapResolver>,
    deliverer: Deliverer,
}

fn fixture(policy: DeliveryPolicy) -> Fixture {
    let outbox = MemOutbox::new();
    let resolver = MapResolver::new();
    let deliverer = Deliverer::new(
        client(Duration::from_secs(15)),
        outbox.clone(),
        resolver.clone(),
        policy,
        WebhookMetrics::new().unwrap(),
    )
    .unwrap();
    Fixture {
        outbox,
        resolver,
        deliverer,
    }
}

/// Start the run loop; returns the shutdown sender and the loop's handle.
fn spawn_loop(d: &Deliverer) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let d = d.clone();
    let h = tokio::spawn(async move { d.run(rx).await });
    (tx, h)
}

async fn stop(tx: watch::Sender<bool>, h: tokio::task::JoinHandle<()>) {
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), h)
        .await
        .expect("run loop stops")
        .unwrap();
}

#[tokio::test]
async fn fails_then_delivers_exactly_once_with_stable_id() {
    let sink = Sink::start(|n, _| Reply::status(if n < 3 { 500 } else { 200 })).await;
    let f = fixture(fast_policy());
    f.resolver
        .set("acme", endpoint(sink.url("/hook"), "k-acme"));
    let j = job(1, "acme");
    f.outbox.insert(j.clone());
    let (tx, h) = spawn_loop(&f.deliverer);

    assert!(
        wait_until(Duration::from_secs(5), || f.outbox.state(1)
            == OutboxState::Delivered)
        .await,
        "delivered"
    );
    // Nothing more is sent after delivery.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop(tx, h).await;

    let reqs = sink.requests();
    assert_eq!(reqs.len(), 4, "3 failures + 1 success");
    assert_eq!(sink.replies().iter().filter(|s| **s == 200).count(), 1);
    for r in &reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/hook");
        assert_eq!(r.header("webhook-id"), Some(j.webhook_id.as_str()));
        assert_eq!(r.header("x-api-key"), Some("k-acme"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            r.body,
            j.payload_json.as_bytes(),
            "body is payload_json exactly"
        );
        let ts: u64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
        assert!(ts.abs_diff(now_ms() / 1000) < 30);
        assert!(
            r.header("webhook-signature").is_none(),
            "no secret, no signature"
        );
    }
    let stored = f.outbox.get(1);
    assert_eq!(stored.attempts, 4);
    assert!(stored.delivered_ms.is_some());
    let m = f.deliverer.metrics();
    assert_eq!(m.deliveries("acme", DeliveryResult::Delivered), 1);
    assert_eq!(m.deliveries("acme", DeliveryResult::Retry), 3);
    assert_eq!(m.pending(), 0);
}

#[tokio::test]
async fn gone_410_disables_job_and_parks_the_tenant() {
    let sink = Sink::start(|_, r| {
        Reply::status(if r.header("x-api-key") == Some("k-acme") {
            410
        } else {
            200
        })
    })
    .await;
    let f = fixture(DeliveryPolicy {
        per_tenant_concurrency: 1,
        ..fast_policy()
    });
    f.resolver.set("acme", endpoint(sink.url("/a"), "k-acme"));
    f.resolver.set("beta", endpoint(sink.url("/b"), "k-beta"));
    f.outbox.insert(job(1, "acme"));
    f.outbox.insert(job(2, "acme"));
    f.outbox.insert(job(3, "beta"));
    let (tx, h) = spawn_loop(&f.deliverer);

    assert!(
        wait_until(Duration::from_secs(5), || {
            f.outbox.state(1) == OutboxState::Disabled
                && f.outbox.get(2).last_error.is_some()
                && f.outbox.state(3) == OutboxState::Delivered
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop(tx, h).await;

    let acme_hits = sink
        .requests()
        .iter()
        .filter(|r| r.header("x-api-key") == Some("k-acme"))
        .count();
    assert_eq!(acme_hits, 1, "the parked job is not attempted");
    assert_eq!(*f.resolver.gone.lock().unwrap(), vec!["acme".to_string()]);
    let parked = f.outbox.get(2);
    assert_eq!(parked.state, OutboxState::Pending);
    assert_eq!(parked.attempts, 0);
    assert!(
        parked.next_attempt_ms >= now_ms() + 50_000,
        "parked for park_interval"
    );
    let m = f.deliverer.metrics();
    assert_eq!(m.deliveries("acme", DeliveryResult::Disabled), 1);
    assert_eq!(m.deliveries("beta", DeliveryResult::Delivered), 1);
}

#[tokio::test]
async fn disabled_endpoint_parks_and_disables_after_max_age() {
    let sink = Sink::start(|_, _| Reply::status(200)).await;
    let f = fixture(fast_policy());
    let mut ep = endpoint(sink.url("/h"), "k");
    ep.disabled = true;
    f.resolver.set("acme", ep);

    let before = now_ms();
    let out = f.deliverer.deliver_once(job(1, "acme")).await.unwrap();
    let Outcome::Parked { next_attempt_ms } = out else {
        panic!("{out:?}")
    };
    assert!(next_attempt_ms >= before + 60_000);
    assert_eq!(f.outbox.get(1).attempts, 0);

    let mut old = job(2, "acme");
    old.created_ms = now_ms() - 73 * 3600 * 1000;
    let out = f.deliverer.deliver_once(old).await.unwrap();
    assert!(matches!(out, Outcome::Disabled { .. }), "{out:?}");
    assert_eq!(f.outbox.state(2), OutboxState::Disabled);
    assert!(sink.requests().is_empty());
}

#[tokio::test]
async fn retry_after_seconds_on_429_sets_next_attempt() {
    let sink = Sink::start(|_, _| Reply::status(429).header("Retry-After", "2")).await;
    let f = fixture(fast_policy());
    f.resolver.set("acme", endpoint(sink.url("/h"), "k"));

    let before = now_ms();
    let out = f.deliverer.deliver_once(job(1, "acme")).await.unwrap();
    let after = now_ms();
    let Outcome::Retry {
        next_attempt_ms, ..
    } = out
    else {
        panic!("{out:?}")
    };
    assert!(
        next_attempt_ms >= before + 2_000,
        "{}",
        next_attempt_ms - before
    );
    assert!(next_attempt_ms <= after + 2_000);
    let stored = f.outbox.get(1);
    assert_eq!(stored.state, OutboxState::Pending);
    assert_eq!(stored.next_attempt_ms, next_attempt_ms);
    assert_eq!(stored.attempts, 1);
    assert_eq!(stored.last_error.as_deref(), Some("http 429"));
}

#[tokio::test]
async fn retry_after_http_date_on_503_and_ignored_elsewhere() {
    let at = std::time::SystemTime::now() + Duration::from_secs(3);
    let date = httpdate::fmt_http_date(at);
    let sink = Sink::start(move |n, _| match n {
        0 => Reply::status(503).header("Retry-After", &date),
        // Retry-After on a 500 is not honoured: the (ms) schedule applies.
        _ => Reply::status(500).header("Retry-After", "3600"),
    })
    .await;
    let f = fixture(fast_policy());
    f.resolver.set("acme", endpoint(sink.url("/h"), "k"));

    let before = now_ms();
    let Outcome::Retry {
        next_attempt_ms, ..
    } = f.deliverer.deliver_once(job(1, "acme")).await.unwrap()
    else {
        panic!()
    };
    let wait = next_attempt_ms - before;
    assert!((1_900..=3_500).contains(&wait), "wait {wait} ms");

    let before = now_ms();
    let Outcome::Retry {
        next_attempt_ms, ..
    } = f.deliverer.deliver_once(f.outbox.get(1)).await.unwrap()
    else {
        panic!()
    };
    // attempts = 2 -> step 20 ms, full jitter in [0, 20].
    assert!(
        next_attempt_ms - before <= 100,
        "{}",
        next_attempt_ms - before
    );
}

#[tokio::test]
async fn redirect_is_not_followed_and_counts_as_failure() {
    let sink = Sink::start(|_, r| {
        if r.path == "/hook" {
            Reply::status(302).header("Location", "/landing")
        } else {
            Reply::status(200)
        }
    })
    .await;
    let f = fixture(fast_policy());
    f.resolver.set("acme", endpoint(sink.url("/hook"), "k"));
    let out = f.deliverer.deliver_once(job(1, "acme")).await.unwrap();
    match out {
        Outcome::Retry { reason, .. } => assert_eq!(reason, "http 302 redirect not followed"),
        other => panic!("{other:?}"),
    }
    let reqs = sink.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/hook");
    assert_eq!(f.outbox.state(1), OutboxState::Pending);
    assert_eq!(
        f.deliverer
            .metrics()
            .deliveries("acme", DeliveryResult::Retry),
        1
    );
}

#[tokio::test]
async fn signature_header_verifies() {
    let sink = Sink::start(|_, _| Reply::status(204)).await;
    let f = fixture(fast_policy());
    let secret = b"tenant-signing-secret-bytes".to_vec();
    let mut ep = endpoint(sink.url("/h"), "k");
    ep.signing_secret = Some(secret.clone());
    f.resolver.set("acme", ep);
    let j = job(1, "acme");

    let out = f.deliverer.deliver_once(j.clone()).await.unwrap();
    assert_eq!(out, Outcome::Delivered { status: 204 });

    let req = &sink.requests()[0];
    let id = req.header("webhook-id").unwrap();
    let ts: u64 = req.header("webhook-timestamp").unwrap().parse().unwrap();
    let sig = req.header("webhook-signature").unwrap();
    assert!(sign::verify(&secret, id, ts, &req.body, sig));

    // Independent computation straight from hmac + sha2.
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(j.payload_json.as_bytes());
    let want = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(sig, want);
    assert!(!sign::verify(b"wrong", id, ts, &req.body, sig));
}

#[tokio::test]
async fn per_tenant_concurrency_bound_is_respected() {
    let sink = Sink::start(|_, _| Reply::status(200).delay(Duration::from_millis(80))).await;
    let f = fixture(DeliveryPolicy {
        per_tenant_concurrency: 2,
        batch: 16,
        ..fast_policy()
    });
    f.resolver.set("acme", endpoint(sink.url("/a"), "k-acme"));
    f.resolver.set("beta", endpoint(sink.url("/b"), "k-beta"));
    for seq in 1..=10 {
        f.outbox.insert(job(seq, "acme"));
    }
    for seq in 11..=20 {
        f.outbox.insert(job(seq, "beta"));
    }
    let (tx, h) = spawn_loop(&f.deliverer);
    assert!(
        wait_until(Duration::from_secs(10), || {
            (1..=20).all(|s| f.outbox.state(s) == OutboxState::Delivered)
        })
        .await
    );
    stop(tx, h).await;
    assert_eq!(sink.requests().len(), 20, "each job exactly once");
    assert_eq!(sink.max_in_flight_for("k-acme"), 2);
    assert_eq!(sink.max_in_flight_for("k-beta"), 2);
    assert!(sink.max_in_flight() <= 4);
    assert!(sink.max_in_flight() >= 3, "tenants proceed in parallel");
}

/// A tenant with a backlog far larger than the free slots, all at its concurrency limit,
/// must not hide a later job of another tenant: the source skips the full tenant's jobs
/// instead of returning (and using up the fetch on) them.
#[tokio::test]
async fn a_full_tenants_backlog_does_not_hide_other_tenants() {
    let sink = Sink::start(|_, _| Reply::status(200).delay(Duration::from_millis(50))).await;
    let f = fixture(DeliveryPolicy {
        per_tenant_concurrency: 2,
        batch: 8,
        ..fast_policy()
    });
    f.resolver.set("big", endpoint(sink.url("/big"), "k-big"));
    f.resolver
        .set("small", endpoint(sink.url("/small"), "k-small"));
    for seq in 1..=60 {
        f.outbox.insert(job(seq, "big"));
    }
    f.outbox.insert(job(61, "small"));
    let (tx, h) = spawn_loop(&f.deliverer);
    assert!(
        wait_until(Duration::from_secs(20), || {
            (1..=61).all(|s| f.outbox.state(s) == OutboxState::Delivered)
        })
        .await
    );
    stop(tx, h).await;
    let order: Vec<_> = sink
        .requests()
        .iter()
        .map(|r| r.header("x-api-key").unwrap_or("").to_string())
        .collect();
    assert_eq!(order.len(), 61);
    let small_at = order.iter().position(|k| k == "k-small").unwrap();
    assert!(
        small_at < 3,
        "the small tenant's job waited behind {small_at} of the big tenant's"
    );
    assert_eq!(sink.max_in_flight_for("k-big"), 2);
}

#[tokio::test]
async fn global_bound_is_batch() {
    let sink = Sink::start(|_, _| Reply::status(200).delay(Duration::from_millis(60))).await;
    let f = fixture(DeliveryPolicy {
        per_tenant_concurrency: 4,
        batch: 3,
        ..fast_policy()
    });
    let mut seq = 0;
    for t in 0..6 {
        let tenant = format!("t{t}");
        f.resolver
            .set(&tenant, endpoint(sink.url("/h"), &format!("k-{tenant}")));
        for _ in 0..3 {
            seq += 1;
            f.outbox.insert(job(seq, &tenant));
        }
    }
    let (tx, h) = spawn_loop(&f.deliverer);
    assert!(
        wait_until(Duration::from_secs(10), || {
            (1..=seq).all(|s| f.outbox.state(s) == OutboxState::Delivered)
        })
        .await
    );
    stop(tx, h).await;
    assert_eq!(sink.requests().len(), 18);
    assert_eq!(sink.max_in_flight(), 3);
}

#[tokio::test]
async fn timeout_is_a_retry() {
    let sink = Sink::start(|_, _| Reply::status(200).delay(Duration::from_millis(1_500))).await;
    let f = fixture(DeliveryPolicy {
        request_timeout: Duration::from_millis(300),
        ..fast_policy()
    });
    f.resolver.set("acme", endpoint(sink.url("/h"), "k"));
    let t0 = Instant::now();
    let out = f.deliverer.deliver_once(job(1, "acme")).await.unwrap();
    assert!(t0.elapsed() < Duration::from_millis(1_200));
    match out {
        Outcome::Retry { reason, .. } => assert_eq!(reason, "timeout"),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.outbox.get(1).last_error.as_deref(), Some("timeout"));
}

#[tokio::test]
async fn gives_up_after_max_age() {
    let sink = Sink::start(|_, _| Reply::status(500)).await;
    let f = fixture(fast_policy());
    f.resolver.set("acme", endpoint(sink.url("/h"), "k"));
    let mut j = job(1, "acme");
    j.created_ms = now_ms() - 73 * 3600 * 1000;
    j.attempts = 30;
    let out = f.deliverer.deliver_once(j).await.unwrap();
    assert_eq!(
        out,
        Outcome::Failed {
            reason: "http 500".into()
        }
    );
    let stored = f.outbox.get(1);
    assert_eq!(stored.state, OutboxState::Failed);
    assert_eq!(stored.attempts, 31);
    assert_eq!(
        f.deliverer
            .metrics()
            .deliveries("acme", DeliveryResult::Failed),
        1
    );
    // Terminal jobs are not resent.
    let err = f.deliverer.deliver_once(stored).await.unwrap_err();
    assert!(
        matches!(err, DeliverError::NotPending { seq: 1, .. }),
        "{err:?}"
    );
    assert_eq!(sink.requests().len(), 1);
}

/// `max_age` counts from the last replay: an old webhook re-queued by an operator gets
/// the full retry window again (its `created_ms` stays the call's end).
#[tokio::test]
async fn a_replayed_job_gets_the_full_retry_window_again() {
    let sink = Sink::start(|_, _| Reply::status(500)).await;
    let f = fixture(fast_policy());
    f.resolver.set("acme", endpoint(sink.url("/h"), "k"));
    let mut j = job(1, "acme");
    j.created_ms = now_ms() - 73 * 3600 * 1000;
    j.replayed_ms = Some(now_ms() - 1_000);
    let out = f.deliverer.deliver_once(j).await.unwrap();
    assert!(matches!(out, Outcome::Retry { .. }), "{out:?}");
    let stored = f.outbox.get(1);
    assert_eq!(stored.state, OutboxState::Pending);
    assert_eq!(stored.attempts, 1);
}

#[tokio::test]
async fn kick_wakes_the_loop_before_the_poll_tick() {
    let sink = Sink::start(|_, _| Reply::status(200)).await;
    let f = fixture(DeliveryPolicy {
        poll_interval: Duration::from_secs(30),
        ..fast_policy()
    });
    f.resolver.set("acme", endpoint(sink.url("/h"), "k"));
    let (tx, h) = spawn_loop(&f.deliverer);
    // Let the loop consume its immediate first tick.
    tokio::time::sleep(Duration::from_millis(100)).await;

    f.outbox.insert(job(1, "acme"));
    let t0 = Instant::now();
    f.deliverer.kick();
    assert!(
        wait_until(Duration::from_secs(3), || f.outbox.state(1)
            == OutboxState::Delivered)
        .await
    );
    assert!(t0.elapsed() < Duration::from_secs(3));

    // The Notify handle works the same for code that cannot name Deliverer.
    f.outbox.insert(job(2, "acme"));
    f.deliverer.kick_handle().notify_one();
    assert!(
        wait_until(Duration::from_secs(3), || f.outbox.state(2)
            == OutboxState::Delivered)
        .await
    );
    stop(tx, h).await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_and_starts_nothing_new() {
    let sink = Sink::start(|_, _| Reply::status(200).delay(Duration::from_millis(300))).await;
    let f = fixture(fast_policy());
    f.resolver.set("acme", endpoint(sink.url("/h"), "k"));
    f.outbox.insert(job(1, "acme"));
    let (tx, h) = spawn_loop(&f.deliverer);
    assert!(wait_until(Duration::from_secs(3), || sink.requests().len() == 1).await);

    tx.send(true).unwrap();
    f.outbox.insert(job(2, "acme"));
    f.deliverer.kick();
    tokio::time::timeout(Duration::from_secs(3), h)
        .await
        .expect("stops")
        .unwrap();
    assert_eq!(
        f.outbox.state(1),
        OutboxState::Delivered,
        "in-flight attempt completed and stored"
    );
    assert_eq!(f.outbox.state(2), OutboxState::Pending);
    assert_eq!(sink.requests().len(), 1);
}

#[tokio::test]
async fn dropped_shutdown_sender_stops_the_loop() {
    let f = fixture(fast_policy());
    let (tx, rx) = watch::channel(false);
    let d = f.deliverer.clone();
    let h = tokio::spawn(async move { d.run(rx).await });
    drop(tx);
    tokio::time::timeout(Duration::from_secs(3), h)
        .await
        .expect("stops")
        .unwrap();
}

#[tokio::test]
async fn failed_store_update_means_not_done() {
    let sink = Sink::start(|_, _| Reply::status(200)).await;
    let f = fixture(fast_policy());
    f.resolver.set("acme", endpoint(sink.url("/h"), "k"));
    let j = job(1, "acme");
    f.outbox.insert(j.clone());

    f.outbox.fail_updates.store(true, Ordering::SeqCst);
    let err = f.deliverer.deliver_once(j.clone()).await.unwrap_err();
    assert!(matches!(err, DeliverError::Source(_)), "{err:?}");
    assert_eq!(
        f.outbox.state(1),
        OutboxState::Pending,
        "still due in the store"
    );
    assert_eq!(
        f.deliverer
            .metrics()
            .deliveries("acme", DeliveryResult::Delivered),
        0,
        "not counted before it is stored"
    );
    assert_eq!(f.deliverer.in_flight(), 0, "claim released");

    f.outbox.fail_updates.store(false, Ordering::SeqCst);
    let out = f.deliverer.deliver_once(f.outbox.get(1)).await.unwrap();
    assert_eq!(out, Outcome::Delivered { status: 200 });
    let reqs = sink.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("webhook-id"), reqs[1].header("webhook-id"));
}

#[tokio::test]
async fn missing_endpoint_and_refused_target_are_retried_without_sending() {
    let sink = Sink::start(|_, _| Reply::status(200)).await;
    let f = fixture(DeliveryPolicy {
        allow_private_targets: false,
        ..fast_policy()
    });
    let out = f.deliverer.deliver_once(job(1, "nobody")).await.unwrap();
    match out {
        Outcome::Retry { reason, .. } => assert_eq!(reason, "no webhook endpoint configured"),
        other => panic!("{other:?}"),
    }
    // SSRF guard: a loopback target is refused by default.
    f.resolver.set("acme", endpoint(sink.url("/h"), "k"));
    let out = f.deliverer.deliver_once(job(2, "acme")).await.unwrap();
    match out {
        Outcome::Retry { reason, .. } => assert!(reason.contains("private/loopback"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(sink.requests().is_empty());
}

#[tokio::test]
async fn concurrent_deliver_once_of_same_job_is_refused() {
    let sink = Sink::start(|_, _| Reply::status(200).delay(Duration::from_millis(200))).await;
    let f = fixture(fast_policy());
    f.resolver.set("acme", endpoint(sink.url("/h"), "k"));
    let j = job(1, "acme");
    let d = f.deliverer.clone();
    let j2 = j.clone();
    let first = tokio::spawn(async move { d.deliver_once(j2).await });
    assert!(wait_until(Duration::from_secs(2), || f.deliverer.in_flight() == 1).await);
    let err = f.deliverer.deliver_once(j).await.unwrap_err();
    assert!(matches!(err, DeliverError::InFlight { seq: 1 }), "{err:?}");
    assert_eq!(
        first.await.unwrap().unwrap(),
        Outcome::Delivered { status: 200 }
    );
    assert_eq!(sink.requests().len(), 1);
}

#[tokio::test]
async fn gauges_follow_outbox_stats() {
    let f = fixture(fast_policy());
    let mut a = job(1, "acme");
    a.created_ms = now_ms() - 10_000;
    f.outbox.insert(a);
    f.outbox.insert(job(2, "acme"));
    let stats = f.deliverer.refresh_metrics().await.unwrap();
    assert_eq!(stats.pending, 2);
    let m = f.deliverer.metrics();
    assert_eq!(m.pending(), 2);
    let age = m.oldest_pending_age_seconds();
    assert!((9.9..12.0).contains(&age), "{age}");
}
