//! The license as provisioning sees it: a record in the store (table `license`, key `gate`),
//! written by every license check and read by [`admit_new_tenant`] inside the provisioning write
//! transaction, so the tenant count and the limit are checked atomically with the new tenant, by
//! every path that provisions (API, demo, console).
//!
//! No record means no license regime: a data dir that never played the appliance (the vendor's
//! control plane) provisions freely. Each change of state or of license appends one entry to the
//! platform chain: `license.verified.v1`, `license.expired.v1`, `license.refused.v1`.
//!
//! **The gate follows the data, not the role** (issue 12 finding 8). Once a data dir has held a
//! license regime, its tenants are an appliance's data plane, and the record stays whatever role
//! the process is started with: a process switched to `role = "control_plane"` serves the
//! control plane's routes, but provisions only within the last verified license (expiry against
//! the request's time, `max_tenants`), and a missing or refused license still refuses. The role
//! decides which routes are served; it never lifts the gate.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{LicenseState, LicenseStatus};
use crate::audit::ledger::{Audit, Subject};
use crate::clock::{from_micros, rfc3339_micros, to_micros};
use crate::error::{Error, Result};
use crate::store::{Reader, Table, WriteCtx};

/// The license table: `gate -> GateRecord`.
pub const LICENSE: Table = Table::new("license");

const GATE_KEY: &[u8] = b"gate";

/// The license state as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GateRecord {
    /// Version 1.
    V1 {
        /// The state of the last check.
        state: LicenseState,
        /// The license, when it verified.
        license_id: Option<Uuid>,
        /// The control plane's id of this install, from the license.
        install_id: Option<Uuid>,
        /// `expires_at`, microseconds.
        expires_at: Option<i64>,
        /// `limits.max_tenants`.
        max_tenants: Option<u64>,
        /// `air_gapped`.
        air_gapped: bool,
        /// SHA-256 of the license's JSON, so a changed file with the same id is noticed.
        digest: Option<[u8; 32]>,
        /// What was wrong, when refused.
        problem: Option<String>,
    },
}

/// The license facts other contexts need (heartbeats take their ids from here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gate {
    /// State of the last check.
    pub state: LicenseState,
    /// License id, when verified.
    pub license_id: Option<Uuid>,
    /// Install id, when verified.
    pub install_id: Option<Uuid>,
    /// Air-gapped install.
    pub air_gapped: bool,
}

/// Reads the stored gate.
pub fn load(r: &impl Reader) -> Result<Option<Gate>> {
    Ok(r.get_record::<GateRecord>(LICENSE, GATE_KEY)?.map(
        |GateRecord::V1 {
             state,
             license_id,
             install_id,
             air_gapped,
             ..
         }| Gate {
            state,
            license_id,
            install_id,
            air_gapped,
        },
    ))
}

fn record_of(s: &LicenseStatus) -> GateRecord {
    let l = s.license.as_ref();
    GateRecord::V1 {
        state: s.state,
        license_id: l.map(|l| l.license_id),
        install_id: l.map(|l| l.install_id),
        expires_at: l.map(|l| to_micros(l.expires_at)),
        max_tenants: l.and_then(|l| l.limits.max_tenants),
        air_gapped: l.is_some_and(|l| l.air_gapped),
        digest: l.and_then(|l| {
            serde_json::to_vec(l)
                .ok()
                .map(|b| Sha256::digest(&b).into())
        }),
        problem: match s.state {
            // An expiry message names the time of the check; only refusals are compared.
            LicenseState::Missing | LicenseState::Invalid => s.problem.clone(),
            _ => None,
        },
    }
}

/// Stores the result of a check; when the state or the license changed, appends its audit entry
/// in the same write. Returns whether anything changed.
pub fn record(ctx: &mut WriteCtx<'_>, status: &LicenseStatus) -> Result<bool> {
    let new = record_of(status);
    let old: Option<GateRecord> = ctx.get_record(LICENSE, GATE_KEY)?;
    if old.as_ref() == Some(&new) {
        return Ok(false);
    }
    let subject = Subject::platform(
        "license",
        status
            .license
            .as_ref()
            .map_or_else(|| "file".to_string(), |l| l.license_id.to_string()),
    );
    let (action, data) = match (&status.state, &status.license) {
        (LicenseState::Valid, Some(l)) => (
            "license.verified.v1",
            json!({
                "license_id": l.license_id.to_string(),
                "install_id": l.install_id.to_string(),
                "customer": l.customer,
                "issued_at": rfc3339_micros(l.issued_at),
                "expires_at": rfc3339_micros(l.expires_at),
                "max_tenants": l.limits.max_tenants,
                "features": l.features,
                "air_gapped": l.air_gapped,
                "key_id": status.public_key_id,
            }),
        ),
        (LicenseState::Expired, Some(l)) => (
            "license.expired.v1",
            json!({
                "license_id": l.license_id.to_string(),
                "expires_at": rfc3339_micros(l.expires_at),
            }),
        ),
        (state, _) => (
            "license.refused.v1",
            json!({
                "state": state.as_str(),
                "problem": status.problem,
                "file": status.file,
            }),
        ),
    };
    ctx.put_record(LICENSE, GATE_KEY, &new)?;
    ctx.audit(action, &subject, data)?;
    Ok(true)
}

/// Tenants that count against `max_tenants`: every state but `offboarded`.
pub fn tenants_in_use(r: &impl Reader) -> Result<u64> {
    let s = crate::tenants::queries::summary(r)?;
    let offboarded = s.by_state.get("offboarded").copied().unwrap_or(0);
    Ok(s.total.saturating_sub(offboarded))
}

/// May a new tenant be provisioned now? Called by `tenants::service::provision` before it
/// writes anything, in the same transaction.
///
/// Errors: 403 `license_expired` past `expires_at` (checked against the request's `now`, not
/// the last job run), 403 `license_limit_reached` at `max_tenants`, 403 `license_missing` or
/// `license_invalid` when the appliance has no valid license.
pub fn admit_new_tenant(ctx: &WriteCtx<'_>) -> Result<()> {
    let Some(GateRecord::V1 {
        state,
        license_id,
        expires_at,
        max_tenants,
        problem,
        ..
    }) = ctx.get_record::<GateRecord>(LICENSE, GATE_KEY)?
    else {
        return Ok(());
    };
    let id = license_id.map(|i| i.to_string()).unwrap_or_default();
    match state {
        LicenseState::Missing => Err(Error::denied(
            crate::license::model::LICENSE_MISSING,
            format!(
                "new tenants need a license: {}",
                problem.unwrap_or_default()
            ),
        )),
        LicenseState::Invalid => Err(Error::denied(
            crate::license::model::LICENSE_INVALID,
            format!(
                "new tenants need a valid license: {}",
                problem.unwrap_or_default()
            ),
        )),
        LicenseState::Valid | LicenseState::Expired => {
            if let Some(exp) = expires_at
                && (state == LicenseState::Expired || to_micros(ctx.now) >= exp)
            {
                return Err(Error::denied(
                    crate::license::model::LICENSE_EXPIRED,
                    format!(
                        "license {id} expired at {}: the platform runs degraded (reads work, new tenants are refused) until a renewed license is installed",
                        rfc3339_micros(from_micros(exp))
                    ),
                ));
            }
            if let Some(max) = max_tenants {
                let used = tenants_in_use(ctx)?;
                if used >= max {
                    return Err(Error::denied(
                        crate::license::model::LICENSE_LIMIT_REACHED,
                        format!(
                            "license {id} allows {max} tenant(s) and {used} exist (offboarded tenants do not count): offboard one, or ask the vendor for a license with a higher max_tenants"
                        ),
                    ));
                }
            }
            Ok(())
        }
    }
}
