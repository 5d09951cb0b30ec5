//! End to end through the SIP edge: click2call -> connect -> the LiveKit simulator sends
//! a real INVITE -> the gateway's SIP edge (prefix, DLT, observation) -> sipp as the
//! carrier. Answer detection `sip`: the 200 OK is the answer, BYE / final the end.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::sink::Sink;
use common::*;
use serde_json::json;

const NUMBER: &str = "9876543210";
/// acme's console key in the example policy.
const CONSOLE_KEY: &str = "c2c_MVFatqflX4eiQMbYpIWckdWX2N2SGJ2iWdKu";
const T: Duration = Duration::from_secs(20);

fn scenarios() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/sip/tests/scenarios")
}

struct SipEnv {
    _p: Policies,
    _data: tempfile::TempDir,
    gw: Gateway,
    sink: Sink,
    carrier_port: u16,
    dir: tempfile::TempDir,
    /// The bundled simulator's base URL (its `/sim/` test hooks).
    sim: String,
}

async fn start() -> SipEnv {
    start_with(|_| {}).await
}

/// [`start`] with `edit` applied to the policy files before the gateway starts.
async fn start_with(edit: impl FnOnce(&Policies)) -> SipEnv {
    let sink = Sink::start().await;
    let sip_port = free_udp_port();
    let carrier_port = free_udp_port();
    let sim_port = free_port();
    let p = common::calls::fast_policies("sip", &sink.url, sim_port);
    p.edit(
        "gateway.toml",
        "sip_disconnect_code_attribute = false",
        &format!(
            "sip_disconnect_code_attribute = false\nsip_outbound = \"udp:127.0.0.1:{sip_port}\""
        ),
    );
    p.edit(
        "tenants/acme.toml",
        "carrier = \"sip:127.0.0.1:5080\"",
        &format!("carrier = \"sip:127.0.0.1:{carrier_port}\""),
    );
    edit(&p);
    let data = tempfile::tempdir().unwrap();
    let sip_listen = format!("127.0.0.1:{sip_port}");
    let gw = Gateway::start_with_env(
        p.path(),
        data.path(),
        &[("C2C_SIP_LISTEN", sip_listen.as_str())],
    );
    SipEnv {
        _p: p,
        _data: data,
        gw,
        sink,
        carrier_port,
        dir: tempfile::tempdir().unwrap(),
        sim: format!("http://127.0.0.1:{sim_port}"),
    }
}

/// sipp as the carrier, running one call of `scenario`.
fn carrier(env: &SipEnv, scenario: &str, code: Option<(u16, &str)>) -> tokio::process::Child {
    let mut path = scenarios().join(scenario);
    if let Some((c, reason)) = code {
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("@CODE@", &c.to_string())
            .replace("@REASON@", reason);
        path = env.dir.path().join(format!("{c}-{scenario}"));
        std::fs::write(&path, text).unwrap();
    }
    tokio::process::Command::new("sipp")
        .args(["-sf"])
        .arg(&path)
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &env.carrier_port.to_string(),
            "-t",
            "u1",
        ])
        .args([
            "-nostdin",
            "-trace_err",
            "-timeout",
            "30",
            "-timeout_error",
            "-m",
            "1",
        ])
        .current_dir(env.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp (apt-get install sip-tester)")
}

async fn sipp_ok(mut child: tokio::process::Child, env: &SipEnv) {
    let status = tokio::time::timeout(Duration::from_secs(40), child.wait())
        .await
        .expect("sipp finished")
        .unwrap();
    if !status.success() {
        let mut errs = String::new();
        for e in std::fs::read_dir(env.dir.path()).unwrap().flatten() {
            if e.file_name().to_string_lossy().ends_with("errors.log") {
                errs.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        panic!(
            "carrier sipp failed: {status:?}\n{errs}\n--- gateway ---\n{}",
            env.gw.log_text()
        );
    }
}

async fn call(env: &SipEnv, c: &reqwest::Client) -> String {
    let r = c
        .post(env.gw.url("/api/c2c/click2call"))
        .header("x-api-key", ACME_KEY)
        .json(&json!({"case_id": "k", "customer_number": NUMBER, "agent_id": "agent-42", "customer_crm_id": "x"}))
        .send()
        .await
        .unwrap();
    let (s, v) = json(r).await;
    assert_eq!(s, 200, "{v}");
    let id = v["call_id"].as_str().unwrap().to_string();
    // The agent's browser joins and publishes its microphone before /connect.
    let room = v["room"].as_str().unwrap();
    let r = c
        .post(format!("{}/sim/rooms/{room}/join", env.sim))
        .json(&json!({"identity": "agent-42"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (s, v) = json(
        c.post(env.gw.url(&format!("/api/c2c/calls/{id}/connect")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    id
}

async fn wait_status(
    env: &SipEnv,
    c: &reqwest::Client,
    id: &str,
    status: &str,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + T;
    loop {
        let v: serde_json::Value = c
            .get(env.gw.url(&format!("/api/c2c/calls/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["status"] == status {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never {status}: {v}\n{}",
            env.gw.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_through_the_sip_edge_then_agent_hangup() {
    let env = start().await;
    let c = client();
    // The carrier checks the prefixed Request-URI and To, and expects our BYE.
    let sipp = carrier(&env, "uas_answer.xml", None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = call(&env, &c).await;
    let v = wait_status(&env, &c, &id, "ACTIVE").await;
    assert_eq!(v["connected"], true);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, _) = json(
        c.post(env.gw.url(&format!("/api/c2c/calls/{id}/hangup")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    sipp_ok(sipp, &env).await;
    assert!(eventually(T, || async { !env.sink.for_call(&id).is_empty() }).await);
    let w = &env.sink.for_call(&id)[0];
    assert_eq!(w.body["call_status"], "ANSWERED");
    assert_eq!(w.body["phone_to"], NUMBER);
    let m = env.gw.metrics(&c).await;
    assert!(
        m.contains("c2c_sip_responses_total{code=\"200\",trunk=\"airtel-mum\"} 1"),
        "{m}"
    );
    // The kernel's drop count of the edge's UDP socket is exported (none at this rate).
    assert!(m.contains("c2c_sip_udp_receive_drops_total 0"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_carrier_gives_the_exact_code_on_the_record() {
    let env = start().await;
    let c = client();
    let sipp = carrier(&env, "uas_fail.xml", Some((486, "Busy Here")));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = call(&env, &c).await;
    let v = wait_status(&env, &c, &id, "ENDED").await;
    assert_eq!(v["call_status"], "NOT_ANSWERED", "{v}");
    assert_eq!(v["sip_disconnect_code"], 486, "{v}");
    sipp_ok(sipp, &env).await;
    let m = env.gw.metrics(&c).await;
    assert!(
        m.contains("c2c_sip_responses_total{code=\"486\",trunk=\"airtel-mum\"} 1"),
        "{m}"
    );
}

/// The gateway with acme's trunk anchored, a one-second dead-air timeout and, when
/// `media_in_payload`, acme's CRM opted in to the extended webhook.
/// `io`: where the edge runs the relays (`[sip.media] io`).
async fn start_anchored(media_in_payload: bool, io: &str) -> SipEnv {
    let base = free_udp_port() & !1;
    start_with(|p| {
        p.edit("tenants/acme.toml", "media = \"direct\"", "media = \"anchor\"");
        if media_in_payload {
            p.edit(
                "tenants/acme.toml",
                "[crm_webhook]\n",
                "[crm_webhook]\nmedia_in_payload = true\n",
            );
        }
        let gateway = std::fs::read_to_string(p.path().join("gateway.toml")).unwrap();
        p.write(
            "gateway.toml",
            &format!(
                "{gateway}\n[sip.media]\nport_min = {base}\nport_max = {}\nmedia_timeout_seconds = 1\none_way_seconds = 1\nio = \"{io}\"\n",
                base + 7
            ),
        );
    })
    .await
}

/// One call on the anchored trunk through to its CRM webhook: the carrier (sipp) answers
/// and stays silent, dead air ends the call ANSWERED as `media_timeout`. Answers the
/// call id and the webhook the CRM sink got.
async fn dead_air_call(env: &SipEnv, c: &reqwest::Client) -> (String, common::sink::Received) {
    let sipp = carrier(env, "uas_answer.xml", None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = call(env, c).await;
    let v = wait_status(env, c, &id, "ENDED").await;
    assert_eq!(v["call_status"], "ANSWERED", "{v}");
    assert_eq!(v["disconnect_reason"], "media_timeout", "{v}");
    sipp_ok(sipp, env).await;
    assert!(eventually(T, || async { !env.sink.for_call(&id).is_empty() }).await);
    let w = env.sink.for_call(&id)[0].clone();
    (id, w)
}

/// A tenant that opted in (`media_in_payload = true`): the anchored call's webhook waits
/// for the relay's report and carries it after the contract's fields, in the order the
/// contract gives them, signed like any other; the media object is the call API's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opted_in_crm_gets_the_media_report_in_its_webhook() {
    let env = start_anchored(true, "io_uring").await;
    let c = client();
    let (id, w) = dead_air_call(&env, &c).await;
    let raw = String::from_utf8(w.raw.clone()).unwrap();
    let keys = [
        "call_id",
        "case_id",
        "customer_crm_id",
        "phone_to",
        "phone_from",
        "call_status",
        "duration_seconds",
        "agent_id",
        "media",
    ];
    let at: Vec<usize> = keys
        .iter()
        .map(|k| {
            raw.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} in {raw}"))
        })
        .collect();
    assert!(
        at.windows(2).all(|p| p[0] < p[1]),
        "contract order, media last: {raw}"
    );
    assert_eq!(w.body.as_object().unwrap().len(), keys.len(), "{raw}");
    assert_eq!(w.body["call_status"], "ANSWERED");
    assert_eq!(w.body["media"]["media_timeout"], true, "{raw}");
    let (_, api) = json(
        c.get(env.gw.url(&format!("/api/c2c/calls/{id}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(w.body["media"], api["media"], "the call API's media object");
    let ts: u64 = w.headers["webhook-timestamp"].parse().unwrap();
    assert!(c2c_crm_webhooks::sign::verify(
        // Not base64: the gateway signs with the secret's bytes as they are.
        b"whsec-acme-dev-signing-secret",
        &w.headers["webhook-id"],
        ts,
        &w.raw,
        &w.headers["webhook-signature"]
    ));
    let metrics = env.gw.metrics(&c).await;
    assert!(
        !metrics.contains("c2c_webhook_media_missing_total{tenant=\"acme\"}"),
        "the report came in time: {metrics}"
    );
}

/// The console's Sandbox and Analytics in headless Chromium for an anchored call ended by
/// dead air (`web/tests/console-media.test.mjs`): the media block and the extended webhook
/// preview (acme opted in), and the trunk's media row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_an_anchored_calls_media_in_chromium() {
    if !browser::ready() {
        return;
    }
    let env = start_anchored(true, "auto").await;
    let sipp = carrier(&env, "uas_answer.xml", None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let node = {
        let env_vars = vec![
            ("C2C_BASE", env.gw.base.clone()),
            ("C2C_SIM", env.sim.clone()),
            ("C2C_CONSOLE_KEY", CONSOLE_KEY.to_string()),
            ("C2C_NUMBER", NUMBER.to_string()),
            (
                "C2C_SECRETS",
                serde_json::to_string(&browser::secrets(env._p.path())).unwrap(),
            ),
        ];
        let log = env.gw.log.clone();
        tokio::task::spawn_blocking(move || {
            browser::run_node_tests(&["tests/console-media.test.mjs"], &env_vars, || {
                std::fs::read_to_string(&log).unwrap_or_default()
            })
        })
    };
    let ran = node.await;
    sipp_ok(sipp, &env).await;
    if let Err(e) = ran {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// An anchored trunk whose carrier answers and then sends no audio: the SIP edge's relay
/// raises dead air after `media_timeout_seconds`, the call ends ANSWERED with
/// `media_timeout` (the room goes, so LiveKit's BYE reaches the carrier), and the call's
/// `media` shows what the relay measured. The CRM webhook keeps the contract's shape.
/// The relays run on the runtime here (`io = "runtime"`), on io_uring in the tests above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_air_on_an_anchored_trunk_ends_the_call_as_media_timeout() {
    let env = start_anchored(false, "runtime").await;
    let c = client();
    let (id, w) = dead_air_call(&env, &c).await;
    assert_eq!(w.body["call_status"], "ANSWERED");
    assert!(
        w.body.get("media").is_none(),
        "the webhook keeps the contract's shape"
    );
    // The relay reports once the dialog is over (LiveKit's BYE answered).
    let url = env.gw.url(&format!("/api/c2c/calls/{id}"));
    let media = || async {
        let v: serde_json::Value = c.get(&url).send().await.unwrap().json().await.unwrap();
        v["media"].clone()
    };
    assert!(eventually(T, || async { media().await.is_object() }).await);
    let m = media().await;
    assert_eq!(m["media_timeout"], true, "{m}");
    // The simulator sends no RTP either: silence both ways is dead air, not one-way.
    assert!(m["one_way_audio"].is_null(), "{m}");
    assert_eq!(m["from_carrier"]["packets"], 0, "{m}");
    assert_eq!(m["early_media"], false, "{m}");
    // Analytics per trunk count the anchored call's media.
    let a: serde_json::Value = c
        .get(env.gw.url("/api/c2c/analytics?trunk=airtel-mum"))
        .header("x-api-key", ACME_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tm = &a["by_trunk"][0]["media"];
    assert_eq!(tm["calls"], 1, "{a}");
    assert_eq!(tm["media_timeouts"], 1, "{a}");
    assert_eq!(tm["early_media_rate"], 0.0, "{a}");
    assert!(tm["median_jitter_ms"].is_null(), "no RTP, no jitter: {a}");
    let metrics = env.gw.metrics(&c).await;
    assert!(
        metrics
            .contains("c2c_sip_media_events_total{event=\"media_timeout\",trunk=\"airtel-mum\"} 1"),
        "{metrics}"
    );
}

/// The call outcomes in `sip` answer-detection mode, against a LiveKit that holds the
/// dial until answer and one that returns it at once (see `answer_observed.rs` for the
/// other modes). The SIP edge sees every response, so the outcome and the exact code are
/// the same either way; never ANSWERED for a call nobody picked up.
async fn sip_outcome(
    returns_at_once: bool,
    scenario: &str,
    code: Option<(u16, &str)>,
) -> (serde_json::Value, serde_json::Value) {
    let env = start().await;
    let c = client();
    if returns_at_once {
        let r = c
            .post(format!("{}/sim/fault", env.sim))
            .json(&json!({"ignore_wait_until_answered": true}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    let sipp = carrier(&env, scenario, code);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = call(&env, &c).await;
    let v = wait_status(&env, &c, &id, "ENDED").await;
    sipp_ok(sipp, &env).await;
    assert!(eventually(T, || async { !env.sink.for_call(&id).is_empty() }).await);
    let w = env.sink.for_call(&id)[0].body.clone();
    (v, w)
}

async fn sip_answer(returns_at_once: bool) {
    // The carrier answers, then hangs up (BYE) after a while.
    let (v, w) = sip_outcome(returns_at_once, "uas_answer_bye.xml", None).await;
    assert_eq!(v["call_status"], "ANSWERED", "{v}");
    assert_eq!(w["call_status"], "ANSWERED");
}

async fn sip_busy(returns_at_once: bool) {
    let (v, w) = sip_outcome(returns_at_once, "uas_fail.xml", Some((486, "Busy Here"))).await;
    assert_eq!(v["call_status"], "NOT_ANSWERED", "{v}");
    assert_eq!(v["sip_disconnect_code"], 486, "{v}");
    assert_eq!(w["call_status"], "NOT_ANSWERED");
}

async fn sip_trunk_failure(returns_at_once: bool) {
    let (v, w) = sip_outcome(
        returns_at_once,
        "uas_fail.xml",
        Some((503, "Service Unavailable")),
    )
    .await;
    assert_eq!(v["call_status"], "FAILED", "{v}");
    assert_eq!(v["sip_disconnect_code"], 503, "{v}");
    assert_eq!(w["call_status"], "FAILED");
}

async fn sip_no_answer(returns_at_once: bool) {
    // Rings until the gateway's 5 s ring timeout tears the call down (CANCEL).
    let (v, w) = sip_outcome(returns_at_once, "uas_cancel.xml", None).await;
    assert_eq!(v["call_status"], "NOT_ANSWERED", "{v}");
    assert_eq!(v["disconnect_reason"], "ring_timeout", "{v}");
    assert_eq!(w["call_status"], "NOT_ANSWERED");
}

macro_rules! sip_matrix {
    ($($name:ident),* $(,)?) => {
        mod sip_mode_livekit_waits {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(false).await })*
        }
        mod sip_mode_livekit_returns_at_once {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(true).await })*
        }
    };
}

sip_matrix!(sip_answer, sip_busy, sip_trunk_failure, sip_no_answer);
