//! The descriptor a bounded context exports, and the [`Registry`] the composition root folds
//! them into.
//!
//! A context (`tenants/`, `pools/`, ...) plugs into the binary with one value,
//! `pub const CONTEXT: Context` in its `mod.rs`, and one line in [`crate::app::ALL`]. From the
//! list, the app builds the router (API and console), the OpenAPI document, the permission table
//! that [`crate::rbac`] checks every request against, the console's sidebar, and the catalogue of
//! event names. ARCHITECTURE.md ("Adding a context") has the recipe.

use std::collections::BTreeMap;

use axum::Router;
use utoipa_axum::router::OpenApiRouter;

use crate::config::{Config, Role as InstallRole};
use crate::rbac::{Permission, Route, RouteTable};
use crate::state::AppState;

/// What a context contributes to the binary.
#[derive(Clone, Copy)]
pub struct Context {
    /// The context's name (its folder), for logs and the route-table snapshot.
    pub name: &'static str,
    /// OpenAPI tags `(name, description)` its operations use.
    pub tags: &'static [(&'static str, &'static str)],
    /// Its JSON routes with their OpenAPI annotations (`api.rs`).
    pub api: fn() -> OpenApiRouter<AppState>,
    /// Its console pages (`views.rs`).
    pub views: fn() -> Router<AppState>,
    /// The permission entry of every route above, API and console alike. A routed path without
    /// an entry is refused (deny by default).
    pub routes: &'static [Route],
    /// Its sidebar items, in order.
    pub nav: &'static [NavItem],
    /// The ledger event names it writes (`tenant.suspended.v1`...).
    pub events: &'static [&'static str],
    /// Routes whose bodies may exceed `body_limit_bytes`, with the limit they have instead.
    pub uploads: &'static [Upload],
}

fn no_api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}

fn no_views() -> Router<AppState> {
    Router::new()
}

impl Context {
    /// A context that contributes nothing yet: start from it with struct update syntax,
    /// `Context { name: "pools", api: api::router, ..Context::EMPTY }`.
    pub const EMPTY: Context = Context {
        name: "",
        tags: &[],
        api: no_api,
        views: no_views,
        routes: &[],
        nav: &[],
        events: &[],
        uploads: &[],
    };
}

/// A route whose body may be larger than `body_limit_bytes`: `(path, its limit from config)`.
pub type Upload = (&'static str, fn(&Config) -> usize);

/// A sidebar item of the console.
#[derive(Clone, Copy, Debug)]
pub struct NavItem {
    /// The page it opens.
    pub path: &'static str,
    /// Its label.
    pub label: &'static str,
    /// The permission a caller needs to see it (the server checks the page anyway).
    pub permission: Permission,
    /// Whether the page exists in a process of this role (on-prem pages exist in one role).
    pub shown_for: fn(InstallRole) -> bool,
    /// Active only on exactly its path, not on the pages below it.
    pub exact: bool,
}

fn every_role(_: InstallRole) -> bool {
    true
}

impl NavItem {
    /// An item shown to callers with `permission`, in every role.
    pub const fn new(path: &'static str, label: &'static str, permission: Permission) -> NavItem {
        NavItem {
            path,
            label,
            permission,
            shown_for: every_role,
            exact: false,
        }
    }

    /// The same item, shown only in processes whose role passes `shown_for`.
    pub const fn in_role(self, shown_for: fn(InstallRole) -> bool) -> NavItem {
        NavItem { shown_for, ..self }
    }

    /// The same item, active only on exactly its path.
    pub const fn exact(self) -> NavItem {
        NavItem {
            exact: true,
            ..self
        }
    }

    /// Does this item match the page at `current` (a path)? Among the matching items, the one
    /// with the longest path is the active one.
    pub fn matches(&self, current: &str) -> bool {
        current == self.path
            || (!self.exact
                && current
                    .strip_prefix(self.path)
                    .is_some_and(|rest| rest.starts_with('/')))
    }
}

/// Everything the contexts declared, merged once at start.
pub struct Registry {
    routes: RouteTable,
    nav: Vec<NavItem>,
    events: Vec<&'static str>,
    uploads: BTreeMap<&'static str, fn(&Config) -> usize>,
}

impl Registry {
    /// Folds `contexts`, in order.
    pub fn new(contexts: &[&Context]) -> Registry {
        Registry {
            routes: RouteTable::new(contexts.iter().flat_map(|c| c.routes.iter())),
            nav: contexts
                .iter()
                .flat_map(|c| c.nav.iter().copied())
                .collect(),
            events: contexts
                .iter()
                .flat_map(|c| c.events.iter().copied())
                .collect(),
            uploads: contexts
                .iter()
                .flat_map(|c| c.uploads.iter().copied())
                .collect(),
        }
    }

    /// The permission table.
    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    /// The sidebar, in context order.
    pub fn nav(&self) -> &[NavItem] {
        &self.nav
    }

    /// Every event name the contexts write.
    pub fn events(&self) -> &[&'static str] {
        &self.events
    }

    /// The body limit of `path` under `config`: its upload limit, or `body_limit_bytes`.
    pub fn body_limit(&self, path: &str, config: &Config) -> usize {
        self.uploads
            .get(path)
            .map_or(config.body_limit_bytes, |limit| limit(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nav_item_matches_its_page_and_the_pages_below_it() {
        let tenants = NavItem::new("/platform/tenants", "Tenants", Permission::Read);
        assert!(tenants.matches("/platform/tenants"));
        assert!(tenants.matches("/platform/tenants/new"));
        assert!(!tenants.matches("/platform/tenantsx"));
        let home = NavItem::new("/platform", "Home", Permission::Read).exact();
        assert!(home.matches("/platform"));
        assert!(!home.matches("/platform/tenants"));
    }
}
