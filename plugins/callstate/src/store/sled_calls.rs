//! `SledCallStore`: construction, per-call serialisation and the call-record operations.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::aggregates::AggregateLock;
use super::flusher::GroupCommit;
use super::journal::{Journal, Writes};
use super::keys;
use super::plan::TransitionPlan;
use super::{Applied, CallPage, OutboxEntry, MAX_PAGE};
use crate::error::StoreError;
use crate::machine::{Transition, TransitionError};
use crate::record::CallRecord;

/// Name of the one tree this crate owns inside a (possibly shared) sled database.
pub const TREE_NAME: &str = "calls";

const CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// Lock stripes: enough that unrelated calls rarely share one, small enough to be free.
const STRIPES: usize = 64;

/// sled-backed [`super::CallStore`]. Cheap to clone (one `Arc`); all clones share the
/// group-commit flusher. Writes on one call are serialised by a striped lock that is held
/// only around the synchronous read-check-batch step, never across an `.await`.
#[derive(Clone)]
pub struct SledCallStore {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) db: sled::Db,
    pub(super) tree: sled::Tree,
    /// Makes multi-key writes atomic (see [`super::journal`]).
    pub(super) journal: Journal,
    pub(super) commit: GroupCommit,
    stripes: Vec<Mutex<()>>,
    pub(super) outbox_lock: Mutex<()>,
    pub(super) aggregate_lock: AggregateLock,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The mutexes guard no data of their own (`()`), so poisoning carries no meaning.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(StoreError::Serialize)
}

pub(super) fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

impl SledCallStore {
    /// Opens (or creates) a database of its own at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_BYTES)
            .flush_every_ms(Some(500))
            .open()?;
        Self::open_with_db(db)
    }

    /// Uses the `calls` tree of a database shared with other components (e.g. DLT state),
    /// with the per-day tallies brought up to date (rebuilt from the records after an
    /// upgrade that changed their format) before it returns.
    pub fn open_with_db(db: sled::Db) -> Result<Self, StoreError> {
        let store = Self::open_with_db_deferred(db)?;
        store.ensure_aggregates(&mut |_| {})?;
        Ok(store)
    }

    /// Like [`Self::open_with_db`] but leaves the tallies as they are: for a server that
    /// must be listening (and answering its probes) while a rebuild over every record
    /// runs. Until [`Self::ensure_aggregates`] has returned, nothing may write a call.
    pub fn open_with_db_deferred(db: sled::Db) -> Result<Self, StoreError> {
        let tree = db.open_tree(TREE_NAME)?;
        // Before anything reads the tree: finish the writes a crash interrupted.
        let (journal, _) = Journal::open(&db, &tree)?;
        let commit = GroupCommit::start(tree.clone())?;
        Ok(Self::from_parts(db, tree, journal, commit))
    }

    fn from_parts(db: sled::Db, tree: sled::Tree, journal: Journal, commit: GroupCommit) -> Self {
        let stripes = (0..STRIPES).map(|_| Mutex::new(())).collect();
        SledCallStore {
            inner: Arc::new(Inner {
                db,
                tree,
                journal,
                commit,
                stripes,
                outbox_lock: Mutex::new(()),
                aggregate_lock: AggregateLock::new(),
            }),
        }
    }

    /// Waits until every write applied so far is durable. Readers call it before acting
    /// outside the process on what they read (e.g. sending a webhook): a write is visible
    /// in memory a moment before its group commit makes it crash-proof.
    pub async fn wait_durable(&self) -> Result<(), StoreError> {
        let t = self.inner.commit.current();
        self.inner.commit.wait(t).await
    }

    /// Makes every write applied to the database before this call durable, through the
    /// group commit: a flush that starts after now (a sled flush covers every tree of
    /// the database). For stores of other trees that share the database (the wallet), so
    /// their writes share the fsync of the call writes around them instead of paying
    /// their own.
    pub async fn commit_durable(&self) -> Result<(), StoreError> {
        self.inner.commit.commit().await
    }

    /// Calls `f` after every group-commit flush with its duration and success, from the
    /// flusher thread (keep it cheap). Returns false if an observer is installed already.
    pub fn observe_flushes(
        &self,
        f: impl Fn(std::time::Duration, bool) + Send + Sync + 'static,
    ) -> bool {
        self.inner.commit.observe(Box::new(f))
    }

    /// Readiness probe: one read of the database, as the gateway's `/readyz` made it.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.inner.db.contains_key(b"readyz")?;
        Ok(())
    }

    /// How many group-commit flushes have run (metrics, tests).
    pub fn flush_count(&self) -> u64 {
        self.inner.commit.flush_count()
    }

    pub(super) fn lock_call(&self, call_id: &str) -> MutexGuard<'_, ()> {
        let mut h = DefaultHasher::new();
        call_id.hash(&mut h);
        let i = (h.finish() % STRIPES as u64) as usize;
        lock(&self.inner.stripes[i])
    }

    pub(super) fn tree(&self) -> &sled::Tree {
        &self.inner.tree
    }

    pub(super) fn read_record(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        let key = keys::record(call_id);
        match self.tree().get(&key)? {
            Some(v) => decode(&key, &v).map(Some),
            None => Ok(None),
        }
    }

    pub async fn create(&self, rec: &CallRecord) -> Result<(), StoreError> {
        self.create_sync(rec)?;
        self.inner.commit.commit().await
    }

    fn create_sync(&self, rec: &CallRecord) -> Result<(), StoreError> {
        keys::check_id("call_id", &rec.call_id)?;
        keys::check_id("tenant", &rec.tenant)?;
        // Validates created_ms (the tallies file the call under its UTC day).
        keys::utc_day(rec.created_ms)?;
        let bytes = encode(rec)?;
        let _g = self.lock_call(&rec.call_id);
        let rkey = keys::record(&rec.call_id);
        if self.tree().contains_key(&rkey)? {
            return Err(StoreError::AlreadyExists);
        }
        let mut b = Writes::default();
        b.insert(rkey, bytes);
        b.insert(
            keys::tenant(&rec.tenant, rec.created_ms, &rec.call_id),
            Vec::new(),
        );
        if !rec.is_ended() {
            b.insert(keys::open(&rec.call_id), Vec::new());
        }
        self.apply_with_tallies(b, None, rec)
    }

    pub async fn apply(
        &self,
        prev_version: u64,
        new_record: &CallRecord,
        enqueue_webhook: Option<OutboxEntry>,
    ) -> Result<Option<u64>, StoreError> {
        keys::check_id("call_id", &new_record.call_id)?;
        let enqueued = {
            let _g = self.lock_call(&new_record.call_id);
            let cur = self
                .read_record(&new_record.call_id)?
                .ok_or(StoreError::NotFound)?;
            if cur.version != prev_version {
                return Err(StoreError::VersionConflict {
                    expected: prev_version,
                    found: cur.version,
                });
            }
            self.write_locked(&cur, new_record, enqueue_webhook)?
        };
        self.inner.commit.commit().await?;
        Ok(enqueued)
    }

    /// See [`super::CallStoreExt::apply_transition`].
    pub async fn apply_transition<F>(&self, call_id: &str, f: F) -> Result<Applied, StoreError>
    where
        F: FnOnce(&CallRecord) -> Result<Transition, TransitionError>,
    {
        let applied = self.transition_locked(call_id, f)?;
        if applied.written {
            self.inner.commit.commit().await?;
        } else {
            // A no-op may have read a concurrent writer's not-yet-durable state; do not
            // acknowledge it before that state is on disk.
            self.wait_durable().await?;
        }
        Ok(applied)
    }

    fn transition_locked<F>(&self, call_id: &str, f: F) -> Result<Applied, StoreError>
    where
        F: FnOnce(&CallRecord) -> Result<Transition, TransitionError>,
    {
        keys::check_id("call_id", call_id)?;
        let _g = self.lock_call(call_id);
        let cur = self.read_record(call_id)?.ok_or(StoreError::NotFound)?;
        // `write_locked` enqueues the webhook only if the call has none yet (one lookup).
        let plan = TransitionPlan::new(cur, f, || Ok(self.inner.db.generate_id()?))?;
        plan.apply(|prev, record, outbox| self.write_locked(prev, record, outbox))
    }

    /// The one atomic write of an update. Caller holds the call's stripe lock.
    fn write_locked(
        &self,
        prev: &CallRecord,
        rec: &CallRecord,
        outbox: Option<OutboxEntry>,
    ) -> Result<Option<u64>, StoreError> {
        let mut b = Writes::default();
        b.insert(keys::record(&rec.call_id), encode(rec)?);
        if rec.is_ended() {
            b.remove(keys::open(&rec.call_id));
        }
        let mut enqueued = None;
        if let Some(e) = outbox {
            if e.call_id != rec.call_id {
                return Err(StoreError::InvalidInput {
                    what: "outbox entry call_id",
                });
            }
            let wi = keys::webhook_index(&rec.call_id);
            // One webhook per call, whatever the callers do.
            if !self.tree().contains_key(&wi)? {
                b.insert(keys::outbox(e.seq), encode(&e)?);
                if e.is_pending() {
                    b.insert(
                        keys::outbox_pending(e.seq),
                        keys::pending_value(e.next_attempt_ms, e.created_ms, &e.tenant),
                    );
                }
                b.insert(wi, e.seq.to_be_bytes());
                enqueued = Some(e.seq);
            }
        }
        self.apply_with_tallies(b, Some(prev), rec)?;
        Ok(enqueued)
    }

    pub fn get(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        keys::check_id("call_id", call_id)?;
        self.read_record(call_id)
    }

    pub fn open_calls(&self) -> Result<Vec<CallRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree().scan_prefix(keys::OPEN) {
            let (k, _) = item?;
            let Some(id) = k.get(keys::OPEN.len()..) else {
                continue;
            };
            let id = String::from_utf8_lossy(id);
            if let Some(rec) = self.read_record(&id)? {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// Up to `limit` open calls whose id sorts after `after`, in id order: lets a poller
    /// walk all open calls in bounded chunks instead of holding them all at once.
    pub fn open_calls_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let start = match after {
            // The smallest key strictly greater than `o/<after>`.
            Some(a) => {
                let mut k = keys::open(a);
                k.push(0);
                k
            }
            None => keys::OPEN.to_vec(),
        };
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in self.tree().range(start..) {
            let (k, _) = item?;
            let Some(id) = k.strip_prefix(keys::OPEN) else {
                break;
            };
            let id = String::from_utf8_lossy(id);
            if let Some(rec) = self.read_record(&id)? {
                out.push(rec);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// How many calls are open (walks the open index only).
    pub fn open_count(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for item in self.tree().scan_prefix(keys::OPEN) {
            item?;
            n += 1;
        }
        Ok(n)
    }

    pub fn list_by_tenant(
        &self,
        tenant: &str,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<CallPage, StoreError> {
        keys::check_id("tenant", tenant)?;
        let limit = limit.min(MAX_PAGE);
        let (start, end) = keys::tenant_page(tenant, from_ms, to_ms, cursor)?;
        let mut records = Vec::new();
        if limit == 0 || start >= end {
            return Ok(CallPage {
                records,
                next_cursor: None,
            });
        }
        let id_at = keys::tenant_prefix(tenant).len() + 8;
        let range = (Bound::Included(start), Bound::Excluded(end));
        let mut more = false;
        for item in self.tree().range::<Vec<u8>, _>(range) {
            let (k, _) = item?;
            let Some(id) = k.get(id_at..) else { continue };
            let Some(rec) = self.read_record(&String::from_utf8_lossy(id))? else {
                continue;
            };
            if records.len() == limit {
                more = true;
                break;
            }
            records.push(rec);
        }
        let next_cursor = match records.last() {
            Some(r) if more => Some(keys::encode_cursor(r.created_ms, &r.call_id)),
            _ => None,
        };
        Ok(CallPage {
            records,
            next_cursor,
        })
    }

    /// Call ids of `tenant` created on UTC day `yyyymmdd`, oldest first, at most `limit`
    /// (capped). A range of the tenant-time index: a UTC day is a range of `created_ms`.
    pub fn call_ids_on_day(
        &self,
        tenant: &str,
        yyyymmdd: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        keys::check_id("tenant", tenant)?;
        let (from_ms, to_ms) = keys::utc_day_range(yyyymmdd)?;
        let id_at = keys::tenant_prefix(tenant).len() + 8;
        let range = keys::tenant_time(tenant, from_ms)..keys::tenant_time(tenant, to_ms);
        let mut out = Vec::new();
        for item in self.tree().range(range).take(limit.min(MAX_PAGE)) {
            let (k, _) = item?;
            if let Some(id) = k.get(id_at..) {
                out.push(String::from_utf8_lossy(id).into_owned());
            }
        }
        Ok(out)
    }

    /// A fresh outbox seq from sled's persisted id generator.
    pub fn next_outbox_seq(&self) -> Result<u64, StoreError> {
        Ok(self.inner.db.generate_id()?)
    }
}
#[cfg(test)]
impl SledCallStore {
    /// A store whose flushes take at least `delay`, modelling a disk where fsync dominates.
    pub(super) fn open_with_slow_flush(db: sled::Db, delay: std::time::Duration) -> Self {
        let tree = db.open_tree(TREE_NAME).unwrap();
        let (journal, _) = Journal::open(&db, &tree).unwrap();
        let t = tree.clone();
        let commit = GroupCommit::start_with(move || {
            std::thread::sleep(delay);
            t.flush().map(drop)
        })
        .unwrap();
        Self::from_parts(db, tree, journal, commit)
    }
}
