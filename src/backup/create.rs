//! Writing backups: from one read snapshot into a file, into the admin socket's stream, or by
//! the `backup_daily` job (with rotation).

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    Counts, DAILY_PREFIX, Error, KEYS_DIR, Manifest, Recipient, Summary, Trigger, create_private,
    crypt, format, human_bytes, partial_path, record, sync_parent,
};
use crate::actor::Actor;
use crate::audit::{self, ChainId, ledger};
use crate::state::AppState;
use crate::store::snapshot;
use crate::store::{self, Reader, Store};

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

/// Writes a backup of `store` (and, when `include_keys`, `data_dir`'s keys; otherwise only the
/// install key's public key, in the manifest) into `out`, from one read snapshot, encrypted to
/// `recipients` when there are any. Blocking: run it off the async runtime.
///
/// Errors: storage failures, and I/O on `out` (a closed admin client, a full disk).
pub fn write_blocking<W: Write>(
    store: &Store,
    data_dir: &Path,
    recipients: &[Recipient],
    include_keys: bool,
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
        write_plain(store, data_dir, include_keys, now, out)?
    } else {
        let enc = crypt::encrypt(out, recipients)?;
        let (enc, manifest, counts, body) = write_plain(store, data_dir, include_keys, now, enc)?;
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
        keys_included: include_keys,
        millis: started.elapsed().as_millis() as u64,
    })
}

fn write_plain<W: Write>(
    store: &Store,
    data_dir: &Path,
    include_keys: bool,
    now: DateTime<Utc>,
    out: W,
) -> Result<(W, Manifest, Counts, [u8; 32]), Error> {
    let out_err = |e: std::io::Error| Error::io(Path::new("(output)"), e);
    // Without the keys, the public half of the install key goes into the manifest, so that
    // `backup verify` can still check the checkpoints' signatures.
    let install_public_key = if include_keys {
        None
    } else {
        match crate::audit::signing::InstallKey::load_or_create(data_dir, false) {
            Ok(key) => Some(key.public_b64()),
            Err(e) => {
                return Err(Error::io(
                    &crate::audit::signing::InstallKey::path(data_dir),
                    e,
                ));
            }
        }
    };
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
            install_public_key,
        };
        // Read inside the snapshot's lifetime, so keys and rows are taken together.
        let files = if include_keys {
            data_files(data_dir)?
        } else {
            Vec::new()
        };
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
    include_keys: bool,
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
        include_keys,
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
/// every byte was handed to the receiver. Without any recipient (configured or extra) it is
/// written only when `plaintext` is set.
///
/// Errors (before anything is streamed): 422 for a bad recipient; 403 `backup_unencrypted`
/// when there is no recipient and `plaintext` is not set.
pub async fn stream(
    state: &AppState,
    extra_recipients: &[String],
    plaintext: bool,
) -> crate::error::Result<tokio::sync::mpsc::Receiver<crate::error::Result<Bytes>>> {
    let recipients = recipients(state, extra_recipients)?;
    let include_keys = state.config().backup.include_keys;
    if recipients.is_empty() && !plaintext {
        return Err(super::unencrypted_refused(
            "pass --recipient age1... or set [backup] recipients, or pass --plaintext to write it unencrypted anyway",
        ));
    }
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
            write_blocking(&store, &data_dir, &recipients, include_keys, now, sink)
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

/// The `backup_daily` job: writes `tenantry-daily-<time>.tbk.age` into the backup dir, keeps
/// the newest `backup.keep` daily files, and records the backup. Returns the run's summary.
///
/// Errors: 403 `backup_unencrypted` (nothing written) while `[backup] recipients` is empty: the
/// job never writes an unencrypted backup (the dashboard's Backups tile is red meanwhile); I/O
/// in the backup dir, storage.
pub async fn daily(state: &AppState, now: DateTime<Utc>) -> crate::error::Result<String> {
    let cfg = state.config().backup.clone();
    let data_dir = state.config().data_dir.clone();
    let dir = cfg.dir(&data_dir);
    if cfg.recipients.is_empty() {
        return Err(super::unencrypted_refused(
            "set [backup] recipients (age public keys) in the config file for backup_daily to run",
        ));
    }
    let name = format!("{DAILY_PREFIX}{}.tbk.age", now.format("%Y%m%dT%H%M%S%.3fZ"));
    let store = state.store().clone();
    let (summary, removed) = {
        let dir = dir.clone();
        let name = name.clone();
        tokio::task::spawn_blocking(move || -> Result<(Summary, Vec<String>), Error> {
            store::ensure_private_dir(&dir)?;
            let summary = write_file(
                &store,
                &data_dir,
                &cfg.recipients,
                cfg.include_keys,
                now,
                &dir.join(&name),
            )?;
            let removed = rotate(&dir, cfg.keep)?;
            Ok((summary, removed))
        })
        .await
        .map_err(|e| crate::error::Error::Internal(format!("backup task failed: {e}")))??
    };
    record(
        state.store(),
        now,
        Actor::job("backup_daily"),
        &summary,
        Trigger::Daily,
        Some(name.clone()),
    )
    .await?;
    Ok(format!(
        "wrote {} ({}, {} rows, {} ms), encrypted to {} recipient{}; removed {} old backup{}",
        dir.join(&name).display(),
        human_bytes(summary.bytes),
        summary.counts.rows,
        summary.millis,
        summary.recipients,
        if summary.recipients == 1 { "" } else { "s" },
        removed.len(),
        if removed.len() == 1 { "" } else { "s" }
    ))
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
}
