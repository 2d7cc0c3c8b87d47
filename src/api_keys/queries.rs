//! The read model of API keys: a tenant's keys (filtered), the keys without expiry, and the
//! check of a presented key that authentication runs on every request that carries one.

use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::model::*;
use crate::error::{Error, INVALID_QUERY, Result};
use crate::members::model::{PersonaState, tenant_key};
use crate::rbac::Scopes;
use crate::store::{Dir, Range, Reader, codec};

/// The stored key `id` of `tenant`.
///
/// Errors: 404 `not_found` (`api key`).
pub fn load(r: &impl Reader, tenant: &Uuid, id: &Uuid) -> Result<ApiKeyV1> {
    match r.get_record::<ApiKeyRecord>(API_KEYS, &tenant_key(tenant, id))? {
        Some(ApiKeyRecord::V1(k)) => Ok(k),
        None => Err(Error::not_found("api key", id.to_string())),
    }
}

/// The key `id` of `tenant`.
///
/// Errors: 404.
pub fn get(r: &impl Reader, tenant: &Uuid, id: &Uuid) -> Result<ApiKey> {
    Ok(load(r, tenant, id)?.view(*tenant, *id))
}

/// The filters of `GET /api/tenants/{id}/api-keys` and of the console's API keys page.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyFilter {
    /// The persona the keys act as.
    pub persona_id: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub state: Option<String>,
    /// `true`: only keys without an expiry (guide §3: flagged in compliance reviews).
    pub no_expiry: Option<bool>,
}

/// Every key of `tenant` matching `f` at `now`, newest first (a tenant holds at most
/// [`MAX_KEYS`]).
///
/// Errors: 400 `invalid_query`.
pub fn list(
    r: &impl Reader,
    tenant: &Uuid,
    f: &ApiKeyFilter,
    now: DateTime<Utc>,
) -> Result<Vec<ApiKey>> {
    let bad = |m: String| Error::bad_request(INVALID_QUERY, m);
    let persona = match f
        .persona_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(p) => Some(
            crate::ids::parse_uuid(p)
                .ok_or_else(|| bad(format!("persona_id '{p}' is not a UUID")))?,
        ),
        None => None,
    };
    let state = f
        .state
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(KeyState::parse)
        .transpose()
        .map_err(bad)?;
    let mut out = Vec::new();
    r.scan(
        API_KEYS,
        &Range::prefix(tenant.as_bytes()),
        Dir::Desc,
        &mut |k, v| {
            let Some(id) = k.get(16..32).and_then(|b| Uuid::from_slice(b).ok()) else {
                return Ok(ControlFlow::Continue(()));
            };
            let ApiKeyRecord::V1(rec) = codec::decode(API_KEYS.name(), v)?;
            let key = rec.view(*tenant, id);
            let keep = persona.is_none_or(|p| p == key.persona_id)
                && state.is_none_or(|s| s == key.state(now))
                && (f.no_expiry != Some(true)
                    || (key.expires_at.is_none() && key.state(now) == KeyState::Active));
            if keep {
                out.push(key);
            }
            Ok(ControlFlow::Continue(()))
        },
    )?;
    Ok(out)
}

/// What a valid key authenticates as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPrincipal {
    /// The tenant.
    pub tenant_id: Uuid,
    /// The key.
    pub key_id: Uuid,
    /// Its persona.
    pub persona_id: Uuid,
    /// The persona's display name.
    pub display_name: String,
    /// The key's scopes, narrowed to what the persona's roles grant now.
    pub scopes: Scopes,
}

/// Checks a presented key at `now`: its secret (current, or previous inside the grace window,
/// compared in constant time), that it is neither revoked nor expired, and that its persona is
/// active. `None` for anything else: the caller answers 401 without saying which.
pub fn authenticate(
    r: &impl Reader,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Option<KeyPrincipal>> {
    let Some((id, secret)) = split_key(key) else {
        return Ok(None);
    };
    let Some(tenant) = r
        .get(KEY_TENANTS, id.as_bytes())?
        .and_then(|b| Uuid::from_slice(&b).ok())
    else {
        return Ok(None);
    };
    let Ok(rec) = load(r, &tenant, &id) else {
        return Ok(None);
    };
    if !rec.opens(secret, now) || rec.view(tenant, id).state(now) != KeyState::Active {
        return Ok(None);
    }
    key_principal(r, tenant, id, &rec)
}

/// The principal of key `id` of `tenant` as it stands now (a tenant token's check on use): `None`
/// when the key is revoked or expired or its persona is not active.
pub fn principal_of(
    r: &impl Reader,
    tenant: &Uuid,
    id: &Uuid,
    now: DateTime<Utc>,
) -> Result<Option<KeyPrincipal>> {
    let Ok(rec) = load(r, tenant, id) else {
        return Ok(None);
    };
    if rec.view(*tenant, *id).state(now) != KeyState::Active {
        return Ok(None);
    }
    key_principal(r, *tenant, *id, &rec)
}

fn key_principal(
    r: &impl Reader,
    tenant: Uuid,
    id: Uuid,
    rec: &ApiKeyV1,
) -> Result<Option<KeyPrincipal>> {
    let persona_id = Uuid::from_bytes(rec.persona_id);
    let Ok(persona) = crate::members::queries::load_persona(r, &tenant, &persona_id) else {
        return Ok(None);
    };
    if persona.state != PersonaState::Active {
        return Ok(None);
    }
    let held = crate::members::queries::scopes_of(r, &tenant, &persona.roles)?;
    let scopes = Scopes::of(
        scopes_of_codes(&rec.scopes)
            .iter()
            .filter(|s| held.grants(*s)),
    );
    Ok(Some(KeyPrincipal {
        tenant_id: tenant,
        key_id: id,
        persona_id,
        display_name: persona.display_name,
        scopes,
    }))
}
