//! The webhooks' share of [`crate::state::AppState`]: the secret sealer, the SSRF policy, the
//! guarded HTTP clients, and the signal that wakes the delivery loop (a commit that moved a
//! chain, a replay, a test).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Notify;

use super::guard::{Clients, Policy};
use super::signing::Sealer;
use crate::audit::signing::{InstallKey, KeyError};
use crate::config::WebhooksConfig;

/// The commit topic a webhook write touches to wake the delivery loop (a replay, a test).
pub const WEBHOOKS_TOPIC: &str = "webhooks";

/// File name of the key endpoint secrets are sealed under, inside `DATA_DIR/keys/`.
pub const WEBHOOK_KEY_FILE: &str = "webhooks.ed25519";

/// Process-local webhook state. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Webhooks {
    sealer: Sealer,
    policy: Arc<Policy>,
    /// Built once: the webhook deliveries, the channels' loop and every channel Test share
    /// them (and their connection pools). A TLS backend that cannot start is kept as its
    /// error, for each sender to report, as it was when each built its own.
    clients: Result<Clients, String>,
    wake: Arc<Notify>,
}

impl Webhooks {
    /// The key file's path.
    pub fn key_path(data_dir: &Path) -> PathBuf {
        data_dir.join("keys").join(WEBHOOK_KEY_FILE)
    }

    /// Loads (or makes, 0600, on first use) the sealing key and builds the state.
    ///
    /// The key file is an Ed25519 key like the install and token keys, so it is made, checked
    /// and backed up the same way; only its seed is used, through a hash (see `signing`).
    ///
    /// Errors: the key file cannot be read or written.
    pub fn load(data_dir: &Path, cfg: &WebhooksConfig) -> Result<Webhooks, KeyError> {
        let key = InstallKey::load_or_create_at(&Self::key_path(data_dir), true)?;
        let policy = Arc::new(Policy::new(cfg));
        Ok(Webhooks {
            sealer: Sealer::from_seed(&key.signing_key().to_bytes()),
            clients: Clients::new(cfg, &policy),
            policy,
            wake: Arc::new(Notify::new()),
        })
    }

    /// Seals and opens endpoint secrets.
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// The SSRF policy.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// The guarded HTTP clients (plain http and https).
    ///
    /// Errors: the TLS backend could not be set up.
    pub fn clients(&self) -> Result<&Clients, String> {
        self.clients.as_ref().map_err(Clone::clone)
    }

    /// Wakes the delivery loop (it keeps one pending wake-up, so none is lost).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Waits for [`Webhooks::wake`].
    pub async fn woken(&self) {
        self.wake.notified().await;
    }
}
