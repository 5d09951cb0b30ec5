//! `c2c-gateway db check` and `db export`: offline tools on a stopped gateway's store.
//!
//! Both need the store to themselves (a running gateway holds sled's lock and they
//! refuse). `check` runs the callstate crate's integrity scan, then checks that every
//! wallet's ledger adds up to its balance (seqs without gaps, each balance after
//! right), and exits 1 on any problem; `export` streams records (and optionally outbox entries) as JSON lines with
//! phone numbers masked unless `--unmasked`, one entry in memory at a time. Both show
//! progress on a terminal and end with a summary on stderr (see [`super::progress`]).

use std::io::{BufWriter, Write};

use std::sync::Arc;

use c2c_billing::{check_ledger, SledWalletStore, WalletStore};
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

/// What the wallet part of `db check` found.
#[derive(Debug, Default, serde::Serialize)]
struct WalletReport {
    /// Tenants with a ledger.
    tenants: u64,
    /// Ledger entries read.
    entries: u64,
    /// `"<tenant>: <fault>"`, one per wallet that does not add up.
    problems: Vec<String>,
}

/// Reads every wallet's ledger and checks it against the balance stored with it.
async fn check_wallets(wallets: &dyn WalletStore) -> Result<WalletReport, Failure> {
    let read = |e: c2c_billing::WalletError| {
        Failure::failed(format!("the wallet check could not finish: {e}"))
    };
    let mut r = WalletReport::default();
    for (tenant, _) in wallets.balances().await.map_err(read)? {
        r.tenants += 1;
        match check_ledger(wallets, &tenant).await.map_err(read)? {
            Ok(b) => r.entries += b.entries,
            Err(fault) => r.problems.push(format!("{tenant}: {fault}")),
        }
    }
    Ok(r)
}

/// `db check`: runs the scan, prints the report, exits 1 on problems.
pub fn check(a: DbCheckArgs) -> CliResult {
    let rt = runtime()?;
    let shared = rt.block_on(shared_store::open_database(&a.policy.policies))?;
    let mut progress = Progress::new("checked", "entries");
    let scan =
        |e: c2c_callstate::StoreError| Failure::failed(format!("the scan could not finish: {e}"));
    let (report, wallets, what) = match shared {
        Some(pg) => {
            let calls = rt
                .block_on(c2c_store_pg::PgCallStore::new(pg.clone()))
                .map_err(|e| Failure::failed(format!("cannot open the call store: {e}")))?;
            let report = rt
                .block_on(calls.check_with_progress(&mut |n| progress.update(n, None)))
                .map_err(scan)?;
            let wallets: Arc<dyn WalletStore> = Arc::new(c2c_store_pg::PgWalletStore::new(pg));
            (report, wallets, "the PostgreSQL store".to_string())
        }
        None => {
            let db = open_db(&a.data.data, false, false)?;
            let report = SledCallStore::open_with_db(db.clone())
                .map_err(|e| Failure::failed(format!("cannot open the call store: {e}")))?
                .check_with_progress(&mut |n| progress.update(n, None))
                .map_err(scan)?;
            let wallets: Arc<dyn WalletStore> = Arc::new(
                SledWalletStore::open(&db)
                    .map_err(|e| Failure::failed(format!("cannot open the wallets: {e}")))?,
            );
            (
                report,
                wallets,
                format!("the store in {}", a.data.data.display()),
            )
        }
    };
    let wallets = rt.block_on(check_wallets(&*wallets))?;
    let problems = report.problem_count + wallets.problems.len() as u64;
    let scanned = report.records
        + report.open_index
        + report.tenant_index
        + report.day_index
        + report.outbox
        + report.pending_index
        + report.webhook_index;
    progress.finish(scanned, None);
    summary(format!(
        "db check: {} entries checked ({} call records, {} outbox entries, {} day tallies, \
         {} wallet ledger entries of {} tenants) in {}; {}",
        thousands(scanned + wallets.entries),
        thousands(report.records),
        thousands(report.outbox),
        thousands(report.tallies),
        thousands(wallets.entries),
        thousands(wallets.tenants),
        took(progress.elapsed()),
        match problems {
            0 => "no problems found".to_string(),
            n => format!("{} problem(s) found", thousands(n)),
        }
    ));
    if a.json {
        // The call report's fields as before, plus `wallets`; `problem_count` counts both.
        let mut v = serde_json::to_value(&report).unwrap_or(Value::Null);
        v["problem_count"] = json!(problems);
        v["wallets"] = serde_json::to_value(&wallets).unwrap_or(Value::Null);
        print_json(&v);
    } else {
        print_report(&report, &wallets);
    }
    if problems == 0 {
        Ok(())
    } else {
        Err(Failure::failed(format!("{what} has {problems} problem(s)")))
    }
}

fn print_report(r: &CheckReport, w: &WalletReport) {
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
    println!("wallets {}, wallet ledger entries {}", w.tenants, w.entries);
    for p in &w.problems {
        println!("wallet_ledger {p}");
    }
    if r.is_clean() && w.problems.is_empty() {
        println!("store OK: no problems found");
    } else {
        println!(
            "{} problem(s) found",
            r.problem_count + w.problems.len() as u64
        );
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
