//! Invoices (operator guide §4, tenant admin guide §1, PRODUCT.md 14): the upcoming (draft)
//! invoice of each tenant and period, priced live from the maintained usage aggregates;
//! finalization with gapless numbers, immutable lines and the content's SHA-256 in the ledger;
//! PDF and CSV documents; payments, failures, voids; overdue invoices and delinquent tenants;
//! anomalies; showback by business unit; billing profiles.
//!
//! - [`model`]: the invoice (also the wire type), lines, states, indexes, billing profiles.
//! - [`service`]: drafts, finalization, payments, voids, overdue marking, the jobs' batches.
//! - [`queries`]: pricing a period, pages of invoices, upcoming, anomalies, showback.
//! - [`pdf`] and [`csv`]: the documents. [`api`] and [`views`]: HTTP and console.

pub mod api;
pub mod csv;
pub mod model;
pub mod pdf;
pub mod queries;
pub mod service;
pub mod views;

use crate::error::Result;
use crate::http::context::{Context, NavItem, Now};
use crate::rbac::{Access, Permission, Route, Scope};
use crate::state::AppState;

/// The invoices context.
pub const CONTEXT: Context = Context {
    name: "invoices",
    tags: &[(
        "invoices",
        "Invoices, payments, delinquency, showback and billing profiles (operator guide §4)",
    )],
    api: api::router,
    views: views::router,
    routes: ROUTES,
    nav: &[NavItem::new(
        "/platform/invoices",
        "Invoices",
        Permission::Read,
    )],
    events: &[
        "invoice.finalized.v1",
        "invoice.payment.recorded.v1",
        "invoice.paid.v1",
        "invoice.payment_failed.v1",
        "invoice.voided.v1",
        "invoice.overdue.v1",
        "tenant.delinquent.v1",
        "tenant.delinquency.cleared.v1",
        "tenant.billing_profile.updated.v1",
    ],
    tenant_panels: &[views::tenant_panel],
    on_shred: &[service::shred],
    ..Context::EMPTY
};

const ROUTES: &[Route] = {
    use Access::*;
    use Permission::*;
    &[
        ("GET", "/api/invoices", Requires(Read)),
        ("GET", "/api/invoices/{id}", Requires(Read)),
        (
            "POST",
            "/api/invoices/{id}/finalize",
            Requires(BillingManage),
        ),
        (
            "POST",
            "/api/invoices/{id}/payments",
            Requires(BillingManage),
        ),
        (
            "POST",
            "/api/invoices/{id}/payment-failures",
            Requires(BillingManage),
        ),
        ("POST", "/api/invoices/{id}/void", Requires(BillingManage)),
        (
            "GET",
            "/api/tenants/{id}/invoices",
            Tenant(Scope::BillingRead, Read),
        ),
        (
            "GET",
            "/api/tenants/{id}/invoices/upcoming",
            Tenant(Scope::BillingRead, Read),
        ),
        (
            "GET",
            "/api/tenants/{id}/invoices/{invoice_id}",
            Tenant(Scope::BillingRead, Read),
        ),
        (
            "GET",
            "/api/tenants/{id}/showback",
            Tenant(Scope::BillingRead, Read),
        ),
        (
            "GET",
            "/api/tenants/{id}/billing-profile",
            Tenant(Scope::BillingRead, Read),
        ),
        (
            "PUT",
            "/api/tenants/{id}/billing-profile",
            Tenant(Scope::TenantAdmin, BillingManage),
        ),
        ("GET", "/platform/invoices", Requires(Read)),
        ("GET", "/platform/invoices/{id}", Requires(Read)),
        (
            "POST",
            "/platform/invoices/{id}/{action}",
            Requires(BillingManage),
        ),
        (
            "POST",
            "/platform/tenants/{id}/billing-profile",
            Requires(BillingManage),
        ),
        (
            "GET",
            "/tenant/{tenant_id}/billing/invoices/{invoice_id}",
            Tenant(Scope::BillingRead, Read),
        ),
        (
            "GET",
            "/tenant/{tenant_id}/billing/showback",
            Tenant(Scope::BillingRead, Read),
        ),
    ]
};

/// The `finalize_invoices` job: finalizes the drafts of closed periods, then opens the current
/// period's draft of every billable tenant (a bounded walk, one write per batch, resumed by the
/// next run from a cursor kept in the store).
///
/// Errors: storage errors.
pub async fn finalize_invoices(state: &AppState, now: Now) -> Result<String> {
    let cfg = state.config().billing.clone();
    let actor = crate::actor::Actor::job("finalize_invoices");
    let mut finalized = 0usize;
    let mut skip: Vec<uuid::Uuid> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    loop {
        let cfg = cfg.clone();
        let skip_now = skip.clone();
        let (done, bad) = state
            .store()
            .write(now, actor.clone(), move |ctx| {
                service::finalize_closed(ctx, &cfg, &skip_now)
            })
            .await?;
        finalized += done.len();
        for b in &bad {
            if let Some(id) = b.split(':').next().and_then(crate::ids::parse_uuid) {
                skip.push(id);
            }
        }
        problems.extend(bad.clone());
        if done.is_empty() && bad.is_empty() {
            break;
        }
        if done.len() + bad.len() < service::JOB_BATCH && bad.is_empty() {
            break;
        }
    }
    let mut opened = 0usize;
    let mut after = None;
    loop {
        let (last, n) = state
            .store()
            .write(now, actor.clone(), move |ctx| {
                service::open_drafts(ctx, after)
            })
            .await?;
        opened += n;
        match last {
            Some(l) => after = Some(l),
            None => break,
        }
    }
    for p in &problems {
        tracing::warn!(problem = %p, "an invoice could not be finalized");
    }
    Ok(format!(
        "finalized {finalized} invoice{}, opened {opened} draft{}{}",
        if finalized == 1 { "" } else { "s" },
        if opened == 1 { "" } else { "s" },
        if problems.is_empty() {
            String::new()
        } else {
            format!(
                "; {} left as drafts: {}",
                problems.len(),
                problems.join("; ")
            )
        }
    ))
}

/// The `mark_delinquent` job: marks invoices past due overdue and their tenants delinquent, one
/// bounded write per batch.
///
/// Errors: storage errors.
pub async fn mark_delinquent(state: &AppState, now: Now) -> Result<String> {
    let actor = crate::actor::Actor::job("mark_delinquent");
    let mut total = 0usize;
    loop {
        let n = state
            .store()
            .write(now, actor.clone(), service::mark_overdue)
            .await?;
        total += n;
        if n < service::JOB_BATCH {
            break;
        }
    }
    let delinquent = state.read(queries::delinquent_count).await?;
    Ok(format!(
        "{total} invoice{} became overdue; {delinquent} tenant{} delinquent",
        if total == 1 { "" } else { "s" },
        if delinquent == 1 { " is" } else { "s are" }
    ))
}
