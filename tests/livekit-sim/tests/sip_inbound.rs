//! Inbound SIP as LiveKit SIP answers it, over real sockets on 127.0.0.1: a raw
//! UDP caller (`common::uac`) stands in for the gateway's edge and sees every
//! response byte; `sipp` checks interoperability with a real UAC (UDP and TCP).
//!
//! Needs `sipp` (Debian `sip-tester`) for the last test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use common::uac::{header, status, tag, Uac};
use common::{left_event, next_event, webhook_sink};
use livekit_api::services::room::RoomClient;
use livekit_api::services::sip::{
    CreateSIPDispatchRuleOptions, CreateSIPInboundTrunkOptions, SIPClient,
};
use livekit_protocol as proto;
use livekit_protocol::DisconnectReason;
use livekit_sim::{
    InboundProvision, InboundState, SimConfig, SimHandle, Simulator, SipInbound, SipTransport,
};
use proto::participant_info::Kind;

const ROOM: &str = "c2c-0123456789abcdef0123456789abcdef";
const CALLER: &str = "+4930123456";
const CALL_ID: &str = "call_0123456789abcdef";

/// A simulator provisioned like the bundled gateway (`inbound_auto_provision`).
async fn provisioned(adjust: impl FnOnce(&mut SimConfig)) -> (SimHandle, SocketAddr) {
    let mut cfg = common::config();
    cfg.inbound_auto_provision = Some(InboundProvision::default());
    adjust(&mut cfg);
    let sim = Simulator::start(cfg).await.unwrap();
    let sip = sim
        .sip_local_addr()
        .expect("auto-provision opens a SIP socket");
    (sim, sip)
}

/// A simulator listening for SIP with no trunk or rule yet.
async fn bare() -> (SimHandle, SocketAddr) {
    let mut cfg = common::config();
    cfg.sip_inbound = Some(SipInbound::default());
    let sim = Simulator::start(cfg).await.unwrap();
    let sip = sim.sip_local_addr().unwrap();
    (sim, sip)
}

fn c2c_headers() -> Vec<(&'static str, &'static str)> {
    vec![("X-C2C-Call-Id", CALL_ID), ("X-C2C-Tenant", "acme")]
}

/// The SIP participant of `room`, once it is there.
async fn sip_participant(sim: &SimHandle, room: &str) -> proto::ParticipantInfo {
    for _ in 0..500 {
        let found = sim
            .participants(room)
            .into_iter()
            .find(|p| p.kind == Kind::Sip as i32);
        if let Some(p) = found {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no SIP participant in {room}");
}

/// Waits for a response with this code to the request method `cseq_method`.
async fn response(uac: &Uac, code: u16, cseq_method: &str) -> String {
    loop {
        let msg = uac.expect("SIP/2.0 ").await;
        let cseq = header(&msg, "CSeq").unwrap_or_default();
        if status(&msg) == Some(code) && cseq.ends_with(cseq_method) {
            return msg;
        }
    }
}

#[tokio::test]
async fn callee_rule_rings_until_the_agent_publishes_audio() {
    let (hook_url, mut hooks) = webhook_sink().await;
    let (sim, sip) = provisioned(|c| c.webhook_url = Some(hook_url)).await;
    let trunk_id = sim.sip_inbound_trunks()[0].sip_trunk_id.clone();
    let rule_id = sim.sip_dispatch_rules()[0].sip_dispatch_rule_id.clone();
    // The agent is in the room but has not published its microphone.
    sim.join_without_audio(ROOM, "agent-1").unwrap();

    let uac = Uac::new(sip, CALLER, ROOM).await;
    let invite = uac.invite(&c2c_headers(), true);
    uac.send(&invite).await;
    let trying = uac.expect("SIP/2.0 100 Processing").await;
    assert_eq!(
        tag(&header(&trying, "To").unwrap()),
        None,
        "100 has no To tag"
    );
    let ringing = uac.expect("SIP/2.0 180 Ringing").await;
    let to_tag = tag(&header(&ringing, "To").unwrap()).unwrap();
    assert!(
        to_tag.starts_with("SCL_"),
        "LiveKit's call id is the To tag: {to_tag}"
    );

    // participant_joined already carries the header-mapped attributes.
    let joined = loop {
        let (_, ev) = next_event(&mut hooks, "participant_joined").await;
        let p = ev.participant.unwrap();
        if p.kind == Kind::Sip as i32 {
            assert_eq!(ev.room.unwrap().name, ROOM, "Callee rule: room = To user");
            break p;
        }
    };
    let a = &joined.attributes;
    assert_eq!(a["c2c.callId"], CALL_ID);
    assert_eq!(a["c2c.tenant"], "acme");
    assert_eq!(a["c2c.direction"], "inbound");
    assert_eq!(a["sip.callStatus"], "ringing");
    assert_eq!(a["sip.callID"], to_tag);
    assert_eq!(a["sip.callIDFull"], uac.call_id);
    assert_eq!(a["sip.callTag"], uac.from_tag);
    assert_eq!(a["sip.trunkID"], trunk_id);
    assert_eq!(a["sip.ruleID"], rule_id);
    // hide_phone_number: hashed identity, no numbers in the attributes.
    assert!(joined.identity.starts_with("sip_") && joined.identity.len() == 20);
    assert!(!a.contains_key("sip.phoneNumber"));
    assert_eq!(joined.name, "Phone 3456");

    // The agent is there without audio: still only 180s, repeated every second.
    let seen = uac.collect(Duration::from_millis(2300)).await;
    assert!(seen.len() >= 2, "180 repeated: {seen:?}");
    for m in &seen {
        assert!(m.starts_with("SIP/2.0 180 Ringing"), "no answer yet: {m}");
        assert_eq!(
            tag(&header(m, "To").unwrap()).as_deref(),
            Some(to_tag.as_str())
        );
    }
    // A retransmitted INVITE gets the last response again; still one call.
    uac.send(&invite).await;
    uac.expect("SIP/2.0 180 ").await;
    assert_eq!(sim.inbound_calls().len(), 1);
    assert_eq!(sim.participants(ROOM).len(), 2);

    // The agent unmutes: LiveKit answers, with c2c.callId back as a header.
    sim.publish_audio(ROOM, "agent-1").unwrap();
    let ok = response(&uac, 200, "INVITE").await;
    assert_eq!(header(&ok, "X-C2C-Call-Id").as_deref(), Some(CALL_ID));
    assert_eq!(
        header(&ok, "Content-Type").as_deref(),
        Some("application/sdp")
    );
    assert!(ok.contains("\r\nm=audio "), "{ok}");
    assert!(header(&ok, "Contact").unwrap().contains(&sip.to_string()));
    assert_eq!(tag(&header(&ok, "To").unwrap()), Some(to_tag.clone()));
    uac.send(&uac.ack(&ok)).await;
    let p = sip_participant(&sim, ROOM).await;
    assert_eq!(p.attributes["sip.callStatus"], "active");

    // The caller hangs up.
    uac.send(&uac.bye(&ok)).await;
    response(&uac, 200, "BYE").await;
    let left = left_event(&sim, &joined.identity)
        .await
        .participant
        .unwrap();
    assert_eq!(
        left.disconnect_reason,
        DisconnectReason::ClientInitiated as i32
    );
    assert_eq!(left.attributes["sip.callStatus"], "hangup");

    let calls = sim.inbound_calls();
    let call = &calls[0];
    assert_eq!(call.call_id, to_tag);
    assert_eq!(call.sip_call_id, uac.call_id);
    assert_eq!(call.to_user, ROOM);
    assert_eq!(call.room.as_deref(), Some(ROOM));
    assert_eq!(call.trunk_id.as_deref(), Some(trunk_id.as_str()));
    assert_eq!(call.rule_id.as_deref(), Some(rule_id.as_str()));
    assert_eq!(call.final_code, Some(200));
    assert_eq!(call.state, InboundState::Ended);
    assert_eq!(call.header("x-c2c-tenant"), Some("acme"));
    sim.shutdown().await;
}

#[tokio::test]
async fn cancel_while_ringing_gets_487() {
    let (sim, sip) = provisioned(|_| {}).await;
    let uac = Uac::new(sip, CALLER, ROOM).await;
    uac.send(&uac.invite(&c2c_headers(), true)).await;
    uac.expect("SIP/2.0 180 ").await;
    let p = sip_participant(&sim, ROOM).await;

    uac.send(&uac.cancel()).await;
    response(&uac, 200, "CANCEL").await;
    let terminated = response(&uac, 487, "INVITE").await;
    assert!(
        terminated.starts_with("SIP/2.0 487 Request Terminated"),
        "{terminated}"
    );
    uac.send(&uac.ack(&terminated)).await;
    let left = left_event(&sim, &p.identity).await.participant.unwrap();
    assert_eq!(
        left.disconnect_reason,
        DisconnectReason::ClientInitiated as i32
    );
    assert_eq!(left.attributes["sip.callStatus"], "hangup");
    let call = &sim.inbound_calls()[0];
    assert_eq!(
        (call.final_code, call.state),
        (Some(487), InboundState::Rejected)
    );
    // ACKed: no retransmission of the 487.
    assert!(uac.collect(Duration::from_millis(700)).await.is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn no_dispatch_rule_is_silence_unless_the_404_fault_is_on() {
    let (sim, sip) = bare().await;
    let admin = SIPClient::with_api_key(&sim.url(), common::KEY, common::SECRET);
    admin
        .create_sip_inbound_trunk(
            "edge".into(),
            vec![],
            CreateSIPInboundTrunkOptions {
                allowed_addresses: Some(vec!["127.0.0.0/8".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();

    // OSS: 100, 180, then nothing at all (no final, no more 180s).
    let uac = Uac::new(sip, CALLER, ROOM).await;
    uac.send(&uac.invite(&c2c_headers(), true)).await;
    uac.expect("SIP/2.0 100 ").await;
    uac.expect("SIP/2.0 180 ").await;
    let after = uac.collect(Duration::from_millis(1500)).await;
    assert!(after.is_empty(), "dropped silently: {after:?}");
    assert!(sim.participants(ROOM).is_empty());
    let call = &sim.inbound_calls()[0];
    assert_eq!((call.final_code, call.state), (None, InboundState::Dropped));
    // The INVITE transaction is gone: a CANCEL finds nothing.
    uac.send(&uac.cancel()).await;
    response(&uac, 481, "CANCEL").await;

    // The fault: 404 after the 180, replayed to a retry with the same Call-ID and tag.
    sim.set_inbound_no_rule_404(true);
    let mut uac = Uac::new(sip, CALLER, ROOM).await;
    uac.send(&uac.invite(&[], true)).await;
    uac.expect("SIP/2.0 180 ").await;
    let nope = response(&uac, 404, "INVITE").await;
    assert!(nope.starts_with("SIP/2.0 404 Does not match Trunks or Dispatch Rules"));
    uac.send(&uac.ack(&nope)).await;
    uac.branch = "z9hG4bKretry1".into();
    uac.send(&uac.invite(&[], true)).await;
    let replay = uac.expect("SIP/2.0 ").await;
    assert_eq!(status(&replay), Some(404), "replayed at once: {replay}");
    assert!(replay.contains("branch=z9hG4bKretry1"));
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_source_matches_no_trunk() {
    let (sim, sip) = bare().await;
    let admin = SIPClient::with_api_key(&sim.url(), common::KEY, common::SECRET);
    let trunk = admin
        .create_sip_inbound_trunk(
            "carrier edge only".into(),
            vec![],
            CreateSIPInboundTrunkOptions {
                allowed_addresses: Some(vec!["10.0.0.0/8".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let bound = CreateSIPDispatchRuleOptions {
        trunk_ids: vec![trunk.sip_trunk_id.clone()],
        ..Default::default()
    };
    let callee = || {
        proto::sip_dispatch_rule::Rule::DispatchRuleCallee(proto::SipDispatchRuleCallee::default())
    };
    admin
        .create_sip_dispatch_rule(callee(), bound)
        .await
        .unwrap();

    // From 127.0.0.1: no trunk, and the only rule is bound to one: dropped (OSS).
    let uac = Uac::new(sip, CALLER, ROOM).await;
    uac.send(&uac.invite(&[], true)).await;
    uac.expect("SIP/2.0 180 ").await;
    assert!(uac.collect(Duration::from_millis(800)).await.is_empty());
    let call = &sim.inbound_calls()[0];
    assert_eq!(
        (call.trunk_id.clone(), call.state),
        (None, InboundState::Dropped)
    );

    // LiveKit Cloud's answer instead: 404 No trunk found, before any 180.
    sim.set_inbound_no_trunk_404(true);
    let uac = Uac::new(sip, CALLER, ROOM).await;
    uac.send(&uac.invite(&[], true)).await;
    uac.expect("SIP/2.0 100 ").await;
    let nope = uac.expect("SIP/2.0 ").await;
    assert!(nope.starts_with("SIP/2.0 404 No trunk found"), "{nope}");
    sim.set_inbound_no_trunk_404(false);

    // OSS again: a wildcard rule admits a call that matched no trunk (livekit/sip#460).
    admin
        .create_sip_dispatch_rule(callee(), Default::default())
        .await
        .unwrap();
    let uac = Uac::new(sip, CALLER, ROOM).await;
    uac.send(&uac.invite(&[], true)).await;
    let p = sip_participant(&sim, ROOM).await;
    assert_eq!(p.attributes["sip.trunkID"], "");
    assert_eq!(p.identity, format!("sip_{CALLER}"));
    assert_eq!(p.attributes["sip.phoneNumber"], CALLER);
    assert_eq!(p.attributes["sip.trunkPhoneNumber"], ROOM);
    sim.shutdown().await;
}

#[tokio::test]
async fn delete_room_before_answer_gets_486() {
    let (sim, sip) = provisioned(|_| {}).await;
    let uac = Uac::new(sip, CALLER, ROOM).await;
    uac.send(&uac.invite(&c2c_headers(), true)).await;
    let p = sip_participant(&sim, ROOM).await;
    RoomClient::with_api_key(&sim.url(), common::KEY, common::SECRET)
        .delete_room(ROOM)
        .await
        .unwrap();
    let busy = response(&uac, 486, "INVITE").await;
    assert!(busy.starts_with("SIP/2.0 486 Rejected"), "{busy}");
    // attributes_to_headers applies to error finals after the join too.
    assert_eq!(header(&busy, "X-C2C-Call-Id").as_deref(), Some(CALL_ID));
    uac.send(&uac.ack(&busy)).await;
    let left = left_event(&sim, &p.identity).await.participant.unwrap();
    assert_eq!(left.disconnect_reason, DisconnectReason::RoomDeleted as i32);
    assert_eq!(sim.inbound_calls()[0].final_code, Some(486));
    sim.shutdown().await;
}

#[tokio::test]
async fn ring_timeout_of_the_trunk_gets_486() {
    let (sim, sip) = provisioned(|c| {
        c.inbound_auto_provision = Some(InboundProvision {
            ringing_timeout: Duration::from_secs(1),
            ..Default::default()
        });
    })
    .await;
    sim.join_without_audio(ROOM, "agent-1").unwrap();
    let uac = Uac::new(sip, CALLER, ROOM).await;
    uac.send(&uac.invite(&c2c_headers(), true)).await;
    let p = sip_participant(&sim, ROOM).await;
    let started = tokio::time::Instant::now();
    let busy = response(&uac, 486, "INVITE").await;
    assert!(started.elapsed() < Duration::from_secs(3));
    uac.send(&uac.ack(&busy)).await;
    let left = left_event(&sim, &p.identity).await.participant.unwrap();
    assert_eq!(
        left.disconnect_reason,
        DisconnectReason::ClientInitiated as i32
    );
    assert_eq!(
        left.attributes["sip.callStatus"], "ringing",
        "LiveKit keeps it"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn removing_the_answered_participant_sends_bye_by_the_record_route() {
    let (sim, sip) = provisioned(|_| {}).await;
    sim.join(ROOM, "agent-1").unwrap(); // with its microphone: answered at once
    let mut uac = Uac::new(sip, CALLER, ROOM).await;
    // The edge record-routes; the carrier's Contact is unreachable on purpose.
    uac.contact = "<sip:carrier@127.0.0.1:9>".into();
    let rr = format!("<sip:{};lr;edge=1>", uac.local);
    let mut headers = c2c_headers();
    headers.push(("Record-Route", rr.as_str()));
    uac.send(&uac.invite(&headers, true)).await;
    let ok = response(&uac, 200, "INVITE").await;
    assert_eq!(
        header(&ok, "Record-Route"),
        Some(rr.clone()),
        "echoed on the 200"
    );
    uac.send(&uac.ack(&ok)).await;
    let p = sip_participant(&sim, ROOM).await;
    RoomClient::with_api_key(&sim.url(), common::KEY, common::SECRET)
        .remove_participant(ROOM, &p.identity)
        .await
        .unwrap();
    let bye = uac.expect("BYE ").await;
    assert!(
        bye.starts_with("BYE sip:carrier@127.0.0.1:9 SIP/2.0\r\n"),
        "{bye}"
    );
    assert_eq!(header(&bye, "Route"), Some(rr));
    // attributes_to_headers on the BYE too (LiveKit's `fillHeaders`).
    assert_eq!(header(&bye, "X-C2C-Call-Id").as_deref(), Some(CALL_ID));
    let from = header(&bye, "From").unwrap();
    assert_eq!(tag(&from), tag(&header(&ok, "To").unwrap()), "our dialog");
    assert_eq!(
        tag(&header(&bye, "To").unwrap()),
        Some(uac.from_tag.clone())
    );
    uac.send(&uac.ok_to(&bye)).await;
    let left = left_event(&sim, &p.identity).await.participant.unwrap();
    assert_eq!(
        left.disconnect_reason,
        DisconnectReason::ParticipantRemoved as i32
    );
    let call = &sim.inbound_calls()[0];
    assert_eq!(
        (call.final_code, call.state),
        (Some(200), InboundState::Ended)
    );
    sim.shutdown().await;
}

/// A port free for `tp` on 127.0.0.1 (bound then released).
fn free_port(tp: SipTransport) -> u16 {
    match tp {
        SipTransport::Udp => std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(),
        SipTransport::Tcp => std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(),
    }
}

/// sipp's built-in UAC calls the room, the agent's audio is already there, so
/// LiveKit answers at once; sipp ACKs, hangs up, and exits 0 only if every
/// message came as its scenario expects.
async fn sipp_calls_in(tp: SipTransport) {
    let (sim, sip) = provisioned(|c| {
        c.sip_inbound = Some(SipInbound {
            transport: tp,
            ..Default::default()
        });
    })
    .await;
    let room = format!("sipp-{}", free_port(SipTransport::Udp));
    sim.join(&room, "agent-1").unwrap();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("livekit-sim-sipp-inbound");
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port(tp).to_string();
    let transport = match tp {
        SipTransport::Udp => "u1",
        SipTransport::Tcp => "t1",
    };
    let out = tokio::process::Command::new("sipp")
        .current_dir(&dir)
        .args([
            &sip.to_string(),
            "-sn",
            "uac",
            "-s",
            &room,
            "-m",
            "1",
            "-d",
            "300",
        ])
        .args(["-i", "127.0.0.1", "-p", &port, "-t", transport])
        .args(["-nostdin", "-timeout", "20", "-timeout_error", "-trace_err"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("sipp is required: apt-get install -y sip-tester");
    assert!(
        out.status.success(),
        "sipp failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let call = sim
        .inbound_calls()
        .into_iter()
        .find(|c| c.room.as_deref() == Some(room.as_str()))
        .unwrap();
    assert_eq!(
        (call.final_code, call.state),
        (Some(200), InboundState::Ended)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn sipp_uac_calls_in_over_udp() {
    sipp_calls_in(SipTransport::Udp).await;
}

#[tokio::test]
async fn sipp_uac_calls_in_over_tcp() {
    sipp_calls_in(SipTransport::Tcp).await;
}
