//! The operator console: server-rendered pages (maud) under `/platform`, sign-in, and embedded
//! assets (rust-embed). Nothing is loaded from outside, so it works air-gapped, and every page
//! works without JavaScript (`assets/console.js` only adds conveniences).
//!
//! - [`layout`]: the page shell, sidebar, flash messages, and small partials.
//! - [`signin`]: sign-in and sign-out.
//! - [`home`], [`tenants`], [`apps`], [`pools`], [`audit`], [`jobs`], [`operators`], [`account`]:
//!   the pages of the platform dashboard spec §1 sidebar.
//! - [`installs`] (control plane) and [`sync`] (appliance): the on-prem pages of operator guide §9.
//! - [`charts`]: inline-SVG charts. [`fmt`]: dates, countdowns, badges.
//!
//! Every route is in `rbac::ROUTES` and goes through the same permission middleware as the API.
//! Forms carry the session's CSRF token, checked by that middleware before any handler runs.

pub mod account;
pub mod apps;
pub mod audit;
pub mod charts;
pub mod fmt;
pub mod home;
pub mod installs;
pub mod jobs;
pub mod layout;
pub mod operators;
pub mod pools;
pub mod signin;
pub mod sync;
pub mod tenants;

use axum::Router;
use axum::extract::{Path, Request};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::app::AppState;
use crate::error::Error;

/// The Content-Security-Policy of every console page: nothing from outside, no inline script.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// Files under `assets/`, compiled into the binary.
#[derive(rust_embed::Embed)]
#[folder = "assets/"]
struct Assets;

/// The console's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/platform") }))
        .route(
            "/signin",
            get(signin::view_signin_get).post(signin::view_signin_post),
        )
        .route("/signout", post(signin::view_signout_post))
        .route("/assets/{*path}", get(asset))
        .route("/platform", get(home::view_home_get))
        .route(
            "/platform/tenants",
            get(tenants::view_tenants_get).post(tenants::view_tenant_create_post),
        )
        .route("/platform/tenants/new", get(tenants::view_tenant_new_get))
        .route("/platform/tenants/{id}", get(tenants::view_tenant_get))
        .route(
            "/platform/tenants/{id}/edit",
            get(tenants::view_tenant_edit_get).post(tenants::view_tenant_edit_post),
        )
        .route(
            "/platform/tenants/{id}/lifecycle/{action}",
            post(tenants::view_tenant_lifecycle_post),
        )
        .route(
            "/platform/apps",
            get(apps::view_apps_get).post(apps::view_apps_post),
        )
        .route("/platform/pools", get(pools::view_pools_get))
        .route(
            "/platform/pools/{id}/status",
            post(pools::view_pool_flip_post),
        )
        .route("/platform/audit", get(audit::view_audit_get))
        .route(
            "/platform/audit/verify",
            post(audit::view_audit_verify_post),
        )
        .route(
            "/platform/audit/checkpoint",
            post(audit::view_audit_checkpoint_post),
        )
        .route("/platform/jobs", get(jobs::view_jobs_get))
        .route("/platform/jobs/{name}/run", post(jobs::view_job_run_post))
        .route(
            "/platform/operators",
            get(operators::view_operators_get).post(operators::view_operator_create_post),
        )
        .route(
            "/platform/operators/{id}/role",
            post(operators::view_operator_role_post),
        )
        .route(
            "/platform/operators/{id}/disable",
            post(operators::view_operator_disable_post),
        )
        .route(
            "/platform/operators/{id}/enable",
            post(operators::view_operator_enable_post),
        )
        .route(
            "/platform/operators/{id}/tokens",
            post(operators::view_operator_token_post),
        )
        .route(
            "/platform/operators/{id}/tokens/{token_id}/revoke",
            post(operators::view_operator_token_revoke_post),
        )
        .route(
            "/platform/installs",
            get(installs::view_installs_get).post(installs::view_install_register_post),
        )
        .route(
            installs::UPLOAD_PATH,
            post(installs::view_bundle_upload_post)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/platform/installs/{id}", get(installs::view_install_get))
        .route(
            "/platform/installs/{id}/license.json",
            get(installs::view_install_license_get),
        )
        .route(
            "/platform/installs/{id}/licenses",
            post(installs::view_install_renew_post),
        )
        .route("/platform/sync", get(sync::view_sync_get))
        .route("/platform/sync/flush", post(sync::view_sync_flush_post))
        .route("/platform/sync/ack", post(sync::view_sync_ack_post))
        .route("/platform/sync/bundle", get(sync::view_sync_bundle_get))
        .route("/platform/license", get(sync::view_license_get))
        .route("/platform/account", get(account::view_account_get))
        .route(
            "/platform/account/password",
            post(account::view_account_password_post),
        )
        .layer(middleware::from_fn(page_headers))
}

/// Adds the CSP to HTML responses.
async fn page_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let is_html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html {
        res.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    res
}

async fn asset(Path(path): Path<String>) -> Response {
    let Some(file) = Assets::get(&path) else {
        return error_page(StatusCode::NOT_FOUND, "No such file.", None);
    };
    let ctype = match path.rsplit('.').next() {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    };
    (
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        file.data.into_owned(),
    )
        .into_response()
}

/// The console's answer to a refused request: a redirect to sign-in for missing credentials,
/// otherwise an error page with the status of `err`.
pub fn refusal(err: Error, uri: &Uri) -> Response {
    match err {
        Error::Unauthorized(_) => {
            let next = uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/platform");
            let target = format!("/signin?next={}", urlencode(next));
            Redirect::to(&target).into_response()
        }
        other => ConsoleError(other).into_response(),
    }
}

/// A domain error on its way out as an error page.
#[derive(Debug)]
pub struct ConsoleError(pub Error);

impl From<Error> for ConsoleError {
    fn from(e: Error) -> Self {
        ConsoleError(e)
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = if self.0.is_client_safe() {
            self.0.to_string()
        } else {
            tracing::error!(error = %self.0, "console request failed");
            "Something went wrong on our side. The cause is logged with the request id below."
                .to_string()
        };
        error_page(status, &message, crate::http::problem::current_request_id())
    }
}

/// Result of a console handler.
pub type PageResult = Result<Response, ConsoleError>;

/// A full error page (404, 403, 405, 429, 500...).
pub fn error_page(status: StatusCode, message: &str, request_id: Option<String>) -> Response {
    let markup = layout::error_page(status, message, request_id.as_deref());
    (status, markup).into_response()
}

/// The query string without its `cursor` (for "first page" links, exports, and the next cursor).
pub fn without_cursor(raw: Option<String>) -> String {
    raw.unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.starts_with("cursor=") && !kv.is_empty())
        .collect::<Vec<_>>()
        .join("&")
}

/// A form's errors by field: each field's message from a `validation_failed`; any other refusal
/// goes under `other_field` (the field it is about, e.g. `slug` for `slug_taken`).
pub fn field_errors(err: &Error, other_field: &str) -> std::collections::HashMap<String, String> {
    match err {
        Error::Validation(fields) => fields
            .iter()
            .map(|f| (f.field.clone(), f.message.clone()))
            .collect(),
        other => std::collections::HashMap::from([(other_field.to_string(), other.to_string())]),
    }
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("v", s)])
        .map(|q| q[2..].to_string())
        .unwrap_or_default()
}
