//! Bounded memory of inbound calls: the log tests read ([`InboundCallRecord`]) and
//! the rejected-INVITE cache (LiveKit SIP's `rejectedInvites`: a final >= 300 is
//! replayed to a retry with the same Call-ID and From tag for a minute).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::time::Instant;

/// How long a rejection is replayed (`callCacheTTL`).
pub(crate) const REJECTED_TTL: Duration = Duration::from_secs(60);

/// Where an inbound call is (or how it ended).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InboundState {
    /// `100` sent; trunk and rule not decided yet.
    Trying,
    /// `180` sent; the SIP participant waits for audio in the room.
    Ringing,
    /// `200` sent.
    Answered,
    /// A final >= 300 was sent (see `final_code`).
    Rejected,
    /// No dispatch rule: nothing more was sent after 100/180 (LiveKit OSS's DROP).
    Dropped,
    /// Answered, then hung up by either side.
    Ended,
}

/// One inbound INVITE as the simulator handled it. Holds caller numbers: keep it
/// out of logs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InboundCallRecord {
    /// LiveKit's call id (`SCL_...`, the `sip.callID` attribute); also the To tag of
    /// every response.
    pub call_id: String,
    /// The INVITE's Call-ID header (`sip.callIDFull`).
    pub sip_call_id: String,
    pub from_user: String,
    pub to_user: String,
    /// Where the INVITE came from (what `allowed_addresses` is checked against).
    pub source: SocketAddr,
    pub trunk_id: Option<String>,
    pub rule_id: Option<String>,
    pub room: Option<String>,
    pub participant_identity: Option<String>,
    /// The final response to the INVITE, once sent.
    pub final_code: Option<u16>,
    pub state: InboundState,
    /// The INVITE's headers as received, in order (names lower-case, long form).
    pub headers: Vec<(String, String)>,
}

impl InboundCallRecord {
    /// The first value of header `name` (any case), e.g. `X-C2C-Call-Id`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The most recent inbound calls, oldest first, at most `capacity`.
pub(crate) struct InboundLog {
    calls: Mutex<VecDeque<InboundCallRecord>>,
    capacity: usize,
}

impl InboundLog {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            calls: Mutex::new(VecDeque::new()),
            capacity,
        }
    }

    pub(crate) fn push(&self, record: InboundCallRecord) {
        if self.capacity == 0 {
            return;
        }
        let mut calls = self.calls.lock();
        if calls.len() >= self.capacity {
            calls.pop_front();
        }
        calls.push_back(record);
    }

    /// Changes the record of `call_id`, if still remembered.
    pub(crate) fn update(&self, call_id: &str, f: impl FnOnce(&mut InboundCallRecord)) {
        let mut calls = self.calls.lock();
        if let Some(r) = calls.iter_mut().rev().find(|r| r.call_id == call_id) {
            f(r);
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<InboundCallRecord> {
        self.calls.lock().iter().cloned().collect()
    }
}

/// (Call-ID, From tag).
type InviteKey = (String, String);

/// (Call-ID, From tag) -> (code, reason) for [`REJECTED_TTL`], at most `capacity`
/// entries (the oldest is forgotten first).
pub(crate) struct RejectedInvites {
    entries: Mutex<(HashMap<InviteKey, Rejection>, VecDeque<InviteKey>)>,
    capacity: usize,
    ttl: Duration,
}

#[derive(Clone, Debug)]
pub(crate) struct Rejection {
    pub code: u16,
    pub reason: String,
    expires: Instant,
}

impl RejectedInvites {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            entries: Mutex::new((HashMap::new(), VecDeque::new())),
            capacity,
            ttl,
        }
    }

    pub(crate) fn add(&self, call_id: &str, from_tag: &str, code: u16, reason: &str) {
        if self.capacity == 0 {
            return;
        }
        let key = (call_id.to_owned(), from_tag.to_owned());
        let mut guard = self.entries.lock();
        let (map, order) = &mut *guard;
        if !map.contains_key(&key) {
            while map.len() >= self.capacity {
                match order.pop_front() {
                    Some(old) => {
                        map.remove(&old);
                    }
                    None => break,
                }
            }
            order.push_back(key.clone());
        }
        let rejection = Rejection {
            code,
            reason: reason.to_owned(),
            expires: Instant::now() + self.ttl,
        };
        map.insert(key, rejection);
    }

    /// The rejection to replay, if one is remembered and fresh.
    pub(crate) fn get(&self, call_id: &str, from_tag: &str) -> Option<Rejection> {
        let key = (call_id.to_owned(), from_tag.to_owned());
        let mut guard = self.entries.lock();
        let (map, order) = &mut *guard;
        let found = map.get(&key)?.clone();
        if Instant::now() >= found.expires {
            map.remove(&key);
            order.retain(|k| *k != key);
            return None;
        }
        Some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rejections_expire_and_are_bounded() {
        let ttl = Duration::from_millis(50);
        let cache = RejectedInvites::new(2, ttl);
        cache.add("a", "t", 404, "No trunk found");
        assert_eq!(cache.get("a", "t").unwrap().code, 404);
        assert!(cache.get("a", "other-tag").is_none());
        cache.add("b", "t", 486, "Rejected");
        cache.add("c", "t", 487, "Request Terminated");
        assert!(cache.get("a", "t").is_none(), "oldest evicted");
        tokio::time::sleep(ttl).await;
        assert!(cache.get("c", "t").is_none(), "expired");
    }
}
