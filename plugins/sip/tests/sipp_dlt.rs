//! The DLT rules beyond the switch at the SIP edge (docs/dlt.md), for calls that reach it
//! without the API: the trunk's category (or the one LiveKit carried in
//! `X-C2C-Category`), the caller ID in `From`, the number in the Request-URI; a refusal
//! is a 403 whose `Warning` names the rule, and nothing reaches the carrier.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use c2c_tenancy::{CallCategory, CallingHours};
use common::*;

const PROMO_DID: &str = "+911401234567";
/// Not on the DND list.
const CLEAR: &str = "9876500001";

/// A window that does not hold the current IST minute, at least an hour away from it.
fn closed_window() -> CallingHours {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let minute = (now + 19_800) % 86_400 / 60;
    CallingHours::parse(if minute < 12 * 60 {
        "14:00-23:00"
    } else {
        "01:00-10:00"
    })
    .unwrap()
}

/// acme: a promotional trunk presenting a 140-series number, calling at any hour, with
/// `NUMBER` on its DND list (written with +91). globex: the same trunk, outbound on,
/// outside its calling hours.
fn dlt_policy(
    dir: &std::path::Path,
    acme_carrier: &str,
    globex_carrier: &str,
) -> c2c_tenancy::Policy {
    let dnd = dir.join("acme-dnd.txt");
    std::fs::write(&dnd, format!("# list of 2026-12-01\n+91{NUMBER}\n")).unwrap();
    let p = edit_tenant(policy(acme_carrier, globex_carrier), "acme", |t| {
        t.trunks[0].category = CallCategory::Promotional;
        t.trunks[0].default_did = PROMO_DID.into();
        t.dlt.calling_hours = Some(CallingHours::parse("00:00-24:00").unwrap());
        t.dlt.dnd_file = Some(dnd);
    });
    edit_tenant(p, "globex", |t| {
        t.dlt.outbound_enabled = true;
        t.trunks[0].category = CallCategory::Promotional;
        t.trunks[0].default_did = PROMO_DID.into();
        t.dlt.calling_hours = Some(closed_window());
    })
}

/// One refused INVITE to `NUMBER`: `from` presenting, `category` named (empty: none),
/// expecting `reason` and a Warning for `rule`.
async fn refused(edge: &Edge, case: (&str, &str, &str, &str, &str), call: &str) {
    refused_to(edge, case, NUMBER, call).await;
}

/// [`refused`] for a call to `number`.
async fn refused_to(edge: &Edge, case: (&str, &str, &str, &str, &str), number: &str, call: &str) {
    let (tenant, from, category, reason, rule) = case;
    let sc = scenario_with(
        edge.dir.path(),
        "uac_dlt_rule.xml",
        &[
            ("FROM", from),
            ("CATEGORY", category),
            ("REASON", reason),
            ("RULE", rule),
        ],
    );
    let user = if tenant == "acme" {
        format!("{PREFIX}{number}")
    } else {
        format!("{DLT_OFF_PREFIX}{number}")
    };
    let uac = Sipp::uac(
        edge.dir.path(),
        Uac {
            scenario: &sc,
            tp: Tp::Udp,
            ip: "127.0.0.2",
            edge: edge.addr(),
            user: &user,
            call_id: call,
            tenant,
        },
    );
    assert_eq!(
        uac.wait().await,
        0,
        "expected 403 {reason} ({rule}) for {case:?}"
    );
}

#[tokio::test]
async fn dnd_series_and_hours_are_refused_with_a_warning_naming_the_rule() {
    require_sipp();
    let acme = Sink::start().await;
    let globex = Sink::start().await;
    let lists = tempfile::tempdir().unwrap();
    let edge = start_edge(
        dlt_policy(
            lists.path(),
            &Tp::Udp.carrier(acme.port),
            &Tp::Udp.carrier(globex.port),
        ),
        &["127.0.0.2/32"],
        |_| {},
    )
    .await;
    let cases = [
        // The number is on the DND list (listed as +91..., dialled as 10 digits).
        ("acme", PROMO_DID, "", "DND Blocked", "dnd_blocked"),
        // A promotional trunk's call presenting an ordinary number.
        (
            "acme",
            "+919999999999",
            "",
            "Caller ID Not Allowed",
            "caller_id_series",
        ),
        // LiveKit carried "service": a 140-series number is not a service caller ID.
        (
            "acme",
            PROMO_DID,
            "service",
            "Caller ID Not Allowed",
            "caller_id_series",
        ),
        // globex's window is closed now.
        (
            "globex",
            PROMO_DID,
            "",
            "Outside Calling Hours",
            "outside_calling_hours",
        ),
    ];
    for (i, case) in cases.into_iter().enumerate() {
        refused(&edge, case, &format!("dlt-rule-{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(acme.count(), 0, "the carrier saw a refused call");
    assert_eq!(globex.count(), 0, "the carrier saw a refused call");
    assert_eq!(
        edge.metric(
            "c2c_sip_responses_total",
            &[("trunk", "airtel-mum"), ("code", "403")]
        ),
        3.0
    );
    edge.stop().await;
}

/// A promotional call to `number` presenting the 140-series number, answered by a sipp
/// carrier on `uas_port`: Ok when it went through, Err(uac exit code) when not.
async fn promo_call(edge: &Edge, uas_port: u16, number: &str, call: &str) -> Result<(), i32> {
    let text = std::fs::read_to_string(scenario("uac_call.xml"))
        .unwrap()
        .replace("+919999999999", PROMO_DID);
    let uac_scenario = edge.dir.path().join(format!("uac_call_promo_{call}.xml"));
    std::fs::write(&uac_scenario, text).unwrap();
    // The carrier's answering scenario, expecting this number.
    let text = std::fs::read_to_string(scenario("uas_answer.xml"))
        .unwrap()
        .replace(NUMBER, number);
    let uas_scenario = edge.dir.path().join(format!("uas_answer_{call}.xml"));
    std::fs::write(&uas_scenario, text).unwrap();
    let uas = Sipp::uas(edge.dir.path(), &uas_scenario, Tp::Udp, uas_port);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let user = format!("{PREFIX}{number}");
    let uac = Sipp::uac(
        edge.dir.path(),
        Uac {
            scenario: &uac_scenario,
            tp: Tp::Udp,
            ip: "127.0.0.2",
            edge: edge.addr(),
            user: &user,
            call_id: call,
            tenant: "acme",
        },
    );
    let code = uac.wait().await;
    if code != 0 {
        drop(uas);
        return Err(code);
    }
    assert_eq!(uas.wait().await, 0, "the carrier did not answer {call}");
    Ok(())
}

#[tokio::test]
async fn a_promotional_call_to_a_clear_number_within_hours_goes_through_until_the_list_names_it() {
    require_sipp();
    let uas_port = free_port("127.0.0.1");
    let lists = tempfile::tempdir().unwrap();
    let edge = start_edge(
        dlt_policy(
            lists.path(),
            &Tp::Udp.carrier(uas_port),
            &Tp::Udp.carrier(free_port("127.0.0.1")),
        ),
        &["127.0.0.2/32"],
        |_| {},
    )
    .await;
    assert_eq!(
        promo_call(&edge, uas_port, CLEAR, "dlt-clear").await,
        Ok(())
    );
    // The tenant's list is replaced (written as 0...) and read again, as a policy reload
    // does: the next call to the number is refused at the door.
    let dnd = lists.path().join("acme-dnd.txt");
    let tmp = lists.path().join("acme-dnd.new");
    std::fs::write(&tmp, format!("+91{NUMBER}\n0{CLEAR}\n")).unwrap();
    std::fs::rename(&tmp, &dnd).unwrap();
    let reread = edge
        .dlt
        .lists()
        .reload(&edge.policy, edge.policy.gateway.dlt.max_list_numbers);
    assert_eq!(reread.len(), 1, "{reread:?}");
    assert_eq!(reread[0].outcome, Ok(2));
    refused_to(
        &edge,
        ("acme", PROMO_DID, "", "DND Blocked", "dnd_blocked"),
        CLEAR,
        "dlt-now-listed",
    )
    .await;
    edge.stop().await;
}

/// Minutes since midnight IST and seconds into the minute, now.
fn ist_now() -> (u64, f64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 19_800.0;
    let day = now % 86_400.0;
    ((day / 60.0) as u64, day % 60.0)
}

/// The window's opening at the edge: an INVITE two seconds before it is refused, one
/// from its first second on goes through.
#[tokio::test]
async fn the_window_opens_at_the_edge() {
    require_sipp();
    while ist_now().0 >= 24 * 60 - 2 {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let opens = ist_now().0 + 2;
    let window = format!("{:02}:{:02}-24:00", opens / 60, opens % 60);
    let uas_port = free_port("127.0.0.1");
    let lists = tempfile::tempdir().unwrap();
    let policy = edit_tenant(
        dlt_policy(
            lists.path(),
            &Tp::Udp.carrier(uas_port),
            &Tp::Udp.carrier(free_port("127.0.0.1")),
        ),
        "acme",
        |t| t.dlt.calling_hours = Some(CallingHours::parse(&window).unwrap()),
    );
    let edge = start_edge(policy, &["127.0.0.2/32"], |_| {}).await;
    while ist_now() < (opens - 1, 58.0) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    refused(
        &edge,
        (
            "acme",
            PROMO_DID,
            "",
            "Outside Calling Hours",
            "outside_calling_hours",
        ),
        "dlt-early",
    )
    .await;
    while ist_now().0 < opens {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        promo_call(&edge, uas_port, CLEAR, "dlt-on-time").await,
        Ok(())
    );
    edge.stop().await;
}
