//! The console Sandbox's simulator endpoints (`POST .../sandbox/inbound`, `POST
//! /api/c2c/console/calls/{call_id}/sandbox-join`): who may call them, what input they
//! refuse, a test inbound call through the real SIP edge with nobody to answer, a trunk
//! that does not admit the simulator, and `409 simulator_only` without the bundled
//! simulator. The browser flow (the sandbox agent answering) is in `tests/console.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::calls::CallEnv;
use common::*;
use serde_json::{json, Value};

const CONSOLE_KEY: &str = "c2c_MVFatqflX4eiQMbYpIWckdWX2N2SGJ2iWdKu";
const DID: &str = "+918045678901";
/// A number of the other example tenant (added to its policy here).
const GLOBEX_DID: &str = "+918099999999";
const INBOUND: &str = "/api/c2c/console/tenants/acme/sandbox/inbound";

async fn post(env: &CallEnv, path: &str, key: Option<&str>, body: Value) -> (u16, Value) {
    post_to(&env.c, &env.gw, path, key, body).await
}

async fn post_to(
    c: &reqwest::Client,
    gw: &Gateway,
    path: &str,
    key: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut r = c.post(gw.url(path)).json(&body);
    if let Some(k) = key {
        r = r.header("x-api-key", k);
    }
    json(r.send().await.unwrap()).await
}

async fn console_call(env: &CallEnv, id: &str) -> Value {
    let r = env
        .c
        .get(env.gw.url(&format!("/api/c2c/console/calls/{id}")))
        .header("x-api-key", CONSOLE_KEY)
        .send()
        .await
        .unwrap();
    let (s, v) = json(r).await;
    assert_eq!(s, 200, "{v}");
    v
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_inbound_refuses_bad_input_and_calls_the_edge() {
    let env = CallEnv::start_edited("poll", &[], |p| {
        p.edit(
            "tenants/globex.toml",
            "[[trunks]]",
            &format!(
                "[[inbound.numbers]]\ndid = \"{GLOBEX_DID}\"\ntrunk = \"vi-blr\"\n\n[[trunks]]"
            ),
        );
    })
    .await;
    let ok = json!({"did": DID, "hold_seconds": 3});

    // Keys: none 401, the CRM's calls key 403, a console key naming another tenant 403,
    // the owner key on an unknown tenant 404.
    assert_eq!(post(&env, INBOUND, None, ok.clone()).await.0, 401);
    assert_eq!(post(&env, INBOUND, Some(ACME_KEY), ok.clone()).await.0, 403);
    let globex = "/api/c2c/console/tenants/globex/sandbox/inbound";
    let (s, v) = post(&env, globex, Some(CONSOLE_KEY), ok.clone()).await;
    assert_eq!((s, code(&v)), (403, "forbidden"), "{v}");
    let nobody = "/api/c2c/console/tenants/nobody/sandbox/inbound";
    assert_eq!(post(&env, nobody, Some(OWNER_KEY), ok.clone()).await.0, 404);

    // Numbers: unknown, and another tenant's, look the same (the message names the
    // tenant's own numbers, never whose the other one is).
    for did in [
        "+911111111111",
        GLOBEX_DID,
        "8099999999",
        "not a number",
        "",
    ] {
        for key in [CONSOLE_KEY, OWNER_KEY] {
            let (s, v) = post(&env, INBOUND, Some(key), json!({ "did": did })).await;
            assert_eq!((s, code(&v)), (422, "unknown_did"), "{did}: {v}");
            let m = v["error"]["message"].as_str().unwrap();
            assert!(m.contains(DID) && !m.contains("globex"), "{m}");
        }
    }
    // Each tenant's own numbers: globex's is a call on globex (the owner key).
    let (s, v) = post(&env, globex, Some(OWNER_KEY), json!({ "did": GLOBEX_DID })).await;
    assert_eq!((s, &v["did"]), (200, &json!(GLOBEX_DID)), "{v}");
    for (body, want) in [
        (json!({"did": DID, "from": "abc"}), "invalid_number"),
        (
            json!({"did": DID, "from": "+91 98123 45678"}),
            "invalid_number",
        ),
        (json!({"did": DID, "hold_seconds": 0}), "invalid_hold"),
        (json!({"did": DID, "hold_seconds": 31}), "invalid_hold"),
        (json!({"did": DID, "hold_seconds": 2.5}), "invalid_hold"),
        (json!({"did": DID, "hold_seconds": -1}), "invalid_hold"),
    ] {
        let (s, v) = post(&env, INBOUND, Some(CONSOLE_KEY), body.clone()).await;
        assert_eq!((s, code(&v)), (422, want), "{body}: {v}");
    }
    for body in [
        json!({}),
        json!({"did": 5}),
        json!({"did": DID, "hold_seconds": "x"}),
    ] {
        let (s, v) = post(&env, INBOUND, Some(CONSOLE_KEY), body.clone()).await;
        assert_eq!((s, code(&v)), (400, "invalid_json"), "{body}: {v}");
    }
    let r = env
        .c
        .post(env.gw.url(INBOUND))
        .header("x-api-key", CONSOLE_KEY)
        .header("content-type", "text/plain")
        .body(ok.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    // A real test call: the simulator calls the number at the edge; nobody is
    // available, so it ends MISSED no_agent at once. Any Indian shape of the number.
    let (s, v) = post(
        &env,
        INBOUND,
        Some(CONSOLE_KEY),
        json!({"did": "08045678901", "from": "+919800000001"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (&v["did"], &v["from"], &v["hold_seconds"]),
        (&json!(DID), &json!("+919800000001"), &json!(10))
    );
    assert!(!v["sip_call_id"].as_str().unwrap().is_empty());
    let id = v["call_id"].as_str().unwrap().to_owned();
    let mut c = console_call(&env, &id).await;
    for _ in 0..100 {
        if c["webhook"].is_object() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        c = console_call(&env, &id).await;
    }
    assert_eq!(c["direction"], "inbound", "{c}");
    assert_eq!(c["did"], DID);
    assert_eq!(
        c["trunk"],
        Value::Null,
        "no dial string for an inbound call"
    );
    assert_eq!(c["offers"], json!([]));
    assert_eq!(c["lead_id"], Value::Null);
    assert_eq!(
        (
            &c["call"]["status"],
            &c["call"]["call_status"],
            &c["call"]["disconnect_reason"]
        ),
        (&json!("ENDED"), &json!("MISSED"), &json!("no_agent")),
        "{c}"
    );
    assert_eq!(c["call"]["customer_number"], "+919800000001");
    let hook: Value = serde_json::from_str(c["webhook"]["body_json"].as_str().unwrap()).unwrap();
    assert_eq!(
        (&hook["direction"], &hook["phone_to"]),
        (&json!("inbound"), &json!(DID))
    );
    // The console view of an outbound call says so.
    let (s, call) = post(
        &env,
        "/api/c2c/click2call",
        Some(CONSOLE_KEY),
        json!({"case_id": "c", "customer_number": "9530251797", "agent_id": "a", "customer_crm_id": "x"}),
    )
    .await;
    assert_eq!(s, 200, "{call}");
    let out_id = call["call_id"].as_str().unwrap().to_owned();
    let c = console_call(&env, &out_id).await;
    assert_eq!(
        (&c["direction"], &c["did"], &c["offers"]),
        (&json!("outbound"), &Value::Null, &json!([]))
    );

    // sandbox-join: the call's agent joins its room in the simulator with audio.
    let join = |id: &str| format!("/api/c2c/console/calls/{id}/sandbox-join");
    let (s, v) = post(&env, &join(&out_id), Some(CONSOLE_KEY), json!({})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!((&v["identity"], &v["room"]), (&json!("a"), &call["room"]));
    let rooms = env.sim_rooms().await.to_string();
    assert!(rooms.contains(call["room"].as_str().unwrap()), "{rooms}");
    assert_eq!(post(&env, &join(&out_id), None, json!({})).await.0, 401);
    assert_eq!(
        post(&env, &join(&out_id), Some(ACME_KEY), json!({}))
            .await
            .0,
        403
    );
    let unknown = join("c2c_00000000000000000000000000000000");
    assert_eq!(
        post(&env, &unknown, Some(CONSOLE_KEY), json!({})).await.0,
        404
    );
    // Ended calls (the missed inbound one) cannot be joined.
    let (s, v) = post(&env, &join(&id), Some(CONSOLE_KEY), json!({})).await;
    assert_eq!((s, code(&v)), (409, "call_ended"), "{v}");
    env.hang_up(&out_id).await;

    // A trunk that does not admit the simulator's address: the edge refuses the call
    // (403) before anything is stored.
    env.policies.edit(
        "tenants/acme.toml",
        "carrier = \"sip:127.0.0.1:5080\"",
        "carrier = \"sip:127.0.0.1:5080\"\nsources = [\"203.0.113.0/24\"]",
    );
    let mut last = (0, Value::Null);
    for _ in 0..50 {
        last = post(&env, INBOUND, Some(CONSOLE_KEY), json!({"did": DID})).await;
        if last.0 == 409 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (s, v) = last;
    assert_eq!((s, code(&v)), (409, "inbound_refused"), "{v}");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.contains("403") && m.contains("127.0.0.1"), "{m}");
}

/// Against a LiveKit that is not the bundled simulator, both endpoints say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_endpoints_need_the_bundled_simulator() {
    let sink = common::sink::Sink::start().await;
    let sim_port = free_port();
    let policies = common::calls::fast_policies("poll", &sink.url, sim_port);
    let secret = std::fs::read_to_string(policies.path().join("secrets/livekit-sim.secret"))
        .unwrap()
        .trim()
        .to_owned();
    // The platform project is a simulator outside the gateway, not the bundled one.
    let mut config = livekit_sim::SimConfig::new("APIsimdev", secret);
    config.listen = format!("127.0.0.1:{sim_port}");
    let sim = livekit_sim::Simulator::start(config).await.unwrap();
    policies.edit(
        "gateway.toml",
        "url = \"sim\"",
        &format!("url = \"http://127.0.0.1:{sim_port}\""),
    );
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(policies.path(), data.path());
    let c = client();

    let (s, v) = post_to(&c, &gw, INBOUND, Some(CONSOLE_KEY), json!({ "did": DID })).await;
    assert_eq!((s, code(&v)), (409, "simulator_only"), "{v}");
    let click = json!({"case_id": "c", "customer_number": "9530251797", "agent_id": "a", "customer_crm_id": "x"});
    let (s, call) = post_to(&c, &gw, "/api/c2c/click2call", Some(ACME_KEY), click).await;
    assert_eq!(s, 200, "{call}");
    let id = call["call_id"].as_str().unwrap();
    let path = format!("/api/c2c/console/calls/{id}/sandbox-join");
    let (s, v) = post_to(&c, &gw, &path, Some(CONSOLE_KEY), json!({})).await;
    assert_eq!((s, code(&v)), (409, "simulator_only"), "{v}");
    drop(gw);
    sim.shutdown().await;
}
