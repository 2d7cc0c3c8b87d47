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

use crate::approvals::model::Approvable;
use crate::config::{Config, Role as InstallRole};
use crate::rbac::{Permission, Principal, Route, RouteTable, Scope};
use crate::state::{AppState, ExportHook, ProvisionHook, ShredHook, TenantHooks};
use crate::store::ReadCtx;

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
    /// Its steps of the Tenant console's day-1 checklist.
    pub checklist: &'static [ChecklistStep],
    /// Its sections of the operator's tenant detail page, in order.
    pub tenant_panels: &'static [TenantPanel],
    /// What it does when a tenant is provisioned (in the same write).
    pub on_provision: &'static [ProvisionHook],
    /// What it deletes when a tenant is shredded (in the same write).
    pub on_shred: &'static [ShredHook],
    /// Its sections of a tenant's data export (`GET /api/tenants/{id}/exports/{export_id}`).
    pub on_export: &'static [ExportHook],
    /// Its actions that approval routes may hold (issue 11).
    pub approvables: &'static [Approvable],
}

/// A step of the Tenant console's day-1 onboarding checklist (tenant admin guide §10),
/// contributed by the context whose capability it is and ticked from the store.
#[derive(Clone, Copy)]
pub struct ChecklistStep {
    /// Its place in the guide's order (1 Members, 2 API keys, 3 Webhooks, 4 Approvals...).
    pub order: u8,
    /// What to do.
    pub title: &'static str,
    /// Why, and how to tell it is done.
    pub hint: &'static str,
    /// The Tenant-console page it is done on (holds `{tenant_id}`).
    pub path: &'static str,
    /// Is it done for the tenant at this instant?
    pub done: fn(&ReadCtx, &uuid::Uuid, Now) -> crate::error::Result<bool>,
}

/// A section of the operator's tenant detail page that another context contributes (members
/// and business units, API keys without expiry, visits), rendered from one read snapshot for
/// the principal looking at it (its CSRF token for the section's forms).
pub type TenantPanel =
    fn(&ReadCtx, &uuid::Uuid, &Principal, Now) -> crate::error::Result<maud::Markup>;

/// The request's time, as the server's clock tells it.
pub type Now = chrono::DateTime<chrono::Utc>;

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
        checklist: &[],
        tenant_panels: &[],
        on_provision: &[],
        on_shred: &[],
        on_export: &[],
        approvables: &[],
    };
}

/// A route whose body may be larger than `body_limit_bytes`: `(path, its limit from config)`.
pub type Upload = (&'static str, fn(&Config) -> usize);

/// Which console a sidebar item belongs to, and what a caller needs to see it (the server checks
/// the page anyway).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Console {
    /// The platform console (`/platform`): operators with the permission.
    Platform(Permission),
    /// The Tenant console (`/tenant/{tenant_id}`): members holding the scope (every member when
    /// none), and visiting operators.
    Tenant(Option<Scope>),
}

/// A sidebar item of a console.
#[derive(Clone, Copy, Debug)]
pub struct NavItem {
    /// The page it opens; a Tenant-console path holds `{tenant_id}`.
    pub path: &'static str,
    /// Its label.
    pub label: &'static str,
    /// Its console, and who sees it.
    pub console: Console,
    /// Whether the page exists in a process of this role (on-prem pages exist in one role).
    pub shown_for: fn(InstallRole) -> bool,
    /// Active only on exactly its path, not on the pages below it.
    pub exact: bool,
    /// Its place in its console's sidebar (lower first; equal ones keep context order).
    pub order: u8,
}

fn every_role(_: InstallRole) -> bool {
    true
}

impl NavItem {
    /// A platform-console item shown to operators with `permission`, in every role.
    pub const fn new(path: &'static str, label: &'static str, permission: Permission) -> NavItem {
        NavItem {
            path,
            label,
            console: Console::Platform(permission),
            shown_for: every_role,
            exact: false,
            order: 50,
        }
    }

    /// A Tenant-console item (`path` holds `{tenant_id}`), shown to members holding `scope` and
    /// to visiting operators.
    pub const fn tenant(path: &'static str, label: &'static str, scope: Scope) -> NavItem {
        NavItem {
            path,
            label,
            console: Console::Tenant(Some(scope)),
            shown_for: every_role,
            exact: false,
            order: 50,
        }
    }

    /// A Tenant-console item every member sees.
    pub const fn member(path: &'static str, label: &'static str) -> NavItem {
        NavItem {
            path,
            label,
            console: Console::Tenant(None),
            shown_for: every_role,
            exact: false,
            order: 50,
        }
    }

    /// Is the item shown to `principal`, in the Tenant console when `tenant_console`?
    pub fn shown_to(&self, principal: &Principal, tenant_console: bool) -> bool {
        match self.console {
            Console::Platform(p) => !tenant_console && principal.can(p),
            Console::Tenant(None) => tenant_console,
            Console::Tenant(Some(s)) => tenant_console && principal.grants(s, Permission::Read),
        }
    }

    /// The link of the item in `tenant`'s console (platform items are their path).
    pub fn href(&self, tenant: Option<&uuid::Uuid>) -> String {
        match tenant {
            Some(t) => self.path.replace("{tenant_id}", &t.to_string()),
            None => self.path.to_string(),
        }
    }

    /// The same item, shown only in processes whose role passes `shown_for`.
    pub const fn in_role(self, shown_for: fn(InstallRole) -> bool) -> NavItem {
        NavItem { shown_for, ..self }
    }

    /// The same item, placed at `order` in its sidebar (lower first; 50 by default).
    pub const fn order(self, order: u8) -> NavItem {
        NavItem { order, ..self }
    }

    /// The same item, active only on exactly its path.
    pub const fn exact(self) -> NavItem {
        NavItem {
            exact: true,
            ..self
        }
    }

    /// Does this item, linked as `href`, match the page at `current` (a path)? Among the
    /// matching items, the one with the longest path is the active one.
    pub fn matches(&self, href: &str, current: &str) -> bool {
        current == href
            || (!self.exact
                && current
                    .strip_prefix(href)
                    .is_some_and(|rest| rest.starts_with('/')))
    }
}

/// Everything the contexts declared, merged once at start.
pub struct Registry {
    routes: RouteTable,
    nav: Vec<NavItem>,
    events: Vec<&'static str>,
    uploads: BTreeMap<&'static str, fn(&Config) -> usize>,
    checklist: Vec<ChecklistStep>,
    tenant_panels: Vec<TenantPanel>,
}

impl Registry {
    /// Folds `contexts`, in order.
    pub fn new(contexts: &[&Context]) -> Registry {
        Registry {
            routes: RouteTable::new(contexts.iter().flat_map(|c| c.routes.iter())),
            nav: {
                let mut nav: Vec<NavItem> = contexts
                    .iter()
                    .flat_map(|c| c.nav.iter().copied())
                    .collect();
                nav.sort_by_key(|i| i.order);
                nav
            },
            events: contexts
                .iter()
                .flat_map(|c| c.events.iter().copied())
                .collect(),
            uploads: contexts
                .iter()
                .flat_map(|c| c.uploads.iter().copied())
                .collect(),
            checklist: {
                let mut steps: Vec<ChecklistStep> = contexts
                    .iter()
                    .flat_map(|c| c.checklist.iter().copied())
                    .collect();
                steps.sort_by_key(|s| s.order);
                steps
            },
            tenant_panels: contexts
                .iter()
                .flat_map(|c| c.tenant_panels.iter().copied())
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

    /// The contexts' tenant hooks, in context order.
    pub fn tenant_hooks(contexts: &[&Context]) -> TenantHooks {
        TenantHooks {
            on_provision: contexts
                .iter()
                .flat_map(|c| c.on_provision.iter().copied())
                .collect(),
            on_shred: contexts
                .iter()
                .flat_map(|c| c.on_shred.iter().copied())
                .collect(),
            on_export: contexts
                .iter()
                .flat_map(|c| c.on_export.iter().copied())
                .collect(),
            approvables: contexts
                .iter()
                .flat_map(|c| c.approvables.iter().copied())
                .collect(),
        }
    }

    /// The day-1 checklist's steps, in the guide's order.
    pub fn checklist(&self) -> &[ChecklistStep] {
        &self.checklist
    }

    /// The sections of the operator's tenant detail page, in context order.
    pub fn tenant_panels(&self) -> &[TenantPanel] {
        &self.tenant_panels
    }

    /// Does `path` take uploads (its own, larger body limit)?
    pub fn is_upload(&self, path: &str) -> bool {
        self.uploads.contains_key(path)
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
        let h = tenants.href(None);
        assert!(tenants.matches(&h, "/platform/tenants"));
        assert!(tenants.matches(&h, "/platform/tenants/new"));
        assert!(!tenants.matches(&h, "/platform/tenantsx"));
        let home = NavItem::new("/platform", "Home", Permission::Read).exact();
        assert!(home.matches("/platform", "/platform"));
        assert!(!home.matches("/platform", "/platform/tenants"));
        let members = NavItem::tenant("/tenant/{tenant_id}/members", "Members", Scope::MembersRead);
        let t = uuid::Uuid::nil();
        assert_eq!(members.href(Some(&t)), format!("/tenant/{t}/members"));
    }
}
