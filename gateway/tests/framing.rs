//! The client's mistakes are the client's (issue 18, items 3 and 5), over raw sockets
//! against the real binary: broken framing, short bodies and refused request heads are
//! answered 400 in the one JSON error shape, logged at debug and never counted as the
//! gateway's 5xx; a body is one JSON value in UTF-8 and nothing more.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::raw::{self, loud_lines};
use common::*;

fn gateway() -> (Policies, tempfile::TempDir, Gateway) {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    (p, data, gw)
}

/// `c2c_http_requests_total` for a route and status, 0 when the series is absent.
fn requests(metrics: &str, route: &str, status: &str) -> u64 {
    let series = format!("c2c_http_requests_total{{route=\"{route}\",status=\"{status}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Series of `c2c_http_requests_total` with a 5xx status: what the 5xx alert sums
/// (`dashboards/alerts.yml`: every route but `readyz`, whose 503 while starting is its
/// job).
fn server_errors(metrics: &str) -> Vec<&str> {
    metrics
        .lines()
        .filter(|l| l.starts_with("c2c_http_requests_total{") && l.contains("status=\"5"))
        .filter(|l| !l.contains("route=\"readyz\""))
        .collect()
}

/// The log is written by another process: give it a moment to land.
async fn settled_log(gw: &Gateway) -> String {
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.log_text()
}

fn normalize_head(extra: &str) -> String {
    format!(
        "POST /api/c2c/normalize HTTP/1.1\r\nHost: t\r\nX-api-key: {ACME_KEY}\r\n\
         Content-Type: application/json\r\n{extra}\r\n"
    )
}

fn assert_bad_request(r: &raw::RawResponse, what: &str) {
    assert_eq!(r.status, 400, "{what}: {r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    let v = r.json();
    assert_eq!(v["error"]["code"], "bad_request", "{what}: {r:?}");
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn a_malformed_chunked_body_is_a_400_logged_at_debug_not_a_5xx() {
    let (_p, _d, gw) = gateway();
    let req = normalize_head("Transfer-Encoding: chunked\r\n") + "zz\r\n{}\r\n0\r\n\r\n";
    let r = raw::send(gw.port, req.as_bytes(), false).expect("an answer");
    assert_bad_request(&r, "chunk size zz");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("chunked"),
        "{r:?}"
    );
    let m = gw.metrics(&client()).await;
    assert_eq!(requests(&m, "normalize", "400"), 1, "{m}");
    assert!(server_errors(&m).is_empty(), "{:?}", server_errors(&m));
    let log = settled_log(&gw).await;
    assert!(loud_lines(&log).is_empty(), "{:#?}", loud_lines(&log));
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_a_400_not_a_5xx() {
    let (_p, _d, gw) = gateway();
    // 23 bytes of a declared 100, then the client half-closes: it will send no more.
    let req = normalize_head("Content-Length: 100\r\n") + r#"{"customer_number":"95"#;
    // The client may still read after its half-close; if the answer reaches it, it is
    // the client's 400 (a client that is gone entirely gets nothing, and that is fine).
    if let Some(r) = raw::send(gw.port, req.as_bytes(), true) {
        assert_bad_request(&r, "short body");
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Content-Length"),
            "{r:?}"
        );
    }
    let m = gw.metrics(&client()).await;
    assert_eq!(requests(&m, "normalize", "400"), 1, "{m}");
    assert!(server_errors(&m).is_empty(), "{:?}", server_errors(&m));
    let log = settled_log(&gw).await;
    assert!(loud_lines(&log).is_empty(), "{:#?}", loud_lines(&log));
}

#[tokio::test]
async fn pingoras_own_refusals_carry_the_json_shape_and_are_counted() {
    let (_p, _d, gw) = gateway();
    for (what, req) in [
        (
            "control byte in a header value",
            &b"GET /livez HTTP/1.1\r\nHost: t\r\nX-Note: a\x01b\r\n\r\n"[..],
        ),
        ("invalid request line", b"GARBAGE\r\n\r\n"),
        (
            "space before the colon",
            b"GET /livez HTTP/1.1\r\nHost : t\r\n\r\n",
        ),
    ] {
        let r = raw::send(gw.port, req, false).expect("an answer");
        assert_bad_request(&r, what);
        assert_eq!(r.header("connection"), Some("close"), "{what}: {r:?}");
    }
    // Pingora refuses CONNECT before any hook runs, too.
    let r = raw::send(
        gw.port,
        b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n",
        false,
    )
    .expect("an answer");
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "method_not_allowed", "{r:?}");
    let m = gw.metrics(&client()).await;
    assert_eq!(requests(&m, "unmatched", "400"), 3, "{m}");
    assert_eq!(requests(&m, "unmatched", "405"), 1, "{m}");
    let log = settled_log(&gw).await;
    assert!(loud_lines(&log).is_empty(), "{:#?}", loud_lines(&log));
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_head_is_not_logged_as_an_error() {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    // Pingora's proxy at debug too, to see where the hang-up is logged.
    let gw = Gateway::start_with_env(
        p.path(),
        data.path(),
        &[("C2C_LOG", "debug,pingora_core=warn,sled=warn")],
    );
    {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
        s.write_all(b"GET /livez HTTP/1.1\r\nHo").unwrap();
    } // dropped: closed mid-head
    let log = settled_log(&gw).await;
    assert!(
        log.contains("while reading request headers"),
        "the hang-up is still logged (at debug):\n{log}"
    );
    assert!(loud_lines(&log).is_empty(), "{:#?}", loud_lines(&log));
}

#[tokio::test]
async fn a_malformed_chunked_body_on_a_proxied_route_is_a_400_too() {
    let (p, _d, gw) = gateway();
    let secret = std::fs::read_to_string(p.path().join("secrets/livekit-sim.secret")).unwrap();
    let token = c2c_livekit::token::agent_token(
        "APIsimdev",
        secret.trim(),
        "c2c-0123456789abcdef0123456789abcdef",
        "agent-42",
        Duration::from_secs(60),
    )
    .unwrap();
    let req = format!(
        "POST /twirp/livekit.RoomService/ListRooms HTTP/1.1\r\nHost: t\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n"
    );
    let r = raw::send(gw.port, req.as_bytes(), false).expect("an answer");
    assert_bad_request(&r, "proxied chunk size zz");
    let m = gw.metrics(&client()).await;
    assert_eq!(requests(&m, "twirp", "400"), 1, "{m}");
    assert!(server_errors(&m).is_empty(), "{:?}", server_errors(&m));
    let log = settled_log(&gw).await;
    assert!(loud_lines(&log).is_empty(), "{:#?}", loud_lines(&log));
}
