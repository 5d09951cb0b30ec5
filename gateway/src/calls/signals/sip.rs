//! The SIP edge's observations: the exact SIP code of every final response lands on the
//! call record, and with `answer_detection = "sip"` the 18x is ringing, the 200 OK the
//! answer and the BYE or final the end. Observers run on the SIP path and must never
//! block it: events go through a bounded queue that the SIP service drains.

use c2c_callstate::CallEvent;
use c2c_sip::SipObserver;
use tokio::sync::mpsc;

/// Call events from the SIP edge waiting to be applied. Observers must never block
/// the SIP path: beyond this many, events are dropped (and counted in the log).
pub const EVENT_QUEUE: usize = 4096;

/// Turns SIP observations into call events on a bounded queue.
pub struct Observer {
    pub tx: mpsc::Sender<(String, CallEvent)>,
    /// `answer_detection = "sip"`: the 200 OK is the answer, a BYE or final the end.
    pub sip_mode: bool,
}

impl Observer {
    fn send(&self, call_id: &str, ev: CallEvent) {
        if self.tx.try_send((call_id.to_string(), ev)).is_err() {
            tracing::warn!("SIP event queue full; event dropped (polling/webhooks still apply)");
        }
    }
}

impl SipObserver for Observer {
    fn on_response(&self, call_id: &str, code: u16) {
        match code {
            180 | 183 if self.sip_mode => self.send(call_id, CallEvent::Ringing),
            300.. => self.send(call_id, CallEvent::SipCode { code }),
            _ => {}
        }
    }

    fn on_answer(&self, call_id: &str) {
        if self.sip_mode {
            self.send(call_id, CallEvent::Answered);
        }
    }

    fn on_end(&self, call_id: &str, code: Option<u16>) {
        if let Some(code) = code {
            self.send(call_id, CallEvent::SipCode { code });
        }
        if self.sip_mode {
            self.send(
                call_id,
                CallEvent::CustomerLeft {
                    sip_code: code,
                    disconnect_reason: None,
                },
            );
        }
    }
}
