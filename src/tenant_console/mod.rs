//! The Tenant console's shell, `/tenant/{tenant_id}` (tenant admin guide; issue 9): sign-in and
//! sign-out of a tenant's members (sessions scoped to one tenant, never accepted on
//! `/platform`), the home page with the day-1 checklist (guide §10) ticked from the store, and
//! the account page. The capability pages (Members, API keys, Audit...) live with their
//! contexts and plug into the same sidebar with `NavItem::tenant`.
//!
//! - [`views`]: sign-in (throttled, double-submit CSRF) and sign-out, home, account, and the
//!   session check open pages poll.

pub mod views;

use crate::http::context::{Context, NavItem};
use crate::rbac::{Access, Permission, Route};

/// The Tenant console's shell: its routes, pages and permission entries.
pub const CONTEXT: Context = Context {
    name: "tenant_console",
    views: views::router,
    routes: ROUTES,
    nav: &[NavItem::member("/tenant/{tenant_id}", "Home")
        .exact()
        .order(0)],
    ..Context::EMPTY
};

/// The permission entry of every route of the shell.
const ROUTES: &[Route] = {
    use Access::*;
    use Permission::*;
    &[
        ("GET", "/tenant/{tenant_id}", Member(Read)),
        ("GET", "/tenant/{tenant_id}/signin", Public),
        ("POST", "/tenant/{tenant_id}/signin", Public),
        ("POST", "/tenant/{tenant_id}/signout", Member(Read)),
        ("GET", "/tenant/{tenant_id}/account", Member(Read)),
        ("POST", "/tenant/{tenant_id}/account/password", Member(Read)),
        ("GET", "/tenant/{tenant_id}/session", Member(Read)),
    ]
};
