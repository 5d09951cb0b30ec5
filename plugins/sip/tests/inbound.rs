//! Inbound calls through the edge with sipp: the carrier is a sipp UAC on 127.0.0.1
//! (acme's trunk `airtel-mum` has its carrier there) dialling acme's number, LiveKit SIP
//! a sipp UAS on 127.0.0.2 (an allowed node). The test plays the gateway: it waits for
//! `on_inbound`, then forwards or rejects the held call through `InboundControl`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::time::Duration;

use c2c_sip::{InboundError, InboundForward, SipConfig};
use common::*;

const ROOM: &str = "c2c-room-7f3a";
const CALL: &str = "c2c-in-1";

/// An edge whose acme trunk takes inbound calls from `sources` (empty: from its carrier
/// address, 127.0.0.1).
async fn edge(sources: &[&str], tweak: impl FnOnce(&mut SipConfig)) -> Edge {
    let carrier = Tp::Udp.carrier(free_port("127.0.0.1"));
    start_edge(
        inbound_policy(&carrier, "sip:127.0.0.1:9", sources),
        &["127.0.0.2/32"],
        tweak,
    )
    .await
}

/// The carrier: sipp UAC on 127.0.0.1 calling `user` at the edge.
fn carrier(e: &Edge, scenario: &Path, tp: Tp, user: &str) -> Sipp {
    Sipp::uac(
        e.dir.path(),
        Uac {
            scenario,
            tp,
            ip: "127.0.0.1",
            edge: e.addr(),
            user,
            call_id: "unused",
            tenant: "unused",
        },
    )
}

/// The SIP Call-ID of the first held call, once `on_inbound` reported it; asserts
/// what it reported.
async fn held_call(e: &Edge) -> String {
    let obs = e.observer.clone();
    eventually(10, || {
        obs.events().iter().any(|x| x.starts_with("inbound "))
    })
    .await;
    let ev = e
        .observer
        .events()
        .into_iter()
        .find(|x| x.starts_with("inbound "))
        .unwrap();
    let parts: Vec<&str> = ev.splitn(3, ' ').collect();
    assert!(
        parts[2].starts_with(&format!("acme airtel-mum {DID} +919876543210 ")),
        "{ev}"
    );
    parts[1].to_string()
}

fn forward_to(port: u16, tp: Tp) -> InboundForward {
    let target = match tp {
        Tp::Udp => format!("sip:127.0.0.2:{port}"),
        Tp::Tcp => format!("sip:127.0.0.2:{port};transport=tcp"),
    };
    InboundForward {
        target,
        room: ROOM.into(),
        call_id: CALL.into(),
        tenant: "acme".into(),
    }
}

fn inbound(e: &Edge, outcome: &str) -> f64 {
    e.metric("c2c_sip_inbound_total", &[("outcome", outcome)])
}

fn responses(e: &Edge, code: &str) -> f64 {
    e.metric(
        "c2c_sip_responses_total",
        &[("trunk", "airtel-mum"), ("code", code)],
    )
}

/// Held, forwarded, answered by LiveKit, ACKed, hung up by LiveKit.
async fn answered(carrier_tp: Tp, lk_tp: Tp, user: &str) {
    require_sipp();
    let e = edge(&[], |_| {}).await;
    let ctl = e.handle.inbound();
    let dir = tempfile::tempdir().unwrap();
    let subs = [("USER", user), ("ROOM", ROOM), ("CALL", CALL)];
    let lk_port = free_port("127.0.0.2");
    let lk = Sipp::uas_on(
        e.dir.path(),
        &scenario_with(dir.path(), "livekit_answer.xml", &subs),
        lk_tp,
        "127.0.0.2",
        lk_port,
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = carrier(
        &e,
        &scenario_with(dir.path(), "carrier_call.xml", &subs),
        carrier_tp,
        user,
    );
    let id = held_call(&e).await;
    assert_eq!(inbound(&e, "held"), 1.0);
    assert_eq!(
        e.metric("c2c_sip_dialogs", &[]),
        1.0,
        "a held call is a dialog"
    );
    ctl.forward(&id, forward_to(lk_port, lk_tp)).await.unwrap();
    assert_eq!(
        ctl.forward(&id, forward_to(lk_port, lk_tp)).await,
        Err(InboundError::NotHeld)
    );
    assert_eq!(c.wait().await, 0, "carrier side failed");
    let lk_code = lk.wait().await;
    if lk_tp == Tp::Udp {
        assert_eq!(lk_code, 0, "LiveKit side failed");
    }
    let obs = e.observer.clone();
    eventually(5, || obs.events().iter().any(|x| x.starts_with("end "))).await;
    let events = e.observer.events();
    assert_eq!(
        events[1..],
        [
            format!("response {CALL} 200"),
            format!("answer {CALL}"),
            format!("end {CALL} None"),
        ],
        "{events:?}"
    );
    assert_eq!(inbound(&e, "forwarded"), 1.0);
    assert_eq!(responses(&e, "180"), 1.0, "our own 180 only");
    assert_eq!(responses(&e, "200"), 1.0);
    eventually(5, || e.metric("c2c_sip_dialogs", &[]) == 0.0).await;
    e.stop().await;
}

#[tokio::test]
async fn forwarded_and_answered_udp() {
    answered(Tp::Udp, Tp::Udp, "08045678901").await;
}

#[tokio::test]
async fn forwarded_and_answered_livekit_over_tcp() {
    answered(Tp::Udp, Tp::Tcp, "918045678901").await;
}

#[tokio::test]
async fn forwarded_and_answered_carrier_over_tcp() {
    answered(Tp::Tcp, Tp::Udp, "8045678901").await;
}

#[tokio::test]
async fn caller_cancels_while_held() {
    require_sipp();
    let e = edge(&[], |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let user = "08045678901";
    let subs = [("USER", user), ("ROOM", ROOM), ("PAUSE", "300")];
    let c = carrier(
        &e,
        &scenario_with(dir.path(), "carrier_cancel.xml", &subs),
        Tp::Udp,
        user,
    );
    let id = held_call(&e).await;
    assert_eq!(c.wait().await, 0, "expected 200 + 487");
    let obs = e.observer.clone();
    eventually(5, || obs.events().iter().any(|x| x.starts_with("gone "))).await;
    assert_eq!(
        e.observer.events()[1..],
        [format!("gone {id} CallerCancelled")]
    );
    assert_eq!(inbound(&e, "cancelled"), 1.0);
    assert_eq!(responses(&e, "487"), 1.0);
    assert_eq!(
        e.handle.inbound().reject(&id, 480).await,
        Err(InboundError::NotHeld)
    );
    assert_eq!(e.metric("c2c_sip_dialogs", &[]), 0.0);
    e.stop().await;
}

#[tokio::test]
async fn caller_cancels_after_the_forward() {
    require_sipp();
    let e = edge(&[], |_| {}).await;
    let ctl = e.handle.inbound();
    let dir = tempfile::tempdir().unwrap();
    let user = "08045678901";
    let subs = [("USER", user), ("ROOM", ROOM), ("PAUSE", "1500")];
    let lk_port = free_port("127.0.0.2");
    let lk = Sipp::uas_on(
        e.dir.path(),
        &scenario_with(dir.path(), "livekit_cancel.xml", &subs),
        Tp::Udp,
        "127.0.0.2",
        lk_port,
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = carrier(
        &e,
        &scenario_with(dir.path(), "carrier_cancel.xml", &subs),
        Tp::Udp,
        user,
    );
    let id = held_call(&e).await;
    ctl.forward(&id, forward_to(lk_port, Tp::Udp))
        .await
        .unwrap();
    assert_eq!(c.wait().await, 0, "carrier: 200 + LiveKit's 487");
    assert_eq!(lk.wait().await, 0, "LiveKit: CANCEL, then the edge's ACK");
    let obs = e.observer.clone();
    eventually(5, || obs.events().iter().any(|x| x.starts_with("end "))).await;
    assert_eq!(
        e.observer.events()[1..],
        [
            format!("response {CALL} 487"),
            format!("end {CALL} Some(487)"),
        ]
    );
    assert_eq!(inbound(&e, "forwarded"), 1.0);
    assert_eq!(inbound(&e, "cancelled"), 0.0);
    e.stop().await;
}

/// Held, forwarded to a LiveKit that sends 100/180 and then nothing, rejected by the
/// gateway (480): the carrier gets the 480 from the edge at once, before LiveKit even
/// answers the CANCEL the edge sends it, and nothing after (`carrier_abandoned.xml`).
/// `livekit` is the LiveKit side's scenario: how it ends after the CANCEL.
async fn abandoned(livekit: &str) -> Edge {
    require_sipp();
    let e = edge(&[], |_| {}).await;
    let ctl = e.handle.inbound();
    let dir = tempfile::tempdir().unwrap();
    let user = "08045678901";
    // LiveKit's 487 comes LATE ms after the CANCEL: the carrier's 480 must arrive within
    // WITHIN ms of our 180 (so without waiting for it), and nothing more in QUIET ms.
    let subs = [
        ("USER", user),
        ("ROOM", ROOM),
        ("WITHIN", "3000"),
        ("LATE", "3000"),
        ("QUIET", "3500"),
    ];
    let lk_port = free_port("127.0.0.2");
    let lk = Sipp::uas_on(
        e.dir.path(),
        &scenario_with(dir.path(), livekit, &subs),
        Tp::Udp,
        "127.0.0.2",
        lk_port,
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = carrier(
        &e,
        &scenario_with(dir.path(), "carrier_abandoned.xml", &subs),
        Tp::Udp,
        user,
    );
    let id = held_call(&e).await;
    ctl.forward(&id, forward_to(lk_port, Tp::Udp))
        .await
        .unwrap();
    // LiveKit rings (absorbed), then goes silent; the gateway gives up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    ctl.reject(&id, 480).await.unwrap();
    assert_eq!(ctl.reject(&id, 480).await, Err(InboundError::NotHeld));
    assert_eq!(responses(&e, "480"), 1.0, "sent with the reject");
    assert_eq!(inbound(&e, "abandoned"), 1.0);
    assert_eq!(
        e.metric("c2c_sip_dialogs", &[]),
        0.0,
        "no longer counts against the tenant"
    );
    assert_eq!(
        c.wait().await,
        0,
        "carrier: the edge's 480 at once, nothing after"
    );
    assert_eq!(lk.wait().await, 0, "LiveKit side failed");
    assert_eq!(inbound(&e, "forwarded"), 1.0);
    assert_eq!(inbound(&e, "rejected"), 0.0);
    assert_eq!(responses(&e, "487"), 0.0);
    assert_eq!(responses(&e, "200"), 0.0);
    let events = e.observer.events();
    assert_eq!(events.len(), 1, "the gateway decided it: {events:?}");
    e
}

#[tokio::test]
async fn the_gateway_gives_up_on_a_silent_livekit() {
    // LiveKit gets the CANCEL; its late 487 is ACKed by the edge, not relayed.
    abandoned("livekit_silent.xml").await.stop().await;
}

#[tokio::test]
async fn a_livekit_200_crossing_the_cancel_is_acked_and_hung_up() {
    // LiveKit answers 200 right after the CANCEL: the edge ACKs it and sends a BYE
    // (LiveKit's scenario checks both); the carrier, which has its 480, sees nothing.
    abandoned("livekit_answer_crossing.xml").await.stop().await;
}

/// A carrier call that ends with `code reason`; `then` plays the gateway once held
/// (`None`: the call is refused at the door and never held).
async fn refused(
    e: &Edge,
    user: &str,
    sdp: bool,
    code: u16,
    reason: &str,
    then: Option<Box<dyn FnOnce(String) -> tokio::task::JoinHandle<()>>>,
) {
    require_sipp();
    let dir = tempfile::tempdir().unwrap();
    let c = code.to_string();
    let body =
        "v=0\no=user1 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 6000 RTP/AVP 0";
    let subs = [
        ("CODE", c.as_str()),
        ("REASON", reason),
        (
            "CONTENT_TYPE",
            if sdp {
                "Content-Type: application/sdp"
            } else {
                "Subject: no offer"
            },
        ),
        ("BODY", if sdp { body } else { "" }),
    ];
    // Not `scenario_with`: it names the copy after the values, and a body has '/'.
    let mut text = std::fs::read_to_string(scenario("carrier_fail.xml")).unwrap();
    for (k, v) in subs {
        text = text.replace(&format!("@{k}@"), v);
    }
    let file = dir.path().join(format!("carrier_fail-{code}-{sdp}.xml"));
    std::fs::write(&file, text).unwrap();
    let uac = carrier(e, &file, Tp::Udp, user);
    if let Some(then) = then {
        let id = held_call(e).await;
        then(id).await.unwrap();
    }
    assert_eq!(uac.wait().await, 0, "expected {code} {reason}");
}

#[tokio::test]
async fn unknown_number_gets_404() {
    let e = edge(&[], |_| {}).await;
    refused(&e, "08000000000", true, 404, "Not Found", None).await;
    assert_eq!(inbound(&e, "unknown_did"), 1.0);
    assert!(e.observer.events().is_empty());
    e.stop().await;
}

#[tokio::test]
async fn a_source_other_than_the_trunks_gets_403() {
    // acme's trunk takes inbound calls from 127.0.0.2 only; the carrier calls from
    // 127.0.0.1 (a carrier address of the policy, so it passes the edge's gate).
    let e = edge(&["127.0.0.2/32"], |_| {}).await;
    refused(&e, "08045678901", true, 403, "Forbidden", None).await;
    assert_eq!(inbound(&e, "forbidden_source"), 1.0);
    assert!(e.observer.events().is_empty());
    e.stop().await;
}

#[tokio::test]
async fn no_sdp_offer_gets_488() {
    let e = edge(&[], |_| {}).await;
    refused(&e, "08045678901", false, 488, "Not Acceptable Here", None).await;
    assert_eq!(inbound(&e, "no_sdp"), 1.0);
    assert_eq!(responses(&e, "488"), 1.0);
    e.stop().await;
}

#[tokio::test]
async fn the_gateway_rejects_with_480() {
    let e = edge(&[], |_| {}).await;
    let ctl = e.handle.inbound();
    let then: Box<dyn FnOnce(String) -> tokio::task::JoinHandle<()>> = Box::new(move |id| {
        tokio::spawn(async move {
            ctl.reject(&id, 480).await.unwrap();
            assert_eq!(ctl.reject(&id, 480).await, Err(InboundError::NotHeld));
        })
    });
    refused(
        &e,
        "08045678901",
        true,
        480,
        "Temporarily Unavailable",
        Some(then),
    )
    .await;
    assert_eq!(inbound(&e, "rejected"), 1.0);
    assert_eq!(responses(&e, "480"), 1.0);
    assert!(
        !e.observer.events().iter().any(|x| x.starts_with("gone ")),
        "a rejection is the gateway's own decision"
    );
    e.stop().await;
}

#[tokio::test]
async fn a_hold_nobody_decides_expires_with_480() {
    let e = edge(&[], |c| c.inbound_hold_max = Duration::from_secs(1)).await;
    let then: Box<dyn FnOnce(String) -> tokio::task::JoinHandle<()>> =
        Box::new(|_| tokio::spawn(async {}));
    refused(
        &e,
        "08045678901",
        true,
        480,
        "Temporarily Unavailable",
        Some(then),
    )
    .await;
    let obs = e.observer.clone();
    eventually(5, || obs.events().iter().any(|x| x.starts_with("gone "))).await;
    assert!(e.observer.events()[1].ends_with(" HoldExpired"));
    assert_eq!(inbound(&e, "expired"), 1.0);
    assert_eq!(e.metric("c2c_sip_dialogs", &[]), 0.0);
    e.stop().await;
}

/// An inbound call on an anchored trunk, with audio: the carrier (sipp UAC, media on
/// 127.0.0.3) and LiveKit (sipp UAS, media on 127.0.0.2, echoing what reaches it) both
/// play sipp's G.711 capture after the answer. The relay carries both ways: the
/// carrier's direction counts LiveKit's own audio and the carrier's echoed back.
#[tokio::test]
async fn an_anchored_inbound_call_carries_audio_both_ways() {
    require_sipp();
    let carrier_uri = Tp::Udp.carrier(free_port("127.0.0.1"));
    let policy = anchored(inbound_policy(&carrier_uri, "sip:127.0.0.1:9", &[]));
    let base = free_port("127.0.0.1") & !1;
    let e = start_edge(policy, &["127.0.0.2/32"], |c| {
        c.media.port_min = base;
        c.media.port_max = base + 7;
    })
    .await;
    let ctl = e.handle.inbound();
    let dir = tempfile::tempdir().unwrap();
    let play =
        r#"<nop><action><exec play_pcap_audio="/usr/share/sip-tester/g711a.pcap"/></action></nop>"#;
    let user = "08045678901";
    let subs = [("USER", user), ("ROOM", ROOM), ("CALL", CALL)];
    // LiveKit plays once it has the ACK, for 2.5 s, then hangs up.
    let lk_text = std::fs::read_to_string(scenario_with(dir.path(), "livekit_answer.xml", &subs))
        .unwrap()
        .replacen(
            r#"<Reference variables="ackto,noc2cack"/>
  <pause milliseconds="300"/>"#,
            &format!(
                r#"<Reference variables="ackto,noc2cack"/>{play}<pause milliseconds="2500"/>"#
            ),
            1,
        );
    assert!(lk_text.contains("g711a.pcap"));
    let lk_sf = dir.path().join("lk-media.xml");
    std::fs::write(&lk_sf, lk_text).unwrap();
    // The carrier plays once it sent the ACK.
    let mut c_text =
        std::fs::read_to_string(scenario_with(dir.path(), "carrier_call.xml", &subs)).unwrap();
    let ack = c_text.find("CSeq: 1 ACK").unwrap();
    let end = ack + c_text[ack..].find("</send>").unwrap() + "</send>".len();
    c_text.insert_str(end, play);
    let c_sf = dir.path().join("carrier-media.xml");
    std::fs::write(&c_sf, c_text).unwrap();
    let lk_port = free_port("127.0.0.2");
    let lk_media = (free_port("127.0.0.2") & !1).to_string();
    let lk = Sipp::uas_on_with(
        e.dir.path(),
        &lk_sf,
        "127.0.0.2",
        lk_port,
        &["-mi", "127.0.0.2", "-mp", &lk_media, "-rtp_echo"],
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c_media = (free_port("127.0.0.3") & !1).to_string();
    let c = Sipp::uac_with(
        e.dir.path(),
        Uac {
            scenario: &c_sf,
            tp: Tp::Udp,
            ip: "127.0.0.1",
            edge: e.addr(),
            user,
            call_id: "unused",
            tenant: "unused",
        },
        &["-mi", "127.0.0.3", "-mp", &c_media],
    );
    let id = held_call(&e).await;
    ctl.forward(&id, forward_to(lk_port, Tp::Udp))
        .await
        .unwrap();
    assert_eq!(c.wait().await, 0, "carrier side failed");
    assert_eq!(lk.wait().await, 0, "LiveKit side failed");
    let obs = e.observer.clone();
    eventually(5, || obs.report(CALL).is_some()).await;
    let r = e.observer.report(CALL).unwrap();
    assert!(r.from_carrier.packets >= 40, "{r:?}");
    assert!(
        r.from_livekit.packets >= r.from_carrier.packets + 30,
        "{r:?}"
    );
    assert_eq!(
        e.metric("c2c_sip_media_calls_total", &[("trunk", "airtel-mum")]),
        1.0
    );
    eventually(5, || {
        e.metric("c2c_sip_media_port_pairs_in_use", &[]) == 0.0
    })
    .await;
    e.stop().await;
}
