//! Property tests over the normaliser, the stream framer and the parser: no input makes
//! them panic, equivalent spellings of a message decode to the same thing, and stream
//! framing does not depend on how the bytes are split.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use bytes::{Bytes, BytesMut};
use c2c_sip::codec::{decode, next_frame, normalize, uri, Decoded, Frame, StartLine};
use proptest::prelude::*;

const TORTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rfc4475");

fn corpus() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = std::fs::read_dir(TORTURE)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "dat"))
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    assert!(v.len() >= 49, "RFC 4475 corpus missing under {TORTURE}");
    v.push(invite("", ": ", "\r\n", false).into_bytes());
    v
}

/// A valid INVITE with a given header-name style, separator, line ending and folding.
fn invite(compact: &str, sep: &str, eol: &str, fold: bool) -> String {
    let (v, f, t, i, l) = if compact.is_empty() {
        ("Via", "From", "To", "Call-ID", "Content-Length")
    } else {
        ("v", "f", "t", "i", "l")
    };
    let to = if fold {
        format!("{eol}   <sip:9876543210@gw.example.com>")
    } else {
        "<sip:9876543210@gw.example.com>".to_string()
    };
    format!(
        "INVITE sip:9876543210@gw.example.com SIP/2.0{eol}\
         {v}{sep}SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc;rport{eol}\
         {f}{sep}\"LK\" <sip:+919999999999@10.0.0.1>;tag=77{eol}\
         {t}{sep}{to}{eol}\
         {i}{sep}prop-1@10.0.0.1{eol}\
         CSeq{sep}1 INVITE{eol}\
         Max-Forwards{sep}70{eol}\
         {l}{sep}4{eol}{eol}body"
    )
}

fn mutate(mut b: Vec<u8>, ops: &[(u8, usize, u8)]) -> Vec<u8> {
    for &(op, pos, byte) in ops {
        if b.is_empty() {
            b.push(byte);
            continue;
        }
        let p = pos % b.len();
        match op % 4 {
            0 => b[p] = byte,
            1 => b.insert(p, byte),
            2 => {
                b.remove(p);
            }
            _ => b.truncate(p),
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..20_000)) {
        let _ = normalize(Bytes::from(data.clone()));
        let _ = decode(Bytes::from(data.clone()));
        let mut buf = BytesMut::from(&data[..]);
        for _ in 0..64 {
            match next_frame(&mut buf) {
                Ok(Some(Frame::Message(m))) => { let _ = decode(m); }
                Ok(Some(Frame::Ping)) => {}
                _ => break,
            }
        }
    }

    #[test]
    fn mutated_corpus_never_panics(
        which in 0usize..64,
        ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..12),
    ) {
        let c = corpus();
        let m = mutate(c[which % c.len()].clone(), &ops);
        let _ = decode(Bytes::from(m.clone()));
        let mut buf = BytesMut::from(&m[..]);
        while let Ok(Some(f)) = next_frame(&mut buf) {
            if let Frame::Message(m) = f { let _ = decode(m); }
        }
    }

    #[test]
    fn spellings_of_one_invite_decode_alike(
        compact in prop::bool::ANY,
        sep in prop::sample::select(vec![": ", ":", " : ", "\t:  "]),
        eol in prop::sample::select(vec!["\r\n", "\n"]),
        fold in prop::bool::ANY,
        keepalives in 0usize..3,
    ) {
        let text = format!("{}{}", "\r\n".repeat(keepalives), invite(if compact { "c" } else { "" }, sep, eol, fold));
        match decode(Bytes::from(text)) {
            Decoded::Msg(m) => {
                let is_request = matches!(m.start, StartLine::Request { .. });
                prop_assert!(is_request);
                prop_assert_eq!(m.call_id.as_str(), "prop-1@10.0.0.1");
                prop_assert_eq!(m.cseq, 1);
                prop_assert_eq!(m.from_tag.as_deref(), Some("77"));
                prop_assert_eq!(m.via.branch(), Some("z9hG4bKabc"));
                prop_assert_eq!(m.max_forwards, Some(70));
                prop_assert_eq!(m.body(), b"body");
                prop_assert_eq!(m.header("To").map(|t| t.trim_start()), Some("<sip:9876543210@gw.example.com>"));
            }
            other => prop_assert!(false, "not decoded: {:?}", other),
        }
    }

    #[test]
    fn stream_framing_ignores_split_points(cuts in proptest::collection::vec(0usize..2000, 0..8)) {
        let one = invite("", ": ", "\r\n", false);
        let two = invite("c", ":", "\n", true);
        let stream = format!("\r\n\r\n{one}{two}\r\n{one}");
        let bytes = stream.as_bytes();
        let mut points: Vec<usize> = cuts.into_iter().map(|c| c % bytes.len()).collect();
        points.sort_unstable();
        points.push(bytes.len());
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        let mut last = 0;
        for p in points {
            buf.extend_from_slice(&bytes[last..p]);
            last = p;
            while let Ok(Some(f)) = next_frame(&mut buf) {
                if let Frame::Message(m) = f { frames.push(m); }
            }
        }
        prop_assert_eq!(frames.len(), 3);
        prop_assert_eq!(&frames[0][..], one.as_bytes());
        prop_assert_eq!(&frames[1][..], two.as_bytes());
        prop_assert_eq!(&frames[2][..], one.as_bytes());
    }

    #[test]
    fn uri_parser_never_panics_and_is_consistent(s in "[ -~]{0,80}") {
        if let Ok(u) = uri(&s) {
            if let Some(r) = u.user_range.clone() {
                prop_assert_eq!(Some(&s[r]), u.user.as_deref());
            }
        }
    }

    #[test]
    fn digit_uris_round_trip(user in "[0-9]{10,14}", port in 1u16..65535, tcp in prop::bool::ANY) {
        let s = format!("sip:{user}@10.1.2.3:{port}{}", if tcp { ";transport=tcp" } else { "" });
        let u = uri(&s).expect("valid URI");
        prop_assert_eq!(u.user.as_deref(), Some(user.as_str()));
        prop_assert_eq!(u.socket_addr(), Some(format!("10.1.2.3:{port}").parse().unwrap()));
        prop_assert_eq!(u.transport.as_deref(), if tcp { Some("tcp") } else { None });
    }
}
