//! The OpenAPI document (`GET /openapi.json`): served by the real binary, parseable,
//! covering every route of the route table; and the gateway keeps to it when
//! schemathesis fuzzes every operation (positive and negative data, stateful call flows
//! over the inferred links) against a live gateway with the bundled LiveKit simulator.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use c2c_gateway::routes;
use common::sink::Sink;
use common::*;
use serde_json::Value;

/// The example policies' console key for tenant `acme` (scope `console`).
const CONSOLE_KEY: &str = "c2c_MVFatqflX4eiQMbYpIWckdWX2N2SGJ2iWdKu";

/// Every `(method, path)` the route table answers, as the document must list them.
fn table_operations() -> Vec<(String, String, &'static str)> {
    routes::entries()
        .map(|(m, p, r)| (m.as_str().to_ascii_lowercase(), p, r.name))
        .collect()
}

async fn fetch_doc(c: &reqwest::Client, gw: &Gateway) -> (Vec<u8>, Value) {
    let r = c.get(gw.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let bytes = r.bytes().await.unwrap().to_vec();
    let v: Value = serde_json::from_slice(&bytes).expect("/openapi.json is JSON");
    (bytes, v)
}

#[tokio::test]
async fn document_is_served_and_lists_every_route() {
    let policies = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(policies.path(), data.path());
    let c = client();
    // Public: no key needed; built once, so two fetches are byte-identical.
    let (first, doc) = fetch_doc(&c, &gw).await;
    let (second, _) = fetch_doc(&c, &gw).await;
    assert_eq!(first, second);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));

    let mut missing = Vec::new();
    for (method, path, name) in table_operations() {
        if !doc["paths"][&path][&method].is_object() {
            missing.push(format!("{method} {path} ({name})"));
        }
    }
    assert!(missing.is_empty(), "undocumented routes: {missing:?}");

    // The contract as the integration guide spells it.
    let s = &doc["components"]["schemas"];
    let mut required: Vec<&str> = s["Click2CallRequest"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    required.sort();
    assert_eq!(
        required,
        ["agent_id", "case_id", "customer_crm_id", "customer_number"]
    );
    assert_eq!(
        s["CallStatus"]["enum"],
        serde_json::json!(["ANSWERED", "NOT_ANSWERED", "FAILED"])
    );
    assert_eq!(
        s["Phase"]["enum"],
        serde_json::json!(["INITIATED", "DIALING", "RINGING", "ACTIVE", "ENDED"])
    );
    assert_eq!(
        doc["webhooks"]["crmCallOutcome"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/CrmWebhookPayload"
    );
    let schemes = &doc["components"]["securitySchemes"];
    for k in ["tenant_key", "console_key", "owner_key"] {
        assert_eq!(schemes[k]["name"], "X-api-key", "{k}");
        assert_eq!(schemes[k]["in"], "header", "{k}");
    }
    let click = &doc["paths"]["/api/c2c/click2call"]["post"];
    assert_eq!(
        click["security"],
        serde_json::json!([{"tenant_key": []}, {"console_key": []}])
    );
    for status in [
        "200", "400", "401", "403", "409", "413", "415", "422", "429", "503",
    ] {
        assert!(
            click["responses"][status].is_object(),
            "click2call {status}"
        );
    }
    // Browser endpoints carry no key.
    assert!(doc["paths"]["/api/c2c/calls/{call_id}/connect"]["post"]
        .get("security")
        .is_none());
    let owner = &doc["paths"]["/api/telephony/config/owner/{tenant}/outbound-enable"]["post"];
    assert_eq!(owner["security"], serde_json::json!([{"owner_key": []}]));
    // The console: its own key or the owner's; typed bodies; assets are not JSON.
    let tenant = &doc["paths"]["/api/c2c/console/tenants/{tenant}"]["get"];
    assert_eq!(
        tenant["security"],
        serde_json::json!([{"console_key": []}, {"owner_key": []}])
    );
    assert_eq!(
        tenant["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ConsoleTenant"
    );
    assert_eq!(
        s["Masked"]["enum"],
        serde_json::json!(["(empty)", "•••••••• (set)"])
    );
    let js = &doc["paths"]["/js/c2c-client.js"]["get"];
    assert!(js.get("security").is_none());
    assert!(js["responses"]["200"]["content"]["text/javascript"].is_object());
    assert!(js["responses"]["304"].is_object());
}

/// Where the schemathesis CLI is: `C2C_SCHEMATHESIS`, the venv tests/install-schemathesis.sh
/// makes under target/, or `schemathesis` on PATH.
fn schemathesis() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("C2C_SCHEMATHESIS") {
        return Some(PathBuf::from(p));
    }
    let venv =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/schemathesis-venv/bin/schemathesis");
    if venv.is_file() {
        return Some(venv);
    }
    let on_path = Command::new("schemathesis")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    on_path.then(|| PathBuf::from("schemathesis"))
}

/// Appends a `[limits]` table to a policy file.
fn append(policies: &Policies, file: &str, text: &str) {
    let p = policies.path().join(file);
    let s = std::fs::read_to_string(&p).unwrap();
    policies.write(file, &format!("{s}\n{text}\n"));
}

/// Whole run, gateway start to verdict, stays under three minutes.
const FUZZ_SECONDS: u64 = 100;
const HARD_LIMIT: Duration = Duration::from_secs(160);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_drift() {
    let Some(st) = schemathesis() else {
        let msg = "schemathesis is not installed: run tests/install-schemathesis.sh";
        // CI must run this test, never silently skip it.
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("SKIPPED: {msg}");
        return;
    };
    let sink = Sink::start().await;
    let sim_port = free_port();
    let policies = common::calls::fast_policies("poll", &sink.url, sim_port);
    // The rate limits (50 rps) would answer a fuzzer with 429s: lift them; the
    // concurrent-call cap too, since every accepted click2call opens a call.
    append(
        &policies,
        "gateway.toml",
        "[limits]\nper_ip_requests_per_second = 1000000",
    );
    append(
        &policies,
        "tenants/acme.toml",
        "[limits]\nrequests_per_second = 100000\nmax_concurrent_calls = 1000000",
    );
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(policies.path(), data.path());
    let (_, doc) = fetch_doc(&client(), &gw).await;
    // Every operation but the document itself, which schemathesis leaves out.
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(path, _)| *path != "/openapi.json")
        .map(|(_, item)| item.as_object().unwrap().len())
        .sum();

    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            r#"# An operation whose only input is its key (GET /api/c2c/console/session) leaves
# the generator nothing to vary: no negative case can be built and every positive one
# repeats a request already sent, so Hypothesis' filter health check trips. That is
# a limit of data generation, not a finding about the API.
suppress-health-check = ["filter_too_much"]

# Keys of the example policies, one per security scheme of the document.
[auth.openapi.tenant_key]
api_key = "{ACME_KEY}"
[auth.openapi.console_key]
api_key = "{CONSOLE_KEY}"
[auth.openapi.owner_key]
api_key = "{OWNER_KEY}"

# Schema-valid data may still fail the gateway's semantic checks (a date range over
# 92 days, a number that is not an Indian mobile, an unknown trunk): those are 422s
# with the documented error shape, not rejected-by-mistake requests. An asset answers
# 304 when a generated If-None-Match happens to be `*`. The presence socket's path
# answers 426 to anything but a WebSocket handshake, which an HTTP fuzzer cannot make
# (gateway/tests/agents.rs opens real sockets).
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "304", "401", "403", "404", "409", "422", "426", "429"]
"#
        ),
    )
    .unwrap();
    let seed = std::env::var("C2C_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261121".into());
    let out_path = work.path().join("schemathesis.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let started = Instant::now();
    let mut child = Command::new(&st)
        .current_dir(work.path())
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(gw.url("/openapi.json"))
        .args(["--checks", "all"])
        .args(["--max-examples", "25"])
        .args(["--max-time", &FUZZ_SECONDS.to_string()])
        .args(["--request-timeout", "10"])
        .args(["--seed", &seed])
        .args(["--generation-database", "none"])
        .arg("--no-color")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", st.display()));
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > HARD_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let report = || {
        format!(
            "--- schemathesis (seed {seed}) ---\n{output}\n--- gateway log (tail) ---\n{}",
            tail(&gw.log_text(), 80)
        )
    };
    let Some(status) = status else {
        panic!("schemathesis ran past {HARD_LIMIT:?}\n{}", report());
    };
    assert!(
        status.success(),
        "schemathesis failed: {status}\n{}",
        report()
    );
    // It really exercised the whole document.
    assert!(
        output.contains(&format!("Tested: {operations}")),
        "schemathesis did not test all {operations} operations\n{}",
        report()
    );
    eprintln!(
        "schemathesis: {operations} operations, {:.0?}\n{}",
        started.elapsed(),
        tail(&output, 25)
    );
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}
