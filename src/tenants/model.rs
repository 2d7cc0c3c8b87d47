//! Tenant domain types, their parsing from wire input, and their stored record.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::{from_micros, to_micros};
use crate::config::Config;

/// 409: an explicit slug is already another tenant's.
pub const SLUG_TAKEN: &str = "slug_taken";

/// Isolation tier (PRODUCT.md A2, operator guide §1.1).
///
/// REMEMBER: these numbers are the file format. A tenant record stores the tier by its variant
/// position and the directory's index keys by [`Tier::code`]: never reorder or renumber a
/// variant; add new ones at the end (`disk_format_codes_are_pinned` checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum Tier {
    /// Shared admin and app pools (the default).
    S = 0,
    /// Premium: a dedicated app pool.
    P = 1,
    /// Sovereign: dedicated admin and app pools, in a sovereign region.
    G = 2,
}

impl Tier {
    /// All tiers.
    pub const ALL: [Tier; 3] = [Tier::S, Tier::P, Tier::G];
    /// `"S"`, `"P"` or `"G"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::S => "S",
            Tier::P => "P",
            Tier::G => "G",
        }
    }
    /// Parses `S`, `P` or `G`.
    pub fn parse(s: &str) -> Result<Tier, String> {
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "isolation tier '{s}' is invalid: use S (shared), P (premium) or G (sovereign)"
                )
            })
    }
    /// The byte in index keys (the file format; see the type's note).
    pub(crate) fn code(self) -> u8 {
        self as u8
    }
}

/// Lifecycle state (PRODUCT.md A3).
///
/// REMEMBER: these numbers are the file format. A tenant record stores the state by its
/// variant position and the directory's index keys by [`State::code`] (the status sort follows
/// them): never reorder or renumber a variant; add new ones at the end
/// (`disk_format_codes_are_pinned` checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum State {
    /// Created, not yet in use.
    Provisioned = 0,
    /// In a trial with an end date.
    Trial = 1,
    /// Paying and in use.
    Active = 2,
    /// Blocked (non-payment, abuse, breach hold, trial expired).
    Suspended = 3,
    /// Leaving: read-only until `deadline_at`, then shredded; can be cancelled.
    Offboarding = 4,
    /// Shredded; only the ledger remains.
    Offboarded = 5,
}

impl State {
    /// All states in lifecycle order.
    pub const ALL: [State; 6] = [
        State::Provisioned,
        State::Trial,
        State::Active,
        State::Suspended,
        State::Offboarding,
        State::Offboarded,
    ];
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Provisioned => "provisioned",
            State::Trial => "trial",
            State::Active => "active",
            State::Suspended => "suspended",
            State::Offboarding => "offboarding",
            State::Offboarded => "offboarded",
        }
    }
    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Result<State, String> {
        State::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("status '{s}' is invalid: use provisioned, trial, active, suspended, offboarding or offboarded"))
    }
    /// The byte in index keys (the file format; see the type's note).
    pub(crate) fn code(self) -> u8 {
        self as u8
    }
    /// Offboarding and offboarded tenants refuse writes (PRODUCT.md A3).
    pub fn is_read_only(self) -> bool {
        matches!(self, State::Offboarding | State::Offboarded)
    }
}

/// A lifecycle action; its name is the path segment of its route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// `provisioned -> trial`.
    StartTrial,
    /// `provisioned | trial -> active`.
    Activate,
    /// `trial | active -> suspended`, with a reason.
    Suspend,
    /// `suspended -> active`.
    Reinstate,
    /// `trial | active | suspended -> offboarding`, with a grace clock.
    Offboard,
    /// `offboarding -> the state it came from`.
    CancelOffboarding,
}

impl Action {
    /// All actions.
    pub const ALL: [Action; 6] = [
        Action::StartTrial,
        Action::Activate,
        Action::Suspend,
        Action::Reinstate,
        Action::Offboard,
        Action::CancelOffboarding,
    ];
    /// The path segment, e.g. `cancel-offboarding`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::StartTrial => "start-trial",
            Action::Activate => "activate",
            Action::Suspend => "suspend",
            Action::Reinstate => "reinstate",
            Action::Offboard => "offboard",
            Action::CancelOffboarding => "cancel-offboarding",
        }
    }
    /// The state this action leads to from `from`, or `None` when it is not allowed
    /// (PRODUCT.md A3; operator guide §1.2: reinstate only from `suspended`).
    pub fn target(self, from: State, offboarding_from: Option<State>) -> Option<State> {
        use State::*;
        match (self, from) {
            (Action::StartTrial, Provisioned) => Some(Trial),
            (Action::Activate, Provisioned | Trial) => Some(Active),
            (Action::Suspend, Trial | Active) => Some(Suspended),
            (Action::Reinstate, Suspended) => Some(Active),
            (Action::Offboard, Trial | Active | Suspended) => Some(Offboarding),
            (Action::CancelOffboarding, Offboarding) => Some(offboarding_from.unwrap_or(Suspended)),
            _ => None,
        }
    }
    /// The event this action writes.
    pub fn event(self) -> &'static str {
        match self {
            Action::StartTrial => "tenant.trial.started.v1",
            Action::Activate => "tenant.activated.v1",
            Action::Suspend => "tenant.suspended.v1",
            Action::Reinstate => "tenant.reinstated.v1",
            Action::Offboard => "tenant.offboarding.started.v1",
            Action::CancelOffboarding => "tenant.offboarding.cancelled.v1",
        }
    }
}

/// The actions allowed from `state`: exactly those that would succeed (given valid input).
pub fn allowed_actions(state: State, offboarding_from: Option<State>) -> Vec<Action> {
    Action::ALL
        .into_iter()
        .filter(|a| a.target(state, offboarding_from).is_some())
        .collect()
}

/// Pools a tenant is assigned to (PRODUCT.md B8). Stored inside the tenant record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolAssignment {
    /// Admin pool id, e.g. `admin-2` (dedicated for `G`).
    pub admin: String,
    /// App pools.
    pub app: AppPools,
}

/// App pools of a tenant.
///
/// REMEMBER: the variant order is the file format (stored inside the tenant record): never
/// reorder a variant; add new ones at the end (`disk_format_codes_are_pinned` checks).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppPools {
    /// Shared pools, one per module: `[(module, pool id)]`.
    Shared(Vec<(String, String)>),
    /// One dedicated pool serving every module (`P` and `G`).
    Dedicated(String),
}

impl PoolAssignment {
    /// Every pool id in the assignment.
    pub fn pool_ids(&self) -> Vec<String> {
        let mut ids = vec![self.admin.clone()];
        match &self.app {
            AppPools::Shared(m) => ids.extend(m.iter().map(|(_, p)| p.clone())),
            AppPools::Dedicated(p) => ids.push(p.clone()),
        }
        ids
    }
}

/// A tenant, as services see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    /// UUIDv7; sorts by creation time.
    pub id: Uuid,
    /// The parent app.
    pub app_id: Uuid,
    /// What the customer sees.
    pub display_name: String,
    /// Unique, `a-z0-9-`, 1–63 characters.
    pub slug: String,
    /// Region code.
    pub region: String,
    /// `S`, `P` or `G`.
    pub isolation_tier: Tier,
    /// Vanity hostname.
    pub brand_domain: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    /// Primary contact email.
    pub contact_email: Option<String>,
    /// Plan name.
    pub plan: Option<String>,
    /// Trial length in days, used by start-trial.
    pub trial_days: Option<u32>,
    /// Depth of the org hierarchy (tenant-management seed: Norway 1, Sweden 2, France 3).
    pub hierarchy_depth: Option<u8>,
    /// Lifecycle state.
    pub state: State,
    /// When the state was entered.
    pub state_since: DateTime<Utc>,
    /// Reason given for the last transition, if any.
    pub state_reason: Option<String>,
    /// Offboarding deadline: the data is shredded at this instant.
    pub deadline_at: Option<DateTime<Utc>>,
    /// The state an offboarding tenant returns to when cancelled.
    pub offboarding_from: Option<State>,
    /// End of the trial, while in trial.
    pub trial_ends_at: Option<DateTime<Utc>>,
    /// Pool assignment.
    pub pools: PoolAssignment,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When the data was shredded.
    pub shredded_at: Option<DateTime<Utc>>,
}

impl Tenant {
    /// Refuses writes to an offboarding or offboarded tenant, its own record as everything it
    /// owns (PRODUCT.md A3: read-only while offboarding).
    ///
    /// Errors: 409 `tenant_read_only`.
    pub fn ensure_writable(&self) -> crate::error::Result<()> {
        if self.state.is_read_only() {
            return Err(crate::error::Error::TenantReadOnly {
                tenant_id: self.id.to_string(),
                state: self.state.as_str().into(),
                hint: if self.state == State::Offboarding {
                    "cancel the offboarding (POST /api/tenant-lifecycle/{id}/cancel-offboarding) to change it"
                } else {
                    "it was shredded"
                },
            });
        }
        Ok(())
    }
}

/// The stored tenant: versioned. Add a version at the end; never reorder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum TenantRecord {
    /// Version 1.
    V1(TenantV1),
}

/// Version 1 of the stored tenant. Instants are microseconds since the epoch.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct TenantV1 {
    pub id: [u8; 16],
    pub app_id: [u8; 16],
    pub display_name: String,
    pub slug: String,
    pub region: String,
    pub tier: Tier,
    pub brand_domain: Option<String>,
    pub country: Option<String>,
    pub contact_email: Option<String>,
    pub plan: Option<String>,
    pub trial_days: Option<u32>,
    pub hierarchy_depth: Option<u8>,
    pub state: State,
    pub state_since: i64,
    pub state_reason: Option<String>,
    pub deadline_at: Option<i64>,
    pub offboarding_from: Option<State>,
    pub trial_ends_at: Option<i64>,
    pub pools: PoolAssignment,
    pub created_at: i64,
    pub updated_at: i64,
    pub shredded_at: Option<i64>,
}

impl From<TenantRecord> for Tenant {
    fn from(r: TenantRecord) -> Tenant {
        let TenantRecord::V1(v) = r;
        Tenant {
            id: Uuid::from_bytes(v.id),
            app_id: Uuid::from_bytes(v.app_id),
            display_name: v.display_name,
            slug: v.slug,
            region: v.region,
            isolation_tier: v.tier,
            brand_domain: v.brand_domain,
            country: v.country,
            contact_email: v.contact_email,
            plan: v.plan,
            trial_days: v.trial_days,
            hierarchy_depth: v.hierarchy_depth,
            state: v.state,
            state_since: from_micros(v.state_since),
            state_reason: v.state_reason,
            deadline_at: v.deadline_at.map(from_micros),
            offboarding_from: v.offboarding_from,
            trial_ends_at: v.trial_ends_at.map(from_micros),
            pools: v.pools,
            created_at: from_micros(v.created_at),
            updated_at: from_micros(v.updated_at),
            shredded_at: v.shredded_at.map(from_micros),
        }
    }
}

impl From<&Tenant> for TenantRecord {
    fn from(t: &Tenant) -> TenantRecord {
        TenantRecord::V1(TenantV1 {
            id: t.id.into_bytes(),
            app_id: t.app_id.into_bytes(),
            display_name: t.display_name.clone(),
            slug: t.slug.clone(),
            region: t.region.clone(),
            tier: t.isolation_tier,
            brand_domain: t.brand_domain.clone(),
            country: t.country.clone(),
            contact_email: t.contact_email.clone(),
            plan: t.plan.clone(),
            trial_days: t.trial_days,
            hierarchy_depth: t.hierarchy_depth,
            state: t.state,
            state_since: to_micros(t.state_since),
            state_reason: t.state_reason.clone(),
            deadline_at: t.deadline_at.map(to_micros),
            offboarding_from: t.offboarding_from,
            trial_ends_at: t.trial_ends_at.map(to_micros),
            pools: t.pools.clone(),
            created_at: to_micros(t.created_at),
            updated_at: to_micros(t.updated_at),
            shredded_at: t.shredded_at.map(to_micros),
        })
    }
}

/// [`TenantRecord`] read in place: the same postcard layout, with every string borrowed from
/// the stored bytes, so a directory page reads a row without an allocation per field (issue
/// 13's profile put a quarter of a page's CPU in malloc and free). It must mirror
/// [`TenantRecord`] variant for variant and field for field; `borrowed_decode_matches_owned`
/// checks it.
#[derive(Debug, Deserialize)]
pub enum TenantRecordRef<'a> {
    /// Version 1.
    #[serde(borrow)]
    V1(TenantV1Ref<'a>),
}

/// [`TenantV1`] with borrowed strings.
#[derive(Debug, Deserialize)]
#[allow(missing_docs)]
pub struct TenantV1Ref<'a> {
    pub id: [u8; 16],
    pub app_id: [u8; 16],
    pub display_name: &'a str,
    pub slug: &'a str,
    pub region: &'a str,
    pub tier: Tier,
    pub brand_domain: Option<&'a str>,
    pub country: Option<&'a str>,
    pub contact_email: Option<&'a str>,
    pub plan: Option<&'a str>,
    pub trial_days: Option<u32>,
    pub hierarchy_depth: Option<u8>,
    pub state: State,
    pub state_since: i64,
    pub state_reason: Option<&'a str>,
    pub deadline_at: Option<i64>,
    pub offboarding_from: Option<State>,
    pub trial_ends_at: Option<i64>,
    #[serde(borrow)]
    pub pools: PoolAssignmentRef<'a>,
    pub created_at: i64,
    pub updated_at: i64,
    pub shredded_at: Option<i64>,
}

/// [`PoolAssignment`] with borrowed strings.
#[derive(Debug, Deserialize)]
#[allow(missing_docs)]
pub struct PoolAssignmentRef<'a> {
    pub admin: &'a str,
    #[serde(borrow)]
    pub app: AppPoolsRef<'a>,
}

/// [`AppPools`] with borrowed strings (the same variant order).
#[derive(Debug, Deserialize)]
#[allow(missing_docs)]
pub enum AppPoolsRef<'a> {
    #[serde(borrow)]
    Shared(Vec<(&'a str, &'a str)>),
    Dedicated(&'a str),
}

impl<'a> TenantRecordRef<'a> {
    /// Reads a stored tenant in place.
    ///
    /// Errors: a storage `Corrupt` error naming the table when the bytes are not a tenant
    /// record.
    pub fn decode(bytes: &'a [u8]) -> crate::store::Result<TenantRecordRef<'a>> {
        crate::store::codec::decode_borrowed("tenants", bytes)
    }
}

// ---- Parsing wire input (parse, don't validate) ----

/// Longest slug (a DNS label).
pub const SLUG_MAX: usize = 63;

/// Parses an explicit slug: `a-z`, `0-9` and inner `-`, 1–63 characters.
pub fn parse_slug(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= SLUG_MAX
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "slug '{s}' is invalid: use 1-{SLUG_MAX} characters of a-z, 0-9 and '-', not starting or ending with '-'"
        ))
    }
}

/// Derives a slug from a display name: transliterated to ASCII, lowercased, runs of other
/// characters become one `-`. Never empty (`tenant` as a last resort).
pub fn slug_from_name(name: &str) -> String {
    let ascii = deunicode::deunicode(name).to_ascii_lowercase();
    let mut out = String::with_capacity(ascii.len());
    for c in ascii.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let mut s: String = out.trim_end_matches('-').chars().take(SLUG_MAX).collect();
    while s.ends_with('-') {
        s.pop();
    }
    if s.is_empty() {
        "tenant".to_string()
    } else {
        s
    }
}

/// The first free slug among `base`, `base-2`, `base-3`... (each within [`SLUG_MAX`]), as
/// `taken` judges them.
///
/// Errors: 409 `slug_taken` after 999 tries; `taken`'s own errors.
pub fn free_slug(
    base: &str,
    mut taken: impl FnMut(&str) -> crate::error::Result<bool>,
) -> crate::error::Result<String> {
    for n in 1..1000u32 {
        let candidate = if n == 1 {
            base.to_string()
        } else {
            let suffix = format!("-{n}");
            let keep = base.len().min(SLUG_MAX - suffix.len());
            format!("{}{suffix}", base[..keep].trim_end_matches('-'))
        };
        if !taken(&candidate)? {
            return Ok(candidate);
        }
    }
    Err(crate::error::Error::conflict(
        crate::tenants::model::SLUG_TAKEN,
        format!("no free slug near '{base}': give one explicitly"),
    ))
}

/// Parses a display name: trimmed, 1–120 characters, no control characters.
pub fn parse_display_name(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("display_name is required".into());
    }
    if t.chars().count() > 120 {
        return Err("display_name is longer than 120 characters".into());
    }
    if t.chars().any(char::is_control) {
        return Err("display_name may not contain control characters".into());
    }
    Ok(t.to_string())
}

/// Parses an email address: one `@`, a non-empty local part, a dotted domain, no spaces,
/// at most 254 characters (RFC 5321 §4.5.3.1.3). Lowercases the domain.
pub fn parse_email(s: &str) -> Result<String, String> {
    let t = s.trim();
    let bad = || format!("'{t}' is not a valid email address (expected name@example.com)");
    if t.len() > 254 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = t.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || local.len() > 64
        || domain.contains('@')
        || parse_hostname(domain).is_err()
        || !domain.contains('.')
    {
        return Err(bad());
    }
    Ok(format!("{local}@{}", domain.to_ascii_lowercase()))
}

/// Parses a hostname (brand domain): dot-separated labels of `a-z0-9-`, 1–63 characters each,
/// 253 in all, at least two labels. Lowercases it.
pub fn parse_hostname(s: &str) -> Result<String, String> {
    let t = s.trim().trim_end_matches('.').to_ascii_lowercase();
    let bad = || format!("'{s}' is not a valid hostname (expected e.g. app.example.com)");
    if t.is_empty() || t.len() > 253 || !t.contains('.') {
        return Err(bad());
    }
    for label in t.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(bad());
        }
    }
    Ok(t)
}

/// Parses an ISO 3166-1 alpha-2 country code; accepts lowercase, stores uppercase.
pub fn parse_country(s: &str) -> Result<String, String> {
    let t = s.trim().to_ascii_uppercase();
    if t.len() == 2 && t.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(t)
    } else {
        Err(format!(
            "country '{s}' is invalid: use an ISO 3166-1 alpha-2 code such as BE or NO"
        ))
    }
}

/// Parses a region code against the configured regions.
pub fn parse_region(config: &Config, s: &str) -> Result<String, String> {
    match config.region(s) {
        Some(r) => Ok(r.code.clone()),
        None => {
            let codes: Vec<&str> = config.regions.iter().map(|r| r.code.as_str()).collect();
            Err(format!(
                "region '{s}' is not offered: use one of {}",
                codes.join(", ")
            ))
        }
    }
}

/// Parses a plan code against the plans offered (`plans` records, read before the write; the
/// write checks again).
pub fn parse_plan(plans: &[String], s: &str) -> Result<String, String> {
    if plans.iter().any(|p| p == s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "plan '{s}' is not offered: use one of {}",
            plans.join(", ")
        ))
    }
}

/// Parses a trial length: 1–365 days.
pub fn parse_trial_days(d: i64) -> Result<u32, String> {
    if (1..=365).contains(&d) {
        Ok(d as u32)
    } else {
        Err(format!("trial_days {d} is out of range: use 1 to 365"))
    }
}

/// Parses a grace period: 0–3650 days (0 shreds at the next run of the job).
pub fn parse_grace_days(d: i64) -> Result<u32, String> {
    if (0..=3650).contains(&d) {
        Ok(d as u32)
    } else {
        Err(format!("grace_days {d} is out of range: use 0 to 3650"))
    }
}

/// Parses a hierarchy depth: 1–5 levels.
pub fn parse_hierarchy_depth(d: i64) -> Result<u8, String> {
    if (1..=5).contains(&d) {
        Ok(d as u8)
    } else {
        Err(format!("hierarchy_depth {d} is out of range: use 1 to 5"))
    }
}

/// Parses a reason: trimmed, 1–500 characters, no control characters but newlines.
pub fn parse_reason(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("a reason is required".into());
    }
    if t.chars().count() > 500 {
        return Err("the reason is longer than 500 characters".into());
    }
    if t.chars().any(|c| c.is_control() && c != '\n') {
        return Err("the reason may not contain control characters".into());
    }
    Ok(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_format_codes_are_pinned() {
        // The index-key byte and the postcard variant index of every stored enum: a failure
        // here means the file format changed (see the REMEMBER notes).
        let states = [
            (State::Provisioned, 0),
            (State::Trial, 1),
            (State::Active, 2),
            (State::Suspended, 3),
            (State::Offboarding, 4),
            (State::Offboarded, 5),
        ];
        for (s, code) in states {
            assert_eq!(s.code(), code, "{s:?}");
            assert_eq!(crate::store::codec::encode(&s).unwrap(), [code], "{s:?}");
        }
        assert_eq!(states.len(), State::ALL.len());
        for (t, code) in [(Tier::S, 0), (Tier::P, 1), (Tier::G, 2)] {
            assert_eq!(t.code(), code, "{t:?}");
            assert_eq!(crate::store::codec::encode(&t).unwrap(), [code], "{t:?}");
        }
        assert_eq!(
            crate::store::codec::encode(&AppPools::Shared(vec![])).unwrap(),
            [0, 0]
        );
        assert_eq!(
            crate::store::codec::encode(&AppPools::Dedicated(String::new())).unwrap(),
            [1, 0]
        );
    }

    #[test]
    fn reinstate_is_only_allowed_from_suspended() {
        for s in State::ALL {
            assert_eq!(
                Action::Reinstate.target(s, None).is_some(),
                s == State::Suspended,
                "{s:?}"
            );
        }
    }

    #[test]
    fn allowed_lists_exactly_the_transitions_of_the_state_machine() {
        let names = |s, from| {
            allowed_actions(s, from)
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(State::Provisioned, None), ["start-trial", "activate"]);
        assert_eq!(
            names(State::Trial, None),
            ["activate", "suspend", "offboard"]
        );
        assert_eq!(names(State::Active, None), ["suspend", "offboard"]);
        assert_eq!(names(State::Suspended, None), ["reinstate", "offboard"]);
        assert_eq!(
            names(State::Offboarding, Some(State::Active)),
            ["cancel-offboarding"]
        );
        assert!(names(State::Offboarded, None).is_empty());
    }

    #[test]
    fn cancelling_returns_to_the_state_offboarding_came_from() {
        assert_eq!(
            Action::CancelOffboarding.target(State::Offboarding, Some(State::Trial)),
            Some(State::Trial)
        );
    }

    #[test]
    fn slugs_are_derived_from_names() {
        let check = |name, slug| assert_eq!(slug_from_name(name), slug);
        check("Acme Corp", "acme-corp");
        check("  Société Générale!! ", "societe-generale");
        check("Norges Fotballforbund (NFF)", "norges-fotballforbund-nff");
        check("!!!", "tenant");
        assert_eq!(slug_from_name(&"x".repeat(100)).len(), SLUG_MAX);
    }

    #[test]
    fn explicit_slugs_are_checked() {
        assert!(parse_slug("acme-1").is_ok());
        for bad in ["", "Acme", "-acme", "acme-", "ac me", "acme!"] {
            assert!(parse_slug(bad).is_err(), "{bad}");
        }
        assert!(parse_slug("Acme!").unwrap_err().contains("a-z, 0-9"));
    }

    #[test]
    fn emails_and_hostnames_are_checked() {
        assert_eq!(parse_email("Ops@Example.COM").unwrap(), "Ops@example.com");
        for bad in ["", "x", "x@", "@x.com", "a b@x.com", "x@y", "x@@y.com"] {
            assert!(parse_email(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_hostname("App.Acme.io.").unwrap(), "app.acme.io");
        assert!(parse_hostname("-bad.io").is_err());
        assert!(parse_hostname("localhost").is_err());
    }
}
