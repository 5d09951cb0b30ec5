//! `c2c-gateway db check` and `db export`: offline tools on a stopped gateway's store.
//!
//! Both need the store to themselves (a running gateway holds sled's lock and they
//! refuse). `check` runs the callstate crate's integrity scan and exits 1 on any
//! problem; `export` streams records (and optionally outbox entries) as JSON lines with
//! phone numbers masked unless `--unmasked`, one entry in memory at a time. Both show
//! progress on a terminal and end with a summary on stderr (see [`super::progress`]).

use std::io::{BufWriter, Write};

use c2c_callstate::{CheckReport, SledCallStore};
use serde_json::{json, Value};

use super::common::{open_db, print_json, runtime, CliResult, Failure};
use super::progress::{summary, thousands, took, Progress};
use super::shared_store;
use super::{DbCheckArgs, DbExportArgs};
use crate::calls::detail::mask_numbers;

fn open_store(data: &std::path::Path) -> Result<SledCallStore, Failure> {
    let db = open_db(data, false, false)?;
    SledCallStore::open_with_db(db)
        .map_err(|e| Failure::failed(format!("cannot open the call store: {e}")))
}

/// `db check`: runs the scan, prints the report, exits 1 on problems.
pub fn check(a: DbCheckArgs) -> CliResult {
    let rt = runtime()?;
    let shared = rt.block_on(shared_store::open(&a.policy.policies))?;
    let mut progress = Progress::new("checked", "entries");
    let scan =
        |e: c2c_callstate::StoreError| Failure::failed(format!("the scan could not finish: {e}"));
    let (report, what) = match &shared {
        Some(pg) => (
            rt.block_on(pg.check_with_progress(&mut |n| progress.update(n, None)))
                .map_err(scan)?,
            "the PostgreSQL store".to_string(),
        ),
        None => (
            open_store(&a.data.data)?
                .check_with_progress(&mut |n| progress.update(n, None))
                .map_err(scan)?,
            format!("the store in {}", a.data.data.display()),
        ),
    };
    let scanned = report.records
        + report.open_index
        + report.tenant_index
        + report.day_index
        + report.outbox
        + report.pending_index
        + report.webhook_index;
    progress.finish(scanned, None);
    summary(format!(
        "db check: {} entries checked ({} call records, {} outbox entries, {} day tallies) in {}; {}",
        thousands(scanned),
        thousands(report.records),
        thousands(report.outbox),
        thousands(report.tallies),
        took(progress.elapsed()),
        match report.problem_count {
            0 => "no problems found".to_string(),
            n => format!("{} problem(s) found", thousands(n)),
        }
    ));
    if a.json {
        print_json(&report);
    } else {
        print_report(&report);
    }
    if report.is_clean() {
        Ok(())
    } else {
        Err(Failure::failed(format!(
            "{what} has {} problem(s)",
            report.problem_count
        )))
    }
}

fn print_report(r: &CheckReport) {
    println!(
        "records {}, open index {}, tenant index {}, day index {}, outbox {}, pending index {}, webhook index {}, day tallies {}, purged-call tallies {}",
        r.records, r.open_index, r.tenant_index, r.day_index, r.outbox, r.pending_index, r.webhook_index, r.tallies, r.purged_tallies
    );
    for p in &r.problems {
        let kind = serde_json::to_value(p.kind).unwrap_or(Value::Null);
        println!("{} {}: {}", kind.as_str().unwrap_or("?"), p.key, p.detail);
    }
    if r.problem_count as usize > r.problems.len() {
        println!(
            "... and {} more",
            r.problem_count as usize - r.problems.len()
        );
    }
    if r.is_clean() {
        println!("store OK: no problems found");
    } else {
        println!("{} problem(s) found", r.problem_count);
    }
}

/// `db export`: streams JSON lines to stdout or `--out`.
pub fn export(a: DbExportArgs) -> CliResult {
    let rt = runtime()?;
    let shared = rt.block_on(shared_store::open(&a.policy.policies))?;
    let out: Box<dyn Write + Send> = match &a.out {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .map_err(|e| Failure::failed(format!("cannot create {}: {e}", path.display())))?,
        ),
        // Not `lock()`: a lock guard is not Send, and the BufWriter batches anyway.
        None => Box::new(std::io::stdout()),
    };
    let mut out = BufWriter::new(out);
    let io = |e: std::io::Error| Failure::failed(format!("writing the export failed: {e}"));
    let read =
        |e: c2c_callstate::StoreError| Failure::failed(format!("reading the store failed: {e}"));
    let (mut calls, mut entries) = (0u64, 0u64);
    let mut progress = Progress::new("exported", "entries");
    // One line per entry, whichever backend: the first write error stops the scan.
    let mut failed: Option<std::io::Error> = None;
    let mut call_line = |rec: &c2c_callstate::CallRecord| {
        let mut v = serde_json::to_value(rec).unwrap_or(Value::Null);
        if !a.unmasked {
            mask_numbers(&mut v);
        }
        if let Err(e) = write_line(&mut out, "call", v) {
            failed = Some(e);
            return false;
        }
        calls += 1;
        progress.update(calls, None);
        true
    };
    match &shared {
        Some(pg) => {
            rt.block_on(pg.scan_records(&mut call_line)).map_err(read)?;
        }
        None => {
            let store = open_store(&a.data.data)?;
            for rec in store.scan_records() {
                if !call_line(&rec.map_err(read)?) {
                    break;
                }
            }
        }
    }
    if let Some(e) = failed.take() {
        return Err(io(e));
    }
    if a.outbox {
        let mut outbox_line = |e: &c2c_callstate::OutboxEntry| {
            let mut e = e.clone();
            if !a.unmasked {
                // The body is the CRM payload, which carries both numbers.
                if let Ok(mut p) = serde_json::from_str::<Value>(&e.payload_json) {
                    mask_numbers(&mut p);
                    e.payload_json = p.to_string();
                }
            }
            let v = serde_json::to_value(e).unwrap_or(Value::Null);
            if let Err(e) = write_line(&mut out, "outbox", v) {
                failed = Some(e);
                return false;
            }
            entries += 1;
            progress.update(calls + entries, None);
            true
        };
        match &shared {
            Some(pg) => {
                rt.block_on(pg.scan_outbox(&mut outbox_line))
                    .map_err(read)?;
            }
            None => {
                let store = open_store(&a.data.data)?;
                for e in store.scan_outbox() {
                    if !outbox_line(&e.map_err(read)?) {
                        break;
                    }
                }
            }
        }
        if let Some(e) = failed.take() {
            return Err(io(e));
        }
    }
    out.flush().map_err(io)?;
    progress.finish(calls + entries, None);
    summary(format!(
        "db export: {} call record(s) and {} outbox entries to {} in {}{}",
        thousands(calls),
        thousands(entries),
        a.out
            .as_ref()
            .map_or_else(|| "stdout".to_string(), |p| p.display().to_string()),
        took(progress.elapsed()),
        if a.unmasked {
            " (phone numbers in clear: personal data)"
        } else {
            " (phone numbers masked)"
        }
    ));
    Ok(())
}

/// One JSON line: `{"type": ..., <fields>}`.
fn write_line(out: &mut impl Write, kind: &str, v: Value) -> std::io::Result<()> {
    let mut line = json!({ "type": kind });
    if let (Some(l), Value::Object(fields)) = (line.as_object_mut(), v) {
        l.extend(fields);
    }
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}
