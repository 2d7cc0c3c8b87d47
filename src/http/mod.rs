//! The HTTP layer: folds every context's router into one application, serves the OpenAPI
//! document built from the same routes, and wraps it in one middleware stack: before routing,
//! request id, tracing, panic catching, security headers and the timeout; after routing, one
//! route guard (authentication and the permission check, the body limit, the CSRF check).
//!
//! - [`context`]: the descriptor each context exports, and the [`context::Registry`] of them.
//! - [`auth`]: credentials, and the route guard's permission step ([`auth::admit`]).
//! - [`body`]: the guard's body limit and its CSRF check of console forms.
//! - [`problem`]: domain errors and transport refusals as `application/problem+json`.
//! - [`extract`]: extractors whose rejections are problems.
//! - [`health`]: `/healthz`, `/readyz`, `/api/whoami`.
//! - [`json`]: date-times and response bodies on hot paths.
//!
//! **Architecture Invariant:** domain errors become HTTP responses only in [`problem`] (and the
//! console's error page, which takes its status from there); the permission check for every
//! route is [`crate::rbac::RouteTable::authorize`], called from [`auth`].

pub mod auth;
pub mod body;
pub mod context;
pub mod credentials;
pub mod extract;
pub mod health;
pub mod json;
pub mod problem;
pub mod schema;
pub mod server;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::error::Error;
use crate::state::AppState;
use context::{Context, Registry};
use problem::{ApiError, REQUEST_ID, Transport};

/// The request-id header, set when absent and echoed on every response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tenantry API",
        description = "Control plane of a multi-tenant SaaS platform: apps, tenants and their lifecycle, pools and routes, the hash-chained audit ledger, and scheduled jobs. Errors are application/problem+json (RFC 9457) with a stable `code`.",
        license(name = "MIT OR Apache-2.0")
    ),
    modifiers(&SecurityAddon)
)]
struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        openapi.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

/// Every API route of `contexts` with its OpenAPI description, before state and middleware.
/// The document's tags are the contexts' tags, in order, each once.
pub fn api_router(contexts: &[&Context]) -> OpenApiRouter<AppState> {
    let mut doc = ApiDoc::openapi();
    let mut tags: Vec<utoipa::openapi::tag::Tag> = Vec::new();
    for (name, description) in contexts.iter().flat_map(|c| c.tags.iter()) {
        if tags.iter().all(|t| t.name != *name) {
            tags.push(
                utoipa::openapi::tag::TagBuilder::new()
                    .name(*name)
                    .description(Some(*description))
                    .build(),
            );
        }
    }
    doc.tags = Some(tags);
    contexts
        .iter()
        .fold(OpenApiRouter::with_openapi(doc), |r, c| r.merge((c.api)()))
}

/// The OpenAPI document of every route of `contexts`.
pub fn openapi(contexts: &[&Context]) -> utoipa::openapi::OpenApi {
    conform(
        api_router(contexts).into_openapi(),
        &Registry::new(contexts),
    )
}

/// The refusals every operation can answer, documented once here rather than in each
/// `#[utoipa::path]`, so the document says what the server does (API.md "Errors"):
/// problem documents are `application/problem+json`; a route that needs credentials answers 401
/// and 403 (and names no security requirement when it is public); one with a body answers 400
/// (malformed), 413 (too large), 415 (not JSON) and 422 (invalid); a route of one tenant
/// answers 404 for another tenant; and any route 503 when the store is unavailable.
fn conform(mut doc: utoipa::openapi::OpenApi, registry: &Registry) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    const PROBLEM: &str = "application/problem+json";
    let problem = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    PROBLEM,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build(),
        )
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [
            ("GET", item.get.as_mut()),
            ("POST", item.post.as_mut()),
            ("PUT", item.put.as_mut()),
            ("PATCH", item.patch.as_mut()),
            ("DELETE", item.delete.as_mut()),
        ];
        for (method, op) in ops {
            let Some(op) = op else { continue };
            for r in op.responses.responses.values_mut() {
                if let RefOr::T(r) = r
                    && let Some(c) = r.content.shift_remove("application/json")
                {
                    let is_problem = matches!(&c.schema, Some(RefOr::Ref(x)) if x.ref_location.ends_with("/Problem"));
                    let key = if is_problem {
                        PROBLEM
                    } else {
                        "application/json"
                    };
                    r.content.insert(key.to_string(), c);
                }
            }
            let mut add = |code: &str, description: &str| {
                op.responses
                    .responses
                    .entry(code.to_string())
                    .or_insert_with(|| problem(description));
            };
            let access = registry.routes().access_for(method, path);
            if access == Some(crate::rbac::Access::Public) {
                op.security = Some(vec![Default::default()]);
            } else {
                add("401", "No valid credentials");
                add("403", "The credentials do not allow this route");
            }
            if matches!(
                access,
                Some(crate::rbac::Access::Tenant(..) | crate::rbac::Access::Member(_))
            ) {
                add("404", "No such tenant (or another tenant's)");
            }
            if op.request_body.is_some() {
                add("400", "Malformed request");
                add("413", "The body is over its limit");
                add("415", "The body is not JSON");
                add("422", "Invalid input");
            }
            add("503", "The store is unavailable or overloaded; retry");
        }
    }
    doc
}

/// The whole HTTP application for `state`: the API and console routes of `contexts`, the
/// OpenAPI document, and the middleware stack. The permission table, the sidebar and the body
/// limits come from the same contexts ([`Registry`]).
pub fn app(state: AppState, contexts: &[&Context]) -> Router {
    let registry = Arc::new(Registry::new(contexts));
    let (router, doc) = api_router(contexts).split_for_parts();
    let doc = conform(doc, &registry);
    let doc = Arc::new(doc.to_pretty_json().unwrap_or_else(|_| "{}".into()));
    let pages = contexts
        .iter()
        .fold(Router::new(), |r, c| r.merge((c.views)()));
    let limits = body::BodyLimits::new(registry.clone(), state.config().clone());
    let timeouts = Timeouts {
        registry: registry.clone(),
        request_secs: state.config().http.request_timeout_secs,
        upload_secs: state.config().http.upload_timeout_secs,
    };
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    let edge_headers = EdgeHeaders::of(state.config());
    let router = router
        .route(
            "/api/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        doc.as_str().to_owned(),
                    )
                }
            }),
        )
        .merge(pages)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // After routing: the guard needs the matched route.
        .layer(middleware::from_fn_with_state(
            Guard {
                state: state.clone(),
                limits,
            },
            guard,
        ))
        .with_state(state);
    // Before routing, once for the whole application. `Router::layer` would wrap each route
    // on its own, and every call would clone the chain of boxed services below each layer
    // (issue 13's directory profile: the framework's boxing and allocation per request).
    let edge = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), RequestIds))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req
                .headers()
                .get(REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
        }))
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(middleware::from_fn(scope_request_id))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(edge_headers, security_headers))
        .layer(Extension(registry))
        .layer(middleware::from_fn_with_state(timeouts, request_timeout))
        .layer(DefaultBodyLimit::disable())
        .service(router);
    Router::new().fallback_service(edge)
}

/// Gives a request without an `x-request-id` one: a random-looking UUIDv4, the shape
/// `tower_http`'s `MakeRequestUuid` gives, without its `getrandom` system call per request (one
/// in three of a directory page's system calls). The 122 bits come from SipHash-1-3 under the
/// thread's random keys (`std::hash::RandomState`, seeded from the OS once per thread) over a
/// counter of the thread's ids, so they are unique per thread and unrelated across threads and
/// restarts. A request id only correlates logs and answers; it is not a secret.
#[derive(Clone, Copy)]
struct RequestIds;

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        use std::hash::BuildHasher;
        thread_local! {
            static KEYS: (std::hash::RandomState, std::cell::Cell<u64>) = Default::default();
        }
        let bits = KEYS.with(|(keys, next)| {
            let n = next.get();
            next.set(n.wrapping_add(1));
            (u128::from(keys.hash_one((n, 0u8))) << 64) | u128::from(keys.hash_one((n, 1u8)))
        });
        let id = uuid::Builder::from_random_bytes(bits.to_le_bytes()).into_uuid();
        let mut text = uuid::Uuid::encode_buffer();
        let text = id.hyphenated().encode_lower(&mut text);
        HeaderValue::from_str(text).ok().map(RequestId::new)
    }
}

/// What [`guard`] needs: the state (credentials, the soft-cap board) and the body limits.
#[derive(Clone)]
struct Guard {
    state: AppState,
    limits: body::BodyLimits,
}

/// The route guard, one middleware after routing, in this order: authentication and the
/// permission check ([`auth::admit`]); then the body, bounded ([`body::bound`]); then the CSRF
/// check of console forms ([`body::check_csrf`]). Nothing of a body is read before the caller is
/// known, and the CSRF check reads a body that is already bounded. One layer rather than three:
/// each `from_fn` layer boxes the service and the future below it on every call.
async fn guard(State(g): State<Guard>, req: Request, next: Next) -> Response {
    let (req, over) = match auth::admit(&g.state, req).await {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal,
    };
    let (req, _upload_slot) = match body::bound(&g.limits, req).await {
        Ok(bounded) => bounded,
        Err(refusal) => return refusal,
    };
    let req = match body::check_csrf(req).await {
        Ok(req) => req,
        Err(refusal) => return refusal,
    };
    let mut res = next.run(req).await;
    auth::warn_over(&mut res, over);
    res
}

/// Makes the request id available to error responses (`problem::current_request_id`).
async fn scope_request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    REQUEST_ID.scope(id, next.run(req)).await
}

/// The request timeouts: `[http] request_timeout_secs`, and `upload_timeout_secs` on upload
/// routes.
#[derive(Clone)]
struct Timeouts {
    registry: Arc<Registry>,
    request_secs: u64,
    upload_secs: u64,
}

/// Answers 408 `request_timeout` when a request (its body read included) has no response
/// within its timeout; the handler's future is dropped, so a write queued for the store is
/// either committed in full or not at all.
async fn request_timeout(State(t): State<Timeouts>, req: Request, next: Next) -> Response {
    let secs = if t.registry.is_upload(req.uri().path()) {
        t.upload_secs
    } else {
        t.request_secs
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut run = std::pin::pin!(next.run(req));
    // Most answers are ready at their first poll (a directory page is written on the request's
    // own thread), and they make no timer: in tokio 1.54 dropping one, even never registered,
    // takes the time driver's lock that every worker shares (`TimerEntry::cancel`). The deadline
    // still counts from the request's start.
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(run.as_mut().poll(cx))).await;
    if let std::task::Poll::Ready(res) = first {
        return res;
    }
    match tokio::time::timeout_at(deadline, run).await {
        Ok(res) => res,
        Err(_) => ApiError::from(Transport::RequestTimeout(secs)).into_response(),
    }
}

/// What the edge's headers depend on: whether this process serves TLS, and whether cookies
/// must be `Secure` (TLS here or at a proxy, `secure_cookies`).
#[derive(Clone, Copy)]
struct EdgeHeaders {
    tls: bool,
    secure_cookies: bool,
}

impl EdgeHeaders {
    fn of(config: &crate::config::Config) -> Self {
        EdgeHeaders {
            tls: config.tls != crate::tls::TlsMode::Off,
            secure_cookies: config.cookies_secure(),
        }
    }
}

/// HSTS max-age: one year (RFC 6797; what the HSTS preload list asks for at least).
const HSTS: &str = "max-age=31536000";

/// Conservative headers on every response, refusals and fallbacks included: `nosniff`, no
/// referrer, no framing, `no-store` unless a handler chose caching; the console's
/// Content-Security-Policy on every HTML response (error pages too); HSTS when this process
/// serves TLS; and `Secure` on every cookie when cookies must be (issue 12, finding 8).
async fn security_headers(State(t): State<EdgeHeaders>, req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    let html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(crate::console::CSP),
        );
    }
    if t.tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    if t.secure_cookies {
        let cookies: Vec<HeaderValue> = h.get_all(header::SET_COOKIE).iter().cloned().collect();
        if cookies.iter().any(|c| !is_secure(c)) {
            h.remove(header::SET_COOKIE);
            for c in cookies {
                let c = if is_secure(&c) {
                    c
                } else {
                    let mut v = c.as_bytes().to_vec();
                    v.extend_from_slice(b"; Secure");
                    HeaderValue::from_bytes(&v).unwrap_or(c)
                };
                h.append(header::SET_COOKIE, c);
            }
        }
    }
    res
}

fn is_secure(cookie: &HeaderValue) -> bool {
    cookie.to_str().is_ok_and(|c| {
        c.split(';')
            .any(|a| a.trim().eq_ignore_ascii_case("secure"))
    })
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a handler panicked");
    ApiError::Domain(Error::Internal("handler panicked".into())).into_response()
}

async fn not_found(method: Method, uri: axum::http::Uri) -> Response {
    if crate::rbac::is_console(uri.path()) {
        return crate::console::error_page(
            axum::http::StatusCode::NOT_FOUND,
            &format!("There is no page at {}.", uri.path()),
            problem::current_request_id(),
        );
    }
    ApiError::Domain(Error::NotFound {
        kind: "route",
        id: format!("{method} {}", uri.path()),
    })
    .into_response()
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> Response {
    ApiError::from(Transport::MethodNotAllowed(format!(
        "{method} is not allowed on {}",
        uri.path()
    )))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Request ids are UUIDv4 text, and neither repeat within a thread nor across threads.
    #[test]
    fn request_ids_are_v4_uuids_that_do_not_repeat() {
        let make = || {
            let req = Request::new(axum::body::Body::empty());
            (0..20_000)
                .map(|_| {
                    let id = RequestIds.make_request_id(&req).unwrap();
                    let id = uuid::Uuid::parse_str(id.header_value().to_str().unwrap()).unwrap();
                    assert_eq!(id.get_version(), Some(uuid::Version::Random));
                    assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
                    id
                })
                .collect::<Vec<_>>()
        };
        let other = std::thread::spawn(make);
        let mut ids = make();
        ids.extend(other.join().unwrap());
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), 40_000);
    }
}
