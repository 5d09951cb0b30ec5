//! The simulator as a carrier (`SimHandle::dial_inbound`, `/sim/sip/dial-inbound`):
//! it calls a SIP edge from a socket of its own. Here the edge is the simulator's own
//! LiveKit SIP side (provisioned like the bundled gateway's), so both ends are
//! observable: the carrier's record and the UAS's `inbound_calls()`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use livekit_sim::{
    InboundDialId, InboundDialRecord, InboundDialState, InboundProvision, InboundState, SimHandle,
    Simulator, SipInbound,
};
use serde_json::{json, Value};

const ROOM: &str = "c2c-00112233445566778899aabbccddeeff";
const CALLER: &str = "+919812345678";

async fn provisioned() -> (SimHandle, SocketAddr) {
    let mut cfg = common::config();
    cfg.inbound_auto_provision = Some(InboundProvision::default());
    let sim = Simulator::start(cfg).await.unwrap();
    let sip = sim.sip_local_addr().unwrap();
    (sim, sip)
}

/// Waits until the carrier call's record satisfies `f`.
async fn until(
    sim: &SimHandle,
    id: &InboundDialId,
    what: &str,
    f: impl Fn(&InboundDialRecord) -> bool,
) -> InboundDialRecord {
    let mut last = None;
    for _ in 0..500 {
        let r = sim
            .inbound_dial(id)
            .expect("the carrier call is remembered");
        if f(&r) {
            return r;
        }
        last = Some(r);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("carrier call never {what}: {last:?}");
}

/// The UAS's record of the carrier's call.
fn uas_side(sim: &SimHandle, id: &InboundDialId) -> livekit_sim::InboundCallRecord {
    sim.inbound_calls()
        .into_iter()
        .find(|c| c.sip_call_id == id.as_str())
        .expect("the UAS saw the INVITE")
}

#[tokio::test]
async fn carrier_call_rings_is_answered_held_then_hangs_up() {
    let (sim, sip) = provisioned().await;
    let carrier = sim.carrier_addr().unwrap();
    assert_ne!(carrier, sip, "the carrier has a socket of its own");
    assert!(carrier.ip().is_loopback());

    let id = sim
        .dial_inbound(sip, ROOM, CALLER, Duration::from_millis(400))
        .unwrap();
    until(&sim, &id, "rang", |r| r.state == InboundDialState::Ringing).await;
    let uas = uas_side(&sim, &id);
    assert_eq!(uas.state, InboundState::Ringing);
    assert_eq!(
        (uas.from_user.as_str(), uas.to_user.as_str()),
        (CALLER, ROOM)
    );
    assert_eq!(uas.source, carrier);
    assert!(uas
        .header("content-type")
        .is_some_and(|v| v == "application/sdp"));

    // The agent publishes audio: LiveKit answers, the carrier ACKs and holds.
    sim.join(ROOM, "agent-1").unwrap();
    let r = until(&sim, &id, "answered", |r| {
        r.state == InboundDialState::Answered
    })
    .await;
    assert_eq!(r.final_code, Some(200));
    // Held for 400 ms, then the carrier's BYE ends both sides.
    let r = until(&sim, &id, "ended", |r| r.state == InboundDialState::Ended).await;
    assert_eq!(r.ended_by.as_deref(), Some("hangup"));
    assert_eq!(
        (r.did.as_str(), r.from.as_str(), r.hold_ms),
        (ROOM, CALLER, 400)
    );
    for _ in 0..200 {
        if uas_side(&sim, &id).state == InboundState::Ended {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(uas_side(&sim, &id).state, InboundState::Ended);
    assert!(
        sim.participants(ROOM)
            .iter()
            .all(|p| p.identity == "agent-1"),
        "the caller left the room"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_refusal_is_acked_and_a_ringing_call_can_be_cancelled() {
    // No trunk and LiveKit Cloud's 404 for that: refused, ACKed (the UAS stops
    // retransmitting and the carrier's call is over).
    let mut cfg = common::config();
    cfg.sip_inbound = Some(SipInbound::default());
    let bare = Simulator::start(cfg).await.unwrap();
    bare.set_inbound_no_trunk_404(true);
    let id = bare
        .dial_inbound(bare.sip_local_addr().unwrap(), ROOM, CALLER, Duration::ZERO)
        .unwrap();
    let r = until(&bare, &id, "ended", |r| r.state == InboundDialState::Ended).await;
    assert_eq!(r.ended_by.as_deref(), Some("rejected"));
    assert_eq!(r.final_code, Some(404));
    assert_eq!(uas_side(&bare, &id).final_code, Some(404));
    bare.shutdown().await;

    let (sim, sip) = provisioned().await;

    // Ringing, then the caller hangs up: CANCEL, the UAS answers 487.
    let id = sim
        .dial_inbound(sip, ROOM, CALLER, Duration::from_secs(5))
        .unwrap();
    until(&sim, &id, "rang", |r| r.state == InboundDialState::Ringing).await;
    assert!(sim.hangup_inbound_dial(&id));
    assert!(!sim.hangup_inbound_dial(&id), "already ended");
    for _ in 0..300 {
        if uas_side(&sim, &id).final_code == Some(487) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(uas_side(&sim, &id).final_code, Some(487));
    let r = sim.inbound_dial(&id).unwrap();
    assert_eq!(r.ended_by.as_deref(), Some("cancelled"));

    // Bad input is refused before anything is sent.
    assert!(sim.dial_inbound(sip, "", CALLER, Duration::ZERO).is_err());
    assert!(sim.dial_inbound(sip, ROOM, "a b", Duration::ZERO).is_err());
    let nowhere: SocketAddr = "0.0.0.0:5060".parse().unwrap();
    assert!(sim
        .dial_inbound(nowhere, ROOM, CALLER, Duration::ZERO)
        .is_err());
    sim.shutdown().await;
}

#[tokio::test]
async fn http_hook_dials_lists_and_hangs_up() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (sim, sip) = provisioned().await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}/sim/sip/dial-inbound{p}", sim.url());
    let r = http
        .post(url(""))
        .json(&json!({"edge": sip.to_string(), "did": ROOM, "hold_ms": 60000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let id = InboundDialId(v["id"].as_str().unwrap().to_owned());
    until(&sim, &id, "rang", |r| r.state == InboundDialState::Ringing).await;
    let one: Value = http
        .get(url(&format!("/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["from"], CALLER, "the default caller");
    assert_eq!(one["state"], "ringing");
    let all: Value = http
        .get(url(""))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all.as_array().unwrap().len(), 1);
    sim.join(ROOM, "agent-1").unwrap();
    until(&sim, &id, "answered", |r| {
        r.state == InboundDialState::Answered
    })
    .await;
    // The carrier hangs up the answered call: BYE.
    let r = http
        .post(url(&format!("/{id}/hangup")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for _ in 0..300 {
        if uas_side(&sim, &id).state == InboundState::Ended {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(uas_side(&sim, &id).state, InboundState::Ended);
    let r = http
        .post(url(&format!("/{id}/hangup")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "already ended");
    let r = http
        .post(url(""))
        .json(&json!({"edge": sip.to_string(), "did": "x y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    sim.shutdown().await;
}
