//! New outbound calls: an INVITE without To tag from an allowed LiveKit node.
//!
//! Admission ([`Proxy::admit`]) decides, in this order: Request-URI, loop check,
//! tenant/trunk, DLT gate, carrier address, tenant caps (concurrency, then rate), a
//! Call-ID already in a dialog, capacity. An admitted call is forwarded
//! ([`Proxy::forward_invite`]: 100 Trying, rewrite, Via/Record-Route, forward); a refused
//! one gets its final response from a local transaction ([`Proxy::refuse`]), so
//! retransmissions and the ACK are absorbed and nothing reaches a carrier.

use bytes::Bytes;
use tokio::time::Instant;

use c2c_dialplan::mask;

use super::media::Opened;
use super::{is_c2c_header, new_tag, relay_hop, reply_flow, server_key, Proxy};
use crate::dialog::Dialog;
use crate::flow::{Flow, Transport};
use crate::message::{OutRequest, SipMsg};
use crate::observer::Observation;
use crate::parse::{uri as parse_uri, Method, SipUri};
use crate::response::{reply, ReplyBase};
use crate::tenant::{identify, swap_user, CallRoute};
use crate::txn::{CallCtx, ClientState, DownBase, NewTxn, Txn, TxnTimer};
use c2c_media::Side;
use c2c_tenancy::{MediaMode, Policy};

/// Longest `X-C2C-Call-Id` accepted for correlation.
const MAX_CALL_ID: usize = 128;

/// A new call's INVITE and what every answer to it needs.
pub(super) struct Invite<'a> {
    pub now: Instant,
    /// Where it came from: an allowed LiveKit SIP node.
    pub from: Flow,
    pub msg: &'a SipMsg,
    /// The Request-URI as received.
    pub uri: &'a str,
    /// `X-C2C-Call-Id` when present and well formed: what observations are correlated by.
    pub call: Option<String>,
}

/// Why a new call is refused: the final response LiveKit gets.
pub(super) struct Refusal {
    /// The trunk the response is counted against, once the call has one.
    trunk: Option<String>,
    code: u16,
    reason: &'static str,
    extra: Vec<(&'static str, String)>,
}

impl Refusal {
    pub(super) fn new(code: u16, reason: &'static str) -> Self {
        Self {
            trunk: None,
            code,
            reason,
            extra: Vec::new(),
        }
    }

    pub(super) fn on_trunk(mut self, trunk: &str) -> Self {
        self.trunk = Some(trunk.to_string());
        self
    }

    pub(super) fn with(mut self, header: &'static str, value: String) -> Self {
        self.extra.push((header, value));
        self
    }

    /// The final response's code and reason phrase.
    pub(super) fn status(&self) -> (u16, &'static str) {
        (self.code, self.reason)
    }
}

/// A call let through: its route and where the carrier is.
pub(super) struct Admitted {
    route: CallRoute,
    /// The Request-URI user LiveKit dialled.
    user: String,
    /// The trunk's carrier URI, and the flow it resolved to.
    carrier: SipUri,
    target: Flow,
    /// An anchored trunk's ports and rewritten offer.
    anchor: Option<Opened>,
}

/// The INVITE as the carrier gets it, and what its transaction must remember.
struct Rewritten {
    request: Bytes,
    ruri: String,
    via: String,
    branch: String,
    /// To with the dialled user.
    to: String,
    /// The To user LiveKit sent, put back on what flows upstream.
    orig_user: String,
}

impl Proxy {
    /// A new call from LiveKit (see `inbound.rs` for how an initial INVITE is classified).
    pub(super) fn outbound_invite(&mut self, now: Instant, from: Flow, msg: &SipMsg, uri: &str) {
        let call = msg
            .header("X-C2C-Call-Id")
            .map(str::trim)
            .filter(|c| valid_call_id(c))
            .map(str::to_string);
        let invite = Invite {
            now,
            from,
            msg,
            uri,
            call,
        };
        match self.admit(&invite) {
            Ok(admitted) => self.forward_invite(invite, admitted),
            Err(refusal) => self.refuse(invite, refusal),
        }
    }

    /// Decides whether a new call goes through. Counts what it refuses in the metrics
    /// (DLT, caps) and takes the call's slot of the tenant's rate when it gets that far.
    pub(super) fn admit(&mut self, inv: &Invite<'_>) -> Result<Admitted, Refusal> {
        let msg = inv.msg;
        let ruri = parse_uri(inv.uri).map_err(|e| {
            let (code, reason) = e.status();
            Refusal::new(code, reason)
        })?;
        let user = ruri.user.ok_or_else(|| Refusal::new(404, "Not Found"))?;
        if self.looped(msg) {
            return Err(Refusal::new(482, "Loop Detected"));
        }
        // One policy for the whole decision: the route and the DLT rules read the same.
        let policy = self.policy.policy();
        let route = self.route(&policy, msg, &user)?;
        let tenant = route.tenant.id.as_str();
        let trunk = route.trunk.label.as_str();
        if self.dlt.check(&route.tenant).is_err() {
            self.metrics.dlt_blocked.with_label_values(&[tenant]).inc();
            tracing::info!(tenant = %tenant, trunk = %trunk, "SIP INVITE refused: DLT outbound disabled");
            let warning = format!(
                "399 {} \"DLT Principal Entity verification pending\"",
                self.me.host
            );
            return Err(Refusal::new(403, "DLT outbound disabled")
                .on_trunk(trunk)
                .with("Warning", warning));
        }
        self.dlt_rules(&policy.gateway.dlt, msg, &route)?;
        let Some((carrier, target)) = self.carrier(&route.trunk.carrier) else {
            tracing::warn!(tenant = %tenant, trunk = %trunk, "SIP carrier address unusable or not resolved yet");
            return Err(self.unavailable("Service Unavailable").on_trunk(trunk));
        };
        self.within_caps(tenant, inv.now)
            .map_err(|r| r.on_trunk(trunk))?;
        if self.dialogs.contains(&msg.call_id) {
            return Err(Refusal::new(482, "Loop Detected").on_trunk(trunk));
        }
        if self.txns.is_full() || self.dialogs.is_full() {
            return Err(self.unavailable("Service Unavailable").on_trunk(trunk));
        }
        // Last: the ports are taken only for a call that goes through.
        let anchor = match route.trunk.media {
            MediaMode::Anchor => Some(self.anchor_offer(msg, trunk, Side::Livekit)?),
            MediaMode::Direct => None,
        };
        Ok(Admitted {
            route,
            user,
            carrier,
            target,
            anchor,
        })
    }

    /// The per-call DLT rules (caller-ID series, calling hours, DND) for a call that may
    /// not have come through the API: the trunk's category unless LiveKit carried the
    /// one the request named (`X-C2C-Category`), the caller ID from `From`, the number
    /// the route found in the Request-URI. Refused with 403 and a
    /// `Warning` naming the rule (RFC 3261 20.43, code 399: miscellaneous).
    fn dlt_rules(
        &self,
        rules: &c2c_tenancy::DltRules,
        msg: &SipMsg,
        route: &CallRoute,
    ) -> Result<(), Refusal> {
        let (caller_id, _) = crate::did::caller(msg.header("From").unwrap_or_default());
        let category = msg
            .header("X-C2C-Category")
            .and_then(|c| c2c_tenancy::CallCategory::parse(c.trim()));
        let facts = c2c_dlt::CallFacts {
            trunk: &route.trunk,
            category,
            caller_id: &caller_id,
            number: &route.number,
        };
        let Err(r) = self.dlt.check_call(rules, &route.tenant, &facts) else {
            return Ok(());
        };
        let (tenant, trunk) = (route.tenant.id.as_str(), route.trunk.label.as_str());
        tracing::info!(tenant = %tenant, trunk = %trunk, rule = r.rule.as_str(), "SIP INVITE refused by a DLT rule");
        // A quoted-string: no quotes or backslashes inside, one line.
        let text: String = r
            .message
            .chars()
            .map(|c| match c {
                '"' | '\\' => '\'',
                c if c.is_control() => ' ',
                c => c,
            })
            .collect();
        let warning = format!("399 {} \"{}: {text}\"", self.me.host, r.rule.as_str());
        let reason = match r.rule {
            c2c_dlt::DltRule::CallerIdSeries => "Caller ID Not Allowed",
            c2c_dlt::DltRule::DndBlocked => "DND Blocked",
            c2c_dlt::DltRule::OutsideCallingHours => "Outside Calling Hours",
            c2c_dlt::DltRule::DndUnavailable => "DND List Unavailable",
        };
        Err(Refusal::new(403, reason)
            .on_trunk(trunk)
            .with("Warning", warning))
    }

    /// Tenant and trunk of the call (see [`identify`]).
    fn route(&self, policy: &Policy, msg: &SipMsg, user: &str) -> Result<CallRoute, Refusal> {
        let named = |h: &str| msg.header(h).map(str::trim).filter(|v| !v.is_empty());
        identify(policy, user, named("X-C2C-Tenant"), named("X-C2C-Trunk")).map_err(|e| {
            tracing::info!(number = %mask(user), reason = %e, "SIP INVITE refused: no trunk");
            let (code, reason) = e.status();
            Refusal::new(code, reason)
        })
    }

    /// The tenant's caps: calls at once, then new calls per second (which takes a slot).
    pub(super) fn within_caps(&mut self, tenant: &str, now: Instant) -> Result<(), Refusal> {
        let caps = self.cfg.calls.caps(tenant);
        if self.dialogs.active(tenant) >= caps.max_concurrent {
            self.metrics
                .limited
                .with_label_values(&[tenant, "concurrent"])
                .inc();
            return Err(self.unavailable("Concurrent Call Limit"));
        }
        if !self.rate.allow(tenant, caps.calls_per_second, now) {
            self.metrics
                .limited
                .with_label_values(&[tenant, "cps"])
                .inc();
            return Err(self.unavailable("Call Rate Limit"));
        }
        Ok(())
    }

    /// A 503 that tells LiveKit when to try again.
    pub(super) fn unavailable(&self, reason: &'static str) -> Refusal {
        let retry = self.cfg.calls.retry_after.as_secs().max(1).to_string();
        Refusal::new(503, reason).with("Retry-After", retry)
    }

    /// Forwards an admitted INVITE to its carrier and opens its transaction and dialog.
    pub(super) fn forward_invite(&mut self, inv: Invite<'_>, mut a: Admitted) {
        let Invite {
            now,
            from,
            msg,
            call,
            ..
        } = inv;
        // Accepted: 100 Trying at once, then forward.
        let base = ReplyBase::from_msg(msg, from.addr);
        let up = reply_flow(from, &msg.via);
        let trying = reply(&base, 100, "Trying", None, &[]);
        self.send(up, trying.clone());

        let out = self.rewrite_invite(from, msg, &a);
        let anchor = a.anchor.take();
        let route = &a.route;
        let tenant = route.tenant.id.clone();
        let trunk = route.trunk.label.clone();
        let target = a.target;
        let t1 = self.cfg.timers.t1;
        let mut txn = Txn::new(NewTxn {
            method: "INVITE",
            server_key: server_key(msg, &Method::Invite),
            upstream: up,
            reply: base,
            local_tag: new_tag(),
            branch: out.branch,
            target,
            request: out.request.clone(),
            base: DownBase {
                ruri: out.ruri,
                via: out.via,
                routes: Vec::new(),
                from: msg.header("From").unwrap_or_default().to_string(),
                to: out.to,
                call_id: msg.call_id.clone(),
                cseq: msg.cseq,
            },
            t1,
        });
        txn.last_response = Some(trying);
        txn.call = Some(CallCtx {
            call_id: call.clone(),
            trunk: trunk.clone(),
            started: now,
            saw_18x: false,
            inbound: false,
        });
        txn.dialog = Some(msg.call_id.clone());
        if out.orig_user != route.dialed {
            txn.swap = Some(("To", route.dialed.clone(), out.orig_user.clone()));
        }
        txn.media_from = anchor.is_some().then_some(Side::Livekit);
        let Some(id) = self.txns.insert(txn) else {
            if let Some(o) = anchor {
                self.unanchor(o);
            }
            return;
        };
        let long = self.cfg.timers.long();
        let timer_c = self.cfg.timers.timer_c;
        self.dialogs.insert(
            msg.call_id.clone(),
            Dialog {
                c2c_call_id: call.clone(),
                tenant: tenant.clone(),
                trunk: trunk.clone(),
                inbound: false,
                caller_tag: msg.from_tag.clone().unwrap_or_default(),
                upstream: up,
                callee: target,
                orig_user: out.orig_user,
                dialed_user: route.dialed.clone(),
                answered: false,
                ended: false,
                expires: now + timer_c + long * 3,
                forwarded: None,
                media: anchor.is_some(),
                dead_air: false,
            },
        );
        if let Some(o) = anchor {
            self.start_anchor(&msg.call_id, call.clone(), &trunk, o);
        }
        if target.transport == Transport::Udp {
            self.txns.arm(id, TxnTimer::Retransmit, now + t1);
        }
        self.txns.arm(id, TxnTimer::Timeout, now + long);
        self.txns.arm(id, TxnTimer::C, now + timer_c);
        self.txns
            .arm(id, TxnTimer::Expire, now + timer_c + long * 2);
        self.send(target, out.request);
        tracing::info!(tenant = %tenant, trunk = %trunk, number = %mask(&route.number), "SIP INVITE relayed to carrier");
    }

    /// The carrier's INVITE: Request-URI and To carry `prefix + number`, our headers
    /// (`X-C2C-*`, Route) are gone, and our Record-Route and Via are on top.
    fn rewrite_invite(&self, from: Flow, msg: &SipMsg, a: &Admitted) -> Rewritten {
        let route = &a.route;
        let ruri = format!(
            "sip:{}@{}{}",
            route.dialed,
            a.carrier.host_port(),
            a.carrier.params
        );
        let mut out = OutRequest::from_msg(msg, format!("INVITE {ruri} SIP/2.0"));
        out.retain(|n, _| !is_c2c_header(n) && !n.eq_ignore_ascii_case("Route"));
        if let Some(o) = &a.anchor {
            out.body = o.body.clone();
        }
        let to = msg.header("To").unwrap_or_default().to_string();
        let to_user = crate::hdr::name_addr(&to)
            .ok()
            .and_then(|n| parse_uri(n.uri).ok())
            .and_then(|u| u.user);
        let orig_user = match to_user {
            Some(u) if u == a.user || u == route.number => u,
            _ => route.dialed.clone(),
        };
        let new_to = swap_user(&to, &orig_user, &route.dialed).unwrap_or(to);
        out.set("To", new_to.clone());
        relay_hop(&mut out, msg, from);
        out.push_front("Record-Route", self.record_route(from.transport));
        if from.transport != a.target.transport {
            out.push_front("Record-Route", self.record_route(a.target.transport));
        }
        let (via, branch) = self.new_via(a.target.transport);
        out.push_front("Via", via.clone());
        Rewritten {
            request: out.to_bytes(),
            ruri,
            via,
            branch,
            to: new_to,
            orig_user,
        }
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
    pub(super) fn refuse(&mut self, inv: Invite<'_>, r: Refusal) {
        let Invite {
            now,
            from,
            msg,
            call,
            ..
        } = inv;
        let base = ReplyBase::from_msg(msg, from.addr);
        let up = reply_flow(from, &msg.via);
        let tag = new_tag();
        let data = reply(&base, r.code, r.reason, Some(&tag), &r.extra);
        self.send(up, data.clone());
        if let Some(trunk) = &r.trunk {
            self.metrics.response(trunk, r.code);
        }
        if let Some(call_id) = call {
            self.observe(Observation::Response {
                call_id: call_id.clone(),
                code: r.code,
            });
            self.observe(Observation::End {
                call_id,
                code: Some(r.code),
            });
        }
        let t1 = self.cfg.timers.t1;
        let mut txn = Txn::new(NewTxn {
            method: "INVITE",
            server_key: server_key(msg, &Method::Invite),
            upstream: up,
            reply: base,
            local_tag: tag,
            // A branch nobody can answer to: local transactions have no downstream side.
            branch: format!("local-{}", new_tag()),
            target: up,
            request: data.clone(),
            base: DownBase {
                ruri: String::new(),
                via: String::new(),
                routes: Vec::new(),
                from: String::new(),
                to: String::new(),
                call_id: msg.call_id.clone(),
                cseq: msg.cseq,
            },
            t1,
        });
        txn.state = ClientState::Completed;
        txn.final_sent = Some(r.code);
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

pub(super) fn valid_call_id(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= MAX_CALL_ID
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}
