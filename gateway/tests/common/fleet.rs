//! A fleet of two gateway processes (nodes A and B) on one PostgreSQL store: a real
//! Debian PostgreSQL cluster of its own, one LiveKit simulator in the test process (it
//! outlives the gateways, as LiveKit outlives a crashed node), one CRM sink, and one
//! policy directory both nodes read (`[store] kind = "postgres"`, a short lease).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use c2c_test_support::pg::PgServer;
use livekit_sim::{SimConfig, SimHandle, Simulator};
use serde_json::{json, Value};

use super::sink::{Received, Sink};
use super::*;

/// `store.lease_ms` of both nodes.
pub const LEASE: Duration = Duration::from_millis(2000);
/// `store.statement_timeout_ms` of both nodes (also their longest wait for a connection).
pub const STATEMENT_TIMEOUT: Duration = Duration::from_millis(2000);
/// How often a node looks for calls of dead nodes (`fleet::CLAIM_EVERY`).
pub const CLAIM_EVERY: Duration = Duration::from_millis(500);
const SIM_KEY: &str = "APIsimdev";
pub const AGENT: &str = "agent-42";

pub struct FleetEnv {
    pub pg: PgServer,
    pub db: String,
    pub policies: Policies,
    pub sim: SimHandle,
    pub sink: Sink,
    /// Node A (`nodes[0]`) and node B (`nodes[1]`).
    pub nodes: [Gateway; 2],
    /// The SIP edge (`C2C_SIP_LISTEN`, UDP and TCP) of node A and node B.
    pub sip: [std::net::SocketAddr; 2],
    _data: [tempfile::TempDir; 2],
    pub c: reqwest::Client,
}

/// Runs blocking test-harness work (process start, `initdb`, `waitpid`) without
/// stalling the runtime that serves the simulator and the sink.
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(f)
}

impl FleetEnv {
    pub async fn start() -> Self {
        Self::start_edited(|_| {}).await
    }

    /// Both nodes on the fast call policies (poll mode, 5 s ring timeout, 1 s agent-drop
    /// grace, 10 s unconnected expiry and max duration), edited by `edit` before they
    /// start.
    pub async fn start_edited(edit: impl FnOnce(&Policies)) -> Self {
        let pg = blocking(PgServer::start);
        let db = pg.create_database("c2c_fleet");
        let sink = Sink::start().await;
        let sim_port = free_port();
        let policies = super::calls::fast_policies("poll", &sink.url, sim_port);
        let secret = std::fs::read_to_string(policies.path().join("secrets/livekit-sim.secret"))
            .unwrap()
            .trim()
            .to_owned();
        let mut config = SimConfig::new(SIM_KEY, secret);
        config.listen = format!("127.0.0.1:{sim_port}");
        let sim = Simulator::start(config).await.unwrap();
        // The platform project points at the simulator of this process, which both nodes
        // share and which survives them.
        policies.edit(
            "gateway.toml",
            "url = \"sim\"",
            &format!("url = \"http://127.0.0.1:{sim_port}\""),
        );
        // Limits out of the way (each test polls calls on both nodes from one address);
        // the tests of limits set their own.
        policies.edit(
            "gateway.toml",
            "[calls]",
            "[limits]\nper_ip_requests_per_second = 100000\n\n[calls]",
        );
        let gw_toml = std::fs::read_to_string(policies.path().join("gateway.toml")).unwrap();
        policies.write(
            "gateway.toml",
            &format!(
                "{gw_toml}\n[store]\nkind = \"postgres\"\nurl_env = \"C2C_STORE_URL\"\n\
                 pool_size = 8\nstatement_timeout_ms = {}\nlease_ms = {}\nfleet_size = 2\n",
                STATEMENT_TIMEOUT.as_millis(),
                LEASE.as_millis()
            ),
        );
        policies.edit(
            "tenants/acme.toml",
            "[dlt]",
            "[limits]\nrequests_per_second = 10000\n\n[dlt]",
        );
        edit(&policies);
        let url = pg.url(&db);
        let data = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        // Both nodes start at once: they race for the migration lock on the empty
        // database, as a fleet rolled out together does.
        let sip = [0, 1].map(|_| std::net::SocketAddr::from(([127, 0, 0, 1], free_udp_port())));
        let nodes = [0, 1].map(|i| {
            Gateway::spawn_with_env(
                policies.path(),
                data[i].path(),
                &[
                    ("C2C_STORE_URL", url.as_str()),
                    ("C2C_SIP_LISTEN", &sip[i].to_string()),
                ],
            )
        });
        blocking(|| nodes.iter().for_each(Gateway::wait_ready));
        Self {
            pg,
            db,
            policies,
            sim,
            sink,
            nodes,
            sip,
            _data: data,
            c: client(),
        }
    }

    pub fn a(&self) -> &Gateway {
        &self.nodes[0]
    }

    pub fn b(&self) -> &Gateway {
        &self.nodes[1]
    }

    /// The tail of both nodes' logs and PostgreSQL's, for a failing assertion.
    pub fn logs(&self) -> String {
        let tail = |s: String| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(120)..].join("\n")
        };
        format!(
            "--- node A ---\n{}\n--- node B ---\n{}\n--- postgres ---\n{}",
            tail(self.nodes[0].log_text()),
            tail(self.nodes[1].log_text()),
            tail(self.pg.log())
        )
    }

    pub async fn click2call(&self, gw: &Gateway, number: &str) -> (u16, Value) {
        click2call(&self.c, &gw.base, number).await
    }

    /// click2call on `create_on`, the agent joins the room, `/connect` on `connect_on`
    /// (which becomes the call's driver). Returns the call id and room.
    pub async fn start_call(
        &self,
        create_on: &Gateway,
        connect_on: &Gateway,
        number: &str,
    ) -> (String, String) {
        let (s, v) = self.click2call(create_on, number).await;
        assert_eq!(s, 200, "click2call: {v}\n{}", self.logs());
        let call_id = v["call_id"].as_str().unwrap().to_owned();
        let room = v["room"].as_str().unwrap().to_owned();
        self.sim.join(&room, AGENT).unwrap();
        let (s, v) = self
            .post(connect_on, &format!("/api/c2c/calls/{call_id}/connect"))
            .await;
        assert_eq!(
            (s, &v),
            (200, &json!({"status": "ringing"})),
            "connect\n{}",
            self.logs()
        );
        (call_id, room)
    }

    pub async fn post(&self, gw: &Gateway, path: &str) -> (u16, Value) {
        json(self.c.post(gw.url(path)).send().await.unwrap()).await
    }

    pub async fn hangup(&self, gw: &Gateway, call_id: &str) -> (u16, Value) {
        self.post(gw, &format!("/api/c2c/calls/{call_id}/hangup"))
            .await
    }

    pub async fn get_call(&self, gw: &Gateway, call_id: &str) -> (u16, Value) {
        json(
            self.c
                .get(gw.url(&format!("/api/c2c/calls/{call_id}")))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Waits until `GET /calls/{id}` on `gw` shows `status`; returns the record.
    pub async fn wait_status(
        &self,
        gw: &Gateway,
        call_id: &str,
        status: &str,
        timeout: Duration,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (_, last) = self.get_call(gw, call_id).await;
            if last["status"] == status {
                return last;
            }
            assert!(
                Instant::now() < deadline,
                "{call_id} never reached {status} on {}; last: {last}\n{}",
                gw.base,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The same record on both nodes (what a browser or CRM sees does not depend on the
    /// node the load balancer picked).
    pub async fn same_on_both(&self, call_id: &str) -> Value {
        let (sa, va) = self.get_call(self.a(), call_id).await;
        let (sb, vb) = self.get_call(self.b(), call_id).await;
        assert_eq!((sa, sb), (200, 200), "{va} / {vb}");
        assert_eq!(va, vb, "node A and node B disagree on {call_id}");
        va
    }

    /// `sip.callStatus` of the customer's leg, `None` once it left the room.
    pub fn leg_state(&self, room: &str) -> Option<String> {
        self.sim
            .participants(room)
            .into_iter()
            .find(|p| p.identity == "sip-customer")
            .map(|p| p.attributes["sip.callStatus"].clone())
    }

    pub fn room_open(&self, room: &str) -> bool {
        self.sim.rooms().iter().any(|r| r.name == room)
    }

    /// Every webhook request the sink answered with a 2xx for the call.
    pub fn delivered(&self, call_id: &str) -> Vec<Received> {
        self.sink.for_call(call_id)
    }

    /// The distinct `webhook-id`s of every attempt the sink saw for the call (failed
    /// attempts included): one per call, whatever the retries and the nodes.
    pub fn webhook_ids(&self, call_id: &str) -> BTreeSet<String> {
        self.sink
            .all()
            .iter()
            .filter(|r| r.body["call_id"] == call_id)
            .map(|r| r.headers["webhook-id"].clone())
            .collect()
    }

    /// Waits until every call has a delivered webhook, then until neither node has one
    /// pending, then a quiet half second for a late duplicate to show.
    pub async fn wait_webhooks(&self, call_ids: &[String], timeout: Duration) {
        let all = eventually(timeout, || async {
            call_ids.iter().all(|id| !self.delivered(id).is_empty())
        })
        .await;
        let missing: Vec<&String> = call_ids
            .iter()
            .filter(|id| self.delivered(id).is_empty())
            .collect();
        assert!(
            all,
            "no webhook for {} of {} calls: {missing:?}\n{}",
            missing.len(),
            call_ids.len(),
            self.logs()
        );
        let drained = eventually(Duration::from_secs(10), || async {
            let mut pending = 0.0;
            for gw in &self.nodes {
                if let Some(t) = try_metrics(&self.c, gw).await {
                    pending += metric(&t, "c2c_webhook_outbox_pending");
                }
            }
            pending == 0.0
        })
        .await;
        assert!(drained, "the outbox never drained\n{}", self.logs());
        // A duplicate has nothing to wait for: give one the time to arrive.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    /// The one delivered webhook of the call (asserts there is exactly one).
    pub fn one_webhook(&self, call_id: &str) -> Received {
        let got = self.delivered(call_id);
        assert_eq!(
            got.len(),
            1,
            "expected one webhook for {call_id}: {:?}",
            got.iter()
                .map(|r| &r.headers["webhook-id"])
                .collect::<Vec<_>>()
        );
        assert_eq!(self.webhook_ids(call_id).len(), 1);
        got.into_iter().next().unwrap()
    }

    /// One series of a node's `/metrics` (summed over the label sets `series` matches).
    pub async fn metric(&self, gw: &Gateway, series: &str) -> f64 {
        metric(&gw.metrics(&self.c).await, series)
    }
}

/// click2call with acme's key for `number`, on the gateway at `base`.
pub async fn click2call(c: &reqwest::Client, base: &str, number: &str) -> (u16, Value) {
    let r = c
        .post(format!("{base}/api/c2c/click2call"))
        .header("x-api-key", ACME_KEY)
        .json(&json!({
            "case_id": "case-1",
            "customer_number": number,
            "agent_id": AGENT,
            "customer_crm_id": "cust-99"
        }))
        .send()
        .await
        .unwrap();
    json(r).await
}

/// The owner's DLT toggle for acme on `gw`.
pub async fn set_outbound(c: &reqwest::Client, gw: &Gateway, enabled: bool) {
    let r = c
        .post(gw.url("/api/telephony/config/owner/acme/outbound-enable"))
        .header("x-api-key", OWNER_KEY)
        .json(&json!({"enabled": enabled, "verified_by": "ops", "note": "fleet test"}))
        .send()
        .await
        .unwrap();
    let (s, v) = json(r).await;
    assert_eq!(s, 200, "outbound-enable: {v}");
}

/// `/readyz` status of `gw`, `None` if it does not answer within 5 s.
pub async fn readyz(c: &reqwest::Client, gw: &Gateway) -> Option<u16> {
    c.get(gw.url("/readyz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

async fn try_metrics(c: &reqwest::Client, gw: &Gateway) -> Option<String> {
    let r = c.get(gw.url("/metrics")).send().await.ok()?;
    r.text().await.ok()
}

/// The sum of the samples of `series` (a metric name, or a name with its full label set
/// as Prometheus prints it) in a `/metrics` text.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(series)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls `f` every 25 ms until it holds; how long that took, or `None` after `timeout`.
/// (Finer than [`eventually`], for the tests that measure a delay.)
pub async fn time_until<F, Fut>(timeout: Duration, mut f: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if f().await {
            return Some(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}
