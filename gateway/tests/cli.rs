//! `c2c-gateway tenant`, `calls show` and `db check|export`, run as the real binary
//! against real policy and data directories, next to and through a running gateway.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::calls::CallEnv;
use common::cli::{cli, ok, s, Out};
use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(15);
const NUMBER: &str = "9530251797";
const MASKED: &str = "95******97";

fn tenants(o: &Out) -> Vec<Value> {
    ok(o);
    serde_json::from_str(&o.stdout).unwrap()
}

fn tenant<'a>(list: &'a [Value], id: &str) -> &'a Value {
    list.iter().find(|t| t["id"] == id).unwrap()
}

async fn owner_state(c: &reqwest::Client, gw: &Gateway, tenant: &str) -> Value {
    let r = c
        .get(gw.url(&format!(
            "/api/telephony/config/owner/{tenant}/outbound-enable"
        )))
        .header("x-api-key", OWNER_KEY)
        .send()
        .await
        .unwrap();
    let (status, v) = json(r).await;
    assert_eq!(status, 200, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_list_and_outbound_enable_share_state_with_the_owner_api() {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let (pol, dat) = (s(p.path()), s(data.path()));
    let list = |extra: &[&str], env: &[(&str, &str)]| {
        let mut a = vec![
            "tenant",
            "list",
            "--json",
            "--policies",
            &pol,
            "--data",
            &dat,
        ];
        a.extend_from_slice(extra);
        tenants(&cli(&a, env))
    };

    // No store yet: every tenant runs on its policy value.
    let l = list(&[], &[]);
    assert_eq!(l.len(), 2);
    let acme = tenant(&l, "acme");
    assert_eq!(acme["name"], "Acme Realty");
    assert_eq!(acme["trunks"], serde_json::json!(["airtel-mum", "jio-del"]));
    assert_eq!(
        (&acme["outbound_enabled"], &acme["source"]),
        (&Value::Bool(true), &"policy".into())
    );
    let globex = tenant(&l, "globex");
    assert_eq!(
        (&globex["outbound_enabled"], &globex["source"]),
        (&Value::Bool(false), &"policy".into())
    );

    // The human table says the same.
    let table = cli(&["tenant", "list", "--policies", &pol, "--data", &dat], &[]);
    ok(&table);
    assert!(table.stdout.starts_with("ID"), "{}", table.stdout);
    assert!(table
        .stdout
        .lines()
        .any(|l| l.starts_with("globex") && l.contains("vi-blr") && l.contains("disabled")));

    // Enable with the gateway stopped: straight into the store.
    let o = cli(
        &[
            "tenant",
            "outbound-enable",
            "globex",
            "--verified-by",
            "ops@platform",
            "--note",
            "PE binding checked",
            "--policies",
            &pol,
            "--data",
            &dat,
        ],
        &[],
    );
    ok(&o);
    let l = list(&[], &[]);
    let globex = tenant(&l, "globex");
    assert_eq!(
        (&globex["outbound_enabled"], &globex["source"]),
        (&Value::Bool(true), &"owner".into())
    );

    // The gateway sees the same override and audit entry.
    let mut gw = Gateway::start(p.path(), data.path());
    let c = client();
    let v = owner_state(&c, &gw, "globex").await;
    assert_eq!(
        (&v["outbound_enabled"], &v["source"]),
        (&Value::Bool(true), &"owner".into()),
        "{v}"
    );
    let audit = v["audit"].as_array().unwrap();
    assert_eq!(audit.len(), 1, "{v}");
    assert_eq!(audit[0]["verified_by"], "ops@platform");
    assert_eq!(audit[0]["note"], "PE binding checked");
    assert_eq!(audit[0]["key_id"], "cli");
    assert_eq!(
        (&audit[0]["old"], &audit[0]["new"]),
        (&Value::Bool(false), &Value::Bool(true))
    );

    // While it runs the data dir is refused, naming the gateway's pid.
    let disable = [
        "tenant",
        "outbound-enable",
        "globex",
        "--disable",
        "--verified-by",
        "ops@platform",
        "--policies",
        &pol,
        "--data",
        &dat,
    ];
    let busy = cli(&disable, &[]);
    assert_eq!(busy.code, 1, "{}", busy.stderr);
    assert!(
        busy.stderr.contains("is in use by a running gateway"),
        "{}",
        busy.stderr
    );
    assert!(
        busy.stderr.contains(&format!("pid {}", gw.child.id())),
        "{}",
        busy.stderr
    );
    assert!(busy.stderr.contains("--gateway"), "{}", busy.stderr);
    assert_eq!(
        busy.stderr.trim().lines().count(),
        1,
        "one sentence: {}",
        busy.stderr
    );
    let busy = cli(&["tenant", "list", "--policies", &pol, "--data", &dat], &[]);
    assert_eq!(busy.code, 1, "{}", busy.stderr);

    // --gateway without the owner key in the environment is a usage error.
    let mut via: Vec<&str> = disable.to_vec();
    via.extend(["--gateway", &gw.base]);
    let o = cli(&via, &[]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("C2C_OWNER_KEY"), "{}", o.stderr);
    // With it, the same toggle goes through the owner API.
    ok(&cli(&via, &[("C2C_OWNER_KEY", OWNER_KEY)]));
    let v = owner_state(&c, &gw, "globex").await;
    assert_eq!(v["outbound_enabled"], false, "{v}");
    let audit = v["audit"].as_array().unwrap();
    assert_eq!(audit.len(), 2, "{v}");
    assert_eq!(audit[1]["key_id"], "owner-dev");
    let l = list(&["--gateway", &gw.base], &[("C2C_OWNER_KEY", OWNER_KEY)]);
    let globex = tenant(&l, "globex");
    assert_eq!(
        (&globex["outbound_enabled"], &globex["source"]),
        (&Value::Bool(false), &"owner".into())
    );

    // Stopped, the CLI reads what the gateway wrote; a restarted gateway keeps it all.
    gw.sigterm();
    let l = list(&[], &[]);
    assert_eq!(tenant(&l, "globex")["outbound_enabled"], false);
    let gw = Gateway::start(p.path(), data.path());
    let v = owner_state(&c, &gw, "globex").await;
    assert_eq!(v["outbound_enabled"], false);
    assert_eq!(v["audit"].as_array().unwrap().len(), 2, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_show_db_check_and_export_on_a_real_store() {
    let mut env = CallEnv::start("poll").await;
    let (call_id, _) = env.start_call(NUMBER).await;
    env.post(&format!("/api/c2c/calls/{call_id}/hangup")).await;
    env.webhook(&call_id, T).await;
    let dat = s(env.data.path());
    let base = env.gw.base.clone();

    // Through the running gateway: the record, masked, and its delivered webhook.
    let show_via = || {
        cli(
            &["calls", "show", &call_id, "--gateway", &base],
            &[("C2C_OWNER_KEY", OWNER_KEY)],
        )
    };
    assert!(
        eventually(T, || async {
            let o = show_via();
            o.code == 0
                && serde_json::from_str::<Value>(&o.stdout).unwrap()["webhook"]["state"]
                    == "delivered"
        })
        .await,
        "webhook never shown as delivered: {:?}",
        {
            let o = show_via();
            (o.code, o.stdout, o.stderr)
        }
    );
    let via: Value = serde_json::from_str(&show_via().stdout).unwrap();
    assert_eq!(via["call"]["call_id"], call_id.as_str());
    assert_eq!(via["call"]["customer_number"], MASKED);
    assert_eq!(via["call"]["phase"], "ENDED");
    assert_eq!(via["webhook"]["attempts"], 1);
    assert!(!show_via().stdout.contains(NUMBER));

    // Store commands refuse while the gateway holds the data dir.
    for args in [
        vec!["calls", "show", call_id.as_str(), "--data", &dat],
        vec!["db", "check", "--data", &dat],
        vec!["db", "export", "--data", &dat],
    ] {
        let o = cli(&args, &[]);
        assert_eq!(o.code, 1, "{args:?}: {}", o.stderr);
        assert!(
            o.stderr.contains("is in use by a running gateway"),
            "{}",
            o.stderr
        );
    }

    env.gw.sigterm();
    // Direct read prints the same document.
    let o = cli(&["calls", "show", &call_id, "--data", &dat], &[]);
    ok(&o);
    assert_eq!(serde_json::from_str::<Value>(&o.stdout).unwrap(), via);

    // A store written by the gateway is clean.
    let o = cli(&["db", "check", "--data", &dat], &[]);
    ok(&o);
    assert!(
        o.stdout.contains("records 1,") && o.stdout.contains("store OK"),
        "{}",
        o.stdout
    );

    // Export: JSON lines, masked unless asked otherwise.
    let o = cli(&["db", "export", "--outbox", "--data", &dat], &[]);
    ok(&o);
    let lines: Vec<Value> = o
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", o.stdout);
    assert_eq!(
        (&lines[0]["type"], &lines[0]["call_id"]),
        (&"call".into(), &call_id.as_str().into())
    );
    assert_eq!(lines[0]["customer_number"], MASKED);
    assert_eq!(lines[1]["type"], "outbox");
    assert_eq!(lines[1]["state"], "delivered");
    assert!(!o.stdout.contains(NUMBER), "{}", o.stdout);
    let file = env.data.path().join("export.jsonl");
    ok(&cli(
        &[
            "db",
            "export",
            "--unmasked",
            "--out",
            &s(&file),
            "--data",
            &dat,
        ],
        &[],
    ));
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), 1);
    assert!(text.contains(NUMBER));

    // Plant an inconsistency: drop the call's tenant index entry behind the store's back.
    {
        let db = sled::open(env.data.path().join("store")).unwrap();
        let tree = db.open_tree("calls").unwrap();
        let key = tree
            .scan_prefix(b"t/acme\0")
            .keys()
            .map(|k| k.unwrap())
            .find(|k| k.ends_with(call_id.as_bytes()))
            .expect("tenant index entry");
        tree.remove(key).unwrap();
        db.flush().unwrap();
    }
    let o = cli(&["db", "check", "--data", &dat], &[]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(
        o.stdout
            .lines()
            .any(|l| l.starts_with("missing_index t/acme") && l.contains(&call_id)),
        "{}",
        o.stdout
    );
    assert!(o.stderr.contains("1 problem"), "{}", o.stderr);
    let o = cli(&["db", "check", "--json", "--data", &dat], &[]);
    let report: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(report["problem_count"], 1);
    assert_eq!(report["problems"][0]["kind"], "missing_index");
}
