//! `[backup]` in the config file. Data only: [`crate::config`] holds one.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::crypt::Recipient;

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
    /// age recipients (`age1...`) every backup is encrypted to. `backup_daily` refuses to run
    /// without any, and `backup create` without any needs `--plaintext`.
    pub recipients: Vec<Recipient>,
    /// Copy the private keys of `DATA_DIR/keys/` (install, tenant-token, license keys) into
    /// backups; `true` by default. With `false`, a backup carries only the install key's public
    /// key (so `backup verify` still checks every checkpoint signature), and `backup restore`
    /// needs `--keys-from DIR` holding the original `keys/` files: the store records the install
    /// key's id and a server refuses to start with any other key, so the ledger can only be
    /// extended and re-checkpointed with the original one.
    pub include_keys: bool,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            dir: None,
            keep: 7,
            recipients: Vec::new(),
            include_keys: true,
        }
    }
}

impl BackupConfig {
    /// The backup directory for `data_dir`.
    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| data_dir.join("backups"))
    }
}
