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
mod call_store;
mod check;
#[cfg(any(test, feature = "contract"))]
pub mod contract;
mod flusher;
mod journal;
mod keys;
mod mem;
mod outbox;
mod plan;
mod retention;
mod scan;
mod seen;
mod sled_calls;
mod sled_outbox;
mod sled_trait;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_aggregates;
#[cfg(test)]
mod tests_backup;
#[cfg(test)]
mod tests_contract;
#[cfg(test)]
mod tests_lifecycle;
#[cfg(test)]
mod tests_outbox;

pub use aggregates::{DayTally, TallyContribution, TallySlot};
pub use backup::{verify_backup, BackupError, BackupInfo, BackupJob, BACKUP_MAGIC, CAPTURE_LIMIT};
pub use call_store::{
    Applied, CallPage, CallStore, CallStoreExt, FlushObserver, StoreBackup, TransitionFn, MAX_PAGE,
};
pub use check::{CheckReport, Problem, ProblemKind, MAX_PROBLEMS, PROGRESS_EVERY};
pub use journal::JOURNAL_TREE;
pub use mem::MemCallStore;
pub use outbox::{
    is_event_id, webhook_id_for, OutboxBacklog, OutboxEntry, OutboxState, EVENT_ID_PREFIX,
};
pub use plan::TransitionPlan;
pub use retention::{PurgeCursor, PurgeReport};
#[cfg(any(test, feature = "contract"))]
pub use seen::{seen_events_contract, seen_events_race};
pub use seen::{MemSeenEvents, SeenEvents, SledSeenEvents, SEEN_TREE};
pub use sled_calls::{SledCallStore, TREE_NAME};

#[cfg(test)]
use crate::error::StoreError;
#[cfg(test)]
use crate::machine::{Effect, TransitionError};
#[cfg(test)]
use crate::record::CallRecord;
