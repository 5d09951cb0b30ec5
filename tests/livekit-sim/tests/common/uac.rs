//! A tiny raw-UDP SIP caller for the inbound tests: it writes exactly the INVITE,
//! ACK, CANCEL and BYE a carrier-side proxy would, and reads what the simulator
//! answers as text (so tests can assert on every byte).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

/// One caller socket and one INVITE dialog.
pub struct Uac {
    pub sock: UdpSocket,
    pub sim: SocketAddr,
    pub local: SocketAddr,
    pub call_id: String,
    pub from_tag: String,
    pub branch: String,
    pub from_user: String,
    pub to_user: String,
    /// The INVITE's Contact (default: this socket).
    pub contact: String,
}

/// The first value of header `name` (case-insensitive) in a message.
pub fn header(msg: &str, name: &str) -> Option<String> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// The status code of a response (`None` for a request).
pub fn status(msg: &str) -> Option<u16> {
    msg.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// The `tag` parameter of a From/To value.
pub fn tag(value: &str) -> Option<String> {
    value
        .split(';')
        .skip(1)
        .find_map(|p| p.trim().strip_prefix("tag=").map(str::to_owned))
}

/// The URI inside `<...>` of a header value.
pub fn uri(value: &str) -> String {
    let start = value.find('<').map_or(0, |i| i + 1);
    let end = value[start..].find('>').map_or(value.len(), |i| start + i);
    value[start..end].to_owned()
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

const SDP: &str = "v=0\r\no=carrier 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
                   a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

impl Uac {
    pub async fn new(sim: SocketAddr, from_user: &str, to_user: &str) -> Uac {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = sock.local_addr().unwrap();
        Uac {
            sock,
            sim,
            local,
            call_id: unique("inbound-call-"),
            from_tag: unique("ft"),
            branch: format!("z9hG4bK{}", unique("inv")),
            from_user: from_user.to_owned(),
            to_user: to_user.to_owned(),
            contact: format!("<sip:edge@{local}>"),
        }
    }

    fn from(&self) -> String {
        format!(
            "<sip:{}@carrier.example>;tag={}",
            self.from_user, self.from_tag
        )
    }

    fn to(&self) -> String {
        format!("<sip:{}@{}>", self.to_user, self.sim)
    }

    /// The INVITE (with SDP unless `sdp` is false), `extra` headers included.
    pub fn invite(&self, extra: &[(&str, &str)], sdp: bool) -> String {
        let mut msg = format!(
            "INVITE sip:{to}@{sim} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={br};rport\r\n\
             Max-Forwards: 69\r\nFrom: {from}\r\nTo: {to_h}\r\nCall-ID: {cid}\r\n\
             CSeq: 1 INVITE\r\nContact: {contact}\r\n",
            to = self.to_user,
            sim = self.sim,
            me = self.local,
            br = self.branch,
            from = self.from(),
            to_h = self.to(),
            cid = self.call_id,
            contact = self.contact,
        );
        for (k, v) in extra {
            msg.push_str(&format!("{k}: {v}\r\n"));
        }
        let body = if sdp { SDP } else { "" };
        if sdp {
            msg.push_str("Content-Type: application/sdp\r\n");
        }
        msg.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        msg
    }

    /// CANCEL for the INVITE (same branch, RFC 3261 §9.1).
    pub fn cancel(&self) -> String {
        format!(
            "CANCEL sip:{to}@{sim} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={br};rport\r\n\
             Max-Forwards: 69\r\nFrom: {from}\r\nTo: {to_h}\r\nCall-ID: {cid}\r\n\
             CSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
            to = self.to_user,
            sim = self.sim,
            me = self.local,
            br = self.branch,
            from = self.from(),
            to_h = self.to(),
            cid = self.call_id,
        )
    }

    /// ACK for a final response: same branch for a non-2xx, a new one for a 2xx
    /// (sent to the 2xx's Contact).
    pub fn ack(&self, resp: &str) -> String {
        let to = header(resp, "To").unwrap();
        let ok = status(resp).is_some_and(|c| c < 300);
        let (target, branch) = if ok {
            (uri(&header(resp, "Contact").unwrap()), unique("z9hG4bKack"))
        } else {
            (
                format!("sip:{}@{}", self.to_user, self.sim),
                self.branch.clone(),
            )
        };
        format!(
            "ACK {target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\n\
             Max-Forwards: 69\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\n\
             CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            me = self.local,
            from = self.from(),
            cid = self.call_id,
        )
    }

    /// The caller's BYE after the 200 `ok`.
    pub fn bye(&self, ok: &str) -> String {
        let to = header(ok, "To").unwrap();
        let target = uri(&header(ok, "Contact").unwrap());
        format!(
            "BYE {target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={br};rport\r\n\
             Max-Forwards: 69\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\n\
             CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
            me = self.local,
            br = unique("z9hG4bKbye"),
            from = self.from(),
            cid = self.call_id,
        )
    }

    /// A 200 OK to a request the simulator sent (its BYE).
    pub fn ok_to(&self, req: &str) -> String {
        let mut out = String::from("SIP/2.0 200 OK\r\n");
        for line in req.lines() {
            let name = line
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if ["via", "from", "to", "call-id", "cseq"].contains(&name.as_str()) {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        out.push_str("Content-Length: 0\r\n\r\n");
        out
    }

    pub async fn send(&self, msg: &str) {
        self.sock.send_to(msg.as_bytes(), self.sim).await.unwrap();
    }

    /// The next datagram within `within`, as text.
    pub async fn recv(&self, within: Duration) -> Option<String> {
        let mut buf = vec![0u8; 65536];
        let (n, _) = tokio::time::timeout(within, self.sock.recv_from(&mut buf))
            .await
            .ok()?
            .unwrap();
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Waits for a message whose first line starts with `start`, skipping others.
    pub async fn expect(&self, start: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = self
                .recv(left)
                .await
                .unwrap_or_else(|| panic!("no {start:?} within 10 s"));
            if msg.starts_with(start) {
                return msg;
            }
        }
    }

    /// Everything received within `within`.
    pub async fn collect(&self, within: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + within;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return out;
            }
            match self.recv(left).await {
                Some(m) => out.push(m),
                None => return out,
            }
        }
    }
}
