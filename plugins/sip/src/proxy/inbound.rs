//! Inbound calls, first half: a carrier's INVITE for one of a tenant's numbers (DID).
//!
//! Classification ([`Proxy::initial_invite`]): an INVITE from an allowed LiveKit node
//! carrying `X-C2C-Call-Id` is outbound; otherwise one whose Request-URI user (else To
//! user) is an inbound DID is inbound; otherwise LiveKit's INVITEs are outbound and
//! anyone else's get 404 (no such number).
//!
//! Admission ([`Proxy::admit_inbound`]) decides, in this order: Request-URI, loop
//! check, DID (404), the DID's trunk sources (403), an SDP offer (488: LiveKit does not
//! take delayed offers), a Call-ID already in a dialog (482), the tenant's caps (503),
//! capacity (503). Refusals get their final from a local transaction, like outbound
//! ones. An admitted call is held ([`Proxy::hold`]): `100 Trying`, `180 Ringing` with
//! our own To tag, a dialog entry (it counts against the tenant's concurrency cap) and
//! the INVITE kept for the forward (`held.rs`), then [`Observation::Inbound`].
//!
//! Every outcome is counted in `c2c_sip_inbound_total{outcome}`; the responses the
//! carrier gets are counted on its trunk (`c2c_sip_responses_total`) once the source is
//! known to be that trunk's.

use std::sync::Arc;

use tokio::time::Instant;

use c2c_dialplan::mask;
use c2c_tenancy::Tenant;

use super::held::{Held, RING_REFRESH};
use super::invite::{Invite, Refusal};
use super::{new_tag, reply_flow, server_key, Proxy};
use crate::carriers::trunk_admits;
use crate::dialog::Dialog;
use crate::did;
use crate::flow::{Flow, Transport};
use crate::message::SipMsg;
use crate::metrics::InboundOutcome;
use crate::observer::{InboundCall, Observation};
use crate::parse::Method;
use crate::response::{reply, ReplyBase};
use crate::txn::{CallCtx, DownBase, NewTxn, Txn, TxnTimer};

/// The number a carrier called, as the policy knows it.
pub(super) struct Called {
    /// E.164, as declared in the tenant's `[[inbound.numbers]]`.
    pub did: String,
    /// Its tenant, and the label of the trunk it arrives on.
    pub tenant: Arc<Tenant>,
    pub trunk: String,
}

/// A held-to-be call: what the hold and the forward need.
pub(super) struct AdmittedInbound {
    called: Called,
    /// The To user as the carrier sent it: put back on everything that flows to it.
    to_user: String,
}

/// A port pair to try an anchored offer's rewrite on: the rewrite refuses what cannot be
/// anchored whatever the ports (the real ones are taken at the forward).
const PROBE: c2c_media::PortPair = c2c_media::PortPair {
    rtp: 20_000,
    rtcp: 20_001,
};

impl Proxy {
    /// Every initial INVITE (no To tag) comes here: outbound or inbound (see the module
    /// documentation).
    pub(super) fn initial_invite(&mut self, now: Instant, from: Flow, msg: &SipMsg, uri: &str) {
        let livekit = self.cfg.allowed_region(from.addr.ip()).is_some();
        if !(livekit && msg.header("X-C2C-Call-Id").is_some()) {
            let called = self.called(msg, uri);
            if called.is_some() || !livekit {
                return self.inbound_invite(now, from, msg, uri, called);
            }
        }
        self.outbound_invite(now, from, msg, uri);
    }

    /// The inbound number `msg` calls: its Request-URI user, else its To user, in any
    /// of the shapes [`did::e164`] accepts.
    fn called(&self, msg: &SipMsg, uri: &str) -> Option<Called> {
        let policy = self.policy.policy();
        let to = msg.header("To").and_then(did::header_user);
        [did::uri_user(uri), to]
            .into_iter()
            .flatten()
            .filter_map(|u| did::e164(&u))
            .find_map(|d| {
                policy.inbound_number(&d).map(|(t, n)| Called {
                    did: d.clone(),
                    tenant: t.clone(),
                    trunk: n.trunk.clone(),
                })
            })
    }

    fn inbound_invite(
        &mut self,
        now: Instant,
        from: Flow,
        msg: &SipMsg,
        uri: &str,
        called: Option<Called>,
    ) {
        let inv = Invite {
            now,
            from,
            msg,
            uri,
            call: None,
        };
        match self.admit_inbound(&inv, called) {
            Ok(a) => self.hold(inv, a),
            Err((outcome, r)) => {
                self.metrics.inbound(outcome);
                self.refuse(inv, r);
            }
        }
    }

    /// Decides whether an inbound call is held (see the module documentation).
    fn admit_inbound(
        &mut self,
        inv: &Invite<'_>,
        called: Option<Called>,
    ) -> Result<AdmittedInbound, (InboundOutcome, Refusal)> {
        let (msg, ip) = (inv.msg, inv.from.addr.ip());
        if self.looped(msg) {
            return Err((InboundOutcome::Invalid, Refusal::new(482, "Loop Detected")));
        }
        let Some(called) = called else {
            let user = did::uri_user(inv.uri).unwrap_or_default();
            tracing::info!(source = %ip, number = %mask(&user), "SIP inbound INVITE refused: not an inbound number");
            return Err((InboundOutcome::UnknownDid, Refusal::new(404, "Not Found")));
        };
        let tenant = called.tenant.id.clone();
        let label = called.trunk.clone();
        let admits = called
            .tenant
            .trunk(&label)
            .is_some_and(|t| trunk_admits(t, ip, &self.resolver));
        if !admits {
            tracing::info!(tenant = %tenant, trunk = %label, source = %ip, did = %mask(&called.did), "SIP inbound INVITE refused: source is not the trunk's carrier");
            return Err((
                InboundOutcome::ForbiddenSource,
                Refusal::new(403, "Forbidden"),
            ));
        }
        if !has_sdp_offer(msg) {
            let warning = format!(
                "399 {} \"SDP offer required (no delayed offer)\"",
                self.me.host
            );
            return Err((
                InboundOutcome::NoSdp,
                Refusal::new(488, "Not Acceptable Here")
                    .on_trunk(&label)
                    .with("Warning", warning),
            ));
        }
        // An anchored trunk's offer must be one the edge can anchor: refused at the
        // door rather than after an agent accepted the call.
        let anchored = called
            .tenant
            .trunk(&label)
            .is_some_and(|t| t.media == c2c_tenancy::MediaMode::Anchor);
        if anchored {
            let offer = std::str::from_utf8(msg.body()).unwrap_or("");
            if let Err(e) = c2c_media::sdp::audio_target(offer)
                .and_then(|_| c2c_media::sdp::rewrite(offer, self.anchors.address(), PROBE))
            {
                let warning = format!(
                    "399 {} \"anchored trunk: {}\"",
                    self.me.host,
                    e.to_string().replace('"', "'")
                );
                return Err((
                    InboundOutcome::NoSdp,
                    Refusal::new(488, "Not Acceptable Here")
                        .on_trunk(&label)
                        .with("Warning", warning),
                ));
            }
        }
        if self.dialogs.contains(&msg.call_id) {
            return Err((
                InboundOutcome::Invalid,
                Refusal::new(482, "Loop Detected").on_trunk(&label),
            ));
        }
        self.within_caps(&tenant, inv.now)
            .map_err(|r| (InboundOutcome::Limited, r.on_trunk(&label)))?;
        if self.txns.is_full() || self.dialogs.is_full() {
            return Err((
                InboundOutcome::Limited,
                self.unavailable("Service Unavailable").on_trunk(&label),
            ));
        }
        let to_user = msg
            .header("To")
            .and_then(did::header_user)
            .or_else(|| did::uri_user(inv.uri))
            .unwrap_or_else(|| called.did.clone());
        Ok(AdmittedInbound { called, to_user })
    }

    /// Holds an admitted inbound call: 100 and 180 to the carrier, a transaction that
    /// answers retransmissions with the 180 and rings again every minute, a dialog
    /// entry, the kept INVITE, and the report to the gateway.
    fn hold(&mut self, inv: Invite<'_>, a: AdmittedInbound) {
        let Invite { now, from, msg, .. } = inv;
        let AdmittedInbound { called, to_user } = a;
        let tenant = called.tenant.id.clone();
        let trunk = called.trunk.clone();
        let base = ReplyBase::from_msg(msg, from.addr);
        let up = reply_flow(from, &msg.via);
        let tag = new_tag();
        let contact = self.contact(up.transport);
        let ringing = reply(&base, 180, "Ringing", Some(&tag), &[("Contact", contact)]);
        let hold_max = self.cfg.inbound_hold_max;
        let long = self.cfg.timers.long();
        let inserted = self.dialogs.insert(
            msg.call_id.clone(),
            Dialog {
                c2c_call_id: None,
                tenant: tenant.clone(),
                trunk: trunk.clone(),
                inbound: true,
                caller_tag: msg.from_tag.clone().unwrap_or_default(),
                upstream: up,
                callee: up,
                orig_user: to_user.clone(),
                dialed_user: to_user.clone(),
                answered: false,
                ended: false,
                expires: now + hold_max + long * 3,
                forwarded: None,
                media: false,
                dead_air: false,
            },
        );
        let mut txn = Txn::new(NewTxn {
            method: "INVITE",
            server_key: server_key(msg, &Method::Invite),
            upstream: up,
            reply: base.clone(),
            local_tag: tag,
            // Nothing downstream yet: a branch nobody can answer to, until the forward.
            branch: format!("held-{}", new_tag()),
            target: up,
            request: bytes::Bytes::new(),
            base: DownBase {
                ruri: String::new(),
                via: String::new(),
                routes: Vec::new(),
                from: base.from.clone(),
                to: base.to.clone(),
                call_id: msg.call_id.clone(),
                cseq: msg.cseq,
            },
            t1: self.cfg.timers.t1,
        });
        txn.last_response = Some(ringing.clone());
        txn.call = Some(CallCtx {
            call_id: None,
            trunk: trunk.clone(),
            started: now,
            saw_18x: true,
            inbound: true,
        });
        txn.dialog = Some(msg.call_id.clone());
        let Some(id) = inserted.then(|| self.txns.insert(txn)).flatten() else {
            // Admission checked both tables under this same lock: not reached. Should it
            // be, nothing was sent and the carrier's retransmission gets a new decision.
            self.dialogs.remove(&msg.call_id);
            return;
        };
        self.send(up, reply(&base, 100, "Trying", None, &[]));
        self.send(up, ringing);
        self.metrics.response(&trunk, 180);
        self.txns.arm(id, TxnTimer::Ring, now + RING_REFRESH);
        self.txns.arm(id, TxnTimer::Hold, now + hold_max);
        let (caller, caller_name) = did::caller(msg.header("From").unwrap_or_default());
        tracing::info!(tenant = %tenant, trunk = %trunk, did = %mask(&called.did), caller = %mask(&caller), "SIP inbound call held");
        self.held.insert(
            msg.call_id.clone(),
            Held {
                txn: id,
                tenant: tenant.clone(),
                to_user,
                invite: msg.clone(),
                from,
            },
        );
        self.metrics.inbound(InboundOutcome::Held);
        self.observe(Observation::Inbound(InboundCall {
            sip_call_id: msg.call_id.clone(),
            tenant,
            trunk,
            did: called.did,
            caller,
            caller_name,
        }));
    }

    /// Our Contact on a dialog-creating response we send ourselves (the 180).
    fn contact(&self, t: Transport) -> String {
        match t {
            Transport::Udp => format!("<sip:{}:{}>", self.me.host, self.me.port),
            Transport::Tcp => format!("<sip:{}:{};transport=tcp>", self.me.host, self.me.port),
        }
    }
}

/// An SDP offer in the body (directly, or as a part of a multipart body).
fn has_sdp_offer(msg: &SipMsg) -> bool {
    let ct = msg
        .header("Content-Type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    !msg.body().is_empty() && (ct.starts_with("application/sdp") || ct.starts_with("multipart/"))
}
