//! The [`CallStore`] trait: everything persistent the serving gateway does with calls,
//! whichever backend holds them.
//!
//! Implementations: [`super::SledCallStore`] (embedded, the default) and
//! [`super::MemCallStore`] (in memory, for tests). A new backend implements this trait
//! and passes the contract suite (`store/contract/`, `call_store_contract!`; feature
//! `contract` outside this crate),
//! which states each method's promises as tests.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;

use super::{BackupError, BackupInfo, DayTally, OutboxBacklog, OutboxEntry};
use super::{PurgeCursor, PurgeReport};
use crate::error::StoreError;
use crate::machine::{Effect, Transition, TransitionError};
use crate::record::CallRecord;

/// Most records one `list_by_tenant` call returns, whatever the caller asks for.
pub const MAX_PAGE: usize = 500;

/// A transition closure as passed through the object-safe trait method.
/// `FnMut`, not `FnOnce`: a backend with optimistic writes runs it again on the newer
/// record after losing a race (see [`CallStore::apply_transition_boxed`]); the state
/// machine's `transition` is pure, so only the run that was written counts.
pub type TransitionFn<'a> =
    Box<dyn FnMut(&CallRecord) -> Result<Transition, TransitionError> + Send + 'a>;

/// Told of every group-commit flush: how long it took and whether it succeeded.
pub type FlushObserver = Box<dyn Fn(Duration, bool) + Send + Sync>;

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
    /// True when this write moved the call to this node from another node of a fleet
    /// (see "Fleet" on [`CallStore`]): this node now drives it and arms every timer the
    /// record holds. Always false on a single-process backend.
    pub adopted: bool,
}

/// One page of `list_by_tenant`, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallPage {
    pub records: Vec<CallRecord>,
    /// Pass back to get the next page; `None` when there is no more.
    pub next_cursor: Option<String>,
}

/// A backup that has started (changes are being recorded): [`StoreBackup::write`] it.
pub trait StoreBackup: Send {
    /// Writes the whole copy to `out`. Blocking and long: run it on a blocking thread.
    fn write(self: Box<Self>, out: &mut dyn Write) -> Result<BackupInfo, BackupError>;
}

/// Call persistence: records and their indexes (open calls, tenant + time), the per-day
/// tallies, the CRM-webhook outbox, retention, durability and backups.
///
/// **Shape.** Object-safe (`Arc<dyn CallStore>`), through `async_trait`. Everything that
/// a networked backend answers over the network is `async`; only the start-up and
/// operator steps documented as blocking (`tallies_current`, `ensure_aggregates`,
/// `begin_backup`) are not, and callers run those on a blocking thread. Measured in
/// release mode (`examples/store_dispatch.rs`, BENCHMARKS.md 2026-12-03): a `get`
/// through `&dyn CallStore` costs the same as through the concrete type within noise
/// (about 2 µs either way on sled; the boxing is tens of ns of that), and a durable
/// `apply_transition` is dominated by its flush, so the gateway holds
/// `Arc<dyn CallStore>` rather than a type parameter.
///
/// **Promises every backend keeps** (the contract suite checks them):
/// - a write returns only once it is durable; a read may see a write a moment before
///   it is durable, so a reader about to act outside the process on what it read (send
///   a webhook) calls [`CallStore::wait_durable`] first;
/// - a record, its indexes, its day's tally and (for a call that ends) its outbox entry
///   change in one atomic step: no reader after a crash sees half of it;
/// - writes to one call are conditional on its version ([`CallStore::apply`]) or
///   serialised ([`CallStore::apply_transition_boxed`]): two writers never both apply a
///   transition to the same version;
/// - one webhook per call, whatever the callers do;
/// - ids (call ids, tenants) are non-empty, at most 128 bytes and free of `\0`; others
///   are `InvalidInput`;
/// - nothing read is unbounded except where a method says so (`open_calls`).
///
/// Callbacks passed in (`admit`, `eligible`, `progress`) run while the store holds its
/// own locks: they must not call the store.
///
/// Integrity checks (`check`), restores, exports (`scan_records`, `scan_outbox`) and
/// tally invalidation stay on [`super::SledCallStore`]: they are operator tools for a
/// stopped data directory, not part of serving. The LiveKit webhook de-duplication set
/// is a trait of its own, [`super::SeenEvents`], and the DLT overrides and audit are
/// `c2c_dlt::DltStore`.
#[async_trait]
pub trait CallStore: Send + Sync {
    // ---- calls ----

    /// Stores a new record with its tenant-time and open indexes and counts it in its
    /// day's tally. `AlreadyExists` if the call id is taken; `InvalidInput` for a bad id
    /// or a `created_ms` that is no calendar day.
    async fn create(&self, rec: &CallRecord) -> Result<(), StoreError>;

    /// Replaces the record if the stored version is still `prev_version`
    /// (`VersionConflict` otherwise, `NotFound` if there is no such call); drops it
    /// from the open index when ENDED; adds `enqueue_webhook` unless this call already
    /// has one (`InvalidInput` if it is another call's). Returns the enqueued seq.
    async fn apply(
        &self,
        prev_version: u64,
        new_record: &CallRecord,
        enqueue_webhook: Option<OutboxEntry>,
    ) -> Result<Option<u64>, StoreError>;

    /// Object-safe form of [`CallStoreExt::apply_transition`]: reads the call, runs `f`
    /// on the latest record and, if the version changed, writes the record (+ its
    /// outbox entry when the effects hold `EnqueueWebhook`) atomically and durably. The
    /// answer is always `f`'s result on the record it was written over (or, for a
    /// no-op, on the latest record): a backend either serialises writers of one call (a
    /// lock, or a row lock held across `f`) and runs `f` once, or writes conditionally
    /// on the version `f` saw and, when another writer got there first, runs `f` again
    /// on the newer record. `f` must therefore be pure. A no-op writes nothing but
    /// still returns only once what it read is durable.
    async fn apply_transition_boxed(
        &self,
        call_id: &str,
        f: TransitionFn<'_>,
    ) -> Result<Applied, StoreError>;

    async fn get(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError>;

    /// The call as this node last wrote it, when the backend remembers that, else
    /// [`Self::get`]. It may be older than the stored record (another node of a fleet
    /// may have written since), so it is only for what a record never changes (tenant,
    /// numbers, trunk, agent, room, billing plan) and for checks that the conditional
    /// transition after them decides again on the latest record. It saves a shared
    /// store the read before `/connect` and `/hangup`; the embedded stores read locally
    /// anyway and answer [`Self::get`] (the default).
    async fn get_recent(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        self.get(call_id).await
    }

    /// Every call not yet ENDED, in call-id order (cost grows with open calls only).
    /// Used at start-up to re-arm timers and resume answer detection.
    async fn open_calls(&self) -> Result<Vec<CallRecord>, StoreError>;

    /// Up to `limit` (at least one) open calls whose id sorts after `after`, in id
    /// order: a poller walks all open calls in bounded chunks.
    async fn open_calls_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError>;

    /// Calls of `tenant` with `from_ms <= created_ms < to_ms`, oldest first (ties by
    /// call id), at most `min(limit, MAX_PAGE)` per page. A cursor this method did not
    /// return is `InvalidInput`.
    async fn list_by_tenant(
        &self,
        tenant: &str,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<CallPage, StoreError>;

    // ---- fleet: which node drives an open call ----
    //
    // In a fleet (several gateways on one shared store) each open call has one *driver*:
    // the node that runs its timers and looks at its room. Any node may apply any event
    // to any call ([`Self::apply_transition_boxed`]); such a write makes the writing node
    // the driver ([`Applied::adopted`] says when it moved). Timers and polling go through
    // [`Self::apply_transition_if_driver_boxed`], so a node that lost a call stops acting
    // on it. Each node holds a lease ([`Self::renew_lease`]); when it lapses, other nodes
    // take its calls over ([`Self::claim_orphaned_calls`]). A single-process backend is
    // the driver of every call, and these methods' defaults say so.

    /// [`Self::apply_transition_boxed`] if this node drives the call; `Ok(None)` when
    /// another node does, with nothing written. `f` may still have run, on what this
    /// node wrote last (like any transition's `f`, it may run more than once: it must
    /// only compute). `NotFound` if there is no such call.
    async fn apply_transition_if_driver_boxed(
        &self,
        call_id: &str,
        f: TransitionFn<'_>,
    ) -> Result<Option<Applied>, StoreError> {
        self.apply_transition_boxed(call_id, f).await.map(Some)
    }

    /// Renews this node's lease on the calls it drives, as of `now_ms`; returns the time
    /// until which it holds (`u64::MAX`: no lease, nothing can take the calls over).
    async fn renew_lease(&self, now_ms: u64) -> Result<u64, StoreError> {
        let _ = now_ms;
        Ok(u64::MAX)
    }

    /// At a clean shutdown: gives this node's calls up so another node takes them over
    /// at once instead of after the lease.
    async fn release_lease(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Takes over up to `limit` open calls whose driver's lease ran out before `now_ms`
    /// and returns them as stored (this node now drives them). Empty on one process.
    async fn claim_orphaned_calls(
        &self,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let _ = (now_ms, limit);
        Ok(Vec::new())
    }

    /// Every open call this node drives (start-up re-arms these).
    async fn driven_calls(&self) -> Result<Vec<CallRecord>, StoreError> {
        self.open_calls().await
    }

    /// [`Self::open_calls_after`] restricted to the calls this node drives (the poller).
    async fn driven_calls_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        self.open_calls_after(after, limit).await
    }

    /// Open calls per tenant on every node, for the concurrent-call cap. `None` when this
    /// process is the only writer (its own count is exact and needs no query).
    async fn fleet_open_counts(&self) -> Result<Option<BTreeMap<String, u32>>, StoreError> {
        Ok(None)
    }

    // ---- per-day tallies ----

    /// Tallies of `tenant` for UTC days `from_day..=to_day` (`YYYYMMDD`), optionally of
    /// one trunk: one entry per day that had calls, trunks summed. Never reads records.
    async fn day_tallies(
        &self,
        tenant: &str,
        from_day: &str,
        to_day: &str,
        trunk: Option<&str>,
    ) -> Result<BTreeMap<String, DayTally>, StoreError>;

    /// True when the tallies follow this version's counting rules. Blocking.
    fn tallies_current(&self) -> Result<bool, StoreError>;

    /// Brings the tallies up to date (a rebuild from the records when the counting rules
    /// changed); true when it rebuilt. Blocking and possibly long (`progress` hears the
    /// records read): run it on a blocking thread, before anything writes a call.
    fn ensure_aggregates(&self, progress: &mut dyn FnMut(u64)) -> Result<bool, StoreError>;

    // ---- the CRM-webhook outbox ----

    /// A fresh outbox seq, above every seq handed out before (also across restarts).
    async fn next_outbox_seq(&self) -> Result<u64, StoreError>;

    async fn outbox_get(&self, seq: u64) -> Result<Option<OutboxEntry>, StoreError>;

    /// The seq of the call's webhook, if one was enqueued.
    async fn outbox_seq_for_call(&self, call_id: &str) -> Result<Option<u64>, StoreError>;

    /// Enqueues a tenant event's webhook (`OutboxEntry::for_event`) unless an entry with
    /// its id exists: the seq when it was enqueued now, `None` when it was already there
    /// (whoever enqueued it, on whichever node). Durable on return.
    async fn outbox_enqueue_event(&self, entry: &OutboxEntry) -> Result<Option<u64>, StoreError>;

    /// Up to `limit` pending entries with `next_attempt_ms <= now_ms` that
    /// `admit(seq, tenant)` accepts, lowest seq first. `admit` is asked once per due
    /// entry, before it counts against `limit`, and refused ones are skipped. This is
    /// where a fleet backend claims entries for this node (the sled store's one process
    /// is the only claimer). A fleet backend may answer with the entries this node's
    /// own writes just enqueued claimed for it, ahead of older due entries that only a
    /// read of the database would find, for a bounded time (PostgreSQL: its
    /// `delivery_recheck`, 100 ms).
    async fn outbox_due_admitted(
        &self,
        now_ms: u64,
        limit: usize,
        admit: &mut (dyn for<'t> FnMut(u64, &'t str) -> bool + Send),
    ) -> Result<Vec<OutboxEntry>, StoreError>;

    /// [`Self::outbox_due_admitted`], also saying whether due entries were held back for
    /// a reason of the store's own, not `admit`'s: a fleet backend's fleet-wide
    /// per-tenant delivery limit. The deliverer then looks again when one of its own
    /// deliveries finishes, as it does when `admit` refused a tenant at its limit. A
    /// single-process backend holds nothing back.
    async fn outbox_due_held(
        &self,
        now_ms: u64,
        limit: usize,
        admit: &mut (dyn for<'t> FnMut(u64, &'t str) -> bool + Send),
    ) -> Result<(Vec<OutboxEntry>, bool), StoreError> {
        Ok((self.outbox_due_admitted(now_ms, limit, admit).await?, false))
    }

    /// Pending entries with `next_attempt_ms <= now_ms`, lowest seq first, at most `limit`.
    async fn outbox_due(&self, now_ms: u64, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.outbox_due_admitted(now_ms, limit, &mut |_, _| true)
            .await
    }

    /// Records a delivery attempt's outcome on an existing entry (`OutboxNotFound`
    /// otherwise; entries are only ever created with their call's end). Need not wait
    /// for the disk: a crash may forget progress, never a webhook, which is then sent
    /// again with the same `webhook-id` (at-least-once).
    async fn outbox_record_progress(&self, entry: &OutboxEntry) -> Result<(), StoreError>;

    /// [`Self::outbox_record_progress`], durable on return.
    async fn outbox_update(&self, entry: &OutboxEntry) -> Result<(), StoreError>;

    /// Records what a delivery attempt changed on the stored entry `attempt.seq`: the
    /// fields [`OutboxEntry::take_progress`] copies (attempts, next attempt, state, last
    /// error, delivered time, `retry_after`); identity and history (payload, webhook id,
    /// replay time) stay as stored, even if they changed since the attempt started.
    /// Like [`Self::outbox_record_progress`]: need not wait for the disk, and an unknown
    /// seq is `OutboxNotFound`. The default reads the entry and records it whole; a
    /// backend that can write those fields alone overrides it (PostgreSQL: one statement
    /// instead of a read and a write per webhook).
    async fn outbox_record_attempt(&self, attempt: &OutboxEntry) -> Result<(), StoreError> {
        let mut stored = self
            .outbox_get(attempt.seq)
            .await?
            .ok_or(StoreError::OutboxNotFound(attempt.seq))?;
        stored.take_progress(attempt);
        self.outbox_record_progress(&stored).await
    }

    /// Replay: back to pending, due at `now_ms`, attempts and errors reset,
    /// `replayed_ms = now_ms`, same `webhook_id`. Durable on return.
    async fn outbox_requeue(&self, seq: u64, now_ms: u64) -> Result<OutboxEntry, StoreError>;

    /// Catch-up after a tenant's CRM answered again: up to `limit` of the tenant's pending
    /// entries waiting on a backoff (`next_attempt_ms > now_ms`, not a CRM `Retry-After`)
    /// that `eligible(seq)` accepts become due at `now_ms`, lowest seq first; nothing
    /// else about them changes. Returns their seqs; durable on return.
    async fn outbox_bring_forward(
        &self,
        tenant: &str,
        now_ms: u64,
        limit: usize,
        eligible: &mut (dyn FnMut(u64) -> bool + Send),
    ) -> Result<Vec<u64>, StoreError>;

    /// The pending count and the oldest pending `created_ms`, overall and per tenant.
    async fn outbox_backlog(&self) -> Result<OutboxBacklog, StoreError>;

    /// `(pending_count, oldest_pending_created_ms)`.
    async fn outbox_stats(&self) -> Result<(u64, Option<u64>), StoreError> {
        let b = self.outbox_backlog().await?;
        Ok((b.pending, b.oldest_created_ms))
    }

    /// Replay's scan: the first `max` entries of `tenant` created at or after `since_ms`
    /// (oldest first, by seq) and how many matched in all.
    async fn outbox_by_tenant_since_capped(
        &self,
        tenant: &str,
        since_ms: u64,
        max: usize,
    ) -> Result<(Vec<OutboxEntry>, u64), StoreError>;

    // ---- retention ----

    /// Purges ENDED calls created (and ended) before `cutoff_ms` whose webhook is not
    /// pending — record, indexes, finished webhook — while their day's tally stays and
    /// what they counted moves to the purged-calls tally (a recount still adds up).
    /// Looks at no more than `max` old calls from `after`; returns what it did and where
    /// to resume (`None`: the pass is complete). Durable on return.
    async fn purge_ended_before(
        &self,
        cutoff_ms: u64,
        after: Option<&PurgeCursor>,
        max: usize,
    ) -> Result<(PurgeReport, Option<PurgeCursor>), StoreError>;

    // ---- durability, health, backups ----

    /// Waits until every write applied so far is durable.
    async fn wait_durable(&self) -> Result<(), StoreError>;

    /// Calls `f` after every group-commit flush (from the flusher; keep it cheap). False
    /// when the store has no group commit or an observer is installed already.
    fn observe_flushes(&self, f: FlushObserver) -> bool {
        drop(f);
        false
    }

    /// Readiness probe: `Ok` when the store answers a read.
    async fn ping(&self) -> Result<(), StoreError>;

    /// At shutdown, after the last write: puts everything the backend holds in memory
    /// on durable storage. Blocking. The default (a backend whose writes are durable on
    /// return, or that keeps nothing) does nothing.
    fn flush_at_shutdown(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Starts a consistent backup of the running store (one at a time: `Busy`).
    /// Blocking. A backend without backups answers `BackupError::Unsupported`.
    fn begin_backup(&self) -> Result<Box<dyn StoreBackup>, BackupError> {
        Err(BackupError::Unsupported)
    }
}

/// Generic convenience over [`CallStore`], usable on `dyn CallStore` too.
pub trait CallStoreExt: CallStore {
    /// Reads the call, runs `f` (normally [`crate::transition`]) and, if the version changed,
    /// writes the record (+ the outbox entry when the effects contain `EnqueueWebhook`)
    /// atomically and durably. Concurrent callers on the same call never both write over
    /// one version: what is written is `f` of the latest record. `f` may run more than
    /// once (see [`CallStore::apply_transition_boxed`]), so it must be pure.
    fn apply_transition<'a, F>(
        &'a self,
        call_id: &'a str,
        f: F,
    ) -> Pin<Box<dyn Future<Output = Result<Applied, StoreError>> + Send + 'a>>
    where
        F: FnMut(&CallRecord) -> Result<Transition, TransitionError> + Send + 'a,
    {
        self.apply_transition_boxed(call_id, Box::new(f))
    }

    /// [`Self::apply_transition`] only if this node drives the call (`None` otherwise):
    /// what timers and polling use.
    fn apply_transition_if_driver<'a, F>(
        &'a self,
        call_id: &'a str,
        f: F,
    ) -> Pin<Box<dyn Future<Output = Result<Option<Applied>, StoreError>> + Send + 'a>>
    where
        F: FnMut(&CallRecord) -> Result<Transition, TransitionError> + Send + 'a,
    {
        self.apply_transition_if_driver_boxed(call_id, Box::new(f))
    }
}

impl<T: CallStore + ?Sized> CallStoreExt for T {}
