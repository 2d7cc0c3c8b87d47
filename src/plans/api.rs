//! `/api/plans` and `/api/tenants/{id}/plan-history`, and their wire types.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::model::{self, PlanDraft};
use super::{queries, service};
use crate::error::Error;
use crate::http::extract::{ApiJson, Caller};
use crate::http::problem::{ApiResult, Problem};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(plans_list, plans_create))
        .routes(routes!(plans_get, plans_replace))
}

/// Quantity of a SKU a plan includes per billing period.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Included {
    /// SKU code, e.g. `api_call`.
    pub sku: String,
    /// Units included per period.
    pub quantity: u64,
}

/// A plan.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Plan {
    /// `free`, `pro`, ...
    pub code: String,
    /// Display name.
    pub name: String,
    /// Recurring price in minor units per `interval`.
    pub amount_minor: i64,
    /// ISO 4217.
    pub currency: String,
    /// `month` or `year`.
    pub interval: String,
    /// Default trial length in days.
    pub trial_days: u32,
    /// Feature flag keys.
    pub features: Vec<String>,
    /// Most personas (null: unlimited).
    pub max_personas: Option<u64>,
    /// Most API keys (null: unlimited).
    pub max_api_keys: Option<u64>,
    /// Quantities included per period.
    pub included: Vec<Included>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<model::Plan> for Plan {
    fn from(p: model::Plan) -> Plan {
        Plan {
            code: p.code,
            name: p.name,
            amount_minor: p.amount_minor,
            currency: p.currency,
            interval: p.interval.as_str().into(),
            trial_days: p.trial_days,
            features: p.features,
            max_personas: p.limits.max_personas,
            max_api_keys: p.limits.max_api_keys,
            included: p
                .limits
                .included
                .into_iter()
                .map(|(sku, quantity)| Included { sku, quantity })
                .collect(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// `POST /api/plans` and `PUT /api/plans/{code}` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanBody {
    /// Code (on PUT, absent or equal to the path's).
    pub code: Option<String>,
    /// Display name, 1–80 characters.
    pub name: String,
    /// Recurring price in minor units, 0–10^12.
    pub amount_minor: i64,
    /// ISO 4217.
    pub currency: String,
    /// `month` (default) or `year`.
    pub interval: Option<String>,
    /// Default trial length in days, 0–365 (default 0).
    pub trial_days: Option<i64>,
    /// Feature flag keys.
    #[serde(default)]
    pub features: Vec<String>,
    /// Most personas.
    pub max_personas: Option<u64>,
    /// Most API keys.
    pub max_api_keys: Option<u64>,
    /// Quantities included per period.
    #[serde(default)]
    pub included: Vec<Included>,
}

impl PlanBody {
    fn draft(self, code: String) -> PlanDraft {
        PlanDraft {
            code,
            name: self.name,
            amount_minor: self.amount_minor,
            currency: self.currency,
            interval: self.interval.unwrap_or_else(|| "month".into()),
            trial_days: self.trial_days.unwrap_or(0),
            features: self.features,
            max_personas: self.max_personas,
            max_api_keys: self.max_api_keys,
            included: self
                .included
                .into_iter()
                .map(|i| (i.sku, i.quantity))
                .collect(),
        }
    }
}

/// Every plan.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PlanList {
    /// Plans by code.
    pub items: Vec<Plan>,
    /// Always null: a platform has at most 100 plans.
    pub next_cursor: Option<String>,
}

/// Lists the plans (what the plan-tier picker offers).
#[utoipa::path(get, path = "/api/plans", tag = "plans",
    responses((status = 200, body = PlanList)))]
async fn plans_list(State(s): State<AppState>) -> ApiResult<Json<PlanList>> {
    let items = s.read(queries::list).await?;
    Ok(Json(PlanList {
        items: items.into_iter().map(Plan::from).collect(),
        next_cursor: None,
    }))
}

/// Creates a plan (`plan.created.v1`).
#[utoipa::path(post, path = "/api/plans", tag = "plans", request_body = PlanBody,
    responses((status = 201, body = Plan), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn plans_create(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiJson(body): ApiJson<PlanBody>,
) -> ApiResult<(StatusCode, Json<Plan>)> {
    let code = body.code.clone().unwrap_or_default();
    let input = body.draft(code).parse()?;
    let plan = s
        .write(p.actor, move |ctx| service::create(ctx, &input))
        .await?;
    Ok((StatusCode::CREATED, Json(plan.into())))
}

/// One plan.
#[utoipa::path(get, path = "/api/plans/{code}", tag = "plans",
    params(("code" = String, Path, description = "Plan code")),
    responses((status = 200, body = Plan), (status = 404, body = Problem)))]
async fn plans_get(State(s): State<AppState>, Path(code): Path<String>) -> ApiResult<Json<Plan>> {
    Ok(Json(s.read(move |r| queries::get(r, &code)).await?.into()))
}

/// Replaces a plan's fields (`plan.updated.v1` with the diff). Tenants on it follow.
#[utoipa::path(put, path = "/api/plans/{code}", tag = "plans",
    params(("code" = String, Path, description = "Plan code")), request_body = PlanBody,
    responses((status = 200, body = Plan), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn plans_replace(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(code): Path<String>,
    ApiJson(body): ApiJson<PlanBody>,
) -> ApiResult<Json<Plan>> {
    if model::parse_code("plan code", &code).is_err() {
        return Err(Error::not_found("plan", &code).into());
    }
    if body.code.as_ref().is_some_and(|c| *c != code) {
        return Err(Error::invalid(
            "code",
            "code differs from the path's: a plan's code never changes",
        )
        .into());
    }
    let input = body.draft(code).parse()?;
    let plan = s
        .write(p.actor, move |ctx| service::replace(ctx, &input))
        .await?;
    Ok(Json(plan.into()))
}
