//! The integrity check run before the data file is opened for use.
//!
//! redb checks its page checksums only while it recovers from a crash, not on reads: a byte
//! changed on disk (by hand, or by a failing disk) in a table outside the audit ledger would be
//! read as if it had been written. [`check`] runs redb's full check (every page checksum of
//! every table) at open. redb's check also *repairs* what it can (for example by falling back to
//! the previous commit), which would quietly drop the last commit, so it runs over [`Overlay`], a
//! backend that reads the file and keeps every write in memory: the file itself is never
//! changed by the check, and a file that needed any repair is refused.
//!
//! The check reads the whole file, so it is skipped when the file is exactly as a clean close
//! left it: [`Sealed`] writes a seal next to the file (`tenantry.redb.clean`: its length and
//! modification time, in nanoseconds) once the last handle of a store closed with
//! [`super::Store::close`] is gone, and [`open_check`] skips the check only when the seal
//! matches, then removes the seal before anything is written. After a crash, a restore, a
//! compaction or any change to the file by another program the seal is missing or stale, and
//! the check runs. A change that also restores the modification time (`touch -d`) is not caught
//! at open; the audit chains still name a changed entry (`tenantry audit verify`), and
//! `tenantry check` runs the full check on demand.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use super::{Error, Result};

/// A backend that reads the file and keeps writes in memory (the file is never written).
#[derive(Debug)]
struct Overlay {
    file: redb::backends::FileBackend,
    /// Writes in order; later ones win. A check writes a few headers and allocator pages.
    writes: Mutex<Vec<(u64, Vec<u8>)>>,
    len: Mutex<u64>,
}

impl redb::StorageBackend for Overlay {
    fn len(&self) -> std::io::Result<u64> {
        Ok(*self.len.lock().unwrap_or_else(PoisonError::into_inner))
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        let file_len = self.file.len()?;
        let end = offset.saturating_add(out.len() as u64);
        if end <= file_len {
            self.file.read(offset, out)?;
        } else {
            out.fill(0);
            if offset < file_len {
                let n = usize::try_from(file_len - offset).unwrap_or(0);
                self.file.read(offset, &mut out[..n])?;
            }
        }
        for (at, data) in self
            .writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            let w_end = at.saturating_add(data.len() as u64);
            if *at >= end || w_end <= offset {
                continue;
            }
            let from = (*at).max(offset);
            let to = w_end.min(end);
            let (o, d) = (
                usize::try_from(from - offset).unwrap_or(0),
                usize::try_from(from - at).unwrap_or(0),
            );
            let n = usize::try_from(to - from).unwrap_or(0);
            out[o..o + n].copy_from_slice(&data[d..d + n]);
        }
        Ok(())
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        *self.len.lock().unwrap_or_else(PoisonError::into_inner) = len;
        Ok(())
    }
    fn sync_data(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((offset, data.to_vec()));
        Ok(())
    }
    fn close(&self) -> std::io::Result<()> {
        self.file.close()
    }
    // The locks go to the file, so the check sees a file that no server is writing: redb takes
    // them on open and answers `DatabaseAlreadyOpen` while another process holds the store.
    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> LockResult<bool> {
        self.file.try_lock_range(start, end)
    }
    fn try_lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> LockResult<bool> {
        self.file.try_lock_shared_range(start, end)
    }
    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> LockResult<()> {
        self.file.lock_range(start, end)
    }
    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> LockResult<()> {
        self.file.lock_shared_range(start, end)
    }
    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> LockResult<()> {
        self.file.unlock_range(start, end)
    }
    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> LockResult<bool> {
        self.file.query_lock_range(start, end)
    }
}

type LockResult<T> = std::result::Result<T, redb::BackendError>;

/// Checks every page checksum of the data file at `path` without changing it. A missing or
/// empty file passes (it is about to be created).
///
/// Errors: [`Error::IntegrityFailed`] when a checksum does not match or redb would have to
/// repair the file; [`Error::Locked`] when another process holds it; [`Error::Storage`] for I/O.
pub(super) fn check(path: &Path) -> Result<()> {
    // Opened for writing only because exclusive byte-range locks need a writable descriptor:
    // every write of the check goes to the overlay.
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::storage(format!("opening {}: {e}", path.display()))),
    };
    let len = file
        .metadata()
        .map_err(|e| Error::storage(format!("reading {}: {e}", path.display())))?
        .len();
    if len == 0 {
        return Ok(());
    }
    let failed = |detail: String| Error::IntegrityFailed {
        path: path.display().to_string(),
        detail,
    };
    let backend = Overlay {
        file: redb::backends::FileBackend::new(file).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => Error::Locked {
                path: path.display().to_string(),
            },
            other => Error::storage(format!("opening {}: {other}", path.display())),
        })?,
        writes: Mutex::default(),
        len: Mutex::new(len),
    };
    // Opening may run redb's crash recovery (into the overlay); a file that needed it is still
    // checked below, and the real open repeats the recovery on the file.
    let mut db = match redb::Database::builder().create_with_backend(backend) {
        Ok(db) => db,
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
            return Err(Error::Locked {
                path: path.display().to_string(),
            });
        }
        Err(redb::DatabaseError::Storage(redb::StorageError::Io(e))) => {
            return Err(Error::storage(format!("reading {}: {e}", path.display())));
        }
        Err(e) => return Err(failed(e.to_string())),
    };
    match db.check_integrity() {
        Ok(true) => Ok(()),
        Ok(false) => Err(failed(
            "page checksums do not match; redb could only repair it by discarding data".into(),
        )),
        Err(redb::DatabaseError::Storage(redb::StorageError::Io(e))) => {
            Err(Error::storage(format!("reading {}: {e}", path.display())))
        }
        Err(e) => Err(failed(e.to_string())),
    }
}

/// The seal's path: the data file's name with `.clean` appended.
fn seal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".clean");
    PathBuf::from(name)
}

/// The seal's content for the file as it is now: `<length> <mtime in ns since the epoch>`.
fn seal_text(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(format!("{} {}", meta.len(), mtime.as_nanos()))
}

/// Checks the file at `path` unless a clean close sealed it and nothing changed it since; then
/// removes the seal, before the caller opens the file for writing.
///
/// Errors: those of [`check`].
pub(super) fn open_check(path: &Path) -> Result<()> {
    let seal = seal_path(path);
    let sealed = match (std::fs::read_to_string(&seal), seal_text(path)) {
        (Ok(stored), Some(now)) => stored.trim() == now,
        _ => false,
    };
    if !sealed {
        check(path)?;
    }
    match std::fs::remove_file(&seal) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        // A seal that stays would not match the file once it is written: refuse anyway, so a
        // file changed later can never pass as sealed.
        Err(e) => Err(super::Error::storage(format!(
            "removing {}: {e}",
            seal.display()
        ))),
    }
}

/// The open database, and the seal written after it is dropped when the store was closed
/// cleanly. Fields drop in order: the database (which releases the file) before the seal.
pub(super) struct Sealed {
    db: redb::Database,
    seal: SealOnDrop,
}

struct SealOnDrop {
    path: PathBuf,
    clean: AtomicBool,
}

impl Sealed {
    /// Wraps the database opened from `path`.
    pub(super) fn new(db: redb::Database, path: PathBuf) -> Sealed {
        Sealed {
            db,
            seal: SealOnDrop {
                path,
                clean: AtomicBool::new(false),
            },
        }
    }
    /// The data file.
    pub(super) fn path(&self) -> &Path {
        &self.seal.path
    }
    /// Marks the close clean: the seal is written when the last handle drops.
    pub(super) fn closed_cleanly(&self) {
        self.seal.clean.store(true, Ordering::Release);
    }
}

impl std::ops::Deref for Sealed {
    type Target = redb::Database;
    fn deref(&self) -> &redb::Database {
        &self.db
    }
}

impl Drop for SealOnDrop {
    fn drop(&mut self) {
        if !self.clean.load(Ordering::Acquire) {
            return;
        }
        let Some(text) = seal_text(&self.path) else {
            return;
        };
        // Best effort: a missing seal only means the next open runs the full check.
        let seal = seal_path(&self.path);
        if let Err(e) = std::fs::write(&seal, text) {
            tracing::warn!(seal = %seal.display(), error = %e, "could not write the clean-close seal; the next start checks the whole file");
        }
    }
}
