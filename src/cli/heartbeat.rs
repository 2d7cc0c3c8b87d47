//! `tenantry heartbeat ...`: export a bundle (appliance), import one (control plane),
//! acknowledge an import, show the outbox.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::Value;

use super::{Outcome, StoreArgs, call, call_streaming, fail};
use crate::admin::AdminRequest;

/// `tenantry heartbeat ...`.
#[derive(Debug, Subcommand)]
pub enum HeartbeatCommand {
    /// Appliance: write the undelivered heartbeats, still signed, as one bundle file.
    Export {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
        /// The bundle file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Control plane: import a bundle file (every signature checked; idempotent).
    Import {
        /// The bundle file.
        file: PathBuf,
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Appliance: remove heartbeats up to SEQ from the outbox once the control plane imported
    /// them (the import prints the seq).
    Ack {
        /// Highest seq imported.
        #[arg(long)]
        through: u64,
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Appliance: the outbox and sender state.
    Status {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Runs `tenantry heartbeat ...`.
pub(super) async fn run(cmd: HeartbeatCommand) -> ExitCode {
    match cmd {
        HeartbeatCommand::Export { store, out } => {
            let tmp = out.with_extension("partial");
            let sink: Box<dyn Write + Send> = match std::fs::File::create(&tmp) {
                Ok(f) => Box::new(std::io::BufWriter::new(f)),
                Err(e) => return fail(&format!("cannot create {}: {e}", tmp.display())),
            };
            let sink = std::sync::Arc::new(std::sync::Mutex::new(sink));
            if let Err(code) =
                call_streaming(&store, AdminRequest::HeartbeatExport, sink.clone()).await
            {
                let _ = std::fs::remove_file(&tmp);
                return code;
            }
            if let Ok(mut s) = sink.lock()
                && let Err(e) = s.flush()
            {
                return fail(&format!("writing {}: {e}", tmp.display()));
            }
            drop(sink);
            if let Err(e) = std::fs::rename(&tmp, &out) {
                return fail(&format!(
                    "renaming {} to {}: {e}",
                    tmp.display(),
                    out.display()
                ));
            }
            let v: Value = std::fs::read(&out)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            let b = &v["bundle"];
            eprintln!(
                "wrote {} heartbeat(s), seq {} to {}, for install {} to {}; carry it to the control plane: tenantry heartbeat import {}",
                b["count"],
                b["first_seq"],
                b["last_seq"],
                b["install_id"].as_str().unwrap_or("?"),
                out.display(),
                out.display()
            );
            ExitCode::SUCCESS
        }
        HeartbeatCommand::Import { file, store } => {
            let bundle = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => return fail(&format!("cannot read {}: {e}", file.display())),
            };
            match call(&store, AdminRequest::HeartbeatImport { bundle }).await {
                Ok(Outcome::Json(v)) => {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                    eprintln!(
                        "imported {} new heartbeat(s), {} duplicate(s), for install {}; on the appliance: tenantry heartbeat ack --through {}",
                        v["accepted"],
                        v["duplicates"],
                        v["install_id"].as_str().unwrap_or("?"),
                        v["last_seq"]
                    );
                    ExitCode::SUCCESS
                }
                Ok(Outcome::Stream) => ExitCode::SUCCESS,
                Err(code) => code,
            }
        }
        HeartbeatCommand::Ack { through, store } => {
            match call(&store, AdminRequest::HeartbeatAck { through }).await {
                Ok(Outcome::Json(v)) => {
                    println!(
                        "removed {} heartbeat(s) from the outbox; {} still waiting",
                        v["removed"], v["depth"]
                    );
                    ExitCode::SUCCESS
                }
                Ok(Outcome::Stream) => ExitCode::SUCCESS,
                Err(code) => code,
            }
        }
        HeartbeatCommand::Status { store } => match call(&store, AdminRequest::SyncStatus).await {
            Ok(Outcome::Json(v)) => {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                ExitCode::SUCCESS
            }
            Ok(Outcome::Stream) => ExitCode::SUCCESS,
            Err(code) => code,
        },
    }
}
