//! The rules of plans: create, replace, seed from config, and record a tenant's assignment.

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::model::{
    AssignmentRecord, MAX_PLANS, PLAN_ASSIGNMENTS, PLAN_EXISTS, PLANS, Plan, PlanInput, PlanRecord,
    seed_for,
};
use crate::audit::ledger::{Audit, Subject};
use crate::clock::to_micros;
use crate::error::{Error, Result};
use crate::store::keys::Key;
use crate::store::{Reader, WriteCtx};

fn data(p: &Plan) -> Value {
    json!({
        "code": p.code,
        "name": p.name,
        "amount_minor": p.amount_minor,
        "currency": p.currency,
        "interval": p.interval.as_str(),
        "trial_days": p.trial_days,
        "features": p.features,
        "max_personas": p.limits.max_personas,
        "max_api_keys": p.limits.max_api_keys,
        "included": p.limits.included.iter().map(|(s, q)| json!({"sku": s, "quantity": q})).collect::<Vec<_>>(),
    })
}

/// Creates a plan, writing `plan.created.v1` on the platform chain.
///
/// Errors: 409 `plan_exists`; 422 when the platform has [`MAX_PLANS`] plans.
pub fn create(ctx: &mut WriteCtx<'_>, input: &PlanInput) -> Result<Plan> {
    if ctx.contains(PLANS, input.code.as_bytes())? {
        return Err(Error::conflict(
            PLAN_EXISTS,
            format!(
                "plan '{}' exists: change it with PUT /api/plans/{}",
                input.code, input.code
            ),
        ));
    }
    if ctx.len(PLANS)? >= MAX_PLANS as u64 {
        return Err(Error::invalid(
            "code",
            format!("the platform has {MAX_PLANS} plans, the most it keeps"),
        ));
    }
    let plan = Plan {
        code: input.code.clone(),
        name: input.name.clone(),
        amount_minor: input.amount_minor,
        currency: input.currency.clone(),
        interval: input.interval,
        trial_days: input.trial_days,
        features: input.features.clone(),
        limits: input.limits.clone(),
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    ctx.put_record(PLANS, plan.code.as_bytes(), &plan.to_record())?;
    ctx.audit(
        "plan.created.v1",
        &Subject::platform("plan", &plan.code),
        data(&plan),
    )?;
    Ok(plan)
}

/// Replaces a plan's fields, writing `plan.updated.v1` with a field diff. Tenants keep the
/// plan's code, so they follow the change. A replacement that changes nothing writes nothing.
///
/// Errors: 404.
pub fn replace(ctx: &mut WriteCtx<'_>, input: &PlanInput) -> Result<Plan> {
    let old = ctx
        .get_record::<PlanRecord>(PLANS, input.code.as_bytes())?
        .map(|r| Plan::from_record(input.code.clone(), r))
        .ok_or_else(|| Error::not_found("plan", &input.code))?;
    let mut new = old.clone();
    new.name = input.name.clone();
    new.amount_minor = input.amount_minor;
    new.currency = input.currency.clone();
    new.interval = input.interval;
    new.trial_days = input.trial_days;
    new.features = input.features.clone();
    new.limits = input.limits.clone();
    let (before, after) = (data(&old), data(&new));
    let mut changes = Map::new();
    if let (Value::Object(b), Value::Object(a)) = (&before, &after) {
        for (k, to) in a {
            let from = b.get(k).cloned().unwrap_or(Value::Null);
            if &from != to {
                changes.insert(k.clone(), json!({"from": from, "to": to}));
            }
        }
    }
    if changes.is_empty() {
        return Ok(old);
    }
    new.updated_at = ctx.now;
    ctx.put_record(PLANS, new.code.as_bytes(), &new.to_record())?;
    ctx.audit(
        "plan.updated.v1",
        &Subject::platform("plan", &new.code),
        json!({ "changes": changes }),
    )?;
    Ok(new)
}

/// On a store without plans, creates the configured ones (`plan.created.v1` each) with the
/// defaults of [`seed_for`]. A store that has plans is left alone: after the first start the
/// plans are managed records.
pub fn seed(ctx: &mut WriteCtx<'_>, codes: &[String]) -> Result<usize> {
    if ctx.len(PLANS)? > 0 {
        return Ok(0);
    }
    let mut n = 0;
    for code in codes.iter().take(MAX_PLANS) {
        if super::model::parse_code("plan code", code).is_ok() {
            create(ctx, &seed_for(code))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Checks that `plan` may be assigned (it exists), before any write of the assignment.
///
/// Errors: 422 `validation_failed` on `plan`.
pub fn check_assignable(r: &impl Reader, plan: Option<&str>) -> Result<()> {
    if let Some(code) = plan
        && !r.contains(PLANS, code.as_bytes())?
    {
        let known = super::queries::codes(r)?;
        return Err(Error::invalid(
            "plan",
            format!(
                "plan '{code}' is not offered: use one of {}",
                known.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Records that `tenant` moved from plan `from` to `to` (history kept; the tenant's own
/// `tenant.created.v1` or `tenant.updated.v1` entry is the audit of the change).
pub fn record_assignment(
    ctx: &mut WriteCtx<'_>,
    tenant: &Uuid,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<()> {
    // Several changes in one instant (one batch, or a test's still clock) each keep their row.
    let at = Key::new().uuid(tenant).i64(to_micros(ctx.now)).into_bytes();
    let mut same = 0u64;
    ctx.scan(
        PLAN_ASSIGNMENTS,
        &crate::store::Range::prefix(&at),
        crate::store::Dir::Asc,
        &mut |_, _| {
            same += 1;
            Ok(std::ops::ControlFlow::Continue(()))
        },
    )?;
    let key = Key::new().raw(&at).u64(same).into_bytes();
    let rec = AssignmentRecord::V1 {
        plan: to.map(String::from),
        from: from.map(String::from),
        by: ctx.actor.id.clone(),
    };
    ctx.put_record(PLAN_ASSIGNMENTS, &key, &rec)?;
    if to.is_some() {
        // A tenant on a plan is billable: its upcoming invoice exists from now on.
        let period = crate::metering::model::period_of(ctx.now);
        crate::invoices::service::ensure_draft(ctx, tenant, period)?;
    }
    Ok(())
}

/// Shredding a tenant deletes its plan history.
pub fn shred_assignments(ctx: &mut WriteCtx<'_>, tenant: &Uuid) -> Result<u64> {
    let prefix = Key::new().uuid(tenant).into_bytes();
    ctx.delete_range(PLAN_ASSIGNMENTS, &crate::store::Range::prefix(&prefix))
        .map_err(Error::from)
}
