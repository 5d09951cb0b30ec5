//! The LiveKit edge: signalling WebSockets and the server API proxied to region
//! upstreams (LiveKit simulators in this process) after token verification, with
//! health-checked failover, rate limits and the TLS listener.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use livekit_sim::{SimConfig, SimHandle, Simulator};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "APIsimdev";
const SECRET: &str = "devsecret-livekit-sim-0123456789abcdef0123456789abcdef";
const T: Duration = Duration::from_secs(15);

/// A simulator on a loopback address of its own (all of 127.0.0.0/8 is loopback on
/// Linux). Once it is shut down, nothing else in the suite listens on that address, so
/// connecting to it stays refused for the rest of the test. On 127.0.0.1 the freed port
/// could be handed to a simulator or gateway another test starts (same key and secret),
/// and "the dead upstream" would answer again.
async fn upstream() -> SimHandle {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // 127.201.x.y: clear of 127.0.0.1 and of the SIP tests' 127.0.0.2.
    let mut config = SimConfig::new(KEY, SECRET);
    config.listen = format!("127.201.{}.{}:0", n / 250 % 250, n % 250 + 1);
    Simulator::start(config).await.unwrap()
}

struct Edge {
    _p: Policies,
    _data: tempfile::TempDir,
    gw: Gateway,
    a: SimHandle,
    b: SimHandle,
    c: SimHandle,
}

/// singapore = [a, b] with fallback mumbai = [c]; health checks every 200 ms.
async fn edge(extra_gateway: &str, acme_limits: &str) -> Edge {
    let (a, b, c) = (upstream().await, upstream().await, upstream().await);
    let p = Policies::example();
    p.edit(
        "gateway.toml",
        &format!("upstreams = [\"http://127.0.0.1:{}\"]", p.sim_port),
        &format!("upstreams = [\"{}\", \"{}\"]", a.url(), b.url()),
    );
    p.edit(
        "gateway.toml",
        "upstreams = [\"http://127.0.0.1:7881\"]",
        &format!("upstreams = [\"{}\"]", c.url()),
    );
    p.edit(
        "gateway.toml",
        "[calls]",
        &format!("[limits]\nhealth_check_interval_ms = 200\n{extra_gateway}\n\n[calls]"),
    );
    if !acme_limits.is_empty() {
        p.edit(
            "tenants/acme.toml",
            "[dlt]",
            &format!("[limits]\n{acme_limits}\n\n[dlt]"),
        );
    }
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    Edge {
        _p: p,
        _data: data,
        gw,
        a,
        b,
        c,
    }
}

fn token(room: &str, ttl: Duration) -> String {
    c2c_livekit::token::agent_token(KEY, SECRET, room, "agent-42", ttl).unwrap()
}

fn ws_url(gw: &Gateway, tok: &str) -> String {
    format!(
        "ws://127.0.0.1:{}/rtc?access_token={tok}&auto_subscribe=1",
        gw.port
    )
}

/// Opens a signalling session through the gateway and checks frames both ways.
async fn session(gw: &Gateway, room: &str) {
    let (mut ws, resp) = tokio_tungstenite::connect_async(ws_url(gw, &token(room, T)))
        .await
        .expect("ws connect");
    assert_eq!(resp.status(), 101);
    frames_both_ways(&mut ws, "ping from the browser").await;
    ws.close(None).await.ok();
}

/// LiveKit speaks first (the JoinResponse); then `text` goes out and comes back.
async fn frames_both_ways<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>, text: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let first = tokio::time::timeout(T, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(first, Message::Binary(_)), "{first:?}");
    ws.send(Message::Text(text.into())).await.unwrap();
    let echo = tokio::time::timeout(T, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echo, Message::Text(text.into()));
}

/// Shuts an upstream down: from now on connecting to it is refused (see [`upstream`]).
async fn kill(s: &SimHandle) {
    s.shutdown().await;
}

fn upgrades(s: &SimHandle) -> u64 {
    s.stats().rtc_upgrades
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_frames_flow_both_ways_to_a_token_checking_upstream() {
    let e = edge("", "").await;
    session(&e.gw, "c2c-0123456789abcdef0123456789abcdef").await;
    assert_eq!(upgrades(&e.a) + upgrades(&e.b), 1);
    assert_eq!(
        upgrades(&e.c),
        0,
        "fallback region used while the primary is healthy"
    );
    // /rtc/validate (plain HTTP) goes through too.
    let r = client()
        .get(e.gw.url(&format!("/rtc/validate?access_token={}", token("r1", T))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_expired_tokens_get_401_and_never_reach_an_upstream() {
    let e = edge("", "").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = livekit_sim::jwt::sign_hs256(
        &json!({"iss": KEY, "sub": "agent-42", "nbf": now - 7200, "exp": now - 3600, "video": {"roomJoin": true, "room": "r"}}),
        SECRET,
    )
    .unwrap();
    let forged =
        c2c_livekit::token::agent_token(KEY, "not-the-secret-0123456789abcdef", "r", "agent-42", T)
            .unwrap();
    let stranger =
        c2c_livekit::token::agent_token("APIstranger", SECRET, "r", "agent-42", T).unwrap();
    for tok in [
        expired.as_str(),
        forged.as_str(),
        stranger.as_str(),
        "garbage",
        "",
    ] {
        let err = tokio_tungstenite::connect_async(ws_url(&e.gw, tok))
            .await
            .expect_err("must be refused");
        match err {
            tokio_tungstenite::tungstenite::Error::Http(resp) => {
                assert_eq!(resp.status(), 401, "{tok}")
            }
            other => panic!("unexpected {other:?}"),
        }
        let r = client()
            .get(e.gw.url(&format!("/rtc/validate?access_token={tok}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = client()
            .post(e.gw.url("/twirp/livekit.RoomService/ListRooms"))
            .header("authorization", format!("Bearer {tok}"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    // Not a single request reached any upstream.
    for s in [&e.a, &e.b, &e.c] {
        let st = s.stats();
        assert_eq!((st.rtc_connections, st.requests), (0, 0), "{st:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_upstream_is_skipped_and_a_dead_region_falls_back() {
    let e = edge("", "").await;
    session(&e.gw, "r-before").await;
    kill(&e.a).await;
    // New sessions go to the healthy upstream (passive retry covers the window before
    // the health check notices).
    let b0 = upgrades(&e.b);
    for i in 0..4 {
        session(&e.gw, &format!("r-after-{i}")).await;
    }
    assert_eq!(upgrades(&e.b) - b0, 4);
    assert_eq!(upgrades(&e.c), 0);
    // The whole region down: the fallback region serves.
    kill(&e.b).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    for i in 0..3 {
        session(&e.gw, &format!("r-fallback-{i}")).await;
    }
    assert_eq!(upgrades(&e.c), 3);
    let m = e.gw.metrics(&client()).await;
    let a_host = e.a.url().trim_start_matches("http://").to_string();
    assert!(
        m.contains(&format!(
            "c2c_upstream_healthy{{region=\"singapore\",upstream=\"{a_host}\"}} 0"
        )),
        "{m}"
    );
    assert!(
        m.contains("c2c_proxied_requests_total{region=\"mumbai\""),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twirp_passes_through_for_the_official_server_sdk() {
    let e = edge("", "").await;
    // livekit-api's RoomClient, pointed at the gateway instead of LiveKit.
    let rooms = livekit_api::services::room::RoomClient::with_api_key(&e.gw.base, KEY, SECRET);
    let created = rooms
        .create_room(
            "sdk-room",
            livekit_api::services::room::CreateRoomOptions::default(),
        )
        .await
        .expect("CreateRoom through the gateway");
    assert_eq!(created.name, "sdk-room");
    // Each simulator is its own LiveKit node (no shared cluster state), and requests are
    // balanced across the region: the room is on one of them.
    rooms
        .list_rooms(vec![])
        .await
        .expect("ListRooms through the gateway");
    assert!(e
        .a
        .rooms()
        .iter()
        .chain(e.b.rooms().iter())
        .any(|r| r.name == "sdk-room"));
    assert!(e.a.stats().requests + e.b.stats().requests >= 2);
    // A wrong secret never gets through.
    let bad = livekit_api::services::room::RoomClient::with_api_key(
        &e.gw.base,
        KEY,
        "wrong-secret-0123456789abcdef01234567",
    );
    assert!(bad.list_rooms(vec![]).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_429_with_retry_after() {
    let e = edge(
        "per_ip_requests_per_second = 5",
        "requests_per_second = 3\nmax_concurrent_calls = 1",
    )
    .await;
    let c = client();
    // Per source address on unauthenticated paths.
    let mut limited = None;
    for _ in 0..20 {
        let r = c
            .get(e.gw.url("/api/c2c/calls/c2c_00000000000000000000000000000000"))
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("no 429 from the per-IP limit");
    assert_eq!(r.headers()["retry-after"], "1");
    let (_, v) = json(r).await;
    assert_eq!(error_code(&v), "rate_limited");
    // Per tenant on authenticated paths.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = c
            .post(e.gw.url("/api/c2c/normalize"))
            .header("x-api-key", ACME_KEY)
            .json(&json!({"customer_number": "9530251797"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert!(
        statuses.contains(&200) && statuses.contains(&429),
        "{statuses:?}"
    );
    // Concurrent calls per tenant.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let click = || {
        c.post(e.gw.url("/api/c2c/click2call"))
            .header("x-api-key", ACME_KEY)
            .json(&json!({"case_id": "c", "customer_number": "9530251797", "agent_id": "a", "customer_crm_id": "x"}))
            .send()
    };
    let (s, v) = json(click().await.unwrap()).await;
    assert_eq!(s, 200, "{v}");
    let r = click().await.unwrap();
    assert_eq!(r.headers()["retry-after"], "5");
    let (s, v) = json(r).await;
    assert_eq!((s, error_code(&v)), (429, "concurrent_call_limit"));
    let m = e.gw.metrics(&c).await;
    for kind in ["ip_rate", "tenant_rate", "concurrent_calls"] {
        assert!(m.contains(&format!("kind=\"{kind}\"")), "{kind}: {m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listener_serves_http1_http2_and_signalling() {
    let p = Policies::example();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(p.path().join("secrets/tls.crt"), cert.cert.pem()).unwrap();
    std::fs::write(
        p.path().join("secrets/tls.key"),
        cert.signing_key.serialize_pem(),
    )
    .unwrap();
    let tls_port = free_port();
    p.edit(
        "gateway.toml",
        "grace_period_seconds = 1",
        &format!("grace_period_seconds = 1\ntls = {{ listen = \"127.0.0.1:{tls_port}\", cert_file = \"secrets/tls.crt\", key_file = \"secrets/tls.key\" }}"),
    );
    let data = tempfile::tempdir().unwrap();
    let _gw = Gateway::start(p.path(), data.path());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    for h2 in [false, true] {
        let mut b = reqwest::Client::builder()
            .add_root_certificate(root.clone())
            .tls_backend_rustls()
            .resolve("localhost", ([127, 0, 0, 1], tls_port).into());
        b = if h2 {
            b.http2_prior_knowledge()
        } else {
            b.http1_only()
        };
        let c = b.build().unwrap();
        let r = c
            .get(format!("https://localhost:{tls_port}/livez"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.version(),
            if h2 {
                reqwest::Version::HTTP_2
            } else {
                reqwest::Version::HTTP_11
            }
        );
    }
    // A signalling socket over TLS: taken out of Pingora like a plain one, but relayed
    // through Pingora's TLS stream (the other path of gateway/src/rtc/relay.rs).
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", tls_port))
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let url = format!(
        "wss://localhost:{tls_port}/rtc?access_token={}",
        token("over-tls", T)
    );
    let (mut ws, resp) = tokio_tungstenite::client_async(url, tls)
        .await
        .expect("wss through the TLS listener");
    assert_eq!(resp.status(), 101);
    // Larger than a TLS record and than the relay's read buffer; within LiveKit's frame limit.
    frames_both_ways(&mut ws, &"x".repeat(48 * 1024)).await;
    ws.close(None).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bring_your_own_project_routes_to_its_own_livekit() {
    let byo = Simulator::start(SimConfig::new(
        "APIbyotenant",
        "byo-secret-0123456789abcdef0123456789",
    ))
    .await
    .unwrap();
    let (a, b, c) = (upstream().await, upstream().await, upstream().await);
    let p = Policies::example();
    p.edit(
        "gateway.toml",
        &format!("upstreams = [\"http://127.0.0.1:{}\"]", p.sim_port),
        &format!("upstreams = [\"{}\", \"{}\"]", a.url(), b.url()),
    );
    p.edit(
        "gateway.toml",
        "upstreams = [\"http://127.0.0.1:7881\"]",
        &format!("upstreams = [\"{}\"]", c.url()),
    );
    std::fs::write(
        p.path().join("secrets/byo.secret"),
        "byo-secret-0123456789abcdef0123456789",
    )
    .unwrap();
    p.write(
        "tenants/initech.toml",
        &format!(
            "id = \"initech\"\nname = \"Initech\"\nregion = \"mumbai\"\n\n[livekit]\nurl = \"{}\"\napi_key = \"APIbyotenant\"\napi_secret_file = \"secrets/byo.secret\"\n\n[dlt]\nprincipal_entity_id = \"1101555\"\noutbound_enabled = true\n",
            byo.url()
        ),
    );
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    let tok = c2c_livekit::token::agent_token(
        "APIbyotenant",
        "byo-secret-0123456789abcdef0123456789",
        "byo-room",
        "agent-1",
        T,
    )
    .unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&gw, &tok))
        .await
        .expect("byo session");
    let _join = tokio::time::timeout(T, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(byo.stats().rtc_upgrades, 1);
    assert_eq!(
        upgrades(&a) + upgrades(&b) + upgrades(&c),
        0,
        "a BYO token went to the platform regions"
    );
}
