//! Revenue posture and plan enforcement (PRODUCT.md 11 and 14, platform dashboard spec §3.4,
//! HQ PRD §6 `plan_enforcer_worker`): MRR, its monthly trend, plan distribution and trials,
//! all from counters maintained with every tenant change (`tenants::posture`), never from a
//! scan; and entitlement exceptions, kept by the hourly `plan_enforcer` job and by operators'
//! enforcement overrides.
//!
//! - [`model`]: monthly normalization, reasons, snapshots, exceptions, overrides, tables.
//! - [`service`]: reconciling a tenant's exceptions, the enforcer's batches, overrides, the
//!   MRR snapshot.
//! - [`queries`]: the posture, the trend, the exceptions page, a tenant's findings.
//! - [`api`]: `/api/platform/revenue`, `/api/platform/enforcement/exceptions`,
//!   `/api/tenants/{id}/enforcement/override`. [`views`]: `/platform/enforcement`.
//!
//! Delinquency belongs to invoices; the posture leaves a marked spot for it
//! ([`queries::Posture`]).

pub mod api;
pub mod model;
pub mod queries;
pub mod service;
pub mod views;

use chrono::{DateTime, Utc};

use crate::actor::Actor;
use crate::error::Result;
use crate::http::context::{Context, NavItem};
use crate::rbac::{Access, Permission, Route};
use crate::state::AppState;
use crate::store::Reader;

/// The revenue-posture context.
pub const CONTEXT: Context = Context {
    name: "revenue",
    tags: &[(
        "revenue",
        "Revenue posture (MRR, plan distribution, trials) and entitlement exceptions (dashboard spec §3.4, HQ PRD §6)",
    )],
    api: api::router,
    views: views::router,
    routes: ROUTES,
    nav: &[NavItem::new(
        "/platform/enforcement",
        "Enforcement",
        Permission::Read,
    )],
    events: &[
        "plan.limit.exceeded.v1",
        "plan.limit.resolved.v1",
        "enforcement.override.set.v1",
        "enforcement.override.cleared.v1",
        "revenue.mrr.snapshot.v1",
    ],
    on_shred: &[service::shred],
    ..Context::EMPTY
};

const ROUTES: &[Route] = {
    use Access::*;
    use Permission::*;
    &[
        ("GET", "/api/platform/revenue", Requires(Read)),
        (
            "GET",
            "/api/platform/enforcement/exceptions",
            Requires(Read),
        ),
        (
            "GET",
            "/api/tenants/{id}/enforcement/override",
            Requires(Read),
        ),
        (
            "PUT",
            "/api/tenants/{id}/enforcement/override",
            Requires(BillingManage),
        ),
        (
            "DELETE",
            "/api/tenants/{id}/enforcement/override",
            Requires(BillingManage),
        ),
        ("GET", "/platform/enforcement", Requires(Read)),
        (
            "POST",
            "/platform/enforcement/overrides",
            Requires(BillingManage),
        ),
        (
            "POST",
            "/platform/enforcement/overrides/{tenant_id}/clear",
            Requires(BillingManage),
        ),
    ]
};

/// Tenants reconciled per write request of `plan_enforcer`.
pub const ENFORCER_BATCH: usize = 200;

/// The `plan_enforcer` job (hourly; HQ PRD §6): pages through every tenant in batches of
/// [`ENFORCER_BATCH`], one bounded write request per batch, opening and closing entitlement
/// exceptions (each with its event on the tenant's chain). Returns the run's summary.
///
/// Errors: storage errors (batches already written stay written; the next run goes on).
pub async fn enforce(state: &AppState, now: DateTime<Utc>) -> Result<String> {
    let actor = Actor::job("plan_enforcer");
    let mut after: Option<Vec<u8>> = None;
    let (mut checked, mut unreadable, mut opened, mut closed) = (0usize, 0usize, 0usize, 0usize);
    loop {
        let from = after.clone();
        let b = state
            .store()
            .write(now, actor.clone(), move |ctx| {
                service::enforce_batch(ctx, from.as_deref(), ENFORCER_BATCH)
            })
            .await?;
        checked += b.checked;
        unreadable += b.unreadable;
        opened += b.changed.opened;
        closed += b.changed.closed;
        match b.next {
            Some(k) => after = Some(k),
            None => break,
        }
    }
    let open = state.read(|r| Ok(r.len(model::EXCEPTIONS)?)).await?;
    let mut summary = format!(
        "checked {checked} tenant{}: {opened} exception{} opened, {closed} closed, {open} open",
        if checked == 1 { "" } else { "s" },
        if opened == 1 { "" } else { "s" },
    );
    if unreadable > 0 {
        summary.push_str(&format!("; {unreadable} unreadable record(s) skipped"));
    }
    Ok(summary)
}

/// The `snapshot_mrr` job (daily): writes this month's MRR snapshot on its first run of the
/// month, nothing on later runs.
///
/// Errors: storage errors.
pub async fn snapshot(state: &AppState, now: DateTime<Utc>) -> Result<String> {
    let written = state
        .store()
        .write(now, Actor::job("snapshot_mrr"), service::snapshot_mrr)
        .await?;
    Ok(match written {
        Some(p) => format!("wrote the MRR snapshot of {:04}-{:02}", p / 100, p % 100),
        None => "this month's MRR snapshot exists; nothing written".to_string(),
    })
}
