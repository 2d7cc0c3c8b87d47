//! Roles, permissions, and the one permission check every route goes through.
//!
//! Each context declares the [`Access`] every `(method, path template)` of it needs (its
//! descriptor's `routes`); the composition root merges them into one [`RouteTable`], whose
//! [`RouteTable::authorize`] is the only function that decides, and `http/` calls it from one
//! middleware for every request. A route missing from the table is refused (deny by default), a
//! test compares the table with the OpenAPI document so a new route cannot ship without an
//! entry, and a snapshot test keeps the merged table readable as one list for security review.
//!
//! Two kinds of principal go through it (API.md "Tenant-scoped routes"):
//! - **operators**, by their role's permissions (the HQ PRD's roles, §2; the matrix is
//!   [`allows`]);
//! - **tenant principals** (a persona through an API key, a tenant token or a Tenant-console
//!   session), by their [`Scope`]s, and only inside their own tenant: a tenant principal naming
//!   another tenant's id gets `404 not_found`, exactly like a tenant that does not exist, so
//!   existence never leaks. This check is made here, once, from the route's tenant parameter.

use serde::{Deserialize, Serialize};

use std::collections::HashMap;

use crate::actor::Actor;

/// An operator role (HQ PRD §2).
///
/// REMEMBER: the variant order is the file format (an operator record stores its role by
/// variant position): never reorder; add at the end (`disk_format_codes_are_pinned` checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Role {
    /// Everything, including operators.
    SuperAdmin = 0,
    /// Infrastructure: pools and jobs.
    TechnicalAdmin = 1,
    /// Apps, tenants and their lifecycle.
    BusinessAdmin = 2,
    /// Reads everything; verifies, checkpoints and exports the audit ledger.
    Compliance = 3,
    /// Read-only, no exports.
    Support = 4,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 5] = [
        Role::SuperAdmin,
        Role::TechnicalAdmin,
        Role::BusinessAdmin,
        Role::Compliance,
        Role::Support,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::SuperAdmin => "super_admin",
            Role::TechnicalAdmin => "technical_admin",
            Role::BusinessAdmin => "business_admin",
            Role::Compliance => "compliance",
            Role::Support => "support",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role '{s}': use one of super_admin, technical_admin, business_admin, compliance, support"))
    }
}

/// Something a route lets a principal do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Read apps, tenants, pools, routes, jobs and the ledger.
    Read,
    /// Create apps.
    AppsWrite,
    /// Provision and edit tenants.
    TenantsWrite,
    /// Run tenant lifecycle actions.
    TenantsLifecycle,
    /// Export the tenant directory as CSV.
    TenantsExport,
    /// Flip pool status.
    PoolsWrite,
    /// Run jobs on demand.
    JobsRun,
    /// Verify chains and sign checkpoints.
    AuditVerify,
    /// Export the ledger as NDJSON.
    AuditExport,
    /// Manage operator accounts.
    OperatorsManage,
    /// Register on-prem installs (issue licenses) and import heartbeat bundles (control plane).
    InstallsManage,
    /// Send heartbeats now, acknowledge imported bundles (appliance).
    SyncManage,
    /// Manage a tenant's members, business units and API keys.
    MembersManage,
    /// Visit a tenant's console read-only (PRODUCT.md A6, F21.05.05).
    TenantsVisit,
    /// Elevate a visit to write access, with a reason, for a bounded time.
    TenantsElevate,
    /// Manage tenants' webhook endpoints and replay dead-lettered deliveries (operator guide
    /// §5).
    WebhooksManage,
    /// Manage plans and pricing catalogs, pin tenants to catalog versions, and post usage
    /// for any tenant (issue 10).
    BillingManage,
    /// Approve or reject approval requests (whether the caller is among a request's approvers
    /// is the request's own check; issue 11).
    ApprovalsDecide,
    /// Create, change and delete approval routes (issue 11).
    ApprovalsManage,
}

impl Permission {
    /// Every permission (the route-table snapshot lists who holds each).
    pub const ALL: [Permission; 19] = {
        use Permission::*;
        [
            Read,
            AppsWrite,
            TenantsWrite,
            TenantsLifecycle,
            TenantsExport,
            PoolsWrite,
            JobsRun,
            AuditVerify,
            AuditExport,
            OperatorsManage,
            InstallsManage,
            SyncManage,
            MembersManage,
            TenantsVisit,
            TenantsElevate,
            WebhooksManage,
            BillingManage,
            ApprovalsDecide,
            ApprovalsManage,
        ]
    };
}

/// Is `role` allowed `p`? The permission matrix, written once.
pub fn allows(role: Role, p: Permission) -> bool {
    use Permission::*;
    match role {
        Role::SuperAdmin => true,
        Role::TechnicalAdmin => matches!(
            p,
            Read | PoolsWrite
                | JobsRun
                | TenantsExport
                | InstallsManage
                | SyncManage
                | TenantsVisit
                | WebhooksManage
                | ApprovalsDecide
        ),
        Role::BusinessAdmin => matches!(
            p,
            Read | AppsWrite
                | TenantsWrite
                | TenantsLifecycle
                | TenantsExport
                | MembersManage
                | TenantsVisit
                | TenantsElevate
                | WebhooksManage
                | BillingManage
                | ApprovalsDecide
        ),
        Role::Compliance => matches!(
            p,
            Read | AuditVerify | AuditExport | TenantsExport | TenantsVisit | ApprovalsDecide
        ),
        Role::Support => matches!(p, Read | TenantsVisit),
    }
}

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No credentials (health, readiness, the OpenAPI document).
    Public,
    /// Any authenticated principal, operator or tenant (`/api/whoami`).
    Authenticated,
    /// An operator whose role allows the permission (tenant principals are refused).
    Requires(Permission),
    /// A route of one tenant (its path names the tenant as `{id}` under `/api/tenants/` or
    /// `{tenant_id}` under `/tenant/`): an operator whose role allows the permission, or a
    /// principal of that same tenant holding the scope.
    Tenant(Scope, Permission),
    /// A route of one tenant open to every principal of that tenant whatever its scopes (the
    /// Tenant console's home and account pages), and to operators with the permission.
    Member(Permission),
    /// A route whose body names the tenant of each item (usage ingest): an operator whose role
    /// allows the permission, or a tenant principal holding the scope. The handler keeps a
    /// tenant principal to its own tenant, item by item.
    TenantInBody(Scope, Permission),
}

/// What a tenant principal may do: the closed set of tenant scopes (issue 9; later capabilities
/// add theirs). `tenant.admin` holds every other one.
///
/// REMEMBER: these numbers are the file format (roles and API keys store scopes by code): never
/// renumber; add at the end (`disk_format_codes_are_pinned` checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum Scope {
    /// Everything in the tenant.
    TenantAdmin = 0,
    /// Read personas, roles and business units.
    MembersRead = 1,
    /// Add, change and revoke personas and business units.
    MembersWrite = 2,
    /// List API keys (never their secrets).
    ApiKeysRead = 3,
    /// Issue, rotate and revoke API keys.
    ApiKeysWrite = 4,
    /// Read invoices, the live meter and showback.
    BillingRead = 5,
    /// Post usage events.
    UsageWrite = 6,
    /// Read webhook endpoints and deliveries.
    WebhooksRead = 7,
    /// Manage webhook endpoints and replay deliveries.
    WebhooksWrite = 8,
    /// Read approval requests and routes.
    ApprovalsRead = 9,
    /// Approve or reject requests.
    ApprovalsDecide = 10,
    /// Browse and verify the tenant's own audit chain.
    AuditRead = 11,
    /// Read the tenant's metrics.
    MetricsRead = 12,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 13] = [
        Scope::TenantAdmin,
        Scope::MembersRead,
        Scope::MembersWrite,
        Scope::ApiKeysRead,
        Scope::ApiKeysWrite,
        Scope::BillingRead,
        Scope::UsageWrite,
        Scope::WebhooksRead,
        Scope::WebhooksWrite,
        Scope::ApprovalsRead,
        Scope::ApprovalsDecide,
        Scope::AuditRead,
        Scope::MetricsRead,
    ];

    /// The dotted name, e.g. `members.write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::TenantAdmin => "tenant.admin",
            Scope::MembersRead => "members.read",
            Scope::MembersWrite => "members.write",
            Scope::ApiKeysRead => "api_keys.read",
            Scope::ApiKeysWrite => "api_keys.write",
            Scope::BillingRead => "billing.read",
            Scope::UsageWrite => "usage.write",
            Scope::WebhooksRead => "webhooks.read",
            Scope::WebhooksWrite => "webhooks.write",
            Scope::ApprovalsRead => "approvals.read",
            Scope::ApprovalsDecide => "approvals.decide",
            Scope::AuditRead => "audit.read",
            Scope::MetricsRead => "metrics.read",
        }
    }

    /// Parses a dotted name.
    pub fn parse(s: &str) -> Result<Scope, String> {
        Scope::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Scope::ALL.iter().map(|x| x.as_str()).collect();
                format!("scope '{s}' is unknown: use {}", names.join(", "))
            })
    }

    /// The scope's code in stored records.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The scope of a stored code.
    pub fn from_code(code: u8) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.code() == code)
    }
}

/// A set of scopes (a bit per scope).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Scopes(u32);

impl Scopes {
    /// No scope.
    pub const NONE: Scopes = Scopes(0);

    /// The set of `scopes`.
    pub fn of(scopes: impl IntoIterator<Item = Scope>) -> Scopes {
        Scopes(scopes.into_iter().fold(0, |acc, s| acc | (1 << s.code())))
    }

    /// Does the set grant `scope`? `tenant.admin` grants every scope.
    pub fn grants(self, scope: Scope) -> bool {
        self.0 & (1 << Scope::TenantAdmin.code()) != 0 || self.0 & (1 << scope.code()) != 0
    }

    /// Is every scope of `other` granted by this set (a key's scopes within its persona's)?
    pub fn covers(self, other: Scopes) -> bool {
        other.iter().all(|s| self.grants(s))
    }

    /// The scopes in the set, in [`Scope::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .into_iter()
            .filter(move |s| self.0 & (1 << s.code()) != 0)
    }

    /// The union of two sets.
    pub fn union(self, other: Scopes) -> Scopes {
        Scopes(self.0 | other.0)
    }

    /// The dotted names, space-separated (a JWT's `scope` claim).
    pub fn to_claim(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }
}

/// A route's permission entry: `(method, path template, access)`. Each context declares its
/// own in its descriptor ([`crate::http::context::Context::routes`]).
pub type Route = (&'static str, &'static str, Access);

/// The permission table: every route of every context. Deny by default: a request whose route is
/// not here is refused.
#[derive(Debug, Default)]
pub struct RouteTable {
    /// path template → `(method, access)` of each method it has.
    by_path: HashMap<&'static str, Vec<(&'static str, Access)>>,
    len: usize,
}

impl RouteTable {
    /// Builds the table from every context's entries. A `(method, path)` declared twice keeps
    /// its first entry and is logged (a test keeps the merged table free of them).
    pub fn new<'a>(routes: impl IntoIterator<Item = &'a Route>) -> RouteTable {
        let mut t = RouteTable::default();
        for &(method, path, access) in routes {
            let methods = t.by_path.entry(path).or_default();
            if methods.iter().any(|(m, _)| *m == method) {
                tracing::error!(
                    method,
                    path,
                    "route declared twice; keeping the first entry"
                );
                continue;
            }
            methods.push((method, access));
            t.len += 1;
        }
        t
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The access rule of a route, if it has one. `HEAD` has the rule of `GET`.
    pub fn access_for(&self, method: &str, path: &str) -> Option<Access> {
        let method = if method == "HEAD" { "GET" } else { method };
        self.by_path
            .get(path)?
            .iter()
            .find(|(m, _)| *m == method)
            .map(|(_, a)| *a)
    }

    /// Does any method of `path` have an entry? (A known path with an unlisted method is a 405.)
    pub fn path_is_known(&self, path: &str) -> bool {
        self.by_path.contains_key(path)
    }

    /// The one permission check: may `principal` call `method path` (a route template) of the
    /// tenant `tenant` (the route's tenant parameter, when it has one)?
    ///
    /// Errors: [`Refusal::Unauthorized`] when credentials are needed and missing;
    /// [`Refusal::Forbidden`] when the role lacks the permission, a tenant principal calls an
    /// operator route, or the route has no entry (deny by default; logged as a bug);
    /// [`Refusal::NotFound`] when a tenant principal names another tenant;
    /// [`Refusal::InsufficientScope`]; [`Refusal::MethodNotAllowed`] for a known path with an
    /// unlisted method.
    pub fn authorize(
        &self,
        principal: Option<&Principal>,
        method: &str,
        path: &str,
        tenant: Option<&str>,
    ) -> Result<(), Refusal> {
        let needed = || {
            Refusal::Unauthorized(
                "this route needs credentials: send 'Authorization: Bearer <token>' (the admin_ops_token, an operator token, or for a tenant route a tenant API key or token)".into(),
            )
        };
        let access = self.access_for(method, path);
        // A tenant principal naming another tenant learns nothing, whatever the route.
        if let (Some(PrincipalKind::Tenant(t)), Some(_), Some(a)) =
            (principal.map(|p| &p.kind), tenant, access)
            && a != Access::Public
        {
            own_tenant(t, tenant)?;
        }
        match access {
            Some(Access::Public) => Ok(()),
            Some(Access::Authenticated) => principal.map(|_| ()).ok_or_else(needed),
            Some(Access::Requires(p)) => match principal.map(|x| &x.kind) {
                None => Err(needed()),
                Some(PrincipalKind::Operator { role, .. }) if allows(*role, p) => Ok(()),
                Some(PrincipalKind::Operator { role, .. }) => Err(Refusal::Forbidden(format!(
                    "your role '{}' may not {method} {path}",
                    role.as_str()
                ))),
                Some(PrincipalKind::Tenant(_)) => Err(Refusal::Forbidden(format!(
                    "{method} {path} is a platform operators' route; tenant credentials reach only /api/tenants/{{id}}/... of their own tenant"
                ))),
            },
            Some(Access::Member(p)) => match principal.map(|x| &x.kind) {
                None => Err(needed()),
                Some(PrincipalKind::Operator { role, .. }) if allows(*role, p) => Ok(()),
                Some(PrincipalKind::Operator { role, .. }) => Err(Refusal::Forbidden(format!(
                    "your role '{}' may not {method} {path}",
                    role.as_str()
                ))),
                Some(PrincipalKind::Tenant(t)) => own_tenant(t, tenant),
            },
            Some(Access::Tenant(scope, p)) => match principal.map(|x| &x.kind) {
                None => Err(needed()),
                Some(PrincipalKind::Operator { role, .. }) if allows(*role, p) => Ok(()),
                Some(PrincipalKind::Operator { role, .. }) => Err(Refusal::Forbidden(format!(
                    "your role '{}' may not {method} {path}",
                    role.as_str()
                ))),
                Some(PrincipalKind::Tenant(t)) => {
                    own_tenant(t, tenant)?;
                    if t.scopes.grants(scope) {
                        Ok(())
                    } else {
                        Err(Refusal::InsufficientScope(scope))
                    }
                }
            },
            Some(Access::TenantInBody(scope, p)) => match principal.map(|x| &x.kind) {
                None => Err(needed()),
                Some(PrincipalKind::Operator { role, .. }) if allows(*role, p) => Ok(()),
                Some(PrincipalKind::Operator { role, .. }) => Err(Refusal::Forbidden(format!(
                    "your role '{}' may not {method} {path}",
                    role.as_str()
                ))),
                Some(PrincipalKind::Tenant(t)) if t.scopes.grants(scope) => Ok(()),
                Some(PrincipalKind::Tenant(_)) => Err(Refusal::InsufficientScope(scope)),
            },
            None if self.path_is_known(path) => Err(Refusal::MethodNotAllowed(format!(
                "{method} is not allowed on {path}"
            ))),
            None => {
                tracing::error!(
                    method,
                    path,
                    "route has no permission entry in any context's routes; refusing"
                );
                Err(Refusal::Forbidden(format!(
                    "{method} {path} is not open to any role"
                )))
            }
        }
    }
}

/// A tenant principal reaches only its own tenant: any other id (or none) is not found.
fn own_tenant(t: &TenantPrincipal, tenant: Option<&str>) -> Result<(), Refusal> {
    let named = tenant.unwrap_or_default();
    if crate::ids::parse_uuid(named) == Some(t.tenant_id) {
        Ok(())
    } else {
        Err(Refusal::NotFound(named.to_string()))
    }
}

/// 403: a tenant principal lacks the route's scope (API.md).
pub const INSUFFICIENT_SCOPE: &str = "insufficient_scope";
/// 403: a write during a read-only visit (PRODUCT.md A6).
pub const IMPERSONATION_READ_ONLY: &str = "impersonation_read_only";

/// Why [`RouteTable::authorize`] refused a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 401: credentials are needed.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the role lacks the permission, or the route is open to no role.
    #[error("{0}")]
    Forbidden(String),
    /// 405: the path exists, the method does not.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 404: a tenant principal named another tenant (the same answer as an unknown tenant).
    #[error("tenant '{0}' not found")]
    NotFound(String),
    /// 403 `insufficient_scope`: the tenant principal lacks the route's scope.
    #[error("this route needs the scope '{scope}', which your credential does not hold", scope = .0.as_str())]
    InsufficientScope(Scope),
    /// 403 `impersonation_read_only`: a write during a visit that was not elevated.
    #[error(
        "you are visiting this tenant read-only: elevate the visit (with a reason) to change anything"
    )]
    ReadOnlyVisit,
}

impl Refusal {
    /// The stable code (`unauthorized`, `forbidden`, `method_not_allowed`).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Unauthorized(_) => "unauthorized",
            Refusal::Forbidden(_) => "forbidden",
            Refusal::MethodNotAllowed(_) => "method_not_allowed",
            Refusal::NotFound(_) => "not_found",
            Refusal::InsufficientScope(_) => INSUFFICIENT_SCOPE,
            Refusal::ReadOnlyVisit => IMPERSONATION_READ_ONLY,
        }
    }
}

/// Is `path` a console (HTML) route? Its refusals are pages and redirects, not problems.
pub fn is_console(path: &str) -> bool {
    path == "/"
        || path.starts_with("/platform")
        || path.starts_with("/tenant/")
        || path.starts_with("/signin")
        || path == "/signout"
        || path.starts_with("/assets/")
}

/// Is `path` a Tenant-console route (`/tenant/{tenant_id}...`)?
pub fn is_tenant_console(path: &str) -> bool {
    path.starts_with("/tenant/")
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The actor its changes are attributed to (an operator's username, `admin-ops-token`, a
    /// persona id, an API key id).
    pub actor: Actor,
    /// A name for logs and the console.
    pub display_name: String,
    /// The console session the request rides on, if any (its CSRF token guards forms).
    pub session: Option<SessionRef>,
    /// An operator, or a principal of one tenant.
    pub kind: PrincipalKind,
}

/// Who a principal is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A platform operator, or the bootstrap token.
    Operator {
        /// Its role.
        role: Role,
        /// The operator account (none for the bootstrap token).
        operator_id: Option<uuid::Uuid>,
        /// The tenant it is visiting, on a Tenant-console page during a visit.
        visit: Option<Visit>,
    },
    /// A persona of one tenant.
    Tenant(TenantPrincipal),
}

/// A principal of one tenant: a persona, through the credential it presented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantPrincipal {
    /// The tenant.
    pub tenant_id: uuid::Uuid,
    /// The persona.
    pub persona_id: uuid::Uuid,
    /// What it may do: the persona's roles' scopes, narrowed to the key's for a key or token.
    pub scopes: Scopes,
    /// How it authenticated.
    pub credential: Credential,
}

/// How a tenant principal authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// An API key (its id).
    ApiKey(uuid::Uuid),
    /// A tenant access token issued for an API key (the key's id, the token's `jti`).
    Token {
        /// The API key it was issued for.
        key_id: uuid::Uuid,
        /// Its `jti`.
        jti: String,
    },
    /// A Tenant-console session.
    Session,
}

/// An operator's visit of a tenant's console (PRODUCT.md A6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Visit {
    /// The impersonation record.
    pub id: uuid::Uuid,
    /// The tenant visited.
    pub tenant_id: uuid::Uuid,
    /// When the visit ends by itself.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// Until when writes are allowed, when elevated.
    pub elevated_until: Option<chrono::DateTime<chrono::Utc>>,
}

impl Visit {
    /// May the visitor write at `now`?
    pub fn is_elevated(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.elevated_until.is_some_and(|u| now < u)
    }
}

/// The console session a request rides on: its store key (signing out deletes it) and the CSRF
/// token its forms must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRef {
    /// SHA-256 of the cookie value.
    pub key: [u8; 32],
    /// The session's CSRF token (base64url).
    pub csrf: String,
    /// When it started (sign-in).
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl Principal {
    /// An operator principal.
    pub fn operator(
        actor: Actor,
        display_name: String,
        role: Role,
        operator_id: Option<uuid::Uuid>,
        session: Option<SessionRef>,
    ) -> Principal {
        Principal {
            actor,
            display_name,
            session,
            kind: PrincipalKind::Operator {
                role,
                operator_id,
                visit: None,
            },
        }
    }

    /// May this caller do `p`? (Operators only: permissions are the operators' currency.)
    pub fn can(&self, p: Permission) -> bool {
        self.role().is_some_and(|r| allows(r, p))
    }

    /// The operator's role, when the caller is an operator.
    pub fn role(&self) -> Option<Role> {
        match &self.kind {
            PrincipalKind::Operator { role, .. } => Some(*role),
            PrincipalKind::Tenant(_) => None,
        }
    }

    /// The operator account, when the caller is one (not the bootstrap token).
    pub fn operator_id(&self) -> Option<uuid::Uuid> {
        match &self.kind {
            PrincipalKind::Operator { operator_id, .. } => *operator_id,
            PrincipalKind::Tenant(_) => None,
        }
    }

    /// The tenant principal, when the caller is one.
    pub fn tenant(&self) -> Option<&TenantPrincipal> {
        match &self.kind {
            PrincipalKind::Tenant(t) => Some(t),
            PrincipalKind::Operator { .. } => None,
        }
    }

    /// The visit, when an operator is visiting a tenant's console.
    pub fn visit(&self) -> Option<&Visit> {
        match &self.kind {
            PrincipalKind::Operator { visit, .. } => visit.as_ref(),
            PrincipalKind::Tenant(_) => None,
        }
    }

    /// Does the caller hold tenant scope `s` (a tenant principal), or may it act on tenants'
    /// members as an operator with `p`?
    pub fn grants(&self, s: Scope, p: Permission) -> bool {
        match &self.kind {
            PrincipalKind::Operator { role, .. } => allows(*role, p),
            PrincipalKind::Tenant(t) => t.scopes.grants(s),
        }
    }

    /// The role or `persona` label the console shows.
    pub fn label(&self) -> &'static str {
        match &self.kind {
            PrincipalKind::Operator { role, .. } => role.as_str(),
            PrincipalKind::Tenant(_) => "member",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        use Access::*;
        use Permission::*;
        RouteTable::new(&[
            ("GET", "/healthz", Public),
            ("GET", "/api/tenants", Requires(Read)),
            ("POST", "/api/tenants", Requires(TenantsWrite)),
            ("GET", "/api/tenants/export.csv", Requires(TenantsExport)),
            (
                "GET",
                "/api/tenants/{id}/personas",
                Tenant(Scope::MembersRead, Read),
            ),
        ])
    }

    fn authorize(p: Option<&Principal>, method: &str, path: &str) -> Result<(), Refusal> {
        table().authorize(p, method, path, None)
    }

    fn who(role: Role) -> Principal {
        Principal::operator(Actor::operator("t"), "t".into(), role, None, None)
    }

    fn member(tenant: uuid::Uuid, scopes: &[Scope]) -> Principal {
        Principal {
            actor: Actor::system("persona"),
            display_name: "m".into(),
            session: None,
            kind: PrincipalKind::Tenant(TenantPrincipal {
                tenant_id: tenant,
                persona_id: uuid::Uuid::now_v7(),
                scopes: Scopes::of(scopes.iter().copied()),
                credential: Credential::Session,
            }),
        }
    }

    #[test]
    fn a_tenant_principal_reaches_only_its_tenant_and_needs_the_scope() {
        let (a, b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let t = table();
        let path = "/api/tenants/{id}/personas";
        let reader = member(a, &[Scope::MembersRead]);
        assert!(
            t.authorize(Some(&reader), "GET", path, Some(&a.to_string()))
                .is_ok()
        );
        assert_eq!(
            t.authorize(Some(&reader), "GET", path, Some(&b.to_string())),
            Err(Refusal::NotFound(b.to_string())),
            "another tenant's id is not found, exactly like an unknown one"
        );
        let writer_only = member(a, &[Scope::ApiKeysWrite]);
        assert_eq!(
            t.authorize(Some(&writer_only), "GET", path, Some(&a.to_string())),
            Err(Refusal::InsufficientScope(Scope::MembersRead))
        );
        let admin = member(a, &[Scope::TenantAdmin]);
        assert!(
            t.authorize(Some(&admin), "GET", path, Some(&a.to_string()))
                .is_ok()
        );
        assert_eq!(
            t.authorize(Some(&admin), "GET", "/api/tenants", None)
                .unwrap_err()
                .code(),
            "forbidden",
            "operator routes are closed to tenant principals"
        );
        assert!(
            t.authorize(Some(&who(Role::Support)), "GET", path, Some(&b.to_string()))
                .is_ok(),
            "operators reach every tenant by permission"
        );
    }

    #[test]
    fn scope_sets_grant_and_cover() {
        let s = Scopes::of([Scope::MembersRead, Scope::AuditRead]);
        assert!(s.grants(Scope::AuditRead) && !s.grants(Scope::MembersWrite));
        assert!(s.covers(Scopes::of([Scope::MembersRead])));
        assert!(!s.covers(Scopes::of([Scope::MembersWrite])));
        let admin = Scopes::of([Scope::TenantAdmin]);
        assert!(admin.grants(Scope::UsageWrite) && admin.covers(s));
        assert_eq!(s.to_claim(), "members.read audit.read");
        for sc in Scope::ALL {
            assert_eq!(Scope::parse(sc.as_str()), Ok(sc));
            assert_eq!(Scope::from_code(sc.code()), Some(sc));
        }
        assert_eq!(Scope::MetricsRead.code(), 12, "codes are the file format");
    }

    #[test]
    fn disk_format_codes_are_pinned() {
        let pinned = [
            (Role::SuperAdmin, 0u8),
            (Role::TechnicalAdmin, 1),
            (Role::BusinessAdmin, 2),
            (Role::Compliance, 3),
            (Role::Support, 4),
        ];
        for (r, code) in pinned {
            assert_eq!(crate::store::codec::encode(&r).unwrap(), [code], "{r:?}");
        }
        assert_eq!(pinned.len(), Role::ALL.len());
    }

    #[test]
    fn support_reads_but_cannot_export_or_write() {
        let s = who(Role::Support);
        assert!(authorize(Some(&s), "GET", "/api/tenants").is_ok());
        assert_eq!(
            authorize(Some(&s), "GET", "/api/tenants/export.csv")
                .unwrap_err()
                .code(),
            "forbidden"
        );
        assert_eq!(
            authorize(Some(&s), "POST", "/api/tenants")
                .unwrap_err()
                .code(),
            "forbidden"
        );
    }

    #[test]
    fn a_route_without_an_entry_is_refused_even_for_super_admin() {
        let err = authorize(Some(&who(Role::SuperAdmin)), "DELETE", "/api/everything").unwrap_err();
        assert_eq!(err.code(), "forbidden");
        let err = authorize(Some(&who(Role::SuperAdmin)), "DELETE", "/api/tenants").unwrap_err();
        assert_eq!(
            err.code(),
            "method_not_allowed",
            "a known path with an unlisted method runs nothing"
        );
        assert!(authorize(Some(&who(Role::Support)), "HEAD", "/api/tenants").is_ok());
    }

    #[test]
    fn missing_credentials_are_unauthorized_not_forbidden() {
        assert_eq!(
            authorize(None, "GET", "/api/tenants").unwrap_err().code(),
            "unauthorized"
        );
        assert!(authorize(None, "GET", "/healthz").is_ok());
    }

    #[test]
    fn the_matrix_gives_each_role_its_tasks() {
        use Permission::*;
        let check = |role, p, expected| assert_eq!(allows(role, p), expected, "{role:?} {p:?}");
        check(Role::Compliance, AuditVerify, true);
        check(Role::Compliance, AuditExport, true);
        check(Role::Compliance, TenantsLifecycle, false);
        check(Role::BusinessAdmin, TenantsLifecycle, true);
        check(Role::BusinessAdmin, PoolsWrite, false);
        check(Role::TechnicalAdmin, PoolsWrite, true);
        check(Role::TechnicalAdmin, JobsRun, true);
        check(Role::TechnicalAdmin, TenantsWrite, false);
        check(Role::SuperAdmin, OperatorsManage, true);
        check(Role::Support, Read, true);
        check(Role::Support, TenantsExport, false);
        check(Role::TechnicalAdmin, InstallsManage, true);
        check(Role::TechnicalAdmin, SyncManage, true);
        check(Role::Compliance, InstallsManage, false);
        check(Role::BusinessAdmin, InstallsManage, false);
        check(Role::Support, SyncManage, false);
    }
}
