//! Operator readiness, run as the real binary: reload warnings about start-only
//! settings and `policy check --against`; progress and summaries of the long commands
//! and replay's cap; call retention; `db backup` / `db restore`, including a kill -9 in
//! the middle of a backup.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::time::Duration;

use c2c_callstate::{CallEvent, CallKnobs, CallRecord, NewCall, SledCallStore};
use common::cli::{cli, ok, s};
use common::*;
use serde_json::{json, Value};

const NUMBER: &str = "9530251797";

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Writes `n` answered-and-ended calls of `tenant` created from `t0` (ms) on, each with
/// its pending CRM webhook, straight into a stopped gateway's data directory, through
/// the store's own API (so the timestamps can be anything). Returns their ids.
async fn seed(data: &Path, tenant: &str, n: u64, t0: u64) -> Vec<String> {
    let store = SledCallStore::open(&data.join("store")).unwrap();
    let knobs = CallKnobs::default();
    let mut ids = Vec::new();
    for i in 0..n {
        let (call_id, room) = c2c_callstate::new_call_id();
        let t = t0 + i;
        let new = NewCall {
            call_id: call_id.clone(),
            room,
            tenant: tenant.into(),
            case_id: format!("case-{i}"),
            customer_crm_id: "cust-1".into(),
            agent_id: "agent-1".into(),
            customer_number: NUMBER.into(),
            phone_from: "+919999999999".into(),
            trunk_label: "airtel-mum".into(),
        };
        store
            .create(&CallRecord::new(new, &knobs, t).0)
            .await
            .unwrap();
        for (ev, dt) in [
            (CallEvent::Connect, 1_000),
            (CallEvent::Answered, 2_000),
            (CallEvent::AgentHangup, 62_000),
        ] {
            store
                .apply_transition(&call_id, |r| {
                    c2c_callstate::transition(r, &ev, &knobs, t + dt)
                })
                .await
                .unwrap();
        }
        ids.push(call_id);
    }
    ids
}

/// The example policies with acme's CRM webhook pointing at a port nobody listens on:
/// deliveries fail at once instead of reaching whatever runs on the example's port.
fn policies_with_dead_crm() -> Policies {
    let p = Policies::example();
    p.edit(
        "tenants/acme.toml",
        "http://127.0.0.1:8090/c2c/webhook",
        &format!("http://127.0.0.1:{}/c2c/webhook", free_port()),
    );
    p
}

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

#[tokio::test]
async fn db_check_and_export_end_with_a_summary_and_show_progress_when_asked() {
    let data = tempfile::tempdir().unwrap();
    seed(data.path(), "acme", 3, now_ms() - 3_600_000).await;
    let dat = s(data.path());
    let always = [("C2C_PROGRESS", "always")];

    // Not a terminal: the summary only, on stderr; stdout is the report as before.
    let o = cli(&["db", "check", "--data", &dat], &[]);
    ok(&o);
    assert!(o.stdout.contains("store OK"), "{}", o.stdout);
    assert!(
        o.stderr.contains(
            "db check: 15 entries checked (3 call records, 3 outbox entries, 1 day tallies, \
                 0 wallet ledger entries of 0 tenants)"
        ) && o.stderr.contains("no problems found"),
        "{}",
        o.stderr
    );
    assert!(
        !o.stderr.contains('\r'),
        "progress without a terminal: {:?}",
        o.stderr
    );
    // Forced: the progress line, rewritten with \r, then the summary.
    let o = cli(&["db", "check", "--data", &dat], &always);
    ok(&o);
    assert!(o.stderr.contains("\rchecked 15 entries…"), "{:?}", o.stderr);
    assert!(o.stderr.contains("db check: 15 entries"), "{:?}", o.stderr);

    let o = cli(&["db", "export", "--outbox", "--data", &dat], &[]);
    ok(&o);
    assert_eq!(o.stdout.lines().count(), 6);
    assert!(
        o.stderr
            .contains("db export: 3 call record(s) and 3 outbox entries to stdout")
            && o.stderr.contains("(phone numbers masked)"),
        "{}",
        o.stderr
    );
    let o = cli(&["db", "export", "--outbox", "--data", &dat], &always);
    ok(&o);
    assert!(o.stderr.contains("\rexported 6 entries…"), "{:?}", o.stderr);
    // The data on stdout is untouched by the progress line.
    assert_eq!(o.stdout.lines().count(), 6);
    assert!(!o.stdout.contains('\r'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_cap_is_a_flag_and_is_reported_when_it_cuts_short() {
    let p = policies_with_dead_crm();
    let data = tempfile::tempdir().unwrap();
    seed(data.path(), "acme", 3, now_ms() - 3_600_000).await;
    seed(data.path(), "globex", 1, now_ms() - 3_600_000).await;
    let (pol, dat) = (s(p.path()), s(data.path()));
    let replay = |extra: &[&str], env: &[(&str, &str)]| {
        let mut a = vec![
            "webhooks",
            "replay",
            "--tenant",
            "acme",
            "--since",
            "1d",
            "--policies",
            &pol,
            "--data",
            &dat,
        ];
        a.extend_from_slice(extra);
        cli(&a, env)
    };

    // Direct mode, capped: it re-sends the oldest two, says how many matched, exits 1.
    let o = replay(&["--max", "2"], &[("C2C_PROGRESS", "always")]);
    assert_eq!(o.code, 1, "stdout: {}\nstderr: {}", o.stdout, o.stderr);
    assert!(
        o.stderr.contains("webhooks replay: 3 matched for tenant acme since 1d, 2 re-queued, 0 delivered (--max 2)"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("cut short by --max 2"), "{}", o.stderr);
    assert!(
        o.stderr.contains("re-sent 2 of 2 webhooks…"),
        "{:?}",
        o.stderr
    );
    assert_eq!(
        o.stdout.lines().filter(|l| l.starts_with("msg_")).count(),
        2
    );
    // Uncapped: everything, exit 0, the summary all the same.
    let o = replay(&[], &[]);
    ok(&o);
    assert!(
        o.stderr.contains(
            "3 matched for tenant acme since 1d, 3 re-queued, 0 delivered (--max 10,000)"
        ),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("cut short"), "{}", o.stderr);
    // A cap out of range is a usage error.
    let o = replay(&["--max", "0"], &[]);
    assert_eq!(o.code, 2, "{}", o.stderr);

    // Through a running gateway: the owner API takes `max` and answers what matched.
    let gw = Gateway::start(p.path(), data.path());
    let c = client();
    let post = |body: Value| {
        c.post(gw.url("/api/c2c/webhooks/replay"))
            .header("x-api-key", OWNER_KEY)
            .json(&body)
            .send()
    };
    let (status, v) = json(
        post(json!({"tenant": "acme", "since": "1d", "max": 2}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (&v["matched"], &v["requeued"], &v["max"], &v["capped"]),
        (&json!(3), &json!(2), &json!(2), &json!(true)),
        "{v}"
    );
    assert_eq!(v["webhook_ids"].as_array().unwrap().len(), 2);
    // The default cap, not reached.
    let (_, v) = json(
        post(json!({"tenant": "acme", "since": "1d"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (&v["matched"], &v["requeued"], &v["max"], &v["capped"]),
        (&json!(3), &json!(3), &json!(10_000), &json!(false)),
        "{v}"
    );
    let (status, v) = json(
        post(json!({"tenant": "acme", "since": "1d", "max": 0}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, error_code(&v)), (422, "invalid_max"), "{v}");
    // A whole number written as a float is a whole number (JSON Schema's `integer`).
    let (status, v) = json(
        post(json!({"tenant": "acme", "since": "1d", "max": 2.0}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, &v["requeued"]), (200, &json!(2)), "{v}");
    let (status, v) = json(
        post(json!({"tenant": "acme", "since": "1d", "max": 1.5}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, error_code(&v)), (422, "invalid_max"), "{v}");

    // The CLI through the gateway reports the cap the same way.
    let o = replay(
        &["--max", "1", "--gateway", &gw.base],
        &[("C2C_OWNER_KEY", OWNER_KEY)],
    );
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("3 matched for tenant acme since 1d, 1 re-queued (--max 1)"),
        "{}",
        o.stderr
    );
    let answer: Value = serde_json::from_str(o.stdout.trim()).unwrap();
    assert_eq!(answer["capped"], true);
}

/// A log text without its ANSI colours (`\x1b[...m`).
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Marks the calls' webhooks delivered, or (`requeue`) pending again as an operator's
/// replay would, with a fresh retry window.
async fn set_webhooks(data: &Path, ids: &[String], requeue: bool) {
    let store = SledCallStore::open(&data.join("store")).unwrap();
    for id in ids {
        let seq = store.outbox_seq_for_call(id).unwrap().unwrap();
        if requeue {
            store.outbox_requeue(seq, now_ms()).await.unwrap();
            continue;
        }
        let mut e = store.outbox_get(seq).unwrap().unwrap();
        e.state = c2c_callstate::OutboxState::Delivered;
        e.attempts = 1;
        e.delivered_ms = Some(e.created_ms + 100);
        store.outbox_update(&e).await.unwrap();
    }
}

#[tokio::test]
async fn retention_purges_old_finished_calls_and_keeps_their_day_in_analytics() {
    let p = policies_with_dead_crm();
    p.edit("gateway.toml", "[calls]", "[calls]\nretention_days = 30");
    let data = tempfile::tempdir().unwrap();
    let old_t0 = now_ms() - 40 * 86_400_000;
    let old = seed(data.path(), "acme", 2, old_t0).await;
    set_webhooks(data.path(), &old, false).await;
    // Old too, but its webhook was just replayed: still pending, so it stays.
    let pending = seed(data.path(), "acme", 1, old_t0 + 10).await;
    set_webhooks(data.path(), &pending, true).await;
    let recent = seed(data.path(), "acme", 1, now_ms() - 3_600_000).await;
    set_webhooks(data.path(), &recent, false).await;

    let mut gw = Gateway::start(p.path(), data.path());
    let c = client();
    assert!(
        eventually(T, || async {
            gw.log_text()
                .contains("retention: purged ended calls older than the limit")
        })
        .await,
        "no purge batch logged:\n{}",
        gw.log_text()
    );
    let line = plain(&gw.log_text())
        .lines()
        .find(|l| l.contains("retention: purged"))
        .unwrap()
        .to_string();
    assert!(
        line.contains("purged=2") && line.contains("kept_pending_webhook=1"),
        "{line}"
    );
    assert!(gw
        .metrics(&c)
        .await
        .lines()
        .any(|l| l == "c2c_calls_purged_total 2"));
    let show = |id: &str| {
        c.get(gw.url(&format!("/api/c2c/owner/calls/{id}")))
            .header("x-api-key", OWNER_KEY)
            .send()
    };
    for id in &old {
        assert_eq!(show(id).await.unwrap().status(), 404, "{id} not purged");
    }
    for id in pending.iter().chain(&recent) {
        assert_eq!(show(id).await.unwrap().status(), 200, "{id} purged");
    }
    // The old day still counts all three calls in analytics.
    let day = chrono::DateTime::from_timestamp_millis(old_t0 as i64)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    let (status, v) = json(
        c.get(gw.url(&format!("/api/c2c/analytics?from={day}&to={day}")))
            .header("x-api-key", ACME_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (&v["total"], &v["outcomes"]["ANSWERED"]),
        (&json!(3), &json!(3)),
        "{v}"
    );

    // The store a purge leaves behind is consistent.
    gw.sigterm();
    let o = cli(&["db", "check", "--data", &s(data.path())], &[]);
    ok(&o);
    assert!(
        o.stdout.contains("records 2,") && o.stdout.contains("purged-call tallies 1"),
        "{}",
        o.stdout
    );
}

const BACKUP: &str = "c2c-store.backup";
const PARTIAL: &str = ".c2c-store.backup.partial";

fn owner_env() -> [(&'static str, &'static str); 1] {
    [("C2C_OWNER_KEY", OWNER_KEY)]
}

async fn owner_call(c: &reqwest::Client, gw: &Gateway, id: &str) -> (u16, Value) {
    json(
        c.get(gw.url(&format!("/api/c2c/owner/calls/{id}")))
            .header("x-api-key", OWNER_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_of_a_running_gateway_restores_into_an_empty_dir_with_the_same_calls() {
    let p = policies_with_dead_crm();
    let data = tempfile::tempdir().unwrap();
    let mut ids = seed(data.path(), "acme", 5, now_ms() - 3_600_000).await;
    set_webhooks(data.path(), &ids[..3], false).await;
    let mut gw = Gateway::start(p.path(), data.path());
    let c = client();
    // And one call placed through the running gateway: open, not yet connected.
    let (status, v) = json(
        c.post(gw.url("/api/c2c/click2call"))
            .header("x-api-key", ACME_KEY)
            .json(&json!({"case_id": "c-live", "customer_number": NUMBER, "agent_id": "a1", "customer_crm_id": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    ids.push(v["call_id"].as_str().unwrap().to_string());
    let mut before = Vec::new();
    for id in &ids {
        let (status, v) = owner_call(&c, &gw, id).await;
        assert_eq!(status, 200, "{v}");
        before.push(v);
    }

    let out = tempfile::tempdir().unwrap();
    let to = out.path().join("b1");
    let backup = |to: &Path| {
        cli(
            &["db", "backup", "--to", &s(to), "--gateway", &gw.base],
            &owner_env(),
        )
    };
    let o = backup(&to);
    ok(&o);
    assert!(o.stderr.contains("db backup: "), "{}", o.stderr);
    assert!(to.join(BACKUP).is_file());
    assert!(!to.join(PARTIAL).exists());
    // A directory holds one backup: a second one into it is refused, the first kept.
    let o = backup(&to);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("already holds a backup"), "{}", o.stderr);
    // Without the owner key the gateway refuses.
    let o = cli(
        &[
            "db",
            "backup",
            "--to",
            &s(&out.path().join("b2")),
            "--gateway",
            &gw.base,
        ],
        &[("C2C_OWNER_KEY", ACME_KEY)],
    );
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(!out.path().join("b2").join(BACKUP).exists());

    let restored = out.path().join("restored");
    let o = cli(
        &["db", "restore", "--from", &s(&to), "--data", &s(&restored)],
        &[],
    );
    ok(&o);
    assert!(
        o.stderr.contains("db restore: ") && o.stderr.contains("db check: no problems found"),
        "{}",
        o.stderr
    );
    // Only into an empty data directory.
    let o = cli(
        &["db", "restore", "--from", &s(&to), "--data", &s(&restored)],
        &[],
    );
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("is not empty"), "{}", o.stderr);
    let o = cli(
        &[
            "db",
            "restore",
            "--from",
            &s(&to),
            "--data",
            &s(data.path()),
        ],
        &[],
    );
    assert_eq!(o.code, 1, "{}", o.stderr);

    // A gateway started on the restored data has the same calls.
    gw.sigterm();
    // (With the gateway stopped, the same backup comes straight from its data dir.)
    let offline = out.path().join("offline");
    ok(&cli(
        &[
            "db",
            "backup",
            "--to",
            &s(&offline),
            "--data",
            &s(data.path()),
        ],
        &[],
    ));
    ok(&cli(
        &[
            "db",
            "restore",
            "--from",
            &s(&offline),
            "--data",
            &s(&out.path().join("r-offline")),
        ],
        &[],
    ));
    let gw2 = Gateway::start(p.path(), &restored);
    for (id, want) in ids.iter().zip(&before) {
        let (status, got) = owner_call(&c, &gw2, id).await;
        assert_eq!(status, 200, "{id}: {got}");
        assert_eq!(got["call"], want["call"], "{id}");
        assert_eq!(
            got["webhook"]["webhook_id"], want["webhook"]["webhook_id"],
            "{id}"
        );
    }
}

/// Waits until `path` exists with some bytes in it.
fn wait_for_bytes(path: &Path) -> bool {
    let deadline = std::time::Instant::now() + T;
    while std::time::Instant::now() < deadline {
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn spawn_backup(to: &Path, gw: &Gateway) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_c2c-gateway"))
        .args(["db", "backup", "--to", &s(to), "--gateway", &gw.base])
        .env("C2C_OWNER_KEY", OWNER_KEY)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_killed_mid_stream_leaves_nothing_restore_would_take() {
    let p = policies_with_dead_crm();
    let data = tempfile::tempdir().unwrap();
    let ids = seed(data.path(), "acme", 40, now_ms() - 3_600_000).await;
    set_webhooks(data.path(), &ids, false).await;
    // The gateway paces its backup stream (test-only knob) so it lasts seconds.
    let mut gw =
        Gateway::start_with_env(p.path(), data.path(), &[("C2C_TEST_BACKUP_PACE_MS", "10")]);
    let out = tempfile::tempdir().unwrap();

    // kill -9 the backup command mid-stream.
    let to = out.path().join("killed");
    let mut child = spawn_backup(&to, &gw);
    assert!(
        wait_for_bytes(&to.join(PARTIAL)),
        "the backup never started writing"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!to.join(BACKUP).exists(), "a killed backup left a backup");
    let partial_len = std::fs::metadata(to.join(PARTIAL)).unwrap().len();
    assert!(partial_len > 0);
    let restored = out.path().join("r1");
    let o = cli(
        &["db", "restore", "--from", &s(&to), "--data", &s(&restored)],
        &[],
    );
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("interrupted backup"), "{}", o.stderr);
    // Even under the real name, the partial file is refused and nothing is kept.
    let renamed = out.path().join("renamed");
    std::fs::create_dir_all(&renamed).unwrap();
    std::fs::copy(to.join(PARTIAL), renamed.join(BACKUP)).unwrap();
    let o = cli(
        &[
            "db",
            "restore",
            "--from",
            &s(&renamed),
            "--data",
            &s(&restored),
        ],
        &[],
    );
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("incomplete"), "{}", o.stderr);
    assert!(!restored.join("store").exists());
    assert_eq!(
        std::fs::read_dir(&restored).map(|d| d.count()).unwrap_or(0),
        0
    );

    // The gateway noticed the client was gone and let the next backup run; the same
    // directory is reused (the partial file is replaced).
    let mut done = None;
    for _ in 0..30 {
        let o = cli(
            &["db", "backup", "--to", &s(&to), "--gateway", &gw.base],
            &owner_env(),
        );
        if o.code == 0 {
            done = Some(o);
            break;
        }
        assert!(o.stderr.contains("another backup"), "{}", o.stderr);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(done.is_some(), "the killed backup kept the gateway busy");
    assert!(to.join(BACKUP).is_file() && !to.join(PARTIAL).exists());
    ok(&cli(
        &["db", "restore", "--from", &s(&to), "--data", &s(&restored)],
        &[],
    ));

    // kill -9 the gateway mid-stream: the command fails and keeps nothing.
    let to = out.path().join("gateway-killed");
    let child = spawn_backup(&to, &gw);
    assert!(wait_for_bytes(&to.join(PARTIAL)));
    gw.kill9();
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("broke off") || stderr.contains("not usable"),
        "{stderr}"
    );
    assert!(!to.join(BACKUP).exists() && !to.join(PARTIAL).exists());
}
