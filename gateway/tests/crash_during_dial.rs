//! kill -9 while a dial is in flight. The dial request dies with the gateway, but LiveKit
//! (here a simulator in this test process, which outlives the gateway) goes on with the
//! call. After the restart the gateway settles each such call from what LiveKit shows:
//! no leg left means the carrier's code is unknowable, and the record says so (FAILED
//! `dial_interrupted`) instead of ringing out as NOT_ANSWERED `ring_timeout`; a leg still
//! in the room is followed to its real outcome.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::sink::Sink;
use common::*;
use livekit_sim::{Scenario, SimConfig, SimHandle, Simulator};
use serde_json::json;

const T: Duration = Duration::from_secs(20);
const KEY: &str = "APIsimdev";

struct Env {
    _policies: Policies,
    _data: tempfile::TempDir,
    gw: Gateway,
    sim: SimHandle,
    sink: Sink,
    c: reqwest::Client,
}

/// A gateway in poll mode whose LiveKit is a simulator that survives the gateway.
async fn start() -> Env {
    let sink = Sink::start().await;
    let sim_port = free_port();
    let policies = common::calls::fast_policies("poll", &sink.url, sim_port);
    let secret = std::fs::read_to_string(policies.path().join("secrets/livekit-sim.secret"))
        .unwrap()
        .trim()
        .to_owned();
    let mut config = SimConfig::new(KEY, secret);
    config.listen = format!("127.0.0.1:{sim_port}");
    let sim = Simulator::start(config).await.unwrap();
    // The platform project points at the outside simulator instead of the bundled one.
    policies.edit(
        "gateway.toml",
        "url = \"sim\"",
        &format!("url = \"http://127.0.0.1:{sim_port}\""),
    );
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(policies.path(), data.path());
    Env {
        _policies: policies,
        _data: data,
        gw,
        sim,
        sink,
        c: client(),
    }
}

impl Env {
    /// click2call, the agent joins with its microphone, /connect.
    async fn dial(&self, number: &str) -> (String, String) {
        let r = self
            .c
            .post(self.gw.url("/api/c2c/click2call"))
            .header("x-api-key", ACME_KEY)
            .json(&json!({"case_id": "case-1", "customer_number": number, "agent_id": "agent-42", "customer_crm_id": "cust-99"}))
            .send()
            .await
            .unwrap();
        let (s, v) = json(r).await;
        assert_eq!(s, 200, "{v}");
        let call_id = v["call_id"].as_str().unwrap().to_owned();
        let room = v["room"].as_str().unwrap().to_owned();
        self.sim.join(&room, "agent-42").unwrap();
        let r = self
            .c
            .post(self.gw.url(&format!("/api/c2c/calls/{call_id}/connect")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        (call_id, room)
    }

    async fn wait_ended(&self, call_id: &str) -> serde_json::Value {
        let url = self.gw.url(&format!("/api/c2c/calls/{call_id}"));
        let deadline = std::time::Instant::now() + T;
        loop {
            let (_, v) = json(self.c.get(&url).send().await.unwrap()).await;
            if v["status"] == "ENDED" {
                return v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never ended: {v}\n{}",
                self.gw.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn leg_state(&self, room: &str) -> Option<String> {
        self.sim
            .participants(room)
            .into_iter()
            .find(|p| p.identity == "sip-customer")
            .map(|p| p.attributes["sip.callStatus"].clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_failure_during_the_dial_is_not_reported_as_a_ring_timeout() {
    let mut env = start().await;
    // The carrier answers 503 1.5 s into the dial, without ringing.
    env.sim
        .set_scenario(
            "9000000503",
            Scenario {
                ring_after_ms: None,
                outcome: livekit_sim::Outcome::Fail {
                    sip_code: 503,
                    after_ms: 1500,
                },
            },
        )
        .unwrap();
    let (call_id, room) = env.dial("9000000503").await;
    assert_eq!(env.leg_state(&room).as_deref(), Some("dialing"));
    env.gw.kill9();
    // The carrier's 503 arrives while the gateway is down; nobody hears the dial's answer.
    let gone = eventually(T, || async { env.leg_state(&room).is_none() }).await;
    assert!(gone, "the leg never failed");
    env.gw.start_again();
    let v = env.wait_ended(&call_id).await;
    assert_eq!(v["call_status"], "FAILED", "{v}");
    assert_eq!(v["disconnect_reason"], "dial_interrupted", "{v}");
    assert_eq!(v["sip_disconnect_code"], serde_json::Value::Null);
    assert!(eventually(T, || async { !env.sink.for_call(&call_id).is_empty() }).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hooks = env.sink.for_call(&call_id);
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0].body["call_status"], "FAILED");
    assert!(env.gw.log_text().contains("interrupted dial settled"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_still_ringing_after_the_restart_is_followed_to_its_answer() {
    let mut env = start().await;
    // Rings at once, answered 3.5 s into the dial (the ring timeout is 5 s), the customer
    // hangs up 1.5 s later.
    env.sim
        .set_scenario(
            "9000000201",
            Scenario {
                ring_after_ms: Some(100),
                outcome: livekit_sim::Outcome::Answer {
                    after_ms: 3500,
                    hangup_after_ms: Some(1500),
                },
            },
        )
        .unwrap();
    let (call_id, room) = env.dial("9000000201").await;
    let ringing = eventually(T, || async {
        env.leg_state(&room).as_deref() == Some("ringing")
    })
    .await;
    assert!(ringing);
    env.gw.kill9();
    env.gw.start_again();
    // Not ended by the restart: the leg is still ringing, and its answer is observed.
    let url = env.gw.url(&format!("/api/c2c/calls/{call_id}"));
    let active = eventually(T, || async {
        json(env.c.get(&url).send().await.unwrap()).await.1["status"] == "ACTIVE"
    })
    .await;
    assert!(active, "{}", env.gw.log_text());
    let v = env.wait_ended(&call_id).await;
    assert_eq!(v["call_status"], "ANSWERED", "{v}");
    assert!(eventually(T, || async { !env.sink.for_call(&call_id).is_empty() }).await);
    assert_eq!(
        env.sink.for_call(&call_id)[0].body["call_status"],
        "ANSWERED"
    );
}
