//! What an operator meets first, run as the real binary: `--version` with the source
//! revision, `c2c_build_info` and `c2c_livekit_requests_total` on `/metrics`, the
//! `health` probe the container image uses, and `dev crm-sink`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::calls::CallEnv;
use common::cli::cli;
use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(15);

/// `git rev-parse --short=12 HEAD` of this checkout, if it is one.
fn git_revision() -> Option<String> {
    let o = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

#[test]
fn version_names_the_source_revision() {
    let o = cli(&["--version"], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let line = o.stdout.trim();
    let rev = git_revision().unwrap_or_else(|| "unknown".into());
    assert_eq!(
        line,
        format!("c2c-gateway {} (rev {rev})", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_build_info_and_livekit_requests_by_operation() {
    let env = CallEnv::start("poll").await;
    let (status, v) = env.click2call("9530251797").await;
    assert_eq!(status, 200, "{v}");
    let text = env.gw.metrics(&env.c).await;
    let rev = git_revision().unwrap_or_else(|| "unknown".into());
    let build = format!(
        "c2c_build_info{{revision=\"{rev}\",version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.contains(&build), "no {build} in:\n{text}");
    assert!(
        text.contains("c2c_livekit_requests_total{op=\"create_room\"} 1"),
        "click2call's CreateRoom is not counted:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_probe_exits_zero_only_on_a_2xx_answer() {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    let run = |url: String| cli(&["health", "--url", &url, "--timeout-ms", "3000"], &[]);

    let ok = run(gw.url("/livez"));
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(ok.stdout.contains("200"), "{}", ok.stdout);
    assert_eq!(run(gw.url("/readyz")).code, 0);

    let missing = run(gw.url("/no-such-endpoint"));
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("404"), "{}", missing.stderr);

    let closed = run(format!("http://127.0.0.1:{}/livez", free_port()));
    assert_eq!(closed.code, 1, "{}", closed.stdout);
}

/// A running `dev crm-sink`; killed on drop.
struct SinkProc {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    url: String,
}

impl SinkProc {
    fn start(key_file: &std::path::Path) -> Self {
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_c2c-gateway"))
            .args(["dev", "crm-sink", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--expect-key-file")
            .arg(key_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        let deadline = std::time::Instant::now() + T;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "crm-sink did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            lines,
            url: format!("http://127.0.0.1:{port}/c2c/webhook"),
        }
    }

    fn next(&self) -> Value {
        let l = self.lines.recv_timeout(T).expect("a line from crm-sink");
        serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}"))
    }
}

impl Drop for SinkProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_sink_prints_each_webhook_and_refuses_a_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("outbound.key");
    std::fs::write(&key_file, "acme-crm-outbound-dev-key\n").unwrap();
    let sink = SinkProc::start(&key_file);
    let c = client();
    let body = serde_json::json!({"call_id": "c2c_0123", "call_status": "ANSWERED"});

    // Two requests on one keep-alive connection, as the gateway's pooled client sends.
    for (key, want) in [
        ("acme-crm-outbound-dev-key", 200),
        ("someone-elses-key-000", 401),
    ] {
        let r = c
            .post(&sink.url)
            .header("x-api-key", key)
            .header("webhook-id", "msg_0123")
            .header("webhook-timestamp", "1700000000")
            .header("webhook-signature", "v1,AAAA")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want);
        let line = sink.next();
        assert_eq!(line["answered"], want);
        assert_eq!(line["webhook_id"], "msg_0123");
        assert_eq!(line["signature"], "present");
        assert_eq!(line["body"], body);
        let shown = line["x_api_key"].as_str().unwrap();
        assert!(
            !shown.contains(&key[4..key.len() - 4]),
            "key not masked: {shown}"
        );
        assert_eq!(line["key"], if want == 200 { "ok" } else { "wrong" });
    }

    let r = c.post(&sink.url).json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(sink.next()["key"], "missing");
}
