//! The pieces of a call that hold no task: the retransmission schedule (timers A/E),
//! the dialog a 2xx establishes (route set, remote target, CSeq), and the INVITE's
//! Via, branch and SDP offer.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::message::{Message, SipUri};
use rand::Rng;

use super::message::{hostport, name_addr};
use super::random_hex;

pub(super) const INVITE_CSEQ: u32 = 1;
/// Longest timer the call arms (keeps `Instant + Duration` from overflowing).
const MAX_TIMER: Duration = Duration::from_secs(366 * 24 * 3600);

pub(super) fn after(d: Duration) -> Instant {
    Instant::now() + d.min(MAX_TIMER)
}

/// Timer A / E: first at T1, then doubling up to `cap`; never on reliable transports.
pub(super) struct Retransmit {
    pub(super) next: Option<Instant>,
    pub(super) interval: Duration,
    pub(super) cap: Duration,
}

impl Retransmit {
    pub(super) fn start(reliable: bool, t1: Duration, cap: Duration) -> Self {
        Self {
            next: (!reliable).then(|| after(t1)),
            interval: t1,
            cap,
        }
    }

    pub(super) fn due(&self, now: Instant) -> bool {
        self.next.is_some_and(|n| now >= n)
    }

    pub(super) fn advance(&mut self, now: Instant) {
        self.interval = self.interval.saturating_mul(2).min(self.cap);
        if self.next.is_some() {
            self.next = Some(now + self.interval);
        }
    }

    /// A provisional answer to a non-INVITE request: keep going at the cap (T2).
    pub(super) fn slow(&mut self) {
        self.interval = self.cap;
    }

    pub(super) fn stop(&mut self) {
        self.next = None;
    }
}

/// A CANCEL or BYE waiting for its final response.
pub(super) struct Pending {
    pub(super) bytes: Vec<u8>,
    pub(super) dest: SocketAddr,
    pub(super) branch: String,
    pub(super) retrans: Retransmit,
    pub(super) give_up: Instant,
}

/// The confirmed dialog: where in-dialog requests go (RFC 3261 §12.2.1.1).
pub(super) struct Dialog {
    /// `To` of the 2xx (carries the remote tag).
    pub(super) remote_to: String,
    pub(super) request_uri: String,
    pub(super) routes: Vec<String>,
    pub(super) dest: SocketAddr,
    pub(super) cseq: u32,
}

impl Dialog {
    /// From a 2xx: remote target = Contact, route set = Record-Route reversed.
    pub(super) fn from_2xx(
        resp: &Message,
        invite_uri: &str,
        to: &str,
        proxy: SocketAddr,
    ) -> Dialog {
        let remote_to = resp.header("to").unwrap_or(to).to_owned();
        let target = resp
            .list("contact")
            .first()
            .and_then(|c| name_addr(c))
            .map_or_else(|| invite_uri.to_owned(), |na| na.uri.to_owned());
        let route_set: Vec<String> = resp
            .list("record-route")
            .into_iter()
            .rev()
            .map(str::to_owned)
            .collect();
        Self::with_route_set(remote_to, target, route_set, INVITE_CSEQ, proxy)
    }

    /// The UAS side of an inbound INVITE (§12.1.1): remote target = the INVITE's
    /// Contact (else its From URI), route set = its Record-Route in order, requests
    /// To the caller's From; `peer` (where the INVITE came from) is the next hop
    /// when an address is not an IP literal.
    pub(super) fn from_invite(invite: &Message, peer: SocketAddr) -> Dialog {
        let from = invite.header("from").unwrap_or_default();
        let target = invite
            .list("contact")
            .first()
            .and_then(|c| name_addr(c))
            .or_else(|| name_addr(from))
            .map(|na| na.uri.to_owned())
            .unwrap_or_default();
        let route_set: Vec<String> = invite
            .list("record-route")
            .into_iter()
            .map(str::to_owned)
            .collect();
        let cseq = invite.cseq().map_or(INVITE_CSEQ, |(n, _)| n);
        Self::with_route_set(from.to_owned(), target, route_set, cseq, peer)
    }

    fn with_route_set(
        remote_to: String,
        target: String,
        route_set: Vec<String>,
        cseq: u32,
        fallback: SocketAddr,
    ) -> Dialog {
        let addr_of = |uri: &str| {
            SipUri::parse(uri)
                .and_then(|u| u.socket_addr())
                .unwrap_or(fallback)
        };
        let first = route_set
            .first()
            .and_then(|r| name_addr(r))
            .map(|na| na.uri.to_owned());
        let (request_uri, routes, dest) = match first {
            None => (target.clone(), Vec::new(), addr_of(&target)),
            Some(first_uri) => {
                let loose = SipUri::parse(&first_uri).is_some_and(|u| u.loose_route());
                let dest = addr_of(&first_uri);
                if loose {
                    (target, route_set, dest)
                } else {
                    // Strict router (RFC 2543): it becomes the Request-URI and the
                    // remote target goes last in the Route header.
                    let mut routes: Vec<String> = route_set.into_iter().skip(1).collect();
                    routes.push(format!("<{target}>"));
                    (first_uri, routes, dest)
                }
            }
        };
        Dialog {
            remote_to,
            request_uri,
            routes,
            dest,
            cseq,
        }
    }
}

pub(super) fn new_branch() -> String {
    format!("z9hG4bK{}", random_hex(12))
}

pub(super) fn via_value(transport: &str, local: SocketAddr, branch: &str) -> String {
    format!(
        "SIP/2.0/{transport} {};branch={branch};rport",
        hostport(local)
    )
}

/// A minimal offer: one PCMU/8000 audio stream (plus telephone-event) on a
/// random even port. No media flows.
pub(super) fn sdp_offer(ip: std::net::IpAddr) -> Vec<u8> {
    let mut rng = rand::thread_rng();
    let port = rng.gen_range(5_000u16..30_000) * 2;
    let session: u32 = rng.gen();
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    format!(
        "v=0\r\n\
         o=LiveKit {session} {session} IN {family} {ip}\r\n\
         s=LiveKit\r\n\
         c=IN {family} {ip}\r\n\
         t=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-16\r\n\
         a=ptime:20\r\n\
         a=sendrecv\r\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(text: &str) -> Message {
        Message::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn dialog_follows_loose_record_route() {
        let proxy: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let r = resp(
            "SIP/2.0 200 OK\r\nTo: <sip:1@127.0.0.1:5060>;tag=r\r\n\
             Record-Route: <sip:10.0.0.2:5062;lr>, <sip:10.0.0.1:5061;lr>\r\n\
             Contact: <sip:callee@10.0.0.3:5080>\r\n\r\n",
        );
        let d = Dialog::from_2xx(&r, "sip:1@127.0.0.1:5060", "<sip:1@x>", proxy);
        assert_eq!(d.request_uri, "sip:callee@10.0.0.3:5080");
        assert_eq!(
            d.routes,
            vec!["<sip:10.0.0.1:5061;lr>", "<sip:10.0.0.2:5062;lr>"]
        );
        assert_eq!(d.dest, "10.0.0.1:5061".parse().unwrap());
        assert_eq!(d.remote_to, "<sip:1@127.0.0.1:5060>;tag=r");
    }

    #[test]
    fn dialog_without_routes_and_with_strict_router() {
        let proxy: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let r = resp("SIP/2.0 200 OK\r\nm: <sip:callee@10.0.0.3>\r\n\r\n");
        let d = Dialog::from_2xx(&r, "sip:1@127.0.0.1:5060", "<sip:1@x>", proxy);
        assert_eq!(d.dest, "10.0.0.3:5060".parse().unwrap());
        assert!(d.routes.is_empty());
        let r = resp(
            "SIP/2.0 200 OK\r\nRecord-Route: <sip:proxy.example>\r\n\
             Contact: <sip:callee@10.0.0.3>\r\n\r\n",
        );
        let d = Dialog::from_2xx(&r, "sip:1@127.0.0.1:5060", "<sip:1@x>", proxy);
        assert_eq!(d.request_uri, "sip:proxy.example");
        assert_eq!(d.routes, vec!["<sip:callee@10.0.0.3>"]);
        assert_eq!(d.dest, proxy, "host names go through the proxy");
    }

    #[test]
    fn uas_dialog_keeps_record_route_order() {
        let peer: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let invite = resp(
            "INVITE sip:room@127.0.0.1:5080 SIP/2.0\r\nFrom: <sip:+1555@edge>;tag=c\r\n\
             CSeq: 7 INVITE\r\nRecord-Route: <sip:10.0.0.1:5061;lr>, <sip:10.0.0.2:5062;lr>\r\n\
             Contact: <sip:carrier@10.0.0.3:5090>\r\n\r\n",
        );
        let d = Dialog::from_invite(&invite, peer);
        assert_eq!(d.request_uri, "sip:carrier@10.0.0.3:5090");
        assert_eq!(
            d.routes,
            vec!["<sip:10.0.0.1:5061;lr>", "<sip:10.0.0.2:5062;lr>"]
        );
        assert_eq!(d.dest, "10.0.0.1:5061".parse().unwrap());
        assert_eq!(d.remote_to, "<sip:+1555@edge>;tag=c");
        assert_eq!(d.cseq, 7);
        let bare =
            resp("INVITE sip:room@x SIP/2.0\r\nFrom: <sip:+1555@edge.example>;tag=c\r\n\r\n");
        let d = Dialog::from_invite(&bare, peer);
        assert_eq!(d.request_uri, "sip:+1555@edge.example");
        assert_eq!(
            d.dest, peer,
            "host names go back where the INVITE came from"
        );
    }

    #[test]
    fn retransmit_schedule_doubles_and_caps() {
        let t1 = Duration::from_millis(500);
        let mut r = Retransmit::start(false, t1, Duration::from_secs(4));
        let now = Instant::now();
        let mut intervals = Vec::new();
        for _ in 0..5 {
            r.advance(now);
            intervals.push(r.interval);
        }
        assert_eq!(intervals, [1, 2, 4, 4, 4].map(Duration::from_secs).to_vec());
        assert!(Retransmit::start(true, t1, t1).next.is_none());
    }

    #[test]
    fn sdp_is_pcmu() {
        let sdp = String::from_utf8(sdp_offer("127.0.0.1".parse().unwrap())).unwrap();
        assert!(sdp.contains("m=audio "));
        assert!(sdp.contains("a=rtpmap:0 PCMU/8000"));
        assert!(sdp.contains("c=IN IP4 127.0.0.1"));
    }
}
