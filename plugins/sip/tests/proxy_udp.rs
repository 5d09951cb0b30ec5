//! Proxy behaviour the sipp runs do not reach, driven with raw UDP sockets playing
//! LiveKit (127.0.0.2) and the carrier (127.0.0.1), with short timers: retransmission
//! absorption, timers A/B/C, early CANCEL, 2xx retransmissions, loose routing of the
//! ACK, caps, spoofed in-dialog requests, loops.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use c2c_sip::codec::{decode, Decoded, SipMsg, StartLine};
use c2c_sip::{SipConfig, TenantCaps};
use common::*;
use tokio::net::UdpSocket;

struct Peer {
    sock: UdpSocket,
    addr: SocketAddr,
}

impl Peer {
    async fn bind(ip: &str) -> Peer {
        let sock = UdpSocket::bind((ip, 0)).await.expect("bind");
        let addr = sock.local_addr().expect("addr");
        Peer { sock, addr }
    }

    async fn send(&self, to: SocketAddr, msg: &str) {
        self.sock.send_to(msg.as_bytes(), to).await.expect("send");
    }

    /// Next message within `ms`, or None.
    async fn recv(&self, ms: u64) -> Option<SipMsg> {
        let mut buf = vec![0u8; 65536];
        let (n, _) = tokio::time::timeout(Duration::from_millis(ms), self.sock.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        match decode(Bytes::copy_from_slice(&buf[..n])) {
            Decoded::Msg(m) => Some(*m),
            other => panic!("undecodable message from the edge: {other:?}"),
        }
    }

    async fn expect(&self, ms: u64, what: &str) -> SipMsg {
        self.recv(ms)
            .await
            .unwrap_or_else(|| panic!("expected {what}"))
    }

    /// Everything that arrives within `ms`.
    async fn drain(&self, ms: u64) -> Vec<SipMsg> {
        let mut out = Vec::new();
        let end = tokio::time::Instant::now() + Duration::from_millis(ms);
        while let Some(m) = self
            .recv(
                end.saturating_duration_since(tokio::time::Instant::now())
                    .as_millis() as u64,
            )
            .await
        {
            out.push(m);
        }
        out
    }
}

fn code(m: &SipMsg) -> u16 {
    match m.start {
        StartLine::Response { code, .. } => code,
        _ => 0,
    }
}

fn method(m: &SipMsg) -> String {
    m.method()
        .map(|x| x.as_str().to_string())
        .unwrap_or_default()
}

fn invite(lk: SocketAddr, edge: SocketAddr, call_id: &str, branch: &str, extra: &str) -> String {
    format!(
        "INVITE sip:{NUMBER}@{edge} SIP/2.0\r\nVia: SIP/2.0/UDP {lk};branch={branch};rport\r\nFrom: <sip:+919999999999@{lk}>;tag=lk1\r\nTo: <sip:{NUMBER}@{edge}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:lk@{lk}>\r\nMax-Forwards: 70\r\nX-C2C-Call-Id: {call_id}\r\nX-C2C-Tenant: acme\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

fn cancel(lk: SocketAddr, edge: SocketAddr, call_id: &str, branch: &str) -> String {
    format!(
        "CANCEL sip:{NUMBER}@{edge} SIP/2.0\r\nVia: SIP/2.0/UDP {lk};branch={branch};rport\r\nFrom: <sip:+919999999999@{lk}>;tag=lk1\r\nTo: <sip:{NUMBER}@{edge}>\r\nCall-ID: {call_id}\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The carrier's response to `req`: all Vias, From, To (+tag), Call-ID, CSeq.
fn respond(
    req: &SipMsg,
    code: u16,
    reason: &str,
    tag: Option<&str>,
    carrier: SocketAddr,
) -> String {
    let mut s = format!("SIP/2.0 {code} {reason}\r\n");
    for v in req.headers_named("Via") {
        s.push_str(&format!("Via: {}\r\n", v.value));
    }
    for rr in req.headers_named("Record-Route") {
        s.push_str(&format!("Record-Route: {}\r\n", rr.value));
    }
    let to = req.header("To").unwrap_or_default();
    let to = match tag {
        Some(t) if !to.contains("tag=") => format!("{to};tag={t}"),
        _ => to.to_string(),
    };
    s.push_str(&format!(
        "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:c@{carrier}>\r\nContent-Length: 0\r\n\r\n",
        req.header("From").unwrap_or_default(),
        req.call_id,
        req.header("CSeq").unwrap_or_default()
    ));
    s
}

struct Setup {
    edge: Edge,
    lk: Peer,
    carrier: Peer,
}

async fn setup(tweak: impl FnOnce(&mut SipConfig)) -> Setup {
    let carrier = Peer::bind("127.0.0.1").await;
    let lk = Peer::bind("127.0.0.2").await;
    let edge = start_edge(
        policy(&format!("sip:{}", carrier.addr), "sip:127.0.0.1:9"),
        &["127.0.0.2/32"],
        |c| {
            c.timers.t1 = Duration::from_millis(50);
            c.timers.t2 = Duration::from_millis(400);
            tweak(c);
        },
    )
    .await;
    Setup { edge, lk, carrier }
}

#[tokio::test]
async fn trying_at_once_and_invite_retransmissions_absorbed() {
    let s = setup(|_| {}).await;
    let e = s.edge.addr();
    let inv = invite(s.lk.addr, e, "rtx-1", "z9hG4bKrtx1", "");
    s.lk.send(e, &inv).await;
    assert_eq!(code(&s.lk.expect(500, "100 Trying").await), 100);
    let fwd = s.carrier.expect(500, "INVITE at carrier").await;
    assert_eq!(method(&fwd), "INVITE");
    s.carrier
        .send(e, &respond(&fwd, 100, "Trying", None, s.carrier.addr))
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = s.carrier.drain(100).await; // our timer A may have fired once before the 100
    s.lk.send(e, &inv).await;
    s.lk.send(e, &inv).await;
    let back = s.lk.drain(300).await;
    assert!(
        back.iter().all(|m| code(m) == 100),
        "retransmission answered with the last provisional"
    );
    assert!(
        s.carrier.drain(300).await.is_empty(),
        "retransmissions were not absorbed"
    );
    s.edge.stop().await;
}

#[tokio::test]
async fn silent_carrier_gets_retransmissions_then_408() {
    let s = setup(|_| {}).await;
    let e = s.edge.addr();
    s.lk.send(e, &invite(s.lk.addr, e, "silent-1", "z9hG4bKs1", ""))
        .await;
    assert_eq!(code(&s.lk.expect(500, "100").await), 100);
    let got = s.carrier.drain(400).await;
    assert!(got.len() >= 3, "timer A retransmissions: {}", got.len());
    // Timer B = 64*T1 = 3.2 s.
    let fin = s.lk.expect(4000, "408").await;
    assert_eq!(code(&fin), 408);
    assert_eq!(
        s.edge.metric(
            "c2c_sip_responses_total",
            &[("trunk", "airtel-mum"), ("code", "408")]
        ),
        1.0
    );
    assert!(s
        .edge
        .observer
        .events()
        .contains(&"end silent-1 Some(408)".to_string()));
    s.edge.stop().await;
}

#[tokio::test]
async fn timer_c_cancels_a_ringing_call() {
    let s = setup(|c| c.timers.timer_c = Duration::from_millis(600)).await;
    let e = s.edge.addr();
    s.lk.send(e, &invite(s.lk.addr, e, "ring-1", "z9hG4bKr1", ""))
        .await;
    let fwd = s.carrier.expect(500, "INVITE").await;
    s.carrier
        .send(
            e,
            &respond(&fwd, 180, "Ringing", Some("c1"), s.carrier.addr),
        )
        .await;
    let c = loop {
        let m = s.carrier.expect(2000, "CANCEL after timer C").await;
        if method(&m) == "CANCEL" {
            break m;
        }
    };
    assert_eq!(
        c.via.branch(),
        fwd.via.branch(),
        "CANCEL must reuse the INVITE's branch"
    );
    s.carrier
        .send(e, &respond(&c, 200, "OK", Some("c1"), s.carrier.addr))
        .await;
    s.carrier
        .send(
            e,
            &respond(&fwd, 487, "Request Terminated", Some("c1"), s.carrier.addr),
        )
        .await;
    let ack = s.carrier.expect(500, "ACK for 487").await;
    assert_eq!(method(&ack), "ACK");
    assert_eq!(ack.via.branch(), fwd.via.branch());
    let codes: Vec<u16> = s.lk.drain(500).await.iter().map(code).collect();
    assert!(codes.contains(&180) && codes.contains(&487), "{codes:?}");
    s.edge.stop().await;
}

#[tokio::test]
async fn cancel_before_any_provisional_waits_for_one() {
    let s = setup(|_| {}).await;
    let e = s.edge.addr();
    s.lk.send(e, &invite(s.lk.addr, e, "early-1", "z9hG4bKe1", ""))
        .await;
    let fwd = s.carrier.expect(500, "INVITE").await;
    s.lk.send(e, &cancel(s.lk.addr, e, "early-1", "z9hG4bKe1"))
        .await;
    let ok = loop {
        let m = s.lk.expect(500, "200 for CANCEL").await;
        if code(&m) == 200 {
            break m;
        }
    };
    assert_eq!(ok.cseq_method, "CANCEL");
    // No CANCEL downstream before a provisional (only INVITE retransmissions).
    assert!(s
        .carrier
        .drain(200)
        .await
        .iter()
        .all(|m| method(m) == "INVITE"));
    s.carrier
        .send(e, &respond(&fwd, 100, "Trying", None, s.carrier.addr))
        .await;
    let c = s.carrier.expect(500, "CANCEL after the 100").await;
    assert_eq!(method(&c), "CANCEL");
    s.edge.stop().await;
}

#[tokio::test]
async fn answered_call_2xx_retransmissions_ack_routing_and_spoofed_bye() {
    let s = setup(|_| {}).await;
    let e = s.edge.addr();
    s.lk.send(e, &invite(s.lk.addr, e, "ans-1", "z9hG4bKa1", ""))
        .await;
    let fwd = s.carrier.expect(500, "INVITE").await;
    assert!(fwd.header("X-C2C-Call-Id").is_none() && fwd.header("X-C2C-Tenant").is_none());
    let ok = respond(&fwd, 200, "OK", Some("c9"), s.carrier.addr);
    s.carrier.send(e, &ok).await;
    s.carrier.send(e, &ok).await;
    let oks: Vec<SipMsg> =
        s.lk.drain(400)
            .await
            .into_iter()
            .filter(|m| code(m) == 200)
            .collect();
    assert_eq!(oks.len(), 2, "2xx retransmission not forwarded");
    let to = oks[0].header("To").unwrap_or_default().to_string();
    assert!(
        to.contains(&format!("sip:{NUMBER}@")) && !to.contains(PREFIX),
        "To restored: {to}"
    );
    let rr = oks[0]
        .header("Record-Route")
        .unwrap_or_default()
        .to_string();
    assert!(rr.contains(";lr"), "{rr}");
    // ACK for the 2xx: Route through us, then to the carrier's Contact, unchanged.
    let ack = format!(
        "ACK sip:c@{c} SIP/2.0\r\nVia: SIP/2.0/UDP {lk};branch=z9hG4bKack1;rport\r\nRoute: {rr}\r\nFrom: <sip:+919999999999@{lk}>;tag=lk1\r\nTo: {to}\r\nCall-ID: ans-1\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        c = s.carrier.addr,
        lk = s.lk.addr
    );
    s.lk.send(e, &ack).await;
    let got = loop {
        let m = s.carrier.expect(500, "ACK at carrier").await;
        if method(&m) == "ACK" {
            break m;
        }
    };
    assert!(
        matches!(&got.start, StartLine::Request { uri, .. } if uri == &format!("sip:c@{}", s.carrier.addr))
    );
    assert!(got.header("Route").is_none(), "our Route must be popped");
    assert!(
        got.header("To")
            .unwrap_or_default()
            .contains(&format!("{PREFIX}{NUMBER}")),
        "To re-prefixed for the carrier"
    );
    // A stranger cannot end the call.
    let stranger = Peer::bind("127.0.0.3").await;
    let bye = format!(
        "BYE sip:lk@{lk} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKspoof;rport\r\nFrom: {to}\r\nTo: <sip:+919999999999@{lk}>;tag=lk1\r\nCall-ID: ans-1\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        lk = s.lk.addr,
        me = stranger.addr
    );
    stranger.send(e, &bye).await;
    assert_eq!(code(&stranger.expect(500, "403").await), 403);
    assert!(s.lk.drain(200).await.is_empty(), "spoofed BYE relayed");
    assert!(!s
        .edge
        .observer
        .events()
        .iter()
        .any(|x| x.starts_with("end ")));
    s.edge.stop().await;
}

#[tokio::test]
async fn tenant_caps_answer_503_with_retry_after() {
    let s = setup(|c| {
        c.calls.default = TenantCaps {
            calls_per_second: 100,
            max_concurrent: 1,
        }
    })
    .await;
    let e = s.edge.addr();
    s.lk.send(e, &invite(s.lk.addr, e, "cap-1", "z9hG4bKc1", ""))
        .await;
    let _ = s.carrier.expect(500, "first INVITE").await;
    let _ = s.lk.drain(200).await;
    s.lk.send(e, &invite(s.lk.addr, e, "cap-2", "z9hG4bKc2", ""))
        .await;
    let r = s.lk.expect(500, "503").await;
    assert_eq!(code(&r), 503);
    assert_eq!(r.header("Retry-After"), Some("5"));
    assert_eq!(
        s.edge.metric(
            "c2c_sip_limited_total",
            &[("tenant", "acme"), ("limit", "concurrent")]
        ),
        1.0
    );
    assert!(s
        .carrier
        .drain(200)
        .await
        .iter()
        .all(|m| m.call_id == "cap-1"));
    s.edge.stop().await;
}

#[tokio::test]
async fn cps_cap_and_loop_detection() {
    let s = setup(|c| {
        c.calls.default = TenantCaps {
            calls_per_second: 1,
            max_concurrent: 100,
        }
    })
    .await;
    let e = s.edge.addr();
    s.lk.send(e, &invite(s.lk.addr, e, "cps-1", "z9hG4bKp1", ""))
        .await;
    s.lk.send(e, &invite(s.lk.addr, e, "cps-2", "z9hG4bKp2", ""))
        .await;
    let codes: Vec<u16> = s.lk.drain(300).await.iter().map(code).collect();
    assert!(codes.contains(&503), "{codes:?}");
    assert_eq!(
        s.edge.metric(
            "c2c_sip_limited_total",
            &[("tenant", "acme"), ("limit", "cps")]
        ),
        1.0
    );
    let looped = format!("Via: SIP/2.0/UDP {e};branch=z9hG4bK-c2c-0123\r\n");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.lk.send(e, &invite(s.lk.addr, e, "loop-1", "z9hG4bKl1", &looped))
        .await;
    let r = s.lk.drain(300).await;
    assert!(r.iter().any(|m| code(m) == 482), "loop not detected");
    s.edge.stop().await;
}

#[tokio::test]
async fn strangers_are_flood_limited_carriers_are_not() {
    let s = setup(|c| {
        c.flood.messages_per_second = 1;
        c.flood.burst = 5;
    })
    .await;
    let e = s.edge.addr();
    let stranger = Peer::bind("127.0.0.3").await;
    for i in 0..20 {
        stranger
            .send(
                e,
                &invite(
                    stranger.addr,
                    e,
                    &format!("fl-{i}"),
                    &format!("z9hG4bKfl{i}"),
                    "",
                ),
            )
            .await;
    }
    let answers = stranger.drain(300).await;
    assert!(answers.len() <= 6, "{} answers", answers.len());
    assert!(answers.iter().all(|m| code(m) == 403));
    assert!(s.edge.metric("c2c_sip_flood_dropped_total", &[]) >= 14.0);
    let before = s.edge.metric("c2c_sip_flood_dropped_total", &[]);
    let stray = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-c2c-none\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    for _ in 0..20 {
        s.carrier.send(e, stray).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        s.edge.metric("c2c_sip_flood_dropped_total", &[]),
        before,
        "carrier throttled"
    );
    assert_eq!(
        s.edge.metric("c2c_sip_unmatched_responses_total", &[]),
        20.0
    );
    assert_eq!(s.carrier.drain(100).await.len(), 0);
    s.edge.stop().await;
}
