//! Why a backup, a verification or a restore failed, and how each failure reads as a domain
//! error.

use std::path::Path;

use crate::store;

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
    /// A backup taken without its private keys, restored without `--keys-from`.
    #[error(
        "backup {path} holds no private keys (it was taken with backup.include_keys = false): pass --keys-from DIR, a copy of the original keys/ directory (install.ed25519 with key_id {key_id}, and the tenant-token and license keys if there were any). A new key cannot stand in: the store records this key id, a server refuses to start with any other, and only this key extends and re-signs the ledger's checkpoints"
    )]
    KeysMissing {
        /// The file.
        path: String,
        /// The install key id the store records.
        key_id: String,
    },
    /// `--keys-from` for a backup that carries its own keys.
    #[error("backup {path} carries its own keys/ directory: drop --keys-from")]
    KeysIncluded {
        /// The file.
        path: String,
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
    /// A server runs on the data dir (it answers on the admin socket, or holds redb's lock on
    /// the data file), so an offline command (restore, compact) is refused.
    #[error(
        "a tenantry server is running on {path} (it holds the data file): stop it first (systemctl stop tenantry), then {action}"
    )]
    ServerRunning {
        /// The data dir.
        path: String,
        /// What was refused: `restore`, `compact`.
        action: &'static str,
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

    pub(crate) fn io(path: &Path, e: impl std::fmt::Display) -> Error {
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
                crate::error::Error::conflict(crate::error::CONFLICT, e.to_string())
            }
            other => crate::error::Error::Internal(other.to_string()),
        }
    }
}
