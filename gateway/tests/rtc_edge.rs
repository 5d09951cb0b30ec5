//! Signalling WebSockets taken out of Pingora after their head (`gateway/src/rtc`),
//! against a raw TCP upstream that behaves unlike the LiveKit simulator: its `101` and
//! first bytes come in one write, it refuses with a chunked body on a connection it
//! keeps open, or it answers with something that is not HTTP. What the upstream saw is
//! checked byte for byte; so is every byte relayed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use common::raw::{contains, read_until};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KEY: &str = "APIsimdev";
const SECRET: &str = "devsecret-livekit-sim-0123456789abcdef0123456789abcdef";
const T: Duration = Duration::from_secs(15);
const GREETING: &[u8] = b"first-bytes-from-livekit";

/// The upgrade heads the upstream received.
type Seen = Arc<Mutex<Vec<String>>>;

/// A raw upstream. Plain requests (the gateway's health checks) get `200`. An upgrade
/// is answered as its query's `mode=` says: `echo` (101 and a greeting in one write,
/// then an echo), `refuse` (403 with a chunked body, connection kept open), `garbage`.
async fn raw_upstream() -> (std::net::SocketAddr, Seen) {
    raw_upstream_on(None).await
}

/// [`raw_upstream`], over TLS when given an acceptor.
async fn raw_upstream_on(tls: Option<tokio_rustls::TlsAcceptor>) -> (std::net::SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let seen = s.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    None => answer(conn, seen).await,
                    Some(acceptor) => {
                        if let Ok(conn) = acceptor.accept(conn).await {
                            answer(conn, seen).await;
                        }
                    }
                }
            });
        }
    });
    (addr, seen)
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut conn: S, seen: Seen) {
    let head = read_until(&mut conn, T, |h| contains(h, b"\r\n\r\n")).await;
    let head = String::from_utf8_lossy(&head).into_owned();
    if !head.to_ascii_lowercase().contains("upgrade: websocket") {
        let _ = conn
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return;
    }
    seen.lock().unwrap().push(head.clone());
    if head.contains("mode=refuse") {
        let _ = conn
                        .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nnope!\r\n0\r\n\r\n")
                        .await;
        // Keep-alive: the gateway, not the upstream, must close the client.
        tokio::time::sleep(T * 2).await;
        return;
    }
    if head.contains("mode=garbage") {
        let _ = conn.write_all(b"SSH-2.0-OpenSSH_9.2\r\n\r\n").await;
        return;
    }
    let mut hello = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                    Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
                    .to_vec();
    hello.extend_from_slice(GREETING);
    if conn.write_all(&hello).await.is_err() {
        return;
    }
    let (mut r, mut w) = tokio::io::split(conn);
    let _ = tokio::io::copy(&mut r, &mut w).await;
    let _ = w.shutdown().await;
}

struct Edge {
    _p: Policies,
    _data: tempfile::TempDir,
    gw: Gateway,
    upstream: std::net::SocketAddr,
    seen: Seen,
}

/// The gateway with its first region pointed at a raw upstream.
async fn edge() -> Edge {
    let (upstream, seen) = raw_upstream().await;
    let p = Policies::example();
    p.edit(
        "gateway.toml",
        &format!("upstreams = [\"http://127.0.0.1:{}\"]", p.sim_port),
        &format!("upstreams = [\"http://{upstream}\"]"),
    );
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    Edge {
        _p: p,
        _data: data,
        gw,
        upstream,
        seen,
    }
}

fn handshake(e: &Edge, query: &str) -> String {
    let tok = c2c_livekit::token::agent_token(KEY, SECRET, "room-1", "agent-42", T).unwrap();
    format!(
        "GET /rtc?access_token={tok}&{query} HTTP/1.1\r\nHost: gateway.example:{}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: a, b\r\n\r\n",
        e.gw.port
    )
}

fn metric(m: &str, prefix: &str) -> Option<f64> {
    m.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_over_socket_relays_every_byte_and_is_counted() {
    let e = edge().await;
    let c = client();
    let mut conn = TcpStream::connect(("127.0.0.1", e.gw.port)).await.unwrap();
    conn.write_all(handshake(&e, "mode=echo").as_bytes())
        .await
        .unwrap();
    // The 101 and the bytes LiveKit wrote with it, as it wrote them.
    let got = read_until(&mut conn, T, |g| contains(g, GREETING)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{text}"
    );
    assert!(
        text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{text}"
    );
    assert!(got.ends_with(GREETING), "{text}");

    // What LiveKit saw: the request line as sent, its own host, the browser's headers.
    let head = e.seen.lock().unwrap().first().cloned().unwrap();
    assert!(head.starts_with("GET /rtc?access_token="), "{head}");
    assert!(head.contains("&mode=echo HTTP/1.1\r\n"), "{head}");
    assert!(
        head.contains(&format!("host: {}\r\n", e.upstream)),
        "{head}"
    );
    assert!(!head.contains("gateway.example"), "{head}");
    assert!(
        head.contains("sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"),
        "{head}"
    );
    assert!(head.contains("sec-websocket-protocol: a, b\r\n"), "{head}");

    let m = e.gw.metrics(&c).await;
    assert_eq!(metric(&m, "c2c_websocket_sessions "), Some(1.0), "{m}");

    // 4 MiB each way at once: more than the sockets buffer, so the relay holds bytes
    // for a full side and must keep the other direction moving.
    let payload: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let (mut r, mut w) = conn.into_split();
    let p = payload.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&p).await.unwrap();
        w
    });
    let mut echoed = vec![0u8; payload.len()];
    tokio::time::timeout(T, r.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert!(echoed == payload, "the echo differs from what was sent");
    // The browser ends its half; the upstream ends its own; the socket is gone.
    let mut w = writer.await.unwrap();
    w.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(T, r.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty());

    let mut m = String::new();
    for _ in 0..50 {
        m = e.gw.metrics(&c).await;
        if metric(&m, "c2c_websocket_sessions ") == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(metric(&m, "c2c_websocket_sessions "), Some(0.0), "{m}");
    assert_eq!(
        metric(&m, "c2c_http_requests_total{route=\"rtc\",status=\"101\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            &format!(
                "c2c_proxied_requests_total{{region=\"singapore\",status=\"101\",upstream=\"{}\"}}",
                e.upstream
            )
        ),
        Some(1.0),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livekits_refusal_is_passed_on_and_the_connection_closed() {
    let e = edge().await;
    let mut conn = TcpStream::connect(("127.0.0.1", e.gw.port)).await.unwrap();
    conn.write_all(handshake(&e, "mode=refuse").as_bytes())
        .await
        .unwrap();
    // Read to EOF: the upstream keeps its connection open, the gateway closes ours.
    let got = read_until(&mut conn, T, |_| false).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{text}");
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains("content-type: text/plain\r\n"), "{text}");
    assert!(lower.contains("content-length: 5\r\n"), "{text}");
    assert!(!lower.contains("transfer-encoding"), "{text}");
    assert!(text.ends_with("\r\n\r\nnope!"), "{text}");
    let m = e.gw.metrics(&client()).await;
    assert_eq!(
        metric(&m, "c2c_http_requests_total{route=\"rtc\",status=\"403\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(metric(&m, "c2c_websocket_sessions "), Some(0.0), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_does_not_speak_http_gets_502_in_the_gateways_shape() {
    let e = edge().await;
    let mut conn = TcpStream::connect(("127.0.0.1", e.gw.port)).await.unwrap();
    conn.write_all(handshake(&e, "mode=garbage").as_bytes())
        .await
        .unwrap();
    let got = read_until(&mut conn, T, |_| false).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 502"), "{text}");
    assert!(text.contains("\"livekit_unavailable\""), "{text}");
    assert_eq!(e.seen.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_is_checked_before_any_upstream_sees_it() {
    let e = edge().await;
    let mut conn = TcpStream::connect(("127.0.0.1", e.gw.port)).await.unwrap();
    let forged = handshake(&e, "mode=echo").replace("access_token=", "access_token=x");
    conn.write_all(forged.as_bytes()).await.unwrap();
    let got = read_until(&mut conn, T, |_| false).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(text.contains("\"invalid_token\""), "{text}");
    assert!(
        e.seen.lock().unwrap().is_empty(),
        "an upstream saw a refused handshake"
    );
}

/// A bring-your-own project on `wss://`: the upstream is connected through Pingora's
/// TLS connector (SNI, the platform's trust store: here `SSL_CERT_FILE`), and the
/// relay runs on its TLS stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bring_your_own_project_on_tls_is_relayed() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let (upstream, seen) = raw_upstream_on(Some(acceptor)).await;

    let p = Policies::example();
    let byo_secret = "byo-secret-0123456789abcdef0123456789";
    std::fs::write(p.path().join("secrets/byo.secret"), byo_secret).unwrap();
    std::fs::write(p.path().join("secrets/byo-ca.pem"), cert.cert.pem()).unwrap();
    p.write(
        "tenants/initech.toml",
        &format!(
            "id = \"initech\"\nname = \"Initech\"\nregion = \"mumbai\"\n\n[livekit]\nurl = \"wss://{upstream}\"\napi_key = \"APIbyotenant\"\napi_secret_file = \"secrets/byo.secret\"\n\n[dlt]\nprincipal_entity_id = \"1101555\"\noutbound_enabled = true\n"
        ),
    );
    let data = tempfile::tempdir().unwrap();
    let ca = p.path().join("secrets/byo-ca.pem");
    let gw = Gateway::start_with_env(
        p.path(),
        data.path(),
        &[("SSL_CERT_FILE", ca.to_str().unwrap())],
    );
    let tok = c2c_livekit::token::agent_token("APIbyotenant", byo_secret, "byo-room", "agent-1", T)
        .unwrap();
    let mut conn = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
    conn.write_all(
        format!(
            "GET /rtc?access_token={tok}&mode=echo HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let got = read_until(&mut conn, T, |g| contains(g, GREETING)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 101 "), "{text}");
    let head = seen.lock().unwrap().first().cloned().unwrap();
    assert!(head.contains(&format!("host: {upstream}\r\n")), "{head}");
    conn.write_all(b"ping over tls").await.unwrap();
    let echo = read_until(&mut conn, T, |g| g.len() >= 13).await;
    assert_eq!(echo, b"ping over tls");
}
