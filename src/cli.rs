//! The command line (clap). `serve` runs the platform; the other subcommands touch the store and
//! work whether or not the server runs: they go through its admin socket when it answers, and
//! open the data dir directly otherwise.
//!
//! Exit codes: 0 success; 1 a check failed (a chain does not verify); 2 an error.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use tokio::io::AsyncReadExt;

use crate::admin::socket::{self, Reply};
use crate::admin::{self, AdminOutput, AdminRequest};
use crate::app::{Application, open_state};
use crate::clock::Clock;
use crate::config::{Config, Overrides, Secret};

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
    Serve(ServeArgs),
    /// Audit ledger: verify chains, export them.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Scheduled jobs: list them, run one now.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Operator accounts: add, list, change role, disable, set password, create tokens.
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Heartbeats: export a bundle (appliance), import one (control plane), acknowledge, status.
    #[command(subcommand)]
    Heartbeat(HeartbeatCommand),
    /// Print the OpenAPI document.
    Openapi,
    /// Backups: create (online), verify, restore (offline), list.
    #[command(subcommand)]
    Backup(crate::backup::cli::BackupCommand),
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

/// `tenantry operator ...`. Every change is audited (`operator.*.v1`, actor `system:cli`).
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Create an operator; the password is read from the first line of stdin.
    Add {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
        /// Username (3-32 characters of a-z, 0-9, '.', '_', '-').
        #[arg(long)]
        username: String,
        /// Role: super_admin, technical_admin, business_admin, compliance or support.
        #[arg(long)]
        role: String,
        /// Display name (the username by default).
        #[arg(long)]
        display_name: Option<String>,
        /// Read the password from stdin (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List operators.
    List {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Change an operator's role (their sessions end at once).
    SetRole {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
        /// Username or id.
        #[arg(long)]
        username: String,
        /// The new role.
        #[arg(long)]
        role: String,
    },
    /// Disable an operator (sessions end, tokens stop working).
    Disable {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
        /// Username or id.
        #[arg(long)]
        username: String,
    },
    /// Re-enable a disabled operator.
    Enable {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
        /// Username or id.
        #[arg(long)]
        username: String,
    },
    /// Set an operator's password, read from the first line of stdin.
    SetPassword {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
        /// Username or id.
        #[arg(long)]
        username: String,
        /// Read the password from stdin.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Operator tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `tenantry operator token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a bearer token acting with the operator's role; prints it once.
    Create {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
        /// Username or id.
        #[arg(long)]
        username: String,
        /// What the token is for, e.g. ci-pipeline.
        #[arg(long)]
        name: String,
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

/// `tenantry serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default).
    #[arg(long, env = "TENANTRY_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Data directory.
    #[arg(long, env = "TENANTRY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Config file (TOML); default /etc/tenantry/tenantry.toml when present.
    #[arg(long, env = "TENANTRY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Seed a realistic demo platform on first start of an empty data dir.
    #[arg(long)]
    pub demo: bool,
    /// Role: `appliance`, `control_plane` (default) or `both`.
    #[arg(long, env = "TENANTRY_ROLE")]
    pub role: Option<crate::config::Role>,
    /// Serve HTTPS with a self-signed certificate kept in DATA_DIR/tls (made on first use);
    /// its SHA-256 fingerprint is logged at start.
    #[arg(long)]
    pub tls_self_signed: bool,
    /// Allow plain HTTP on a non-loopback address (only behind a TLS proxy on this host).
    #[arg(long)]
    pub insecure_http: bool,
}

/// `tenantry audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify chains; exits 1 and names the first bad seq when one does not verify.
    Verify {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
        /// One chain (`platform` or `tenant:<uuid>`); every chain by default.
        #[arg(long)]
        chain: Option<String>,
        /// Start from the last good checkpoint instead of seq 1.
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

/// `tenantry jobs ...`.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs with their schedule and last run.
    List {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Run a job now.
    Run {
        /// Job name (shred_due_tenants, expire_trials, checkpoint_chains).
        name: String,
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
    },
}

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

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Openapi => {
            println!(
                "{}",
                crate::http::openapi().to_pretty_json().unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Command::Audit(AuditCommand::Verify {
            store,
            chain,
            from_checkpoint,
            json,
        }) => {
            let req = AdminRequest::AuditVerify {
                chain,
                full: !from_checkpoint,
            };
            match call(&store, req).await {
                Ok(Outcome::Json(v)) => print_verify(&v, json),
                Ok(Outcome::Stream) => ExitCode::SUCCESS,
                Err(code) => code,
            }
        }
        Command::Audit(AuditCommand::Export { store, chain, out }) => {
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
        Command::Backup(cmd) => crate::backup::cli::run(cmd).await,
        Command::Completions { shell } => {
            crate::manual::completions(shell, &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man { out_dir } => match crate::manual::man_pages(&out_dir) {
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
        Command::Jobs(JobsCommand::List { store }) => {
            match call(&store, AdminRequest::JobsList).await {
                Ok(Outcome::Json(v)) => {
                    for job in v["items"].as_array().into_iter().flatten() {
                        let last = &job["last_run"];
                        println!(
                            "{:<20} {:<16} next {:<28} last {} {}",
                            job["name"].as_str().unwrap_or(""),
                            job["schedule"].as_str().unwrap_or(""),
                            job["next_run_at"].as_str().unwrap_or("-"),
                            last["started_at"].as_str().unwrap_or("never"),
                            last["outcome"].as_str().unwrap_or(""),
                        );
                    }
                    ExitCode::SUCCESS
                }
                Ok(Outcome::Stream) => ExitCode::SUCCESS,
                Err(code) => code,
            }
        }
        Command::Operator(cmd) => operator(cmd).await,
        Command::Heartbeat(cmd) => heartbeat(cmd).await,
        Command::Jobs(JobsCommand::Run { name, store }) => {
            match call(&store, AdminRequest::JobRun { name }).await {
                Ok(Outcome::Json(v)) => {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                    if v["outcome"] == "failed" {
                        ExitCode::from(1)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Ok(Outcome::Stream) => ExitCode::SUCCESS,
                Err(code) => code,
            }
        }
    }
}

fn read_password() -> Result<String, ExitCode> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| fail(&format!("reading the password from stdin: {e}")))?;
    let pw = line.trim_end_matches(['\r', '\n']).to_string();
    if pw.is_empty() {
        return Err(fail("no password on stdin (give it on the first line)"));
    }
    Ok(pw)
}

async fn operator(cmd: OperatorCommand) -> ExitCode {
    let (store, req) = match cmd {
        OperatorCommand::Add {
            store,
            username,
            role,
            display_name,
            password_stdin: _,
        } => match read_password() {
            Ok(password) => (
                store,
                AdminRequest::OperatorAdd {
                    username,
                    display_name,
                    role,
                    password,
                },
            ),
            Err(c) => return c,
        },
        OperatorCommand::List { store } => (store, AdminRequest::OperatorList),
        OperatorCommand::SetRole {
            store,
            username,
            role,
        } => (store, AdminRequest::OperatorSetRole { username, role }),
        OperatorCommand::Disable { store, username } => (
            store,
            AdminRequest::OperatorSetDisabled {
                username,
                disabled: true,
            },
        ),
        OperatorCommand::Enable { store, username } => (
            store,
            AdminRequest::OperatorSetDisabled {
                username,
                disabled: false,
            },
        ),
        OperatorCommand::SetPassword {
            store, username, ..
        } => match read_password() {
            Ok(password) => (
                store,
                AdminRequest::OperatorSetPassword { username, password },
            ),
            Err(c) => return c,
        },
        OperatorCommand::Token(TokenCommand::Create {
            store,
            username,
            name,
        }) => (store, AdminRequest::OperatorTokenCreate { username, name }),
    };
    let list = matches!(req, AdminRequest::OperatorList);
    let token = matches!(req, AdminRequest::OperatorTokenCreate { .. });
    match call(&store, req).await {
        Ok(Outcome::Json(v)) if list => {
            println!(
                "{:<24} {:<16} {:<9} DISPLAY NAME",
                "USERNAME", "ROLE", "STATUS"
            );
            for o in v.as_array().into_iter().flatten() {
                println!(
                    "{:<24} {:<16} {:<9} {}",
                    o["username"].as_str().unwrap_or(""),
                    o["role"].as_str().unwrap_or(""),
                    if o["disabled"] == true {
                        "disabled"
                    } else {
                        "active"
                    },
                    o["display_name"].as_str().unwrap_or("")
                );
            }
            ExitCode::SUCCESS
        }
        Ok(Outcome::Json(v)) if token => {
            println!("{}", v["token"].as_str().unwrap_or(""));
            eprintln!(
                "This token is shown once; only its hash is stored. It acts with the operator's role."
            );
            ExitCode::SUCCESS
        }
        Ok(Outcome::Json(v)) => {
            println!(
                "{} {} ({})",
                v["username"].as_str().unwrap_or(""),
                v["role"].as_str().unwrap_or(""),
                if v["disabled"] == true {
                    "disabled"
                } else {
                    "active"
                }
            );
            ExitCode::SUCCESS
        }
        Ok(Outcome::Stream) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

async fn heartbeat(cmd: HeartbeatCommand) -> ExitCode {
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

/// Prints `error: msg` and returns exit code 2.
pub(crate) fn fail(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

fn print_verify(v: &Value, json: bool) -> ExitCode {
    let results = v["results"].as_array().cloned().unwrap_or_default();
    let all_ok = results.iter().all(|r| r["ok"] == true);
    if json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        for r in &results {
            if r["ok"] == true {
                println!(
                    "ok      {}  head {}  verified from seq {}  ({} entries, {} bytes)",
                    r["chain"].as_str().unwrap_or(""),
                    r["head_seq"],
                    r["verified_from_seq"],
                    r["entries_checked"],
                    r["bytes_checked"]
                );
            } else {
                println!(
                    "BROKEN  {}  first bad seq {}: {}",
                    r["chain"].as_str().unwrap_or(""),
                    r["first_bad_seq"],
                    r["problem"].as_str().unwrap_or("")
                );
            }
        }
        let bad = results.iter().filter(|r| r["ok"] != true).count();
        println!("{} chain(s) checked, {} broken", results.len(), bad);
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
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
        Err(e) => Err(fail(&format!("{e} ({}, {})", e.code(), e.status()))),
    };
    state.store().close().await;
    out
}

/// File holding the token generated for `serve --demo` when none is configured.
pub const DEMO_TOKEN_FILE: &str = "demo-admin-token";

fn demo_token(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join(DEMO_TOKEN_FILE);
    if let Ok(t) = std::fs::read_to_string(&path)
        && t.trim().len() >= 16
    {
        return Ok(t.trim().to_string());
    }
    crate::store::ensure_private_dir(data_dir).map_err(std::io::Error::other)?;
    let mut raw = [0u8; 24];
    getrandom::fill(&mut raw).map_err(std::io::Error::other)?;
    let token = format!("demo-{}", hex::encode(raw));
    let _ = std::fs::remove_file(&path);
    crate::audit::signing::write_private(&path, format!("{token}\n").as_bytes())?;
    Ok(token)
}

async fn serve(args: ServeArgs) -> ExitCode {
    // Signal handlers first: from the first log line on, SIGTERM drains and SIGHUP reloads.
    let signalled = shutdown_signal();
    let hup = sighup();
    let token = std::env::var("TENANTRY_ADMIN_OPS_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .map(Secret::new);
    let mut config = match Config::load(Overrides {
        config: args.config,
        listen: args.listen,
        data_dir: args.data_dir,
        admin_ops_token: token,
        demo: args.demo,
        role: args.role,
        tls_self_signed: args.tls_self_signed,
        insecure_http: args.insecure_http,
    }) {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    if config.demo && config.admin_ops_token.is_none() {
        match demo_token(&config.data_dir) {
            Ok(t) => {
                tracing::info!(
                    "demo admin token (super_admin): {t}  (also in {})",
                    config.data_dir.join(DEMO_TOKEN_FILE).display()
                );
                config.admin_ops_token = Some(Secret::new(t));
            }
            Err(e) => return fail(&format!("cannot write the demo token: {e}")),
        }
    }
    if config.admin_ops_token.is_none() {
        tracing::warn!(
            "no admin_ops_token is configured: sign in with an operator account (create the first one with `echo <password> | tenantry operator add --data-dir {} --username <name> --role super_admin --password-stdin`), or set TENANTRY_ADMIN_OPS_TOKEN for the API",
            config.data_dir.display()
        );
    }
    let app = match Application::build(config, Clock::System).await {
        Ok(a) => a,
        Err(e) => return fail(&e.to_string()),
    };
    let addr = app.local_addr();
    let scheme = if app.tls().is_some() { "https" } else { "http" };
    if let Some(tls) = app.tls() {
        tracing::info!(
            cert = %tls.cert_file().display(),
            "TLS certificate{} SHA-256 fingerprint {}",
            if tls.is_self_signed() { " (self-signed)" } else { "" },
            tls.fingerprint()
        );
    }
    tracing::info!(
        data_file = %app.state().store().path().display(),
        role = app.state().onprem().role().as_str(),
        "tenantry {} listening on {scheme}://{addr} (API under /api, OpenAPI at /api/openapi.json)",
        env!("CARGO_PKG_VERSION")
    );
    let reloader = tokio::spawn(reload_on_sighup(hup, app.tls().cloned()));
    // The store is open, the listener bound, the signals handled: tell systemd (a no-op
    // outside it).
    crate::systemd::ready(&format!("serving on {scheme}://{addr}"));
    let watchdog = crate::systemd::spawn_watchdog(app.state().store().clone());
    let shutdown = async {
        signalled.await;
        crate::systemd::stopping();
    };
    let served = app.run_until_stopped(shutdown).await;
    reloader.abort();
    if let Some(w) = watchdog {
        w.abort();
    }
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("server error: {e}")),
    }
}

/// The SIGHUP handler, installed now (SIGHUP's default action would end the process).
fn sighup() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

/// SIGHUP (`systemctl reload tenantry`): re-reads the TLS certificate and key; the served one
/// stays when the new files are unusable. Other settings need a restart.
async fn reload_on_sighup(hup: Option<tokio::signal::unix::Signal>, tls: Option<crate::tls::Tls>) {
    let Some(mut hup) = hup else {
        return;
    };
    while hup.recv().await.is_some() {
        crate::systemd::reloading();
        match &tls {
            Some(tls) => match tls.reload() {
                Ok(fp) => tracing::info!(
                    "SIGHUP: TLS certificate reloaded, SHA-256 fingerprint {fp}; other settings need a restart"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: TLS reload failed; still serving the previous certificate")
                }
            },
            None => tracing::info!("SIGHUP: no TLS to reload; other settings need a restart"),
        }
        crate::systemd::ready("reloaded");
    }
}

/// Installs the SIGTERM and SIGINT (Ctrl-C) handlers now, and returns a future that resolves
/// on either. Installing them before readiness is announced matters: a SIGTERM that arrives
/// right after `READY=1` must still drain rather than kill the process.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate()).ok();
    let int = signal(SignalKind::interrupt()).ok();
    async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = wait(int) => tracing::info!("Ctrl-C received; shutting down gracefully"),
            _ = wait(term) => tracing::info!("SIGTERM received; shutting down gracefully"),
        }
    }
}
