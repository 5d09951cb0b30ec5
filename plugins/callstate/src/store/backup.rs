//! Backups: a consistent copy of a running store as one byte stream, and its restore
//! into an empty directory.
//!
//! **Consistency without stopping writers.** A sled iteration is not a snapshot, and
//! holding a lock for a whole copy would stall every call. Instead the copy is fuzzy and
//! made exact: before the first key is read, the journal starts recording every change
//! applied to the calls tree ([`super::journal`]; starting waits for changes in flight,
//! so each change is wholly before the copy or wholly recorded). Every tree is then
//! copied key by key while calls go on; when the copy is done, recording stops (again
//! after changes in flight) and the recorded changes follow the copy in the stream.
//! Restore loads the copy and applies the changes in the order they were made: a key
//! that no change touched never changed during the copy, and a key that one did ends
//! with the value of the last change to it. So the restored calls tree is the store
//! exactly as it was the moment recording stopped, with every multi-key change whole.
//! The other trees (the DLT flag and audit, LiveKit webhook de-duplication) see a
//! handful of rare single writes and are copied key by key. The journal tree is left
//! out: the recorded changes cover what it held.
//!
//! **Format.** `C2CBAK01`, then frames: a type byte and length-prefixed parts (u32
//! big-endian): `T name` starts a tree, `K key value` is an entry of it, `C change` a
//! recorded change of the calls tree, `X message` says the writer gave up. The trailer
//! `E`, the id floor (u64, see below) and the frame count (u64) end the stream, followed
//! by the SHA-256 of every byte before the digest. A stream without its trailer — a
//! backup interrupted by a crash, a kill or a dropped connection — or with a wrong
//! digest is refused before anything is used.
//!
//! **Ids.** Outbox seqs, journal entries and DLT audit entries come from sled's id
//! generator, which a new database starts at 0. The trailer carries an id drawn after
//! the copy; restore moves the new database's generator past it, so no new id can
//! collide with a restored one.

use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::journal::{Writes, JOURNAL_TREE};
use super::sled_calls::{SledCallStore, TREE_NAME};
use crate::error::StoreError;

/// First bytes of every backup (format version 1).
pub const BACKUP_MAGIC: &[u8; 8] = b"C2CBAK01";
/// Most bytes of changes recorded during one backup; a store busier than that during
/// the copy fails the backup (retry later) rather than grow without bound.
pub const CAPTURE_LIMIT: usize = 64 * 1024 * 1024;
/// Largest part (key, value, change, name) a reader accepts: the store's values are
/// kilobytes; a larger length means a corrupt stream, and must not drive an allocation.
const MAX_PART: usize = 16 * 1024 * 1024;

const TREE: u8 = b'T';
const ENTRY: u8 = b'K';
const CHANGE: u8 = b'C';
const ABORT: u8 = b'X';
const END: u8 = b'E';

/// Why a backup or a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("another backup of this store is running; try again when it is done")]
    Busy,
    #[error("more than {} MiB of changes were made during the copy; try again at a quieter time", CAPTURE_LIMIT / (1024 * 1024))]
    TooManyChanges,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "this is not a c2c-gateway backup (no {} header)",
        String::from_utf8_lossy(BACKUP_MAGIC)
    )]
    NotABackup,
    #[error("the backup is incomplete: it ends before its trailer (an interrupted backup)")]
    Truncated,
    #[error("the backup is corrupt: {0}")]
    Corrupt(String),
    #[error("the backup was not finished: the gateway stopped it ({0})")]
    Aborted(String),
    #[error("{} is not empty: restore only into an empty directory", .0.display())]
    NotEmpty(PathBuf),
    #[error("backups are not supported by this store")]
    Unsupported,
}

/// What a backup holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupInfo {
    pub trees: u64,
    pub entries: u64,
    /// Changes made to the calls tree while it was copied.
    pub changes: u64,
    /// Size of the stream.
    pub bytes: u64,
    /// Every id the store had handed out is below this.
    pub id_floor: u64,
}

/// Writes frames and hashes what it writes.
struct FrameWriter<'a> {
    out: &'a mut dyn Write,
    hash: Sha256,
    info: BackupInfo,
    frames: u64,
    buf: Vec<u8>,
}

impl<'a> FrameWriter<'a> {
    fn new(out: &'a mut dyn Write) -> std::io::Result<Self> {
        let mut w = FrameWriter {
            out,
            hash: Sha256::new(),
            info: BackupInfo::default(),
            frames: 0,
            buf: Vec::with_capacity(4096),
        };
        w.put(BACKUP_MAGIC.as_slice())?;
        Ok(w)
    }

    /// One frame, written with a single `write_all` (a paced writer sees whole frames).
    fn frame(&mut self, tag: u8, parts: &[&[u8]]) -> std::io::Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.push(tag);
        for p in parts {
            // Parts are bounded far below 4 GiB (see MAX_PART); saturating keeps a bug
            // from wrapping into a valid-looking length.
            buf.extend_from_slice(&u32::try_from(p.len()).unwrap_or(u32::MAX).to_be_bytes());
            buf.extend_from_slice(p);
        }
        let r = self.put(&buf);
        self.buf = buf;
        if tag != ABORT {
            self.frames += 1;
        }
        r
    }

    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hash.update(bytes);
        self.info.bytes += bytes.len() as u64;
        self.out.write_all(bytes)
    }

    fn end(&mut self, id_floor: u64) -> std::io::Result<()> {
        let mut t = vec![END];
        t.extend_from_slice(&id_floor.to_be_bytes());
        t.extend_from_slice(&self.frames.to_be_bytes());
        self.put(&t)?;
        let digest = std::mem::take(&mut self.hash).finalize();
        self.out.write_all(&digest)?;
        self.info.bytes += digest.len() as u64;
        self.info.id_floor = id_floor;
        self.out.flush()
    }
}

/// A backup that has started: changes are being recorded from now on. Write it with
/// [`BackupJob::write`]; dropping it unwritten (or a failed write) stops the recording.
pub struct BackupJob {
    store: SledCallStore,
    recording: bool,
}

impl BackupJob {
    fn stop(&mut self) -> Option<Vec<Writes>> {
        self.recording = false;
        self.store.inner.journal.stop_capture()
    }

    /// Writes the copy to `out` (see the module docs). Blocking and long: run it on a
    /// blocking thread. When it fails after writing began it ends the stream with an
    /// `X` frame naming the reason (unless `out` itself failed), so the reader can say
    /// why.
    pub fn write(mut self, out: &mut dyn Write) -> Result<BackupInfo, BackupError> {
        let mut w = FrameWriter::new(out)?;
        match self.copy_into(&mut w) {
            Ok(()) => Ok(w.info),
            Err(e) => {
                if !matches!(e, BackupError::Io(_)) {
                    let _ = w.frame(ABORT, &[e.to_string().as_bytes()]);
                    let _ = w.out.flush();
                }
                Err(e)
            }
        }
    }

    fn copy_into(&mut self, w: &mut FrameWriter<'_>) -> Result<(), BackupError> {
        let db = self.store.inner.db.clone();
        let mut names = db.tree_names();
        names.sort();
        for name in names {
            if name == JOURNAL_TREE.as_bytes() {
                continue;
            }
            let tree = db.open_tree(&name)?;
            w.frame(TREE, &[&name])?;
            w.info.trees += 1;
            for kv in tree.iter() {
                let (k, v) = kv?;
                w.frame(ENTRY, &[&k, &v])?;
                w.info.entries += 1;
            }
        }
        let changes = self.stop().ok_or(BackupError::TooManyChanges)?;
        for c in &changes {
            w.frame(CHANGE, &[&c.to_bytes()])?;
            w.info.changes += 1;
        }
        // Drawn after the copy: above every id a copied or recorded entry holds.
        let id_floor = db.generate_id()?;
        w.end(id_floor)?;
        Ok(())
    }
}

impl super::StoreBackup for BackupJob {
    fn write(self: Box<Self>, out: &mut dyn Write) -> Result<BackupInfo, BackupError> {
        BackupJob::write(*self, out)
    }
}

impl Drop for BackupJob {
    fn drop(&mut self) {
        if self.recording {
            self.store.inner.journal.stop_capture();
        }
    }
}

impl SledCallStore {
    /// Starts a backup: from now on every change is recorded, so a copy written later
    /// by the job is consistent. Safe next to a serving gateway; one at a time
    /// ([`BackupError::Busy`]).
    pub fn begin_backup(&self) -> Result<BackupJob, BackupError> {
        if !self.inner.journal.start_capture(CAPTURE_LIMIT) {
            return Err(BackupError::Busy);
        }
        Ok(BackupJob {
            store: self.clone(),
            recording: true,
        })
    }

    /// [`Self::begin_backup`] and [`BackupJob::write`] in one (blocking).
    pub fn write_backup(&self, out: &mut dyn Write) -> Result<BackupInfo, BackupError> {
        self.begin_backup()?.write(out)
    }

    /// Loads a backup into a new database at `dir`, which must not exist or be empty.
    /// The whole stream is checked (structure, trailer, digest); on any error the
    /// caller must discard `dir`, which may hold part of the data. `progress` hears the
    /// bytes read so far.
    pub fn restore_backup(
        input: &mut dyn Read,
        dir: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<BackupInfo, BackupError> {
        if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
            return Err(BackupError::NotEmpty(dir.to_path_buf()));
        }
        let info = {
            let db = open_alone(
                sled::Config::new()
                    .path(dir)
                    .cache_capacity(64 * 1024 * 1024),
            )?;
            let mut sink = RestoreSink {
                calls: db.open_tree(TREE_NAME)?,
                db: &db,
                tree: None,
            };
            let info = read_backup(input, &mut sink, progress)?;
            db.flush()?;
            info
        };
        advance_ids(dir, info.id_floor)?;
        Ok(info)
    }
}

/// Checks a whole backup stream (structure, trailer, digest) without loading it.
pub fn verify_backup(
    input: &mut dyn Read,
    progress: &mut dyn FnMut(u64),
) -> Result<BackupInfo, BackupError> {
    read_backup(input, &mut NoSink, progress)
}

/// Opens a database this process opens and closes several times in a row (a restore).
/// No background flusher: every step flushes itself, and a flusher thread can still hold
/// the database's file lock for a moment after the `Db` is dropped, which made the next
/// open fail now and then ("could not acquire lock", seen in CI); a lock still held is
/// waited for briefly for the same reason.
fn open_alone(cfg: sled::Config) -> sled::Result<sled::Db> {
    let cfg = cfg.flush_every_ms(None);
    let mut attempt = 0;
    loop {
        match cfg.open() {
            Err(e) if attempt < 40 && e.to_string().contains("could not acquire lock") => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            r => return r,
        }
    }
}

/// sled's default `idgen_persist_interval`, which every open of the store uses.
const IDGEN_INTERVAL: u64 = 1_000_000;

/// Moves the id generator of the database at `dir` past `floor`. sled documents that
/// reopening a database adds twice `idgen_persist_interval` to the last persisted id
/// (`Db::generate_id`), so one reopen with a larger interval, and one id drawn (which
/// persists the new counter), does it. sled expects the persisted counter to be a
/// multiple of the interval in force (it asserts so when it next persists), so the
/// larger interval is a multiple of the default one.
fn advance_ids(dir: &Path, floor: u64) -> Result<(), BackupError> {
    {
        let interval = (floor / (2 * IDGEN_INTERVAL) + 1) * IDGEN_INTERVAL;
        let db = open_alone(
            sled::Config::new()
                .path(dir)
                .idgen_persist_interval(interval),
        )?;
        db.generate_id()?;
        db.flush()?;
    }
    let db = open_alone(sled::Config::new().path(dir))?;
    let next = db.generate_id()?;
    db.flush()?;
    if next <= floor {
        return Err(BackupError::Corrupt(format!(
            "could not move the id generator past {floor} (at {next})"
        )));
    }
    Ok(())
}

/// Where a reader puts what it reads.
trait Sink {
    fn tree(&mut self, name: &[u8]) -> Result<(), BackupError>;
    fn entry(&mut self, key: &[u8], value: &[u8]) -> Result<(), BackupError>;
    fn change(&mut self, change: &Writes) -> Result<(), BackupError>;
}

struct NoSink;

impl Sink for NoSink {
    fn tree(&mut self, _: &[u8]) -> Result<(), BackupError> {
        Ok(())
    }
    fn entry(&mut self, _: &[u8], _: &[u8]) -> Result<(), BackupError> {
        Ok(())
    }
    fn change(&mut self, _: &Writes) -> Result<(), BackupError> {
        Ok(())
    }
}

struct RestoreSink<'a> {
    db: &'a sled::Db,
    calls: sled::Tree,
    tree: Option<sled::Tree>,
}

impl Sink for RestoreSink<'_> {
    fn tree(&mut self, name: &[u8]) -> Result<(), BackupError> {
        self.tree = Some(self.db.open_tree(name)?);
        Ok(())
    }
    fn entry(&mut self, key: &[u8], value: &[u8]) -> Result<(), BackupError> {
        let tree = self
            .tree
            .as_ref()
            .ok_or_else(|| BackupError::Corrupt("an entry before any tree".into()))?;
        tree.insert(key, value)?;
        Ok(())
    }
    fn change(&mut self, change: &Writes) -> Result<(), BackupError> {
        change.apply_to(&self.calls)?;
        Ok(())
    }
}

/// Reads and hashes a backup stream.
struct FrameReader<'a> {
    input: &'a mut dyn Read,
    hash: Sha256,
    bytes: u64,
}

impl FrameReader<'_> {
    fn exact(&mut self, buf: &mut [u8], hashed: bool) -> Result<(), BackupError> {
        self.input.read_exact(buf).map_err(|e| match e.kind() {
            ErrorKind::UnexpectedEof => BackupError::Truncated,
            _ => BackupError::Io(e),
        })?;
        if hashed {
            self.hash.update(&*buf);
        }
        self.bytes += buf.len() as u64;
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, BackupError> {
        let mut b = [0u8; 1];
        self.exact(&mut b, true)?;
        Ok(b[0])
    }

    fn u64(&mut self) -> Result<u64, BackupError> {
        let mut b = [0u8; 8];
        self.exact(&mut b, true)?;
        Ok(u64::from_be_bytes(b))
    }

    fn part<'b>(&mut self, buf: &'b mut Vec<u8>) -> Result<&'b [u8], BackupError> {
        let mut len = [0u8; 4];
        self.exact(&mut len, true)?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_PART {
            return Err(BackupError::Corrupt(format!(
                "a part of {len} bytes (at most {MAX_PART})"
            )));
        }
        buf.resize(len, 0);
        self.exact(buf, true)?;
        Ok(buf)
    }
}

/// How often (in frames) a reader reports progress.
const PROGRESS_FRAMES: u64 = 1024;

fn read_backup(
    input: &mut dyn Read,
    sink: &mut dyn Sink,
    progress: &mut dyn FnMut(u64),
) -> Result<BackupInfo, BackupError> {
    let mut r = FrameReader {
        input,
        hash: Sha256::new(),
        bytes: 0,
    };
    let mut magic = [0u8; 8];
    let mut got = 0;
    while got < magic.len() {
        match r.input.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    if got == 0 {
        // An empty file: what an interrupted backup leaves when it was cut at once.
        return Err(BackupError::Truncated);
    }
    if got < magic.len() || &magic != BACKUP_MAGIC {
        return Err(BackupError::NotABackup);
    }
    r.hash.update(magic);
    r.bytes = magic.len() as u64;
    let mut info = BackupInfo::default();
    let (mut frames, mut a, mut b) = (0u64, Vec::new(), Vec::new());
    loop {
        if frames.is_multiple_of(PROGRESS_FRAMES) {
            progress(r.bytes);
        }
        match r.u8()? {
            TREE => {
                sink.tree(r.part(&mut a)?)?;
                info.trees += 1;
            }
            ENTRY => {
                let k = r.part(&mut a)?;
                let v = r.part(&mut b)?;
                sink.entry(k, v)?;
                info.entries += 1;
            }
            CHANGE => {
                let w = Writes::from_bytes(r.part(&mut a)?).ok_or_else(|| {
                    BackupError::Corrupt("a recorded change does not decode".into())
                })?;
                sink.change(&w)?;
                info.changes += 1;
            }
            ABORT => {
                let msg = String::from_utf8_lossy(r.part(&mut a)?).into_owned();
                return Err(BackupError::Aborted(msg));
            }
            END => {
                info.id_floor = r.u64()?;
                let count = r.u64()?;
                let want = std::mem::take(&mut r.hash).finalize();
                let mut digest = [0u8; 32];
                r.exact(&mut digest, false)?;
                if digest[..] != want[..] {
                    return Err(BackupError::Corrupt(
                        "the checksum does not match the content".into(),
                    ));
                }
                if count != frames {
                    return Err(BackupError::Corrupt(format!(
                        "the trailer counts {count} frames, the stream has {frames}"
                    )));
                }
                let mut extra = [0u8; 1];
                if r.input.read(&mut extra)? != 0 {
                    return Err(BackupError::Corrupt("data after the trailer".into()));
                }
                info.bytes = r.bytes;
                progress(r.bytes);
                return Ok(info);
            }
            other => {
                return Err(BackupError::Corrupt(format!(
                    "unknown frame type {other:#04x} at byte {}",
                    r.bytes - 1
                )))
            }
        }
        frames += 1;
    }
}
