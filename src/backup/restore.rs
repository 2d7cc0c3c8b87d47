//! Reading backups back: loading one into a staging directory (checksum, key, every chain),
//! `backup verify` in a scratch directory, and offline `backup restore`.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::{
    Counts, Error, Identities, KEYS_DIR, Manifest, create_private, crypt, format, sync_parent,
};
use crate::actor::Actor;
use crate::audit::ledger::{Audit, Subject};
use crate::audit::{self, ChainReport};
use crate::store::snapshot::Loader;
use crate::store::{self, Store};

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
    /// `key_id` of the install key the chains were verified with.
    pub key_id: String,
    /// Does `dir/keys/` hold the private install key (from the backup, or from `keys_from`)?
    /// `false` for a backup taken with `backup.include_keys = false` and loaded without
    /// `keys_from`: it verifies with the public key in its manifest, but cannot be restored.
    pub has_private_key: bool,
    /// Every chain's report, walked from seq 1.
    pub reports: Vec<ChainReport>,
}

/// Reads `file` into the new directory `dir` (data file and keys), checks the checksum and the
/// key, opens the store and verifies every chain from seq 1. A backup without keys (taken with
/// `backup.include_keys = false`) takes them from `keys_from` (every file of that directory is
/// copied into `dir/keys/`), or else is verified with the public key its manifest carries.
///
/// Errors: every refusal of a bad backup (corrupt, truncated, wrong key, newer format or
/// schema, a key that is not the store's, broken chains); [`Error::KeysIncluded`] when
/// `keys_from` is given for a backup that carries keys; I/O; storage.
pub async fn load(
    file: &Path,
    ids: &Identities,
    dir: &Path,
    keys_from: Option<&Path>,
) -> Result<Loaded, Error> {
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
    let carried = audit::signing::InstallKey::path(dir).exists();
    if let Some(from) = keys_from {
        if carried {
            return Err(Error::KeysIncluded { path });
        }
        copy_keys(from, &dir.join(KEYS_DIR))?;
    }
    let (public, has_private_key) = if carried || keys_from.is_some() {
        let key =
            audit::signing::InstallKey::load_or_create(dir, false).map_err(|e| Error::Corrupt {
                path: path.clone(),
                detail: format!("it holds no usable install key: {e}"),
            })?;
        (key.public(), true)
    } else {
        let public = manifest
            .install_public_key
            .as_deref()
            .and_then(|b64| {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.decode(b64).ok()
            })
            .and_then(|raw| <[u8; 32]>::try_from(raw.as_slice()).ok())
            .and_then(|raw| ed25519_dalek::VerifyingKey::from_bytes(&raw).ok())
            .ok_or_else(|| Error::Corrupt {
                path: path.clone(),
                detail: "it holds no usable install key (no keys/ and no public key)".into(),
            })?;
        (public, false)
    };
    let key_id = audit::signing::key_id_of(&public);
    let store = Store::open(dir)?;
    match verify_loaded(&store, public, &key_id, &path).await {
        Ok(reports) => Ok(Loaded {
            manifest,
            counts,
            body_blake3: hex::encode(body),
            encrypted,
            dir: dir.to_path_buf(),
            store,
            key_id,
            has_private_key,
            reports,
        }),
        Err(e) => {
            store.close().await;
            Err(e)
        }
    }
}

/// Checks that `public` is the key the loaded store records, then verifies every chain with it.
async fn verify_loaded(
    store: &Store,
    public: ed25519_dalek::VerifyingKey,
    key_id: &str,
    path: &str,
) -> Result<Vec<ChainReport>, Error> {
    let expected = store
        .read(|r| store::meta_get(r, "install_key_id"))
        .await?
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    if let Some(expected) = expected
        && expected != key_id
    {
        return Err(Error::KeyMismatch {
            path: path.to_string(),
            found: key_id.to_string(),
            expected,
        });
    }
    let ring = audit::signing::KeyRing::new([public]);
    let reports = store
        .read(move |r| audit::verify::all_full_reports(r, &ring))
        .await?;
    Ok(reports)
}

/// Copies every regular file of `from` (the original `keys/` directory) into `to` (0600).
///
/// Errors: [`Error::Io`] when `from` is unreadable or holds no install key.
fn copy_keys(from: &Path, to: &Path) -> Result<(), Error> {
    if !from.join(audit::signing::INSTALL_KEY_FILE).is_file() {
        return Err(Error::io(
            from,
            format!(
                "no {} here: --keys-from takes a copy of the original data dir's keys/ directory",
                audit::signing::INSTALL_KEY_FILE
            ),
        ));
    }
    store::ensure_private_dir(to)?;
    for entry in std::fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        let src = entry.path();
        if !entry.file_type().map_err(|e| Error::io(&src, e))?.is_file() {
            continue;
        }
        let bytes = std::fs::read(&src).map_err(|e| Error::io(&src, e))?;
        let dst = to.join(entry.file_name());
        let mut f = create_private(&dst)?;
        f.write_all(&bytes).map_err(|e| Error::io(&dst, e))?;
        f.sync_all().map_err(|e| Error::io(&dst, e))?;
    }
    Ok(())
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
        Err(format::ReadError::NotABackup(detail)) => Err(Error::NotABackup { path, detail }),
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
    /// Does it carry the private keys? (`false`: taken with `backup.include_keys = false`;
    /// verified with the public key in its manifest; a restore needs `--keys-from`.)
    pub keys_included: bool,
    /// Every chain, walked from seq 1.
    pub chains: Vec<ChainReport>,
}

/// `tenantry backup verify`: loads `file` into a scratch directory and verifies it there.
///
/// Errors: as [`load`], plus [`Error::ChainsBroken`].
pub async fn verify_file(file: &Path, ids: &Identities) -> Result<VerifyReport, Error> {
    let scratch = Scratch::new("verify")?;
    let loaded = load(file, ids, &scratch.path().join("data"), None).await?;
    loaded.store.close().await;
    let report = VerifyReport {
        manifest: loaded.manifest,
        counts: loaded.counts,
        body_blake3: loaded.body_blake3,
        encrypted: loaded.encrypted,
        keys_included: loaded.has_private_key,
        chains: loaded.reports,
    };
    drop(loaded.store);
    if let Some(e) = broken(file, &report.chains) {
        return Err(e);
    }
    Ok(report)
}

/// Does a server answer on `data_dir`'s admin socket?
pub(super) async fn server_answers(data_dir: &Path) -> bool {
    matches!(
        crate::admin::client::request(data_dir, &crate::admin::request::AdminRequest::Ping).await,
        Ok(Some(_))
    )
}

/// `tenantry compact`: compacts the data file of a stopped store in place (redb
/// `Database::compact`), giving back the space a long read (a backup) made the file grow by.
///
/// Errors: [`Error::ServerRunning`] while a server answers on the admin socket or holds redb's
/// lock; [`Error::Io`] when there is no data file; storage failures.
pub async fn compact(data_dir: &Path) -> Result<store::Compacted, Error> {
    let running = || Error::ServerRunning {
        path: data_dir.display().to_string(),
        action: "compact",
    };
    if server_answers(data_dir).await {
        return Err(running());
    }
    let data_file = data_dir.join(store::DATA_FILE);
    if !data_file.is_file() {
        return Err(Error::io(&data_file, "no data file here: check --data-dir"));
    }
    let dir = data_dir.to_path_buf();
    match tokio::task::spawn_blocking(move || store::compact(&dir)).await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(store::Error::Locked { .. })) => Err(running()),
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(Error::io(
            &data_file,
            format!("compaction task failed: {e}"),
        )),
    }
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
/// dir; loads and verifies the backup in a staging directory inside `data_dir` (a backup
/// without keys takes them from `keys_from`); records the restore on the platform chain; then
/// moves the data file and keys into place (with `force`, the old ones are moved into
/// `replaced-<time>/`, never deleted).
///
/// Errors: as [`load`]; [`Error::ServerRunning`], [`Error::DataDirNotEmpty`],
/// [`Error::KeysMissing`] (a backup without keys, and no `keys_from`).
pub async fn restore(
    file: &Path,
    ids: &Identities,
    keys_from: Option<&Path>,
    data_dir: &Path,
    force: bool,
    now: DateTime<Utc>,
) -> Result<RestoreReport, Error> {
    let shown = data_dir.display().to_string();
    let running = || Error::ServerRunning {
        path: shown.clone(),
        action: "restore",
    };
    if server_answers(data_dir).await {
        return Err(running());
    }
    let occupied = match std::fs::read_dir(data_dir) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(Error::io(data_dir, e)),
    };
    if occupied && !force {
        return Err(Error::DataDirNotEmpty {
            path: shown.clone(),
        });
    }
    // Past the refusals that leave the data file untouched (opening it may rewrite its header).
    // The ping is a courtesy; redb's lock is the test (a server whose admin socket is gone still
    // holds it). It is held until the restored file is in place, so no server can start on the
    // old file meanwhile. A data file redb cannot open at all (damaged: a reason to restore) is
    // not held by anyone, so the restore goes on without the lock.
    let _lock = match store::lock_offline(data_dir) {
        Ok(lock) => lock,
        Err(store::Error::Locked { .. }) => return Err(running()),
        Err(e) => {
            tracing::warn!(error = %e, "the current data file cannot be opened; restoring over it");
            None
        }
    };
    store::ensure_private_dir(data_dir)?;
    let staging = data_dir.join(format!(".restore-{}", stamp(now)));
    let _ = std::fs::remove_dir_all(&staging);
    let result = restore_staged(file, ids, keys_from, data_dir, &staging, occupied, now).await;
    let _ = std::fs::remove_dir_all(&staging);
    result
}

fn stamp(now: DateTime<Utc>) -> String {
    now.format("%Y%m%dT%H%M%SZ").to_string()
}

async fn restore_staged(
    file: &Path,
    ids: &Identities,
    keys_from: Option<&Path>,
    data_dir: &Path,
    staging: &Path,
    occupied: bool,
    now: DateTime<Utc>,
) -> Result<RestoreReport, Error> {
    let stamp = stamp(now);
    let loaded = load(file, ids, staging, keys_from).await?;
    if !loaded.has_private_key {
        loaded.store.close().await;
        return Err(Error::KeysMissing {
            path: file.display().to_string(),
            key_id: loaded.key_id,
        });
    }
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
            ctx.audit(
                "backup.restored.v1",
                &Subject::platform("backup", &name),
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
    // The redo log belongs to the data file it was written for: it goes aside with it, or a
    // start on the restored file would replay the old file's batches into it.
    let wal_file = store::wal::wal_path(&data_file);
    let keys = data_dir.join(KEYS_DIR);
    let mut replaced = None;
    if occupied {
        let aside = data_dir.join(format!("replaced-{stamp}"));
        for p in [&data_file, &wal_file, &keys] {
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
    fn a_backup_file_cannot_write_outside_keys() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../x", "keys/../../x", "tenantry.redb", "keys/", "keys/a/b"] {
            assert!(put_data_file(dir.path(), bad, b"x").is_err(), "{bad}");
        }
        put_data_file(dir.path(), "keys/install.ed25519", b"x").unwrap();
    }
}
