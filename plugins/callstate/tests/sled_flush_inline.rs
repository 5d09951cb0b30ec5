//! Guards the vendored sled patch (`plugins/vendor/README.md`): a flush writes its IO
//! buffer on the flushing thread. Upstream sled 0.34.7 hands the write to its IO threadpool,
//! whose `notify_all` wakes all seven idle `sled-io-*` threads on every flush; under the call
//! lifecycle benchmark that was 11 context switches per call and ~19 % of the gateway's CPU.
//! If the `[patch.crates-io]` entry is dropped or sled is upgraded, this test says so.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
#![cfg(target_os = "linux")]

/// Context switches so far of this process's threads whose name starts with `prefix`.
fn context_switches(prefix: &str) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        for line in status.lines() {
            if let Some(n) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += n.trim().parse::<u64>().unwrap();
            }
        }
    }
    total
}

#[test]
fn a_flush_does_not_wake_the_io_threadpool() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(dir.path())
        .flush_every_ms(None)
        .open()
        .unwrap();
    // Warm up: the first writes open segments and may spawn the pool.
    for i in 0u32..10 {
        db.insert(i.to_be_bytes(), &b"warm"[..]).unwrap();
        db.flush().unwrap();
    }
    const FLUSHES: u64 = 200;
    let before = context_switches("sled-io");
    for i in 0..FLUSHES {
        db.insert(i.to_be_bytes(), &b"value"[..]).unwrap();
        assert!(db.flush().unwrap() > 0, "flush {i} wrote nothing");
    }
    let woken = context_switches("sled-io") - before;
    // Upstream: at least one wake per flush (in practice seven). Patched: none from
    // flushes; allow a little for anything else sled might hand the pool.
    assert!(
        woken < FLUSHES / 4,
        "sled's IO threads were woken {woken} times for {FLUSHES} flushes: is the vendored \
         sled patch (plugins/vendor/README.md) still applied?"
    );
    drop(db);
    // And the writes are on disk.
    let db = sled::open(dir.path()).unwrap();
    assert_eq!(
        db.len(),
        10 + FLUSHES as usize,
        "warm-up keys are 4 bytes, the others 8"
    );
}
