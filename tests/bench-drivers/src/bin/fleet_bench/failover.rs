//! Failover: open calls created on node A, kill -9 of A, and how long until node B has
//! taken them over and runs their timers.
//!
//! Per round, on a fresh node A (node B runs throughout):
//! - `n` **unconnected** calls (click2call only): their `UnconnectedExpiry` timer
//!   (`unconnected_expiry_seconds = 10`) is placed to come due *while nobody drives
//!   them*: A is killed 0.5 s before the first one is due (plus a per-round share of
//!   `lease / 3`, so the rounds hit different points of A's renewal cycle), and they are
//!   all due before the earliest moment B may take over (A renewed its lease at most
//!   `lease / 3` before it died). So B fires each as soon as it has taken the call over:
//!   kill -> `ended_ms` of the record (B's clock when it applied the timer) is kill ->
//!   first timer on B.
//! - `n` **ringing** calls (click2call, agent joins, connect; the simulator never
//!   answers; the dial request is in flight on A when it dies) with a ring timeout
//!   (`ring_timeout_seconds = 20`) due well after the take-over: they must keep ringing
//!   on B and ring out on B's re-armed timer, on time (`ended_ms` - the timer's due time).
//! - kill -> taken over: the time of B's "fleet: took over ..." log line (JSON, logged
//!   when the claim committed, with the number of calls) of each claim; B's
//!   `c2c_fleet_calls_taken_over_total`, polled every 20 ms, says when all 2n are in.
//!
//! Times are the machine's wall clock: the driver's just before kill -9, the gateway's
//! in its log and records.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::env::{Harness, Pg, Store};
use crate::load::Worker;
use crate::{unix_ms, Args};

const RING_TIMEOUT_S: u64 = 20;
const UNCONNECTED_EXPIRY_S: u64 = 10;
/// How often B's take-over counter is read.
const POLL: Duration = Duration::from_millis(20);
const TAKEN_OVER: &str = "c2c_fleet_calls_taken_over_total";

/// One call's record as the database holds it.
struct Rec {
    driver: String,
    ended_ms: Option<u64>,
    status: String,
    reason: String,
    timers: Vec<(String, u64)>,
}

fn records(pg: &Pg, db: &str, ids: &[String]) -> HashMap<String, Rec> {
    let list = ids
        .iter()
        .map(|i| format!("'{i}'"))
        .collect::<Vec<_>>()
        .join(",");
    let out = pg.psql(
        db,
        &format!(
            "SELECT json_build_object('id', call_id, 'driver', driver, 'rec', record::json)::text \
             FROM c2c_calls WHERE call_id IN ({list})"
        ),
    );
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            let r = &v["rec"];
            let s = |x: &serde_json::Value| x.as_str().unwrap_or("-").to_string();
            let timers = r["timers"]
                .as_array()
                .map(|ts| {
                    ts.iter()
                        .map(|t| (s(&t["kind"]), t["at_ms"].as_u64().unwrap_or(0)))
                        .collect()
                })
                .unwrap_or_default();
            (
                s(&v["id"]),
                Rec {
                    driver: s(&v["driver"]),
                    ended_ms: r["ended_ms"].as_u64(),
                    status: s(&r["call_status"]),
                    reason: s(&r["disconnect_reason"]),
                    timers,
                },
            )
        })
        .collect()
}

/// Creates `n` calls on `node` from `conc` workers: ringing ones or unconnected ones.
async fn create(h: &Harness, node: std::net::SocketAddr, n: usize, ringing: bool) -> Vec<String> {
    let conc = if ringing { 100 } else { 16 };
    let mut tasks = Vec::new();
    for w in 0..conc {
        let sim = h.sim_addr;
        let count = n / conc + usize::from(w < n % conc);
        tasks.push(tokio::spawn(async move {
            let mut worker = Worker::new(&[node], sim, 0, crate::load::Spread::Lifecycle);
            let mut ids = Vec::with_capacity(count);
            for _ in 0..count {
                ids.push(if ringing {
                    worker.ringing_on(0).await
                } else {
                    worker.click2call_on(0).await.0
                });
            }
            ids
        }));
    }
    let mut ids = Vec::with_capacity(n);
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    ids
}

/// B's "took over" log lines after `kill_ms`: (ms after the kill, calls claimed).
fn take_overs(log: &std::path::Path, kill_ms: u64) -> Vec<(i64, usize)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("fleet: took over"))
        })
        .filter_map(|v| {
            let at = chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str()?).ok()?;
            let at = at.timestamp_millis() - kill_ms as i64;
            let calls = v["calls"].as_u64()? as usize;
            (at >= 0).then_some((at, calls))
        })
        .collect()
}

fn ms_pcts(v: &mut [i64]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.sort_unstable();
    let q = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    format!(
        "min {} / p50 {} / p99 {} / max {} ms",
        v[0],
        q(0.5),
        q(0.99),
        v[v.len() - 1]
    )
}

pub(crate) async fn run(a: &Args, pg: &Pg) {
    let n = a.failover_calls;
    let lease = a.lease_ms;
    println!(
        "\n== failover: {} rounds; per round {n} unconnected + {n} ringing calls created on a \
         fresh node A, kill -9 of A; node B takes over (lease_ms = {lease}, look-ups every 500 ms) ==",
        a.failover_rounds
    );
    let h = Harness::start(
        a,
        "failover",
        serde_json::json!({"ring_after_ms": 100, "outcome": {"kind": "no_answer"}}),
    )
    .await;
    let db = pg.new_db("failover");
    let store = Store::Postgres {
        url: pg.server.url(&db),
        pool_size: a.pool_size,
        lease_ms: lease,
        fleet_size: 2,
    };
    let ring = RING_TIMEOUT_S.to_string();
    let expiry = UNCONNECTED_EXPIRY_S.to_string();
    let calls = [
        ("calls", "ring_timeout_seconds", ring.as_str()),
        ("calls", "unconnected_expiry_seconds", expiry.as_str()),
    ];
    // B logs its take-overs (JSON, with the time of each claim).
    let b = h
        .node_with_env(
            a,
            "node-b",
            &store,
            &calls,
            &[
                ("C2C_LOG", "warn,c2c_gateway::fleet=info"),
                ("C2C_LOG_FORMAT", "json"),
            ],
        )
        .await;
    let b_id = pg.psql(
        &db,
        "SELECT node_id FROM c2c_nodes WHERE node_name = 'node-b' ORDER BY started_ms DESC LIMIT 1",
    );
    let c = reqwest::Client::new();
    let (mut took_all, mut fired_all, mut after_take_all, mut late_all) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut outcomes: HashMap<String, u64> = HashMap::new();
    let mut not_b = 0usize;
    let mut all_ids = Vec::new();
    for round in 0..a.failover_rounds {
        let mut node_a = h.node(a, &format!("node-a{round}"), &store, &calls).await;
        let t_create = Instant::now();
        let unconnected = create(&h, node_a.addr, n, false).await;
        let ringing = create(&h, node_a.addr, n, true).await;
        let created_in = t_create.elapsed();
        let before = records(pg, &db, &unconnected);
        // The ring timeouts as armed on A (an ended call's record has no timers left).
        let ring_before = records(pg, &db, &ringing);
        let dues: Vec<u64> = before
            .values()
            .filter_map(|r| {
                r.timers
                    .iter()
                    .find(|(k, _)| k == "unconnected_expiry")
                    .map(|t| t.1)
            })
            .collect();
        assert_eq!(
            dues.len(),
            n,
            "unconnected calls without their expiry timer"
        );
        let (first_due, last_due) = (*dues.iter().min().unwrap(), *dues.iter().max().unwrap());
        // A renews its lease every third of it: the rounds kill A at evenly spread points
        // of that cycle (its start to the kill is otherwise the same each round).
        let phase = round as u64 * (lease / 3) / a.failover_rounds as u64;
        let kill_at = first_due - 500 - phase;
        let earliest_take = kill_at + lease * 2 / 3;
        assert!(
            last_due < earliest_take,
            "the expiry timers spread over {} ms: some could come due after the take-over",
            last_due - first_due
        );
        let now = unix_ms();
        assert!(
            now + 200 < kill_at,
            "creating the calls took {created_in:?}: too long to kill A before their timers"
        );
        tokio::time::sleep(Duration::from_millis(kill_at - now)).await;
        let base = b.metric(&c, TAKEN_OVER).await.unwrap_or(0.0);
        let kill_ms = node_a.kill9();
        let killed_at = chrono::Utc::now();
        let t_kill = Instant::now();
        let mut took = None;
        while t_kill.elapsed() < Duration::from_millis(lease * 4) {
            if b.metric(&c, TAKEN_OVER).await.unwrap_or(0.0) >= base + (2 * n) as f64 {
                took = Some(t_kill.elapsed().as_millis() as i64);
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        let polled = took.unwrap_or_else(|| {
            panic!(
                "node B did not take the {} calls over in {} ms:\n{}",
                2 * n,
                lease * 4,
                b.log_tail()
            )
        });
        // Each claim as B logged it: (ms after the kill, calls).
        let claims = take_overs(&b.dir.join("gateway.log"), kill_ms);
        let mut took = Vec::new();
        for (at, calls) in &claims {
            took.extend(std::iter::repeat_n(*at, *calls));
        }
        assert_eq!(
            took.len(),
            2 * n,
            "B's log shows these claims after the kill: {claims:?}"
        );
        // Every call ended: the unconnected ones at the take-over, the ringing ones at
        // their ring timeout.
        let ids: Vec<String> = unconnected.iter().chain(&ringing).cloned().collect();
        let deadline = Instant::now() + Duration::from_secs(RING_TIMEOUT_S + 30);
        let after = loop {
            let r = records(pg, &db, &ids);
            if r.values().all(|r| r.ended_ms.is_some()) || Instant::now() > deadline {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let mut fired = Vec::new();
        for id in &unconnected {
            let r = &after[id];
            if let Some(e) = r.ended_ms {
                fired.push(e as i64 - kill_ms as i64);
            }
        }
        let mut late = Vec::new();
        for id in &ringing {
            let r = &after[id];
            let due = ring_before[id]
                .timers
                .iter()
                .find(|(k, _)| k == "ring_timeout")
                .map(|t| t.1);
            if let (Some(e), Some(d)) = (r.ended_ms, due) {
                late.push(e as i64 - d as i64);
            }
        }
        for r in after.values() {
            *outcomes
                .entry(format!("{} {}", r.status, r.reason))
                .or_insert(0) += 1;
            not_b += usize::from(r.driver != b_id);
        }
        let open = after.values().filter(|r| r.ended_ms.is_none()).count();
        println!(
            "round {} (kill at {} UTC): {} calls created in {:.2} s; expiry timers due {:.2}-{:.2} s after the kill \
             (B may take over from {:.2} s); kill -> taken over (B's log: claims {claims:?}; \
             its counter read {polled} ms after the kill) for the {} calls: {}; kill -> expiry \
             fired on B: {}; ringing calls' ring-out on B, fired - due: {}; still open: {open}",
            round + 1,
            killed_at.format("%H:%M:%S"),
            2 * n,
            created_in.as_secs_f64(),
            (first_due as f64 - kill_ms as f64) / 1000.0,
            (last_due as f64 - kill_ms as f64) / 1000.0,
            (earliest_take as f64 - kill_ms as f64) / 1000.0,
            2 * n,
            ms_pcts(&mut took.clone()),
            ms_pcts(&mut fired.clone()),
            ms_pcts(&mut late.clone()),
        );
        let last_claim = took.iter().copied().max().unwrap_or(0);
        for f in &fired {
            after_take_all.push(f - last_claim);
        }
        took_all.extend(took);
        fired_all.extend(fired);
        late_all.extend(late);
        all_ids.extend(ids);
    }
    // Every call's webhook, delivered by B.
    let want = all_ids.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while h.delivered.load(std::sync::atomic::Ordering::Relaxed) < want && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "\nfailover, {} rounds x {} calls (lease {lease} ms; target: kill -> taken over p99 < lease + 1 s = {} ms)",
        a.failover_rounds,
        2 * n,
        lease + 1000
    );
    println!(
        "  kill -> taken over (per call, B's claim log line):     {}",
        ms_pcts(&mut took_all)
    );
    println!(
        "  kill -> first timer fired on B (expiry due meanwhile): {}",
        ms_pcts(&mut fired_all)
    );
    println!(
        "  B's last claim of the round -> that timer fired:        {}",
        ms_pcts(&mut after_take_all)
    );
    println!(
        "  ringing calls' ring timeout on B, fired - due:          {}",
        ms_pcts(&mut late_all)
    );
    let mut o: Vec<_> = outcomes.into_iter().collect();
    o.sort();
    println!(
        "  outcomes: {}; calls whose last driver is not B: {not_b}; webhooks delivered: {} of {want}",
        o.iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        h.delivered.load(std::sync::atomic::Ordering::Relaxed)
    );
    let p99 = {
        took_all.sort_unstable();
        took_all[((took_all.len() as f64 - 1.0) * 0.99).round() as usize]
    };
    println!(
        "  target p99 < {} ms: {}",
        lease + 1000,
        if p99 < (lease + 1000) as i64 {
            "met"
        } else {
            "NOT met"
        }
    );
}
