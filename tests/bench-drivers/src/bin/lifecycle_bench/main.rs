//! Call lifecycle benchmark (issue 3): full lifecycles against the LiveKit simulator
//! (click2call, agent joins, connect, answer, hangup, CRM webhook delivered to a local
//! sink), then RSS with many open calls in poll mode.
//!
//! Run through `tests/bench/lifecycle.sh`, which builds release binaries first.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use c2c_bench_drivers::lifecycle::{created, crm_sink, post, KEY};
use c2c_bench_drivers::{cpu_secs, http1, Kill};
use clap::Parser;
use serde_json::json;

mod phases;
mod soak;
mod wallet;

// jemalloc, as the gateway: the load generator shares the two cores with the gateway, and
// glibc's malloc and free were ~11 % of its CPU.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    gateway: PathBuf,
    #[arg(long)]
    sim: PathBuf,
    #[arg(long)]
    policies: PathBuf,
    #[arg(long, default_value_t = 3000)]
    calls: usize,
    /// Lifecycles in flight at once (tests/bench/lifecycle.sh passes its own, default 24).
    #[arg(long, default_value_t = 24)]
    concurrency: usize,
    #[arg(long, default_value_t = 10_000)]
    open_calls: usize,
    /// Run only the soak phase, for this many minutes (tests/bench/soak.sh).
    #[arg(long)]
    soak_minutes: Option<f64>,
    /// Soak: call lifecycles started per second.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// Soak: seconds between two memory samples.
    #[arg(long, default_value_t = 60)]
    sample_seconds: u64,
    /// The gateway's `store.cache_mb` (default: the policy's, 64).
    #[arg(long)]
    store_cache_mb: Option<u64>,
    /// Phase 1's agents. `unregistered`: every worker sends `agent-1`, which is not in the
    /// registry (a CRM that never registers agents; no gating). `registered`: one
    /// registered agent (telephony on) per worker, each worker placing its calls for its
    /// own agent and joining the room as it; acme gets `agents.require_registration`, so
    /// every click2call and /connect goes through the gate and the one-call-per-agent rule
    /// (tests/bench/agents-gating.sh compares the two).
    #[arg(long, value_enum, default_value_t = AgentsMode::Unregistered)]
    agents: AgentsMode,
    /// Phase 1 paced: start this many lifecycles per second (the `--concurrency` workers
    /// take them as tickets) instead of each worker running its share back to back; CPU
    /// per lifecycle at a given load rather than at saturation (tests/bench/inbound.sh).
    #[arg(long)]
    paced: Option<u32>,
    /// `--agents registered`: registered agents per worker, used in turn. With 1 (the
    /// default) a worker's next click2call often finds its agent's previous call still
    /// ending and retries; with 2 the previous call has a whole lifecycle to end.
    #[arg(long, default_value_t = 1)]
    agents_per_worker: usize,
    /// Phase 1's calls are paid from acme's wallet (`billing.charge_calls = true`, the
    /// wallet topped up first): every click2call reads what is available, every
    /// `/connect` places a hold, every end posts a charge; after the run the ledger is
    /// checked against the calls (tests/bench/wallet.sh compares with and without).
    #[arg(long)]
    wallet: bool,
    /// Run only the wallet crash soak: `--calls` lifecycles paid from the wallet, the
    /// gateway killed with SIGKILL after every this many, then every call's charge
    /// checked against the ledger (tests/bench/wallet-crash.sh).
    #[arg(long)]
    wallet_crash_every: Option<usize>,
    /// Phase 1's calls under the DLT rules. `service`: the trunk's category, so a
    /// click2call and its `/connect` check only the caller ID (what every call did before
    /// the rules went further). `promotional`: every click2call names
    /// `call_category = promotional` with a 140-series caller ID, and acme scrubs against
    /// a 10 M-number DND list and a 1 M-number consent list holding the called number, so
    /// each check runs in full both times: series, calling hours, both lookups
    /// (tests/bench/dlt.sh compares the two).
    #[arg(long, value_enum, default_value_t = DltMode::Service)]
    dlt: DltMode,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum DltMode {
    Service,
    Promotional,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AgentsMode {
    Unregistered,
    Registered,
}

/// The agent a worker places its calls for: the click2call body naming it, and the
/// simulator join that makes it the room's agent (`/connect` checks the identity).
pub(crate) struct Agent {
    click2call: Vec<u8>,
    join: Vec<u8>,
    /// Registered agents are one call at a time: a click2call may find the previous call
    /// still ending (its `/hangup` resolves after the answer) and get `409 agent_busy`.
    registered: bool,
}

impl Agent {
    /// `id` is plain ASCII (no JSON escaping needed). The body is [`CLICK2CALL`]'s, byte
    /// for byte, but for the agent (and, `--dlt promotional`, the category and caller ID).
    fn new(id: &str, registered: bool, dlt: DltMode) -> Agent {
        let dlt = if dlt == DltMode::Promotional {
            r#","call_category":"promotional","did":"+911401234567""#
        } else {
            ""
        };
        Agent {
            click2call: format!(
                r#"{{"case_id":"b","customer_number":"9530251797","agent_id":"{id}","customer_crm_id":"c"{dlt}}}"#
            )
            .into_bytes(),
            join: format!(r#"{{"identity":"{id}"}}"#).into_bytes(),
            registered,
        }
    }

    /// `agent-1`, not registered, its calls `dlt`'s (phase 1's `--dlt`).
    pub(crate) fn legacy_as(dlt: DltMode) -> Agent {
        Agent::new("agent-1", false, dlt)
    }

    /// `agent-1`, not registered: what every worker used before agents existed.
    pub(crate) fn legacy() -> Agent {
        Agent::new("agent-1", false, DltMode::Service)
    }
}

const SECRET: &str = "devsecret-livekit-sim-0123456789abcdef0123456789abcdef";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What phase 1 changes in the example policies for acme.
struct AcmeEdits {
    /// `agents.require_registration` (`--agents registered`).
    require_registration: bool,
    /// `billing.charge_calls` (`--wallet`, `--wallet-crash-every`).
    charge_calls: bool,
    /// `--dlt promotional`: DND and consent lists, calling at any hour.
    dlt_lists: bool,
}

fn write_policies(
    src: &Path,
    dst: &Path,
    sim_url: &str,
    sink_url: &str,
    mode: &str,
    store_cache_mb: Option<u64>,
    acme: AcmeEdits,
) {
    let AcmeEdits {
        require_registration,
        charge_calls,
        dlt_lists,
    } = acme;
    let copy = |rel: &str| {
        let to = dst.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(src.join(rel), to).unwrap();
    };
    for f in [
        "tenants/acme.toml",
        "tenants/globex.toml",
        "secrets/livekit-sim.secret",
        "secrets/acme-crm-outbound.key",
        "secrets/acme-crm-signing.secret",
        "secrets/globex-crm-outbound.key",
    ] {
        copy(f);
    }
    let gw = std::fs::read_to_string(src.join("gateway.toml")).unwrap();
    let gw = gw
        .replace("url = \"sim\"", &format!("url = \"{sim_url}\""))
        .replace(
            "answer_detection = \"poll\"",
            &format!("answer_detection = \"{mode}\""),
        )
        .replace("grace_period_seconds = 10", "grace_period_seconds = 1")
        .replace(
            "max_duration_seconds = 3600",
            "max_duration_seconds = 86400",
        )
        // The load generator is one address hammering the browser endpoints.
        .replace(
            "[calls]",
            "[limits]\nper_ip_requests_per_second = 1000000\n\n[calls]",
        );
    let gw = if charge_calls {
        gw.replace("charge_calls = false", "charge_calls = true")
    } else {
        gw
    };
    let gw = match store_cache_mb {
        Some(mb) => gw.replace("[calls]", &format!("[store]\ncache_mb = {mb}\n\n[calls]")),
        None => gw,
    };
    std::fs::write(dst.join("gateway.toml"), gw).unwrap();
    let acme = std::fs::read_to_string(dst.join("tenants/acme.toml")).unwrap();
    let acme = acme
        .replace("http://127.0.0.1:8090/c2c/webhook", sink_url)
        .replace(
            "[dlt]",
            "[limits]\nrequests_per_second = 100000\nmax_concurrent_calls = 1000000\n\n[dlt]",
        );
    let acme = if require_registration {
        c2c_bench_drivers::toml_set(&acme, "agents", "require_registration", "true")
    } else {
        acme
    };
    let acme = if dlt_lists {
        write_dlt_lists(&dst.join("dlt"));
        let acme = c2c_bench_drivers::toml_set(&acme, "dlt", "calling_hours", "\"00:00-24:00\"");
        let acme = c2c_bench_drivers::toml_set(&acme, "dlt", "dnd_file", "\"dlt/dnd.bin\"");
        c2c_bench_drivers::toml_set(&acme, "dlt", "consent_file", "\"dlt/consent.bin\"")
    } else {
        acme
    };
    std::fs::write(dst.join("tenants/acme.toml"), acme).unwrap();
}

/// A 10 M-number DND list and a 1 M-number consent list, both holding the number the
/// bench calls (9530251797), in the compact form `c2c-gateway dlt compact` writes.
fn write_dlt_lists(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let spread = |n: u64, step: u64| (0..n).map(move |i| 6_000_000_000 + i * step);
    let mut dnd: Vec<u64> = spread(10_000_000, 397).collect();
    dnd.push(9_530_251_797);
    let mut consent: Vec<u64> = spread(1_000_000, 3_989).collect();
    consent.push(9_530_251_797);
    for (name, numbers) in [("dnd.bin", dnd), ("consent.bin", consent)] {
        let set = c2c_dlt::NumberSet::from_numbers(numbers);
        let f = std::fs::File::create(dir.join(name)).unwrap();
        set.write_compact(std::io::BufWriter::new(f)).unwrap();
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0)
}

/// `(count, sum seconds)` of the gateway's `c2c_store_flush_seconds` histogram.
async fn flush_stats(e: &Env) -> (f64, f64) {
    let text = match e.c.get(format!("{}/metrics", e.base)).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        value("c2c_store_flush_seconds_count "),
        value("c2c_store_flush_seconds_sum "),
    )
}

fn pct(v: &mut [u64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i] as f64 / 1000.0
}

struct Env {
    _gw: Kill,
    _sim: Kill,
    gw_pid: u32,
    sim_pid: u32,
    base: String,
    gw_addr: SocketAddr,
    sim_addr: SocketAddr,
    c: reqwest::Client,
    delivered: Arc<AtomicU64>,
    /// Dropped last (fields drop in order), after the processes using it are gone.
    dir: RemoveOnDrop,
}

impl Env {
    /// The run's scratch directory (policies, data, gateway.log).
    fn dir(&self) -> &Path {
        &self.dir.0
    }
}

struct RemoveOnDrop(PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start(a: &Args, mode: &str, tag: &str) -> Env {
    let dir = std::env::temp_dir().join(format!("c2c-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let delivered = Arc::new(AtomicU64::new(0));
    let sink_url = crm_sink(delivered.clone()).await;
    let sim_port = free_port();
    let sim_url = format!("http://127.0.0.1:{sim_port}");
    let sim = Command::new(&a.sim)
        .args([
            "--listen",
            &format!("127.0.0.1:{sim_port}"),
            "--api-key",
            "APIsimdev",
            "--api-secret",
            SECRET,
        ])
        .args([
            "--max-rooms",
            &(a.open_calls + a.calls + 100).to_string(),
            "--max-connections",
            "4096",
            // No webhook URL and no log: the simulator does not encode or sign events
            // nobody reads (poll mode), so its CPU is spent on the API the gateway calls.
            "--webhook-log",
            "0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sim_pid = sim.id();
    write_policies(
        &a.policies,
        &dir.join("policies"),
        &sim_url,
        &sink_url,
        mode,
        a.store_cache_mb,
        // Phase 1 only: phase 2 and the soak place their calls for `agent-1`.
        AcmeEdits {
            require_registration: a.agents == AgentsMode::Registered && tag == "lc",
            charge_calls: (a.wallet || a.wallet_crash_every.is_some()) && tag == "lc",
            dlt_lists: a.dlt == DltMode::Promotional && tag == "lc",
        },
    );
    let port = free_port();
    let gw = c2c_bench_drivers::spawn_gateway(&a.gateway, &dir, port).unwrap();
    let gw_pid = gw.id();
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if c.get(format!("{base}/readyz"))
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Answer at once: measure the gateway, not a simulated callee.
    c.post(format!("{sim_url}/sim/scenarios"))
        .json(
            &json!({"default": {"ring_after_ms": 0, "outcome": {"kind": "answer", "after_ms": 0}}}),
        )
        .send()
        .await
        .unwrap();
    Env {
        _gw: Kill(gw),
        _sim: Kill(sim),
        gw_pid,
        sim_pid,
        base,
        gw_addr: SocketAddr::from(([127, 0, 0, 1], port)),
        sim_addr: SocketAddr::from(([127, 0, 0, 1], sim_port)),
        c,
        delivered,
        dir: RemoveOnDrop(dir),
    }
}

#[derive(Default)]
struct Lat {
    click2call: Vec<u64>,
    connect: Vec<u64>,
    status: Vec<u64>,
    hangup: Vec<u64>,
    /// The same latencies minus the LiveKit time the gateway reported for each request
    /// (`Server-Timing: livekit;dur=<ms>`): the gateway's own share.
    click2call_own: Vec<u64>,
    connect_own: Vec<u64>,
    hangup_own: Vec<u64>,
    /// click2calls answered `409 agent_busy` (the agent's previous call still ending) and
    /// sent again, and the time spent on them, µs.
    busy: u64,
    busy_us: u64,
}

impl Lat {
    fn extend(&mut self, o: Lat) {
        self.click2call.extend(o.click2call);
        self.connect.extend(o.connect);
        self.status.extend(o.status);
        self.hangup.extend(o.hangup);
        self.click2call_own.extend(o.click2call_own);
        self.connect_own.extend(o.connect_own);
        self.hangup_own.extend(o.hangup_own);
        self.busy += o.busy;
        self.busy_us += o.busy_us;
    }
}

/// The click2call request body: always the same number, so the gateway's work is too.
const CLICK2CALL: &[u8] =
    br#"{"case_id":"b","customer_number":"9530251797","agent_id":"agent-1","customer_crm_id":"c"}"#;

/// A registered agent's click2call until it is not `409 agent_busy`: (latency µs of the
/// accepted one, response). Waits 1 ms between tries.
async fn click2call_when_free(
    gw: &mut http1::Conn,
    agent: &Agent,
    lat: &mut Lat,
) -> (u64, http1::Response) {
    let first = Instant::now();
    loop {
        let t = Instant::now();
        let r = gw
            .post("/api/c2c/click2call", Some(&agent.click2call), Some(KEY))
            .await
            .unwrap_or_else(|e| panic!("POST /api/c2c/click2call: {e}"));
        let busy = r.status == 409 && r.body.windows(10).any(|w| w == b"agent_busy");
        if !busy {
            assert!(
                (200..300).contains(&r.status),
                "POST /api/c2c/click2call failed with {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
            lat.busy_us += t.duration_since(first).as_micros() as u64;
            return (t.elapsed().as_micros() as u64, r);
        }
        lat.busy += 1;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// One full lifecycle on the task's own connections. The agent joins the room and
/// publishes its microphone (the simulator's hook) before `/connect`, which checks that.
async fn lifecycle(gw: &mut http1::Conn, sim: &mut http1::Conn, agent: &Agent, lat: &mut Lat) {
    let (t, r) = if agent.registered {
        click2call_when_free(gw, agent, lat).await
    } else {
        post(gw, "/api/c2c/click2call", Some(&agent.click2call), true).await
    };
    lat.click2call.push(t);
    lat.click2call_own.push(t.saturating_sub(r.livekit_us));
    let (id, room) = created(&r);
    post(
        sim,
        &format!("/sim/rooms/{room}/join"),
        Some(&agent.join),
        false,
    )
    .await;
    let (t, r) = post(gw, &format!("/api/c2c/calls/{id}/connect"), None, false).await;
    lat.connect.push(t);
    lat.connect_own.push(t.saturating_sub(r.livekit_us));
    let (t, _) = post(
        gw,
        &format!("/api/c2c/calls/{id}/status"),
        Some(br#"{"status":"ANSWERED"}"#),
        false,
    )
    .await;
    lat.status.push(t);
    let (t, r) = post(gw, &format!("/api/c2c/calls/{id}/hangup"), None, false).await;
    lat.hangup.push(t);
    lat.hangup_own.push(t.saturating_sub(r.livekit_us));
}

// One thread: the load generator only waits on sockets, and with two workers parking and
// waking each other a fifth of its CPU went to context switches (`perf`).
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let a = Args::parse();
    if let Some(every) = a.wallet_crash_every {
        let held = wallet::crash_soak(&a, every).await;
        println!(
            "wallet crash soak: {}",
            if held {
                "every charge once, zero drift"
            } else {
                "FAILED"
            }
        );
        std::process::exit(if held { 0 } else { 1 });
    }
    if let Some(minutes) = a.soak_minutes {
        let flat = soak::run(&a, minutes).await;
        std::process::exit(if flat { 0 } else { 1 });
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("c2c-gateway call lifecycle bench ({cores} cores; gateway, simulator and load generator share them)");

    phases::lifecycles(&a).await;
    if a.open_calls > 0 {
        phases::open_calls(&a).await;
    }
}
