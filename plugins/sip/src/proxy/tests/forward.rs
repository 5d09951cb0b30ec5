//! A held inbound call forwarded to LiveKit: the INVITE LiveKit gets and the dialog
//! routing both ways, a CANCEL after the forward, a BYE on the held early dialog.

use super::*;

#[test]
fn forward_builds_livekits_invite_and_the_dialog_routes_both_ways() {
    let mut c = core(None, |_| {});
    held(&mut c, "fw-1", "08045678901");
    assert!(matches!(
        c.forward("fw-1", "c2c-room", "globex"),
        Err(InboundError::BadTarget(_))
    ));
    assert!(matches!(
        c.forward("fw-1", "bad room", "acme"),
        Err(InboundError::BadTarget(_))
    ));
    let a = c.forward("fw-1", "c2c-room", "acme").unwrap();
    let s = sent(&a);
    assert_eq!(s.len(), 1);
    let (to, inv) = &s[0];
    assert_eq!(to.to_string(), LIVEKIT);
    let StartLine::Request { uri, .. } = &inv.start else {
        panic!("a request")
    };
    assert_eq!(uri, &format!("sip:c2c-room@{LIVEKIT}"));
    assert_eq!(inv.header("To"), Some("<sip:c2c-room@127.0.0.1:5060>"));
    assert_eq!(inv.header("X-C2C-Call-Id"), Some("c2c-call-1"));
    assert_eq!(inv.header("X-C2C-Tenant"), Some("acme"));
    assert!(!text(inv).contains("spoofed") && !text(inv).contains("globex"));
    assert_eq!(inv.max_forwards, Some(69));
    assert!(inv
        .via
        .branch()
        .is_some_and(|b| b.starts_with(BRANCH_PREFIX)));
    assert_eq!(inv.header("Record-Route"), Some("<sip:127.0.0.1:5060;lr>"));
    assert!(inv.body().starts_with(b"v=0"));
    assert_eq!(c.inbound("forwarded"), 1);
    assert!(
        c.forward("fw-1", "c2c-room", "acme").is_err(),
        "forwarded once"
    );

    // LiveKit's 100 and 180 are absorbed; a retransmitted INVITE still gets our 180.
    assert!(c.feed(LIVEKIT, &lk_response(inv, 100, "Trying")).is_empty());
    assert!(c
        .feed(LIVEKIT, &lk_response(inv, 180, "Ringing"))
        .is_empty());
    assert_eq!(
        codes(&c.feed(CARRIER, &carrier_invite("fw-1", "08045678901", true))),
        vec![180]
    );
    // Its 200 reaches the carrier with the DID as sent, our Via popped, no X-C2C-*.
    let a = c.feed(LIVEKIT, &lk_response(inv, 200, "OK"));
    let s = sent(&a);
    assert_eq!(s[0].0.to_string(), CARRIER);
    let ok = &s[0].1;
    assert_eq!(code(ok), 200);
    assert_eq!(
        ok.header("To"),
        Some("<sip:08045678901@127.0.0.1:5060>;tag=lk")
    );
    assert!(ok.header("X-C2C-Call-Id").is_none());
    assert_eq!(ok.via.branch(), Some("z9hG4bKfw-1"));
    assert_eq!(
        observed(&a),
        vec![
            Observation::Response {
                call_id: "c2c-call-1".into(),
                code: 200
            },
            Observation::Answer {
                call_id: "c2c-call-1".into()
            }
        ]
    );
    assert_eq!(c.responses("airtel-mum", "200"), 1);

    // The carrier's ACK goes to LiveKit with the room as To user.
    let ack = format!(
        "ACK sip:lk@{LIVEKIT} SIP/2.0\r\nVia: SIP/2.0/UDP {CARRIER};branch=z9hG4bKack;rport\r\nRoute: <sip:127.0.0.1:5060;lr>\r\nFrom: \"Asha K\" <sip:09876543210@carrier.example>;tag=crfw-1\r\nTo: <sip:08045678901@127.0.0.1:5060>;tag=lk\r\nCall-ID: fw-1\r\nCSeq: 7 ACK\r\nMax-Forwards: 70\r\nX-C2C-Tenant: globex\r\nContent-Length: 0\r\n\r\n"
    );
    let s = sent(&c.feed(CARRIER, &ack));
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].0.to_string(), LIVEKIT);
    assert_eq!(
        s[0].1.header("To"),
        Some("<sip:c2c-room@127.0.0.1:5060>;tag=lk")
    );
    assert!(s[0].1.header("X-C2C-Tenant").is_none());

    // LiveKit hangs up: the carrier gets the DID as From user, never the room.
    let bye = format!(
        "BYE sip:c@{CARRIER} SIP/2.0\r\nVia: SIP/2.0/UDP {LIVEKIT};branch=z9hG4bKlkbye;rport\r\nRoute: <sip:127.0.0.1:5060;lr>\r\nFrom: <sip:c2c-room@127.0.0.1:5060>;tag=lk\r\nTo: \"Asha K\" <sip:09876543210@carrier.example>;tag=crfw-1\r\nCall-ID: fw-1\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\nX-C2C-Call-Id: c2c-call-1\r\nContent-Length: 0\r\n\r\n"
    );
    let a = c.feed(LIVEKIT, &bye);
    let s = sent(&a);
    assert_eq!(s[0].0.to_string(), CARRIER);
    let fwd_bye = &s[0].1;
    assert_eq!(
        fwd_bye.header("From"),
        Some("<sip:08045678901@127.0.0.1:5060>;tag=lk")
    );
    assert!(!text(fwd_bye).contains("c2c-room") && !text(fwd_bye).contains("X-C2C"));
    assert_eq!(
        observed(&a),
        vec![Observation::End {
            call_id: "c2c-call-1".into(),
            code: None
        }]
    );
}

#[test]
fn cancel_after_forward_goes_to_livekit_and_its_487_comes_back() {
    let mut c = core(None, |_| {});
    held(&mut c, "cf-1", DID);
    let inv = sent(&c.forward("cf-1", "room-9", "acme").unwrap())[0]
        .1
        .clone();
    // Before any provisional from LiveKit: the CANCEL waits for one.
    let a = c.feed(CARRIER, &cancel("cf-1", DID));
    assert_eq!(codes(&a), vec![200]);
    let a = c.feed(LIVEKIT, &lk_response(&inv, 180, "Ringing"));
    let s = sent(&a);
    assert_eq!(s.len(), 1, "only our CANCEL, no 180 to the carrier");
    assert_eq!(s[0].0.to_string(), LIVEKIT);
    assert_eq!(s[0].1.method(), Some(&Method::Cancel));
    let a = c.feed(LIVEKIT, &lk_response(&inv, 487, "Request Terminated"));
    let s = sent(&a);
    // Our ACK to LiveKit, the 487 to the carrier (To user = the DID as sent).
    assert_eq!(s[0].1.method(), Some(&Method::Ack));
    assert_eq!(code(&s[1].1), 487);
    assert_eq!(
        s[1].1.header("To"),
        Some(&*format!("<sip:{DID}@127.0.0.1:5060>;tag=lk"))
    );
    assert!(observed(&a).contains(&Observation::End {
        call_id: "c2c-call-1".into(),
        code: Some(487)
    }));
    assert_eq!(
        c.inbound("cancelled"),
        0,
        "counted as forwarded, not as a held cancel"
    );
    assert_eq!(c.proxy.dialogs.active("acme"), 0);
}

#[test]
fn bye_on_the_held_early_dialog_ends_it_like_cancel() {
    let mut c = core(None, |_| {});
    let a = held(&mut c, "eb-1", DID);
    let tag = sent(&a)[1].1.to_tag.clone().unwrap();
    let bye = format!(
        "BYE sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CARRIER};branch=z9hG4bKeb;rport\r\nFrom: <sip:09876543210@carrier.example>;tag=creb-1\r\nTo: <sip:{DID}@127.0.0.1:5060>;tag={tag}\r\nCall-ID: eb-1\r\nCSeq: 8 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let a = c.feed(CARRIER, &bye);
    assert_eq!(codes(&a), vec![200, 487]);
    assert!(matches!(
        observed(&a)[..],
        [Observation::InboundGone {
            why: InboundGone::CallerCancelled,
            ..
        }]
    ));
}
