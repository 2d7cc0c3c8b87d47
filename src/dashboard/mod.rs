//! The platform dashboard (`/platform`, platform dashboard spec §1): tenant totals and trends,
//! pools, jobs, the audit ledger's state and recent activity, on one page. It reads the other
//! contexts' read models; it owns no state of its own.
//!
//! - [`views`]: the page.

pub mod views;

use crate::http::context::{Context, NavItem};
use crate::rbac::{Access, Permission, Route};

/// The dashboard context: its page, permission entry and sidebar item.
pub const CONTEXT: Context = Context {
    name: "dashboard",
    views: views::router,
    routes: ROUTES,
    nav: &[NavItem::new("/platform", "Platform dashboard", Permission::Read).exact()],
    ..Context::EMPTY
};

/// The permission entry of every route of this context.
const ROUTES: &[Route] = &[("GET", "/platform", Access::Requires(Permission::Read))];
