//! Logs an operator can follow a call by: one access line per API request at info
//! (route, status, tenant, key id — never the key — latency), and every line about a
//! call, background work included, carrying its `call_id`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::sink::Sink;
use common::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(15);

/// The gateway's JSON log lines.
fn lines(gw: &Gateway) -> Vec<Value> {
    gw.log_text()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The `call_id` of the `call` span a line was written in, if any.
fn span_call_id(line: &Value) -> Option<&str> {
    line["spans"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == "call")?["call_id"]
        .as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_lines_and_call_lines_carry_who_and_which_call() {
    let sink = Sink::start().await;
    let sim_port = free_port();
    let p = common::calls::fast_policies("poll", &sink.url, sim_port);
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start_with_env(p.path(), data.path(), &[("C2C_LOG_FORMAT", "json")]);
    let sim = format!("http://127.0.0.1:{sim_port}");
    let c = client();
    // A busy customer: the dial's outcome is applied in the background.
    let r = c
        .post(format!("{sim}/sim/scenarios"))
        .json(&json!({"number": "9530251797", "scenario": {"ring_after_ms": 100, "outcome": {"kind": "fail", "sip_code": 486, "after_ms": 300}}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (s, v) = json(
        c.post(gw.url("/api/c2c/click2call"))
            .header("x-api-key", ACME_KEY)
            .json(&json!({"case_id": "case-1", "customer_number": "9530251797", "agent_id": "agent-42", "customer_crm_id": "cust-99"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let call_id = v["call_id"].as_str().unwrap().to_string();
    let room = v["room"].as_str().unwrap();
    c.post(format!("{sim}/sim/rooms/{room}/join"))
        .json(&json!({"identity": "agent-42"}))
        .send()
        .await
        .unwrap();
    let (s, _) = json(
        c.post(gw.url(&format!("/api/c2c/calls/{call_id}/connect")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    assert!(eventually(T, || async { !sink.for_call(&call_id).is_empty() }).await);
    // Probes stay out of the info log.
    c.get(gw.url("/readyz")).send().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let log = lines(&gw);
    let raw = gw.log_text();
    assert!(!raw.contains(ACME_KEY), "the key reached the log");
    let access = |route: &str| {
        log.iter()
            .find(|l| l["message"] == "request" && l["route"] == route)
            .unwrap_or_else(|| panic!("no access line for {route}:\n{raw}"))
            .clone()
    };
    let c2c = access("click2call");
    assert_eq!(c2c["level"], "INFO");
    assert_eq!(c2c["status"], 200);
    assert_eq!(c2c["tenant"], "acme");
    assert_eq!(c2c["key_id"], "acme-k2");
    assert!(c2c["elapsed_ms"].as_f64().is_some(), "{c2c}");
    let connect = access("call_connect");
    assert_eq!(connect["call_id"], call_id.as_str());
    assert_eq!(connect["tenant"], "acme");
    assert!(
        !log.iter()
            .any(|l| l["message"] == "request" && l["route"] == "readyz" && l["level"] == "INFO"),
        "probes must log at debug"
    );
    // Lines about the call, from the request and from background work, carry its id.
    for message in ["call created", "dial ended without answer"] {
        let line = log
            .iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} line:\n{raw}"));
        assert_eq!(span_call_id(line), Some(call_id.as_str()), "{line}");
    }
}
