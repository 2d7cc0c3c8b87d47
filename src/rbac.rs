//! Roles, permissions, and the one permission check every route goes through.
//!
//! Each context declares the [`Access`] every `(method, path template)` of it needs (its
//! descriptor's `routes`); the composition root merges them into one [`RouteTable`], whose
//! [`RouteTable::authorize`] is the only function that decides, and `http/` calls it from one
//! middleware for every request. A route missing from the table is refused (deny by default), a
//! test compares the table with the OpenAPI document so a new route cannot ship without an
//! entry, and a snapshot test keeps the merged table readable as one list for security review.
//!
//! The roles are the HQ PRD's (§2); the matrix is [`allows`], and ARCHITECTURE.md shows it as a
//! table.

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
}

impl Permission {
    /// Every permission (the route-table snapshot lists who holds each).
    pub const ALL: [Permission; 12] = {
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

    /// The one permission check: may `principal` call `method path` (a route template)?
    ///
    /// Errors: [`Refusal::Unauthorized`] when credentials are needed and missing;
    /// [`Refusal::Forbidden`] when the role lacks the permission, or when the route has no entry
    /// (deny by default; logged as a bug); [`Refusal::MethodNotAllowed`] for a known path with
    /// an unlisted method.
    pub fn authorize(
        &self,
        principal: Option<&Principal>,
        method: &str,
        path: &str,
    ) -> Result<(), Refusal> {
        match self.access_for(method, path) {
            Some(Access::Public) => Ok(()),
            Some(Access::Requires(p)) => {
                let principal = principal.ok_or_else(|| {
                    Refusal::Unauthorized(
                        "this route needs credentials: send 'Authorization: Bearer <token>' (the admin_ops_token or an operator token)".into(),
                    )
                })?;
                if allows(principal.role, p) {
                    Ok(())
                } else {
                    Err(Refusal::Forbidden(format!(
                        "your role '{}' may not {method} {path}",
                        principal.role.as_str()
                    )))
                }
            }
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
}

impl Refusal {
    /// The stable code (`unauthorized`, `forbidden`, `method_not_allowed`).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Unauthorized(_) => "unauthorized",
            Refusal::Forbidden(_) => "forbidden",
            Refusal::MethodNotAllowed(_) => "method_not_allowed",
        }
    }
}

/// Is `path` a console (HTML) route? Its refusals are pages and redirects, not problems.
pub fn is_console(path: &str) -> bool {
    path == "/"
        || path.starts_with("/platform")
        || path.starts_with("/signin")
        || path == "/signout"
        || path.starts_with("/assets/")
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
    pub session: Option<SessionRef>,
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
    /// May this caller do `p`?
    pub fn can(&self, p: Permission) -> bool {
        allows(self.role, p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authorize(p: Option<&Principal>, method: &str, path: &str) -> Result<(), Refusal> {
        use Access::*;
        use Permission::*;
        RouteTable::new(&[
            ("GET", "/healthz", Public),
            ("GET", "/api/tenants", Requires(Read)),
            ("POST", "/api/tenants", Requires(TenantsWrite)),
            ("GET", "/api/tenants/export.csv", Requires(TenantsExport)),
        ])
        .authorize(p, method, path)
    }

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
