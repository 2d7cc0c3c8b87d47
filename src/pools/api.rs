//! `/api/pools` and `/api/routes` routes.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::model::{self, PoolKind, PoolStatus};
use super::{queries, service};
use crate::error::{Error, Validator};
use crate::http::extract::{ApiJson, ApiQuery, Caller};
use crate::http::problem::{ApiResult, Problem};
use crate::state::AppState;
use crate::tenants::model::State as TenantState;
use crate::tenants::model::parse_reason;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(pools_list))
        .routes(routes!(pools_get))
        .routes(routes!(pools_flip))
        .routes(routes!(routes_get))
}

/// A pool.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Pool {
    /// `admin-N` or `app-N`.
    pub id: String,
    /// Admin or app.
    pub kind: PoolKind,
    /// N.
    pub number: u32,
    /// The module a shared app pool serves; null for admin pools and dedicated app pools.
    pub module: Option<String>,
    /// The tenant a dedicated pool belongs to (`P` app pools, `G` admin and app pools).
    pub dedicated_to: Option<Uuid>,
    /// Current status.
    pub status: PoolStatus,
    /// Reason given for the current status.
    pub status_reason: Option<String>,
    /// When the status was set.
    pub status_since: DateTime<Utc>,
    /// Tenants assigned (a maintained counter).
    pub tenant_count: u64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl From<model::Pool> for Pool {
    fn from(p: model::Pool) -> Pool {
        Pool {
            id: p.id,
            kind: p.kind,
            number: p.number,
            module: p.module,
            dedicated_to: p.dedicated_to,
            status: p.status,
            status_reason: p.status_reason,
            status_since: p.status_since,
            tenant_count: p.tenant_count,
            created_at: p.created_at,
        }
    }
}

/// Which pools serve a tenant for a module right now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Route {
    /// The tenant.
    pub tenant_id: Uuid,
    /// The module asked for.
    pub module: String,
    /// The active admin pool to use.
    pub admin_pool: String,
    /// The active app pool to use.
    pub app_pool: String,
    /// True when an assigned pool is not active and new traffic goes to another shared pool.
    pub rerouted: bool,
    /// The tenant's lifecycle state (a gateway refuses traffic for suspended tenants).
    pub tenant_state: TenantState,
}

impl From<model::Route> for Route {
    fn from(r: model::Route) -> Route {
        Route {
            tenant_id: r.tenant_id,
            module: r.module,
            admin_pool: r.admin_pool,
            app_pool: r.app_pool,
            rerouted: r.rerouted,
            tenant_state: r.tenant_state,
        }
    }
}

crate::string_enum_schema!(
    PoolKind,
    "Admin pools serve a tenant's admin plane; app pools a module."
);
crate::string_enum_schema!(PoolStatus, "Only active pools take new traffic.");

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
    let items = s.read(queries::list).await?;
    Ok(Json(PoolList {
        items: items.into_iter().map(Pool::from).collect(),
        next_cursor: None,
    }))
}

/// One pool.
#[utoipa::path(get, path = "/api/pools/{id}", tag = "pools", params(("id" = String, Path, description = "Pool id, e.g. admin-2")),
    responses((status = 200, body = Pool), (status = 404, body = Problem)))]
async fn pools_get(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Pool>> {
    Ok(Json(s.read(move |r| queries::get(r, &id)).await?.into()))
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
    Ok(Json(pool.into()))
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
        Ok(route) => return Ok(Json(route.into())),
        Err(generation) => generation,
    };
    let config = s.config().clone();
    let module = q.module.clone();
    let route = s
        .read(move |r| queries::route(r, &id, &module, &config.pools))
        .await?;
    s.routes().insert(generation, route.clone());
    Ok(Json(route.into()))
}
