//! `/api/invoices...`, the tenant-scoped `/api/tenants/{id}/invoices...`, showback and billing
//! profiles. The invoice itself is the wire type ([`Invoice`]). `GET .../{invoice_id}.pdf` and
//! `.csv` give the documents of a finalized invoice (one route: the router matches whole path
//! segments, so the suffix is read from the id).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::model::{Invoice, Profile, Status};
use super::queries::{self, InvoiceFilter};
use super::service::{self, ProfileDraft};
use crate::error::{Error, path_id};
use crate::http::extract::{ApiJson, ApiQuery, Caller};
use crate::http::problem::{ApiResult, Problem};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(invoices_list))
        .routes(routes!(invoices_get))
        .routes(routes!(invoices_finalize))
        .routes(routes!(invoices_pay))
        .routes(routes!(invoices_fail))
        .routes(routes!(invoices_void))
        .routes(routes!(tenant_invoices))
        .routes(routes!(tenant_upcoming))
        .routes(routes!(tenant_invoice_get))
        .routes(routes!(tenant_showback))
        .routes(routes!(profile_get, profile_put))
}

/// Most invoices in the reconciliation export (narrow it with `period` or `status`).
pub const MAX_EXPORT: usize = 20_000;

/// A page of invoices.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InvoiceList {
    /// Newest period first; drafts priced now.
    pub items: Vec<Invoice>,
    /// The next page's cursor, or null on the last page.
    pub next_cursor: Option<String>,
}

fn wants_csv(h: &HeaderMap) -> bool {
    h.get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"))
}

/// A document answer.
pub fn document(content_type: &'static str, filename: &str, bytes: Vec<u8>) -> Response {
    let disposition = format!("attachment; filename=\"{filename}\"");
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from(bytes),
    )
        .into_response()
}

/// The reconciliation CSV of the invoices a filter selects (finalized, paid and void unless
/// `status` says otherwise), with tenant names, up to [`MAX_EXPORT`] rows.
///
/// Errors: 400 `invalid_query`, `invalid_cursor`.
pub async fn reconciliation(
    s: &AppState,
    tenant: Option<Uuid>,
    f: InvoiceFilter,
) -> crate::error::Result<Response> {
    let bytes = s
        .read(move |r| {
            let mut f = f;
            f.limit = Some(crate::store::page::MAX_LIMIT);
            let mut rows = Vec::new();
            loop {
                let page = queries::list(r, tenant.as_ref(), &f)?;
                for inv in page.items {
                    if f.status.is_none() && inv.status == Status::Draft {
                        continue;
                    }
                    let name = crate::tenants::directory::load(r, &inv.tenant_id)
                        .map(|t| t.display_name)
                        .unwrap_or_default();
                    rows.push((inv, name));
                }
                match page.next {
                    Some(c) if rows.len() < MAX_EXPORT => f.cursor = Some(c.encode()),
                    _ => break,
                }
            }
            rows.truncate(MAX_EXPORT);
            super::csv::reconciliation(&rows)
        })
        .await?;
    Ok(document("text/csv; charset=utf-8", "invoices.csv", bytes))
}

/// Invoices across tenants, newest period first (filters `tenant_id`, `status`, `period`,
/// `overdue`). With `Accept: text/csv`: the reconciliation export of finalized invoices
/// (number, tenant, amounts, dates, payment reference, content digest), for matching Stripe
/// payouts or bank statements.
#[utoipa::path(get, path = "/api/invoices", tag = "invoices", params(InvoiceFilter),
    responses((status = 200, description = "A page of invoices, or the reconciliation CSV",
            content((InvoiceList = "application/json"), (String = "text/csv"))),
        (status = 400, body = Problem)))]
async fn invoices_list(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiQuery(f): ApiQuery<InvoiceFilter>,
) -> ApiResult<Response> {
    if wants_csv(&headers) {
        return Ok(reconciliation(&s, None, f).await?);
    }
    let page = s.read(move |r| queries::list(r, None, &f)).await?;
    Ok(Json(InvoiceList {
        items: page.items,
        next_cursor: page.next.map(|c| c.encode()),
    })
    .into_response())
}

/// What `{invoice_id}` asks for.
enum Form {
    Json,
    Pdf,
    Csv,
}

fn parse_ref(s: &str) -> Result<(Uuid, Form), Error> {
    let (id, form) = if let Some(id) = s.strip_suffix(".pdf") {
        (id, Form::Pdf)
    } else if let Some(id) = s.strip_suffix(".csv") {
        (id, Form::Csv)
    } else {
        (s, Form::Json)
    };
    Ok((path_id("invoice", id)?, form))
}

/// The answer for one invoice in the asked form. PDF and CSV exist from finalization on.
///
/// Errors: 404 (a draft's documents included: it has no number yet).
pub async fn answer(
    s: &AppState,
    tenant: Option<Uuid>,
    raw: &str,
) -> crate::error::Result<Response> {
    let (id, form) = parse_ref(raw)?;
    let (inv, name) = s
        .read(move |r| {
            let inv = queries::get(r, &id)?;
            if tenant.is_some_and(|t| t != inv.tenant_id) {
                return Err(Error::not_found("invoice", id.to_string()));
            }
            let name = crate::tenants::directory::load(r, &inv.tenant_id)
                .map(|t| t.display_name)
                .unwrap_or_default();
            Ok((inv, name))
        })
        .await?;
    let number = match (&form, &inv.number) {
        (Form::Json, _) => return Ok(Json(inv).into_response()),
        (_, Some(n)) => n.clone(),
        (_, None) => {
            return Err(Error::not_found(
                "invoice document",
                format!("{raw} (a draft has no PDF or CSV until it is finalized)"),
            ));
        }
    };
    Ok(match form {
        Form::Pdf => {
            let bytes = tokio::task::spawn_blocking(move || super::pdf::render(&inv, &name))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
            document("application/pdf", &format!("{number}.pdf"), bytes)
        }
        _ => document(
            "text/csv; charset=utf-8",
            &format!("{number}.csv"),
            super::csv::invoice(&inv)?,
        ),
    })
}

/// One invoice (a draft priced now). `{id}.pdf` and `{id}.csv` give a finalized invoice's PDF
/// (embedded font, text extractable) and its line items as CSV.
#[utoipa::path(get, path = "/api/invoices/{id}", tag = "invoices",
    params(("id" = String, Path, description = "Invoice id, optionally with `.pdf` or `.csv`")),
    responses((status = 200, description = "The invoice, its PDF or its CSV",
            content((Invoice = "application/json"), (Vec<u8> = "application/pdf"), (String = "text/csv"))),
        (status = 404, body = Problem)))]
async fn invoices_get(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(answer(&s, None, &id).await?)
}

/// Finalizes a draft early (the `finalize_invoices` job does it when its period closes): the
/// next number, fixed lines, due date, and `invoice.finalized.v1` with the content's SHA-256.
#[utoipa::path(post, path = "/api/invoices/{id}/finalize", tag = "invoices",
    params(("id" = String, Path, description = "Invoice id")),
    responses((status = 200, body = Invoice), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn invoices_finalize(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Invoice>> {
    let id = path_id("invoice", &id)?;
    let cfg = s.config().billing.clone();
    let inv = s
        .write(p.actor, move |ctx| service::finalize(ctx, &cfg, &id))
        .await?;
    Ok(Json(inv))
}

/// `POST /api/invoices/{id}/payments` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentBody {
    /// Minor units received, 1 to the amount due.
    pub amount_minor: i64,
    /// The payment's reference (bank transfer id, Stripe charge id), up to 200 characters.
    pub reference: Option<String>,
}

/// Records a payment. The one that settles the invoice marks it `paid` and may end the
/// tenant's delinquency.
#[utoipa::path(post, path = "/api/invoices/{id}/payments", tag = "invoices",
    params(("id" = String, Path, description = "Invoice id")), request_body = PaymentBody,
    responses((status = 200, body = Invoice), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn invoices_pay(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<PaymentBody>,
) -> ApiResult<Json<Invoice>> {
    let id = path_id("invoice", &id)?;
    let inv = s
        .write(p.actor, move |ctx| {
            service::record_payment(ctx, &id, b.amount_minor, b.reference.as_deref())
        })
        .await?;
    Ok(Json(inv))
}

/// `POST .../payment-failures` and `.../void` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// Why, 1–200 characters.
    pub reason: String,
}

/// Records a failed payment attempt (a declined card, a returned debit).
#[utoipa::path(post, path = "/api/invoices/{id}/payment-failures", tag = "invoices",
    params(("id" = String, Path, description = "Invoice id")), request_body = ReasonBody,
    responses((status = 200, body = Invoice), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn invoices_fail(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<ReasonBody>,
) -> ApiResult<Json<Invoice>> {
    let id = path_id("invoice", &id)?;
    let inv = s
        .write(p.actor, move |ctx| {
            service::record_failure(ctx, &id, &b.reason)
        })
        .await?;
    Ok(Json(inv))
}

/// Voids a finalized invoice without payments; it keeps its number.
#[utoipa::path(post, path = "/api/invoices/{id}/void", tag = "invoices",
    params(("id" = String, Path, description = "Invoice id")), request_body = ReasonBody,
    responses((status = 200, body = Invoice), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn invoices_void(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<ReasonBody>,
) -> ApiResult<Json<Invoice>> {
    let id = path_id("invoice", &id)?;
    let inv = s
        .write(p.actor, move |ctx| service::void(ctx, &id, &b.reason))
        .await?;
    Ok(Json(inv))
}

/// Filters of a tenant's invoices.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TenantInvoiceFilter {
    /// `draft`, `finalized`, `paid` or `void`.
    pub status: Option<String>,
    /// `yyyymm`.
    pub period: Option<String>,
    /// From the previous page.
    pub cursor: Option<String>,
    /// 1–500 (50).
    pub limit: Option<usize>,
}

impl From<TenantInvoiceFilter> for InvoiceFilter {
    fn from(f: TenantInvoiceFilter) -> InvoiceFilter {
        InvoiceFilter {
            tenant_id: None,
            status: f.status,
            period: f.period,
            overdue: None,
            cursor: f.cursor,
            limit: f.limit,
        }
    }
}

/// A tenant's invoices, newest period first (with `Accept: text/csv`, their reconciliation
/// rows).
#[utoipa::path(get, path = "/api/tenants/{id}/invoices", tag = "invoices",
    params(("id" = String, Path, description = "Tenant id"), TenantInvoiceFilter),
    responses((status = 200, description = "A page of the tenant's invoices, or their CSV",
            content((InvoiceList = "application/json"), (String = "text/csv"))),
        (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn tenant_invoices(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiQuery(f): ApiQuery<TenantInvoiceFilter>,
) -> ApiResult<Response> {
    let tenant = path_id("tenant", &id)?;
    let f = InvoiceFilter::from(f);
    s.read(move |r| crate::tenants::directory::load(r, &tenant).map(|_| ()))
        .await?;
    if wants_csv(&headers) {
        return Ok(reconciliation(&s, Some(tenant), f).await?);
    }
    let page = s.read(move |r| queries::list(r, Some(&tenant), &f)).await?;
    Ok(Json(InvoiceList {
        items: page.items,
        next_cursor: page.next.map(|c| c.encode()),
    })
    .into_response())
}

/// The upcoming invoice: the current period's draft, priced now from the maintained
/// aggregates (the same cost at one event as at ten million). Its `id` is the nil UUID until a
/// draft is opened (by a plan, a catalog pin or the first usage event).
#[utoipa::path(get, path = "/api/tenants/{id}/invoices/upcoming", tag = "invoices",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = Invoice), (status = 404, body = Problem)))]
async fn tenant_upcoming(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Invoice>> {
    let tenant = path_id("tenant", &id)?;
    let now = s.clock().now();
    Ok(Json(
        s.read(move |r| queries::upcoming(r, &tenant, now)).await?,
    ))
}

/// One of the tenant's invoices (`.pdf` and `.csv` as on `/api/invoices/{id}`).
#[utoipa::path(get, path = "/api/tenants/{id}/invoices/{invoice_id}", tag = "invoices",
    params(("id" = String, Path, description = "Tenant id"),
        ("invoice_id" = String, Path, description = "Invoice id, optionally with `.pdf` or `.csv`")),
    responses((status = 200, description = "The invoice, its PDF or its CSV",
            content((Invoice = "application/json"), (Vec<u8> = "application/pdf"), (String = "text/csv"))),
        (status = 404, body = Problem)))]
async fn tenant_invoice_get(
    State(s): State<AppState>,
    Path((id, invoice)): Path<(String, String)>,
) -> ApiResult<Response> {
    let tenant = path_id("tenant", &id)?;
    Ok(answer(&s, Some(tenant), &invoice).await?)
}

/// `?period=yyyymm` (the current period when absent).
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ShowbackQuery {
    /// `yyyymm`.
    pub period: Option<String>,
}

/// One row of showback.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ShowbackLine {
    /// The business unit (null: usage no business unit drove).
    pub business_unit_id: Option<Uuid>,
    /// Its name (`Unattributed` for null).
    pub business_unit: String,
    /// SKU.
    pub sku: String,
    /// Units.
    pub quantity: u64,
    /// Its share of the SKU line's amount, minor units.
    pub amount_minor: i64,
}

/// Showback of a period.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Showback {
    /// The tenant.
    pub tenant_id: Uuid,
    /// `yyyymm`.
    pub period: String,
    /// ISO 4217.
    pub currency: String,
    /// By business unit, then SKU; unattributed usage last.
    pub items: Vec<ShowbackLine>,
}

/// Showback (tenant admin guide §1): a period's usage and cost by business unit, from the
/// maintained aggregates. With `Accept: text/csv`, the same as CSV.
#[utoipa::path(get, path = "/api/tenants/{id}/showback", tag = "invoices",
    params(("id" = String, Path, description = "Tenant id"), ShowbackQuery),
    responses((status = 200, description = "Showback, or its CSV",
            content((Showback = "application/json"), (String = "text/csv"))),
        (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn tenant_showback(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ShowbackQuery>,
) -> ApiResult<Response> {
    let tenant = path_id("tenant", &id)?;
    let period = match q.period.as_deref().filter(|p| !p.trim().is_empty()) {
        Some(p) => queries::parse_period(p)?,
        None => crate::metering::model::period_of(s.clock().now()),
    };
    let (currency, rows) = s
        .read(move |r| queries::showback(r, &tenant, period))
        .await?;
    if wants_csv(&headers) {
        return Ok(document(
            "text/csv; charset=utf-8",
            &format!("showback-{period}.csv"),
            super::csv::showback(period, &currency, &rows)?,
        ));
    }
    Ok(Json(Showback {
        tenant_id: tenant,
        period: period.to_string(),
        currency,
        items: rows
            .into_iter()
            .map(|r| ShowbackLine {
                business_unit_id: r.business_unit_id,
                business_unit: r.business_unit,
                sku: r.sku,
                quantity: r.quantity,
                amount_minor: r.amount_minor,
            })
            .collect(),
    })
    .into_response())
}

/// A tenant's billing profile (F21.05.02).
#[utoipa::path(get, path = "/api/tenants/{id}/billing-profile", tag = "invoices",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = Profile), (status = 404, body = Problem)))]
async fn profile_get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Profile>> {
    let tenant = path_id("tenant", &id)?;
    Ok(Json(
        s.read(move |r| {
            crate::tenants::directory::load(r, &tenant)?;
            queries::profile(r, &tenant)
        })
        .await?,
    ))
}

/// `PUT /api/tenants/{id}/billing-profile` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    /// Legal name printed on invoices (empty: the tenant's display name).
    pub name: Option<String>,
    /// Where invoices go (empty: the tenant's contact email).
    pub email: Option<String>,
    /// Up to 6 address lines.
    #[serde(default)]
    pub address: Vec<String>,
    /// VAT or tax id.
    pub tax_id: Option<String>,
    /// The customer's purchase order reference.
    pub po_number: Option<String>,
    /// Days to pay, 1–365 (null: the install's `[billing] net_days`).
    pub net_days: Option<u32>,
}

impl From<ProfileBody> for ProfileDraft {
    fn from(b: ProfileBody) -> ProfileDraft {
        ProfileDraft {
            name: b.name,
            email: b.email,
            address: b.address,
            tax_id: b.tax_id,
            po_number: b.po_number,
            net_days: b.net_days,
        }
    }
}

/// Replaces a tenant's billing profile; invoices finalized from now on print it.
#[utoipa::path(put, path = "/api/tenants/{id}/billing-profile", tag = "invoices",
    params(("id" = String, Path, description = "Tenant id")), request_body = ProfileBody,
    responses((status = 200, body = Profile), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn profile_put(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<ProfileBody>,
) -> ApiResult<Json<Profile>> {
    let tenant = path_id("tenant", &id)?;
    let profile = ProfileDraft::from(b).parse()?;
    Ok(Json(
        s.write(p.actor, move |ctx| {
            service::set_profile(ctx, &tenant, &profile)
        })
        .await?,
    ))
}
