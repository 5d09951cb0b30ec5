//! Inbound call benchmark (issue 21), run through `tests/bench/inbound.sh`.
//!
//! One process is the carrier (a UDP SIP UAC dialling the tenant's DID at the gateway's
//! SIP edge at a fixed rate), the agents (presence WebSocket clients, available) and
//! the CRM (lead lookup answering at once, webhook receiver). The gateway and the
//! LiveKit simulator (as LiveKit SIP) run as their own processes.
//!
//! - `--mode offer`: INVITE sent -> the agent reads `incoming` (matched by the caller
//!   number, unique per call), then the carrier cancels: the offer path only (edge hold,
//!   store, pick, lookup, `incoming`), and no agent stays busy.
//! - `--mode answer`: the agent accepts, joins the room through the simulator's hook,
//!   LiveKit answers, the carrier gets the 200, ACKs, holds and hangs up: whole calls.
//!
//! Both print the INVITE -> `incoming` latency next to the gateway's own histogram
//! (`c2c_inbound_incoming_delay_seconds`), calls completed and failed, and the CPU of
//! each process per call (`/proc/<pid>/stat`).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use c2c_bench_drivers::cpu_secs;
use clap::Parser;
use tokio::sync::{mpsc, Semaphore};

mod agents;
mod carrier;
mod crm;
mod setup;
mod sip;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    Offer,
    Answer,
}

#[derive(Parser)]
pub struct Args {
    #[arg(long)]
    gateway: PathBuf,
    #[arg(long)]
    sim: PathBuf,
    #[arg(long)]
    policies: PathBuf,
    #[arg(long, value_enum, default_value_t = Mode::Offer)]
    mode: Mode,
    /// New inbound calls per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds of calls measured (after the warm-up).
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// Seconds of calls at the same rate before, not measured.
    #[arg(long, default_value_t = 2.0)]
    warmup_seconds: f64,
    /// Agents connected and available.
    #[arg(long, default_value_t = 200)]
    agents: usize,
    /// Answer mode: ms between the carrier's ACK and its BYE.
    #[arg(long, default_value_t = 100)]
    hold_ms: u64,
    /// The tenant's `inbound.lead_wait_ms`.
    #[arg(long, default_value_t = 1500)]
    lead_wait_ms: u64,
}

/// Percentile `p` of `v` in ms (µs in).
fn pct(v: &mut [u64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

fn row(name: &str, v: &mut [u64]) -> String {
    format!(
        "{name:<34} {:>8.2} {:>8.2} {:>8.2} {:>8.2}   (n={})",
        pct(v, 0.5),
        pct(v, 0.9),
        pct(v, 0.99),
        pct(v, 1.0),
        v.len()
    )
}

/// Waits until `f()` or `limit`; whether it became true.
async fn until(limit: Duration, f: impl Fn() -> bool) -> bool {
    let t = Instant::now();
    while !f() {
        if t.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// The driver's own stalls: a 5 ms timer that fires more than 10 ms late means this
/// process (its one thread) did not run for that long — descheduled, or busy — and every
/// timestamp taken then, and the CRM's lookup answers, were late by as much.
fn stall_watch() -> Arc<Mutex<Vec<(Instant, Duration)>>> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let o = out.clone();
    tokio::spawn(async move {
        let every = Duration::from_millis(5);
        loop {
            let t = Instant::now();
            tokio::time::sleep(every).await;
            let late = t.elapsed().saturating_sub(every);
            if late > Duration::from_millis(10) {
                o.lock().unwrap().push((t, late));
            }
        }
    });
    out
}

/// Where the calls slower than 20 ms to `incoming` were: a stall delays every call in
/// flight, so they come in bursts; their times tell a stall from a slow path.
fn slow_bursts(s: &carrier::Stats, t0: Instant) {
    let mut slow: Vec<(f64, u64)> = s
        .incoming
        .iter()
        .filter(|x| x.1 > 20_000)
        .map(|x| (x.0.saturating_duration_since(t0).as_secs_f64(), x.1))
        .collect();
    if slow.is_empty() {
        return println!("no call took over 20 ms to its incoming");
    }
    slow.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Bursts: slow calls less than 0.5 s apart; (first s, last s, calls, worst µs).
    let mut bursts: Vec<(f64, f64, usize, u64)> = Vec::new();
    for (t, us) in slow.iter().copied() {
        match bursts.last_mut() {
            Some(b) if t - b.1 < 0.5 => {
                b.1 = t;
                b.2 += 1;
                b.3 = b.3.max(us);
            }
            _ => bursts.push((t, t, 1, us)),
        }
    }
    let list: Vec<String> = bursts
        .iter()
        .map(|b| {
            format!(
                "{:.1} s: {} calls, worst {:.0} ms",
                b.0,
                b.2,
                b.3 as f64 / 1000.0
            )
        })
        .collect();
    println!(
        "calls over 20 ms to incoming: {} in {} burst(s) (INVITE time after the first) — {}",
        slow.len(),
        bursts.len(),
        list.join("; ")
    );
}

// One thread, as the other drivers: it only waits on sockets, and a second worker would
// spend its time parking and waking (it shares both cores with what it measures).
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let a = Args::parse();
    let (crm, crm_url) = crm::start().await;
    let env = setup::start(&a, &crm_url).await;
    let accept = a.mode == Mode::Answer;
    let mode = match a.mode {
        Mode::Offer => carrier::Mode::Offer,
        Mode::Answer => carrier::Mode::Answer {
            hold: Duration::from_millis(a.hold_ms),
        },
    };
    let carrier = carrier::Carrier::start(env.sip, mode);

    // Agents: registered, connected, available.
    let t = Instant::now();
    let shared = Arc::new(agents::Shared {
        gw: env.gw,
        sim: env.sim,
        carrier: carrier.clone(),
        accept,
        stats: Mutex::new(agents::AgentStats::default()),
    });
    let (ready_tx, mut ready) = mpsc::unbounded_channel();
    let permits = Arc::new(Semaphore::new(32));
    for i in 0..a.agents {
        let id = agents::agent_id(i);
        let token = agents::register(&env.c, &env.base, &id)
            .await
            .unwrap_or_else(|e| panic!("agent {id}: {e}"));
        agents::spawn(id, token, shared.clone(), permits.clone(), ready_tx.clone());
    }
    drop(ready_tx);
    let mut up = 0;
    while let Some(r) = ready.recv().await {
        r.unwrap_or_else(|e| panic!("agent socket: {e}"));
        up += 1;
    }
    assert_eq!(up, a.agents, "agents ready");

    let n = (a.rate * a.seconds).round() as u64;
    let warm = (a.rate * a.warmup_seconds).round() as u64;
    println!(
        "inbound bench: mode {}, {} calls/s, {warm} warm-up calls then {n} measured ({} s); \
         {} agents available (ready in {:.1} s); lead lookup answering at once, \
         lead_wait_ms {}{}",
        if accept { "answer" } else { "offer" },
        a.rate,
        a.seconds,
        a.agents,
        t.elapsed().as_secs_f64(),
        a.lead_wait_ms,
        if accept {
            format!("; hold {} ms between ACK and BYE", a.hold_ms)
        } else {
            String::new()
        }
    );

    // Warm-up: the same calls, not measured; then the webhooks of its calls.
    if warm > 0 {
        let w = carrier.run(0, warm, a.rate).await;
        let done = until(Duration::from_secs(30), || {
            crm.webhooks.load(Ordering::Relaxed) >= warm
        })
        .await;
        println!(
            "warm-up: {} of {warm} calls completed, {} failed{}",
            w.completed,
            w.failed.values().sum::<u64>(),
            if done {
                ""
            } else {
                ", webhooks still pending after 30 s"
            }
        );
    }
    *shared.stats.lock().unwrap() = agents::AgentStats::default();
    // The gateway's CPU with the agents connected and no call.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (i0, it) = (cpu_secs(env.gw_pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = (cpu_secs(env.gw_pid) - i0) / it.elapsed().as_secs_f64();

    let hist = "c2c_inbound_incoming_delay_seconds";
    let flush = "c2c_store_flush_seconds";
    let m0 = env.metrics().await;
    let (h0, f0) = (setup::buckets(&m0, hist), setup::buckets(&m0, flush));
    crm.outcomes.lock().unwrap().clear();
    let (hooks0, lookups0) = (
        crm.webhooks.load(Ordering::Relaxed),
        crm.lookups.load(Ordering::Relaxed),
    );
    let stalls = stall_watch();
    let me = std::process::id();
    let rcvbuf0 = setup::udp_rcvbuf_errors();
    let cpu0 = [cpu_secs(env.gw_pid), cpu_secs(env.sim_pid), cpu_secs(me)];
    let busy0 = setup::machine_busy_secs();
    let t0 = Instant::now();
    let mut s = carrier.run(warm, n, a.rate).await;
    let calls_done = t0.elapsed();
    let hooks_in = until(Duration::from_secs(60), || {
        crm.webhooks.load(Ordering::Relaxed) >= hooks0 + n
    })
    .await;
    let window = t0.elapsed().as_secs_f64();
    let cpu1 = [cpu_secs(env.gw_pid), cpu_secs(env.sim_pid), cpu_secs(me)];
    let others =
        setup::machine_busy_secs() - busy0 - (0..3).map(|i| cpu1[i] - cpu0[i]).sum::<f64>();
    let rcvbuf = setup::udp_rcvbuf_errors() - rcvbuf0;
    let m1 = env.metrics().await;
    let (h1, f1) = (setup::buckets(&m1, hist), setup::buckets(&m1, flush));
    let hooks = crm.webhooks.load(Ordering::Relaxed) - hooks0;
    let lookups = crm.lookups.load(Ordering::Relaxed) - lookups0;
    let outcomes: Vec<String> = crm
        .outcomes
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    let mut ag = std::mem::take(&mut *shared.stats.lock().unwrap());

    // Report.
    let failed: u64 = s.failed.values().sum();
    let secs = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
        (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
        _ => f64::NAN,
    };
    let dial = secs(s.first_sent, s.last_sent);
    let span = secs(s.first_sent, s.last_done);
    let cps = s.completed as f64 / span;
    println!(
        "calls: {n} dialled in {dial:.2} s ({:.1}/s), {} completed, {failed} failed; \
         completed calls/s {cps:.1} (first INVITE to the last call's end, {span:.2} s); \
         all ended {:.2} s after the first INVITE",
        (n.max(2) - 1) as f64 / dial,
        s.completed,
        calls_done.as_secs_f64()
    );
    for (why, k) in &s.failed {
        println!("  failed: {k} x {why}");
    }
    println!(
        "{:<34} {:>8} {:>8} {:>8} {:>8}",
        "latency, ms", "p50", "p90", "p99", "max"
    );
    let mut incoming_us: Vec<u64> = s.incoming.iter().map(|x| x.1).collect();
    println!("{}", row("INVITE sent -> incoming read", &mut incoming_us));
    let q = |p| setup::quantile(&h0, &h1, p).map_or(f64::NAN, |v| v * 1000.0);
    let gw_n = h1.last().map_or(0.0, |x| x.1) - h0.last().map_or(0.0, |x| x.1);
    println!(
        "{:<34} {:>8.2} {:>8.2} {:>8.2} {:>8}   (n={gw_n}; {hist}, edge hold -> incoming \
         queued, interpolated in 1-2-4-8 ms buckets)",
        "gateway's own histogram",
        q(0.5),
        q(0.9),
        q(0.99),
        "-"
    );
    if accept {
        println!("{}", row("INVITE sent -> 200 OK read", &mut s.answer_us));
        println!("{}", row("accept sent -> accepted read", &mut ag.accept_us));
    }
    println!(
        "leads: {} incoming with the caller's lead, {} with none, {} with another's; \
         {lookups} lookups; {hooks} webhooks ({}){}",
        ag.lead_ok,
        ag.lead_missing,
        ag.lead_wrong,
        outcomes.join(", "),
        if hooks_in {
            ""
        } else {
            " (some still pending after 60 s)"
        }
    );
    let per_call = |i: usize| (cpu1[i] - cpu0[i]) * 1000.0 / n as f64;
    let net = per_call(0) - idle * window * 1000.0 / n as f64;
    println!(
        "CPU per call (user + system, {window:.1} s window up to the last webhook): gateway \
         {:.3} ms ({net:.3} ms minus its idle {idle:.4} CPU s/s), simulator {:.3} ms, \
         driver {:.3} ms",
        per_call(0),
        per_call(1),
        per_call(2)
    );
    println!(
        "rest of the machine (other processes, kernel threads, steal) during the window: \
         {:.2} CPU s/s of {}",
        others.max(0.0) / window,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "SIP: {} retransmissions by the carrier, {} send errors, host UDP RcvbufErrors +{rcvbuf}",
        s.retransmissions, s.send_errors
    );
    for (what, k) in s.notes.iter().chain(ag.other.iter()) {
        println!("  note: {k} x {what}");
    }
    slow_bursts(&s, t0);
    let fq = |p| setup::quantile(&f0, &f1, p).map_or(f64::NAN, |v| v * 1000.0);
    let flushes = f1.last().map_or(0.0, |x| x.1) - f0.last().map_or(0.0, |x| x.1);
    println!(
        "store: {flushes} group-commit flushes ({:.2} per call), p50 {:.2} ms, p99 {:.2} ms, \
         p99.9 {:.2} ms, max <= {:.2} ms ({flush}, interpolated)",
        flushes / n as f64,
        fq(0.5),
        fq(0.99),
        fq(0.999),
        fq(1.0)
    );
    let stalls: Vec<String> = std::mem::take(&mut *stalls.lock().unwrap())
        .iter()
        .filter(|x| x.0 >= t0)
        .map(|x| {
            let at = x.0.saturating_duration_since(t0).as_secs_f64();
            format!("{at:.1} s: {:.0} ms", x.1.as_secs_f64() * 1000.0)
        })
        .collect();
    println!(
        "driver stalls (a 5 ms timer more than 10 ms late): {}",
        if stalls.is_empty() {
            "none".to_owned()
        } else {
            stalls.join("; ")
        }
    );
    let p99 = pct(&mut incoming_us, 0.99);
    if !accept {
        println!(
            "target: INVITE -> incoming p99 < 20 ms at {} calls/s: {}",
            a.rate,
            if p99 < 20.0 && failed == 0 {
                "met"
            } else {
                "NOT MET"
            }
        );
    }
    println!(
        "summary: completed={} failed={failed} cps={cps:.1} incoming_p50_ms={:.2} \
         incoming_p99_ms={p99:.2} gw_p99_ms={:.2} gw_cpu_ms={:.3} gw_cpu_net_ms={net:.3} \
         retrans={}",
        s.completed,
        pct(&mut incoming_us, 0.5),
        q(0.99),
        per_call(0),
        s.retransmissions
    );
}
