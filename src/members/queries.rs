//! The read model of a tenant's members: personas (paged, filtered), roles and their scopes,
//! business units, counters, invites and Tenant-console sessions. Shared by the API, the Tenant
//! console, the operator's tenant detail and the authentication middleware.

use std::ops::ControlFlow;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::model::*;
use crate::clock::from_micros;
use crate::error::{Error, INVALID_QUERY, Result};
use crate::operators::model::SessionLimits;
use crate::rbac::Scopes;
use crate::store::keys::Key;
use crate::store::page::{self, Cursor, Page, Scan, Step};
use crate::store::{Dir, Range, Reader, codec};

/// Most rows one page of personas examines before it returns what it has (with a cursor).
const SCAN_BUDGET: usize = 5_000;

/// The stored persona `id` of `tenant`.
///
/// Errors: 404 `not_found` (`persona`).
pub fn load_persona(r: &impl Reader, tenant: &Uuid, id: &Uuid) -> Result<PersonaV1> {
    match r.get_record::<PersonaRecord>(PERSONAS, &tenant_key(tenant, id))? {
        Some(PersonaRecord::V1(p)) => Ok(p),
        None => Err(Error::not_found("persona", id.to_string())),
    }
}

/// The persona `id` of `tenant`.
///
/// Errors: 404.
pub fn persona(r: &impl Reader, tenant: &Uuid, id: &Uuid) -> Result<Persona> {
    Ok(load_persona(r, tenant, id)?.view(*tenant, *id))
}

/// The persona of `tenant` with this (lowercased) email, with its record (password hash
/// included), for signing in.
pub fn by_email(r: &impl Reader, tenant: &Uuid, email: &str) -> Result<Option<(Uuid, PersonaV1)>> {
    let Some(id) = r
        .get(PERSONA_EMAILS, &tenant_name_key(tenant, email))?
        .and_then(|b| Uuid::from_slice(&b).ok())
    else {
        return Ok(None);
    };
    Ok(Some((id, load_persona(r, tenant, &id)?)))
}

/// The personas filters as text: the query string of `GET /api/tenants/{id}/personas`, of
/// `GET /api/personas` (across tenants) and of the console's Members pages. Empty values are no
/// filter.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PersonaFilter {
    /// `human` or `service`.
    pub kind: Option<String>,
    /// `invited`, `active` or `revoked`.
    pub state: Option<String>,
    /// A business unit id.
    pub bu_id: Option<String>,
    /// A role name.
    pub role: Option<String>,
    /// Case-insensitive substring of the display name or email.
    pub q: Option<String>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A parsed [`PersonaFilter`].
#[derive(Clone, Debug, Default)]
pub struct PersonaQuery {
    kind: Option<PersonaKind>,
    state: Option<PersonaState>,
    bu_id: Option<Uuid>,
    role: Option<String>,
    q: Option<String>,
    limit: usize,
    cursor: Option<Cursor>,
}

fn some(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl PersonaFilter {
    /// Parses into a query.
    ///
    /// Errors: 400 `invalid_query` naming the bad parameter; 400 `invalid_cursor`.
    pub fn parse(&self) -> Result<PersonaQuery> {
        let bad = |m: String| Error::bad_request(INVALID_QUERY, m);
        Ok(PersonaQuery {
            kind: some(&self.kind)
                .map(PersonaKind::parse)
                .transpose()
                .map_err(bad)?,
            state: some(&self.state)
                .map(PersonaState::parse)
                .transpose()
                .map_err(bad)?,
            bu_id: some(&self.bu_id)
                .map(|b| {
                    crate::ids::parse_uuid(b)
                        .ok_or_else(|| bad(format!("bu_id '{b}' is not a UUID")))
                })
                .transpose()?,
            role: some(&self.role).map(str::to_string),
            q: some(&self.q).map(str::to_lowercase),
            limit: page::limit(self.limit)?,
            cursor: self.cursor.as_deref().map(Cursor::decode).transpose()?,
        })
    }
}

impl PersonaQuery {
    fn keeps(&self, p: &PersonaV1) -> bool {
        self.kind.is_none_or(|k| k == p.kind)
            && self.state.is_none_or(|s| s == p.state)
            && self.bu_id.is_none_or(|b| p.bu_id == Some(b.into_bytes()))
            && self.role.as_ref().is_none_or(|r| p.roles.contains(r))
            && self.q.as_ref().is_none_or(|q| {
                p.display_name.to_lowercase().contains(q)
                    || p.email.as_ref().is_some_and(|e| e.contains(q))
            })
    }
}

/// A page of `tenant`'s personas (all tenants' when `None`), oldest first, filtered.
///
/// Errors: 400 `invalid_cursor`; storage errors.
pub fn list(r: &impl Reader, tenant: Option<&Uuid>, q: &PersonaQuery) -> Result<Page<Persona>> {
    let range = match tenant {
        Some(t) => Range::prefix(t.as_bytes()),
        None => Range::all(),
    };
    let scan = Scan {
        table: PERSONAS,
        range,
        dir: Dir::Asc,
        limit: q.limit,
        cursor: q.cursor.as_ref(),
        budget: Some(SCAN_BUDGET),
    };
    page::page(r, scan, |k, v| -> Result<Step<Persona>> {
        let (Some(t), Some(id)) = (
            k.get(..16).and_then(|b| Uuid::from_slice(b).ok()),
            k.get(16..32).and_then(|b| Uuid::from_slice(b).ok()),
        ) else {
            return Ok(Step::Skip);
        };
        let PersonaRecord::V1(p) = codec::decode(PERSONAS.name(), v)?;
        Ok(if q.keeps(&p) {
            Step::Keep(p.view(t, id))
        } else {
            Step::Skip
        })
    })
}

/// The roles of `tenant`, by name.
pub fn roles(r: &impl Reader, tenant: &Uuid) -> Result<Vec<Role>> {
    let prefix = Key::new().uuid(tenant).into_bytes();
    let mut out = Vec::new();
    r.scan(ROLES, &Range::prefix(&prefix), Dir::Asc, &mut |k, v| {
        let name = crate::store::keys::KeyReader::new(&k[prefix.len()..])
            .str()
            .unwrap_or_default();
        out.push(codec::decode::<RoleRecord>(ROLES.name(), v)?.view(name));
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(out)
}

/// The scopes the roles `names` of `tenant` grant together (unknown names grant nothing).
pub fn scopes_of(r: &impl Reader, tenant: &Uuid, names: &[String]) -> Result<Scopes> {
    let mut scopes = Scopes::NONE;
    for n in names {
        if let Some(rec) = r.get_record::<RoleRecord>(ROLES, &tenant_name_key(tenant, n))? {
            scopes = scopes.union(rec.view(n.clone()).scopes);
        }
    }
    Ok(scopes)
}

/// The business units of `tenant`, in creation order.
pub fn business_units(r: &impl Reader, tenant: &Uuid) -> Result<Vec<BusinessUnit>> {
    let mut out = Vec::new();
    r.scan(
        BUSINESS_UNITS,
        &Range::prefix(tenant.as_bytes()),
        Dir::Asc,
        &mut |k, v| {
            if let Some(id) = k.get(16..32).and_then(|b| Uuid::from_slice(b).ok()) {
                out.push(
                    codec::decode::<BusinessUnitRecord>(BUSINESS_UNITS.name(), v)?
                        .view(*tenant, id),
                );
            }
            Ok(ControlFlow::Continue(()))
        },
    )?;
    Ok(out)
}

/// The business unit `id` of `tenant`.
///
/// Errors: 404.
pub fn business_unit(r: &impl Reader, tenant: &Uuid, id: &Uuid) -> Result<BusinessUnit> {
    r.get_record::<BusinessUnitRecord>(BUSINESS_UNITS, &tenant_key(tenant, id))?
        .map(|b| b.view(*tenant, *id))
        .ok_or_else(|| Error::not_found("business unit", id.to_string()))
}

/// How many personas (revoked ones included) sit in business unit `bu` of `tenant`.
pub fn members_of_bu(r: &impl Reader, tenant: &Uuid, bu: &Uuid) -> Result<u64> {
    let mut n = 0;
    r.scan(
        PERSONAS,
        &Range::prefix(tenant.as_bytes()),
        Dir::Asc,
        &mut |_, v| {
            let PersonaRecord::V1(p) = codec::decode(PERSONAS.name(), v)?;
            if p.bu_id == Some(bu.into_bytes()) && p.state != PersonaState::Revoked {
                n += 1;
            }
            Ok(ControlFlow::Continue(()))
        },
    )?;
    Ok(n)
}

/// A counter of `tenant` ([`COUNTS`]); 0 when never set.
pub fn counter(r: &impl Reader, tenant: &Uuid, name: &str) -> Result<u64> {
    Ok(r.get(COUNTS, &tenant_name_key(tenant, name))?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes))
}

/// The member counters of `tenant`.
pub fn counts(r: &impl Reader, tenant: &Uuid) -> Result<MemberCounts> {
    Ok(MemberCounts {
        members: counter(r, tenant, counter::MEMBERS)?,
        invited: counter(r, tenant, counter::INVITED)?,
        revoked: counter(r, tenant, counter::REVOKED)?,
        business_units: counter(r, tenant, counter::BUSINESS_UNITS)?,
    })
}

/// The `(tenant, persona)` of the pending invite whose token hashes to `hash`, unless it expired
/// by `now`.
pub fn invite(
    r: &impl Reader,
    hash: &[u8; 32],
    now: DateTime<Utc>,
) -> Result<Option<(Uuid, Uuid)>> {
    Ok(match r.get_record::<InviteRecord>(INVITES, hash)? {
        Some(InviteRecord::V1 {
            tenant_id,
            persona_id,
            expires_at,
            ..
        }) if now < from_micros(expires_at) => {
            Some((Uuid::from_bytes(tenant_id), Uuid::from_bytes(persona_id)))
        }
        _ => None,
    })
}

/// The live Tenant-console session for `key` with its persona; `None` when unknown, past its
/// idle or absolute limit, or the persona is no longer active.
pub fn session(
    r: &impl Reader,
    key: &[u8; 32],
    now: DateTime<Utc>,
    limits: SessionLimits,
) -> Result<Option<(TenantSession, PersonaV1)>> {
    let Some(TenantSessionRecord::V1 {
        tenant_id,
        persona_id,
        csrf,
        created_at,
        last_seen,
    }) = r.get_record::<TenantSessionRecord>(SESSIONS, key)?
    else {
        return Ok(None);
    };
    let (created, seen) = (from_micros(created_at), from_micros(last_seen));
    if now - seen > limits.idle || now - created > limits.absolute {
        return Ok(None);
    }
    let (tenant, id) = (Uuid::from_bytes(tenant_id), Uuid::from_bytes(persona_id));
    let rec = match load_persona(r, &tenant, &id) {
        Ok(p) if p.state == PersonaState::Active => p,
        _ => return Ok(None),
    };
    Ok(Some((
        TenantSession {
            key: *key,
            tenant_id: tenant,
            persona_id: id,
            csrf: B64URL.encode(csrf),
            created_at: created,
            last_seen: seen,
        },
        rec,
    )))
}
