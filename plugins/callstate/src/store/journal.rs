//! Atomic multi-key writes without `sled::Tree::apply_batch`.
//!
//! Why not `apply_batch`: in sled 0.34 every batch takes sled's global write lock (stalling
//! all readers) and, to guard its batch manifest, rolls the current IO buffer before and
//! after reserving it. Each roll is a `pwrite` plus a `sync_file_range` on sled's IO threads.
//! With four to five batches per call that was about ten synchronous disk writes per call,
//! so the group commit ([`super::flusher`]) had nothing left to group.
//!
//! How this stays atomic: a change to several keys is first stored whole, as one value under
//! a journal key in a tree of its own (a single-key insert is atomic in sled). Then the keys
//! are written one by one, and the journal entry is removed. Sled recovers a prefix of its
//! log (recovery stops at the first torn message, `pagecache/iterator.rs`), so after a crash
//! any surviving key write of a change implies that its journal entry survived as well.
//! [`Journal::open`] replays every entry left over, in the order they were made, before the
//! store serves anything: the change is then complete, never half-applied.
//!
//! Durability is not this module's job: writers still wait for the group commit, and nothing
//! is acknowledged before the flush that covers all of its writes.
//!
//! Concurrent readers may see a change half-applied for the microseconds it takes to write
//! it. Writers of the same call, of the outbox and of the tallies are serialised by the
//! store's locks, so only readers can; every reader already tolerates an index entry whose
//! record it cannot (yet) read.
//!
//! Replay sets keys to the values the change wrote. A key is only ever written under one
//! lock, so no newer change can have overtaken an unfinished one, with one exception: a
//! delivery's progress on an outbox entry (outbox lock) may land while the call's final
//! write that created the entry (call lock) is still finishing. A crash in that instant
//! makes the entry pending again after replay, and the webhook is re-sent with the same
//! `webhook-id` (at-least-once, as documented); nothing is lost.

#[cfg(test)]
use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError, RwLock};

use crate::error::StoreError;

/// Name of the journal's tree inside the store's sled database.
pub const JOURNAL_TREE: &str = "calls-journal";

/// The key writes of one change, applied in order (a later write to the same key wins, as
/// in a `sled::Batch`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Writes {
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Writes {
    pub(crate) fn insert(&mut self, key: impl AsRef<[u8]>, value: impl Into<Vec<u8>>) {
        self.ops.push((key.as_ref().to_vec(), Some(value.into())));
    }

    pub(crate) fn remove(&mut self, key: impl AsRef<[u8]>) {
        self.ops.push((key.as_ref().to_vec(), None));
    }

    /// Serialised form: `count u32`, then per write `key_len u32, key, kind u8`
    /// (0 remove, 1 insert) and for inserts `value_len u32, value`; integers big-endian.
    fn encode(&self) -> Vec<u8> {
        let size = self
            .ops
            .iter()
            .map(|(k, v)| 9 + k.len() + v.as_ref().map_or(0, Vec::len))
            .sum::<usize>();
        let mut out = Vec::with_capacity(4 + size);
        out.extend_from_slice(&len32(self.ops.len()));
        for (k, v) in &self.ops {
            out.extend_from_slice(&len32(k.len()));
            out.extend_from_slice(k);
            match v {
                None => out.push(0),
                Some(v) => {
                    out.push(1);
                    out.extend_from_slice(&len32(v.len()));
                    out.extend_from_slice(v);
                }
            }
        }
        out
    }

    fn decode(mut b: &[u8]) -> Option<Writes> {
        let n = take_u32(&mut b)? as usize;
        // Each write takes at least 5 bytes: a count beyond that is corruption, and must not
        // drive the allocation below.
        if n > b.len() / 5 {
            return None;
        }
        let mut ops = Vec::with_capacity(n);
        for _ in 0..n {
            let klen = take_u32(&mut b)? as usize;
            let key = take(&mut b, klen)?.to_vec();
            let value = match take(&mut b, 1)?[0] {
                0 => None,
                1 => {
                    let vlen = take_u32(&mut b)? as usize;
                    Some(take(&mut b, vlen)?.to_vec())
                }
                _ => return None,
            };
            ops.push((key, value));
        }
        b.is_empty().then_some(Writes { ops })
    }

    fn write_to(&self, tree: &sled::Tree) -> Result<(), StoreError> {
        for (k, v) in &self.ops {
            match v {
                Some(v) => tree.insert(k.as_slice(), v.as_slice())?,
                None => tree.remove(k.as_slice())?,
            };
        }
        Ok(())
    }
}

impl Writes {
    /// The encoded form (what a backup stores for a change made during the copy).
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        self.encode()
    }

    /// Parses [`Self::to_bytes`]; `None` if the bytes are not a whole change.
    pub(crate) fn from_bytes(b: &[u8]) -> Option<Writes> {
        Self::decode(b)
    }

    /// Applies the writes to `tree` directly (restore, where nothing else runs).
    pub(crate) fn apply_to(&self, tree: &sled::Tree) -> Result<(), StoreError> {
        self.write_to(tree)
    }

    fn size(&self) -> usize {
        self.ops
            .iter()
            .map(|(k, v)| 16 + k.len() + v.as_ref().map_or(0, Vec::len))
            .sum()
    }
}

/// Changes recorded while a backup runs, bounded in bytes.
struct Capture {
    inner: Mutex<CaptureInner>,
}

struct CaptureInner {
    changes: Vec<Writes>,
    bytes: usize,
    limit: usize,
    overflowed: bool,
}

impl Capture {
    fn new(limit: usize) -> Self {
        Capture {
            inner: Mutex::new(CaptureInner {
                changes: Vec::new(),
                bytes: 0,
                limit,
                overflowed: false,
            }),
        }
    }

    fn record(&self, w: &Writes) {
        let mut c = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if c.overflowed {
            return;
        }
        c.bytes += w.size();
        if c.bytes > c.limit {
            // Give the memory back at once; the backup fails when it stops capturing.
            c.overflowed = true;
            c.changes = Vec::new();
            return;
        }
        c.changes.push(w.clone());
    }

    fn into_changes(self) -> Option<Vec<Writes>> {
        let c = self
            .inner
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        (!c.overflowed).then_some(c.changes)
    }
}

fn len32(n: usize) -> [u8; 4] {
    // Keys and values are bounded far below 4 GiB (records are a few hundred bytes); a
    // longer one would be a bug upstream, and saturating keeps decode from misreading it.
    u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes()
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if b.len() < n {
        return None;
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Some(head)
}

fn take_u32(b: &mut &[u8]) -> Option<u32> {
    take(b, 4).map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// The journal of in-flight multi-key changes to one target tree.
pub(crate) struct Journal {
    tree: sled::Tree,
    /// Entry ids come from sled's persisted id generator: increasing across restarts (so
    /// key order is creation order) and unique even if two stores share the database.
    db: sled::Db,
    /// While a backup copies the store, every change applied is also recorded here
    /// (see `backup.rs`). Each apply holds the read side for its whole duration, so
    /// starting or stopping a capture (the write side) waits for changes in flight:
    /// a change is either wholly before the capture or wholly recorded in it.
    capture: RwLock<Option<Capture>>,
    /// Test failpoint: stop right after the journal write, as a crash there would.
    #[cfg(test)]
    pub(crate) crash_after_journal: std::sync::atomic::AtomicBool,
}

impl Journal {
    /// Opens the journal and completes every change a crash interrupted. Returns it with
    /// the number of changes replayed. Call before anything reads `target`.
    pub(crate) fn open(db: &sled::Db, target: &sled::Tree) -> Result<(Self, usize), StoreError> {
        let tree = db.open_tree(JOURNAL_TREE)?;
        let mut replayed = 0;
        // Ids are big-endian, so key order is the order the changes were made in; a later
        // change to the same key must win.
        for item in tree.iter() {
            let (k, v) = item?;
            let writes = Writes::decode(&v).ok_or_else(|| StoreError::CorruptJournal {
                entry: k.iter().fold(0u64, |n, b| n << 8 | u64::from(*b)),
            })?;
            writes.write_to(target)?;
            tree.remove(&k)?;
            replayed += 1;
        }
        if replayed > 0 {
            // Make the completed changes durable before anyone acts on them.
            target.flush()?;
            tracing::warn!(
                replayed,
                "callstate: completed multi-key writes interrupted by a crash"
            );
        }
        Ok((
            Journal {
                tree,
                db: db.clone(),
                capture: RwLock::new(None),
                #[cfg(test)]
                crash_after_journal: std::sync::atomic::AtomicBool::new(false),
            },
            replayed,
        ))
    }

    /// Applies `writes` to `target` so that a crash leaves all of them or none (after
    /// [`Journal::open`]). The caller's group commit makes them durable.
    pub(crate) fn apply(&self, target: &sled::Tree, writes: &Writes) -> Result<(), StoreError> {
        let capture = self.capture.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = capture.as_ref() {
            c.record(writes);
        }
        if writes.ops.len() <= 1 {
            // A single key write is atomic by itself.
            return writes.write_to(target);
        }
        let id = self.db.generate_id()?.to_be_bytes();
        // If a key write below fails, the entry stays and is replayed at the next open.
        // That cannot undo a newer change to the same keys: sled's write errors are
        // sticky (an IO failure sets its global error and every later write fails too).
        self.tree.insert(id, writes.encode())?;
        #[cfg(test)]
        if self.crash_after_journal.load(Ordering::Relaxed) {
            return Ok(());
        }
        writes.write_to(target)?;
        self.tree.remove(id)?;
        Ok(())
    }

    /// Starts recording every change applied from now on, up to `limit_bytes` of them.
    /// Returns false if a capture is already running (one backup at a time).
    pub(crate) fn start_capture(&self, limit_bytes: usize) -> bool {
        let mut c = self.capture.write().unwrap_or_else(PoisonError::into_inner);
        if c.is_some() {
            return false;
        }
        *c = Some(Capture::new(limit_bytes));
        true
    }

    /// Stops recording and returns what was recorded, in the order applied; `None` if
    /// more than the limit changed meanwhile (or no capture was running).
    pub(crate) fn stop_capture(&self) -> Option<Vec<Writes>> {
        let c = self
            .capture
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        c.into_changes()
    }

    /// Changes currently in the journal (0 when no write is in flight).
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.tree.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Writes {
        let mut w = Writes::default();
        w.insert(b"r/a", b"{\"x\":1}".to_vec());
        w.remove(b"o/a");
        w.insert(b"a/t", Vec::new());
        w
    }

    #[test]
    fn encoding_round_trips() {
        let w = sample();
        assert_eq!(Writes::decode(&w.encode()), Some(w));
        assert_eq!(
            Writes::decode(&Writes::default().encode()),
            Some(Writes::default())
        );
    }

    #[test]
    fn truncated_or_padded_entries_are_rejected() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            assert_eq!(Writes::decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert_eq!(Writes::decode(&padded), None);
        // A huge count must not allocate.
        assert_eq!(Writes::decode(&[0xff, 0xff, 0xff, 0xff, 0]), None);
        // An unknown write kind.
        let mut bad = bytes;
        bad[4 + 4 + 3] = 7;
        assert_eq!(Writes::decode(&bad), None);
    }

    #[test]
    fn apply_writes_in_order_and_leaves_no_journal_entry() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let target = db.open_tree("t").unwrap();
        target.insert(b"o/a", &b""[..]).unwrap();
        let (j, replayed) = Journal::open(&db, &target).unwrap();
        assert_eq!(replayed, 0);
        let mut w = sample();
        w.insert(b"r/a", b"{\"x\":2}".to_vec());
        j.apply(&target, &w).unwrap();
        assert_eq!(target.get(b"r/a").unwrap().unwrap(), &b"{\"x\":2}"[..]);
        assert_eq!(target.get(b"o/a").unwrap(), None);
        assert_eq!(target.get(b"a/t").unwrap().unwrap(), &b""[..]);
        assert_eq!(j.pending(), 0);
    }

    /// Opens a database a dropped handle just closed. sled's flusher thread holds the
    /// database (and its file lock) until its next tick, so the lock may still be taken
    /// for a moment: retry rather than fail on a race the test is not about.
    fn reopen(path: &std::path::Path) -> sled::Db {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match sled::open(path) {
                Ok(db) => return db,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("cannot reopen {}: {e}", path.display()),
            }
        }
    }

    #[test]
    fn interrupted_changes_are_completed_in_order_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let target = db.open_tree("t").unwrap();
            let (j, _) = Journal::open(&db, &target).unwrap();
            target.insert(b"o/a", &b""[..]).unwrap();
            // Two changes to the same key, cut off after their journal entries.
            j.crash_after_journal.store(true, Ordering::Relaxed);
            j.apply(&target, &sample()).unwrap();
            let mut later = Writes::default();
            later.insert(b"r/a", b"{\"x\":3}".to_vec());
            later.insert(b"w/1", b"{}".to_vec());
            j.apply(&target, &later).unwrap();
            assert_eq!(target.get(b"r/a").unwrap(), None);
            assert_eq!(j.pending(), 2);
            db.flush().unwrap();
        }
        let db = reopen(dir.path());
        let target = db.open_tree("t").unwrap();
        let (j, replayed) = Journal::open(&db, &target).unwrap();
        assert_eq!(replayed, 2);
        assert_eq!(j.pending(), 0);
        assert_eq!(target.get(b"r/a").unwrap().unwrap(), &b"{\"x\":3}"[..]);
        assert_eq!(target.get(b"o/a").unwrap(), None);
        assert_eq!(target.get(b"w/1").unwrap().unwrap(), &b"{}"[..]);
    }

    #[test]
    fn a_corrupt_entry_fails_the_open_with_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let target = db.open_tree("t").unwrap();
        db.open_tree(JOURNAL_TREE)
            .unwrap()
            .insert(7u64.to_be_bytes(), &b"junk"[..])
            .unwrap();
        match Journal::open(&db, &target) {
            Err(StoreError::CorruptJournal { entry }) => assert_eq!(entry, 7),
            other => panic!("expected CorruptJournal, got {:?}", other.map(|(_, n)| n)),
        }
    }
}
