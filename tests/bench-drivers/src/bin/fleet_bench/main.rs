//! Fleet benchmark (issue 22): gateways on one PostgreSQL.
//!
//! - **throughput**, side by side in alternating rounds: full lifecycles (click2call,
//!   agent joins, connect, ANSWERED, hangup, CRM webhook delivered) on (a) one gateway
//!   on sled, (b) one gateway on PostgreSQL, (c) two gateways on one PostgreSQL, the
//!   lifecycles round robin over both (one simulator and one sink for both), optionally
//!   (d) the same with every request to the next node. All durable (sled's group-commit
//!   fsync; PostgreSQL with `fsync` and `synchronous_commit` on). Lifecycles/s, latency,
//!   CPU per lifecycle of each process (gateways, database, simulator, load generator),
//!   the machine's busy and stolen shares (`/proc/stat`), and what the database did per
//!   lifecycle (transactions, WAL syncs, rows).
//! - **SQL profile**: one gateway on PostgreSQL with `log_statement = all` on its
//!   database: the statements one lifecycle runs, by text, and where the gateways'
//!   database sessions wait during the run (`waits.rs`).
//! - **failover**: see `failover.rs`.
//!
//! Run through `tests/bench/fleet.sh`, which builds release binaries first.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;

mod env;
mod failover;
mod load;
mod pgstat;
mod waits;
mod wallet;

use env::{Harness, Pg, Store};
use load::{pct, Spread};

// jemalloc, as the gateway and lifecycle-bench.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
pub(crate) struct Args {
    #[arg(long)]
    gateway: PathBuf,
    #[arg(long)]
    sim: PathBuf,
    #[arg(long)]
    policies: PathBuf,
    /// Lifecycles per throughput run.
    #[arg(long, default_value_t = 3000)]
    calls: usize,
    /// Lifecycles in flight at once (over all nodes).
    #[arg(long, default_value_t = 24)]
    concurrency: usize,
    /// Throughput rounds; each runs every set-up once, in `--setups` order.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    #[arg(long, value_delimiter = ',', default_value = "sled,pg,fleet")]
    setups: Vec<Setup>,
    /// Parts to run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "throughput,profile,failover"
    )]
    parts: Vec<Part>,
    /// `store.pool_size` of every PostgreSQL node: 4, so two nodes hold 4 connections
    /// per core of this machine's database, the knee measured (`docs/fleet.md`, "Sizing
    /// the pool"; 16 cost the database 12 % more CPU per lifecycle, BENCHMARKS.md).
    #[arg(long, default_value_t = 4)]
    pool_size: usize,
    /// `store.lease_ms` of every PostgreSQL node.
    #[arg(long, default_value_t = 5000)]
    lease_ms: u64,
    /// Lifecycles of the SQL profile.
    #[arg(long, default_value_t = 500)]
    profile_calls: usize,
    /// Gateways of the SQL profile (2: set-up (c), lifecycles round robin).
    #[arg(long, default_value_t = 1)]
    profile_nodes: usize,
    /// Failover: unconnected calls and ringing calls created on node A per round.
    #[arg(long, default_value_t = 200)]
    failover_calls: usize,
    #[arg(long, default_value_t = 5)]
    failover_rounds: usize,
    /// `webhooks.per_tenant_concurrency` of every node (default: the policy's, 4).
    #[arg(long)]
    webhook_concurrency: Option<usize>,
    /// acme's calls are paid from its wallet (`billing.charge_calls` on every node, the
    /// wallet topped up through node-0 before the warm-up): every click2call reads what
    /// is available, every `/connect` holds, every end settles (tests/bench/fleet.sh with
    /// `WALLET=1`).
    #[arg(long)]
    wallet: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
enum Setup {
    /// (a) one gateway on sled.
    Sled,
    /// (b) one gateway on PostgreSQL.
    Pg,
    /// (c) two gateways on one PostgreSQL, lifecycles round robin.
    Fleet,
    /// (d) two gateways, every request to the next node.
    FleetRequests,
}

impl Setup {
    fn label(self) -> &'static str {
        match self {
            Setup::Sled => "(a) 1 gateway, sled",
            Setup::Pg => "(b) 1 gateway, PostgreSQL",
            Setup::Fleet => "(c) 2 gateways, 1 PostgreSQL",
            Setup::FleetRequests => "(d) 2 gateways, per request",
        }
    }

    fn nodes(self) -> usize {
        match self {
            Setup::Sled | Setup::Pg => 1,
            Setup::Fleet | Setup::FleetRequests => 2,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
enum Part {
    Throughput,
    Profile,
    Failover,
}

pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// One throughput run's figures.
struct Row {
    setup: Setup,
    /// Lifecycles/s until the last webhook was delivered.
    rate: f64,
    /// Lifecycles/s until the last browser/CRM response (webhooks may lag).
    req_rate: f64,
    c2c_own_p50: f64,
    c2c_own_p99: f64,
    connect_p99: f64,
    hangup_p99: f64,
    /// CPU ms per lifecycle: gateways (all nodes), database, simulator, load generator.
    cpu: [f64; 4],
    /// Per lifecycle: write transactions (xid), all transactions, WAL syncs, rows
    /// fetched, rows written; `None` on sled.
    db: Option<[f64; 5]>,
    /// The share of the machine's CPU time the hypervisor took during the run (%).
    steal: f64,
}

/// A round with at least this share of the CPU stolen by the hypervisor (%) ran on
/// fewer cores than the machine has: its figure says how busy the host was, not how
/// fast the build is. The target line counts such rounds so that a miss they cause is
/// not read as the build's (BENCHMARKS.md, issue 22: at 0-1 % stolen nine rounds in
/// ten made 600 lifecycles/s, at 2 % or more none did).
const STOLEN_WARN_PCT: f64 = 5.0;

fn cpu_all(pids: &[u32]) -> f64 {
    pids.iter().map(|p| c2c_bench_drivers::cpu_secs(*p)).sum()
}

async fn throughput_run(a: &Args, pg: &Pg, setup: Setup, round: usize) -> Row {
    let h = Harness::start(
        a,
        &format!("tp{round}"),
        // Answer at once: measure the gateways, not a simulated callee.
        serde_json::json!({"ring_after_ms": 0, "outcome": {"kind": "answer", "after_ms": 0}}),
    )
    .await;
    let db = (setup != Setup::Sled).then(|| pg.new_db("tp"));
    let store = match &db {
        None => Store::Sled,
        Some(db) => Store::Postgres {
            url: pg.server.url(db),
            pool_size: a.pool_size,
            lease_ms: a.lease_ms,
            fleet_size: setup.nodes() as u32,
        },
    };
    let mut nodes = Vec::new();
    for i in 0..setup.nodes() {
        nodes.push(h.node(a, &format!("node-{i}"), &store, &[]).await);
    }
    if a.wallet {
        top_up(&nodes[0].base).await;
    }
    let addrs: Vec<_> = nodes.iter().map(|n| n.addr).collect();
    let gw_pids: Vec<u32> = nodes.iter().map(|n| n.pid).collect();
    if let Some(db) = &db {
        pgstat::seed_history(pg, db);
    }
    load::warm_up(&addrs, h.sim_addr, WARM_UP, &h.delivered).await;
    if let Some(db) = &db {
        pgstat::analyze(pg, db);
    }
    let s0 = match &db {
        Some(db) => {
            tokio::time::sleep(pgstat::SETTLE).await;
            Some(pgstat::stats(pg, db))
        }
        None => None,
    };
    let me = std::process::id();
    let xid0 = pgstat::next_xid(pg);
    let machine0 = c2c_bench_drivers::MachineCpu::now();
    let cpu0 = [
        cpu_all(&gw_pids),
        pg.cpu_secs(),
        c2c_bench_drivers::cpu_secs(h.sim_pid),
        c2c_bench_drivers::cpu_secs(me),
    ];
    let spread = if setup == Setup::FleetRequests {
        Spread::Request
    } else {
        Spread::Lifecycle
    };
    let started = chrono::Utc::now();
    let t0 = Instant::now();
    let mut run = load::run(
        &addrs,
        h.sim_addr,
        a.calls,
        a.concurrency,
        spread,
        &h.delivered,
        t0,
    )
    .await;
    let cpu1 = [
        cpu_all(&gw_pids),
        pg.cpu_secs(),
        c2c_bench_drivers::cpu_secs(h.sim_pid),
        c2c_bench_drivers::cpu_secs(me),
    ];
    let (busy, steal) = c2c_bench_drivers::MachineCpu::now().shares_since(&machine0);
    let xid1 = pgstat::next_xid(pg);
    let total = run.total as f64;
    let per = |x: f64| x / total;
    let mut idle_note = String::new();
    let db_fig = match (&db, s0) {
        (Some(db), Some(s0)) => {
            tokio::time::sleep(pgstat::SETTLE).await;
            let s1 = pgstat::stats(pg, db);
            tokio::time::sleep(pgstat::SETTLE).await;
            let s2 = pgstat::stats(pg, db);
            let idle = s2.minus(&s1);
            let secs = |x: &pgstat::Stats, y: &pgstat::Stats| {
                x.at.unwrap().duration_since(y.at.unwrap()).as_secs_f64()
            };
            let d = s1
                .minus(&s0)
                .less_background(&idle, secs(&s2, &s1), secs(&s1, &s0));
            idle_note = format!(
                "  database, idle nodes: {:.1} transactions/s (subtracted over the {:.1} s \
                 between the two readings around the run)",
                idle.xacts / secs(&s2, &s1),
                secs(&s1, &s0)
            );
            Some([
                per((xid1 - xid0) as f64),
                per(d.xacts),
                per(d.wal_syncs),
                per(d.fetched),
                per(d.written),
            ])
        }
        _ => None,
    };
    let cpu: Vec<f64> = (0..4).map(|i| per(cpu1[i] - cpu0[i]) * 1000.0).collect();
    let row = Row {
        setup,
        rate: total / run.secs,
        req_rate: total / run.http_secs,
        c2c_own_p50: pct(&mut run.lat.click2call_own, 0.5),
        c2c_own_p99: pct(&mut run.lat.click2call_own, 0.99),
        connect_p99: pct(&mut run.lat.connect, 0.99),
        hangup_p99: pct(&mut run.lat.hangup, 0.99),
        cpu: [cpu[0], cpu[1], cpu[2], cpu[3]],
        db: db_fig,
        steal,
    };
    println!(
        "{} round {} ({} UTC): {} lifecycles, {} concurrent: {:.0} lifecycles/s (requests done at {:.2} s \
         with {} webhooks delivered, last webhook at {:.2} s); click2call p50/p99 {:.2}/{:.2} ms, excl. LiveKit {:.2}/{:.2} ms; \
         connect p99 {:.2} ms; status p99 {:.2} ms; hangup p99 {:.2} ms",
        setup.label(),
        round + 1,
        started.format("%H:%M:%S"),
        run.total,
        a.concurrency,
        row.rate,
        run.http_secs,
        run.delivered_by_then,
        run.secs,
        pct(&mut run.lat.click2call, 0.5),
        pct(&mut run.lat.click2call, 0.99),
        row.c2c_own_p50,
        row.c2c_own_p99,
        row.connect_p99,
        pct(&mut run.lat.status, 0.99),
        row.hangup_p99,
    );
    println!(
        "  CPU per lifecycle: gateway{} {:.3} ms, database {:.3} ms, simulator {:.3} ms, load \
         generator {:.3} ms (total {:.3} ms); the machine {busy:.0} % busy, {steal:.0} % stolen \
         by the hypervisor",
        if setup.nodes() > 1 { "s (both)" } else { "" },
        row.cpu[0],
        row.cpu[1],
        row.cpu[2],
        row.cpu[3],
        row.cpu.iter().sum::<f64>()
    );
    if let (true, Some(db)) = (a.wallet, &db) {
        wallet::check(pg, db, run.total + (WARM_UP * nodes.len()) as u64);
    }
    if let Some(d) = row.db {
        println!(
            "  database per lifecycle: {:.2} write transactions (xid), {:.2} transactions \
             (pg_stat_database, idle rate subtracted), {:.2} WAL syncs, {:.1} rows fetched, \
             {:.1} rows written",
            d[0], d[1], d[2], d[3], d[4]
        );
        println!("{idle_note}");
    }
    drop(nodes);
    row
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn summary(a: &Args, rows: &[Row]) {
    println!(
        "\nthroughput, side by side ({} rounds, {} lifecycles, {} concurrent; per set-up: the \
         runs, then medians):",
        a.rounds, a.calls, a.concurrency
    );
    println!(
        "| set-up | lifecycles/s (runs) | until the last response | click2call excl. LiveKit p50 / p99 | CPU per lifecycle: \
         gateways / database / simulator / load gen. | DB per lifecycle: write xacts / xacts / \
         WAL syncs |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for s in &a.setups {
        let r: Vec<&Row> = rows.iter().filter(|r| r.setup == *s).collect();
        if r.is_empty() {
            continue;
        }
        let m = |f: &dyn Fn(&Row) -> f64| median(r.iter().map(|x| f(x)).collect());
        let runs = r
            .iter()
            .map(|x| format!("{:.0}", x.rate))
            .collect::<Vec<_>>()
            .join(", ");
        let db = if r[0].db.is_some() {
            format!(
                "{:.2} / {:.2} / {:.2}",
                m(&|x| x.db.unwrap()[0]),
                m(&|x| x.db.unwrap()[1]),
                m(&|x| x.db.unwrap()[2])
            )
        } else {
            "-".into()
        };
        println!(
            "| {} | **{:.0}** ({runs}) | {:.0} | {:.2} / {:.2} ms | {:.3} / {:.3} / {:.3} / {:.3} ms | {db} |",
            s.label(),
            m(&|x| x.rate),
            m(&|x| x.req_rate),
            m(&|x| x.c2c_own_p50),
            m(&|x| x.c2c_own_p99),
            m(&|x| x.cpu[0]),
            m(&|x| x.cpu[1]),
            m(&|x| x.cpu[2]),
            m(&|x| x.cpu[3]),
        );
    }
    let fleet: Vec<&Row> = rows.iter().filter(|r| r.setup == Setup::Fleet).collect();
    if !fleet.is_empty() {
        let m = median(fleet.iter().map(|r| r.rate).collect());
        let stolen = fleet.iter().filter(|r| r.steal >= STOLEN_WARN_PCT).count();
        let warn = if stolen > 0 {
            format!(
                "; {stolen} of {} rounds had {STOLEN_WARN_PCT:.0} % or more of the CPU stolen \
                 by the hypervisor (they measured the host's load, not the build)",
                fleet.len()
            )
        } else {
            String::new()
        };
        println!(
            "target (c) >= 600 lifecycles/s: {} (median {m:.0}, runs {}){warn}",
            if m >= 600.0 { "met" } else { "NOT met" },
            fleet
                .iter()
                .map(|r| format!("{:.0}", r.rate))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// The statements one lifecycle runs on one PostgreSQL node (`log_statement = all`).
async fn profile(a: &Args, pg: &Pg) {
    let h = Harness::start(
        a,
        "profile",
        serde_json::json!({"ring_after_ms": 0, "outcome": {"kind": "answer", "after_ms": 0}}),
    )
    .await;
    let db = pg.new_db("profile");
    pgstat::profile_on(pg, &db);
    let store = Store::Postgres {
        url: pg.server.url(&db),
        pool_size: a.pool_size,
        lease_ms: a.lease_ms,
        fleet_size: a.profile_nodes.max(1) as u32,
    };
    let mut nodes = Vec::new();
    for i in 0..a.profile_nodes.max(1) {
        nodes.push(h.node(a, &format!("node-{i}"), &store, &[]).await);
    }
    let addrs: Vec<_> = nodes.iter().map(|n| n.addr).collect();
    pgstat::seed_history(pg, &db);
    load::warm_up(&addrs, h.sim_addr, 20, &h.delivered).await;
    pgstat::analyze(pg, &db);
    // The statistics lag up to 10 s: settle before and after the run to read what it
    // read, by index.
    tokio::time::sleep(pgstat::SETTLE).await;
    let reads_before = pgstat::relation_reads(pg, &db);
    let writes_before = pgstat::table_writes(pg, &db);
    pgstat::statements_reset(pg, &db);
    let start = pg.server.log().len();
    let (stop_sampling, sampler) = waits::sample(pg.server.url(&db));
    let t0 = Instant::now();
    let run = load::run(
        &addrs,
        h.sim_addr,
        a.profile_calls,
        a.concurrency,
        Spread::Lifecycle,
        &h.delivered,
        t0,
    )
    .await;
    // The last webhook's "delivered" write follows the sink's answer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let run_secs = t0.elapsed().as_secs_f64();
    let _ = stop_sampling.send(true);
    let waits = sampler.await.unwrap_or_else(|e| {
        eprintln!("wait sampling failed: {e}");
        waits::Waits::default()
    });
    let end = pg.server.log().len();
    let during = pgstat::statements(pg, start, &db);
    let times = pgstat::statement_times(pg, &db);
    // The idle node's own statements (lease, counts, revisions, claims, outbox scans)
    // over a window, to subtract at the run's length.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_secs = 5.0;
    let all_after = pgstat::statements(pg, end, &db);
    let total = run.total as f64;
    let k = run_secs / idle_secs;
    let mut rows: Vec<(String, f64, f64)> = during
        .iter()
        .map(|(t, n)| {
            let bg = all_after.get(t).copied().unwrap_or(0) as f64 * k;
            (t.clone(), (*n as f64 - bg).max(0.0) / total, bg / total)
        })
        .collect();
    rows.sort_by(|x, y| y.1.total_cmp(&x.1));
    let sum: f64 = rows.iter().map(|r| r.1).sum();
    let bg_sum: f64 = rows.iter().map(|r| r.2).sum();
    println!(
        "\nSQL profile: {} lifecycles on {} gateway(s), one PostgreSQL ({} concurrent, {:.1} s): \
         {:.2} statements per lifecycle (background of idle nodes subtracted: {:.2} per \
         lifecycle at this rate)",
        run.total,
        addrs.len(),
        a.concurrency,
        run_secs,
        sum,
        bg_sum
    );
    println!("| per lifecycle | statement (first 110 characters) |");
    println!("| ---: | --- |");
    for (t, n, _) in rows.iter().filter(|r| r.1 >= 0.005) {
        println!("| {n:.2} | `{t}` |");
    }
    println!(
        "\nDatabase time per lifecycle by statement (pg_stat_statements, the run only; \
         psql's own statements included):"
    );
    println!(
        "| executions | plannings | planning µs | execution µs | rows | buffers per execution | statement |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for t in &times {
        println!(
            "| {:.2} | {:.2} | {:.0} | {:.0} | {:.1} | {:.1} | `{}` |",
            t.calls / total,
            t.plans / total,
            t.plan_ms * 1000.0 / total,
            t.exec_ms * 1000.0 / total,
            t.rows / total,
            t.buffers / t.calls.max(1.0),
            t.text
        );
    }
    waits.print();
    println!(
        "\nRecords: average JSON length / stored size (bytes; smaller when compressed): {}",
        pg.psql(
            &db,
            "SELECT avg(octet_length(record))::int || ' / ' || avg(pg_column_size(record))::int \
             FROM c2c_calls"
        )
    );
    // `reads_after` covers the run and the idle window after it (its own reads are small:
    // the idle rate, above).
    tokio::time::sleep(pgstat::SETTLE).await;
    let reads_after = pgstat::relation_reads(pg, &db);
    let mut reads: Vec<(String, f64)> = reads_after
        .iter()
        .map(|(k, v)| {
            let before = reads_before.get(k).copied().unwrap_or(0.0);
            (k.clone(), (v - before) / total)
        })
        .filter(|(_, n)| *n >= 0.005)
        .collect();
    reads.sort_by(|x, y| y.1.total_cmp(&x.1));
    println!(
        "\nRows and index entries read per lifecycle, by relation (the run and {idle_secs:.0} s \
         of idle after it):"
    );
    println!("| per lifecycle | index (or table: seq scan) |");
    println!("| ---: | --- |");
    for (k, n) in &reads {
        println!("| {n:.1} | `{k}` |");
    }
    // A non-HOT update writes an entry into every index of the table (whose predicate
    // the new version meets): the write cost the schema's indexes and fill factor decide.
    let writes_after = pgstat::table_writes(pg, &db);
    println!(
        "\nRow writes per lifecycle, by table (the run and {idle_secs:.0} s of idle after it; \
         HOT: an update that wrote no index entry):"
    );
    println!("| table | inserts | updates | of which HOT | deletes |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (k, after) in &writes_after {
        let before = writes_before.get(k).copied().unwrap_or([0.0; 4]);
        let d: Vec<f64> = (0..4).map(|i| (after[i] - before[i]) / total).collect();
        if d.iter().any(|x| *x >= 0.005) {
            println!(
                "| `{k}` | {:.2} | {:.2} | {:.2} | {:.2} |",
                d[0], d[1], d[2], d[3]
            );
        }
    }
}

// One thread, as lifecycle-bench: the load generator only waits on sockets.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let a = Args::parse();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "c2c-gateway fleet bench ({cores} cores; gateways, PostgreSQL, simulator and load \
         generator share them)"
    );
    let pg = Pg::start();
    println!(
        "PostgreSQL: {} on 127.0.0.1:{}, durable defaults (fsync {}, synchronous_commit {}), data under {}",
        pg.psql("postgres", "SHOW server_version"),
        pg.server.port(),
        pg.psql("postgres", "SHOW fsync"),
        pg.psql("postgres", "SHOW synchronous_commit"),
        std::env::temp_dir().display()
    );
    if a.parts.contains(&Part::Throughput) {
        let mut rows = Vec::new();
        for round in 0..a.rounds {
            for s in &a.setups {
                rows.push(throughput_run(&a, &pg, *s, round).await);
            }
        }
        summary(&a, &rows);
    }
    if a.parts.contains(&Part::Profile) && a.profile_calls > 0 {
        profile(&a, &pg).await;
    }
    if a.parts.contains(&Part::Failover) && a.failover_rounds > 0 {
        failover::run(&a, &pg).await;
    }
}

/// Lifecycles run on each node before each measured round.
const WARM_UP: usize = 50;

/// `--wallet`: ₹1 crore into acme's wallet through the owner API of `base` (the example
/// policies' owner key).
async fn top_up(base: &str) {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/c2c/owner/tenants/acme/wallet/entries"))
        .header("x-api-key", "c2c_V9txkkwaqj2BNm7dNiSL76CnJiU3lS4ZJEQf")
        .json(&serde_json::json!({"kind": "top_up", "amount_paise": wallet::TOP_UP_PAISE, "reason": "bench"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "top-up: {}", r.text().await.unwrap());
}
