//! More of the fleet (issue 22) with real parts: an inbound call whose carrier INVITE
//! died with the node holding it is ended `MISSED gateway_restarted` by the node that
//! takes it over, and a node stopped cleanly (SIGTERM) gives its lease up so another
//! node takes its calls over at once instead of after the lease.
//!
//! Two `c2c-gateway` processes on one Debian PostgreSQL cluster, the LiveKit simulator
//! in this process, a CRM webhook receiver, sipp as the carrier and agents as real
//! presence WebSocket clients.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::fleet::*;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const T: Duration = Duration::from_secs(20);
const TAKEN_OVER: &str = "c2c_fleet_calls_taken_over_total";
/// The example's DID on the `airtel-mum` trunk, whose carrier is 127.0.0.1.
const DID: &str = "+918045678901";
const CALLER: &str = "+919812345678";

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// sipp as the carrier: one call of `scenario` to the DID at the SIP edge `edge`.
fn carrier(
    edge: std::net::SocketAddr,
    scenario: &str,
    dir: &std::path::Path,
) -> tokio::process::Child {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(scenario);
    tokio::process::Command::new("sipp")
        .arg(edge.to_string())
        .arg("-sf")
        .arg(&path)
        .args(["-s", DID, "-i", "127.0.0.1", "-p"])
        .arg(free_udp_port().to_string())
        .args(["-t", "u1", "-nostdin", "-timeout", "40", "-timeout_error"])
        .args(["-m", "1"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp (apt-get install sip-tester)")
}

/// Agent `id` of acme, registered through `gw`, with a presence session on `gw`, available.
async fn agent_on(env: &FleetEnv, gw: &Gateway, id: &str) -> Ws {
    let r = env
        .c
        .put(gw.url(&format!("/api/c2c/agents/{id}")))
        .header("x-api-key", ACME_KEY)
        .json(&json!({"name": id, "telephony_enabled": true}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "put agent: {}", r.status());
    let (s, tok) = json(
        env.c
            .post(gw.url(&format!("/api/c2c/agents/{id}/session")))
            .header("x-api-key", ACME_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{tok}");
    let url = format!("ws://127.0.0.1:{}/api/c2c/agents/presence", gw.port);
    let mut ws = tokio_tungstenite::connect_async(url).await.unwrap().0;
    send(&mut ws, json!({"type": "auth", "token": tok["token"]})).await;
    assert_eq!(next_of(&mut ws, "ready").await["type"], "ready");
    send(
        &mut ws,
        json!({"type": "set_availability", "availability": "available"}),
    )
    .await;
    let f = next_of(&mut ws, "availability").await;
    assert_eq!(f["availability"], "available", "{f}");
    ws
}

/// The owner's view of a call (direction, offers) on `gw`.
async fn owner_call(env: &FleetEnv, gw: &Gateway, call_id: &str) -> Value {
    let r = env
        .c
        .get(gw.url(&format!("/api/c2c/owner/calls/{call_id}")))
        .header("x-api-key", OWNER_KEY)
        .send()
        .await
        .unwrap();
    let (s, v) = json(r).await;
    assert_eq!(s, 200, "{v}");
    v
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// Frames until one of `kind` (other events are skipped); a closed socket fails.
async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} frame in time"));
        match m {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == kind {
                    return v;
                }
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                panic!("presence socket closed before a {kind} frame")
            }
            Some(Ok(_)) => {}
        }
    }
}

/// A carrier dials the DID at node A's SIP edge and A offers the call to an agent
/// connected to A; A is killed (-9) before anyone accepts. The caller's INVITE died
/// with A, so B, taking A's calls over after the lease, ends the call MISSED
/// `gateway_restarted` at once (not at the 60 s ring backstop), and the CRM gets one
/// inbound webhook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_call_held_by_a_dead_node_ends_missed_on_the_node_taking_over() {
    let mut env = FleetEnv::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut ws = agent_on(&env, env.a(), "a1").await;
    let sipp = carrier(env.sip[0], "inbound_ring.xml", dir.path());
    let inc = next_of(&mut ws, "incoming").await;
    assert_eq!(
        (inc["from"].as_str(), inc["to"].as_str()),
        (Some(CALLER), Some(DID)),
        "{inc}"
    );
    let call_id = inc["call_id"].as_str().unwrap().to_owned();
    // Stored in the shared store: B sees it ringing before A dies.
    env.wait_status(env.b(), &call_id, "RINGING", T).await;
    blocking(|| env.nodes[0].kill9());
    drop(ws);
    let b = env.b();
    let missed = time_until(LEASE * 4, || async {
        env.get_call(b, &call_id).await.1["status"] == "ENDED"
    })
    .await;
    let missed = missed.unwrap_or_else(|| panic!("B never ended {call_id}\n{}", env.logs()));
    println!("inbound call MISSED on B {missed:?} after kill -9 of node A (lease {LEASE:?})");
    assert!(
        missed >= LEASE / 2,
        "ended before A's lease could have run out: {missed:?}"
    );
    assert!(
        missed <= LEASE + CLAIM_EVERY + Duration::from_millis(1000),
        "ended {missed:?} after the kill"
    );
    assert_eq!(env.metric(b, TAKEN_OVER).await, 1.0);
    let (s, v) = env.get_call(b, &call_id).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (&v["call_status"], &v["disconnect_reason"]),
        (&json!("MISSED"), &json!("gateway_restarted")),
        "{v}"
    );
    env.wait_webhooks(std::slice::from_ref(&call_id), T).await;
    let w = env.one_webhook(&call_id);
    // The owner's record: the one offer to a1 closed when the call ended on B, and the
    // webhook B queued is the one the CRM got.
    let owner = owner_call(&env, b, &call_id).await;
    let rec = &owner["call"];
    assert_eq!(
        (&rec["direction"], &rec["disconnect_reason"]),
        (&json!("inbound"), &json!("gateway_restarted")),
        "{owner}"
    );
    let offers: Vec<(&Value, &Value)> = rec["offers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (&o["agent_id"], &o["outcome"]))
        .collect();
    assert_eq!(offers, [(&json!("a1"), &json!("cancelled"))], "{owner}");
    assert_eq!(owner["webhook"]["state"], "delivered", "{owner}");
    assert_eq!(
        owner["webhook"]["webhook_id"].as_str(),
        Some(w.headers["webhook-id"].as_str()),
        "{owner}"
    );
    assert_eq!(
        (&w.body["direction"], &w.body["call_status"]),
        (&json!("inbound"), &json!("MISSED")),
        "{}",
        w.body
    );
    assert_eq!(
        (w.body["phone_from"].as_str(), w.body["phone_to"].as_str()),
        (Some(CALLER), Some(DID)),
        "{}",
        w.body
    );
    assert_eq!(w.body["agent_id"], "", "nobody answered: {}", w.body);
    // The carrier still waits for a final answer the dead edge will never send.
    drop(sipp);
}

/// A node driving an answered call is stopped with SIGTERM: after the drain it gives
/// its lease up, so B takes the call over within a claim round, long before the lease
/// could have run out; the call then ends normally through B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_hands_the_calls_over_at_once() {
    // A long lease, so that a take-over on expiry could not pass for the hand-over;
    // calls long enough to outlive the stop.
    const LONG_LEASE: Duration = Duration::from_secs(9);
    const DRAIN: Duration = Duration::from_secs(1);
    let mut env = FleetEnv::start_edited(|p| {
        p.edit(
            "gateway.toml",
            &format!("lease_ms = {}", LEASE.as_millis()),
            &format!("lease_ms = {}", LONG_LEASE.as_millis()),
        );
        p.edit(
            "gateway.toml",
            "max_duration_seconds = 10",
            "max_duration_seconds = 120",
        );
        // The drain (set by the harness; asserted here as the tests rely on it).
        let gw = std::fs::read_to_string(p.path().join("gateway.toml")).unwrap();
        assert!(
            gw.contains(&format!("grace_period_seconds = {}", DRAIN.as_secs())),
            "{gw}"
        );
    })
    .await;
    let a = env.a();
    let (call_id, room) = env.start_call(a, a, "9530251797").await;
    env.wait_status(a, &call_id, "ACTIVE", T).await;
    let t0 = Instant::now();
    a.send_sigterm();
    let took = time_until(T, || async { env.metric(env.b(), TAKEN_OVER).await >= 1.0 }).await;
    let took = took.unwrap_or_else(|| panic!("B never took A's call over\n{}", env.logs()));
    let status = blocking(|| env.nodes[0].wait_exit());
    let exited = t0.elapsed();
    assert!(status.success(), "node A exited {status}\n{}", env.logs());
    println!(
        "SIGTERM of node A: taken over by B {took:?} after the signal, A exited after \
         {exited:?} (drain {DRAIN:?}, lease {LONG_LEASE:?})"
    );
    // A keeps its calls through the drain; it renewed its lease at most a third of the
    // lease before the drain ended, so the lease could not run out before two thirds of
    // it after the drain.
    assert!(took >= DRAIN, "taken over during the drain: {took:?}");
    assert!(
        took <= DRAIN + CLAIM_EVERY + Duration::from_millis(1500),
        "hand-over took {took:?}"
    );
    assert!(took + LONG_LEASE / 3 < DRAIN + LONG_LEASE * 2 / 3);
    assert!(
        env.a().log_text().contains("fleet: lease given up"),
        "{}",
        env.logs()
    );
    // The call goes on through B: the agent leaves, and after the 1 s grace B ends it.
    let b = env.b();
    assert_eq!(env.get_call(b, &call_id).await.1["status"], "ACTIVE");
    env.sim.leave(&room, AGENT).unwrap();
    let v = env.wait_status(b, &call_id, "ENDED", T).await;
    assert_eq!(
        (&v["call_status"], &v["disconnect_reason"]),
        (&json!("ANSWERED"), &json!("agent_dropped")),
        "{v}"
    );
    env.wait_webhooks(std::slice::from_ref(&call_id), T).await;
    let w = env.one_webhook(&call_id);
    assert_eq!(w.body["call_status"], "ANSWERED", "{}", w.body);
    assert!(
        eventually(T, || async { !env.room_open(&room) }).await,
        "room left open\n{}",
        env.logs()
    );
    // Taken over once: A did not drive it again after giving its lease up.
    assert_eq!(env.metric(b, TAKEN_OVER).await, 1.0);
}

/// One call at a time per agent holds fleet-wide: a registered agent's two calls,
/// connected on two nodes at the same instant, dial once; the other is `409
/// agent_busy` with nothing dialled, and goes through once the first one hung up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_agent_two_nodes_same_instant_dials_once() {
    let env = FleetEnv::start_edited(|p| {
        let acme = std::fs::read_to_string(p.path().join("tenants/acme.toml")).unwrap();
        p.write(
            "tenants/acme.toml",
            &format!("{acme}\n[agents]\nallow_concurrent_calls = false\n"),
        );
    })
    .await;
    let r = env
        .c
        .put(env.a().url(&format!("/api/c2c/agents/{AGENT}")))
        .header("x-api-key", ACME_KEY)
        .json(&json!({"name": "Asha", "telephony_enabled": true}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "put agent: {}", r.status());
    // Node B learns of the agent from the store.
    let url = env.b().url(&format!("/api/c2c/agents/{AGENT}"));
    let deadline = Instant::now() + T;
    while env
        .c
        .get(&url)
        .header("x-api-key", ACME_KEY)
        .send()
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(Instant::now() < deadline, "node B never saw the agent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for round in 0..3 {
        let mut calls = Vec::new();
        for (gw, n) in [(env.a(), "9700000001"), (env.b(), "9700000002")] {
            let (s, v) = env.click2call(gw, n).await;
            assert_eq!(s, 200, "click2call: {v}\n{}", env.logs());
            let (id, room) = (
                v["call_id"].as_str().unwrap().to_owned(),
                v["room"].as_str().unwrap().to_owned(),
            );
            env.sim.join(&room, AGENT).unwrap();
            calls.push(id);
        }
        let (pa, pb) = (
            format!("/api/c2c/calls/{}/connect", calls[0]),
            format!("/api/c2c/calls/{}/connect", calls[1]),
        );
        let (ra, rb) = tokio::join!(env.post(env.a(), &pa), env.post(env.b(), &pb));
        let (won, lost, lost_on) = match (ra.0, rb.0) {
            (200, 409) => (&calls[0], &calls[1], env.b()),
            (409, 200) => (&calls[1], &calls[0], env.a()),
            other => panic!("round {round}: {other:?} {ra:?} {rb:?}\n{}", env.logs()),
        };
        let refused = if ra.0 == 409 { &ra.1 } else { &rb.1 };
        assert_eq!(error_code(refused), "agent_busy", "{refused}");
        let (_, v) = env.get_call(lost_on, lost).await;
        assert_eq!(
            v["status"], "INITIATED",
            "nothing dialled for the refused call: {v}"
        );
        // Once the first call hung up, the second goes through on its own node.
        let (s, _) = env.hangup(lost_on, won).await;
        assert_eq!(s, 200);
        let path = format!("/api/c2c/calls/{lost}/connect");
        let deadline = Instant::now() + T;
        loop {
            let (s, v) = env.post(lost_on, &path).await;
            if s == 200 {
                break;
            }
            assert!(
                s == 409 && error_code(&v) == "agent_busy" && Instant::now() < deadline,
                "{s} {v}\n{}",
                env.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (s, _) = env.hangup(lost_on, lost).await;
        assert_eq!(s, 200);
    }
}
