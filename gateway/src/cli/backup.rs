//! `c2c-gateway db backup --to DIR` and `db restore --from DIR --data DATA_DIR`.
//!
//! **Backup** takes the store's consistent copy (`c2c_callstate`'s `backup.rs`) from a
//! running gateway's owner API (`--gateway`, streamed) or, with the gateway stopped,
//! straight from `--data`, and lands it atomically as `DIR/c2c-store.backup`: it is
//! written to `DIR/.c2c-store.backup.partial`, synced, checked end to end (trailer and
//! checksum) and only then renamed into place (and the directory synced). A kill at any
//! moment leaves no `c2c-store.backup`, only a partial file that restore refuses; a
//! stream the gateway cut short is deleted with the reason.
//!
//! **Restore** loads a backup into an empty data directory: into
//! `DATA/.store.restoring` first, checked as it is read (nothing is kept of a truncated
//! or corrupt backup), then the store integrity scan runs on it, and only then it is
//! renamed to `DATA/store`, where `serve` finds it.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use c2c_callstate::{verify_backup, BackupInfo, SledCallStore};

use super::common::{open_db, runtime, CliResult, Failure, Remote};
use super::progress::{summary, thousands, took, Progress};
use super::{DbBackupArgs, DbRestoreArgs};

/// The backup's name inside `--to DIR`.
pub const BACKUP_FILE: &str = "c2c-store.backup";
/// Where a backup is written until it is complete and checked.
pub const PARTIAL_FILE: &str = ".c2c-store.backup.partial";
/// Where a restore builds the store before it becomes `DATA/store`.
const RESTORING_DIR: &str = ".store.restoring";
/// Longest wait for the next chunk of a streamed backup.
const IDLE: Duration = Duration::from_secs(60);

fn io(what: String) -> impl FnOnce(std::io::Error) -> Failure {
    move |e| Failure::failed(format!("{what}: {e}"))
}

/// Makes a completed rename or file creation survive a crash.
fn sync_dir(dir: &Path) -> Result<(), Failure> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("cannot sync {}", dir.display())))
}

/// Runs `db backup`.
pub fn backup(a: DbBackupArgs) -> CliResult {
    let remote = a.gateway.remote()?;
    fs::create_dir_all(&a.to).map_err(io(format!("cannot create {}", a.to.display())))?;
    let dest = a.to.join(BACKUP_FILE);
    if dest.exists() {
        return Err(Failure::failed(format!(
            "{} already holds a backup ({BACKUP_FILE}); write each backup to a new directory",
            a.to.display()
        )));
    }
    let partial = a.to.join(PARTIAL_FILE);
    // What an interrupted run left: never a backup, always safe to replace.
    let _ = fs::remove_file(&partial);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .map_err(io(format!("cannot create {}", partial.display())))?;
    let mut progress = Progress::new("received", "bytes");
    let written = match &remote {
        Some(r) => runtime()?.block_on(download(r, file, &mut progress)),
        None => local_copy(&a.data.data, file),
    };
    let info = written.and_then(|()| {
        // Check what is on disk, not what was meant to be: the trailer proves the
        // stream is whole, the digest that the bytes are right.
        let f = File::open(&partial).map_err(io(format!("cannot read {}", partial.display())))?;
        verify_backup(&mut BufReader::new(f), &mut |_| {})
            .map_err(|e| Failure::failed(format!("the backup is not usable: {e}")))
    });
    let info = match info {
        Ok(info) => info,
        Err(e) => {
            let _ = fs::remove_file(&partial);
            return Err(e);
        }
    };
    progress.finish(info.bytes, None);
    fs::rename(&partial, &dest).map_err(io(format!(
        "cannot rename {} to {}",
        partial.display(),
        dest.display()
    )))?;
    sync_dir(&a.to)?;
    summary(format!(
        "db backup: {} entries in {} trees ({} changes made during the copy), {} bytes to {} in {}",
        thousands(info.entries),
        info.trees,
        thousands(info.changes),
        thousands(info.bytes),
        dest.display(),
        took(progress.elapsed())
    ));
    Ok(())
}

/// Streams the running gateway's backup into `file`, synced on success.
async fn download(r: &Remote, file: File, progress: &mut Progress) -> Result<(), Failure> {
    let mut resp = r.get_stream("/api/c2c/owner/backup").await?;
    let mut out = BufWriter::new(file);
    let write = |e: std::io::Error| Failure::failed(format!("writing the backup failed: {e}"));
    let mut bytes = 0u64;
    loop {
        let chunk = match tokio::time::timeout(IDLE, resp.chunk()).await {
            Err(_) => {
                return Err(Failure::failed(format!(
                    "the gateway sent nothing for {} s; backup abandoned",
                    IDLE.as_secs()
                )))
            }
            Ok(Err(e)) => {
                return Err(Failure::failed(format!(
                    "the backup stream broke off after {} bytes: {e}",
                    thousands(bytes)
                )))
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(c))) => c,
        };
        out.write_all(&chunk).map_err(write)?;
        bytes += chunk.len() as u64;
        progress.update(bytes, None);
    }
    let file = out.into_inner().map_err(|e| write(e.into_error()))?;
    file.sync_all().map_err(write)
}

/// Writes a stopped gateway's backup from its data directory into `file`, synced.
fn local_copy(data: &Path, file: File) -> Result<(), Failure> {
    let db = open_db(data, false, true)?;
    let store = SledCallStore::open_with_db(db)
        .map_err(|e| Failure::failed(format!("cannot open the call store: {e}")))?;
    let mut out = BufWriter::new(file);
    store
        .write_backup(&mut out)
        .map_err(|e| Failure::failed(format!("the backup failed: {e}")))?;
    let file = out
        .into_inner()
        .map_err(|e| Failure::failed(format!("writing the backup failed: {}", e.error())))?;
    file.sync_all()
        .map_err(|e| Failure::failed(format!("writing the backup failed: {e}")))
}

/// The backup file `--from` names: the file itself, or `DIR/c2c-store.backup`.
fn source(from: &Path) -> Result<PathBuf, Failure> {
    if from.is_file() {
        return Ok(from.to_path_buf());
    }
    let file = from.join(BACKUP_FILE);
    if file.is_file() {
        return Ok(file);
    }
    if from.join(PARTIAL_FILE).exists() {
        return Err(Failure::failed(format!(
            "{} holds only an interrupted backup ({PARTIAL_FILE}), which cannot be restored; take a new one",
            from.display()
        )));
    }
    Err(Failure::failed(format!(
        "there is no backup in {} (no {BACKUP_FILE})",
        from.display()
    )))
}

/// Refuses a data directory with anything in it but an earlier restore's leftovers.
fn ensure_empty(data: &Path) -> Result<(), Failure> {
    let Ok(entries) = fs::read_dir(data) else {
        return Ok(()); // missing: created below
    };
    let others: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != RESTORING_DIR)
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    Err(Failure::failed(format!(
        "data dir {} is not empty (it holds {}); restore only into an empty data directory",
        data.display(),
        others.join(", ")
    )))
}

/// Runs `db restore`.
pub fn restore(a: DbRestoreArgs) -> CliResult {
    let src = source(&a.from)?;
    let data = &a.data.data;
    ensure_empty(data)?;
    fs::create_dir_all(data).map_err(io(format!("cannot create {}", data.display())))?;
    let tmp = data.join(RESTORING_DIR);
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io(format!("cannot remove {}", tmp.display())))?;
    }
    let file = File::open(&src).map_err(io(format!("cannot read {}", src.display())))?;
    let total = file.metadata().map(|m| m.len()).ok();
    let mut progress = Progress::new("restored", "bytes");
    let loaded = SledCallStore::restore_backup(&mut BufReader::new(file), &tmp, &mut |n| {
        progress.update(n, total)
    })
    .map_err(|e| Failure::failed(format!("{} cannot be restored: {e}", src.display())))
    .and_then(|info| check_restored(&tmp).map(|problems| (info, problems)));
    let (info, problems) = match loaded {
        Ok(done) => done,
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    progress.finish(info.bytes, total);
    let store = data.join("store");
    fs::rename(&tmp, &store).map_err(io(format!(
        "cannot rename {} to {}",
        tmp.display(),
        store.display()
    )))?;
    sync_dir(data)?;
    summary(restored_line(&info, &src, data, &progress, problems));
    if problems > 0 {
        return Err(Failure::failed(format!(
            "the restored store has {problems} problem(s); run `c2c-gateway db check --data {}` for the list",
            data.display()
        )));
    }
    Ok(())
}

/// Runs the integrity scan on a restored store; the number of problems.
fn check_restored(dir: &Path) -> Result<u64, Failure> {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(16 * 1024 * 1024)
        .open()
        .map_err(|e| Failure::failed(format!("cannot open the restored store: {e}")))?;
    let store = SledCallStore::open_with_db(db)
        .map_err(|e| Failure::failed(format!("cannot open the restored store: {e}")))?;
    let report = store
        .check()
        .map_err(|e| Failure::failed(format!("cannot check the restored store: {e}")))?;
    Ok(report.problem_count)
}

fn restored_line(
    info: &BackupInfo,
    src: &Path,
    data: &Path,
    progress: &Progress,
    problems: u64,
) -> String {
    format!(
        "db restore: {} entries in {} trees (+{} changes made during the copy) from {} into {} in {}; db check: {}",
        thousands(info.entries),
        info.trees,
        thousands(info.changes),
        src.display(),
        data.join("store").display(),
        took(progress.elapsed()),
        if problems == 0 {
            "no problems found".to_string()
        } else {
            format!("{problems} problem(s)")
        }
    )
}
