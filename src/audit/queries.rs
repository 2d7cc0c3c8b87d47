//! The read model of the ledger, shared by `GET /api/audit` and the console's audit page: the
//! filters as text, parsed once into a [`AuditQuery`], and a browse on a read snapshot.

use super::ledger::{self, AuditPage, AuditQuery};
use super::model::ChainId;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::page::Cursor;

/// The filters of a ledger browse as text (API.md `GET /api/audit`): the API's query string,
/// or what the console's form becomes. Empty values are no filter.
#[derive(Clone, Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// `platform` or `tenant:{uuid}`.
    pub chain: Option<String>,
    /// A tenant id (its chain).
    pub tenant_id: Option<String>,
    /// An actor id (operator username, `job:expire_trials`...).
    pub actor_id: Option<String>,
    /// An event name, e.g. `tenant.suspended.v1`.
    pub action: Option<String>,
    /// RFC 3339: entries at or after.
    pub from: Option<String>,
    /// RFC 3339: entries at or before.
    pub to: Option<String>,
    /// Page size, 1–500 (default 50).
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn parse_time(field: &str, s: &str) -> Result<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_micros())
        .map_err(|_| {
            Error::bad_request(
                crate::error::INVALID_QUERY,
                format!("{field} '{s}' is not an RFC 3339 time (e.g. 2026-11-21T10:00:00Z)"),
            )
        })
}

/// Parses a chain id from a query.
///
/// Errors: 400 `invalid_query`.
pub fn parse_chain(s: &str) -> Result<ChainId> {
    ChainId::parse(s).map_err(|m| Error::bad_request(crate::error::INVALID_QUERY, m))
}

impl AuditFilter {
    /// Parses into a query.
    ///
    /// Errors: 400 `invalid_query`.
    pub fn parse(self) -> Result<AuditQuery> {
        let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let chain = nonempty(self.chain).map(|c| parse_chain(&c)).transpose()?;
        let tenant = nonempty(self.tenant_id)
            .map(|t| {
                crate::ids::parse_uuid(&t)
                    .map(ChainId::Tenant)
                    .ok_or_else(|| {
                        Error::bad_request(
                            crate::error::INVALID_QUERY,
                            format!("tenant_id '{t}' is not a UUID"),
                        )
                    })
            })
            .transpose()?;
        if let (Some(c), Some(t)) = (chain, tenant)
            && c != t
        {
            return Err(Error::bad_request(
                crate::error::INVALID_QUERY,
                "chain and tenant_id name different chains",
            ));
        }
        let from = nonempty(self.from)
            .map(|f| parse_time("from", &f))
            .transpose()?;
        let to = nonempty(self.to)
            .map(|t| parse_time("to", &t))
            .transpose()?;
        let cursor = nonempty(self.cursor)
            .map(|c| Cursor::decode(&c))
            .transpose()?;
        Ok(AuditQuery {
            chain: chain.or(tenant),
            actor_id: nonempty(self.actor_id),
            action: nonempty(self.action),
            actor_kind: None,
            from,
            to,
            limit: crate::store::page::limit(self.limit)?,
            cursor,
        })
    }
}

/// One page of the ledger, newest first.
///
/// Errors: storage errors.
pub async fn browse(state: &AppState, q: AuditQuery) -> Result<AuditPage> {
    state.read(move |r| ledger::browse(r, &q)).await
}
