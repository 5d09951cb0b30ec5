//! A gateway + bundled simulator + CRM sink, configured for fast call tests.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::{json, Value};

use super::sink::Sink;
use super::*;

pub struct CallEnv {
    pub policies: Policies,
    pub data: tempfile::TempDir,
    pub gw: Gateway,
    pub sink: Sink,
    pub sim: String,
    pub c: reqwest::Client,
}

pub fn fast_policies(mode: &str, sink_url: &str, sim_port: u16) -> Policies {
    let p = Policies::example_on(sim_port);
    p.edit(
        "gateway.toml",
        "answer_detection = \"poll\"",
        &format!("answer_detection = \"{mode}\""),
    );
    p.edit(
        "gateway.toml",
        "ring_timeout_seconds = 45",
        "ring_timeout_seconds = 5",
    );
    p.edit(
        "gateway.toml",
        "agent_drop_grace_seconds = 20",
        "agent_drop_grace_seconds = 1",
    );
    p.edit(
        "gateway.toml",
        "max_duration_seconds = 3600",
        "max_duration_seconds = 10",
    );
    p.edit(
        "gateway.toml",
        "unconnected_expiry_seconds = 600",
        "unconnected_expiry_seconds = 10",
    );
    p.edit(
        "gateway.toml",
        "poll_interval_ms = 1000",
        "poll_interval_ms = 100",
    );
    p.edit(
        "tenants/acme.toml",
        "http://127.0.0.1:8090/c2c/webhook",
        sink_url,
    );
    p
}

impl CallEnv {
    pub async fn start(mode: &str) -> Self {
        Self::start_with_env(mode, &[]).await
    }

    /// [`Self::start`] with extra environment for the gateway (e.g. `C2C_STORE=memory`).
    pub async fn start_with_env(mode: &str, env: &[(&str, &str)]) -> Self {
        Self::start_edited(mode, env, |_| {}).await
    }

    /// [`Self::start_with_env`] with the policy files edited by `edit` before the
    /// gateway reads them.
    pub async fn start_edited(
        mode: &str,
        env: &[(&str, &str)],
        edit: impl FnOnce(&Policies),
    ) -> Self {
        let sink = Sink::start().await;
        let sim_port = free_port();
        let policies = fast_policies(mode, &sink.url, sim_port);
        edit(&policies);
        let data = tempfile::tempdir().unwrap();
        let gw = Gateway::start_with_env(policies.path(), data.path(), env);
        Self {
            policies,
            data,
            gw,
            sink,
            sim: format!("http://127.0.0.1:{sim_port}"),
            c: client(),
        }
    }

    /// Mints a `calls` key for another tenant of the example (`globex`) and writes it
    /// into that tenant's policy file; the caller waits for the reload it needs.
    pub fn mint_tenant_key(&self, tenant: &str, id: &str) -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_c2c-gateway"))
            .args(["keys", "mint", "--tenant", tenant, "--id", id])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let key = text.lines().nth(1).unwrap().trim().to_string();
        let toml = &text[text.find("[[api_keys]]").unwrap()..];
        self.policies.edit(
            &format!("tenants/{tenant}.toml"),
            "[crm_webhook]",
            &format!("{toml}\n[crm_webhook]"),
        );
        key
    }

    /// [`Self::mint_tenant_key`], then waits until the reloaded policy accepts the key.
    pub async fn tenant_key_in_force(&self, tenant: &str, id: &str) -> String {
        let key = self.mint_tenant_key(tenant, id);
        let ok = eventually(Duration::from_secs(20), || async {
            self.c
                .get(self.gw.url("/api/c2c/agents"))
                .header("x-api-key", &key)
                .send()
                .await
                .unwrap()
                .status()
                == 200
        })
        .await;
        assert!(ok, "the {tenant} key never took effect");
        key
    }

    /// Sets the simulated callee's behaviour for a 10-digit number.
    pub async fn scenario(&self, number: &str, scenario: Value) {
        let r = self
            .c
            .post(format!("{}/sim/scenarios", self.sim))
            .json(&json!({"number": number, "scenario": scenario}))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "scenario: {}",
            r.text().await.unwrap()
        );
    }

    pub async fn sim_fault(&self, body: Value) {
        let r = self
            .c
            .post(format!("{}/sim/fault", self.sim))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    pub async fn sim_stats(&self) -> Value {
        self.c
            .get(format!("{}/sim/stats", self.sim))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn sim_rooms(&self) -> Value {
        self.c
            .get(format!("{}/sim/rooms", self.sim))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn click2call(&self, number: &str) -> (u16, Value) {
        let r = self
            .c
            .post(self.gw.url("/api/c2c/click2call"))
            .header("x-api-key", ACME_KEY)
            .json(&json!({
                "case_id": "case-1",
                "customer_number": number,
                "agent_id": "agent-42",
                "customer_crm_id": "cust-99",
                "agen_number": "ignored-legacy",
                "trunk_id": "ignored-legacy"
            }))
            .send()
            .await
            .unwrap();
        json(r).await
    }

    /// The agent's browser joins the room (the simulator cannot carry WebRTC; its test
    /// hook adds the participant as LiveKit would).
    pub async fn agent_joins(&self, room: &str) {
        let r = self
            .c
            .post(format!("{}/sim/rooms/{room}/join", self.sim))
            .json(&json!({"identity": "agent-42"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "join: {}", r.text().await.unwrap());
    }

    pub async fn agent_leaves(&self, room: &str) {
        let r = self
            .c
            .post(format!("{}/sim/rooms/{room}/leave", self.sim))
            .json(&json!({"identity": "agent-42"}))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "leave: {}",
            r.text().await.unwrap()
        );
    }

    pub async fn post(&self, path: &str) -> (u16, Value) {
        json(self.c.post(self.gw.url(path)).send().await.unwrap()).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        json(
            self.c
                .post(self.gw.url(path))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Posts `/hangup` (it answers at once, before the cause is resolved) and waits for
    /// the call to end.
    pub async fn hang_up(&self, call_id: &str) -> Value {
        let (s, v) = self.post(&format!("/api/c2c/calls/{call_id}/hangup")).await;
        assert_eq!(s, 200, "{v}");
        self.wait_status(call_id, "ENDED", Duration::from_secs(15))
            .await
    }

    pub async fn get_call(&self, call_id: &str) -> Value {
        json(
            self.c
                .get(self.gw.url(&format!("/api/c2c/calls/{call_id}")))
                .send()
                .await
                .unwrap(),
        )
        .await
        .1
    }

    /// Starts a call the way the agent flow does: click2call, join, connect.
    pub async fn start_call(&self, number: &str) -> (String, String) {
        let (s, v) = self.click2call(number).await;
        assert_eq!(s, 200, "{v}");
        let call_id = v["call_id"].as_str().unwrap().to_string();
        let room = v["room"].as_str().unwrap().to_string();
        self.agent_joins(&room).await;
        let (s, v) = self
            .post(&format!("/api/c2c/calls/{call_id}/connect"))
            .await;
        assert_eq!((s, &v), (200, &json!({"status": "ringing"})));
        (call_id, room)
    }

    pub async fn wait_status(&self, call_id: &str, status: &str, timeout: Duration) -> Value {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let last = self.get_call(call_id).await;
            if last["status"] == status {
                return last;
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "call never reached {status}; last: {last}\n--- log ---\n{}",
                    self.gw.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for exactly one delivered webhook for the call and returns it.
    pub async fn webhook(&self, call_id: &str, timeout: Duration) -> super::sink::Received {
        let ok = eventually(timeout, || async {
            !self.sink.for_call(call_id).is_empty()
        })
        .await;
        assert!(
            ok,
            "no webhook for {call_id}\n--- log ---\n{}",
            self.gw.log_text()
        );
        // Give a duplicate the chance to show up before asserting there is none.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let got = self.sink.for_call(call_id);
        assert_eq!(got.len(), 1, "expected exactly one webhook: {got:?}");
        got.into_iter().next().unwrap()
    }
}
