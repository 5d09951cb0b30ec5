//! Persistence: the [`CallStore`] trait and its sled implementation, with a durable outbox
//! for CRM webhooks written in the same atomic batch as the call's final record.
//!
//! Key layout of the one sled tree (`calls`); integers big-endian so byte order is numeric
//! order:
//!
//! ```text
//! r/<call_id>                              -> CallRecord JSON
//! t/<tenant>\0<created_ms u64 BE><call_id> -> ()   tenant + time index
//! d/<tenant>\0<YYYYMMDD>\0<call_id>        -> ()   legacy UTC day index (see below)
//! o/<call_id>                              -> ()   open calls (phase != ENDED)
//! w/<seq u64 BE>                           -> OutboxEntry JSON
//! wp/<seq u64 BE>                          -> ()   pending outbox entries
//! wi/<call_id>                             -> seq u64 BE (one webhook per call)
//! a/<tenant>\0<YYYYMMDD>\0<trunk>           -> DayTally JSON (per-day counters)
//! pa/<tenant>\0<YYYYMMDD>\0<trunk>          -> DayTally JSON (what purged calls counted)
//! m/aggregates                             -> tally format version
//! ```
//!
//! `d/` is no longer written: a UTC day is a range of `created_ms`, so the tenant-time
//! index answers day queries, and dropping the duplicate saved a sled write on every new
//! call. Stores written before keep their `d/` entries; `check` still verifies them.
//!
//! `pa/` is written by the retention purge (`retention.rs`): a day's `a/` tally keeps
//! counting purged calls, and `pa/` says how much of it has no record any more.

mod aggregates;
mod backup;
mod check;
mod flusher;
mod journal;
mod keys;
mod outbox;
mod retention;
mod scan;
mod sled_calls;
mod sled_outbox;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_aggregates;
#[cfg(test)]
mod tests_backup;
#[cfg(test)]
mod tests_lifecycle;
#[cfg(test)]
mod tests_outbox;

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;

pub use aggregates::DayTally;
pub use backup::{verify_backup, BackupError, BackupInfo, BackupJob, BACKUP_MAGIC, CAPTURE_LIMIT};
pub use check::{CheckReport, Problem, ProblemKind, MAX_PROBLEMS, PROGRESS_EVERY};
pub use journal::JOURNAL_TREE;
pub use outbox::{webhook_id_for, OutboxBacklog, OutboxEntry, OutboxState};
pub use retention::{PurgeCursor, PurgeReport};
pub use sled_calls::{SledCallStore, TREE_NAME};

use crate::error::StoreError;
use crate::machine::{Effect, Transition, TransitionError};
use crate::record::CallRecord;

/// Most records one `list_by_tenant` call returns, whatever the caller asks for.
pub const MAX_PAGE: usize = 500;

/// A transition closure as passed through the object-safe trait method.
pub type TransitionFn<'a> =
    Box<dyn FnOnce(&CallRecord) -> Result<Transition, TransitionError> + Send + 'a>;

/// Result of [`CallStore::apply_transition_boxed`] / `apply_transition`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The record as now stored (unchanged when the event was ignored).
    pub record: CallRecord,
    /// Effects for the gateway to carry out; empty when nothing changed.
    pub effects: Vec<Effect>,
    /// False when the transition was a no-op and nothing was written.
    pub written: bool,
    /// Outbox seq if this write enqueued the call's webhook.
    pub enqueued: Option<u64>,
}

/// One page of `list_by_tenant`, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallPage {
    pub records: Vec<CallRecord>,
    /// Pass back to get the next page; `None` when there is no more.
    pub next_cursor: Option<String>,
}

/// Call persistence. Writes are async because they return only once durable (group commit);
/// reads are synchronous (sled serves them from its cache).
#[async_trait]
pub trait CallStore: Send + Sync {
    /// Stores a new record with its tenant, day and open indexes. Fails with
    /// `AlreadyExists` if the call id is taken.
    async fn create(&self, rec: &CallRecord) -> Result<(), StoreError>;

    /// Replaces the record if the stored version is still `prev_version`
    /// (`VersionConflict` otherwise); drops it from the open index when ENDED; adds
    /// `enqueue_webhook` unless this call already has one. Returns the enqueued seq.
    async fn apply(
        &self,
        prev_version: u64,
        new_record: &CallRecord,
        enqueue_webhook: Option<OutboxEntry>,
    ) -> Result<Option<u64>, StoreError>;

    /// Object-safe form of [`CallStoreExt::apply_transition`].
    async fn apply_transition_boxed(
        &self,
        call_id: &str,
        f: TransitionFn<'_>,
    ) -> Result<Applied, StoreError>;

    fn get(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError>;

    /// Every call not yet ENDED (cost grows with open calls only). Used at start-up to
    /// re-arm timers and resume answer detection.
    fn open_calls(&self) -> Result<Vec<CallRecord>, StoreError>;

    /// Calls of `tenant` with `from_ms <= created_ms < to_ms`, oldest first, at most
    /// `min(limit, MAX_PAGE)` per page.
    fn list_by_tenant(
        &self,
        tenant: &str,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<CallPage, StoreError>;

    /// A fresh outbox seq (persisted counter) for callers building an entry for `apply`.
    fn next_outbox_seq(&self) -> Result<u64, StoreError>;

    /// Pending entries with `next_attempt_ms <= now_ms`, lowest seq first, at most `limit`.
    fn outbox_due(&self, now_ms: u64, limit: usize) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Overwrites an existing entry (after a delivery attempt). Durable on return.
    async fn outbox_update(&self, entry: &OutboxEntry) -> Result<(), StoreError>;

    /// `(pending_count, oldest_pending_created_ms)`.
    fn outbox_stats(&self) -> Result<(u64, Option<u64>), StoreError>;

    /// Every entry of `tenant` created at or after `since_ms` (replay). Scans the outbox.
    fn outbox_by_tenant_since(
        &self,
        tenant: &str,
        since_ms: u64,
    ) -> Result<Vec<OutboxEntry>, StoreError>;

    /// Replay: back to pending, due at `now_ms`, attempts reset, same webhook_id.
    async fn outbox_requeue(&self, seq: u64, now_ms: u64) -> Result<OutboxEntry, StoreError>;
}

/// Generic convenience over [`CallStore`], usable on `dyn CallStore` too.
pub trait CallStoreExt: CallStore {
    /// Reads the call, runs `f` (normally [`crate::transition`]) and, if the version changed,
    /// writes the record (+ the outbox entry when the effects contain `EnqueueWebhook`)
    /// atomically and durably. Concurrent callers on the same call are serialised, so `f`
    /// always sees the latest record and runs exactly once.
    fn apply_transition<'a, F>(
        &'a self,
        call_id: &'a str,
        f: F,
    ) -> Pin<Box<dyn Future<Output = Result<Applied, StoreError>> + Send + 'a>>
    where
        F: FnOnce(&CallRecord) -> Result<Transition, TransitionError> + Send + 'a,
    {
        self.apply_transition_boxed(call_id, Box::new(f))
    }
}

impl<T: CallStore + ?Sized> CallStoreExt for T {}
