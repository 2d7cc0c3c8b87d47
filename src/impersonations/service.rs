//! The rules of visits: start, elevate (with a reason, time-boxed), end, and the job that ends
//! visits whose time ran out. Each is recorded on the visited tenant's chain, so the tenant's
//! admins see who visited and what was allowed (`impersonation.started.v1`, `.elevated.v1`,
//! `.ended.v1`).

use std::ops::ControlFlow;

use chrono::Duration;
use serde_json::json;
use uuid::Uuid;

use super::model::*;
use super::queries;
use crate::audit::ledger::{Audit, Subject};
use crate::clock::{rfc3339_micros, to_micros};
use crate::error::{Error, Result};
use crate::members::model::tenant_key;
use crate::rbac::Role;
use crate::store::keys::Key;
use crate::store::{Dir, Range, Reader, WriteCtx};

/// The operator starting a visit.
#[derive(Clone, Debug)]
pub struct Visitor {
    /// Its account.
    pub operator_id: Uuid,
    /// Its username.
    pub username: String,
    /// Its role.
    pub role: Role,
}

fn subject(tenant: &Uuid, id: &Uuid) -> Subject {
    Subject::in_tenant(*tenant, "impersonation", id)
}

fn active_key(operator: &Uuid, tenant: &Uuid) -> Vec<u8> {
    Key::new().uuid(operator).uuid(tenant).into_bytes()
}

fn save(ctx: &mut WriteCtx<'_>, tenant: &Uuid, id: &Uuid, rec: &ImpersonationV1) -> Result<()> {
    ctx.put_record(
        IMPERSONATIONS,
        &tenant_key(tenant, id),
        &ImpersonationRecord::V1(rec.clone()),
    )?;
    Ok(())
}

/// Starts a read-only visit of `tenant` by `who`, for [`VISIT_MINUTES`]
/// (`impersonation.started.v1`). An operator already visiting the tenant gets that visit back
/// (nothing is written).
///
/// Errors: 404 unknown tenant.
pub fn start(ctx: &mut WriteCtx<'_>, tenant: &Uuid, who: &Visitor) -> Result<Impersonation> {
    let t = crate::tenants::queries::get(ctx, tenant)?;
    if let Some(v) = queries::active(ctx, &who.operator_id, tenant, ctx.now)? {
        return Ok(v);
    }
    // A visit that ran out but was not yet ended by the job ends now.
    if let Some(old) = ctx.get(ACTIVE, &active_key(&who.operator_id, tenant))?
        && let Ok(old) = Uuid::from_slice(&old)
    {
        end_one(ctx, tenant, &old, EndCause::Expired)?;
    }
    let id = crate::ids::new_id(ctx.now);
    let expires = ctx.now + Duration::minutes(VISIT_MINUTES);
    let rec = ImpersonationV1 {
        operator_id: who.operator_id.into_bytes(),
        operator: who.username.clone(),
        role: who.role,
        started_at: to_micros(ctx.now),
        expires_at: to_micros(expires),
        elevated_until: None,
        reason: None,
        elevations: 0,
        ended_at: None,
        end_cause: None,
    };
    save(ctx, tenant, &id, &rec)?;
    ctx.put(BY_TIME, id.as_bytes(), tenant.as_bytes())?;
    ctx.put(ACTIVE, &active_key(&who.operator_id, tenant), id.as_bytes())?;
    ctx.audit(
        "impersonation.started.v1",
        &subject(tenant, &id),
        json!({
            "operator": who.username,
            "role": who.role.as_str(),
            "mode": "read_only",
            "tenant_name": t.display_name,
            "expires_at": rfc3339_micros(expires),
        }),
    )?;
    Ok(rec.view(*tenant, id))
}

/// Parses an elevation's reason: 10–500 characters saying why write access is needed.
pub fn parse_reason(s: &str) -> std::result::Result<String, String> {
    let t = s.trim();
    let n = t.chars().count();
    if !(10..=500).contains(&n) || t.chars().any(|c| c.is_control() && c != '\n') {
        Err("give a reason of 10-500 characters: what you will change and why (the tenant's admins read it)".into())
    } else {
        Ok(t.to_string())
    }
}

/// Elevates the visit `id` of `tenant` by its own operator to write access for `minutes`
/// (default [`ELEVATE_DEFAULT_MINUTES`], at most [`ELEVATE_MAX_MINUTES`]), with a reason
/// (`impersonation.elevated.v1`). The visit is extended to last at least as long.
///
/// Errors: 404 unknown visit (or another operator's); 409 `visit_ended`; 422 for a bad reason
/// or duration.
pub fn elevate(
    ctx: &mut WriteCtx<'_>,
    tenant: &Uuid,
    id: &Uuid,
    operator: &Uuid,
    reason: &str,
    minutes: Option<i64>,
) -> Result<Impersonation> {
    let mut v = crate::error::Validator::new();
    let reason = v.take("reason", parse_reason(reason));
    let minutes = minutes.unwrap_or(ELEVATE_DEFAULT_MINUTES);
    if !(1..=ELEVATE_MAX_MINUTES).contains(&minutes) {
        v.add(
            "minutes",
            format!("an elevation lasts 1-{ELEVATE_MAX_MINUTES} minutes"),
        );
    }
    v.finish()?;
    let mut rec = own(ctx, tenant, id, operator)?;
    let until = ctx.now + Duration::minutes(minutes);
    rec.elevated_until = Some(to_micros(until));
    rec.expires_at = rec.expires_at.max(to_micros(until));
    rec.reason = reason.clone();
    rec.elevations += 1;
    save(ctx, tenant, id, &rec)?;
    ctx.audit(
        "impersonation.elevated.v1",
        &subject(tenant, id),
        json!({
            "operator": rec.operator,
            "reason": reason,
            "minutes": minutes,
            "elevated_until": rfc3339_micros(until),
        }),
    )?;
    Ok(rec.view(*tenant, *id))
}

/// The live visit `id` of `tenant`, if it belongs to `operator`.
fn own(ctx: &WriteCtx<'_>, tenant: &Uuid, id: &Uuid, operator: &Uuid) -> Result<ImpersonationV1> {
    let rec = queries::load(ctx, tenant, id)?;
    if rec.operator_id != operator.into_bytes() {
        return Err(Error::not_found("impersonation", id.to_string()));
    }
    if !rec.view(*tenant, *id).is_active(ctx.now) {
        return Err(Error::conflict(
            VISIT_ENDED,
            format!("visit {id} has ended: start a new one from the tenant's page"),
        ));
    }
    Ok(rec)
}

/// Ends the visit `id` of `tenant` by its own operator (`impersonation.ended.v1`).
///
/// Errors: 404 (another operator's visit); 409 `visit_ended`.
pub fn end(
    ctx: &mut WriteCtx<'_>,
    tenant: &Uuid,
    id: &Uuid,
    operator: &Uuid,
) -> Result<Impersonation> {
    own(ctx, tenant, id, operator)?;
    end_one(ctx, tenant, id, EndCause::Operator)
}

fn end_one(
    ctx: &mut WriteCtx<'_>,
    tenant: &Uuid,
    id: &Uuid,
    cause: EndCause,
) -> Result<Impersonation> {
    let mut rec = queries::load(ctx, tenant, id)?;
    if rec.ended_at.is_some() {
        return Ok(rec.view(*tenant, *id));
    }
    let at = match cause {
        EndCause::Operator => to_micros(ctx.now),
        EndCause::Expired => rec.expires_at.min(to_micros(ctx.now)),
    };
    rec.ended_at = Some(at);
    rec.end_cause = Some(cause);
    if rec.elevated_until.is_some_and(|u| u > at) {
        rec.elevated_until = Some(at);
    }
    save(ctx, tenant, id, &rec)?;
    ctx.delete(
        ACTIVE,
        &active_key(&Uuid::from_bytes(rec.operator_id), tenant),
    )?;
    ctx.audit(
        "impersonation.ended.v1",
        &subject(tenant, id),
        json!({
            "operator": rec.operator,
            "cause": cause.as_str(),
            "minutes": (at - rec.started_at) / 60_000_000,
            "elevations": rec.elevations,
        }),
    )?;
    Ok(rec.view(*tenant, *id))
}

/// Ends every visit whose time ran out (the `end_expired_visits` job); returns how many.
pub fn end_expired(ctx: &mut WriteCtx<'_>) -> Result<u64> {
    let mut due = Vec::new();
    let now = ctx.now;
    let mut active = Vec::new();
    ctx.scan(ACTIVE, &Range::all(), Dir::Asc, &mut |k, v| {
        if let (Some(t), Ok(id)) = (
            k.get(16..32).and_then(|b| Uuid::from_slice(b).ok()),
            Uuid::from_slice(v),
        ) {
            active.push((t, id));
        }
        Ok(ControlFlow::Continue(()))
    })?;
    for (t, id) in active {
        if let Ok(rec) = queries::load(ctx, &t, &id)
            && !rec.view(t, id).is_active(now)
        {
            due.push((t, id));
        }
    }
    for (t, id) in &due {
        end_one(ctx, t, id, EndCause::Expired)?;
    }
    Ok(due.len() as u64)
}
