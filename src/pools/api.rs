//! `/api/pools` and `/api/routes` routes.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::model::Route;
use super::model::{Pool, PoolStatus};
use super::service;
use crate::error::{Error, Validator};
use crate::http::extract::{ApiJson, ApiQuery, Caller};
use crate::http::problem::{ApiResult, Problem};
use crate::state::AppState;
use crate::tenants::model::parse_reason;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(pools_list))
        .routes(routes!(pools_get))
        .routes(routes!(pools_flip))
        .routes(routes!(routes_get))
}

/// Every pool.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PoolList {
    /// Admin pools first, then app pools, in number order.
    pub items: Vec<Pool>,
    /// Always null: the pool list is small and unpaged.
    pub next_cursor: Option<String>,
}

/// Pools with status and tenant count.
#[utoipa::path(get, path = "/api/pools", tag = "pools", responses((status = 200, body = PoolList)))]
async fn pools_list(State(s): State<AppState>) -> ApiResult<Json<PoolList>> {
    let items = s.read(service::list).await?;
    Ok(Json(PoolList {
        items,
        next_cursor: None,
    }))
}

/// One pool.
#[utoipa::path(get, path = "/api/pools/{id}", tag = "pools", params(("id" = String, Path, description = "Pool id, e.g. admin-2")),
    responses((status = 200, body = Pool), (status = 404, body = Problem)))]
async fn pools_get(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Pool>> {
    Ok(Json(s.read(move |r| service::get(r, &id)).await?))
}

/// A status flip.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlipRequest {
    /// `active`, `degraded` or `drain`.
    pub status: String,
    /// Why (recorded in the ledger).
    pub reason: String,
}

/// Flips a pool's status (writes `pool.status.flipped.v1`); route caches of this process are
/// invalidated before the answer is sent.
#[utoipa::path(post, path = "/api/pools/{id}/status", tag = "pools", params(("id" = String, Path, description = "Pool id")),
    request_body = FlipRequest,
    responses((status = 200, body = Pool), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn pools_flip(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<FlipRequest>,
) -> ApiResult<Json<Pool>> {
    let mut v = Validator::new();
    let status = v.take("status", PoolStatus::parse(&body.status));
    let reason = v.take("reason", parse_reason(&body.reason));
    v.finish()?;
    let (Some(status), Some(reason)) = (status, reason) else {
        return Err(Error::Internal("validated field missing".into()).into());
    };
    let pool = s
        .write(p.actor, move |ctx| service::flip(ctx, &id, status, &reason))
        .await?;
    Ok(Json(pool))
}

/// Query of a route lookup.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RouteQuery {
    /// Module, e.g. `core`.
    pub module: String,
}

/// Which active pools serve a tenant for a module, from the route cache (TTL
/// `route_cache_ttl`); never a degraded or draining pool.
#[utoipa::path(get, path = "/api/routes/{tenant_id}", tag = "pools", params(("tenant_id" = String, Path, description = "Tenant id"), RouteQuery),
    responses((status = 200, body = Route), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
async fn routes_get(
    State(s): State<AppState>,
    Path(tenant_id): Path<String>,
    ApiQuery(q): ApiQuery<RouteQuery>,
) -> ApiResult<Json<Route>> {
    let id =
        crate::ids::parse_uuid(&tenant_id).ok_or_else(|| Error::not_found("tenant", &tenant_id))?;
    let generation = match s.routes().get(&id, &q.module) {
        Ok(route) => return Ok(Json(route)),
        Err(generation) => generation,
    };
    let config = s.config().clone();
    let module = q.module.clone();
    let route = s
        .read(move |r| {
            let tenant = crate::tenants::queries::get(r, &id)?;
            service::resolve(r, &tenant, &module, &config.pools)
        })
        .await?;
    s.routes().insert(generation, route.clone());
    Ok(Json(route))
}
