//! What one call costs on [`PgCallStore`] against a local PostgreSQL with durable
//! defaults (`fsync` on, `synchronous_commit` on): latency of each step of a call's
//! life (create, transitions, the end with its webhook, get, a tally read), one call at
//! a time, then whole lifecycles from many tasks at once.
//!
//! `cargo run --release -p c2c-store-pg --example pg_call_store`
#![allow(clippy::unwrap_used, clippy::expect_used)] // a measurement: a failed unwrap ends the run

use std::sync::Arc;
use std::time::{Duration, Instant};

use c2c_callstate::store::contract::call;
use c2c_callstate::{transition, CallEvent, CallKnobs, CallStore, CallStoreExt};
use c2c_store_pg::{PgCallStore, PgOptions, PgStore};
use c2c_test_support::pg::PgServer;

const SEQUENTIAL: usize = 500;
const TASKS: usize = 32;
const PER_TASK: usize = 50;
/// 2024-03-01T00:00:00Z.
const T0: u64 = 1_709_251_200_000;

fn pct(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort_unstable();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i].as_secs_f64() * 1e6
}

async fn lifecycle(s: &PgCallStore, i: u64, steps: &mut [Vec<Duration>; 6]) {
    let rec = call(if i.is_multiple_of(2) { "acme" } else { "beta" }, T0 + i);
    let k = CallKnobs::default();
    let t = Instant::now();
    s.create(&rec).await.unwrap();
    steps[0].push(t.elapsed());
    let id = rec.call_id.clone();
    for (n, ev) in [
        CallEvent::Connect,
        CallEvent::Answered,
        CallEvent::AgentHangup,
    ]
    .into_iter()
    .enumerate()
    {
        let t = Instant::now();
        s.apply_transition(&id, |r| {
            transition(r, &ev, &k, T0 + i + 1_000 * (n as u64 + 1))
        })
        .await
        .unwrap();
        steps[n + 1].push(t.elapsed());
    }
    let t = Instant::now();
    s.get(&id).await.unwrap().unwrap();
    steps[4].push(t.elapsed());
    let t = Instant::now();
    s.day_tallies("acme", "20240301", "20240301", None)
        .await
        .unwrap();
    steps[5].push(t.elapsed());
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let pg = tokio::task::spawn_blocking(|| {
        let pg = PgServer::start_with(&[]);
        pg.create_database("bench");
        pg
    })
    .await
    .unwrap();
    let mut opts = PgOptions::new(pg.url("bench"));
    opts.schema = Some("bench".into());
    opts.pool_size = TASKS;
    let store = Arc::new(
        PgCallStore::new(PgStore::open(opts).await.unwrap())
            .await
            .unwrap(),
    );

    let names = [
        "create",
        "connect",
        "answered",
        "hangup+webhook",
        "get",
        "day_tallies",
    ];
    let mut steps: [Vec<Duration>; 6] = Default::default();
    for i in 0..SEQUENTIAL {
        lifecycle(&store, i as u64, &mut steps).await;
    }
    println!("one call at a time, {SEQUENTIAL} calls (µs):");
    for (name, samples) in names.iter().zip(steps.iter_mut()) {
        println!(
            "  {name:<15} p50 {:>7.0}  p99 {:>7.0}",
            pct(samples, 0.5),
            pct(samples, 0.99)
        );
    }

    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut steps: [Vec<Duration>; 6] = Default::default();
            for i in 0..PER_TASK {
                lifecycle(&s, (100_000 + t * PER_TASK + i) as u64, &mut steps).await;
            }
            steps
        }));
    }
    let mut all: [Vec<Duration>; 6] = Default::default();
    for t in tasks {
        for (into, from) in all.iter_mut().zip(t.await.unwrap()) {
            into.extend(from);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let calls = TASKS * PER_TASK;
    println!(
        "{TASKS} tasks, {calls} whole calls in {secs:.2} s: {:.0} calls/s (µs per step):",
        calls as f64 / secs
    );
    for (name, samples) in names.iter().zip(all.iter_mut()) {
        println!(
            "  {name:<15} p50 {:>7.0}  p99 {:>7.0}",
            pct(samples, 0.5),
            pct(samples, 0.99)
        );
    }
    assert!(store.check().await.unwrap().is_clean());
}
