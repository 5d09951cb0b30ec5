//! Managed calls paid from the wallet, through the real binary and the bundled LiveKit
//! simulator (`billing.charge_calls = true`; acme's default trunk bills 2 paise per 1 s
//! pulse, so a call needs 120 paise available to start): `402 insufficient_balance` at
//! click2call and at `/connect` with nothing dialled, the hold each connected call
//! places, one charge per answered call (pulses from the answer to the end), none for an
//! unanswered one, and a `kill -9` mid-call that neither loses nor doubles the charge.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::calls::CallEnv;
use common::*;
use serde_json::{json, Value};

const ENTRIES: &str = "/api/c2c/owner/tenants/acme/wallet/entries";
const T: Duration = Duration::from_secs(20);

fn charging(p: &Policies) {
    p.edit(
        "gateway.toml",
        "charge_calls = false",
        "charge_calls = true",
    );
}

async fn wallet(env: &CallEnv) -> Value {
    let (s, v) = json(
        env.c
            .get(env.gw.url("/api/c2c/wallet"))
            .header("x-api-key", ACME_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v
}

async fn top_up(env: &CallEnv, paise: i64, request_id: &str) {
    let (s, v) = json(
        env.c
            .post(env.gw.url(ENTRIES))
            .header("x-api-key", OWNER_KEY)
            .json(&json!({"kind": "top_up", "amount_paise": paise, "reason": "test", "request_id": request_id}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 201, "{v}");
}

fn held(w: &Value) -> Vec<(String, i64)> {
    w["holds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["call_id"].as_str().unwrap().to_owned(),
                h["amount_paise"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn charges_of(w: &Value, call_id: &str) -> Vec<Value> {
    w["statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "call_charge" && e["call_id"] == call_id)
        .cloned()
        .collect()
}

/// Waits until the call's hold is gone from the wallet (its settle ran).
async fn settled(env: &CallEnv, call_id: &str) -> Value {
    let deadline = std::time::Instant::now() + T;
    loop {
        let w = wallet(env).await;
        if !held(&w).iter().any(|(c, _)| c == call_id) {
            return w;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "hold of {call_id} never released: {w}\n{}",
            env.gw.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The charge of an answered call: whole 1 s pulses of 2 paise from the answer to the
/// end, as the call's record times them.
fn check_charge(entry: &Value, call_id: &str, talk_at_least_s: i64) {
    assert_eq!(entry["request_id"], format!("call:{call_id}"));
    assert_eq!(entry["actor"], "call");
    let paise = -entry["amount_paise"].as_i64().unwrap();
    assert_eq!(paise % 2, 0, "whole pulses of 2 paise: {entry}");
    assert!(
        paise >= 2 * talk_at_least_s && paise <= 2 * (talk_at_least_s + 8),
        "{paise} paise for about {talk_at_least_s} s: {entry}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_calls_are_held_charged_once_and_refused_when_the_wallet_cannot_pay() {
    let env = CallEnv::start_edited("poll", &[], charging).await;
    let answer = json!({"ring_after_ms": 50, "outcome": {"kind": "answer", "after_ms": 100, "hangup_after_ms": 600_000}});
    let ring = json!({"ring_after_ms": 50, "outcome": {"kind": "no_answer"}});
    for n in ["9800000001", "9800000004"] {
        env.scenario(n, answer.clone()).await;
    }
    env.scenario("9800000002", ring).await;

    // An empty wallet: 402 at click2call, no room, no call.
    let (s, v) = env.click2call("9800000001").await;
    assert_eq!((s, error_code(&v)), (402, "insufficient_balance"), "{v}");
    let rooms = env.sim_rooms().await;
    assert_eq!(
        rooms.as_array().map_or(0, Vec::len),
        0,
        "a room was created: {rooms}"
    );
    let w = wallet(&env).await;
    assert_eq!(
        (w["charge_calls"].clone(), w["available_paise"].clone()),
        (json!(true), json!(0))
    );

    top_up(&env, 300, "t-1").await;
    // Call 1 connects: 120 held, 180 left. Call 2 connects: 60 left.
    let (c1, _) = env.start_call("9800000001").await;
    let w = wallet(&env).await;
    assert_eq!(held(&w), vec![(c1.clone(), 120)]);
    assert_eq!(w["available_paise"], 180);
    let (c2, _) = env.start_call("9800000002").await;
    assert_eq!(wallet(&env).await["available_paise"], 60);
    // Call 3 cannot start: 60 available, 120 needed.
    let (s, v) = env.click2call("9800000003").await;
    assert_eq!((s, error_code(&v)), (402, "insufficient_balance"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("60 paise available"),
        "{v}"
    );

    // Call 1 talks about 2 s and ends: one charge, the hold released.
    env.wait_status(&c1, "ACTIVE", T).await;
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    env.hang_up(&c1).await;
    let w = settled(&env, &c1).await;
    let charges = charges_of(&w, &c1);
    assert_eq!(charges.len(), 1, "{w}");
    check_charge(&charges[0], &c1, 2);
    let charge = -charges[0]["amount_paise"].as_i64().unwrap();
    assert_eq!(w["balance_paise"], 300 - charge);
    // Call 2 was never answered (it rings out): its hold goes, nothing is charged.
    env.wait_status(&c2, "ENDED", T).await;
    let w = settled(&env, &c2).await;
    assert!(charges_of(&w, &c2).is_empty(), "{w}");
    assert_eq!(w["entries"], 2, "a top-up and one charge: {w}");
    assert_eq!(w["available_paise"], 300 - charge);
    // Analytics: the day's spend and talk, per trunk too (the usage report).
    let (s, a) = json(
        env.c
            .get(env.gw.url("/api/c2c/analytics"))
            .header("x-api-key", ACME_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["spend_paise"], charge, "{a}");
    let talk = a["talk_seconds"].as_i64().unwrap();
    assert!((2..=12).contains(&talk), "{a}");
    let airtel = a["by_trunk"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["trunk"] == "airtel-mum")
        .cloned()
        .unwrap();
    assert_eq!(
        (
            airtel["spend_paise"].clone(),
            airtel["talk_seconds"].clone()
        ),
        (json!(charge), json!(talk))
    );
    assert_eq!(airtel["by_day"].as_array().unwrap().len(), 1, "{airtel}");
    let today = a["by_day"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(today["spend_paise"], charge, "{today}");
    let m = env.gw.metrics(&env.c).await;
    assert!(
        m.contains("c2c_wallet_refusals_total{at=\"click2call\",tenant=\"acme\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("c2c_wallet_entries_total{kind=\"call_charge\",tenant=\"acme\"} 1"),
        "{m}"
    );
    // Below billing.low_balance_paise (₹100) since the start: flagged low.
    assert!(
        m.contains("c2c_wallet_low_balance{tenant=\"acme\"} 1"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_charged_across_a_kill_9_is_charged_once() {
    let mut env = CallEnv::start_edited("poll", &[], charging).await;
    env.scenario(
        "9800000005",
        json!({"ring_after_ms": 50, "outcome": {"kind": "answer", "after_ms": 100, "hangup_after_ms": 600_000}}),
    )
    .await;
    top_up(&env, 1_000, "t-2").await;
    let (c, _) = env.start_call("9800000005").await;
    env.wait_status(&c, "ACTIVE", T).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    // The process dies mid-call (the bundled simulator with it: the room is gone).
    env.gw.restart_hard();
    env.c = client();
    // The restarted gateway finds the call's room gone and ends it; its charge is
    // posted once, and the hold is released.
    env.wait_status(&c, "ENDED", Duration::from_secs(30)).await;
    let w = settled(&env, &c).await;
    let charges = charges_of(&w, &c);
    assert_eq!(charges.len(), 1, "{w}");
    check_charge(&charges[0], &c, 1);
    // And again after a second crash: the sweep at start settles nothing twice.
    env.gw.restart_hard();
    env.c = client();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let w = wallet(&env).await;
    assert_eq!(charges_of(&w, &c).len(), 1, "{w}");
    assert_eq!(w["entries"], 2, "{w}");
    assert!(held(&w).is_empty(), "{w}");
}

/// The balance watch ends an answered call before it starts a pulse its wallet cannot
/// pay: acme's trunk at 50 paise a second (a 3,000 paise hold for the one-minute
/// minimum), the owner takes the wallet down to 100 paise mid-call, and the call ends
/// ANSWERED with `balance_exhausted`, charged no more than the wallet had (plus the
/// pulses of one look).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_the_wallet_can_no_longer_pay_ends_balance_exhausted() {
    let env = CallEnv::start_edited("poll", &[], |p| {
        charging(p);
        p.edit(
            "tenants/acme.toml",
            "paise_per_pulse = 2",
            "paise_per_pulse = 50",
        );
    })
    .await;
    env.scenario(
        "9800000006",
        json!({"ring_after_ms": 50, "outcome": {"kind": "answer", "after_ms": 100, "hangup_after_ms": 600_000}}),
    )
    .await;
    top_up(&env, 3_000, "t-3").await;
    let (c, _) = env.start_call("9800000006").await;
    assert_eq!(held(&wallet(&env).await), vec![(c.clone(), 3_000)]);
    env.wait_status(&c, "ACTIVE", T).await;
    // The owner takes most of it back (a correction may empty a wallet, not overdraw it).
    let (s, v) = json(
        env.c
            .post(env.gw.url(ENTRIES))
            .header("x-api-key", OWNER_KEY)
            .json(&json!({"kind": "adjustment", "amount_paise": -2_900, "reason": "chargeback"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let call = env.wait_status(&c, "ENDED", T).await;
    assert_eq!(call["disconnect_reason"], "balance_exhausted", "{call}");
    let w = settled(&env, &c).await;
    let charges = charges_of(&w, &c);
    assert_eq!(charges.len(), 1, "{w}");
    let charge = -charges[0]["amount_paise"].as_i64().unwrap();
    assert!(
        charge > 0 && charge <= 200,
        "charged {charge} with 100 left: {w}"
    );
    let hook = env.webhook(&c, T).await;
    assert_eq!(hook.body["call_status"], "ANSWERED", "{}", hook.body);
}

/// The `wallet.low_balance` events the sink received.
fn low_balance_events(env: &CallEnv) -> Vec<common::sink::Received> {
    env.sink
        .delivered()
        .into_iter()
        .filter(|r| r.body["event"] == "wallet.low_balance")
        .collect()
}

/// Waits until the sink has `n` low-balance events; answers them.
async fn wait_low_events(env: &CallEnv, n: usize) -> Vec<common::sink::Received> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let got = low_balance_events(env);
        if got.len() >= n {
            return got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {n} low-balance webhooks: {:?}\n{}",
            got.len(),
            env.sink
                .all()
                .iter()
                .map(|r| r.body.clone())
                .collect::<Vec<_>>(),
            env.gw.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_wallet_tells_an_opted_in_crm_once_even_across_a_kill_9() {
    let mut env = CallEnv::start_edited("poll", &[], |p| {
        charging(p);
        p.edit(
            "tenants/acme.toml",
            "signing_secret_file = \"secrets/acme-crm-signing.secret\"",
            "signing_secret_file = \"secrets/acme-crm-signing.secret\"\nlow_balance_webhook = true",
        );
    })
    .await;
    env.scenario(
        "9800000011",
        json!({"ring_after_ms": 50, "outcome": {"kind": "answer", "after_ms": 100, "hangup_after_ms": 600_000}}),
    )
    .await;
    // An empty wallet is low from the first look (at start): one event.
    let first = wait_low_events(&env, 1).await;
    assert_eq!(
        (
            first[0].body["balance_paise"].clone(),
            first[0].body["event_id"].clone()
        ),
        (json!(0), json!("evt_lowbal_acme_0"))
    );
    // ₹101 against the ₹100 mark: not low (seen at the next look, within 10 s)...
    top_up(&env, 10_100, "t-low").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while common::fleet::metric(
        &env.gw.metrics(&env.c).await,
        "c2c_wallet_low_balance{tenant=\"acme\"}",
    ) != 0.0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "never seen above the mark"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // ...until a connected call holds 120 paise: low again, a new crossing, a new event.
    let (call, _) = env.start_call("9800000011").await;
    let ev = wait_low_events(&env, 2).await.remove(1);
    let b = &ev.body;
    assert_eq!(
        (
            b["tenant"].clone(),
            b["threshold_paise"].clone(),
            b["balance_paise"].clone(),
            b["available_paise"].clone()
        ),
        (json!("acme"), json!(10_000), json!(10_100), json!(9_980)),
        "{b}"
    );
    let event_id = b["event_id"].as_str().unwrap();
    assert_eq!(event_id, "evt_lowbal_acme_1", "{b}");
    assert_eq!(ev.headers["webhook-id"], format!("msg_{event_id}"));
    assert!(
        ev.headers.contains_key("webhook-signature"),
        "signed like a call outcome"
    );
    assert!(ev.headers.contains_key("x-api-key"));

    // After a kill -9 (which forgets who was seen low) the first look sees the same
    // crossing: no new event. (A delivery whose progress the kill lost is sent again
    // with the same webhook-id, at least once as documented: count ids.)
    env.gw.restart_hard();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ids: std::collections::BTreeSet<String> = low_balance_events(&env)
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    assert_eq!(
        ids.len(),
        2,
        "{:?}",
        low_balance_events(&env)
            .iter()
            .map(|r| r.body.clone())
            .collect::<Vec<_>>()
    );
    env.hang_up(&call).await;
    settled(&env, &call).await;

    // The event's outbox entry has no call behind it, and the integrity scan knows that.
    env.gw.sigterm();
    let dat = env.data.path().display().to_string();
    let o = common::cli::cli(&["db", "check", "--data", &dat], &[]);
    assert_eq!(o.code, 0, "{}\n{}", o.stdout, o.stderr);
}
