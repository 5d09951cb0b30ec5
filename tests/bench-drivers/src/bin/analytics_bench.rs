//! Analytics benchmark (issue 6): writes N calls through the store API (`SledCallStore`,
//! the gateway's own on-disk layout) spread over the last D days, starts a release gateway
//! on that data directory, and times `GET /api/c2c/analytics` for the whole range by trunk
//! (p50/p99) — checking every answer against the counts it wrote. Side by side, in the
//! same run, it times the same answer computed the way a store without per-day tallies
//! would have to: reading every call record of the range (`list_by_tenant` pages).
//!
//! Run through `tests/bench/analytics.sh`, which builds release binaries first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use c2c_bench_drivers::Kill;
use c2c_callstate::{
    new_call_id, CallKnobs, CallRecord, CallStatus, NewCall, Phase, SledCallStore,
};
use chrono::{NaiveDate, Utc};
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    gateway: PathBuf,
    #[arg(long)]
    policies: PathBuf,
    #[arg(long, default_value_t = 1_000_000)]
    calls: u64,
    #[arg(long, default_value_t = 30)]
    days: u64,
    /// Timed analytics requests (after a warm-up).
    #[arg(long, default_value_t = 500)]
    queries: usize,
    /// Concurrent writers while generating (group commit batches them).
    #[arg(long, default_value_t = 4096)]
    concurrency: u64,
}

const KEY: &str = "c2c_bCk65WthOJFJPJbeJjWz3VWCPmlwiI22tBd0";
const TENANT: &str = "acme";
const TRUNKS: [&str; 2] = ["airtel-mum", "jio-del"];
const DAY_MS: u64 = 86_400_000;

/// The outcome call `i` gets: 60 % answered, 20 % not answered, 10 % failed, 10 % open.
fn outcome(i: u64) -> (Option<CallStatus>, Option<u16>) {
    match i % 10 {
        0..=5 => (Some(CallStatus::Answered), None),
        6 | 7 => (
            Some(CallStatus::NotAnswered),
            Some([480, 486, 487][(i % 3) as usize]),
        ),
        8 => (Some(CallStatus::Failed), Some([503, 404][(i % 2) as usize])),
        _ => (None, None),
    }
}

fn trunk(i: u64) -> &'static str {
    TRUNKS[usize::from(i.is_multiple_of(3))]
}

fn record(i: u64, created_ms: u64) -> CallRecord {
    let (call_id, room) = new_call_id();
    let new = NewCall {
        call_id,
        room,
        tenant: TENANT.into(),
        case_id: format!("case-{i}"),
        customer_crm_id: format!("cust-{i}"),
        agent_id: format!("agent-{}", i % 200),
        customer_number: "9530251797".into(),
        phone_from: "+919999999999".into(),
        trunk_label: trunk(i).into(),
    };
    let mut rec = CallRecord::new(new, &CallKnobs::default(), created_ms).0;
    if let (Some(status), code) = outcome(i) {
        rec.phase = Phase::Ended;
        rec.call_status = Some(status);
        rec.sip_disconnect_code = code;
        rec.ended_ms = Some(created_ms + 30_000);
        rec.timers.clear();
    }
    rec
}

fn open_store(data: &Path) -> (sled::Db, SledCallStore) {
    // Same settings as `c2c-gateway serve` (gateway/src/server.rs).
    let db = sled::Config::new()
        .path(data.join("store"))
        .cache_capacity(64 * 1024 * 1024)
        .flush_every_ms(Some(500))
        .open()
        .expect("open sled");
    let store = SledCallStore::open_with_db(db.clone()).expect("open call store");
    (db, store)
}

/// `(total, answered, not answered, failed)` of the calls written on `trunk`.
fn expected(calls: u64, trunk_name: &str) -> (u64, u64, u64, u64) {
    let mut e = (0, 0, 0, 0);
    for i in (0..calls).filter(|i| trunk(*i) == trunk_name) {
        e.0 += 1;
        match outcome(i).0 {
            Some(CallStatus::Answered) => e.1 += 1,
            Some(CallStatus::NotAnswered) => e.2 += 1,
            Some(CallStatus::Failed) => e.3 += 1,
            // The generator writes outbound calls only.
            Some(CallStatus::Missed) | None => {}
        }
    }
    e
}

async fn generate(a: &Args, data: &Path, start_ms: u64) {
    let (db, store) = open_store(data);
    let t = Instant::now();
    let span = a.days * DAY_MS;
    let mut tasks = Vec::new();
    for k in 0..a.concurrency {
        let (store, calls) = (store.clone(), a.calls);
        let step = a.concurrency;
        tasks.push(tokio::spawn(async move {
            let mut i = k;
            while i < calls {
                let created = start_ms + i * span / calls;
                store.create(&record(i, created)).await.expect("create");
                i += step;
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer task");
    }
    db.flush().expect("flush");
    let s = t.elapsed().as_secs_f64();
    println!(
        "generated {} calls over {} days in {s:.1} s ({:.0} calls/s, through SledCallStore::create)",
        a.calls,
        a.days,
        a.calls as f64 / s
    );
}

fn copy_policies(src: &Path, dst: &Path) {
    for rel in [
        "tenants/acme.toml",
        "tenants/globex.toml",
        "secrets/livekit-sim.secret",
        "secrets/acme-crm-outbound.key",
        "secrets/acme-crm-signing.secret",
        "secrets/globex-crm-outbound.key",
        "gateway.toml",
    ] {
        let to = dst.join(rel);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(src.join(rel), &to).expect("copy policy");
    }
    // One client firing queries back to back: lift the per-tenant request rate.
    let acme = std::fs::read_to_string(dst.join("tenants/acme.toml")).expect("read");
    let acme = acme.replace("[dlt]", "[limits]\nrequests_per_second = 100000\n\n[dlt]");
    std::fs::write(dst.join("tenants/acme.toml"), acme).expect("write");
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

async fn time_queries(a: &Args, dir: &Path, from: NaiveDate, to: NaiveDate) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let _gw = Kill(c2c_bench_drivers::spawn_gateway(&a.gateway, dir, port).expect("start gateway"));
    let c = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let t = Instant::now();
    while !c
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(t.elapsed() < Duration::from_secs(60), "gateway not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "gateway ready on the {}-call store in {:.2} s",
        a.calls,
        t.elapsed().as_secs_f64()
    );
    for trunk_name in [Some(TRUNKS[0]), None] {
        let mut url = format!("{base}/api/c2c/analytics?from={from}&to={to}");
        if let Some(t) = trunk_name {
            url.push_str(&format!("&trunk={t}"));
        }
        let mut lat = Vec::with_capacity(a.queries);
        for n in 0..a.queries + 20 {
            let t = Instant::now();
            let r = c
                .get(&url)
                .header("X-api-key", KEY)
                .send()
                .await
                .expect("query");
            let status = r.status();
            let v: serde_json::Value = r.json().await.expect("json");
            let ms = t.elapsed().as_secs_f64() * 1e3;
            assert!(status.is_success(), "analytics failed: {v}");
            if n >= 20 {
                lat.push(ms);
            }
            if n == 0 {
                check(a, trunk_name, &v);
            }
        }
        println!(
            "analytics {} days, trunk={}: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} requests, HTTP end to end)",
            a.days,
            trunk_name.unwrap_or("(all)"),
            pct(&mut lat, 0.50),
            pct(&mut lat, 0.99),
            pct(&mut lat, 1.0),
            a.queries
        );
    }
}

/// Every figure the endpoint returns must equal what was written.
fn check(a: &Args, trunk_name: Option<&str>, v: &serde_json::Value) {
    let mut e = (0, 0, 0, 0);
    for t in TRUNKS
        .iter()
        .filter(|t| trunk_name.is_none_or(|n| n == **t))
    {
        let x = expected(a.calls, t);
        e = (e.0 + x.0, e.1 + x.1, e.2 + x.2, e.3 + x.3);
    }
    let got = (
        v["total"].as_u64().unwrap_or(0),
        v["outcomes"]["ANSWERED"].as_u64().unwrap_or(0),
        v["outcomes"]["NOT_ANSWERED"].as_u64().unwrap_or(0),
        v["outcomes"]["FAILED"].as_u64().unwrap_or(0),
    );
    assert_eq!(got, e, "analytics disagrees with the calls written");
    assert_eq!(v["by_day"].as_array().map(Vec::len), Some(a.days as usize));
}

/// The same answer by reading every record of the range (what analytics costs without
/// per-day tallies): pages of `list_by_tenant`, filtered by trunk, tallied.
fn record_scan(a: &Args, dir: &Path, from_ms: u64, to_ms: u64) {
    let (_db, store) = open_store(&dir.join("data"));
    let mut runs = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
        let mut cursor = None;
        loop {
            let page = store
                .list_by_tenant(TENANT, from_ms, to_ms, 500, cursor.as_deref())
                .expect("page");
            for r in page.records.iter().filter(|r| r.trunk_label == TRUNKS[0]) {
                *by_status
                    .entry(r.call_status.map_or("IN_PROGRESS", CallStatus::as_str))
                    .or_default() += 1;
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        runs.push(t.elapsed().as_secs_f64() * 1e3);
        let total: u64 = by_status.values().sum();
        assert_eq!(total, expected(a.calls, TRUNKS[0]).0);
    }
    println!(
        "record scan baseline, trunk={}: median {:.0} ms over 3 runs (in process, no HTTP)",
        TRUNKS[0],
        pct(&mut runs, 0.5)
    );
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let a = Args::parse();
    let dir = std::env::temp_dir().join(format!("c2c-analytics-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let to = Utc::now().date_naive();
    let from = to - chrono::Duration::days(a.days as i64 - 1);
    let from_ms = from
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis() as u64)
        .expect("midnight");
    generate(&a, &dir.join("data"), from_ms).await;
    copy_policies(&a.policies, &dir.join("policies"));
    time_queries(&a, &dir, from, to).await;
    record_scan(&a, &dir, from_ms, from_ms + a.days * DAY_MS);
    let size = Command::new("du")
        .args(["-sh"])
        .arg(dir.join("data"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("store on disk: {size}");
    let _ = std::fs::remove_dir_all(&dir);
}
