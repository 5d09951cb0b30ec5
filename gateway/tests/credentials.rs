//! Ambiguous credentials are refused (issue 18, item 4): a request carrying a credential
//! header more than once would be judged by its first value here and perhaps by its last
//! one in a proxy in front, so it gets 401 on every route family that reads one: API keys
//! (authenticated and browser routes), LiveKit tokens (`/rtc`, `/twirp`) and LiveKit's
//! webhook signature.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::calls::CallEnv;
use common::raw;
use common::*;
use serde_json::json;

const LK_KEY: &str = "APIsimdev";
const WRONG_KEY: &str = "c2c_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

fn auth_failures(metrics: &str, reason: &str) -> u64 {
    let series = format!("c2c_auth_failures_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Gives globex a `calls` key (minted by the CLI) before the gateway starts.
fn globex_key(p: &Policies) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_c2c-gateway"))
        .args(["keys", "mint", "--tenant", "globex", "--id", "globex-t"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text.lines().nth(1).unwrap().trim().to_string();
    let toml = &text[text.find("[[api_keys]]").unwrap()..];
    p.edit(
        "tenants/globex.toml",
        "[crm_webhook]",
        &format!("{toml}\n[crm_webhook]"),
    );
    key
}

fn assert_duplicate_refused(status: u16, v: &serde_json::Value, header: &str, what: &str) {
    assert_eq!(status, 401, "{what}: {v}");
    assert_eq!(error_code(v), "unauthorized", "{what}: {v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(&format!("exactly one {header}")),
        "{what}: {msg}"
    );
}

#[tokio::test]
async fn two_api_keys_are_refused_on_authenticated_routes() {
    let p = Policies::example();
    let globex = globex_key(&p);
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    let c = client();
    let normalize = |keys: &[&str]| {
        let mut r = c
            .post(gw.url("/api/c2c/normalize"))
            .json(&json!({"customer_number": "9530251797"}));
        for k in keys {
            r = r.header("x-api-key", *k); // appends: one header line per key
        }
        r.send()
    };
    let (s, v) = json(normalize(&[ACME_KEY]).await.unwrap()).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = json(normalize(&[globex.as_str()]).await.unwrap()).await;
    assert_eq!(s, 200, "{v}");
    for (what, keys) in [
        ("valid key then wrong key", [ACME_KEY, WRONG_KEY]),
        ("wrong key then valid key", [WRONG_KEY, ACME_KEY]),
        ("two tenants' keys", [ACME_KEY, globex.as_str()]),
        ("a tenant's two valid keys", [ACME_KEY, ACME_OLD_KEY]),
        ("the same key twice", [ACME_KEY, ACME_KEY]),
    ] {
        let (s, v) = json(normalize(&keys).await.unwrap()).await;
        assert_duplicate_refused(s, &v, "X-api-key", what);
    }
    // Owner routes read keys the same way.
    let owner = gw.url("/api/telephony/config/owner/acme/outbound-enable");
    let (s, v) = json(
        c.get(&owner)
            .header("x-api-key", OWNER_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = json(
        c.get(&owner)
            .header("x-api-key", OWNER_KEY)
            .header("x-api-key", WRONG_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_duplicate_refused(s, &v, "X-api-key", "owner key then wrong key");
    let m = gw.metrics(&c).await;
    assert_eq!(auth_failures(&m, "duplicate"), 6, "{m}");
}

#[tokio::test]
async fn two_api_keys_on_a_browser_route_are_refused() {
    let env = CallEnv::start("poll").await;
    let (s, v) = env.click2call("9530251797").await;
    assert_eq!(s, 200, "{v}");
    let url = env.gw.url(&format!(
        "/api/c2c/calls/{}",
        v["call_id"].as_str().unwrap()
    ));
    let get = |keys: &[&str]| {
        let mut r = env.c.get(&url);
        for k in keys {
            r = r.header("x-api-key", *k);
        }
        r.send()
    };
    // No key (the browser) and the call's own tenant's key both read the call.
    for keys in [&[][..], &[ACME_KEY]] {
        let (s, v) = json(get(keys).await.unwrap()).await;
        assert_eq!(s, 200, "{keys:?}: {v}");
    }
    for (what, keys) in [
        ("valid key then wrong key", [ACME_KEY, WRONG_KEY]),
        ("wrong key then valid key", [WRONG_KEY, ACME_KEY]),
    ] {
        let (s, v) = json(get(&keys).await.unwrap()).await;
        assert_duplicate_refused(s, &v, "X-api-key", what);
    }
    let m = env.gw.metrics(&env.c).await;
    assert_eq!(auth_failures(&m, "duplicate"), 2, "{m}");
}

#[tokio::test]
async fn two_livekit_credentials_are_refused_and_never_reach_livekit() {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    let c = client();
    let secret = std::fs::read_to_string(p.path().join("secrets/livekit-sim.secret")).unwrap();
    let token = |room: &str| {
        c2c_livekit::token::agent_token(
            LK_KEY,
            secret.trim(),
            room,
            "agent-42",
            Duration::from_secs(60),
        )
        .unwrap()
    };
    let (a, b) = (token("room-a"), token("room-b"));
    let sim_stats = || async {
        c.get(format!("http://127.0.0.1:{}/sim/stats", p.sim_port))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    let twirp = c
        .post(gw.url("/twirp/livekit.RoomService/ListRooms"))
        .header("authorization", format!("Bearer {a}"))
        .header("authorization", "Bearer garbage")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    let (s, v) = json(twirp).await;
    assert_duplicate_refused(s, &v, "Authorization", "twirp: valid then garbage");
    let validate = |query: String, headers: &[&str]| {
        let mut r = c.get(gw.url(&format!("/rtc/validate{query}")));
        for h in headers {
            r = r.header("authorization", format!("Bearer {h}"));
        }
        r.send()
    };
    for (what, query, headers, header) in [
        (
            "two Authorization headers",
            String::new(),
            vec![a.as_str(), b.as_str()],
            "Authorization",
        ),
        (
            "two access_token parameters",
            format!("?access_token={a}&access_token={b}"),
            vec![],
            "access_token",
        ),
        (
            "access_token and a different Authorization",
            format!("?access_token={a}"),
            vec![b.as_str()],
            "access_token",
        ),
    ] {
        let (s, v) = json(validate(query, &headers).await.unwrap()).await;
        assert_duplicate_refused(s, &v, header, what);
    }
    // The WebSocket upgrade itself, two Authorization headers: refused before LiveKit.
    let upgrade = format!(
        "GET /rtc?auto_subscribe=1 HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Authorization: Bearer {a}\r\nAuthorization: Bearer {b}\r\n\r\n"
    );
    let r = raw::send(gw.port, upgrade.as_bytes(), false).expect("an answer");
    assert_duplicate_refused(r.status, &r.json(), "Authorization", "upgrade");
    let st = sim_stats().await;
    assert_eq!(
        (&st["requests"], &st["rtc_connections"]),
        (&json!(0), &json!(0)),
        "a refused request reached LiveKit: {st}"
    );
    // One token, sent once (or the same token in both places), goes through.
    let (s, v) = json(validate(format!("?access_token={a}"), &[]).await.unwrap()).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = json(validate(format!("?access_token={a}"), &[&a]).await.unwrap()).await;
    assert_eq!(s, 200, "{v}");
    let m = gw.metrics(&c).await;
    assert_eq!(auth_failures(&m, "duplicate"), 5, "{m}");
}

#[tokio::test]
async fn two_authorization_headers_on_the_livekit_webhook_are_refused() {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    let c = client();
    let secret = std::fs::read_to_string(p.path().join("secrets/livekit-sim.secret")).unwrap();
    let body = json!({
        "event": "room_finished",
        "room": {"name": "c2c-0123456789abcdef0123456789abcdef"},
        "id": "EV_duplicate_auth",
    })
    .to_string();
    let signed =
        livekit_sim::webhooks::sign_webhook(body.into_bytes(), LK_KEY, secret.trim()).unwrap();
    let post = |auth: &[&str]| {
        let mut r = c
            .post(gw.url("/webhooks/livekit"))
            .header("content-type", "application/webhook+json")
            .body(signed.body.clone());
        for a in auth {
            r = r.header("authorization", *a);
        }
        r.send()
    };
    for (what, auth) in [
        (
            "signature then garbage",
            [signed.authorization.as_str(), "garbage"],
        ),
        (
            "garbage then signature",
            ["garbage", signed.authorization.as_str()],
        ),
    ] {
        let (s, v) = json(post(&auth).await.unwrap()).await;
        assert_duplicate_refused(s, &v, "Authorization", what);
    }
    // The same signature alone is accepted: it was the duplicate that was refused.
    let (s, v) = json(post(&[signed.authorization.as_str()]).await.unwrap()).await;
    assert_eq!(s, 200, "{v}");
}
