//! Agents end to end, against the real binary: the registry over HTTP (on disk, across a
//! kill -9), click2call and /connect gating, the presence WebSocket with real sockets
//! (tokio-tungstenite), the rules of docs/agents.md, bad input, and the token refresh of
//! an open call.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::calls::CallEnv;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const NUMBER: &str = "9876543210";
const T: Duration = Duration::from_secs(10);
const CONSOLE_KEY: &str = "c2c_MVFatqflX4eiQMbYpIWckdWX2N2SGJ2iWdKu";

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn put_agent(env: &CallEnv, id: &str, name: &str, telephony: bool) -> (u16, Value) {
    json(
        env.c
            .put(env.gw.url(&format!("/api/c2c/agents/{id}")))
            .header("x-api-key", ACME_KEY)
            .json(&json!({"name": name, "telephony_enabled": telephony}))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn get_agent(env: &CallEnv, id: &str) -> (u16, Value) {
    json(
        env.c
            .get(env.gw.url(&format!("/api/c2c/agents/{id}")))
            .header("x-api-key", ACME_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// A presence token for `id` (`supervisor` also streams the tenant's changes).
async fn session_token(env: &CallEnv, id: &str, supervisor: bool) -> Value {
    let (s, v) = json(
        env.c
            .post(env.gw.url(&format!("/api/c2c/agents/{id}/session")))
            .header("x-api-key", ACME_KEY)
            .json(&json!({"supervisor": supervisor}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v
}

async fn open_socket(env: &CallEnv) -> Ws {
    let url = format!("ws://127.0.0.1:{}/api/c2c/agents/presence", env.gw.port);
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// The next JSON frame, or `{"close": code}` when the socket closes.
async fn next(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(T, ws.next())
            .await
            .expect("a frame in time");
        match m {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(Message::Close(c))) => {
                return json!({"close": c.map(|c| u16::from(c.code)).unwrap_or(0)})
            }
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return json!({"close": 0}),
        }
    }
}

/// Frames until one of `type`, skipping others.
async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let f = next(ws).await;
        if f["type"] == kind || f.get("close").is_some() {
            return f;
        }
    }
}

/// An authenticated socket and its `ready` frame.
async fn connect(env: &CallEnv, token: &Value, resume: Option<&str>) -> (Ws, Value) {
    let mut ws = open_socket(env).await;
    let mut auth = json!({"type": "auth", "token": token["token"]});
    if let Some(r) = resume {
        auth["resume"] = json!(r);
    }
    send(&mut ws, auth).await;
    let ready = next(&mut ws).await;
    assert_eq!(ready["type"], "ready", "{ready}");
    (ws, ready)
}

async fn set(ws: &mut Ws, availability: &str) {
    send(
        ws,
        json!({"type": "set_availability", "availability": availability}),
    )
    .await;
}

#[tokio::test]
async fn registry_writes_lists_pages_and_survives_kill_9() {
    let mut env = CallEnv::start("poll").await;
    let (s, v) = put_agent(&env, "agent-42", "Asha Rao", true).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["availability"], "offline");
    assert_eq!(v["on_call"], false);
    let (s, v) = put_agent(&env, "agent-42", "Asha R.", false).await;
    assert_eq!(
        (s, &v["name"], &v["telephony_enabled"]),
        (200, &json!("Asha R."), &json!(false))
    );
    for id in ["a-1", "a-2", "a-3"] {
        assert_eq!(put_agent(&env, id, id, true).await.0, 201);
    }
    // An id a path must percent-encode.
    let (s, v) = put_agent(&env, "ops%2Fdesk%201", "Desk", true).await;
    assert_eq!(
        (s, v["agent_id"].as_str()),
        (201, Some("ops/desk 1")),
        "{v}"
    );
    // `&` and `+` in a path are themselves.
    let (s, v) = put_agent(&env, "sales&east+1", "East", true).await;
    assert_eq!(
        (s, v["agent_id"].as_str()),
        (201, Some("sales&east+1")),
        "{v}"
    );

    let page = |cursor: Option<String>| {
        let env = &env;
        async move {
            let mut url = url::Url::parse(&env.gw.url("/api/c2c/agents?limit=2")).unwrap();
            if let Some(c) = cursor {
                url.query_pairs_mut().append_pair("cursor", &c);
            }
            json(
                env.c
                    .get(url)
                    .header("x-api-key", ACME_KEY)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let (s, v) = page(cursor.clone()).await;
        assert_eq!(s, 200, "{v}");
        ids.extend(
            v["agents"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["agent_id"].as_str().unwrap().to_owned()),
        );
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        ids,
        [
            "a-1",
            "a-2",
            "a-3",
            "agent-42",
            "ops/desk 1",
            "sales&east+1"
        ]
    );

    let del = |id: &'static str| {
        let env = &env;
        async move {
            env.c
                .delete(env.gw.url(&format!("/api/c2c/agents/{id}")))
                .header("x-api-key", ACME_KEY)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(del("a-3").await, 204);
    assert_eq!(del("a-3").await, 404);
    let (s, v) = get_agent(&env, "a-3").await;
    assert_eq!((s, error_code(&v)), (404, "unknown_agent"));

    // Durable: a kill -9 keeps every acknowledged write.
    env.gw.restart_hard();
    env.c = client();
    let (s, v) = get_agent(&env, "agent-42").await;
    assert_eq!((s, &v["name"]), (200, &json!("Asha R.")), "{v}");
    assert_eq!(get_agent(&env, "a-3").await.0, 404);
    assert_eq!(get_agent(&env, "a-1").await.0, 200);
}

#[tokio::test]
async fn bad_input_changes_nothing_and_tenants_are_apart() {
    let env = CallEnv::start("poll").await;
    let raw_put = |id: &'static str, body: &'static str, key: Option<&'static str>| {
        let env = &env;
        async move {
            let mut r = env
                .c
                .put(env.gw.url(&format!("/api/c2c/agents/{id}")))
                .header("content-type", "application/json")
                .body(body);
            if let Some(k) = key {
                r = r.header("x-api-key", k);
            }
            json(r.send().await.unwrap()).await
        }
    };
    let good = r#"{"name": "Asha", "telephony_enabled": true}"#;
    let cases = [
        ("a1", "{", Some(ACME_KEY), 400, "invalid_json"),
        (
            "a1",
            r#"{"name": "A", "telephony_enabled": true, "role": "x"}"#,
            Some(ACME_KEY),
            400,
            "invalid_json",
        ),
        (
            "a1",
            r#"{"name": "", "telephony_enabled": true}"#,
            Some(ACME_KEY),
            422,
            "invalid_field",
        ),
        (
            "a1",
            r#"{"name": "A\u0007", "telephony_enabled": true}"#,
            Some(ACME_KEY),
            422,
            "invalid_field",
        ),
        (
            "a1",
            r#"{"name": "A", "telephony_enabled": "yes"}"#,
            Some(ACME_KEY),
            400,
            "invalid_json",
        ),
        ("a1", good, None, 401, "unauthorized"),
        ("a1", good, Some(OWNER_KEY), 403, "forbidden"),
        ("%07", good, Some(ACME_KEY), 422, "invalid_field"),
    ];
    for (id, body, key, status, code) in cases {
        let (s, v) = raw_put(id, body, key).await;
        assert_eq!((s, error_code(&v)), (status, code), "{id} {body}: {v}");
    }
    let long = "x".repeat(129);
    let (s, v) = put_agent(&env, &long, "A", true).await;
    assert_eq!((s, error_code(&v)), (422, "invalid_field"), "{v}");
    let (s, v) = json(
        env.c
            .get(env.gw.url("/api/c2c/agents"))
            .header("x-api-key", ACME_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, v["agents"].as_array().unwrap().len()),
        (200, 0),
        "nothing was written: {v}"
    );
    let (s, v) = json(
        env.c
            .get(env.gw.url("/api/c2c/agents?limit=0"))
            .header("x-api-key", ACME_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, error_code(&v)), (422, "invalid_limit"));
    // A session for an agent that does not exist.
    let (s, v) = json(
        env.c
            .post(env.gw.url("/api/c2c/agents/ghost/session"))
            .header("x-api-key", ACME_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, error_code(&v)), (404, "unknown_agent"));

    // Another tenant sees none of acme's agents, and cannot touch them.
    assert_eq!(put_agent(&env, "agent-42", "Asha", true).await.0, 201);
    let globex = env.tenant_key_in_force("globex", "globex-t").await;
    let (s, v) = json(
        env.c
            .get(env.gw.url("/api/c2c/agents/agent-42"))
            .header("x-api-key", &globex)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, error_code(&v)), (404, "unknown_agent"));
    let s = env
        .c
        .delete(env.gw.url("/api/c2c/agents/agent-42"))
        .header("x-api-key", &globex)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, 404);
    assert_eq!(get_agent(&env, "agent-42").await.0, 200);
    let (s, v) = json(
        env.c
            .get(env.gw.url("/api/c2c/console/tenants/acme/agents"))
            .header("x-api-key", &globex)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 403, "{v}");
}

#[tokio::test]
async fn click2call_and_connect_gate_registered_agents() {
    let env = CallEnv::start("poll").await;
    env.scenario(
        NUMBER,
        json!({"ring_after_ms": 100, "outcome": {"kind": "answer", "after_ms": 300}}),
    )
    .await;
    // Unregistered agents keep working (legacy CRMs), even two calls at once.
    let (a, _) = env.start_call(NUMBER).await;
    let (b, _) = env.start_call(NUMBER).await;
    env.hang_up(&a).await;
    env.hang_up(&b).await;

    // Telephony off: 403, and nothing is created at LiveKit.
    assert_eq!(put_agent(&env, "agent-42", "Asha", false).await.0, 201);
    let rooms_before = env.sim_stats().await["rooms_created"].clone();
    let (s, v) = env.click2call(NUMBER).await;
    assert_eq!((s, error_code(&v)), (403, "agent_disabled"), "{v}");
    assert_eq!(
        env.sim_stats().await["rooms_created"],
        rooms_before,
        "no room created"
    );

    // On a call: the second click2call is 409, a call created before the first
    // connected cannot dial either; when the call ends the agent is free again.
    assert_eq!(put_agent(&env, "agent-42", "Asha", true).await.0, 200);
    let (s, early) = env.click2call(NUMBER).await;
    assert_eq!(s, 200, "{early}");
    let (first, _) = env.start_call(NUMBER).await;
    assert_eq!(get_agent(&env, "agent-42").await.1["on_call"], true);
    let (s, v) = env.click2call(NUMBER).await;
    assert_eq!((s, error_code(&v)), (409, "agent_busy"), "{v}");
    let early_id = early["call_id"].as_str().unwrap();
    env.agent_joins(early["room"].as_str().unwrap()).await;
    let (s, v) = env
        .post(&format!("/api/c2c/calls/{early_id}/connect"))
        .await;
    assert_eq!((s, error_code(&v)), (409, "agent_busy"), "{v}");
    env.hang_up(&first).await;
    assert!(
        eventually(T, || async {
            get_agent(&env, "agent-42").await.1["on_call"] == false
        })
        .await
    );
    let (s, v) = env
        .post(&format!("/api/c2c/calls/{early_id}/connect"))
        .await;
    assert_eq!(s, 200, "the agent is free again: {v}");
    env.hang_up(early_id).await;
    let m = env.gw.metrics(&env.c).await;
    assert!(
        m.contains(r#"c2c_agent_refusals_total{code="agent_busy",tenant="acme"} 2"#),
        "{m}"
    );

    // The tenant's rules: concurrent calls allowed; registration required.
    env.policies.edit(
        "tenants/acme.toml",
        "[[trunks]]",
        "[agents]\nrequire_registration = true\nallow_concurrent_calls = true\n\n[[trunks]]",
    );
    let ok = eventually(Duration::from_secs(15), || async {
        let (s, v) = json(
            env.c
                .post(env.gw.url("/api/c2c/click2call"))
                .header("x-api-key", ACME_KEY)
                .json(&json!({"case_id": "c", "customer_number": NUMBER,
                    "agent_id": "nobody", "customer_crm_id": "x"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        s == 403 && error_code(&v) == "agent_not_registered"
    })
    .await;
    assert!(ok, "require_registration never took effect");
    let (c1, _) = env.start_call(NUMBER).await;
    let (c2, _) = env.start_call(NUMBER).await;
    env.hang_up(&c1).await;
    env.hang_up(&c2).await;
}

#[tokio::test]
async fn presence_starts_offline_sets_fans_out_and_replaces() {
    let env = CallEnv::start("poll").await;
    put_agent(&env, "agent-42", "Asha", true).await;
    put_agent(&env, "boss", "Supervisor", true).await;
    let sup_token = session_token(&env, "boss", true).await;
    assert!(sup_token["ws_url"]
        .as_str()
        .unwrap()
        .ends_with("/api/c2c/agents/presence"));
    let (mut sup, ready) = connect(&env, &sup_token, None).await;
    assert_eq!(ready["supervisor"], true);
    let snapshot = next(&mut sup).await;
    assert_eq!(snapshot["type"], "agents");
    assert_eq!(snapshot["agents"].as_array().unwrap().len(), 2);

    let token = session_token(&env, "agent-42", false).await;
    let (mut ws, ready) = connect(&env, &token, None).await;
    assert_eq!(
        (&ready["availability"], &ready["telephony_enabled"]),
        (&json!("offline"), &json!(true))
    );
    set(&mut ws, "available").await;
    let own = next_of(&mut ws, "availability").await;
    assert_eq!(
        (&own["availability"], &own["reason"]),
        (&json!("available"), &json!("set"))
    );
    let seen = next_of(&mut sup, "availability").await;
    assert_eq!(
        (&seen["agent_id"], &seen["availability"]),
        (&json!("agent-42"), &json!("available"))
    );
    assert_eq!(
        get_agent(&env, "agent-42").await.1["availability"],
        "available"
    );
    let m = env.gw.metrics(&env.c).await;
    assert!(
        m.contains(r#"c2c_agents{availability="available",tenant="acme"} 1"#),
        "{m}"
    );
    assert!(m.contains("c2c_presence_sessions 2"), "{m}");

    send(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next(&mut ws).await["type"], "pong");
    set(&mut ws, "busy").await;
    assert_eq!(next(&mut ws).await["code"], "invalid_availability");

    // A second session replaces the first, which hears why; the agent is offline again.
    let (mut ws2, ready2) = connect(&env, &token, None).await;
    assert_eq!(ready2["availability"], "offline");
    assert_eq!(next(&mut ws).await["type"], "replaced");
    assert_eq!(next(&mut ws).await["close"], 4409);
    let seen = next_of(&mut sup, "availability").await;
    assert_eq!(
        (&seen["availability"], &seen["reason"]),
        (&json!("offline"), &json!("replaced"))
    );

    // Telephony turned off (console toggle, audited) makes an available agent offline.
    // The new session heard the replacement too (it is the agent's session now).
    let ev = next_of(&mut ws2, "availability").await;
    assert_eq!(
        (&ev["availability"], &ev["reason"]),
        (&json!("offline"), &json!("replaced"))
    );
    set(&mut ws2, "away").await;
    assert_eq!(
        next_of(&mut ws2, "availability").await["availability"],
        "away"
    );
    let (s, v) = json(
        env.c
            .post(
                env.gw
                    .url("/api/c2c/console/tenants/acme/agents/agent-42/telephony"),
            )
            .header("x-api-key", CONSOLE_KEY)
            .json(&json!({"enabled": false}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, &v["telephony_enabled"]), (200, &json!(false)), "{v}");
    let ev = next_of(&mut ws2, "availability").await;
    assert_eq!(
        (&ev["availability"], &ev["reason"]),
        (&json!("offline"), &json!("telephony_disabled"))
    );
    set(&mut ws2, "available").await;
    assert_eq!(next_of(&mut ws2, "error").await["code"], "agent_disabled");
    let (_, audit) = json(
        env.c
            .get(env.gw.url("/api/c2c/console/tenants/acme/agents/audit"))
            .header("x-api-key", CONSOLE_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let newest = &audit["entries"][0];
    assert_eq!(
        (
            &newest["field"],
            &newest["old"],
            &newest["new"],
            &newest["key_id"]
        ),
        (
            &json!("telephony_enabled"),
            &json!(true),
            &json!(false),
            &json!("acme-console")
        ),
        "{audit}"
    );

    // Removing the agent closes its socket.
    let s = env
        .c
        .delete(env.gw.url("/api/c2c/agents/agent-42"))
        .header("x-api-key", ACME_KEY)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, 204);
    assert_eq!(next_of(&mut ws2, "none").await["close"], 4410);
}

#[tokio::test]
async fn presence_refuses_bad_tokens_frames_and_floods() {
    let env = CallEnv::start("poll").await;
    put_agent(&env, "agent-42", "Asha", true).await;
    let token = session_token(&env, "agent-42", false).await;
    let t = token["token"].as_str().unwrap();

    // Forged: the payload edited to another agent, the signature kept.
    let (head, tag) = t.rsplit_once('.').unwrap();
    let forged = format!("{}A.{tag}", head);
    for bad in [forged.as_str(), "pt1.e30.AAAA", "", "not a token"] {
        let mut ws = open_socket(&env).await;
        send(&mut ws, json!({"type": "auth", "token": bad})).await;
        assert_eq!(next(&mut ws).await["close"], 4401, "{bad}");
    }
    // Not an auth frame first; binary; oversized.
    let mut ws = open_socket(&env).await;
    send(
        &mut ws,
        json!({"type": "set_availability", "availability": "available"}),
    )
    .await;
    assert_eq!(next(&mut ws).await["close"], 4400);
    let mut ws = open_socket(&env).await;
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(next(&mut ws).await["close"], 4400);
    let (mut ws, _) = connect(&env, &token, None).await;
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(next(&mut ws).await["close"], 1003);
    let (mut ws, _) = connect(&env, &token, None).await;
    ws.send(Message::text("x".repeat(10_000))).await.unwrap();
    assert_eq!(next(&mut ws).await["close"], 1009);
    let (mut ws, _) = connect(&env, &token, None).await;
    send(&mut ws, json!({"type": "nonsense"})).await;
    assert_eq!(next(&mut ws).await["close"], 4400);

    // A flood of availability changes: rate-limited, then closed.
    let (mut ws, _) = connect(&env, &token, None).await;
    for i in 0..12 {
        set(&mut ws, if i % 2 == 0 { "away" } else { "offline" }).await;
    }
    let mut limited = false;
    for _ in 0..12 {
        let f = next(&mut ws).await;
        if f["code"] == "rate_limited" {
            limited = true;
            break;
        }
    }
    assert!(limited, "the eleventh change in a burst is refused");
    for _ in 0..80 {
        if ws.send(Message::text(r#"{"type":"ping"}"#)).await.is_err() {
            break;
        }
    }
    assert_eq!(next_of(&mut ws, "none").await["close"], 4429);

    // A plain GET (no upgrade) is told to upgrade; the gateway is still healthy.
    let (s, v) = json(
        env.c
            .get(env.gw.url("/api/c2c/agents/presence"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, error_code(&v)), (426, "upgrade_required"));
    let m = env.gw.metrics(&env.c).await;
    assert!(
        m.contains(r#"c2c_presence_refused_total{reason="unauthorized"} 4"#),
        "{m}"
    );
    assert!(
        m.contains("c2c_presence_sessions 0") || m.contains("c2c_presence_sessions 1"),
        "{m}"
    );
}

#[tokio::test]
async fn no_auth_frame_in_time_is_closed() {
    let env = CallEnv::start("poll").await;
    let mut ws = open_socket(&env).await;
    let started = std::time::Instant::now();
    let m = tokio::time::timeout(Duration::from_secs(15), ws.next())
        .await
        .unwrap();
    let Some(Ok(Message::Close(Some(c)))) = m else {
        panic!("expected a close frame, got {m:?}");
    };
    assert_eq!(u16::from(c.code), 4408);
    assert!(started.elapsed() >= Duration::from_secs(9));
}

#[tokio::test]
async fn a_drop_keeps_availability_for_the_grace_and_a_restart_starts_offline() {
    let mut env = CallEnv::start("poll").await;
    env.policies.write(
        "gateway.toml",
        &(std::fs::read_to_string(env.policies.path().join("gateway.toml")).unwrap()
            + "\n[agents]\npresence_grace_seconds = 2\n"),
    );
    put_agent(&env, "agent-42", "Asha", true).await;
    let token = session_token(&env, "agent-42", false).await;
    // The grace knob is hot: wait for the reload before relying on it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (mut ws, ready) = connect(&env, &token, None).await;
    let session = ready["session_id"].as_str().unwrap().to_owned();
    set(&mut ws, "available").await;
    next_of(&mut ws, "availability").await;
    drop(ws);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        get_agent(&env, "agent-42").await.1["availability"],
        "available",
        "within the grace"
    );
    // A reconnect that resumes keeps it.
    let (ws, ready) = connect(&env, &token, Some(&session)).await;
    assert_eq!(ready["availability"], "available");
    drop(ws);
    let offline = eventually(Duration::from_secs(6), || async {
        get_agent(&env, "agent-42").await.1["availability"] == "offline"
    })
    .await;
    assert!(offline, "the grace ran out");

    // After a restart the same token still works (the secret is in the store), and the
    // session starts offline even when it asks to resume.
    let (mut ws, ready) = connect(&env, &token, None).await;
    set(&mut ws, "available").await;
    next_of(&mut ws, "availability").await;
    let session = ready["session_id"].as_str().unwrap().to_owned();
    env.gw.restart_hard();
    env.c = client();
    let (_ws, ready) = connect(&env, &token, Some(&session)).await;
    assert_eq!(ready["availability"], "offline");
    assert_eq!(
        get_agent(&env, "agent-42").await.1["availability"],
        "offline"
    );
}

#[tokio::test]
async fn a_supervisor_never_hears_another_tenant() {
    let env = CallEnv::start("poll").await;
    let globex = env.tenant_key_in_force("globex", "globex-t").await;
    let (s, _) = json(
        env.c
            .put(env.gw.url("/api/c2c/agents/g-boss"))
            .header("x-api-key", &globex)
            .json(&json!({"name": "G", "telephony_enabled": true}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 201);
    let (_, gtoken) = json(
        env.c
            .post(env.gw.url("/api/c2c/agents/g-boss/session"))
            .header("x-api-key", &globex)
            .json(&json!({"supervisor": true}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (mut gsup, _) = connect(&env, &gtoken, None).await;
    let snap = next(&mut gsup).await;
    assert_eq!(snap["agents"].as_array().unwrap().len(), 1, "{snap}");
    put_agent(&env, "agent-42", "Asha", true).await;
    let token = session_token(&env, "agent-42", false).await;
    let (mut ws, _) = connect(&env, &token, None).await;
    set(&mut ws, "available").await;
    next_of(&mut ws, "availability").await;
    send(&mut gsup, json!({"type": "ping"})).await;
    // The next frame globex's supervisor gets is its own pong: nothing of acme's.
    assert_eq!(next(&mut gsup).await["type"], "pong");
    // A console supervisor-only session of acme does hear it.
    let (_, ctoken) = json(
        env.c
            .post(env.gw.url("/api/c2c/console/tenants/acme/presence-session"))
            .header("x-api-key", CONSOLE_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (mut csup, ready) = connect(&env, &ctoken, None).await;
    assert_eq!(ready["agent_id"], Value::Null);
    let snap = next(&mut csup).await;
    assert_eq!(snap["agents"][0]["availability"], "available", "{snap}");
    set(&mut ws, "away").await;
    assert_eq!(
        next_of(&mut csup, "availability").await["availability"],
        "away"
    );
    send(
        &mut csup,
        json!({"type": "set_availability", "availability": "available"}),
    )
    .await;
    assert_eq!(next_of(&mut csup, "error").await["code"], "no_agent");
}

#[tokio::test]
async fn an_open_call_gets_fresh_tokens_for_its_token_holder_only() {
    let env = CallEnv::start("poll").await;
    env.scenario(
        NUMBER,
        json!({"ring_after_ms": 100, "outcome": {"kind": "answer", "after_ms": 200}}),
    )
    .await;
    let (s, first) = env.click2call(NUMBER).await;
    assert_eq!(s, 200, "{first}");
    let call_id = first["call_id"].as_str().unwrap().to_owned();
    let room = first["room"].as_str().unwrap().to_owned();
    env.agent_joins(&room).await;
    assert_eq!(
        env.post(&format!("/api/c2c/calls/{call_id}/connect"))
            .await
            .0,
        200
    );
    let refresh = |bearer: Option<String>| {
        let env = &env;
        let call_id = call_id.clone();
        async move {
            let mut r = env
                .c
                .post(env.gw.url(&format!("/api/c2c/calls/{call_id}/token")));
            if let Some(b) = bearer {
                r = r.header("authorization", format!("Bearer {b}"));
            }
            json(r.send().await.unwrap()).await
        }
    };
    // The call id alone does not open the call's audio; nor does another call's token.
    let (s, v) = refresh(None).await;
    assert_eq!((s, error_code(&v)), (401, "invalid_token"), "{v}");
    let (s, other) = env.click2call("9876543211").await;
    assert_eq!(s, 200, "{other}");
    let (s, _) = refresh(other["token"].as_str().map(str::to_owned)).await;
    assert_eq!(s, 401);
    let (s, _) = refresh(Some("x.y.z".into())).await;
    assert_eq!(s, 401);

    let (s, v) = refresh(first["token"].as_str().map(str::to_owned)).await;
    assert_eq!(s, 200, "{v}");
    let token = v["token"].as_str().unwrap();
    // The JWT's claims: the same agent identity and room.
    let payload = token.split('.').nth(1).unwrap();
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], "agent-42");
    assert_eq!(claims["video"]["room"], room.as_str());
    let exp_ms = claims["exp"].as_u64().unwrap() * 1000;
    assert!(v["expires_at_ms"].as_u64().unwrap().abs_diff(exp_ms) < 2_000);
    // The new token proves the call as well as the first.
    assert_eq!(refresh(Some(token.to_owned())).await.0, 200);
    env.hang_up(&call_id).await;
    let (s, v) = refresh(Some(token.to_owned())).await;
    assert_eq!((s, error_code(&v)), (409, "call_ended"));
    let (s, _) = env
        .post("/api/c2c/calls/c2c_00000000000000000000000000000000/token")
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn two_connects_at_once_dial_once_and_keep_the_agent_busy() {
    let env = CallEnv::start("poll").await;
    env.scenario(
        NUMBER,
        json!({"ring_after_ms": 100, "outcome": {"kind": "answer", "after_ms": 300}}),
    )
    .await;
    put_agent(&env, "agent-42", "Asha", true).await;
    let (s, v) = env.click2call(NUMBER).await;
    assert_eq!(s, 200, "{v}");
    let call_id = v["call_id"].as_str().unwrap().to_owned();
    env.agent_joins(v["room"].as_str().unwrap()).await;
    let path = format!("/api/c2c/calls/{call_id}/connect");
    let (a, b) = tokio::join!(env.post(&path), env.post(&path));
    let mut codes = [a.0, b.0];
    codes.sort();
    assert_eq!(codes, [200, 409], "{a:?} {b:?}");
    // The losing /connect must not have freed the agent of the call that dials.
    assert_eq!(get_agent(&env, "agent-42").await.1["on_call"], true);
    let (s, v) = env.click2call(NUMBER).await;
    assert_eq!((s, error_code(&v)), (409, "agent_busy"), "{v}");
    env.hang_up(&call_id).await;
    assert!(
        eventually(T, || async {
            get_agent(&env, "agent-42").await.1["on_call"] == false
        })
        .await
    );
    // Telephony off after click2call: /connect refuses to dial.
    let (s, v) = env.click2call(NUMBER).await;
    assert_eq!(s, 200, "{v}");
    let later = v["call_id"].as_str().unwrap().to_owned();
    env.agent_joins(v["room"].as_str().unwrap()).await;
    put_agent(&env, "agent-42", "Asha", false).await;
    let (s, v) = env.post(&format!("/api/c2c/calls/{later}/connect")).await;
    assert_eq!((s, error_code(&v)), (403, "agent_disabled"), "{v}");
    assert_eq!(
        env.sim_stats().await["sip_dials"],
        1,
        "only the first call dialled"
    );
}
