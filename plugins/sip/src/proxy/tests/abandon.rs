//! A forwarded inbound call the gateway rejects before LiveKit's final (virtual time):
//! the carrier's final at once, CANCEL to LiveKit, its 487 ACKed and not relayed, a 200
//! crossing the CANCEL ACKed and ended with our BYE.

use super::*;

/// A held call forwarded to LiveKit; returns LiveKit's INVITE.
fn forwarded(c: &mut Core, call: &str) -> SipMsg {
    held(c, call, DID);
    sent(&c.forward(call, "room-1", "acme").unwrap())[0]
        .1
        .clone()
}

fn only(actions: &[Action]) -> (SocketAddr, SipMsg) {
    let s = sent(actions);
    assert_eq!(s.len(), 1, "{:?}", codes(actions));
    s[0].clone()
}

fn abandoned_labels(c: &Core) -> (u64, u64, u64) {
    (
        c.inbound("forwarded"),
        c.inbound("rejected"),
        c.inbound("abandoned"),
    )
}

/// LiveKit's 200 with SDP-less body and its own Contact.
fn lk_ok(inv: &SipMsg) -> String {
    lk_response(inv, 200, "OK")
}

#[test]
fn reject_after_forward_answers_the_carrier_at_once_and_cancels_livekit() {
    let mut c = core(None, |_| {});
    let inv = forwarded(&mut c, "ab-1");
    assert!(c
        .feed(LIVEKIT, &lk_response(&inv, 100, "Trying"))
        .is_empty());
    assert!(c
        .feed(LIVEKIT, &lk_response(&inv, 180, "Ringing"))
        .is_empty());
    let a = c.proxy.reject_inbound(c.now, "ab-1", 480).unwrap();
    let s = sent(&a);
    assert_eq!(s.len(), 2, "{:?}", codes(&a));
    let (to, fin) = &s[0];
    assert_eq!(to.to_string(), CARRIER);
    assert!(text(fin).starts_with("SIP/2.0 480 Temporarily Unavailable\r\n"));
    assert_eq!(fin.via.branch(), Some("z9hG4bKab-1"));
    assert!(!text(fin).contains("room-1"));
    let (to, cancel) = &s[1];
    assert_eq!(to.to_string(), LIVEKIT);
    assert_eq!(cancel.method(), Some(&Method::Cancel));
    assert_eq!(
        cancel.via.branch(),
        inv.via.branch(),
        "the forwarded branch"
    );
    assert_eq!(cancel.header("CSeq"), Some("7 CANCEL"));
    assert!(observed(&a).is_empty(), "the gateway decided it");
    assert_eq!(abandoned_labels(&c), (1, 0, 1));
    assert_eq!(c.responses("airtel-mum", "480"), 1);
    assert_eq!(c.proxy.dialogs.active("acme"), 0, "no longer counts");
    assert_eq!(
        c.proxy.reject_inbound(c.now, "ab-1", 480).unwrap_err(),
        InboundError::NotHeld
    );

    // Timer G toward the carrier; a retransmitted INVITE gets the 480, not our 180.
    assert_eq!(codes(&c.after(Duration::from_millis(50))), vec![480, 0]);
    assert_eq!(
        codes(&c.feed(CARRIER, &carrier_invite("ab-1", DID, true))),
        vec![480]
    );
    // LiveKit: 200 to the CANCEL (absorbed), 487 to the INVITE: our ACK, nothing relayed.
    assert!(c.feed(LIVEKIT, &lk_response(cancel, 200, "OK")).is_empty());
    let a = c.feed(LIVEKIT, &lk_response(&inv, 487, "Request Terminated"));
    let (to, ack) = only(&a);
    assert_eq!(to.to_string(), LIVEKIT);
    assert_eq!(ack.method(), Some(&Method::Ack));
    assert_eq!(ack.via.branch(), inv.via.branch());
    assert!(observed(&a).is_empty());
    assert_eq!(c.responses("airtel-mum", "487"), 0);
    // The carrier's ACK (our 180's tag) is absorbed; then silence.
    let tag = fin.to_tag.clone().unwrap();
    let ack = carrier_invite("ab-1", DID, false)
        .replacen("INVITE sip", "ACK sip", 1)
        .replace("CSeq: 7 INVITE", "CSeq: 7 ACK")
        .replace(
            &format!("To: <sip:{DID}@127.0.0.1:5060>"),
            &format!("To: <sip:{DID}@127.0.0.1:5060>;tag={tag}"),
        );
    assert!(c.feed(CARRIER, &ack).is_empty());
    assert!(codes(&c.after(Duration::from_secs(10))).is_empty());
    assert_eq!(c.proxy.txns.len(), 0, "all transactions gone");
}

#[test]
fn before_any_provisional_the_cancel_waits_for_one_and_timer_b_still_ends_it() {
    let mut c = core(None, |_| {});
    let inv = forwarded(&mut c, "ab-2");
    let (to, fin) = only(&c.proxy.reject_inbound(c.now, "ab-2", 486).unwrap());
    assert_eq!(to.to_string(), CARRIER);
    assert_eq!(
        code(&fin),
        486,
        "no CANCEL before a provisional (RFC 3261 §9.1)"
    );
    // Timer A goes on toward LiveKit (with timer G toward the carrier).
    let a = c.after(Duration::from_millis(50));
    let s = sent(&a);
    assert!(s
        .iter()
        .any(|(to, m)| to.to_string() == LIVEKIT && m.method() == Some(&Method::Invite)));
    // The first provisional brings the CANCEL, and is not relayed.
    let (to, cancel) = only(&c.feed(LIVEKIT, &lk_response(&inv, 100, "Trying")));
    assert_eq!(to.to_string(), LIVEKIT);
    assert_eq!(cancel.method(), Some(&Method::Cancel));

    // A LiveKit that never answers: no 408/487 to the carrier, only the CANCEL
    // retransmitted until the transaction gives up; then it is forgotten.
    let mut carrier_got = Vec::new();
    for _ in 0..200 {
        for (to, m) in sent(&c.after(Duration::from_millis(100))) {
            if to.to_string() == CARRIER {
                carrier_got.push(code(&m));
            } else {
                assert_eq!(m.method(), Some(&Method::Cancel));
            }
        }
    }
    assert!(carrier_got.iter().all(|&k| k == 486), "{carrier_got:?}");
    assert_eq!(c.proxy.txns.len(), 0);
}

#[test]
fn a_200_crossing_the_cancel_is_acked_and_ended_with_our_bye() {
    let mut c = core(None, |_| {});
    let inv = forwarded(&mut c, "ab-3");
    assert!(c
        .feed(LIVEKIT, &lk_response(&inv, 180, "Ringing"))
        .is_empty());
    let a = c.proxy.reject_inbound(c.now, "ab-3", 480).unwrap();
    assert_eq!(codes(&a), vec![480, 0]);

    let a = c.feed(LIVEKIT, &lk_ok(&inv));
    assert!(observed(&a).is_empty(), "no answer reported");
    let s = sent(&a);
    assert_eq!(s.len(), 2, "ACK and BYE, nothing to the carrier");
    assert!(s.iter().all(|(to, _)| to.to_string() == LIVEKIT));
    let (ack, bye) = (&s[0].1, &s[1].1);
    let StartLine::Request { uri, .. } = &ack.start else {
        panic!("ACK")
    };
    assert_eq!(uri, &format!("sip:lk@{LIVEKIT}"), "the 200's Contact");
    assert_eq!(ack.method(), Some(&Method::Ack));
    assert_eq!(ack.header("CSeq"), Some("7 ACK"));
    assert_eq!(ack.to_tag.as_deref(), Some("lk"));
    assert_ne!(
        ack.via.branch(),
        inv.via.branch(),
        "a 2xx ACK is a new transaction"
    );
    assert_eq!(bye.method(), Some(&Method::Bye));
    assert_eq!(bye.header("CSeq"), Some("8 BYE"));
    assert_eq!(bye.call_id, "ab-3");
    assert_eq!(bye.to_tag.as_deref(), Some("lk"));
    assert_eq!(bye.from_tag.as_deref(), Some("crab-3"));
    assert!(bye.header("Route").is_none());
    assert!(bye
        .via
        .branch()
        .is_some_and(|b| b.starts_with(BRANCH_PREFIX)));
    assert_eq!(c.responses("airtel-mum", "200"), 0);
    assert_eq!(c.inbound("abandoned"), 1);

    // A retransmitted 200 gets the same ACK again, and no second BYE.
    let (_, again) = only(&c.feed(LIVEKIT, &lk_ok(&inv)));
    assert_eq!(again.raw, ack.raw);
    // Our BYE is retransmitted until LiveKit answers it; its 200 goes nowhere.
    let a = c.after(Duration::from_millis(50));
    assert!(sent(&a)
        .iter()
        .any(|(_, m)| m.method() == Some(&Method::Bye)));
    assert!(c.feed(LIVEKIT, &lk_response(bye, 200, "OK")).is_empty());
    let a = c.after(Duration::from_millis(500));
    assert!(!sent(&a)
        .iter()
        .any(|(_, m)| m.method() == Some(&Method::Bye)));
    // The carrier's INVITE retransmission still gets the 480: it never saw a 200.
    assert_eq!(
        codes(&c.feed(CARRIER, &carrier_invite("ab-3", DID, true))),
        vec![480]
    );
    c.after(Duration::from_secs(10));
    assert_eq!(c.proxy.txns.len(), 0, "all transactions gone");
}

#[test]
fn reject_does_nothing_once_livekit_answered_or_failed() {
    let mut c = core(None, |_| {});
    assert_eq!(
        c.proxy.reject_inbound(c.now, "nobody", 480).unwrap_err(),
        InboundError::NotHeld
    );
    // Answered: the call is up, the gateway hangs up some other way.
    let inv = forwarded(&mut c, "ab-4");
    assert_eq!(codes(&c.feed(LIVEKIT, &lk_ok(&inv))), vec![200]);
    assert_eq!(
        c.proxy.reject_inbound(c.now, "ab-4", 480).unwrap_err(),
        InboundError::NotHeld
    );
    // LiveKit's own failure already went to the carrier.
    let inv = forwarded(&mut c, "ab-5");
    assert_eq!(
        codes(&c.feed(LIVEKIT, &lk_response(&inv, 486, "Busy Here"))),
        vec![0, 486]
    );
    assert_eq!(
        c.proxy.reject_inbound(c.now, "ab-5", 480).unwrap_err(),
        InboundError::NotHeld
    );
    // An outbound call is never the gateway's to reject this way.
    let out = carrier_invite("ab-6", "8045678901", true).replace("spoofed", "c2c-out-6");
    c.feed(LIVEKIT, &out);
    assert_eq!(
        c.proxy.reject_inbound(c.now, "ab-6", 480).unwrap_err(),
        InboundError::NotHeld
    );
    assert_eq!(c.inbound("abandoned"), 0);
}

#[test]
fn after_a_carrier_cancel_the_reject_still_ends_it_at_once() {
    let mut c = core(None, |_| {});
    let inv = forwarded(&mut c, "ab-7");
    assert!(c
        .feed(LIVEKIT, &lk_response(&inv, 180, "Ringing"))
        .is_empty());
    // The carrier's CANCEL went to LiveKit, whose 487 is slow to come.
    let a = c.feed(CARRIER, &cancel("ab-7", DID));
    assert_eq!(codes(&a), vec![200, 0]);
    let (to, fin) = only(&c.proxy.reject_inbound(c.now, "ab-7", 480).unwrap());
    assert_eq!(to.to_string(), CARRIER);
    assert_eq!(code(&fin), 480, "no second CANCEL");
    let (_, ack) = only(&c.feed(LIVEKIT, &lk_response(&inv, 487, "Request Terminated")));
    assert_eq!(ack.method(), Some(&Method::Ack));
}
