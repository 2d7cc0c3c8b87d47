//! The sender's shared handles: its HTTPS client for the control plane, its wake-ups and its
//! in-memory metrics. Data only: [`crate::onprem::OnPrem`] holds one in `AppState`, and
//! [`super::sender`] drives it.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Notify;

use crate::config::Config;

/// What the sender did last, kept in memory (`GET /api/sync`). The durable counters are in
/// [`outbox::Counters`].
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct SenderMetrics {
    /// The sender runs (an appliance with a control-plane URL and an online license).
    pub running: bool,
    /// When it last tried to deliver.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When a delivery last succeeded in this process.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed, when it did.
    pub last_error: Option<String>,
    /// Failed attempts in a row.
    pub consecutive_failures: u32,
    /// When it tries again, while backing off.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// The sender's handles: its HTTP client, its wake-ups and its metrics.
pub struct SyncState {
    pub(super) client: Option<(reqwest::Client, reqwest::Url)>,
    pub(super) work: Notify,
    pub(super) flush: Notify,
    metrics: Mutex<SenderMetrics>,
}

impl SyncState {
    /// Builds the HTTPS client when `config` is an appliance with a control-plane URL.
    ///
    /// Errors: a `ca_file` that cannot be read or holds no PEM certificate.
    pub fn new(config: &Config) -> Result<SyncState, String> {
        let client = match &config.control_plane {
            Some(link) if config.role.is_appliance() => match &link.url {
                Some(url) => Some((client(link.ca_file.as_deref())?, url.clone())),
                None => None,
            },
            _ => None,
        };
        Ok(SyncState {
            client,
            work: Notify::new(),
            flush: Notify::new(),
            metrics: Mutex::new(SenderMetrics::default()),
        })
    }

    /// The control plane's base URL, when heartbeats are delivered online.
    pub fn url(&self) -> Option<&reqwest::Url> {
        self.client.as_ref().map(|(_, u)| u)
    }

    /// Tells the sender a heartbeat was written (does not cut a backoff short).
    pub fn wake(&self) {
        self.work.notify_one();
    }

    /// Asks the sender to try now, even while backing off.
    pub fn flush(&self) {
        self.flush.notify_one();
        self.work.notify_one();
    }

    /// A copy of the metrics.
    pub fn metrics(&self) -> SenderMetrics {
        self.metrics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn update(&self, f: impl FnOnce(&mut SenderMetrics)) {
        f(&mut self.metrics.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

fn client(ca_file: Option<&std::path::Path>) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("tenantry/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("[control_plane] ca_file {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                format!(
                    "[control_plane] ca_file {} holds no PEM certificate",
                    path.display()
                )
            })?;
        b = b.tls_certs_only(certs);
    }
    b.build()
        .map_err(|e| format!("cannot build the HTTPS client for the control plane: {e}"))
}
