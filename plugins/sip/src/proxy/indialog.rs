//! ACK, CANCEL and in-dialog requests (BYE, re-INVITE, ACK for 2xx, ...).
//!
//! In-dialog requests are routed only for calls in the dialog table (no open relay),
//! by loose routing (RFC 3261 §16.4/§16.6): our Route entries are popped, the next hop
//! is the next Route or the Request-URI, which is never rewritten or re-prefixed. Only
//! the From/To user swap of the dial prefix is applied, in the right direction.

use tokio::time::Instant;

use super::{is_c2c_header, new_tag, reply_flow, server_key, Proxy};
use crate::flow::{Flow, Transport};
use crate::hdr::{name_addr, split_list};
use crate::message::{OutRequest, SipMsg};
use crate::observer::Observation;
use crate::parse::{uri as parse_uri, Method};
use crate::response::{reply, stamped_vias, ReplyBase};
use crate::tenant::swap_user;
use crate::txn::{CancelState, ClientState, DownBase, Txn, TxnTimer};

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

    pub(super) fn on_cancel(&mut self, now: Instant, from: Flow, msg: &SipMsg) {
        let Some(id) = self.txns.by_server(&server_key(msg, &Method::Invite)) else {
            return self.reply(from, msg, 481, "Call/Transaction Does Not Exist", &[]);
        };
        let Some(t) = self.txns.get(id) else { return };
        let tag = t.local_tag.clone();
        let base = ReplyBase::from_msg(msg, from.addr);
        self.send(
            reply_flow(from, &msg.via),
            reply(&base, 200, "OK", Some(&tag), &[]),
        );
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

    pub(super) fn in_dialog(
        &mut self,
        now: Instant,
        from: Flow,
        msg: &SipMsg,
        method: &Method,
        uri: &str,
    ) {
        let ack = *method == Method::Ack;
        let Some(d) = self.dialogs.get(&msg.call_id).cloned() else {
            if !ack {
                self.reply(from, msg, 481, "Call/Transaction Does Not Exist", &[]);
            }
            return;
        };
        let downstream = msg.from_tag.as_deref().unwrap_or("") == d.caller_tag;
        let upstream = !downstream && msg.to_tag.as_deref() == Some(d.caller_tag.as_str());
        let allowed = self.cfg.allowed_region(from.addr.ip()).is_some();
        let permitted = (downstream && allowed)
            || (upstream && (allowed || from.addr.ip() == d.carrier.addr.ip()));
        if !permitted {
            if !ack {
                let (code, reason) = if downstream || upstream {
                    (403, "Forbidden")
                } else {
                    (481, "Call/Transaction Does Not Exist")
                };
                self.reply(from, msg, code, reason, &[]);
            }
            return;
        }

        // Loose routing: pop our own Route entries, then route on what is left.
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
            None => uri.to_string(),
        };
        let Ok(next) = parse_uri(&next) else {
            if !ack {
                self.reply(from, msg, 416, "Unsupported URI Scheme", &[]);
            }
            return;
        };
        let Some(transport) = Transport::from_param(next.transport.as_deref()) else {
            if !ack {
                self.reply(from, msg, 502, "Bad Gateway", &[]);
            }
            return;
        };
        let peer = if downstream { d.carrier } else { d.upstream };
        let target = match next.socket_addr() {
            Some(addr) if downstream || self.cfg.allowed_region(addr.ip()).is_some() => Flow {
                transport,
                addr,
                conn: (transport == peer.transport && addr.ip() == peer.addr.ip())
                    .then_some(peer.conn)
                    .flatten(),
            },
            _ => peer,
        };

        let mut out = OutRequest::from_msg(msg, format!("{} {uri} SIP/2.0", method.as_str()));
        out.retain(|n, _| !n.eq_ignore_ascii_case("Route"));
        if !routes.is_empty() {
            out.set("Route", routes.join(", "));
        }
        let swap = if downstream {
            out.retain(|n, _| !is_c2c_header(n));
            swap_header(&mut out, "To", &d.orig_user, &d.dialed_user);
            ("To", d.dialed_user.clone(), d.orig_user.clone())
        } else {
            swap_header(&mut out, "From", &d.dialed_user, &d.orig_user);
            ("From", d.orig_user.clone(), d.dialed_user.clone())
        };
        out.set(
            "Max-Forwards",
            msg.max_forwards
                .map_or(70, |m| m.saturating_sub(1))
                .to_string(),
        );
        if let Some(v) = out.get_mut("Via") {
            if let Some(s) = stamped_vias(std::iter::once(v.as_str()), from.addr).pop() {
                *v = s;
            }
        }
        let (our_via, branch) = self.new_via(target.transport);
        out.push_front("Via", our_via.clone());
        let request = out.to_bytes();
        if ack {
            return self.send(target, request);
        }
        if self.txns.is_full() {
            let retry = (
                "Retry-After",
                self.cfg.calls.retry_after.as_secs().max(1).to_string(),
            );
            return self.reply(from, msg, 503, "Service Unavailable", &[retry]);
        }

        let base = ReplyBase::from_msg(msg, from.addr);
        let up = reply_flow(from, &msg.via);
        let invite = *method == Method::Invite;
        if invite {
            self.send(up, reply(&base, 100, "Trying", None, &[]));
        }
        let header = |n: &str| {
            out.headers
                .iter()
                .find(|(h, _)| h == n)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let down = DownBase {
            ruri: uri.to_string(),
            via: our_via,
            routes: routes.clone(),
            from: header("From"),
            to: header("To"),
            call_id: msg.call_id.clone(),
            cseq: msg.cseq,
        };
        let (t1, long, timer_c) = (
            self.cfg.timers.t1,
            self.cfg.timers.long(),
            self.cfg.timers.timer_c,
        );
        let mut txn = Txn::new(
            method.as_str(),
            server_key(msg, method),
            up,
            base,
            new_tag(),
            branch,
            target,
            request.clone(),
            down,
            t1,
        );
        txn.dialog = Some(msg.call_id.clone());
        txn.swap = (swap.1 != swap.2).then_some(swap);
        let Some(id) = self.txns.insert(txn) else {
            return;
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
        self.send(target, request);

        if *method == Method::Bye {
            if let Some(dm) = self.dialogs.get_mut(&msg.call_id) {
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
                direction = if downstream {
                    "to carrier"
                } else {
                    "to livekit"
                },
                "SIP BYE relayed"
            );
        }
    }
}

fn swap_header(out: &mut OutRequest, name: &str, from_user: &str, to_user: &str) {
    if let Some(v) = out.get_mut(name) {
        if let Some(new) = swap_user(v, from_user, to_user) {
            *v = new;
        }
    }
}
