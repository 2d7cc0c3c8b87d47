//! What the on-prem roles add to the shared state (HEARTBEATS.md): the process's [`Role`], the
//! appliance's license status and heartbeat sender state, and the control plane's license key.
//!
//! - [`signed`]: the signed-document shape licenses, heartbeats and bundles share.
//! - [`enroll`]: enrollment secrets and their proofs (binding an install key once).
//! - [`rate`]: the control plane's per-install limit on heartbeat deliveries.
//!
//! The contexts that use this are [`crate::license`] (appliance: verify the license, gate
//! provisioning), [`crate::heartbeat`] (appliance: document, outbox, sender, bundles) and
//! [`crate::installs`] (control plane: registry, intake, witness, silence).
//!
//! Routes of the other role answer 404 (`not_found`): every handler of these contexts starts with
//! [`OnPrem::require_appliance`] or [`OnPrem::require_control_plane`], after authentication and
//! body parsing, so a caller without credentials still gets 401 and bad JSON still gets 400.

pub mod enroll;
pub mod rate;
pub mod signed;

use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};

use crate::audit::signing::{InstallKey, KeyError};
use crate::config::{Config, Role};
use crate::error::{Error, Result};
use crate::heartbeat::sync::SyncState;
use crate::license::model::LicenseStatus;

/// File name of the control plane's license-signing key inside `DATA_DIR/keys/`.
pub const LICENSE_KEY_FILE: &str = "license.ed25519";

/// Meta key recording the license key's id, so a swapped key file is refused at start.
pub const LICENSE_KEY_META: &str = "license_key_id";

/// The on-prem part of [`crate::state::AppState`].
pub struct OnPrem {
    role: Role,
    license: RwLock<Option<LicenseStatus>>,
    license_key: Option<InstallKey>,
    sync: SyncState,
    deliveries: rate::DeliveryLimiter,
}

impl std::fmt::Debug for OnPrem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnPrem")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Why the on-prem part could not start.
#[derive(Debug, thiserror::Error)]
pub enum OnPremError {
    /// The license key could not be loaded or made.
    #[error(
        "the control plane's license key: {0}. If keys/license.ed25519 was lost, restore it from backup: licenses already issued verify only with it"
    )]
    Key(#[from] KeyError),
    /// The HTTPS client for the control plane could not be built (CA file).
    #[error("{0}")]
    Client(String),
}

impl OnPrem {
    /// Path of the license key under `data_dir`.
    pub fn license_key_path(data_dir: &Path) -> PathBuf {
        data_dir.join("keys").join(LICENSE_KEY_FILE)
    }

    /// Builds the on-prem state for `config`: a control plane loads (or, when `create`, makes) its
    /// license key; an appliance with a control-plane URL builds its HTTPS client.
    ///
    /// Errors: an unreadable or malformed key file; a CA file that is not PEM.
    pub fn new(config: &Config, create_key: bool) -> std::result::Result<OnPrem, OnPremError> {
        let license_key = if config.role.is_control_plane() {
            Some(InstallKey::load_or_create_at(
                &Self::license_key_path(&config.data_dir),
                create_key,
            )?)
        } else {
            None
        };
        let sync = SyncState::new(config).map_err(OnPremError::Client)?;
        Ok(OnPrem {
            role: config.role,
            license: RwLock::new(None),
            license_key,
            sync,
            deliveries: rate::DeliveryLimiter::default(),
        })
    }

    /// The role of this process.
    pub fn role(&self) -> Role {
        self.role
    }

    /// 404 unless this process plays the control plane. `route` names what was asked for.
    pub fn require_control_plane(&self, route: &str) -> Result<()> {
        if self.role.is_control_plane() {
            Ok(())
        } else {
            // "control-plane route 'POST /api/installs' not found": this server is no control plane.
            Err(Error::not_found("control-plane route", route))
        }
    }

    /// 404 unless this process plays the appliance. `route` names what was asked for.
    pub fn require_appliance(&self, route: &str) -> Result<()> {
        if self.role.is_appliance() {
            Ok(())
        } else {
            Err(Error::not_found("appliance route", route))
        }
    }

    /// The license status of the last check (appliance), if one ran.
    pub fn license(&self) -> Option<LicenseStatus> {
        self.license
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records the result of a license check.
    pub fn set_license(&self, status: LicenseStatus) {
        *self.license.write().unwrap_or_else(PoisonError::into_inner) = Some(status);
    }

    /// The control plane's license-signing key.
    ///
    /// Errors: 404 when this process is not a control plane.
    pub fn license_key(&self) -> Result<&InstallKey> {
        self.license_key
            .as_ref()
            .ok_or_else(|| Error::not_found("control-plane route", "license key"))
    }

    /// The per-install limit on heartbeat deliveries (control plane).
    pub fn deliveries(&self) -> &rate::DeliveryLimiter {
        &self.deliveries
    }

    /// The heartbeat sender's state (appliance).
    pub fn sync(&self) -> &SyncState {
        &self.sync
    }
}
