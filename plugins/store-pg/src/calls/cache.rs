//! [`WrittenRecords`]: the records this node wrote last, so that the next transition of
//! a call it drives can go straight to its conditional write instead of reading first.
//!
//! Nothing here is trusted: a transition from a cached record writes only if the row
//! still holds that version and driver, so a stale entry (another node wrote since, or
//! took the call over) costs one failed `UPDATE` and a read, never a wrong write. A
//! no-op decided on a cached record is not answered from it either (see
//! `transition.rs`). Ended calls are dropped, and the map is bounded.

use std::collections::HashMap;
use std::sync::Mutex;

use c2c_callstate::CallRecord;

/// Most records kept. An entry is one call this node drives; past the bound an
/// arbitrary entry goes, which only costs that call a read.
pub(super) const CAPACITY: usize = 16_384;

#[derive(Default)]
pub(super) struct WrittenRecords {
    by_call: Mutex<HashMap<String, CallRecord>>,
}

impl WrittenRecords {
    /// Takes the entry out: a transition either writes a newer one back or finds it
    /// stale.
    pub(super) fn take(&self, call_id: &str) -> Option<CallRecord> {
        self.by_call.lock().ok()?.remove(call_id)
    }

    /// A copy of the entry, left in place (`CallStore::get_recent`).
    pub(super) fn peek(&self, call_id: &str) -> Option<CallRecord> {
        self.by_call.lock().ok()?.get(call_id).cloned()
    }

    /// Remembers what this node just wrote (driver: this node); an ended call is
    /// forgotten instead.
    pub(super) fn put(&self, rec: &CallRecord) {
        let Ok(mut map) = self.by_call.lock() else {
            return;
        };
        if rec.is_ended() {
            map.remove(&rec.call_id);
            return;
        }
        if map.len() >= CAPACITY && !map.contains_key(&rec.call_id) {
            if let Some(k) = map.keys().next().cloned() {
                map.remove(&k);
            }
        }
        map.insert(rec.call_id.clone(), rec.clone());
    }

    pub(super) fn forget(&self, call_id: &str) {
        if let Ok(mut map) = self.by_call.lock() {
            map.remove(call_id);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_call.lock().map(|m| m.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use c2c_callstate::{CallKnobs, NewCall};

    fn rec(id: &str) -> CallRecord {
        let new = NewCall {
            call_id: id.into(),
            room: format!("room-{id}"),
            tenant: "acme".into(),
            case_id: "case".into(),
            customer_crm_id: "cust".into(),
            agent_id: "agent".into(),
            customer_number: "9530251797".into(),
            phone_from: "+919999999999".into(),
            trunk_label: "airtel-mum".into(),
        };
        CallRecord::new(new, &CallKnobs::default(), 1_000).0
    }

    #[test]
    fn bounded_and_ended_calls_are_dropped() {
        let c = WrittenRecords::default();
        for i in 0..CAPACITY + 10 {
            c.put(&rec(&format!("c2c_{i:032x}")));
        }
        assert_eq!(c.len(), CAPACITY);
        let id = format!("c2c_{:032x}", CAPACITY + 9);
        assert!(c.take(&id).is_some());
        assert!(c.take(&id).is_none(), "taken out");
    }
}
