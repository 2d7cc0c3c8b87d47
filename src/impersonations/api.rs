//! `/api/tenants/{id}/impersonations` (Visit tenant) and `/api/impersonations` (the platform's
//! recent and active visits).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::model;
use super::queries::ImpersonationFilter;
use crate::error::{Error, path_id};
use crate::http::extract::{ApiJson, ApiQuery, Caller};
use crate::http::problem::{ApiResult, Problem};
use crate::rbac::Role;
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(impersonations_list, impersonations_start))
        .routes(routes!(impersonations_elevate))
        .routes(routes!(impersonations_end))
        .routes(routes!(impersonations_recent))
}

/// A visit of a tenant's console by an operator (F21.05.05).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Impersonation {
    /// UUIDv7.
    pub id: Uuid,
    /// The tenant visited.
    pub tenant_id: Uuid,
    /// The visiting operator's username.
    pub operator: String,
    /// Its role when the visit started.
    pub role: Role,
    /// `read_only`, `elevated` or `ended`.
    pub state: String,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// When it ends by itself.
    pub expires_at: DateTime<Utc>,
    /// Until when writes are allowed, if elevated.
    pub elevated_until: Option<DateTime<Utc>>,
    /// The last elevation's reason.
    pub reason: Option<String>,
    /// How many times it was elevated.
    pub elevations: u32,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// `operator` or `expired`.
    pub end_cause: Option<String>,
    /// Where the operator's browser goes: the tenant's console.
    pub console_url: String,
}

impl Impersonation {
    fn of(v: model::Impersonation, now: DateTime<Utc>) -> Impersonation {
        Impersonation {
            state: v.state(now).to_string(),
            console_url: format!("/tenant/{}", v.tenant_id),
            id: v.id,
            tenant_id: v.tenant_id,
            operator: v.operator,
            role: v.role,
            started_at: v.started_at,
            expires_at: v.expires_at,
            elevated_until: v.elevated_until,
            reason: v.reason,
            elevations: v.elevations,
            ended_at: v.ended_at,
            end_cause: v.end_cause.map(|c| c.as_str().to_string()),
        }
    }
}

/// Visits.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ImpersonationList {
    /// Newest first.
    pub items: Vec<Impersonation>,
    /// Where the next page starts; null on the last page.
    pub next_cursor: Option<String>,
}

/// Starts a read-only visit of the tenant's console by the calling operator, for an hour
/// (`impersonation.started.v1` on the tenant's chain). Calling again while visiting returns the
/// same visit.
#[utoipa::path(post, path = "/api/tenants/{id}/impersonations", tag = "impersonations",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 201, body = Impersonation), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn impersonations_start(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Impersonation>)> {
    let tenant = path_id("tenant", &id)?;
    let v = super::start(&s, &p, tenant).await?;
    Ok((
        StatusCode::CREATED,
        Json(Impersonation::of(v, s.clock().now())),
    ))
}

/// The tenant's visits, newest first (the last 100).
#[utoipa::path(get, path = "/api/tenants/{id}/impersonations", tag = "impersonations",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = ImpersonationList), (status = 404, body = Problem)))]
async fn impersonations_list(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ImpersonationList>> {
    let tenant = path_id("tenant", &id)?;
    let items = s
        .read(move |r| {
            crate::tenants::queries::get(r, &tenant)?;
            super::queries::of_tenant(r, &tenant, 100)
        })
        .await?;
    let now = s.clock().now();
    Ok(Json(ImpersonationList {
        items: items
            .into_iter()
            .map(|v| Impersonation::of(v, now))
            .collect(),
        next_cursor: None,
    }))
}

/// An elevation: why, and for how long.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ElevateRequest {
    /// 10–500 characters: what will be changed and why (the tenant's admins read it).
    pub reason: String,
    /// 1–60 minutes; 15 by default.
    #[schema(minimum = 1, maximum = 60)]
    pub minutes: Option<i64>,
}

/// Elevates the caller's own visit to write access, time-boxed (`impersonation.elevated.v1`).
#[utoipa::path(post, path = "/api/tenants/{id}/impersonations/{impersonation_id}/elevate", tag = "impersonations",
    params(("id" = String, Path, description = "Tenant id"), ("impersonation_id" = String, Path, description = "Visit id")),
    request_body = ElevateRequest,
    responses((status = 200, body = Impersonation), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn impersonations_elevate(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, visit)): Path<(String, String)>,
    ApiJson(body): ApiJson<ElevateRequest>,
) -> ApiResult<Json<Impersonation>> {
    let (tenant, visit) = (path_id("tenant", &id)?, path_id("impersonation", &visit)?);
    let v = super::elevate(&s, &p, tenant, visit, body.reason, body.minutes).await?;
    Ok(Json(Impersonation::of(v, s.clock().now())))
}

/// Ends the caller's own visit now (`impersonation.ended.v1`).
#[utoipa::path(post, path = "/api/tenants/{id}/impersonations/{impersonation_id}/end", tag = "impersonations",
    params(("id" = String, Path, description = "Tenant id"), ("impersonation_id" = String, Path, description = "Visit id")),
    responses((status = 200, body = Impersonation), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn impersonations_end(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, visit)): Path<(String, String)>,
) -> ApiResult<Json<Impersonation>> {
    let (tenant, visit) = (path_id("tenant", &id)?, path_id("impersonation", &visit)?);
    let v = super::end(&s, &p, tenant, visit).await?;
    Ok(Json(Impersonation::of(v, s.clock().now())))
}

/// Every tenant's visits, newest first; `state=active` lists those going on now (the platform
/// dashboard counts them).
#[utoipa::path(get, path = "/api/impersonations", tag = "impersonations", params(ImpersonationFilter),
    responses((status = 200, body = ImpersonationList), (status = 400, body = Problem)))]
async fn impersonations_recent(
    State(s): State<AppState>,
    ApiQuery(f): ApiQuery<ImpersonationFilter>,
) -> ApiResult<Json<ImpersonationList>> {
    let now = s.clock().now();
    let page = s.read(move |r| super::queries::recent(r, &f, now)).await?;
    Ok(Json(ImpersonationList {
        items: page
            .items
            .into_iter()
            .map(|v| Impersonation::of(v, now))
            .collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

/// The operator account of a caller, for visits (the bootstrap token has none).
pub(super) fn operator_of(p: &crate::rbac::Principal) -> Result<Uuid, Error> {
    p.operator_id().ok_or_else(|| {
        Error::Forbidden(
            "visits are personal: sign in as an operator (or use an operator token), not the admin_ops_token".into(),
        )
    })
}
