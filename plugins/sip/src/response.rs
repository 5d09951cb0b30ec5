//! Responses the edge generates itself (100, 200 to CANCEL/OPTIONS, 4xx/5xx refusals)
//! and the RFC 3581 `received`/`rport` stamping of the sender's Via.

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};

use crate::hdr::{split_list, via};
use crate::message::SipMsg;
use crate::normalize::NormalizedMessage;
use crate::parse::Host;

/// The headers a response copies from its request, with the top Via stamped.
#[derive(Debug, Clone)]
pub struct ReplyBase {
    pub vias: Vec<String>,
    pub from: String,
    pub to: String,
    pub call_id: String,
    pub cseq: String,
}

impl ReplyBase {
    pub fn from_msg(msg: &SipMsg, src: SocketAddr) -> Self {
        let get = |n: &str| msg.header(n).unwrap_or_default().to_string();
        Self {
            vias: stamped_vias(msg.headers_named("Via").map(|h| h.value.as_str()), src),
            from: get("From"),
            to: get("To"),
            call_id: get("Call-ID"),
            cseq: get("CSeq"),
        }
    }

    /// For a rejected request: needs at least a usable top Via to route the answer.
    pub fn from_normalized(n: &NormalizedMessage, src: SocketAddr) -> Option<Self> {
        let vias: Vec<&str> = n
            .headers
            .iter()
            .filter(|h| h.name == "Via")
            .map(|h| h.value.as_str())
            .collect();
        let first = split_list(vias.first()?).ok()?;
        via(first.first()?).ok()?;
        let get = |name: &str| {
            n.headers
                .iter()
                .find(|h| h.name == name)
                .map(|h| h.value.clone())
                .unwrap_or_default()
        };
        Some(Self {
            vias: stamped_vias(vias.into_iter(), src),
            from: get("From"),
            to: get("To"),
            call_id: get("Call-ID"),
            cseq: get("CSeq"),
        })
    }

    pub fn has_to_tag(&self) -> bool {
        crate::hdr::name_addr(&self.to)
            .ok()
            .and_then(|n| n.tag().map(|_| ()))
            .is_some()
    }
}

/// Via header values with the first value stamped (received, rport) for `src`.
pub fn stamped_vias<'a>(values: impl Iterator<Item = &'a str>, src: SocketAddr) -> Vec<String> {
    let mut out: Vec<String> = values.map(str::to_string).collect();
    if let Some(first) = out.first_mut() {
        if let Ok(list) = split_list(first) {
            let mut parts: Vec<String> = list.iter().map(|s| s.to_string()).collect();
            if let Some(top) = parts.first_mut() {
                *top = stamp(top, src);
            }
            *first = parts.join(", ");
        }
    }
    out
}

/// Adds `received` when the sent-by host is not the source IP and fills a bare
/// `rport` with the source port (RFC 3261 §18.2.1, RFC 3581 §4).
pub fn stamp(value: &str, src: SocketAddr) -> String {
    let Ok(v) = via(value) else {
        return value.to_string();
    };
    let wants_rport = v.rport() == Some(None);
    let same_ip = matches!(v.host, Host::Ip(ip) if ip == src.ip());
    if same_ip && !wants_rport {
        return value.to_string();
    }
    use std::fmt::Write;
    // Written in place: `format!` per parameter allocated and copied each one.
    let mut s = String::with_capacity(value.len() + 48);
    let _ = write!(s, "SIP/2.0/{} {}", v.transport, v.host);
    if let Some(p) = v.port {
        let _ = write!(s, ":{p}");
    }
    let mut have_received = false;
    for (name, val) in &v.params {
        if name.eq_ignore_ascii_case("rport") && val.is_none() {
            let _ = write!(s, ";rport={}", src.port());
            continue;
        }
        if name.eq_ignore_ascii_case("received") {
            have_received = true;
            let _ = write!(s, ";received={}", src.ip());
            continue;
        }
        s.push(';');
        s.push_str(name);
        if let Some(val) = val {
            s.push('=');
            s.push_str(val);
        }
    }
    if !have_received && (!same_ip || wants_rport) {
        let _ = write!(s, ";received={}", src.ip());
    }
    s
}

/// Builds a response. `to_tag` is added to To when it has none (not for 100).
pub fn reply(
    base: &ReplyBase,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &[(&str, String)],
) -> Bytes {
    let mut b = BytesMut::with_capacity(512);
    b.put_slice(format!("SIP/2.0 {code} {reason}\r\n").as_bytes());
    for v in &base.vias {
        b.put_slice(format!("Via: {v}\r\n").as_bytes());
    }
    let mut line = |n: &str, v: &str| {
        if !v.is_empty() {
            b.put_slice(format!("{n}: {v}\r\n").as_bytes());
        }
    };
    line("From", &base.from);
    match to_tag {
        Some(tag) if code > 100 && !base.to.is_empty() && !base.has_to_tag() => {
            line("To", &format!("{};tag={tag}", base.to));
        }
        _ => line("To", &base.to),
    }
    line("Call-ID", &base.call_id);
    line("CSeq", &base.cseq);
    for (n, v) in extra {
        line(n, v);
    }
    b.put_slice(b"Content-Length: 0\r\n\r\n");
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_received_and_rport() {
        let src: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        assert_eq!(
            stamp("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx;rport", src),
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx;rport=40000;received=192.0.2.7"
        );
        let same = "SIP/2.0/UDP 192.0.2.7:40000;branch=z9hG4bKx";
        assert_eq!(stamp(same, src), same);
        assert_eq!(
            stamp("SIP/2.0/TCP host.example;branch=z9hG4bKy", src),
            "SIP/2.0/TCP host.example;branch=z9hG4bKy;received=192.0.2.7"
        );
    }
}
