//! The process lifecycle as an orchestrator sees it: the slow part of opening the store
//! (a tally rebuild after an upgrade) runs with the listener already up, `/livez` 200 and
//! `/readyz` 503 with the progress; SIGTERM turns `/readyz` 503 at once while the gateway
//! keeps serving for the drain, then it exits.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use c2c_callstate::{CallKnobs, CallRecord, NewCall, SledCallStore};
use common::*;
use serde_json::json;

/// GET `path` on a fresh connection: (status, body), or None while nothing listens.
async fn get(c: &reqwest::Client, url: String) -> Option<(u16, serde_json::Value)> {
    let r = c.get(url).send().await.ok()?;
    Some(json(r).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_readyz_503_and_keeps_serving_through_the_drain() {
    let p = Policies::example();
    p.edit(
        "gateway.toml",
        "grace_period_seconds = 1",
        "grace_period_seconds = 3",
    );
    let data = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(p.path(), data.path());
    let c = client();
    assert_eq!(get(&c, gw.url("/readyz")).await.unwrap().0, 200);
    let t0 = Instant::now();
    gw.send_sigterm();
    // Within moments /readyz is 503 (on new connections: the listener stays open).
    let mut draining = None;
    while t0.elapsed() < Duration::from_secs(2) {
        if let Some((503, v)) = get(&c, gw.url("/readyz")).await {
            draining = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let v = draining.expect("/readyz never turned 503 after SIGTERM");
    assert_eq!(error_code(&v), "not_ready");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("draining"),
        "{v}"
    );
    // Still serving: the load balancer is taking us out meanwhile.
    assert_eq!(get(&c, gw.url("/livez")).await.unwrap().0, 200);
    let (s, v) = json(
        c.post(gw.url("/api/c2c/normalize"))
            .header("x-api-key", ACME_KEY)
            .json(&json!({"customer_number": "9530251797"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let status = gw.wait_exit();
    let took = t0.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(12),
        "{took:?}"
    );
    assert!(gw.log_text().contains("c2c-gateway stopped"));
}

/// A store whose per-day tallies must be rebuilt (as after an upgrade that changed their
/// format) with `calls` ended records.
async fn store_needing_a_rebuild(data: &std::path::Path, calls: u64) {
    let db = sled::Config::new().path(data.join("store")).open().unwrap();
    let store = SledCallStore::open_with_db(db.clone()).unwrap();
    let knobs = CallKnobs::default();
    let now = chrono::Utc::now().timestamp_millis() as u64;
    let mut tasks = Vec::new();
    for k in 0..64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = k;
            while i < calls {
                let (call_id, room) = c2c_callstate::new_call_id();
                let (rec, _) = CallRecord::new(
                    NewCall {
                        call_id,
                        room,
                        tenant: "acme".into(),
                        case_id: format!("case-{i}"),
                        customer_crm_id: "cust".into(),
                        agent_id: "agent-42".into(),
                        customer_number: "9530251797".into(),
                        phone_from: "+919999999999".into(),
                        trunk_label: "airtel-mum".into(),
                    },
                    &knobs,
                    now,
                );
                store.create(&rec).await.unwrap();
                i += 64;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    store.invalidate_tallies().unwrap();
    drop(store);
    db.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tally_rebuild_runs_with_the_listener_up_and_readyz_503() {
    let p = Policies::example();
    let data = tempfile::tempdir().unwrap();
    const CALLS: u64 = 25_000;
    store_needing_a_rebuild(data.path(), CALLS).await;
    let gw = Gateway::spawn_with_env(p.path(), data.path(), &[]);
    let c = client();
    // Live, and not ready while the rebuild runs: a liveness probe must not restart it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut starting = None;
    loop {
        assert!(Instant::now() < deadline, "{}", gw.log_text());
        match get(&c, gw.url("/readyz")).await {
            Some((503, v)) if starting.is_some() => starting = Some(v),
            Some((503, v)) => {
                assert_eq!(get(&c, gw.url("/livez")).await.unwrap().0, 200);
                // Call-store routes say why they cannot answer yet.
                let (s, body) = json(
                    c.post(gw.url("/api/c2c/click2call"))
                        .header("x-api-key", ACME_KEY)
                        .json(&json!({"case_id": "k", "customer_number": "9530251797", "agent_id": "a", "customer_crm_id": "x"}))
                        .send()
                        .await
                        .unwrap(),
                )
                .await;
                if get(&c, gw.url("/readyz")).await.map(|r| r.0) == Some(503) {
                    assert_eq!((s, error_code(&body)), (503, "starting"), "{body}");
                }
                starting = Some(v);
            }
            Some((200, _)) => break,
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let v = starting.expect("/readyz was never 503 while the tallies were rebuilt");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("starting up"),
        "{v}"
    );
    let log = gw.log_text();
    let listening = log.find("c2c-gateway listening").expect("listening line");
    let rebuilt = log.find("tallies rebuilt").expect("rebuilt line");
    assert!(
        listening < rebuilt,
        "the rebuild ran before the listener:\n{log}"
    );
    assert!(
        log.contains("rebuilding per-day call tallies"),
        "no progress in the log:\n{log}"
    );
    // The rebuilt tallies count every call.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let (s, v) = json(
        c.get(gw.url(&format!("/api/c2c/analytics?from={today}&to={today}")))
            .header("x-api-key", ACME_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, v["total"].as_u64()), (200, Some(CALLS)), "{v}");
}
