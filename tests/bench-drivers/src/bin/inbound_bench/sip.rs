//! The carrier's SIP messages: what a UAC sends for one call (INVITE, CANCEL, ACK, BYE)
//! and the little of a response it reads (status, CSeq, To, Contact, Record-Route).
//! Plain UDP on loopback, no SIP stack: the benchmark writes exactly the messages a
//! carrier's SBC would, as `gateway/tests/scenarios/inbound_*.xml` do for sipp.

use std::net::SocketAddr;

/// The number customers call (policies/tenants/acme.toml, `[[inbound.numbers]]`).
pub const DID: &str = "+918045678901";

/// What one call's messages share.
pub struct Dialog {
    /// The call's index in the run: Call-ID, From tag, branches and caller number are
    /// derived from it, so every message of the run maps back to its call.
    pub n: u64,
    pub local: SocketAddr,
    pub edge: SocketAddr,
    /// `-<pid>`: calls of two runs never share a Call-ID.
    pub run: u32,
}

/// The caller number of call `n`: an Indian mobile number, unique per call, which the
/// agent's `incoming` event carries back as `from`.
pub fn caller(n: u64) -> String {
    format!("+9198{:08}", n % 100_000_000)
}

/// Call `n` from an `incoming` event's `from`.
pub fn call_of_caller(from: &str) -> Option<u64> {
    from.strip_prefix("+9198")?.parse().ok()
}

/// Call `n` from a Call-ID of this run.
pub fn call_of_call_id(call_id: &str) -> Option<u64> {
    call_id.strip_prefix("ib")?.split('-').next()?.parse().ok()
}

const SDP: &str = "v=0\r\no=carrier 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n";

impl Dialog {
    fn call_id(&self) -> String {
        format!("ib{}-{}@127.0.0.1", self.n, self.run)
    }

    fn ruri(&self) -> String {
        format!("sip:{DID}@{}", self.edge)
    }

    fn via(&self, branch: &str) -> String {
        format!(
            "Via: SIP/2.0/UDP {};branch=z9hG4bK{branch}-{}-{};rport\r\n",
            self.local, self.n, self.run
        )
    }

    fn from(&self) -> String {
        format!(
            "From: \"Bench\" <sip:{}@{}>;tag=ft{}-{}\r\n",
            caller(self.n),
            self.local,
            self.n,
            self.run
        )
    }

    /// The first INVITE (the SDP offer LiveKit needs; the edge refuses INVITEs without).
    pub fn invite(&self) -> Vec<u8> {
        format!(
            "INVITE {ruri} SIP/2.0\r\n{via}{from}To: <{ruri}>\r\nCall-ID: {cid}\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:carrier@{local}>\r\nMax-Forwards: 70\r\n\
             User-Agent: c2c-inbound-bench\r\nContent-Type: application/sdp\r\n\
             Content-Length: {len}\r\n\r\n{SDP}",
            ruri = self.ruri(),
            via = self.via("inv"),
            from = self.from(),
            cid = self.call_id(),
            local = self.local,
            len = SDP.len(),
        )
        .into_bytes()
    }

    /// CANCEL of the INVITE: its Request-URI, Via (branch), From, To and CSeq number.
    pub fn cancel(&self) -> Vec<u8> {
        format!(
            "CANCEL {ruri} SIP/2.0\r\n{via}{from}To: <{ruri}>\r\nCall-ID: {cid}\r\n\
             CSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            ruri = self.ruri(),
            via = self.via("inv"),
            from = self.from(),
            cid = self.call_id(),
        )
        .into_bytes()
    }

    /// ACK of a final >= 300: part of the INVITE transaction (same branch), To as the
    /// response had it.
    pub fn ack_failure(&self, to: &str) -> Vec<u8> {
        format!(
            "ACK {ruri} SIP/2.0\r\n{via}{from}To: {to}\r\nCall-ID: {cid}\r\n\
             CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            ruri = self.ruri(),
            via = self.via("inv"),
            from = self.from(),
            cid = self.call_id(),
        )
        .into_bytes()
    }

    /// ACK of the 200 or the BYE: an in-dialog request to the 200's Contact along its
    /// Record-Route (reversed: this side is the UAC), with a branch of its own.
    pub fn in_dialog(&self, method: &str, cseq: u32, a: &Answer) -> Vec<u8> {
        let mut routes = String::new();
        for r in a.record_route.iter().rev() {
            routes.push_str("Route: ");
            routes.push_str(r);
            routes.push_str("\r\n");
        }
        format!(
            "{method} {target} SIP/2.0\r\n{via}{routes}{from}To: {to}\r\nCall-ID: {cid}\r\n\
             CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            target = a.contact,
            via = self.via(&method.to_ascii_lowercase()),
            from = self.from(),
            to = a.to,
            cid = self.call_id(),
        )
        .into_bytes()
    }
}

/// What the ACK and the BYE need from the 200 OK.
#[derive(Clone)]
pub struct Answer {
    pub to: String,
    pub contact: String,
    pub record_route: Vec<String>,
}

/// A response, as far as the carrier reads it.
pub struct Response {
    pub code: u16,
    pub call_id: String,
    pub method: String,
    pub to: String,
    pub contact: Option<String>,
    pub record_route: Vec<String>,
}

impl Response {
    pub fn answer(&self) -> Option<Answer> {
        Some(Answer {
            to: self.to.clone(),
            contact: self.contact.clone()?,
            record_route: self.record_route.clone(),
        })
    }
}

/// Reads a response; `None` for a request (the gateway sends none to this carrier in
/// these flows) or anything unreadable.
pub fn parse_response(datagram: &[u8]) -> Option<Response> {
    let text = std::str::from_utf8(datagram).ok()?;
    let head = text.split("\r\n\r\n").next()?;
    let mut lines = head.split("\r\n");
    let code = lines
        .next()?
        .strip_prefix("SIP/2.0 ")?
        .get(..3)?
        .parse()
        .ok()?;
    let (mut call_id, mut method, mut to, mut contact) = (None, None, None, None);
    let mut record_route = Vec::new();
    for l in lines {
        let Some((name, value)) = l.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "call-id" | "i" => call_id = Some(value.to_owned()),
            "cseq" => method = value.split_whitespace().nth(1).map(str::to_owned),
            "to" | "t" => to = Some(value.to_owned()),
            "contact" | "m" => contact = Some(uri_in(value)),
            "record-route" => record_route.extend(split_top(value)),
            _ => {}
        }
    }
    Some(Response {
        code,
        call_id: call_id?,
        method: method?,
        to: to?,
        contact,
        record_route,
    })
}

/// A request the gateway sent the carrier (a BYE: LiveKit or the gateway hung up).
pub struct Request {
    pub method: String,
    pub call_id: String,
    /// The response to it with `code`, as RFC 3261 8.2.6 builds one.
    reply_head: String,
}

impl Request {
    pub fn reply(&self, code: u16, reason: &str) -> Vec<u8> {
        format!(
            "SIP/2.0 {code} {reason}\r\n{}Content-Length: 0\r\n\r\n",
            self.reply_head
        )
        .into_bytes()
    }
}

pub fn parse_request(datagram: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(datagram).ok()?;
    let head = text.split("\r\n\r\n").next()?;
    let mut lines = head.split("\r\n");
    let first = lines.next()?;
    if !first.ends_with(" SIP/2.0") {
        return None;
    }
    let method = first.split(' ').next()?.to_owned();
    let (mut call_id, mut reply_head) = (None, String::new());
    for l in lines {
        let Some((name, value)) = l.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "via" | "v" | "from" | "f" | "to" | "t" | "call-id" | "i" | "cseq"
        ) {
            reply_head.push_str(l);
            reply_head.push_str("\r\n");
        }
        if name == "call-id" || name == "i" {
            call_id = Some(value.trim().to_owned());
        }
    }
    Some(Request {
        method,
        call_id: call_id?,
        reply_head,
    })
}

/// The URI of a name-addr (`"x" <sip:a@b;p>;q` -> `sip:a@b;p`), or the value as is.
fn uri_in(v: &str) -> String {
    match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if a < b => v[a + 1..b].to_owned(),
        _ => v.split(';').next().unwrap_or(v).trim().to_owned(),
    }
}

/// A header value's comma-separated entries (commas inside `<>` are part of a URI).
fn split_top(v: &str) -> Vec<String> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in v.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth -= 1,
            ',' if depth == 0 => {
                out.push(v[start..i].trim().to_owned());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(v[start..].trim().to_owned());
    out.retain(|s| !s.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_200_and_builds_the_ack_along_the_route() {
        let msg = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bKinv-7-1\r\n\
                   Record-Route: <sip:127.0.0.1:5060;lr>, <sip:10.0.0.1;lr>\r\n\
                   From: <sip:x@y>;tag=a\r\nTo: <sip:+918045678901@127.0.0.1:5060>;tag=lk\r\n\
                   Call-ID: ib7-1@127.0.0.1\r\nCSeq: 1 INVITE\r\n\
                   Contact: <sip:lk@127.0.0.1:6000;transport=udp>\r\nContent-Length: 0\r\n\r\n";
        let r = parse_response(msg.as_bytes()).unwrap();
        assert_eq!((r.code, r.method.as_str()), (200, "INVITE"));
        assert_eq!(call_of_call_id(&r.call_id), Some(7));
        let a = r.answer().unwrap();
        assert_eq!(a.contact, "sip:lk@127.0.0.1:6000;transport=udp");
        assert_eq!(a.record_route.len(), 2);
        let d = Dialog {
            n: 7,
            local: "127.0.0.1:5".parse().unwrap(),
            edge: "127.0.0.1:5060".parse().unwrap(),
            run: 1,
        };
        let ack = String::from_utf8(d.in_dialog("ACK", 1, &a)).unwrap();
        assert!(ack.starts_with("ACK sip:lk@127.0.0.1:6000;transport=udp SIP/2.0\r\n"));
        let first = ack.find("Route: <sip:10.0.0.1;lr>").unwrap();
        assert!(first < ack.find("Route: <sip:127.0.0.1:5060;lr>").unwrap());
        assert!(ack.contains("To: <sip:+918045678901@127.0.0.1:5060>;tag=lk\r\n"));
        assert_eq!(call_of_caller(&caller(7)), Some(7));
    }
}
