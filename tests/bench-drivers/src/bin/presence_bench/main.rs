//! Presence benchmark (issue 20, "Agents"): what an idle presence WebSocket costs the
//! gateway, against an idle HTTP/1.1 keep-alive connection held inside Pingora, and how
//! fast an agent's availability change reaches a supervisor with many sockets open.
//!
//! 1. Starts the release gateway on a copy of `./policies` (bundled LiveKit simulator),
//!    registers N agents of acme, mints a presence token for each; gateway RSS.
//! 2. Opens N presence sockets (auth, `ready`), lets them settle idle; RSS again: KiB per
//!    socket.
//! 3. Fan-out: one supervisor socket; agents change availability (available/away, each
//!    agent at most once a second, well inside the 10-per-10-s limit) at a steady rate;
//!    per change, the time from sending the frame to the supervisor receiving the
//!    matching `availability` event.
//! 4. A fresh gateway: N idle keep-alive connections after one `GET /livez` each; RSS
//!    delta per connection.
//!
//! Exits non-zero only when the setup fails (a registration, a token, a socket or a
//! connection that could not be opened), never on a missed target. Run through
//! `tests/bench/presence.sh`, which builds release binaries first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gateway;
mod keepalive;
mod sockets;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::sync::{mpsc, Semaphore};

use gateway::{cpu_secs, fds, rss_kib, threads, vm_data_kib};
use sockets::{agent_id, Stats, SUPERVISOR};

// jemalloc, as the gateway and the other drivers.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    gateway: PathBuf,
    #[arg(long)]
    policies: PathBuf,
    /// Agent presence sockets held open at once.
    #[arg(long, default_value_t = 10_000)]
    sockets: usize,
    /// Length of the fan-out phase.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Availability changes per second in the fan-out phase.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Quiet time before each baseline memory reading.
    #[arg(long, default_value_t = 5)]
    settle_seconds: u64,
    /// Idle time with the sockets (or connections) open before their memory reading;
    /// also the window of the idle CPU figure. The default is one heartbeat period (the
    /// gateway pings every presence socket every 15 s), so it holds one round of pings.
    #[arg(long, default_value_t = 15)]
    idle_seconds: u64,
    /// Requests, or socket and connection openings, in flight at once during setup.
    #[arg(long, default_value_t = 64)]
    setup_concurrency: usize,
    /// Idle keep-alive connections for the comparison (default: as many as sockets; 0
    /// skips it).
    #[arg(long)]
    keepalive: Option<usize>,
}

/// Percentile of sorted microseconds, in milliseconds.
fn pct_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT MET"
    }
}

/// One line of `/metrics` on a connection that is closed afterwards.
async fn metric(base: &str, name: &str) -> String {
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let text = match c.get(format!("{base}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(e) => return format!("{name} ? ({e})"),
    };
    text.lines()
        .find(|l| l.starts_with(name))
        .unwrap_or("(not exported)")
        .to_string()
}

struct Figures {
    sockets: usize,
    opened: usize,
    rss_base: u64,
    rss_open: u64,
    rss_settled: u64,
    rss_after_fanout: u64,
    fanout_sent: usize,
    fanout_us: Vec<u64>,
    own_us: Vec<u64>,
    missing: usize,
    ka: Option<KeepAlive>,
}

struct KeepAlive {
    asked: usize,
    open: usize,
    held: usize,
    rss_base: u64,
    rss_settled: u64,
}

// One thread: the load generator mostly waits on sockets, and it shares the two cores
// with the gateway.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let a = Args::parse();
    let n = a.sockets;
    let settle = Duration::from_secs(a.settle_seconds);
    let idle = Duration::from_secs(a.idle_seconds.max(1));
    let conc = a.setup_concurrency.max(1);
    let mut setup_errors: Vec<String> = Vec::new();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "c2c-gateway presence bench: {n} agent sockets, fan-out {:.0} changes/s for {} s \
         ({cores} cores shared by the gateway and this load generator, not pinned; the \
         load generator runs one thread)",
        a.rate, a.seconds
    );

    // 1. Gateway, agents, tokens.
    let gw = gateway::start(&a.gateway, &a.policies, "sockets", n + 100).await;
    let pid = gw.pid;
    let t = Instant::now();
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(conc)
        .build()
        .unwrap();
    let mut ids: Vec<String> = (0..n).map(agent_id).collect();
    ids.push(SUPERVISOR.to_owned());
    let registered = sockets::each(ids.len(), conc, |i| {
        let (c, base, id) = (&c, &gw.base, &ids[i]);
        async move { sockets::register(c, base, id).await }
    })
    .await;
    let failed: Vec<&String> = registered.iter().filter_map(|r| r.as_ref().err()).collect();
    if let Some(first) = failed.first() {
        println!(
            "setup FAILED: {} of {} registrations, first: {first}",
            failed.len(),
            ids.len()
        );
        std::process::exit(1);
    }
    let reg_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let tokens = sockets::each(ids.len(), conc, |i| {
        let (c, base, id) = (&c, &gw.base, &ids[i]);
        async move { sockets::token(c, base, id, id == SUPERVISOR).await }
    })
    .await;
    let mut tokens: Vec<String> = match tokens.into_iter().collect::<Result<_, _>>() {
        Ok(t) => t,
        Err(e) => {
            println!("setup FAILED: presence token: {e}");
            std::process::exit(1);
        }
    };
    let sup_token = tokens.pop().unwrap();
    println!(
        "setup: {} agents registered in {reg_secs:.1} s ({:.0}/s), {} presence tokens in {:.1} s",
        ids.len(),
        ids.len() as f64 / reg_secs,
        ids.len(),
        t.elapsed().as_secs_f64()
    );
    // Close the setup's keep-alive connections before the baseline.
    drop(c);
    tokio::time::sleep(settle).await;

    // 2. N presence sockets.
    let rss_base = rss_kib(pid);
    let vm_base = vm_data_kib(pid);
    let (fds0, threads0) = (fds(pid), threads(pid));
    let cpu0 = cpu_secs(pid);
    let stats = Arc::new(Stats::default());
    let permits = Arc::new(Semaphore::new(conc));
    let (otx, mut orx) = mpsc::unbounded_channel();
    let t = Instant::now();
    let cmds: Vec<mpsc::Sender<bool>> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, tok)| {
            sockets::spawn_agent(
                i as u32,
                gw.addr,
                tok,
                permits.clone(),
                stats.clone(),
                otx.clone(),
            )
        })
        .collect();
    drop(otx);
    let mut live: Vec<usize> = Vec::with_capacity(n);
    let mut open_failures: BTreeMap<String, usize> = BTreeMap::new();
    while let Some((i, r)) = orx.recv().await {
        match r {
            Ok(()) => live.push(i as usize),
            Err(e) => *open_failures.entry(e).or_default() += 1,
        }
    }
    live.sort_unstable();
    let open_secs = t.elapsed().as_secs_f64();
    let cpu_open = cpu_secs(pid) - cpu0;
    let rss_open = rss_kib(pid);
    let cpu1 = cpu_secs(pid);
    tokio::time::sleep(idle).await;
    let idle_cpu_pct = (cpu_secs(pid) - cpu1) * 100.0 / idle.as_secs_f64();
    let rss_settled = rss_kib(pid);
    let vm_open = vm_data_kib(pid);
    let (fds1, threads1) = (fds(pid), threads(pid));
    println!(
        "\npresence sockets: {} of {n} open and ready in {open_secs:.1} s \
         ({:.0}/s, gateway CPU {:.0} µs per socket opened)",
        live.len(),
        live.len() as f64 / open_secs,
        cpu_open * 1e6 / live.len().max(1) as f64
    );
    for (e, count) in &open_failures {
        println!("  failed to open: {count} x {e}");
    }
    if live.len() < n {
        setup_errors.push(format!(
            "{} of {n} presence sockets did not open",
            n - live.len()
        ));
    }
    println!("  {}", metric(&gw.base, "c2c_presence_sessions").await);
    println!(
        "  gateway: {fds0} -> {fds1} open fds, {threads0} -> {threads1} threads; \
         idle CPU with the sockets open: {idle_cpu_pct:.1} % of one core"
    );
    println!(
        "  gateway RSS: {rss_base} KiB before -> {rss_open} KiB just opened -> \
         {rss_settled} KiB after {} s idle",
        idle.as_secs()
    );
    let per_socket = rss_settled.saturating_sub(rss_base) as f64 / live.len().max(1) as f64;
    println!(
        "  memory per idle presence socket: {per_socket:.2} KiB \
         (just opened: {:.2} KiB); heap and private mappings (VmData, touched or not): \
         +{:.1} KiB per socket",
        rss_open.saturating_sub(rss_base) as f64 / live.len().max(1) as f64,
        vm_open.saturating_sub(vm_base) as f64 / live.len().max(1) as f64
    );

    // 3. Fan-out to a supervisor.
    let mut fanout_sent = 0usize;
    let mut missing = 0usize;
    let t = Instant::now();
    let supervisor = sockets::spawn_supervisor(gw.addr, &sup_token, stats.clone()).await;
    let sup_ms = t.elapsed().as_secs_f64() * 1000.0;
    let rss_sup = rss_kib(pid);
    match supervisor {
        Err(e) => setup_errors.push(format!("supervisor socket: {e}")),
        Ok(snapshot) if live.is_empty() => {
            println!(
                "\nfan-out skipped: no agent socket open (supervisor snapshot: {snapshot} agents)"
            );
        }
        Ok(snapshot) => {
            println!(
                "\nfan-out: supervisor socket open and its snapshot ({snapshot} agents) read \
                 in {sup_ms:.0} ms; gateway RSS {rss_settled} -> {rss_sup} KiB"
            );
            let per_agent_s = live.len() as f64 / a.rate;
            if per_agent_s < 1.0 {
                println!(
                    "  warning: each agent changes every {per_agent_s:.2} s, faster than the \
                     gateway's 1 per s sustained limit: some changes will be refused"
                );
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let total = (a.rate * a.seconds as f64).round() as usize;
            let mut current: Vec<Option<bool>> = vec![None; n];
            let mut backlog = 0usize;
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / a.rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let cpu0 = cpu_secs(pid);
            let t = Instant::now();
            for k in 0..total {
                tick.tick().await;
                let i = live[k % live.len()];
                // Always a real change (an unchanged availability is not sent to
                // supervisors), alternating available and away across the stream.
                let to = current[i].map_or(k % 2 == 0, |was| !was);
                if cmds[i].try_send(to).is_ok() {
                    current[i] = Some(to);
                    fanout_sent += 1;
                } else {
                    backlog += 1;
                }
            }
            let secs = t.elapsed().as_secs_f64();
            // The last changes' events, then what never came.
            let until = Instant::now() + Duration::from_secs(3);
            let timed = || stats.fanout_us.lock().unwrap().len();
            while timed() < fanout_sent && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let cpu_pct = (cpu_secs(pid) - cpu0) * 100.0 / t.elapsed().as_secs_f64();
            missing = fanout_sent.saturating_sub(timed());
            println!(
                "  {fanout_sent} changes sent in {secs:.1} s ({:.1}/s){}; gateway CPU {cpu_pct:.1} % \
                 of one core during the phase, {idle_cpu_pct:.1} % idle with the sockets open: \
                 about {:.0} µs per change above idle (CPU ticks are 10 ms)",
                fanout_sent as f64 / secs,
                if backlog > 0 {
                    format!(", {backlog} skipped (agent task busy)")
                } else {
                    String::new()
                },
                (cpu_pct - idle_cpu_pct) / 100.0 * t.elapsed().as_secs_f64() * 1e6
                    / fanout_sent.max(1) as f64
            );
        }
    }
    let rss_after_fanout = rss_kib(pid);
    let other = stats.other.lock().unwrap().clone();
    for (what, count) in &other {
        println!("  on the sockets: {count} x {what}");
    }
    let unmatched = stats.unmatched.load(Ordering::Relaxed);
    if unmatched > 0 {
        println!("  supervisor: {unmatched} availability events matching no change sent");
    }
    let mut fanout_us = std::mem::take(&mut *stats.fanout_us.lock().unwrap());
    let mut own_us = std::mem::take(&mut *stats.own_us.lock().unwrap());
    fanout_us.sort_unstable();
    own_us.sort_unstable();

    // Tear down: the agent tasks close their sockets, then the gateway is killed.
    stats.stopping.store(true, Ordering::Relaxed);
    drop(cmds);
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(gw);

    // 4. Idle keep-alive connections inside Pingora, on a fresh gateway.
    let k = a.keepalive.unwrap_or(n);
    let ka = if k == 0 {
        None
    } else {
        let gw = gateway::start(&a.gateway, &a.policies, "keepalive", 100).await;
        tokio::time::sleep(settle).await;
        let rss_base = rss_kib(gw.pid);
        let vm_base = vm_data_kib(gw.pid);
        let t = Instant::now();
        let (conns, failed) = keepalive::open(gw.addr, k, conc).await;
        let open_secs = t.elapsed().as_secs_f64();
        let rss_open = rss_kib(gw.pid);
        let cpu0 = cpu_secs(gw.pid);
        tokio::time::sleep(idle).await;
        let idle_cpu_pct = (cpu_secs(gw.pid) - cpu0) * 100.0 / idle.as_secs_f64();
        let rss_settled = rss_kib(gw.pid);
        let held = keepalive::still_open(&conns);
        println!(
            "\nidle HTTP/1.1 keep-alive connections (a fresh gateway): {} of {k} open after \
             GET /livez in {open_secs:.1} s, {held} still held by the gateway after {} s idle \
             (gateway CPU meanwhile {idle_cpu_pct:.1} % of one core)",
            conns.len(),
            idle.as_secs()
        );
        let mut by: BTreeMap<&str, usize> = BTreeMap::new();
        for e in &failed {
            *by.entry(e.as_str()).or_default() += 1;
        }
        for (e, count) in by {
            println!("  failed: {count} x {e}");
        }
        if conns.len() < k {
            setup_errors.push(format!(
                "{} of {k} keep-alive connections did not open",
                k - conns.len()
            ));
        }
        println!(
            "  gateway RSS: {rss_base} KiB before -> {rss_open} KiB just opened -> \
             {rss_settled} KiB after {} s idle ({} threads); VmData +{:.1} KiB per connection",
            idle.as_secs(),
            threads(gw.pid),
            vm_data_kib(gw.pid).saturating_sub(vm_base) as f64 / conns.len().max(1) as f64
        );
        Some(KeepAlive {
            asked: k,
            open: conns.len(),
            held,
            rss_base,
            rss_settled,
        })
    };

    summary(
        &Figures {
            sockets: n,
            opened: live.len(),
            rss_base,
            rss_open,
            rss_settled,
            rss_after_fanout,
            fanout_sent,
            fanout_us,
            own_us,
            missing,
            ka,
        },
        &a,
    );
    if !setup_errors.is_empty() {
        println!("\nsetup FAILED:");
        for e in &setup_errors {
            println!("  {e}");
        }
        std::process::exit(1);
    }
}

fn summary(f: &Figures, a: &Args) {
    let per_socket = f.rss_settled.saturating_sub(f.rss_base) as f64 / f.opened.max(1) as f64;
    println!("\n==== presence bench summary ====");
    println!(
        "idle presence sockets: {} of {} open; gateway RSS {} -> {} KiB ({} KiB after the \
         fan-out, sockets still open)",
        f.opened, f.sockets, f.rss_base, f.rss_settled, f.rss_after_fanout
    );
    println!(
        "  memory per presence socket: {per_socket:.2} KiB (just opened {:.2} KiB) \
         [target < 8 KiB: {}]",
        f.rss_open.saturating_sub(f.rss_base) as f64 / f.opened.max(1) as f64,
        met(f.opened > 0 && per_socket < 8.0)
    );
    if let Some(k) = &f.ka {
        let per_conn = k.rss_settled.saturating_sub(k.rss_base) as f64 / k.open.max(1) as f64;
        println!(
            "idle keep-alive HTTP/1.1 connections in Pingora (fresh gateway): {} of {} open, \
             {} held; gateway RSS {} -> {} KiB",
            k.open, k.asked, k.held, k.rss_base, k.rss_settled
        );
        println!(
            "  memory per keep-alive connection: {per_conn:.2} KiB ({:.1}x a presence socket)",
            per_conn / per_socket.max(0.001)
        );
    }
    let (s, o) = (&f.fanout_us, &f.own_us);
    println!(
        "fan-out: {} changes at {:.0}/s for {} s, 1 supervisor, {} agent sockets open: {} \
         timed, {} missing",
        f.fanout_sent,
        a.rate,
        a.seconds,
        f.opened,
        s.len(),
        f.missing
    );
    println!(
        "  send -> supervisor receives: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms \
         [target p99 < 10 ms: {}]",
        pct_ms(s, 0.5),
        pct_ms(s, 0.99),
        pct_ms(s, 1.0),
        met(!s.is_empty() && f.missing == 0 && pct_ms(s, 0.99) < 10.0)
    );
    println!(
        "  send -> the agent's own confirmation: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms \
         ({} timed)",
        pct_ms(o, 0.5),
        pct_ms(o, 0.99),
        pct_ms(o, 1.0),
        o.len()
    );
}
