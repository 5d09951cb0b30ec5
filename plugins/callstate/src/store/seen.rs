//! The de-duplication set of LiveKit webhook ids: a webhook LiveKit retries is answered
//! `duplicate` instead of being applied twice.
//!
//! A trait of its own rather than more [`super::CallStore`] methods: it holds no call
//! data and needs none of the call store's atomicity, and a backend may keep it apart
//! (an expiring key set). Losing an entry is harmless — the state machine ignores a
//! replayed event — so callers treat its errors as "not seen".

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;

use crate::error::StoreError;

/// Ids of events already applied, with when they were recorded (Unix ms).
#[async_trait]
pub trait SeenEvents: Send + Sync {
    async fn contains(&self, event_id: &str) -> Result<bool, StoreError>;

    /// Records `event_id` as applied at `at_ms` (replacing an earlier time).
    async fn insert(&self, event_id: &str, at_ms: u64) -> Result<(), StoreError>;

    /// Forgets ids recorded before `cutoff_ms`; returns how many went.
    async fn prune_before(&self, cutoff_ms: u64) -> Result<u64, StoreError>;
}

/// The sled tree the gateway has always used for it.
pub const SEEN_TREE: &str = "livekit_webhooks";
const SEEN_PREFIX: &[u8] = b"e/";

/// `e/<event id>` -> recorded-at ms (u64 BE) in tree [`SEEN_TREE`].
pub struct SledSeenEvents {
    tree: sled::Tree,
}

impl SledSeenEvents {
    pub fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            tree: db.open_tree(SEEN_TREE)?,
        })
    }
}

fn seen_key(event_id: &str) -> Vec<u8> {
    [SEEN_PREFIX, event_id.as_bytes()].concat()
}

#[async_trait]
impl SeenEvents for SledSeenEvents {
    async fn contains(&self, event_id: &str) -> Result<bool, StoreError> {
        Ok(self.tree.contains_key(seen_key(event_id))?)
    }

    async fn insert(&self, event_id: &str, at_ms: u64) -> Result<(), StoreError> {
        // Not flushed: a crash may forget it, which only lets a retry through again.
        self.tree.insert(seen_key(event_id), &at_ms.to_be_bytes())?;
        Ok(())
    }

    async fn prune_before(&self, cutoff_ms: u64) -> Result<u64, StoreError> {
        let mut pruned = 0;
        for kv in self.tree.scan_prefix(SEEN_PREFIX) {
            let (k, v) = kv?;
            // An unreadable time counts as oldest: it goes.
            let at = v
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            if at < cutoff_ms {
                self.tree.remove(k)?;
                pruned += 1;
            }
        }
        Ok(pruned)
    }
}

/// [`SeenEvents`] in memory, for tests.
#[derive(Default)]
pub struct MemSeenEvents {
    ids: Mutex<HashMap<String, u64>>,
}

impl MemSeenEvents {
    pub fn new() -> Self {
        Self::default()
    }

    fn ids(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        // A plain map with no invariant across entries: poisoning carries no meaning.
        self.ids.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl SeenEvents for MemSeenEvents {
    async fn contains(&self, event_id: &str) -> Result<bool, StoreError> {
        Ok(self.ids().contains_key(event_id))
    }

    async fn insert(&self, event_id: &str, at_ms: u64) -> Result<(), StoreError> {
        self.ids().insert(event_id.to_owned(), at_ms);
        Ok(())
    }

    async fn prune_before(&self, cutoff_ms: u64) -> Result<u64, StoreError> {
        let mut ids = self.ids();
        let before = ids.len();
        ids.retain(|_, at| *at >= cutoff_ms);
        Ok((before - ids.len()) as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    async fn contract(s: Arc<dyn SeenEvents>) {
        assert!(!s.contains("EV_1").await.unwrap());
        s.insert("EV_1", 1_000).await.unwrap();
        s.insert("EV_2", 5_000).await.unwrap();
        assert!(s.contains("EV_1").await.unwrap());
        assert!(!s.contains("EV_").await.unwrap(), "a prefix is not an id");
        assert_eq!(s.prune_before(5_000).await.unwrap(), 1);
        assert!(!s.contains("EV_1").await.unwrap());
        assert!(s.contains("EV_2").await.unwrap());
        // Seen again later: its new time keeps it.
        s.insert("EV_2", 9_000).await.unwrap();
        assert_eq!(s.prune_before(6_000).await.unwrap(), 0);
        assert!(s.contains("EV_2").await.unwrap());
    }

    #[tokio::test]
    async fn sled_seen_events_keep_the_contract() {
        let dir = tempfile::TempDir::new().unwrap();
        let db = sled::open(dir.path()).unwrap();
        contract(Arc::new(SledSeenEvents::open(&db).unwrap())).await;
    }

    #[tokio::test]
    async fn memory_seen_events_keep_the_contract() {
        contract(Arc::new(MemSeenEvents::new())).await;
    }
}
