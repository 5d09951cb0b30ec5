//! DLT rules beyond the outbound switch at the API (docs/dlt.md), over real HTTP against
//! the gateway binary and its bundled LiveKit simulator: caller-ID series per category,
//! DND scrubbing with consent (numbers written with and without +91), a DND list
//! replaced while calls run, calling hours in IST to the second, and the refusals
//! counted by tenant and rule.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::calls::CallEnv;
use common::fleet::metric;
use common::*;
use serde_json::{json, Value};

const PROMO_DID: &str = "+911401234567";

/// acme with registered numbers, a DND list (one number with +91, one with 91) and a
/// consent list (the second), promotional calls allowed at any hour unless `hours`.
fn with_lists(hours: &'static str) -> impl FnOnce(&Policies) {
    move |p: &Policies| {
        std::fs::create_dir_all(p.path().join("dlt")).unwrap();
        p.write("dlt/acme-dnd.txt", "number\n+919530000001\n919530000002\n");
        p.write(
            "dlt/acme-consent.txt",
            "# consented 2026-11-02\n09530000002\n",
        );
        p.edit(
            "tenants/acme.toml",
            "outbound_enabled = true\n",
            &format!(
                "outbound_enabled = true\n\
                 registered_numbers = [\"+919999999999\", \"+918888888888\", \"+912240001234\"]\n\
                 calling_hours = \"{hours}\"\n\
                 dnd_file = \"dlt/acme-dnd.txt\"\n\
                 consent_file = \"dlt/acme-consent.txt\"\n"
            ),
        );
    }
}

async fn click2call(env: &CallEnv, extra: Value) -> (u16, Value, Option<String>) {
    let mut body = json!({
        "case_id": "case-dlt",
        "customer_number": "9530000009",
        "agent_id": "agent-42",
        "customer_crm_id": "cust-1"
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = env
        .c
        .post(env.gw.url("/api/c2c/click2call"))
        .header("x-api-key", ACME_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let (s, v) = json(r).await;
    (s, v, retry)
}

async fn refusals(env: &CallEnv, rule: &str) -> f64 {
    let text = env.gw.metrics(&env.c).await;
    metric(
        &text,
        &format!("c2c_dlt_refusals_total{{rule=\"{rule}\",tenant=\"acme\"}}"),
    )
}

#[tokio::test]
async fn caller_id_series_dnd_consent_and_a_list_replaced_while_calls_run() {
    let env = CallEnv::start_edited("poll", &[], with_lists("00:00-24:00")).await;

    // Caller IDs: service calls present registered numbers, never a reserved series.
    let cases = [
        (json!({"did": "+919876500000"}), "is not registered"),
        (json!({"did": "1401234567"}), "reserved"),
        (
            json!({"call_category": "transactional", "did": "+911600111234"}),
            "reserved",
        ),
        (json!({"call_category": "promotional"}), "140-series"),
        (
            json!({"call_category": "promotional", "did": "+912240001234"}),
            "140-series",
        ),
    ];
    for (extra, why) in cases {
        let (s, v, _) = click2call(&env, extra.clone()).await;
        assert_eq!(
            (s, error_code(&v)),
            (422, "caller_id_series"),
            "{extra}: {v}"
        );
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(why), "{extra}: {msg}");
    }
    let (s, v, _) = click2call(&env, json!({"call_category": "marketing"})).await;
    assert_eq!((s, error_code(&v)), (422, "invalid_call_category"), "{v}");
    // Registered numbers and the trunk's category (service) go through, also to a DND
    // number: scrubbing is for promotional calls.
    for extra in [
        json!({}),
        json!({"did": "02240001234"}),
        json!({"customer_number": "9530000001"}),
        json!({"call_category": "service", "customer_number": "9530000001"}),
    ] {
        let (s, v, _) = click2call(&env, extra.clone()).await;
        assert_eq!(s, 200, "{extra}: {v}");
    }

    // Promotional: the DND number (listed with +91) is refused, the consented one
    // (listed as 91..., consent as 0...) and an unlisted one go through.
    let promo = |number: &str| json!({"call_category": "promotional", "did": PROMO_DID, "customer_number": number});
    let (s, v, _) = click2call(&env, promo("9530000001")).await;
    assert_eq!((s, error_code(&v)), (403, "dnd_blocked"), "{v}");
    assert!(
        !v.to_string().contains("9530000001"),
        "the refusal repeats no number: {v}"
    );
    let (s, v, _) = click2call(&env, promo("9530000002")).await;
    assert_eq!(s, 200, "consented: {v}");
    let (s, running, _) = click2call(&env, promo("9530000003")).await;
    assert_eq!(s, 200, "{running}");
    let (s, waiting, _) = click2call(&env, promo("9530000004")).await;
    assert_eq!(s, 200, "{waiting}");

    assert_eq!(refusals(&env, "caller_id_series").await, 5.0);
    assert_eq!(refusals(&env, "dnd_blocked").await, 1.0);
    let text = env.gw.metrics(&env.c).await;
    assert_eq!(
        metric(&text, "c2c_dlt_list_numbers{list=\"dnd\",tenant=\"acme\"}"),
        2.0
    );
    assert_eq!(
        metric(
            &text,
            "c2c_dlt_list_numbers{list=\"consent\",tenant=\"acme\"}"
        ),
        1.0
    );

    // One promotional call is dialled and answered before the list is replaced.
    let call = running["call_id"].as_str().unwrap();
    env.scenario(
        "9530000003",
        json!({"ring_after_ms": 50, "outcome": {"kind": "answer", "after_ms": 100, "hangup_after_ms": 60_000}}),
    )
    .await;
    env.agent_joins(running["room"].as_str().unwrap()).await;
    let (s, v) = env.post(&format!("/api/c2c/calls/{call}/connect")).await;
    assert_eq!((s, &v), (200, &json!({"status": "ringing"})));
    env.wait_status(call, "ACTIVE", Duration::from_secs(10))
        .await;

    env.policies.write(
        "dlt/acme-dnd.txt",
        "+919530000001\n919530000002\n9530000003\n9530000004\n",
    );
    let blocked = eventually(Duration::from_secs(10), || async {
        click2call(&env, promo("9530000003")).await.0 == 403
    })
    .await;
    assert!(
        blocked,
        "the new list never took effect\n{}",
        env.gw.log_text()
    );
    // The call already in progress is not touched by the new list...
    let c = env.get_call(call).await;
    assert_eq!(c["status"], "ACTIVE", "{c}");
    // ...but a call created before it and dialled after is checked when it dials.
    let waiting_id = waiting["call_id"].as_str().unwrap();
    env.agent_joins(waiting["room"].as_str().unwrap()).await;
    let (s, v) = env
        .post(&format!("/api/c2c/calls/{waiting_id}/connect"))
        .await;
    assert_eq!((s, error_code(&v)), (403, "dnd_blocked"), "{v}");
    let c = env.get_call(waiting_id).await;
    assert_eq!(c["status"], "INITIATED", "nothing was dialled: {c}");

    // A list that cannot be read keeps the one read before.
    env.policies
        .write("dlt/acme-dnd.txt", "9530000005\nnot a number\n");
    let failed = eventually(Duration::from_secs(10), || async {
        let text = env.gw.metrics(&env.c).await;
        metric(
            &text,
            "c2c_dlt_list_reloads_total{list=\"dnd\",result=\"failed\",tenant=\"acme\"}",
        ) >= 1.0
    })
    .await;
    assert!(failed, "{}", env.gw.log_text());
    assert!(
        env.gw.log_text().contains("line 2"),
        "the log names the bad line"
    );
    let (s, v, _) = click2call(&env, promo("9530000003")).await;
    assert_eq!((s, error_code(&v)), (403, "dnd_blocked"), "{v}");
    let (s, v, _) = click2call(&env, promo("9530000005")).await;
    assert_eq!(s, 200, "the broken file's numbers are not in force: {v}");

    let ended = env.hang_up(call).await;
    assert_eq!(ended["status"], "ENDED");
}

/// Minutes since midnight IST, and the seconds into that minute, now.
fn ist_now() -> (u64, f64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 19_800.0;
    let day = now % 86_400.0;
    ((day / 60.0) as u64, day % 60.0)
}

#[tokio::test]
async fn promotional_calls_wait_for_the_window_to_the_second() {
    // Not within a minute of midnight IST: the window below must open later today.
    while ist_now().0 >= 24 * 60 - 2 {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let (minute, _) = ist_now();
    // Opens at the start of the minute after next: at least one full minute away.
    let opens = minute + 2;
    let window: &'static str =
        Box::leak(format!("{:02}:{:02}-24:00", opens / 60, opens % 60).into_boxed_str());
    let env = CallEnv::start_edited("poll", &[], with_lists(window)).await;
    let promo =
        json!({"call_category": "promotional", "did": PROMO_DID, "customer_number": "9530000007"});

    let (s, v, retry) = click2call(&env, promo.clone()).await;
    assert_eq!((s, error_code(&v)), (403, "outside_calling_hours"), "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    let hhmm = format!("T{:02}:{:02}:00+05:30", opens / 60, opens % 60);
    assert!(msg.contains(&hhmm), "names the opening {hhmm}: {msg}");
    assert!(msg.contains(window), "names the window: {msg}");
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=180).contains(&retry), "Retry-After {retry}");
    // Service calls are not bound to the window.
    let (s, v, _) = click2call(&env, json!({"customer_number": "9530000007"})).await;
    assert_eq!(s, 200, "{v}");

    // Just before the opening second: still refused, and told to retry in a second or two.
    while ist_now() < (opens - 1, 59.3) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (s, v, retry) = click2call(&env, promo.clone()).await;
    assert_eq!((s, error_code(&v)), (403, "outside_calling_hours"), "{v}");
    assert!(retry.unwrap().parse::<u64>().unwrap() <= 2);
    // From the opening second on, it goes.
    while ist_now().0 < opens {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (s, v, _) = click2call(&env, promo).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(refusals(&env, "outside_calling_hours").await, 2.0);
}

fn cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_c2c-gateway"))
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_compacted_list_scrubs_and_the_report_names_every_refusal() {
    let env = CallEnv::start_edited("poll", &[], with_lists("00:00-24:00")).await;
    let promo = |number: &str| json!({"call_category": "promotional", "did": PROMO_DID, "customer_number": number});
    // A text list with a bad line is refused with its line number, writing nothing.
    let dir = env.policies.path().join("dlt");
    std::fs::write(dir.join("big.txt"), "9530000011\n95300000\n").unwrap();
    let out_path = dir.join("acme-dnd.bin");
    let out_arg = out_path.to_str().unwrap();
    let bad = cli(&[
        "dlt",
        "compact",
        "--input",
        dir.join("big.txt").to_str().unwrap(),
        "--output",
        out_arg,
    ]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("line 2"),
        "{bad:?}"
    );
    assert!(!out_path.exists());
    // 100,000 numbers (one with +91) compacted, then put in force by a policy edit.
    let mut text = String::from("+919530000011\n");
    for i in 0..100_000u64 {
        text.push_str(&format!("{}\n", 8_000_000_000 + i * 37));
    }
    std::fs::write(dir.join("big.txt"), &text).unwrap();
    let ok = cli(&[
        "dlt",
        "compact",
        "--input",
        dir.join("big.txt").to_str().unwrap(),
        "--output",
        out_arg,
    ]);
    assert!(ok.status.success(), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("100001 numbers"));
    assert!(std::fs::metadata(&out_path).unwrap().len() < text.len() as u64);
    env.policies.edit(
        "tenants/acme.toml",
        "dnd_file = \"dlt/acme-dnd.txt\"",
        "dnd_file = \"dlt/acme-dnd.bin\"",
    );
    let in_force = eventually(Duration::from_secs(10), || async {
        click2call(&env, promo("9530000011")).await.0 == 403
    })
    .await;
    assert!(in_force, "{}", env.gw.log_text());
    let (s, v, _) = click2call(&env, promo("8000000037")).await;
    assert_eq!((s, error_code(&v)), (403, "dnd_blocked"), "{v}");
    let (s, v, _) = click2call(&env, promo("8000000038")).await;
    assert_eq!(s, 200, "not on the list: {v}");
    let (s, _, _) = click2call(&env, json!({"did": "+919876500000"})).await;
    assert_eq!(s, 422);

    // The audit export: settings, trunks and each refusal (written by the log's
    // thread, so give it a moment).
    let today = chrono_day(0);
    let (from, to) = (chrono_day(-1), chrono_day(1));
    let policies = env.policies.path().to_str().unwrap().to_string();
    let data = env.data.path().to_str().unwrap().to_string();
    let mut csv = String::new();
    let complete = eventually(Duration::from_secs(10), || {
        let out = cli(&[
            "dlt",
            "report",
            "--tenant",
            "acme",
            "--from",
            &from,
            "--to",
            &to,
            "--policies",
            &policies,
            "--data",
            &data,
        ]);
        csv = String::from_utf8(out.stdout).unwrap();
        let done = out.status.success() && csv.matches("\r\nrefusal,").count() >= 3;
        async move { done }
    })
    .await;
    assert!(complete, "{csv}");
    assert!(
        csv.starts_with("record,at_ist,name,category,trunk,caller_id,number,where,detail\r\n"),
        "{csv}"
    );
    assert!(csv.contains("setting,"), "{csv}");
    assert!(csv.contains(",entity_class,,,,,,commercial\r\n"), "{csv}");
    assert!(
        csv.contains(",calling_hours_ist,,,,,,00:00-24:00\r\n"),
        "{csv}"
    );
    assert!(csv.contains("100001 numbers"), "{csv}");
    assert!(
        csv.contains("trunk,") && csv.contains(",airtel-mum,service,airtel-mum,"),
        "{csv}"
    );
    let refusals: Vec<&str> = csv.lines().filter(|l| l.starts_with("refusal,")).collect();
    assert!(
        refusals.iter().any(|l| l
            .contains(",dnd_blocked,promotional,airtel-mum,\"'+911401234567\",9530000011,api,")),
        "{csv}"
    );
    assert!(
        refusals
            .iter()
            .any(|l| l.contains(",caller_id_series,service,")),
        "{csv}"
    );
    assert!(
        refusals.iter().all(|l| l.contains(&format!(",{today}T"))
            || l.contains(&format!(",{from}T"))
            || l.contains(&format!(",{to}T"))),
        "{csv}"
    );
    // Another period holds none; a malformed day is a clear error.
    let out = cli(&[
        "dlt",
        "report",
        "--tenant",
        "acme",
        "--from",
        "2020-01-01",
        "--to",
        "2020-01-02",
        "--policies",
        &policies,
        "--data",
        &data,
    ]);
    assert!(!String::from_utf8(out.stdout)
        .unwrap()
        .contains("\r\nrefusal,"));
    let out = cli(&[
        "dlt",
        "report",
        "--tenant",
        "acme",
        "--from",
        "01-12-2026",
        "--to",
        &to,
        "--policies",
        &policies,
        "--data",
        &data,
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a day like"),
        "{out:?}"
    );
}

/// `YYYY-MM-DD` in IST, `offset` days from today.
fn chrono_day(offset: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(19_800 + offset * 86_400))
        .format("%Y-%m-%d")
        .to_string()
}
