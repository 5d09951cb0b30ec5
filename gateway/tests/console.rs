//! Browser tests: `/js/c2c-client.js` and the `/console/` pages in headless Chromium
//! (Debian `chromium`, driven by `playwright-core` from `web/`), against the real
//! gateway binary and its bundled LiveKit simulator. This test starts them, drives
//! calls for the analytics, then runs the node test files in `web/tests/` with the
//! URLs and keys in the environment; their output is printed and must pass.
//! `c2c-client-flow.test.mjs` replaces only livekit-client's Room (the simulator has no
//! WebRTC) to drive the client past the join; the CRM webhooks of its calls are
//! checked here, against this process's sink.
//! `tests/run-all.sh` installs chromium and runs `npm ci` in `web/`. Without them the
//! test fails under `CI=true` and is reported as not run elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::calls::{fast_policies, CallEnv};
use common::sink::Sink;
use common::*;
use serde_json::json;

const CONSOLE_KEY: &str = "c2c_MVFatqflX4eiQMbYpIWckdWX2N2SGJ2iWdKu";
const T: Duration = Duration::from_secs(15);
/// The second LiveKit project (tenant `initech`'s own).
const BYO_KEY: &str = "APIinitechown";
const BYO_SECRET: &str = "initech-own-livekit-secret-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_and_client_in_chromium() {
    if !browser::ready() {
        return;
    }
    let host_port = free_port();
    let sink = Sink::start().await;
    let sim_port = free_port();
    let policies = fast_policies("poll", &sink.url, sim_port);
    // The client test's CRM page lives on its own origin, as in production.
    policies.edit(
        "tenants/acme.toml",
        "allowed_origins = [",
        &format!("allowed_origins = [\"http://127.0.0.1:{host_port}\", "),
    );
    // The client-flow tests answer through the browser's report while the simulated
    // callee never answers: the ring must outlast them.
    policies.edit(
        "gateway.toml",
        "ring_timeout_seconds = 5",
        "ring_timeout_seconds = 30",
    );
    // Token refresh: a 40 s agent token that a call outlives (the client refreshes 30 s
    // before expiry), so the call may not end at the fast policies' 10 s.
    policies.edit(
        "gateway.toml",
        "token_ttl_seconds = 3600",
        "token_ttl_seconds = 40",
    );
    policies.edit(
        "gateway.toml",
        "max_duration_seconds = 10",
        "max_duration_seconds = 120",
    );
    // The DLT page's lists: acme scrubs promotional calls (at any hour) against a DND list.
    std::fs::create_dir_all(policies.path().join("dlt")).unwrap();
    policies.write("dlt/acme-dnd.txt", "+919530259901\n9530259902\n");
    policies.edit(
        "tenants/acme.toml",
        "outbound_enabled = true\n",
        "outbound_enabled = true\ncalling_hours = \"00:00-24:00\"\ndnd_file = \"dlt/acme-dnd.txt\"\n",
    );
    // `initech`: a bring-your-own tenant on its own LiveKit project (a second simulator)
    // with a console key, which the editing tests change through the console.
    let byo = livekit_sim::Simulator::start(livekit_sim::SimConfig::new(BYO_KEY, BYO_SECRET))
        .await
        .unwrap();
    std::fs::write(
        policies.path().join("secrets/initech-byo.secret"),
        BYO_SECRET,
    )
    .unwrap();
    let initech_console = c2c_tenancy::keys::mint();
    policies.write(
        "tenants/initech.toml",
        &format!(
            "id = \"initech\"\nname = \"Initech\"\nregion = \"singapore\"\n\n\
             [[api_keys]]\nid = \"initech-console\"\nsha256 = \"{}\"\nscopes = [\"console\"]\n\n\
             [livekit]\nurl = \"{}\"\napi_key = \"{BYO_KEY}\"\n\
             api_secret_file = \"secrets/initech-byo.secret\"\n\n\
             [crm_webhook]\nurl = \"{}\"\n\
             outbound_key_file = \"secrets/globex-crm-outbound.key\"\n\n\
             [dlt]\nprincipal_entity_id = \"1101555\"\noutbound_enabled = true\n\n\
             [[trunks]]\nlabel = \"own-sip\"\nlivekit_trunk_id = \"ST_own\"\n\
             default_did = \"+919876500000\"\ncarrier = \"sip:127.0.0.1:5090\"\ndefault = true\n",
            initech_console.sha256_hex,
            byo.url(),
            sink.url
        ),
    );
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(policies.path(), data.path());
    let env = CallEnv {
        policies,
        data,
        gw,
        sink,
        sim: format!("http://127.0.0.1:{sim_port}"),
        c: client(),
    };

    // Calls for the analytics page: one answered, one failed with 486 Busy Here.
    env.scenario("9000000201", json!({"ring_after_ms": 50, "outcome": {"kind": "answer", "after_ms": 100, "hangup_after_ms": 300}})).await;
    env.scenario(
        "9000000486",
        json!({"ring_after_ms": 50, "outcome": {"kind": "fail", "sip_code": 486, "after_ms": 100}}),
    )
    .await;
    for n in ["9000000201", "9000000486"] {
        let (id, _) = env.start_call(n).await;
        env.wait_status(&id, "ENDED", T).await;
    }
    // And one the agent cancels before /connect: counted apart from carrier failures.
    let (s, v) = env.click2call("9000000777").await;
    assert_eq!(s, 200, "{v}");
    let cancelled = v["call_id"].as_str().unwrap().to_string();
    env.hang_up(&cancelled).await;
    let driven = json!({
        "date": chrono::Utc::now().format("%Y-%m-%d").to_string(),
        "total": 3, "answered": 1, "sip486": 1, "agent_cancelled": 1,
    });

    let shots = browser::shots();
    // Calls of the client-flow tests whose CRM webhook is checked here (the sink lives
    // in this process).
    let flow_out = env.data.path().join("flow-calls.json");
    // The Sandbox's inbound calls, whose CRM webhooks are checked here too.
    let inbound_out = env.data.path().join("inbound-calls.json");
    let path = |p: &Path| p.display().to_string();
    browser::run_node_tests(
        &[
            "tests/console.test.mjs",
            "tests/c2c-client.test.mjs",
            "tests/c2c-client-flow.test.mjs",
            "tests/presence.test.mjs",
            "tests/console-edit.test.mjs",
        ],
        &[
            ("C2C_BASE", env.gw.base.clone()),
            ("C2C_SIM", env.sim.clone()),
            ("C2C_CALLS_KEY", ACME_KEY.into()),
            ("C2C_CONSOLE_KEY", CONSOLE_KEY.into()),
            ("C2C_OWNER_KEY", OWNER_KEY.into()),
            ("C2C_BYO_CONSOLE_KEY", initech_console.key.clone()),
            ("C2C_BYO_URL", byo.url()),
            ("C2C_BYO_KEY", BYO_KEY.into()),
            ("C2C_BYO_SECRET", BYO_SECRET.into()),
            ("C2C_HOST_PORT", host_port.to_string()),
            (
                "C2C_SECRETS",
                serde_json::to_string(&browser::secrets(env.policies.path())).unwrap(),
            ),
            ("C2C_DRIVEN", driven.to_string()),
            ("C2C_GATEWAY_LOG", path(&env.gw.log)),
            ("C2C_FLOW_OUT", path(&flow_out)),
            ("C2C_INBOUND_OUT", path(&inbound_out)),
        ],
        || format!("--- gateway log ---\n{}", env.gw.log_text()),
    );
    for name in [
        "console-trunks",
        "console-analytics",
        "console-guide",
        "console-settings",
        "console-sandbox-ended",
        "client-flow-active",
        "client-flow-customer-drop",
        "console-sandbox-fake-room-ended",
        "presence-pill",
        "console-agents",
        "client-token-refreshed",
        "console-sandbox-inbound-missed",
        "console-sandbox-inbound-active",
        "console-sandbox-inbound",
        "console-analytics-inbound",
        "console-settings-edit",
        "console-trunks-edit",
    ] {
        assert!(shots.join(format!("{name}.png")).exists(), "{name}.png");
    }
    // Calls the browser ended after its ANSWERED report: the CRM got exactly one
    // webhook each, ANSWERED.
    let flow: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&flow_out).expect("flow-calls.json"))
            .unwrap();
    for which in ["customer_drop", "sandbox"] {
        let id = flow[which]
            .as_str()
            .unwrap_or_else(|| panic!("{which}: {flow}"));
        let end = std::time::Instant::now() + T;
        while env.sink.for_call(id).is_empty() && std::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Long enough for a duplicate (a retry or a second finalizer) to show up.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let got = env.sink.for_call(id);
        assert_eq!(got.len(), 1, "{which}: webhooks for {id}: {got:?}");
        assert_eq!(
            got[0].body["call_status"], "ANSWERED",
            "{which}: {:?}",
            got[0]
        );
    }
    // The Sandbox's inbound calls (the simulator as the carrier): one inbound webhook
    // each, as the preview showed it.
    let inbound: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&inbound_out).expect("inbound-calls.json"))
            .unwrap();
    for (which, status, agent) in [
        ("missed", "MISSED", ""),
        ("answered", "ANSWERED", "console-sandbox"),
    ] {
        let id = inbound[which]
            .as_str()
            .unwrap_or_else(|| panic!("{which}: {inbound}"));
        let end = std::time::Instant::now() + T;
        while env.sink.for_call(id).is_empty() && std::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let got = env.sink.for_call(id);
        assert_eq!(got.len(), 1, "{which}: webhooks for {id}: {got:?}");
        let b = &got[0].body;
        assert_eq!(
            (&b["direction"], &b["call_status"], &b["agent_id"]),
            (&json!("inbound"), &json!(status), &json!(agent)),
            "{which}: {b}"
        );
    }
}

/// The committed `web/dist` is exactly what the sources and lockfile build.
#[test]
fn committed_web_dist_is_reproducible() {
    if !browser::ready() {
        return;
    }
    let out = Command::new("node")
        .current_dir(browser::repo().join("web"))
        .args(["build.mjs", "--check"])
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Console endpoints: who may see what. No browser needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_api_scopes_and_tenant_isolation() {
    let env = CallEnv::start("poll").await;
    let get = |path: &str, key: &str| {
        let r = env.c.get(env.gw.url(path)).header("x-api-key", key).send();
        async move { json(r.await.unwrap()).await }
    };
    // The console key: its own tenant only; the CRM's calls key: not the console.
    let (s, v) = get("/api/c2c/console/session", CONSOLE_KEY).await;
    assert_eq!((s, v["role"].as_str()), (200, Some("tenant")), "{v}");
    assert_eq!(v["tenants"], json!([{"id": "acme", "name": "Acme Realty"}]));
    assert_eq!(get("/api/c2c/console/session", ACME_KEY).await.0, 403);
    assert_eq!(
        get("/api/c2c/console/tenants/globex", CONSOLE_KEY).await.0,
        403
    );
    let (s, v) = get("/api/c2c/console/session", OWNER_KEY).await;
    assert_eq!((s, v["role"].as_str()), (200, Some("owner")));
    assert!(v["tenants"].as_array().unwrap().len() >= 2, "{v}");
    // Effective policy: secrets masked, never their values.
    let (s, v) = get("/api/c2c/console/tenants/acme", OWNER_KEY).await;
    assert_eq!(s, 200, "{v}");
    let text = v.to_string();
    for secret in browser::secrets(env.policies.path()) {
        assert!(!text.contains(&secret), "a secret leaked: {text}");
    }
    assert_eq!(
        v["settings"]["crm_webhook"]["outbound_key"],
        "•••••••• (set)"
    );
    assert_eq!(v["trunks"][0]["prefix"], "9911");
    assert_eq!(
        v["guide"]["ws_url"],
        env.gw.base.replace("http://", "ws://")
    );
    // A console key places sandbox calls; the call's trunk view is its tenant's only.
    let r = env
        .c
        .post(env.gw.url("/api/c2c/click2call"))
        .header("x-api-key", CONSOLE_KEY)
        .json(&json!({"case_id": "c", "customer_number": "9530251797", "agent_id": "a", "customer_crm_id": "x"}))
        .send()
        .await
        .unwrap();
    let (s, call) = json(r).await;
    assert_eq!(s, 200, "{call}");
    let id = call["call_id"].as_str().unwrap();
    let (s, v) = get(&format!("/api/c2c/console/calls/{id}"), CONSOLE_KEY).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["trunk"]["dialed"], "99119530251797");
    assert_eq!(v["webhook"], json!(null), "no webhook before the call ends");
    env.post(&format!("/api/c2c/calls/{id}/hangup")).await;
    let (_, v) = get(&format!("/api/c2c/console/calls/{id}"), CONSOLE_KEY).await;
    let body: serde_json::Value =
        serde_json::from_str(v["webhook"]["body_json"].as_str().unwrap()).unwrap();
    assert_eq!(body["phone_to"], "9530251797");
    assert!(v["webhook"]["body_json"]
        .as_str()
        .unwrap()
        .starts_with("{\"call_id\":"));
    // Live LiveKit check against the simulator: valid.
    let r = env
        .c
        .post(env.gw.url("/api/c2c/console/tenants/acme/livekit-validate"))
        .header("x-api-key", OWNER_KEY)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (s, v) = json(r).await;
    assert_eq!((s, &v["ok"]), (200, &json!(true)), "{v}");
}
