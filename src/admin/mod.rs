//! Local administration: the operations that CLI subcommands run against the store, whether
//! through the running server's admin socket or directly on the data dir when no server holds
//! it (redb allows one process per file).
//!
//! - [`request`]: the requests (one JSON line each) and the actor of local changes.
//! - [`client`]: the CLI's side of the socket (also how a restore tells a server runs).
//! - [`socket`]: the Unix socket server.
//!
//! [`execute`] is the one entry point: the socket server and the CLI's direct mode both call
//! it, so a command behaves the same either way.

pub mod client;
pub mod request;
pub mod socket;

pub use request::{AdminRequest, cli_actor};

use serde_json::{Value, json};

use crate::audit::{self, ChainId, Mode};
use crate::error::{Error, Result};
use crate::scheduler::{self, Job};
use crate::state::AppState;

/// What an operation returns: a JSON value, or a byte stream (export).
pub enum AdminOutput {
    /// A JSON result.
    Json(Value),
    /// Chunks to copy to the output as they come.
    Stream(tokio::sync::mpsc::Receiver<Result<bytes::Bytes>>),
}

fn json_of<T: serde::Serialize>(v: T) -> Result<AdminOutput> {
    serde_json::to_value(v)
        .map(AdminOutput::Json)
        .map_err(|e| Error::Internal(e.to_string()))
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
                audit::export(state.store(), state.exports(), chain).await?,
            ))
        }
        AdminRequest::JobsList => {
            let jobs: Vec<Job> = state.scheduler().jobs().collect();
            let listed = jobs.clone();
            let runs = state
                .read(move |r| {
                    listed
                        .iter()
                        .map(|j| Ok((j.name(), scheduler::runs(r, *j, 1)?.into_iter().next())))
                        .collect::<Result<Vec<_>>>()
                })
                .await?;
            let now = state.clock().now();
            let items: Vec<Value> = runs
                .into_iter()
                .zip(jobs)
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
        AdminRequest::OperatorAdd {
            username,
            display_name,
            role,
            password,
        } => {
            let req = crate::operators::OperatorDraft {
                username,
                display_name,
                role,
                password,
            };
            json_of(crate::operators::add(state, cli_actor(), req).await?)
        }
        AdminRequest::OperatorList => json_of(state.read(crate::operators::queries::list).await?),
        AdminRequest::OperatorSetRole { username, role } => {
            json_of(crate::operators::set_role(state, cli_actor(), &username, &role).await?)
        }
        AdminRequest::OperatorSetDisabled { username, disabled } => {
            json_of(crate::operators::set_disabled(state, cli_actor(), &username, disabled).await?)
        }
        AdminRequest::OperatorSetPassword { username, password } => {
            json_of(crate::operators::set_password(state, cli_actor(), &username, password).await?)
        }
        AdminRequest::OperatorTokenCreate { username, name } => {
            let (token, info) =
                crate::operators::create_token(state, cli_actor(), &username, &name).await?;
            Ok(AdminOutput::Json(json!({"token": token, "info": info})))
        }
        AdminRequest::JobRun { name } => {
            let job = state
                .scheduler()
                .job(&name)
                .ok_or_else(|| Error::not_found("job", &name))?;
            let run = scheduler::run_job(state, job, Some(cli_actor())).await?;
            Ok(AdminOutput::Json(
                serde_json::to_value(run).map_err(|e| Error::Internal(e.to_string()))?,
            ))
        }
        AdminRequest::HeartbeatExport => {
            let bytes = crate::heartbeat::bundle::export(state).await?;
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let _ = tx.send(Ok(bytes::Bytes::from(bytes))).await;
            Ok(AdminOutput::Stream(rx))
        }
        AdminRequest::HeartbeatImport { bundle } => {
            let r = crate::installs::import_bundle(state, cli_actor(), bundle.into_bytes()).await?;
            Ok(AdminOutput::Json(
                serde_json::to_value(r).map_err(|e| Error::Internal(e.to_string()))?,
            ))
        }
        AdminRequest::HeartbeatAck { through } => {
            state.onprem().require_appliance("heartbeat ack")?;
            let r = crate::heartbeat::acknowledge(state, cli_actor(), through).await?;
            Ok(AdminOutput::Json(
                serde_json::to_value(r).map_err(|e| Error::Internal(e.to_string()))?,
            ))
        }
        AdminRequest::SyncStatus => {
            state.onprem().require_appliance("heartbeat status")?;
            let r = crate::heartbeat::queries::report(state).await?;
            Ok(AdminOutput::Json(
                serde_json::to_value(r).map_err(|e| Error::Internal(e.to_string()))?,
            ))
        }
        AdminRequest::BackupCreate {
            recipients,
            plaintext,
        } => Ok(AdminOutput::Stream(
            crate::backup::stream(state, &recipients, plaintext).await?,
        )),
        AdminRequest::BackupList => {
            let items = state.read(|r| crate::backup::history(r, 1000)).await?;
            Ok(AdminOutput::Json(json!({ "items": items })))
        }
    }
}
