//! The read model of approvals: pages of requests (the platform's, newest first from the
//! request table; a tenant's, from its index), filtered by state, by the caller's part
//! (`mine=decide`: waiting for the caller's decision; `mine=requested`: asked by the caller)
//! and by breach; and the pending count the pages' badges show.

use serde::Deserialize;
use uuid::Uuid;

use super::model::*;
use crate::clock::to_micros;
use crate::error::{Error, INVALID_QUERY, Result};
use crate::store::page::{self, Cursor, Page, Scan, Step};
use crate::store::{Dir, Range, Reader, codec};

/// The filters of `GET /api/approvals` and `GET /api/tenants/{id}/approvals`.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ApprovalFilter {
    /// `pending`, `approved`, `rejected`, `expired`, `executed` or `failed`.
    pub state: Option<String>,
    /// `decide`: pending requests the caller may decide now (not its own, not decided yet);
    /// `requested`: the caller's own requests.
    pub mine: Option<String>,
    /// `true`: only pending requests past their SLA (the Breaches page).
    pub breached: Option<bool>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The caller's part a list keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mine {
    /// Requests the caller may decide now.
    Decide,
    /// The caller's own requests.
    Requested,
}

/// Is request `rec` waiting for `who`'s decision at `now` (µs)?
pub fn awaits(rec: &RequestV1, who: &Decider, now: i64) -> bool {
    rec.state == State::Pending
        && now < rec.expires_at
        && super::service::eligible(rec, who).is_ok()
}

/// A page of requests, newest first: every request (`tenant` none, the operators' view) or
/// those concerning `tenant`, filtered by `f` for `who` at `now`.
///
/// Errors: 400 `invalid_query`, `invalid_cursor`.
pub fn list(
    r: &impl Reader,
    tenant: Option<&Uuid>,
    f: &ApprovalFilter,
    who: &Decider,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Page<Request>> {
    let state = f
        .state
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(State::parse)
        .transpose()
        .map_err(|m| Error::bad_request(INVALID_QUERY, m))?;
    let mine = match f.mine.as_deref().map(str::trim) {
        None | Some("") => None,
        Some("decide") => Some(Mine::Decide),
        Some("requested") => Some(Mine::Requested),
        Some(m) => {
            return Err(Error::bad_request(
                INVALID_QUERY,
                format!("mine '{m}' is invalid: use decide or requested"),
            ));
        }
    };
    let breached = f.breached.unwrap_or(false);
    let now = to_micros(now);
    let keep = |rec: &RequestV1| {
        state.is_none_or(|s| rec.state == s)
            && (!breached || (rec.state == State::Pending && rec.breached_at.is_some()))
            && match mine {
                None => true,
                Some(Mine::Decide) => awaits(rec, who, now),
                Some(Mine::Requested) => rec.requester == who.person,
            }
    };
    let cursor = f.cursor.as_deref().map(Cursor::decode).transpose()?;
    let limit = page::limit(f.limit)?;
    match tenant {
        None => {
            let scan = Scan {
                table: REQUESTS,
                range: Range::all(),
                dir: Dir::Desc,
                limit,
                cursor: cursor.as_ref(),
                budget: Some(5_000),
            };
            page::page(r, scan, |k, v| -> Result<Step<Request>> {
                let Ok(id) = Uuid::from_slice(k) else {
                    return Ok(Step::Skip);
                };
                let RequestRecord::V1(rec) = codec::decode(REQUESTS.name(), v)?;
                Ok(if keep(&rec) {
                    Step::Keep(Request { id, request: rec })
                } else {
                    Step::Skip
                })
            })
        }
        Some(t) => {
            let scan = Scan {
                table: BY_TENANT,
                range: Range::prefix(t.as_bytes()),
                dir: Dir::Desc,
                limit,
                cursor: cursor.as_ref(),
                budget: Some(5_000),
            };
            page::page(r, scan, |k, _| -> Result<Step<Request>> {
                let Some(id) = k.get(16..32).and_then(|b| Uuid::from_slice(b).ok()) else {
                    return Ok(Step::Skip);
                };
                let rec = super::service::load(r, &id)?;
                Ok(if keep(&rec) {
                    Step::Keep(Request { id, request: rec })
                } else {
                    Step::Skip
                })
            })
        }
    }
}

/// The request `id`, limited to `tenant`'s when given.
///
/// Errors: 404.
pub fn get(r: &impl Reader, id: &Uuid, tenant: Option<&Uuid>) -> Result<Request> {
    let rec = super::service::load(r, id)?;
    if tenant.is_some_and(|t| rec.held.tenant_id.as_ref() != Some(t)) {
        return Err(Error::not_found("approval request", id.to_string()));
    }
    Ok(Request {
        id: *id,
        request: rec,
    })
}
