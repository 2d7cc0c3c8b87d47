//! The read model of the appliance's license: the last check with its use, shared by
//! `GET /api/license`, `/readyz` and the console's license page.

use serde::Serialize;

use super::gate;
use super::model::{LicenseState, LicenseStatus};
use crate::error::{Error, Result};
use crate::state::AppState;

/// The appliance's license, as the last check saw it, with its use.
#[derive(Clone, Debug, Serialize)]
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

/// Builds the report from the last check and the store.
pub async fn report(s: &AppState) -> Result<LicenseReport> {
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
