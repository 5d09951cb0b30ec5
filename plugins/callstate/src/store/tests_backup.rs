//! Backup and restore: round trip, consistency while calls are written, and refusal of
//! anything partial or damaged.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;

use super::tests::{call, event, finished_call, open};
use super::*;
use crate::machine::CallEvent;

fn backup_of(s: &SledCallStore) -> (Vec<u8>, BackupInfo) {
    let mut out = Vec::new();
    let info = s.write_backup(&mut out).unwrap();
    (out, info)
}

fn restore(bytes: &[u8]) -> (TempDir, Result<BackupInfo, BackupError>) {
    let dir = TempDir::new().unwrap();
    let target = dir.path().join("store");
    let r = SledCallStore::restore_backup(&mut &bytes[..], &target, &mut |_| {});
    (dir, r)
}

type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Every key and value of every tree but the journal.
fn dump(db: &sled::Db) -> Vec<(Vec<u8>, Entries)> {
    let mut names = db.tree_names();
    names.sort();
    names
        .into_iter()
        .filter(|n| n != JOURNAL_TREE.as_bytes())
        .map(|n| {
            let t = db.open_tree(&n).unwrap();
            let kv = t
                .iter()
                .map(|kv| kv.unwrap())
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect();
            (n.to_vec(), kv)
        })
        .collect()
}

#[tokio::test]
async fn a_backup_restores_to_the_same_store_with_ids_moved_past_it() {
    let src = TempDir::new().unwrap();
    let s = open(&src);
    let t0 = 1_700_000_000_000;
    let ended = finished_call(&s, "acme", t0).await;
    let open_call = call("globex", t0 + 5);
    s.create(&open_call).await.unwrap();
    let db = s.inner.db.clone();
    db.open_tree("dlt")
        .unwrap()
        .insert(b"s/acme", &b"{\"enabled\":true}"[..])
        .unwrap();
    db.insert(b"readyz", &b""[..]).unwrap();
    let (bytes, info) = backup_of(&s);
    assert_eq!(info.bytes, bytes.len() as u64);
    assert_eq!(info.changes, 0);
    assert!(bytes.starts_with(BACKUP_MAGIC));
    assert_eq!(verify_backup(&mut &bytes[..], &mut |_| {}).unwrap(), info);

    let (dir, r) = restore(&bytes);
    assert_eq!(r.unwrap(), info);
    let restored = sled::open(dir.path().join("store")).unwrap();
    assert_eq!(dump(&restored), dump(&db));
    // New ids never collide with restored ones (outbox seqs, DLT audit entries).
    assert!(restored.generate_id().unwrap() > info.id_floor);
    let seq = s.outbox_seq_for_call(&ended.call_id).unwrap().unwrap();
    assert!(info.id_floor > seq);
    let r = SledCallStore::open_with_db(restored).unwrap();
    assert_eq!(r.get(&ended.call_id).unwrap(), Some(ended.clone()));
    assert_eq!(r.get(&open_call.call_id).unwrap(), Some(open_call.clone()));
    assert!(r.check().unwrap().is_clean());
    assert!(r.next_outbox_seq().unwrap() > seq);
    // The restored store goes on like the original: the open call ends, one webhook.
    let a = event(&r, &open_call.call_id, CallEvent::AgentHangup, t0 + 10).await;
    assert!(a.enqueued.unwrap() > info.id_floor);
    assert!(r.check().unwrap().is_clean());
}

/// A writer that takes its time, so calls change the store during the copy.
struct Slow(Vec<u8>);

impl Write for Slow {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        std::thread::sleep(Duration::from_micros(300));
        self.0.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_calls_change_restores_to_a_consistent_store() {
    let src = TempDir::new().unwrap();
    let s = open(&src);
    let t0 = 1_700_000_000_000;
    let mut before = Vec::new();
    for i in 0..150 {
        before.push(finished_call(&s, "acme", t0 + i).await.call_id);
    }
    // Writers create, end and deliver calls for as long as the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let (s, stop) = (s.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let c = finished_call(
                    &s,
                    if w % 2 == 0 { "acme" } else { "globex" },
                    t0 + 10_000 + n,
                )
                .await;
                let seq = s.outbox_seq_for_call(&c.call_id).unwrap().unwrap();
                let mut e = s.outbox_get(seq).unwrap().unwrap();
                e.state = OutboxState::Delivered;
                s.outbox_record_progress(&e).unwrap();
                n += 1;
            }
            n
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let bs = s.clone();
    let (bytes, info) = tokio::task::spawn_blocking(move || {
        let mut out = Slow(Vec::new());
        let info = bs.write_backup(&mut out).unwrap();
        (out.0, info)
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut written = 0;
    for w in writers {
        written += w.await.unwrap();
    }
    assert!(
        written > 0 && info.changes > 0,
        "nothing changed during the copy: {info:?}"
    );

    let (dir, r) = restore(&bytes);
    r.unwrap();
    let r = SledCallStore::open(&dir.path().join("store")).unwrap();
    let report = r.check().unwrap();
    assert!(report.is_clean(), "{report:#?}");
    for id in &before {
        assert!(r.get(id).unwrap().is_some(), "{id} lost");
    }
}

#[tokio::test]
async fn partial_or_damaged_backups_are_refused() {
    let src = TempDir::new().unwrap();
    let s = open(&src);
    finished_call(&s, "acme", 1_700_000_000_000).await;
    let (bytes, _) = backup_of(&s);

    // Cut anywhere (what a killed backup leaves): refused, never half-loaded.
    for cut in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
        let part = &bytes[..cut];
        let err = verify_backup(&mut &part[..], &mut |_| {}).unwrap_err();
        assert!(
            matches!(err, BackupError::Truncated | BackupError::NotABackup),
            "cut at {cut}: {err}"
        );
        if cut % 49 == 0 {
            let (_, r) = restore(part);
            assert!(r.is_err(), "cut at {cut} restored");
        }
    }
    assert!(matches!(
        verify_backup(&mut &b""[..], &mut |_| {}),
        Err(BackupError::Truncated)
    ));
    // One byte flipped in the content: the checksum catches it.
    let mut bad = bytes.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x20;
    assert!(verify_backup(&mut &bad[..], &mut |_| {}).is_err());
    // Anything after the trailer.
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        verify_backup(&mut &long[..], &mut |_| {}),
        Err(BackupError::Corrupt(_))
    ));
    assert!(matches!(
        verify_backup(&mut &b"PK\x03\x04 not ours"[..], &mut |_| {}),
        Err(BackupError::NotABackup)
    ));
    // A stream the writer gave up on says why.
    let mut aborted = BACKUP_MAGIC.to_vec();
    aborted.push(b'X');
    aborted.extend_from_slice(&4u32.to_be_bytes());
    aborted.extend_from_slice(b"busy");
    match verify_backup(&mut &aborted[..], &mut |_| {}) {
        Err(BackupError::Aborted(m)) => assert_eq!(m, "busy"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn one_backup_at_a_time_and_only_into_an_empty_directory() {
    let src = TempDir::new().unwrap();
    let s = open(&src);
    finished_call(&s, "acme", 1_700_000_000_000).await;
    assert!(s.inner.journal.start_capture(1024));
    assert!(matches!(
        s.write_backup(&mut Vec::new()),
        Err(BackupError::Busy)
    ));
    s.inner.journal.stop_capture();
    let (bytes, _) = backup_of(&s);
    // The capture of a finished backup is gone: the next one runs.
    backup_of(&s);

    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "x").unwrap();
    assert!(matches!(
        SledCallStore::restore_backup(&mut &bytes[..], dir.path(), &mut |_| {}),
        Err(BackupError::NotEmpty(_))
    ));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
