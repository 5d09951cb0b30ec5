use super::*;

const FOLDED: &[u8] = b"\r\nSIP/2.0 200 OK\n\
v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKaaa;rport=5070,\n SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKbbb\n\
f: <sip:1600@127.0.0.1>;tag=abc\n\
t : \"Callee, Inc\" <sip:99119530251797@127.0.0.1:5060>\n\t;tag=xyz\n\
i: call-1\n\
CSeq: 1 INVITE\n\
Record-Route: <sip:10.0.0.9;lr>, <sip:10.0.0.8;lr;transport=udp>\n\
Record-Route: <sip:10.0.0.7;lr>\n\
m: <sip:carrier@127.0.0.1:5070>\n\
c: application/sdp\n\
l: 4\n\
\n\
v=0\nextra";

#[test]
fn parses_compact_folded_lf_only() {
    let m = Message::parse(FOLDED).unwrap();
    assert_eq!(m.status(), Some((200, "OK")));
    assert_eq!(m.call_id(), Some("call-1"));
    assert_eq!(m.cseq(), Some((1, "INVITE")));
    assert_eq!(m.top_branch(), Some("z9hG4bKaaa"));
    assert_eq!(m.list("via").len(), 2);
    assert_eq!(tag_of(m.header("to").unwrap()), Some("xyz"));
    assert_eq!(tag_of(m.header("from").unwrap()), Some("abc"));
    assert_eq!(
        m.list("record-route"),
        vec![
            "<sip:10.0.0.9;lr>",
            "<sip:10.0.0.8;lr;transport=udp>",
            "<sip:10.0.0.7;lr>"
        ]
    );
    assert_eq!(m.header("content-type"), Some("application/sdp"));
    assert_eq!(m.body, b"v=0\n");
}

#[test]
fn parses_requests_and_rejects_garbage() {
    let bye = b"BYE sip:livekit@127.0.0.1:5062 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nCall-ID: c\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";
    let m = Message::parse(bye).unwrap();
    assert_eq!(m.method(), Some("BYE"));
    assert!(Message::parse(b"HELLO\r\n\r\n").is_err());
    assert!(Message::parse(b"SIP/2.0 99 Odd\r\n\r\n").is_err());
    assert!(Message::parse(b"SIP/2.0 200 OK\r\nBad Header\r\n\r\n").is_err());
    assert!(Message::parse(b"SIP/2.0 200 OK\r\nContent-Length: 9\r\n\r\nabc").is_err());
    assert!(Message::parse(b"SIP/2.0 200 OK\r\nl: 1\r\nl: 2\r\n\r\nab").is_err());
    assert!(Message::parse(&vec![b'a'; MAX_MESSAGE_BYTES + 1]).is_err());
    assert!(Message::parse(b" folded-first\r\n\r\n").is_err());
}

#[test]
fn frames_streams() {
    assert_eq!(frame(b"\r\n\r\nINVITE"), Frame::Keepalive(4));
    assert_eq!(frame(b"SIP/2.0 200 OK\r\nl: 3\r\n"), Frame::Incomplete);
    assert_eq!(
        frame(b"SIP/2.0 200 OK\r\nl: 3\r\n\r\nab"),
        Frame::Incomplete
    );
    let msg = b"SIP/2.0 200 OK\r\nl: 3\r\n\r\nabcSIP/2.0";
    assert_eq!(frame(msg), Frame::Message(msg.len() - 7));
    assert_eq!(frame(b"SIP/2.0 200 OK\r\n\r\nnext"), Frame::Message(18));
    assert_eq!(frame(b"SIP/2.0 200 OK\r\nl: x\r\n\r\n"), Frame::Invalid);
    assert_eq!(frame(&vec![b'a'; MAX_MESSAGE_BYTES + 1]), Frame::Invalid);
}

#[test]
fn uris_and_name_addrs() {
    let na = name_addr("\"A, <b>\" <sip:x@h;lr>;tag=1").unwrap();
    assert_eq!(na.uri, "sip:x@h;lr");
    assert_eq!(param(na.params, "tag"), Some("1"));
    let na = name_addr("sip:x@h;tag=2").unwrap();
    assert_eq!(na.uri, "sip:x@h");
    assert_eq!(param(na.params, "TAG"), Some("2"));
    let u = SipUri::parse("sip:carrier;x@127.0.0.1:5070;lr;transport=udp").unwrap();
    assert_eq!(u.socket_addr(), Some("127.0.0.1:5070".parse().unwrap()));
    assert!(u.loose_route());
    let u = SipUri::parse("sip:[::1]:5080").unwrap();
    assert_eq!(u.socket_addr(), Some("[::1]:5080".parse().unwrap()));
    let u = SipUri::parse("sip:proxy.example.com").unwrap();
    assert_eq!(u.socket_addr(), None);
    assert!(!u.loose_route());
    assert_eq!(SipUri::parse("tel:+1555"), None);
    assert_eq!(escape_user("+9199 11#"), "+9199%2011%23");
}

#[test]
fn builds_responses() {
    let req = Message::parse(b"BYE sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1, SIP/2.0/UDP g;branch=z9hG4bK2\r\nf: <sip:c@d>;tag=9\r\nt: <sip:a@b>\r\ni: x\r\nCSeq: 7 BYE\r\n\r\n").unwrap();
    let out = response_to(&req, 200, "OK", "mine").finish(None, b"");
    let resp = Message::parse(&out).unwrap();
    assert_eq!(resp.status(), Some((200, "OK")));
    assert_eq!(resp.list("via").len(), 2);
    assert_eq!(tag_of(resp.header("to").unwrap()), Some("mine"));
    assert_eq!(resp.cseq(), Some((7, "BYE")));
    assert_eq!(resp.header("content-length"), Some("0"));
}
