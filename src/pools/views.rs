//! `/platform/pools`: pools with status and tenant count, and flipping a status with a reason
//! (operator guide §2: confirm the current status and tenant count, then submit the change).

use axum::Form;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use crate::console::fmt::{self, when};
use crate::console::layout::{Ctx, Tone, badge, header, page, redirect};
use crate::console::{ConsoleError, PageResult};
use crate::error::Error;
use crate::pools::model::{PoolKind, PoolStatus};
use crate::pools::service;
use crate::rbac::Permission;
use crate::state::AppState;

/// The pools page.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/platform/pools", get(view_pools_get))
        .route("/platform/pools/{id}/status", post(view_pool_flip_post))
}

/// The pools page.
pub async fn view_pools_get(State(state): State<AppState>, ctx: Ctx) -> PageResult {
    let pools = state
        .read(super::queries::list)
        .await
        .map_err(ConsoleError)?;
    let now = state.clock().now();
    let ttl = state.config().route_cache_ttl.as_secs();
    let body = html! {
        (header("Pools", Some(&format!("Where tenants' requests are routed. A flip applies to new traffic at once in this process, and everywhere within the route cache TTL ({ttl} s).")), html! {}))
        @for kind in [PoolKind::Admin, PoolKind::App] {
            section.card {
                h2 { @if kind == PoolKind::Admin { "Admin pools" } @else { "App pools" } }
                div.table-wrap { table {
                    thead { tr {
                        th scope="col" { "Pool" } th scope="col" { "Serves" } th scope="col" { "Status" } th scope="col" { "Tenants" }
                        th scope="col" { "Since" }
                        @if ctx.can(Permission::PoolsWrite) { th scope="col" { "Flip" } }
                    } }
                    tbody {
                        @for p in pools.iter().filter(|p| p.kind == kind) {
                            tr {
                                td { strong { (p.id) } }
                                td {
                                    @if let Some(t) = p.dedicated_to { "dedicated to " a href={"/platform/tenants/" (t)} { "tenant " (t.to_string().get(..8).unwrap_or("")) "…" } }
                                    @else if let Some(m) = &p.module { "module " code { (m) } }
                                    @else { "shared" }
                                }
                                td { (status_badge(p.status)) @if let Some(r) = &p.status_reason { br; span.small.muted { (r) } } }
                                td { (p.tenant_count) }
                                td { (when(p.status_since)) br; span.small.muted { (fmt::relative(p.status_since, now)) } }
                                @if ctx.can(Permission::PoolsWrite) {
                                    td {
                                        form.inline-form method="post" action={"/platform/pools/" (p.id) "/status"} {
                                            (ctx.csrf())
                                            label.sr-only for={"status-" (p.id)} { "New status of " (p.id) }
                                            select id={"status-" (p.id)} name="status" {
                                                @for s in [PoolStatus::Active, PoolStatus::Degraded, PoolStatus::Drain] {
                                                    option value=(s.as_str()) selected[s == p.status] disabled[s == p.status] { (s.as_str()) }
                                                }
                                            }
                                            label.sr-only for={"reason-" (p.id)} { "Reason" }
                                            input id={"reason-" (p.id)} name="reason" required maxlength="500" placeholder="reason (required)";
                                            button type="submit" { "Flip" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                } }
            }
        }
    };
    Ok(page(&ctx, "Pools", body))
}

/// The flip form.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct FlipForm {
    status: String,
    reason: String,
}

/// Flips a pool's status (`pool.status.flipped.v1`).
pub async fn view_pool_flip_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(f): Form<FlipForm>,
) -> PageResult {
    let status = match PoolStatus::parse(f.status.trim()) {
        Ok(s) => s,
        Err(m) => return Ok(redirect("/platform/pools", Tone::Critical, &m)),
    };
    let reason = match crate::tenants::model::parse_reason(&f.reason) {
        Ok(r) => r,
        Err(m) => {
            return Ok(redirect(
                "/platform/pools",
                Tone::Critical,
                &format!("A flip needs a reason: {m}. Nothing was changed."),
            ));
        }
    };
    let pid = id.clone();
    match state
        .write(ctx.principal.actor.clone(), move |c| {
            service::flip(c, &pid, status, &reason)
        })
        .await
    {
        Ok(p) => Ok(redirect(
            "/platform/pools",
            Tone::Ok,
            &format!(
                "{} is now {} ({} tenants). Route caches were invalidated.",
                p.id,
                p.status.as_str(),
                p.tenant_count
            ),
        )),
        Err(e @ (Error::Conflict { .. } | Error::Validation(_))) => {
            Ok(redirect("/platform/pools", Tone::Critical, &e.to_string()))
        }
        Err(e) => Err(ConsoleError(e)),
    }
}

/// The badge of a pool status.
pub fn status_badge(s: PoolStatus) -> Markup {
    let tone = match s {
        PoolStatus::Active => Tone::Ok,
        PoolStatus::Degraded => Tone::Warn,
        PoolStatus::Drain => Tone::Critical,
    };
    badge(tone, s.as_str())
}
