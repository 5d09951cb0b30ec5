//! Header-value grammar the edge acts on: Via, name-addr (From/To/Contact/Route),
//! CSeq, parameter lists and comma-separated lists. Tolerates the linear whitespace
//! RFC 3261 allows around `/`, `;` and `=` (RFC 4475 `wsinv`), rejects what it forbids.

use std::ops::Range;

use crate::error::{bad, ParseError};
use crate::normalize::is_token_byte;
use crate::parse::{host_port, Host};

pub type Params = Vec<(String, Option<String>)>;

/// Splits a header value at top-level commas (outside quotes and angle brackets).
pub fn split_list(value: &str) -> Result<Vec<&str>, ParseError> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut esc) = (false, false, false);
    let mut start = 0;
    // Bytes, not chars: every delimiter is ASCII and UTF-8 continuation bytes never are,
    // so slicing at these positions stays on char boundaries; decoding chars made this the
    // SIP edge's hottest function (3.6 % of its CPU). An escaped multi-byte char skips
    // only its first byte here, and its other bytes match nothing.
    for (i, &c) in value.as_bytes().iter().enumerate() {
        if esc {
            esc = false;
            continue;
        }
        match c {
            b'\\' if quoted => esc = true,
            b'"' if !angle => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b',' if !quoted && !angle => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted || angle {
        return Err(bad("unbalanced quotes or brackets"));
    }
    out.push(value[start..].trim());
    if out.iter().any(|s| s.is_empty()) {
        return Err(bad("empty list element"));
    }
    Ok(out)
}

/// One Via value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Protocol version (`2.0`; validation refuses others).
    pub version: String,
    /// Upper-cased transport (`UDP`, `TCP`, ...).
    pub transport: String,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
}

impl Via {
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        param(&self.params, name)
    }

    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }

    /// `Some(None)` for a bare `;rport` (RFC 3581 request), `Some(Some(p))` when filled.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.param("rport").map(|v| v.and_then(|p| p.parse().ok()))
    }

    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.to_string(),
        }
    }
}

pub fn param<'a>(params: &'a Params, name: &str) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_deref())
}

struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn ws(&mut self) {
        while matches!(self.s.as_bytes().get(self.i), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.s.as_bytes().get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.i;
        while self.s.as_bytes().get(self.i).is_some_and(|&b| f(b)) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
    /// A quoted string starting at the cursor; returns its inner text (escapes kept).
    fn quoted(&mut self) -> Result<&'a str, ParseError> {
        if !self.eat(b'"') {
            return Err(bad("expected quoted string"));
        }
        let start = self.i;
        let b = self.s.as_bytes();
        while self.i < b.len() {
            match b[self.i] {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    return Ok(&self.s[start..self.i - 1]);
                }
                _ => self.i += 1,
            }
        }
        Err(bad("unterminated quoted string"))
    }
    /// `*( SEMI param )` until the end of the input.
    fn params(&mut self) -> Result<Params, ParseError> {
        let mut out = Vec::new();
        loop {
            self.ws();
            if self.done() {
                return Ok(out);
            }
            if !self.eat(b';') {
                return Err(bad("junk after value"));
            }
            self.ws();
            let name = self.take_while(is_token_byte);
            if name.is_empty() {
                return Err(bad("empty parameter"));
            }
            self.ws();
            let value = if self.eat(b'=') {
                self.ws();
                let v = if self.s.as_bytes().get(self.i) == Some(&b'"') {
                    format!("\"{}\"", self.quoted()?)
                } else {
                    let v = self.take_while(|b| is_token_byte(b) || b"[]:".contains(&b));
                    if v.is_empty() {
                        return Err(bad("empty parameter value"));
                    }
                    v.to_string()
                };
                Some(v)
            } else {
                None
            };
            out.push((name.to_string(), value));
        }
    }
}

/// Parses one Via value (`SIP / 2.0 / UDP host:port ;branch=...`).
pub fn via(value: &str) -> Result<Via, ParseError> {
    let mut c = Cursor {
        s: value.trim(),
        i: 0,
    };
    let name = c.take_while(is_token_byte);
    c.ws();
    let slash1 = c.eat(b'/');
    c.ws();
    let version = c.take_while(is_token_byte);
    c.ws();
    let slash2 = c.eat(b'/');
    c.ws();
    let transport = c.take_while(is_token_byte);
    if !name.eq_ignore_ascii_case("SIP")
        || !slash1
        || !slash2
        || version.is_empty()
        || transport.is_empty()
    {
        return Err(bad("bad Via protocol"));
    }
    let before = c.i;
    c.ws();
    if c.i == before {
        return Err(bad("bad Via sent-by"));
    }
    let sent_by = c.take_while(|b| !matches!(b, b';' | b' ' | b'\t' | b','));
    let (host, port) = host_port(sent_by).map_err(|_| bad("bad Via sent-by"))?;
    let params = c.params()?;
    Ok(Via {
        version: version.to_string(),
        transport: transport.to_ascii_uppercase(),
        host,
        port,
        params,
    })
}

/// A `name-addr` or `addr-spec` with header parameters (From, To, Contact, Route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr<'a> {
    pub uri: &'a str,
    /// Byte range of the URI inside the parsed value (after trimming nothing: the range
    /// indexes the exact string passed in).
    pub uri_range: Range<usize>,
    pub params: Params,
    pub bracketed: bool,
}

impl NameAddr<'_> {
    pub fn tag(&self) -> Option<&str> {
        param(&self.params, "tag").flatten()
    }
}

/// Parses a name-addr (`"Display" <uri>;params`, `token token <uri>`) or an addr-spec
/// (`uri;params`, where the URI may not carry `?`, `,` or `;`).
pub fn name_addr(value: &str) -> Result<NameAddr<'_>, ParseError> {
    let lead = value.len() - value.trim_start().len();
    let s = value.trim_end();
    let mut c = Cursor { s, i: lead };
    let b = s.as_bytes();
    if b.get(c.i) == Some(&b'"') {
        c.quoted()?;
        c.ws();
        if b.get(c.i) != Some(&b'<') {
            return Err(bad("display name without <URI>"));
        }
    } else if let Some(lt) = s[c.i..].find('<') {
        let display = &s[c.i..c.i + lt];
        if !display
            .bytes()
            .all(|b| is_token_byte(b) || b == b' ' || b == b'\t')
        {
            return Err(bad("bad display name"));
        }
        c.i += lt;
    }
    if c.eat(b'<') {
        let start = c.i;
        let end = s[start..].find('>').ok_or(bad("unterminated <URI>"))? + start;
        let uri = &s[start..end];
        if uri.is_empty() || uri.bytes().any(|b| b <= b' ') {
            return Err(bad("bad URI in brackets"));
        }
        c.i = end + 1;
        let params = c.params()?;
        return Ok(NameAddr {
            uri,
            uri_range: start..end,
            params,
            bracketed: true,
        });
    }
    let start = c.i;
    let end = s[start..].find(';').map_or(s.len(), |i| start + i);
    let uri = s[start..end].trim_end();
    if uri.is_empty()
        || uri.bytes().any(|b| b <= b' ' || b",?\"<>".contains(&b))
        || !uri.contains(':')
    {
        return Err(bad("bad addr-spec"));
    }
    c.i = end;
    let params = c.params()?;
    Ok(NameAddr {
        uri,
        uri_range: start..start + uri.len(),
        params,
        bracketed: false,
    })
}

/// `CSeq: number method` with number < 2**31.
pub fn cseq(value: &str) -> Result<(u32, &str), ParseError> {
    let mut c = Cursor {
        s: value.trim(),
        i: 0,
    };
    let num = c.take_while(|b| b.is_ascii_digit());
    let before = c.i;
    c.ws();
    let spaced = c.i > before;
    let method = c.take_while(is_token_byte);
    if num.is_empty() || num.len() > 10 || !spaced || method.is_empty() || !c.done() {
        return Err(bad("bad CSeq"));
    }
    let n: u64 = num.parse().map_err(|_| bad("bad CSeq"))?;
    if n >= 1 << 31 {
        return Err(bad("CSeq number out of range"));
    }
    Ok((n as u32, method))
}

/// Bounded decimal (`Max-Forwards`, `Expires`).
pub fn small_number(value: &str, max: u64) -> Result<u64, ParseError> {
    let v = value.trim();
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("bad number"));
    }
    v.parse::<u64>()
        .ok()
        .filter(|n| *n <= max)
        .ok_or(bad("number out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_whitespace_and_lists() {
        let v = via("SIP / 2.0 /UDP 192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.branch(), Some("390skdjuw"));
        let list = split_list(
            "SIP  / 2.0  / TCP     spindle.example.com   ; branch  =   z9hG4bK9ikj8  , SIP / 2.0 / UDP 192.168.255.111 ; branch= z9hG4bK30239",
        )
        .unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(via(list[0]).unwrap().branch(), Some("z9hG4bK9ikj8"));
        assert_eq!(via(list[1]).unwrap().sent_by(), "192.168.255.111");
        let v = via("SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKx;rport").unwrap();
        assert_eq!(v.rport(), Some(None));
        assert!(split_list("SIP/2.0/UDP 192.0.2.15;;,;,,").is_err());
        assert!(via("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert_eq!(
            via("SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw")
                .unwrap()
                .version,
            "7.0"
        );
    }

    #[test]
    fn name_addrs() {
        let n =
            name_addr("\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com> ; tag = 98asjd8")
                .unwrap();
        assert_eq!(n.uri, "sip:jdrosen@example.com");
        assert_eq!(n.tag(), Some("98asjd8"));
        let v = "sip:caller@example.net;tag=134161461246";
        let n = name_addr(v).unwrap();
        assert_eq!(&v[n.uri_range.clone()], "sip:caller@example.net");
        assert!(name_addr("caller<sip:caller@example.com>;tag=323").is_ok());
        assert!(name_addr("\"Mr. J. User <sip:j.user@example.com>").is_err());
        assert!(name_addr("Bell, Alexander <sip:a.g.bell@example.com>;tag=43").is_err());
        assert!(name_addr("\"Watson, Thomas\" < sip:t.watson@example.org >").is_err());
        assert!(name_addr("sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_err());
        assert!(name_addr("\"Joe\" <sip:joe@example.org>;;;;").is_err());
    }

    #[test]
    fn cseq_and_numbers() {
        assert_eq!(cseq("0009 INVITE").unwrap(), (9, "INVITE"));
        assert!(cseq("36893488147419103232 REGISTER").is_err());
        assert!(cseq("8INVITE").is_err());
        assert_eq!(small_number("0068", 255).unwrap(), 68);
        assert!(small_number("300", 255).is_err());
        assert!(small_number("-1", 255).is_err());
    }
}
