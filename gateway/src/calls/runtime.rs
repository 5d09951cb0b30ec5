//! What this process holds in memory about its calls, as one handle: the timers of open
//! calls, the dials it waits for, the concurrent-call slots each tenant has taken, and
//! the wake-up of CRM webhook delivery. Everything durable is in the store; this is
//! rebuilt from it at start (`calls::rearm_open_calls`).

use std::collections::HashMap;
use std::sync::Arc;

use c2c_callstate::TimerKind;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::calls::dial::DialsInFlight;
use crate::calls::timers::Timers;

/// The calls runtime of one gateway process.
#[derive(Default)]
pub struct CallRuntime {
    timers: Timers,
    dials: Arc<DialsInFlight>,
    /// Open calls per tenant, for the concurrent-call cap.
    slots: Mutex<HashMap<String, u32>>,
    /// Wakes the CRM webhook deliverer right after a terminal transition.
    delivery: Arc<Notify>,
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

    /// CreateSIPParticipant requests this process waits for.
    pub fn dials(&self) -> &Arc<DialsInFlight> {
        &self.dials
    }

    /// Takes one of the tenant's concurrent-call slots; false when the cap is reached.
    pub fn reserve_slot(&self, tenant: &str, cap: u32) -> bool {
        let mut slots = self.slots.lock();
        let n = slots.entry(tenant.to_owned()).or_insert(0);
        if *n >= cap {
            return false;
        }
        *n += 1;
        true
    }

    /// Gives a slot back (the call ended, or creating it failed).
    pub fn release_slot(&self, tenant: &str) {
        if let Some(n) = self.slots.lock().get_mut(tenant) {
            *n = n.saturating_sub(1);
        }
    }

    /// At start: the slots the open calls of the store hold.
    pub fn reset_slots(&self, open_by_tenant: HashMap<String, u32>) {
        *self.slots.lock() = open_by_tenant;
    }

    /// A terminal transition queued a CRM webhook: deliver soon.
    pub fn kick_delivery(&self) {
        self.delivery.notify_one();
    }

    /// The delivery wake-up, for the delivery service to listen on.
    pub fn delivery_kick(&self) -> Arc<Notify> {
        self.delivery.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cap_release_and_reset() {
        let rt = CallRuntime::default();
        assert!(rt.reserve_slot("acme", 2));
        assert!(rt.reserve_slot("acme", 2));
        assert!(!rt.reserve_slot("acme", 2), "the cap holds");
        assert!(rt.reserve_slot("globex", 1), "per tenant");
        rt.release_slot("acme");
        assert!(rt.reserve_slot("acme", 2));
        rt.release_slot("nobody");
        rt.reset_slots([("acme".to_owned(), 0)].into_iter().collect());
        assert!(rt.reserve_slot("acme", 1));
    }
}
