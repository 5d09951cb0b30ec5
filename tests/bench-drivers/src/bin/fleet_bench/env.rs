//! What a run starts: the PostgreSQL cluster (one for the whole bench, a fresh database
//! per run), the LiveKit simulator and the CRM webhook sink (shared by every node of a
//! run), and the gateway nodes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use c2c_bench_drivers::lifecycle::crm_sink;
use c2c_bench_drivers::{toml_set, Kill};
use c2c_test_support::pg::PgServer;

const SECRET: &str = "devsecret-livekit-sim-0123456789abcdef0123456789abcdef";

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The PostgreSQL cluster every PostgreSQL run uses, with its durable defaults (`fsync`
/// and `synchronous_commit` on), its data under `$TMPDIR` like the sled runs' data.
pub(crate) struct Pg {
    pub(crate) server: PgServer,
    /// The postmaster: its backends are its children.
    postmaster: u32,
    next: AtomicU32,
}

impl Pg {
    pub(crate) fn start() -> Pg {
        // pg_stat_statements for the SQL profile's plan and execution times (loaded for
        // every set-up alike: its cost is in all the database figures).
        let server = PgServer::start_with(&[
            ("shared_preload_libraries", "pg_stat_statements"),
            ("pg_stat_statements.track_planning", "on"),
        ]);
        let postmaster = crate::pgstat::postmaster(server.port())
            .expect("the postmaster of the cluster just started");
        Pg {
            server,
            postmaster,
            next: AtomicU32::new(0),
        }
    }

    /// A new empty database for one run.
    pub(crate) fn new_db(&self, tag: &str) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.server.create_database(&format!("bench_{tag}_{n}"))
    }

    /// CPU seconds the cluster's processes used so far (live backends and the
    /// postmaster, with its reaped children).
    pub(crate) fn cpu_secs(&self) -> f64 {
        crate::pgstat::tree_cpu_secs(self.postmaster)
    }

    pub(crate) fn psql(&self, db: &str, sql: &str) -> String {
        self.server.psql(db, sql)
    }
}

/// The store of a run's nodes.
#[derive(Clone)]
pub(crate) enum Store {
    Sled,
    Postgres {
        url: String,
        pool_size: usize,
        lease_ms: u64,
        fleet_size: u32,
    },
}

/// The simulator, the sink and the scratch directory of one run.
pub(crate) struct Harness {
    _sim: Kill,
    pub(crate) sim_pid: u32,
    pub(crate) sim_addr: SocketAddr,
    pub(crate) sim_url: String,
    pub(crate) sink_url: String,
    /// Webhook requests the sink answered.
    pub(crate) delivered: Arc<AtomicU64>,
    pub(crate) dir: PathBuf,
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Harness {
    /// Starts a simulator whose calls follow `scenario` (JSON of `/sim/scenarios`'s
    /// `default`) and a sink.
    pub(crate) async fn start(a: &crate::Args, tag: &str, scenario: serde_json::Value) -> Self {
        let dir =
            std::env::temp_dir().join(format!("c2c-fleet-bench-{tag}-{}", std::process::id()));
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
                "--max-rooms",
                "200000",
                "--max-connections",
                "4096",
                // Poll mode: nobody reads the simulator's webhooks (as lifecycle-bench).
                "--webhook-log",
                "0",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let sim_pid = sim.id();
        let c = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = c
                .post(format!("{sim_url}/sim/scenarios"))
                .json(&serde_json::json!({ "default": scenario }))
                .send()
                .await;
            if r.as_ref().is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the simulator did not start: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Harness {
            _sim: Kill(sim),
            sim_pid,
            sim_addr: SocketAddr::from(([127, 0, 0, 1], sim_port)),
            sim_url,
            sink_url,
            delivered,
            dir,
        }
    }

    /// Starts node `name` of the run on `store`; `extra` are more gateway.toml settings
    /// (`section`, `key`, `value` as TOML).
    pub(crate) async fn node(
        &self,
        a: &crate::Args,
        name: &str,
        store: &Store,
        extra: &[(&str, &str, &str)],
    ) -> Node {
        self.node_with_env(a, name, store, extra, &[]).await
    }

    /// [`Self::node`] with more environment variables for the gateway.
    pub(crate) async fn node_with_env(
        &self,
        a: &crate::Args,
        name: &str,
        store: &Store,
        extra: &[(&str, &str, &str)],
        envs: &[(&str, &str)],
    ) -> Node {
        let mut extra = extra.to_vec();
        let conc = a.webhook_concurrency.map(|n| n.to_string());
        if let Some(n) = &conc {
            extra.push(("webhooks", "per_tenant_concurrency", n));
        }
        if a.wallet {
            extra.push(("billing", "charge_calls", "true"));
        }
        let dir = self.dir.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        write_policies(
            &a.policies,
            &dir.join("policies"),
            &self.sim_url,
            &self.sink_url,
            store,
            name,
            &extra,
        );
        let port = free_port();
        let mut cmd = c2c_bench_drivers::gateway_command(&a.gateway, &dir, port).unwrap();
        if let Store::Postgres { url, .. } = store {
            cmd.env("C2C_STORE_URL", url);
        }
        cmd.envs(envs.iter().copied());
        let child = cmd.spawn().unwrap();
        let node = Node {
            pid: child.id(),
            child: Some(Kill(child)),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            base: format!("http://127.0.0.1:{port}"),
            dir,
        };
        node.wait_ready().await;
        node
    }
}

/// One gateway process.
pub(crate) struct Node {
    child: Option<Kill>,
    pub(crate) pid: u32,
    pub(crate) addr: SocketAddr,
    pub(crate) base: String,
    pub(crate) dir: PathBuf,
}

impl Node {
    async fn wait_ready(&self) {
        let c = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = c
                .get(format!("{}/readyz", self.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gateway {} not ready in 60 s:\n{}",
                self.base,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("gateway.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// kill -9; returns the wall clock (Unix ms) just before the signal.
    pub(crate) fn kill9(&mut self) -> u64 {
        let mut k = self.child.take().expect("node already killed");
        let at = crate::unix_ms();
        k.0.kill().expect("kill -9");
        let _ = k.0.wait();
        at
    }

    /// One series of the node's `/metrics` (summed over its label sets), `None` if the
    /// node does not answer.
    pub(crate) async fn metric(&self, c: &reqwest::Client, series: &str) -> Option<f64> {
        let text = c
            .get(format!("{}/metrics", self.base))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        Some(
            text.lines()
                .filter(|l| {
                    l.strip_prefix(series)
                        .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum(),
        )
    }
}

/// A copy of `./policies` for one node: the simulator and the sink of the run, limits
/// out of the way (one load generator address, one tenant), a 1 s drain, the store.
fn write_policies(
    src: &Path,
    dst: &Path,
    sim_url: &str,
    sink_url: &str,
    store: &Store,
    node_name: &str,
    extra: &[(&str, &str, &str)],
) {
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
        .replace("grace_period_seconds = 10", "grace_period_seconds = 1")
        .replace(
            "max_duration_seconds = 3600",
            "max_duration_seconds = 86400",
        );
    // poll mode, as the file says (the lifecycle benchmark's default).
    assert!(
        gw.contains("answer_detection = \"poll\""),
        "policies/gateway.toml changed"
    );
    let mut gw = toml_set(&gw, "limits", "per_ip_requests_per_second", "1000000");
    for (section, k, v) in extra {
        gw = toml_set(&gw, section, k, v);
    }
    if let Store::Postgres {
        pool_size,
        lease_ms,
        fleet_size,
        ..
    } = store
    {
        for (k, v) in [
            ("kind", "\"postgres\"".to_string()),
            ("url_env", "\"C2C_STORE_URL\"".to_string()),
            ("pool_size", pool_size.to_string()),
            ("lease_ms", lease_ms.to_string()),
            ("fleet_size", fleet_size.to_string()),
            ("node_name", format!("\"{node_name}\"")),
        ] {
            gw = toml_set(&gw, "store", k, &v);
        }
    }
    std::fs::write(dst.join("gateway.toml"), gw).unwrap();
    let acme = std::fs::read_to_string(dst.join("tenants/acme.toml")).unwrap();
    let acme = acme
        .replace("http://127.0.0.1:8090/c2c/webhook", sink_url)
        .replace(
            "[dlt]",
            "[limits]\nrequests_per_second = 100000\nmax_concurrent_calls = 1000000\n\n[dlt]",
        );
    std::fs::write(dst.join("tenants/acme.toml"), acme).unwrap();
}
