//! `tenantry audit ...`: verify chains (exit 1 names the first bad seq), export one as NDJSON.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::Value;

use super::{Outcome, StoreArgs, call, call_streaming, fail};
use crate::admin::AdminRequest;

/// `tenantry audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify chains from seq 1 (data included); exits 1 and names the first bad seq when one
    /// does not verify.
    Verify {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
        /// One chain (`platform` or `tenant:<uuid>`); every chain by default.
        #[arg(long)]
        chain: Option<String>,
        /// Walk every chain from seq 1, re-checking every entry and its data against
        /// `data_sha256` (the default; kept so scripts can say so).
        #[arg(long, conflicts_with = "from_checkpoint")]
        full: bool,
        /// Start from the last good checkpoint instead of seq 1: faster, but nothing below
        /// the checkpoint is re-checked.
        #[arg(long)]
        from_checkpoint: bool,
        /// Print the JSON report instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Export a chain as NDJSON (AUDIT.md "Export").
    Export {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
        /// The chain.
        #[arg(long)]
        chain: String,
        /// Output file (stdout by default).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs `tenantry audit ...`.
pub(super) async fn run(cmd: AuditCommand) -> ExitCode {
    match cmd {
        AuditCommand::Verify {
            store,
            chain,
            full,
            from_checkpoint,
            json,
        } => {
            let req = AdminRequest::AuditVerify {
                chain,
                full: full || !from_checkpoint,
            };
            match call(&store, req).await {
                Ok(Outcome::Json(v)) => print_verify(&v, json),
                Ok(Outcome::Stream) => ExitCode::SUCCESS,
                Err(code) => code,
            }
        }
        AuditCommand::Export { store, chain, out } => {
            let sink: Box<dyn Write + Send> = match &out {
                Some(p) => match std::fs::File::create(p) {
                    Ok(f) => Box::new(std::io::BufWriter::new(f)),
                    Err(e) => return fail(&format!("cannot create {}: {e}", p.display())),
                },
                None => Box::new(std::io::stdout()),
            };
            let sink = std::sync::Arc::new(std::sync::Mutex::new(sink));
            match call_streaming(&store, AdminRequest::AuditExport { chain }, sink.clone()).await {
                Ok(_) => {
                    if let Ok(mut s) = sink.lock() {
                        let _ = s.flush();
                    }
                    ExitCode::SUCCESS
                }
                Err(code) => code,
            }
        }
    }
}

fn print_verify(v: &Value, json: bool) -> ExitCode {
    let results: &[Value] = v["results"].as_array().map_or(&[], Vec::as_slice);
    let all_ok = results.iter().all(|r| r["ok"] == true);
    // One buffered writer for the whole report: a full verify lists every chain, 100,000 lines
    // for 100,000 tenants, and a write per line cost as much as the verify itself.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = if json {
        serde_json::to_writer_pretty(&mut out, v)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        print_lines(&mut out, results)
    };
    if let Err(e) = written.and_then(|()| out.flush()) {
        return fail(&format!("cannot print the report: {e}"));
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The text report: a line per chain, then the count of broken ones.
fn print_lines(out: &mut impl Write, results: &[Value]) -> std::io::Result<()> {
    for r in results {
        if r["ok"] == true {
            writeln!(
                out,
                "ok      {}  head {}  verified from seq {}  ({} entries, {} bytes)",
                r["chain"].as_str().unwrap_or(""),
                r["head_seq"],
                r["verified_from_seq"],
                r["entries_checked"],
                r["bytes_checked"]
            )?;
        } else {
            writeln!(
                out,
                "BROKEN  {}  first bad seq {}: {}",
                r["chain"].as_str().unwrap_or(""),
                r["first_bad_seq"],
                r["problem"].as_str().unwrap_or("")
            )?;
        }
    }
    let bad = results.iter().filter(|r| r["ok"] != true).count();
    writeln!(out, "{} chain(s) checked, {} broken", results.len(), bad)
}
