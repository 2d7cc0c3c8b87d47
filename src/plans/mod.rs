//! Plans (PRODUCT.md 11, HQ PRD §4.2): managed plan records (price, trial, features, limits),
//! seeded from the config's plan list on first start, and each tenant's plan history.
//!
//! - [`model`]: the plan, its record, the history record, parsing.
//! - [`service`]: create, replace, seed, and the assignment check and record that `tenants`
//!   calls inside its provisioning and edit writes.
//! - [`queries`]: the list, one plan, a tenant's history.
//! - [`api`]: `/api/plans`. [`views`]: `/platform/plans`.

pub mod api;
pub mod model;
pub mod queries;
pub mod service;
pub mod views;

use crate::http::context::{Context, NavItem};
use crate::rbac::{Access, Permission, Route};

/// The plans context.
pub const CONTEXT: Context = Context {
    name: "plans",
    tags: &[(
        "plans",
        "Plans: price, trial, features and limits (HQ PRD §4.2)",
    )],
    api: api::router,
    views: views::router,
    routes: ROUTES,
    nav: &[NavItem::new("/platform/plans", "Plans", Permission::Read)],
    events: &["plan.created.v1", "plan.updated.v1"],
    on_shred: &[service::shred_assignments],
    ..Context::EMPTY
};

const ROUTES: &[Route] = {
    use Access::*;
    use Permission::*;
    &[
        ("GET", "/api/plans", Requires(Read)),
        ("POST", "/api/plans", Requires(BillingManage)),
        ("GET", "/api/plans/{code}", Requires(Read)),
        ("PUT", "/api/plans/{code}", Requires(BillingManage)),
        ("GET", "/platform/plans", Requires(Read)),
        ("POST", "/platform/plans", Requires(BillingManage)),
    ]
};
