//! A tenant's members (tenant admin guide §2; PRODUCT.md D16): personas (`human`, invited by
//! email, or `service`), the roles they hold (seeded from the app's role templates when the
//! tenant is provisioned, F21.05.03 `seed_system_roles`), business units (a tree), invites, and
//! Tenant-console sessions. Domain types, their parsing, stored records and tables.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::{from_micros, to_micros};
use crate::rbac::{Scope, Scopes};
use crate::store::Table;
use crate::store::keys::Key;

/// Personas: `(tenant, persona) -> PersonaRecord`.
pub const PERSONAS: Table = Table::new("personas");
/// Email reservations within a tenant: `(tenant, lowercased email) -> persona id`.
pub const PERSONA_EMAILS: Table = Table::new("persona_emails");
/// A tenant's roles: `(tenant, role name) -> RoleRecord`.
pub const ROLES: Table = Table::new("tenant_roles");
/// Business units: `(tenant, business unit) -> BusinessUnitRecord`.
pub const BUSINESS_UNITS: Table = Table::new("business_units");
/// Pending invites: `sha256(invite token) -> InviteRecord`.
pub const INVITES: Table = Table::new("persona_invites");
/// The pending invite of a persona: `(tenant, persona) -> sha256(invite token)`.
pub const INVITES_BY_PERSONA: Table = Table::new("persona_invites_by_persona");
/// Tenant-console sessions: `sha256(cookie) -> TenantSessionRecord`.
pub const SESSIONS: Table = Table::new("tenant_sessions");
/// Sessions of a persona: `(tenant, persona, session key) -> ()`, so a revoke ends them all.
pub const SESSIONS_BY_PERSONA: Table = Table::new("tenant_sessions_by_persona");
/// Maintained counters per tenant: `(tenant, name) -> u64` (members, invited, revoked,
/// business units; API keys add theirs), for the tenant's home and the operator's detail.
pub const COUNTS: Table = Table::new("identity_counts");

/// How long an invite link works (issue 9: "expires after 7 days").
pub const INVITE_DAYS: i64 = 7;
/// Most roles a persona holds.
pub const MAX_ROLES: usize = 16;
/// Most roles in an app's catalogue.
pub const MAX_ROLE_TEMPLATES: usize = 32;

/// 409: another persona of the tenant has this email.
pub const EMAIL_TAKEN: &str = "email_taken";
/// 409: a business unit with children or members cannot be deleted.
pub const BUSINESS_UNIT_IN_USE: &str = "business_unit_in_use";
/// 409: the persona is revoked.
pub const PERSONA_REVOKED: &str = "persona_revoked";
/// 409: only an invited persona gets a new invite link.
pub const PERSONA_NOT_INVITED: &str = "persona_not_invited";
/// 409: the tenant has [`MAX_PERSONAS`] personas.
pub const PERSONA_LIMIT: &str = "persona_limit";
/// Most personas a tenant holds, revoked ones included.
pub const MAX_PERSONAS: u64 = 100_000;
/// 409: the tenant has [`MAX_BUSINESS_UNITS`] business units.
pub const BUSINESS_UNIT_LIMIT: &str = "business_unit_limit";
/// Most business units a tenant has (the tree is read whole).
pub const MAX_BUSINESS_UNITS: u64 = 2_000;
/// 410: the invite link is unknown, used or expired.
pub const INVITE_INVALID: &str = "invite_invalid";

/// The key of a tenant's row `id` in a per-tenant table.
pub fn tenant_key(tenant: &Uuid, id: &Uuid) -> Vec<u8> {
    Key::new().uuid(tenant).uuid(id).into_bytes()
}

/// The key of a tenant's named row (a role, an email, a counter).
pub fn tenant_name_key(tenant: &Uuid, name: &str) -> Vec<u8> {
    Key::new().uuid(tenant).str(name).into_bytes()
}

/// A persona's kind.
///
/// REMEMBER: the variant order is the file format (stored in persona records): never reorder;
/// add at the end (`disk_format_codes_are_pinned` checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum PersonaKind {
    /// A person, invited by email; signs in to the Tenant console with a password.
    Human = 0,
    /// A machine identity; works through API keys.
    Service = 1,
}

impl PersonaKind {
    /// Both kinds.
    pub const ALL: [PersonaKind; 2] = [PersonaKind::Human, PersonaKind::Service];
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            PersonaKind::Human => "human",
            PersonaKind::Service => "service",
        }
    }
    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Result<PersonaKind, String> {
        PersonaKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("kind '{s}' is invalid: use human or service"))
    }
}

/// A persona's state.
///
/// REMEMBER: the variant order is the file format (stored in persona records): never reorder;
/// add at the end (`disk_format_codes_are_pinned` checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum PersonaState {
    /// A human who has not accepted the invite yet.
    Invited = 0,
    /// In use.
    Active = 1,
    /// Revoked: every session, key and token of it stops working.
    Revoked = 2,
}

impl PersonaState {
    /// Every state.
    pub const ALL: [PersonaState; 3] = [
        PersonaState::Invited,
        PersonaState::Active,
        PersonaState::Revoked,
    ];
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            PersonaState::Invited => "invited",
            PersonaState::Active => "active",
            PersonaState::Revoked => "revoked",
        }
    }
    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Result<PersonaState, String> {
        PersonaState::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("state '{s}' is invalid: use invited, active or revoked"))
    }
}

/// A persona of one tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Persona {
    /// UUIDv7.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// `human` or `service`.
    pub kind: PersonaKind,
    /// What others see.
    pub display_name: String,
    /// A human's email (lowercased); none for a service persona.
    pub email: Option<String>,
    /// The roles it holds (names of the tenant's roles).
    pub roles: Vec<String>,
    /// Its business unit, if any.
    pub bu_id: Option<Uuid>,
    /// `invited`, `active` or `revoked`.
    pub state: PersonaState,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Last sign-in to the Tenant console.
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

/// The stored persona: versioned. Add a version at the end; never reorder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PersonaRecord {
    /// Version 1.
    V1(PersonaV1),
}

/// Version 1 of the stored persona; instants in microseconds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct PersonaV1 {
    pub kind: PersonaKind,
    pub display_name: String,
    pub email: Option<String>,
    pub roles: Vec<String>,
    pub bu_id: Option<[u8; 16]>,
    pub state: PersonaState,
    /// Argon2id PHC string, once a human has set a password.
    pub password_hash: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_sign_in_at: Option<i64>,
}

impl PersonaV1 {
    /// The domain view of this record.
    pub fn view(&self, tenant_id: Uuid, id: Uuid) -> Persona {
        Persona {
            id,
            tenant_id,
            kind: self.kind,
            display_name: self.display_name.clone(),
            email: self.email.clone(),
            roles: self.roles.clone(),
            bu_id: self.bu_id.map(Uuid::from_bytes),
            state: self.state,
            created_at: from_micros(self.created_at),
            updated_at: from_micros(self.updated_at),
            last_sign_in_at: self.last_sign_in_at.map(from_micros),
        }
    }
}

/// A role of a tenant: a name with its scopes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    /// `tenant_admin`, `billing_admin`...
    pub name: String,
    /// What it grants.
    pub scopes: Scopes,
    /// Seeded from the app's templates at provisioning.
    pub system: bool,
}

pub use crate::apps::model::{RoleTemplate, default_role_templates, parse_role_name};

/// The stored role: versioned. Scopes are stored by [`Scope::code`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RoleRecord {
    /// Version 1.
    V1 {
        /// Scope codes.
        scopes: Vec<u8>,
        /// Seeded from the app's templates.
        system: bool,
    },
}

impl RoleRecord {
    /// The role named `name` of this record.
    pub fn view(&self, name: String) -> Role {
        let RoleRecord::V1 { scopes, system } = self;
        Role {
            name,
            scopes: Scopes::of(scopes.iter().filter_map(|c| Scope::from_code(*c))),
            system: *system,
        }
    }
}

/// Parses a list of dotted scope names.
pub fn parse_scopes(names: &[String]) -> Result<Scopes, String> {
    names
        .iter()
        .map(|n| Scope::parse(n.trim()))
        .collect::<Result<Vec<_>, _>>()
        .map(Scopes::of)
}

/// A business unit: a node of the tenant's tree (cost center, region, team...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BusinessUnit {
    /// UUIDv7.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// 1–120 characters.
    pub name: String,
    /// `cost_center`, `region`, `team`, or free text.
    pub kind: String,
    /// The parent unit; none at the top.
    pub parent_id: Option<Uuid>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// The stored business unit.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum BusinessUnitRecord {
    /// Version 1.
    V1 {
        /// Name.
        name: String,
        /// Kind.
        kind: String,
        /// Parent.
        parent_id: Option<[u8; 16]>,
        /// Microseconds.
        created_at: i64,
    },
}

impl BusinessUnitRecord {
    /// The domain view.
    pub fn view(&self, tenant_id: Uuid, id: Uuid) -> BusinessUnit {
        let BusinessUnitRecord::V1 {
            name,
            kind,
            parent_id,
            created_at,
        } = self;
        BusinessUnit {
            id,
            tenant_id,
            name: name.clone(),
            kind: kind.clone(),
            parent_id: parent_id.map(Uuid::from_bytes),
            created_at: from_micros(*created_at),
        }
    }
}

/// Parses a business unit's kind: `cost_center`, `region`, `team`, or 1–40 characters of free
/// text.
pub fn parse_bu_kind(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > 40 || t.chars().any(char::is_control) {
        return Err("kind: use cost_center, region, team, or up to 40 characters".into());
    }
    Ok(t.to_string())
}

/// A pending invite.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum InviteRecord {
    /// Version 1.
    V1 {
        /// The tenant.
        tenant_id: [u8; 16],
        /// The invited persona.
        persona_id: [u8; 16],
        /// Microseconds.
        created_at: i64,
        /// Microseconds; the link fails after this.
        expires_at: i64,
    },
}

/// A Tenant-console session as stored (keyed by the SHA-256 of the cookie).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum TenantSessionRecord {
    /// Version 1.
    V1 {
        /// The tenant.
        tenant_id: [u8; 16],
        /// The persona.
        persona_id: [u8; 16],
        /// CSRF token of its forms.
        csrf: [u8; 32],
        /// Microseconds.
        created_at: i64,
        /// Microseconds.
        last_seen: i64,
    },
}

/// A live Tenant-console session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantSession {
    /// SHA-256 of the cookie.
    pub key: [u8; 32],
    /// The tenant.
    pub tenant_id: Uuid,
    /// The persona.
    pub persona_id: Uuid,
    /// CSRF token (base64url).
    pub csrf: String,
    /// Sign-in time.
    pub created_at: DateTime<Utc>,
    /// Last request.
    pub last_seen: DateTime<Utc>,
}

/// The counters kept per tenant ([`COUNTS`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MemberCounts {
    /// Personas that are not revoked.
    pub members: u64,
    /// Humans invited who have not accepted yet.
    pub invited: u64,
    /// Revoked personas.
    pub revoked: u64,
    /// Business units.
    pub business_units: u64,
}

/// Names of the counters in [`COUNTS`].
pub mod counter {
    /// Personas that are not revoked.
    pub const MEMBERS: &str = "members";
    /// Humans invited who have not accepted yet.
    pub const INVITED: &str = "invited";
    /// Revoked personas.
    pub const REVOKED: &str = "revoked";
    /// Business units.
    pub const BUSINESS_UNITS: &str = "business_units";
}

/// Microseconds of `t` (the stored form of instants).
pub fn micros(t: DateTime<Utc>) -> i64 {
    to_micros(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::codec::encode;

    #[test]
    fn disk_format_codes_are_pinned() {
        for (k, code) in [(PersonaKind::Human, 0u8), (PersonaKind::Service, 1)] {
            assert_eq!(encode(&k).unwrap(), [code], "{k:?}");
        }
        for (s, code) in [
            (PersonaState::Invited, 0u8),
            (PersonaState::Active, 1),
            (PersonaState::Revoked, 2),
        ] {
            assert_eq!(encode(&s).unwrap(), [code], "{s:?}");
        }
    }

    #[test]
    fn the_default_catalogue_has_an_admin_role_and_valid_names() {
        let t = default_role_templates();
        assert!(t.iter().any(|r| r.scopes().grants(Scope::TenantAdmin)));
        for r in &t {
            assert_eq!(parse_role_name(&r.name).as_deref(), Ok(r.name.as_str()));
        }
        assert!(parse_role_name("Admin").is_err());
        assert!(parse_role_name("x").is_err());
    }
}
