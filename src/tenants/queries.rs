//! The read model of tenants, shared by `/api/tenants`, the console and other contexts: the
//! directory's filters as text, parsed once into a [`DirectoryQuery`]; one tenant; the
//! maintained totals.

use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::directory::{self, COUNTS, DirectoryQuery, Sort, TENANTS};
use super::model::{State as TenantState, Tenant, Tier};
use crate::error::{Error, INVALID_QUERY, Result};
use crate::store::page::{self, Cursor};
use crate::store::{Dir, Range, Reader};

/// The directory's filters as text (API.md `GET /api/tenants`): the query string of the API and
/// of the console's directory page. Empty values are no filter.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DirectoryFilter {
    /// Lifecycle state (the canonical name of the filter, as of the field and the CSV column).
    pub state: Option<String>,
    /// The same filter under its first name, still accepted.
    pub status: Option<String>,
    /// Region code.
    pub region: Option<String>,
    /// `S`, `P` or `G`.
    pub isolation_tier: Option<String>,
    /// App id.
    pub app_id: Option<String>,
    /// Case-insensitive substring of the name, slug or contact email.
    pub q: Option<String>,
    /// `created_at` (default), `display_name` or `status`.
    pub sort: Option<String>,
    /// `asc` or `desc` (default `desc` for `created_at`, `asc` otherwise).
    pub order: Option<String>,
    /// Page size, 1–500 (default 50).
    pub limit: Option<usize>,
    /// Cursor from a previous page.
    pub cursor: Option<String>,
}

impl DirectoryFilter {
    /// Parses into a query.
    ///
    /// Errors: 400 `invalid_query` naming the bad parameter.
    pub fn parse(self) -> Result<DirectoryQuery> {
        let bad = |m: String| Error::bad_request(INVALID_QUERY, m);
        let sort = self
            .sort
            .as_deref()
            .map(Sort::parse)
            .transpose()
            .map_err(bad)?
            .unwrap_or(Sort::CreatedAt);
        let descending = match self.order.as_deref() {
            None => sort == Sort::CreatedAt,
            Some("asc") => false,
            Some("desc") => true,
            Some(o) => return Err(bad(format!("order '{o}' is invalid: use asc or desc"))),
        };
        let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        Ok(DirectoryQuery {
            status: match (nonempty(self.state), nonempty(self.status)) {
                (Some(a), Some(b)) if a != b => {
                    return Err(bad(format!(
                        "state '{a}' and status '{b}' disagree: give one (state is the name)"
                    )));
                }
                (a, b) => a.or(b),
            }
            .map(|s| TenantState::parse(&s))
            .transpose()
            .map_err(bad)?,
            region: nonempty(self.region),
            tier: nonempty(self.isolation_tier)
                .map(|t| Tier::parse(&t))
                .transpose()
                .map_err(bad)?,
            app_id: nonempty(self.app_id)
                .map(|a| {
                    crate::ids::parse_uuid(&a)
                        .ok_or_else(|| bad(format!("app_id '{a}' is not a UUID")))
                })
                .transpose()?,
            q: nonempty(self.q).map(|q| q.trim().to_string()),
            sort,
            descending,
            limit: page::limit(self.limit)?,
            cursor: nonempty(self.cursor)
                .map(|c| Cursor::decode(&c).map_err(Error::from))
                .transpose()?,
        })
    }
}

/// One tenant.
///
/// Errors: 404 when unknown; a corrupt record is a storage error.
pub fn get(r: &impl Reader, id: &Uuid) -> Result<Tenant> {
    directory::load(r, id)
}

/// Is there a tenant record (even a broken one) with this id?
pub fn exists(r: &impl Reader, id: &Uuid) -> Result<bool> {
    Ok(r.contains(TENANTS, id.as_bytes())?)
}

/// Tenant totals by state, tier and region (maintained counters).
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Summary {
    /// All tenants ever provisioned that still have a record.
    pub total: u64,
    /// By lifecycle state.
    pub by_state: std::collections::BTreeMap<String, u64>,
    /// By isolation tier.
    pub by_tier: std::collections::BTreeMap<String, u64>,
    /// By region.
    pub by_region: std::collections::BTreeMap<String, u64>,
    /// Tenants provisioned per ISO week (`2026-W47`), including those since shredded.
    pub created_by_week: std::collections::BTreeMap<String, u64>,
}

/// Reads the maintained counters.
pub fn summary(r: &impl Reader) -> Result<Summary> {
    let mut s = Summary::default();
    r.scan(COUNTS, &Range::all(), Dir::Asc, &mut |k, v| {
        let n = <[u8; 8]>::try_from(v).map_or(0, u64::from_be_bytes);
        let key = String::from_utf8_lossy(k);
        if let Some((dim, val)) = key.split_once('\0') {
            let map = match dim {
                "state" => &mut s.by_state,
                "tier" => &mut s.by_tier,
                "region" => &mut s.by_region,
                "created_week" => &mut s.created_by_week,
                _ => return Ok(ControlFlow::Continue(())),
            };
            if n > 0 {
                map.insert(val.to_string(), n);
            }
        }
        Ok(ControlFlow::Continue(()))
    })?;
    s.total = s.by_state.values().sum();
    Ok(s)
}
