//! A decoded SIP message (bytes kept), the decode pipeline, request serialisation and
//! byte-level response editing.

use std::borrow::Cow;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ParseError;
use crate::hdr::Via;
use crate::normalize::{normalize, Normalized, NormalizedMessage, RawHeader};
use crate::parse::{start_line, Method, StartLine};
use crate::validate;

/// A message that passed normalisation, start-line parsing and validation.
#[derive(Debug, Clone)]
pub struct SipMsg {
    pub raw: Bytes,
    pub headers: Vec<RawHeader>,
    pub body: Range<usize>,
    pub start: StartLine,
    /// First Via value.
    pub via: Via,
    pub call_id: String,
    pub cseq: u32,
    pub cseq_method: String,
    pub from_tag: Option<String>,
    pub to_tag: Option<String>,
    pub max_forwards: Option<u32>,
}

impl SipMsg {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a RawHeader> + 'a {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
    }

    pub fn body(&self) -> &[u8] {
        &self.raw[self.body.clone()]
    }

    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }
}

/// Outcome of decoding one buffer.
#[derive(Debug)]
pub enum Decoded {
    Keepalive,
    /// Unusable and unanswerable (responses are never answered).
    Drop(&'static str),
    Msg(Box<SipMsg>),
    /// A request that must be refused with the error's status.
    Reject(Box<NormalizedMessage>, ParseError),
}

/// Normalises, parses and validates one message.
pub fn decode(buf: Bytes) -> Decoded {
    let n = match normalize(buf) {
        Normalized::Keepalive => return Decoded::Keepalive,
        Normalized::Drop(why) => return Decoded::Drop(why),
        Normalized::Message(n) => n,
    };
    let response = n.is_response();
    let start = match start_line(&n.start_line) {
        Ok(s) => s,
        Err(_) if response => return Decoded::Drop("bad status line"),
        Err(e) => return Decoded::Reject(n, e),
    };
    if let Some(defect) = n.defect {
        return if response {
            Decoded::Drop(defect)
        } else {
            Decoded::Reject(n, ParseError::Malformed(defect))
        };
    }
    match validate::check(&n, &start) {
        Ok(facts) => Decoded::Msg(Box::new(SipMsg {
            raw: n.raw,
            headers: n.headers,
            body: n.body,
            start,
            via: facts.via,
            call_id: facts.call_id,
            cseq: facts.cseq,
            cseq_method: facts.cseq_method,
            from_tag: facts.from_tag,
            to_tag: facts.to_tag,
            max_forwards: facts.max_forwards,
        })),
        Err(_) if response => Decoded::Drop("invalid response"),
        Err(e) => Decoded::Reject(n, e),
    }
}

/// A request being built for forwarding: our own serialisation of the normalised
/// header lines (values are written back exactly as received).
#[derive(Debug, Clone)]
pub struct OutRequest {
    pub line: String,
    pub headers: Vec<(Cow<'static, str>, String)>,
    pub body: Bytes,
}

impl OutRequest {
    /// All headers except Content-Length (recomputed on output).
    pub fn from_msg(msg: &SipMsg, line: String) -> Self {
        Self {
            line,
            headers: msg
                .headers
                .iter()
                .filter(|h| h.name != "Content-Length")
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
            body: msg.raw.slice(msg.body.clone()),
        }
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.headers.retain(|(n, v)| keep(n, v));
    }

    pub fn push_front(&mut self, name: &'static str, value: String) {
        self.headers.insert(0, (Cow::Borrowed(name), value));
    }

    /// Replaces the first header of this name, or appends it.
    pub fn set(&mut self, name: &'static str, value: String) {
        match self
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(h) => h.1 = value,
            None => self.headers.push((Cow::Borrowed(name), value)),
        }
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut String> {
        self.headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    pub fn to_bytes(&self) -> Bytes {
        let cap = self.line.len()
            + self
                .headers
                .iter()
                .map(|(n, v)| n.len() + v.len() + 4)
                .sum::<usize>()
            + self.body.len()
            + 64;
        let mut b = BytesMut::with_capacity(cap);
        b.put_slice(self.line.as_bytes());
        b.put_slice(b"\r\n");
        for (n, v) in &self.headers {
            b.put_slice(n.as_bytes());
            b.put_slice(b": ");
            b.put_slice(v.as_bytes());
            b.put_slice(b"\r\n");
        }
        b.put_slice(format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes());
        b.put_slice(&self.body);
        b.freeze()
    }
}

/// Byte-level edits of a received message, applied to its raw bytes.
#[derive(Debug, Default)]
pub struct Edits {
    /// Remove the first value of the first Via header.
    pub pop_via: bool,
    /// Replace a header line (by canonical name, first occurrence) with this value.
    pub replace: Vec<(&'static str, String)>,
    /// Remove every `X-C2C-*` header (the gateway's own, never passed between sides).
    pub drop_c2c: bool,
    /// Replace the body (Content-Length follows it): an anchored call's SDP.
    pub body: Option<Bytes>,
}

/// Whether `name` is one of the gateway's own headers (`X-C2C-*`, any case).
pub fn is_c2c_header(name: &str) -> bool {
    name.len() >= 6 && name.as_bytes()[..6].eq_ignore_ascii_case(b"x-c2c-")
}

/// Applies [`Edits`] to `msg`'s raw bytes; everything else (start line and reason
/// phrase, other headers, body) is copied byte for byte.
pub fn edit(msg: &SipMsg, edits: &Edits) -> Bytes {
    let mut out = BytesMut::with_capacity(msg.raw.len() + 64);
    let mut pos = 0usize;
    let mut via_done = !edits.pop_via;
    let mut replaced: Vec<&str> = Vec::new();
    for h in &msg.headers {
        out.put_slice(&msg.raw[pos..h.span.start]);
        pos = h.span.end;
        if !via_done && h.name == "Via" {
            via_done = true;
            let rest = match crate::hdr::split_list(&h.value) {
                Ok(list) if list.len() > 1 => Some(list[1..].join(", ")),
                _ => None,
            };
            if let Some(rest) = rest {
                out.put_slice(format!("Via: {rest}\r\n").as_bytes());
            }
            continue;
        }
        if edits.drop_c2c && is_c2c_header(&h.name) {
            continue;
        }
        if let (Some(body), "Content-Length") = (&edits.body, &*h.name) {
            out.put_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
            continue;
        }
        let rep = edits
            .replace
            .iter()
            .find(|(n, _)| *n == h.name && !replaced.contains(n));
        if let Some((name, value)) = rep {
            replaced.push(name);
            out.put_slice(format!("{name}: {value}\r\n").as_bytes());
            continue;
        }
        out.put_slice(&msg.raw[h.span.clone()]);
    }
    // A datagram may omit Content-Length; a stream peer needs it.
    if !msg.headers.iter().any(|h| h.name == "Content-Length") {
        let len = edits.body.as_ref().map_or(msg.body.len(), Bytes::len);
        out.put_slice(format!("Content-Length: {len}\r\n").as_bytes());
    }
    match &edits.body {
        Some(body) => {
            out.put_slice(&msg.raw[pos..msg.body.start]);
            out.put_slice(body);
        }
        None => out.put_slice(&msg.raw[pos..]),
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESP: &str = "SIP/2.0 486 Busy Here\r\nv: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-c2c-1, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKa;rport=5061\r\nTo: <sip:99119876543210@x>;tag=9\r\nFrom: <sip:a@b>;tag=1\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";

    fn msg(s: &str) -> SipMsg {
        match decode(Bytes::copy_from_slice(s.as_bytes())) {
            Decoded::Msg(m) => *m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn edits_keep_reason_phrase_and_pop_joined_via() {
        let m = msg(RESP);
        let out = edit(
            &m,
            &Edits {
                pop_via: true,
                replace: vec![("To", "<sip:9876543210@x>;tag=9".into())],
                drop_c2c: false,
                body: None,
            },
        );
        let s = String::from_utf8(out.to_vec()).unwrap();
        assert!(s.starts_with(
            "SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKa;rport=5061\r\n"
        ));
        assert!(s.contains("To: <sip:9876543210@x>;tag=9\r\n"));
        assert!(!s.contains("c2c"));
        assert!(s.ends_with("Content-Length: 0\r\n\r\n"));
        let again = msg(&s);
        assert_eq!(again.via.branch(), Some("z9hG4bKa"));
    }

    #[test]
    fn edits_add_a_missing_content_length() {
        let m = msg("SIP/2.0 200 OK\nVia: SIP/2.0/UDP a;branch=z9hG4bK-c2c-1\nVia: SIP/2.0/UDP b;branch=z9hG4bKb\nFrom: <sip:a@b>;tag=1\nTo: <sip:c@d>;tag=2\nCall-ID: c\nCSeq: 1 INVITE\n\nv=0\n");
        let out = edit(
            &m,
            &Edits {
                pop_via: true,
                replace: vec![],
                drop_c2c: true,
                body: None,
            },
        );
        let s = String::from_utf8(out.to_vec()).unwrap();
        assert!(s.starts_with("SIP/2.0 200 OK\nVia: SIP/2.0/UDP b;"), "{s}");
        assert!(s.ends_with("Content-Length: 4\r\n\nv=0\n"), "{s}");
        assert!(matches!(decode(out), Decoded::Msg(_)));
    }

    #[test]
    fn request_serialisation_recomputes_length() {
        let m = msg("INVITE sip:a@10.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\nTo: <sip:c@d>\nCall-ID: x\nCSeq: 1 INVITE\nl: 4\n\nbody");
        let mut out = OutRequest::from_msg(&m, "INVITE sip:b@10.0.0.2 SIP/2.0".into());
        out.push_front("Via", "SIP/2.0/UDP me;branch=z9hG4bK2".into());
        let s = String::from_utf8(out.to_bytes().to_vec()).unwrap();
        assert!(s.starts_with("INVITE sip:b@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP me;branch=z9hG4bK2\r\nVia: SIP/2.0/UDP h"));
        assert!(s.ends_with("Content-Length: 4\r\n\r\nbody"));
    }
}
