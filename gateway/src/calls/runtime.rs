//! What this process holds in memory about its calls, as one handle: the timers of open
//! calls, the dials it waits for, the concurrent-call slots each tenant has taken, and
//! the wake-up of CRM webhook delivery. Everything durable is in the store; this is
//! rebuilt from it at start (`calls::rearm_open_calls`).

use std::sync::Arc;

use c2c_callstate::TimerKind;
use tokio::sync::Notify;

use crate::calls::dial::DialsInFlight;
use crate::calls::media_payload::MediaWaiters;
use crate::calls::slots::Slots;
use crate::calls::timers::Timers;

/// The calls runtime of one gateway process.
#[derive(Default)]
pub struct CallRuntime {
    timers: Timers,
    dials: Arc<DialsInFlight>,
    /// Open calls per tenant, for the concurrent-call cap.
    slots: Slots,
    /// Wakes the CRM webhook deliverer right after a terminal transition.
    delivery: Arc<Notify>,
    /// Extended webhooks waiting for their call's media report.
    media_waiters: Arc<MediaWaiters>,
}

impl CallRuntime {
    /// The timer wheel (its service runs it; effects arm and cancel through this handle).
    pub fn timers(&self) -> &Timers {
        &self.timers
    }

    pub fn arm_timer(&self, call_id: &str, kind: TimerKind, at_ms: u64) {
        self.timers.arm(call_id, kind, at_ms);
    }

    pub fn cancel_timer(&self, call_id: &str, kind: TimerKind) {
        self.timers.cancel(call_id, kind);
    }

    /// Another node of the fleet drives the call now: none of its timers fire here.
    pub fn forget(&self, call_id: &str) {
        for kind in TimerKind::ALL {
            self.timers.cancel(call_id, kind);
        }
    }

    /// CreateSIPParticipant requests this process waits for.
    pub fn dials(&self) -> &Arc<DialsInFlight> {
        &self.dials
    }

    /// The tenants' concurrent-call slots.
    pub fn slots(&self) -> &Slots {
        &self.slots
    }

    /// A terminal transition queued a CRM webhook: deliver soon.
    pub fn kick_delivery(&self) {
        self.delivery.notify_one();
    }

    /// Extended webhooks waiting for a media report (`Effect::MediaRecorded` wakes them).
    pub fn media_waiters(&self) -> &Arc<MediaWaiters> {
        &self.media_waiters
    }

    /// The delivery wake-up, for the delivery service to listen on.
    pub fn delivery_kick(&self) -> Arc<Notify> {
        self.delivery.clone()
    }
}
