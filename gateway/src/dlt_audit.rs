//! The record of calls the DLT rules refused: the console's "recent refusals" and the
//! audit export (`c2c-gateway dlt report`).
//!
//! A refusal is appended as one JSON line to `<data>/dlt-refusals.jsonl` by a writer
//! thread, never on the request path: refusals come at the rate a CRM sends calls (a
//! campaign aimed at DND numbers is thousands a minute), so they go through a bounded
//! queue and are written and synced in batches. A full queue drops the line and counts it
//! (`c2c_dlt_refusal_log_dropped_total`): the refusal itself stands either way, and the
//! counter `c2c_dlt_refusals_total` never drops. Like the provisioning audit, the file is
//! per node (docs/dlt.md).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// The file's name in the data directory.
pub const FILE: &str = "dlt-refusals.jsonl";
/// Lines waiting for the writer; beyond this they are dropped and counted.
const QUEUE: usize = 10_000;
/// Refusals kept in memory per tenant for the console.
const RECENT: usize = 50;
/// The writer renames the file to `<file>.1` (replacing an older one) past this size,
/// so a node's disk is never filled by refusals: at ~250 bytes a line, ~2 M refusals
/// in the current file plus as many in the previous one.
const ROTATE_BYTES: u64 = 512 << 20;

/// One refused call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub at_ms: u64,
    pub tenant: String,
    /// `caller_id_series`, `dnd_blocked`, `outside_calling_hours`, `dnd_unavailable`.
    pub rule: String,
    pub category: String,
    pub trunk: String,
    pub caller_id: String,
    /// The customer's number as dialled (ten digits): the audit must name it.
    pub number: String,
    /// `api` or `sip`.
    pub at: String,
    pub message: String,
}

/// Refusals counted per tenant, UTC day (`YYYYMMDD`) and trunk, by rule: what analytics
/// shows. Seeded from the log files at start (in the background), then kept with every
/// refusal.
type DayCounts = HashMap<(String, String, String), BTreeMap<String, u64>>;

/// The refusal log of one gateway (module docs).
pub struct RefusalLog {
    tx: Option<SyncSender<Refusal>>,
    recent: Mutex<HashMap<String, VecDeque<Refusal>>>,
    days: Arc<Mutex<DayCounts>>,
    dropped: prometheus::IntCounter,
}

fn utc_day(at_ms: u64) -> String {
    let secs = i64::try_from(at_ms / 1000).unwrap_or(0);
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y%m%d").to_string())
        .unwrap_or_default()
}

fn count(days: &mut DayCounts, r: &Refusal) {
    *days
        .entry((r.tenant.clone(), utc_day(r.at_ms), r.trunk.clone()))
        .or_default()
        .entry(r.rule.clone())
        .or_default() += 1;
}

impl RefusalLog {
    /// A log writing to `<data>/dlt-refusals.jsonl` from its own thread; `dropped`
    /// counts lines a full queue refused.
    pub fn start(data: &Path, dropped: prometheus::IntCounter) -> Self {
        let (tx, rx) = sync_channel(QUEUE);
        let path = data.join(FILE);
        let days: Arc<Mutex<DayCounts>> = Arc::default();
        // What the files already hold, counted off the start path (they may be large).
        // The files are opened and their lengths taken here, before the writer exists,
        // so the seed counts exactly the lines written before this start: a refusal
        // recorded meanwhile is counted by `record` alone, even once the writer has
        // appended it (or rotated the file: an open handle keeps the old inode).
        let snapshot = snapshot(data);
        let seed_days = days.clone();
        let seeded = std::thread::Builder::new()
            .name("c2c-dlt-seed".into())
            .spawn(move || {
                let mut counted = DayCounts::new();
                let read = snapshot.and_then(|files| {
                    for (file, len) in files {
                        read_lines(std::io::Read::take(file, len), |r| count(&mut counted, &r))?;
                    }
                    Ok(())
                });
                if let Err(e) = read {
                    tracing::warn!(error = %e, "cannot read the DLT refusal log to count past refusals");
                }
                let mut days = seed_days.lock();
                for (k, rules) in counted {
                    let into = days.entry(k).or_default();
                    for (rule, n) in rules {
                        *into.entry(rule).or_default() += n;
                    }
                }
            });
        if let Err(e) = seeded {
            tracing::warn!(error = %e, "cannot count past DLT refusals");
        }
        let spawned = std::thread::Builder::new()
            .name("c2c-dlt-audit".into())
            .spawn(move || write_loop(&path, &rx));
        if let Err(e) = &spawned {
            tracing::error!(error = %e, "cannot start the DLT refusal writer; refusals are not recorded on disk");
        }
        Self {
            tx: spawned.is_ok().then_some(tx),
            recent: Mutex::new(HashMap::new()),
            days,
            dropped,
        }
    }

    /// This node's refusals of `tenant` from UTC day `from` to `to` (`YYYYMMDD`, both
    /// included), optionally on one trunk only, by rule.
    pub fn counts(
        &self,
        tenant: &str,
        from: &str,
        to: &str,
        trunk: Option<&str>,
    ) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for ((t, day, tr), rules) in self.days.lock().iter() {
            if t == tenant && (from..=to).contains(&day.as_str()) && trunk.is_none_or(|w| w == tr) {
                for (rule, n) in rules {
                    *out.entry(rule.clone()).or_default() += n;
                }
            }
        }
        out
    }

    /// Records `r` (never blocks).
    pub fn record(&self, r: Refusal) {
        count(&mut self.days.lock(), &r);
        {
            let mut recent = self.recent.lock();
            let q = recent.entry(r.tenant.clone()).or_default();
            if q.len() == RECENT {
                q.pop_front();
            }
            q.push_back(r.clone());
        }
        let Some(tx) = &self.tx else {
            self.dropped.inc();
            return;
        };
        match tx.try_send(r) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.inc();
            }
        }
    }

    /// This node's latest refusals of `tenant`, newest first.
    pub fn recent(&self, tenant: &str) -> Vec<Refusal> {
        self.recent
            .lock()
            .get(tenant)
            .map(|q| q.iter().rev().cloned().collect())
            .unwrap_or_default()
    }
}

/// Appends what arrives, a batch at a time, synced before the next batch.
fn write_loop(path: &Path, rx: &Receiver<Refusal>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 1024 {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        if let Err(e) = append(path, &batch) {
            tracing::error!(file = %path.display(), error = %e, lines = batch.len(), "cannot write DLT refusals");
        }
    }
}

fn append(path: &Path, batch: &[Refusal]) -> std::io::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() > ROTATE_BYTES) {
        std::fs::rename(path, rotated(path))?;
    }
    let mut buf = Vec::with_capacity(batch.len() * 256);
    for r in batch {
        serde_json::to_writer(&mut buf, r).map_err(std::io::Error::other)?;
        buf.push(b'\n');
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(&buf)?;
    f.sync_data()
}

fn rotated(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".1");
    PathBuf::from(p)
}

/// Every refusal of `tenant` in `[from_ms, to_ms)` in the data directory `data` (the
/// rotated file first), oldest first; lines that do not parse are skipped and counted.
pub fn read_period(
    data: &Path,
    tenant: &str,
    from_ms: u64,
    to_ms: u64,
) -> std::io::Result<(Vec<Refusal>, usize)> {
    let mut out = Vec::new();
    let bad = for_each(data, |r| {
        if r.tenant == tenant && (from_ms..to_ms).contains(&r.at_ms) {
            out.push(r);
        }
    })?;
    out.sort_by_key(|r| r.at_ms);
    Ok((out, bad))
}

/// The data directory's log files (the rotated one first), open, each with its length now.
fn snapshot(data: &Path) -> std::io::Result<Vec<(std::fs::File, u64)>> {
    let path = data.join(FILE);
    let mut files = Vec::with_capacity(2);
    for p in [rotated(&path), path] {
        match std::fs::File::open(&p) {
            Ok(file) => {
                let len = file.metadata()?.len();
                files.push((file, len));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(files)
}

/// Calls `f` with every refusal in the data directory's log files (the rotated one
/// first); returns how many lines did not parse (a line cut by a crash mid-write).
fn for_each(data: &Path, mut f: impl FnMut(Refusal)) -> std::io::Result<usize> {
    let mut bad = 0;
    for (file, _) in snapshot(data)? {
        bad += read_lines(file, &mut f)?;
    }
    Ok(bad)
}

/// Calls `f` with each refusal in `from`; returns how many lines did not parse.
fn read_lines(from: impl std::io::Read, mut f: impl FnMut(Refusal)) -> std::io::Result<usize> {
    let mut bad = 0;
    for line in std::io::BufReader::new(from).lines() {
        match serde_json::from_str::<Refusal>(&line?) {
            Ok(r) => f(r),
            Err(_) => bad += 1,
        }
    }
    Ok(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(tenant: &str, at_ms: u64) -> Refusal {
        Refusal {
            at_ms,
            tenant: tenant.into(),
            rule: "dnd_blocked".into(),
            category: "promotional".into(),
            trunk: "airtel-mum".into(),
            caller_id: "+911401234567".into(),
            number: "9530000001".into(),
            at: "api".into(),
            message: "on the register".into(),
        }
    }

    #[test]
    fn refusals_reach_the_file_and_the_recent_list() {
        let d = tempfile::tempdir().unwrap();
        let log = RefusalLog::start(d.path(), prometheus::IntCounter::new("d", "d").unwrap());
        for i in 0..(RECENT as u64 + 5) {
            log.record(refusal("acme", 1000 + i));
        }
        log.record(refusal("globex", 5000));
        let recent = log.recent("acme");
        assert_eq!(recent.len(), RECENT);
        assert_eq!(recent[0].at_ms, 1000 + RECENT as u64 + 4, "newest first");
        assert!(log.recent("nobody").is_empty());
        let mut got = Vec::new();
        for _ in 0..100 {
            got = read_period(d.path(), "acme", 1002, 1010).unwrap().0;
            if got.len() == 8 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(
            got.iter().map(|r| r.at_ms).collect::<Vec<_>>(),
            (1002..1010).collect::<Vec<_>>()
        );
        // Counted by day (1970-01-01) and rule; another node's start reads them back.
        assert_eq!(
            log.counts("acme", "19700101", "19700101", None)["dnd_blocked"],
            RECENT as u64 + 5
        );
        assert!(log.counts("acme", "19700102", "20991231", None).is_empty());
        assert!(log
            .counts("acme", "19700101", "19700101", Some("other"))
            .is_empty());
        // Everything the first log recorded is on disk before the restart reads it.
        for _ in 0..100 {
            if read_period(d.path(), "globex", 0, u64::MAX)
                .unwrap()
                .0
                .len()
                == 1
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let again = RefusalLog::start(d.path(), prometheus::IntCounter::new("d", "d").unwrap());
        // Refusals recorded while the restarted log seeds its counts: each counted once,
        // though the writer may append them before the seed has read the file.
        for i in 0..20 {
            again.record(refusal("globex", 6000 + i));
        }
        let globex = || {
            again
                .counts("globex", "19700101", "19700101", Some("airtel-mum"))
                .get("dnd_blocked")
                .copied()
                .unwrap_or(0)
        };
        let mut on_disk = 0;
        for _ in 0..100 {
            on_disk = read_period(d.path(), "globex", 0, u64::MAX)
                .unwrap()
                .0
                .len();
            if on_disk == 21 && globex() == 21 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(on_disk, 21);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(
            globex(),
            21,
            "a restarted log counts the refusals on disk once"
        );
        // A line cut by a crash is skipped, and counted.
        std::fs::OpenOptions::new()
            .append(true)
            .open(d.path().join(FILE))
            .unwrap()
            .write_all(b"{\"at_ms\":12")
            .unwrap();
        let (all, bad) = read_period(d.path(), "globex", 0, u64::MAX).unwrap();
        assert_eq!((all.len(), bad), (21, 1));
    }
}
