//! `/platform/invoices`: the invoice list (filters by tenant, period, status, overdue; the
//! reconciliation CSV), an invoice's page (lines with the catalog version that priced them,
//! PDF and CSV, finalize, payments, failures, void); the Tenant console's invoice documents and
//! showback CSV; the operator's tenant-detail panel "Billing" (profile and revenue summary).

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::model::{Invoice, Status};
use super::queries::{self, InvoiceFilter};
use super::service;
use crate::console::fmt::{money, when};
use crate::console::layout::{Ctx, Tone, badge, empty, header, page, redirect};
use crate::console::{ConsoleError, PageResult};
use crate::error::{Error, Result};
use crate::rbac::{Permission, Principal};
use crate::state::AppState;
use crate::store::ReadCtx;

/// The invoice pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/platform/invoices", get(view_invoices_get))
        .route("/platform/invoices/{id}", get(view_invoice_get))
        .route("/platform/invoices/{id}/{action}", post(view_invoice_post))
        .route(
            "/tenant/{tenant_id}/billing/invoices/{invoice_id}",
            get(view_tenant_invoice_get),
        )
        .route(
            "/tenant/{tenant_id}/billing/showback",
            get(view_tenant_showback_get),
        )
        .route(
            "/platform/tenants/{id}/billing-profile",
            post(view_profile_post),
        )
}

/// The billing-profile form of the tenant detail.
#[derive(Deserialize, Default)]
pub struct ProfileForm {
    /// Legal name.
    pub name: Option<String>,
    /// Invoice email.
    pub email: Option<String>,
    /// Address, one line per line.
    pub address: Option<String>,
    /// Tax id.
    pub tax_id: Option<String>,
    /// PO number.
    pub po_number: Option<String>,
    /// Net days (empty: the install's default).
    pub net_days: Option<String>,
}

/// `POST /platform/tenants/{id}/billing-profile`: replaces the profile; refused input is shown
/// as the flash and changes nothing.
pub async fn view_profile_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(f): Form<ProfileForm>,
) -> PageResult {
    let tenant = crate::error::path_id("tenant", &id).map_err(ConsoleError)?;
    let back = format!("/platform/tenants/{tenant}");
    let net_days = match f
        .net_days
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(d) => match d.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                return Ok(redirect(
                    &back,
                    Tone::Critical,
                    "net days must be a number of days (1-365)",
                ));
            }
        },
    };
    let draft = service::ProfileDraft {
        name: f.name,
        email: f.email,
        address: f
            .address
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect(),
        tax_id: f.tax_id,
        po_number: f.po_number,
        net_days,
    };
    let profile = match draft.parse() {
        Ok(p) => p,
        Err(e) => return Ok(redirect(&back, Tone::Critical, &e.to_string())),
    };
    state
        .write(ctx.principal.actor.clone(), move |w| {
            service::set_profile(w, &tenant, &profile)
        })
        .await
        .map_err(ConsoleError)?;
    Ok(redirect(&back, Tone::Ok, "Billing profile saved."))
}

/// The badge of an invoice's state.
pub fn status_badge(inv: &Invoice) -> Markup {
    let tone = match inv.status {
        Status::Draft => Tone::Info,
        Status::Finalized if inv.overdue => Tone::Critical,
        Status::Finalized => Tone::Warn,
        Status::Paid => Tone::Ok,
        Status::Void => Tone::Neutral,
    };
    html! {
        (badge(tone, inv.status.as_str()))
        @if inv.overdue { " " (badge(Tone::Critical, "overdue")) }
        @if !inv.anomalies.is_empty() { " " (badge(Tone::Warn, "anomaly")) }
    }
}

fn period_text(p: u32) -> String {
    format!("{}-{:02}", p / 100, p % 100)
}

/// A table of invoices; `link` gives each row's page.
pub fn table(items: &[(Invoice, String)], link: &dyn Fn(&Invoice) -> String) -> Markup {
    html! {
        div.table-wrap { table {
            thead { tr {
                th scope="col" { "Number" } th scope="col" { "Tenant" } th scope="col" { "Period" }
                th scope="col" { "Status" } th scope="col" { "Total" } th scope="col" { "Due" }
            } }
            tbody { @for (inv, name) in items {
                tr {
                    td { a href=(link(inv)) { (inv.number.as_deref().unwrap_or("draft")) } }
                    td { (name) }
                    td { (period_text(inv.period)) }
                    td { (status_badge(inv)) }
                    td { (money(inv.total_minor, &inv.currency)) }
                    td { @if let Some(d) = inv.due_at { (when(d)) } @else { "—" } }
                }
            } }
        } }
    }
}

fn named(r: &ReadCtx, items: Vec<Invoice>) -> Vec<(Invoice, String)> {
    items
        .into_iter()
        .map(|i| {
            let name = crate::tenants::directory::load(r, &i.tenant_id)
                .map(|t| t.display_name)
                .unwrap_or_default();
            (i, name)
        })
        .collect()
}

/// `GET /platform/invoices`: filters, the page, and the reconciliation CSV link.
pub async fn view_invoices_get(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(f): Query<InvoiceFilter>,
) -> PageResult {
    let fq = f.clone();
    let (rows, next, delinquent) = state
        .read(move |r| {
            let page = queries::list(r, None, &fq)?;
            Ok((
                named(r, page.items),
                page.next.map(|c| c.encode()),
                queries::delinquent_count(r)?,
            ))
        })
        .await
        .map_err(ConsoleError)?;
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    let query = serde_urlencoded::to_string([
        ("tenant_id", v(&f.tenant_id)),
        ("period", v(&f.period)),
        ("status", v(&f.status)),
    ])
    .unwrap_or_default();
    Ok(page(
        &ctx,
        "Invoices",
        html! {
            (header("Invoices", Some("Drafts follow usage; finalized invoices are numbered and immutable."),
                html! { a.button href={"/platform/invoices/reconciliation.csv?" (query)} { "Reconciliation CSV" } }))
            @if delinquent > 0 { p { (badge(Tone::Critical, "delinquent")) " " (delinquent) " tenant(s) have overdue invoices." } }
            form.filters method="get" action="/platform/invoices" {
                label { "Tenant id " input type="text" name="tenant_id" value=(v(&f.tenant_id)); }
                label { "Period (yyyymm) " input type="text" name="period" value=(v(&f.period)) inputmode="numeric"; }
                label { "Status " select name="status" {
                    option value="" { "any" }
                    @for s in Status::ALL { option value=(s.as_str()) selected[f.status.as_deref() == Some(s.as_str())] { (s.as_str()) } }
                } }
                button type="submit" { "Filter" }
            }
            @if rows.is_empty() {
                (empty("No invoices match.", html! { "Drafts open when a tenant gets a plan or a catalog pin, or posts usage." }))
            } @else {
                (table(&rows, &|i| format!("/platform/invoices/{}", i.id)))
            }
            @if let Some(c) = next {
                p { a href={"/platform/invoices?" (query) "&cursor=" (c)} { "Next page →" } }
            }
        },
    ))
}

fn lines(inv: &Invoice) -> Markup {
    html! {
        div.table-wrap { table {
            thead { tr { th scope="col" { "Line" } th scope="col" { "Quantity" } th scope="col" { "Included" } th scope="col" { "Priced by" } th scope="col" { "Amount" } } }
            tbody { @for l in &inv.lines {
                tr {
                    td { (l.description) }
                    td { @if l.sku.is_some() { (l.quantity) } }
                    td { @if l.sku.is_some() { (l.included) } }
                    td { @if let (Some(c), Some(v)) = (l.catalog_id, l.catalog_version) {
                        a href={"/platform/catalogs/" (c) "/versions/" (v)} { "v" (v) }
                    } @else if let Some(p) = &l.plan { "plan " code { (p) } } }
                    td { (money(l.amount_minor, &inv.currency)) }
                }
            } }
            tfoot { tr { th scope="row" colspan="4" { "Total" } td { strong { (money(inv.total_minor, &inv.currency)) } } } }
        } }
    }
}

fn facts(inv: &Invoice) -> Markup {
    html! {
        dl.facts {
            dt { "Period" } dd { (period_text(inv.period)) }
            @if let Some(t) = inv.issued_at { dt { "Issued" } dd { (when(t)) } }
            @if let Some(t) = inv.due_at { dt { "Due" } dd { (when(t)) } }
            dt { "Paid" } dd { (money(inv.amount_paid_minor, &inv.currency)) @if let Some(r) = &inv.payment_reference { " (" (r) ")" } }
            dt { "Amount due" } dd { (money(inv.amount_due_minor, &inv.currency)) }
            @if inv.payment_failures > 0 { dt { "Failed payments" } dd { (inv.payment_failures) ": " (inv.last_payment_failure.as_deref().unwrap_or("")) } }
            @if let Some(r) = &inv.void_reason { dt { "Voided" } dd { (r) } }
            @for a in &inv.anomalies { dt { "Anomaly" } dd { code { (a.sku) } " " (a.quantity) " this period, over 10× the trailing average of " (a.trailing_average) } }
            @if let Some(s) = &inv.content_sha256 { dt { "Content SHA-256" } dd { code { (s) } } }
        }
    }
}

/// `GET /platform/invoices/{id}` (and `{id}.pdf`, `{id}.csv`, `reconciliation.csv`).
pub async fn view_invoice_get(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(f): Query<InvoiceFilter>,
) -> std::result::Result<Response, ConsoleError> {
    if id == "reconciliation.csv" {
        return super::api::reconciliation(&state, None, f)
            .await
            .map_err(ConsoleError);
    }
    if id.ends_with(".pdf") || id.ends_with(".csv") {
        return super::api::answer(&state, None, &id)
            .await
            .map_err(ConsoleError);
    }
    let iid = crate::error::path_id("invoice", &id).map_err(ConsoleError)?;
    let (inv, name) = state
        .read(move |r| {
            let inv = queries::get(r, &iid)?;
            let name = crate::tenants::directory::load(r, &inv.tenant_id)
                .map(|t| t.display_name)
                .unwrap_or_default();
            Ok((inv, name))
        })
        .await
        .map_err(ConsoleError)?;
    let base = format!("/platform/invoices/{}", inv.id);
    let manage = ctx.can(Permission::BillingManage) && !ctx.read_only();
    let title = inv
        .number
        .clone()
        .unwrap_or_else(|| format!("Draft {}", period_text(inv.period)));
    Ok(page(
        &ctx,
        &title,
        html! {
            (header(&title, Some(&name), html! {
                @if inv.number.is_some() {
                    a.button href={(base) ".pdf"} { "PDF" } " "
                    a.button href={(base) ".csv"} { "CSV" }
                }
            }))
            p { (status_badge(&inv)) " " a href={"/platform/tenants/" (inv.tenant_id)} { "Tenant" } }
            (facts(&inv))
            (lines(&inv))
            @if manage {
                @match inv.status {
                    Status::Draft => {
                        form method="post" action={(base) "/finalize"} { (ctx.csrf())
                            button.primary type="submit" { "Finalize now (numbers it; it can no longer change)" } }
                    }
                    Status::Finalized => {
                        section.card {
                            h2 { "Record a payment" }
                            form method="post" action={(base) "/payments"} { (ctx.csrf())
                                label { "Amount (minor units) " input type="number" name="amount_minor" min="1" value=(inv.amount_due_minor) required; }
                                label { "Reference " input type="text" name="reference" maxlength="200"; }
                                button.primary type="submit" { "Record payment" } }
                            h2 { "Record a failed payment" }
                            form method="post" action={(base) "/payment-failures"} { (ctx.csrf())
                                label { "Reason " input type="text" name="reason" maxlength="200" required; }
                                button type="submit" { "Record failure" } }
                            h2 { "Void" }
                            form method="post" action={(base) "/void"} { (ctx.csrf())
                                label { "Reason " input type="text" name="reason" maxlength="200" required; }
                                button.danger type="submit" { "Void invoice" } }
                        }
                    }
                    _ => {}
                }
            }
        },
    )
    .into_response())
}

/// The forms of an invoice's page.
#[derive(Deserialize, Default)]
pub struct ActionForm {
    /// Payment amount.
    pub amount_minor: Option<i64>,
    /// Payment reference.
    pub reference: Option<String>,
    /// Failure or void reason.
    pub reason: Option<String>,
}

/// `POST /platform/invoices/{id}/{finalize|payments|payment-failures|void}`.
pub async fn view_invoice_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<ActionForm>,
) -> PageResult {
    let iid = crate::error::path_id("invoice", &id).map_err(ConsoleError)?;
    let actor = ctx.principal.actor.clone();
    let cfg = state.config().billing.clone();
    let reason = f.reason.unwrap_or_default();
    let result = match action.as_str() {
        "finalize" => {
            state
                .write(actor, move |w| service::finalize(w, &cfg, &iid))
                .await
        }
        "payments" => {
            let amount = f.amount_minor.unwrap_or(0);
            let reference = f.reference.filter(|r| !r.trim().is_empty());
            state
                .write(actor, move |w| {
                    service::record_payment(w, &iid, amount, reference.as_deref())
                })
                .await
        }
        "payment-failures" => {
            state
                .write(actor, move |w| service::record_failure(w, &iid, &reason))
                .await
        }
        "void" => {
            state
                .write(actor, move |w| service::void(w, &iid, &reason))
                .await
        }
        _ => Err(Error::not_found("action", &action)),
    };
    let back = format!("/platform/invoices/{iid}");
    match result {
        Ok(inv) => Ok(redirect(
            &back,
            Tone::Ok,
            &format!(
                "Invoice {} is {}.",
                inv.number.as_deref().unwrap_or("draft"),
                inv.status.as_str()
            ),
        )),
        Err(e @ (Error::Conflict { .. } | Error::Validation { .. })) => {
            Ok(redirect(&back, Tone::Critical, &e.to_string()))
        }
        Err(e) => Err(ConsoleError(e)),
    }
}

/// `GET /tenant/{tenant_id}/billing/invoices/{invoice_id}[.pdf|.csv]`: the tenant's own
/// invoice documents (the JSON form for the bare id).
pub async fn view_tenant_invoice_get(
    State(state): State<AppState>,
    Path((tenant, invoice)): Path<(String, String)>,
) -> std::result::Result<Response, ConsoleError> {
    let t = crate::error::path_id("tenant", &tenant).map_err(ConsoleError)?;
    super::api::answer(&state, Some(t), &invoice)
        .await
        .map_err(ConsoleError)
}

/// `?period=yyyymm`.
#[derive(Deserialize, Default)]
pub struct PeriodQuery {
    /// `yyyymm`.
    pub period: Option<String>,
}

/// `GET /tenant/{tenant_id}/billing/showback?period=`: showback as CSV.
pub async fn view_tenant_showback_get(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(q): Query<PeriodQuery>,
) -> std::result::Result<Response, ConsoleError> {
    let t = crate::error::path_id("tenant", &tenant).map_err(ConsoleError)?;
    let period = match q.period.as_deref().filter(|p| !p.trim().is_empty()) {
        Some(p) => queries::parse_period(p).map_err(ConsoleError)?,
        None => crate::metering::model::period_of(state.clock().now()),
    };
    let (currency, rows) = state
        .read(move |r| queries::showback(r, &t, period))
        .await
        .map_err(ConsoleError)?;
    let bytes = super::csv::showback(period, &currency, &rows).map_err(ConsoleError)?;
    Ok(super::api::document(
        "text/csv; charset=utf-8",
        &format!("showback-{period}.csv"),
        bytes,
    ))
}

/// The Tenant console Billing page's sections below the live meter: invoices with their
/// documents, and this period's showback by business unit.
pub fn tenant_sections(r: &ReadCtx, tenant: &Uuid, now: DateTime<Utc>) -> Result<Markup> {
    let f = InvoiceFilter {
        limit: Some(12),
        ..InvoiceFilter::default()
    };
    let invoices = queries::list(r, Some(tenant), &f)?.items;
    let delinquent = queries::delinquent_since(r, tenant)?;
    let period = crate::metering::model::period_of(now);
    let (currency, rows) = queries::showback(r, tenant, period)?;
    let base = format!("/tenant/{tenant}/billing");
    Ok(html! {
        section.card #invoices {
            h2 { "Invoices" @if delinquent.is_some() { " " (badge(Tone::Critical, "payment overdue")) } }
            @if invoices.is_empty() {
                p.muted { "No invoices yet." }
            } @else {
                div.table-wrap { table {
                    thead { tr { th scope="col" { "Number" } th scope="col" { "Period" } th scope="col" { "Status" } th scope="col" { "Total" } th scope="col" { "Due" } th scope="col" { "Documents" } } }
                    tbody { @for inv in &invoices { tr {
                        td { (inv.number.as_deref().unwrap_or("upcoming")) }
                        td { (period_text(inv.period)) }
                        td { (status_badge(inv)) }
                        td { (money(inv.total_minor, &inv.currency)) }
                        td { @if let Some(d) = inv.due_at { (when(d)) } @else { "—" } }
                        td { @if inv.number.is_some() {
                            a href={(base) "/invoices/" (inv.id) ".pdf"} { "PDF" } " · "
                            a href={(base) "/invoices/" (inv.id) ".csv"} { "CSV" }
                        } }
                    } } }
                } }
            }
        }
        section.card #showback {
            h2 { "Showback by business unit" }
            p.muted { "This period's usage and cost split by the business unit of the persona or API key that drove it. " a href={(base) "/showback?period=" (period)} { "Download CSV" } }
            @if rows.is_empty() {
                p.muted { "No usage this period yet." }
            } @else {
                div.table-wrap { table {
                    thead { tr { th scope="col" { "Business unit" } th scope="col" { "SKU" } th scope="col" { "Quantity" } th scope="col" { "Cost" } } }
                    tbody { @for row in &rows { tr {
                        td { (row.business_unit) } td { code { (row.sku) } } td { (row.quantity) } td { (money(row.amount_minor, &currency)) }
                    } } }
                } }
            }
        }
    })
}

/// The operator's tenant detail: billing profile and revenue summary (F21.05.02).
pub fn tenant_panel(
    r: &ReadCtx,
    tenant: &Uuid,
    p: &Principal,
    now: DateTime<Utc>,
) -> Result<Markup> {
    let t = crate::tenants::directory::load(r, tenant)?;
    let profile = queries::profile(r, tenant)?;
    let upcoming = queries::upcoming(r, tenant, now)?;
    let f = InvoiceFilter {
        limit: Some(6),
        status: Some("finalized".into()),
        ..InvoiceFilter::default()
    };
    let open = queries::list(r, Some(tenant), &f)?.items;
    let balance: i64 = open.iter().map(|i| i.amount_due_minor).sum();
    let currency = upcoming.currency.clone();
    let plan = match &t.plan {
        Some(code) => crate::plans::queries::get(r, code).ok(),
        None => None,
    };
    let delinquent = queries::delinquent_since(r, tenant)?;
    Ok(html! {
        section.card #billing {
            h2 { "Billing"
                @if delinquent.is_some() { " " (badge(Tone::Critical, "delinquent")) }
                @if !upcoming.anomalies.is_empty() { " " (badge(Tone::Warn, "usage anomaly")) }
            }
            dl.facts {
                dt { "Plan" } dd { @if let Some(p) = &plan { (p.name) " — " (money(p.amount_minor, &p.currency)) " / " (p.interval.as_str()) } @else { "none" } }
                dt { "Upcoming invoice" } dd { (money(upcoming.total_minor, &currency)) " for " (period_text(upcoming.period)) }
                dt { "Open balance" } dd { (money(balance, &currency)) " on " (open.len()) " unpaid invoice(s)" }
                @if let Some(d) = delinquent { dt { "Delinquent since" } dd { (when(d)) } }
                @for a in &upcoming.anomalies { dt { "Anomaly" } dd { code { (a.sku) } " " (a.quantity) " vs trailing average " (a.trailing_average) } }
                dt { "Bill to" } dd {
                    (if profile.bill_to.name.is_empty() { t.display_name.clone() } else { profile.bill_to.name.clone() })
                    @for l in &profile.bill_to.address { br; (l) }
                    @if let Some(x) = &profile.bill_to.tax_id { br; "Tax id " (x) }
                }
                dt { "Payment terms" } dd { @match profile.net_days { Some(d) => { "net " (d) }, None => { "install default" } } }
            }
            p { a href={"/platform/invoices?tenant_id=" (tenant)} { "All invoices of this tenant →" } }
            @if p.can(Permission::BillingManage) {
                details {
                    summary { "Edit the billing profile" }
                    form method="post" action={"/platform/tenants/" (tenant) "/billing-profile"} {
                        (crate::console::layout::csrf_field(p))
                        label { "Legal name " input type="text" name="name" maxlength="200" value=(profile.bill_to.name); }
                        label { "Invoice email " input type="email" name="email" value=(profile.bill_to.email.clone().unwrap_or_default()); }
                        label { "Address (one line per line) " textarea name="address" rows="3" { (profile.bill_to.address.join("\n")) } }
                        label { "Tax id " input type="text" name="tax_id" value=(profile.bill_to.tax_id.clone().unwrap_or_default()); }
                        label { "PO number " input type="text" name="po_number" value=(profile.bill_to.po_number.clone().unwrap_or_default()); }
                        label { "Net days " input type="number" name="net_days" min="1" max="365" value=(profile.net_days.map(|d| d.to_string()).unwrap_or_default()); }
                        button type="submit" { "Save billing profile" }
                    }
                }
            }
        }
    })
}
