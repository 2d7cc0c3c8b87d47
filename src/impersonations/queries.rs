//! The read model of visits: an operator's active visit of a tenant (checked on every
//! Tenant-console request of an operator), a tenant's visits, and the platform's recent ones.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::model::*;
use crate::error::{Error, INVALID_QUERY, Result};
use crate::members::model::tenant_key;
use crate::rbac::Visit;
use crate::store::keys::Key;
use crate::store::page::{self, Cursor, Page, Scan, Step};
use crate::store::{Dir, Range, Reader, codec};

/// The stored visit `id` of `tenant`.
///
/// Errors: 404.
pub fn load(r: &impl Reader, tenant: &Uuid, id: &Uuid) -> Result<ImpersonationV1> {
    match r.get_record::<ImpersonationRecord>(IMPERSONATIONS, &tenant_key(tenant, id))? {
        Some(ImpersonationRecord::V1(v)) => Ok(v),
        None => Err(Error::not_found("impersonation", id.to_string())),
    }
}

/// The visit `id` of `tenant`.
///
/// Errors: 404.
pub fn get(r: &impl Reader, tenant: &Uuid, id: &Uuid) -> Result<Impersonation> {
    Ok(load(r, tenant, id)?.view(*tenant, *id))
}

/// `operator`'s visit of `tenant` going on at `now`, if any.
pub fn active(
    r: &impl Reader,
    operator: &Uuid,
    tenant: &Uuid,
    now: DateTime<Utc>,
) -> Result<Option<Impersonation>> {
    let Some(id) = r
        .get(ACTIVE, &Key::new().uuid(operator).uuid(tenant).into_bytes())?
        .and_then(|b| Uuid::from_slice(&b).ok())
    else {
        return Ok(None);
    };
    Ok(load(r, tenant, &id)
        .ok()
        .map(|v| v.view(*tenant, id))
        .filter(|v| v.is_active(now)))
}

/// The same, as the permission check sees it.
pub fn active_visit(
    r: &impl Reader,
    operator: &Uuid,
    tenant: &Uuid,
    now: DateTime<Utc>,
) -> Result<Option<Visit>> {
    Ok(active(r, operator, tenant, now)?.map(|v| v.visit()))
}

/// The last `limit` visits of `tenant`, newest first.
pub fn of_tenant(r: &impl Reader, tenant: &Uuid, limit: usize) -> Result<Vec<Impersonation>> {
    let mut out = Vec::new();
    r.scan(
        IMPERSONATIONS,
        &Range::prefix(tenant.as_bytes()),
        Dir::Desc,
        &mut |k, v| {
            if let Some(id) = k.get(16..32).and_then(|b| Uuid::from_slice(b).ok()) {
                let ImpersonationRecord::V1(rec) = codec::decode(IMPERSONATIONS.name(), v)?;
                out.push(rec.view(*tenant, id));
            }
            Ok(if out.len() >= limit {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            })
        },
    )?;
    Ok(out)
}

/// The filters of `GET /api/impersonations`.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ImpersonationFilter {
    /// `active` (read-only or elevated now), `elevated` or `ended`.
    pub state: Option<String>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of every tenant's visits, newest first, filtered by state at `now`.
///
/// Errors: 400 `invalid_query`, `invalid_cursor`.
pub fn recent(
    r: &impl Reader,
    f: &ImpersonationFilter,
    now: DateTime<Utc>,
) -> Result<Page<Impersonation>> {
    let state = f.state.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if let Some(s) = state
        && !matches!(s, "active" | "elevated" | "ended")
    {
        return Err(Error::bad_request(
            INVALID_QUERY,
            format!("state '{s}' is invalid: use active, elevated or ended"),
        ));
    }
    let cursor = f.cursor.as_deref().map(Cursor::decode).transpose()?;
    let scan = Scan {
        table: BY_TIME,
        range: Range::all(),
        dir: Dir::Desc,
        limit: page::limit(f.limit)?,
        cursor: cursor.as_ref(),
        budget: Some(5_000),
    };
    page::page(r, scan, |k, v| -> Result<Step<Impersonation>> {
        let (Ok(id), Ok(tenant)) = (Uuid::from_slice(k), Uuid::from_slice(v)) else {
            return Ok(Step::Skip);
        };
        let Ok(rec) = load(r, &tenant, &id) else {
            return Ok(Step::Skip);
        };
        let view = rec.view(tenant, id);
        let keep = match state {
            None => true,
            Some("active") => view.is_active(now),
            Some("elevated") => view.state(now) == "elevated",
            Some(_) => !view.is_active(now),
        };
        Ok(if keep { Step::Keep(view) } else { Step::Skip })
    })
}
