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
