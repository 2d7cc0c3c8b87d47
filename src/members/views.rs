//! Members in the consoles (tenant admin guide §2): the Tenant console's Members and Business
//! units tabs, the public invite page where a person sets their password, the operators' Users
//! page across tenants, and the members section of the operator's tenant detail.

use std::collections::HashMap;

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::model::{BusinessUnit, Persona, PersonaKind, PersonaState};
use super::queries::PersonaFilter;
use super::service::{BusinessUnitChanges, BusinessUnitDraft, PersonaChanges, PersonaDraft};
use crate::console::fmt::when;
use crate::console::layout::{
    Ctx, TenantShell, Tone, badge, bare_page, brand, csrf_field, empty, field, header, page,
    redirect, secret_once,
};
use crate::console::{ConsoleError, PageResult, without_cursor};
use crate::error::{Error, Result, path_id};
use crate::http::extract::ApiQuery;
use crate::rbac::{Permission, Principal, Scope};
use crate::state::AppState;
use crate::store::ReadCtx;

/// The members pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/platform/users", get(view_users_get))
        .route(
            "/platform/tenants/{id}/personas",
            post(view_platform_invite_post),
        )
        .route(
            "/tenant/{tenant_id}/members",
            get(view_members_get).post(view_member_add_post),
        )
        .route(
            "/tenant/{tenant_id}/members/{persona_id}",
            post(view_member_update_post),
        )
        .route(
            "/tenant/{tenant_id}/members/{persona_id}/revoke",
            post(view_member_revoke_post),
        )
        .route(
            "/tenant/{tenant_id}/members/{persona_id}/invite",
            post(view_member_invite_post),
        )
        .route(
            "/tenant/{tenant_id}/business-units",
            get(view_bus_get).post(view_bu_create_post),
        )
        .route(
            "/tenant/{tenant_id}/business-units/{bu_id}",
            post(view_bu_update_post),
        )
        .route(
            "/tenant/{tenant_id}/business-units/{bu_id}/delete",
            post(view_bu_delete_post),
        )
        .route(
            "/tenant/{tenant_id}/invite/{token}",
            get(view_invite_get).post(view_invite_post),
        )
}

fn shell(ctx: &Ctx) -> std::result::Result<TenantShell, ConsoleError> {
    ctx.tenant
        .clone()
        .ok_or_else(|| ConsoleError(Error::not_found("tenant", ctx.path.clone())))
}

/// The badge of a persona's state.
pub fn state_badge(s: PersonaState) -> Markup {
    match s {
        PersonaState::Invited => badge(Tone::Info, "invited"),
        PersonaState::Active => badge(Tone::Ok, "active"),
        PersonaState::Revoked => badge(Tone::Neutral, "revoked"),
    }
}

fn tabs(t: &TenantShell, current: &str) -> Markup {
    html! {
        nav.tabs aria-label="Members" {
            a href=(t.at("/members")) aria-current=[(current == "members").then_some("page")] { "Members" }
            a href=(t.at("/business-units")) aria-current=[(current == "bus").then_some("page")] { "Business units" }
        }
    }
}

/// The business units as an indented tree (parents before children).
fn bu_tree(bus: &[BusinessUnit], item: &dyn Fn(&BusinessUnit) -> Markup) -> Markup {
    fn level(
        bus: &[BusinessUnit],
        parent: Option<Uuid>,
        item: &dyn Fn(&BusinessUnit) -> Markup,
        depth: usize,
    ) -> Markup {
        html! {
            @let children: Vec<&BusinessUnit> = bus.iter().filter(|b| b.parent_id == parent).collect();
            @if !children.is_empty() && depth < 32 {
                ul.tree {
                    @for b in children {
                        li {
                            (item(b))
                            (level(bus, Some(b.id), item, depth + 1))
                        }
                    }
                }
            }
        }
    }
    level(bus, None, item, 0)
}

fn bu_options(bus: &[BusinessUnit], selected: Option<Uuid>, none_label: &str) -> Markup {
    html! {
        option value="" selected[selected.is_none()] { (none_label) }
        @for b in bus {
            option value=(b.id) selected[selected == Some(b.id)] { (b.name) " (" (b.kind) ")" }
        }
    }
}

/// The Members tab: personas with filters, the add form, and each persona's actions.
pub async fn view_members_get(
    State(state): State<AppState>,
    ctx: Ctx,
    RawQuery(raw): RawQuery,
    ApiQuery(f): ApiQuery<PersonaFilter>,
) -> PageResult {
    let t = shell(&ctx)?;
    let q = f.parse()?;
    let id = t.id;
    let (page_, roles, bus) = state
        .read(move |r| {
            Ok((
                super::queries::list(r, Some(&id), &q)?,
                super::queries::roles(r, &id)?,
                super::queries::business_units(r, &id)?,
            ))
        })
        .await?;
    let writable = ctx.may(Scope::MembersWrite, Permission::MembersManage);
    let bu_name: HashMap<Uuid, &str> = bus.iter().map(|b| (b.id, b.name.as_str())).collect();
    let query = without_cursor(raw);
    let body = html! {
        (header("Members", Some(&t.name), html! {}))
        (tabs(&t, "members"))
        form.filters method="get" action=(t.at("/members")) {
            label { "Kind " select name="kind" {
                option value="" { "any" }
                @for k in PersonaKind::ALL { option value=(k.as_str()) selected[f.kind.as_deref() == Some(k.as_str())] { (k.as_str()) } }
            } }
            label { "State " select name="state" {
                option value="" { "any" }
                @for s in PersonaState::ALL { option value=(s.as_str()) selected[f.state.as_deref() == Some(s.as_str())] { (s.as_str()) } }
            } }
            label { "Role " select name="role" {
                option value="" { "any" }
                @for r in &roles { option value=(r.name) selected[f.role.as_deref() == Some(r.name.as_str())] { (r.name) } }
            } }
            label { "Business unit " select name="bu_id" {
                (bu_options(&bus, f.bu_id.as_deref().and_then(crate::ids::parse_uuid), "any"))
            } }
            label { "Search " input type="search" name="q" value=(f.q.clone().unwrap_or_default()); }
            button type="submit" { "Filter" }
        }
        @if page_.items.is_empty() {
            (empty("No persona matches.", html! { p.muted { "Add a teammate below, or clear the filters." } }))
        } @else {
            table {
                thead { tr { th { "Name" } th { "Kind" } th { "Email" } th { "Roles" } th { "Business unit" } th { "State" } th { "Last sign-in" } th { "Actions" } } }
                tbody {
                    @for p in &page_.items {
                        tr {
                            td { (p.display_name) }
                            td { (p.kind.as_str()) }
                            td { (p.email.as_deref().unwrap_or("—")) }
                            td { (p.roles.join(", ")) }
                            td { (p.bu_id.and_then(|b| bu_name.get(&b).copied()).unwrap_or("—")) }
                            td { (state_badge(p.state)) }
                            td { (p.last_sign_in_at.map_or_else(|| html! { "—" }, when)) }
                            td {
                                @if p.state != PersonaState::Revoked {
                                    (persona_actions(&ctx, &t, p, &roles, &bus, writable))
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(c) = &page_.next {
                p { a href={(t.at("/members")) "?" (query) @if !query.is_empty() { "&" } "cursor=" (c.encode())} { "Next page" } }
            }
        }
        section.card {
            h2 { "Add persona" }
            (add_form(&ctx, &t, &roles, &bus, writable, &HashMap::new()))
        }
    };
    Ok(page(&ctx, "Members", body))
}

fn persona_actions(
    ctx: &Ctx,
    t: &TenantShell,
    p: &Persona,
    roles: &[super::model::Role],
    bus: &[BusinessUnit],
    writable: bool,
) -> Markup {
    html! {
        details {
            summary { "Change" }
            form.stack method="post" action=(t.at(&format!("/members/{}", p.id))) {
                (ctx.csrf())
                fieldset.plain disabled[!writable] {
                    fieldset {
                        legend { "Roles" }
                        @for r in roles {
                            label { input type="checkbox" name="roles" value=(r.name) checked[p.roles.contains(&r.name)]; " " (r.name) }
                        }
                    }
                    label { "Business unit " select name="bu_id" { (bu_options(bus, p.bu_id, "none")) } }
                    button type="submit" { "Save" }
                }
            }
            @if p.state == PersonaState::Invited {
                form method="post" action=(t.at(&format!("/members/{}/invite", p.id))) {
                    (ctx.csrf())
                    button type="submit" disabled[!writable] { "New invite link" }
                }
            }
            form method="post" action=(t.at(&format!("/members/{}/revoke", p.id)))
                data-confirm={"Revoke " (p.display_name) "? Their sessions and API keys stop working at once."} {
                (ctx.csrf())
                button.danger type="submit" disabled[!writable] { "Revoke" }
            }
        }
    }
}

fn add_form(
    ctx: &Ctx,
    t: &TenantShell,
    roles: &[super::model::Role],
    bus: &[BusinessUnit],
    writable: bool,
    errors: &HashMap<String, String>,
) -> Markup {
    let err = |f: &str| errors.get(f).map(String::as_str);
    html! {
        @if !writable {
            p.muted { "You can look but not change members here." }
        }
        form.stack method="post" action=(t.at("/members")) {
            (ctx.csrf())
            fieldset.plain disabled[!writable] {
                (field("Kind", "kind", html! {
                    select #kind name="kind" {
                        option value="human" { "human — invited by email, signs in here" }
                        option value="service" { "service — a machine identity, paired with an API key" }
                    }
                }, err("kind"), None))
                (field("Name", "display_name", html! { input #display_name name="display_name" required maxlength="120"; }, err("display_name"), None))
                (field("Email (humans)", "email", html! { input #email name="email" type="email"; }, err("email"), Some("The invite link is sent here when mail is set up, and shown to you once either way.")))
                fieldset {
                    legend { "Roles" }
                    @for r in roles {
                        label { input type="checkbox" name="roles" value=(r.name); " " (r.name) " " span.muted.small { "(" (r.scopes.to_claim()) ")" } }
                    }
                    @if let Some(e) = err("roles") { p.error role="alert" { (e) } }
                }
                (field("Business unit", "bu_id", html! { select #bu_id name="bu_id" { (bu_options(bus, None, "none")) } }, err("bu_id"), None))
                button.primary type="submit" { "Add persona" }
            }
        }
    }
}

/// A form's fields, repeated ones (`roles`) kept.
fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

fn one(fields: &[(String, String)], name: &str) -> Option<String> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

fn all(fields: &[(String, String)], name: &str) -> Vec<String> {
    fields
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .collect()
}

/// The page shown once after an invite: the link, and whether it was mailed.
fn invite_page(ctx: &Ctx, t: &TenantShell, who: &str, invite: &super::Invite) -> Response {
    let body = html! {
        (header("Invite link", Some(who), html! {}))
        section.card {
            @if invite.emailed {
                p { (badge(Tone::Ok, "emailed")) " The invite was sent to " (who) "." }
            } @else {
                p { (badge(Tone::Warn, "not emailed")) " Mail is not set up here (or the mail server refused it): hand this link over yourself." }
            }
            (secret_once("invite-url", "Invite link", &invite.url))
            p.muted { "It works once, until " (when(invite.expires_at)) "." }
            p { a.button href=(t.at("/members")) { "Back to members" } }
        }
    };
    page(ctx, "Invite link", body)
}

/// Adds a persona; a human's invite link is shown on the answer page, once.
pub async fn view_member_add_post(
    State(state): State<AppState>,
    ctx: Ctx,
    body: axum::body::Bytes,
) -> PageResult {
    let t = shell(&ctx)?;
    let f = form_fields(&body);
    let draft = PersonaDraft {
        kind: one(&f, "kind").unwrap_or_default(),
        display_name: one(&f, "display_name").unwrap_or_default(),
        email: one(&f, "email").filter(|e| !e.trim().is_empty()),
        roles: all(&f, "roles"),
        bu_id: one(&f, "bu_id").filter(|b| !b.trim().is_empty()),
    };
    match super::add(&state, &ctx.principal, t.id, draft).await {
        Ok(a) => match &a.invite {
            Some(i) => Ok(invite_page(
                &ctx,
                &t,
                a.persona
                    .email
                    .as_deref()
                    .unwrap_or(&a.persona.display_name),
                i,
            )),
            None => Ok(redirect(
                &t.at("/members"),
                Tone::Ok,
                &format!(
                    "Added the service persona {}. Issue it an API key next.",
                    a.persona.display_name
                ),
            )),
        },
        Err(e) => {
            let id = t.id;
            let (roles, bus) = state
                .read(move |r| {
                    Ok((
                        super::queries::roles(r, &id)?,
                        super::queries::business_units(r, &id)?,
                    ))
                })
                .await?;
            let errors = crate::console::field_errors(&e, "email");
            let body = html! {
                (header("Add persona", Some(&t.name), html! {}))
                div.flash.critical role="alert" { (e.to_string()) ". Nothing was changed." }
                section.card { (add_form(&ctx, &t, &roles, &bus, true, &errors)) }
            };
            Ok(crate::console::layout::page_with_status(
                &ctx,
                crate::http::problem::status(&e),
                "Add persona",
                body,
            ))
        }
    }
}

/// Changes a persona's roles or business unit.
pub async fn view_member_update_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, pid)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> PageResult {
    let t = shell(&ctx)?;
    let pid = path_id("persona", &pid)?;
    let f = form_fields(&body);
    let changes = PersonaChanges {
        display_name: None,
        roles: Some(all(&f, "roles")),
        bu_id: Some(one(&f, "bu_id").filter(|b| !b.trim().is_empty())),
    };
    let back = t.at("/members");
    Ok(
        match super::update(&state, &ctx.principal, t.id, pid, changes).await {
            Ok(p) => redirect(&back, Tone::Ok, &format!("Saved {}.", p.display_name)),
            Err(e) => redirect(&back, Tone::Critical, &format!("{e}. Nothing was changed.")),
        },
    )
}

/// Revokes a persona: its sessions and keys stop at once.
pub async fn view_member_revoke_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, pid)): Path<(String, String)>,
) -> PageResult {
    let t = shell(&ctx)?;
    let pid = path_id("persona", &pid)?;
    let tenant = t.id;
    let back = t.at("/members");
    Ok(
        match state
            .write(ctx.principal.actor.clone(), move |c| {
                super::service::revoke_persona(c, &tenant, &pid)
            })
            .await
        {
            Ok(p) => redirect(
                &back,
                Tone::Ok,
                &format!(
                    "Revoked {}: their sessions ended and their API keys stopped working.",
                    p.display_name
                ),
            ),
            Err(e) => redirect(&back, Tone::Critical, &format!("{e}. Nothing was changed.")),
        },
    )
}

/// Makes a new invite link and shows it once.
pub async fn view_member_invite_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, pid)): Path<(String, String)>,
) -> PageResult {
    let t = shell(&ctx)?;
    let pid = path_id("persona", &pid)?;
    match super::reinvite(&state, ctx.principal.actor.clone(), t.id, pid).await {
        Ok(i) => {
            let tenant = t.id;
            let p = state
                .read(move |r| super::queries::persona(r, &tenant, &pid))
                .await?;
            Ok(invite_page(
                &ctx,
                &t,
                p.email.as_deref().unwrap_or(&p.display_name),
                &i,
            ))
        }
        Err(e) => Ok(redirect(
            &t.at("/members"),
            Tone::Critical,
            &format!("{e}. Nothing was changed."),
        )),
    }
}

/// The Business units tab: the tree, and the create, rename/move and delete forms.
pub async fn view_bus_get(State(state): State<AppState>, ctx: Ctx) -> PageResult {
    let t = shell(&ctx)?;
    let id = t.id;
    let (bus, counts) = state
        .read(move |r| {
            let bus = super::queries::business_units(r, &id)?;
            let mut counts: HashMap<Uuid, u64> = HashMap::new();
            let q = PersonaFilter {
                limit: Some(crate::store::page::MAX_LIMIT),
                ..Default::default()
            }
            .parse()?;
            let mut cursor_page = super::queries::list(r, Some(&id), &q)?;
            loop {
                for p in &cursor_page.items {
                    if let (Some(b), true) = (p.bu_id, p.state != PersonaState::Revoked) {
                        *counts.entry(b).or_default() += 1;
                    }
                }
                let Some(next) = cursor_page.next.take() else {
                    break;
                };
                let q = PersonaFilter {
                    limit: Some(crate::store::page::MAX_LIMIT),
                    cursor: Some(next.encode()),
                    ..Default::default()
                }
                .parse()?;
                cursor_page = super::queries::list(r, Some(&id), &q)?;
            }
            Ok((bus, counts))
        })
        .await?;
    let writable = ctx.may(Scope::MembersWrite, Permission::MembersManage);
    let item = |b: &BusinessUnit| -> Markup {
        html! {
            strong { (b.name) } " " span.muted { (b.kind) } " · " (counts.get(&b.id).copied().unwrap_or(0)) " member(s)"
            @if writable {
                details {
                    summary { "Change" }
                    form.stack method="post" action=(t.at(&format!("/business-units/{}", b.id))) {
                        (ctx.csrf())
                        label { "Name " input name="name" value=(b.name) required maxlength="120"; }
                        label { "Kind " input name="kind" value=(b.kind) required maxlength="40"; }
                        label { "Parent " select name="parent_id" { (bu_options(&bus, b.parent_id, "none (top level)")) } }
                        button type="submit" { "Save" }
                    }
                    form method="post" action=(t.at(&format!("/business-units/{}/delete", b.id)))
                        data-confirm={"Delete the business unit " (b.name) "?"} {
                        (ctx.csrf())
                        button.danger type="submit" { "Delete" }
                    }
                }
            }
        }
    };
    let body = html! {
        (header("Business units", Some(&t.name), html! {}))
        (tabs(&t, "bus"))
        @if bus.is_empty() {
            (empty("No business units yet.", html! { p.muted { "Group personas by cost center, region or team for showback and approvals." } }))
        } @else {
            section.card { (bu_tree(&bus, &item)) }
        }
        section.card {
            h2 { "New business unit" }
            form.stack method="post" action=(t.at("/business-units")) {
                (ctx.csrf())
                fieldset.plain disabled[!writable] {
                    label for="bu-name" { "Name" }
                    input #bu-name name="name" required maxlength="120";
                    label for="bu-kind" { "Kind" }
                    input #bu-kind name="kind" required maxlength="40" list="bu-kinds" placeholder="cost_center, region, team...";
                    datalist #bu-kinds { option value="cost_center"; option value="region"; option value="team"; }
                    label for="bu-parent" { "Parent" }
                    select #bu-parent name="parent_id" { (bu_options(&bus, None, "none (top level)")) }
                    button.primary type="submit" { "Create" }
                }
            }
        }
    };
    Ok(page(&ctx, "Business units", body))
}

/// The business-unit forms' fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BuForm {
    name: String,
    kind: String,
    parent_id: String,
}

/// Creates a business unit.
pub async fn view_bu_create_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(f): Form<BuForm>,
) -> PageResult {
    let t = shell(&ctx)?;
    let back = t.at("/business-units");
    let input = match (BusinessUnitDraft {
        name: f.name,
        kind: f.kind,
        parent_id: Some(f.parent_id),
    })
    .parse()
    {
        Ok(i) => i,
        Err(e) => {
            return Ok(redirect(
                &back,
                Tone::Critical,
                &format!("{e}. Nothing was changed."),
            ));
        }
    };
    let tenant = t.id;
    Ok(
        match state
            .write(ctx.principal.actor.clone(), move |c| {
                super::service::create_bu(c, &tenant, &input)
            })
            .await
        {
            Ok(b) => redirect(&back, Tone::Ok, &format!("Created {}.", b.name)),
            Err(e) => redirect(&back, Tone::Critical, &format!("{e}. Nothing was changed.")),
        },
    )
}

/// Renames or moves a business unit.
pub async fn view_bu_update_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, bu)): Path<(String, String)>,
    Form(f): Form<BuForm>,
) -> PageResult {
    let t = shell(&ctx)?;
    let bu = path_id("business unit", &bu)?;
    let back = t.at("/business-units");
    let changes = BusinessUnitChanges {
        name: Some(f.name),
        kind: Some(f.kind),
        parent_id: Some(Some(f.parent_id).filter(|p| !p.trim().is_empty())),
    };
    let tenant = t.id;
    Ok(
        match state
            .write(ctx.principal.actor.clone(), move |c| {
                super::service::update_bu(c, &tenant, &bu, &changes)
            })
            .await
        {
            Ok(b) => redirect(&back, Tone::Ok, &format!("Saved {}.", b.name)),
            Err(e) => redirect(&back, Tone::Critical, &format!("{e}. Nothing was changed.")),
        },
    )
}

/// Deletes an empty business unit.
pub async fn view_bu_delete_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, bu)): Path<(String, String)>,
) -> PageResult {
    let t = shell(&ctx)?;
    let bu = path_id("business unit", &bu)?;
    let back = t.at("/business-units");
    let tenant = t.id;
    Ok(
        match state
            .write(ctx.principal.actor.clone(), move |c| {
                super::service::delete_bu(c, &tenant, &bu)
            })
            .await
        {
            Ok(()) => redirect(&back, Tone::Ok, "Deleted the business unit."),
            Err(e) => redirect(&back, Tone::Critical, &format!("{e}. Nothing was changed.")),
        },
    )
}

fn invite_shell(title: &str, body: Markup) -> Markup {
    bare_page(&format!("{title} · Tenantry"), body)
}

fn invite_gone() -> Response {
    let markup = invite_shell(
        "Invite",
        html! {
            h1 { "This invite link does not work" }
            p { "It was already used, it expired (links work for 7 days), or it was replaced by a newer one. Ask your tenant admin for a new link." }
        },
    );
    (axum::http::StatusCode::GONE, markup).into_response()
}

fn invite_form(
    tenant: &str,
    token: &str,
    p: &Persona,
    tenant_name: &str,
    error: Option<&str>,
) -> Markup {
    invite_shell(
        "Set your password",
        html! {
            (brand(tenant_name))
            h1 { "Welcome, " (p.display_name) }
            p { "You were invited to the " (tenant_name) " tenant console as " strong { (p.email.as_deref().unwrap_or_default()) } ". Choose a password to finish." }
            @if let Some(e) = error { div.flash.critical role="alert" { (e) } }
            form method="post" action={"/tenant/" (tenant) "/invite/" (token)} {
                (field("Password (at least 12 characters)", "password", html! {
                    input #password name="password" type="password" autocomplete="new-password" required minlength="12" autofocus;
                }, None, None))
                button.primary type="submit" { "Set password" }
            }
        },
    )
}

/// The invite page: who is invited where, and the password form.
pub async fn view_invite_get(
    State(state): State<AppState>,
    Path((tenant, token)): Path<(String, String)>,
) -> Response {
    match super::invited(&state, &token).await {
        Ok(Some((p, name))) if p.tenant_id.to_string() == tenant => {
            invite_form(&tenant, &token, &p, &name, None).into_response()
        }
        Ok(_) => invite_gone(),
        Err(e) => ConsoleError(e).into_response(),
    }
}

/// The invite form's field.
#[derive(Deserialize)]
pub struct InviteForm {
    password: String,
}

/// Accepts the invite: sets the password and sends the person to sign in.
///
/// The link itself is the credential (256 random bits, single use), so the form needs no
/// other CSRF token: a forged post would have to know it.
pub async fn view_invite_post(
    State(state): State<AppState>,
    Path((tenant, token)): Path<(String, String)>,
    Form(f): Form<InviteForm>,
) -> Response {
    let (p, name) = match super::invited(&state, &token).await {
        Ok(Some((p, name))) if p.tenant_id.to_string() == tenant => (p, name),
        Ok(_) => return invite_gone(),
        Err(e) => return ConsoleError(e).into_response(),
    };
    match super::accept(&state, &token, f.password).await {
        Ok(_) => redirect(
            &format!("/tenant/{tenant}/signin"),
            Tone::Ok,
            "Your password is set. Sign in with your email and password.",
        ),
        Err(Error::Gone { .. }) => invite_gone(),
        Err(e @ Error::Validation(_)) => (
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            invite_form(&tenant, &token, &p, &name, Some(&e.to_string())),
        )
            .into_response(),
        Err(e) => ConsoleError(e).into_response(),
    }
}

/// The operators' Users page: every tenant's personas, filtered.
pub async fn view_users_get(
    State(state): State<AppState>,
    ctx: Ctx,
    RawQuery(raw): RawQuery,
    ApiQuery(f): ApiQuery<PersonaFilter>,
) -> PageResult {
    let q = f.parse()?;
    let (page_, names) = state
        .read(move |r| {
            let page_ = super::queries::list(r, None, &q)?;
            let mut names: HashMap<Uuid, String> = HashMap::new();
            for p in &page_.items {
                if let std::collections::hash_map::Entry::Vacant(e) = names.entry(p.tenant_id) {
                    e.insert(
                        crate::tenants::queries::get(r, &p.tenant_id)
                            .map(|t| t.display_name)
                            .unwrap_or_default(),
                    );
                }
            }
            Ok((page_, names))
        })
        .await?;
    let query = without_cursor(raw);
    let body = html! {
        (header("Users", Some("Every tenant's personas (humans and services)."), html! {}))
        form.filters method="get" action="/platform/users" {
            label { "Kind " select name="kind" {
                option value="" { "any" }
                @for k in PersonaKind::ALL { option value=(k.as_str()) selected[f.kind.as_deref() == Some(k.as_str())] { (k.as_str()) } }
            } }
            label { "State " select name="state" {
                option value="" { "any" }
                @for s in PersonaState::ALL { option value=(s.as_str()) selected[f.state.as_deref() == Some(s.as_str())] { (s.as_str()) } }
            } }
            label { "Role " input name="role" value=(f.role.clone().unwrap_or_default()); }
            label { "Search " input type="search" name="q" value=(f.q.clone().unwrap_or_default()); }
            button type="submit" { "Filter" }
        }
        @if page_.items.is_empty() {
            (empty("No persona matches.", html! { p.muted { "Tenants add their members in their own console." } }))
        } @else {
            table {
                thead { tr { th { "Name" } th { "Tenant" } th { "Kind" } th { "Email" } th { "Roles" } th { "State" } th { "Last sign-in" } } }
                tbody {
                    @for p in &page_.items {
                        tr {
                            td { (p.display_name) }
                            td { a href={"/platform/tenants/" (p.tenant_id)} { (names.get(&p.tenant_id).map(String::as_str).unwrap_or("—")) } }
                            td { (p.kind.as_str()) }
                            td { (p.email.as_deref().unwrap_or("—")) }
                            td { (p.roles.join(", ")) }
                            td { (state_badge(p.state)) }
                            td { (p.last_sign_in_at.map_or_else(|| html! { "—" }, when)) }
                        }
                    }
                }
            }
            @if let Some(c) = &page_.next {
                p { a href={"/platform/users?" (query) @if !query.is_empty() { "&" } "cursor=" (c.encode())} { "Next page" } }
            }
        }
    };
    Ok(page(&ctx, "Users", body))
}

/// The operator's tenant detail: member counts, the business-unit tree, and (for operators who
/// manage members) inviting the tenant's first admin.
pub fn tenant_panel(
    r: &ReadCtx,
    tenant: &Uuid,
    p: &Principal,
    _now: DateTime<Utc>,
) -> Result<Markup> {
    let counts = super::queries::counts(r, tenant)?;
    let bus = super::queries::business_units(r, tenant)?;
    let admin_role = super::queries::roles(r, tenant)?
        .into_iter()
        .find(|r| r.scopes.grants(Scope::TenantAdmin))
        .map(|r| r.name);
    let item = |b: &BusinessUnit| html! { (b.name) " " span.muted.small { (b.kind) } };
    Ok(html! {
        section.card #members {
            h2 { "Members" }
            dl {
                dt { "Members" } dd { (counts.members) " (" (counts.invited) " invited, not yet signed up)" }
                dt { "Revoked" } dd { (counts.revoked) }
                dt { "Business units" } dd { (counts.business_units) }
            }
            p { a href="/platform/users" { "Users of every tenant" } }
            @if !bus.is_empty() {
                h3 { "Business units" }
                (bu_tree(&bus, &item))
            }
            @if let (true, Some(role)) = (p.can(Permission::MembersManage), admin_role) {
                h3 { "Invite a tenant admin" }
                form.inline method="post" action={"/platform/tenants/" (tenant) "/personas"} {
                    (csrf_field(p))
                    input type="hidden" name="role" value=(role);
                    input name="display_name" placeholder="Name" required maxlength="120";
                    input name="email" type="email" placeholder="Email" required;
                    button type="submit" { "Invite" }
                }
            }
        }
    })
}

/// The operator's invite form's fields.
#[derive(Deserialize)]
pub struct PlatformInviteForm {
    display_name: String,
    email: String,
    role: String,
}

/// Invites a tenant admin from the operator's tenant detail and shows the link once.
pub async fn view_platform_invite_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(f): Form<PlatformInviteForm>,
) -> PageResult {
    let tenant = path_id("tenant", &id)?;
    let back = format!("/platform/tenants/{tenant}");
    let draft = PersonaDraft {
        kind: "human".into(),
        display_name: f.display_name,
        email: Some(f.email),
        roles: vec![f.role],
        bu_id: None,
    };
    match super::add(&state, &ctx.principal, tenant, draft).await {
        Ok(super::Added {
            persona,
            invite: Some(i),
        }) => {
            let body = html! {
                (header("Invite link", persona.email.as_deref(), html! {}))
                section.card {
                    @if i.emailed { p { (badge(Tone::Ok, "emailed")) } } @else { p { (badge(Tone::Warn, "not emailed")) " Hand this link over yourself." } }
                    (secret_once("invite-url", "Invite link", &i.url))
                    p.muted { "It works once, until " (when(i.expires_at)) "." }
                    p { a.button href=(back) { "Back to the tenant" } }
                }
            };
            Ok(page(&ctx, "Invite link", body))
        }
        Ok(_) => Ok(redirect(&back, Tone::Ok, "Added.")),
        Err(e) => Ok(redirect(
            &back,
            Tone::Critical,
            &format!("{e}. Nothing was changed."),
        )),
    }
}
