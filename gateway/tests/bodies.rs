//! A request body is one JSON value in UTF-8 and nothing more (issue 18, item 5): bytes
//! after the value are refused (`400 invalid_json`) before anything is stored, and a
//! declared charset other than UTF-8 is refused (`415`), on the JSON routes and on the
//! browser routes that read any body as JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use common::calls::CallEnv;
use common::*;
use serde_json::json;

fn click2call_body() -> String {
    json!({"case_id": "case-1", "customer_number": "9530251797", "agent_id": "agent-42", "customer_crm_id": "lead-7"})
        .to_string()
}

#[tokio::test]
async fn bytes_after_the_json_value_are_refused_and_store_no_call() {
    let env = CallEnv::start("poll").await;
    let post = |body: Vec<u8>| {
        env.c
            .post(env.gw.url("/api/c2c/click2call"))
            .header("x-api-key", ACME_KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for tail in [&b"\0"[..], b"x", b" {}", b"\n\x0b"] {
        let body = [click2call_body().as_bytes(), tail].concat();
        let (s, v) = json(post(body).await.unwrap()).await;
        assert_eq!((s, error_code(&v)), (400, "invalid_json"), "{tail:?}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains("trailing data after the JSON value"), "{msg}");
    }
    assert_eq!(
        env.sim_stats().await["rooms_created"],
        0,
        "a call was started"
    );
    let log = env
        .c
        .get(env.gw.url("/api/c2c/calls"))
        .header("x-api-key", ACME_KEY);
    let (s, v) = json(log.send().await.unwrap()).await;
    assert_eq!(s, 200, "{v}");
    assert!(!v.to_string().contains("c2c_"), "a call was stored: {v}");
    // JSON whitespace after the value is still fine, and the same call then starts.
    let body = format!("{} \r\n\t\n", click2call_body());
    let (s, v) = json(post(body.into_bytes()).await.unwrap()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(env.sim_stats().await["rooms_created"], 1);
}

fn gateway() -> (Policies, tempfile::TempDir, Gateway) {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    (p, data, gw)
}

#[tokio::test]
async fn a_charset_other_than_utf8_is_415_on_json_and_browser_routes() {
    let (_p, _d, gw) = gateway();
    let c = client();
    let normalize = |ct: &'static str| {
        c.post(gw.url("/api/c2c/normalize"))
            .header("x-api-key", ACME_KEY)
            .header("content-type", ct)
            .body(r#"{"customer_number":"9530251797"}"#)
            .send()
    };
    for ct in [
        "application/json; charset=utf-16",
        "application/json; charset=\"UTF-16LE\"",
        "application/json;charset=iso-8859-1",
        "application/json; charset=utf-8; charset=utf-16",
    ] {
        let (s, v) = json(normalize(ct).await.unwrap()).await;
        assert_eq!(
            (s, error_code(&v)),
            (415, "unsupported_media_type"),
            "{ct}: {v}"
        );
        assert!(
            v["error"]["message"].as_str().unwrap().contains("UTF-8"),
            "{v}"
        );
    }
    for ct in [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=\"UTF-8\"",
        "application/json ; Charset=Utf-8",
    ] {
        let (s, v) = json(normalize(ct).await.unwrap()).await;
        assert_eq!(s, 200, "{ct}: {v}");
    }
    // A browser endpoint reads any body as UTF-8 JSON (sendBeacon sends text/plain), so
    // a body declared in another charset is refused the same way; UTF-8 passes the body
    // rules and reaches the handler (404: no such call).
    let hangup = |ct: &'static str| {
        c.post(gw.url("/api/c2c/calls/c2c_0123456789abcdef0123456789abcdef/hangup"))
            .header("content-type", ct)
            .body(r#"{"reason":"agent"}"#)
            .send()
    };
    let (s, v) = json(hangup("text/plain;charset=UTF-16").await.unwrap()).await;
    assert_eq!((s, error_code(&v)), (415, "unsupported_media_type"), "{v}");
    let (s, v) = json(hangup("text/plain;charset=UTF-8").await.unwrap()).await;
    assert_eq!((s, error_code(&v)), (404, "not_found"), "{v}");
}

/// `/status` answers an unknown call 404 whatever its body, and a malformed report on a
/// real call 400 with nothing changed: the handler parses the report before loading the
/// call only to pick how fresh the record must be, not which error comes first. A
/// report that moves the call answers what its transition stored; one that moves
/// nothing answers the stored call.
#[tokio::test]
async fn a_status_report_is_checked_against_its_call_before_its_body() {
    let env = CallEnv::start("webhook").await;
    let status = |id: &str, body: &'static str| {
        env.c
            .post(env.gw.url(&format!("/api/c2c/calls/{id}/status")))
            .header("content-type", "text/plain")
            .body(body)
            .send()
    };
    for body in ["{", r#"{"status":"ANSWERED"}"#, r#"{"status":"whatever"}"#] {
        let (s, v) = json(
            status("c2c_0123456789abcdef0123456789abcdef", body)
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((s, error_code(&v)), (404, "not_found"), "{body}: {v}");
    }
    let (call_id, _room) = env.start_call("9530251797").await;
    let before = env.get_call(&call_id).await;
    let (s, v) = json(status(&call_id, r#"{"status":"#).await.unwrap()).await;
    assert_eq!((s, error_code(&v)), (400, "invalid_json"), "{v}");
    let after = env.get_call(&call_id).await;
    assert_eq!(
        (&after["status"], &after["call_status"]),
        (&before["status"], &before["call_status"]),
        "a malformed report changed the call"
    );
    let (s, v) = json(status(&call_id, r#"{"status":"whatever"}"#).await.unwrap()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["call_id"], call_id.as_str());
    let (s, v) = json(status(&call_id, r#"{"status":"ANSWERED"}"#).await.unwrap()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "ACTIVE", "{v}");
    assert_eq!(env.get_call(&call_id).await["status"], "ACTIVE");
}
