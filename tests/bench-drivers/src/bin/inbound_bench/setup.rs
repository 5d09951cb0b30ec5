//! The system under test: the LiveKit simulator as its own process (Twirp API, and its
//! SIP socket answering inbound calls as LiveKit SIP, with the gateway's inbound trunk
//! and Callee dispatch rule provisioned at start), and a release gateway on a copy of
//! `./policies` whose SIP edge listens on a known port, forwards accepted calls to the
//! simulator's SIP, and whose tenant `acme` looks leads up at the driver's CRM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use c2c_bench_drivers::{toml_set, Kill};

use crate::Args;

pub struct Env {
    _gw: Kill,
    _sim: Kill,
    pub gw_pid: u32,
    pub sim_pid: u32,
    pub gw: SocketAddr,
    pub base: String,
    pub sim: SocketAddr,
    /// The gateway's SIP edge (UDP).
    pub sip: SocketAddr,
    pub c: reqwest::Client,
    /// Dropped last, after the processes.
    _dir: RemoveOnDrop,
}

struct RemoveOnDrop(PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port free on both TCP and UDP (the SIP edge listens on both).
fn free_sip_port() -> u16 {
    loop {
        let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap().flatten() {
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}

/// The policies under test: the example's, with LiveKit at the simulator process, the
/// region's `livekit_sip` at its SIP socket, the edge's and the tenant's caps lifted
/// (as tests/bench/sip.sh and the lifecycle benchmark do: the path is measured, not the
/// limits), and acme's CRM (webhooks, lead lookup) at the driver.
fn write_policies(a: &Args, dst: &Path, sim_url: &str, sim_sip: u16, crm: &str) {
    copy_dir(&a.policies, dst);
    let path = dst.join("gateway.toml");
    let gw = std::fs::read_to_string(&path).unwrap();
    let sources = "sip_sources = [\"127.0.0.1/32\"]";
    assert!(gw.contains(sources), "gateway.toml without {sources}");
    let gw = gw
        .replace("url = \"sim\"", &format!("url = \"{sim_url}\""))
        .replacen(
            sources,
            &format!("{sources}\nlivekit_sip = \"sip:127.0.0.1:{sim_sip}\""),
            1,
        );
    let gw = toml_set(&gw, "limits", "per_ip_requests_per_second", "1000000");
    let gw = toml_set(&gw, "sip", "calls_per_second", "100000");
    let gw = toml_set(&gw, "sip", "max_concurrent_calls", "1000000");
    let gw = toml_set(&gw, "sip", "max_transactions", "1000000");
    std::fs::write(path, gw).unwrap();
    let path = dst.join("tenants/acme.toml");
    let acme = std::fs::read_to_string(&path).unwrap();
    let acme = acme.replace("http://127.0.0.1:8090/c2c/webhook", &format!("{crm}/hook"));
    let acme = toml_set(&acme, "limits", "requests_per_second", "100000");
    let acme = toml_set(&acme, "limits", "max_concurrent_calls", "1000000");
    let acme = toml_set(
        &acme,
        "inbound",
        "lookup_url",
        &format!("\"{crm}/lead-lookup\""),
    );
    let acme = toml_set(
        &acme,
        "inbound",
        "lead_wait_ms",
        &a.lead_wait_ms.to_string(),
    );
    std::fs::write(path, acme).unwrap();
}

pub async fn start(a: &Args, crm: &str) -> Env {
    let dir = std::env::temp_dir().join(format!("c2c-inbound-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let secret = std::fs::read_to_string(a.policies.join("secrets/livekit-sim.secret"))
        .expect("policies/secrets/livekit-sim.secret");
    let (sim_port, sim_sip) = (free_port(), free_sip_port());
    let sim = Command::new(&a.sim)
        .args(["--listen", &format!("127.0.0.1:{sim_port}")])
        .args(["--api-key", "APIsimdev", "--api-secret", secret.trim()])
        .args(["--max-rooms", "100000", "--max-connections", "4096"])
        .args(["--max-sip-calls", "100000", "--webhook-log", "0"])
        .args(["--sip-inbound", &format!("udp:127.0.0.1:{sim_sip}")])
        .arg("--inbound-auto-provision")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("sim.log")).unwrap())
        .spawn()
        .expect("livekit-sim");
    let sim_pid = sim.id();
    let sim_url = format!("http://127.0.0.1:{sim_port}");
    write_policies(a, &dir.join("policies"), &sim_url, sim_sip, crm);
    let (port, sip) = (free_port(), free_sip_port());
    let gw = c2c_bench_drivers::gateway_command(&a.gateway, &dir, port)
        .unwrap()
        .env("C2C_SIP_LISTEN", format!("127.0.0.1:{sip}"))
        .spawn()
        .expect("c2c-gateway");
    let env = Env {
        gw_pid: gw.id(),
        sim_pid,
        _gw: Kill(gw),
        _sim: Kill(sim),
        gw: SocketAddr::from(([127, 0, 0, 1], port)),
        base: format!("http://127.0.0.1:{port}"),
        sim: SocketAddr::from(([127, 0, 0, 1], sim_port)),
        sip: SocketAddr::from(([127, 0, 0, 1], sip)),
        c: reqwest::Client::new(),
        _dir: RemoveOnDrop(dir.clone()),
    };
    for _ in 0..400 {
        let ok = env.c.get(format!("{}/readyz", env.base)).send().await;
        if ok.is_ok_and(|r| r.status().is_success()) {
            return env;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(dir.join("gateway.log")).unwrap_or_default();
    panic!("the gateway did not become ready in 20 s; its log:\n{log}");
}

impl Env {
    pub async fn metrics(&self) -> String {
        match self.c.get(format!("{}/metrics", self.base)).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }
}

/// A histogram's cumulative buckets `(le seconds, count)` from the metrics text, `+Inf`
/// last.
pub fn buckets(metrics: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, v) = rest.split_once("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, v.trim().parse().ok()?))
        })
        .collect()
}

/// Quantile `q` of the observations between two scrapes, interpolated linearly inside
/// its bucket as Prometheus' `histogram_quantile` does; `None` without observations,
/// `Some(INFINITY)` when it is beyond the largest finite bucket.
pub fn quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|&(le, v)| {
            let b = before.iter().find(|x| x.0 == le).map_or(0.0, |x| x.1);
            (le, v - b)
        })
        .collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lo, mut below) = (0.0, 0.0);
    for &(le, n) in &delta {
        if n >= rank {
            if le.is_infinite() {
                return Some(f64::INFINITY);
            }
            let inside = n - below;
            return Some(if inside > 0.0 {
                lo + (le - lo) * (rank - below) / inside
            } else {
                le
            });
        }
        (lo, below) = (le, n);
    }
    None
}

/// `Udp: RcvbufErrors` of the host (/proc/net/snmp): datagrams the kernel dropped
/// because a socket's receive buffer was full.
pub fn udp_rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp: "));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds the whole machine has spent busy so far (all CPUs: user, nice, system,
/// irq, softirq and steal from `/proc/stat`): minus this benchmark's processes, what
/// everything else on the host took from the cores during a run.
pub fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let f: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| f.get(i)).sum();
    busy as f64 / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let before = [
            (0.001, 0.0),
            (0.002, 0.0),
            (0.004, 0.0),
            (f64::INFINITY, 0.0),
        ];
        let after = [
            (0.001, 50.0),
            (0.002, 90.0),
            (0.004, 100.0),
            (f64::INFINITY, 100.0),
        ];
        let p = |q| quantile(&before, &after, q).unwrap();
        assert!((p(0.5) - 0.001).abs() < 1e-9);
        assert!((p(0.7) - 0.0015).abs() < 1e-9);
        assert!((p(0.99) - 0.0038).abs() < 1e-9);
        let text = "x_bucket{le=\"0.001\"} 3\nx_bucket{le=\"+Inf\"} 4\nx_sum 1\n";
        assert_eq!(buckets(text, "x"), vec![(0.001, 3.0), (f64::INFINITY, 4.0)]);
    }
}
