//! Online backups, their verification, and offline restore.
//!
//! - [`format`]: the file format (magic, zstd body of tables and rows, BLAKE3 checksum).
//! - [`crypt`]: age encryption, recipients and identity files.
//! - `create`: writing a backup (file, admin-socket stream, the `backup_daily` job).
//! - `restore`: loading one into a staging dir, `verify`, offline `restore`, and `compact`
//!   (offline compaction of the data file, which a backup's long read can make grow).
//! - [`cli`]: `tenantry backup create | verify | restore | list`.
//! - here: configuration, errors, the backup records and their audit entry.
//!
//! A backup is one read snapshot of the store (every table, every row: [`store::snapshot`])
//! plus every file under `DATA_DIR/keys/`. The install key belongs in it: the store records the
//! key's id and refuses to start with another key, and checkpoints are signed with it, so a
//! restore without it could neither start nor extend its chains. `[backup] include_keys = false`
//! leaves the keys out (the manifest then carries the install key's public key, so `verify`
//! still checks every signature), and `restore` then needs `--keys-from` the original `keys/`. That makes an unencrypted
//! backup as sensitive as the data dir itself, so backups are age-encrypted to the configured
//! recipients, and an unencrypted one is refused ([`UNENCRYPTED`]) unless asked for by name
//! (`backup create --plaintext`); the daily job has no such switch and needs recipients.
//!
//! Taking a backup is recorded: a row in `backups` (the history `backup list` shows) and the
//! platform-chain entry `backup.created.v1`, in one write after the file is complete. The backup
//! itself changes no platform state, but it copies the install's signing key out of the data
//! dir, which an auditor needs to see. The snapshot therefore never holds its own entry.

pub mod config;
mod create;
pub mod crypt;
pub mod error;
pub mod format;
mod restore;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::actor::Actor;
use crate::audit::ledger::{Audit, Subject};
use crate::clock::{from_micros, to_micros};
use crate::store::keys::Key;
use crate::store::{Dir, Range, Reader, Store, Table, WriteCtx, codec};
pub use config::BackupConfig;
pub use create::{daily, recipients, stream, write_blocking, write_file};
pub use crypt::{Identities, Recipient};
pub use error::Error;
pub use format::{Counts, Manifest};
pub use restore::{
    Loaded, RestoreReport, Scratch, VerifyReport, broken, compact, load, restore, verify_file,
};

/// Backups' share of the composition: the events they write (a backup copies the signing key,
/// a restore rewinds history; both are on the platform chain).
pub const CONTEXT: crate::http::context::Context = crate::http::context::Context {
    name: "backup",
    events: &["backup.created.v1", "backup.restored.v1"],
    ..crate::http::context::Context::EMPTY
};

/// Stable code (403) of a backup refused because it would be written unencrypted: no recipient
/// is configured or given, and `--plaintext` was not (issue 12, finding 7).
pub const UNENCRYPTED: &str = "backup_unencrypted";

/// The refusal of an unencrypted backup; `what` names the way out.
pub(crate) fn unencrypted_refused(what: &str) -> crate::error::Error {
    crate::error::Error::denied(
        UNENCRYPTED,
        format!(
            "refusing to write an unencrypted backup: it holds the install's private signing key; {what}"
        ),
    )
}

/// History of backups taken: `(created micros, nonce) -> BackupRecord`.
pub const BACKUPS: Table = Table::new("backups");
/// Records kept in [`BACKUPS`]; older ones are pruned.
const RECORDS_KEPT: usize = 1000;
/// Directory of data-dir files a backup carries.
const KEYS_DIR: &str = "keys";
/// Prefix of the daily job's files, which rotation may delete (never other files).
const DAILY_PREFIX: &str = "tenantry-daily-";

/// How a backup was started (`trigger` in its record and audit entry).
///
/// REMEMBER: the variant order is the file format (stored in backup records): never reorder;
/// add at the end (`disk_format_codes_are_pinned` checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Trigger {
    /// `tenantry backup create` (admin socket, or directly on a stopped store).
    Manual = 0,
    /// The `backup_daily` job.
    Daily = 1,
    /// Taken by a schema migration before it changed anything.
    PreMigration = 2,
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
    /// Did it copy the private keys of `keys/` (`backup.include_keys`)?
    pub keys_included: bool,
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
        "keys_included": summary.keys_included,
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
    let subject = Subject::platform("backup", file.as_deref().unwrap_or("admin-stream"));
    store
        .write(now, actor, move |ctx| {
            ctx.put_record(BACKUPS, &key, &rec)?;
            prune_records(ctx)?;
            ctx.audit("backup.created.v1", &subject, data.clone())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_format_codes_are_pinned() {
        for (t, code) in [
            (Trigger::Manual, 0u8),
            (Trigger::Daily, 1),
            (Trigger::PreMigration, 2),
        ] {
            assert_eq!(codec::encode(&t).unwrap(), [code], "{t:?}");
        }
    }
}
