//! Managed calls paid from one wallet by a fleet of two gateways on PostgreSQL
//! (`billing.charge_calls = true`; acme's default trunk bills 2 paise a second, a call
//! holds 120 paise from `/connect`): holds placed on one node are seen by the other, a
//! call created on A and ended on B is charged once, and calls whose node is killed
//! (kill -9) mid-call are finished and charged once by the node that takes them over.
//!
//! Real parts: the `c2c-gateway` binary twice, a Debian PostgreSQL cluster, the LiveKit
//! simulator in this process (it outlives a killed node), a CRM webhook receiver.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::fleet::*;
use common::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(20);

async fn wallet(env: &FleetEnv, gw: &Gateway) -> Value {
    let (s, v) = json(
        env.c
            .get(gw.url("/api/c2c/wallet?limit=1000"))
            .header("x-api-key", ACME_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v
}

fn hold_ids(w: &Value) -> Vec<String> {
    w["holds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["call_id"].as_str().unwrap().to_owned())
        .collect()
}

fn charges_of(w: &Value, call_id: &str) -> usize {
    w["statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "call_charge" && e["call_id"] == call_id)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_charges_each_call_once_across_nodes_and_a_kill_9() {
    let mut env = FleetEnv::start_edited(|p| {
        p.edit(
            "gateway.toml",
            "charge_calls = false",
            "charge_calls = true",
        );
    })
    .await;
    let (s, v) = json(
        env.c
            .post(env.a().url("/api/c2c/owner/tenants/acme/wallet/entries"))
            .header("x-api-key", OWNER_KEY)
            .json(&json!({"kind": "top_up", "amount_paise": 1_000, "reason": "fleet", "request_id": "f-1"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    // Call 1: created and connected on A, answered, hung up on B.
    let (a, b) = (env.a(), env.b());
    let (first, _) = env.start_call(a, a, "9000000011").await;
    env.wait_status(a, &first, "ACTIVE", T).await;
    // A's hold is B's to see: one wallet, one store.
    assert_eq!(hold_ids(&wallet(&env, b).await), vec![first.clone()]);
    let (s, v) = env.hangup(b, &first).await;
    assert_eq!(s, 200, "{v}");
    env.wait_status(b, &first, "ENDED", T).await;
    // Calls 2 and 3 run on A; A dies with them.
    let (second, second_room) = env.start_call(a, a, "9000000012").await;
    let (third, third_room) = env.start_call(a, a, "9000000013").await;
    for id in [&second, &third] {
        env.wait_status(a, id, "ACTIVE", T).await;
    }
    blocking(|| env.nodes[0].kill9());
    let b = env.b();
    // B takes them over after the lease; the agents leave, B ends them.
    tokio::time::sleep(LEASE + CLAIM_EVERY).await;
    for room in [&second_room, &third_room] {
        env.sim.leave(room, AGENT).unwrap();
    }
    for id in [&second, &third] {
        let v = env.wait_status(b, id, "ENDED", T).await;
        assert_eq!(v["call_status"], "ANSWERED", "{v}");
    }
    // Every hold released, each call charged exactly once, the ledger adds up.
    let done = eventually(T, || async { hold_ids(&wallet(&env, b).await).is_empty() }).await;
    let w = wallet(&env, b).await;
    assert!(done, "holds left: {w}\n{}", env.logs());
    for id in [&first, &second, &third] {
        assert_eq!(charges_of(&w, id), 1, "{id}: {w}");
    }
    let spent: i64 = w["statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "call_charge")
        .map(|e| -e["amount_paise"].as_i64().unwrap())
        .sum();
    assert!(spent > 0, "{w}");
    assert_eq!(w["balance_paise"], 1_000 - spent, "{w}");
    assert_eq!(w["entries"], 4, "a top-up and three charges: {w}");
}
