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

/// The [`SeenEvents`] promises on one fresh, empty set (any backend; feature
/// `contract` outside this crate). `Err` when the set fails where it must succeed; an
/// assertion fails when it answers but breaks a promise.
#[cfg(any(test, feature = "contract"))]
pub async fn seen_events_contract(s: std::sync::Arc<dyn SeenEvents>) -> Result<(), StoreError> {
    assert!(!s.contains("EV_1").await?);
    s.insert("EV_1", 1_000).await?;
    s.insert("EV_2", 5_000).await?;
    assert!(s.contains("EV_1").await?);
    assert!(!s.contains("EV_").await?, "a prefix is not an id");
    assert!(!s.contains("EV_10").await?, "an extension is not an id");
    assert_eq!(s.prune_before(5_000).await?, 1);
    assert!(!s.contains("EV_1").await?);
    assert!(s.contains("EV_2").await?);
    // Seen again later: its new time keeps it.
    s.insert("EV_2", 9_000).await?;
    assert_eq!(s.prune_before(6_000).await?, 0);
    assert!(s.contains("EV_2").await?);
    // Inserting an id twice keeps one entry.
    s.insert("EV_3", 9_500).await?;
    s.insert("EV_3", 9_500).await?;
    assert_eq!(s.prune_before(10_000).await?, 2, "EV_2 and one EV_3");
    assert!(!s.contains("EV_3").await?);
    assert_eq!(s.prune_before(u64::MAX).await?, 0, "nothing left");
    // Ids are opaque strings: LiveKit's, and anything a forged request carries.
    for id in ["EV_\u{e9}\u{1f600}", "a'b\"c", "%_", ""] {
        s.insert(id, 1).await?;
        assert!(s.contains(id).await?, "{id:?}");
    }
    assert!(
        !s.contains("ab").await?,
        "a stored pattern matches nothing else"
    );
    assert_eq!(s.prune_before(2).await?, 4);
    // Many ids at once: a prune takes them all, however its backend batches.
    for i in 0..2_500u64 {
        s.insert(&format!("EV_bulk_{i}"), 100 + i % 7).await?;
    }
    assert_eq!(s.prune_before(1_000).await?, 2_500);
    assert!(!s.contains("EV_bulk_0").await?);
    Ok(())
}

/// Two handles on one set (two gateways on one database; the same set twice for a
/// single-process backend), fresh and empty: both recording the same id at once
/// succeed, both see it, and it is one entry.
#[cfg(any(test, feature = "contract"))]
pub async fn seen_events_race(
    a: std::sync::Arc<dyn SeenEvents>,
    b: std::sync::Arc<dyn SeenEvents>,
) -> Result<(), StoreError> {
    for round in 0..20u64 {
        let id = format!("EV_race_{round}");
        let (ra, rb) = tokio::join!(a.insert(&id, 1_000 + round), b.insert(&id, 1_000 + round));
        ra?;
        rb?;
        assert!(a.contains(&id).await? && b.contains(&id).await?, "{id}");
    }
    assert_eq!(a.prune_before(u64::MAX).await?, 20, "one entry per id");
    assert_eq!(b.prune_before(u64::MAX).await?, 0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn sled_seen_events_keep_the_contract() {
        let dir = tempfile::TempDir::new().unwrap();
        let db = sled::open(dir.path()).unwrap();
        seen_events_contract(Arc::new(SledSeenEvents::open(&db).unwrap()))
            .await
            .unwrap();
        seen_events_race(
            Arc::new(SledSeenEvents::open(&db).unwrap()),
            Arc::new(SledSeenEvents::open(&db).unwrap()),
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn memory_seen_events_keep_the_contract() {
        seen_events_contract(Arc::new(MemSeenEvents::new()))
            .await
            .unwrap();
        let shared: Arc<dyn SeenEvents> = Arc::new(MemSeenEvents::new());
        seen_events_race(shared.clone(), shared).await.unwrap();
    }
}
