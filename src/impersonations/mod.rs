//! Visit tenant (tenant-management F21.05.05; PRODUCT.md A6): an operator opens a tenant's
//! console read-only, may elevate to write access with a reason for a bounded time, and every
//! start, elevation and end is on the tenant's chain for its admins to see.
//!
//! - [`model`]: visits, their records, limits.
//! - [`service`]: start, elevate, end, and ending visits whose time ran out.
//! - [`queries`]: the active visit the authentication middleware checks; lists.
//! - [`api`]: `/api/tenants/{id}/impersonations`, `/api/impersonations`.
//! - [`views`]: the Visit button and visits on the tenant detail, the visit page.

pub mod api;
pub mod model;
pub mod queries;
pub mod service;
pub mod views;

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::http::context::Context;
use crate::rbac::{Access, Permission, Principal, Route, Scope};
use crate::state::AppState;
use model::Impersonation;

/// The impersonations context: its routes, pages, permission entries and events.
pub const CONTEXT: Context = Context {
    name: "impersonations",
    tags: &[(
        "impersonations",
        "Visit tenant: operators' time-boxed visits of a tenant's console",
    )],
    api: api::router,
    views: views::router,
    routes: ROUTES,
    events: &[
        "impersonation.started.v1",
        "impersonation.elevated.v1",
        "impersonation.ended.v1",
    ],
    tenant_panels: &[views::tenant_panel],
    ..Context::EMPTY
};

/// The permission entry of every route of this context.
const ROUTES: &[Route] = {
    use Access::*;
    use Permission::*;
    &[
        (
            "POST",
            "/api/tenants/{id}/impersonations",
            Requires(TenantsVisit),
        ),
        (
            "GET",
            "/api/tenants/{id}/impersonations",
            Tenant(Scope::AuditRead, Read),
        ),
        (
            "POST",
            "/api/tenants/{id}/impersonations/{impersonation_id}/elevate",
            Requires(TenantsElevate),
        ),
        (
            "POST",
            "/api/tenants/{id}/impersonations/{impersonation_id}/end",
            Requires(TenantsVisit),
        ),
        ("GET", "/api/impersonations", Requires(Read)),
        (
            "POST",
            "/platform/tenants/{id}/visit",
            Requires(TenantsVisit),
        ),
        ("GET", "/tenant/{tenant_id}/visit", Requires(TenantsVisit)),
        (
            "POST",
            "/tenant/{tenant_id}/visit/elevate",
            Requires(TenantsElevate),
        ),
        (
            "POST",
            "/tenant/{tenant_id}/visit/end",
            Requires(TenantsVisit),
        ),
    ]
};

/// Starts (or returns) the caller's visit of `tenant`.
///
/// Errors: 403 for the bootstrap token (visits are personal); 404.
pub async fn start(state: &AppState, p: &Principal, tenant: Uuid) -> Result<Impersonation> {
    state
        .read(move |r| crate::tenants::queries::get(r, &tenant))
        .await?;
    let who = service::Visitor {
        operator_id: api::operator_of(p)?,
        username: p.actor.id.clone(),
        role: p
            .role()
            .ok_or_else(|| Error::Forbidden("only operators visit tenants".into()))?,
    };
    state
        .write(p.actor.clone(), move |ctx| {
            service::start(ctx, &tenant, &who)
        })
        .await
}

/// Elevates the caller's visit `visit` of `tenant`.
///
/// Errors: 404; 409 `visit_ended`; 422.
pub async fn elevate(
    state: &AppState,
    p: &Principal,
    tenant: Uuid,
    visit: Uuid,
    reason: String,
    minutes: Option<i64>,
) -> Result<Impersonation> {
    // The bootstrap token has no visits of its own.
    let operator = p
        .operator_id()
        .ok_or_else(|| Error::not_found("impersonation", visit.to_string()))?;
    state
        .write(p.actor.clone(), move |ctx| {
            service::elevate(ctx, &tenant, &visit, &operator, &reason, minutes)
        })
        .await
}

/// Ends the caller's visit `visit` of `tenant`.
///
/// Errors: 404; 409 `visit_ended`.
pub async fn end(
    state: &AppState,
    p: &Principal,
    tenant: Uuid,
    visit: Uuid,
) -> Result<Impersonation> {
    let operator = p
        .operator_id()
        .ok_or_else(|| Error::not_found("impersonation", visit.to_string()))?;
    state
        .write(p.actor.clone(), move |ctx| {
            service::end(ctx, &tenant, &visit, &operator)
        })
        .await
}
