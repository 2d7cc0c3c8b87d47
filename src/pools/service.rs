//! Pool rules: the default layout, assignment by tier, release at shred, status flips, and route
//! resolution (PRODUCT.md B8, operator guide §2).
//!
//! Every function that changes state takes the caller's [`WriteCtx`] and appends its audit entry
//! there; every check happens before the first write.

use serde_json::json;
use uuid::Uuid;

use super::model::{POOLS, Pool, PoolKind, PoolRecord, PoolStatus, Route, from_pool_key, pool_key};
use super::queries::{get, list};
use crate::audit::ledger::{Audit, Subject};
use crate::config::PoolLayout;
use crate::error::{Error, Result};
use crate::store::{Dir, Range, Reader, Topic, WriteCtx};
use crate::tenants::model::{AppPools, PoolAssignment, State, Tenant, Tier};

fn save(ctx: &mut WriteCtx<'_>, pool: &Pool) -> Result<()> {
    ctx.put_record(
        POOLS,
        &pool_key(pool.kind, pool.number),
        &PoolRecord::from(pool),
    )?;
    ctx.touch(Topic::Pool(pool.id.clone()));
    Ok(())
}

fn next_number(r: &impl Reader, kind: PoolKind) -> Result<u32> {
    let range = Range::prefix(&[kind as u8]);
    Ok(match r.first(POOLS, &range, Dir::Desc)? {
        Some((k, _)) => from_pool_key(&k).map_or(1, |(_, n)| n + 1),
        None => 1,
    })
}

fn create(
    ctx: &mut WriteCtx<'_>,
    kind: PoolKind,
    number: u32,
    module: Option<String>,
    dedicated_to: Option<Uuid>,
) -> Result<Pool> {
    let pool = Pool {
        id: super::model::pool_id(kind, number),
        kind,
        number,
        module,
        dedicated_to,
        status: PoolStatus::Active,
        status_reason: None,
        status_since: ctx.now,
        tenant_count: 0,
        created_at: ctx.now,
    };
    save(ctx, &pool)?;
    ctx.audit(
        "pool.created.v1",
        &Subject::platform("pool", &pool.id),
        json!({
            "kind": kind,
            "number": number,
            "module": pool.module,
            "dedicated_to": dedicated_to.map(|t| t.to_string()),
        }),
    )?;
    Ok(pool)
}

/// Creates the default layout (numbered shared admin pools, and shared app pools per module)
/// when no pool exists yet; adds shared app pools for modules added to the config since.
/// Returns how many pools were created.
pub fn ensure_layout(ctx: &mut WriteCtx<'_>, layout: &PoolLayout) -> Result<usize> {
    let existing = list(ctx)?;
    let mut created = 0;
    if !existing.iter().any(|p| p.kind == PoolKind::Admin) {
        for _ in 0..layout.admin_pools {
            let n = next_number(ctx, PoolKind::Admin)?;
            create(ctx, PoolKind::Admin, n, None, None)?;
            created += 1;
        }
    }
    for module in &layout.modules {
        let has = existing
            .iter()
            .any(|p| p.kind == PoolKind::App && p.module.as_deref() == Some(module.as_str()));
        if !has {
            for _ in 0..layout.app_pools_per_module {
                let n = next_number(ctx, PoolKind::App)?;
                create(ctx, PoolKind::App, n, Some(module.clone()), None)?;
                created += 1;
            }
        }
    }
    Ok(created)
}

fn least_loaded<'a>(pools: &'a [Pool], kind: PoolKind, module: Option<&str>) -> Option<&'a Pool> {
    pools
        .iter()
        .filter(|p| p.kind == kind && p.dedicated_to.is_none() && p.status == PoolStatus::Active)
        .filter(|p| p.module.as_deref() == module)
        .min_by_key(|p| (p.tenant_count, p.number))
}

fn no_active(what: &str) -> Error {
    Error::Unavailable {
        code: crate::pools::model::NO_ACTIVE_POOL,
        detail: format!(
            "no active {what} pool is left: flip one back to active (POST /api/pools/{{id}}/status)"
        ),
    }
}

/// Assigns pools to a new tenant by tier: `S` the least-loaded active shared admin pool and, per
/// module, the least-loaded active shared app pool; `P` a shared admin pool and a new dedicated
/// app pool; `G` a new dedicated admin pool and a new dedicated app pool.
///
/// Errors: 503 `no_active_pool` when a shared pool is needed and none is active (checked before
/// anything is written).
pub fn assign(
    ctx: &mut WriteCtx<'_>,
    tenant: Uuid,
    tier: Tier,
    layout: &PoolLayout,
) -> Result<PoolAssignment> {
    let pools = list(ctx)?;
    let shared_admin = match tier {
        Tier::S | Tier::P => Some(
            least_loaded(&pools, PoolKind::Admin, None)
                .ok_or_else(|| no_active("shared admin"))?
                .id
                .clone(),
        ),
        Tier::G => None,
    };
    let shared_apps = if tier == Tier::S {
        let mut m = Vec::new();
        for module in &layout.modules {
            let p = least_loaded(&pools, PoolKind::App, Some(module))
                .ok_or_else(|| no_active(&format!("'{module}' app")))?;
            m.push((module.clone(), p.id.clone()));
        }
        Some(m)
    } else {
        None
    };
    // Checks are done; now write.
    let admin = match shared_admin {
        Some(id) => id,
        None => {
            let n = next_number(ctx, PoolKind::Admin)?;
            create(ctx, PoolKind::Admin, n, None, Some(tenant))?.id
        }
    };
    let app = match shared_apps {
        Some(m) => AppPools::Shared(m),
        None => {
            let n = next_number(ctx, PoolKind::App)?;
            AppPools::Dedicated(create(ctx, PoolKind::App, n, None, Some(tenant))?.id)
        }
    };
    let assignment = PoolAssignment { admin, app };
    for id in assignment.pool_ids() {
        let mut p = get(ctx, &id)?;
        p.tenant_count += 1;
        save(ctx, &p)?;
    }
    Ok(assignment)
}

/// Releases a shredded tenant's pools: counts go down, and its dedicated pools are drained
/// (audited as flips). Returns the ids released.
pub fn release(
    ctx: &mut WriteCtx<'_>,
    tenant: Uuid,
    assignment: &PoolAssignment,
) -> Result<Vec<String>> {
    let ids = assignment.pool_ids();
    for id in &ids {
        let mut p = match get(ctx, id) {
            Ok(p) => p,
            Err(Error::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        p.tenant_count = p.tenant_count.saturating_sub(1);
        if p.dedicated_to == Some(tenant) && p.status != PoolStatus::Drain {
            let from = p.status;
            p.status = PoolStatus::Drain;
            p.status_reason = Some(format!(
                "tenant {tenant} was shredded; dedicated pool released"
            ));
            p.status_since = ctx.now;
            save(ctx, &p)?;
            ctx.audit(
                "pool.status.flipped.v1",
                &Subject::platform("pool", &p.id),
                json!({"from": from, "to": PoolStatus::Drain, "reason": p.status_reason}),
            )?;
        } else {
            save(ctx, &p)?;
        }
    }
    Ok(ids)
}

/// Flips a pool's status with a reason, writing `pool.status.flipped.v1` on the platform chain.
///
/// Errors: 404 unknown pool; 409 `conflict` when the pool already has that status.
pub fn flip(ctx: &mut WriteCtx<'_>, id: &str, to: PoolStatus, reason: &str) -> Result<Pool> {
    let mut p = get(ctx, id)?;
    if p.status == to {
        return Err(Error::conflict(
            crate::error::CONFLICT,
            format!("pool {id} is already {}; nothing to change", to.as_str()),
        ));
    }
    let from = p.status;
    p.status = to;
    p.status_reason = Some(reason.to_string());
    p.status_since = ctx.now;
    save(ctx, &p)?;
    ctx.audit(
        "pool.status.flipped.v1",
        &Subject::platform("pool", id),
        json!({"from": from, "to": to, "reason": reason, "tenant_count": p.tenant_count}),
    )?;
    Ok(p)
}

/// Rendezvous (highest-random-weight) pick among active shared pools: stable for a tenant, and
/// spreads the tenants of a degraded pool over all the others.
fn rendezvous<'a>(
    pools: &'a [Pool],
    kind: PoolKind,
    module: Option<&str>,
    tenant: &Uuid,
) -> Option<&'a Pool> {
    pools
        .iter()
        .filter(|p| p.kind == kind && p.dedicated_to.is_none() && p.status == PoolStatus::Active)
        .filter(|p| p.module.as_deref() == module)
        .max_by_key(|p| {
            let mut h = blake3::Hasher::new();
            h.update(tenant.as_bytes());
            h.update(p.id.as_bytes());
            *h.finalize().as_bytes()
        })
}

/// Resolves the route of `tenant` for `module`: the assigned pools when active; otherwise, for
/// shared assignments, another active shared pool; never a `degraded` or `drain` pool.
///
/// Errors: 422 `validation_failed` for an unknown module; 409 `tenant_read_only` for an
/// offboarded tenant; 503 `no_active_pool` when no active pool can serve.
pub fn resolve(
    r: &impl Reader,
    tenant: &Tenant,
    module: &str,
    layout: &PoolLayout,
) -> Result<Route> {
    if !layout.modules.iter().any(|m| m == module) {
        return Err(Error::invalid(
            "module",
            format!(
                "module '{module}' is unknown: use one of {}",
                layout.modules.join(", ")
            ),
        ));
    }
    if tenant.state == State::Offboarded {
        return Err(Error::TenantReadOnly {
            tenant_id: tenant.id.to_string(),
            state: tenant.state.as_str().into(),
            hint: "it was shredded and has no routes",
        });
    }
    let pools = list(r)?;
    let find = |id: &str| pools.iter().find(|p| p.id == id);
    let mut rerouted = false;
    let admin = match find(&tenant.pools.admin) {
        Some(p) if p.status == PoolStatus::Active => p.id.clone(),
        Some(p) if p.dedicated_to.is_some() => {
            return Err(no_active(&format!("dedicated admin ({})", p.id)));
        }
        _ => {
            rerouted = true;
            rendezvous(&pools, PoolKind::Admin, None, &tenant.id)
                .ok_or_else(|| no_active("shared admin"))?
                .id
                .clone()
        }
    };
    let app = match &tenant.pools.app {
        AppPools::Dedicated(id) => match find(id) {
            Some(p) if p.status == PoolStatus::Active => p.id.clone(),
            _ => return Err(no_active(&format!("dedicated app ({id})"))),
        },
        AppPools::Shared(m) => {
            let assigned = m
                .iter()
                .find(|(md, _)| md == module)
                .and_then(|(_, id)| find(id));
            match assigned {
                Some(p) if p.status == PoolStatus::Active => p.id.clone(),
                _ => {
                    rerouted = true;
                    rendezvous(&pools, PoolKind::App, Some(module), &tenant.id)
                        .ok_or_else(|| no_active(&format!("'{module}' app")))?
                        .id
                        .clone()
                }
            }
        }
    };
    Ok(Route {
        tenant_id: tenant.id,
        module: module.to_string(),
        admin_pool: admin,
        app_pool: app,
        rerouted,
        tenant_state: tenant.state,
    })
}
