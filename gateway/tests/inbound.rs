//! Inbound calls end to end with real parts: sipp as the carrier dialling a DID through
//! the gateway's SIP edge, agents as real presence WebSocket clients, the bundled
//! LiveKit simulator as LiveKit SIP (its inbound trunk and Callee dispatch rule put the
//! caller into the accepted room and answer only once the agent publishes audio), and
//! a CRM receiver for the webhook and the lead lookup.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use c2c_test_support::receiver::{Receiver, Reply};
use common::calls::CallEnv;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const T: Duration = Duration::from_secs(20);
const DID: &str = "+918045678901";
const CALLER: &str = "+919812345678";

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Inbound {
    env: CallEnv,
    sip_port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Inbound {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- gateway log ---\n{}", self.env.gw.log_text());
        }
    }
}

/// A gateway whose bundled simulator speaks SIP with the edge, the example DID on the
/// `airtel-mum` trunk (carrier 127.0.0.1), 5 s per agent offer and 12 s in all, and
/// `lookup` as the tenant's lead lookup URL when given.
async fn start(lookup: Option<&str>, extra: impl FnOnce(&Policies)) -> Inbound {
    let sip_port = free_udp_port();
    let sip_listen = format!("127.0.0.1:{sip_port}");
    let env = CallEnv::start_edited("poll", &[("C2C_SIP_LISTEN", sip_listen.as_str())], |p| {
        p.edit(
            "gateway.toml",
            "sip_disconnect_code_attribute = false",
            &format!(
                "sip_disconnect_code_attribute = false\nsip_outbound = \"udp:127.0.0.1:{sip_port}\""
            ),
        );
        p.edit(
            "tenants/acme.toml",
            "ring_agent_seconds = 20",
            "ring_agent_seconds = 5",
        );
        p.edit(
            "tenants/acme.toml",
            "inbound_ring_timeout_seconds = 60",
            "inbound_ring_timeout_seconds = 12",
        );
        if let Some(url) = lookup {
            p.edit(
                "tenants/acme.toml",
                "# lookup_url = \"http://127.0.0.1:8090/c2c/lead-lookup\"",
                &format!("lookup_url = \"{url}\"\nlookup_timeout_ms = 4000"),
            );
        }
        extra(p);
    })
    .await;
    Inbound {
        env,
        sip_port,
        dir: tempfile::tempdir().unwrap(),
    }
}

fn scenarios() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios")
}

/// sipp as the carrier: one call of `scenario` to `did`, `@CODE@`/`@PAUSE@` filled in.
fn carrier(
    ib: &Inbound,
    scenario: &str,
    did: &str,
    fill: &[(&str, String)],
) -> tokio::process::Child {
    let mut text = std::fs::read_to_string(scenarios().join(scenario)).unwrap();
    for (k, v) in fill {
        text = text.replace(k, v);
    }
    let path = ib.dir.path().join(format!("{}-{scenario}", rand_tag()));
    std::fs::write(&path, text).unwrap();
    tokio::process::Command::new("sipp")
        .arg(format!("127.0.0.1:{}", ib.sip_port))
        .args(["-sf"])
        .arg(&path)
        .args([
            "-s",
            did,
            "-i",
            "127.0.0.1",
            "-p",
            &free_udp_port().to_string(),
        ])
        .args([
            "-t",
            "u1",
            "-nostdin",
            "-trace_err",
            "-timeout",
            "40",
            "-timeout_error",
        ])
        .args(["-m", "1"])
        .current_dir(ib.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp (apt-get install sip-tester)")
}

fn rand_tag() -> String {
    format!(
        "{:x}",
        Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id())
    ) + &free_port().to_string()
}

async fn carrier_ok(ib: &Inbound, mut c: tokio::process::Child, what: &str) {
    let st = tokio::time::timeout(Duration::from_secs(45), c.wait())
        .await
        .expect("sipp finished")
        .unwrap();
    if !st.success() {
        let errs: Vec<String> = std::fs::read_dir(ib.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("errors"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect();
        panic!(
            "carrier scenario {what} failed ({st}): {errs:?}\n--- gateway log ---\n{}",
            ib.env.gw.log_text()
        );
    }
}

async fn put_agent(env: &CallEnv, key: &str, id: &str) {
    let r = env
        .c
        .put(env.gw.url(&format!("/api/c2c/agents/{id}")))
        .header("x-api-key", key)
        .json(&json!({"name": id, "telephony_enabled": true}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

/// An agent's presence session: registered, connected, available.
async fn agent(env: &CallEnv, id: &str) -> (Ws, String) {
    agent_of(env, ACME_KEY, id).await
}

/// [`agent`] for the tenant of `key`.
async fn agent_of(env: &CallEnv, key: &str, id: &str) -> (Ws, String) {
    put_agent(env, key, id).await;
    let (s, tok) = json(
        env.c
            .post(env.gw.url(&format!("/api/c2c/agents/{id}/session")))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{tok}");
    let token = tok["token"].as_str().unwrap().to_string();
    let url = format!("ws://127.0.0.1:{}/api/c2c/agents/presence", env.gw.port);
    let mut ws = tokio_tungstenite::connect_async(url).await.unwrap().0;
    send(&mut ws, json!({"type": "auth", "token": token})).await;
    assert_eq!(next(&mut ws).await["type"], "ready");
    send(
        &mut ws,
        json!({"type": "set_availability", "availability": "available"}),
    )
    .await;
    let f = next_of(&mut ws, "availability").await;
    assert_eq!(f["availability"], "available", "{f}");
    (ws, token)
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

async fn next(ws: &mut Ws) -> Value {
    next_by(ws, tokio::time::Instant::now() + T).await
}

/// The next JSON frame before `deadline` (pings do not count as frames).
async fn next_by(ws: &mut Ws, deadline: tokio::time::Instant) -> Value {
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a frame in time");
        match m {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return json!({"close": true}),
            Some(Ok(_)) => continue,
        }
    }
}

/// Frames until one of `kind` (availability and other events are skipped).
async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let f = tokio::time::timeout_at(deadline, next_by(ws, deadline))
            .await
            .unwrap_or_else(|_| panic!("no {kind} frame in time"));
        if f["type"] == kind || f.get("close").is_some() {
            return f;
        }
    }
}

/// No frame of `kind` within `d`.
async fn none_of(ws: &mut Ws, kind: &str, d: Duration) {
    let deadline = tokio::time::Instant::now() + d;
    while let Ok(m) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Some(Ok(Message::Text(t))) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            assert_ne!(v["type"], kind, "unexpected {v}");
        }
    }
}

/// The agent's browser joins the accepted room and publishes its microphone.
async fn join(env: &CallEnv, room: &str, identity: &str) {
    let r = env
        .c
        .post(format!("{}/sim/rooms/{room}/join", env.sim))
        .json(&json!({"identity": identity}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "join: {}", r.text().await.unwrap());
}

async fn owner_call(env: &CallEnv, call_id: &str) -> Value {
    json(
        env.c
            .get(env.gw.url(&format!("/api/c2c/owner/calls/{call_id}")))
            .header("x-api-key", OWNER_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await
    .1
}

fn offers(rec: &Value) -> Vec<(String, String)> {
    rec["call"]["offers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|o| {
            (
                o["agent_id"].as_str().unwrap_or("").to_string(),
                o["outcome"].as_str().unwrap_or("open").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_call_is_answered_end_to_end_with_the_inbound_webhook() {
    let ib = start(None, |_| {}).await;
    let env = &ib.env;
    let (mut ws, _) = agent(env, "a1").await;
    let sipp = carrier(&ib, "inbound_answer.xml", DID, &[]);
    let inc = next_of(&mut ws, "incoming").await;
    assert_eq!(
        (inc["from"].as_str(), inc["to"].as_str()),
        (Some(CALLER), Some(DID)),
        "{inc}"
    );
    assert!(inc["lead"].is_null(), "no lookup configured: {inc}");
    let call_id = inc["call_id"].as_str().unwrap().to_string();
    assert!(inc["ring_ms"].as_u64().unwrap() <= 5_000);
    send(&mut ws, json!({"type": "accept", "call_id": call_id})).await;
    let acc = next_of(&mut ws, "accepted").await;
    assert_eq!(acc["call_id"], call_id.as_str(), "{acc}");
    let room = acc["room"].as_str().unwrap().to_string();
    assert!(acc["token"].as_str().unwrap().len() > 20 && acc["ws_url"].is_string());
    // Until the agent publishes audio LiveKit does not answer: the call still rings.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.get_call(&call_id).await["status"], "RINGING");
    join(env, &room, "a1").await;
    env.wait_status(&call_id, "ACTIVE", T).await;
    carrier_ok(&ib, sipp, "answered").await;
    let hook = env.webhook(&call_id, T).await;
    let b = &hook.body;
    assert_eq!(b["direction"], "inbound", "{b}");
    assert_eq!(b["call_status"], "ANSWERED", "{b}");
    assert_eq!(
        (b["phone_from"].as_str(), b["phone_to"].as_str()),
        (Some(CALLER), Some(DID))
    );
    assert_eq!(b["agent_id"], "a1");
    assert!(b["duration_seconds"].as_u64().unwrap() >= 1, "{b}");
    assert!(
        b.get("lead_id").is_none() && b.get("case_id").is_none(),
        "{b}"
    );
    let rec = owner_call(env, &call_id).await;
    assert_eq!(offers(&rec), [("a1".into(), "accepted".into())], "{rec}");
    // The carrier's forged X-C2C-Tenant was dropped; the call is acme's and was forwarded.
    let m = env.gw.metrics(&env.c).await;
    assert!(
        m.contains("c2c_sip_inbound_total{outcome=\"forwarded\"} 1"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_offer_goes_to_the_next_agent_and_an_unanswered_one_times_out() {
    let ib = start(None, |_| {}).await;
    let env = &ib.env;
    // a1 became available first: it has been idle longest and is offered first.
    let (mut a1, t1) = agent(env, "a1").await;
    let (mut a2, t2) = agent(env, "a2").await;
    let sipp = carrier(&ib, "inbound_answer.xml", DID, &[]);
    let inc = next_of(&mut a1, "incoming").await;
    let call_id = inc["call_id"].as_str().unwrap().to_string();
    send(&mut a1, json!({"type": "reject", "call_id": call_id})).await;
    let inc2 = next_of(&mut a2, "incoming").await;
    assert_eq!(inc2["call_id"], call_id.as_str());
    // a2 lets it ring out (5 s): its card closes, and as a1 declined, a2 is offered it
    // again once everyone had a turn.
    let t0 = Instant::now();
    let c = next_of(&mut a2, "incoming_cancelled").await;
    assert_eq!(c["reason"], "offer_timeout", "{c}");
    assert!(t0.elapsed() >= Duration::from_secs(3), "{:?}", t0.elapsed());
    let again = next_of(&mut a2, "incoming").await;
    assert_eq!(again["call_id"], call_id.as_str());
    // a1 declined: an accept from it is refused.
    send(&mut a1, json!({"type": "accept", "call_id": call_id})).await;
    let e = next_of(&mut a1, "error").await;
    assert_eq!(
        (e["code"].as_str(), e["call_id"].as_str()),
        (Some("not_offered"), Some(call_id.as_str())),
        "{e}"
    );
    // Over HTTP: no token, a1's token (declined), a forged one, then a2 takes it with
    // its presence token; accepting again gives the same room.
    let accept = |token: Option<String>| {
        let mut r = env
            .c
            .post(env.gw.url(&format!("/api/c2c/calls/{call_id}/accept")));
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        async move { json(r.send().await.unwrap()).await }
    };
    let (s, v) = accept(None).await;
    assert_eq!((s, error_code(&v)), (401, "invalid_token"), "{v}");
    let (s, v) = accept(Some(format!("{t2}x"))).await;
    assert_eq!((s, error_code(&v)), (401, "invalid_token"), "{v}");
    let (s, v) = accept(Some(t1.clone())).await;
    assert_eq!((s, error_code(&v)), (403, "not_offered"), "{v}");
    let (s, acc) = accept(Some(t2.clone())).await;
    assert_eq!(s, 200, "{acc}");
    assert_eq!(acc["call_id"], call_id.as_str());
    let (s, again) = accept(Some(t2)).await;
    assert_eq!((s, &again["room"]), (200, &acc["room"]), "{again}");
    join(env, acc["room"].as_str().unwrap(), "a2").await;
    carrier_ok(&ib, sipp, "answered after reject and timeout").await;
    let hook = env.webhook(&call_id, T).await;
    assert_eq!(hook.body["agent_id"], "a2");
    let rec = owner_call(env, &call_id).await;
    assert_eq!(
        offers(&rec),
        [
            ("a1".into(), "rejected".into()),
            ("a2".into(), "timeout".into()),
            ("a2".into(), "accepted".into())
        ],
        "{rec}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_hanging_up_closes_the_card_at_once_and_the_call_is_missed() {
    let ib = start(None, |_| {}).await;
    let env = &ib.env;
    let (mut ws, _) = agent(env, "a1").await;
    let sipp = carrier(
        &ib,
        "inbound_cancel.xml",
        DID,
        &[("@PAUSE@", "1500".into())],
    );
    let inc = next_of(&mut ws, "incoming").await;
    let call_id = inc["call_id"].as_str().unwrap().to_string();
    let c = next_of(&mut ws, "incoming_cancelled").await;
    assert_eq!(
        (c["call_id"].as_str(), c["reason"].as_str()),
        (Some(call_id.as_str()), Some("caller_hung_up"))
    );
    carrier_ok(&ib, sipp, "cancel").await;
    let hook = env.webhook(&call_id, T).await;
    assert_eq!(hook.body["call_status"], "MISSED", "{}", hook.body);
    assert_eq!(hook.body["agent_id"], "");
    // Accepting a call that is gone is refused, over HTTP too.
    send(&mut ws, json!({"type": "accept", "call_id": call_id})).await;
    assert_eq!(next_of(&mut ws, "error").await["code"], "offer_gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_agent_is_480_at_once_and_bad_numbers_and_sources_are_refused() {
    let ib = start(None, |p| {
        // LiveKit SIP elsewhere (here the carrier and LiveKit share 127.0.0.1, and a
        // request from a LiveKit node with a number that is no DID is an outbound call).
        p.edit(
            "gateway.toml",
            "sip_sources = [\"127.0.0.1/32\"]",
            "sip_sources = [\"127.0.0.2/32\"]",
        );
        // A second DID on a trunk whose carrier sends from elsewhere only.
        p.edit(
            "tenants/acme.toml",
            "carrier = \"sip:127.0.0.1:5081\"",
            "carrier = \"sip:127.0.0.1:5081\"\nsources = [\"10.9.9.9/32\"]",
        );
        p.edit(
            "tenants/acme.toml",
            "trunk = \"airtel-mum\"\n",
            "trunk = \"airtel-mum\"\n\n[[inbound.numbers]]\ndid = \"+918045678902\"\ntrunk = \"jio-del\"\n",
        );
    })
    .await;
    let env = &ib.env;
    let t0 = Instant::now();
    let sipp = carrier(&ib, "inbound_final.xml", DID, &[("@CODE@", "480".into())]);
    carrier_ok(&ib, sipp, "480 no agent").await;
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "480 took {:?}",
        t0.elapsed()
    );
    let missed = env.sink.all();
    let b = &missed.last().expect("a webhook for the missed call").body;
    assert_eq!(
        (b["call_status"].as_str(), b["direction"].as_str()),
        (Some("MISSED"), Some("inbound"))
    );
    let sipp = carrier(
        &ib,
        "inbound_final.xml",
        "+918045678999",
        &[("@CODE@", "404".into())],
    );
    carrier_ok(&ib, sipp, "404 unknown DID").await;
    let sipp = carrier(
        &ib,
        "inbound_final.xml",
        "+918045678902",
        &[("@CODE@", "403".into())],
    );
    carrier_ok(&ib, sipp, "403 wrong source").await;
    let m = env.gw.metrics(&env.c).await;
    for outcome in ["unknown_did", "forbidden_source"] {
        assert!(
            m.contains(&format!("c2c_sip_inbound_total{{outcome=\"{outcome}\"}} 1")),
            "{outcome}: {m}"
        );
    }
    assert!(
        m.contains("c2c_inbound_refused_total{reason=\"no_agent\"} 1"),
        "{m}"
    );
    // Refused calls store nothing: only the missed one is in the log.
    assert_eq!(env.sink.all().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_lead_comes_as_an_update_and_a_failing_lookup_still_rings() {
    // Lookups: 2.5 s (past the 1500 ms race) with a lead, except the second: a 500.
    let mode = Arc::new(AtomicU8::new(0));
    let m = mode.clone();
    let crm = Receiver::start(move |req| {
        assert_eq!(
            req.header("x-api-key"),
            Some("acme-crm-outbound-dev-key"),
            "outbound key"
        );
        let n = m.fetch_add(1, Ordering::SeqCst);
        std::future::ready(if n != 1 {
            Reply::status(200)
                .body(r#"{"lead_id":"L-7","name":"Asha","stage":"demo booked"}"#)
                .delay(Duration::from_millis(2500))
        } else {
            Reply::status(500)
        })
    })
    .await
    .unwrap();
    let url = crm.url("/lead-lookup");
    let ib = start(Some(&url), |_| {}).await;
    let env = &ib.env;
    let (mut ws, _) = agent(env, "a1").await;
    let sipp = carrier(
        &ib,
        "inbound_cancel.xml",
        DID,
        &[("@PAUSE@", "4000".into())],
    );
    let t0 = Instant::now();
    let inc = next_of(&mut ws, "incoming").await;
    let waited = t0.elapsed();
    assert!(inc["lead"].is_null(), "{inc}");
    assert!(
        waited >= Duration::from_millis(1300) && waited < Duration::from_millis(2400),
        "{waited:?}"
    );
    let up = next_of(&mut ws, "incoming_update").await;
    assert_eq!(
        (up["call_id"].as_str(), up["lead"]["lead_id"].as_str()),
        (inc["call_id"].as_str(), Some("L-7")),
        "{up}"
    );
    assert_eq!(up["lead"]["stage"], "demo booked");
    carrier_ok(&ib, sipp, "cancel after the lead").await;
    let call_id = inc["call_id"].as_str().unwrap();
    let hook = env.webhook(call_id, T).await;
    assert_eq!(hook.body["lead_id"], "L-7", "{}", hook.body);
    // The CRM fails: the call rings anyway, with no lead.
    let sipp = carrier(
        &ib,
        "inbound_cancel.xml",
        DID,
        &[("@PAUSE@", "2000".into())],
    );
    let inc = next_of(&mut ws, "incoming").await;
    assert!(inc["lead"].is_null());
    carrier_ok(&ib, sipp, "cancel without a lead").await;
    // The caller hangs up while the lead is still awaited: the agent never sees the
    // call, and it is MISSED.
    let sipp = carrier(&ib, "inbound_cancel.xml", DID, &[("@PAUSE@", "300".into())]);
    carrier_ok(&ib, sipp, "cancel before the incoming event").await;
    none_of(&mut ws, "incoming", Duration::from_millis(1500)).await;
    assert!(eventually(T, || async { env.sink.all().len() == 3 }).await);
    let calls = env.sink.all();
    let last = &calls[2].body;
    assert_eq!(last["call_status"], "MISSED", "{last}");
    assert_ne!(last["call_id"], inc["call_id"], "a third call: {last}");
    let m = env.gw.metrics(&env.c).await;
    assert!(
        m.contains("c2c_inbound_lookups_total{outcome=\"found\",tenant=\"acme\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("c2c_inbound_lookups_total{outcome=\"error\",tenant=\"acme\"} 1"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_on_an_outbound_call_is_never_offered() {
    let ib = start(None, |_| {}).await;
    let env = &ib.env;
    // agent-42 (the outbound helper's agent) is available, then dials out.
    let (mut busy, _) = agent(env, "agent-42").await;
    let (mut free, _) = agent(env, "a2").await;
    env.scenario(
        "9530251797",
        json!({"ring_after_ms": 50, "outcome": {"kind": "answer", "after_ms": 100}}),
    )
    .await;
    let (out_call, _) = env.start_call("9530251797").await;
    let sipp = carrier(
        &ib,
        "inbound_cancel.xml",
        DID,
        &[("@PAUSE@", "2500".into())],
    );
    let inc = next_of(&mut free, "incoming").await;
    carrier_ok(&ib, sipp, "cancel").await;
    none_of(&mut busy, "incoming", Duration::from_millis(500)).await;
    assert_ne!(inc["call_id"], out_call.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_ringing_ends_the_call_missed_after_restart() {
    let mut ib = start(None, |_| {}).await;
    let (mut ws, _) = agent(&ib.env, "a1").await;
    let sipp = carrier(&ib, "inbound_ring.xml", DID, &[]);
    let inc = next_of(&mut ws, "incoming").await;
    let call_id = inc["call_id"].as_str().unwrap().to_string();
    drop(ws);
    ib.env.gw.restart_hard();
    let env = &ib.env;
    let rec = env.wait_status(&call_id, "ENDED", T).await;
    assert_eq!(rec["call_status"], "MISSED", "{rec}");
    let hook = env.webhook(&call_id, T).await;
    assert_eq!(hook.body["call_status"], "MISSED");
    let owner = owner_call(env, &call_id).await;
    assert_eq!(
        owner["call"]["disconnect_reason"], "gateway_restarted",
        "{owner}"
    );
    drop(sipp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlt_gating_is_for_outbound_only() {
    // globex's Principal Entity is not verified (outbound off): its customers can still
    // call it, and its agents take those calls.
    let ib = start(None, |p| {
        let globex = std::fs::read_to_string(p.path().join("tenants/globex.toml")).unwrap();
        p.write(
            "tenants/globex.toml",
            &format!(
                "{globex}\n[[inbound.numbers]]\ndid = \"+918045670000\"\ntrunk = \"vi-blr\"\n"
            ),
        );
    })
    .await;
    let env = &ib.env;
    let key = env.tenant_key_in_force("globex", "globex-t").await;
    let (s, v) = json(
        env.c
            .post(env.gw.url("/api/c2c/click2call"))
            .header("x-api-key", &key)
            .json(&json!({"case_id": "c", "customer_number": "9530251797", "agent_id": "g1", "customer_crm_id": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, error_code(&v)),
        (403, "dlt_pending"),
        "outbound is gated: {v}"
    );
    let (mut ws, _) = agent_of(env, &key, "g1").await;
    let sipp = carrier(&ib, "inbound_answer.xml", "+918045670000", &[]);
    let inc = next_of(&mut ws, "incoming").await;
    assert_eq!(inc["to"], "+918045670000");
    send(
        &mut ws,
        json!({"type": "accept", "call_id": inc["call_id"]}),
    )
    .await;
    let acc = next_of(&mut ws, "accepted").await;
    join(env, acc["room"].as_str().unwrap(), "g1").await;
    carrier_ok(&ib, sipp, "globex inbound answered").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_gateway_refuses_new_inbound_calls_503() {
    let ib = start(None, |_| {}).await;
    let env = &ib.env;
    let (_ws, _) = agent(env, "a1").await;
    // SIGTERM: the gateway drains (server.grace_period_seconds) before it stops; a
    // caller taken now could not ring out, so the carrier is told to try elsewhere.
    env.gw.send_sigterm();
    let ok = eventually(T, || async {
        matches!(
            env.c
                .get(env.gw.url("/readyz"))
                .send()
                .await
                .map(|r| r.status().as_u16()),
            Ok(503)
        )
    })
    .await;
    assert!(ok, "the gateway never started draining");
    let sipp = carrier(&ib, "inbound_final.xml", DID, &[("@CODE@", "503".into())]);
    carrier_ok(&ib, sipp, "503 while draining").await;
    let m = env.gw.metrics(&env.c).await;
    assert!(
        m.contains("c2c_inbound_refused_total{reason=\"draining\"} 1"),
        "{m}"
    );
}
