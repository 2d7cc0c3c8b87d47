//! Offline access to a data file that no server holds: redb's lock as the test of "is a server
//! running" (restore), and compaction (`tenantry compact`).
//!
//! redb opens a file exclusively (a whole-file lock, `ConcurrencyMode::ExclusiveWriter`), so
//! taking that lock is the one reliable answer to "does a process have this store open"; the
//! admin socket's ping is only a courtesy that gives a friendlier message first.

use std::path::Path;

use super::{DATA_FILE, Error, Result};

/// redb's lock on a data file, held while an offline command replaces or rewrites it. No
/// process can open the store while this lives; dropping it releases the lock.
pub struct OfflineLock {
    _db: redb::Database,
}

impl std::fmt::Debug for OfflineLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OfflineLock")
    }
}

/// Opens `data_file` without creating it, mapping "another process holds it" to
/// [`Error::Locked`].
fn open_existing(data_file: &Path) -> Result<redb::Database> {
    redb::Database::builder()
        .open(data_file)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => Error::Locked {
                path: data_file.display().to_string(),
            },
            other => Error::storage(format!("opening {}: {other}", data_file.display())),
        })
}

/// Takes redb's lock on `data_dir/tenantry.redb`. `Ok(None)` when there is no data file (nothing
/// to hold). A file that was not closed cleanly is repaired by redb on the way.
///
/// Errors: [`Error::Locked`] when another process (a running server, another CLI command) has
/// the store open; [`Error::Storage`] for I/O or a file that is not a redb database.
pub fn lock_offline(data_dir: &Path) -> Result<Option<OfflineLock>> {
    let path = data_dir.join(DATA_FILE);
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(OfflineLock {
        _db: open_existing(&path)?,
    }))
}

/// What [`compact`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Compacted {
    /// Size of the data file before, bytes.
    pub before: u64,
    /// Size of the data file after, bytes.
    pub after: u64,
}

/// Compacts `data_dir/tenantry.redb` in place with redb's `Database::compact` (repeated until
/// it reports nothing more to do, at most 8 rounds): pages freed by earlier writes are moved
/// out of the way and the file is truncated. Offline only: it holds redb's lock throughout.
///
/// Errors: [`Error::Locked`] when a server (or any process) has the store open; [`Error::Storage`]
/// when there is no data file, or for I/O and redb's refusals.
pub fn compact(data_dir: &Path) -> Result<Compacted> {
    let path = data_dir.join(DATA_FILE);
    let size = || {
        std::fs::metadata(&path)
            .map(|m| m.len())
            .map_err(|e| Error::storage(format!("{}: {e}", path.display())))
    };
    let before = size()?;
    let mut db = open_existing(&path)?;
    for _ in 0..8 {
        let more = db
            .compact()
            .map_err(|e| Error::storage(format!("compacting {}: {e}", path.display())))?;
        if !more {
            break;
        }
    }
    drop(db);
    Ok(Compacted {
        before,
        after: size()?,
    })
}

/// Checks every page checksum of `data_dir/tenantry.redb` without changing it (`tenantry
/// check`): the same check a start runs after a crash or when the file changed since its clean
/// close.
///
/// Errors: [`Error::IntegrityFailed`] naming what redb found, [`Error::Locked`] while a server
/// holds the file, [`Error::Storage`] for I/O or a missing file.
pub fn check_file(data_dir: &Path) -> Result<u64> {
    let path = data_dir.join(DATA_FILE);
    let len = std::fs::metadata(&path)
        .map_err(|e| Error::storage(format!("{}: {e}", path.display())))?
        .len();
    super::integrity::check(&path)?;
    Ok(len)
}
