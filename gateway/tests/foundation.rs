//! Foundation behaviour over real sockets against the real binary: service endpoints,
//! error shapes, keys, scopes, hot reload, the owner's DLT toggle, shutdown and the CLI.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

async fn normalize(
    c: &reqwest::Client,
    gw: &Gateway,
    key: Option<&str>,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let mut r = c.post(gw.url("/api/c2c/normalize")).json(&body);
    if let Some(k) = key {
        r = r.header("x-api-key", k);
    }
    json(r.send().await.unwrap()).await
}

#[tokio::test]
async fn service_endpoints_answer() {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    let c = client();
    let (s, v) = json(c.get(gw.url("/livez")).send().await.unwrap()).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("ok")));
    let (s, v) = json(c.get(gw.url("/readyz")).send().await.unwrap()).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("ready")));
    let text = gw.metrics(&c).await;
    assert!(
        text.contains("c2c_http_requests_total{route=\"livez\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("process_resident_memory_bytes"),
        "process metrics missing"
    );
}

#[tokio::test]
async fn normalize_returns_clean_e164_and_caller_id_never_the_dial_prefix() {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    let c = client();
    let (s, v) = normalize(
        &c,
        &gw,
        Some(ACME_KEY),
        json!({"customer_number": "9530251797"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    // A CRM sees the clean number, E.164 and the caller ID, nothing of the trunk: the
    // dial prefix is the gateway's secret.
    assert_eq!(
        v,
        json!({"customer_number": "9530251797", "e164": "+919530251797", "caller_id": "+919999999999"})
    );
    assert!(!v.to_string().contains("9911"), "{v}");
    let (s, v) = normalize(
        &c,
        &gw,
        Some(ACME_KEY),
        json!({"customer_number": "9530251797", "did": "08888888888"}),
    )
    .await;
    assert_eq!((s, v["caller_id"].as_str()), (200, Some("+918888888888")));
    // The console (console and owner keys) shows the dialed string and trunk.
    let r = c
        .post(gw.url("/api/c2c/console/tenants/acme/normalize"))
        .header("x-api-key", OWNER_KEY)
        .json(&json!({"customer_number": "9530251797", "trunk": "jio-del"}))
        .send()
        .await
        .unwrap();
    let (s, v) = json(r).await;
    assert_eq!((s, v["dialed"].as_str()), (200, Some("09530251797")), "{v}");
    assert_eq!(v["trunk"], "jio-del");
    assert_eq!(
        v["livekit_trunk_id"].as_str().map(|t| t.starts_with("ST_")),
        Some(true)
    );
}

#[tokio::test]
async fn wrong_numbers_get_422_saying_what_is_wrong() {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    let c = client();
    for (num, why) in [
        ("+919530251797", "without +91"),
        ("953025179", "got 9"),
        ("95302-51797", "digits only"),
    ] {
        let (s, v) = normalize(&c, &gw, Some(ACME_KEY), json!({"customer_number": num})).await;
        assert_eq!(s, 422, "{num}: {v}");
        assert_eq!(error_code(&v), "invalid_number");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(why),
            "{num}: {v}"
        );
    }
    let (s, v) = normalize(
        &c,
        &gw,
        Some(ACME_KEY),
        json!({"customer_number": "9530251797", "did": "123"}),
    )
    .await;
    assert_eq!((s, error_code(&v)), (422, "invalid_did"));
}

#[tokio::test]
async fn no_enabled_default_trunk_is_409() {
    let p = Policies::example();
    p.edit(
        "tenants/acme.toml",
        "default = true\nenabled = true",
        "default = true\nenabled = false",
    );
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    let (s, v) = normalize(
        &client(),
        &gw,
        Some(ACME_KEY),
        json!({"customer_number": "9530251797"}),
    )
    .await;
    assert_eq!((s, error_code(&v)), (409, "no_trunk"), "{v}");
}

#[tokio::test]
async fn missing_malformed_and_unknown_keys_get_the_same_401() {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    let c = client();
    let unknown = "c2c_".to_string() + &"A".repeat(36); // right shape, wrong checksum or unknown
    let minted_unknown = {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_c2c-gateway"))
            .args(["keys", "mint", "--tenant", "acme"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .to_string()
    };
    let mut bodies = Vec::new();
    for key in [
        None,
        Some("garbage"),
        Some(unknown.as_str()),
        Some(minted_unknown.as_str()),
    ] {
        let (s, v) = normalize(&c, &gw, key, json!({"customer_number": "9530251797"})).await;
        assert_eq!(s, 401, "{key:?}");
        bodies.push(v);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "401 bodies differ: {bodies:?}"
    );
}

#[tokio::test]
async fn scopes_are_enforced() {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    let c = client();
    // The owner key has no calls scope.
    let (s, v) = normalize(
        &c,
        &gw,
        Some(OWNER_KEY),
        json!({"customer_number": "9530251797"}),
    )
    .await;
    assert_eq!((s, error_code(&v)), (403, "forbidden"));
    // A tenant key cannot reach the owner API.
    let r = c
        .post(gw.url("/api/telephony/config/owner/acme/outbound-enable"))
        .header("x-api-key", ACME_KEY)
        .json(&json!({"enabled": false, "verified_by": "me"}))
        .send()
        .await
        .unwrap();
    let (s, v) = json(r).await;
    assert_eq!((s, error_code(&v)), (403, "forbidden"));
}

#[tokio::test]
async fn an_upgrade_header_does_not_skip_auth() {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    let c = client();
    for path in [
        "/api/c2c/normalize",
        "/api/telephony/config/owner/acme/outbound-enable",
    ] {
        let r = c
            .post(gw.url(path))
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .json(&json!({"customer_number": "9530251797", "enabled": true, "verified_by": "x"}))
            .send()
            .await
            .unwrap();
        let (s, v) = json(r).await;
        assert_eq!((s, error_code(&v)), (401, "unauthorized"), "{path}");
    }
}

#[tokio::test]
async fn one_error_shape_for_404_405_413_415_and_bad_json() {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    let c = client();
    let (s, v) = json(c.get(gw.url("/nope")).send().await.unwrap()).await;
    assert_eq!((s, error_code(&v)), (404, "not_found"));
    let r = c.get(gw.url("/api/c2c/normalize")).send().await.unwrap();
    assert_eq!(r.headers()["allow"], "POST");
    let (s, v) = json(r).await;
    assert_eq!((s, error_code(&v)), (405, "method_not_allowed"));
    // Declared too large: refused before reading.
    let big = vec![b' '; 70 * 1024];
    let r = c
        .post(gw.url("/api/c2c/normalize"))
        .header("x-api-key", ACME_KEY)
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    let (s, v) = json(r).await;
    assert_eq!((s, error_code(&v)), (413, "body_too_large"));
    // Chunked (no Content-Length): refused while reading.
    let stream = futures_stream(big);
    let r = c
        .post(gw.url("/api/c2c/normalize"))
        .header("x-api-key", ACME_KEY)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    let (s, v) = json(r).await;
    assert_eq!((s, error_code(&v)), (413, "body_too_large"));
    let r = c
        .post(gw.url("/api/c2c/normalize"))
        .header("x-api-key", ACME_KEY)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    let (s, v) = json(r).await;
    assert_eq!((s, error_code(&v)), (415, "unsupported_media_type"));
    let r = c
        .post(gw.url("/api/c2c/normalize"))
        .header("x-api-key", ACME_KEY)
        .header("content-type", "application/json")
        .body(r#"{"customer_number": ["9530251797"]}"#)
        .send()
        .await
        .unwrap();
    let (s, v) = json(r).await;
    assert_eq!((s, error_code(&v)), (400, "invalid_json"));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`customer_number`"),
        "{v}"
    );
}

fn futures_stream(
    body: Vec<u8>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(8 * 1024).map(|c| Ok(c.to_vec())).collect();
    tokio_stream::iter(chunks)
}

#[tokio::test]
async fn key_rotation_old_and_new_work_and_a_removed_key_stops_after_reload() {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    let c = client();
    for k in [ACME_KEY, ACME_OLD_KEY] {
        let (s, _) = normalize(&c, &gw, Some(k), json!({"customer_number": "9530251797"})).await;
        assert_eq!(s, 200);
    }
    // Retire the old key.
    p.edit(
        "tenants/acme.toml",
        "[[api_keys]]\nid = \"acme-k1\"",
        "[[retired_placeholder]]\nid = \"acme-k1\"",
    );
    // That edit is invalid (unknown key): the old policy must stay, old key still works.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (s, _) = normalize(
        &c,
        &gw,
        Some(ACME_OLD_KEY),
        json!({"customer_number": "9530251797"}),
    )
    .await;
    assert_eq!(s, 200, "an invalid reload must keep the old policy");
    let metrics = gw.metrics(&c).await;
    assert!(
        metrics.contains("c2c_policy_reloads_total{result=\"rejected\"} 1"),
        "{metrics}"
    );
    assert!(
        gw.log_text().contains("policy rejected"),
        "rejection must be logged"
    );
    // Now remove it properly.
    let text = std::fs::read_to_string(p.path().join("tenants/acme.toml")).unwrap();
    let start = text.find("# The previous key").unwrap();
    let end = text.find("[crm_webhook]").unwrap();
    p.write(
        "tenants/acme.toml",
        &format!("{}{}", &text[..start], &text[end..]),
    );
    let gone = eventually(Duration::from_secs(10), || async {
        normalize(
            &c,
            &gw,
            Some(ACME_OLD_KEY),
            json!({"customer_number": "9530251797"}),
        )
        .await
        .0 == 401
    })
    .await;
    assert!(gone, "removed key still accepted");
    let (s, _) = normalize(
        &c,
        &gw,
        Some(ACME_KEY),
        json!({"customer_number": "9530251797"}),
    )
    .await;
    assert_eq!(s, 200);
    let metrics = gw.metrics(&c).await;
    assert!(
        metrics.contains("c2c_policy_reloads_total{result=\"applied\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_valid_reload_applies_without_dropping_requests() {
    let p = Policies::example();
    // This test hammers the API: lift the tenant's request rate limit.
    p.edit(
        "tenants/acme.toml",
        "[dlt]",
        "[limits]\nrequests_per_second = 100000\n\n[dlt]",
    );
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    let c = client();
    // Hammer normalize while the DID changes; every request must succeed with either the
    // old or the new DID, never an error.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let c = c.clone();
        let url = gw.url("/api/c2c/normalize");
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = std::collections::HashSet::new();
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = c
                    .post(&url)
                    .header("x-api-key", ACME_KEY)
                    .json(&json!({"customer_number": "9530251797"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let v: serde_json::Value = r.json().await.unwrap();
                seen.insert(v["caller_id"].as_str().unwrap().to_string());
                n += 1;
            }
            (n, seen)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.edit("tenants/acme.toml", "+919999999999", "+919111111111");
    let applied = eventually(Duration::from_secs(10), || async {
        normalize(
            &c,
            &gw,
            Some(ACME_KEY),
            json!({"customer_number": "9530251797"}),
        )
        .await
        .1["caller_id"]
            == "+919111111111"
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(applied, "valid change not applied");
    let mut total = 0;
    for t in tasks {
        let (n, seen) = t.await.unwrap();
        total += n;
        assert!(seen
            .iter()
            .all(|d| d == "+919999999999" || d == "+919111111111"));
    }
    assert!(
        total > 10,
        "too few requests ran during the reload: {total}"
    );
}

#[tokio::test]
async fn owner_toggle_is_audited_and_survives_restart_and_reload() {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(p.path(), data.path());
    let c = client();
    let url = gw.url("/api/telephony/config/owner/globex/outbound-enable");
    let get = |c: reqwest::Client, url: String| async move {
        json(
            c.get(&url)
                .header("x-api-key", OWNER_KEY)
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    let (s, v) = get(c.clone(), url.clone()).await;
    assert_eq!(s, 200);
    assert_eq!(v["outbound_enabled"], false);
    assert_eq!(v["source"], "policy");

    // Validation errors change nothing.
    let r = c
        .post(&url)
        .header("x-api-key", OWNER_KEY)
        .json(&json!({"enabled": true, "verified_by": "  "}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = c
        .post(&url)
        .header("x-api-key", OWNER_KEY)
        .json(&json!({"enabled": "yes", "verified_by": "ops"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .post(gw.url("/api/telephony/config/owner/nobody/outbound-enable"))
        .header("x-api-key", OWNER_KEY)
        .json(&json!({"enabled": true, "verified_by": "ops"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let r = c
        .post(&url)
        .header("x-api-key", OWNER_KEY)
        .json(&json!({"enabled": true, "verified_by": "asha@platform", "note": "PE-TM binding checked on Jio Trueconnect"}))
        .send()
        .await
        .unwrap();
    let (s, v) = json(r).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["change"]["old"], false);
    assert_eq!(v["change"]["new"], true);

    // kill -9 right after the acknowledgement: the toggle must survive.
    gw.restart_hard();
    // A fresh client: the old one's pooled connection died with the process.
    let c = client();
    let (_, v) = get(c.clone(), url.clone()).await;
    assert_eq!(v["outbound_enabled"], true, "{v}");
    assert_eq!(v["source"], "owner");
    let audit = v["audit"].as_array().unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["verified_by"], "asha@platform");
    assert_eq!(audit[0]["key_id"], "owner-dev");
    assert!(audit[0]["at_ms"].as_u64().unwrap() > 0);

    // A policy reload (which still says false) does not reset the owner's decision.
    p.edit(
        "tenants/globex.toml",
        "name = \"Globex Insurance\"",
        "name = \"Globex Insurance Ltd\"",
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, v) = get(c.clone(), url.clone()).await;
    assert_eq!(v["outbound_enabled"], true);
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully_within_the_grace_period() {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(p.path(), data.path());
    let (took, status) = gw.sigterm();
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(15), "shutdown took {took:?}");
    assert!(gw.log_text().contains("c2c-gateway stopped"));
}

#[tokio::test]
async fn json_logs_when_asked() {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start_with_env(p.path(), data.path(), &[("C2C_LOG_FORMAT", "json")]);
    let c = client();
    let _ = normalize(
        &c,
        &gw,
        Some(ACME_KEY),
        json!({"customer_number": "9530251797"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = gw.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with('{')).collect();
    assert!(!lines.is_empty(), "{log}");
    for l in lines {
        serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"));
    }
    assert!(
        !log.contains("9530251797"),
        "a phone number reached the log"
    );
    assert!(!log.contains(ACME_KEY), "a key reached the log");
}

#[test]
fn policy_check_exits_1_with_every_error() {
    let bin = env!("CARGO_BIN_EXE_c2c-gateway");
    let ok = std::process::Command::new(bin)
        .args(["policy", "check"])
        .arg(example_policies())
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let p = Policies::example();
    p.edit("tenants/acme.toml", "prefix = \"9911\"", "prefix = \"99x\"");
    p.edit("tenants/globex.toml", "+917777777777", "7777");
    let bad = std::process::Command::new(bin)
        .args(["policy", "check"])
        .arg(p.path())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("tenants/acme.toml: trunks[0].prefix:"),
        "{err}"
    );
    assert!(
        err.contains("tenants/globex.toml: trunks[0].default_did:"),
        "{err}"
    );
    // serve refuses to start on an invalid policy, with the same errors.
    let serve = std::process::Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:1", "--policies"])
        .arg(p.path())
        .arg("--data")
        .arg(p.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(serve.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&serve.stderr).contains("trunks[0].prefix"));
}

#[tokio::test]
async fn a_minted_key_works_once_pasted_into_policy() {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_c2c-gateway"))
        .args(["keys", "mint", "--tenant", "globex", "--id", "globex-test"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text.lines().nth(1).unwrap().trim().to_string();
    assert!(key.starts_with("c2c_") && key.len() == 40, "{text}");
    let toml_start = text.find("[[api_keys]]").unwrap();
    assert!(
        !text[toml_start..].contains(&key),
        "the TOML must carry only the hash"
    );
    p.edit(
        "tenants/globex.toml",
        "[crm_webhook]",
        &format!("{}\n[crm_webhook]", &text[toml_start..]),
    );
    let c = client();
    let ok = eventually(Duration::from_secs(10), || async {
        normalize(
            &c,
            &gw,
            Some(&key),
            json!({"customer_number": "9530251797"}),
        )
        .await
        .0 == 200
    })
    .await;
    assert!(ok, "minted key not accepted after reload");
}
