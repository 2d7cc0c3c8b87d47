//! Sign-in (`GET`/`POST /signin`) and sign-out (`POST /signout`).
//!
//! Before a session exists, the sign-in form is protected by a double-submit token: a random
//! value in an HttpOnly, SameSite=Strict cookie and in a hidden field must match. A successful
//! sign-in starts a server-side session (only the SHA-256 of the cookie is stored) and writes
//! `operator.signed_in.v1`. Failures are throttled per username and per client address
//! ([`crate::operators::throttle`]) and counted per day in the store.

use crate::http::extract::ClientAddr;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{Ctx, Tone, bare_page, brand, field, redirect};
use crate::actor::Actor;
use crate::http::credentials::{SESSION_COOKIE, cookie, csrf_matches, random_token};
use crate::operators::service;
use crate::state::AppState;

const PRE_CSRF_COOKIE: &str = "tenantry_signin";

/// `?next=` of the sign-in page.
#[derive(Deserialize, Default)]
pub struct NextQuery {
    /// Where to go after signing in (a console path).
    pub next: Option<String>,
}

/// Only console paths are followed after sign-in (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/platform") && !n.starts_with("//") && !n.contains("://") => {
            n.to_string()
        }
        _ => "/platform".to_string(),
    }
}

/// The `Secure` attribute when cookies must carry it, else nothing.
pub fn cookie_attrs(state: &AppState) -> &'static str {
    if state.config().cookies_secure() {
        "; Secure"
    } else {
        ""
    }
}

fn signin_page(token: &str, next: &str, username: &str, error: Option<&str>) -> Markup {
    bare_page(
        "Sign in · Tenantry",
        html! {
            (brand("Tenantry"))
            h1 { "Sign in to the platform console" }
            @if let Some(e) = error {
                div.flash.critical role="alert" { (e) }
            }
            form method="post" action="/signin" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(next);
                (field("Username", "username", html! {
                    input #username name="username" type="text" autocomplete="username" required autofocus value=(username);
                }, None, None))
                (field("Password", "password", html! {
                    input #password name="password" type="password" autocomplete="current-password" required;
                }, None, None))
                button.primary type="submit" { "Sign in" }
            }
            p.muted.small { "Every action in this console is recorded in the platform's hash-chained audit ledger." }
        },
    )
}

fn with_pre_cookie(state: &AppState, status: StatusCode, markup: Markup, token: &str) -> Response {
    let mut res = (status, markup).into_response();
    let c = format!(
        "{PRE_CSRF_COOKIE}={token}; Path=/signin; HttpOnly; SameSite=Strict; Max-Age=3600{}",
        cookie_attrs(state)
    );
    if let Ok(v) = c.parse() {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        axum::http::HeaderValue::from_static(super::CSP),
    );
    res
}

/// The sign-in form.
pub async fn view_signin_get(
    State(state): State<AppState>,
    Query(q): Query<NextQuery>,
) -> Response {
    let Ok(token) = random_token() else {
        return super::error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no randomness available",
            None,
        );
    };
    let next = safe_next(q.next.as_deref());
    with_pre_cookie(
        &state,
        StatusCode::OK,
        signin_page(&token, &next, "", None),
        &token,
    )
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub struct SigninForm {
    username: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

/// Adds `Retry-After` (RFC 9110 §10.2.3) to a throttled sign-in's answer: `wait` seconds, at
/// least 1.
pub fn with_retry_after(mut res: Response, wait: i64) -> Response {
    res.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from(u64::try_from(wait).unwrap_or(60).max(1)),
    );
    res
}

/// Checks the password and starts a session.
pub async fn view_signin_post(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<SigninForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let username = form.username.trim().to_ascii_lowercase();
    let client = addr.to_string();
    let again = |status: StatusCode, msg: &str| -> Response {
        match random_token() {
            Ok(t) => with_pre_cookie(
                &state,
                status,
                signin_page(&t, &next, &username, Some(msg)),
                &t,
            ),
            Err(_) => super::error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no randomness available",
                None,
            ),
        }
    };
    if !csrf_matches(&form.csrf, cookie(&headers, PRE_CSRF_COOKIE)) {
        return again(
            StatusCode::FORBIDDEN,
            "The sign-in form expired. Please try again.",
        );
    }
    if username.len() > crate::operators::throttle::MAX_NAME_BYTES {
        // No such account can exist: refused before anything is counted, read or hashed.
        return again(
            StatusCode::UNAUTHORIZED,
            "The username or password is wrong, or the account is disabled.",
        );
    }
    let now = state.clock().now();
    if let Err(wait) = state.throttle().begin(&username, &client, now) {
        tracing::warn!(username, client, "sign-in throttled");
        let msg = format!(
            "Too many failed sign-ins. Try again in {}.",
            super::fmt::human_span(u64::try_from(wait).unwrap_or(60))
        );
        return with_retry_after(again(StatusCode::TOO_MANY_REQUESTS, &msg), wait);
    }
    let lookup = username.clone();
    let found = match state
        .read(move |r| crate::operators::queries::by_username(r, &lookup))
        .await
    {
        Ok(f) => f,
        Err(e) => return super::ConsoleError(e).into_response(),
    };
    let password = form.password;
    let phc = found
        .as_ref()
        .filter(|(_, rec)| !rec.disabled)
        .map(|(_, rec)| rec.password_hash.clone());
    let ok = match crate::passwords::verify(password, phc).await {
        Ok(ok) => ok,
        Err(e) => {
            tracing::warn!(username, client, error = %e, "sign-in not checked");
            return again(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is busy checking other sign-ins. Try again in a few seconds.",
            );
        }
    };
    let known = found.is_some();
    let Some((id, _)) = found.filter(|_| ok) else {
        state.throttle().failed();
        let name = username.clone();
        if let Err(e) = state
            .write(Actor::system("signin"), move |ctx| {
                service::record_failure(ctx, &name, known)
            })
            .await
        {
            tracing::warn!(error = %e, "counting a failed sign-in failed");
        }
        tracing::info!(username, client, "sign-in failed");
        return again(
            StatusCode::UNAUTHORIZED,
            "The username or password is wrong, or the account is disabled.",
        );
    };
    state.throttle().succeeded(&username, &client, now);
    let (Ok(cookie_value), Ok(csrf)) = (random_token(), service::random32()) else {
        return super::error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no randomness available",
            None,
        );
    };
    let key = service::secret_key(&cookie_value);
    let c = client.clone();
    let actor = Actor::operator(username.clone());
    if let Err(e) = state
        .write(actor, move |ctx| {
            service::start_session(ctx, &id, &key, &csrf, &c)
        })
        .await
    {
        return super::ConsoleError(e).into_response();
    }
    tracing::info!(username, client, "signed in");
    let max = state.config().session_max.as_secs();
    let mut res = redirect(&next, Tone::Ok, "Signed in.");
    for c in [
        format!(
            "{SESSION_COOKIE}={cookie_value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max}{}",
            cookie_attrs(&state)
        ),
        format!("{PRE_CSRF_COOKIE}=; Path=/signin; Max-Age=0; HttpOnly; SameSite=Strict"),
    ] {
        if let Ok(v) = c.parse() {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

/// Ends the session (`operator.signed_out.v1`) and clears the cookie.
pub async fn view_signout_post(State(state): State<AppState>, ctx: Ctx) -> Response {
    if let Some(s) = &ctx.principal.session {
        let key = s.key;
        if let Err(e) = state
            .write(ctx.principal.actor.clone(), move |c| {
                service::end_session(c, &key)
            })
            .await
        {
            return super::ConsoleError(e).into_response();
        }
    }
    let mut res = axum::response::Redirect::to("/signin").into_response();
    if let Ok(v) = format!(
        "{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{}",
        cookie_attrs(&state)
    )
    .parse()
    {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}
