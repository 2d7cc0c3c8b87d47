//! `/api/platform/revenue`, `/api/platform/enforcement/exceptions` and
//! `/api/tenants/{id}/enforcement/override`, and their wire types.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::model::{self, OverrideDraft};
use super::queries::{self, ExceptionFilter};
use super::service;
use crate::error::path_id;
use crate::http::extract::{ApiJson, ApiQuery, Caller};
use crate::http::problem::{ApiResult, Problem};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(revenue_get))
        .routes(routes!(exceptions_list))
        .routes(routes!(override_get, override_put, override_delete))
}

/// An amount in one currency.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Money {
    /// ISO 4217.
    pub currency: String,
    /// Minor units (cents).
    pub amount_minor: i64,
}

fn money(v: Vec<model::Money>) -> Vec<Money> {
    v.into_iter()
        .map(|m| Money {
            currency: m.currency,
            amount_minor: m.amount_minor,
        })
        .collect()
}

/// One month of the MRR trend.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TrendPoint {
    /// `yyyymm`, like every billing period.
    pub period: String,
    /// MRR when the month's snapshot was taken (its first `snapshot_mrr` run), by currency.
    pub mrr: Vec<Money>,
}

/// Tenants on one plan.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PlanCount {
    /// Plan code.
    pub plan: String,
    /// Tenants on it that are not offboarded.
    pub tenants: u64,
}

/// Trials, at UTC day granularity.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Trials {
    /// Trials started today or in the 29 days before.
    pub started_30d: u64,
    /// Running trials that end today or in the next 7 days.
    pub expiring_7d: u64,
    /// Trials converted to `active` today or in the 29 days before.
    pub converted_30d: u64,
}

/// The revenue posture (platform dashboard spec §3.4), from maintained counters.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RevenuePosture {
    /// Monthly recurring revenue now: Σ over plans of its `active` tenants × its price
    /// normalized to a month (yearly ÷ 12, rounded half up), by currency.
    pub mrr: Vec<Money>,
    /// Tenants in state `active` on a plan.
    pub paying_tenants: u64,
    /// The last 12 monthly snapshots, oldest first.
    pub mrr_trend: Vec<TrendPoint>,
    /// Tenants by plan (offboarded excluded), every plan listed.
    pub plan_distribution: Vec<PlanCount>,
    /// Trials.
    pub trials: Trials,
    /// Open entitlement exceptions (`/api/platform/enforcement/exceptions`).
    pub entitlement_exceptions: u64,
    /// Tenants with an invoice unpaid past its due date (`/api/invoices?overdue=true`).
    pub delinquent_tenants: u64,
}

/// A period as `yyyymm`, as the live meter and invoices write it.
fn period_text(p: u32) -> String {
    p.to_string()
}

impl From<queries::Posture> for RevenuePosture {
    fn from(p: queries::Posture) -> RevenuePosture {
        RevenuePosture {
            mrr: money(p.mrr),
            paying_tenants: p.paying_tenants,
            mrr_trend: p
                .mrr_trend
                .into_iter()
                .map(|(period, mrr)| TrendPoint {
                    period: period_text(period),
                    mrr: money(mrr),
                })
                .collect(),
            plan_distribution: p
                .plan_distribution
                .into_iter()
                .map(|(plan, tenants)| PlanCount { plan, tenants })
                .collect(),
            trials: Trials {
                started_30d: p.trials.started_30d,
                expiring_7d: p.trials.expiring_7d,
                converted_30d: p.trials.converted_30d,
            },
            entitlement_exceptions: p.exceptions_open,
            delinquent_tenants: p.delinquent_tenants,
        }
    }
}

/// The revenue posture: MRR and its trend, plan distribution, trials, open exceptions. A few
/// dozen point reads, whatever the number of tenants.
#[utoipa::path(get, path = "/api/platform/revenue", tag = "revenue",
    responses((status = 200, body = RevenuePosture)))]
async fn revenue_get(State(s): State<AppState>) -> ApiResult<Json<RevenuePosture>> {
    let now = s.clock().now();
    Ok(Json(
        s.read(move |r| queries::posture(r, now)).await?.into(),
    ))
}

/// An open entitlement exception.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Exception {
    /// The tenant.
    pub tenant_id: String,
    /// Its display name.
    pub tenant_name: String,
    /// `personas_over_limit`, `api_keys_over_limit` or `override`.
    pub reason: String,
    /// Its plan when the exception opened.
    pub plan: Option<String>,
    /// The count over the limit when it opened (limits only).
    pub used: Option<u64>,
    /// The plan's limit (limits only).
    pub limit: Option<u64>,
    /// What exceeds, or the override's reason.
    pub detail: String,
    /// When it opened.
    pub opened_at: DateTime<Utc>,
}

impl From<queries::Exception> for Exception {
    fn from(e: queries::Exception) -> Exception {
        Exception {
            tenant_id: e.tenant_id.to_string(),
            tenant_name: e.tenant_name,
            reason: e.reason.as_str().into(),
            plan: e.plan,
            used: e.used,
            limit: e.limit,
            detail: e.detail,
            opened_at: e.opened_at,
        }
    }
}

/// A page of exceptions.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ExceptionList {
    /// Exceptions by tenant (creation order), then reason.
    pub items: Vec<Exception>,
    /// The cursor of the next page (null on the last).
    pub next_cursor: Option<String>,
}

/// Open entitlement exceptions, kept by the hourly `plan_enforcer` job and by override
/// changes (HQ PRD §6). Filter `reason`.
#[utoipa::path(get, path = "/api/platform/enforcement/exceptions", tag = "revenue",
    params(ExceptionFilter),
    responses((status = 200, body = ExceptionList), (status = 400, body = Problem)))]
async fn exceptions_list(
    State(s): State<AppState>,
    ApiQuery(f): ApiQuery<ExceptionFilter>,
) -> ApiResult<Json<ExceptionList>> {
    let page = s.read(move |r| queries::exceptions(r, &f)).await?;
    Ok(Json(ExceptionList {
        items: page.items.into_iter().map(Exception::from).collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

/// `PUT /api/tenants/{id}/enforcement/override` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideBody {
    /// Why the tenant is exempt from enforcement, 1–500 characters.
    pub reason: String,
    /// RFC 3339 time in the future when it stops applying (absent or null: until cleared).
    pub expires_at: Option<String>,
}

/// An operator's enforcement override of a tenant.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Override {
    /// The tenant.
    pub tenant_id: String,
    /// Why.
    pub reason: String,
    /// When it stops applying (null: until cleared).
    pub expires_at: Option<DateTime<Utc>>,
    /// Does it apply now?
    pub active: bool,
    /// Who set it.
    pub set_by: String,
    /// When.
    pub set_at: DateTime<Utc>,
}

fn wire(o: queries::Override, now: DateTime<Utc>) -> Override {
    Override {
        tenant_id: o.tenant_id.to_string(),
        active: o.is_active(now),
        reason: o.reason,
        expires_at: o.expires_at,
        set_by: o.set_by,
        set_at: o.set_at,
    }
}

/// The tenant's enforcement override.
#[utoipa::path(get, path = "/api/tenants/{id}/enforcement/override", tag = "revenue",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = Override), (status = 404, body = Problem)))]
async fn override_get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Override>> {
    let tenant = path_id("tenant", &id)?;
    let now = s.clock().now();
    let o = s
        .read(move |r| {
            crate::tenants::queries::get(r, &tenant)?;
            queries::override_of(r, &tenant)?.ok_or_else(|| {
                crate::error::Error::not_found("enforcement override", tenant.to_string())
            })
        })
        .await?;
    Ok(Json(wire(o, now)))
}

/// Sets or replaces the tenant's enforcement override (`enforcement.override.set.v1`); while
/// it applies the tenant is an `override` exception (`plan.limit.exceeded.v1` when it opens).
#[utoipa::path(put, path = "/api/tenants/{id}/enforcement/override", tag = "revenue",
    params(("id" = String, Path, description = "Tenant id")), request_body = OverrideBody,
    responses((status = 200, body = Override), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn override_put(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<OverrideBody>,
) -> ApiResult<Json<Override>> {
    let tenant = path_id("tenant", &id)?;
    let now = s.clock().now();
    let input = OverrideDraft {
        reason: body.reason,
        expires_at: body.expires_at,
    }
    .parse(now)?;
    let o = s
        .write(p.actor, move |ctx| {
            service::set_override(ctx, &tenant, &input)
        })
        .await?;
    Ok(Json(wire(o, now)))
}

/// Clears the tenant's enforcement override (`enforcement.override.cleared.v1`); its
/// `override` exception closes (`plan.limit.resolved.v1`).
#[utoipa::path(delete, path = "/api/tenants/{id}/enforcement/override", tag = "revenue",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 204, description = "Cleared"), (status = 404, body = Problem)))]
async fn override_delete(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let tenant = path_id("tenant", &id)?;
    s.write(p.actor, move |ctx| service::clear_override(ctx, &tenant))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
