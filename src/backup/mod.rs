//! Online backups, their verification, and offline restore.
//!
//! - [`format`]: the file format (magic, zstd body of tables and rows, BLAKE3 checksum).
//! - [`crypt`]: age encryption, recipients and identity files.
//! - `create`: writing a backup (file, admin-socket stream, the `backup_daily` job).
//! - `restore`: loading one into a staging dir, `verify`, offline `restore`.
//! - [`cli`]: `tenantry backup create | verify | restore | list`.
//! - here: configuration, errors, the backup records and their audit entry.
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
mod create;
pub mod crypt;
pub mod format;
mod restore;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::actor::Actor;
use crate::audit::ledger;
use crate::audit::{ChainId, Target};
use crate::clock::{from_micros, to_micros};
use crate::store::keys::Key;
use crate::store::{self, Dir, Range, Reader, Store, Table, WriteCtx, codec};
pub use create::{daily, recipients, stream, write_blocking, write_file};
pub use crypt::{Identities, Recipient};
pub use format::{Counts, Manifest};
pub use restore::{
    Loaded, RestoreReport, Scratch, VerifyReport, broken, load, restore, verify_file,
};

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
