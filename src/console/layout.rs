//! The page shell (`page`), the per-request context (`Ctx`), flash messages, and partials that
//! every page uses: badges, form fields with their errors, empty states, the CSRF field.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use std::sync::Arc;

use crate::http::context::{NavItem, Registry};
use crate::http::credentials::{CSRF_FIELD, cookie};
use crate::rbac::{Permission, Principal, Scope};
use crate::state::AppState;

/// Name of the flash cookie, which carries a message across one redirect.
pub const FLASH_COOKIE: &str = "tenantry_flash";

/// Severity of a flash message or badge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// Green: done, healthy.
    Ok,
    /// Amber: needs attention.
    Warn,
    /// Red: broken, failed, destructive.
    Critical,
    /// Blue: information.
    Info,
    /// Grey: neutral.
    Neutral,
}

impl Tone {
    fn class(self) -> &'static str {
        match self {
            Tone::Ok => "ok",
            Tone::Warn => "warn",
            Tone::Critical => "critical",
            Tone::Info => "info",
            Tone::Neutral => "neutral",
        }
    }
    fn parse(s: &str) -> Tone {
        match s {
            "ok" => Tone::Ok,
            "warn" => Tone::Warn,
            "critical" => Tone::Critical,
            "neutral" => Tone::Neutral,
            _ => Tone::Info,
        }
    }
}

/// A message shown once, on the next page.
#[derive(Clone, Debug)]
pub struct Flash {
    /// Severity.
    pub tone: Tone,
    /// Text.
    pub text: String,
}

/// What every console page needs: who is asking, a pending flash, and where we are.
pub struct Ctx {
    /// This install's role (which on-prem pages exist).
    pub role: crate::config::Role,
    /// The signed-in operator (or a bearer-token caller).
    pub principal: Principal,
    /// A message from the previous action.
    pub flash: Option<Flash>,
    /// Path of this request (for the active sidebar entry).
    pub path: String,
    /// What the contexts declared: the sidebar, the event catalogue.
    pub registry: Arc<Registry>,
    /// On a Tenant-console page (`/tenant/{tenant_id}/...`): the tenant.
    pub tenant: Option<TenantShell>,
    /// The request's time (the visit banner's countdown).
    pub now: chrono::DateTime<chrono::Utc>,
}

/// The tenant a Tenant-console page belongs to.
#[derive(Clone, Debug)]
pub struct TenantShell {
    /// Its id.
    pub id: uuid::Uuid,
    /// Its display name.
    pub name: String,
}

impl TenantShell {
    /// The console path `rest` of this tenant, e.g. `at("/members")`.
    pub fn at(&self, rest: &str) -> String {
        format!("/tenant/{}{rest}", self.id)
    }
}

/// The tenant id of a Tenant-console path (`/tenant/{tenant_id}/...`).
pub fn tenant_of_path(path: &str) -> Option<uuid::Uuid> {
    let rest = path.strip_prefix("/tenant/")?;
    crate::ids::parse_uuid(rest.split('/').next()?)
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| {
                super::refusal(
                    crate::error::Error::Unauthorized("sign in first".into()).into(),
                    &parts.uri,
                )
            })?;
        let flash = cookie(&parts.headers, FLASH_COOKIE).and_then(|v| {
            let decoded: Vec<(String, String)> = serde_urlencoded::from_str(v).ok()?;
            let get = |k: &str| decoded.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            Some(Flash {
                tone: Tone::parse(&get("t")?),
                text: get("m")?,
            })
        });
        let registry = parts
            .extensions
            .get::<Arc<Registry>>()
            .cloned()
            .ok_or_else(|| {
                super::ConsoleError(crate::error::Error::Internal(
                    "the registry is not in the request (http::app adds it)".into(),
                ))
                .into_response()
            })?;
        let path = parts.uri.path().to_string();
        let tenant = match tenant_of_path(&path) {
            Some(id) => {
                let t = state
                    .read(move |r| crate::tenants::queries::get(r, &id))
                    .await
                    .map_err(|e| super::ConsoleError(e).into_response())?;
                Some(TenantShell {
                    id,
                    name: t.display_name,
                })
            }
            None => None,
        };
        Ok(Ctx {
            role: state.config().role,
            principal,
            flash,
            path,
            registry,
            tenant,
            now: state.clock().now(),
        })
    }
}

impl Ctx {
    /// May the caller do `p`? (Buttons are shown only when it may; the server checks anyway.)
    pub fn can(&self, p: Permission) -> bool {
        self.principal.can(p)
    }

    /// On a Tenant-console page: may the caller do what needs scope `s` (a member) or
    /// permission `p` (an operator), and write now (not a read-only visit)? Forms are shown
    /// only when it may; the server checks anyway.
    pub fn may(&self, s: Scope, p: Permission) -> bool {
        self.principal.grants(s, p) && !self.read_only()
    }

    /// Is this an operator's visit that is not elevated now (every form disabled)?
    pub fn read_only(&self) -> bool {
        self.principal
            .visit()
            .is_some_and(|v| !v.is_elevated(self.now))
    }

    /// The hidden CSRF field every form carries.
    pub fn csrf(&self) -> Markup {
        csrf_field(&self.principal)
    }
}

/// The hidden CSRF field of `p`'s session, for the forms of a page section rendered outside a
/// [`Ctx`] (the tenant detail's panels).
pub fn csrf_field(p: &Principal) -> Markup {
    match &p.session {
        Some(s) => html! { input type="hidden" name=(CSRF_FIELD) value=(s.csrf); },
        None => html! {},
    }
}

impl Ctx {
    /// The sidebar items this caller sees in this process, with the active one (the longest
    /// path that matches the current page).
    fn sidebar(&self) -> (Vec<(String, &'static str)>, Option<String>) {
        let tenant = self.tenant.as_ref().map(|t| t.id);
        let items: Vec<(String, &NavItem)> = self
            .registry
            .nav()
            .iter()
            .filter(|i| i.shown_to(&self.principal, tenant.is_some()) && (i.shown_for)(self.role))
            .map(|i| (i.href(tenant.as_ref()), i))
            .collect();
        let active = items
            .iter()
            .filter(|(href, i)| i.matches(href, &self.path))
            .max_by_key(|(href, _)| href.len())
            .map(|(href, _)| href.clone());
        (
            items.into_iter().map(|(h, i)| (h, i.label)).collect(),
            active,
        )
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Tenantry" }
            link rel="stylesheet" href="/assets/console.css";
            link rel="icon" href="/assets/favicon.svg" type="image/svg+xml";
            script src="/assets/console.js" defer {}
        }
    }
}

/// The full page: sidebar, top bar, flash, content.
pub fn page(ctx: &Ctx, title: &str, body: Markup) -> Response {
    let p = &ctx.principal;
    let (nav, active) = ctx.sidebar();
    let (home, account, signout, brand) = match &ctx.tenant {
        Some(t) => (
            t.at(""),
            t.at("/account"),
            t.at("/signout"),
            t.name.as_str(),
        ),
        None => (
            "/platform".to_string(),
            "/platform/account".to_string(),
            "/signout".to_string(),
            "Tenantry",
        ),
    };
    let visiting = ctx.tenant.as_ref().zip(p.visit());
    let ping = ctx.tenant.as_ref().map(|t| t.at("/session"));
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body data-session-ping=[ping] {
                a.skip href="#main" { "Skip to content" }
                div.shell {
                    nav.sidebar aria-label=(if ctx.tenant.is_some() { "Tenant" } else { "Platform" }) {
                        a.brand href=(home) {
                            img src="/assets/favicon.svg" alt="" width="28" height="28";
                            span { (brand) }
                        }
                        @if ctx.tenant.is_some() { p.console-kind { "Tenant console" } }
                        ul {
                            @for (href, label) in &nav {
                                li {
                                    a href=(href) aria-current=[(active.as_deref() == Some(href.as_str())).then_some("page")] { (label) }
                                }
                            }
                        }
                        div.who {
                            @if visiting.is_some() {
                                a href="/platform/account" { (p.display_name) }
                                span.role { "visiting operator" }
                            } @else {
                                a href=(account) { (p.display_name) }
                                span.role { (p.label().replace('_', " ")) }
                                @if p.session.is_some() {
                                    form method="post" action=(signout) {
                                        (ctx.csrf())
                                        button.link type="submit" { "Sign out" }
                                    }
                                }
                            }
                        }
                    }
                    main #main tabindex="-1" {
                        @if let Some((t, v)) = visiting {
                            (visit_banner(ctx, t, v, &p.display_name))
                        }
                        @if let Some(f) = &ctx.flash {
                            div class={"flash " (f.tone.class())} role="status" { (f.text) }
                        }
                        (body)
                    }
                }
            }
        }
    };
    let mut res = (StatusCode::OK, markup).into_response();
    if ctx.flash.is_some()
        && let Ok(v) =
            format!("{FLASH_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict").parse()
    {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// The banner of an operator's visit: who, until when, read-only or elevated, and the way to
/// elevate or end it (the forms live on the visit page, `/tenant/{tenant_id}/visit`).
fn visit_banner(ctx: &Ctx, t: &TenantShell, v: &crate::rbac::Visit, who: &str) -> Markup {
    let elevated = v.is_elevated(ctx.now);
    let until = if elevated {
        v.elevated_until.unwrap_or(v.expires_at)
    } else {
        v.expires_at
    };
    html! {
        div class={"visit-banner " (if elevated { "elevated" } else { "read-only" })} role="status" {
            strong { (who) }
            @if elevated {
                " is visiting " (t.name) " with write access (elevated) until "
            } @else {
                " is visiting " (t.name) " read-only until "
            }
            time datetime=(crate::clock::rfc3339_micros(until)) { (until.format("%H:%M UTC")) }
            " · "
            a href=(t.at("/visit")) { @if elevated { "Visit details" } @else { "Elevate or end the visit" } }
        }
    }
}

/// The same page with another status (a form re-rendered with its errors is a 422).
pub fn page_with_status(ctx: &Ctx, status: StatusCode, title: &str, body: Markup) -> Response {
    let mut res = page(ctx, title, body);
    *res.status_mut() = status;
    res
}

/// A 303 redirect that shows `text` on the next page.
pub fn redirect(to: &str, tone: Tone, text: &str) -> Response {
    let value = serde_urlencoded::to_string([("t", tone.class()), ("m", text)]).unwrap_or_default();
    let mut res = axum::response::Redirect::to(to).into_response();
    if let Ok(v) =
        format!("{FLASH_COOKIE}={value}; Path=/; Max-Age=60; HttpOnly; SameSite=Strict").parse()
    {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// A page without the sidebar, for callers who have no session yet (sign-in, an invite): the
/// shared head and a centred card holding `body`.
pub fn bare_page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="stylesheet" href="/assets/console.css";
                link rel="icon" href="/assets/favicon.svg" type="image/svg+xml";
            }
            body.centered { main.signin { (body) } }
        }
    }
}

/// The brand block of a bare page: the logo and `name`.
pub fn brand(name: &str) -> Markup {
    html! {
        div.brand-big {
            img src="/assets/favicon.svg" alt="" width="40" height="40";
            span { (name) }
        }
    }
}

/// A standalone error page (no sidebar: the caller may not be signed in).
pub fn error_page(status: StatusCode, message: &str, request_id: Option<&str>) -> Markup {
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(&title))
            body.centered {
                main.error-card {
                    p.code { (status.as_u16()) }
                    h1 { (status.canonical_reason().unwrap_or("Error")) }
                    p { (message) }
                    @if let Some(id) = request_id {
                        p.muted { "Request id: " code { (id) } }
                    }
                    p { a href="/platform" { "Back to the dashboard" } }
                }
            }
        }
    }
}

/// A secret shown once (an API key, an invite link): a read-only field with a copy button
/// (the button appears with the script).
pub fn secret_once(id: &str, label: &str, value: &str) -> Markup {
    html! {
        div.field {
            label for=(id) { (label) }
            div.secret-once {
                input #(id) type="text" readonly value=(value) autocomplete="off" spellcheck="false";
                button type="button" data-copy=(id) hidden { "Copy" }
            }
            p.help { "Shown once: copy it now. Tenantry keeps only a hash." }
        }
    }
}

/// A badge.
pub fn badge(tone: Tone, text: &str) -> Markup {
    html! { span class={"badge " (tone.class())} { (text) } }
}

/// A labelled form field with its error (and the input kept) and optional help.
pub fn field(
    label: &str,
    id: &str,
    input: Markup,
    error: Option<&str>,
    help: Option<&str>,
) -> Markup {
    let help_id = format!("{id}-help");
    let err_id = format!("{id}-error");
    html! {
        div class={"field" @if error.is_some() { " invalid" }} {
            label for=(id) { (label) }
            (input)
            @if let Some(h) = help { p.help id=(help_id) { (h) } }
            @if let Some(e) = error { p.error id=(err_id) role="alert" { (e) } }
        }
    }
}

/// An empty list: what it is and what to do.
pub fn empty(text: &str, hint: Markup) -> Markup {
    html! {
        div.empty {
            p { (text) }
            (hint)
        }
    }
}

/// A page header with optional actions on the right.
pub fn header(title: &str, subtitle: Option<&str>, actions: Markup) -> Markup {
    html! {
        header.page-head {
            div {
                h1 { (title) }
                @if let Some(s) = subtitle { p.muted { (s) } }
            }
            div.actions { (actions) }
        }
    }
}

/// Raw, already-safe markup (inline SVG built by [`super::charts`]).
pub fn raw(s: String) -> Markup {
    PreEscaped(s)
}
