//! The command line (clap). `serve` runs the platform; the other subcommands touch the store and
//! work whether or not the server runs: they go through its admin socket when it answers, and
//! open the data dir directly otherwise.
//!
//! One file per subcommand group: [`serve`], [`audit`], [`jobs`], [`operator`], [`heartbeat`],
//! [`backup`]; [`manual`] writes the man pages and completions from these definitions.
//!
//! Exit codes: 0 success; 1 a check failed (a chain does not verify); 2 an error.

pub mod audit;
pub mod backup;
pub mod heartbeat;
pub mod jobs;
pub mod manual;
pub mod operator;
pub mod serve;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use tokio::io::AsyncReadExt;

use crate::admin::client::{self as socket, Reply};
use crate::admin::{self, AdminOutput, AdminRequest};
use crate::app::open_state;
use crate::clock::Clock;
use crate::config::{Config, Overrides};

pub use serve::{DEMO_TOKEN_FILE, shutdown_signal};

/// Tenantry: the control plane of a multi-tenant SaaS platform in one binary.
#[derive(Debug, Parser)]
#[command(name = "tenantry", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (and, with --demo, seed a demo platform on an empty data dir).
    Serve(serve::ServeArgs),
    /// Audit ledger: verify chains, export them.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Scheduled jobs: list them, run one now.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Operator accounts: add, list, change role, disable, set password, create tokens.
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
    /// Heartbeats: export a bundle (appliance), import one (control plane), acknowledge, status.
    #[command(subcommand)]
    Heartbeat(heartbeat::HeartbeatCommand),
    /// Print the OpenAPI document.
    Openapi,
    /// Backups: create (online), verify, restore (offline), list.
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// Compact the data file of a stopped server (offline), giving back free pages.
    Compact(backup::CompactArgs),
    /// Check every page checksum of a stopped server's data file, without changing it.
    Check(backup::CompactArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (packaging).
    #[command(hide = true)]
    Man {
        /// Directory to write `tenantry.1` and the subcommand pages into.
        #[arg(long)]
        out_dir: PathBuf,
    },
}

/// Where the store is, shared by every store command.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Data directory.
    #[arg(long, env = "TENANTRY_DATA_DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Config file (TOML), used when the store is opened directly.
    #[arg(long, env = "TENANTRY_CONFIG")]
    pub config: Option<PathBuf>,
    /// This install's role (`appliance`, `control_plane`, `both`), used when the store is opened
    /// directly. (`--role` is taken by `operator` commands, where it is an operator's role.)
    #[arg(long = "server-role", id = "server_role", env = "TENANTRY_ROLE")]
    pub server_role: Option<crate::config::Role>,
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Openapi => {
            println!(
                "{}",
                crate::app::openapi().to_pretty_json().unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Command::Audit(cmd) => audit::run(cmd).await,
        Command::Jobs(cmd) => jobs::run(cmd).await,
        Command::Operator(cmd) => operator::run(cmd).await,
        Command::Heartbeat(cmd) => heartbeat::run(cmd).await,
        Command::Backup(cmd) => backup::run(cmd).await,
        Command::Compact(args) => backup::compact(args).await,
        Command::Check(args) => backup::check(args).await,
        Command::Completions { shell } => {
            manual::completions(shell, &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man { out_dir } => match manual::man_pages(&out_dir) {
            Ok(pages) => {
                for p in pages {
                    println!("{}", p.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!(
                "writing man pages into {}: {e}",
                out_dir.display()
            )),
        },
    }
}

/// Prints `error: msg` and returns exit code 2.
pub(crate) fn fail(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

/// What a store command returned.
pub(crate) enum Outcome {
    /// A JSON result.
    Json(Value),
    /// A stream, already copied to the sink.
    Stream,
}

/// Runs `req` through the server's socket, or directly on the store.
pub(crate) async fn call(store: &StoreArgs, req: AdminRequest) -> Result<Outcome, ExitCode> {
    let sink: std::sync::Arc<std::sync::Mutex<Box<dyn Write + Send>>> =
        std::sync::Arc::new(std::sync::Mutex::new(Box::new(std::io::stdout())));
    call_streaming(store, req, sink).await
}

/// Runs `req` like [`call`], copying a streamed result into `sink`.
pub(crate) async fn call_streaming(
    store: &StoreArgs,
    req: AdminRequest,
    sink: std::sync::Arc<std::sync::Mutex<Box<dyn Write + Send>>>,
) -> Result<Outcome, ExitCode> {
    let write_chunk = |bytes: &[u8]| -> Result<(), ExitCode> {
        let mut s = sink.lock().map_err(|_| fail("output lock poisoned"))?;
        s.write_all(bytes)
            .map_err(|e| fail(&format!("writing output: {e}")))
    };
    match socket::request(&store.data_dir, &req).await {
        Ok(Some(Reply::Json(v))) => return Ok(Outcome::Json(v)),
        Ok(Some(Reply::Stream(mut reader))) => {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = reader
                    .read(&mut buf)
                    .await
                    .map_err(|e| fail(&format!("reading from the server: {e}")))?;
                if n == 0 {
                    return Ok(Outcome::Stream);
                }
                write_chunk(&buf[..n])?;
            }
        }
        Ok(Some(Reply::Refused(code, status, message))) => {
            return Err(fail(&format!("{message} ({code}, {status})")));
        }
        Ok(None) => {}
        Err(e) => {
            return Err(fail(&format!(
                "admin socket {}: {e}",
                socket::socket_path(&store.data_dir).display()
            )));
        }
    }
    // No server: open the store directly.
    let data_file = store.data_dir.join(crate::store::DATA_FILE);
    if !data_file.exists() {
        return Err(fail(&format!(
            "no data file at {}: check --data-dir",
            data_file.display()
        )));
    }
    let config = Config::load(Overrides {
        config: store.config.clone(),
        data_dir: Some(store.data_dir.clone()),
        role: store.server_role,
        ..Overrides::default()
    })
    .map_err(|e| fail(&e.to_string()))?;
    let state = open_state(config, Clock::System)
        .await
        .map_err(|e| fail(&e.to_string()))?;
    let result = admin::execute(&state, req).await;
    let out = match result {
        Ok(AdminOutput::Json(v)) => Ok(Outcome::Json(v)),
        Ok(AdminOutput::Stream(mut rx)) => {
            let mut r = Ok(Outcome::Stream);
            while let Some(chunk) = rx.recv().await {
                match chunk {
                    Ok(b) => {
                        if let Err(c) = write_chunk(&b) {
                            r = Err(c);
                            break;
                        }
                    }
                    Err(e) => {
                        r = Err(fail(&e.to_string()));
                        break;
                    }
                }
            }
            r
        }
        Err(e) => Err(fail(&format!(
            "{e} ({}, {})",
            e.code(),
            crate::http::problem::status(&e).as_u16()
        ))),
    };
    state.store().close().await;
    out
}
