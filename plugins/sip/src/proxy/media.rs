//! Anchoring as messages pass (see `crate::media`): the offer of an anchored trunk's
//! INVITE read and pointed at the carrier-facing pair at admission, every later body
//! (18x/2xx answers, re-INVITEs, UPDATEs, their answers, an ACK's answer) pointed at
//! the pair facing the side it goes to, and the relay told where each side wants audio.

use bytes::Bytes;

use c2c_media::{sdp, AudioTarget, Side};

use super::invite::Refusal;
use super::Proxy;
use crate::media::anchors::{other, Legs};
use crate::media::{LegSockets, MediaOp, Start};
use crate::message::SipMsg;
use crate::txn::TxnId;

/// An anchored INVITE's ports and rewritten offer, from admission to forwarding.
pub(super) struct Opened {
    pub legs: Legs,
    pub sockets: LegSockets,
    /// The side that made the offer, and where it wants audio.
    pub offerer: (Side, AudioTarget),
    /// The offer as the other side gets it.
    pub body: Bytes,
}

/// The body of `msg` when it is SDP (`Content-Type: application/sdp`, any parameters).
fn sdp_body(msg: &SipMsg) -> Option<&str> {
    let ct = msg.header("Content-Type")?;
    let media = ct.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/sdp") {
        return None;
    }
    std::str::from_utf8(msg.body())
        .ok()
        .filter(|b| !b.trim().is_empty())
}

impl Proxy {
    /// An anchored trunk's INVITE from `from`: its offer read, a port pair per side
    /// bound, the offer pointed at the pair facing the other side. 488 (with a Warning
    /// saying why) for an offer that cannot be anchored, 503 when the port range is used
    /// up.
    pub(super) fn anchor_offer(
        &mut self,
        msg: &SipMsg,
        trunk: &str,
        from: Side,
    ) -> Result<Opened, Refusal> {
        let Some(body) = sdp_body(msg) else {
            return Err(self.not_acceptable(trunk, "anchored trunk: the INVITE needs an SDP offer"));
        };
        // Read before any port is taken: an offer that cannot be anchored costs nothing.
        let offered = sdp::audio_target(body)
            .map_err(|e| self.not_acceptable(trunk, &format!("anchored trunk: {e}")))?;
        let (legs, sockets) = match self.anchors.open() {
            Ok(o) => o,
            Err(e) => {
                self.media_metrics
                    .refused
                    .with_label_values(&["ports_exhausted"])
                    .inc();
                tracing::warn!(trunk = %trunk, error = %e, "anchored call refused with 503: no media ports");
                return Err(self.unavailable("Media Ports Exhausted").on_trunk(trunk));
            }
        };
        match sdp::rewrite(body, self.anchors.address(), legs.facing(other(from))) {
            Ok(b) => Ok(Opened {
                legs,
                sockets,
                offerer: (from, offered),
                body: Bytes::from(b),
            }),
            Err(e) => {
                drop(sockets);
                self.anchors.release(legs);
                Err(self.not_acceptable(trunk, &format!("anchored trunk: {e}")))
            }
        }
    }

    fn not_acceptable(&self, trunk: &str, why: &str) -> Refusal {
        self.media_metrics.refused.with_label_values(&["sdp"]).inc();
        tracing::info!(trunk = %trunk, why, "anchored INVITE refused with 488");
        let warning = format!("399 {} \"{}\"", self.me.host, why.replace('"', "'"));
        Refusal::new(488, "Not Acceptable Here")
            .on_trunk(trunk)
            .with("Warning", warning)
    }

    /// The forwarded INVITE's relay: remembered under its SIP Call-ID and started.
    pub(super) fn start_anchor(
        &mut self,
        key: &str,
        call_id: Option<String>,
        trunk: &str,
        o: Opened,
    ) {
        self.anchors.add(key.to_string(), o.legs);
        self.out
            .push(super::Action::Media(MediaOp::Start(Box::new(Start {
                key: key.to_string(),
                call_id,
                trunk: trunk.to_string(),
                legs: o.legs,
                sockets: o.sockets,
                offerer: o.offerer,
            }))));
    }

    /// A body from `from` in anchored call `key`: where `from` wants audio, and the body
    /// the other side gets (naming the pair facing it). `None`: not SDP, not anchored,
    /// or not anchorable (passed as it was, and counted). The relay is told separately
    /// ([`Self::media_remote`]): an offer only counts once it is accepted.
    pub(super) fn anchor_body(
        &mut self,
        key: &str,
        from: Side,
        msg: &SipMsg,
    ) -> Option<(AudioTarget, Bytes)> {
        let body = sdp_body(msg)?;
        match self.anchors.pass(key, from, body)? {
            Ok((target, rewritten)) => Some((target, Bytes::from(rewritten))),
            Err(e) => {
                self.media_metrics.sdp_unanchored.inc();
                tracing::warn!(error = %e, "anchored call's SDP passed unchanged: its media bypasses the edge");
                None
            }
        }
    }

    /// Tells the relay where `side` of call `key` wants audio now.
    pub(super) fn media_remote(&mut self, key: &str, side: Side, target: AudioTarget) {
        self.out.push(super::Action::Media(MediaOp::Remote {
            key: key.to_string(),
            side,
            target,
        }));
    }

    /// A response to transaction `id`, rewritten toward the request's sender when the
    /// call is anchored and it carries SDP (an answer: the relay follows it at once). A
    /// 2xx also accepts the request's own offer, which the relay follows then.
    pub(super) fn anchor_response(&mut self, id: TxnId, msg: &SipMsg, code: u16) -> Option<Bytes> {
        let t = self.txns.get_mut(id)?;
        let request_side = t.media_from?;
        let key = t.dialog.clone()?;
        let accepted = (200..300)
            .contains(&code)
            .then(|| t.media_offer.take())
            .flatten();
        if let Some(offer) = accepted {
            self.media_remote(&key, request_side, offer);
        }
        let (target, body) = self.anchor_body(&key, other(request_side), msg)?;
        self.media_remote(&key, other(request_side), target);
        Some(body)
    }

    /// A held inbound call about to be forwarded, on an anchored trunk: its carrier's
    /// offer read and pointed at the LiveKit-facing pair. When that fails the carrier
    /// gets the refusal's final at once (488 or 503) and the call is over. `None`: not
    /// anchored (or not held: the forward answers that).
    pub(super) fn anchor_inbound(
        &mut self,
        now: tokio::time::Instant,
        sip_call_id: &str,
        tenant: &str,
    ) -> Result<Option<Opened>, crate::inbound::InboundError> {
        let Some(trunk) = self.dialogs.get(sip_call_id).map(|d| d.trunk.clone()) else {
            return Ok(None);
        };
        let anchored = self.policy.policy().tenant(tenant).is_some_and(|t| {
            t.trunks
                .iter()
                .any(|tr| tr.label == trunk && tr.media == c2c_tenancy::MediaMode::Anchor)
        });
        let Some(h) = self.held.get(sip_call_id).filter(|_| anchored) else {
            return Ok(None);
        };
        let invite = h.invite.clone();
        match self.anchor_offer(&invite, &trunk, Side::Carrier) {
            Ok(o) => Ok(Some(o)),
            Err(refusal) => {
                let (code, reason) = refusal.status();
                if let Some(h) = self.held.remove(sip_call_id) {
                    self.end_held(
                        now,
                        h.txn,
                        code,
                        reason,
                        crate::metrics::InboundOutcome::Rejected,
                    );
                }
                Err(crate::inbound::InboundError::Media { code, reason })
            }
        }
    }

    /// Closes an opened anchor that will not run, and gives its ports back.
    pub(super) fn unanchor(&mut self, o: Opened) {
        let legs = o.legs;
        drop(o);
        self.anchors.release(legs);
    }

    /// The relay of anchored call `key` heard dead air. The gateway ends the call and
    /// LiveKit's BYE normally ends the dialog within a second; when none comes (both
    /// sides gone, or the carrier's answer lost), the dialog and its ports would wait
    /// for `max_dialog_duration`. So it is forgotten 64*T1 (32 s) from now unless a BYE
    /// ends it first — what an SBC does after its media timeout. Nothing to send.
    pub fn dead_air(&mut self, now: tokio::time::Instant, key: &str) {
        let at = now + self.cfg.timers.long();
        if let Some(d) = self.dialogs.get_mut(key) {
            d.dead_air = true;
            d.expires = d.expires.min(at);
        }
    }

    /// The call's first 2xx passed: the relay starts its after-answer watch.
    pub(super) fn anchor_answered(&mut self, key: &str) {
        self.out.push(super::Action::Media(MediaOp::Answered {
            key: key.to_string(),
        }));
    }
}
