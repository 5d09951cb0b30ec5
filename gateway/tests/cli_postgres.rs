//! The owner's store commands on the fleet's PostgreSQL store (`[store] kind =
//! "postgres"` in `--policies`): `calls show`, `db check`, `db export` and `webhooks
//! replay` open the shared database (a real PostgreSQL cluster) while the gateway that
//! wrote it keeps serving, and see what it wrote.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use c2c_test_support::pg::PgServer;
use common::calls::CallEnv;
use common::cli::{cli, ok, s};
use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(20);
const NUMBER: &str = "9530251797";
const MASKED: &str = "95******97";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_commands_work_on_the_shared_database_while_the_gateway_serves() {
    let pg = PgServer::start();
    let url = pg.url(&pg.create_database("cli"));
    let env = CallEnv::start_edited("poll", &[("C2C_STORE_URL", &url)], |p| {
        let path = p.path().join("gateway.toml");
        let mut toml = std::fs::read_to_string(&path).unwrap();
        toml.push_str("\n[store]\nkind = \"postgres\"\nurl_env = \"C2C_STORE_URL\"\n");
        std::fs::write(path, toml).unwrap();
    })
    .await;
    let (call_id, _) = env.start_call(NUMBER).await;
    env.post(&format!("/api/c2c/calls/{call_id}/hangup")).await;
    let first = env.webhook(&call_id, T).await;
    let webhook_id = first.headers["webhook-id"].clone();
    let pol = s(env.policies.path());
    let store_env = [("C2C_STORE_URL", url.as_str())];

    // The record is in PostgreSQL, not in --data: the commands read it with the gateway up.
    let show = || cli(&["calls", "show", &call_id, "--policies", &pol], &store_env);
    assert!(
        eventually(T, || async {
            let o = show();
            o.code == 0
                && serde_json::from_str::<Value>(&o.stdout).unwrap()["webhook"]["state"]
                    == "delivered"
        })
        .await,
        "calls show: {}",
        show().stderr
    );
    let o = show();
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["call"]["phase"], "ENDED");
    assert_eq!(v["call"]["customer_number"], MASKED);
    assert!(!o.stdout.contains(NUMBER));

    let o = cli(&["db", "check", "--policies", &pol], &store_env);
    ok(&o);
    assert!(o.stdout.contains("store OK"), "{}", o.stdout);
    assert!(o.stderr.contains("1 call records"), "{}", o.stderr);

    let o = cli(
        &["db", "export", "--outbox", "--policies", &pol],
        &store_env,
    );
    ok(&o);
    let lines: Vec<Value> = o
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", o.stdout);
    assert_eq!(lines[0]["type"], "call");
    assert_eq!(lines[0]["call_id"], call_id.as_str());
    assert_eq!(lines[1]["type"], "outbox");
    assert!(!o.stdout.contains(NUMBER), "{}", o.stdout);

    // Replay from the shared store: the CRM gets the same webhook again, same id.
    let o = cli(
        &[
            "webhooks",
            "replay",
            "--tenant",
            "acme",
            "--since",
            "1h",
            "--policies",
            &pol,
        ],
        &store_env,
    );
    ok(&o);
    assert!(
        eventually(T, || async { env.sink.for_call(&call_id).len() >= 2 }).await,
        "replayed webhook not received"
    );
    for r in env.sink.for_call(&call_id) {
        assert_eq!(
            r.headers["webhook-id"], webhook_id,
            "a replay keeps the webhook-id"
        );
    }

    // A wallet entry posted from the shell lands in the shared database, where the
    // serving gateway reads it; a second post of the request id moves no money.
    for _ in 0..2 {
        let o = cli(
            &[
                "wallet",
                "post",
                "--tenant",
                "acme",
                "--kind",
                "top-up",
                "--paise",
                "70000",
                "--reason",
                "NEFT 12",
                "--request-id",
                "neft-12",
                "--policies",
                &pol,
            ],
            &store_env,
        );
        ok(&o);
    }
    let v: Value = env
        .c
        .get(env.gw.url("/api/c2c/wallet"))
        .header("x-api-key", ACME_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["balance_paise"].clone(), v["entries"].clone()),
        (70_000.into(), 1.into()),
        "{v}"
    );
    let o = cli(&["db", "check", "--policies", &pol], &store_env);
    ok(&o);
    assert!(
        o.stdout.contains("wallets 1, wallet ledger entries 1"),
        "{}",
        o.stdout
    );
    // A balance edited behind the ledger's back is found.
    pg.psql(
        "cli",
        "UPDATE c2c_wallets SET balance_paise = 1 WHERE tenant = 'acme'",
    );
    let o = cli(&["db", "check", "--policies", &pol], &store_env);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(o.stdout.contains("wallet_ledger acme:"), "{}", o.stdout);
    pg.psql(
        "cli",
        "UPDATE c2c_wallets SET balance_paise = 70000 WHERE tenant = 'acme'",
    );

    // A fault planted behind the store's back is found, and the exit code says so.
    pg.psql(
        "cli",
        &format!("UPDATE c2c_calls SET is_open = true WHERE call_id = '{call_id}'"),
    );
    let o = cli(&["db", "check", "--policies", &pol], &store_env);
    assert_eq!(o.code, 1, "{}\n{}", o.stdout, o.stderr);
    assert!(o.stderr.contains("problem"), "{}", o.stderr);

    // Without the URL the command says what is missing instead of opening --data.
    let o = cli(&["db", "check", "--policies", &pol], &[]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("store.url_env"), "{}", o.stderr);
}
