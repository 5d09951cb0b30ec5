//! ACK, CANCEL and in-dialog requests (BYE, re-INVITE, ACK for 2xx, ...).
//!
//! In-dialog requests are routed only for calls in the dialog table (no open relay),
//! by loose routing (RFC 3261 §16.4/§16.6): our Route entries are popped, the next hop
//! is the next Route or the Request-URI, which is never rewritten or re-prefixed. Only
//! the From/To user swap is applied, in the right direction (dial prefix outbound, room
//! inbound), and `X-C2C-*` headers never cross. The caller's side of a call is LiveKit
//! outbound and the carrier inbound: requests from it must come from an allowed LiveKit
//! node (outbound) or the carrier's address (inbound); the callee's from an allowed
//! node or the address the INVITE went to. Toward LiveKit only allowed nodes are used
//! as next hop.

use bytes::Bytes;
use tokio::time::Instant;

use super::{is_c2c_header, new_tag, relay_hop, reply_flow, server_key, Proxy};
use crate::dialog::Dialog;
use crate::flow::{Flow, Transport};
use crate::hdr::{name_addr, split_list};
use crate::message::{OutRequest, SipMsg};
use crate::observer::Observation;
use crate::parse::{uri as parse_uri, Method};
use crate::response::{reply, ReplyBase};
use crate::tenant::swap_user;
use crate::txn::{CancelState, ClientState, DownBase, NewTxn, Swap, Txn, TxnTimer};
use c2c_media::Side;

/// An in-dialog request from one of the dialog's two sides.
struct DialogRequest<'a> {
    now: Instant,
    from: Flow,
    msg: &'a SipMsg,
    method: &'a Method,
    uri: &'a str,
    /// A copy, so the proxy can be borrowed mutably while the request is relayed.
    dialog: Dialog,
    /// From the caller's side toward the callee (outbound: LiveKit to the carrier;
    /// inbound: the carrier to LiveKit); else the other way.
    downstream: bool,
}

impl DialogRequest<'_> {
    /// The side of the call the request came from: the caller's side is LiveKit
    /// outbound and the carrier inbound.
    fn sender_side(&self) -> Side {
        if self.downstream != self.dialog.inbound {
            Side::Livekit
        } else {
            Side::Carrier
        }
    }
}

/// Where a request goes: the Route set left after ours, and the flow to send on.
struct NextHop {
    routes: Vec<String>,
    target: Flow,
}

/// A request ready for the next hop, and what its transaction must remember.
struct Relayed {
    request: Bytes,
    via: String,
    branch: String,
    /// From and To as sent (our own ACK and CANCEL copy them).
    from: String,
    to: String,
    /// The user swap to undo on responses.
    swap: Swap,
    /// An anchored call: the side the request came from.
    media_from: Option<Side>,
    /// An anchored request's offer, for the relay once a 2xx accepts it.
    media_offer: Option<c2c_media::AudioTarget>,
}

impl Proxy {
    pub(super) fn on_ack(&mut self, now: Instant, from: Flow, msg: &SipMsg, uri: &str) {
        if let Some(id) = self.txns.by_server(&server_key(msg, &Method::Ack)) {
            let t4 = self.cfg.timers.t2 + self.cfg.timers.t1;
            if let Some(t) = self.txns.get(id) {
                if t.final_sent.is_some_and(|c| c >= 300) {
                    // Hop-by-hop ACK for our non-2xx final: absorbed.
                    self.txns.disarm(id, TxnTimer::FinalRetransmit);
                    self.txns.arm(id, TxnTimer::Expire, now + t4);
                    return;
                }
            }
        }
        if msg.to_tag.is_some() {
            self.in_dialog(now, from, msg, &Method::Ack, uri);
        }
    }

    /// CANCEL: 200 at once; a held inbound call ends with 487 here, a forwarded INVITE
    /// is cancelled downstream (now, or on its first provisional). Only the INVITE's
    /// sender (or an allowed LiveKit node) may cancel it.
    pub(super) fn on_cancel(&mut self, now: Instant, from: Flow, msg: &SipMsg) {
        let Some(id) = self.txns.by_server(&server_key(msg, &Method::Invite)) else {
            return self.reply(from, msg, 481, "Call/Transaction Does Not Exist", &[]);
        };
        let Some(t) = self.txns.get(id) else { return };
        let ip = from.addr.ip();
        if t.upstream.addr.ip() != ip && self.cfg.allowed_region(ip).is_none() {
            return self.reply(from, msg, 403, "Forbidden", &[]);
        }
        let tag = t.local_tag.clone();
        let base = ReplyBase::from_msg(msg, from.addr);
        self.send(
            reply_flow(from, &msg.via),
            reply(&base, 200, "OK", Some(&tag), &[]),
        );
        if self.cancel_held(now, &msg.call_id, id) {
            return;
        }
        let Some(t) = self.txns.get_mut(id) else {
            return;
        };
        if t.final_sent.is_some()
            || matches!(t.state, ClientState::Completed | ClientState::Accepted)
        {
            return;
        }
        if t.cancel == CancelState::None {
            if t.state == ClientState::Proceeding {
                self.send_cancel(now, id);
            } else {
                t.cancel = CancelState::Pending;
            }
        }
    }

    /// Routes a request of a known dialog (ACK for a 2xx, BYE, re-INVITE, and the rest)
    /// toward the other side of the call.
    pub(super) fn in_dialog(
        &mut self,
        now: Instant,
        from: Flow,
        msg: &SipMsg,
        method: &Method,
        uri: &str,
    ) {
        let Some(req) = self.dialog_request(now, from, msg, method, uri) else {
            return;
        };
        let Some(hop) = self.next_hop(&req) else {
            return;
        };
        let media_from = req.dialog.media.then(|| req.sender_side());
        // Bodies that negotiate media (RFC 3264 offers and answers; RFC 3311 UPDATE,
        // RFC 3262 PRACK); an OPTIONS answer's capabilities are not a session.
        let negotiates = matches!(method, Method::Invite | Method::Ack)
            || matches!(method, Method::Other(m) if m == "UPDATE" || m == "PRACK");
        let anchored = match media_from {
            Some(side) if negotiates => self.anchor_body(&msg.call_id, side, msg),
            _ => None,
        };
        let (offer, body) = match anchored {
            Some((target, body)) => (Some(target), Some(body)),
            None => (None, None),
        };
        // An ACK's body answers a 2xx's offer: the session is agreed. Anything else is
        // an offer the other side may still refuse.
        if let (Method::Ack, Some(side), Some(target)) = (method, media_from, offer) {
            self.media_remote(&msg.call_id, side, target);
        }
        let mut out = self.relay_request(&req, &hop, body);
        out.media_from = media_from;
        out.media_offer = offer.filter(|_| *method != Method::Ack);
        match method {
            // The ACK for a 2xx is end to end: no transaction, nothing to answer.
            Method::Ack => self.send(hop.target, out.request),
            Method::Bye => {
                if self.relay_stateful(&req, hop, out) {
                    self.end_dialog(&req);
                }
            }
            // A re-INVITE (100 Trying, timer C) and every other method.
            _ => {
                self.relay_stateful(&req, hop, out);
            }
        }
    }

    /// The request with its dialog, if the dialog is known and the sender is one of its
    /// two sides; otherwise answers 481 or 403 (never to an ACK).
    fn dialog_request<'a>(
        &mut self,
        now: Instant,
        from: Flow,
        msg: &'a SipMsg,
        method: &'a Method,
        uri: &'a str,
    ) -> Option<DialogRequest<'a>> {
        let ack = *method == Method::Ack;
        let Some(d) = self.dialogs.get(&msg.call_id).cloned() else {
            if !ack {
                self.reply(from, msg, 481, "Call/Transaction Does Not Exist", &[]);
            }
            return None;
        };
        if d.inbound && self.held.contains_key(&msg.call_id) {
            self.held_in_dialog(now, from, msg, method, d.upstream);
            return None;
        }
        let downstream = msg.from_tag.as_deref().unwrap_or("") == d.caller_tag;
        let upstream = !downstream && msg.to_tag.as_deref() == Some(d.caller_tag.as_str());
        let ip = from.addr.ip();
        let allowed = self.cfg.allowed_region(ip).is_some();
        let caller_ok = if d.inbound {
            ip == d.upstream.addr.ip()
        } else {
            allowed
        };
        let permitted =
            (downstream && caller_ok) || (upstream && (allowed || ip == d.callee.addr.ip()));
        if !permitted {
            if !ack {
                let (code, reason) = if downstream || upstream {
                    (403, "Forbidden")
                } else {
                    (481, "Call/Transaction Does Not Exist")
                };
                self.reply(from, msg, code, reason, &[]);
            }
            return None;
        }
        Some(DialogRequest {
            now,
            from,
            msg,
            method,
            uri,
            dialog: d,
            downstream,
        })
    }

    /// Loose routing: pops our own Route entries and routes on what is left (the next
    /// Route, else the Request-URI); answers 416 or 502 (never to an ACK) when that
    /// cannot be reached.
    fn next_hop(&mut self, req: &DialogRequest<'_>) -> Option<NextHop> {
        let (msg, d) = (req.msg, &req.dialog);
        let ack = *req.method == Method::Ack;
        let mut routes: Vec<String> = msg
            .headers_named("Route")
            .filter_map(|h| split_list(&h.value).ok())
            .flatten()
            .map(str::to_string)
            .collect();
        while let Some(first) = routes.first() {
            let mine = name_addr(first)
                .ok()
                .and_then(|n| parse_uri(n.uri).ok())
                .is_some_and(|u| self.is_me(&u));
            if !mine {
                break;
            }
            routes.remove(0);
        }
        let next = match routes.first() {
            Some(r) => name_addr(r).map(|n| n.uri.to_string()).unwrap_or_default(),
            None => req.uri.to_string(),
        };
        let Ok(next) = parse_uri(&next) else {
            if !ack {
                self.reply(req.from, msg, 416, "Unsupported URI Scheme", &[]);
            }
            return None;
        };
        let Some(transport) = Transport::from_param(next.transport.as_deref()) else {
            if !ack {
                self.reply(req.from, msg, 502, "Bad Gateway", &[]);
            }
            return None;
        };
        // The hop's own address when it has one (toward LiveKit, only an allowed node's),
        // else the dialog's peer on that side; its connection is reused when it is the
        // same host over the same transport.
        let peer = if req.downstream { d.callee } else { d.upstream };
        let toward_livekit = req.downstream == d.inbound;
        let target = match next.socket_addr() {
            Some(addr) if !toward_livekit || self.cfg.allowed_region(addr.ip()).is_some() => Flow {
                transport,
                addr,
                conn: (transport == peer.transport && addr.ip() == peer.addr.ip())
                    .then_some(peer.conn)
                    .flatten(),
            },
            _ => peer,
        };
        Some(NextHop { routes, target })
    }

    /// The request as the next hop gets it: remaining Route set, the user swap of the
    /// dial prefix in the right direction, and our Via on top.
    fn relay_request(
        &self,
        req: &DialogRequest<'_>,
        hop: &NextHop,
        body: Option<Bytes>,
    ) -> Relayed {
        let (msg, d) = (req.msg, &req.dialog);
        let mut out =
            OutRequest::from_msg(msg, format!("{} {} SIP/2.0", req.method.as_str(), req.uri));
        if let Some(b) = body {
            out.body = b;
        }
        out.retain(|n, _| !n.eq_ignore_ascii_case("Route") && !is_c2c_header(n));
        if !hop.routes.is_empty() {
            out.set("Route", hop.routes.join(", "));
        }
        let swap = if req.downstream {
            swap_header(&mut out, "To", &d.orig_user, &d.dialed_user);
            ("To", d.dialed_user.clone(), d.orig_user.clone())
        } else {
            swap_header(&mut out, "From", &d.dialed_user, &d.orig_user);
            ("From", d.orig_user.clone(), d.dialed_user.clone())
        };
        relay_hop(&mut out, msg, req.from);
        let (via, branch) = self.new_via(hop.target.transport);
        out.push_front("Via", via.clone());
        let header = |n: &str| {
            out.headers
                .iter()
                .find(|(h, _)| h == n)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        Relayed {
            from: header("From"),
            to: header("To"),
            request: out.to_bytes(),
            via,
            branch,
            swap,
            media_from: None,
            media_offer: None,
        }
    }

    /// Relays a request that is not an ACK through a new transaction (with 100 Trying
    /// and timer C for a re-INVITE). `false` when it was answered here instead (503 when
    /// the transaction table is full).
    fn relay_stateful(&mut self, req: &DialogRequest<'_>, hop: NextHop, out: Relayed) -> bool {
        let (now, from, msg, method) = (req.now, req.from, req.msg, req.method);
        if self.txns.is_full() {
            let retry = (
                "Retry-After",
                self.cfg.calls.retry_after.as_secs().max(1).to_string(),
            );
            self.reply(from, msg, 503, "Service Unavailable", &[retry]);
            return false;
        }
        let base = ReplyBase::from_msg(msg, from.addr);
        let up = reply_flow(from, &msg.via);
        let invite = *method == Method::Invite;
        if invite {
            self.send(up, reply(&base, 100, "Trying", None, &[]));
        }
        let (t1, long, timer_c) = (
            self.cfg.timers.t1,
            self.cfg.timers.long(),
            self.cfg.timers.timer_c,
        );
        let target = hop.target;
        let mut txn = Txn::new(NewTxn {
            method: method.as_str(),
            server_key: server_key(msg, method),
            upstream: up,
            reply: base,
            local_tag: new_tag(),
            branch: out.branch,
            target,
            request: out.request.clone(),
            base: DownBase {
                ruri: req.uri.to_string(),
                via: out.via,
                routes: hop.routes,
                from: out.from,
                to: out.to,
                call_id: msg.call_id.clone(),
                cseq: msg.cseq,
            },
            t1,
        });
        txn.dialog = Some(msg.call_id.clone());
        txn.swap = (out.swap.1 != out.swap.2).then_some(out.swap);
        txn.media_from = out.media_from;
        txn.media_offer = out.media_offer;
        let Some(id) = self.txns.insert(txn) else {
            return false;
        };
        if target.transport == Transport::Udp {
            self.txns.arm(id, TxnTimer::Retransmit, now + t1);
        }
        self.txns.arm(id, TxnTimer::Timeout, now + long);
        if invite {
            self.txns.arm(id, TxnTimer::C, now + timer_c);
            self.txns
                .arm(id, TxnTimer::Expire, now + timer_c + long * 2);
        } else {
            self.txns.arm(id, TxnTimer::Expire, now + long * 2);
        }
        self.send(target, out.request);
        true
    }

    /// A BYE went through: the dialog is over, and an answered call's end is reported
    /// (once).
    fn end_dialog(&mut self, req: &DialogRequest<'_>) {
        if let Some(dm) = self.dialogs.get_mut(&req.msg.call_id) {
            let report = dm.answered && !dm.ended;
            dm.ended = true;
            if let (true, Some(call_id)) = (report, dm.c2c_call_id.clone()) {
                self.observe(Observation::End {
                    call_id,
                    code: None,
                });
            }
        }
        tracing::debug!(
            direction = if req.downstream == req.dialog.inbound {
                "to livekit"
            } else {
                "to carrier"
            },
            "SIP BYE relayed"
        );
    }
}

fn swap_header(out: &mut OutRequest, name: &str, from_user: &str, to_user: &str) {
    if let Some(v) = out.get_mut(name) {
        if let Some(new) = swap_user(v, from_user, to_user) {
            *v = new;
        }
    }
}
