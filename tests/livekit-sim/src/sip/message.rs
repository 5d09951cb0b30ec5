//! Hand-written SIP message parsing and building (RFC 3261 §7, §20, §25) — just
//! enough for a UAC, and forgiving where real proxies and carriers are sloppy:
//! LF-only line ends, folded header lines, whitespace before the colon, compact
//! header names (`v:`, `i:`, `f:`, `t:`, `m:`, `l:`, `c:`...), comma-joined
//! values, leading keep-alive CRLFs. Bodies are bytes framed by Content-Length.
//!
//! Everything is bounded: [`MAX_MESSAGE_BYTES`] per message, [`MAX_HEADERS`]
//! header fields.

use std::net::{IpAddr, SocketAddr};

/// Largest message accepted or framed (datagram or stream).
pub(crate) const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// Most header fields in one message.
pub(crate) const MAX_HEADERS: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ParseError {
    #[error("message larger than {MAX_MESSAGE_BYTES} bytes")]
    TooLarge,
    #[error("no end of headers / body shorter than Content-Length")]
    Truncated,
    #[error("header section is not UTF-8")]
    Encoding,
    #[error("bad start line")]
    StartLine,
    #[error("bad header line")]
    Header,
    #[error("more than {MAX_HEADERS} headers")]
    TooManyHeaders,
    #[error("bad Content-Length")]
    ContentLength,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StartLine {
    Request { method: String, uri: String },
    Response { code: u16, reason: String },
}

/// A parsed message. Header names are stored lower-case in their long form.
#[derive(Clone, Debug)]
pub(crate) struct Message {
    pub start: StartLine,
    headers: Vec<(String, String)>,
    /// The body (framed by Content-Length): an inbound INVITE's SDP offer.
    pub body: Vec<u8>,
}

/// Long form of a compact header name (RFC 3261 §7.3.3 and later RFCs).
fn expand_compact(name: &str) -> Option<&'static str> {
    Some(match name {
        "i" => "call-id",
        "m" => "contact",
        "e" => "content-encoding",
        "l" => "content-length",
        "c" => "content-type",
        "f" => "from",
        "s" => "subject",
        "k" => "supported",
        "t" => "to",
        "v" => "via",
        "o" => "event",
        "r" => "refer-to",
        "b" => "referred-by",
        "x" => "session-expires",
        "u" => "allow-events",
        _ => return None,
    })
}

fn canonical_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    match expand_compact(&lower) {
        Some(long) => long.to_owned(),
        None => lower,
    }
}

/// RFC 3261 `token` characters.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Finds the blank line ending the header section: `(end of headers, start of body)`.
fn head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some((i, i + 2));
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some((i, i + 3));
            }
        }
        i += 1;
    }
    None
}

fn skip_keepalive(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count()
}

fn parse_start_line(line: &str) -> Result<StartLine, ParseError> {
    let line = line.trim();
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        let rest = rest.trim_start();
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let code: u16 = code.parse().map_err(|_| ParseError::StartLine)?;
        if !(100..=699).contains(&code) {
            return Err(ParseError::StartLine);
        }
        return Ok(StartLine::Response {
            code,
            reason: reason.trim().to_owned(),
        });
    }
    let mut parts = line.split_ascii_whitespace();
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::StartLine);
    };
    if version != "SIP/2.0" || !method.bytes().all(is_token_byte) {
        return Err(ParseError::StartLine);
    }
    Ok(StartLine::Request {
        method: method.to_ascii_uppercase(),
        uri: uri.to_owned(),
    })
}

/// Parses the header lines of `head` (start line excluded), unfolding.
fn parse_header_lines<'a>(
    lines: impl Iterator<Item = &'a str>,
) -> Result<Vec<(String, String)>, ParseError> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            let (_, value) = headers.last_mut().ok_or(ParseError::Header)?;
            let more = line.trim();
            if !more.is_empty() {
                if !value.is_empty() {
                    value.push(' ');
                }
                value.push_str(more);
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let (name, value) = line.split_once(':').ok_or(ParseError::Header)?;
        let name = name.trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(ParseError::Header);
        }
        if headers.len() >= MAX_HEADERS {
            return Err(ParseError::TooManyHeaders);
        }
        headers.push((canonical_name(name), value.trim().to_owned()));
    }
    Ok(headers)
}

fn content_length(headers: &[(String, String)]) -> Result<Option<usize>, ParseError> {
    let mut found: Option<usize> = None;
    for (_, v) in headers.iter().filter(|(n, _)| n == "content-length") {
        let n: usize = v.trim().parse().map_err(|_| ParseError::ContentLength)?;
        if found.is_some_and(|f| f != n) {
            return Err(ParseError::ContentLength);
        }
        found = Some(n);
    }
    Ok(found)
}

impl Message {
    /// Parses one message (a datagram, or a frame cut by [`frame`]). Without
    /// Content-Length the body is the rest of the buffer (datagram rule).
    pub(crate) fn parse(buf: &[u8]) -> Result<Message, ParseError> {
        if buf.len() > MAX_MESSAGE_BYTES {
            return Err(ParseError::TooLarge);
        }
        let buf = &buf[skip_keepalive(buf)..];
        let (end, body_start) = head_end(buf).ok_or(ParseError::Truncated)?;
        let head = std::str::from_utf8(&buf[..end]).map_err(|_| ParseError::Encoding)?;
        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let start = parse_start_line(lines.next().ok_or(ParseError::StartLine)?)?;
        let headers = parse_header_lines(lines)?;
        let rest = &buf[body_start..];
        let body = match content_length(&headers)? {
            Some(n) => rest.get(..n).ok_or(ParseError::Truncated)?.to_vec(),
            None => rest.to_vec(),
        };
        Ok(Message {
            start,
            headers,
            body,
        })
    }

    /// The first value of header `name` (long form, any case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header field in order, names lower-case in their long form.
    pub(crate) fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// All values of a list header (`Via`, `Route`, `Record-Route`, `Contact`),
    /// in order, comma-joined values split.
    pub(crate) fn list(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| split_list(v))
            .collect()
    }

    pub(crate) fn call_id(&self) -> Option<&str> {
        self.header("call-id").filter(|v| !v.is_empty())
    }

    /// `(sequence number, method)` of CSeq.
    pub(crate) fn cseq(&self) -> Option<(u32, &str)> {
        let v = self.header("cseq")?;
        let mut parts = v.split_ascii_whitespace();
        let n = parts.next()?.parse().ok()?;
        Some((n, parts.next()?))
    }

    /// The `branch` of the topmost Via.
    pub(crate) fn top_branch(&self) -> Option<&str> {
        let via = *self.list("via").first()?;
        let (_, params) = via.split_once(';')?;
        param(params, "branch")
    }

    pub(crate) fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    pub(crate) fn status(&self) -> Option<(u16, &str)> {
        match &self.start {
            StartLine::Response { code, reason } => Some((*code, reason)),
            StartLine::Request { .. } => None,
        }
    }
}

/// How much of a stream buffer is the next message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// Not enough bytes yet.
    Incomplete,
    /// `n` keep-alive CR/LF bytes to discard.
    Keepalive(usize),
    /// A whole message of `n` bytes.
    Message(usize),
    /// Too large or unframeable: close the connection.
    Invalid,
}

/// Stream framing by Content-Length (RFC 3261 §18.3; a missing header means 0).
pub(crate) fn frame(buf: &[u8]) -> Frame {
    let skip = skip_keepalive(buf);
    if skip > 0 {
        return Frame::Keepalive(skip);
    }
    let Some((end, body_start)) = head_end(buf) else {
        return if buf.len() > MAX_MESSAGE_BYTES {
            Frame::Invalid
        } else {
            Frame::Incomplete
        };
    };
    let Ok(head) = std::str::from_utf8(&buf[..end]) else {
        return Frame::Invalid;
    };
    let lines = head
        .split('\n')
        .skip(1)
        .map(|l| l.strip_suffix('\r').unwrap_or(l));
    let Ok(headers) = parse_header_lines(lines) else {
        return Frame::Invalid;
    };
    let Ok(length) = content_length(&headers) else {
        return Frame::Invalid;
    };
    let total = body_start.saturating_add(length.unwrap_or(0));
    if total > MAX_MESSAGE_BYTES {
        Frame::Invalid
    } else if buf.len() < total {
        Frame::Incomplete
    } else {
        Frame::Message(total)
    }
}

/// Splits a header value at top-level commas (outside quotes and `<...>`).
pub(crate) fn split_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                let item = value[start..i].trim();
                if !item.is_empty() {
                    out.push(item);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    let item = value[start..].trim();
    if !item.is_empty() {
        out.push(item);
    }
    out
}

/// A `name-addr` / `addr-spec` header value: the URI and the header parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NameAddr<'a> {
    pub uri: &'a str,
    /// Everything after the URI (`;tag=...;...`), possibly empty.
    pub params: &'a str,
}

/// Parses `"Name" <sip:u@h;p>;tag=x` or `sip:u@h;tag=x` (where `;...` are header
/// parameters, RFC 3261 §20.10).
pub(crate) fn name_addr(value: &str) -> Option<NameAddr<'_>> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => {
                let rest = &value[i + 1..];
                let close = rest.find('>')?;
                return Some(NameAddr {
                    uri: rest[..close].trim(),
                    params: &rest[close + 1..],
                });
            }
            _ => {}
        }
    }
    let value = value.trim();
    let (uri, params) = match value.find(';') {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, ""),
    };
    (!uri.is_empty()).then_some(NameAddr { uri, params })
}

/// The value of parameter `key` in `;a=b;c` (flag parameters give `""`).
pub(crate) fn param<'a>(params: &'a str, key: &str) -> Option<&'a str> {
    params.split(';').find_map(|p| {
        let p = p.trim();
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(key)
            .then_some(v.trim().trim_matches('"'))
    })
}

/// The `tag` header parameter of a From/To value.
pub(crate) fn tag_of(value: &str) -> Option<&str> {
    param(name_addr(value)?.params, "tag").filter(|t| !t.is_empty())
}

/// The parts of a `sip:`/`sips:` URI routing needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SipUri {
    pub host: String,
    pub port: Option<u16>,
    /// URI parameters (`;lr;transport=tcp`), possibly empty.
    pub params: String,
}

impl SipUri {
    pub(crate) fn parse(uri: &str) -> Option<SipUri> {
        let uri = uri.trim();
        let (scheme, rest) = uri.split_once(':')?;
        if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
            return None;
        }
        let rest = rest.split('?').next().unwrap_or(rest);
        // The user part may hold ';' and ':' — the host starts after the last '@'.
        let hostpart = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        let (hostport, params) = match hostpart.find(';') {
            Some(i) => (&hostpart[..i], &hostpart[i..]),
            None => (hostpart, ""),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']')?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return None;
        }
        let port = match port {
            Some(p) => Some(p.parse().ok()?),
            None => None,
        };
        Some(SipUri {
            host: host.to_owned(),
            port,
            params: params.to_owned(),
        })
    }

    pub(crate) fn loose_route(&self) -> bool {
        param(&self.params, "lr").is_some()
    }

    /// The address to send to, when the host is an IP literal (default port 5060).
    pub(crate) fn socket_addr(&self) -> Option<SocketAddr> {
        let ip: IpAddr = self.host.parse().ok()?;
        Some(SocketAddr::new(ip, self.port.unwrap_or(5060)))
    }
}

/// `host` or `[v6]` for URIs, Via and SDP-free places.
pub(crate) fn host_literal(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// `host:port` with IPv6 brackets.
pub(crate) fn hostport(addr: SocketAddr) -> String {
    format!("{}:{}", host_literal(addr.ip()), addr.port())
}

/// Escapes a URI user part (RFC 3261 §25.1 `user`): phone numbers and `+` pass
/// unchanged, anything else is %-escaped.
pub(crate) fn escape_user(user: &str) -> String {
    const USER_UNRESERVED: &[u8] = b"-_.!~*'()&=+$,;?/";
    let mut out = String::with_capacity(user.len());
    for b in user.bytes() {
        if b.is_ascii_alphanumeric() || USER_UNRESERVED.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Builds a message line by line; [`Builder::finish`] adds Content-Length.
pub(crate) struct Builder {
    buf: String,
}

impl Builder {
    pub(crate) fn request(method: &str, uri: &str) -> Self {
        Self {
            buf: format!("{method} {uri} SIP/2.0\r\n"),
        }
    }

    pub(crate) fn response(code: u16, reason: &str) -> Self {
        Self {
            buf: format!("SIP/2.0 {code} {reason}\r\n"),
        }
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.buf.push_str(name);
        self.buf.push_str(": ");
        self.buf.push_str(value);
        self.buf.push_str("\r\n");
        self
    }

    pub(crate) fn headers<'a>(
        mut self,
        name: &str,
        values: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        for v in values {
            self = self.header(name, v);
        }
        self
    }

    /// Appends `Content-Type` (when given) and `Content-Length`, the blank line and the body.
    pub(crate) fn finish(self, content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
        let mut buf = self.buf;
        if let Some(ct) = content_type {
            buf.push_str("Content-Type: ");
            buf.push_str(ct);
            buf.push_str("\r\n");
        }
        buf.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut out = buf.into_bytes();
        out.extend_from_slice(body);
        out
    }
}

/// A response to `req` (RFC 3261 §8.2.6): Via, From, Call-ID, CSeq copied, To
/// copied with `to_tag` added when it has none (except for 100).
pub(crate) fn response_to(req: &Message, code: u16, reason: &str, to_tag: &str) -> Builder {
    let mut b = Builder::response(code, reason).headers("Via", req.list("via"));
    if let Some(from) = req.header("from") {
        b = b.header("From", from);
    }
    if let Some(to) = req.header("to") {
        if code == 100 || tag_of(to).is_some() {
            b = b.header("To", to);
        } else {
            b = b.header("To", &format!("{to};tag={to_tag}"));
        }
    }
    if let Some(call_id) = req.header("call-id") {
        b = b.header("Call-ID", call_id);
    }
    if let Some(cseq) = req.header("cseq") {
        b = b.header("CSeq", cseq);
    }
    b
}

#[cfg(test)]
mod tests;
