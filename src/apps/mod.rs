//! Apps: the parent product surface every tenant belongs to (PRODUCT.md A1).
//!
//! - [`model`]: the app, its stored record and tables, and the parsing of a new app.
//! - [`service`]: the rules (create).
//! - [`queries`]: the read model (get, exists, list).
//! - [`api`]: `/api/apps` and its wire types. [`views`]: `/platform/apps`.

pub mod api;
pub mod model;
pub mod queries;
pub mod service;
pub mod views;

use crate::http::context::{Context, NavItem};
use crate::rbac::{Access, Permission, Route};

/// The apps context: its routes, pages, permission entries, sidebar items and events.
pub const CONTEXT: Context = Context {
    name: "apps",
    tags: &[("apps", "Parent product surfaces")],
    api: api::router,
    views: views::router,
    routes: ROUTES,
    nav: &[NavItem::new("/platform/apps", "Apps", Permission::Read)],
    events: &["app.created.v1"],
    ..Context::EMPTY
};

/// The permission entry of every route of this context.
const ROUTES: &[Route] = {
    use Access::*;
    use Permission::*;
    &[
        ("POST", "/api/apps", Requires(AppsWrite)),
        ("GET", "/api/apps", Requires(Read)),
        ("GET", "/api/apps/{id}", Requires(Read)),
        ("GET", "/platform/apps", Requires(Read)),
        ("POST", "/platform/apps", Requires(AppsWrite)),
    ]
};
