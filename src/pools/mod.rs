//! Pools and routing (PRODUCT.md B8; operator guide §2).
//!
//! - [`model`]: pool kinds, statuses, the pool and its stored record.
//! - [`service`]: default layout, assignment by tier, release, flips, route resolution.
//! - [`queries`]: the read model (list, get, a tenant's route).
//! - [`cache`]: the in-memory route cache with a TTL, invalidated on commit.
//! - [`api`]: `/api/pools` and `/api/routes` and their wire types. [`views`]: `/platform/pools`.

pub mod api;
pub mod cache;
pub mod model;
pub mod queries;
pub mod service;
pub mod views;

use crate::http::context::{Context, NavItem};
use crate::rbac::{Access, Permission, Route};

/// The pools context: its routes, pages, permission entries, sidebar items and events.
pub const CONTEXT: Context = Context {
    name: "pools",
    tags: &[("pools", "Pools and routes")],
    api: api::router,
    views: views::router,
    routes: ROUTES,
    nav: &[NavItem::new("/platform/pools", "Pools", Permission::Read)],
    events: &["pool.created.v1", "pool.status.flipped.v1"],
    ..Context::EMPTY
};

/// The permission entry of every route of this context.
const ROUTES: &[Route] = {
    use Access::*;
    use Permission::*;
    &[
        ("GET", "/api/pools", Requires(Read)),
        ("GET", "/api/pools/{id}", Requires(Read)),
        ("POST", "/api/pools/{id}/status", Requires(PoolsWrite)),
        ("GET", "/api/routes/{tenant_id}", Requires(Read)),
        ("GET", "/platform/pools", Requires(Read)),
        ("POST", "/platform/pools/{id}/status", Requires(PoolsWrite)),
    ]
};
