//! Calls the edge must refuse without anything reaching a carrier: DLT outbound off,
//! and an INVITE from a source that is not an allowed LiveKit node.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::*;

async fn dlt_off(tp: Tp) {
    require_sipp();
    let acme = Sink::start().await;
    let globex = Sink::start().await;
    let edge = start_edge(
        policy(&tp.carrier(acme.port), &tp.carrier(globex.port)),
        &["127.0.0.2/32"],
        |_| {},
    )
    .await;
    let call = format!("dlt-{}", tp.flag());
    let uac = Sipp::uac(
        edge.dir.path(),
        Uac {
            scenario: &scenario("uac_dlt.xml"),
            tp,
            ip: "127.0.0.2",
            edge: edge.addr(),
            user: NUMBER,
            call_id: &call,
            tenant: "globex",
        },
    );
    assert_eq!(
        uac.wait().await,
        0,
        "expected 403 DLT outbound disabled with Warning"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(globex.count(), 0, "the carrier saw something");
    assert_eq!(acme.count(), 0);
    assert_eq!(
        edge.metric("c2c_sip_dlt_blocked_total", &[("tenant", "globex")]),
        1.0
    );
    assert_eq!(
        edge.metric(
            "c2c_sip_responses_total",
            &[("trunk", "jio-del"), ("code", "403")]
        ),
        1.0
    );
    assert_eq!(
        edge.observer.events(),
        vec![
            format!("response {call} 403"),
            format!("end {call} Some(403)")
        ]
    );
    edge.stop().await;
}

#[tokio::test]
async fn dlt_off_gets_403_udp() {
    dlt_off(Tp::Udp).await;
}

#[tokio::test]
async fn dlt_off_gets_403_tcp() {
    dlt_off(Tp::Tcp).await;
}

/// The dial string alone (no X-C2C-Tenant) also finds the DLT-off tenant.
#[tokio::test]
async fn dlt_off_by_prefix_gets_403() {
    require_sipp();
    let globex = Sink::start().await;
    let edge = start_edge(
        policy("sip:127.0.0.1:9", &Tp::Udp.carrier(globex.port)),
        &["127.0.0.2/32"],
        |_| {},
    )
    .await;
    let user = format!("{DLT_OFF_PREFIX}{NUMBER}");
    // An unknown tenant header would be refused with 404, so name no tenant at all:
    // an empty X-C2C-Tenant is the same as none.
    let uac = Sipp::uac(
        edge.dir.path(),
        Uac {
            scenario: &scenario("uac_dlt.xml"),
            tp: Tp::Udp,
            ip: "127.0.0.2",
            edge: edge.addr(),
            user: &user,
            call_id: "dlt-prefix",
            tenant: "",
        },
    );
    assert_eq!(uac.wait().await, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(globex.count(), 0);
    edge.stop().await;
}

async fn not_allowed(tp: Tp) {
    require_sipp();
    let acme = Sink::start().await;
    // LiveKit is 127.0.0.1 only; the caller is 127.0.0.2.
    let edge = start_edge(
        policy(&tp.carrier(acme.port), &tp.carrier(acme.port)),
        &["127.0.0.1/32"],
        |_| {},
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let uac = scenario_with(
        dir.path(),
        "uac_fail.xml",
        &[("CODE", "403"), ("REASON", "Forbidden")],
    );
    let uac = Sipp::uac(
        edge.dir.path(),
        Uac {
            scenario: &uac,
            tp,
            ip: "127.0.0.2",
            edge: edge.addr(),
            user: NUMBER,
            call_id: "stranger",
            tenant: "acme",
        },
    );
    assert_eq!(uac.wait().await, 0, "expected 403 Forbidden");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        acme.count(),
        0,
        "a request from a stranger reached the carrier"
    );
    assert!(edge.metric("c2c_sip_refused_sources_total", &[]) >= 1.0);
    assert!(edge.observer.events().is_empty());
    edge.stop().await;
}

#[tokio::test]
async fn source_not_on_allow_list_is_refused_udp() {
    not_allowed(Tp::Udp).await;
}

#[tokio::test]
async fn source_not_on_allow_list_is_refused_tcp() {
    not_allowed(Tp::Tcp).await;
}
