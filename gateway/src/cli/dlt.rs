//! `c2c-gateway dlt ...`: tools for tenants' DLT lists.
//!
//! `dlt compact` turns a text DND or consent list (one number per line, any of the
//! written forms `c2c_dlt::numbers` takes) into the compact binary form: a quarter of
//! the text's size on disk, read back in milliseconds instead of seconds. Both forms
//! work as `dnd_file` / `consent_file`; write the output next to the policy and rename
//! it over the old list, so the gateway never reads half a file.

use std::io::Write;
use std::path::PathBuf;

use c2c_dlt::NumberSet;
use clap::{Args, Subcommand};

use super::common::{CliResult, Failure};

/// `dlt ...` subcommands.
#[derive(Debug, Subcommand)]
pub enum DltCommand {
    /// Check a text DND or consent list and write its compact form; prints how many
    /// distinct numbers it holds. A bad line fails with its line number, writing nothing.
    Compact(CompactArgs),
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    /// The text list (one number per line; `#` comments; a CSV's first column).
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the compact list (written to a temporary file beside it, then
    /// renamed into place).
    #[arg(long)]
    pub output: PathBuf,
    /// The most numbers the list may hold (`[dlt] max_list_numbers`).
    #[arg(long, default_value_t = 50_000_000)]
    pub max_numbers: usize,
}

pub fn run(cmd: DltCommand) -> CliResult {
    match cmd {
        DltCommand::Compact(a) => compact(a),
    }
}

fn compact(a: CompactArgs) -> CliResult {
    let input = std::fs::File::open(&a.input)
        .map_err(|e| Failure::failed(format!("cannot open {}: {e}", a.input.display())))?;
    let set = NumberSet::read(input, a.max_numbers)
        .map_err(|e| Failure::failed(format!("{}: {e}", a.input.display())))?;
    let mut tmp = a.output.clone().into_os_string();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        let file = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(&file);
        set.write_compact(&mut w)?;
        w.flush()?;
        drop(w);
        file.sync_all()?;
        std::fs::rename(&tmp, &a.output)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Failure::failed(format!("cannot write {}: {e}", a.output.display()))
    })?;
    println!("{} numbers written to {}", set.len(), a.output.display());
    Ok(())
}
