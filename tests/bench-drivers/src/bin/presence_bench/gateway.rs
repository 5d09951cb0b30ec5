//! The gateway under test: a release binary started on a copy of `./policies` (bundled
//! LiveKit simulator on a free port, limits lifted for the setup burst), and what the
//! benchmark reads of its process (`/proc`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use c2c_bench_drivers::{toml_set, Kill};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running gateway; killed, and its scratch directory removed, when dropped.
pub struct Gateway {
    _child: Kill,
    pub pid: u32,
    pub addr: SocketAddr,
    pub base: String,
    /// Dropped after the process (fields drop in order).
    _dir: RemoveOnDrop,
}

struct RemoveOnDrop(PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

/// The policies: `./policies` as they are, with the bundled simulator on a free port, the
/// per-address and acme's request rates lifted (one load generator address registers
/// ten thousand agents in seconds) and room for `max_sessions` presence sessions.
fn write_policies(src: &Path, dst: &Path, max_sessions: usize) {
    copy_dir(src, dst);
    let path = dst.join("gateway.toml");
    let gw = std::fs::read_to_string(&path).unwrap();
    let sim = format!("\"127.0.0.1:{}\"", free_port());
    let gw = toml_set(&gw, "simulator", "listen", &sim);
    let gw = toml_set(&gw, "limits", "per_ip_requests_per_second", "1000000");
    let gw = toml_set(
        &gw,
        "agents",
        "max_presence_sessions",
        &max_sessions.to_string(),
    );
    std::fs::write(path, gw).unwrap();
    let path = dst.join("tenants/acme.toml");
    let acme = std::fs::read_to_string(&path).unwrap();
    let acme = toml_set(&acme, "limits", "requests_per_second", "100000");
    std::fs::write(path, acme).unwrap();
}

/// Starts `serve` on a fresh data directory and waits for `/readyz`.
pub async fn start(binary: &Path, policies: &Path, tag: &str, max_sessions: usize) -> Gateway {
    let dir = std::env::temp_dir().join(format!("c2c-presence-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    write_policies(policies, &dir.join("policies"), max_sessions);
    let port = free_port();
    let child = c2c_bench_drivers::spawn_gateway(binary, &dir, port).unwrap();
    let gw = Gateway {
        pid: child.id(),
        _child: Kill(child),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        base: format!("http://127.0.0.1:{port}"),
        _dir: RemoveOnDrop(dir),
    };
    for _ in 0..400 {
        if readyz(gw.addr).await {
            return gw;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(gw._dir.0.join("gateway.log")).unwrap_or_default();
    panic!("the gateway did not become ready in 20 s; its log:\n{log}");
}

/// `GET /readyz` on a connection of its own that is closed after the answer, so no
/// kept-alive connection is left in the gateway's memory.
async fn readyz(addr: SocketAddr) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let req = format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf)).await;
    buf.starts_with(b"HTTP/1.1 200")
}

pub fn rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmRSS:")
}

/// Virtual memory of the heap and other private mappings: what was allocated, touched or
/// not (RSS counts only touched pages).
pub fn vm_data_kib(pid: u32) -> u64 {
    status_field(pid, "VmData:")
}

pub fn threads(pid: u32) -> u64 {
    status_field(pid, "Threads:")
}

use c2c_bench_drivers::proc_status_field as status_field;

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`.
pub fn cpu_secs(pid: u32) -> f64 {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name, which is in parentheses and may hold spaces.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    // USER_HZ is 100 on every Linux this runs on.
    ticks as f64 / 100.0
}

/// Open file descriptors of a process (sockets included).
pub fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}
