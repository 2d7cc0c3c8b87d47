//! Online backups, their verification, and offline restore.
//!
//! - [`format`]: the file format (magic, zstd body of tables and rows, BLAKE3 checksum).
//! - [`crypt`]: age encryption, recipients and identity files.
//! - [`cli`]: `tenantry backup create | verify | restore | list`.
//!
//! A backup is one read snapshot of the store (every table, every row: [`store::snapshot`])
//! plus every file under `DATA_DIR/keys/`. The install key belongs in it: the store records the
//! key's id and refuses to start with another key, and checkpoints are signed with it, so a
//! restore without it could neither start nor extend its chains. That makes an unencrypted
//! backup as sensitive as the data dir itself, so backups are age-encrypted whenever recipients
//! are configured, and an unencrypted one is written with a warning.
//!
//! Taking a backup is recorded: a row in `backups` (the history `backup list` shows) and the
//! platform-chain entry `backup.created.v1`, in one write after the file is complete. The backup
//! itself changes no platform state, but it copies the install's signing key out of the data
//! dir, which an auditor needs to see. The snapshot therefore never holds its own entry.

pub mod cli;
pub mod crypt;
pub mod format;

use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::actor::Actor;
use crate::app::AppState;
use crate::audit::ledger;
use crate::audit::{self, ChainId, ChainReport, Mode, Target};
use crate::clock::{from_micros, to_micros};
use crate::store::keys::Key;
use crate::store::snapshot::{self, Loader};
use crate::store::{self, Dir, Range, Reader, Store, Table, WriteCtx, codec};
pub use crypt::{Identities, Recipient};
pub use format::{Counts, Manifest};

/// History of backups taken: `(created micros, nonce) -> BackupRecord`.
pub const BACKUPS: Table = Table::new("backups");
/// Records kept in [`BACKUPS`]; older ones are pruned.
const RECORDS_KEPT: usize = 1000;
/// Directory of data-dir files a backup carries.
const KEYS_DIR: &str = "keys";
/// Prefix of the daily job's files, which rotation may delete (never other files).
const DAILY_PREFIX: &str = "tenantry-daily-";

/// `[backup]` in the config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Where `backup_daily` and pre-migration backups go; `DATA_DIR/backups` when unset. Put it
    /// on another disk (and, under systemd, in `ReadWritePaths=`) to survive disk loss.
    pub dir: Option<PathBuf>,
    /// Daily backups kept (7 by default, at least 1); older `tenantry-daily-*` files are
    /// deleted.
    pub keep: usize,
    /// age recipients (`age1...`) every backup is encrypted to.
    pub recipients: Vec<Recipient>,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            dir: None,
            keep: 7,
            recipients: Vec::new(),
        }
    }
}

impl BackupConfig {
    /// The backup directory for `data_dir`.
    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| data_dir.join("backups"))
    }
}

/// Why a backup, a verification or a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {detail}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        detail: String,
    },
    /// The file is not a backup at all.
    #[error("{path} is not a tenantry backup: {detail}")]
    NotABackup {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
    /// An encrypted backup, and no identity to open it.
    #[error(
        "{path} is encrypted with age: pass --identity FILE, an age identity file holding a key it was encrypted to"
    )]
    NeedsIdentity {
        /// The file.
        path: String,
    },
    /// No identity given can open the backup.
    #[error(
        "none of the identities in {identities} can decrypt {path}: it was encrypted to other recipients"
    )]
    WrongKey {
        /// The file.
        path: String,
        /// The identity files tried.
        identities: String,
    },
    /// An identity file is unusable.
    #[error("identity file {path}: {detail}")]
    Identity {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
    /// A recipient is not an age public key.
    #[error("'{value}' is not an age recipient ({detail}); use an age public key, age1...")]
    Recipient {
        /// As given.
        value: String,
        /// The parser's complaint.
        detail: String,
    },
    /// The backup is damaged: truncated, edited, or not fully written.
    #[error("backup {path} is corrupt: {detail}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// Written by a newer tenantry.
    #[error(
        "backup {path} has {what} {found}, newer than this build of tenantry reads ({supported}): restore it with a newer tenantry"
    )]
    TooNew {
        /// The file.
        path: String,
        /// `format` or `schema version`.
        what: &'static str,
        /// Found.
        found: u32,
        /// Supported.
        supported: u32,
    },
    /// The install key in the backup does not match its store.
    #[error(
        "backup {path} holds install key {found}, but its store was created with key {expected}"
    )]
    KeyMismatch {
        /// The file.
        path: String,
        /// Key id in the backup's keys/.
        found: String,
        /// Key id its store records.
        expected: String,
    },
    /// Chains of the backup do not verify.
    #[error(
        "the ledger in backup {path} does not verify: {broken} chain(s) broken, first {chain} at seq {seq}: {problem}"
    )]
    ChainsBroken {
        /// The file.
        path: String,
        /// How many chains are broken.
        broken: usize,
        /// The first.
        chain: String,
        /// Its first bad seq.
        seq: u64,
        /// Why.
        problem: String,
    },
    /// The restore target holds data.
    #[error(
        "data dir {path} is not empty: restore into an empty directory, or pass --force to move its data file and keys aside (into {path}/replaced-<time>/)"
    )]
    DataDirNotEmpty {
        /// The data dir.
        path: String,
    },
    /// A server runs on the restore target.
    #[error(
        "a tenantry server is running on {path}: stop it first (systemctl stop tenantry), then restore"
    )]
    ServerRunning {
        /// The data dir.
        path: String,
    },
    /// The output exists.
    #[error("{path} exists: choose another name or remove it")]
    Exists {
        /// The file.
        path: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A domain operation failed.
    #[error(transparent)]
    Domain(#[from] crate::error::Error),
}

impl Error {
    /// Is this a verdict on the backup (it is bad: exit 1) rather than a failure to check it
    /// (exit 2)?
    pub fn is_check_failure(&self) -> bool {
        matches!(
            self,
            Error::NotABackup { .. }
                | Error::Corrupt { .. }
                | Error::KeyMismatch { .. }
                | Error::ChainsBroken { .. }
        )
    }

    fn io(path: &Path, e: impl std::fmt::Display) -> Error {
        Error::Io {
            path: path.display().to_string(),
            detail: e.to_string(),
        }
    }
}

impl From<Error> for crate::error::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Domain(d) => d,
            Error::Store(s) => crate::error::Error::Store(s),
            e @ Error::Recipient { .. } => {
                crate::error::Error::invalid("recipients", e.to_string())
            }
            e @ (Error::Exists { .. }
            | Error::DataDirNotEmpty { .. }
            | Error::ServerRunning { .. }) => {
                crate::error::Error::conflict("conflict", e.to_string())
            }
            other => crate::error::Error::Internal(other.to_string()),
        }
    }
}

/// How a backup was started (`trigger` in its record and audit entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// `tenantry backup create` (admin socket, or directly on a stopped store).
    Manual,
    /// The `backup_daily` job.
    Daily,
    /// Taken by a schema migration before it changed anything.
    PreMigration,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Daily => "daily",
            Trigger::PreMigration => "pre_migration",
        }
    }
}

/// What a written backup holds.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// The manifest written first.
    pub manifest: Manifest,
    /// Tables, rows and files.
    pub counts: Counts,
    /// Bytes of the file as written (after compression and encryption).
    pub bytes: u64,
    /// BLAKE3 of the file as written (hex), to check copies with `b3sum`.
    pub file_blake3: String,
    /// BLAKE3 of the plain body (hex), the checksum inside the file.
    pub body_blake3: String,
    /// Encrypted to how many recipients (0: plain).
    pub recipients: usize,
    /// Time taken, milliseconds.
    pub millis: u64,
}

/// A stored backup record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum BackupRecord {
    /// Version 1.
    V1 {
        /// When the snapshot was taken, microseconds.
        created_at: i64,
        /// File name, when the server wrote the file (daily, pre-migration); `None` when it was
        /// streamed to the admin client, which chose the name.
        file: Option<String>,
        /// Bytes.
        bytes: u64,
        /// BLAKE3 of the file.
        file_blake3: [u8; 32],
        /// Recipients it is encrypted to.
        recipients: u32,
        /// How it started.
        trigger: Trigger,
        /// Platform head seq in the snapshot.
        platform_head_seq: u64,
        /// Rows in the snapshot.
        rows: u64,
    },
}

/// Counts output bytes and hashes them.
struct Counting<W> {
    inner: W,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Files of `data_dir` a backup carries: every regular file under `keys/`, by relative path.
fn data_files(data_dir: &Path) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let dir = data_dir.join(KEYS_DIR);
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(&dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&dir, e))?;
        let path = entry.path();
        let is_file = entry
            .file_type()
            .map_err(|e| Error::io(&path, e))?
            .is_file();
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_file {
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            out.push((format!("{KEYS_DIR}/{name}"), bytes));
        }
    }
    out.sort();
    Ok(out)
}

/// Writes a backup of `store` (and `data_dir`'s keys) into `out`, from one read snapshot,
/// encrypted to `recipients` when there are any. Blocking: run it off the async runtime.
///
/// Errors: storage failures, and I/O on `out` (a closed admin client, a full disk).
pub fn write_blocking<W: Write>(
    store: &Store,
    data_dir: &Path,
    recipients: &[Recipient],
    now: DateTime<Utc>,
    out: W,
) -> Result<Summary, Error> {
    let started = Instant::now();
    let out = Counting {
        inner: out,
        hasher: blake3::Hasher::new(),
        bytes: 0,
    };
    let (out, manifest, counts, body) = if recipients.is_empty() {
        write_plain(store, data_dir, now, out)?
    } else {
        let enc = crypt::encrypt(out, recipients)?;
        let (enc, manifest, counts, body) = write_plain(store, data_dir, now, enc)?;
        let out = enc
            .finish()
            .map_err(|e| Error::io(Path::new("(output)"), e))?;
        (out, manifest, counts, body)
    };
    let mut out = out;
    out.flush()
        .map_err(|e| Error::io(Path::new("(output)"), e))?;
    Ok(Summary {
        manifest,
        counts,
        bytes: out.bytes,
        file_blake3: out.hasher.finalize().to_hex().to_string(),
        body_blake3: hex::encode(body),
        recipients: recipients.len(),
        millis: started.elapsed().as_millis() as u64,
    })
}

fn write_plain<W: Write>(
    store: &Store,
    data_dir: &Path,
    now: DateTime<Utc>,
    out: W,
) -> Result<(W, Manifest, Counts, [u8; 32]), Error> {
    let out_err = |e: std::io::Error| Error::io(Path::new("(output)"), e);
    store.read_blocking(|r| {
        let manifest = Manifest {
            format: format::FORMAT,
            created_at: now,
            tenantry_version: env!("CARGO_PKG_VERSION").to_string(),
            schema_version: store::schema_version(r)?,
            install_id: store::meta_get(r, "install_id")?
                .and_then(|b| Uuid::from_slice(&b).ok())
                .map(|u| u.to_string()),
            install_key_id: store::meta_get(r, "install_key_id")?
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
            chains: r.len(ledger::HEADS)?,
            platform_head_seq: ledger::head(r, &ChainId::Platform)
                .map_err(Error::Domain)?
                .map_or(0, |audit::model::HeadRecord::V1 { seq, .. }| seq),
        };
        // Read inside the snapshot's lifetime, so keys and rows are taken together.
        let files = data_files(data_dir)?;
        let mut w = format::Writer::start(out, &manifest).map_err(out_err)?;
        for (path, bytes) in &files {
            w.file(path, bytes).map_err(out_err)?;
        }
        snapshot::dump(r, &mut |item| match item {
            snapshot::Item::Table(name) => w.table(name).map_err(out_err),
            snapshot::Item::Row(k, v) => w.row(k, v).map_err(out_err),
        })?;
        let (out, counts, body) = w.finish().map_err(out_err)?;
        Ok((out, manifest, counts, body))
    })
}

/// Writes a backup into the new file `path` (0600): into `path.partial`, synced, then renamed,
/// so a crash never leaves a half file under the final name.
///
/// Errors: [`Error::Exists`] when `path` exists; I/O; storage.
pub fn write_file(
    store: &Store,
    data_dir: &Path,
    recipients: &[Recipient],
    now: DateTime<Utc>,
    path: &Path,
) -> Result<Summary, Error> {
    if path.exists() {
        return Err(Error::Exists {
            path: path.display().to_string(),
        });
    }
    let partial = partial_path(path);
    let _ = std::fs::remove_file(&partial);
    let file = create_private(&partial)?;
    let result = write_blocking(
        store,
        data_dir,
        recipients,
        now,
        std::io::BufWriter::new(&file),
    )
    .and_then(|s| {
        file.sync_all().map_err(|e| Error::io(&partial, e))?;
        std::fs::rename(&partial, path).map_err(|e| Error::io(path, e))?;
        sync_parent(path);
        Ok(s)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// `FILE.partial`.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

/// Creates a new owner-only file.
pub fn create_private(path: &Path) -> Result<std::fs::File, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, format!("cannot create: {e}")))
}

/// fsyncs the directory holding `path`, so a rename survives a crash (best effort).
pub fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
    {
        let _ = d.sync_all();
    }
}

/// Stores the record of a backup and its `backup.created.v1` entry in one write request.
pub async fn record(
    store: &Store,
    now: DateTime<Utc>,
    actor: Actor,
    summary: &Summary,
    trigger: Trigger,
    file: Option<String>,
) -> crate::error::Result<()> {
    let file_blake3: [u8; 32] = hex::decode(&summary.file_blake3)
        .ok()
        .and_then(|b| b.try_into().ok())
        .unwrap_or_default();
    let rec = BackupRecord::V1 {
        created_at: to_micros(summary.manifest.created_at),
        file: file.clone(),
        bytes: summary.bytes,
        file_blake3,
        recipients: summary.recipients as u32,
        trigger,
        platform_head_seq: summary.manifest.platform_head_seq,
        rows: summary.counts.rows,
    };
    let data = json!({
        "file": file,
        "bytes": summary.bytes,
        "file_blake3": summary.file_blake3,
        "encrypted": summary.recipients > 0,
        "recipients": summary.recipients,
        "trigger": trigger.as_str(),
        "snapshot_at": crate::clock::rfc3339_micros(summary.manifest.created_at),
        "platform_head_seq": summary.manifest.platform_head_seq,
        "rows": summary.counts.rows,
    });
    let nonce = crate::ids::new_id(now);
    let key = Key::new()
        .i64(to_micros(summary.manifest.created_at))
        .uuid(&nonce)
        .into_bytes();
    let target = Target::new("backup", file.as_deref().unwrap_or("admin-stream"));
    store
        .write(now, actor, move |ctx| {
            ctx.put_record(BACKUPS, &key, &rec)?;
            prune_records(ctx)?;
            ledger::append(
                ctx,
                &ChainId::Platform,
                "backup.created.v1",
                &target,
                data.clone(),
            )?;
            Ok(())
        })
        .await
}

fn prune_records(ctx: &mut WriteCtx<'_>) -> crate::error::Result<()> {
    let mut old = Vec::new();
    let mut n = 0usize;
    ctx.scan(BACKUPS, &Range::all(), Dir::Desc, &mut |k, _| {
        n += 1;
        if n > RECORDS_KEPT {
            old.push(k.to_vec());
        }
        Ok(ControlFlow::Continue(()))
    })?;
    for k in old {
        ctx.delete(BACKUPS, &k)?;
    }
    Ok(())
}

/// The backup history, newest first, as JSON items for `backup list`.
pub fn history(r: &impl Reader, limit: usize) -> crate::error::Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    r.scan(BACKUPS, &Range::all(), Dir::Desc, &mut |_, v| {
        let BackupRecord::V1 {
            created_at,
            file,
            bytes,
            file_blake3,
            recipients,
            trigger,
            platform_head_seq,
            rows,
        } = codec::decode(BACKUPS.name(), v)?;
        out.push(json!({
            "created_at": from_micros(created_at),
            "file": file,
            "bytes": bytes,
            "file_blake3": hex::encode(file_blake3),
            "encrypted": recipients > 0,
            "recipients": recipients,
            "trigger": trigger,
            "platform_head_seq": platform_head_seq,
            "rows": rows,
        }));
        Ok(if out.len() >= limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })?;
    Ok(out)
}

/// The configured recipients plus `extra` (as given on the command line), parsed.
///
/// Errors: 422 `validation_failed` naming a bad recipient.
pub fn recipients(state: &AppState, extra: &[String]) -> crate::error::Result<Vec<Recipient>> {
    let mut all = state.config().backup.recipients.clone();
    for r in extra {
        all.push(Recipient::parse(r)?);
    }
    Ok(all)
}

/// Streams a backup of the running store (admin socket `backup_create`), then records it. The
/// stream ends with an error item when anything fails, and the record is written only once
/// every byte was handed to the receiver.
///
/// Errors: 422 for a bad recipient (before anything is streamed).
pub async fn stream(
    state: &AppState,
    extra_recipients: &[String],
) -> crate::error::Result<tokio::sync::mpsc::Receiver<crate::error::Result<Bytes>>> {
    let recipients = recipients(state, extra_recipients)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<crate::error::Result<Bytes>>(8);
    let state = state.clone();
    tokio::spawn(async move {
        let now = state.clock().now();
        let store = state.store().clone();
        let data_dir = state.config().data_dir.clone();
        let sink = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let written = tokio::task::spawn_blocking(move || {
            write_blocking(&store, &data_dir, &recipients, now, sink)
        })
        .await;
        let result = match written {
            Ok(Ok(summary)) => {
                if summary.recipients == 0 {
                    tracing::warn!(
                        "backup streamed UNENCRYPTED to the admin client; it holds the install's signing key"
                    );
                }
                record(
                    state.store(),
                    state.clock().now(),
                    Actor::system("admin"),
                    &summary,
                    Trigger::Manual,
                    None,
                )
                .await
            }
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(crate::error::Error::Internal(format!(
                "backup task failed: {e}"
            ))),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "backup to the admin client failed");
            let _ = tx.send(Err(e)).await;
        }
    });
    Ok(rx)
}

const CHUNK: usize = 64 * 1024;

/// A blocking `Write` that sends 64 KiB chunks into a channel; fails once the receiver is gone.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<crate::error::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the admin client went away")
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(buf);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// The `backup_daily` job: writes `tenantry-daily-<time>.tbk[.age]` into the backup dir, keeps
/// the newest `backup.keep` daily files, and records the backup. Returns the run's summary.
///
/// Errors: I/O in the backup dir, storage.
pub async fn daily(state: &AppState, now: DateTime<Utc>) -> crate::error::Result<String> {
    let cfg = state.config().backup.clone();
    let data_dir = state.config().data_dir.clone();
    let dir = cfg.dir(&data_dir);
    let encrypted = !cfg.recipients.is_empty();
    let name = format!(
        "{DAILY_PREFIX}{}.tbk{}",
        now.format("%Y%m%dT%H%M%S%.3fZ"),
        if encrypted { ".age" } else { "" }
    );
    let store = state.store().clone();
    let (summary, removed) = {
        let dir = dir.clone();
        let name = name.clone();
        tokio::task::spawn_blocking(move || -> Result<(Summary, Vec<String>), Error> {
            store::ensure_private_dir(&dir)?;
            let summary = write_file(&store, &data_dir, &cfg.recipients, now, &dir.join(&name))?;
            let removed = rotate(&dir, cfg.keep)?;
            Ok((summary, removed))
        })
        .await
        .map_err(|e| crate::error::Error::Internal(format!("backup task failed: {e}")))??
    };
    record(
        state.store(),
        now,
        Actor::system("job:backup_daily"),
        &summary,
        Trigger::Daily,
        Some(name.clone()),
    )
    .await?;
    let mut line = format!(
        "wrote {} ({}, {} rows, {} ms), {}; removed {} old backup{}",
        dir.join(&name).display(),
        human_bytes(summary.bytes),
        summary.counts.rows,
        summary.millis,
        if encrypted {
            format!(
                "encrypted to {} recipient{}",
                summary.recipients,
                if summary.recipients == 1 { "" } else { "s" }
            )
        } else {
            "NOT encrypted (set backup.recipients: it holds the install's signing key)".into()
        },
        removed.len(),
        if removed.len() == 1 { "" } else { "s" }
    );
    if !encrypted {
        tracing::warn!(file = %name, "daily backup written unencrypted; configure backup.recipients");
        line.push_str(" [unencrypted]");
    }
    Ok(line)
}

/// Deletes all but the newest `keep` daily backups of `dir`; returns the names removed.
fn rotate(dir: &Path, keep: usize) -> Result<Vec<String>, Error> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(DAILY_PREFIX) && (n.ends_with(".tbk") || n.ends_with(".tbk.age")))
        .collect();
    // The names carry a sortable UTC time after the prefix.
    names.sort();
    let excess = names.len().saturating_sub(keep);
    let removed: Vec<String> = names.into_iter().take(excess).collect();
    for n in &removed {
        std::fs::remove_file(dir.join(n)).map_err(|e| Error::io(&dir.join(n), e))?;
    }
    Ok(removed)
}

/// `1.2 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A loaded copy of a backup, in a staging directory: its store is open.
pub struct Loaded {
    /// The manifest.
    pub manifest: Manifest,
    /// What it held.
    pub counts: Counts,
    /// The plain body's checksum (hex).
    pub body_blake3: String,
    /// Was the file encrypted?
    pub encrypted: bool,
    /// The staging directory holding `tenantry.redb` and `keys/`.
    pub dir: PathBuf,
    /// The store, open on `dir`.
    pub store: Store,
    /// The install key from the backup.
    pub key: std::sync::Arc<audit::signing::InstallKey>,
    /// Every chain's report, walked from seq 1.
    pub reports: Vec<ChainReport>,
}

/// Reads `file` into the new directory `dir` (data file and keys), checks the checksum and the
/// key, opens the store and verifies every chain from seq 1.
///
/// Errors: every refusal of a bad backup (corrupt, truncated, wrong key, newer format or
/// schema, a key that is not the store's, broken chains); I/O; storage.
pub async fn load(file: &Path, ids: &Identities, dir: &Path) -> Result<Loaded, Error> {
    let (file_s, dir_buf) = (file.to_path_buf(), dir.to_path_buf());
    let opened = crypt::open(file, ids)?;
    let encrypted = opened.encrypted;
    let (manifest, counts, body) =
        tokio::task::spawn_blocking(move || load_blocking(&file_s, opened.reader, &dir_buf))
            .await
            .map_err(|e| Error::io(file, format!("load task failed: {e}")))??;
    let path = file.display().to_string();
    if manifest.schema_version > store::SCHEMA_VERSION {
        return Err(Error::TooNew {
            path,
            what: "schema version",
            found: manifest.schema_version,
            supported: store::SCHEMA_VERSION,
        });
    }
    let store = Store::open(dir)?;
    let key =
        audit::signing::InstallKey::load_or_create(dir, false).map_err(|e| Error::Corrupt {
            path: path.clone(),
            detail: format!("it holds no usable install key: {e}"),
        })?;
    let expected = store
        .read(|r| store::meta_get(r, "install_key_id"))
        .await?
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    if let Some(expected) = expected
        && expected != key.key_id()
    {
        store.close().await;
        return Err(Error::KeyMismatch {
            path,
            found: key.key_id().to_string(),
            expected,
        });
    }
    let key = std::sync::Arc::new(key);
    let reports = audit::verify(&store, &key, None, Mode::Full).await?;
    Ok(Loaded {
        manifest,
        counts,
        body_blake3: hex::encode(body),
        encrypted,
        dir: dir.to_path_buf(),
        store,
        key,
        reports,
    })
}

fn load_blocking(
    file: &Path,
    reader: Box<dyn std::io::Read + Send>,
    dir: &Path,
) -> Result<(Manifest, Counts, [u8; 32]), Error> {
    let path = file.display().to_string();
    store::ensure_private_dir(dir)?;
    let mut loader = Loader::create(&dir.join(store::DATA_FILE))?;
    let result = format::read::<Error>(reader, &mut |item| match item {
        format::Item::File(rel, bytes) => put_data_file(dir, rel, bytes),
        format::Item::Table(name) => loader.table(name).map_err(Error::from),
        format::Item::Row(k, v) => loader.row(k, v).map_err(Error::from),
    });
    match result {
        Ok(done) => {
            loader.finish()?;
            Ok(done)
        }
        Err(format::ReadError::Visit(e)) => Err(e),
        Err(format::ReadError::TooNew(found)) => Err(Error::TooNew {
            path,
            what: "format",
            found,
            supported: format::FORMAT,
        }),
        Err(format::ReadError::Corrupt(detail)) if detail.starts_with("it does not start") => {
            Err(Error::NotABackup { path, detail })
        }
        Err(format::ReadError::Corrupt(detail)) => Err(Error::Corrupt { path, detail }),
    }
}

/// Writes a data-dir file from a backup, refusing paths outside `keys/`.
fn put_data_file(dir: &Path, rel: &str, bytes: &[u8]) -> Result<(), Error> {
    let mut parts = rel.split('/');
    let (Some(KEYS_DIR), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Error::Corrupt {
            path: rel.to_string(),
            detail: "a file outside keys/".into(),
        });
    };
    if name.is_empty() || name == "." || name == ".." {
        return Err(Error::Corrupt {
            path: rel.to_string(),
            detail: "a bad file name".into(),
        });
    }
    let keys = dir.join(KEYS_DIR);
    store::ensure_private_dir(&keys)?;
    let path = keys.join(name);
    let mut f = create_private(&path)?;
    f.write_all(bytes).map_err(|e| Error::io(&path, e))?;
    f.sync_all().map_err(|e| Error::io(&path, e))
}

/// The first broken chain of `reports`, as an error.
pub fn broken(path: &Path, reports: &[ChainReport]) -> Option<Error> {
    let bad: Vec<&ChainReport> = reports.iter().filter(|r| !r.ok).collect();
    let first = bad.first()?;
    Some(Error::ChainsBroken {
        path: path.display().to_string(),
        broken: bad.len(),
        chain: first.chain.clone(),
        seq: first.first_bad_seq.unwrap_or(0),
        problem: first.problem.clone().unwrap_or_default(),
    })
}

/// A private scratch directory under the system temp dir, removed on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    /// Creates `$TMPDIR/tenantry-<what>-<random>` (0700).
    pub fn new(what: &str) -> Result<Scratch, Error> {
        let mut raw = [0u8; 8];
        getrandom::fill(&mut raw).map_err(|e| Error::io(Path::new("(random)"), e))?;
        let dir = std::env::temp_dir().join(format!("tenantry-{what}-{}", hex::encode(raw)));
        std::fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        store::ensure_private_dir(&dir)?;
        Ok(Scratch(dir))
    }
    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What `backup verify` found.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    /// The manifest.
    pub manifest: Manifest,
    /// What the backup holds.
    pub counts: Counts,
    /// Checksum of the plain body.
    pub body_blake3: String,
    /// Was it encrypted?
    pub encrypted: bool,
    /// Every chain, walked from seq 1.
    pub chains: Vec<ChainReport>,
}

/// `tenantry backup verify`: loads `file` into a scratch directory and verifies it there.
///
/// Errors: as [`load`], plus [`Error::ChainsBroken`].
pub async fn verify_file(file: &Path, ids: &Identities) -> Result<VerifyReport, Error> {
    let scratch = Scratch::new("verify")?;
    let loaded = load(file, ids, &scratch.path().join("data")).await;
    let loaded = loaded?;
    loaded.store.close().await;
    let report = VerifyReport {
        manifest: loaded.manifest,
        counts: loaded.counts,
        body_blake3: loaded.body_blake3,
        encrypted: loaded.encrypted,
        chains: loaded.reports,
    };
    drop(loaded.store);
    if let Some(e) = broken(file, &report.chains) {
        return Err(e);
    }
    Ok(report)
}

/// What `backup restore` did.
#[derive(Debug, Serialize)]
pub struct RestoreReport {
    /// The backup's manifest.
    pub manifest: Manifest,
    /// What it held.
    pub counts: Counts,
    /// Chains verified.
    pub chains: usize,
    /// Where the replaced data file and keys went (with `--force`).
    pub replaced: Option<PathBuf>,
}

/// `tenantry backup restore`: refuses a running server and (without `force`) a non-empty data
/// dir; loads and verifies the backup in a staging directory inside `data_dir`; records the
/// restore on the platform chain; then moves the data file and keys into place (with `force`,
/// the old ones are moved into `replaced-<time>/`, never deleted).
///
/// Errors: as [`load`]; [`Error::ServerRunning`], [`Error::DataDirNotEmpty`].
pub async fn restore(
    file: &Path,
    ids: &Identities,
    data_dir: &Path,
    force: bool,
    now: DateTime<Utc>,
) -> Result<RestoreReport, Error> {
    let shown = data_dir.display().to_string();
    if matches!(
        crate::admin::socket::request(data_dir, &crate::admin::AdminRequest::Ping).await,
        Ok(Some(_))
    ) {
        return Err(Error::ServerRunning { path: shown });
    }
    let occupied = match std::fs::read_dir(data_dir) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(Error::io(data_dir, e)),
    };
    if occupied && !force {
        return Err(Error::DataDirNotEmpty { path: shown });
    }
    store::ensure_private_dir(data_dir)?;
    let stamp = now.format("%Y%m%dT%H%M%SZ").to_string();
    let staging = data_dir.join(format!(".restore-{stamp}"));
    let _ = std::fs::remove_dir_all(&staging);
    let result = restore_staged(file, ids, data_dir, &staging, occupied, &stamp, now).await;
    let _ = std::fs::remove_dir_all(&staging);
    result
}

async fn restore_staged(
    file: &Path,
    ids: &Identities,
    data_dir: &Path,
    staging: &Path,
    occupied: bool,
    stamp: &str,
    now: DateTime<Utc>,
) -> Result<RestoreReport, Error> {
    let loaded = load(file, ids, staging).await?;
    if let Some(e) = broken(file, &loaded.reports) {
        loaded.store.close().await;
        return Err(e);
    }
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let data = json!({
        "file": name,
        "body_blake3": loaded.body_blake3,
        "snapshot_at": crate::clock::rfc3339_micros(loaded.manifest.created_at),
        "platform_head_seq": loaded.manifest.platform_head_seq,
        "written_by": loaded.manifest.tenantry_version,
        "restored_by": env!("CARGO_PKG_VERSION"),
    });
    loaded
        .store
        .write(now, Actor::system("restore"), move |ctx| {
            ledger::append(
                ctx,
                &ChainId::Platform,
                "backup.restored.v1",
                &Target::new("backup", &name),
                data.clone(),
            )?;
            Ok::<_, crate::error::Error>(())
        })
        .await?;
    loaded.store.close().await;
    let Loaded {
        manifest,
        counts,
        reports,
        store,
        ..
    } = loaded;
    drop(store);

    let data_file = data_dir.join(store::DATA_FILE);
    let keys = data_dir.join(KEYS_DIR);
    let mut replaced = None;
    if occupied {
        let aside = data_dir.join(format!("replaced-{stamp}"));
        for p in [&data_file, &keys] {
            if p.exists() {
                store::ensure_private_dir(&aside)?;
                let to = aside.join(p.file_name().unwrap_or_default());
                std::fs::rename(p, &to).map_err(|e| Error::io(p, e))?;
                replaced = Some(aside.clone());
            }
        }
    }
    std::fs::rename(staging.join(store::DATA_FILE), &data_file)
        .map_err(|e| Error::io(&data_file, e))?;
    std::fs::rename(staging.join(KEYS_DIR), &keys).map_err(|e| Error::io(&keys, e))?;
    sync_parent(&data_file);
    chown_like_dir(data_dir, &[&data_file, &keys])?;
    Ok(RestoreReport {
        manifest,
        counts,
        chains: reports.len(),
        replaced,
    })
}

/// When root restores into a data dir owned by another user (the service's), gives the restored
/// files to that user, so the service can open them.
fn chown_like_dir(data_dir: &Path, paths: &[&Path]) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(data_dir).map_err(|e| Error::io(data_dir, e))?;
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX);
    if me != 0 || meta.uid() == 0 {
        return Ok(());
    }
    let (uid, gid) = (Some(meta.uid()), Some(meta.gid()));
    for p in paths {
        std::os::unix::fs::chown(p, uid, gid).map_err(|e| Error::io(p, e))?;
        if p.is_dir() {
            for entry in std::fs::read_dir(p).map_err(|e| Error::io(p, e))?.flatten() {
                std::os::unix::fs::chown(entry.path(), uid, gid)
                    .map_err(|e| Error::io(&entry.path(), e))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_the_newest_daily_files_and_nothing_else_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "tenantry-daily-20261101T023000.000Z.tbk",
            "tenantry-daily-20261102T023000.000Z.tbk.age",
            "tenantry-daily-20261103T023000.000Z.tbk",
            "tenantry-premigrate-v1-to-v2-20261101T000000Z.tbk",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        let removed = rotate(dir.path(), 2).unwrap();
        assert_eq!(removed, ["tenantry-daily-20261101T023000.000Z.tbk"]);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left.len(), 4, "{left:?}");
    }

    #[test]
    fn a_backup_file_cannot_write_outside_keys() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../x", "keys/../../x", "tenantry.redb", "keys/", "keys/a/b"] {
            assert!(put_data_file(dir.path(), bad, b"x").is_err(), "{bad}");
        }
        put_data_file(dir.path(), "keys/install.ed25519", b"x").unwrap();
    }
}
