//! Authentication, and the middleware that runs the one permission check on every route.
//!
//! Credentials, in order:
//! - `Authorization: Bearer <token>` or `x-admin-ops-token: <token>` (API.md "Authentication"):
//!   the bootstrap `admin_ops_token` (acts as `super_admin`, compared in constant time), or an
//!   operator token `tnt_…` (acts with its operator's role; only its SHA-256 is stored);
//! - the console session cookie, for console routes and for safe (`GET`/`HEAD`) API requests
//!   such as CSV and NDJSON exports. Unsafe API requests never ride on the cookie, so the JSON
//!   API needs no CSRF protection; console forms carry a per-session CSRF token, checked here.
//!
//! Console refusals are pages: no credentials redirects to `/signin`, a missing permission is a
//! 403 page; API refusals are problem+json.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use std::sync::Arc;

use super::context::Registry;
use super::credentials::{
    CSRF_FIELD, SESSION_COOKIE, cookie, csrf_matches, form_value, presented_token,
};
use super::problem::ApiError;
use crate::actor::Actor;
use crate::error::Error;
use crate::operators::service;
use crate::rbac::{self, Principal, Refusal, Role};
use crate::state::AppState;

/// Actor id of the bootstrap token in the ledger.
pub const ADMIN_OPS_ACTOR: &str = "admin-ops-token";
/// A session's last-seen time is refreshed at most this often (a write per request would cost an
/// fsync each).
const TOUCH_EVERY_SECS: i64 = 60;

fn operator_principal(
    id: uuid::Uuid,
    rec: &crate::operators::model::OperatorV1,
    session: Option<crate::operators::model::Session>,
) -> Principal {
    Principal {
        actor: Actor::operator(rec.username.clone()),
        role: rec.role,
        display_name: rec.display_name.clone(),
        operator_id: Some(id),
        session: session.map(|s| rbac::SessionRef {
            key: s.key,
            csrf: s.csrf,
            created_at: s.created_at,
        }),
    }
}

/// Resolves the caller: `Ok(None)` without credentials, `Err(401)` with a token that matches
/// nothing. An unknown or expired session cookie is simply no credentials.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    use_cookie: bool,
) -> Result<Option<Principal>, Error> {
    if let Some(token) = presented_token(headers) {
        if let Some(secret) = &state.config().admin_ops_token
            && secret.matches(token)
        {
            return Ok(Some(Principal {
                actor: Actor::operator(ADMIN_OPS_ACTOR),
                role: Role::SuperAdmin,
                display_name: "admin ops token".into(),
                operator_id: None,
                session: None,
            }));
        }
        if token.starts_with(crate::operators::model::TOKEN_PREFIX) {
            let t = token.to_string();
            if let Some((id, rec)) = state
                .read(move |r| crate::operators::queries::token_operator(r, &t))
                .await?
            {
                return Ok(Some(operator_principal(id, &rec, None)));
            }
        }
        return Err(Error::Unauthorized(
            "the token is not valid (unknown, revoked, or its operator is disabled): check admin_ops_token (TENANTRY_ADMIN_OPS_TOKEN) or create an operator token".into(),
        ));
    }
    if !use_cookie {
        return Ok(None);
    }
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

/// Middleware: authenticates, calls [`rbac::authorize`] with the matched route template, and
/// checks the CSRF token of console forms. Requests that matched no route pass through to the
/// 404 fallback.
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
    let Some(registry) = req.extensions().get::<Arc<Registry>>().cloned() else {
        tracing::error!("the registry is not in the request; refusing");
        return ApiError::Domain(Error::Internal("no route registry".into())).into_response();
    };
    let routes = registry.routes();
    let method = req.method().clone();
    let console = rbac::is_console(&path);
    let safe = method == Method::GET || method == Method::HEAD;
    let public = routes.access_for(method.as_str(), &path) == Some(rbac::Access::Public);
    let refuse = |e: ApiError, req: &Request| -> Response {
        if console {
            crate::console::refusal(e, req.uri())
        } else {
            e.into_response()
        }
    };
    let principal = match authenticate(&state, req.headers(), console || safe).await {
        Ok(p) => p,
        Err(_) if public => None,
        Err(e) => return refuse(e.into(), &req),
    };
    if let Err(r) = routes.authorize(principal.as_ref(), method.as_str(), &path) {
        return refuse(r.into(), &req);
    }
    if console
        && !safe
        && path != "/signin"
        && let Some(session) = principal.as_ref().and_then(|p| p.session.as_ref())
    {
        let (parts, body) = req.into_parts();
        // The body was already read and bounded by the body-limit middleware.
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        let sent = match multipart_boundary(&parts.headers) {
            Some(boundary) => multipart_value(bytes.clone(), boundary, CSRF_FIELD).await,
            None => form_value(&bytes, CSRF_FIELD),
        };
        if !csrf_matches(&session.csrf, sent.as_deref()) {
            tracing::warn!(path, "refused a console form without a valid CSRF token");
            let e = Refusal::Forbidden("this form expired or did not come from this console (CSRF check failed): reload the page and try again".into());
            return crate::console::refusal(e.into(), &parts.uri);
        }
        req = Request::from_parts(parts, axum::body::Body::from(bytes));
    }
    if let Some(p) = principal {
        tracing::debug!(actor = %p.actor.id, role = p.role.as_str(), "authorized");
        req.extensions_mut().insert(p);
    }
    next.run(req).await
}

/// The boundary of a `multipart/form-data` body (file uploads), if that is what was sent.
fn multipart_boundary(headers: &HeaderMap) -> Option<String> {
    let ct = headers
        .get(axum::http::header::CONTENT_TYPE)?
        .to_str()
        .ok()?;
    multer::parse_boundary(ct).ok()
}

/// The text of the first part named `field` of a multipart body. Forms put their CSRF field
/// first, so only the head of an upload is parsed here.
async fn multipart_value(body: bytes::Bytes, boundary: String, field: &str) -> Option<String> {
    let stream = tokio_stream::once(Ok::<_, std::io::Error>(body));
    let mut parts = multer::Multipart::new(stream, boundary);
    while let Ok(Some(part)) = parts.next_field().await {
        if part.name() == Some(field) {
            return part.text().await.ok();
        }
    }
    None
}
