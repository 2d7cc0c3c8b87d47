//! Licenses (HEARTBEATS.md "License"; anchor: Keygen's offline Ed25519 license files).
//!
//! The control plane issues a license when it registers an install ([`issue`], called by
//! `installs::service::register`): a JSON document signed with its own Ed25519 license key over
//! the canonical bytes and published as `{"license": {...}, "key_id", "sig"}`.
//!
//! The appliance checks it offline ([`verify`]) against the control plane's public key from
//! `[control_plane] license_public_key`, at start and by the `verify_license` job ([`refresh`]).
//! A forged, altered, foreign or unreadable license is refused with a message that says what is
//! wrong; the process keeps running degraded. Past `expires_at` reads work and provisioning
//! answers 403 `license_expired`. `limits.max_tenants` is enforced at provisioning
//! ([`gate::admit_new_tenant`]).
//!
//! - [`gate`]: the license state kept in the store, where provisioning reads it inside its own
//!   write transaction, and the audit entries of its transitions.
//! - [`api`]: `GET /api/license` (appliance) and `GET /api/license/public-key` (control plane).

pub mod api;
pub mod gate;
pub mod model;
pub mod queries;
pub mod views;

use ed25519_dalek::VerifyingKey;

pub use model::*;

use crate::error::{Error, Result};
use crate::state::AppState;

use crate::config::Role as InstallRole;
use crate::http::context::{Context, NavItem};
use crate::rbac::{Access, Permission, Route};

/// The license context (appliance): its routes, pages, permission entries, sidebar items and events.
pub const CONTEXT: Context = Context {
    name: "license",
    tags: &[],
    api: api::router,
    views: views::router,
    routes: ROUTES,
    nav: &[
        NavItem::new("/platform/license", "License", Permission::Read)
            .in_role(InstallRole::is_appliance),
    ],
    events: &[
        "license.verified.v1",
        "license.expired.v1",
        "license.refused.v1",
    ],
    ..Context::EMPTY
};

/// The permission entry of every route of this context.
const ROUTES: &[Route] = {
    use Access::*;
    use Permission::*;
    &[
        // A public key, which appliances are configured with.
        ("GET", "/api/license/public-key", Public),
        ("GET", "/api/license", Requires(Read)),
        ("GET", "/platform/license", Requires(Read)),
    ]
};

/// Reads and verifies the license file, keeps the result in memory, and records it in the store
/// (auditing a change of state or license). Used at start and by the `verify_license` job.
///
/// Errors: 404 when this process is not an appliance; storage errors.
pub async fn refresh(state: &AppState) -> Result<LicenseStatus> {
    let Some(link) = state.config().control_plane.clone() else {
        return Err(Error::not_found("appliance route", "license"));
    };
    let public = VerifyingKey::from_bytes(&link.license_public_key)
        .map_err(|_| Error::Internal("license_public_key is not a valid Ed25519 point".into()))?;
    let file = link.license_file.display().to_string();
    let text = tokio::fs::read_to_string(&link.license_file).await;
    let now = state.clock().now();
    let enrollment = link.enrollment_secret.as_ref().map(|s| s.verifier_id());
    let status = LicenseStatus::check(
        text,
        &public,
        state.install_key().key_id(),
        enrollment.as_deref(),
        now,
        &file,
    );
    state.onprem().set_license(status.clone());
    let record = status.clone();
    let changed = state
        .write(crate::actor::Actor::system("license"), move |ctx| {
            gate::record(ctx, &record)
        })
        .await?;
    if changed {
        match status.state {
            LicenseState::Valid => {
                tracing::info!(license_id = ?status.license.as_ref().map(|l| l.license_id), "license verified")
            }
            _ => tracing::error!(
                state = status.state.as_str(),
                "license: {}",
                status.problem.clone().unwrap_or_default()
            ),
        }
    }
    Ok(status)
}
