//! The message side of an inbound call, as LiveKit SIP's `sipInbound` builds it:
//! responses to the INVITE (To tag = the call's `SCL_` id, `Allow`, Record-Route
//! echoed on 18x/2xx per RFC 3261 §12.1.1, Contact on finals), answers to requests
//! inside the call, and the BYE the simulator sends through the caller's route set.

use std::net::SocketAddr;
use std::time::Duration;

use super::super::dialog::{after, new_branch, sdp_offer, via_value, Dialog, Pending, Retransmit};
use super::super::message::{hostport, name_addr, response_to, tag_of, Builder, Message, SipUri};
use super::super::{Ua, USER_AGENT};
use crate::config::SipTransport;

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE";

/// The user part of a `sip:` URI, %-decoded (`""` when there is none).
pub(crate) fn uri_user(uri: &str) -> String {
    let rest = uri.split_once(':').map_or(uri, |(_, r)| r);
    let Some((user, _)) = rest.rsplit_once('@') else {
        return String::new();
    };
    // `user;param` user parameters (RFC 4694 `;npdi`) are not part of the number.
    let user = user.split(';').next().unwrap_or(user);
    let user = user.split(':').next().unwrap_or(user); // `user:password`
    percent_decode(user)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The URI of a From/To header value and its user and host.
pub(crate) fn party(value: &str) -> (String, String) {
    let uri = name_addr(value).map(|na| na.uri).unwrap_or_default();
    let host = SipUri::parse(uri).map(|u| u.host).unwrap_or_default();
    (uri_user(uri), host)
}

/// One inbound INVITE and how to answer it.
pub(super) struct Uas {
    pub invite: Message,
    /// Where the INVITE came from: responses go back there (rport / the connection).
    pub peer: SocketAddr,
    /// Our To tag: LiveKit's call id (`SCL_...`).
    pub tag: String,
    pub branch: String,
    pub from_tag: String,
    pub invite_cseq: u32,
    pub t1: Duration,
    pub reliable: bool,
    transport: &'static str,
    local: SocketAddr,
    contact: String,
    /// Our SDP answer (PCMU, no media flows), also repeated for a re-INVITE.
    sdp: Vec<u8>,
}

impl Uas {
    pub(super) fn new(ua: &Ua, invite: Message, peer: SocketAddr, tag: String) -> Uas {
        let config = ua.config();
        let local = ua.local_addr();
        let contact = match config.transport {
            SipTransport::Udp => format!("<sip:livekit@{}>", hostport(local)),
            SipTransport::Tcp => format!("<sip:livekit@{};transport=tcp>", hostport(local)),
        };
        let branch = invite.top_branch().unwrap_or_default().to_owned();
        let from_tag = invite
            .header("from")
            .and_then(tag_of)
            .unwrap_or_default()
            .to_owned();
        let invite_cseq = invite.cseq().map_or(1, |(n, _)| n);
        Uas {
            peer,
            tag,
            branch,
            from_tag,
            invite_cseq,
            t1: config.t1,
            reliable: config.transport == SipTransport::Tcp,
            transport: config.transport.via_token(),
            local,
            contact,
            sdp: sdp_offer(local.ip()),
            invite,
        }
    }

    /// T2 (4 s for T1 = 500 ms), scaled with a shortened T1.
    pub(super) fn t2(&self) -> Duration {
        self.t1.saturating_mul(8)
    }

    pub(super) fn timeout_64t1(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// A response to the INVITE. `extra`: trunk `headers` and `attributes_to_headers`.
    pub(super) fn invite_response(
        &self,
        code: u16,
        reason: &str,
        extra: &[(String, String)],
    ) -> Vec<u8> {
        let mut b = response_to(&self.invite, code, reason, &self.tag);
        if (101..300).contains(&code) {
            b = b.headers("Record-Route", self.invite.list("record-route"));
        }
        if code >= 200 {
            b = b.header("Contact", &self.contact);
        }
        b = b.header("Allow", ALLOW).header("User-Agent", USER_AGENT);
        for (name, value) in extra {
            b = b.header(name, value);
        }
        if (200..300).contains(&code) {
            b.finish(Some("application/sdp"), &self.sdp)
        } else {
            b.finish(None, b"")
        }
    }

    /// A response to another request of the call (CANCEL, BYE, re-INVITE, OPTIONS...).
    pub(super) fn reply(&self, req: &Message, code: u16, reason: &str) -> Vec<u8> {
        let b = response_to(req, code, reason, &self.tag).header("User-Agent", USER_AGENT);
        if req.method() == Some("INVITE") && code == 200 {
            // A re-INVITE (session refresh) is answered with the same SDP.
            return b
                .header("Contact", &self.contact)
                .header("Allow", ALLOW)
                .finish(Some("application/sdp"), &self.sdp);
        }
        b.finish(None, b"")
    }

    /// The INVITE again (same branch): a retransmission.
    pub(super) fn is_retransmission(&self, req: &Message) -> bool {
        req.method() == Some("INVITE") && req.top_branch() == Some(self.branch.as_str())
    }

    /// A CANCEL for our INVITE (same branch, RFC 3261 §9.2).
    pub(super) fn cancels_invite(&self, req: &Message) -> bool {
        req.method() == Some("CANCEL") && req.top_branch() == Some(self.branch.as_str())
    }

    /// An ACK for our final response (its CSeq number is the INVITE's).
    pub(super) fn acks_invite(&self, req: &Message) -> bool {
        req.method() == Some("ACK") && req.cseq().is_some_and(|(n, _)| n == self.invite_cseq)
    }

    /// Whether `req` names our dialog in its To tag (in-dialog requests).
    pub(super) fn in_dialog(&self, req: &Message) -> bool {
        req.header("to").and_then(tag_of) == Some(self.tag.as_str())
    }

    /// Our dialog towards the caller (route set, remote target, CSeq).
    pub(super) fn dialog(&self) -> Dialog {
        Dialog::from_invite(&self.invite, self.peer)
    }

    /// A BYE in the dialog (CSeq one above the last, as LiveKit counts from the
    /// INVITE's), with `headers` (`attributes_to_headers`).
    pub(super) fn bye(&self, dialog: &mut Dialog, headers: &[(String, String)]) -> Pending {
        dialog.cseq = dialog.cseq.saturating_add(1);
        let branch = new_branch();
        let to = self.invite.header("to").unwrap_or_default();
        let from = if tag_of(to).is_some() {
            to.to_owned()
        } else {
            format!("{to};tag={}", self.tag)
        };
        let mut b = Builder::request("BYE", &dialog.request_uri)
            .header("Via", &via_value(self.transport, self.local, &branch))
            .header("Max-Forwards", "70")
            .headers("Route", dialog.routes.iter().map(String::as_str))
            .header("From", &from)
            .header("To", &dialog.remote_to)
            .header("Call-ID", self.invite.call_id().unwrap_or_default())
            .header("CSeq", &format!("{} BYE", dialog.cseq))
            .header("User-Agent", USER_AGENT);
        for (name, value) in headers {
            b = b.header(name, value);
        }
        Pending {
            bytes: b.finish(None, b""),
            dest: dialog.dest,
            branch,
            retrans: Retransmit::start(self.reliable, self.t1, self.t2()),
            give_up: after(self.timeout_64t1()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_hosts() {
        assert_eq!(uri_user("sip:+4930123@carrier.example"), "+4930123");
        assert_eq!(
            uri_user("sip:c2c-ab%2Dcd@127.0.0.1:5080;transport=udp"),
            "c2c-ab-cd"
        );
        assert_eq!(uri_user("sip:+1555;npdi@h"), "+1555");
        assert_eq!(uri_user("sip:127.0.0.1"), "");
        assert_eq!(percent_decode("100%"), "100%");
        let (user, host) = party("\"Caller\" <sip:alice@10.0.0.1:5060>;tag=x");
        assert_eq!((user.as_str(), host.as_str()), ("alice", "10.0.0.1"));
    }
}
