//! Tenants: provisioning, the directory, detail, edits and the lifecycle state machine
//! (PRODUCT.md A2–A5; operator guide §1).
//!
//! - [`model`]: states, actions, tiers, the tenant and its stored record, input parsing.
//! - [`directory`]: storage, secondary indexes, paged queries, maintained counters.
//! - [`service`]: the rules (provision, update, transition, expire trial, shred).
//! - [`rendered`]: directory rows as written, reused while their stored record is unchanged.
//! - [`api`]: JSON routes.

pub mod api;
pub mod directory;
pub mod guarded;
pub mod model;
pub mod posture;
pub mod queries;
pub mod rendered;
pub mod service;
pub mod views;

use crate::http::context::{Context, NavItem};
use crate::rbac::{Access, Permission, Route};

/// The tenants context: its routes, pages, permission entries, sidebar items and events.
pub const CONTEXT: Context = Context {
    name: "tenants",
    tags: &[
        ("tenants", "Provisioning, directory and detail"),
        ("lifecycle", "Tenant lifecycle state machine"),
    ],
    api: api::router,
    views: views::router,
    routes: ROUTES,
    nav: &[
        NavItem::new("/platform/tenants", "Tenants", Permission::Read),
        NavItem::new(
            "/platform/tenants/new",
            "New tenant",
            Permission::TenantsWrite,
        ),
    ],
    events: &[
        "tenant.created.v1",
        "tenant.pool.assigned.v1",
        "tenant.updated.v1",
        "tenant.trial.started.v1",
        "tenant.activated.v1",
        "tenant.suspended.v1",
        "tenant.reinstated.v1",
        "tenant.offboarding.started.v1",
        "tenant.offboarding.cancelled.v1",
        "tenant.shredded.v1",
        "tenant.export.created.v1",
    ],
    on_shred: &[guarded::shred_exports],
    on_export: &[guarded::export_section],
    approvables: guarded::APPROVABLES,
    ..Context::EMPTY
};

/// The permission entry of every route of this context.
const ROUTES: &[Route] = {
    use Access::*;
    use Permission::*;
    &[
        ("POST", "/api/tenants", Requires(TenantsWrite)),
        ("GET", "/api/tenants", Requires(Read)),
        ("GET", "/api/tenants/export.csv", Requires(TenantsExport)),
        ("GET", "/api/tenants/{id}", Requires(Read)),
        ("PATCH", "/api/tenants/{id}", Requires(TenantsWrite)),
        (
            "GET",
            "/api/tenants/{id}/plan-history",
            Tenant(crate::rbac::Scope::BillingRead, Read),
        ),
        ("GET", "/api/tenants/summary", Requires(Read)),
        (
            "POST",
            "/api/tenants/{id}/exports",
            Tenant(crate::rbac::Scope::TenantAdmin, TenantsExport),
        ),
        (
            "GET",
            "/api/tenants/{id}/exports/{export_id}",
            Tenant(crate::rbac::Scope::TenantAdmin, TenantsExport),
        ),
        ("GET", "/api/tenant-lifecycle/{id}/state", Requires(Read)),
        (
            "POST",
            "/api/tenant-lifecycle/{id}/start-trial",
            Requires(TenantsLifecycle),
        ),
        (
            "POST",
            "/api/tenant-lifecycle/{id}/activate",
            Requires(TenantsLifecycle),
        ),
        (
            "POST",
            "/api/tenant-lifecycle/{id}/suspend",
            Requires(TenantsLifecycle),
        ),
        (
            "POST",
            "/api/tenant-lifecycle/{id}/reinstate",
            Requires(TenantsLifecycle),
        ),
        (
            "POST",
            "/api/tenant-lifecycle/{id}/offboard",
            Requires(TenantsLifecycle),
        ),
        (
            "POST",
            "/api/tenant-lifecycle/{id}/cancel-offboarding",
            Requires(TenantsLifecycle),
        ),
        ("GET", "/platform/tenants", Requires(Read)),
        ("GET", "/platform/tenants/new", Requires(TenantsWrite)),
        ("POST", "/platform/tenants", Requires(TenantsWrite)),
        ("GET", "/platform/tenants/{id}", Requires(Read)),
        ("GET", "/platform/tenants/{id}/edit", Requires(TenantsWrite)),
        (
            "POST",
            "/platform/tenants/{id}/edit",
            Requires(TenantsWrite),
        ),
        (
            "POST",
            "/platform/tenants/{id}/lifecycle/{action}",
            Requires(TenantsLifecycle),
        ),
    ]
};
