//! Visit tenant in the consoles: the button and the visits on the operator's tenant detail, and
//! the visit page inside the Tenant console (elevate with a reason, end).

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::model::{ELEVATE_DEFAULT_MINUTES, ELEVATE_MAX_MINUTES, Impersonation};
use crate::console::fmt::{self, when};
use crate::console::layout::{Ctx, Tone, badge, csrf_field, header, page, redirect};
use crate::console::{ConsoleError, PageResult};
use crate::error::{Result, path_id};
use crate::rbac::{Permission, Principal};
use crate::state::AppState;
use crate::store::ReadCtx;

/// The visit pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/platform/tenants/{id}/visit", post(view_visit_start_post))
        .route("/tenant/{tenant_id}/visit", get(view_visit_get))
        .route(
            "/tenant/{tenant_id}/visit/elevate",
            post(view_visit_elevate_post),
        )
        .route("/tenant/{tenant_id}/visit/end", post(view_visit_end_post))
}

fn state_badge(v: &Impersonation, now: DateTime<Utc>) -> Markup {
    match v.state(now) {
        "elevated" => badge(Tone::Critical, "elevated"),
        "read_only" => badge(Tone::Info, "read-only"),
        _ => badge(Tone::Neutral, "ended"),
    }
}

/// The tenant detail's Visits section: the Visit button, and the last visits.
pub fn tenant_panel(
    r: &ReadCtx,
    tenant: &Uuid,
    p: &Principal,
    now: DateTime<Utc>,
) -> Result<Markup> {
    let visits = super::queries::of_tenant(r, tenant, 10)?;
    let mine = p.operator_id().and_then(|o| {
        visits
            .iter()
            .find(|v| v.operator_id == o && v.is_active(now))
    });
    Ok(html! {
        section.card #visits {
            div.card-head {
                h2 { "Visits" }
                @if p.can(Permission::TenantsVisit) {
                    @if mine.is_some() {
                        a.button.primary href={"/tenant/" (tenant)} { "Open the tenant console" }
                    } @else {
                        form method="post" action={"/platform/tenants/" (tenant) "/visit"} {
                            (csrf_field(p))
                            button.primary type="submit" { "Visit tenant" }
                        }
                    }
                }
            }
            p.muted { "A visit opens this tenant's console read-only for an hour. Elevating it to write access takes a reason and lasts at most an hour. The tenant's admins see every visit on their audit page." }
            @if visits.is_empty() {
                p.muted { "No operator has visited this tenant." }
            } @else {
                table {
                    thead { tr { th { "Operator" } th { "State" } th { "Started" } th { "Ends" } th { "Elevations" } th { "Last reason" } } }
                    tbody {
                        @for v in &visits {
                            tr {
                                td { (v.operator) " (" (v.role.as_str().replace('_', " ")) ")" }
                                td { (state_badge(v, now)) }
                                td { (when(v.started_at)) }
                                td { (when(v.ended_at.unwrap_or(v.expires_at))) }
                                td { (v.elevations) }
                                td { (v.reason.as_deref().unwrap_or("—")) }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// Starts a visit and opens the tenant's console.
pub async fn view_visit_start_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> PageResult {
    let tenant = path_id("tenant", &id)?;
    match super::start(&state, &ctx.principal, tenant).await {
        Ok(v) => Ok(redirect(
            &format!("/tenant/{tenant}"),
            Tone::Info,
            &format!(
                "You are visiting this tenant read-only until {}.",
                v.expires_at.format("%H:%M UTC")
            ),
        )),
        Err(e) => Ok(redirect(
            &format!("/platform/tenants/{tenant}"),
            Tone::Critical,
            &e.to_string(),
        )),
    }
}

async fn my_visit(
    state: &AppState,
    ctx: &Ctx,
    tenant: Uuid,
) -> std::result::Result<Impersonation, ConsoleError> {
    let operator = super::api::operator_of(&ctx.principal)?;
    let now = state.clock().now();
    state
        .read(move |r| super::queries::active(r, &operator, &tenant, now))
        .await?
        .ok_or_else(|| ConsoleError(crate::error::Error::not_found("visit", tenant.to_string())))
}

/// The visit page: who, since and until when, and the elevate and end forms.
pub async fn view_visit_get(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> PageResult {
    let tenant = path_id("tenant", &id)?;
    let v = my_visit(&state, &ctx, tenant).await?;
    let now = state.clock().now();
    let elevated = v.state(now) == "elevated";
    let body = html! {
        (header("Your visit", Some("Visit tenant (F21.05.05): everything here is recorded on this tenant's audit chain."), html! {}))
        section.card {
            dl {
                dt { "State" } dd { (state_badge(&v, now)) }
                dt { "Started" } dd { (when(v.started_at)) }
                dt { "Ends" } dd { (when(v.expires_at)) " (" (fmt::countdown(v.expires_at, now)) ")" }
                @if let Some(u) = v.elevated_until.filter(|u| *u > now) {
                    dt { "Write access until" } dd { (when(u)) " (" (fmt::countdown(u, now)) ")" }
                }
                @if let Some(r) = &v.reason { dt { "Reason given" } dd { (r) } }
            }
        }
        @if ctx.can(Permission::TenantsElevate) {
            section.card {
                h2 { @if elevated { "Extend write access" } @else { "Elevate to write access" } }
                form.stack method="post" action={"/tenant/" (tenant) "/visit/elevate"} {
                    (ctx.csrf())
                    label for="reason" { "Reason (the tenant's admins read it)" }
                    textarea #reason name="reason" required minlength="10" maxlength="500" rows="3" placeholder="e.g. Ticket 4711: re-send the invite of the new finance admin" {}
                    label for="minutes" { "Minutes (1-" (ELEVATE_MAX_MINUTES) ")" }
                    input #minutes name="minutes" type="number" min="1" max=(ELEVATE_MAX_MINUTES) value=(ELEVATE_DEFAULT_MINUTES);
                    button.danger type="submit" { "Elevate" }
                }
            }
        } @else {
            p.muted { "Your role can visit read-only; elevation is for business and super admins." }
        }
        section.card {
            form method="post" action={"/tenant/" (tenant) "/visit/end"} {
                (ctx.csrf())
                button type="submit" { "End the visit" }
            }
        }
    };
    Ok(page(&ctx, "Your visit", body))
}

/// The elevate form's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ElevateForm {
    reason: String,
    minutes: String,
}

/// Elevates the visit.
pub async fn view_visit_elevate_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(f): Form<ElevateForm>,
) -> PageResult {
    let tenant = path_id("tenant", &id)?;
    let back = format!("/tenant/{tenant}/visit");
    let v = my_visit(&state, &ctx, tenant).await?;
    let minutes = match f.minutes.trim() {
        "" => None,
        m => match m.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return Ok(redirect(
                    &back,
                    Tone::Critical,
                    "Minutes must be a whole number. Nothing was changed.",
                ));
            }
        },
    };
    match super::elevate(&state, &ctx.principal, tenant, v.id, f.reason, minutes).await {
        Ok(v) => Ok(redirect(
            &format!("/tenant/{tenant}"),
            Tone::Warn,
            &format!(
                "Write access until {}. Every change is recorded with your name.",
                v.elevated_until.unwrap_or(v.expires_at).format("%H:%M UTC")
            ),
        )),
        Err(e) => Ok(redirect(
            &back,
            Tone::Critical,
            &format!("{e}. Nothing was changed."),
        )),
    }
}

/// Ends the visit and goes back to the tenant's page in the platform console.
pub async fn view_visit_end_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> PageResult {
    let tenant = path_id("tenant", &id)?;
    let v = my_visit(&state, &ctx, tenant).await?;
    super::end(&state, &ctx.principal, tenant, v.id).await?;
    Ok(redirect(
        &format!("/platform/tenants/{tenant}"),
        Tone::Ok,
        "The visit ended.",
    ))
}
