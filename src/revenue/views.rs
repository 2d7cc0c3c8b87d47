//! `/platform/enforcement`: the open entitlement exceptions (filter by reason, cursor pages),
//! setting an enforcement override and clearing one. Plain forms with the session's CSRF
//! token; no script.

use std::collections::HashMap;

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{Markup, html};
use serde::Deserialize;

use super::model::{OverrideDraft, Reason};
use super::queries::{self, Exception, ExceptionFilter};
use super::service;
use crate::console::fmt::{relative, when};
use crate::console::layout::{
    Ctx, Tone, badge, empty, field, header, page, page_with_status, redirect,
};
use crate::console::{ConsoleError, PageResult, urlencode};
use crate::error::{Error, path_id};
use crate::rbac::Permission;
use crate::state::AppState;

/// The Enforcement pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/platform/enforcement", get(view_enforcement_get))
        .route(
            "/platform/enforcement/overrides",
            post(view_enforcement_override_post),
        )
        .route(
            "/platform/enforcement/overrides/{tenant_id}/clear",
            post(view_enforcement_clear_post),
        )
}

/// The badge of a reason.
pub fn reason_badge(r: Reason) -> Markup {
    let tone = match r {
        Reason::Override => Tone::Info,
        Reason::PersonasOverLimit | Reason::ApiKeysOverLimit => Tone::Warn,
    };
    badge(tone, r.as_str())
}

/// The exceptions as a table (the page and the dashboard's widget).
pub fn exceptions_table(ctx: &Ctx, rows: &[Exception], with_actions: bool) -> Markup {
    html! {
        div.table-wrap { table {
            thead { tr {
                th scope="col" { "Tenant" } th scope="col" { "Reason" } th scope="col" { "Plan" }
                th scope="col" { "Detail" } th scope="col" { "Opened" }
                @if with_actions { th scope="col" { span.sr-only { "Actions" } } }
            } }
            tbody {
                @for e in rows {
                    tr {
                        td { a href={"/platform/tenants/" (e.tenant_id)} {
                            @if e.tenant_name.is_empty() { (e.tenant_id) } @else { (e.tenant_name) }
                        } }
                        td { (reason_badge(e.reason)) }
                        td { @if let Some(p) = &e.plan { code { (p) } } @else { span.muted { "none" } } }
                        td { (e.detail) }
                        td { (when(e.opened_at)) br; span.muted.small { (relative(e.opened_at, ctx.now)) } }
                        @if with_actions {
                            td {
                                @if e.reason == Reason::Override && ctx.can(Permission::BillingManage) {
                                    form method="post" action={"/platform/enforcement/overrides/" (e.tenant_id) "/clear"} {
                                        (ctx.csrf())
                                        button type="submit" { "Clear override" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        } }
    }
}

/// The set-override form.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct OverrideForm {
    tenant_id: String,
    reason: String,
    expires_at: String,
}

fn body(
    ctx: &Ctx,
    rows: &[Exception],
    next: Option<String>,
    reason: Option<&str>,
    query: &str,
    f: &OverrideForm,
    errors: &HashMap<String, String>,
) -> Markup {
    let err = |k: &str| errors.get(k).map(String::as_str);
    html! {
        (header("Enforcement", Some("Entitlement exceptions: tenants over their plan's limits or holding an enforcement override. The plan_enforcer job re-checks every tenant hourly."), html! {}))
        form.filters method="get" action="/platform/enforcement" {
            label for="reason" { "Reason" }
            select #reason name="reason" {
                option value="" selected[reason.is_none()] { "any" }
                @for r in Reason::ALL {
                    option value=(r.as_str()) selected[reason == Some(r.as_str())] { (r.as_str()) }
                }
            }
            button type="submit" { "Filter" }
        }
        @if rows.is_empty() {
            (empty("No open exceptions.", html! { "Every tenant is within its plan's limits and none holds an override." }))
        } @else {
            (exceptions_table(ctx, rows, true))
        }
        @if let Some(c) = next {
            p { a href={"/platform/enforcement?" (query) @if !query.is_empty() { "&" } "cursor=" (urlencode(&c))} { "Next page →" } }
        }
        @if ctx.can(Permission::BillingManage) {
            form.card.form method="post" action="/platform/enforcement/overrides" novalidate {
                h2 { "Set an enforcement override" }
                p.muted { "The tenant is listed as an exception while the override applies; setting one again replaces it." }
                (ctx.csrf())
                (field("Tenant id", "tenant_id", html! { input #tenant_id name="tenant_id" required value=(f.tenant_id); }, err("tenant_id"), None))
                (field("Reason", "reason", html! { input #reason_text name="reason" required maxlength="500" value=(f.reason); }, err("reason"), Some("Why the tenant is exempt, e.g. a negotiated pilot.")))
                (field("Expires at", "expires_at", html! { input #expires_at name="expires_at" value=(f.expires_at); }, err("expires_at"), Some("RFC 3339, e.g. 2027-01-31T00:00:00Z; empty for no expiry.")))
                div.form-actions { button.primary type="submit" { "Set override" } }
            }
        }
    }
}

async fn list(
    state: &AppState,
    f: ExceptionFilter,
) -> Result<(Vec<Exception>, Option<String>), ConsoleError> {
    let page = state
        .read(move |r| queries::exceptions(r, &f))
        .await
        .map_err(ConsoleError)?;
    Ok((page.items, page.next.map(|c| c.encode())))
}

/// The exceptions page.
pub async fn view_enforcement_get(
    State(state): State<AppState>,
    ctx: Ctx,
    RawQuery(raw): RawQuery,
    Query(f): Query<ExceptionFilter>,
) -> PageResult {
    let reason = f.reason.clone().filter(|r| !r.trim().is_empty());
    // The same filters without the cursor, for the next page's link.
    let query = crate::console::without_cursor(raw);
    let (rows, next) = list(&state, f).await?;
    Ok(page(
        &ctx,
        "Enforcement",
        body(
            &ctx,
            &rows,
            next,
            reason.as_deref(),
            &query,
            &OverrideForm::default(),
            &HashMap::new(),
        ),
    ))
}

/// Sets an override (`enforcement.override.set.v1`).
pub async fn view_enforcement_override_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(f): Form<OverrideForm>,
) -> PageResult {
    let now = state.clock().now();
    let draft = OverrideDraft {
        reason: f.reason.clone(),
        expires_at: Some(f.expires_at.clone()),
    };
    let tenant = crate::ids::parse_uuid(f.tenant_id.trim());
    let result = match (tenant, draft.parse(now)) {
        (None, _) => Err(Error::invalid(
            "tenant_id",
            format!(
                "tenant id '{}' is not a tenant id (a UUID)",
                f.tenant_id.trim()
            ),
        )),
        (Some(t), Ok(input)) => {
            state
                .write(ctx.principal.actor.clone(), move |c| {
                    service::set_override(c, &t, &input)
                })
                .await
        }
        (Some(_), Err(e)) => Err(e),
    };
    match result {
        Ok(_) => Ok(redirect(
            "/platform/enforcement?reason=override",
            Tone::Ok,
            "Enforcement override set.",
        )),
        Err(e @ (Error::Validation(_) | Error::NotFound { .. } | Error::TenantReadOnly { .. })) => {
            let mut errors = crate::console::field_errors(&e, "tenant_id");
            if !matches!(e, Error::Validation(_)) {
                errors.insert("tenant_id".into(), e.to_string());
            }
            let (rows, next) = list(&state, ExceptionFilter::default()).await?;
            Ok(page_with_status(
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                "Enforcement",
                body(&ctx, &rows, next, None, "", &f, &errors),
            ))
        }
        Err(e) => Err(ConsoleError(e)),
    }
}

/// Clears an override (`enforcement.override.cleared.v1`).
pub async fn view_enforcement_clear_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(tenant_id): Path<String>,
) -> PageResult {
    let tenant = path_id("tenant", &tenant_id).map_err(ConsoleError)?;
    state
        .write(ctx.principal.actor.clone(), move |c| {
            service::clear_override(c, &tenant)
        })
        .await
        .map_err(ConsoleError)?;
    Ok(redirect(
        "/platform/enforcement",
        Tone::Ok,
        "Enforcement override cleared.",
    ))
}
