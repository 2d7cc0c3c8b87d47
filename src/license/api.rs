//! `GET /api/license` (appliance: the license state, limits and use, for the console's license
//! panel) and `GET /api/license/public-key` (control plane: the key appliances are configured
//! with).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{LicenseState, LicenseStatus, gate};
use crate::error::Error;
use crate::http::problem::{ApiResult, Problem};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(license_get))
        .routes(routes!(license_public_key))
}

/// The appliance's license, as the last check saw it, with its use.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LicenseReport {
    /// The last check: `state`, `problem`, `license`, `file`, `public_key_id`, `checked_at`.
    #[serde(flatten)]
    pub status: LicenseStatus,
    /// Tenants that count against `max_tenants` (every state but `offboarded`).
    pub tenants_in_use: u64,
    /// `limits.max_tenants`; null: no limit, or no valid license.
    pub max_tenants: Option<u64>,
    /// Whole days until `expires_at` (negative once past); null without a license.
    pub days_left: Option<i64>,
    /// `allowed` or `refused`: whether provisioning a tenant would pass the license now.
    pub provisioning: &'static str,
}

/// The license as `/readyz` shows it, without credentials: state and limits, not the document.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LicenseSummary {
    /// `valid`, `expired`, `missing` or `invalid`.
    pub state: LicenseState,
    /// When it expires.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Whole days until then (negative once past).
    pub days_left: Option<i64>,
    /// `limits.max_tenants`.
    pub max_tenants: Option<u64>,
    /// Tenants that count against it.
    pub tenants_in_use: u64,
    /// `allowed` or `refused`.
    pub provisioning: &'static str,
}

impl From<LicenseReport> for LicenseSummary {
    fn from(r: LicenseReport) -> Self {
        LicenseSummary {
            state: r.status.state,
            expires_at: r.status.license.map(|l| l.expires_at),
            days_left: r.days_left,
            max_tenants: r.max_tenants,
            tenants_in_use: r.tenants_in_use,
            provisioning: r.provisioning,
        }
    }
}

/// Builds the report from the last check and the store.
pub async fn report(s: &AppState) -> crate::error::Result<LicenseReport> {
    let status = s
        .onprem()
        .license()
        .ok_or_else(|| Error::not_found("appliance route", "license"))?;
    let tenants_in_use = s.read(gate::tenants_in_use).await?;
    let now = s.clock().now();
    let max_tenants = status.license.as_ref().and_then(|l| l.limits.max_tenants);
    let days_left = status
        .license
        .as_ref()
        .map(|l| (l.expires_at - now).num_days());
    let allowed = status.state == LicenseState::Valid
        && status.license.as_ref().is_some_and(|l| now < l.expires_at)
        && max_tenants.is_none_or(|m| tenants_in_use < m);
    Ok(LicenseReport {
        status,
        tenants_in_use,
        max_tenants,
        days_left,
        provisioning: if allowed { "allowed" } else { "refused" },
    })
}

/// The appliance's license: state, limits, use and what is wrong (appliance role).
#[utoipa::path(get, path = "/api/license", tag = "on-prem",
    responses((status = 200, body = LicenseReport), (status = 404, body = Problem)))]
async fn license_get(State(s): State<AppState>) -> ApiResult<Json<LicenseReport>> {
    s.onprem().require_appliance("GET /api/license")?;
    Ok(Json(report(&s).await?))
}

/// The control plane's license-signing key.
#[derive(Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct LicensePublicKey {
    /// Lowercase hex SHA-256 of the raw public key (the `key_id` of every license it signs).
    pub key_id: String,
    /// Standard base64 of the raw 32-byte Ed25519 key: `[control_plane] license_public_key`.
    pub public_key: String,
}

/// The key licenses are signed with; appliances are configured with it (control-plane role;
/// public, as it is a public key).
#[utoipa::path(get, path = "/api/license/public-key", tag = "on-prem", security(()),
    responses((status = 200, body = LicensePublicKey), (status = 404, body = Problem)))]
async fn license_public_key(State(s): State<AppState>) -> ApiResult<Json<LicensePublicKey>> {
    s.onprem()
        .require_control_plane("GET /api/license/public-key")?;
    let key = s.onprem().license_key()?;
    Ok(Json(LicensePublicKey {
        key_id: key.key_id().to_string(),
        public_key: key.public_b64(),
    }))
}
