//! Operator readiness, run as the real binary: reload warnings about start-only
//! settings and `policy check --against`.

mod common;

use std::time::Duration;

use common::cli::{cli, ok, s};
use common::*;

const T: Duration = Duration::from_secs(15);

#[test]
fn policy_check_against_lists_start_only_changes() {
    let running = Policies::example();
    let next = Policies::example_on(running.sim_port);
    let (run_dir, next_dir) = (s(running.path()), s(next.path()));

    // Nothing differs: valid, and no restart needed.
    let o = cli(&["policy", "check", &next_dir, "--against", &run_dir], &[]);
    ok(&o);
    assert!(o.stdout.contains("policy OK"), "{}", o.stdout);
    assert!(o.stdout.contains("no restart needed"), "{}", o.stdout);

    // A hot change (a call knob) and two start-only ones.
    next.edit(
        "gateway.toml",
        "ring_timeout_seconds = 45",
        "ring_timeout_seconds = 30",
    );
    next.edit("gateway.toml", "threads = 2", "threads = 1");
    next.edit(
        "gateway.toml",
        "answer_detection = \"poll\"",
        "answer_detection = \"webhook\"",
    );
    let o = cli(&["policy", "check", &next_dir, "--against", &run_dir], &[]);
    ok(&o);
    let listed: Vec<&str> = o
        .stdout
        .lines()
        .skip_while(|l| !l.contains("take effect only after a restart"))
        .skip(1)
        .map(str::trim)
        .collect();
    assert_eq!(
        listed,
        ["answer_detection", "server.threads"],
        "{}",
        o.stdout
    );

    // Without --against the output is what it always was.
    let o = cli(&["policy", "check", &next_dir], &[]);
    ok(&o);
    assert!(!o.stdout.contains("restart"), "{}", o.stdout);

    // An invalid new policy still fails, whatever it is compared with.
    next.edit("gateway.toml", "threads = 1", "threads = 0");
    let o = cli(&["policy", "check", &next_dir, "--against", &run_dir], &[]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    // An invalid running directory is reported, not ignored.
    next.edit("gateway.toml", "threads = 0", "threads = 1");
    running.edit("gateway.toml", "threads = 2", "threads = 0");
    let o = cli(&["policy", "check", &next_dir, "--against", &run_dir], &[]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(o.stderr.contains("server.threads"), "{}", o.stderr);
}

#[tokio::test]
async fn a_reload_of_start_only_settings_warns_until_they_are_reverted() {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    let warning = "these changes take effect only after a restart: server.threads";
    let reloads = |gw: &Gateway| gw.log_text().matches("policy reloaded").count();

    p.edit("gateway.toml", "threads = 2", "threads = 1");
    assert!(
        eventually(T, || async { gw.log_text().contains(warning) }).await,
        "no restart warning; log:\n{}",
        gw.log_text()
    );
    assert_eq!(gw.log_text().matches(warning).count(), 1);

    // A later, unrelated reload still warns: the server runs with the old value.
    p.edit(
        "gateway.toml",
        "ring_timeout_seconds = 45",
        "ring_timeout_seconds = 30",
    );
    assert!(
        eventually(T, || async { gw.log_text().matches(warning).count() == 2 }).await,
        "{}",
        gw.log_text()
    );

    // Back to the value it started with: a plain reload, no warning.
    let before = reloads(&gw);
    p.edit("gateway.toml", "threads = 1", "threads = 2");
    assert!(eventually(T, || async { reloads(&gw) > before }).await);
    assert_eq!(
        gw.log_text().matches(warning).count(),
        2,
        "{}",
        gw.log_text()
    );
    assert!(
        !gw.log_text().contains("restart: answer_detection"),
        "{}",
        gw.log_text()
    );
}
