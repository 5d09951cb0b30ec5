//! Start lines and URIs: the only module that uses `rsip`.
//!
//! rsip 0.4 is frozen and lenient in the wrong places (it accepts trailing junk after a
//! URI, reads `j.user@host` as a host, cannot do IPv6, matches methods without regard
//! to case), so every input is first checked structurally here and rsip is asked only
//! for what it does reliably: known methods and `host[:port];params`. Replacing rsip
//! means rewriting this file only; callers see the crate's own [`Method`],
//! [`StartLine`] and [`SipUri`].

use std::convert::TryFrom;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::str::FromStr;

use crate::error::{bad, ParseError};
use crate::normalize::is_token_byte;

/// Longest Request-URI accepted.
pub const MAX_URI: usize = 512;

/// A request method; methods are case-sensitive (RFC 3261 §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Other(String),
}

impl Method {
    pub fn parse(token: &str) -> Result<Method, ParseError> {
        if token.is_empty() || !token.bytes().all(is_token_byte) {
            return Err(bad("invalid method"));
        }
        // rsip matches case-insensitively; SIP does not.
        let known = rsip::Method::from_str(token)
            .ok()
            .filter(|m| m.to_string() == token);
        Ok(match known {
            Some(rsip::Method::Invite) => Method::Invite,
            Some(rsip::Method::Ack) => Method::Ack,
            Some(rsip::Method::Bye) => Method::Bye,
            Some(rsip::Method::Cancel) => Method::Cancel,
            Some(rsip::Method::Options) => Method::Options,
            Some(rsip::Method::Register) => Method::Register,
            _ => Method::Other(token.to_string()),
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Other(s) => s,
        }
    }
}

/// The first line of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request { method: Method, uri: String },
    Response { code: u16, reason: String },
}

/// Parses a request or status line, strictly: single spaces, `SIP/2.0`, no trailing
/// whitespace, a Request-URI without brackets or escaped headers.
pub fn start_line(line: &str) -> Result<StartLine, ParseError> {
    if let Some(rest) = line.strip_prefix("SIP/") {
        let rest = rest.strip_prefix("2.0 ").ok_or(bad("bad status line"))?;
        let digits = rest.get(..3).ok_or(bad("bad status code"))?;
        let after = &rest[3..];
        if !digits.bytes().all(|b| b.is_ascii_digit())
            || !(after.is_empty() || after.starts_with(' '))
        {
            return Err(bad("bad status code"));
        }
        let code: u16 = digits.parse().map_err(|_| bad("bad status code"))?;
        if !(100..=699).contains(&code) {
            return Err(bad("bad status code"));
        }
        return Ok(StartLine::Response {
            code,
            reason: after.trim_start_matches(' ').to_string(),
        });
    }
    let mut parts = line.split(' ');
    let (Some(m), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("bad request line"));
    };
    if m.is_empty() || uri.is_empty() || version.is_empty() {
        return Err(bad("bad request line"));
    }
    let method = Method::parse(m)?;
    if version != "SIP/2.0" {
        let v = version
            .strip_prefix("SIP/")
            .ok_or(bad("bad request line"))?;
        return Err(match v.split_once('.') {
            Some((a, b)) if is_digits(a) && is_digits(b) => ParseError::Version,
            _ => bad("bad request line"),
        });
    }
    if uri.len() > MAX_URI {
        return Err(bad("Request-URI too long"));
    }
    let scheme = request_uri_scheme(uri)?;
    if matches!(scheme, UriScheme::Sip | UriScheme::Sips) {
        let u = self::uri(uri)?;
        if u.has_headers {
            return Err(bad("headers in Request-URI"));
        }
    }
    Ok(StartLine::Request {
        method,
        uri: uri.to_string(),
    })
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn request_uri_scheme(uri: &str) -> Result<UriScheme, ParseError> {
    if uri
        .bytes()
        .any(|b| b <= b' ' || b == 0x7f || b"<>\"".contains(&b))
    {
        return Err(bad("bad Request-URI"));
    }
    let (scheme, _) = uri.split_once(':').ok_or(bad("bad Request-URI"))?;
    let ok = scheme.bytes().enumerate().all(|(i, b)| {
        b.is_ascii_alphabetic() || (i > 0 && (b.is_ascii_digit() || b"+-.".contains(&b)))
    });
    if scheme.is_empty() || !ok {
        return Err(bad("bad Request-URI"));
    }
    match UriScheme::of(scheme) {
        UriScheme::Other => Err(ParseError::Scheme),
        s => Ok(s),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriScheme {
    Sip,
    Sips,
    Tel,
    Other,
}

impl UriScheme {
    fn of(s: &str) -> UriScheme {
        if s.eq_ignore_ascii_case("sip") {
            UriScheme::Sip
        } else if s.eq_ignore_ascii_case("sips") {
            UriScheme::Sips
        } else if s.eq_ignore_ascii_case("tel") {
            UriScheme::Tel
        } else {
            UriScheme::Other
        }
    }
}

/// Host part of a SIP URI or Via sent-by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    Name(String),
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

/// A parsed `sip:`/`sips:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub scheme: UriScheme,
    /// User part as written (still %-escaped).
    pub user: Option<String>,
    /// Byte range of the user part in the parsed string.
    pub user_range: Option<Range<usize>>,
    pub host: Host,
    pub port: Option<u16>,
    /// Lower-cased `transport=` parameter.
    pub transport: Option<String>,
    pub lr: bool,
    /// Parameters as written, including the leading `;` (empty if none).
    pub params: String,
    pub has_headers: bool,
}

impl SipUri {
    /// The address to send to when the host is an IP literal.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self.host {
            Host::Ip(ip) => Some(SocketAddr::new(ip, self.port.unwrap_or(5060))),
            Host::Name(_) => None,
        }
    }

    /// `host[:port]` as written for a URI.
    pub fn host_port(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.to_string(),
        }
    }
}

/// Parses a `sip:`/`sips:` URI. Other schemes are refused.
pub fn uri(s: &str) -> Result<SipUri, ParseError> {
    if s.is_empty()
        || s.len() > MAX_URI
        || s.bytes()
            .any(|b| b <= b' ' || b == 0x7f || b"<>\"".contains(&b))
    {
        return Err(bad("bad URI"));
    }
    let (scheme, rest) = s.split_once(':').ok_or(bad("bad URI"))?;
    let scheme = UriScheme::of(scheme);
    if !matches!(scheme, UriScheme::Sip | UriScheme::Sips) {
        return Err(ParseError::Scheme);
    }
    let offset = s.len() - rest.len();
    let (user, user_range, hostpart) = match rest.find('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or(userinfo);
            if user.is_empty() {
                return Err(bad("empty URI user"));
            }
            (
                Some(user.to_string()),
                Some(offset..offset + user.len()),
                &rest[at + 1..],
            )
        }
        None => (None, None, rest),
    };
    let (hostpart, has_headers) = match hostpart.split_once('?') {
        Some((h, _)) => (h, true),
        None => (hostpart, false),
    };
    let split = hostpart.find(';').unwrap_or(hostpart.len());
    let (hostport, params) = hostpart.split_at(split);
    let (host, port) = host_port(hostport)?;
    let mut transport = None;
    let mut lr = false;
    if !params.is_empty() {
        for p in params[1..].split(';') {
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (p, None),
            };
            if name.is_empty() || value == Some("") {
                return Err(bad("empty URI parameter"));
            }
            if name.eq_ignore_ascii_case("transport") {
                transport = value.map(str::to_ascii_lowercase);
            } else if name.eq_ignore_ascii_case("lr") {
                lr = true;
            }
        }
    }
    // Cross-check host names with rsip. Not IP literals: std's parsers are strict
    // (four decimal octets, no leading zeros; `[v6]`), and rsip's parse of every URI
    // was the SIP edge's largest cost (11 % of its CPU, most of it rsip formatting the
    // errors of the alternatives it tries). `ipv4_hosts_agree_with_rsip` pins that
    // rsip accepts exactly the IPv4 hosts and ports this parser does.
    if matches!(host, Host::Name(_)) {
        let r = rsip::Uri::try_from(format!("sip:{hostport}").as_str())
            .map_err(|_| bad("bad URI host"))?;
        let same_host = r.host().to_string().eq_ignore_ascii_case(&host.to_string());
        let same_port = r.port().map(|p| *p.value()) == port;
        if !same_host || !same_port {
            return Err(bad("bad URI host"));
        }
    }
    Ok(SipUri {
        scheme,
        user,
        user_range,
        host,
        port,
        transport,
        lr,
        params: params.to_string(),
        has_headers,
    })
}

/// `host[:port]` with host an IPv4, `[IPv6]` or DNS name.
pub fn host_port(s: &str) -> Result<(Host, Option<u16>), ParseError> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or(bad("bad host"))?;
        let ip: IpAddr = addr.parse().map_err(|_| bad("bad host"))?;
        if !ip.is_ipv6() {
            return Err(bad("bad host"));
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(bad("bad port"))?),
        };
        (Host::Ip(ip), port)
    } else {
        let (h, p) = match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        let host = match h.parse::<std::net::Ipv4Addr>() {
            Ok(v4) => Host::Ip(IpAddr::V4(v4)),
            Err(_) => {
                let valid = !h.is_empty()
                    && h.len() <= 255
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                    && !h.starts_with(['-', '.']);
                if !valid {
                    return Err(bad("bad host"));
                }
                Host::Name(h.to_ascii_lowercase())
            }
        };
        (host, p)
    };
    let port = match port {
        None => None,
        Some(p) if is_digits(p) && p.len() <= 5 => {
            Some(p.parse::<u16>().map_err(|_| bad("bad port"))?)
        }
        Some(_) => return Err(bad("bad port")),
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Why IPv4 hosts skip the rsip cross-check: wherever this parser takes a host as
    /// IPv4, rsip parses the same host and port.
    #[test]
    fn ipv4_hosts_agree_with_rsip() {
        let cases = [
            "1.2.3.4",
            "1.2.3.4:5060",
            "0.0.0.0",
            "255.255.255.255:65535",
            "127.0.0.1:0",
            "10.0.0.1:00005",
            "192.0.2.15:5061;transport=tcp",
            "01.2.3.4",
            "1.2.3.4.5",
            "1.2.3",
            "256.1.1.1",
            "1.2.3.4:65536",
            "1.2.3.4:",
            "1.2.3.4:x",
            "1.2.3.4:5060:5060",
        ];
        let mut checked = 0;
        for hp in cases {
            let Ok(ours) = uri(&format!("sip:u@{hp}")) else {
                continue;
            };
            let Host::Ip(IpAddr::V4(v4)) = ours.host else {
                continue;
            };
            checked += 1;
            let theirs = rsip::Uri::try_from(format!("sip:u@{hp}").as_str())
                .unwrap_or_else(|e| panic!("rsip refuses {hp} that we take as IPv4: {e}"));
            assert_eq!(theirs.host().to_string(), v4.to_string(), "{hp}");
            assert_eq!(theirs.port().map(|p| *p.value()), ours.port, "{hp}");
        }
        assert_eq!(checked, 7, "the IPv4 forms this parser takes");
    }

    #[test]
    fn request_lines() {
        let s =
            start_line("INVITE sip:99119876543210@10.0.0.1:5060;transport=tcp SIP/2.0").unwrap();
        assert!(matches!(
            s,
            StartLine::Request {
                method: Method::Invite,
                ..
            }
        ));
        assert!(matches!(
            start_line("invite sip:a@b SIP/2.0").unwrap(),
            StartLine::Request {
                method: Method::Other(_),
                ..
            }
        ));
        for bad_line in [
            "INVITE  sip:a@b  SIP/2.0",
            "OPTIONS sip:a@b SIP/2.0  ",
            "INVITE <sip:a@b> SIP/2.0",
            "INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0",
            "INVITE sip:a@b; lr SIP/2.0",
        ] {
            assert_eq!(
                start_line(bad_line).map_err(|e| e.status().0),
                Err(400),
                "{bad_line}"
            );
        }
        assert_eq!(
            start_line("OPTIONS sip:a@b SIP/7.0"),
            Err(ParseError::Version)
        );
        assert_eq!(
            start_line("OPTIONS nobody:opaque SIP/2.0"),
            Err(ParseError::Scheme)
        );
        assert!(start_line("OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0").is_ok());
    }

    #[test]
    fn status_lines() {
        assert_eq!(
            start_line("SIP/2.0 486 Busy Here").unwrap(),
            StartLine::Response {
                code: 486,
                reason: "Busy Here".into()
            }
        );
        assert!(matches!(
            start_line("SIP/2.0 100 ").unwrap(),
            StartLine::Response { code: 100, .. }
        ));
        assert!(start_line("SIP/2.0 4294967301 better not break the receiver").is_err());
        assert!(start_line("SIP/2.0 099 Low").is_err());
    }

    #[test]
    fn uris() {
        let u = uri("sip:9876543210@127.0.0.1:5080;transport=TCP;lr").unwrap();
        assert_eq!(u.user.as_deref(), Some("9876543210"));
        assert_eq!(u.socket_addr(), Some("127.0.0.1:5080".parse().unwrap()));
        assert_eq!(u.transport.as_deref(), Some("tcp"));
        assert!(u.lr);
        let u = uri("sip:j.user@example.com").unwrap();
        assert_eq!(u.user.as_deref(), Some("j.user"));
        assert_eq!(u.host, Host::Name("example.com".into()));
        let u = uri("sips:[2001:db8::1]:5061").unwrap();
        assert_eq!(u.socket_addr(), Some("[2001:db8::1]:5061".parse().unwrap()));
        assert!(uri("sip:user@exa mple.com").is_err());
        assert!(uri("sip:user@host:99999").is_err());
        assert!(uri("sip:user@host;;lr").is_err());
        assert_eq!(uri("tel:+1234"), Err(ParseError::Scheme));
    }
}
