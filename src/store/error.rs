//! `store::Error`: what can go wrong below the domain: I/O, corruption, a full disk, a closed
//! or overloaded writer, a data file from a newer Tenantry.

/// An error of the storage layer. Domain code converts it into `crate::error::Error`, which
/// maps it to 503 `storage_unavailable` (or 500 for corruption) without leaking details.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// redb or the file system failed (includes a full disk).
    #[error("storage failure: {0}")]
    Storage(String),
    /// Another process holds the data file (redb allows one process per file).
    #[error(
        "the data file {path} is in use by another process; while `tenantry serve` runs, CLI commands go through its admin socket"
    )]
    Locked {
        /// The data file.
        path: String,
    },
    /// The file system holding the data file has less free space than the reserve (`[store]
    /// min_free_mib`): the write was refused before it touched the file. Reads go on, and
    /// writes resume by themselves once space is freed.
    #[error(
        "the disk holding the data dir has {free_bytes} bytes free, under the {reserve_bytes} bytes kept free ([store] min_free_mib): writes are refused until space is freed; reads go on"
    )]
    StorageFull {
        /// Bytes available to this process on the data dir's file system.
        free_bytes: u64,
        /// The reserve, bytes.
        reserve_bytes: u64,
    },
    /// The data file was written by a newer Tenantry whose schema this build does not know.
    #[error(
        "the data file has schema version {found}, but this build of tenantry supports up to {supported}: upgrade tenantry, or restore a backup taken by this version"
    )]
    SchemaTooNew {
        /// Version found in the meta table.
        found: u32,
        /// Newest version this build understands.
        supported: u32,
    },
    /// The data file's page checksums do not match: it was changed outside Tenantry, or the
    /// disk corrupted it. Nothing was changed by the check.
    #[error(
        "the data file {path} failed its integrity check ({detail}): it was changed outside tenantry or the disk corrupted it; it was left as it is: restore a backup (`tenantry backup restore`)"
    )]
    IntegrityFailed {
        /// The data file.
        path: String,
        /// What redb found.
        detail: String,
    },
    /// A stored value could not be decoded.
    #[error("corrupt record in table {table}: {detail}")]
    Corrupt {
        /// Table name.
        table: &'static str,
        /// What failed to decode.
        detail: String,
    },
    /// The writer thread has stopped (shutdown in progress).
    #[error("the store is closed")]
    Closed,
    /// The write queue stayed full for longer than the admission bound.
    #[error("the write queue is full; retry shortly")]
    Overloaded,
    /// A write closure panicked; the transaction it ran in was discarded.
    #[error("a write failed unexpectedly and was rolled back")]
    Panicked,
}

impl Error {
    pub(crate) fn storage(e: impl std::fmt::Display) -> Error {
        Error::Storage(e.to_string())
    }
}

impl From<redb::Error> for Error {
    fn from(e: redb::Error) -> Self {
        Error::storage(e)
    }
}
impl From<redb::StorageError> for Error {
    fn from(e: redb::StorageError) -> Self {
        Error::storage(e)
    }
}
impl From<redb::TableError> for Error {
    fn from(e: redb::TableError) -> Self {
        Error::storage(e)
    }
}
impl From<redb::TransactionError> for Error {
    fn from(e: redb::TransactionError) -> Self {
        Error::storage(e)
    }
}
impl From<redb::CommitError> for Error {
    fn from(e: redb::CommitError) -> Self {
        Error::storage(e)
    }
}

/// `Result` of the storage layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;
