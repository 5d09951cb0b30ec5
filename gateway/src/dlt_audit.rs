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

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};

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

/// The refusal log of one gateway (module docs).
pub struct RefusalLog {
    tx: Option<SyncSender<Refusal>>,
    recent: Mutex<HashMap<String, VecDeque<Refusal>>>,
    dropped: prometheus::IntCounter,
}

impl RefusalLog {
    /// A log writing to `<data>/dlt-refusals.jsonl` from its own thread; `dropped`
    /// counts lines a full queue refused.
    pub fn start(data: &Path, dropped: prometheus::IntCounter) -> Self {
        let (tx, rx) = sync_channel(QUEUE);
        let path = data.join(FILE);
        let spawned = std::thread::Builder::new()
            .name("c2c-dlt-audit".into())
            .spawn(move || write_loop(&path, &rx));
        if let Err(e) = &spawned {
            tracing::error!(error = %e, "cannot start the DLT refusal writer; refusals are not recorded on disk");
        }
        Self {
            tx: spawned.is_ok().then_some(tx),
            recent: Mutex::new(HashMap::new()),
            dropped,
        }
    }

    /// Records `r` (never blocks).
    pub fn record(&self, r: Refusal) {
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
    let path = data.join(FILE);
    let mut out = Vec::new();
    let mut bad = 0;
    for p in [rotated(&path), path] {
        let f = match std::fs::File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in std::io::BufReader::new(f).lines() {
            let line = line?;
            match serde_json::from_str::<Refusal>(&line) {
                Ok(r) if r.tenant == tenant && (from_ms..to_ms).contains(&r.at_ms) => out.push(r),
                Ok(_) => {}
                // A line cut by a crash mid-write.
                Err(_) => bad += 1,
            }
        }
    }
    out.sort_by_key(|r| r.at_ms);
    Ok((out, bad))
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
        // A line cut by a crash is skipped, and counted.
        std::fs::OpenOptions::new()
            .append(true)
            .open(d.path().join(FILE))
            .unwrap()
            .write_all(b"{\"at_ms\":12")
            .unwrap();
        let (all, bad) = read_period(d.path(), "globex", 0, u64::MAX).unwrap();
        assert_eq!((all.len(), bad), (1, 1));
    }
}
