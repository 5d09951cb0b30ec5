//! Raw-bytes normaliser in front of the parser.
//!
//! Turns one message's bytes (a datagram, or one frame cut by [`crate::framing`]) into
//! a start line, unfolded header lines with canonical names, and a body range, keeping
//! the exact bytes and each header's span so responses can be relayed by editing bytes.
//! Handles what rsip 0.4 cannot: keepalive CRLFs, LF-only lines, folded headers,
//! whitespace before the colon, compact names, and Content-Length framing (several or
//! non-numeric values and a length beyond the datagram are defects, extra bytes after
//! the body are discarded). Nothing here allocates more than the 16 KiB input.

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;

/// Largest message accepted on any transport.
pub const MAX_MESSAGE: usize = 16 * 1024;
/// Largest number of header lines in one message.
pub const MAX_HEADERS: usize = 128;

/// One header line after unfolding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawHeader {
    /// Canonical name (`Via`, `Call-ID`, ...); unknown names as received.
    pub name: Cow<'static, str>,
    /// Value with folding replaced by one space and outer whitespace trimmed.
    pub value: String,
    /// Bytes of the whole line(s) in [`NormalizedMessage::raw`], including the line end.
    pub span: Range<usize>,
}

/// A message split into its parts, not yet interpreted.
#[derive(Debug, Clone)]
pub struct NormalizedMessage {
    /// The exact bytes of this message: start line through the end of the body.
    pub raw: Bytes,
    pub start_line: String,
    pub headers: Vec<RawHeader>,
    pub body: Range<usize>,
    /// First structural problem found; the message must be refused (400) or dropped.
    pub defect: Option<&'static str>,
}

impl NormalizedMessage {
    pub fn is_response(&self) -> bool {
        self.start_line.starts_with("SIP/")
    }
}

/// What a buffer turned out to be.
#[derive(Debug, Clone)]
pub enum Normalized {
    /// Only CR/LF/whitespace: a keepalive (RFC 5626 double-CRLF ping on streams).
    Keepalive,
    /// Unusable; no response can be formed.
    Drop(&'static str),
    Message(Box<NormalizedMessage>),
}

/// Normalises one message. `buf` may carry leading keepalive CRLFs and, for datagrams,
/// trailing bytes beyond Content-Length (ignored).
pub fn normalize(buf: Bytes) -> Normalized {
    if buf.len() > MAX_MESSAGE {
        return Normalized::Drop("message too large");
    }
    let start = buf
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
        .unwrap_or(buf.len());
    if start == buf.len() {
        return Normalized::Keepalive;
    }
    let msg = buf.slice(start..);
    let mut defect: Option<&'static str> = None;
    let mut note = |d: &'static str| {
        if defect.is_none() {
            defect = Some(d);
        }
    };

    // Split into lines until the empty line.
    let mut pos = 0usize;
    let mut start_line: Option<String> = None;
    // A call's messages carry 8 to 16 header lines: one allocation, not four.
    let mut headers: Vec<RawHeader> = Vec::with_capacity(16);
    let mut body_start: Option<usize> = None;
    while pos < msg.len() {
        let (line_end, next) = match msg[pos..].iter().position(|&b| b == b'\n') {
            Some(i) => (pos + i, pos + i + 1),
            None => (msg.len(), msg.len()),
        };
        let mut line = &msg[pos..line_end];
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        if line.is_empty() {
            body_start = Some(next);
            break;
        }
        if line.contains(&b'\r') {
            note("bare CR inside a line");
        }
        if start_line.is_none() {
            match std::str::from_utf8(line) {
                Ok(s) if !s.bytes().any(|b| b < 0x20 || b == 0x7f) => {
                    start_line = Some(s.to_string())
                }
                _ => return Normalized::Drop("start line is not printable text"),
            }
        } else if matches!(line[0], b' ' | b'\t') {
            match headers.last_mut() {
                Some(h) => {
                    let cont = String::from_utf8_lossy(line);
                    let cont = cont.trim_matches([' ', '\t']);
                    if !cont.is_empty() {
                        if !h.value.is_empty() {
                            h.value.push(' ');
                        }
                        h.value.push_str(cont);
                    }
                    h.span.end = next;
                }
                None => note("continuation line before the first header"),
            }
        } else {
            if headers.len() >= MAX_HEADERS {
                return Normalized::Drop("too many header lines");
            }
            match header_line(line) {
                Ok((name, value)) => headers.push(RawHeader {
                    name,
                    value,
                    span: pos..next,
                }),
                Err(d) => note(d),
            }
        }
        pos = next;
    }
    let Some(start_line) = start_line else {
        return Normalized::Drop("no start line");
    };
    let body_start = match body_start {
        Some(b) => b,
        None => {
            note("header section not terminated by an empty line");
            msg.len()
        }
    };
    if headers
        .iter()
        .any(|h| std::str::from_utf8(h.value.as_bytes()).is_err())
    {
        note("header value is not UTF-8");
    }

    // Content-Length framing.
    let avail = msg.len() - body_start;
    let mut body_len = avail;
    let mut lengths = headers.iter().filter(|h| h.name == "Content-Length");
    if let Some(first) = lengths.next() {
        if lengths.next().is_some() {
            note("more than one Content-Length");
        }
        match parse_len(&first.value) {
            Some(n) if n <= avail => body_len = n,
            Some(_) => note("Content-Length exceeds the message"),
            None => note("invalid Content-Length"),
        }
    }
    let end = body_start + body_len;
    Normalized::Message(Box::new(NormalizedMessage {
        raw: msg.slice(..end),
        start_line,
        headers,
        body: body_start..end,
        defect,
    }))
}

/// `Content-Length` as digits only (no sign), bounded by [`MAX_MESSAGE`].
pub fn parse_len(v: &str) -> Option<usize> {
    let v = v.trim();
    if v.is_empty() || v.len() > 6 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<usize>().ok().filter(|n| *n <= MAX_MESSAGE)
}

fn header_line(line: &[u8]) -> Result<(Cow<'static, str>, String), &'static str> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or("header line without a colon")?;
    let name = std::str::from_utf8(&line[..colon])
        .map_err(|_| "header name is not text")?
        .trim_end_matches([' ', '\t']);
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err("invalid header name");
    }
    let raw = &line[colon + 1..];
    // Valid UTF-8 is the rule: `from_utf8` checks it faster than the lossy decoder,
    // which stays for the rest (the message is then refused for it).
    let value = match std::str::from_utf8(raw) {
        Ok(s) => s.trim_matches([' ', '\t']).to_owned(),
        Err(_) => String::from_utf8_lossy(raw)
            .trim_matches([' ', '\t'])
            .to_string(),
    };
    Ok((canonical_name(name), value))
}

/// RFC 3261 `token` characters.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

const KNOWN: &[&str] = &[
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
    "Content-Encoding",
    "Route",
    "Record-Route",
    "Proxy-Require",
    "Require",
    "Supported",
    "Unsupported",
    "User-Agent",
    "Server",
    "Allow",
    "Expires",
    "Date",
    "Subject",
    "Warning",
    "Retry-After",
    "Event",
    "Refer-To",
    "Referred-By",
    "Allow-Events",
    "Session-Expires",
    "Accept-Contact",
    "Reject-Contact",
    "Request-Disposition",
    "Identity",
    "Identity-Info",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "WWW-Authenticate",
    "Authorization",
];

/// Expands compact forms (RFC 3261 §7.3.3 and extensions) and fixes the case of known
/// names; other names keep their spelling.
pub fn canonical_name(name: &str) -> Cow<'static, str> {
    if name.len() == 1 {
        let full = match name.as_bytes()[0].to_ascii_lowercase() {
            b'v' => Some("Via"),
            b'i' => Some("Call-ID"),
            b'f' => Some("From"),
            b't' => Some("To"),
            b'm' => Some("Contact"),
            b'l' => Some("Content-Length"),
            b'k' => Some("Supported"),
            b's' => Some("Subject"),
            b'c' => Some("Content-Type"),
            b'e' => Some("Content-Encoding"),
            b'o' => Some("Event"),
            b'r' => Some("Refer-To"),
            b'b' => Some("Referred-By"),
            b'u' => Some("Allow-Events"),
            b'x' => Some("Session-Expires"),
            b'a' => Some("Accept-Contact"),
            b'j' => Some("Reject-Contact"),
            b'd' => Some("Request-Disposition"),
            b'y' => Some("Identity"),
            b'n' => Some("Identity-Info"),
            _ => None,
        };
        if let Some(f) = full {
            return Cow::Borrowed(f);
        }
    }
    match KNOWN.iter().find(|k| k.eq_ignore_ascii_case(name)) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(name.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(s: &str) -> NormalizedMessage {
        match normalize(Bytes::copy_from_slice(s.as_bytes())) {
            Normalized::Message(m) => *m,
            other => panic!("not a message: {other:?}"),
        }
    }

    #[test]
    fn keepalives_and_garbage() {
        assert!(matches!(
            normalize(Bytes::from_static(b"\r\n\r\n")),
            Normalized::Keepalive
        ));
        assert!(matches!(
            normalize(Bytes::from_static(b"\x00\x01\r\n\r\n")),
            Normalized::Drop(_)
        ));
        assert!(matches!(
            normalize(Bytes::from(vec![b'A'; MAX_MESSAGE + 1])),
            Normalized::Drop(_)
        ));
    }

    #[test]
    fn unfolds_lf_only_compact_and_space_before_colon() {
        let m = msg("\r\nINVITE sip:a@b SIP/2.0\nv : SIP/2.0/UDP h;branch=z9hG4bK1\nTo:\n  <sip:x@y>\n ;tag=1\ni: abc\nl: 3\n\nxyzEXTRA");
        assert_eq!(m.start_line, "INVITE sip:a@b SIP/2.0");
        assert_eq!(m.headers[0].name, "Via");
        assert_eq!(m.headers[1].name, "To");
        assert_eq!(m.headers[1].value, "<sip:x@y> ;tag=1");
        assert_eq!(m.headers[2].name, "Call-ID");
        assert_eq!(&m.raw[m.body.clone()], b"xyz");
        assert!(m.defect.is_none());
        // spans cover the folded lines exactly
        assert_eq!(
            &m.raw[m.headers[1].span.clone()],
            b"To:\n  <sip:x@y>\n ;tag=1\n"
        );
    }

    #[test]
    fn content_length_defects() {
        assert!(msg("OPTIONS sip:a SIP/2.0\r\nContent-Length: 9\r\n\r\nab")
            .defect
            .is_some());
        assert!(msg("OPTIONS sip:a SIP/2.0\r\nl: -1\r\n\r\n")
            .defect
            .is_some());
        assert!(
            msg("OPTIONS sip:a SIP/2.0\r\nl: 0\r\nContent-Length: 0\r\n\r\n")
                .defect
                .is_some()
        );
        assert!(msg("OPTIONS sip:a SIP/2.0\r\nl: 0\r\n").defect.is_some());
        let ok = msg("OPTIONS sip:a SIP/2.0\r\nl: 0\r\n\r\n");
        assert!(ok.defect.is_none());
        assert!(ok.body.is_empty());
    }
}
