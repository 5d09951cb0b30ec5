//! A transition of one call: the state machine's `f` on the latest record, written in
//! one statement conditional on the version and driver `f` saw.
//!
//! Why optimistic: a transition under a row lock is four round trips (BEGIN, `SELECT ..
//! FOR UPDATE`, the write, COMMIT) and the database's CPU per lifecycle was mostly
//! statement overhead (BENCHMARKS.md, issue 22). Written conditionally it is one
//! statement, and none at all is spent reading when this node wrote the call last
//! ([`super::cache`]): the common case, since a call's events mostly reach the node
//! driving it. Losing a race costs a read and another run of `f`; after
//! [`OPTIMISTIC_TRIES`] lost races in a row the call is hot, and the transition takes
//! the row lock instead, which always finishes.
//!
//! What is answered is always true of the store: a write's record is what the row held
//! when it committed; a no-op is answered from a fresh read, never from the cache (the
//! cached record may be older, and `f` may be a no-op on it only).

use c2c_callstate::store::{TransitionFn, TransitionPlan};
use c2c_callstate::{Applied, CallRecord, StoreError};
use deadpool_postgres::{GenericClient, Object};

use super::records::read;
use super::write::CallWrite;
use super::{check_id, col, decode_record, PgCallStore};
use crate::error::backend;

/// Conditional writes a transition tries before it takes the call's row lock.
pub const OPTIMISTIC_TRIES: usize = 4;

/// Tries under the row lock, for engines that refuse even those (`40001`).
const LOCKED_TRIES: usize = 16;
/// Longest pause between two refused tries under the lock.
const LOCKED_BACKOFF_MAX_MS: u64 = 64;

/// The record and its driver, row locked until the transaction ends.
const LOCK: &str = "SELECT record, driver FROM c2c_calls WHERE call_id = $1 FOR UPDATE";

/// Where the record `f` ran on came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// What this node wrote last: maybe stale.
    Cache,
    /// Read from the database just now (or under the row lock).
    Store,
}

/// Where a try's write goes.
enum Via<'a, C> {
    /// The node's write queue: with other calls' writes in one statement (`batch.rs`).
    Queue,
    /// This transaction, which holds the call's row lock.
    On(&'a C),
}

/// One try's outcome: `Some` the answer, or `None` to read again and retry (another
/// write came first, or a no-op was decided on a cached record).
type Tried = Option<Option<Applied>>;

impl PgCallStore {
    /// Runs `f` on the latest record and writes what it made; `only_if_driver`: answers
    /// `None` without running `f` when another node drives the call.
    pub(super) async fn transition(
        &self,
        call_id: &str,
        mut f: TransitionFn<'_>,
        only_if_driver: bool,
    ) -> Result<Option<Applied>, StoreError> {
        check_id("call_id", call_id)?;
        let node = self.node_id().to_owned();
        // The driver's own timers and samples start from the cache too: the write is
        // conditional on this node still driving the call at the cached version, so when
        // another node took it (wrote to it, or claimed it) the write finds nothing, the
        // record is read, and the answer is `None` with nothing written. A sample that
        // moves the call (ANSWERED) then costs one statement instead of a read and a
        // write (BENCHMARKS.md, issue 22).
        let mut cached = self.cache.take(call_id);
        for _ in 0..OPTIMISTIC_TRIES {
            let (cur, driver, source) = match cached.take() {
                Some(rec) => (rec, node.clone(), Source::Cache),
                // A connection only for the read, given back before the write: the
                // write goes through the node's write queue (`batch.rs`), whose writer
                // needs a connection of the same pool.
                None => {
                    let c = self.client().await?;
                    let (rec, driver) = read(&c, call_id).await?.ok_or(StoreError::NotFound)?;
                    (rec, driver, Source::Store)
                }
            };
            match self
                .try_once(
                    Via::<Object>::Queue,
                    cur,
                    &driver,
                    source,
                    &mut f,
                    only_if_driver,
                )
                .await?
            {
                Some(applied) => return Ok(applied),
                None => continue,
            }
        }
        // A hot call: serialise on its row lock. Under READ COMMITTED (PostgreSQL's
        // default) the first try always finishes; an engine or session that runs
        // transactions SERIALIZABLE (CockroachDB) may still refuse one, and then it is
        // tried again.
        let mut c = self.client().await?;
        for attempt in 0..LOCKED_TRIES {
            if let Some(applied) = self
                .locked_try(&mut c, call_id, &mut f, only_if_driver)
                .await?
            {
                return Ok(applied);
            }
            // Under SERIALIZABLE a waiter whose snapshot predates the holder's commit is
            // refused once it gets the lock; retrying at once rejoins the same queue
            // with the same fate (seen in CI with 24 writers on one row). A random,
            // growing pause lets the queue drain.
            let cap = (1u64 << attempt.min(6)).min(LOCKED_BACKOFF_MAX_MS);
            let pause = rand::Rng::gen_range(&mut rand::thread_rng(), 1..=cap);
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        }
        Err(backend(std::io::Error::other(format!(
            "call {call_id}: every write lost a race ({OPTIMISTIC_TRIES} conditional, \
             {LOCKED_TRIES} under the row lock)"
        ))))
    }

    /// One try under the call's row lock; `None`: the database refused it as a
    /// serialization failure (nothing written), try again.
    async fn locked_try(
        &self,
        c: &mut deadpool_postgres::Object,
        call_id: &str,
        f: &mut TransitionFn<'_>,
        only_if_driver: bool,
    ) -> Result<Tried, StoreError> {
        let tx = c.transaction().await.map_err(backend)?;
        let st = tx.prepare_cached(LOCK).await.map_err(backend)?;
        let rows = match tx.query(&st, &[&call_id]).await {
            Ok(rows) => rows,
            Err(e) if lost_race(&e) => return Ok(None),
            Err(e) => return Err(backend(e)),
        };
        let row = rows.first().ok_or(StoreError::NotFound)?;
        let cur = decode_record(call_id, &col::<String>(row, 0)?)?;
        let driver: String = col(row, 1)?;
        let tried = self
            .try_once(Via::On(&tx), cur, &driver, Source::Store, f, only_if_driver)
            .await;
        match tried {
            Ok(Some(applied)) => {
                // A no-op wrote nothing: rolling back ends the transaction (and its row
                // lock) all the same.
                if !applied.as_ref().is_some_and(|a| a.written) {
                    tx.rollback().await.map_err(backend)?;
                    return Ok(Some(applied));
                }
                match tx.commit().await {
                    Ok(()) => Ok(Some(applied)),
                    Err(e) if lost_race(&e) => Ok(None),
                    Err(e) => Err(backend(e)),
                }
            }
            // Refused by the database (see `write`): dropping `tx` rolls it back.
            Ok(None) => Ok(None),
            Err(e) => {
                if let Err(rb) = tx.rollback().await {
                    tracing::debug!(error = %rb, "rollback after a failed transition");
                }
                Err(e)
            }
        }
    }

    /// `f` on `cur` (held by `driver`), and its write conditional on both.
    async fn try_once<C: GenericClient>(
        &self,
        via: Via<'_, C>,
        cur: CallRecord,
        driver: &str,
        source: Source,
        f: &mut TransitionFn<'_>,
        only_if_driver: bool,
    ) -> Result<Tried, StoreError> {
        let adopted = driver != self.node_id();
        if only_if_driver && adopted {
            return Ok(Some(None));
        }
        // The seq comes from the sequence inside the write (one round trip fewer); the
        // plan's entry carries a placeholder until then.
        match TransitionPlan::new(cur, &mut *f, || Ok(0))? {
            TransitionPlan::Unchanged(_) if source == Source::Cache => Ok(None),
            // Nothing written; what was read is committed, hence durable. A call this
            // node drives is remembered as read (the cache's copy went with `take`), so
            // its next transition and `get_recent` need no read either.
            TransitionPlan::Unchanged(applied) => {
                if !adopted {
                    self.cache.put(&applied.record);
                }
                Ok(Some(Some(applied)))
            }
            TransitionPlan::Write {
                prev,
                record,
                effects,
                outbox,
            } => {
                let mut w =
                    CallWrite::update(&prev, driver, &record, outbox.as_ref().map(|e| (e, None)))?;
                // This node delivers the webhook of a call it ends, unless it holds its
                // share of the tenant's deliveries already (`handoff.rs`). Not from
                // inside a transaction: the entry is handed off when the write returns,
                // and that one commits later, if at all.
                let queued = matches!(via, Via::Queue);
                let claim = match via {
                    Via::Queue => outbox
                        .as_ref()
                        .and_then(|e| self.reserve_delivery(&e.tenant)),
                    Via::On(_) => None,
                };
                if let Some(claim) = &claim {
                    w.claim_webhook(claim.until_ms());
                }
                let written = match via {
                    Via::Queue => self.write_queued(w).await?,
                    Via::On(c) => w.run(c, self.node_id()).await?,
                };
                // A write that lost, or enqueued nothing, drops the reservation.
                let Some(enqueued) = written else {
                    return Ok(None);
                };
                if let (Some(seq), Some(entry)) = (enqueued, &outbox) {
                    let mut entry = entry.clone();
                    entry.seq = seq;
                    match claim {
                        Some(claim) => claim.hand_off(entry),
                        // Unclaimed: it waits for one of this node's slots.
                        None if queued => self.handoff.enqueued_unclaimed(entry),
                        // Under the row lock: only a claim transaction hands it out.
                        None => self.handoff.read_database_next(),
                    }
                }
                self.cache.put(&record);
                let mut applied = TransitionPlan::written(record, effects, enqueued);
                applied.adopted = adopted;
                Ok(Some(Some(applied)))
            }
        }
    }
}

/// A write the database refused because another transaction changed what it read
/// (`40001 serialization_failure`): nothing was written, and trying again on the newer
/// record is the answer. PostgreSQL raises it under REPEATABLE READ and SERIALIZABLE;
/// CockroachDB runs every transaction SERIALIZABLE.
pub(super) fn lost_race(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE)
}
