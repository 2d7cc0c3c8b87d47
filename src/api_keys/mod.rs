//! API keys and tenant access tokens (tenant admin guide §3; issue 9).
//!
//! - [`model`]: the key format, stored records, grace window, codes.
//! - [`service`]: issue, rotate, revoke, and the coalesced `last_used_at` write.
//! - [`queries`]: a tenant's keys, and the check of a presented key.
//! - [`tokens`]: EdDSA JWTs for API keys, and the JWKS.
//! - [`usage`]: last-use times noted in memory, flushed once a minute.
//! - [`api`]: `/api/tenants/{id}/api-keys`, `POST /api/auth/token`, `/.well-known/jwks.json`.
//! - [`views`]: the Tenant console's API keys page.
//!
//! The async functions here make secrets off the writer thread, then write; the secret of a new
//! or rotated key is in their result and nowhere else.

pub mod api;
pub mod model;
pub mod queries;
pub mod service;
pub mod tokens;
pub mod usage;
pub mod views;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::approvals::model::Held;
use crate::approvals::service::Guarded;
use crate::error::{Error, Result};
use crate::http::context::{ChecklistStep, Context, NavItem};
use crate::rbac::{Access, Permission, Principal, Route, Scope, Scopes};
use crate::state::AppState;
use crate::store::{ReadCtx, Reader, WriteCtx};
use model::{ApiKey, KEY_PREFIX};
use serde::{Deserialize, Serialize};
use service::{ApiKeyDraft, SecretParts};

/// The API keys context: its routes, pages, permission entries, sidebar items and events.
pub const CONTEXT: Context = Context {
    name: "api_keys",
    tags: &[
        ("api_keys", "A tenant's API keys (tenant admin guide §3)"),
        (
            "auth",
            "Tenant access tokens (EdDSA JWTs) and their verification keys",
        ),
    ],
    api: api::router,
    views: views::router,
    routes: ROUTES,
    nav: &[NavItem::tenant(
        "/tenant/{tenant_id}/api-keys",
        "API keys",
        Scope::ApiKeysRead,
    )
    .order(20)],
    events: &[
        "api_key.issued.v1",
        "api_key.rotated.v1",
        "api_key.revoked.v1",
    ],
    checklist: &[ChecklistStep {
        order: 2,
        title: "Issue a service key for your CI",
        hint: "Give an integration its own service persona and a key with only the scopes it needs, with an expiry.",
        path: "/tenant/{tenant_id}/api-keys",
        done: has_service_key,
    }],
    tenant_panels: &[views::tenant_panel],
    on_shred: &[service::shred_keys],
    approvables: &[crate::approvals::model::Approvable {
        action: ISSUE_ACTION,
        label: "Issue an API key",
        facts: &["scope_count"],
        execute: execute_issue,
    }],
    ..Context::EMPTY
};

/// The permission entry of every route of this context.
const ROUTES: &[Route] = {
    use Access::*;
    use Permission::*;
    use Scope::*;
    &[
        (
            "GET",
            "/api/tenants/{id}/api-keys",
            Tenant(ApiKeysRead, Read),
        ),
        (
            "POST",
            "/api/tenants/{id}/api-keys",
            Tenant(ApiKeysWrite, MembersManage),
        ),
        (
            "GET",
            "/api/tenants/{id}/api-keys/{key_id}",
            Tenant(ApiKeysRead, Read),
        ),
        (
            "POST",
            "/api/tenants/{id}/api-keys/{key_id}/rotate",
            Tenant(ApiKeysWrite, MembersManage),
        ),
        (
            "POST",
            "/api/tenants/{id}/api-keys/{key_id}/revoke",
            Tenant(ApiKeysWrite, MembersManage),
        ),
        ("POST", "/api/auth/token", Authenticated),
        ("GET", "/.well-known/jwks.json", Public),
        (
            "GET",
            "/tenant/{tenant_id}/api-keys",
            Tenant(ApiKeysRead, Read),
        ),
        (
            "POST",
            "/tenant/{tenant_id}/api-keys",
            Tenant(ApiKeysWrite, MembersManage),
        ),
        (
            "POST",
            "/tenant/{tenant_id}/api-keys/{key_id}/rotate",
            Tenant(ApiKeysWrite, MembersManage),
        ),
        (
            "POST",
            "/tenant/{tenant_id}/api-keys/{key_id}/revoke",
            Tenant(ApiKeysWrite, MembersManage),
        ),
    ]
};

/// Checklist step 2: an active key of a service persona exists.
fn has_service_key(r: &ReadCtx, tenant: &Uuid, now: DateTime<Utc>) -> Result<bool> {
    let keys = queries::list(r, tenant, &queries::ApiKeyFilter::default(), now)?;
    for k in keys
        .iter()
        .filter(|k| k.state(now) == model::KeyState::Active)
    {
        if crate::members::queries::load_persona(r, tenant, &k.persona_id)
            .is_ok_and(|p| p.kind == crate::members::model::PersonaKind::Service)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A new secret for key `id`: the full key (shown once) and its stored parts.
fn new_secret(id: &Uuid) -> Result<(String, SecretParts)> {
    let secret = B64URL.encode(crate::operators::service::random32()?);
    let key = format!("{KEY_PREFIX}{}_{secret}", id.simple());
    Ok((
        key,
        SecretParts {
            hash: model::hash_secret(&secret),
            hint: secret[..4].to_string(),
        },
    ))
}

/// The scopes a tenant principal may hand out (none for operators: their role decides).
pub fn issuer_scopes(p: &Principal) -> Option<Scopes> {
    p.tenant().map(|t| t.scopes)
}

/// Checks and issues a key; returns it with the full key, which is shown once.
///
/// Errors: 422 `validation_failed`; 404; 409 `tenant_read_only`, `persona_revoked`,
/// `api_key_limit`.
pub async fn issue(
    state: &AppState,
    p: &Principal,
    tenant: Uuid,
    draft: ApiKeyDraft,
) -> Result<Issued> {
    let input = draft.clone().parse()?;
    let id = crate::ids::new_id(state.clock().now());
    let (key, parts) = new_secret(&id)?;
    let issuer = issuer_scopes(p);
    let held = Held::new(
        ISSUE_ACTION,
        Some(tenant),
        &IssueInputs {
            tenant_id: tenant,
            id,
            persona_id: draft.persona_id.clone(),
            name: draft.name.clone(),
            scopes: draft.scopes.clone(),
            expires_at: draft.expires_at.clone(),
            hash: hex::encode(parts.hash),
            hint: parts.hint.clone(),
            issuer: issuer.map(Scopes::to_claim),
        },
        format!(
            "Issue API key {} ({})",
            draft.name.trim(),
            draft.scopes.join(" ")
        ),
    )?;
    let scope_count = i64::try_from(draft.scopes.len()).unwrap_or(i64::MAX);
    let checked = input.clone();
    let g = crate::approvals::guarded(
        state,
        p,
        held,
        vec![("scope_count".into(), scope_count)],
        move |r| service::check_issue(r, r.now, &tenant, &checked, issuer),
        move |ctx| service::issue(ctx, &tenant, &id, &input, &parts, issuer),
    )
    .await?;
    Ok(match g {
        Guarded::Done(k) => Issued::Done(k, key),
        Guarded::Held(req) => Issued::Held(req, key),
    })
}

/// What issuing a key gave: the key and its full secret (shown once), or, when an approval
/// route held it, the request and the full secret, which works once the request is approved.
#[derive(Debug)]
pub enum Issued {
    /// Issued.
    Done(ApiKey, String),
    /// Held for approval.
    Held(Box<crate::approvals::model::Request>, String),
}

/// The action type of issuing a key, for approval routes.
pub const ISSUE_ACTION: &str = "api_key.issue";

/// What an approval request holds to issue a key later: the draft, the key's id and its
/// secret's hash (the full secret went to the requester, once).
#[derive(Serialize, Deserialize)]
struct IssueInputs {
    tenant_id: Uuid,
    id: Uuid,
    persona_id: String,
    name: String,
    scopes: Vec<String>,
    expires_at: Option<String>,
    hash: String,
    hint: String,
    issuer: Option<String>,
}

/// Issues the key an approved request holds, re-checked now.
fn execute_issue(ctx: &mut WriteCtx<'_>, held: &Held) -> Result<serde_json::Value> {
    let i: IssueInputs = held.inputs()?;
    let input = ApiKeyDraft {
        persona_id: i.persona_id,
        name: i.name,
        scopes: i.scopes,
        expires_at: i.expires_at,
    }
    .parse()?;
    let hash: [u8; 32] = hex::decode(&i.hash)
        .ok()
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| Error::Internal("held key hash is malformed".into()))?;
    let issuer = i
        .issuer
        .map(|c| {
            let names: Vec<String> = c.split_whitespace().map(String::from).collect();
            crate::members::model::parse_scopes(&names)
        })
        .transpose()
        .map_err(Error::Internal)?;
    let parts = SecretParts { hash, hint: i.hint };
    let k = service::issue(ctx, &i.tenant_id, &i.id, &input, &parts, issuer)?;
    Ok(serde_json::json!({"api_key_id": k.id, "prefix": k.prefix, "name": k.name}))
}

/// Rotates a key; returns it, the new full key (shown once), and the end of the old secret's
/// grace window.
///
/// Errors: 404; 409 `tenant_read_only`, `api_key_revoked`.
pub async fn rotate(
    state: &AppState,
    p: &Principal,
    tenant: Uuid,
    id: Uuid,
) -> Result<(ApiKey, String, DateTime<Utc>)> {
    let (key, parts) = new_secret(&id)?;
    let (k, until) = state
        .write(p.actor.clone(), move |ctx| {
            service::rotate(ctx, &tenant, &id, &parts)
        })
        .await?;
    Ok((k, key, until))
}

/// A tenant token just issued.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    /// The compact JWT.
    pub access_token: String,
    /// Seconds it lives.
    pub expires_in: i64,
    /// Space-separated scopes.
    pub scope: String,
    /// Its claims.
    pub claims: tokens::Claims,
}

/// Exchanges the API key the caller authenticated with for a tenant token of `ttl_secs`
/// (default 15 minutes), holding `scope` when given (a subset of the key's).
///
/// Errors: 403 `forbidden` unless the caller authenticated with an API key; 422 for a lifetime
/// outside 60 s–15 min or scopes beyond the key's.
pub fn exchange(
    state: &AppState,
    p: &Principal,
    ttl_secs: Option<i64>,
    scope: Option<&str>,
) -> Result<IssuedToken> {
    let Some(t) = p.tenant() else {
        return Err(Error::Forbidden(
            "POST /api/auth/token exchanges a tenant API key: send it as 'Authorization: Bearer tk_...'".into(),
        ));
    };
    let crate::rbac::Credential::ApiKey(key_id) = t.credential else {
        return Err(Error::Forbidden(
            "only an API key is exchanged for a token (a token cannot renew itself)".into(),
        ));
    };
    let ttl = ttl_secs.unwrap_or(tokens::DEFAULT_TTL_SECS);
    if !(tokens::MIN_TTL_SECS..=tokens::DEFAULT_TTL_SECS).contains(&ttl) {
        return Err(Error::invalid(
            "expires_in",
            format!(
                "a token lives {}-{} seconds",
                tokens::MIN_TTL_SECS,
                tokens::DEFAULT_TTL_SECS
            ),
        ));
    }
    let scopes = match scope.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => {
            let names: Vec<String> = s.split_whitespace().map(String::from).collect();
            let asked = crate::members::model::parse_scopes(&names)
                .map_err(|m| Error::invalid("scope", m))?;
            if !t.scopes.covers(asked) {
                return Err(Error::invalid(
                    "scope",
                    format!(
                        "a token holds at most its key's scopes ({})",
                        t.scopes.to_claim()
                    ),
                ));
            }
            asked
        }
        None => t.scopes,
    };
    let now = state.clock().now();
    let (access_token, claims) = state
        .tokens()
        .issue(
            &t.tenant_id,
            &t.persona_id,
            &key_id,
            scopes.to_claim(),
            now,
            ttl,
        )
        .map_err(Error::Internal)?;
    Ok(IssuedToken {
        access_token,
        expires_in: ttl,
        scope: claims.scope.clone(),
        claims,
    })
}

/// Writes the noted key uses every [`usage::FLUSH_EVERY`], and once more on the way out.
pub async fn flush_loop(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(usage::FLUSH_EVERY) => false,
            _ = stop.changed() => true,
        };
        flush(&state).await;
        if stopping || *stop.borrow() {
            break;
        }
    }
}

/// Writes the noted key uses now, in one write request.
pub async fn flush(state: &AppState) {
    let used = state.last_used().drain();
    if used.is_empty() {
        return;
    }
    let n = used.len();
    if let Err(e) = state
        .write(
            crate::actor::Actor::system("api_keys:last_used"),
            move |ctx| service::record_usage(ctx, &used),
        )
        .await
    {
        tracing::warn!(error = %e, keys = n, "recording API key use failed");
    }
}

/// The key principal of a presented `tk_` key at `now`, noting its use.
pub async fn authenticate(state: &AppState, key: &str) -> Result<Option<queries::KeyPrincipal>> {
    let now = state.clock().now();
    let k = key.to_string();
    let found = state
        .read(move |r| queries::authenticate(r, &k, now))
        .await?;
    if let Some(p) = &found {
        state.last_used().note(p.tenant_id, p.key_id, now);
    }
    Ok(found)
}

/// The key principal behind a presented tenant token at `now`: the signature and lifetime
/// verify, and its key and persona are still active (a revoke stops its tokens). The scopes are
/// the token's, narrowed to what the key holds now.
pub async fn authenticate_token(
    state: &AppState,
    jwt: &str,
) -> Result<Option<(queries::KeyPrincipal, String)>> {
    let now = state.clock().now();
    let Ok(claims) = state.tokens().verify(jwt, now) else {
        return Ok(None);
    };
    let (Some(tenant), Some(key)) = (
        crate::ids::parse_uuid(&claims.tenant_id),
        crate::ids::parse_uuid(&claims.akid),
    ) else {
        return Ok(None);
    };
    let found = state
        .read(move |r| queries::principal_of(r, &tenant, &key, now))
        .await?;
    Ok(found
        .filter(|p| p.persona_id.to_string() == claims.sub)
        .map(|mut p| {
            let names: Vec<String> = claims.scope.split_whitespace().map(String::from).collect();
            let held = crate::members::model::parse_scopes(&names).unwrap_or_default();
            p.scopes = Scopes::of(held.iter().filter(|s| p.scopes.grants(*s)));
            (p, claims.jti)
        }))
}

/// The active keys without expiry of `tenant` at `now` (the operator's tenant detail).
pub fn without_expiry(r: &impl Reader, tenant: &Uuid, now: DateTime<Utc>) -> Result<Vec<ApiKey>> {
    queries::list(
        r,
        tenant,
        &queries::ApiKeyFilter {
            no_expiry: Some(true),
            ..Default::default()
        },
        now,
    )
}
