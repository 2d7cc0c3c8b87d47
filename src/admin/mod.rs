//! Local administration: the operations that CLI subcommands run against the store, whether
//! through the running server's admin socket or directly on the data dir when no server holds
//! it (redb allows one process per file).
//!
//! - [`socket`]: the Unix socket server and client (newline-delimited JSON).
//!
//! [`execute`] is the one entry point: the socket server and the CLI's direct mode both call
//! it, so a command behaves the same either way.

pub mod socket;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::audit::{self, ChainId, Mode};
use crate::error::{Error, Result};
use crate::scheduler::{self, Job, Trigger};

/// A request on the admin socket (one JSON line).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AdminRequest {
    /// Is a server there?
    Ping,
    /// Verify one chain or all, from seq 1 (`full`) or from the last good checkpoint. Signs
    /// nothing.
    AuditVerify {
        /// `platform` or `tenant:{uuid}`; all chains when absent.
        chain: Option<String>,
        /// Walk from seq 1.
        full: bool,
    },
    /// Stream the NDJSON export of a chain.
    AuditExport {
        /// The chain.
        chain: String,
    },
    /// List jobs with their last run.
    JobsList,
    /// Run a job now.
    JobRun {
        /// Job name.
        name: String,
    },
    /// Stream a backup of the store (encrypted to these age recipients and the configured
    /// ones), then record it.
    BackupCreate {
        /// Extra age recipients (`age1...`).
        recipients: Vec<String>,
    },
    /// The recorded backups, newest first.
    BackupList,
}

/// What an operation returns: a JSON value, or a byte stream (export).
pub enum AdminOutput {
    /// A JSON result.
    Json(Value),
    /// Chunks to copy to the output as they come.
    Stream(tokio::sync::mpsc::Receiver<Result<bytes::Bytes>>),
}

/// Runs `req` against `state`.
///
/// Errors: the domain error of the operation (404 unknown chain or job, 400 bad chain id...).
pub async fn execute(state: &AppState, req: AdminRequest) -> Result<AdminOutput> {
    match req {
        AdminRequest::Ping => Ok(AdminOutput::Json(json!({
            "install_id": state.install_id().to_string(),
            "version": env!("CARGO_PKG_VERSION"),
            "data_file": state.store().path().display().to_string(),
        }))),
        AdminRequest::AuditVerify { chain, full } => {
            let chain = chain
                .map(|c| ChainId::parse(&c).map_err(|m| Error::invalid("chain", m)))
                .transpose()?;
            let mode = if full {
                Mode::Full
            } else {
                Mode::FromCheckpoint
            };
            let reports = audit::verify(state.store(), state.install_key(), chain, mode).await?;
            Ok(AdminOutput::Json(json!({ "results": reports })))
        }
        AdminRequest::AuditExport { chain } => {
            let chain = ChainId::parse(&chain).map_err(|m| Error::invalid("chain", m))?;
            Ok(AdminOutput::Stream(
                audit::export(state.store(), chain).await?,
            ))
        }
        AdminRequest::JobsList => {
            let runs = state
                .read(|r| {
                    Job::ALL
                        .iter()
                        .map(|j| Ok((j.name(), scheduler::runs(r, *j, 1)?.into_iter().next())))
                        .collect::<Result<Vec<_>>>()
                })
                .await?;
            let now = state.clock().now();
            let items: Vec<Value> = runs
                .into_iter()
                .zip(Job::ALL)
                .map(|((name, last), job)| {
                    json!({
                        "name": name,
                        "schedule": state.scheduler().expression(job),
                        "next_run_at": state.scheduler().planned(job, now),
                        "last_run": last,
                    })
                })
                .collect();
            Ok(AdminOutput::Json(json!({ "items": items })))
        }
        AdminRequest::JobRun { name } => {
            let job = Job::parse(&name).ok_or_else(|| Error::not_found("job", &name))?;
            let run = scheduler::run_job(state, job, Trigger::Manual).await?;
            Ok(AdminOutput::Json(
                serde_json::to_value(run).map_err(|e| Error::Internal(e.to_string()))?,
            ))
        }
        AdminRequest::BackupCreate { recipients } => Ok(AdminOutput::Stream(
            crate::backup::stream(state, &recipients).await?,
        )),
        AdminRequest::BackupList => {
            let items = state.read(|r| crate::backup::history(r, 1000)).await?;
            Ok(AdminOutput::Json(json!({ "items": items })))
        }
    }
}
