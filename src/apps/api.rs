//! `/api/apps` routes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::service::{self, App, NewApp};
use crate::error::Error;
use crate::http::extract::{ApiJson, ApiQuery, Caller};
use crate::http::problem::{ApiResult, Problem};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(apps_create, apps_list))
        .routes(routes!(apps_get))
}

/// A page of apps.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AppPage {
    /// Apps in creation order.
    pub items: Vec<App>,
    /// Cursor of the next page, or null.
    pub next_cursor: Option<String>,
}

/// Paging of `GET /api/apps`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AppListQuery {
    /// Page size, 1–500 (default 50).
    pub limit: Option<usize>,
    /// Cursor from a previous page.
    pub cursor: Option<String>,
}

/// Creates an app (writes `app.created.v1`).
#[utoipa::path(post, path = "/api/apps", tag = "apps", request_body = NewApp,
    responses((status = 201, body = App), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn apps_create(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiJson(body): ApiJson<NewApp>,
) -> ApiResult<(StatusCode, Json<App>)> {
    let input = body.parse()?;
    let app = s
        .write(p.actor, move |ctx| service::create(ctx, &input))
        .await?;
    Ok((StatusCode::CREATED, Json(app)))
}

/// Lists apps in creation order.
#[utoipa::path(get, path = "/api/apps", tag = "apps", params(AppListQuery),
    responses((status = 200, body = AppPage), (status = 400, body = Problem)))]
async fn apps_list(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<AppListQuery>,
) -> ApiResult<Json<AppPage>> {
    let limit = crate::http::extract::page_limit(q.limit)?;
    let after = match q.cursor.as_deref() {
        Some(c) => Some(crate::ids::parse_uuid(c).ok_or_else(|| {
            Error::bad_request("invalid_cursor", "cursor is not one this server issued")
        })?),
        None => None,
    };
    let (items, next) = s.read(move |r| service::list(r, after, limit)).await?;
    Ok(Json(AppPage {
        items,
        next_cursor: next.map(|id| id.to_string()),
    }))
}

/// One app.
#[utoipa::path(get, path = "/api/apps/{id}", tag = "apps", params(("id" = String, Path, description = "App id")),
    responses((status = 200, body = App), (status = 404, body = Problem)))]
async fn apps_get(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<App>> {
    let uuid = crate::ids::parse_uuid(&id).ok_or_else(|| Error::not_found("app", &id))?;
    Ok(Json(s.read(move |r| service::get(r, &uuid)).await?))
}
