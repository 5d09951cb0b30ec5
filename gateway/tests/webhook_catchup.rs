//! Catch-up after a CRM outage (issue 18) with the gateway's own pieces: the sled call
//! store behind `CallStoreOutbox`, the deliverer, a CRM receiver on 127.0.0.1 — and, at the
//! end, the whole gateway binary.
//!
//! - The brought-forward due times are in the store: a deliverer that dies while the
//!   brought-forward webhooks are in flight leaves them due after the store is reopened,
//!   with their attempts and ids, the indexes consistent and no webhook lost.
//! - Through the gateway: webhooks of calls that ended while the CRM answered 503 go out
//!   within seconds of the CRM's first success, not on their own 30 s backoff step.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use c2c_callstate::{OutboxState, SledCallStore};
use c2c_crm_webhooks::{
    CallStoreOutbox, Deliverer, DeliveryPolicy, Endpoint, EndpointResolver, WebhookMetrics,
};
use c2c_test_support::receiver::{Receiver, Reply};
use common::calls::CallEnv;
use common::eventually;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

// ------------------------------------------------------------------ in-process pieces

/// A CRM receiver: `decide(webhook_id)` gives (status, delay) per request; every request
/// is logged as (webhook id, status) when it arrives.
struct Crm {
    url: String,
    log: Arc<Mutex<Vec<(String, u16)>>>,
}

type Decide = Arc<dyn Fn(&str) -> (u16, Duration) + Send + Sync>;

async fn crm(decide: Decide) -> Crm {
    let log: Arc<Mutex<Vec<(String, u16)>>> = Arc::default();
    let lg = log.clone();
    let receiver = Receiver::start(move |req| {
        let id = req.header("webhook-id").unwrap_or("").trim().to_string();
        let (status, delay) = decide(&id);
        lg.lock().unwrap().push((id, status));
        // One request per connection, as a CRM behind a plain proxy answers.
        std::future::ready(
            Reply::status(status)
                .header("connection", "close")
                .delay(delay),
        )
    })
    .await
    .unwrap();
    let url = format!("http://{}/c2c/webhook", receiver.detach());
    Crm { url, log }
}

struct Endpoints(String);

impl EndpointResolver for Endpoints {
    fn resolve(&self, tenant: &str) -> Option<Endpoint> {
        Some(Endpoint {
            url: self.0.clone(),
            outbound_key: format!("k-{tenant}"),
            signing_secret: None,
            disabled: false,
        })
    }
    fn endpoint_gone(&self, _: &str) {}
}

/// Ends a call of `tenant` in the store (connect, answer, agent hangup): its webhook is
/// enqueued. Returns the outbox seq.
async fn ended_call(s: &SledCallStore, tenant: &str) -> u64 {
    c2c_test_support::ended_call(s, tenant, now_ms())
        .await
        .unwrap()
        .unwrap()
}

/// After the third failure a webhook waits up to 4 h: parked.
fn policy() -> DeliveryPolicy {
    DeliveryPolicy {
        schedule: vec![
            Duration::from_millis(10),
            Duration::from_millis(20),
            Duration::from_secs(4 * 3600),
        ],
        per_tenant_concurrency: 2,
        batch: 8,
        request_timeout: Duration::from_secs(10),
        poll_interval: Duration::from_millis(20),
        stats_interval: Duration::from_millis(50),
        allow_private_targets: true,
        ..DeliveryPolicy::default()
    }
}

fn deliverer(store: &SledCallStore, url: &str) -> Deliverer {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Deliverer::new(
        client,
        Arc::new(CallStoreOutbox::new(Arc::new(store.clone()))),
        Arc::new(Endpoints(url.to_string())),
        policy(),
        WebhookMetrics::new().unwrap(),
    )
    .unwrap()
}

fn run(
    d: &Deliverer,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let d = d.clone();
    (tx, tokio::spawn(async move { d.run(rx).await }))
}

/// Opens the store, retrying while the previous handle's last clones are still being
/// dropped (sled holds a lock on its directory until then).
async fn reopen(path: &std::path::Path) -> SledCallStore {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match SledCallStore::open(path) {
            Ok(s) => return s,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("reopen: {e}"),
        }
    }
}

const DOWN: u8 = 0;
const UP_SLOW: u8 = 1;
const UP: u8 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brought_forward_due_times_survive_a_restart_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mode = Arc::new(AtomicU8::new(DOWN));
    let fresh_id: Arc<Mutex<String>> = Arc::default();
    let (m, f) = (mode.clone(), fresh_id.clone());
    let crm = crm(Arc::new(move |id: &str| match m.load(Ordering::SeqCst) {
        DOWN => (503, Duration::ZERO),
        // Back, but slow for the old webhooks: they are still in flight when the
        // deliverer dies. The call that ends after the recovery goes through at once.
        UP_SLOW if *f.lock().unwrap() == id => (200, Duration::ZERO),
        UP_SLOW => (200, Duration::from_secs(30)),
        _ => (200, Duration::ZERO),
    }))
    .await;

    // 1. The CRM is down while 8 calls of acme and 2 of beta end: all parked.
    let store = SledCallStore::open(dir.path()).unwrap();
    let mut acme = Vec::new();
    for _ in 0..8 {
        acme.push(ended_call(&store, "acme").await);
    }
    let beta = vec![
        ended_call(&store, "beta").await,
        ended_call(&store, "beta").await,
    ];
    let d1 = deliverer(&store, &crm.url);
    let (tx, h) = run(&d1);
    let all: Vec<u64> = acme.iter().chain(&beta).copied().collect();
    assert!(
        eventually(Duration::from_secs(10), || async {
            all.iter()
                .all(|&s| store.outbox_get(s).unwrap().unwrap().attempts >= 3)
        })
        .await,
        "webhooks did not reach the long backoff step"
    );
    tx.send(true).unwrap();
    h.await.unwrap();
    let parked: HashMap<u64, c2c_callstate::OutboxEntry> = all
        .iter()
        .map(|&s| (s, store.outbox_get(s).unwrap().unwrap()))
        .collect();

    // 2. The CRM recovers; a new call's webhook succeeds and catch-up brings the oldest
    //    acme webhooks forward (2 at a time). The deliverer dies with them in flight.
    let fresh = ended_call(&store, "acme").await;
    *fresh_id.lock().unwrap() = store.outbox_get(fresh).unwrap().unwrap().webhook_id;
    mode.store(UP_SLOW, Ordering::SeqCst);
    let d2 = deliverer(&store, &crm.url);
    let (_tx2, h2) = run(&d2);
    let brought = |s: &SledCallStore| -> Vec<u64> {
        acme.iter()
            .copied()
            .filter(|&seq| {
                let e = s.outbox_get(seq).unwrap().unwrap();
                e.state == OutboxState::Pending
                    && e.next_attempt_ms < parked[&seq].next_attempt_ms
                    && e.next_attempt_ms <= now_ms()
            })
            .collect()
    };
    assert!(
        eventually(Duration::from_secs(10), || async {
            brought(&store).len() == 2
        })
        .await,
        "catch-up did not bring webhooks forward"
    );
    let in_flight = brought(&store);
    assert_eq!(in_flight, acme[..2].to_vec(), "oldest first");
    h2.abort();
    let _ = h2.await;
    drop((d1, d2, store));
    // The aborted attempts' tasks hold the last store clones until the runtime drops them.
    tokio::time::sleep(Duration::from_millis(200)).await;

    // 3. Restart: the brought-forward webhooks are due, nothing else moved, none lost.
    let store = reopen(dir.path()).await;
    let report = store.check().unwrap();
    assert!(report.is_clean(), "{report:?}");
    let now = now_ms();
    let due: Vec<u64> = store
        .outbox_due(now, 100)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(due, in_flight, "due after restart");
    for &seq in &all {
        let (before, e) = (&parked[&seq], store.outbox_get(seq).unwrap().unwrap());
        assert_eq!(e.state, OutboxState::Pending, "seq {seq}");
        assert_eq!(e.webhook_id, before.webhook_id);
        assert_eq!(e.attempts, before.attempts, "seq {seq}: attempts changed");
        if !in_flight.contains(&seq) {
            assert_eq!(e.next_attempt_ms, before.next_attempt_ms, "seq {seq} moved");
        }
    }
    assert_eq!(
        store.outbox_get(fresh).unwrap().unwrap().state,
        OutboxState::Delivered
    );

    // 4. The restarted deliverer sends the due ones at once, and their success brings the
    //    rest of acme forward: everything of acme delivered within seconds, same ids.
    mode.store(UP, Ordering::SeqCst);
    let d3 = deliverer(&store, &crm.url);
    let (tx3, h3) = run(&d3);
    let t0 = Instant::now();
    assert!(
        eventually(Duration::from_secs(5), || async {
            acme.iter()
                .all(|&s| store.outbox_get(s).unwrap().unwrap().state == OutboxState::Delivered)
        })
        .await,
        "acme not drained after restart"
    );
    let took = t0.elapsed();
    tx3.send(true).unwrap();
    h3.await.unwrap();
    let log = crm.log.lock().unwrap().clone();
    for &seq in &acme {
        let id = &parked[&seq].webhook_id;
        let oks = log.iter().filter(|(i, s)| i == id && *s == 200).count();
        // The two cut off by the crash may have reached the CRM once already (same id).
        let max = if in_flight.contains(&seq) { 2 } else { 1 };
        assert!((1..=max).contains(&oks), "seq {seq}: {oks} accepted");
    }
    // beta's CRM still fails (it is the same receiver here, but beta was never brought
    // forward: no success of its own).
    for &seq in &beta {
        let e = store.outbox_get(seq).unwrap().unwrap();
        if parked[&seq].next_attempt_ms > now_ms() {
            assert_eq!(e.next_attempt_ms, parked[&seq].next_attempt_ms);
            assert_eq!(e.attempts, parked[&seq].attempts);
        }
    }
    eprintln!("acme drained {took:?} after the restart");
}

// ------------------------------------------------------------------ the gateway binary

#[tokio::test]
async fn through_the_gateway_a_recovered_crm_gets_the_backlog_within_seconds() {
    let env = CallEnv::start("poll").await;
    env.sink.status.store(503, Ordering::SeqCst);
    let mut calls = Vec::new();
    for _ in 0..4 {
        let (call_id, _) = env.start_call("9530251797").await;
        env.post(&format!("/api/c2c/calls/{call_id}/hangup")).await;
        calls.push(call_id);
    }
    // Each webhook failed twice: its next attempt is up to 30 s away (the 2nd step).
    let attempts = |id: &str| {
        env.sink
            .all()
            .iter()
            .filter(|r| r.body["call_id"] == id)
            .count()
    };
    assert!(
        eventually(Duration::from_secs(20), || async {
            calls.iter().all(|c| attempts(c) >= 2)
        })
        .await,
        "webhooks were not retried\n{}",
        env.gw.log_text()
    );

    // The CRM is back; the next call's webhook succeeds at once and the others follow.
    env.sink.status.store(200, Ordering::SeqCst);
    let t0 = Instant::now();
    let (last, _) = env.start_call("9530251797").await;
    env.post(&format!("/api/c2c/calls/{last}/hangup")).await;
    env.webhook(&last, Duration::from_secs(10)).await;
    let caught_up = eventually(Duration::from_secs(5), || async {
        calls.iter().all(|c| !env.sink.for_call(c).is_empty())
    })
    .await;
    let pending: Vec<&String> = calls
        .iter()
        .filter(|c| env.sink.for_call(c).is_empty())
        .collect();
    assert!(
        caught_up,
        "{} webhooks still pending {:?} after the CRM's first success\n{}",
        pending.len(),
        t0.elapsed(),
        env.gw.log_text()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    for c in &calls {
        let ids: std::collections::HashSet<String> = env
            .sink
            .all()
            .iter()
            .filter(|r| r.body["call_id"] == c.as_str())
            .map(|r| r.headers["webhook-id"].clone())
            .collect();
        assert_eq!(ids.len(), 1, "{c}: webhook-id changed: {ids:?}");
        assert_eq!(
            env.sink.for_call(c).len(),
            1,
            "{c}: accepted more than once"
        );
    }
}
