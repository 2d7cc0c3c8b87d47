//! The console's shell: the page layout, sign-in, error pages and embedded assets (rust-embed).
//! Nothing is loaded from outside, so it works air-gapped, and every page works without
//! JavaScript (`assets/console.js` only adds conveniences). The pages themselves live next to
//! their context (`tenants/views.rs`, `pools/views.rs`, ...) and plug in through its descriptor.
//!
//! - [`layout`]: the page shell, sidebar, flash messages, and small partials.
//! - [`signin`]: sign-in and sign-out.
//! - [`charts`]: inline-SVG charts. [`fmt`]: dates, countdowns, badges.
//!
//! Every route has a permission entry in its context's descriptor and goes through the same
//! permission middleware as the API. Forms carry the session's CSRF token, checked by that
//! middleware before any handler runs.

pub mod charts;
pub mod fmt;
pub mod layout;
pub mod signin;

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::error::Error;
use crate::http::context::Context;
use crate::http::problem::ApiError;
use crate::rbac::{Access, Permission, Route};
use crate::state::AppState;

/// The Content-Security-Policy of every console page: nothing from outside, no inline script.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// Files under `assets/`, compiled into the binary.
#[derive(rust_embed::Embed)]
#[folder = "assets/"]
struct Assets;

/// The shell's own routes: the root redirect, sign-in and sign-out, and the assets.
pub const CONTEXT: Context = Context {
    name: "console",
    views: router,
    routes: ROUTES,
    ..Context::EMPTY
};

/// The permission entry of every route of the shell.
const ROUTES: &[Route] = {
    use Access::*;
    use Permission::*;
    &[
        ("GET", "/", Public),
        ("GET", "/signin", Public),
        ("POST", "/signin", Public),
        ("POST", "/signout", Requires(Read)),
        ("GET", "/assets/{*path}", Public),
    ]
};

/// The shell's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/platform") }))
        .route(
            "/signin",
            get(signin::view_signin_get).post(signin::view_signin_post),
        )
        .route("/signout", post(signin::view_signout_post))
        .route("/assets/{*path}", get(asset))
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
pub fn refusal(err: ApiError, uri: &Uri) -> Response {
    if err.is_unauthorized() {
        let next = uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/platform");
        let signin = match layout::tenant_of_path(uri.path()) {
            Some(t) => format!("/tenant/{t}/signin"),
            None => "/signin".to_string(),
        };
        let target = format!("{signin}?next={}", urlencode(next));
        return Redirect::to(&target).into_response();
    }
    match err {
        ApiError::Domain(e) => ConsoleError(e).into_response(),
        other => error_page(
            other.status(),
            &match &other {
                ApiError::Transport(t) => t.to_string(),
                ApiError::Refused(r) => r.to_string(),
                ApiError::Domain(e) => e.to_string(),
            },
            crate::http::problem::current_request_id(),
        ),
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
        let status = crate::http::problem::status(&self.0);
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
