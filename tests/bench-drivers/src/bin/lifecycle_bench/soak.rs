//! The soak phase (`--soak-minutes`): full call lifecycles at a steady rate for a long
//! time, the gateway's resident memory sampled at a fixed interval, and a verdict on
//! whether it has levelled off. Run through `tests/bench/soak.sh`.
//!
//! A leak shows as RSS that keeps rising at the same pace to the end; a cache filling up
//! (the store's, the allocator's retained pages) as RSS that rises, then flattens. The
//! verdict compares the last third of the run with its own start: it levels off when it
//! grew by less than [`FLAT_FRACTION`] of its size (or [`FLAT_KIB`], whichever is more).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::{http1, lifecycle, rss_kib, start, Agent, Args, Lat};

/// Growth allowed over the last third of the run, as a fraction of its starting RSS.
const FLAT_FRACTION: f64 = 0.05;
/// ... or this many KiB, whichever is larger (allocator noise on a small heap).
const FLAT_KIB: u64 = 8 * 1024;
/// Lifecycles run by one worker at a time; enough workers to absorb LiveKit latency.
const WORKERS: usize = 64;

/// One memory sample.
struct Sample {
    at: Duration,
    calls: u64,
    gateway_kib: u64,
    sim_kib: u64,
    store_kib: u64,
}

/// Runs the soak; returns whether the gateway's RSS levelled off.
pub async fn run(a: &Args, minutes: f64) -> bool {
    let rate = a.rate.max(1);
    let e = Arc::new(start(a, "poll", "soak").await);
    let data_dir = e.dir().join("data");
    println!(
        "soak: {rate} call lifecycles/s for {minutes} min, RSS sampled every {} s \
         (poll mode; LiveKit simulator and CRM sink out of the gateway's process)",
        a.sample_seconds
    );
    // Tickets at the target rate; workers run one lifecycle per ticket. A ticket nobody
    // takes in time is counted as missed rather than queued without bound.
    let (tx, rx) = mpsc::channel::<()>(WORKERS);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let done = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (e, rx, done) = (e.clone(), rx.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let (mut gw, mut sim) = (http1::Conn::new(e.gw_addr), http1::Conn::new(e.sim_addr));
            let agent = Agent::legacy();
            loop {
                let ticket = rx.lock().await.recv().await;
                if ticket.is_none() {
                    return;
                }
                lifecycle(&mut gw, &mut sim, &agent, &mut Lat::default()).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let total = Duration::from_secs_f64(minutes * 60.0);
    let every = Duration::from_secs(a.sample_seconds.max(1));
    let gap = Duration::from_secs_f64(1.0 / rate as f64);
    let t0 = Instant::now();
    let mut samples = vec![sample(&e, Duration::ZERO, 0, &data_dir)];
    print_sample(&samples[0]);
    let mut next_sample = every;
    let mut next_ticket = Duration::ZERO;
    let mut missed = 0u64;
    while t0.elapsed() < total {
        let now = t0.elapsed();
        if now >= next_sample {
            let s = sample(&e, now, done.load(Ordering::Relaxed), &data_dir);
            print_sample(&s);
            samples.push(s);
            next_sample += every;
        }
        if now >= next_ticket {
            if tx.try_send(()).is_err() {
                missed += 1;
            }
            next_ticket += gap;
        } else {
            tokio::time::sleep(next_ticket - now).await;
        }
    }
    drop(tx);
    for w in workers {
        let _ = w.await;
    }
    let s = sample(&e, t0.elapsed(), done.load(Ordering::Relaxed), &data_dir);
    print_sample(&s);
    samples.push(s);
    let calls = done.load(Ordering::Relaxed);
    println!(
        "{calls} lifecycles in {:.1} min ({:.1}/s), {missed} tickets missed (workers busy)",
        t0.elapsed().as_secs_f64() / 60.0,
        calls as f64 / t0.elapsed().as_secs_f64()
    );
    verdict(&samples)
}

fn sample(e: &crate::Env, at: Duration, calls: u64, data: &std::path::Path) -> Sample {
    Sample {
        at,
        calls,
        gateway_kib: rss_kib(e.gw_pid),
        sim_kib: rss_kib(e.sim_pid),
        store_kib: dir_kib(data),
    }
}

fn print_sample(s: &Sample) {
    println!(
        "  t={:>6.1} min  calls={:>7}  gateway RSS {:>7.1} MiB  simulator RSS {:>6.1} MiB  store on disk {:>7.1} MiB",
        s.at.as_secs_f64() / 60.0,
        s.calls,
        s.gateway_kib as f64 / 1024.0,
        s.sim_kib as f64 / 1024.0,
        s.store_kib as f64 / 1024.0
    );
}

/// Sum of file sizes under `dir`, in KiB.
fn dir_kib(dir: &std::path::Path) -> u64 {
    fn walk(p: &std::path::Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(p) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => walk(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    }
    walk(dir) / 1024
}

/// Prints the growth of each third of the run and whether the last third is flat.
fn verdict(samples: &[Sample]) -> bool {
    if samples.len() < 4 {
        println!("verdict: too few samples to judge (run longer or sample more often)");
        return false;
    }
    let third = samples.len() / 3;
    let last = &samples[samples.len() - 1 - third..];
    let (from, to) = (last[0].gateway_kib, last[last.len() - 1].gateway_kib);
    let allowed = ((from as f64 * FLAT_FRACTION) as u64).max(FLAT_KIB);
    let grew = to.saturating_sub(from);
    let first = &samples[..=third];
    println!(
        "gateway RSS: first third +{:.1} MiB, last third +{:.1} MiB (allowed {:.1} MiB)",
        first[first.len() - 1]
            .gateway_kib
            .saturating_sub(first[0].gateway_kib) as f64
            / 1024.0,
        grew as f64 / 1024.0,
        allowed as f64 / 1024.0
    );
    let flat = grew <= allowed;
    println!(
        "verdict: {}",
        if flat {
            "levelled off"
        } else {
            "STILL RISING (a leak, or a cache larger than this run fills)"
        }
    );
    flat
}
