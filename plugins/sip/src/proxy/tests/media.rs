//! Anchored outbound calls in the core (virtual time, real port binds): the offer, the
//! answers and an in-dialog re-INVITE pointed at the edge's pairs, the relay told where
//! each side wants audio, stopped when the dialog goes; 488 for offers it cannot anchor,
//! 503 when the port range is used up.

use super::*;
use crate::media::MediaOp;
use c2c_media::{sdp, Side};
use c2c_tenancy::MediaMode;

/// The example policy with every trunk anchored.
fn anchored_policy() -> Policy {
    let mut p = policy(None);
    let gateway = p.gateway.clone();
    let owned = std::mem::take(&mut p.tenants);
    drop(p);
    let tenants = owned
        .into_iter()
        .map(|(id, t)| {
            let mut t = Arc::try_unwrap(t).unwrap();
            for tr in &mut t.trunks {
                tr.media = MediaMode::Anchor;
            }
            (id, Arc::new(t))
        })
        .collect();
    Policy::new(gateway, tenants, KeyRing::default())
}

/// A core whose media range holds `pairs` pairs, on ports nothing else here uses.
fn anchored(pairs: u16) -> Core {
    let base = free_even_range(pairs);
    core_with(anchored_policy(), |c| {
        c.media.port_min = base;
        c.media.port_max = base + pairs * 2 - 1;
    })
}

/// The first even port of `pairs` free consecutive pairs (asked of the kernel).
fn free_even_range(pairs: u16) -> u16 {
    loop {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = probe.local_addr().unwrap().port() & !1;
        drop(probe);
        if p >= 1024 && u32::from(p) + u32::from(pairs) * 2 < 65_000 {
            return p;
        }
    }
}

fn offer(ip: &str, port: u16) -> String {
    format!("v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n")
}

/// LiveKit's INVITE for globex's (anchored) trunk with `body` as SDP.
fn lk_invite(call: &str, body: Option<&str>) -> String {
    let base = carrier_invite(call, "8045678901", false).replace("spoofed", &format!("c2c-{call}"));
    match body {
        None => base,
        Some(b) => base.replace(
            "Content-Length: 0\r\n\r\n",
            &format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            ),
        ),
    }
}

/// A response to `req` from its next hop, with `body` as SDP.
fn answer(req: &SipMsg, code: u16, reason: &str, body: &str) -> String {
    let mut s = format!("SIP/2.0 {code} {reason}\r\n");
    for v in req.headers_named("Via") {
        s.push_str(&format!("Via: {}\r\n", v.value));
    }
    for rr in req.headers_named("Record-Route") {
        s.push_str(&format!("Record-Route: {}\r\n", rr.value));
    }
    let to = req.header("To").unwrap_or_default();
    let to = if to.contains("tag=") {
        to.to_string()
    } else {
        format!("{to};tag=far")
    };
    s.push_str(&format!(
        "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:far@127.0.0.1:5082>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        req.header("From").unwrap_or_default(),
        req.call_id,
        req.header("CSeq").unwrap_or_default(),
        body.len()
    ));
    s
}

fn media(actions: &[Action]) -> Vec<&MediaOp> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Media(op) => Some(op),
            _ => None,
        })
        .collect()
}

fn body(m: &SipMsg) -> String {
    String::from_utf8(m.body().to_vec()).unwrap()
}

#[test]
fn an_anchored_call_points_every_body_at_the_edge_and_stops_with_the_dialog() {
    let mut c = anchored(4);
    let a = c.feed(LIVEKIT, &lk_invite("an-1", Some(&offer("127.0.0.2", 4000))));
    let s = sent(&a);
    assert_eq!(codes(&a), vec![100, 0]);
    let ops = media(&a);
    let [MediaOp::Start(start)] = ops.as_slice() else {
        panic!("one Start: {ops:?}")
    };
    assert_eq!(start.call_id.as_deref(), Some("c2c-an-1"));
    assert_eq!(start.trunk, "vi-blr");
    assert_eq!(start.offerer.0, Side::Livekit);
    assert_eq!(start.offerer.1.rtp.to_string(), "127.0.0.2:4000");
    let legs = start.legs;
    // The carrier's INVITE: the edge's address and the carrier-facing pair; the rest of
    // the offer (codecs, ptime, telephone-event) as LiveKit sent it.
    let (to, inv) = &s[1];
    assert_eq!(to.to_string(), "127.0.0.1:5082");
    let b = body(inv);
    let t = sdp::audio_target(&b).unwrap();
    assert_eq!(t.rtp.to_string(), format!("127.0.0.1:{}", legs.carrier.rtp));
    assert!(b.contains("a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n"));
    assert!(!b.contains("127.0.0.2 ") && !b.contains("c=IN IP4 127.0.0.2"));
    assert_eq!(
        inv.header("Content-Length"),
        Some(b.len().to_string().as_str())
    );

    // 183 with the carrier's early-media address: LiveKit gets the LiveKit-facing pair.
    let a = c.feed(
        "127.0.0.1:5082",
        &answer(inv, 183, "Session Progress", &offer("127.0.0.3", 5000)),
    );
    let s = sent(&a);
    assert_eq!(s.len(), 1);
    let t = sdp::audio_target(&body(&s[0].1)).unwrap();
    assert_eq!(t.rtp.port(), legs.livekit.rtp);
    let ops = media(&a);
    assert!(
        matches!(ops.as_slice(), [MediaOp::Remote { side: Side::Carrier, target, .. }] if target.rtp.to_string() == "127.0.0.3:5000"),
        "{ops:?}"
    );

    // 200: the same rewrite, and the relay hears of the answer.
    let a = c.feed(
        "127.0.0.1:5082",
        &answer(inv, 200, "OK", &offer("127.0.0.3", 5002)),
    );
    let s = sent(&a);
    assert_eq!(code(&s[0].1), 200);
    assert_eq!(
        sdp::audio_target(&body(&s[0].1)).unwrap().rtp.port(),
        legs.livekit.rtp
    );
    let ops = media(&a);
    assert!(
        matches!(
            ops.as_slice(),
            [
                MediaOp::Remote {
                    side: Side::Carrier,
                    ..
                },
                MediaOp::Answered { .. }
            ]
        ),
        "{ops:?}"
    );

    // The carrier tries to move its media with a re-INVITE and LiveKit refuses it
    // (488): the relay keeps the session it had.
    let reinvite = |branch: &str, cseq: u32| {
        format!(
            "INVITE sip:lk@{LIVEKIT} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5082;branch=z9hG4bK{branch};rport\r\nRoute: <sip:127.0.0.1:5060;lr>\r\nFrom: <sip:8045678901@x>;tag=far\r\nTo: <sip:09876543210@carrier.example>;tag=cran-1\r\nCall-ID: an-1\r\nCSeq: {cseq} INVITE\r\nContact: <sip:far@127.0.0.1:5082>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{}",
            offer("127.0.0.4", 6000).len(),
            offer("127.0.0.4", 6000)
        )
    };
    let a = c.feed("127.0.0.1:5082", &reinvite("re0", 1));
    assert!(media(&a).is_empty(), "an offer is not the session yet");
    let re = sent(&a).last().unwrap().1.clone();
    let refused = answer(&re, 488, "Not Acceptable Here", "")
        .replace("Content-Type: application/sdp\r\n", "");
    let a = c.feed(LIVEKIT, &refused);
    assert_eq!(codes(&a).last(), Some(&488));
    assert!(media(&a).is_empty(), "a refused offer changes nothing");

    // Again, accepted: LiveKit's copy names the LiveKit-facing pair; LiveKit's answer
    // reaches the carrier with the carrier's pair, and the relay follows both.
    let a = c.feed("127.0.0.1:5082", &reinvite("re1", 2));
    let s = sent(&a);
    let re = &s.last().unwrap().1;
    assert_eq!(re.method(), Some(&Method::Invite));
    assert_eq!(
        sdp::audio_target(&body(re)).unwrap().rtp.port(),
        legs.livekit.rtp
    );
    assert!(media(&a).is_empty());
    let a = c.feed(LIVEKIT, &answer(re, 200, "OK", &offer("127.0.0.2", 4100)));
    let s = sent(&a);
    assert_eq!(
        sdp::audio_target(&body(&s[0].1)).unwrap().rtp.port(),
        legs.carrier.rtp
    );
    let ops = media(&a);
    assert!(
        matches!(
            ops.as_slice(),
            [
                MediaOp::Remote { side: Side::Carrier, target: offered, .. },
                MediaOp::Remote { side: Side::Livekit, target: answered, .. },
            ] if offered.rtp.to_string() == "127.0.0.4:6000" && answered.rtp.port() == 4100
        ),
        "{ops:?}"
    );

    // LiveKit hangs up: the relay stops when the BYE's 200 ends the dialog.
    let bye = format!(
        "BYE sip:8045678901@127.0.0.1:5082 SIP/2.0\r\nVia: SIP/2.0/UDP {LIVEKIT};branch=z9hG4bKbye1;rport\r\nRoute: <sip:127.0.0.1:5060;lr>\r\nFrom: <sip:09876543210@carrier.example>;tag=cran-1\r\nTo: <sip:8045678901@x>;tag=far\r\nCall-ID: an-1\r\nCSeq: 9 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let a = c.feed(LIVEKIT, &bye);
    assert!(media(&a).is_empty());
    let fwd = sent(&a).last().unwrap().1.clone();
    let ok = answer(&fwd, 200, "OK", "").replace("Content-Type: application/sdp\r\n", "");
    let a = c.feed("127.0.0.1:5082", &ok);
    assert!(matches!(media(&a).as_slice(), [MediaOp::Stop { key }] if key == "an-1"));
}

#[test]
fn offers_that_cannot_be_anchored_get_488_and_take_no_port() {
    let mut c = anchored(2);
    let a = c.feed(LIVEKIT, &lk_invite("no-sdp", None));
    let s = sent(&a);
    assert_eq!(codes(&a), vec![488]);
    assert!(s[0]
        .1
        .header("Warning")
        .unwrap()
        .contains("needs an SDP offer"));
    let video = format!("{}m=video 4002 RTP/AVP 96\r\n", offer("127.0.0.2", 4000));
    let a = c.feed(LIVEKIT, &lk_invite("video", Some(&video)));
    assert_eq!(codes(&a), vec![488]);
    assert!(sent(&a)[0]
        .1
        .header("Warning")
        .unwrap()
        .contains("second active media stream"));
    assert!(media(&a).is_empty());
    assert_eq!(c.proxy.media_pool().lock().in_use(), 0);
    assert_eq!(
        c.proxy
            .media_metrics
            .refused
            .with_label_values(&["sdp"])
            .get(),
        2
    );
    // Nothing reached the carrier; the trunk counts the 488s.
    assert_eq!(c.responses("vi-blr", "488"), 2);
}

#[test]
fn a_used_up_port_range_answers_503_and_freed_pairs_serve_again() {
    // Two pairs: one call.
    let mut c = anchored(2);
    let first = c.feed(LIVEKIT, &lk_invite("p-1", Some(&offer("127.0.0.2", 4000))));
    assert_eq!(codes(&first), vec![100, 0]);
    let a = c.feed(LIVEKIT, &lk_invite("p-2", Some(&offer("127.0.0.2", 4002))));
    assert_eq!(codes(&a), vec![503]);
    let refusal = &sent(&a)[0].1;
    assert!(text(refusal).contains("Media Ports Exhausted"));
    assert!(refusal.header("Retry-After").is_some());
    assert_eq!(
        c.proxy
            .media_metrics
            .refused
            .with_label_values(&["ports_exhausted"])
            .get(),
        1
    );
    // A retransmitted INVITE opens nothing more.
    let again = c.feed(LIVEKIT, &lk_invite("p-1", Some(&offer("127.0.0.2", 4000))));
    assert!(media(&again).is_empty());
    // The first call goes (its sockets closed, its pairs given back, as its relay
    // does): the next call gets them.
    let legs = match media(&first).as_slice() {
        [MediaOp::Start(s)] => s.legs,
        other => panic!("{other:?}"),
    };
    drop(first);
    let pool = c.proxy.media_pool();
    pool.lock().release(legs.carrier);
    pool.lock().release(legs.livekit);
    let a = c.feed(LIVEKIT, &lk_invite("p-3", Some(&offer("127.0.0.2", 4004))));
    assert_eq!(codes(&a), vec![100, 0]);
    assert_eq!(pool.lock().in_use(), 2);
}

#[test]
fn an_anchored_inbound_call_points_livekit_and_the_carrier_at_the_edge() {
    let mut c = anchored(4);
    held(&mut c, "in-1", DID);
    let a = c.forward("in-1", "room-1", "acme").unwrap();
    let s = sent(&a);
    let ops = media(&a);
    let [MediaOp::Start(start)] = ops.as_slice() else {
        panic!("one Start: {ops:?}")
    };
    // The carrier made the offer: LiveKit's INVITE names the LiveKit-facing pair.
    assert_eq!(start.offerer.0, Side::Carrier);
    assert_eq!(start.offerer.1.rtp.to_string(), "127.0.0.1:4000");
    let legs = start.legs;
    let (to, inv) = &s[0];
    assert_eq!(to.to_string(), LIVEKIT);
    let t = sdp::audio_target(&body(inv)).unwrap();
    assert_eq!(t.rtp.port(), legs.livekit.rtp);
    // LiveKit answers: the carrier's 200 names the carrier-facing pair.
    let a = c.feed(LIVEKIT, &answer(inv, 200, "OK", &offer("127.0.0.2", 7000)));
    let s = sent(&a);
    let ok = s
        .iter()
        .find(|(_, m)| code(m) == 200)
        .expect("200 to the carrier");
    assert_eq!(
        sdp::audio_target(&body(&ok.1)).unwrap().rtp.port(),
        legs.carrier.rtp
    );
    assert!(matches!(
        media(&a).as_slice(),
        [
            MediaOp::Remote {
                side: Side::Livekit,
                ..
            },
            MediaOp::Answered { .. }
        ]
    ));
}

#[test]
fn an_inbound_call_the_port_range_cannot_hold_gets_503_and_the_gateway_hears_why() {
    // One pair: not enough for a call.
    let mut c = anchored(1);
    held(&mut c, "in-2", DID);
    let err = c.forward("in-2", "room-2", "acme").unwrap_err();
    assert_eq!(
        err,
        crate::inbound::InboundError::Media {
            code: 503,
            reason: "Media Ports Exhausted"
        }
    );
    // The carrier's 503 waits in the core for the edge to send.
    let pending = c.proxy.pending();
    assert_eq!(codes(&pending), vec![503]);
    assert!(
        c.forward("in-2", "room-2", "acme").is_err(),
        "no longer held"
    );
    assert_eq!(c.proxy.media_pool().lock().in_use(), 0);
}

#[test]
fn an_inbound_offer_that_cannot_be_anchored_is_refused_at_the_door() {
    let mut c = anchored(4);
    let video = format!("{SDP}m=video 4002 RTP/AVP 96\r\n");
    let inv = carrier_invite("in-3", DID, true)
        .replace(
            &format!("Content-Length: {}", SDP.len()),
            &format!("Content-Length: {}", video.len()),
        )
        .replace(SDP, &video);
    let a = c.feed(CARRIER, &inv);
    assert_eq!(codes(&a), vec![488]);
    assert!(sent(&a)[0]
        .1
        .header("Warning")
        .unwrap()
        .contains("second active media stream"));
    assert_eq!(c.inbound("no_sdp"), 1);
    assert_eq!(c.inbound("held"), 0, "no agent rings for it");
}
