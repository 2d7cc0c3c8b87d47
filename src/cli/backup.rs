//! `tenantry backup ...`: create (through the admin socket when a server runs, else directly),
//! verify and restore (offline, on files), list (the recorded history); and `tenantry compact`
//! (offline, on a stopped server's data file).
//!
//! Exit codes: 0 success; 1 the backup is bad (corrupt, truncated, a broken chain); 2 an error
//! (a missing file, a wrong or missing key, a refused restore).

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::{Args, Subcommand};

use super::{Outcome, StoreArgs, call, call_streaming, fail};
use crate::admin::AdminRequest;
use crate::backup::{self, Error, Identities};

/// `tenantry backup ...`.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Write an online, consistent backup of the store and its keys, encrypted with age to the
    /// given or configured recipients (unencrypted only with --plaintext).
    Create(CreateArgs),
    /// Check a backup: checksum, decryption, and every audit chain from seq 1.
    Verify(VerifyArgs),
    /// Restore a backup into a data dir (the server must be stopped).
    Restore(RestoreArgs),
    /// List the backups this store recorded.
    List {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `tenantry backup create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Output file (`-` for standard output). Never overwritten.
    #[arg(long)]
    pub out: PathBuf,
    /// Encrypt to this age public key (age1...); repeatable. Added to `backup.recipients`.
    #[arg(long = "recipient", value_name = "AGE_PUBLIC_KEY")]
    pub recipients: Vec<String>,
    /// Write the backup unencrypted when no recipient is given or configured. Without it, such
    /// a backup is refused: it holds the install's private signing key (unless
    /// `backup.include_keys = false`).
    #[arg(long)]
    pub plaintext: bool,
    /// Store location.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `tenantry backup verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The backup file.
    pub file: PathBuf,
    /// age identity file to decrypt with (as `age-keygen` writes); repeatable.
    #[arg(long = "identity", value_name = "FILE")]
    pub identities: Vec<PathBuf>,
    /// Print the JSON report instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `tenantry backup restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file.
    pub file: PathBuf,
    /// Data directory to restore into.
    #[arg(long, env = "TENANTRY_DATA_DIR")]
    pub data_dir: PathBuf,
    /// age identity file to decrypt with; repeatable.
    #[arg(long = "identity", value_name = "FILE")]
    pub identities: Vec<PathBuf>,
    /// Restore over an existing data dir; its data file and keys are moved into
    /// `replaced-<time>/`, not deleted.
    #[arg(long)]
    pub force: bool,
    /// For a backup taken with `backup.include_keys = false`: a copy of the original data dir's
    /// `keys/` directory (install.ed25519 and the other key files); every file in it is
    /// restored. Refused for a backup that carries its own keys.
    #[arg(long, value_name = "DIR")]
    pub keys_from: Option<PathBuf>,
}

/// `tenantry compact` and `tenantry check`.
#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Data directory of a stopped server.
    #[arg(long, env = "TENANTRY_DATA_DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}

/// `tenantry compact`: compacts the data file offline and prints its size before and after.
/// Refused (exit 2) while a server holds the store.
pub async fn compact(args: CompactArgs) -> ExitCode {
    match backup::compact(&args.data_dir).await {
        Ok(c) => {
            println!(
                "compacted {}: {} ({} bytes) before, {} ({} bytes) after",
                args.data_dir.join(crate::store::DATA_FILE).display(),
                backup::human_bytes(c.before),
                c.before,
                backup::human_bytes(c.after),
                c.after
            );
            ExitCode::SUCCESS
        }
        Err(e) => refuse(&e),
    }
}

/// `tenantry check`: checks every page checksum of a stopped server's data file, without
/// changing it. Exit 0 when it passes, 1 when it fails, 2 when it cannot run (a server holds
/// the file, no file).
pub async fn check(args: CompactArgs) -> ExitCode {
    let dir = args.data_dir.clone();
    let file = args.data_dir.join(crate::store::DATA_FILE);
    match tokio::task::spawn_blocking(move || crate::store::check_file(&dir)).await {
        Ok(Ok(len)) => {
            println!(
                "ok: every page checksum of {} ({}) matches",
                file.display(),
                backup::human_bytes(len)
            );
            ExitCode::SUCCESS
        }
        Ok(Err(e @ crate::store::Error::IntegrityFailed { .. })) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
        Ok(Err(crate::store::Error::Locked { .. })) => {
            eprintln!(
                "error: a server holds {}: stop it first (the check reads the file while nothing writes it)",
                file.display()
            );
            ExitCode::from(2)
        }
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: the check failed to run: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs a `backup` subcommand.
pub async fn run(cmd: BackupCommand) -> ExitCode {
    match cmd {
        BackupCommand::Create(args) => create(args).await,
        BackupCommand::Verify(args) => verify(args).await,
        BackupCommand::Restore(args) => restore(args).await,
        BackupCommand::List { store } => list(&store).await,
    }
}

fn refuse(e: &Error) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(if e.is_check_failure() { 1 } else { 2 })
}

const UNENCRYPTED: &str = "warning: this backup is NOT encrypted (--plaintext) and may hold the install's private signing key (keys/install.ed25519): keep it like a secret, or pass --recipient / set backup.recipients";

/// A `Write` into a shared file handle, counting and hashing what passes.
struct Tee {
    out: Box<dyn Write + Send>,
    state: Arc<Mutex<(u64, blake3::Hasher)>>,
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        if let Ok(mut s) = self.state.lock() {
            s.0 += n as u64;
            s.1.update(&buf[..n]);
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

async fn create(args: CreateArgs) -> ExitCode {
    let to_stdout = args.out.as_os_str() == "-";
    if to_stdout && std::io::stdout().is_terminal() {
        return fail("refusing to write a backup to a terminal: redirect it, or use --out FILE");
    }
    if !to_stdout && args.out.exists() {
        return refuse(&Error::Exists {
            path: args.out.display().to_string(),
        });
    }
    let partial = backup::partial_path(&args.out);
    let file = if to_stdout {
        None
    } else {
        let _ = std::fs::remove_file(&partial);
        match backup::create_private(&partial) {
            Ok(f) => Some(f),
            Err(e) => return refuse(&e),
        }
    };
    let out: Box<dyn Write + Send> = match &file {
        Some(f) => match f.try_clone() {
            Ok(c) => Box::new(std::io::BufWriter::with_capacity(256 * 1024, c)),
            Err(e) => return fail(&format!("{}: {e}", partial.display())),
        },
        None => Box::new(std::io::stdout()),
    };
    let state = Arc::new(Mutex::new((0u64, blake3::Hasher::new())));
    let tee: Box<dyn Write + Send> = Box::new(Tee {
        out,
        state: state.clone(),
    });
    let sink = Arc::new(Mutex::new(tee));
    let req = AdminRequest::BackupCreate {
        recipients: args.recipients.clone(),
        plaintext: args.plaintext,
    };
    let outcome = call_streaming(&args.store, req, sink.clone()).await;
    let flushed = match sink.lock() {
        Ok(mut s) => s.flush().map_err(|e| e.to_string()),
        Err(_) => Err("output lock poisoned".to_string()),
    };
    let done = match (outcome, flushed) {
        (Ok(Outcome::Stream), Ok(())) => Ok(()),
        (Ok(Outcome::Json(_)), _) => Err(fail("the server answered a backup with JSON")),
        (Err(code), _) => Err(code),
        (_, Err(e)) => Err(fail(&format!("writing {}: {e}", partial.display()))),
    };
    let finished = done.and_then(|()| match &file {
        Some(f) => f
            .sync_all()
            .and_then(|()| std::fs::rename(&partial, &args.out))
            .map(|()| backup::sync_parent(&args.out))
            .map_err(|e| fail(&format!("{}: {e}", args.out.display()))),
        None => Ok(()),
    });
    if let Err(code) = finished {
        if file.is_some() {
            let _ = std::fs::remove_file(&partial);
        }
        return code;
    }
    let (bytes, hash) = match state.lock() {
        Ok(s) => (s.0, s.1.finalize().to_hex().to_string()),
        Err(_) => (0, String::new()),
    };
    let encrypted = !to_stdout && starts_with_age(&args.out);
    let shown = if to_stdout {
        "standard output".to_string()
    } else {
        args.out.display().to_string()
    };
    eprintln!(
        "wrote {shown}: {} ({bytes} bytes), blake3 {hash}, {}",
        backup::human_bytes(bytes),
        if encrypted || (to_stdout && !args.recipients.is_empty()) {
            "encrypted with age"
        } else if to_stdout {
            "encryption as configured"
        } else {
            "not encrypted"
        }
    );
    if !to_stdout && !encrypted {
        eprintln!("{UNENCRYPTED}");
    }
    ExitCode::SUCCESS
}

fn starts_with_age(path: &Path) -> bool {
    let mut head = [0u8; 19];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && head.starts_with(b"age-encryption.org/")
}

async fn verify(args: VerifyArgs) -> ExitCode {
    let ids = match Identities::load(&args.identities) {
        Ok(i) => i,
        Err(e) => return refuse(&e),
    };
    match backup::verify_file(&args.file, &ids).await {
        Ok(report) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                let m = &report.manifest;
                let entries: u64 = report.chains.iter().map(|c| c.entries_checked).sum();
                println!("ok      backup {}", args.file.display());
                println!(
                    "        taken {} by tenantry {}, schema v{}, install {}",
                    m.created_at.to_rfc3339(),
                    m.tenantry_version,
                    m.schema_version,
                    m.install_id.as_deref().unwrap_or("-")
                );
                println!(
                    "        {}; {} tables, {} rows, {} key file(s); blake3 {}",
                    if report.encrypted {
                        "encrypted with age"
                    } else {
                        "not encrypted"
                    },
                    report.counts.tables,
                    report.counts.rows,
                    report.counts.files,
                    report.body_blake3
                );
                println!(
                    "        {} chain(s) verified from seq 1 ({entries} entries), 0 broken",
                    report.chains.len()
                );
                if !report.keys_included {
                    println!(
                        "        no private keys (backup.include_keys = false): checked with the public key it carries; a restore needs --keys-from DIR"
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => refuse(&e),
    }
}

async fn restore(args: RestoreArgs) -> ExitCode {
    let ids = match Identities::load(&args.identities) {
        Ok(i) => i,
        Err(e) => return refuse(&e),
    };
    let now = chrono::Utc::now();
    match backup::restore(
        &args.file,
        &ids,
        args.keys_from.as_deref(),
        &args.data_dir,
        args.force,
        now,
    )
    .await
    {
        Ok(r) => {
            println!(
                "restored {} into {}: {} rows, {} chain(s) verified from seq 1; snapshot taken {} (platform head seq {})",
                args.file.display(),
                args.data_dir.display(),
                r.counts.rows,
                r.chains,
                r.manifest.created_at.to_rfc3339(),
                r.manifest.platform_head_seq
            );
            if let Some(p) = r.replaced {
                println!(
                    "the previous data file and keys were moved to {}",
                    p.display()
                );
            }
            if r.manifest.schema_version < crate::store::SCHEMA_VERSION {
                println!(
                    "the backup has schema v{}; the next start migrates it to v{} (after a backup of its own)",
                    r.manifest.schema_version,
                    crate::store::SCHEMA_VERSION
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => refuse(&e),
    }
}

async fn list(store: &StoreArgs) -> ExitCode {
    match call(store, AdminRequest::BackupList).await {
        Ok(Outcome::Json(v)) => {
            let items = v["items"].as_array().cloned().unwrap_or_default();
            for b in &items {
                println!(
                    "{:<32} {:<13} {:>10} {:<9} {}",
                    b["created_at"].as_str().unwrap_or(""),
                    b["trigger"].as_str().unwrap_or(""),
                    backup::human_bytes(b["bytes"].as_u64().unwrap_or(0)),
                    if b["encrypted"] == true {
                        "encrypted"
                    } else {
                        "plain"
                    },
                    b["file"]
                        .as_str()
                        .unwrap_or("(streamed to the admin client)"),
                );
            }
            println!("{} backup(s) recorded", items.len());
            ExitCode::SUCCESS
        }
        Ok(Outcome::Stream) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}
