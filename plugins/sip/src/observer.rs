//! How the gateway learns what the SIP edge saw, without this crate knowing about call
//! state: the gateway implements [`SipObserver`] and turns the calls into call events.

/// Observations of calls correlated by their `X-C2C-Call-Id`. Called outside the edge's
/// locks, from its I/O tasks: implementations must be quick and must not block (queue
/// the event and return).
pub trait SipObserver: Send + Sync + 'static {
    /// A final (or 18x) response for the INVITE of a call correlated by X-C2C-Call-Id.
    fn on_response(&self, call_id: &str, code: u16);
    /// 200 OK to the INVITE (answer).
    fn on_answer(&self, call_id: &str);
    /// BYE seen in either direction for an answered call, or a final non-2xx.
    fn on_end(&self, call_id: &str, code: Option<u16>);
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
    Response { call_id: String, code: u16 },
    Answer { call_id: String },
    End { call_id: String, code: Option<u16> },
}

impl Observation {
    pub fn deliver(&self, o: &dyn SipObserver) {
        match self {
            Observation::Response { call_id, code } => o.on_response(call_id, *code),
            Observation::Answer { call_id } => o.on_answer(call_id),
            Observation::End { call_id, code } => o.on_end(call_id, *code),
        }
    }
}
