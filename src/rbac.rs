//! Roles, permissions, and the one permission check every route goes through.
//!
//! [`ROUTES`] maps each `(method, path template)` to the [`Access`] it needs; [`authorize`] is the
//! only function that decides, and `http/` calls it from one middleware for every request. A
//! route missing from the table is refused (deny by default), and a test compares the table with
//! the OpenAPI document so a new route cannot ship without an entry.
//!
//! The roles are the HQ PRD's (§2); the matrix is [`allows`], and ARCHITECTURE.md shows it as a
//! table.

use serde::{Deserialize, Serialize};

use crate::actor::Actor;
use crate::error::Error;

/// An operator role (HQ PRD §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including operators.
    SuperAdmin,
    /// Infrastructure: pools and jobs.
    TechnicalAdmin,
    /// Apps, tenants and their lifecycle.
    BusinessAdmin,
    /// Reads everything; verifies, checkpoints and exports the audit ledger.
    Compliance,
    /// Read-only, no exports.
    Support,
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
}

/// Is `role` allowed `p`? The permission matrix, written once.
pub fn allows(role: Role, p: Permission) -> bool {
    use Permission::*;
    match role {
        Role::SuperAdmin => true,
        Role::TechnicalAdmin => matches!(
            p,
            Read | PoolsWrite | JobsRun | TenantsExport | InstallsManage | SyncManage
        ),
        Role::BusinessAdmin => matches!(
            p,
            Read | AppsWrite | TenantsWrite | TenantsLifecycle | TenantsExport
        ),
        Role::Compliance => matches!(p, Read | AuditVerify | AuditExport | TenantsExport),
        Role::Support => matches!(p, Read),
    }
}

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No credentials (health, readiness, the OpenAPI document).
    Public,
    /// An authenticated principal whose role allows the permission.
    Requires(Permission),
}

/// Every API route: `(method, path template, access)`. Deny by default: a request whose route is
/// not here is refused.
pub const ROUTES: &[(&str, &str, Access)] = {
    use Access::*;
    use Permission::*;
    &[
        ("GET", "/healthz", Public),
        ("GET", "/readyz", Public),
        ("GET", "/api/openapi.json", Public),
        ("GET", "/api/whoami", Requires(Read)),
        ("POST", "/api/apps", Requires(AppsWrite)),
        ("GET", "/api/apps", Requires(Read)),
        ("GET", "/api/apps/{id}", Requires(Read)),
        ("POST", "/api/tenants", Requires(TenantsWrite)),
        ("GET", "/api/tenants", Requires(Read)),
        ("GET", "/api/tenants/export.csv", Requires(TenantsExport)),
        ("GET", "/api/tenants/{id}", Requires(Read)),
        ("PATCH", "/api/tenants/{id}", Requires(TenantsWrite)),
        ("GET", "/api/tenants/summary", Requires(Read)),
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
        ("GET", "/api/pools", Requires(Read)),
        ("GET", "/api/pools/{id}", Requires(Read)),
        ("POST", "/api/pools/{id}/status", Requires(PoolsWrite)),
        ("GET", "/api/routes/{tenant_id}", Requires(Read)),
        ("GET", "/api/audit", Requires(Read)),
        ("POST", "/api/audit/verify", Requires(AuditVerify)),
        ("POST", "/api/audit/checkpoints", Requires(AuditVerify)),
        ("GET", "/api/audit/checkpoints", Requires(Read)),
        ("GET", "/api/audit/export", Requires(AuditExport)),
        ("GET", "/api/audit/public-key", Requires(Read)),
        ("GET", "/api/jobs", Requires(Read)),
        ("GET", "/api/jobs/{name}/runs", Requires(Read)),
        ("POST", "/api/jobs/{name}/run", Requires(JobsRun)),
        ("GET", "/api/operators", Requires(OperatorsManage)),
        ("POST", "/api/operators", Requires(OperatorsManage)),
        ("GET", "/api/operators/{id}", Requires(OperatorsManage)),
        (
            "POST",
            "/api/operators/{id}/role",
            Requires(OperatorsManage),
        ),
        (
            "POST",
            "/api/operators/{id}/disable",
            Requires(OperatorsManage),
        ),
        (
            "POST",
            "/api/operators/{id}/enable",
            Requires(OperatorsManage),
        ),
        (
            "GET",
            "/api/operators/{id}/tokens",
            Requires(OperatorsManage),
        ),
        (
            "POST",
            "/api/operators/{id}/tokens",
            Requires(OperatorsManage),
        ),
        (
            "POST",
            "/api/operators/{id}/tokens/{token_id}/revoke",
            Requires(OperatorsManage),
        ),
        // The console (HTML). Unauthenticated requests are redirected to /signin.
        ("GET", "/", Public),
        ("GET", "/signin", Public),
        ("POST", "/signin", Public),
        ("POST", "/signout", Requires(Read)),
        ("GET", "/assets/{*path}", Public),
        ("GET", "/platform", Requires(Read)),
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
        ("GET", "/platform/apps", Requires(Read)),
        ("POST", "/platform/apps", Requires(AppsWrite)),
        ("GET", "/platform/pools", Requires(Read)),
        ("POST", "/platform/pools/{id}/status", Requires(PoolsWrite)),
        ("GET", "/platform/audit", Requires(Read)),
        ("POST", "/platform/audit/verify", Requires(AuditVerify)),
        ("POST", "/platform/audit/checkpoint", Requires(AuditVerify)),
        ("GET", "/platform/jobs", Requires(Read)),
        ("POST", "/platform/jobs/{name}/run", Requires(JobsRun)),
        ("GET", "/platform/operators", Requires(OperatorsManage)),
        ("POST", "/platform/operators", Requires(OperatorsManage)),
        (
            "POST",
            "/platform/operators/{id}/role",
            Requires(OperatorsManage),
        ),
        (
            "POST",
            "/platform/operators/{id}/disable",
            Requires(OperatorsManage),
        ),
        (
            "POST",
            "/platform/operators/{id}/enable",
            Requires(OperatorsManage),
        ),
        (
            "POST",
            "/platform/operators/{id}/tokens",
            Requires(OperatorsManage),
        ),
        (
            "POST",
            "/platform/operators/{id}/tokens/{token_id}/revoke",
            Requires(OperatorsManage),
        ),
        ("GET", "/platform/installs", Requires(Read)),
        ("POST", "/platform/installs", Requires(InstallsManage)),
        (
            "POST",
            "/platform/installs/bundles",
            Requires(InstallsManage),
        ),
        ("GET", "/platform/installs/{id}", Requires(Read)),
        (
            "GET",
            "/platform/installs/{id}/license.json",
            Requires(Read),
        ),
        (
            "POST",
            "/platform/installs/{id}/licenses",
            Requires(InstallsManage),
        ),
        ("GET", "/platform/sync", Requires(Read)),
        ("POST", "/platform/sync/flush", Requires(SyncManage)),
        ("POST", "/platform/sync/ack", Requires(SyncManage)),
        ("GET", "/platform/sync/bundle", Requires(SyncManage)),
        ("GET", "/platform/license", Requires(Read)),
        ("GET", "/platform/account", Requires(Read)),
        ("POST", "/platform/account/password", Requires(Read)),
        // On-prem (HEARTBEATS.md); routes of the other role answer 404.
        ("POST", "/api/installs", Requires(InstallsManage)),
        ("GET", "/api/installs", Requires(Read)),
        ("GET", "/api/installs/{id}", Requires(Read)),
        (
            "POST",
            "/api/installs/{id}/licenses",
            Requires(InstallsManage),
        ),
        ("GET", "/api/installs/{id}/heartbeats", Requires(Read)),
        // Authenticated by the install's Ed25519 signature, not by a token.
        ("POST", "/api/installs/{id}/heartbeats", Public),
        ("GET", "/api/installs/{id}/audit-heads", Requires(Read)),
        (
            "POST",
            "/api/installs/heartbeat-bundles",
            Requires(InstallsManage),
        ),
        // A public key, which appliances are configured with.
        ("GET", "/api/license/public-key", Public),
        ("GET", "/api/license", Requires(Read)),
        ("GET", "/api/sync", Requires(Read)),
        ("POST", "/api/sync/flush", Requires(SyncManage)),
        ("POST", "/api/sync/ack", Requires(SyncManage)),
    ]
};

/// Is `path` a console (HTML) route? Its refusals are pages and redirects, not problems.
pub fn is_console(path: &str) -> bool {
    path == "/"
        || path.starts_with("/platform")
        || path.starts_with("/signin")
        || path == "/signout"
        || path.starts_with("/assets/")
}

/// The access rule of a route, if it has one. `HEAD` has the rule of `GET`.
pub fn access_for(method: &str, path: &str) -> Option<Access> {
    let method = if method == "HEAD" { "GET" } else { method };
    ROUTES
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, a)| *a)
}

/// Does any method of `path` have an entry? (A known path with an unlisted method is a 405.)
pub fn path_is_known(path: &str) -> bool {
    ROUTES.iter().any(|(_, p, _)| *p == path)
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The actor its changes are attributed to (an operator's username, or `admin-ops-token`).
    pub actor: Actor,
    /// Its role.
    pub role: Role,
    /// A name for logs and the console.
    pub display_name: String,
    /// The operator account, when the caller is one (not the bootstrap token).
    pub operator_id: Option<uuid::Uuid>,
    /// The console session the request rides on, if any (its CSRF token guards forms).
    pub session: Option<crate::operators::model::Session>,
}

impl Principal {
    /// May this caller do `p`?
    pub fn can(&self, p: Permission) -> bool {
        allows(self.role, p)
    }
}

/// The one permission check: may `principal` call `method path` (a route template)?
///
/// Errors: 401 `unauthorized` when credentials are needed and missing or invalid; 403
/// `forbidden` when the role lacks the permission, or when the route has no entry in
/// [`ROUTES`] (deny by default; logged as a bug).
pub fn authorize(principal: Option<&Principal>, method: &str, path: &str) -> Result<(), Error> {
    match access_for(method, path) {
        Some(Access::Public) => Ok(()),
        Some(Access::Requires(p)) => {
            let principal = principal.ok_or_else(|| {
                Error::Unauthorized(
                    "this route needs credentials: send 'Authorization: Bearer <token>' (the admin_ops_token or an operator token)".into(),
                )
            })?;
            if allows(principal.role, p) {
                Ok(())
            } else {
                Err(Error::Forbidden(format!(
                    "your role '{}' may not {method} {path}",
                    principal.role.as_str()
                )))
            }
        }
        None if path_is_known(path) => Err(Error::MethodNotAllowed(format!(
            "{method} is not allowed on {path}"
        ))),
        None => {
            tracing::error!(
                method,
                path,
                "route has no permission entry in rbac::ROUTES; refusing"
            );
            Err(Error::Forbidden(format!(
                "{method} {path} is not open to any role"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(role: Role) -> Principal {
        Principal {
            actor: Actor::operator("t"),
            role,
            display_name: "t".into(),
            operator_id: None,
            session: None,
        }
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
