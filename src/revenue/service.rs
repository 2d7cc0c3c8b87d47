//! The rules of the revenue posture: keeping a tenant's entitlement exceptions in step with its
//! findings (each opening and closing on the tenant's chain, in the same write), the
//! enforcer's bounded batches, operators' enforcement overrides, and the monthly MRR snapshot.

use std::collections::HashMap;
use std::ops::ControlFlow;

use serde_json::{Value, json};
use uuid::Uuid;

use super::model::{
    EXCEPTIONS, EXCEPTIONS_BY_REASON, ExceptionRecord, MRR_SNAPSHOTS, OVERRIDES, OverrideInput,
    OverrideRecord, SnapshotRecord,
};
use super::queries::{self, Finding, Override, exception_key, reason_key};
use crate::audit::ledger::{Audit, Subject};
use crate::clock::{rfc3339_micros, to_micros};
use crate::error::{Error, Result};
use crate::plans::model::Plan;
use crate::store::{Dir, Range, Reader, WriteCtx, codec};
use crate::tenants::directory::TENANTS;
use crate::tenants::model::{Tenant, TenantRecord};

/// What reconciling one tenant changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Exceptions opened (`plan.limit.exceeded.v1` each).
    pub opened: usize,
    /// Exceptions closed (`plan.limit.resolved.v1` each).
    pub closed: usize,
}

fn finding_data(t: &Tenant, f: &Finding) -> Value {
    json!({
        "reason": f.reason.as_str(),
        "plan": t.plan,
        "used": f.used,
        "limit": f.limit,
        "detail": f.detail,
    })
}

/// Brings `t`'s open exceptions in line with its findings at `ctx.now`: a new finding opens an
/// exception and writes `plan.limit.exceeded.v1`; an exception whose finding is gone closes and
/// writes `plan.limit.resolved.v1` (both on the tenant's chain, in this write). An override
/// whose reason changed keeps its exception with the new text (the override's own entry is the
/// audit of that change).
pub fn reconcile(
    ctx: &mut WriteCtx<'_>,
    t: &Tenant,
    plans: &HashMap<String, Plan>,
) -> Result<Reconciled> {
    let now = ctx.now;
    let found = queries::findings(ctx, t, plans, now)?;
    let open = queries::exceptions_of(ctx, &t.id)?;
    let mut out = Reconciled::default();
    for f in &found {
        match open.iter().find(|(r, _)| *r == f.reason) {
            None => {
                let rec = ExceptionRecord::V1 {
                    opened_at: to_micros(now),
                    plan: t.plan.clone(),
                    used: f.used,
                    limit: f.limit,
                    detail: f.detail.clone(),
                };
                ctx.put_record(EXCEPTIONS, &exception_key(&t.id, f.reason), &rec)?;
                ctx.put(EXCEPTIONS_BY_REASON, &reason_key(f.reason, &t.id), &[])?;
                ctx.audit(
                    "plan.limit.exceeded.v1",
                    &Subject::tenant(t.id),
                    finding_data(t, f),
                )?;
                out.opened += 1;
            }
            Some((
                _,
                ExceptionRecord::V1 {
                    opened_at,
                    plan,
                    used,
                    limit,
                    detail,
                },
            )) if *detail != f.detail => {
                let rec = ExceptionRecord::V1 {
                    opened_at: *opened_at,
                    plan: plan.clone(),
                    used: *used,
                    limit: *limit,
                    detail: f.detail.clone(),
                };
                ctx.put_record(EXCEPTIONS, &exception_key(&t.id, f.reason), &rec)?;
            }
            Some(_) => {}
        }
    }
    for (
        reason,
        ExceptionRecord::V1 {
            opened_at, plan, ..
        },
    ) in &open
    {
        if found.iter().any(|f| f.reason == *reason) {
            continue;
        }
        ctx.delete(EXCEPTIONS, &exception_key(&t.id, *reason))?;
        ctx.delete(EXCEPTIONS_BY_REASON, &reason_key(*reason, &t.id))?;
        ctx.audit(
            "plan.limit.resolved.v1",
            &Subject::tenant(t.id),
            json!({
                "reason": reason.as_str(),
                "plan": plan,
                "tenant_plan": t.plan,
                "opened_at": rfc3339_micros(crate::clock::from_micros(*opened_at)),
            }),
        )?;
        out.closed += 1;
    }
    Ok(out)
}

/// What one batch of the enforcer did.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// Tenants checked.
    pub checked: usize,
    /// Records that did not decode (skipped; the directory shows them as error rows).
    pub unreadable: usize,
    /// Exceptions opened and closed.
    pub changed: Reconciled,
    /// The last tenant key examined, when more may follow.
    pub next: Option<Vec<u8>>,
}

/// One bounded step of `plan_enforcer`: reconciles up to `size` tenants after the key `after`
/// (in id order), in the caller's write.
pub fn enforce_batch(ctx: &mut WriteCtx<'_>, after: Option<&[u8]>, size: usize) -> Result<Batch> {
    let range = match after {
        Some(k) => Range::all().after(k),
        None => Range::all(),
    };
    let mut rows: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    ctx.scan(TENANTS, &range, Dir::Asc, &mut |k, v| {
        rows.push((k.to_vec(), v.to_vec()));
        Ok(if rows.len() >= size {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })?;
    let plans = queries::plans_by_code(ctx)?;
    let mut batch = Batch {
        next: (rows.len() >= size)
            .then(|| rows.last().map(|(k, _)| k.clone()))
            .flatten(),
        ..Batch::default()
    };
    for (_, v) in &rows {
        let Ok(rec) = codec::decode::<TenantRecord>(TENANTS.name(), v) else {
            batch.unreadable += 1;
            continue;
        };
        let t = Tenant::from(rec);
        let r = reconcile(ctx, &t, &plans)?;
        batch.checked += 1;
        batch.changed.opened += r.opened;
        batch.changed.closed += r.closed;
    }
    Ok(batch)
}

fn override_data(o: &Override) -> Value {
    json!({
        "reason": o.reason,
        "expires_at": o.expires_at.map(rfc3339_micros),
    })
}

/// Sets (or replaces) `tenant`'s enforcement override, writes `enforcement.override.set.v1`
/// on its chain (with the override it replaced), and reconciles its exceptions in the same
/// write, so an active override shows as an `override` exception at once.
///
/// Errors: 404 unknown tenant; 409 `tenant_read_only` (offboarding or offboarded).
pub fn set_override(
    ctx: &mut WriteCtx<'_>,
    tenant: &Uuid,
    input: &OverrideInput,
) -> Result<Override> {
    let t = crate::tenants::queries::get(ctx, tenant)?;
    t.ensure_writable()?;
    let before = queries::override_of(ctx, tenant)?;
    let o = Override {
        tenant_id: *tenant,
        reason: input.reason.clone(),
        expires_at: input.expires_at,
        set_by: ctx.actor.id.clone(),
        set_at: ctx.now,
    };
    let rec = OverrideRecord::V1 {
        reason: o.reason.clone(),
        expires_at: o.expires_at.map(to_micros),
        set_by: o.set_by.clone(),
        set_at: to_micros(o.set_at),
    };
    ctx.put_record(OVERRIDES, tenant.as_bytes(), &rec)?;
    let mut data = override_data(&o);
    data["replaced"] = before.as_ref().map_or(Value::Null, override_data);
    ctx.audit(
        "enforcement.override.set.v1",
        &Subject::in_tenant(*tenant, "enforcement_override", tenant),
        data,
    )?;
    let plans = queries::plans_by_code(ctx)?;
    reconcile(ctx, &t, &plans)?;
    Ok(o)
}

/// Clears `tenant`'s enforcement override, writes `enforcement.override.cleared.v1` on its
/// chain, and reconciles its exceptions in the same write (the `override` exception closes).
///
/// Errors: 404 unknown tenant, or no override set.
pub fn clear_override(ctx: &mut WriteCtx<'_>, tenant: &Uuid) -> Result<Override> {
    let t = crate::tenants::queries::get(ctx, tenant)?;
    let o = queries::override_of(ctx, tenant)?
        .ok_or_else(|| Error::not_found("enforcement override", tenant.to_string()))?;
    ctx.delete(OVERRIDES, tenant.as_bytes())?;
    ctx.audit(
        "enforcement.override.cleared.v1",
        &Subject::in_tenant(*tenant, "enforcement_override", tenant),
        override_data(&o),
    )?;
    let plans = queries::plans_by_code(ctx)?;
    reconcile(ctx, &t, &plans)?;
    Ok(o)
}

/// Writes this month's MRR snapshot (key `yyyymm` of `ctx.now`) unless it exists, with
/// `revenue.mrr.snapshot.v1` on the platform chain. Returns the period written, `None` when the
/// month already has its snapshot (so a daily schedule writes one per month, and a rerun
/// writes nothing).
pub fn snapshot_mrr(ctx: &mut WriteCtx<'_>) -> Result<Option<u32>> {
    let period = crate::metering::model::period_of(ctx.now);
    let key = queries::period_key(period);
    if ctx.contains(MRR_SNAPSHOTS, &key)? {
        return Ok(None);
    }
    let (mrr, paying_tenants) = queries::mrr(ctx)?;
    let rec = SnapshotRecord::V1 {
        at: to_micros(ctx.now),
        mrr: mrr.clone(),
        paying_tenants,
    };
    ctx.put_record(MRR_SNAPSHOTS, &key, &rec)?;
    ctx.audit(
        "revenue.mrr.snapshot.v1",
        &Subject::platform("mrr_snapshot", period),
        json!({
            "period": period,
            "mrr": mrr.iter().map(|m| json!({"currency": m.currency, "amount_minor": m.amount_minor})).collect::<Vec<_>>(),
            "paying_tenants": paying_tenants,
        }),
    )?;
    Ok(Some(period))
}

/// Shredding a tenant deletes its override and open exceptions (its `tenant.shredded.v1`
/// entry, written in the same write, closes its story; no per-exception entry is written on a
/// chain whose data was just shredded).
pub fn shred(ctx: &mut WriteCtx<'_>, tenant: &Uuid) -> Result<u64> {
    let mut n = u64::from(ctx.delete(OVERRIDES, tenant.as_bytes())?);
    for (reason, _) in queries::exceptions_of(ctx, tenant)? {
        ctx.delete(EXCEPTIONS, &exception_key(tenant, reason))?;
        ctx.delete(EXCEPTIONS_BY_REASON, &reason_key(reason, tenant))?;
        n += 1;
    }
    Ok(n)
}
