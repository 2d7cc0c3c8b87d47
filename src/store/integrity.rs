//! The integrity check run before the data file is opened for use.
//!
//! redb checks its page checksums only while it recovers from a crash, not on reads: a byte
//! changed on disk (by hand, or by a failing disk) in a table outside the audit ledger would be
//! read as if it had been written. [`check`] runs redb's full check (every page checksum of
//! every table) at open. redb's check also *repairs* what it can (for example by falling back to
//! the previous commit), which would quietly drop the last commit, so it runs over [`Overlay`], a
//! backend that reads the file and keeps every write in memory: the file itself is never
//! changed by the check, and a file that needed any repair is refused.

use std::path::Path;
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
}

/// Checks every page checksum of the data file at `path` without changing it. A missing or
/// empty file passes (it is about to be created).
///
/// Errors: [`Error::IntegrityFailed`] when a checksum does not match or redb would have to
/// repair the file; [`Error::Locked`] when another process holds it; [`Error::Storage`] for I/O.
pub(super) fn check(path: &Path) -> Result<()> {
    let file = match std::fs::OpenOptions::new().read(true).open(path) {
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
