//! The shapes of values that several sections share: ids, URLs, CIDRs, E.164 numbers
//! and SIP URIs. Pure predicates, no error reporting.

pub(super) fn valid_cidr(s: &str) -> bool {
    let (ip, prefix) = match s.split_once('/') {
        Some((ip, p)) => (ip, Some(p)),
        None => (s, None),
    };
    match ip.parse::<std::net::IpAddr>() {
        Ok(addr) => {
            let max = if addr.is_ipv4() { 32 } else { 128 };
            prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|p| p <= max))
        }
        Err(_) => false,
    }
}

/// A tenant id, trunk label or key id: 1-63 lowercase letters, digits and dashes, not
/// starting with a dash (ids name files and appear in URLs).
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
}

pub(super) fn is_http_url(s: &str) -> bool {
    url::Url::parse(s)
        .map(|u| matches!(u.scheme(), "http" | "https" | "ws" | "wss") && u.host().is_some())
        .unwrap_or(false)
}

/// E.164: `+`, a non-zero country code digit, 8 to 15 digits in all.
pub fn is_e164(s: &str) -> bool {
    let Some(d) = s.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
}

pub(super) fn valid_sip_uri(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("sip:") else {
        return false;
    };
    let hostport = rest.split(';').next().unwrap_or("");
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (hostport, None),
    };
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
}
