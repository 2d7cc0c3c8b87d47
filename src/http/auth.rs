//! Authentication, and the middleware that runs the one permission check on every route.
//!
//! Credentials: `Authorization: Bearer <token>` or `x-admin-ops-token: <token>` (API.md
//! "Authentication"). The bootstrap `admin_ops_token` acts as `super_admin` and is compared in
//! constant time.

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::problem::ApiError;
use crate::actor::Actor;
use crate::app::AppState;
use crate::error::Error;
use crate::rbac::{self, Principal, Role};

/// Actor id of the bootstrap token in the ledger.
pub const ADMIN_OPS_ACTOR: &str = "admin-ops-token";

/// The token a request presents, if any.
pub fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, token) = v.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some(token.trim());
        }
        return None;
    }
    headers
        .get("x-admin-ops-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Resolves the caller: `Ok(None)` without credentials, `Err(401)` with credentials that match
/// nothing.
pub fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Option<Principal>, Error> {
    let Some(token) = presented_token(headers) else {
        return Ok(None);
    };
    if let Some(secret) = &state.config().admin_ops_token
        && secret.matches(token)
    {
        return Ok(Some(Principal {
            actor: Actor::operator(ADMIN_OPS_ACTOR),
            role: Role::SuperAdmin,
            display_name: "admin ops token".into(),
        }));
    }
    Err(Error::Unauthorized(
        "the token is not valid: check admin_ops_token (TENANTRY_ADMIN_OPS_TOKEN) or create an operator token".into(),
    ))
}

/// Middleware: authenticates, then calls [`rbac::authorize`] with the matched route template.
/// Requests that matched no route pass through to the 404 fallback.
pub async fn authorize_request(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(path) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
    else {
        return next.run(req).await;
    };
    let method = req.method().as_str().to_owned();
    let public = rbac::access_for(&method, &path) == Some(rbac::Access::Public);
    let principal = match authenticate(&state, req.headers()) {
        Ok(p) => p,
        Err(_) if public => None,
        Err(e) => return ApiError(e).into_response(),
    };
    if let Err(e) = rbac::authorize(principal.as_ref(), &method, &path) {
        return ApiError(e).into_response();
    }
    if let Some(p) = principal {
        tracing::debug!(actor = %p.actor.id, role = p.role.as_str(), "authorized");
        req.extensions_mut().insert(p);
    }
    next.run(req).await
}
