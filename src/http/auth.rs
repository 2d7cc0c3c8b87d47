//! Authentication, and the route guard's step that runs the one permission check on every
//! route ([`admit`]).
//!
//! Credentials, in order:
//! - `Authorization: Bearer <token>` or `x-admin-ops-token: <token>` (API.md "Authentication"):
//!   the bootstrap `admin_ops_token` (acts as `super_admin`, compared in constant time), an
//!   operator token `tnt_…` (acts with its operator's role; only its SHA-256 is stored), a
//!   tenant API key `tk_…` (acts as its persona, with the key's scopes), or a tenant access
//!   token (an EdDSA JWT for an API key, checked against the key's and persona's state on use);
//! - on Tenant-console pages (`/tenant/{tenant_id}/...`), that tenant's session cookie (scoped
//!   to its path, so it never reaches `/platform`), else the operator's session during a visit;
//! - the console session cookie, for console routes and for safe (`GET`/`HEAD`) API requests
//!   such as CSV and NDJSON exports. Unsafe API requests never ride on a cookie, so the JSON
//!   API needs no CSRF protection; console forms carry a per-session CSRF token, checked once the body is bounded
//!   ([`super::body::check_csrf`]).
//!
//! Then [`crate::rbac::RouteTable::authorize`] decides, with the route's tenant parameter: a
//! tenant principal naming another tenant gets 404. On Tenant-console pages an operator needs
//! an active visit of that tenant, and a visit that is not elevated refuses every write (403
//! `impersonation_read_only`).
//!
//! Console refusals are pages: no credentials redirects to the console's sign-in, a missing
//! permission is a 403 page; API refusals are problem+json.

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};

use std::sync::Arc;

use uuid::Uuid;

use super::context::Registry;
use super::credentials::{SESSION_COOKIE, TENANT_SESSION_COOKIE, cookie, presented_token};
use super::problem::ApiError;
use crate::actor::Actor;
use crate::error::Error;
use crate::operators::service;
use crate::rbac::{
    self, Access, Credential, Principal, PrincipalKind, Refusal, Role, SessionRef, TenantPrincipal,
};
use crate::state::AppState;

/// Actor id of the bootstrap token in the ledger.
pub const ADMIN_OPS_ACTOR: &str = "admin-ops-token";
/// A session's last-seen time is refreshed at most this often (a write per request would cost an
/// fsync each).
const TOUCH_EVERY_SECS: i64 = 60;

fn operator_principal(
    id: Uuid,
    rec: &crate::operators::model::OperatorV1,
    session: Option<crate::operators::model::Session>,
) -> Principal {
    Principal::operator(
        Actor::operator(rec.username.clone()),
        rec.display_name.clone(),
        rec.role,
        Some(id),
        session.map(|s| SessionRef {
            key: s.key,
            csrf: s.csrf,
            created_at: s.created_at,
        }),
    )
}

fn key_principal(p: crate::api_keys::queries::KeyPrincipal, credential: Credential) -> Principal {
    Principal {
        actor: Actor::api_key(p.key_id.to_string()),
        display_name: p.display_name,
        session: None,
        kind: PrincipalKind::Tenant(TenantPrincipal {
            tenant_id: p.tenant_id,
            persona_id: p.persona_id,
            scopes: p.scopes,
            credential,
        }),
    }
}

/// Which session cookie a request may ride on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cookies {
    /// None (unsafe API requests).
    No,
    /// The operator console's.
    Operator,
    /// A Tenant-console page of this tenant: its tenant session, else an operator's.
    Tenant(Uuid),
}

/// Resolves a bearer credential: `Ok(None)` when none was sent, `Err(401)` for one that matches
/// nothing.
async fn bearer(state: &AppState, headers: &HeaderMap) -> Result<Option<Principal>, Error> {
    let Some(token) = presented_token(headers) else {
        return Ok(None);
    };
    if let Some(secret) = &state.config().admin_ops_token
        && secret.matches(token)
    {
        return Ok(Some(Principal::operator(
            Actor::operator(ADMIN_OPS_ACTOR),
            "admin ops token".into(),
            Role::SuperAdmin,
            None,
            None,
        )));
    }
    if token.starts_with(crate::operators::model::TOKEN_PREFIX) {
        let t = token.to_string();
        if let Some((id, rec)) = state
            .read(move |r| crate::operators::queries::token_operator(r, &t))
            .await?
        {
            return Ok(Some(operator_principal(id, &rec, None)));
        }
    } else if token.starts_with(crate::api_keys::model::KEY_PREFIX) {
        if let Some(p) = crate::api_keys::authenticate(state, token).await? {
            let key = p.key_id;
            return Ok(Some(key_principal(p, Credential::ApiKey(key))));
        }
    } else if crate::api_keys::tokens::looks_like_jwt(token)
        && let Some((p, jti)) = crate::api_keys::authenticate_token(state, token).await?
    {
        let key_id = p.key_id;
        return Ok(Some(key_principal(p, Credential::Token { key_id, jti })));
    }
    Err(Error::Unauthorized(
        "the token is not valid (unknown, expired, rotated out or revoked, or its operator or persona is disabled): check admin_ops_token (TENANTRY_ADMIN_OPS_TOKEN), create an operator token, or exchange a live tenant API key".into(),
    ))
}

/// The operator behind the console session cookie, if live.
async fn operator_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Principal>, Error> {
    let Some(cookie) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let key = service::secret_key(cookie);
    let now = state.clock().now();
    let limits = state.session_limits();
    let Some((session, rec)) = state
        .read(move |r| crate::operators::queries::session(r, &key, now, limits))
        .await?
    else {
        return Ok(None);
    };
    if (now - session.last_seen).num_seconds() >= TOUCH_EVERY_SECS {
        let st = state.clone();
        let actor = Actor::operator(rec.username.clone());
        // The session was seen at `now`, the time of this request, whenever the write runs.
        tokio::spawn(async move {
            if let Err(e) = st
                .store()
                .write(now, actor, move |ctx| service::touch_session(ctx, &key))
                .await
            {
                tracing::warn!(error = %e, "refreshing a session failed");
            }
        });
    }
    let id = session.operator_id;
    Ok(Some(operator_principal(id, &rec, Some(session))))
}

/// The member behind tenant `tenant`'s console session cookie, if live and of that tenant.
async fn tenant_session(
    state: &AppState,
    headers: &HeaderMap,
    tenant: Uuid,
) -> Result<Option<Principal>, Error> {
    let Some(cookie) = cookie(headers, TENANT_SESSION_COOKIE) else {
        return Ok(None);
    };
    let key = service::secret_key(cookie);
    let now = state.clock().now();
    let limits = state.session_limits();
    let found = state
        .read(move |r| {
            let Some((session, rec)) = crate::members::queries::session(r, &key, now, limits)?
            else {
                return Ok(None);
            };
            if session.tenant_id != tenant {
                return Ok(None);
            }
            let scopes = crate::members::queries::scopes_of(r, &tenant, &rec.roles)?;
            Ok(Some((session, rec, scopes)))
        })
        .await?;
    let Some((session, rec, scopes)) = found else {
        return Ok(None);
    };
    if (now - session.last_seen).num_seconds() >= TOUCH_EVERY_SECS {
        let st = state.clone();
        let actor = Actor::persona(session.persona_id.to_string());
        tokio::spawn(async move {
            if let Err(e) = st
                .store()
                .write(now, actor, move |ctx| {
                    crate::members::service::touch_session(ctx, &key)
                })
                .await
            {
                tracing::warn!(error = %e, "refreshing a tenant session failed");
            }
        });
    }
    Ok(Some(Principal {
        actor: Actor::persona(session.persona_id.to_string()),
        display_name: rec.display_name,
        session: Some(SessionRef {
            key: session.key,
            csrf: session.csrf,
            created_at: session.created_at,
        }),
        kind: PrincipalKind::Tenant(TenantPrincipal {
            tenant_id: tenant,
            persona_id: session.persona_id,
            scopes,
            credential: Credential::Session,
        }),
    }))
}

/// Resolves the caller: `Ok(None)` without credentials, `Err(401)` with a token that matches
/// nothing. An unknown or expired session cookie is simply no credentials. On a tenant's
/// console, an operator's session carries its active visit of that tenant, if any.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    cookies: Cookies,
) -> Result<Option<Principal>, Error> {
    if let Some(p) = bearer(state, headers).await? {
        return Ok(Some(p));
    }
    match cookies {
        Cookies::No => Ok(None),
        Cookies::Operator => operator_session(state, headers).await,
        Cookies::Tenant(tenant) => {
            if let Some(p) = tenant_session(state, headers, tenant).await? {
                return Ok(Some(p));
            }
            let Some(mut p) = operator_session(state, headers).await? else {
                return Ok(None);
            };
            if let (Some(operator), PrincipalKind::Operator { visit, .. }) =
                (p.operator_id(), &mut p.kind)
            {
                let now = state.clock().now();
                *visit = state
                    .read(move |r| {
                        crate::impersonations::queries::active_visit(r, &operator, &tenant, now)
                    })
                    .await?;
            }
            Ok(Some(p))
        }
    }
}

/// The tenant a route names: the `{id}` of `/api/tenants/{id}/...` or the `{tenant_id}` of
/// `/tenant/{tenant_id}/...`, read from the request path at the template's position.
pub fn tenant_param<'a>(template: &str, path: &'a str) -> Option<&'a str> {
    let at = if template.starts_with("/api/tenants/{id}") {
        3
    } else if template.starts_with("/tenant/{tenant_id}") {
        2
    } else {
        return None;
    };
    path.split('/').nth(at)
}

/// The route guard's first step (`http::guard`): authenticates, calls
/// [`rbac::RouteTable::authorize`] with the matched route template and its tenant parameter,
/// and enforces visits on Tenant-console pages (the body limit and the CSRF check of console
/// forms follow, in [`super::body`]). Gives the request back with its [`Principal`], and the
/// soft caps the route's tenant is over, for [`warn_over`]; or the refusal (401, 403, or a
/// console's sign-in redirect). Requests that matched no route pass through to the 404
/// fallback.
pub async fn admit(
    state: &AppState,
    mut req: Request,
) -> Result<(Request, Vec<crate::catalogs::caps::Over>), Response> {
    let Some(template) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
    else {
        return Ok((req, Vec::new()));
    };
    let Some(registry) = req.extensions().get::<Arc<Registry>>().cloned() else {
        tracing::error!("the registry is not in the request; refusing");
        return Err(ApiError::Domain(Error::Internal("no route registry".into())).into_response());
    };
    let routes = registry.routes();
    let method = req.method().clone();
    let console = rbac::is_console(&template);
    let safe = method == Method::GET || method == Method::HEAD;
    let access = routes.access_for(method.as_str(), &template);
    let public = access == Some(Access::Public);
    let tenant = tenant_param(&template, req.uri().path()).map(str::to_owned);
    let refuse = |e: ApiError, req: &Request| -> Response {
        if console {
            crate::console::refusal(e, req.uri())
        } else {
            e.into_response()
        }
    };
    let cookies = if rbac::is_tenant_console(&template) {
        match tenant.as_deref().and_then(crate::ids::parse_uuid) {
            Some(t) => Cookies::Tenant(t),
            None => Cookies::No,
        }
    } else if console || safe {
        Cookies::Operator
    } else {
        Cookies::No
    };
    let principal = match authenticate(state, req.headers(), cookies).await {
        Ok(p) => p,
        Err(_) if public => None,
        Err(e) => return Err(refuse(e.into(), &req)),
    };
    // On a tenant's console, an operator's visit is checked first: a read-only visitor hears
    // "read-only" whatever its role would allow.
    if let (Cookies::Tenant(t), Some(p), false) = (cookies, principal.as_ref(), public)
        && let Err(r) = check_visit(p, t, &method, access, state.clock().now())
    {
        return Err(refuse(r.into(), &req));
    }
    if let Err(r) = routes.authorize(
        principal.as_ref(),
        method.as_str(),
        &template,
        tenant.as_deref(),
    ) {
        return Err(refuse(r.into(), &req));
    }
    if let Some(p) = principal {
        tracing::debug!(actor = %p.actor.id, kind = p.label(), "authorized");
        req.extensions_mut().insert(p);
    }
    // A tenant over a soft cap hears it on every tenant-scoped API answer (API.md: advisory
    // conditions are `Warning: 299` headers), from the in-memory board: no read.
    let over = match (template.starts_with("/api/"), tenant.as_deref()) {
        (true, Some(t)) => crate::ids::parse_uuid(t)
            .map(|t| state.caps().over_at(&t, state.clock().now()))
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    Ok((req, over))
}

/// Adds a `Warning: 299` header to `res` for each soft cap in `over` ([`admit`]'s list).
pub fn warn_over(res: &mut Response, over: Vec<crate::catalogs::caps::Over>) {
    for o in over {
        if let Ok(v) = axum::http::HeaderValue::from_str(&o.warning()) {
            res.headers_mut().append(axum::http::header::WARNING, v);
        }
    }
}

/// On tenant `tenant`'s console, an operator needs an active visit of it (F21.05.05), and a
/// visit that is not elevated may not write to the tenant's data (PRODUCT.md A6). The visit's
/// own routes (elevate, end) are operator routes and stay open.
///
/// Errors: 403 `forbidden` without a visit; 403 `impersonation_read_only`.
fn check_visit(
    p: &Principal,
    tenant: Uuid,
    method: &Method,
    access: Option<Access>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Refusal> {
    if p.tenant().is_some() {
        return Ok(());
    }
    let Some(visit) = p.visit().filter(|v| v.tenant_id == tenant) else {
        return Err(Refusal::Forbidden(
            "operators open a tenant's console with Visit tenant, on the tenant's page in the platform console".into(),
        ));
    };
    let writes = !(method == Method::GET || method == Method::HEAD);
    let tenant_data = matches!(access, Some(Access::Tenant(..) | Access::Member(_)));
    if writes && tenant_data && !visit.is_elevated(now) {
        return Err(Refusal::ReadOnlyVisit);
    }
    Ok(())
}
