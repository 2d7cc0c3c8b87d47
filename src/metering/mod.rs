//! Metering (PRODUCT.md 13, tenant admin guide §1): usage events ingested in batches,
//! idempotent by `event_id`, attributed to API keys, personas and business units; aggregates
//! maintained in the same write; soft caps that warn and never block; the live meter.
//!
//! - [`model`]: events, periods, tables, rejection reasons.
//! - [`service`]: ingest, soft-cap crossings, pruning raw events.
//! - [`queries`]: the live meter and the crossings of a period.
//! - [`api`]: `POST /api/usage/events`, `GET /api/tenants/{id}/usage/live`.
//! - [`views`]: the Tenant console's Billing page and the tenant detail's usage panel.

pub mod api;
pub mod model;
pub mod queries;
pub mod service;
pub mod views;

use crate::catalogs::caps::Over;
use crate::config::Config;
use crate::error::Result;
use crate::http::context::{Context, NavItem};
use crate::rbac::{Access, Credential, Permission, Principal, Route, Scope};
use crate::state::AppState;
use model::{Event, Reason, period_of};
use service::{Outcome, Poster};

/// The metering context.
pub const CONTEXT: Context = Context {
    name: "metering",
    tags: &[(
        "usage",
        "Usage events, soft caps and the live meter (PRODUCT.md 13)",
    )],
    api: api::router,
    views: views::router,
    routes: ROUTES,
    nav: &[NavItem::tenant("/tenant/{tenant_id}/billing", "Billing", Scope::BillingRead).order(30)],
    events: &["usage.soft_cap.exceeded.v1"],
    uploads: &[("/api/usage/events", ingest_limit)],
    tenant_panels: &[views::tenant_panel],
    on_shred: &[service::shred_events],
    ..Context::EMPTY
};

/// A full batch with properties is over the default 1 MiB.
fn ingest_limit(config: &Config) -> usize {
    config.body_limit_bytes.max(2 * 1024 * 1024)
}

const ROUTES: &[Route] = {
    use Access::*;
    use Permission::*;
    &[
        (
            "POST",
            "/api/usage/events",
            TenantInBody(Scope::UsageWrite, BillingManage),
        ),
        (
            "GET",
            "/api/tenants/{id}/usage/live",
            Tenant(Scope::BillingRead, Read),
        ),
        (
            "GET",
            "/tenant/{tenant_id}/billing",
            Tenant(Scope::BillingRead, Read),
        ),
    ]
};

/// Ingests a batch for `principal` in one write request (durable when it returns), updates the
/// board of soft caps, and returns each event's outcome and the `Warning` values of every tenant
/// of the batch that is over a cap.
///
/// Errors: storage errors only (each bad event is an outcome).
pub async fn ingest(
    state: &AppState,
    principal: &Principal,
    events: Vec<std::result::Result<Event, (Reason, String)>>,
) -> Result<(Vec<Outcome>, Vec<String>)> {
    let poster = match principal.tenant() {
        Some(t) => Poster {
            tenant: Some(t.tenant_id),
            api_key: match &t.credential {
                Credential::ApiKey(k) => Some(*k),
                Credential::Token { key_id, .. } => Some(*key_id),
                Credential::Session => None,
            },
            persona: Some(t.persona_id),
        },
        None => Poster::default(),
    };
    let now = state.clock().now();
    // The writer thread only borrows the events: they are freed here, on the thread that
    // allocated them, and not in the writer, which is the ingest path's bottleneck (issue 10).
    let events = std::sync::Arc::new(events);
    let shared = events.clone();
    // A batch weighs its events, so one commit takes at most `MAX_WEIGHT` of them.
    let done = state
        .write_weighted(principal.actor.clone(), events.len() as u64, move |ctx| {
            service::ingest(ctx, &poster, &shared)
        })
        .await?;
    drop(events);
    let period = period_of(now);
    let mut warnings = Vec::new();
    for (tenant, over) in done.over {
        warnings.extend(over.iter().map(Over::warning));
        state.caps().set(tenant, period, over);
    }
    Ok((done.outcomes, warnings))
}

/// Fills the board of soft caps from the store at start: the current period's crossings whose
/// SKU is still over the tenant's cap.
pub async fn load_caps(state: &AppState) -> Result<()> {
    let now = state.clock().now();
    let period = period_of(now);
    let board = state
        .read(move |r| {
            let mut by_tenant: std::collections::HashMap<uuid::Uuid, Vec<Over>> =
                std::collections::HashMap::new();
            for (t, sku, _, _) in queries::crossings(r, period)? {
                let Some((pin, _, v)) = crate::catalogs::queries::pinned_version(r, &t)? else {
                    continue;
                };
                let Some(cap) = v.rate(&sku).and_then(|rate| pin.soft_cap(rate)) else {
                    continue;
                };
                let used = queries::total(r, &t, period, &sku)?;
                if used > cap {
                    by_tenant
                        .entry(t)
                        .or_default()
                        .push(Over { sku, used, cap });
                }
            }
            Ok(by_tenant)
        })
        .await?;
    for (t, over) in board {
        state.caps().set(t, period, over);
    }
    Ok(())
}
