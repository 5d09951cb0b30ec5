//! Test harness: runs the real `c2c-gateway` binary on an ephemeral 127.0.0.1 port with a
//! copy of the example policies and a fresh data directory.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod browser;
pub mod calls;
pub mod cli;
pub mod fleet;
pub mod pingora_proxy;
pub mod raw;
pub mod sink;

pub const ACME_KEY: &str = "c2c_bCk65WthOJFJPJbeJjWz3VWCPmlwiI22tBd0";
pub const ACME_OLD_KEY: &str = "c2c_HLz2K6Zkdd9rL9BJ8huLTqpvHemqIo2ZYbRm";
pub const OWNER_KEY: &str = "c2c_V9txkkwaqj2BNm7dNiSL76CnJiU3lS4ZJEQf";

pub fn example_policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

/// A policy directory the test may edit.
pub struct Policies {
    pub dir: tempfile::TempDir,
    /// Where the bundled simulator listens (also the `singapore` region's upstream).
    pub sim_port: u16,
}

impl Policies {
    pub fn example() -> Self {
        Self::example_on(free_port())
    }

    fn example_fixed() -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&example_policies(), dir.path());
        let p = Self {
            dir,
            sim_port: 7880,
        };
        // Fast shutdown in tests.
        p.edit(
            "gateway.toml",
            "grace_period_seconds = 10",
            "grace_period_seconds = 1",
        );
        p
    }

    /// The example with the simulator on a free port (parallel tests must not collide).
    pub fn example_on(sim_port: u16) -> Self {
        let mut p = Self::example_fixed();
        p.sim_port = sim_port;
        p.edit(
            "gateway.toml",
            "listen = \"127.0.0.1:7880\"",
            &format!("listen = \"127.0.0.1:{sim_port}\""),
        );
        p.edit(
            "gateway.toml",
            "upstreams = [\"http://127.0.0.1:7880\"]",
            &format!("upstreams = [\"http://127.0.0.1:{sim_port}\"]"),
        );
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn edit(&self, file: &str, from: &str, to: &str) {
        let p = self.dir.path().join(file);
        let s = std::fs::read_to_string(&p).unwrap();
        assert!(s.contains(from), "{file} does not contain {from:?}");
        // Write to a temp file and rename, as config management tools do, so the reloader
        // never sees a half-written file.
        let tmp = p.with_extension("tmp-edit");
        std::fs::write(&tmp, s.replacen(from, to, 1)).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
    }

    pub fn write(&self, file: &str, contents: &str) {
        let p = self.dir.path().join(file);
        let tmp = p.with_extension("tmp-write");
        std::fs::write(&tmp, contents).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else if p.extension().is_none_or(|x| x != "md") {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// A TCP port free right now, taken below the kernel's ephemeral range (32768-60999 by
/// default): a port from that range can be grabbed by any outgoing connection between
/// this check and the gateway's bind (seen in CI as "address already in use"). A
/// per-process counter keeps parallel tests of one binary apart.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..4096 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 12_000 + (seed.wrapping_add(n.wrapping_mul(4099)) % 20_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port free for both TCP and UDP (the SIP edge and sipp bind both), from the same
/// range as [`free_port`].
pub fn free_udp_port() -> u16 {
    loop {
        let port = free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A running gateway process.
pub struct Gateway {
    pub child: Child,
    pub port: u16,
    pub base: String,
    pub policies: PathBuf,
    pub data: PathBuf,
    pub log: PathBuf,
    env: Vec<(String, String)>,
}

impl Gateway {
    pub fn start(policies: &Path, data: &Path) -> Self {
        Self::start_with_env(policies, data, &[])
    }

    pub fn start_with_env(policies: &Path, data: &Path, env: &[(&str, &str)]) -> Self {
        let gw = Self::spawn_with_env(policies, data, env);
        gw.wait_ready();
        gw
    }

    /// Starts the process without waiting for `/readyz`.
    pub fn spawn_with_env(policies: &Path, data: &Path, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let log = data.with_extension(format!("log-{port}"));
        // ws_url handed to browsers is server.public_url: point it at this instance.
        let gw_toml = policies.join("gateway.toml");
        if let Ok(text) = std::fs::read_to_string(&gw_toml) {
            let fixed = text.replace(
                "public_url = \"http://127.0.0.1:8080\"",
                &format!("public_url = \"http://127.0.0.1:{port}\""),
            );
            if fixed != text {
                std::fs::write(&gw_toml, fixed).unwrap();
            }
        }
        let child = spawn(policies, data, port, &env, &log);
        Self {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
            policies: policies.to_path_buf(),
            data: data.to_path_buf(),
            log,
            env,
        }
    }

    /// One `/metrics` scrape as text.
    pub async fn metrics(&self, c: &reqwest::Client) -> String {
        let r = c.get(self.url("/metrics")).send().await.unwrap();
        assert!(r.status().is_success(), "/metrics: {}", r.status());
        r.text().await.unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ =
                    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
                let mut buf = String::new();
                let _ = s.read_to_string(&mut buf);
                if buf.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("gateway did not become ready; log:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: nothing gets a chance to flush.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a graceful exit; returns how long it took.
    pub fn sigterm(&mut self) -> (Duration, std::process::ExitStatus) {
        let t = Instant::now();
        self.send_sigterm();
        let status = self.child.wait().unwrap();
        (t.elapsed(), status)
    }

    /// SIGTERM without waiting for the exit.
    pub fn send_sigterm(&self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }

    /// Kill -9 and start again on the same port, policies and data.
    pub fn restart_hard(&mut self) {
        self.kill9();
        self.start_again();
    }

    /// Starts the gateway again after [`Self::kill9`] (same port, policies and data).
    pub fn start_again(&mut self) {
        self.child = spawn(&self.policies, &self.data, self.port, &self.env, &self.log);
        self.wait_ready();
    }
}

fn spawn(policies: &Path, data: &Path, port: u16, env: &[(String, String)], log: &Path) -> Child {
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_c2c-gateway"));
    cmd.arg("serve")
        .arg("--policies")
        .arg(policies)
        .arg("--data")
        .arg(data)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env_remove("C2C_LISTEN")
        // Parallel gateways must not fight over 5060; tests that dial through the SIP
        // edge pass their own C2C_SIP_LISTEN (applied below, after this default).
        .env("C2C_SIP_LISTEN", "127.0.0.1:0")
        .env(
            "C2C_LOG",
            "debug,pingora_core=warn,pingora_proxy=warn,sled=warn",
        )
        .stdin(Stdio::null())
        .stdout(logf.try_clone().unwrap())
        .stderr(logf);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn c2c-gateway")
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Polls `f` until it returns true or the timeout passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

pub async fn json(resp: reqwest::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|_| serde_json::json!({"raw": text}));
    (status, v)
}

pub fn error_code(v: &serde_json::Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}
