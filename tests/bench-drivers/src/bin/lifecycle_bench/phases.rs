//! The two phases of the lifecycle benchmark: full lifecycles at a fixed concurrency
//! (throughput, latency, CPU and store flushes per lifecycle), then many open calls
//! (memory per open call).

use super::*;

/// Phase 1: lifecycles in poll mode (the default), LiveKit simulator out of process.
pub(crate) async fn lifecycles(a: &Args) {
    let e = Arc::new(start(a, "poll", "lc").await);
    if a.wallet {
        wallet::top_up(&e).await;
    }
    // Each worker's agents, used in turn.
    let per_worker = a.agents_per_worker.max(1);
    let agents: Vec<Arc<Vec<Agent>>> = match a.agents {
        AgentsMode::Unregistered => {
            let one = Arc::new(vec![Agent::legacy_as(a.dlt)]);
            (0..a.concurrency).map(|_| one.clone()).collect()
        }
        AgentsMode::Registered => {
            let mut v = Vec::with_capacity(a.concurrency);
            for w in 0..a.concurrency {
                let mut mine = Vec::with_capacity(per_worker);
                for j in 0..per_worker {
                    let id = format!("bench-agent-{}", w * per_worker + j);
                    register_agent(&e, &id).await;
                    mine.push(Agent::new(&id, true, a.dlt));
                }
                v.push(Arc::new(mine));
            }
            v
        }
    };
    // Warm-up.
    let mut warm_lat = Lat::default();
    {
        let (mut gw, mut sim) = (http1::Conn::new(e.gw_addr), http1::Conn::new(e.sim_addr));
        for i in 0..50 {
            let agent = &agents[0][i % agents[0].len()];
            lifecycle(&mut gw, &mut sim, agent, &mut warm_lat).await;
        }
    }
    let warm = e.delivered.load(Ordering::Relaxed);
    let per = a.calls / a.concurrency;
    let me = std::process::id();
    let flush0 = flush_stats(&e).await;
    let cpu0 = [cpu_secs(e.gw_pid), cpu_secs(e.sim_pid), cpu_secs(me)];
    // `--paced`: the same workers take one ticket per lifecycle, handed out at a fixed
    // rate, instead of running their share back to back.
    let (ticket_tx, ticket_rx) = tokio::sync::mpsc::channel::<()>(a.concurrency.max(1));
    let ticket_rx = Arc::new(tokio::sync::Mutex::new(ticket_rx));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for mine in &agents {
        let (e, mine) = (e.clone(), mine.clone());
        let tickets = a.paced.map(|_| ticket_rx.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Lat::default();
            let (mut gw, mut sim) = (http1::Conn::new(e.gw_addr), http1::Conn::new(e.sim_addr));
            match tickets {
                None => {
                    for i in 0..per {
                        lifecycle(&mut gw, &mut sim, &mine[i % mine.len()], &mut lat).await;
                    }
                }
                Some(rx) => {
                    let mut i = 0;
                    while rx.lock().await.recv().await.is_some() {
                        lifecycle(&mut gw, &mut sim, &mine[i % mine.len()], &mut lat).await;
                        i += 1;
                    }
                }
            }
            lat
        }));
    }
    if let Some(rate) = a.paced {
        let gap = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
        for k in 0..(per * a.concurrency) as u32 {
            tokio::time::sleep_until((t0 + gap * k).into()).await;
            // Waits when every worker is busy: the rate then slips (the printed
            // lifecycles/s shows it) rather than lifecycles being dropped.
            let _ = ticket_tx.send(()).await;
        }
        println!(
            "paced: {} lifecycles started at {rate}/s (last one at {:.2} s)",
            per * a.concurrency,
            t0.elapsed().as_secs_f64()
        );
    }
    drop(ticket_tx);
    let mut all = Lat::default();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let total = (per * a.concurrency) as u64;
    let http_secs = t0.elapsed().as_secs_f64();
    let delivered_by_then = e.delivered.load(Ordering::Relaxed) - warm;
    while e.delivered.load(Ordering::Relaxed) < warm + total {
        if t0.elapsed() > Duration::from_secs(300) {
            println!(
                "webhooks delivered: {} of {total}",
                e.delivered.load(Ordering::Relaxed) - warm
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu1 = [cpu_secs(e.gw_pid), cpu_secs(e.sim_pid), cpu_secs(me)];
    let flush1 = flush_stats(&e).await;
    println!("\nphase 1: {total} full lifecycles, {} concurrent (poll mode, CRM webhook delivered to a local sink)", a.concurrency);
    match a.agents {
        AgentsMode::Unregistered => {
            println!("agents: unregistered (every worker sends agent-1; no gating)")
        }
        AgentsMode::Registered => println!(
            "agents: registered, {per_worker} per worker (require_registration on); {} \
             click2calls answered 409 agent_busy and sent again ({:.2} per lifecycle, {:.1} ms \
             waited in all; warm-up: {})",
            all.busy,
            all.busy as f64 / total as f64,
            all.busy_us as f64 / 1000.0,
            warm_lat.busy
        ),
    }
    println!(
        "lifecycles/s (until the last webhook was delivered): {:.0}",
        total as f64 / secs
    );
    println!(
        "browser/CRM requests done after {http_secs:.2} s ({:.0} lifecycles/s); {delivered_by_then} of {total} webhooks delivered by then",
        total as f64 / http_secs
    );
    println!(
        "{:<26} {:>10} {:>10} {:>10}",
        "endpoint", "p50 ms", "p99 ms", "max ms"
    );
    for (name, v) in [
        ("click2call", &mut all.click2call),
        ("connect", &mut all.connect),
        ("status", &mut all.status),
        ("hangup", &mut all.hangup),
        // Minus the LiveKit time each response reported (Server-Timing).
        ("click2call excl. LiveKit", &mut all.click2call_own),
        ("connect excl. LiveKit", &mut all.connect_own),
        ("hangup excl. LiveKit", &mut all.hangup_own),
    ] {
        let max = pct(v, 1.0);
        println!(
            "{:<26} {:>10.2} {:>10.2} {:>10.2}",
            name,
            pct(v, 0.5),
            pct(v, 0.99),
            max
        );
    }
    // Where the two cores went: CPU time per lifecycle of each process in this run.
    println!("CPU per lifecycle (user + system):");
    for (i, who) in ["gateway", "LiveKit simulator", "load generator + CRM sink"]
        .iter()
        .enumerate()
    {
        println!(
            "  {:<26} {:>8.3} ms",
            who,
            (cpu1[i] - cpu0[i]) * 1000.0 / total as f64
        );
    }
    if a.wallet {
        // The warm-up's calls are charged too.
        wallet::check(&e, total + 50).await;
    }
    let flushes = flush1.0 - flush0.0;
    println!(
        "store flushes: {:.2} per lifecycle, {:.3} ms each on average",
        flushes / total as f64,
        if flushes > 0.0 {
            (flush1.1 - flush0.1) * 1000.0 / flushes
        } else {
            0.0
        }
    );
    drop(e);
}

/// Phase 2: many open calls in poll mode; the gateway's memory per open call.
pub(crate) async fn open_calls(a: &Args) {
    let e = Arc::new(start(a, "poll", "open").await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let base_rss = rss_kib(e.gw_pid);
    let n = a.open_calls;
    let per = n / 50;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            let (mut gw, mut sim) = (http1::Conn::new(e.gw_addr), http1::Conn::new(e.sim_addr));
            for _ in 0..per {
                // agent-1, not registered (whatever --agents says): many open calls of one
                // agent, which a registered agent could not have.
                let (_, r) = post(&mut gw, "/api/c2c/click2call", Some(CLICK2CALL), true).await;
                let (id, room) = created(&r);
                post(
                    &mut sim,
                    &format!("/sim/rooms/{room}/join"),
                    Some(br#"{"identity":"agent-1"}"#),
                    false,
                )
                .await;
                post(
                    &mut gw,
                    &format!("/api/c2c/calls/{id}/connect"),
                    None,
                    false,
                )
                .await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Let a few poll passes run over all open calls.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let metrics =
        e.c.get(format!("{}/metrics", e.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    let open = metrics
        .lines()
        .find(|l| l.starts_with("c2c_open_calls "))
        .unwrap_or("c2c_open_calls ?")
        .to_string();
    let rss = rss_kib(e.gw_pid);
    println!(
        "\nphase 2: {n} open calls in poll mode (1 s interval), LiveKit simulator out of process"
    );
    println!("{open}");
    println!("gateway RSS: {base_rss} KiB idle -> {rss} KiB with {n} open calls");
    println!(
        "memory per open call: {:.2} KiB (target < 4 KiB)",
        (rss.saturating_sub(base_rss)) as f64 / n as f64
    );
}

/// `PUT /api/c2c/agents/{id}`, telephony on.
async fn register_agent(e: &Env, id: &str) {
    let r =
        e.c.put(format!("{}/api/c2c/agents/{id}", e.base))
            .header("x-api-key", KEY)
            .json(&json!({"name": id, "telephony_enabled": true}))
            .send()
            .await
            .unwrap();
    assert!(
        r.status().is_success(),
        "PUT agent {id}: {} {}",
        r.status(),
        r.text().await.unwrap_or_default()
    );
}
