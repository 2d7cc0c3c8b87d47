//! Tenant rules: provisioning, edits, the lifecycle state machine (PRODUCT.md A2–A3, operator
//! guide §1), trial expiry and shredding at the offboarding deadline.
//!
//! Each function runs inside one write request: it checks everything, then writes the change and
//! its audit entries, so a refusal leaves no trace.

use chrono::Duration;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::directory;
use super::model::*;
use crate::apps;
use crate::audit::ledger::{self, Audit, ChainId, Subject};
use crate::clock::rfc3339_micros;
use crate::config::Config;
use crate::error::{Error, Result, Validator};
use crate::pools;
use crate::state::TenantHooks;
use crate::store::{Reader, WriteCtx};

/// Default offboarding grace period in days (operator guide §1.2: "a 30-day grace clock by
/// default").
pub const DEFAULT_GRACE_DAYS: u32 = 30;
/// Default trial length in days when neither the request nor the tenant names one.
pub const DEFAULT_TRIAL_DAYS: u32 = 14;
/// The reason `expire_trials` gives (issue: suspends "with the reason 'trial expired'").
pub const TRIAL_EXPIRED: &str = "trial expired";

/// A tenant as asked for, unchecked: what `POST /api/tenants`, the console's form and the demo
/// give (API.md first-slice table).
#[derive(Clone, Debug, Default)]
pub struct TenantDraft {
    /// UUID of an existing app.
    pub app_id: String,
    /// What the customer sees, 1–120 characters.
    pub display_name: String,
    /// Unique slug; derived from the name when absent.
    pub slug: Option<String>,
    /// A configured region code.
    pub region: String,
    /// `S` (default), `P` or `G`; `G` needs a sovereign region.
    pub isolation_tier: Option<String>,
    /// Vanity hostname.
    pub brand_domain: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    /// Primary contact email.
    pub contact_email: Option<String>,
    /// A configured plan.
    pub plan: Option<String>,
    /// Trial length, 1–365 days.
    pub trial_days: Option<i64>,
    /// Org hierarchy depth, 1–5.
    pub hierarchy_depth: Option<i64>,
}

/// A checked [`TenantDraft`].
#[derive(Clone, Debug)]
pub struct ProvisionInput {
    app_id: Uuid,
    display_name: String,
    slug: Option<String>,
    region: String,
    tier: Tier,
    brand_domain: Option<String>,
    country: Option<String>,
    contact_email: Option<String>,
    plan: Option<String>,
    trial_days: Option<u32>,
    hierarchy_depth: Option<u8>,
}

fn opt<T>(
    v: &mut Validator,
    field: &str,
    value: Option<&str>,
    parse: impl Fn(&str) -> std::result::Result<T, String>,
) -> Option<T> {
    value
        .filter(|s| !s.trim().is_empty())
        .and_then(|s| v.take(field, parse(s)))
}

impl TenantDraft {
    /// Checks every field at once against `config` (regions) and the plans offered (`plans`).
    ///
    /// Errors: 422 `validation_failed` listing each bad field.
    pub fn parse(self, config: &Config, plans: &[String]) -> Result<ProvisionInput> {
        let mut v = Validator::new();
        let app_id = v.take(
            "app_id",
            Uuid::try_parse(self.app_id.trim())
                .map_err(|_| format!("app_id '{}' is not a UUID", self.app_id)),
        );
        let display_name = v.take("display_name", parse_display_name(&self.display_name));
        let slug = opt(&mut v, "slug", self.slug.as_deref(), parse_slug);
        let region = v.take("region", parse_region(config, self.region.trim()));
        let tier = match self.isolation_tier.as_deref() {
            None | Some("") => Some(Tier::S),
            Some(t) => v.take("isolation_tier", Tier::parse(t)),
        };
        if let (Some(Tier::G), Some(r)) = (tier, &region)
            && config.region(r).is_some_and(|r| !r.sovereign)
        {
            let sovereign: Vec<&str> = config
                .regions
                .iter()
                .filter(|r| r.sovereign)
                .map(|r| r.code.as_str())
                .collect();
            v.add(
                    "region",
                    format!(
                        "G (sovereign) tenants need a sovereign region; '{r}' is not one (sovereign regions: {})",
                        if sovereign.is_empty() { "none configured".to_string() } else { sovereign.join(", ") }
                    ),
                );
        }
        let brand_domain = opt(
            &mut v,
            "brand_domain",
            self.brand_domain.as_deref(),
            parse_hostname,
        );
        let country = opt(&mut v, "country", self.country.as_deref(), parse_country);
        let contact_email = opt(
            &mut v,
            "contact_email",
            self.contact_email.as_deref(),
            parse_email,
        );
        let plan = opt(&mut v, "plan", self.plan.as_deref(), |p| {
            parse_plan(plans, p)
        });
        let trial_days = self
            .trial_days
            .and_then(|d| v.take("trial_days", parse_trial_days(d)));
        let hierarchy_depth = self
            .hierarchy_depth
            .and_then(|d| v.take("hierarchy_depth", parse_hierarchy_depth(d)));
        v.finish()?;
        let missing = || Error::Internal("validated field missing".into());
        Ok(ProvisionInput {
            app_id: app_id.ok_or_else(missing)?,
            display_name: display_name.ok_or_else(missing)?,
            slug,
            region: region.ok_or_else(missing)?,
            tier: tier.ok_or_else(missing)?,
            brand_domain,
            country,
            contact_email,
            plan,
            trial_days,
            hierarchy_depth,
        })
    }
}

/// Provisions a tenant in state `provisioned`: assigns pools by tier and writes
/// `tenant.created.v1` and `tenant.pool.assigned.v1` on the new tenant's chain.
///
/// Errors: 422 `app_not_found`; 409 `slug_taken` for an explicit slug in use; 503
/// `no_active_pool` when no shared pool is active; on an appliance, 403 `license_expired`,
/// `license_limit_reached`, `license_missing` or `license_invalid` (see `license::gate`).
pub fn provision(
    ctx: &mut WriteCtx<'_>,
    config: &Config,
    input: &ProvisionInput,
    hooks: &TenantHooks,
) -> Result<Tenant> {
    crate::license::gate::admit_new_tenant(ctx)?;
    if !apps::queries::exists(ctx, &input.app_id)? {
        return Err(Error::AppNotFound(input.app_id.to_string()));
    }
    let slug = match &input.slug {
        Some(s) => {
            if let Some(owner) = directory::slug_owner(ctx, s)? {
                return Err(Error::conflict(
                    crate::tenants::model::SLUG_TAKEN,
                    format!(
                        "slug '{s}' is already used by tenant {owner}: choose another, or leave slug out to derive one"
                    ),
                ));
            }
            s.clone()
        }
        None => free_slug(&slug_from_name(&input.display_name), |c| {
            Ok(directory::slug_owner(ctx, c)?.is_some())
        })?,
    };
    crate::plans::service::check_assignable(ctx, input.plan.as_deref())?;
    let id = crate::ids::new_id(ctx.now);
    if input.plan.is_some() {
        crate::plans::service::record_assignment(ctx, &id, None, input.plan.as_deref())?;
    }
    let assignment = pools::service::assign(ctx, id, input.tier, &config.pools)?;
    let tenant = Tenant {
        id,
        app_id: input.app_id,
        display_name: input.display_name.clone(),
        slug,
        region: input.region.clone(),
        isolation_tier: input.tier,
        brand_domain: input.brand_domain.clone(),
        country: input.country.clone(),
        contact_email: input.contact_email.clone(),
        plan: input.plan.clone(),
        trial_days: input.trial_days,
        hierarchy_depth: input.hierarchy_depth,
        state: State::Provisioned,
        state_since: ctx.now,
        state_reason: None,
        deadline_at: None,
        offboarding_from: None,
        trial_ends_at: None,
        pools: assignment,
        created_at: ctx.now,
        updated_at: ctx.now,
        shredded_at: None,
    };
    directory::save(ctx, None, &tenant)?;
    ctx.audit(
        "tenant.created.v1",
        &Subject::tenant(id),
        json!({
            "app_id": tenant.app_id.to_string(),
            "display_name": tenant.display_name,
            "slug": tenant.slug,
            "region": tenant.region,
            "isolation_tier": tenant.isolation_tier,
            "brand_domain": tenant.brand_domain,
            "country": tenant.country,
            "contact_email": tenant.contact_email,
            "plan": tenant.plan,
            "trial_days": tenant.trial_days,
            "hierarchy_depth": tenant.hierarchy_depth,
        }),
    )?;
    ctx.audit(
        "tenant.pool.assigned.v1",
        &Subject::tenant(id),
        assignment_data(&tenant),
    )?;
    // The other contexts' share of provisioning (members seed the roles), in this write.
    for hook in &hooks.on_provision {
        hook(ctx, &id, &tenant.app_id)?;
    }
    Ok(tenant)
}

fn assignment_data(t: &Tenant) -> Value {
    match &t.pools.app {
        AppPools::Shared(m) => {
            let apps: Map<String, Value> = m
                .iter()
                .map(|(md, p)| (md.clone(), Value::from(p.clone())))
                .collect();
            json!({"isolation_tier": t.isolation_tier, "admin_pool": t.pools.admin, "app_pools": apps})
        }
        AppPools::Dedicated(p) => {
            json!({"isolation_tier": t.isolation_tier, "admin_pool": t.pools.admin, "dedicated_app_pool": p})
        }
    }
}

/// Changes to a tenant's editable fields, unchecked (`PATCH /api/tenants/{id}`, the console's edit
/// form). `None` leaves a field as is; `Some(None)` clears an optional one.
///
/// It serializes (as the PATCH body spells it) so an approval request can hold it.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct TenantChanges {
    /// New display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// New contact email; `Some(None)` clears.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::http::extract::double_option"
    )]
    pub contact_email: Option<Option<String>>,
    /// New brand domain; `Some(None)` clears.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::http::extract::double_option"
    )]
    pub brand_domain: Option<Option<String>>,
    /// New country; `Some(None)` clears.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::http::extract::double_option"
    )]
    pub country: Option<Option<String>>,
    /// New plan; `Some(None)` clears.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::http::extract::double_option"
    )]
    pub plan: Option<Option<String>>,
    /// New trial length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_days: Option<i64>,
    /// New hierarchy depth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hierarchy_depth: Option<i64>,
}

/// A checked [`TenantChanges`].
#[derive(Clone, Debug, Default)]
pub struct PatchInput {
    display_name: Option<String>,
    contact_email: Option<Option<String>>,
    brand_domain: Option<Option<String>>,
    country: Option<Option<String>>,
    plan: Option<Option<String>>,
    trial_days: Option<u32>,
    hierarchy_depth: Option<u8>,
}

impl TenantChanges {
    /// Checks every given field (a plan against the plans offered, `plans`).
    ///
    /// Errors: 422 `validation_failed`.
    pub fn parse(self, plans: &[String]) -> Result<PatchInput> {
        let mut v = Validator::new();
        let mut clearable =
            |field: &str,
             value: Option<Option<String>>,
             parse: &dyn Fn(&str) -> std::result::Result<String, String>| match value {
                None => None,
                Some(None) => Some(None),
                Some(Some(s)) if s.trim().is_empty() => Some(None),
                Some(Some(s)) => v.take(field, parse(&s)).map(Some),
            };
        let contact_email = clearable("contact_email", self.contact_email, &parse_email);
        let brand_domain = clearable("brand_domain", self.brand_domain, &parse_hostname);
        let country = clearable("country", self.country, &parse_country);
        let plan = clearable("plan", self.plan, &|p| parse_plan(plans, p));
        let display_name = self
            .display_name
            .and_then(|d| v.take("display_name", parse_display_name(&d)));
        let trial_days = self
            .trial_days
            .and_then(|d| v.take("trial_days", parse_trial_days(d)));
        let hierarchy_depth = self
            .hierarchy_depth
            .and_then(|d| v.take("hierarchy_depth", parse_hierarchy_depth(d)));
        v.finish()?;
        Ok(PatchInput {
            display_name,
            contact_email,
            brand_domain,
            country,
            plan,
            trial_days,
            hierarchy_depth,
        })
    }
}

/// Edits a tenant's fields, writing `tenant.updated.v1` with a field diff
/// `{"changes": {"field": {"from", "to"}}}` (AUDIT.md `data`). A patch that changes nothing
/// writes nothing.
///
/// Errors: 404; 409 `tenant_read_only`.
pub fn update(ctx: &mut WriteCtx<'_>, id: Uuid, patch: &PatchInput) -> Result<Tenant> {
    let old = directory::load(ctx, &id)?;
    old.ensure_writable()?;
    let mut new = old.clone();
    let mut changes = Map::new();
    let mut diff = |field: &str, from: Value, to: Value| {
        if from != to {
            changes.insert(field.to_string(), json!({"from": from, "to": to}));
        }
    };
    if let Some(d) = &patch.display_name {
        diff("display_name", json!(old.display_name), json!(d));
        new.display_name = d.clone();
    }
    if let Some(e) = &patch.contact_email {
        diff("contact_email", json!(old.contact_email), json!(e));
        new.contact_email = e.clone();
    }
    if let Some(b) = &patch.brand_domain {
        diff("brand_domain", json!(old.brand_domain), json!(b));
        new.brand_domain = b.clone();
    }
    if let Some(c) = &patch.country {
        diff("country", json!(old.country), json!(c));
        new.country = c.clone();
    }
    if let Some(p) = &patch.plan {
        diff("plan", json!(old.plan), json!(p));
        new.plan = p.clone();
        if old.plan != *p {
            crate::plans::service::check_assignable(ctx, p.as_deref())?;
        }
    }
    if let Some(t) = patch.trial_days {
        diff("trial_days", json!(old.trial_days), json!(t));
        new.trial_days = Some(t);
    }
    if let Some(h) = patch.hierarchy_depth {
        diff("hierarchy_depth", json!(old.hierarchy_depth), json!(h));
        new.hierarchy_depth = Some(h);
    }
    if changes.is_empty() {
        return Ok(old);
    }
    new.updated_at = ctx.now;
    directory::save(ctx, Some(&old), &new)?;
    if old.plan != new.plan {
        crate::plans::service::record_assignment(
            ctx,
            &id,
            old.plan.as_deref(),
            new.plan.as_deref(),
        )?;
    }
    ctx.audit(
        "tenant.updated.v1",
        &Subject::tenant(id),
        json!({ "changes": changes }),
    )?;
    Ok(new)
}

/// Inputs of a lifecycle action, already parsed.
#[derive(Clone, Debug, Default)]
pub struct TransitionInput {
    /// Reason (required for suspend).
    pub reason: Option<String>,
    /// Offboarding grace period, days (default 30).
    pub grace_days: Option<u32>,
    /// Trial length for start-trial, days.
    pub trial_days: Option<u32>,
}

/// What a lifecycle action was given, unchecked; each action reads the members that apply to it.
#[derive(Clone, Debug, Default)]
pub struct TransitionDraft {
    /// Why (required for suspend; recorded in the ledger for every action).
    pub reason: Option<String>,
    /// Offboard only: grace period in days, 0–3650 (default 30).
    pub grace_days: Option<i64>,
    /// Start-trial only: trial length in days, 1–365.
    pub trial_days: Option<i64>,
}

impl TransitionDraft {
    /// Checks the members `action` uses and refuses those it does not.
    ///
    /// Errors: 422 `validation_failed` (e.g. suspend without a reason).
    pub fn parse(self, action: Action) -> Result<TransitionInput> {
        let mut v = Validator::new();
        let reason = match self.reason.as_deref() {
            Some(r) if !r.trim().is_empty() => v.take("reason", parse_reason(r)),
            _ => {
                if action == Action::Suspend {
                    v.add(
                        "reason",
                        "suspend needs a reason (non-payment, abuse, breach hold...)",
                    );
                }
                None
            }
        };
        let grace_days = match self.grace_days {
            Some(d) if action == Action::Offboard => v.take("grace_days", parse_grace_days(d)),
            Some(_) => {
                v.add(
                    "grace_days",
                    format!(
                        "grace_days applies to offboard only, not {}",
                        action.as_str()
                    ),
                );
                None
            }
            None => None,
        };
        let trial_days = match self.trial_days {
            Some(d) if action == Action::StartTrial => v.take("trial_days", parse_trial_days(d)),
            Some(_) => {
                v.add(
                    "trial_days",
                    format!(
                        "trial_days applies to start-trial only, not {}",
                        action.as_str()
                    ),
                );
                None
            }
            None => None,
        };
        v.finish()?;
        Ok(TransitionInput {
            reason,
            grace_days,
            trial_days,
        })
    }
}

/// Would lifecycle `action` succeed on tenant `id` now? The tenant and the state it goes to;
/// nothing is written (an approval request is checked with it before it is held).
///
/// Errors: as [`transition`].
pub fn check_transition(r: &impl Reader, id: Uuid, action: Action) -> Result<(Tenant, State)> {
    let old = directory::load(r, &id)?;
    if action != Action::CancelOffboarding {
        old.ensure_writable()?;
    }
    let to = action
        .target(old.state, old.offboarding_from)
        .ok_or_else(|| Error::InvalidTransition {
            from: old.state.as_str().into(),
            action: action.as_str().into(),
            allowed: allowed_actions(old.state, old.offboarding_from)
                .iter()
                .map(|a| a.as_str().to_string())
                .collect(),
        })?;
    Ok((old, to))
}

/// Runs a lifecycle action (PRODUCT.md A3) and writes its event on the tenant's chain.
///
/// Errors: 404; 409 `tenant_read_only` for any action on an offboarding tenant but cancel, or on
/// an offboarded tenant; 409 `invalid_transition` with the allowed actions otherwise.
pub fn transition(
    ctx: &mut WriteCtx<'_>,
    id: Uuid,
    action: Action,
    input: &TransitionInput,
) -> Result<Tenant> {
    let (old, to) = check_transition(ctx, id, action)?;
    let now = ctx.now;
    let mut new = old.clone();
    new.state = to;
    new.state_since = now;
    new.state_reason = input.reason.clone();
    new.updated_at = now;
    let mut data = json!({"from": old.state, "to": to, "reason": input.reason});
    match action {
        Action::StartTrial => {
            let days = input
                .trial_days
                .or(old.trial_days)
                .unwrap_or(DEFAULT_TRIAL_DAYS);
            let ends = now + Duration::days(i64::from(days));
            new.trial_days = Some(days);
            new.trial_ends_at = Some(ends);
            data["trial_days"] = json!(days);
            data["trial_ends_at"] = json!(rfc3339_micros(ends));
        }
        Action::Activate => new.trial_ends_at = None,
        Action::Suspend => {}
        Action::Reinstate => new.trial_ends_at = None,
        Action::Offboard => {
            let days = input.grace_days.unwrap_or(DEFAULT_GRACE_DAYS);
            let deadline = now + Duration::days(i64::from(days));
            new.deadline_at = Some(deadline);
            new.offboarding_from = Some(old.state);
            data["grace_days"] = json!(days);
            data["deadline_at"] = json!(rfc3339_micros(deadline));
        }
        Action::CancelOffboarding => {
            new.deadline_at = None;
            new.offboarding_from = None;
            data["cancelled_deadline_at"] = json!(old.deadline_at.map(rfc3339_micros));
        }
    }
    directory::save(ctx, Some(&old), &new)?;
    ctx.audit(action.event(), &Subject::tenant(id), data)?;
    Ok(new)
}

/// Suspends a trial whose end has passed, with the reason "trial expired". Returns `None`
/// (and writes nothing) when the tenant is no longer a due trial.
pub fn expire_trial(ctx: &mut WriteCtx<'_>, id: Uuid) -> Result<Option<Tenant>> {
    let t = directory::load(ctx, &id)?;
    let due = t.state == State::Trial && t.trial_ends_at.is_some_and(|e| e <= ctx.now);
    if !due {
        return Ok(None);
    }
    let input = TransitionInput {
        reason: Some(TRIAL_EXPIRED.into()),
        ..TransitionInput::default()
    };
    transition(ctx, id, Action::Suspend, &input).map(Some)
}

/// Shreds an offboarding tenant past its deadline: deletes the `data` of its audit entries and
/// the personal fields of its record, releases its slug and pools, leaves it `offboarded`, and
/// writes `tenant.shredded.v1`. The chain still verifies (its envelopes are kept). Returns
/// `None` when the tenant is not due.
pub fn shred(ctx: &mut WriteCtx<'_>, id: Uuid, hooks: &TenantHooks) -> Result<Option<Tenant>> {
    let old = directory::load(ctx, &id)?;
    let due = old.state == State::Offboarding && old.deadline_at.is_some_and(|d| d <= ctx.now);
    if !due {
        return Ok(None);
    }
    let shredded = ledger::shred_data(ctx, &ChainId::Tenant(id))?;
    let released = pools::service::release(ctx, id, &old.pools)?;
    // The other contexts' records of the tenant (members, keys, sessions) go too.
    let mut deleted = 0u64;
    for hook in &hooks.on_shred {
        deleted += hook(ctx, &id)?;
    }
    let now = ctx.now;
    let new = Tenant {
        display_name: String::new(),
        slug: String::new(),
        brand_domain: None,
        contact_email: None,
        country: None,
        state: State::Offboarded,
        state_since: now,
        state_reason: Some("shredded at the offboarding deadline".into()),
        offboarding_from: None,
        updated_at: now,
        shredded_at: Some(now),
        ..old.clone()
    };
    directory::save(ctx, Some(&old), &new)?;
    ctx.audit(
        "tenant.shredded.v1",
        &Subject::tenant(id),
        json!({
            "deadline_at": old.deadline_at.map(rfc3339_micros),
            "audit_data_shredded": shredded,
            "pools_released": released,
            "records_deleted": deleted,
        }),
    )?;
    Ok(Some(new))
}
