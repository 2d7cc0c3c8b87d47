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
use crate::rbac::{Permission, Principal};
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
        Ok(Ctx {
            role: state.config().role,
            principal,
            flash,
            path: parts.uri.path().to_string(),
            registry,
        })
    }
}

impl Ctx {
    /// May the caller do `p`? (Buttons are shown only when it may; the server checks anyway.)
    pub fn can(&self, p: Permission) -> bool {
        self.principal.can(p)
    }

    /// The hidden CSRF field every form carries.
    pub fn csrf(&self) -> Markup {
        match &self.principal.session {
            Some(s) => html! { input type="hidden" name=(CSRF_FIELD) value=(s.csrf); },
            None => html! {},
        }
    }
}

impl Ctx {
    /// The sidebar items this caller sees in this process, with the active one (the longest
    /// path that matches the current page).
    fn sidebar(&self) -> (Vec<&NavItem>, Option<&'static str>) {
        let items: Vec<&NavItem> = self
            .registry
            .nav()
            .iter()
            .filter(|i| self.principal.can(i.permission) && (i.shown_for)(self.role))
            .collect();
        let active = items
            .iter()
            .filter(|i| i.matches(&self.path))
            .max_by_key(|i| i.path.len())
            .map(|i| i.path);
        (items, active)
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
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                div.shell {
                    nav.sidebar aria-label="Platform" {
                        a.brand href="/platform" {
                            img src="/assets/favicon.svg" alt="" width="28" height="28";
                            span { "Tenantry" }
                        }
                        ul {
                            @for item in &nav {
                                li {
                                    a href=(item.path) aria-current=[(active == Some(item.path)).then_some("page")] { (item.label) }
                                }
                            }
                        }
                        div.who {
                            a href="/platform/account" { (p.display_name) }
                            span.role { (p.role.as_str().replace('_', " ")) }
                            @if p.session.is_some() {
                                form method="post" action="/signout" {
                                    (ctx.csrf())
                                    button.link type="submit" { "Sign out" }
                                }
                            }
                        }
                    }
                    main #main tabindex="-1" {
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
