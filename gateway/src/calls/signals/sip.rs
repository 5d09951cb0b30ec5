//! The SIP edge's observations: the exact SIP code of every final response lands on the
//! call record, and with `answer_detection = "sip"` the 18x is ringing, the 200 OK the
//! answer and the BYE or final the end. Observers run on the SIP path and must never
//! block it: events go through a bounded queue that the SIP service drains.

use std::sync::Arc;

use c2c_callstate::CallEvent;
use c2c_callstate::{CallMedia, MediaStream};
use c2c_sip::{InboundCall, InboundGone, MediaEvent, RelayReport, Side, SipObserver, StreamReport};
use tokio::sync::mpsc;

use crate::app::App;

/// Call events from the SIP edge waiting to be applied. Observers must never block
/// the SIP path: beyond this many, events are dropped (and counted in the log).
pub const EVENT_QUEUE: usize = 4096;

/// Turns SIP observations into call events on a bounded queue.
pub struct Observer {
    pub tx: mpsc::Sender<(String, CallEvent)>,
    /// `answer_detection = "sip"`: the 200 OK is the answer, a BYE or final the end.
    pub sip_mode: bool,
    /// Inbound calls: the held INVITEs go to the inbound service, and the edge's answer
    /// and end of an inbound call always count (they are the edge's own observation
    /// of a call it carries from its first message).
    pub app: Arc<App>,
}

impl Observer {
    /// SIP decides the answer and end of this call: `answer_detection = "sip"`, or an
    /// inbound call.
    fn decides(&self, call_id: &str) -> bool {
        self.sip_mode || self.app.inbound().is_inbound(call_id)
    }

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
        if self.decides(call_id) {
            self.send(call_id, CallEvent::Answered);
        }
    }

    fn on_end(&self, call_id: &str, code: Option<u16>) {
        if let Some(code) = code {
            self.send(call_id, CallEvent::SipCode { code });
        }
        if self.decides(call_id) {
            self.send(
                call_id,
                CallEvent::CustomerLeft {
                    sip_code: code,
                    disconnect_reason: None,
                },
            );
        }
    }

    /// Dead air on an anchored call ends it (`media_timeout`) whatever decides the
    /// answer: only the edge hears the media. One-way audio is the report's to tell.
    fn on_media_event(&self, call_id: &str, event: MediaEvent) {
        if event == MediaEvent::MediaTimeout {
            self.send(call_id, CallEvent::MediaTimeout);
        }
    }

    /// What the relay measured goes on the record (`media` of the call APIs).
    fn on_media_report(&self, call_id: &str, report: &RelayReport) {
        self.send(call_id, CallEvent::Media(Box::new(call_media(report))));
    }

    fn on_inbound(&self, call: InboundCall) {
        self.app.inbound().on_sip_inbound(call);
    }

    fn on_inbound_gone(&self, sip_call_id: &str, why: InboundGone) {
        tracing::debug!(?why, "held inbound call gone");
        self.app.inbound().on_sip_gone(sip_call_id);
    }
}

/// The relay's report as the record keeps it (integers: microseconds of jitter, whole
/// milliseconds of gaps and early media).
fn call_media(r: &RelayReport) -> CallMedia {
    let stream = |s: &StreamReport| MediaStream {
        packets: s.packets,
        bytes: s.bytes,
        expected: s.expected,
        lost: s.lost,
        jitter_us: (s.jitter_ms * 1000.0).round() as u64,
        max_gap_ms: s.max_gap_ms.round() as u64,
    };
    CallMedia {
        from_carrier: stream(&r.from_carrier),
        from_livekit: stream(&r.from_livekit),
        early_media: r.early_media_started_ms.is_some(),
        early_media_ms: r.early_media_ms.map(|ms| ms.round() as u64),
        one_way_silent: r.one_way.map(|s| {
            match s {
                Side::Carrier => "carrier",
                Side::Livekit => "livekit",
            }
            .to_string()
        }),
        media_timeout: r.media_timeout,
        strangers: r.strangers,
    }
}
