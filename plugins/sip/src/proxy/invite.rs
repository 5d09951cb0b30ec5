//! New calls: an INVITE without To tag from an allowed LiveKit node.
//!
//! Order: Request-URI, loop check, tenant/trunk, DLT gate, carrier address, tenant
//! caps, capacity; then 100 Trying, rewrite, Via/Record-Route, forward. Every refusal
//! is a final response from a local transaction, so retransmissions and the ACK are
//! absorbed and nothing reaches a carrier.

use tokio::time::Instant;

use c2c_dialplan::mask;

use super::{is_c2c_header, new_tag, reply_flow, server_key, Proxy};
use crate::dialog::Dialog;
use crate::flow::{Flow, Transport};
use crate::message::{OutRequest, SipMsg};
use crate::observer::Observation;
use crate::parse::{uri as parse_uri, Method, SipUri};
use crate::response::{reply, stamped_vias, ReplyBase};
use crate::tenant::{identify, swap_user};
use crate::txn::{CallCtx, ClientState, DownBase, Txn, TxnTimer};

/// Longest `X-C2C-Call-Id` accepted for correlation.
const MAX_CALL_ID: usize = 128;

impl Proxy {
    pub(super) fn initial_invite(&mut self, now: Instant, from: Flow, msg: &SipMsg, uri: &str) {
        let call = msg
            .header("X-C2C-Call-Id")
            .map(str::trim)
            .filter(|c| valid_call_id(c))
            .map(str::to_string);
        let ruri = match parse_uri(uri) {
            Ok(u) => u,
            Err(e) => {
                let (code, reason) = e.status();
                return self.refuse(now, from, msg, None, call, code, reason, vec![]);
            }
        };
        let Some(user) = ruri.user.clone() else {
            return self.refuse(now, from, msg, None, call, 404, "Not Found", vec![]);
        };
        if self.looped(msg) {
            return self.refuse(now, from, msg, None, call, 482, "Loop Detected", vec![]);
        }
        let policy = self.policy.policy();
        let named = |h: &str| msg.header(h).map(str::trim).filter(|v| !v.is_empty());
        let route = match identify(&policy, &user, named("X-C2C-Tenant"), named("X-C2C-Trunk")) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(number = %mask(&user), reason = %e, "SIP INVITE refused: no trunk");
                let (code, reason) = e.status();
                return self.refuse(now, from, msg, None, call, code, reason, vec![]);
            }
        };
        let tenant = route.tenant.id.clone();
        let trunk = route.trunk.label.clone();
        if self.dlt.check(&route.tenant).is_err() {
            self.metrics.dlt_blocked.with_label_values(&[&tenant]).inc();
            tracing::info!(tenant = %tenant, trunk = %trunk, "SIP INVITE refused: DLT outbound disabled");
            let warning = format!(
                "399 {} \"DLT Principal Entity verification pending\"",
                self.me.host
            );
            return self.refuse(
                now,
                from,
                msg,
                Some(&trunk),
                call,
                403,
                "DLT outbound disabled",
                vec![("Warning", warning)],
            );
        }
        let retry = (
            "Retry-After",
            self.cfg.calls.retry_after.as_secs().max(1).to_string(),
        );
        let Some((carrier, target)) = self.carrier(&route.trunk.carrier) else {
            tracing::warn!(tenant = %tenant, trunk = %trunk, "SIP carrier address unusable or not resolved yet");
            return self.refuse(
                now,
                from,
                msg,
                Some(&trunk),
                call,
                503,
                "Service Unavailable",
                vec![retry],
            );
        };
        let caps = self.cfg.calls.caps(&tenant);
        if self.dialogs.active(&tenant) >= caps.max_concurrent {
            self.metrics
                .limited
                .with_label_values(&[&tenant, "concurrent"])
                .inc();
            return self.refuse(
                now,
                from,
                msg,
                Some(&trunk),
                call,
                503,
                "Concurrent Call Limit",
                vec![retry],
            );
        }
        if !self.rate.allow(&tenant, caps.calls_per_second, now) {
            self.metrics
                .limited
                .with_label_values(&[&tenant, "cps"])
                .inc();
            return self.refuse(
                now,
                from,
                msg,
                Some(&trunk),
                call,
                503,
                "Call Rate Limit",
                vec![retry],
            );
        }
        if self.dialogs.contains(&msg.call_id) {
            return self.refuse(
                now,
                from,
                msg,
                Some(&trunk),
                call,
                482,
                "Loop Detected",
                vec![],
            );
        }
        if self.txns.is_full() || self.dialogs.is_full() {
            return self.refuse(
                now,
                from,
                msg,
                Some(&trunk),
                call,
                503,
                "Service Unavailable",
                vec![retry],
            );
        }

        // Accepted: 100 Trying at once, then forward.
        let base = ReplyBase::from_msg(msg, from.addr);
        let up = reply_flow(from, &msg.via);
        let trying = reply(&base, 100, "Trying", None, &[]);
        self.send(up, trying.clone());

        let new_ruri = format!(
            "sip:{}@{}{}",
            route.dialed,
            carrier.host_port(),
            carrier.params
        );
        let mut out = OutRequest::from_msg(msg, format!("INVITE {new_ruri} SIP/2.0"));
        out.retain(|n, _| !is_c2c_header(n) && !n.eq_ignore_ascii_case("Route"));
        let to = msg.header("To").unwrap_or_default().to_string();
        let to_user = crate::hdr::name_addr(&to)
            .ok()
            .and_then(|n| parse_uri(n.uri).ok())
            .and_then(|u| u.user);
        let orig_user = match to_user {
            Some(u) if u == user || u == route.number => u,
            _ => route.dialed.clone(),
        };
        let new_to = swap_user(&to, &orig_user, &route.dialed).unwrap_or(to);
        out.set("To", new_to.clone());
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
        out.push_front("Record-Route", self.record_route(from.transport));
        if from.transport != target.transport {
            out.push_front("Record-Route", self.record_route(target.transport));
        }
        let (our_via, branch) = self.new_via(target.transport);
        out.push_front("Via", our_via.clone());
        let request = out.to_bytes();

        let down = DownBase {
            ruri: new_ruri,
            via: our_via,
            routes: Vec::new(),
            from: msg.header("From").unwrap_or_default().to_string(),
            to: new_to,
            call_id: msg.call_id.clone(),
            cseq: msg.cseq,
        };
        let t1 = self.cfg.timers.t1;
        let mut txn = Txn::new(
            "INVITE",
            server_key(msg, &Method::Invite),
            up,
            base,
            new_tag(),
            branch,
            target,
            request.clone(),
            down,
            t1,
        );
        txn.last_response = Some(trying);
        txn.call = Some(CallCtx {
            call_id: call.clone(),
            trunk: trunk.clone(),
            started: now,
            saw_18x: false,
        });
        txn.dialog = Some(msg.call_id.clone());
        if orig_user != route.dialed {
            txn.swap = Some(("To", route.dialed.clone(), orig_user.clone()));
        }
        let Some(id) = self.txns.insert(txn) else {
            return;
        };
        let long = self.cfg.timers.long();
        let timer_c = self.cfg.timers.timer_c;
        self.dialogs.insert(
            msg.call_id.clone(),
            Dialog {
                c2c_call_id: call,
                tenant: tenant.clone(),
                trunk: trunk.clone(),
                caller_tag: msg.from_tag.clone().unwrap_or_default(),
                upstream: up,
                carrier: target,
                orig_user,
                dialed_user: route.dialed.clone(),
                answered: false,
                ended: false,
                expires: now + timer_c + long * 3,
            },
        );
        if target.transport == Transport::Udp {
            self.txns.arm(id, TxnTimer::Retransmit, now + t1);
        }
        self.txns.arm(id, TxnTimer::Timeout, now + long);
        self.txns.arm(id, TxnTimer::C, now + timer_c);
        self.txns
            .arm(id, TxnTimer::Expire, now + timer_c + long * 2);
        self.send(target, request);
        tracing::info!(tenant = %tenant, trunk = %trunk, number = %mask(&route.number), "SIP INVITE relayed to carrier");
    }

    /// Parses a trunk's `carrier` URI and finds where to send.
    fn carrier(&self, carrier: &str) -> Option<(SipUri, Flow)> {
        let u = parse_uri(carrier).ok()?;
        let transport = Transport::from_param(u.transport.as_deref())?;
        let addr = match u.socket_addr() {
            Some(a) => a,
            None => {
                let host = match &u.host {
                    crate::parse::Host::Name(n) => n.clone(),
                    crate::parse::Host::Ip(ip) => ip.to_string(),
                };
                self.resolver.lookup(&host, u.port.unwrap_or(5060))?
            }
        };
        Some((
            u,
            Flow {
                transport,
                addr,
                conn: None,
            },
        ))
    }

    /// Refuses a new call with a final response from a local transaction (absorbs
    /// retransmissions and the ACK, retransmits over UDP), counting and observing it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn refuse(
        &mut self,
        now: Instant,
        from: Flow,
        msg: &SipMsg,
        trunk: Option<&str>,
        call: Option<String>,
        code: u16,
        reason: &str,
        extra: Vec<(&str, String)>,
    ) {
        let base = ReplyBase::from_msg(msg, from.addr);
        let up = reply_flow(from, &msg.via);
        let tag = new_tag();
        let data = reply(&base, code, reason, Some(&tag), &extra);
        self.send(up, data.clone());
        if let Some(trunk) = trunk {
            self.metrics.response(trunk, code);
        }
        if let Some(call_id) = call {
            self.observe(Observation::Response {
                call_id: call_id.clone(),
                code,
            });
            self.observe(Observation::End {
                call_id,
                code: Some(code),
            });
        }
        let t1 = self.cfg.timers.t1;
        let down = DownBase {
            ruri: String::new(),
            via: String::new(),
            routes: Vec::new(),
            from: String::new(),
            to: String::new(),
            call_id: msg.call_id.clone(),
            cseq: msg.cseq,
        };
        // A branch nobody can answer to: local transactions have no downstream side.
        let branch = format!("local-{}", new_tag());
        let mut txn = Txn::new(
            "INVITE",
            server_key(msg, &Method::Invite),
            up,
            base,
            tag,
            branch,
            up,
            data.clone(),
            down,
            t1,
        );
        txn.state = ClientState::Completed;
        txn.final_sent = Some(code);
        txn.last_response = Some(data);
        if let Some(id) = self.txns.insert(txn) {
            if up.transport == Transport::Udp {
                self.txns.arm(id, TxnTimer::FinalRetransmit, now + t1);
            }
            self.txns
                .arm(id, TxnTimer::Expire, now + self.cfg.timers.long());
        }
    }
}

fn valid_call_id(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= MAX_CALL_ID
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}
