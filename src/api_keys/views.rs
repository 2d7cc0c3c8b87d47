//! API keys in the consoles (tenant admin guide §3): the Tenant console's API keys page (issue,
//! showing the key once with a copy button; rotate with the grace countdown; revoke), and the
//! keys without expiry on the operator's tenant detail.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use uuid::Uuid;

use super::model::{ApiKey, KeyState};
use super::queries::ApiKeyFilter;
use super::service::ApiKeyDraft;
use crate::console::fmt::{self, when};
use crate::console::layout::{
    Ctx, TenantShell, Tone, badge, empty, header, page, page_with_status, redirect, secret_once,
};
use crate::console::{ConsoleError, PageResult};
use crate::error::{Error, Result, path_id};
use crate::http::extract::ApiQuery;
use crate::members::model::{PersonaKind, PersonaState};
use crate::rbac::{Permission, Principal, Scope};
use crate::state::AppState;
use crate::store::ReadCtx;

/// The API keys pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/tenant/{tenant_id}/api-keys",
            get(view_keys_get).post(view_key_issue_post),
        )
        .route(
            "/tenant/{tenant_id}/api-keys/{key_id}/rotate",
            post(view_key_rotate_post),
        )
        .route(
            "/tenant/{tenant_id}/api-keys/{key_id}/revoke",
            post(view_key_revoke_post),
        )
}

fn shell(ctx: &Ctx) -> std::result::Result<TenantShell, ConsoleError> {
    ctx.tenant
        .clone()
        .ok_or_else(|| ConsoleError(Error::not_found("tenant", ctx.path.clone())))
}

fn state_badge(k: &ApiKey, now: DateTime<Utc>) -> Markup {
    match k.state(now) {
        KeyState::Active => badge(Tone::Ok, "active"),
        KeyState::Expired => badge(Tone::Neutral, "expired"),
        KeyState::Revoked => badge(Tone::Neutral, "revoked"),
    }
}

struct Listing {
    keys: Vec<ApiKey>,
    personas: Vec<(Uuid, String, PersonaKind)>,
}

async fn listing(state: &AppState, tenant: Uuid, f: ApiKeyFilter) -> Result<Listing> {
    let now = state.clock().now();
    state
        .read(move |r| {
            let keys = super::queries::list(r, &tenant, &f, now)?;
            let q = crate::members::queries::PersonaFilter {
                state: Some("active".into()),
                limit: Some(crate::store::page::MAX_LIMIT),
                ..Default::default()
            }
            .parse()?;
            let personas = crate::members::queries::list(r, Some(&tenant), &q)?
                .items
                .into_iter()
                .map(|p| (p.id, p.display_name, p.kind))
                .collect();
            Ok(Listing { keys, personas })
        })
        .await
}

fn keys_page(
    ctx: &Ctx,
    t: &TenantShell,
    l: &Listing,
    now: DateTime<Utc>,
    shown: Option<Markup>,
) -> Markup {
    let writable = ctx.may(Scope::ApiKeysWrite, Permission::MembersManage);
    let names: HashMap<Uuid, &str> = l
        .personas
        .iter()
        .map(|(id, n, _)| (*id, n.as_str()))
        .collect();
    html! {
        (header("API keys", Some(&t.name), html! {}))
        @if let Some(s) = shown { (s) }
        @if l.keys.is_empty() {
            (empty("No API keys yet.", html! { p.muted { "Issue a key for an integration below: pick a service persona and only the scopes it needs." } }))
        } @else {
            table {
                thead { tr { th { "Name" } th { "Key" } th { "Persona" } th { "Scopes" } th { "State" } th { "Expires" } th { "Last used" } th { "Actions" } } }
                tbody {
                    @for k in &l.keys {
                        tr {
                            td { (k.name) }
                            td { code { (k.prefix) } }
                            td { (names.get(&k.persona_id).copied().unwrap_or("(not active)")) }
                            td { code.small { (k.scopes.to_claim()) } }
                            td {
                                (state_badge(k, now))
                                @if let Some(u) = k.previous_valid_until.filter(|u| *u > now) {
                                    br; span.small { "old key works " (fmt::countdown(u, now)) }
                                }
                            }
                            td {
                                @match k.expires_at {
                                    Some(e) => { (when(e)) }
                                    None => { (badge(Tone::Warn, "no expiry")) }
                                }
                            }
                            td { (k.last_used_at.map_or_else(|| html! { "never" }, when)) }
                            td {
                                @if k.state(now) == KeyState::Active && writable {
                                    form.inline method="post" action=(t.at(&format!("/api-keys/{}/rotate", k.id)))
                                        data-confirm="Rotate this key? The old key keeps working for 10 minutes, then fails." {
                                        (ctx.csrf())
                                        button type="submit" { "Rotate" }
                                    }
                                    form.inline method="post" action=(t.at(&format!("/api-keys/{}/revoke", k.id)))
                                        data-confirm="Revoke this key now? There is no grace window." {
                                        (ctx.csrf())
                                        button.danger type="submit" { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section.card {
            h2 { "Issue a key" }
            @if l.personas.is_empty() {
                p.muted { "Add a service persona on the Members page first." }
            }
            form.stack method="post" action=(t.at("/api-keys")) {
                (ctx.csrf())
                fieldset.plain disabled[!writable || l.personas.is_empty()] {
                    label for="persona_id" { "Persona" }
                    select #persona_id name="persona_id" required {
                        @for (id, name, kind) in &l.personas {
                            option value=(id) { (name) " (" (kind.as_str()) ")" }
                        }
                    }
                    label for="key-name" { "Name" }
                    input #key-name name="name" required maxlength="80" placeholder="ci-pipeline";
                    fieldset {
                        legend { "Scopes (minimum privilege)" }
                        @for s in Scope::ALL {
                            label { input type="checkbox" name="scopes" value=(s.as_str()); " " code { (s.as_str()) } }
                        }
                    }
                    label for="expires_at" { "Expires (optional; a key without expiry is flagged)" }
                    input #expires_at name="expires_at" type="date";
                    button.primary type="submit" { "Issue key" }
                }
            }
        }
    }
}

/// The API keys page.
pub async fn view_keys_get(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiQuery(f): ApiQuery<ApiKeyFilter>,
) -> PageResult {
    let t = shell(&ctx)?;
    let l = listing(&state, t.id, f).await?;
    let now = state.clock().now();
    Ok(page(&ctx, "API keys", keys_page(&ctx, &t, &l, now, None)))
}

/// A date (`YYYY-MM-DD`, the end of that day in UTC) or an RFC 3339 time.
fn expiry(s: &str) -> Option<String> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    Some(match chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        Ok(d) => format!("{d}T23:59:59Z"),
        Err(_) => s.to_string(),
    })
}

/// Issues a key and shows it once.
pub async fn view_key_issue_post(
    State(state): State<AppState>,
    ctx: Ctx,
    body: axum::body::Bytes,
) -> PageResult {
    let t = shell(&ctx)?;
    let f: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let one = |n: &str| {
        f.iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let draft = ApiKeyDraft {
        persona_id: one("persona_id"),
        name: one("name"),
        scopes: f
            .iter()
            .filter(|(k, _)| k == "scopes")
            .map(|(_, v)| v.clone())
            .collect(),
        expires_at: expiry(&one("expires_at")),
    };
    let now = state.clock().now();
    match super::issue(&state, &ctx.principal, t.id, draft).await {
        Ok(super::Issued::Held(req, key)) => {
            let l = listing(&state, t.id, ApiKeyFilter::default()).await?;
            let shown = html! {
                section.card {
                    h2 { "Key held for approval" }
                    p { "\"" (req.request.held.summary) "\" needs " (req.request.required) " approval(s) under route " (req.request.route_name) ". The key below is refused until the request is approved (Approvals page)." }
                    (secret_once("new-key", "API key", &key))
                }
            };
            Ok(page(
                &ctx,
                "API keys",
                keys_page(&ctx, &t, &l, now, Some(shown)),
            ))
        }
        Ok(super::Issued::Done(k, key)) => {
            let l = listing(&state, t.id, ApiKeyFilter::default()).await?;
            let shown = html! {
                section.card {
                    h2 { "Key issued: " (k.name) }
                    (secret_once("new-key", "API key", &key))
                    @if k.expires_at.is_none() { p { (badge(Tone::Warn, "no expiry")) " This key never expires: it is flagged in compliance reviews." } }
                }
            };
            Ok(page(
                &ctx,
                "API keys",
                keys_page(&ctx, &t, &l, now, Some(shown)),
            ))
        }
        Err(e) => {
            let l = listing(&state, t.id, ApiKeyFilter::default()).await?;
            let shown = html! { div.flash.critical role="alert" { (e.to_string()) ". Nothing was changed." } };
            Ok(page_with_status(
                &ctx,
                crate::http::problem::status(&e),
                "API keys",
                keys_page(&ctx, &t, &l, now, Some(shown)),
            ))
        }
    }
}

/// Rotates a key: shows the new key once and the old key's grace countdown.
pub async fn view_key_rotate_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, key)): Path<(String, String)>,
) -> PageResult {
    let t = shell(&ctx)?;
    let key = path_id("api key", &key)?;
    let now = state.clock().now();
    match super::rotate(&state, &ctx.principal, t.id, key).await {
        Ok((k, secret, until)) => {
            let l = listing(&state, t.id, ApiKeyFilter::default()).await?;
            let shown = html! {
                section.card {
                    h2 { "Key rotated: " (k.name) }
                    (secret_once("new-key", "New API key", &secret))
                    p { "The old key keeps working " (fmt::countdown(until, now)) " (until " (when(until)) "), then fails. Swap your configuration now." }
                }
            };
            Ok(page(
                &ctx,
                "API keys",
                keys_page(&ctx, &t, &l, now, Some(shown)),
            ))
        }
        Err(e) => Ok(redirect(
            &t.at("/api-keys"),
            Tone::Critical,
            &format!("{e}. Nothing was changed."),
        )),
    }
}

/// Revokes a key at once.
pub async fn view_key_revoke_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, key)): Path<(String, String)>,
) -> PageResult {
    let t = shell(&ctx)?;
    let key = path_id("api key", &key)?;
    let tenant = t.id;
    let back = t.at("/api-keys");
    Ok(
        match state
            .write(ctx.principal.actor.clone(), move |c| {
                super::service::revoke(c, &tenant, &key)
            })
            .await
        {
            Ok(k) => redirect(
                &back,
                Tone::Ok,
                &format!("Revoked {}: it stopped working now.", k.name),
            ),
            Err(e) => redirect(&back, Tone::Critical, &format!("{e}. Nothing was changed.")),
        },
    )
}

/// The operator's tenant detail: the tenant's active keys without expiry (flagged).
pub fn tenant_panel(
    r: &ReadCtx,
    tenant: &Uuid,
    _p: &Principal,
    now: DateTime<Utc>,
) -> Result<Markup> {
    let keys = super::without_expiry(r, tenant, now)?;
    let total = crate::members::queries::counter(r, tenant, super::model::counter::ACTIVE)?;
    let mut owners: HashMap<Uuid, (String, bool)> = HashMap::new();
    for k in &keys {
        if let Ok(p) = crate::members::queries::load_persona(r, tenant, &k.persona_id) {
            owners.insert(
                k.persona_id,
                (p.display_name, p.state == PersonaState::Active),
            );
        }
    }
    Ok(html! {
        section.card #api-keys {
            h2 { "API keys" }
            p { (total) " active key" @if total != 1 { "s" } ", " (keys.len()) " without expiry." }
            @if !keys.is_empty() {
                table {
                    thead { tr { th { "Name" } th { "Key" } th { "Persona" } th { "Issued" } th { "Last used" } } }
                    tbody {
                        @for k in &keys {
                            tr {
                                td { (k.name) " " (badge(Tone::Warn, "no expiry")) }
                                td { code { (k.prefix) } }
                                td { (owners.get(&k.persona_id).map_or("—", |(n, _)| n.as_str())) }
                                td { (when(k.created_at)) }
                                td { (k.last_used_at.map_or_else(|| html! { "never" }, when)) }
                            }
                        }
                    }
                }
            }
        }
    })
}
