//! How the gateway learns what the SIP edge saw, without this crate knowing about call
//! state: the gateway implements [`SipObserver`] and turns the calls into call events.

/// Observations of calls. Outbound calls (and inbound ones once forwarded to LiveKit)
/// are correlated by their c2c call id (`X-C2C-Call-Id`); held inbound calls by their
/// SIP Call-ID. Called outside the edge's locks, from its I/O tasks and from the
/// [`crate::InboundControl`] methods: implementations must be quick and must not block
/// (queue the event and return).
pub trait SipObserver: Send + Sync + 'static {
    /// A final (or 18x) response for the INVITE of a call correlated by X-C2C-Call-Id.
    /// For a forwarded inbound call only finals are reported (LiveKit's provisionals
    /// are absorbed: the carrier already rings on the edge's own 180).
    fn on_response(&self, call_id: &str, code: u16);
    /// 200 OK to the INVITE (answer). For a forwarded inbound call: LiveKit's 200,
    /// relayed to the carrier.
    fn on_answer(&self, call_id: &str);
    /// BYE seen in either direction for an answered call, or a final non-2xx.
    fn on_end(&self, call_id: &str, code: Option<u16>);

    /// A carrier's INVITE for one of a tenant's inbound numbers was accepted and is now
    /// held: the carrier got `100 Trying` and `180 Ringing`, nothing exists on LiveKit.
    /// Runs once per call, right after the 180 went out. The gateway finds an agent and
    /// then calls [`crate::InboundControl::forward`] or
    /// [`crate::InboundControl::reject`] with `call.sip_call_id`; until then the edge
    /// keeps ringing, at most `SipConfig::inbound_hold_max`. Default: ignored (an
    /// edge whose observer ignores it lets every inbound call expire with 480).
    fn on_inbound(&self, call: InboundCall) {
        let _ = call;
    }

    /// A held inbound call ended before the gateway decided: the caller cancelled, or
    /// the hold lasted `inbound_hold_max`. The carrier already has its final response
    /// (487 or 480); a later `forward`/`reject` for this Call-ID returns
    /// [`crate::InboundError::NotHeld`]. Never runs for a call the gateway forwarded or
    /// rejected itself. Default: ignored.
    fn on_inbound_gone(&self, sip_call_id: &str, why: InboundGone) {
        let _ = (sip_call_id, why);
    }

    /// An anchored call's media raised an event (docs/media.md):
    /// [`MediaEvent::MediaTimeout`] (no RTP from the carrier for `media_timeout` after
    /// the answer: the call should end with `disconnect_reason = media_timeout`) or
    /// [`MediaEvent::OneWayAudio`]. Each at most once per call. Default: ignored.
    fn on_media_event(&self, call_id: &str, event: MediaEvent) {
        let _ = (call_id, event);
    }

    /// An anchored call's relay stopped (the call ended or was forgotten): what it
    /// counted. Runs once per anchored call with an `X-C2C-Call-Id`. Default: ignored.
    fn on_media_report(&self, call_id: &str, report: &RelayReport) {
        let _ = (call_id, report);
    }
}

/// A held inbound call, as reported by [`SipObserver::on_inbound`]. No field holds
/// anything LiveKit- or room-related: none exists yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundCall {
    /// The carrier's SIP Call-ID: the handle for `forward`/`reject`.
    pub sip_call_id: String,
    /// Tenant owning the number called.
    pub tenant: String,
    /// Label of the tenant trunk the number arrives on (the carrier trunk).
    pub trunk: String,
    /// The number called, E.164 (as declared in the tenant's `[[inbound.numbers]]`).
    pub did: String,
    /// The caller: the From user, normalised to E.164 when it is an Indian number,
    /// else as sent.
    pub caller: String,
    /// The From display name, when the carrier sent one.
    pub caller_name: Option<String>,
}

use crate::media::{MediaEvent, RelayReport};

/// Why a held inbound call went away without a decision of the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundGone {
    /// The carrier sent CANCEL (or BYE on the early dialog): it got 200 and the INVITE
    /// 487 Request Terminated.
    CallerCancelled,
    /// Held for `SipConfig::inbound_hold_max`: the carrier got 480 Temporarily
    /// Unavailable.
    HoldExpired,
}

impl InboundGone {
    pub fn as_str(self) -> &'static str {
        match self {
            InboundGone::CallerCancelled => "caller_cancelled",
            InboundGone::HoldExpired => "hold_expired",
        }
    }
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopObserver;

impl SipObserver for NoopObserver {
    fn on_response(&self, _call_id: &str, _code: u16) {}
    fn on_answer(&self, _call_id: &str) {}
    fn on_end(&self, _call_id: &str, _code: Option<u16>) {}
}

/// One observation, carried out of the proxy core and delivered after its lock is released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    Response {
        call_id: String,
        code: u16,
    },
    Answer {
        call_id: String,
    },
    End {
        call_id: String,
        code: Option<u16>,
    },
    Inbound(InboundCall),
    InboundGone {
        sip_call_id: String,
        why: InboundGone,
    },
}

impl Observation {
    pub fn deliver(self, o: &dyn SipObserver) {
        match self {
            Observation::Response { call_id, code } => o.on_response(&call_id, code),
            Observation::Answer { call_id } => o.on_answer(&call_id),
            Observation::End { call_id, code } => o.on_end(&call_id, code),
            Observation::Inbound(call) => o.on_inbound(call),
            Observation::InboundGone { sip_call_id, why } => o.on_inbound_gone(&sip_call_id, why),
        }
    }
}
