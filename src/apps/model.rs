//! Apps, the parent product surface of tenants (PRODUCT.md A1, operator guide §1.1): the
//! domain type, its stored record, and the parsing of a new app.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::from_micros;
use crate::error::{Result, Validator};
use crate::rbac::{Scope, Scopes};
use crate::store::Table;
use crate::tenants::model::{parse_display_name, parse_slug};

/// Apps: `id -> AppRecord`.
pub const APPS: Table = Table::new("apps");
/// App slug reservations: `slug -> id`.
pub const APP_SLUGS: Table = Table::new("app_slugs");

/// Most roles in an app's catalogue.
pub const MAX_ROLE_TEMPLATES: usize = 32;

/// 409: an explicit slug is already an app's.
pub const SLUG_TAKEN: &str = "slug_taken";

/// An app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    /// UUIDv7.
    pub id: Uuid,
    /// Product name, e.g. `Projex Work`.
    pub name: String,
    /// Unique slug.
    pub slug: String,
    /// What the app is.
    pub description: Option<String>,
    /// The role templates a new tenant's roles are seeded from (F21.05.03).
    pub role_templates: Vec<RoleTemplate>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// The stored app. Its variant order is the file format: add new versions at the end.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum AppRecord {
    /// Version 1.
    V1 {
        /// Name.
        name: String,
        /// Slug.
        slug: String,
        /// Description.
        description: Option<String>,
        /// Microseconds.
        created_at: i64,
    },
    /// Version 2: with the role-template catalogue (issue 9). A version 1 app has the default
    /// catalogue.
    V2 {
        /// Name.
        name: String,
        /// Slug.
        slug: String,
        /// Description.
        description: Option<String>,
        /// Role templates.
        role_templates: Vec<RoleTemplate>,
        /// Microseconds.
        created_at: i64,
    },
}

impl App {
    /// The app of a stored record.
    pub fn from_record(id: Uuid, r: AppRecord) -> App {
        let (name, slug, description, role_templates, created_at) = match r {
            AppRecord::V1 {
                name,
                slug,
                description,
                created_at,
            } => (
                name,
                slug,
                description,
                default_role_templates(),
                created_at,
            ),
            AppRecord::V2 {
                name,
                slug,
                description,
                role_templates,
                created_at,
            } => (name, slug, description, role_templates, created_at),
        };
        App {
            id,
            name,
            slug,
            description,
            role_templates,
            created_at: from_micros(created_at),
        }
    }
}

/// A role template of an app's catalogue: what a new tenant's role is seeded with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleTemplate {
    /// `[a-z][a-z0-9_]{1,31}`.
    pub name: String,
    /// Scope codes ([`Scope::code`]).
    pub scopes: Vec<u8>,
}

impl RoleTemplate {
    /// A template of `name` granting `scopes`.
    pub fn new(name: &str, scopes: &[Scope]) -> RoleTemplate {
        RoleTemplate {
            name: name.to_string(),
            scopes: scopes.iter().map(|s| s.code()).collect(),
        }
    }

    /// Its scopes.
    pub fn scopes(&self) -> Scopes {
        Scopes::of(self.scopes.iter().filter_map(|c| Scope::from_code(*c)))
    }
}

/// The role-template catalogue an app gets unless it names its own (issue 9: `tenant_admin`,
/// `billing_admin`, `member`, `auditor`, `integration`).
pub fn default_role_templates() -> Vec<RoleTemplate> {
    use Scope::*;
    vec![
        RoleTemplate::new("tenant_admin", &[TenantAdmin]),
        RoleTemplate::new(
            "billing_admin",
            &[BillingRead, MembersRead, AuditRead, MetricsRead],
        ),
        RoleTemplate::new("member", &[MembersRead]),
        RoleTemplate::new(
            "auditor",
            &[
                AuditRead,
                MembersRead,
                ApiKeysRead,
                BillingRead,
                MetricsRead,
                WebhooksRead,
                ApprovalsRead,
            ],
        ),
        RoleTemplate::new("integration", &[UsageWrite, MetricsRead]),
    ]
}

/// Parses a role name: 2–32 characters of `a-z 0-9 _`, starting with a letter.
pub fn parse_role_name(s: &str) -> Result<String, String> {
    let t = s.trim();
    let ok = (2..=32).contains(&t.len())
        && t.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(t.to_string())
    } else {
        Err(format!(
            "role '{t}' is invalid: use 2-32 characters of a-z, 0-9 and '_', starting with a letter"
        ))
    }
}

/// A new app as asked for, unchecked (from the API, the console form or the demo).
#[derive(Clone, Debug, Default)]
pub struct AppDraft {
    /// Product name, 1–120 characters.
    pub name: String,
    /// Slug; derived from the name when absent.
    pub slug: Option<String>,
    /// Up to 1000 characters.
    pub description: Option<String>,
    /// `(role name, dotted scope names)`; the default catalogue when absent.
    pub role_templates: Option<Vec<(String, Vec<String>)>>,
}

/// A checked [`AppDraft`].
#[derive(Clone, Debug)]
pub struct AppInput {
    pub(super) name: String,
    pub(super) slug: Option<String>,
    pub(super) description: Option<String>,
    pub(super) role_templates: Vec<RoleTemplate>,
}

/// Checks a role-template catalogue: 1–32 roles with distinct valid names, each granting at
/// least one known scope, one of them granting `tenant.admin` (a tenant must be able to manage
/// itself).
pub fn parse_role_templates(
    list: &[(String, Vec<String>)],
) -> std::result::Result<Vec<RoleTemplate>, String> {
    if list.is_empty() || list.len() > MAX_ROLE_TEMPLATES {
        return Err(format!("give 1-{MAX_ROLE_TEMPLATES} role templates"));
    }
    let mut out: Vec<RoleTemplate> = Vec::new();
    for (name, scopes) in list {
        let name = parse_role_name(name)?;
        if out.iter().any(|t| t.name == name) {
            return Err(format!("role '{name}' is listed twice"));
        }
        let parsed: Vec<Scope> = scopes
            .iter()
            .map(|s| Scope::parse(s.trim()))
            .collect::<std::result::Result<_, _>>()?;
        if parsed.is_empty() {
            return Err(format!("role '{name}' grants no scope"));
        }
        out.push(RoleTemplate::new(&name, &parsed));
    }
    if !out.iter().any(|t| t.scopes().grants(Scope::TenantAdmin)) {
        return Err("one role must grant tenant.admin, so that a tenant can manage itself".into());
    }
    Ok(out)
}

impl AppDraft {
    /// Checks every field at once.
    ///
    /// Errors: 422 `validation_failed` listing each bad field.
    pub fn parse(self) -> Result<AppInput> {
        let mut v = Validator::new();
        let name = v.take(
            "name",
            parse_display_name(&self.name).map_err(|m| m.replace("display_name", "name")),
        );
        let slug = match self
            .slug
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(s) => v.take("slug", parse_slug(s)).map(Some),
            None => Some(None),
        };
        let description = self
            .description
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty());
        if description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 1000)
        {
            v.add("description", "description is longer than 1000 characters");
        }
        let role_templates = match &self.role_templates {
            Some(list) => v.take("role_templates", parse_role_templates(list)),
            None => Some(default_role_templates()),
        };
        v.finish()?;
        Ok(AppInput {
            name: name.unwrap_or_default(),
            slug: slug.flatten(),
            description,
            role_templates: role_templates.unwrap_or_default(),
        })
    }
}
