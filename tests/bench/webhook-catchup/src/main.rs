//! CRM outage benchmark (issue 18, item 2): the CRM answers 503 while `--calls` calls end
//! over `--down` seconds, then recovers; how long until each call's webhook is delivered?
//!
//! Real pieces: the sled call store (calls are created and ended through the store API,
//! which enqueues their webhooks), the `c2c-crm-webhooks` deliverer with the gateway's
//! defaults, and an HTTP receiver on 127.0.0.1 answering after `--latency-ms`. The retry
//! schedule is the default one divided by `--scale` (10: 0.5 s, 3 s, 12 s, 60 s, 180 s,
//! ...), so the 3-minute outage and 10-minute window become 18 s and 60 s.
//!
//! Each mode runs on a fresh store: `off` is every job on its own backoff (the behaviour
//! before catch-up), `on` is catch-up. Prints one table row per mode: delivery lag from
//! the call's end (p50/p90/max), lag from the recovery, webhooks still pending at the end
//! of the window, requests sent, and the most requests in flight at the receiver.
//!
//! Usage: webhook-catchup-bench [--calls 50] [--down 18] [--window 60] [--scale 10]
//!        [--latency-ms 20] [--per-tenant 4] [--mode both|on|off]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use c2c_callstate::{OutboxState, SledCallStore};
use c2c_crm_webhooks::backoff::default_schedule;
use c2c_crm_webhooks::{
    CallStoreOutbox, Deliverer, DeliveryPolicy, Endpoint, EndpointResolver, WebhookMetrics,
};
use c2c_test_support::ended_call;
use c2c_test_support::receiver::{Receiver, Reply};

const TENANT: &str = "acme";

struct Args {
    calls: usize,
    down: f64,
    window: f64,
    scale: f64,
    latency_ms: u64,
    per_tenant: usize,
    modes: Vec<bool>,
}

fn args() -> Args {
    let mut a = Args {
        calls: 50,
        down: 18.0,
        window: 60.0,
        scale: 10.0,
        latency_ms: 20,
        per_tenant: 4,
        modes: vec![false, true],
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.chunks(2);
    for pair in &mut it {
        let (k, v) = match pair {
            [k, v] => (k.as_str(), v.as_str()),
            _ => usage(),
        };
        let num = || v.parse::<f64>().unwrap_or_else(|_| usage());
        match k {
            "--calls" => a.calls = num() as usize,
            "--down" => a.down = num(),
            "--window" => a.window = num(),
            "--scale" => a.scale = num(),
            "--latency-ms" => a.latency_ms = num() as u64,
            "--per-tenant" => a.per_tenant = num() as usize,
            "--mode" => {
                a.modes = match v {
                    "both" => vec![false, true],
                    "on" => vec![true],
                    "off" => vec![false],
                    _ => usage(),
                }
            }
            _ => usage(),
        }
    }
    if a.calls == 0 || a.scale <= 0.0 || a.per_tenant == 0 {
        usage();
    }
    a
}

fn usage() -> ! {
    eprintln!(
        "usage: webhook-catchup-bench [--calls N] [--down SECS] [--window SECS] [--scale K] \
         [--latency-ms MS] [--per-tenant N] [--mode both|on|off]"
    );
    std::process::exit(2)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

// ------------------------------------------------------------------ the CRM

struct Crm {
    url: String,
    up: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

async fn crm(latency: Duration) -> Crm {
    let up = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let (u, r, m) = (up.clone(), requests.clone(), max_in_flight.clone());
    let receiver = Receiver::start(move |_req| {
        let (u, r, m, f) = (u.clone(), r.clone(), m.clone(), in_flight.clone());
        async move {
            r.fetch_add(1, Ordering::SeqCst);
            let now = f.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(latency).await;
            f.fetch_sub(1, Ordering::SeqCst);
            let status = if u.load(Ordering::SeqCst) { 200 } else { 503 };
            Reply::status(status).header("connection", "close")
        }
    })
    .await
    .expect("bind");
    let url = format!("http://{}/c2c/webhook", receiver.detach());
    Crm {
        url,
        up,
        requests,
        max_in_flight,
    }
}

struct Endpoints(String);

impl EndpointResolver for Endpoints {
    fn resolve(&self, _: &str) -> Option<Endpoint> {
        Some(Endpoint {
            url: self.0.clone(),
            outbound_key: "k".into(),
            signing_secret: None,
            disabled: false,
        })
    }
    fn endpoint_gone(&self, _: &str) {}
}

/// Ends one call through the store (connect, answer, hangup): enqueues its webhook.
async fn end_call(s: &SledCallStore) -> u64 {
    ended_call(s, TENANT, now_ms())
        .await
        .expect("end a call")
        .expect("webhook enqueued")
}

// ------------------------------------------------------------------ one run

struct Row {
    catch_up: bool,
    /// Per call: delivery lag from the call's end and from the recovery (s); None if
    /// still pending at the end of the window.
    lags: Vec<Option<(f64, f64)>>,
    requests_down: usize,
    requests: usize,
    max_in_flight: usize,
}

async fn run(a: &Args, catch_up: bool) -> Row {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SledCallStore::open(dir.path()).expect("open store");
    let crm = crm(Duration::from_millis(a.latency_ms)).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client");
    let policy = DeliveryPolicy {
        schedule: default_schedule()
            .into_iter()
            .map(|d| d.div_f64(a.scale))
            .collect(),
        per_tenant_concurrency: a.per_tenant,
        allow_private_targets: true,
        catch_up,
        ..DeliveryPolicy::default()
    };
    let deliverer = Deliverer::new(
        client,
        Arc::new(CallStoreOutbox::new(Arc::new(store.clone()))),
        Arc::new(Endpoints(crm.url.clone())),
        policy,
        WebhookMetrics::new().expect("metrics"),
    )
    .expect("deliverer");
    let (stop, rx) = tokio::sync::watch::channel(false);
    let d = deliverer.clone();
    let loop_task = tokio::spawn(async move { d.run(rx).await });

    // The outage: calls end evenly over it; each end kicks the deliverer (as the
    // gateway's terminal transitions do).
    let t0 = Instant::now();
    let seqs: Arc<Mutex<Vec<u64>>> = Arc::default();
    for i in 0..a.calls {
        let at = Duration::from_secs_f64(a.down * i as f64 / a.calls as f64);
        tokio::time::sleep_until((t0 + at).into()).await;
        let seq = end_call(&store).await;
        seqs.lock().expect("seqs").push(seq);
        deliverer.kick();
    }
    tokio::time::sleep_until((t0 + Duration::from_secs_f64(a.down)).into()).await;
    let requests_down = crm.requests.load(Ordering::SeqCst);
    crm.up.store(true, Ordering::SeqCst);
    let recovered_ms = now_ms();

    let seqs = seqs.lock().expect("seqs").clone();
    let deadline = Instant::now() + Duration::from_secs_f64(a.window);
    let mut pending: HashSet<u64> = seqs.iter().copied().collect();
    while !pending.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        pending.retain(|&s| {
            store
                .outbox_get(s)
                .ok()
                .flatten()
                .is_some_and(|e| e.state != OutboxState::Delivered)
        });
    }
    let _ = stop.send(true);
    let _ = loop_task.await;

    let lags = seqs
        .iter()
        .map(|&s| {
            let e = store.outbox_get(s).ok().flatten()?;
            let at = e
                .delivered_ms
                .filter(|_| e.state == OutboxState::Delivered)?;
            let from_end = at.saturating_sub(e.created_ms) as f64 / 1000.0;
            let from_recovery = at.saturating_sub(recovered_ms) as f64 / 1000.0;
            Some((from_end, from_recovery))
        })
        .collect();
    Row {
        catch_up,
        lags,
        requests_down,
        requests: crm.requests.load(Ordering::SeqCst),
        max_in_flight: crm.max_in_flight.load(Ordering::SeqCst),
    }
}

/// Nearest-rank percentile; a pending webhook counts as longer than any delivered one.
fn pct(values: &[Option<f64>], p: f64) -> String {
    let mut v: Vec<f64> = values.iter().map(|x| x.unwrap_or(f64::INFINITY)).collect();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    match v.get(rank - 1) {
        Some(x) if x.is_finite() => format!("{x:.1} s"),
        _ => "pending".into(),
    }
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let a = args();
    println!(
        "CRM down {:.0} s while {} calls end, then up; schedule = default / {} ({:?}); \
         receiver latency {} ms; per_tenant_concurrency {}; window {:.0} s after recovery",
        a.down,
        a.calls,
        a.scale,
        default_schedule()
            .into_iter()
            .take(5)
            .map(|d| d.div_f64(a.scale))
            .collect::<Vec<_>>(),
        a.latency_ms,
        a.per_tenant,
        a.window
    );
    println!();
    println!(
        "| catch-up | lag from call end p50 / p90 / max | lag from recovery p50 / p90 / max \
         | pending after window | requests (during outage) | max in flight |"
    );
    println!("| --- | --- | --- | ---: | ---: | ---: |");
    for &mode in &a.modes {
        let r = run(&a, mode).await;
        let end: Vec<Option<f64>> = r.lags.iter().map(|l| l.map(|x| x.0)).collect();
        let rec: Vec<Option<f64>> = r.lags.iter().map(|l| l.map(|x| x.1)).collect();
        let pending = r.lags.iter().filter(|l| l.is_none()).count();
        println!(
            "| {} | {} / {} / {} | {} / {} / {} | {} of {} | {} ({}) | {} |",
            if r.catch_up { "on" } else { "off" },
            pct(&end, 50.0),
            pct(&end, 90.0),
            pct(&end, 100.0),
            pct(&rec, 50.0),
            pct(&rec, 90.0),
            pct(&rec, 100.0),
            pending,
            r.lags.len(),
            r.requests,
            r.requests_down,
            r.max_in_flight
        );
    }
}
