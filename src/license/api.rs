//! `GET /api/license` (appliance: the license state, limits and use, for the console's license
//! panel) and `GET /api/license/public-key` (control plane: the key appliances are configured
//! with).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::model::{self, LicenseState};
use super::queries;
use crate::clock::rfc3339_micros;
use crate::http::problem::{ApiResult, Problem};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(license_get))
        .routes(routes!(license_public_key))
}

/// A license document (HEARTBEATS.md "License").
#[derive(Serialize, utoipa::ToSchema)]
pub struct License {
    /// This license.
    pub license_id: Uuid,
    /// The install it was issued to (the control plane's id for it).
    pub install_id: Uuid,
    /// The customer, as registered.
    pub customer: String,
    /// When it was issued (RFC 3339 UTC, microseconds).
    #[schema(format = DateTime)]
    pub issued_at: String,
    /// When it stops being valid; past it the appliance runs degraded.
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// Limits, e.g. `max_tenants`.
    pub limits: Limits,
    /// Feature flags granted (free-form names).
    pub features: Vec<String>,
    /// The install may never reach the control plane: heartbeats travel only as bundles.
    pub air_gapped: bool,
    /// `key_id` of the install key the license is bound to; null when unbound.
    pub install_key_id: Option<String>,
}

/// Limits a license sets.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Limits {
    /// Most tenants that may exist at once (every state but `offboarded`); null: no limit.
    pub max_tenants: Option<u64>,
}

impl From<model::License> for License {
    fn from(l: model::License) -> License {
        License {
            license_id: l.license_id,
            install_id: l.install_id,
            customer: l.customer,
            issued_at: rfc3339_micros(l.issued_at),
            expires_at: rfc3339_micros(l.expires_at),
            limits: Limits {
                max_tenants: l.limits.max_tenants,
            },
            features: l.features,
            air_gapped: l.air_gapped,
            install_key_id: l.install_key_id,
        }
    }
}

/// The appliance's license, as the last check saw it, with its use.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LicenseReport {
    /// `valid`, `expired`, `missing` or `invalid`.
    pub state: LicenseState,
    /// What is wrong, when not valid.
    pub problem: Option<String>,
    /// The license, when it verified (also when expired).
    pub license: Option<License>,
    /// The license file.
    pub file: String,
    /// `key_id` of `license_public_key`.
    pub public_key_id: String,
    /// When the check ran.
    pub checked_at: DateTime<Utc>,
    /// Tenants that count against `max_tenants` (every state but `offboarded`).
    pub tenants_in_use: u64,
    /// `limits.max_tenants`; null: no limit, or no valid license.
    pub max_tenants: Option<u64>,
    /// Whole days until `expires_at` (negative once past); null without a license.
    pub days_left: Option<i64>,
    /// `allowed` or `refused`: whether provisioning a tenant would pass the license now.
    pub provisioning: &'static str,
}

impl From<queries::LicenseReport> for LicenseReport {
    fn from(r: queries::LicenseReport) -> LicenseReport {
        LicenseReport {
            state: r.status.state,
            problem: r.status.problem,
            license: r.status.license.map(License::from),
            file: r.status.file,
            public_key_id: r.status.public_key_id,
            checked_at: r.status.checked_at,
            tenants_in_use: r.tenants_in_use,
            max_tenants: r.max_tenants,
            days_left: r.days_left,
            provisioning: r.provisioning,
        }
    }
}

crate::string_enum_schema!(LicenseState, "valid, expired, missing or invalid.");

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

impl From<queries::LicenseReport> for LicenseSummary {
    fn from(r: queries::LicenseReport) -> Self {
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

/// The appliance's license: state, limits, use and what is wrong (appliance role).
#[utoipa::path(get, path = "/api/license", tag = "on-prem",
    responses((status = 200, body = LicenseReport), (status = 404, body = Problem)))]
async fn license_get(State(s): State<AppState>) -> ApiResult<Json<LicenseReport>> {
    s.onprem().require_appliance("GET /api/license")?;
    Ok(Json(queries::report(&s).await?.into()))
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
