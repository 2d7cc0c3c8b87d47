//! The Tenant console's pages: sign-in and sign-out, the home (the day-1 checklist of guide
//! §10, counts, recent activity), the account page, and the session check open pages poll so
//! that a revoked member's open page signs out.
//!
//! Sign-in follows the operators' console (`console::signin`): a double-submit token guards the
//! form before a session exists; failures are throttled per tenant and email and per client
//! address; a session is server-side (only the SHA-256 of the cookie is stored) with the same
//! idle and absolute limits. The cookie is scoped to `Path=/tenant/{tenant_id}`: the browser
//! sends it to that tenant's pages only, never to `/platform` or another tenant's console.

use crate::http::extract::ClientAddr;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use crate::actor::Actor;
use crate::audit::ChainId;
use crate::audit::ledger::{self, AuditQuery};
use crate::console::fmt::when;
use crate::console::layout::{Ctx, TenantShell, Tone, badge, header, page, redirect};
use crate::console::layout::{bare_page, brand, field};
use crate::console::signin::{NextQuery, cookie_attrs};
use crate::console::{ConsoleError, PageResult};
use crate::error::Error;
use crate::http::credentials::{TENANT_SESSION_COOKIE, cookie, csrf_matches, random_token};
use crate::members::model::PersonaState;
use crate::operators::service::{random32, secret_key};
use crate::rbac::Scope;
use crate::state::AppState;

/// The shell's pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tenant/{tenant_id}", get(view_tenant_home_get))
        .route(
            "/tenant/{tenant_id}/signin",
            get(view_tenant_signin_get).post(view_tenant_signin_post),
        )
        .route(
            "/tenant/{tenant_id}/signout",
            post(view_tenant_signout_post),
        )
        .route("/tenant/{tenant_id}/account", get(view_tenant_account_get))
        .route(
            "/tenant/{tenant_id}/account/password",
            post(view_tenant_password_post),
        )
        .route("/tenant/{tenant_id}/session", get(view_tenant_session_get))
}

fn shell(ctx: &Ctx) -> Result<&TenantShell, ConsoleError> {
    ctx.tenant
        .as_ref()
        .ok_or_else(|| ConsoleError(Error::not_found("tenant", ctx.path.clone())))
}

/// Home: the day-1 checklist ticked from the store, counts, and recent activity.
pub async fn view_tenant_home_get(State(state): State<AppState>, ctx: Ctx) -> PageResult {
    let t = shell(&ctx)?.clone();
    let id = t.id;
    let now = state.clock().now();
    let registry = ctx.registry.clone();
    let (tenant, counts, no_expiry, steps, entries) = state
        .read(move |r| {
            let tenant = crate::tenants::queries::get(r, &id)?;
            let counts = crate::members::queries::counts(r, &id)?;
            let no_expiry = crate::members::queries::counter(
                r,
                &id,
                crate::api_keys::model::counter::NO_EXPIRY,
            )?;
            let steps = registry
                .checklist()
                .iter()
                .map(|s| Ok((*s, (s.done)(r, &id, now)?)))
                .collect::<crate::error::Result<Vec<_>>>()?;
            let entries = ledger::browse(
                r,
                &AuditQuery {
                    chain: Some(ChainId::Tenant(id)),
                    limit: 8,
                    ..AuditQuery::default()
                },
            )?;
            Ok((tenant, counts, no_expiry, steps, entries.items))
        })
        .await?;
    let done = steps.iter().filter(|(_, d)| *d).count();
    let body = html! {
        (header(&t.name, Some(&format!("{} · {} · {}", tenant.slug, tenant.region, tenant.state.as_str())), html! {}))
        section.grid3 {
            div.card.stat {
                h2 { "Members" }
                p.big { (counts.members) }
                p.muted { (counts.invited) " invite" @if counts.invited != 1 { "s" } " pending" }
            }
            div.card.stat {
                h2 { "API keys without expiry" }
                p.big { (no_expiry) }
                @if no_expiry > 0 {
                    p { (badge(Tone::Warn, "flagged in compliance reviews")) }
                } @else {
                    p.muted { "Every key has an expiry." }
                }
            }
            div.card.stat {
                h2 { "Business units" }
                p.big { (counts.business_units) }
            }
        }
        section.card {
            h2 { "Day-1 checklist" }
            p.muted { (done) " of " (steps.len()) " done. Do these in order when your tenant is new (tenant admin guide §10)." }
            ol.checklist {
                @for (s, ok) in &steps {
                    li class=(if *ok { "done" } else { "todo" }) {
                        @if *ok { (badge(Tone::Ok, "done")) } @else { (badge(Tone::Neutral, "to do")) }
                        " "
                        a href=(s.path.replace("{tenant_id}", &id.to_string())) { strong { (s.title) } }
                        p.muted { (s.hint) }
                    }
                }
            }
        }
        section.card {
            h2 { "Recent activity" }
            (crate::audit::views::feed(&entries, now))
            @if !entries.is_empty() {
                @if ctx.principal.grants(Scope::AuditRead, crate::rbac::Permission::Read) {
                    p { a href=(t.at("/audit")) { "All of your tenant's audit chain" } }
                }
            }
        }
    };
    Ok(page(&ctx, &t.name, body))
}

/// The account page: who you are here, your roles and scopes, and your password.
pub async fn view_tenant_account_get(State(state): State<AppState>, ctx: Ctx) -> PageResult {
    let t = shell(&ctx)?.clone();
    let Some(me) = ctx.principal.tenant().cloned() else {
        let body = html! {
            (header("Account", None, html! {}))
            p { "You are visiting as an operator; your own account is in the platform console." }
            p { a href="/platform/account" { "Your operator account" } }
        };
        return Ok(page(&ctx, "Account", body));
    };
    let id = t.id;
    let persona = state
        .read(move |r| crate::members::queries::persona(r, &id, &me.persona_id))
        .await?;
    let body = html! {
        (header("Account", Some(&t.name), html! {}))
        section.card {
            dl {
                dt { "Name" } dd { (persona.display_name) }
                dt { "Email" } dd { (persona.email.as_deref().unwrap_or("—")) }
                dt { "Roles" } dd { (persona.roles.join(", ")) }
                dt { "Scopes" } dd { code { (me.scopes.to_claim()) } }
                dt { "Last sign-in" } dd { (persona.last_sign_in_at.map_or_else(|| html! { "—" }, when)) }
            }
        }
        section.card {
            h2 { "Change password" }
            form.stack method="post" action=(t.at("/account/password")) {
                (ctx.csrf())
                label for="current" { "Current password" }
                input #current name="current" type="password" autocomplete="current-password" required;
                label for="password" { "New password (at least 12 characters)" }
                input #password name="password" type="password" autocomplete="new-password" required minlength="12";
                button.primary type="submit" { "Change password" }
            }
            p.muted { "Your other sessions end when the password changes." }
        }
    };
    Ok(page(&ctx, "Account", body))
}

/// The password form's fields.
#[derive(Deserialize)]
pub struct PasswordForm {
    current: String,
    password: String,
}

/// Changes the member's password after checking the current one; other sessions end.
pub async fn view_tenant_password_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(f): Form<PasswordForm>,
) -> PageResult {
    let t = shell(&ctx)?.clone();
    let back = t.at("/account");
    let (Some(me), Some(session)) = (
        ctx.principal.tenant().cloned(),
        ctx.principal.session.clone(),
    ) else {
        return Ok(redirect(
            &back,
            Tone::Critical,
            "Only a signed-in member changes their password.",
        ));
    };
    let tenant = t.id;
    match crate::members::change_password(
        &state,
        tenant,
        me.persona_id,
        f.current,
        f.password,
        session.key,
    )
    .await
    {
        Ok(()) => Ok(redirect(
            &back,
            Tone::Ok,
            "Password changed. Your other sessions ended.",
        )),
        Err(e) => Ok(redirect(
            &back,
            Tone::Critical,
            &format!("{e}. Nothing was changed."),
        )),
    }
}

/// `{"signed_in": true}` while the session lives; a dead session is redirected to sign-in by
/// the permission middleware, which the page's script follows.
pub async fn view_tenant_session_get(ctx: Ctx) -> Response {
    Json(serde_json::json!({
        "signed_in": true,
        "read_only": ctx.read_only(),
    }))
    .into_response()
}

const PRE_CSRF_COOKIE: &str = "tenantry_tenant_signin";

/// Only this tenant's console paths are followed after sign-in (no open redirect).
fn safe_next(tenant: &Uuid, next: Option<&str>) -> String {
    let home = format!("/tenant/{tenant}");
    match next {
        Some(n)
            if (n == home || n.starts_with(&format!("{home}/")))
                && !n.contains("//")
                && !n.contains("://") =>
        {
            n.to_string()
        }
        _ => home,
    }
}

fn signin_page(
    tenant: &Uuid,
    name: &str,
    token: &str,
    next: &str,
    email: &str,
    error: Option<&str>,
) -> Markup {
    bare_page(
        &format!("Sign in · {name}"),
        html! {
            (brand(name))
            h1 { "Sign in to your tenant console" }
            @if let Some(e) = error {
                div.flash.critical role="alert" { (e) }
            }
            form method="post" action={"/tenant/" (tenant) "/signin"} {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(next);
                (field("Email", "email", html! {
                    input #email name="email" type="email" autocomplete="username" required autofocus value=(email);
                }, None, None))
                (field("Password", "password", html! {
                    input #password name="password" type="password" autocomplete="current-password" required;
                }, None, None))
                button.primary type="submit" { "Sign in" }
            }
            p.muted.small { "This console is scoped to your tenant only. Everything you do here is recorded on your tenant's audit chain." }
        },
    )
}

fn with_pre_cookie(
    state: &AppState,
    tenant: &Uuid,
    status: StatusCode,
    markup: Markup,
    token: &str,
) -> Response {
    let mut res = (status, markup).into_response();
    let c = format!(
        "{PRE_CSRF_COOKIE}={token}; Path=/tenant/{tenant}/signin; HttpOnly; SameSite=Strict; Max-Age=3600{}",
        cookie_attrs(state)
    );
    if let Ok(v) = c.parse() {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

async fn tenant_name(
    state: &AppState,
    tenant: Uuid,
) -> Result<String, crate::console::ConsoleError> {
    Ok(state
        .read(move |r| crate::tenants::queries::get(r, &tenant))
        .await?
        .display_name)
}

fn no_randomness() -> Response {
    crate::console::error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "no randomness available",
        None,
    )
}

/// The sign-in form.
pub async fn view_tenant_signin_get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<NextQuery>,
) -> Response {
    let tenant = match crate::error::path_id("tenant", &id) {
        Ok(t) => t,
        Err(e) => return crate::console::ConsoleError(e).into_response(),
    };
    let name = match tenant_name(&state, tenant).await {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    let Ok(token) = random_token() else {
        return no_randomness();
    };
    let next = safe_next(&tenant, q.next.as_deref());
    with_pre_cookie(
        &state,
        &tenant,
        StatusCode::OK,
        signin_page(&tenant, &name, &token, &next, "", None),
        &token,
    )
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub struct SigninForm {
    email: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

/// Checks the password and starts a session scoped to this tenant.
pub async fn view_tenant_signin_post(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<SigninForm>,
) -> Response {
    let tenant = match crate::error::path_id("tenant", &id) {
        Ok(t) => t,
        Err(e) => return crate::console::ConsoleError(e).into_response(),
    };
    let name = match tenant_name(&state, tenant).await {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    let next = safe_next(&tenant, form.next.as_deref());
    let email = form.email.trim().to_lowercase();
    let client = addr.to_string();
    let again = |status: StatusCode, msg: &str| -> Response {
        match random_token() {
            Ok(t) => with_pre_cookie(
                &state,
                &tenant,
                status,
                signin_page(&tenant, &name, &t, &next, &email, Some(msg)),
                &t,
            ),
            Err(_) => no_randomness(),
        }
    };
    if !csrf_matches(&form.csrf, cookie(&headers, PRE_CSRF_COOKIE)) {
        return again(
            StatusCode::FORBIDDEN,
            "The sign-in form expired. Please try again.",
        );
    }
    if email.len() > crate::operators::throttle::MAX_NAME_BYTES {
        // No such member can exist: refused before anything is counted, read or hashed.
        return again(
            StatusCode::UNAUTHORIZED,
            "The email or password is wrong, or the account is not active.",
        );
    }
    // Throttled per tenant and email, and per client address, like operators.
    let who = format!("{tenant}/{email}");
    let now = state.clock().now();
    if let Err(wait) = state.throttle().begin(&who, &client, now) {
        tracing::warn!(%tenant, client, "tenant sign-in throttled");
        let msg = format!(
            "Too many failed sign-ins. Try again in {}.",
            crate::console::fmt::human_span(u64::try_from(wait).unwrap_or(60))
        );
        return crate::console::signin::with_retry_after(
            again(StatusCode::TOO_MANY_REQUESTS, &msg),
            wait,
        );
    }
    let lookup = email.clone();
    let found = match state
        .read(move |r| crate::members::queries::by_email(r, &tenant, &lookup))
        .await
    {
        Ok(f) => f,
        Err(e) => return crate::console::ConsoleError(e).into_response(),
    };
    let password = form.password;
    let phc = found
        .as_ref()
        .filter(|(_, p)| p.state == PersonaState::Active)
        .and_then(|(_, p)| p.password_hash.clone());
    let ok = match crate::passwords::verify(password, phc).await {
        Ok(ok) => ok,
        Err(e) => {
            tracing::warn!(%tenant, client, error = %e, "tenant sign-in not checked");
            return again(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is busy checking other sign-ins. Try again in a few seconds.",
            );
        }
    };
    let Some((persona, _)) = found.filter(|_| ok) else {
        state.throttle().failed();
        tracing::info!(%tenant, client, "tenant sign-in failed");
        return again(
            StatusCode::UNAUTHORIZED,
            "The email or password is wrong, or the account is not active.",
        );
    };
    state.throttle().succeeded(&who, &client, now);
    let (Ok(cookie_value), Ok(csrf)) = (random_token(), random32()) else {
        return no_randomness();
    };
    let key = secret_key(&cookie_value);
    if let Err(e) = state
        .write(Actor::persona(persona.to_string()), move |ctx| {
            crate::members::service::start_session(ctx, &tenant, &persona, &key, &csrf)
        })
        .await
    {
        return crate::console::ConsoleError(e).into_response();
    }
    tracing::info!(%tenant, %persona, client, "tenant member signed in");
    let max = state.config().session_max.as_secs();
    let mut res = redirect(&next, Tone::Ok, "Signed in.");
    for c in [
        format!(
            "{TENANT_SESSION_COOKIE}={cookie_value}; Path=/tenant/{tenant}; HttpOnly; SameSite=Strict; Max-Age={max}{}",
            cookie_attrs(&state)
        ),
        format!(
            "{PRE_CSRF_COOKIE}=; Path=/tenant/{tenant}/signin; Max-Age=0; HttpOnly; SameSite=Strict"
        ),
    ] {
        if let Ok(v) = c.parse() {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

/// Ends the member's session (`persona.signed_out.v1`) and clears its cookie.
pub async fn view_tenant_signout_post(State(state): State<AppState>, ctx: Ctx) -> Response {
    let Some(t) = ctx.tenant.as_ref() else {
        return crate::console::error_page(StatusCode::NOT_FOUND, "No such tenant.", None);
    };
    let tenant = t.id;
    if ctx.principal.tenant().is_some()
        && let Some(s) = &ctx.principal.session
    {
        let key = s.key;
        if let Err(e) = state
            .write(ctx.principal.actor.clone(), move |c| {
                crate::members::service::end_session(c, &key)
            })
            .await
        {
            return crate::console::ConsoleError(e).into_response();
        }
    }
    let mut res = axum::response::Redirect::to(&format!("/tenant/{tenant}/signin")).into_response();
    if let Ok(v) = format!(
        "{TENANT_SESSION_COOKIE}=; Path=/tenant/{tenant}; Max-Age=0; HttpOnly; SameSite=Strict{}",
        cookie_attrs(&state)
    )
    .parse()
    {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}
