//! Managed tenants' wallets through the real binary: the owner's top-ups, adjustments
//! and refunds (audited in the ledger, idempotent by request id), what a tenant key may
//! read and what it may not, bad input that changes nothing, the CSV export, a `kill -9`
//! right after acknowledged entries, `db check` over the ledgers, and the `wallet` CLI
//! in both of its modes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use common::cli::{cli, ok, s};
use common::*;
use serde_json::{json, Value};

const CONSOLE_KEY: &str = "c2c_MVFatqflX4eiQMbYpIWckdWX2N2SGJ2iWdKu";
const ENTRIES: &str = "/api/c2c/owner/tenants/acme/wallet/entries";

/// The example policies plus `initech`, a tenant with its own LiveKit project (BYOT).
fn policies() -> Policies {
    let p = Policies::example();
    std::fs::write(
        p.path().join("secrets/byo.secret"),
        "byo-secret-0123456789abcdef0123456789",
    )
    .unwrap();
    p.write(
        "tenants/initech.toml",
        "id = \"initech\"\nname = \"Initech\"\nregion = \"mumbai\"\n\n[livekit]\n\
         url = \"http://127.0.0.1:9\"\napi_key = \"APIbyotenant\"\n\
         api_secret_file = \"secrets/byo.secret\"\n\n[dlt]\n\
         principal_entity_id = \"1101555\"\noutbound_enabled = true\n",
    );
    p
}

async fn post(
    c: &reqwest::Client,
    gw: &Gateway,
    path: &str,
    key: &str,
    body: Value,
) -> (u16, Value) {
    json(
        c.post(gw.url(path))
            .header("x-api-key", key)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn get(c: &reqwest::Client, gw: &Gateway, path: &str, key: &str) -> (u16, Value) {
    json(
        c.get(gw.url(path))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn owner_entries_are_audited_idempotent_and_survive_kill_9() {
    let p = policies();
    let data = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(p.path(), data.path());
    let c = client();

    // A top-up: 201, the owner key's id as actor, the balance after.
    let topup = json!({"kind": "top_up", "amount_paise": 500_000, "reason": "NEFT UTR 4096", "request_id": "topup-4096"});
    let (st, v) = post(&c, &gw, ENTRIES, OWNER_KEY, topup.clone()).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["replayed"], false);
    assert_eq!(v["balance_paise"], 500_000);
    let first = v["entry"].clone();
    assert_eq!(first["id"], "acme/1");
    assert_eq!(first["kind"], "top_up");
    assert_eq!(first["balance_after_paise"], 500_000);
    assert!(
        first["actor"].as_str().unwrap().starts_with("owner:"),
        "{first}"
    );
    assert_eq!(first["reason"], "NEFT UTR 4096");

    // The same request again (a client retrying a timeout): the first entry, no money.
    let (st, v) = post(&c, &gw, ENTRIES, OWNER_KEY, topup).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["replayed"].clone(), v["entry"].clone()),
        (json!(true), first.clone())
    );
    assert_eq!(v["balance_paise"], 500_000);
    // The same request id for another amount is refused.
    let (st, v) = post(
        &c,
        &gw,
        ENTRIES,
        OWNER_KEY,
        json!({"kind": "top_up", "amount_paise": 1, "reason": "typo", "request_id": "topup-4096"}),
    )
    .await;
    assert_eq!((st, error_code(&v)), (409, "request_id_reused"), "{v}");

    // An adjustment down and a refund.
    let (st, v) = post(
        &c,
        &gw,
        ENTRIES,
        OWNER_KEY,
        json!({"kind": "adjustment", "amount_paise": -12_345, "reason": "duplicate NEFT credit"}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["entry"]["balance_after_paise"], 487_655);
    let (st, v) = post(
        &c,
        &gw,
        ENTRIES,
        OWNER_KEY,
        json!({"kind": "refund", "amount_paise": 2_000, "reason": "dropped call",
               "call_id": "c_0123456789abcdef0123456789abcdef"}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["balance_paise"], 489_655);

    // Bad input gets a clear error and changes nothing.
    for (body, status, code) in [
        (
            json!({"kind": "adjustment", "amount_paise": -489_656, "reason": "too much"}),
            409,
            "below_floor",
        ),
        (
            json!({"kind": "top_up", "amount_paise": -5, "reason": "negative"}),
            422,
            "invalid_entry",
        ),
        (
            json!({"kind": "top_up", "amount_paise": 5, "reason": "  "}),
            422,
            "invalid_entry",
        ),
        (
            json!({"kind": "top_up", "amount_paise": 10_000_000_001_i64, "reason": "huge"}),
            422,
            "invalid_entry",
        ),
        (
            json!({"kind": "top_up", "amount_paise": 5, "reason": "x", "request_id": "has space"}),
            422,
            "invalid_entry",
        ),
        (
            json!({"kind": "call_charge", "amount_paise": -5, "reason": "x"}),
            400,
            "invalid_json",
        ),
        (
            json!({"kind": "top_up", "amount_paise": 5, "reason": "x", "billing_mode": "managed"}),
            400,
            "invalid_json",
        ),
        (
            json!({"kind": "top_up", "amount_paise": 2.5, "reason": "x"}),
            400,
            "invalid_json",
        ),
    ] {
        let (st, v) = post(&c, &gw, ENTRIES, OWNER_KEY, body.clone()).await;
        assert_eq!((st, error_code(&v)), (status, code), "{body}: {v}");
    }
    let r = c
        .post(gw.url(ENTRIES))
        .header("x-api-key", OWNER_KEY)
        .header("content-type", "application/json")
        .body("{\"kind\": \"top_up\",")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (st, v) = post(
        &c,
        &gw,
        "/api/c2c/owner/tenants/nosuch/wallet/entries",
        OWNER_KEY,
        json!({"kind": "top_up", "amount_paise": 5, "reason": "x"}),
    )
    .await;
    assert_eq!((st, error_code(&v)), (404, "not_found"), "{v}");
    // A BYOT tenant has no wallet to pay into.
    let (st, v) = post(
        &c,
        &gw,
        "/api/c2c/owner/tenants/initech/wallet/entries",
        OWNER_KEY,
        json!({"kind": "top_up", "amount_paise": 5, "reason": "x"}),
    )
    .await;
    assert_eq!((st, error_code(&v)), (409, "not_managed"), "{v}");
    // Only the owner posts: a tenant's own keys may not top themselves up.
    for key in [ACME_KEY, CONSOLE_KEY] {
        let (st, _) = post(
            &c,
            &gw,
            ENTRIES,
            key,
            json!({"kind": "top_up", "amount_paise": 5, "reason": "free money"}),
        )
        .await;
        assert_eq!(st, 403, "{key}");
    }

    let (st, v) = get(&c, &gw, "/api/c2c/wallet", ACME_KEY).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["balance_paise"], 489_655,
        "refused requests changed nothing"
    );
    assert_eq!(v["balance_inr"], "4896.55");
    assert_eq!(v["billing_mode"], "managed");
    assert_eq!(v["entries"], 3);
    assert!(gw
        .metrics(&c)
        .await
        .contains("c2c_wallet_balance_paise{tenant=\"acme\"} 489655"));

    // Every acknowledged entry survives kill -9.
    gw.kill9();
    gw.start_again();
    // A fresh client: the old one's pooled connections went with the killed process.
    let c = client();
    let (_, v) = get(&c, &gw, "/api/c2c/wallet", CONSOLE_KEY).await;
    assert_eq!(
        (v["balance_paise"].clone(), v["entries"].clone()),
        (json!(489_655), json!(3)),
        "{v}"
    );
    let kinds: Vec<&str> = v["statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["top_up", "adjustment", "refund"]);
    drop(gw);

    // db check reads the ledger and finds it adds up.
    let o = cli(&["db", "check", "--data", &s(data.path())], &[]);
    ok(&o);
    assert!(
        o.stdout.contains("wallets 1, wallet ledger entries 3"),
        "{}",
        o.stdout
    );
    let o = cli(&["db", "check", "--json", "--data", &s(data.path())], &[]);
    let report: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(
        (
            report["problem_count"].clone(),
            report["wallets"]["entries"].clone()
        ),
        (json!(0), json!(3))
    );
}

#[tokio::test]
async fn tenants_read_only_their_own_wallet_pages_and_csv() {
    let p = policies();
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start(p.path(), data.path());
    let c = client();
    for i in 1..=5 {
        let (st, v) = post(
            &c,
            &gw,
            ENTRIES,
            OWNER_KEY,
            json!({"kind": "top_up", "amount_paise": i * 100,
            "reason": if i == 3 { "=HYPERLINK(\"http://evil\"), \"quoted\"" } else { "top-up" }}),
        )
        .await;
        assert_eq!(st, 201, "{v}");
    }
    // Pages follow next_after.
    let (_, p1) = get(&c, &gw, "/api/c2c/wallet?limit=2", ACME_KEY).await;
    assert_eq!(p1["next_after"], 2);
    let (_, p3) = get(&c, &gw, "/api/c2c/wallet?limit=2&after=4", ACME_KEY).await;
    assert_eq!(p3["statement"].as_array().unwrap().len(), 1);
    assert_eq!(p3["next_after"], Value::Null);
    assert_eq!(p3["statement"][0]["balance_after_paise"], 1_500);
    // A tenant key cannot name another tenant; the owner must name one.
    let (st, _) = get(&c, &gw, "/api/c2c/wallet?tenant=globex", ACME_KEY).await;
    assert_eq!(st, 403);
    let (st, v) = get(&c, &gw, "/api/c2c/wallet", OWNER_KEY).await;
    assert_eq!((st, error_code(&v)), (422, "missing_tenant"));
    let (st, v) = get(&c, &gw, "/api/c2c/wallet?tenant=acme", OWNER_KEY).await;
    assert_eq!((st, v["balance_paise"].clone()), (200, json!(1_500)));
    let (st, v) = get(&c, &gw, "/api/c2c/wallet?tenant=globex", OWNER_KEY).await;
    assert_eq!(
        (st, v["balance_paise"].clone(), v["entries"].clone()),
        (200, json!(0), json!(0)),
        "globex has its own, empty wallet"
    );
    let (_, v) = get(&c, &gw, "/api/c2c/wallet?tenant=initech", OWNER_KEY).await;
    assert_eq!(v["billing_mode"], "byot");
    assert_eq!(
        (v["rate_card"].clone(), v["min_call_paise"].clone()),
        (json!([]), Value::Null)
    );
    // The rate card: airtel-mum bills per second, jio-del at the platform's rate.
    assert_eq!(
        p1["rate_card"],
        json!([
            {"trunk": "airtel-mum", "enabled": true, "paise_per_pulse": 2, "pulse_seconds": 1, "source": "trunk"},
            {"trunk": "jio-del", "enabled": false, "paise_per_pulse": 100, "pulse_seconds": 60, "source": "platform"},
        ])
    );
    assert_eq!(
        p1["min_call_paise"], 120,
        "one minute on the default trunk, 60 pulses of 2 paise"
    );
    for bad in ["limit=0", "limit=1001", "after=-1", "after=x"] {
        let (st, v) = get(&c, &gw, &format!("/api/c2c/wallet?{bad}"), ACME_KEY).await;
        assert_eq!(st, 422, "{bad}: {v}");
    }
    let (st, _) = get(
        &c,
        &gw,
        "/api/c2c/wallet",
        "c2c_forgedforgedforgedforgedforgedforged",
    )
    .await;
    assert_eq!(st, 401);

    // The CSV export: the page, formulas defused, quotes doubled.
    let r = c
        .get(gw.url("/api/c2c/wallet/statement.csv"))
        .header("x-api-key", CONSOLE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "id,seq,at,kind,amount_paise,balance_after_paise,actor,reason,call_id,request_id"
    );
    assert_eq!(
        lines.len(),
        7,
        "header, five entries, the final CRLF: {csv}"
    );
    assert!(lines[3].starts_with("acme/3,3,"), "{csv}");
    assert!(lines[3].contains(",top_up,300,600,owner:"), "{csv}");
    assert!(
        lines[3].contains(",\"'=HYPERLINK(\"\"http://evil\"\"), \"\"quoted\"\"\",,"),
        "{csv}"
    );
}

#[tokio::test]
async fn the_wallet_cli_posts_and_shows_directly_and_through_a_gateway() {
    let p = policies();
    let data = tempfile::tempdir().unwrap();
    // The store must exist before a direct post: start once, stop.
    let mut gw = Gateway::start(p.path(), data.path());
    gw.sigterm();
    let dirs = ["--policies", &s(p.path()), "--data", &s(data.path())];
    // One cheque, posted twice (the operator's shell retried).
    const CHEQUE: [&str; 10] = [
        "--tenant",
        "acme",
        "--kind",
        "top-up",
        "--paise",
        "25000",
        "--reason",
        "cheque 77",
        "--request-id",
        "chq-77",
    ];
    let post = |args: &[&str]| {
        let mut all = vec!["wallet", "post"];
        all.extend_from_slice(args);
        all.extend_from_slice(&dirs);
        cli(&all, &[("USER", "ops-anita")])
    };
    let o = post(&CHEQUE);
    ok(&o);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["entry"]["actor"], "cli:ops-anita");
    let o = post(&CHEQUE);
    ok(&o);
    assert_eq!(
        serde_json::from_str::<Value>(&o.stdout).unwrap()["replayed"],
        true
    );
    let o = post(&[
        "--tenant",
        "acme",
        "--kind",
        "adjustment",
        "--paise",
        "-30000",
        "--reason",
        "oops",
    ]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(o.stderr.contains("below"), "{}", o.stderr);
    let o = post(&[
        "--tenant", "initech", "--kind", "top-up", "--paise", "1", "--reason", "x",
    ]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("brings its own telephony"),
        "{}",
        o.stderr
    );

    // Through a running gateway: the owner key from the environment.
    gw.start_again();
    let env = [("C2C_OWNER_KEY", OWNER_KEY)];
    let o = cli(
        &[
            "wallet",
            "post",
            "--gateway",
            &gw.base,
            "--tenant",
            "acme",
            "--kind",
            "adjustment",
            "--paise",
            "-5000",
            "--reason",
            "goodwill reversal",
        ],
        &env,
    );
    ok(&o);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["balance_paise"], 20_000);
    let o = cli(
        &["wallet", "show", "--gateway", &gw.base, "--tenant", "acme"],
        &env,
    );
    ok(&o);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(
        (v["balance_paise"].clone(), v["entries"].clone()),
        (json!(20_000), json!(2))
    );
    let o = cli(
        &[
            "wallet",
            "show",
            "--gateway",
            &gw.base,
            "--tenant",
            "acme",
            "--csv",
        ],
        &env,
    );
    ok(&o);
    assert_eq!(o.stdout.lines().count(), 3, "{}", o.stdout);
    gw.sigterm();
    let o = cli(
        &[
            "wallet",
            "show",
            "--tenant",
            "acme",
            "--policies",
            &s(p.path()),
            "--data",
            &s(data.path()),
        ],
        &[],
    );
    ok(&o);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    let actor = v["statement"][1]["actor"].as_str().unwrap();
    assert!(actor.starts_with("owner:"), "{v}");
}
