//! Pricing catalogs (operator guide §3, PRODUCT.md 12): versioned rate tables of SKUs with
//! graduated tiers and soft caps, `draft → published → archived`; clone to bump prices; tenants
//! pinned to a published version and moved only by an explicit, audited migration; per-tenant
//! soft-cap overrides.
//!
//! - [`model`]: catalogs, versions, rates, pins, and [`model::price`], the one pricing function.
//! - [`service`]: create, edit a draft, publish, archive, clone, pin, migrate.
//! - [`queries`]: the read model. [`caps`]: the in-memory board of caps exceeded (data only).
//! - [`api`]: `/api/catalogs...`, `/api/tenants/{id}/catalog`. [`views`]: the Catalogs pages.

pub mod api;
pub mod caps;
pub mod model;
pub mod queries;
pub mod service;
pub mod views;

use crate::http::context::{Context, NavItem};
use crate::rbac::{Access, Permission, Route, Scope};

/// The catalogs context.
pub const CONTEXT: Context = Context {
    name: "catalogs",
    tags: &[(
        "catalogs",
        "Pricing catalogs: versioned SKU rate tables, soft caps, tenant pins (operator guide §3)",
    )],
    api: api::router,
    views: views::router,
    routes: ROUTES,
    nav: &[NavItem::new(
        "/platform/catalogs",
        "Catalogs",
        Permission::Read,
    )],
    events: &[
        "catalog.created.v1",
        "catalog.version.updated.v1",
        "catalog.version.published.v1",
        "catalog.version.archived.v1",
        "catalog.version.cloned.v1",
        "catalog.tenant.pinned.v1",
        "catalog.tenants.migrated.v1",
    ],
    tenant_panels: &[views::tenant_panel],
    on_shred: &[service::shred_pin],
    ..Context::EMPTY
};

const ROUTES: &[Route] = {
    use Access::*;
    use Permission::*;
    &[
        ("GET", "/api/catalogs", Requires(Read)),
        ("POST", "/api/catalogs", Requires(BillingManage)),
        ("GET", "/api/catalogs/{id}", Requires(Read)),
        ("GET", "/api/catalogs/{id}/versions/{v}", Requires(Read)),
        (
            "PUT",
            "/api/catalogs/{id}/versions/{v}",
            Requires(BillingManage),
        ),
        (
            "POST",
            "/api/catalogs/{id}/versions/{v}/publish",
            Requires(BillingManage),
        ),
        (
            "POST",
            "/api/catalogs/{id}/versions/{v}/archive",
            Requires(BillingManage),
        ),
        (
            "POST",
            "/api/catalogs/{id}/versions/{v}/clone",
            Requires(BillingManage),
        ),
        (
            "POST",
            "/api/catalogs/{id}/versions/{v}/migrate",
            Requires(BillingManage),
        ),
        (
            "GET",
            "/api/tenants/{id}/catalog",
            Tenant(Scope::BillingRead, Read),
        ),
        ("PUT", "/api/tenants/{id}/catalog", Requires(BillingManage)),
        ("GET", "/platform/catalogs", Requires(Read)),
        ("POST", "/platform/catalogs", Requires(BillingManage)),
        (
            "GET",
            "/platform/catalogs/{id}/versions/{v}",
            Requires(Read),
        ),
        (
            "POST",
            "/platform/catalogs/{id}/versions/{v}/rates",
            Requires(BillingManage),
        ),
        (
            "POST",
            "/platform/catalogs/{id}/versions/{v}/{action}",
            Requires(BillingManage),
        ),
    ]
};
