//! Calls through the edge with sipp on both sides (LiveKit UAC on 127.0.0.2, carrier
//! UAS on 127.0.0.1), over UDP and TCP.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use common::*;

/// Runs one UAC/UAS pair through a fresh edge; returns the edge for assertions.
async fn run_pair(
    tp: Tp,
    uas_scenario: std::path::PathBuf,
    uac_scenario: std::path::PathBuf,
    user: &str,
    call: &str,
) -> (Edge, i32, i32) {
    run_mixed(tp, tp, uas_scenario, uac_scenario, user, call).await
}

/// Like `run_pair` with LiveKit on `up` and the carrier on `down`.
async fn run_mixed(
    up: Tp,
    tp: Tp,
    uas_scenario: std::path::PathBuf,
    uac_scenario: std::path::PathBuf,
    user: &str,
    call: &str,
) -> (Edge, i32, i32) {
    require_sipp();
    let uas_port = free_port("127.0.0.1");
    let edge = start_edge(
        policy(&tp.carrier(uas_port), &tp.carrier(free_port("127.0.0.1"))),
        &["127.0.0.2/32"],
        |_| {},
    )
    .await;
    let uas = Sipp::uas(edge.dir.path(), &uas_scenario, tp, uas_port);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let uac = Sipp::uac(
        edge.dir.path(),
        Uac {
            scenario: &uac_scenario,
            tp: up,
            ip: "127.0.0.2",
            edge: edge.addr(),
            user,
            call_id: call,
            tenant: "acme",
        },
    );
    let uac_code = uac.wait().await;
    let uas_code = uas.wait().await;
    (edge, uac_code, uas_code)
}

fn assert_codes(tp: Tp, uac: i32, uas: i32) {
    assert_eq!(uac, 0, "UAC failed");
    // Over TCP the UAS may count the UAC's disconnect as a failure: judge by the UAC.
    if tp == Tp::Udp {
        assert_eq!(uas, 0, "UAS failed");
    }
}

async fn answered(tp: Tp, remote_bye: bool) {
    let (uas, uac) = if remote_bye {
        ("uas_answer_bye.xml", "uac_call_remote_bye.xml")
    } else {
        ("uas_answer.xml", "uac_call.xml")
    };
    let call = format!("call-{}-{}", tp.flag(), remote_bye);
    let (edge, uac_code, uas_code) =
        run_pair(tp, scenario(uas), scenario(uac), NUMBER, &call).await;
    assert_codes(tp, uac_code, uas_code);
    let obs = edge.observer.clone();
    eventually(5, || obs.events().iter().any(|e| e.starts_with("end "))).await;
    let events = edge.observer.events();
    assert_eq!(
        events,
        vec![
            format!("response {call} 180"),
            format!("response {call} 200"),
            format!("answer {call}"),
            format!("end {call} None"),
        ]
    );
    assert_eq!(
        edge.metric(
            "c2c_sip_responses_total",
            &[("trunk", "airtel-mum"), ("code", "180")]
        ),
        1.0
    );
    assert_eq!(
        edge.metric(
            "c2c_sip_responses_total",
            &[("trunk", "airtel-mum"), ("code", "200")]
        ),
        1.0
    );
    assert_eq!(
        edge.metric(
            "c2c_sip_post_dial_delay_seconds",
            &[("trunk", "airtel-mum")]
        ),
        1.0
    );
    assert_eq!(
        edge.metric("c2c_sip_setup_seconds", &[("trunk", "airtel-mum")]),
        1.0
    );
    eventually(5, || edge.metric("c2c_sip_dialogs", &[]) == 0.0).await;
    edge.stop().await;
}

#[tokio::test]
async fn answered_udp_livekit_hangs_up() {
    answered(Tp::Udp, false).await;
}

#[tokio::test]
async fn answered_udp_carrier_hangs_up() {
    answered(Tp::Udp, true).await;
}

#[tokio::test]
async fn answered_tcp_livekit_hangs_up() {
    answered(Tp::Tcp, false).await;
}

#[tokio::test]
async fn answered_tcp_carrier_hangs_up() {
    answered(Tp::Tcp, true).await;
}

async fn refused_by_carrier(tp: Tp, code: u16, reason: &str) {
    require_sipp();
    let dir = tempfile::tempdir().expect("tempdir");
    let c = code.to_string();
    let subs = [("CODE", c.as_str()), ("REASON", reason)];
    let uas = scenario_with(dir.path(), "uas_fail.xml", &subs);
    let uac = scenario_with(dir.path(), "uac_fail.xml", &subs);
    let call = format!("call-{}-{code}", tp.flag());
    let (edge, uac_code, uas_code) = run_pair(tp, uas, uac, NUMBER, &call).await;
    assert_eq!(uac_code, 0, "UAC did not get {code} {reason} intact");
    assert_eq!(uas_code, 0, "carrier did not get the proxy's ACK");
    let obs = edge.observer.clone();
    eventually(5, || obs.events().iter().any(|e| e.starts_with("end "))).await;
    assert_eq!(
        edge.observer.events(),
        vec![
            format!("response {call} 180"),
            format!("response {call} {code}"),
            format!("end {call} Some({code})"),
        ]
    );
    assert_eq!(
        edge.metric(
            "c2c_sip_responses_total",
            &[("trunk", "airtel-mum"), ("code", &c)]
        ),
        1.0
    );
    assert_eq!(
        edge.metric(
            "c2c_sip_responses_total",
            &[("trunk", "airtel-mum"), ("code", "180")]
        ),
        1.0
    );
    assert_eq!(
        edge.metric("c2c_sip_setup_seconds", &[("trunk", "airtel-mum")]),
        0.0
    );
    assert_eq!(edge.metric("c2c_sip_dialogs", &[]), 0.0);
    edge.stop().await;
}

#[tokio::test]
async fn busy_486_udp() {
    refused_by_carrier(Tp::Udp, 486, "Busy Here").await;
}

#[tokio::test]
async fn busy_486_tcp() {
    refused_by_carrier(Tp::Tcp, 486, "Busy Here").await;
}

#[tokio::test]
async fn unavailable_480_udp() {
    refused_by_carrier(Tp::Udp, 480, "Temporarily Unavailable").await;
}

#[tokio::test]
async fn unavailable_480_tcp() {
    refused_by_carrier(Tp::Tcp, 480, "Temporarily Unavailable").await;
}

#[tokio::test]
async fn not_found_404_udp() {
    refused_by_carrier(Tp::Udp, 404, "Not Found").await;
}

#[tokio::test]
async fn not_found_404_tcp() {
    refused_by_carrier(Tp::Tcp, 404, "Not Found").await;
}

#[tokio::test]
async fn service_unavailable_503_udp() {
    refused_by_carrier(Tp::Udp, 503, "Service Unavailable").await;
}

#[tokio::test]
async fn service_unavailable_503_tcp() {
    refused_by_carrier(Tp::Tcp, 503, "Service Unavailable").await;
}

#[tokio::test]
async fn decline_603_udp() {
    refused_by_carrier(Tp::Udp, 603, "Decline").await;
}

#[tokio::test]
async fn decline_603_tcp() {
    refused_by_carrier(Tp::Tcp, 603, "Decline").await;
}

async fn cancelled(tp: Tp) {
    let call = format!("call-{}-cancel", tp.flag());
    let (edge, uac_code, uas_code) = run_pair(
        tp,
        scenario("uas_cancel.xml"),
        scenario("uac_cancel.xml"),
        NUMBER,
        &call,
    )
    .await;
    assert_eq!(uac_code, 0, "UAC did not get 200 + 487");
    assert_eq!(
        uas_code, 0,
        "carrier did not get CANCEL and the ACK for 487"
    );
    let obs = edge.observer.clone();
    eventually(5, || obs.events().iter().any(|e| e.starts_with("end "))).await;
    assert_eq!(
        edge.observer.events(),
        vec![
            format!("response {call} 180"),
            format!("response {call} 487"),
            format!("end {call} Some(487)"),
        ]
    );
    assert_eq!(
        edge.metric(
            "c2c_sip_responses_total",
            &[("trunk", "airtel-mum"), ("code", "487")]
        ),
        1.0
    );
    edge.stop().await;
}

#[tokio::test]
async fn ring_then_cancel_udp() {
    cancelled(Tp::Udp).await;
}

#[tokio::test]
async fn ring_then_cancel_tcp() {
    cancelled(Tp::Tcp).await;
}

/// LiveKit dialling the internal dial string (prefix + number) must not be re-prefixed.
#[tokio::test]
async fn prefixed_dial_string_is_not_reprefixed() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Here LiveKit's own To carries the prefix, so the UAC's "no prefix" checks do not
    // apply; the carrier still checks the exact dial string.
    let text = std::fs::read_to_string(scenario("uac_call.xml"))
        .expect("scenario")
        .replace("regexp=\"99119876543210\"", "regexp=\"9911{2}9876543210\"");
    let uac = dir.path().join("uac_prefixed.xml");
    std::fs::write(&uac, text).expect("write");
    let (edge, uac_code, uas_code) = run_pair(
        Tp::Udp,
        scenario("uas_answer.xml"),
        uac,
        &format!("{PREFIX}{NUMBER}"),
        "call-prefixed",
    )
    .await;
    assert_eq!(uac_code, 0);
    assert_eq!(uas_code, 0, "carrier did not see exactly prefix + number");
    edge.stop().await;
}

/// LiveKit over UDP, carrier over TCP (double Record-Route), carrier hangs up; and the
/// reverse with LiveKit hanging up.
#[tokio::test]
async fn mixed_transports_double_record_route() {
    for (up, down, uas, uac) in [
        (
            Tp::Udp,
            Tp::Tcp,
            "uas_answer_bye.xml",
            "uac_call_remote_bye.xml",
        ),
        (Tp::Tcp, Tp::Udp, "uas_answer.xml", "uac_call.xml"),
    ] {
        let call = format!("mixed-{}-{}", up.flag(), down.flag());
        let (edge, uac_code, uas_code) =
            run_mixed(up, down, scenario(uas), scenario(uac), NUMBER, &call).await;
        assert_eq!(uac_code, 0, "UAC failed ({up:?} -> {down:?})");
        if down == Tp::Udp {
            assert_eq!(uas_code, 0, "UAS failed ({up:?} -> {down:?})");
        }
        let obs = edge.observer.clone();
        eventually(5, || obs.events().iter().any(|e| e.starts_with("end "))).await;
        edge.stop().await;
    }
}
