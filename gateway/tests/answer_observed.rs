//! An answer is observed, never inferred. The call outcomes (answer, busy, no answer,
//! trunk failure) in the `poll` and `webhook` answer-detection modes, each against two
//! LiveKit behaviours: one that holds CreateSIPParticipant until the customer answers
//! (`wait_until_answered`, as LiveKit does), and one that returns it at once (an older
//! server, a proxy timing out the long request) — the behaviour that once turned a busy
//! customer into an ANSWERED webhook. The `sip` mode runs the same matrix through the
//! SIP edge in `sip.rs`.
//!
//! What each mode can know when LiveKit returns at once: in `webhook` mode LiveKit's
//! `participant_left` carries the disconnect reason (busy -> NOT_ANSWERED, trunk failure
//! -> FAILED); in `poll` mode a leg that vanished between samples tells nothing of why,
//! so it ends NOT_ANSWERED without a code. Never ANSWERED, in any mode.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::calls::CallEnv;
use serde_json::{json, Value};

const NUMBER: &str = "9530251797";
const T: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LiveKit {
    /// CreateSIPParticipant returns when the customer answers (or fails with the code).
    Waits,
    /// CreateSIPParticipant returns at once, whatever `wait_until_answered` says.
    ReturnsAtOnce,
}

async fn env(mode: &str, lk: LiveKit) -> CallEnv {
    let env = CallEnv::start(mode).await;
    if lk == LiveKit::ReturnsAtOnce {
        env.sim_fault(json!({"ignore_wait_until_answered": true}))
            .await;
    }
    env
}

/// The customer's leg as the agent's browser sees it (`sip.callStatus`), or None while
/// it is not in the room.
async fn leg_status_at(c: &reqwest::Client, sim: &str, room: &str) -> Option<String> {
    let parts: Value = c
        .get(format!("{sim}/sim/rooms/{room}/participants"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    parts.as_array()?.iter().find_map(|p| {
        (p["identity"] == "sip-customer")
            .then(|| {
                p["attributes"]["sip.callStatus"]
                    .as_str()
                    .map(str::to_owned)
            })
            .flatten()
    })
}

async fn leg_status(env: &CallEnv, room: &str) -> Option<String> {
    leg_status_at(&env.c, &env.sim, room).await
}

/// The contract's snippet in webhook mode: report ANSWERED when the customer's leg turns
/// `active` (LiveKit has no webhook for that).
fn browser_reports_answer(env: &CallEnv, call_id: &str, room: &str) -> tokio::task::JoinHandle<()> {
    let (c, sim) = (env.c.clone(), env.sim.clone());
    let status_url = env.gw.url(&format!("/api/c2c/calls/{call_id}/status"));
    let room = room.to_owned();
    tokio::spawn(async move {
        loop {
            if leg_status_at(&c, &sim, &room).await.as_deref() == Some("active") {
                let _ = c
                    .post(&status_url)
                    .json(&json!({"status": "ANSWERED"}))
                    .send()
                    .await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

/// Runs one call of `scenario` and returns its final record and webhook body.
async fn outcome(mode: &str, lk: LiveKit, scenario: Value, answers: bool) -> (Value, Value) {
    let env = env(mode, lk).await;
    env.scenario(NUMBER, scenario).await;
    let (call_id, room) = env.start_call(NUMBER).await;
    let reporter = (mode == "webhook").then(|| browser_reports_answer(&env, &call_id, &room));
    if answers {
        // Until the customer's leg is active, nothing may call the call answered.
        while leg_status(&env, &room).await.as_deref() != Some("active") {
            let v = env.get_call(&call_id).await;
            assert_ne!(
                v["status"], "ACTIVE",
                "answered before the customer did: {v}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let v = env.wait_status(&call_id, "ENDED", T).await;
    let w = env.webhook(&call_id, T).await;
    if let Some(r) = reporter {
        r.abort();
    }
    (v, w.body)
}

async fn answer(mode: &str, lk: LiveKit) {
    let scenario = json!({"ring_after_ms": 100, "outcome": {"kind": "answer", "after_ms": 600, "hangup_after_ms": 1500}});
    let (v, w) = outcome(mode, lk, scenario, true).await;
    assert_eq!(v["call_status"], "ANSWERED", "{v}");
    assert_eq!(w["call_status"], "ANSWERED");
    assert!(w["duration_seconds"].as_u64().unwrap() >= 1, "{w}");
}

async fn busy(mode: &str, lk: LiveKit) {
    let scenario = json!({"ring_after_ms": 100, "outcome": {"kind": "fail", "sip_code": 486, "after_ms": 400}});
    let (v, w) = outcome(mode, lk, scenario, false).await;
    assert_eq!(v["call_status"], "NOT_ANSWERED", "{v}");
    assert_eq!(w["call_status"], "NOT_ANSWERED");
    assert_eq!(w["duration_seconds"], 0);
    // The exact code only comes with the dial's own answer.
    let code = if lk == LiveKit::Waits {
        json!(486)
    } else {
        Value::Null
    };
    assert_eq!(v["sip_disconnect_code"], code, "{v}");
}

async fn no_answer(mode: &str, lk: LiveKit) {
    // Rings past the gateway's 5 s ring timeout.
    let scenario = json!({"ring_after_ms": 100, "outcome": {"kind": "no_answer"}});
    let (v, w) = outcome(mode, lk, scenario, false).await;
    assert_eq!(v["call_status"], "NOT_ANSWERED", "{v}");
    assert_eq!(w["call_status"], "NOT_ANSWERED");
    assert_eq!(v["sip_disconnect_code"], Value::Null, "{v}");
}

async fn trunk_failure(mode: &str, lk: LiveKit) {
    let scenario = json!({"ring_after_ms": null, "outcome": {"kind": "fail", "sip_code": 503, "after_ms": 150}});
    let (v, w) = outcome(mode, lk, scenario, false).await;
    let (status, code) = match (mode, lk) {
        (_, LiveKit::Waits) => ("FAILED", json!(503)),
        // LiveKit's participant_left says SIP_TRUNK_FAILURE.
        ("webhook", LiveKit::ReturnsAtOnce) => ("FAILED", Value::Null),
        // A leg gone between two samples says nothing of why.
        _ => ("NOT_ANSWERED", Value::Null),
    };
    assert_eq!(v["call_status"], status, "{v}");
    assert_eq!(w["call_status"], status);
    assert_eq!(v["sip_disconnect_code"], code, "{v}");
    assert_eq!(w["duration_seconds"], 0);
}

macro_rules! matrix {
    ($($name:ident),* $(,)?) => {
        mod poll_waits {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name("poll", super::LiveKit::Waits).await })*
        }
        mod poll_returns_at_once {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name("poll", super::LiveKit::ReturnsAtOnce).await })*
        }
        mod webhook_waits {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name("webhook", super::LiveKit::Waits).await })*
        }
        mod webhook_returns_at_once {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name("webhook", super::LiveKit::ReturnsAtOnce).await })*
        }
    };
}

matrix!(answer, busy, no_answer, trunk_failure);

/// `/connect` dials only when the agent's participant is in the room with its
/// microphone published; otherwise 409 and no dial.
#[tokio::test]
async fn connect_refuses_until_the_agent_publishes_audio() {
    let env = CallEnv::start("webhook").await;
    let (s, v) = env.click2call(NUMBER).await;
    assert_eq!(s, 200, "{v}");
    let call_id = v["call_id"].as_str().unwrap().to_string();
    let room = v["room"].as_str().unwrap().to_string();
    let path = format!("/api/c2c/calls/{call_id}/connect");
    let connect = || env.post(&path);

    // Nobody in the room.
    let (s, v) = connect().await;
    assert_eq!((s, common::error_code(&v)), (409, "agent_not_ready"), "{v}");
    // Someone else in the room.
    env.c
        .post(format!("{}/sim/rooms/{room}/join", env.sim))
        .json(&json!({"identity": "supervisor"}))
        .send()
        .await
        .unwrap();
    let (s, v) = connect().await;
    assert_eq!((s, common::error_code(&v)), (409, "agent_not_ready"), "{v}");
    // The agent, joined but without a microphone.
    env.c
        .post(format!("{}/sim/rooms/{room}/join", env.sim))
        .json(&json!({"identity": "agent-42", "publish_audio": false}))
        .send()
        .await
        .unwrap();
    let (s, v) = connect().await;
    assert_eq!((s, common::error_code(&v)), (409, "agent_not_ready"), "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("microphone"));
    assert_eq!(env.sim_stats().await["sip_dials"], 0, "nothing dialled");
    assert_eq!(env.get_call(&call_id).await["status"], "INITIATED");

    // Published: dials once.
    env.agent_leaves(&room).await;
    env.agent_joins(&room).await;
    let (s, v) = connect().await;
    assert_eq!((s, &v), (200, &json!({"status": "ringing"})));
    assert!(common::eventually(T, || async { env.sim_stats().await["sip_dials"] == 1 }).await);
    // LiveKit unreachable for the check: 503, nothing dialled, the call can be retried.
    let (s, v) = env.click2call(NUMBER).await;
    assert_eq!(s, 200, "{v}");
    let second = v["call_id"].as_str().unwrap().to_string();
    env.agent_joins(v["room"].as_str().unwrap()).await;
    env.sim_fault(json!({"unavailable": true})).await;
    let (s, v) = env.post(&format!("/api/c2c/calls/{second}/connect")).await;
    assert_eq!(
        (s, common::error_code(&v)),
        (503, "livekit_unavailable"),
        "{v}"
    );
    assert_eq!(env.get_call(&second).await["status"], "INITIATED");
}

/// `/hangup` answers as soon as the hangup is stored, however slow LiveKit is; the
/// outcome is worked out in the background (here: the agent's, the customer's leg is up).
#[tokio::test]
async fn hangup_answers_at_once_while_livekit_is_slow() {
    let env = CallEnv::start("webhook").await;
    env.scenario(
        NUMBER,
        json!({"ring_after_ms": 100, "outcome": {"kind": "no_answer"}}),
    )
    .await;
    let (call_id, room) = env.start_call(NUMBER).await;
    assert!(
        common::eventually(T, || async {
            leg_status(&env, &room).await.as_deref() == Some("ringing")
        })
        .await
    );
    // Every LiveKit API call now takes 2 s (the resolver's room sample among them).
    env.sim_fault(json!({"latency_ms": 2000})).await;
    let started = std::time::Instant::now();
    let (s, v) = env.post(&format!("/api/c2c/calls/{call_id}/hangup")).await;
    let took = started.elapsed();
    assert_eq!(s, 200, "{v}");
    assert!(
        took < Duration::from_millis(1000),
        "/hangup waited for LiveKit: {took:?}"
    );
    assert_eq!(
        v["ended"], false,
        "not ended before the cause is known: {v}"
    );
    let v = env.wait_status(&call_id, "ENDED", T).await;
    assert_eq!(v["call_status"], "NOT_ANSWERED");
    assert_eq!(v["disconnect_reason"], "agent_cancelled", "{v}");
    env.webhook(&call_id, T).await;
}
