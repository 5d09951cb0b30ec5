//! What an operator meets first, run as the real binary: `--version` with the source
//! revision, `c2c_build_info` and `c2c_livekit_requests_total` on `/metrics`, and the
//! `health` probe the container image uses.

mod common;

use std::process::Command;

use common::calls::CallEnv;
use common::cli::cli;
use common::*;

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
