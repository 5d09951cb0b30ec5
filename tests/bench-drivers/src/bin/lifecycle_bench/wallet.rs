//! `--wallet`: acme's wallet is topped up before phase 1 and its ledger checked after:
//! one charge per lifecycle, no call charged twice, no hold left, and the balance equal to
//! the top-up minus the charges (zero drift).

use std::collections::HashSet;

use super::*;

/// The example policies' owner key (`policies/README.md`).
const OWNER_KEY: &str = "c2c_V9txkkwaqj2BNm7dNiSL76CnJiU3lS4ZJEQf";
/// ₹1 crore: far more than any run spends.
pub(crate) const TOP_UP_PAISE: i64 = 1_000_000_000;

pub(crate) async fn top_up(e: &Env) {
    let r =
        e.c.post(format!("{}/api/c2c/owner/tenants/acme/wallet/entries", e.base))
            .header("x-api-key", OWNER_KEY)
            .json(&json!({"kind": "top_up", "amount_paise": TOP_UP_PAISE, "reason": "bench", "request_id": "bench-top-up"}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 201, "top-up: {}", r.text().await.unwrap());
    println!("wallet: acme topped up with {TOP_UP_PAISE} paise; billing.charge_calls on");
}

async fn wallet_page(e: &Env, after: u64) -> serde_json::Value {
    e.c.get(format!(
        "{}/api/c2c/wallet?after={after}&limit=1000",
        e.base
    ))
    .header("x-api-key", KEY)
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap()
}

/// Waits for every hold to be settled, then reads the whole ledger and checks it.
pub(crate) async fn check(e: &Env, lifecycles: u64) {
    let t0 = Instant::now();
    let first = loop {
        let w = wallet_page(e, 0).await;
        if w["holds"].as_array().is_some_and(Vec::is_empty)
            || t0.elapsed() > Duration::from_secs(60)
        {
            break w;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let holds = first["holds"].as_array().map_or(0, Vec::len);
    let balance = first["balance_paise"].as_i64().unwrap_or(0);
    let (mut charges, mut spent, mut after) = (0u64, 0i64, 0u64);
    let mut calls = HashSet::new();
    let mut twice = 0;
    loop {
        let page = wallet_page(e, after).await;
        for entry in page["statement"].as_array().into_iter().flatten() {
            if entry["kind"] == "call_charge" {
                charges += 1;
                spent -= entry["amount_paise"].as_i64().unwrap_or(0);
                if !calls.insert(entry["call_id"].as_str().unwrap_or("").to_owned()) {
                    twice += 1;
                }
            }
        }
        match page["next_after"].as_u64() {
            Some(n) => after = n,
            None => break,
        }
    }
    let drift = TOP_UP_PAISE - spent - balance;
    println!(
        "wallet: {charges} call charges for {lifecycles} lifecycles ({twice} charged twice), \
         {spent} paise spent, {holds} holds left, balance {balance} paise, drift {drift} paise"
    );
    // A call hung up in the millisecond of its answer talked 0 ms and costs nothing, so
    // charges may fall short of lifecycles; never above, never twice, never drifting.
    assert!(
        charges <= lifecycles && twice == 0 && holds == 0 && drift == 0,
        "the wallet does not add up"
    );
}

/// `--wallet-crash-every N`: `--calls` lifecycles paid from the wallet, the gateway
/// killed with SIGKILL right after every N (its last calls' ends and charges still in
/// flight) and started again on the same data; the simulator (LiveKit) lives on. Then
/// every call's record is read back (the owner's call view): each call charged in its
/// record has exactly one ledger entry of that amount, no other call has one, no hold is
/// left, and the balance is the top-up minus the charges. Answers whether all of that
/// held.
pub(crate) async fn crash_soak(a: &Args, every: usize) -> bool {
    let mut e = start(a, "poll", "lc").await;
    top_up(&e).await;
    let port = e.gw_addr.port();
    let rounds = a.calls.div_ceil(every.max(1));
    let per_worker = every.div_ceil(a.concurrency.max(1));
    let mut ids: Vec<String> = Vec::with_capacity(a.calls);
    let t0 = Instant::now();
    for round in 0..rounds {
        let mut tasks = Vec::new();
        for _ in 0..a.concurrency {
            let (gw_addr, sim_addr) = (e.gw_addr, e.sim_addr);
            tasks.push(tokio::spawn(async move {
                let (mut gw, mut sim) = (http1::Conn::new(gw_addr), http1::Conn::new(sim_addr));
                let mut mine = Vec::with_capacity(per_worker);
                for _ in 0..per_worker {
                    let (_, r) = post(&mut gw, "/api/c2c/click2call", Some(CLICK2CALL), true).await;
                    let (id, room) = created(&r);
                    let join = br#"{"identity":"agent-1"}"#;
                    post(
                        &mut sim,
                        &format!("/sim/rooms/{room}/join"),
                        Some(join),
                        false,
                    )
                    .await;
                    post(
                        &mut gw,
                        &format!("/api/c2c/calls/{id}/connect"),
                        None,
                        false,
                    )
                    .await;
                    let answered = br#"{"status":"ANSWERED"}"#;
                    post(
                        &mut gw,
                        &format!("/api/c2c/calls/{id}/status"),
                        Some(answered),
                        false,
                    )
                    .await;
                    post(&mut gw, &format!("/api/c2c/calls/{id}/hangup"), None, false).await;
                    mine.push(id);
                }
                mine
            }));
        }
        for t in tasks {
            ids.extend(t.await.unwrap());
        }
        if round + 1 == rounds {
            break;
        }
        // kill -9 now: the round's last hangups are acknowledged, their ends and
        // charges may not be.
        let _ = e._gw.0.kill();
        let _ = e._gw.0.wait();
        e._gw = Kill(c2c_bench_drivers::spawn_gateway(&a.gateway, e.dir(), port).unwrap());
        e.gw_pid = e._gw.0.id();
        let up = Instant::now();
        while !e
            .c
            .get(format!("{}/readyz", e.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(
                up.elapsed() < Duration::from_secs(60),
                "the gateway did not come back"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!(
            "round {}: {} calls, then kill -9; back up in {:.2} s",
            round + 1,
            ids.len(),
            up.elapsed().as_secs_f64()
        );
    }
    println!(
        "{} lifecycles in {rounds} rounds, {} kill -9, {:.1} s",
        ids.len(),
        rounds - 1,
        t0.elapsed().as_secs_f64()
    );
    // Every call ends (the restarted gateway settles the hangups it was resolving) and
    // every hold goes.
    let settle = Instant::now();
    loop {
        let w = wallet_page(&e, 0).await;
        if w["holds"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
        if settle.elapsed() > Duration::from_secs(120) {
            println!("holds left after 120 s: {}", w["holds"]);
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // What each record says it costs.
    let mut owed: std::collections::HashMap<String, i64> = Default::default();
    let mut open = 0;
    for id in &ids {
        let d: serde_json::Value =
            e.c.get(format!("{}/api/c2c/owner/calls/{id}", e.base))
                .header("x-api-key", OWNER_KEY)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        if d["call"]["phase"] != "ENDED" {
            open += 1;
        }
        let charge = d["call"]["billing"]["charge_paise"].as_i64().unwrap_or(0);
        if charge > 0 {
            owed.insert(id.clone(), charge);
        }
    }
    // What the ledger says was charged.
    let (mut after, mut spent, mut twice, mut wrong) = (0u64, 0i64, 0u64, 0u64);
    let mut charged = HashSet::new();
    let mut balance = 0;
    loop {
        let page = wallet_page(&e, after).await;
        balance = page["balance_paise"].as_i64().unwrap_or(balance);
        for entry in page["statement"].as_array().into_iter().flatten() {
            if entry["kind"] != "call_charge" {
                continue;
            }
            let id = entry["call_id"].as_str().unwrap_or("").to_owned();
            let paise = -entry["amount_paise"].as_i64().unwrap_or(0);
            spent += paise;
            if owed.get(&id) != Some(&paise) {
                wrong += 1;
            }
            if !charged.insert(id) {
                twice += 1;
            }
        }
        match page["next_after"].as_u64() {
            Some(n) => after = n,
            None => break,
        }
    }
    let lost = owed.keys().filter(|id| !charged.contains(*id)).count();
    let drift = TOP_UP_PAISE - spent - balance;
    println!(
        "records: {} calls, {open} not ended, {} with a charge ({} paise); ledger: {} \
         charges, {twice} twice, {wrong} not matching their record, {lost} lost; balance \
         {balance} paise, drift {drift} paise",
        ids.len(),
        owed.len(),
        owed.values().sum::<i64>(),
        charged.len()
    );
    open == 0 && twice == 0 && wrong == 0 && lost == 0 && drift == 0
}
