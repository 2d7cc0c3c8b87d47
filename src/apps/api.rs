//! `/api/apps` routes and their wire types.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::model::{self, AppDraft};
use super::{queries, service};
use crate::error::Error;
use crate::http::extract::{ApiJson, ApiQuery, Caller};
use crate::http::problem::{ApiResult, Problem};
use crate::state::AppState;
use crate::store::page::{self, Cursor};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(apps_create, apps_list))
        .routes(routes!(apps_get))
}

/// An app.
#[derive(Serialize, utoipa::ToSchema)]
pub struct App {
    /// UUIDv7.
    pub id: Uuid,
    /// Product name, e.g. `Projex Work`.
    pub name: String,
    /// Unique slug.
    pub slug: String,
    /// What the app is.
    pub description: Option<String>,
    /// The role templates a new tenant's roles are seeded from (F21.05.03
    /// `seed_system_roles`).
    pub role_templates: Vec<RoleTemplate>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A role template: a role name with the tenant scopes it grants.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleTemplate {
    /// 2–32 characters of `a-z 0-9 _`, starting with a letter.
    pub name: String,
    /// Dotted tenant scopes, e.g. `members.read` (`tenant.admin` grants all).
    pub scopes: Vec<String>,
}

impl From<model::App> for App {
    fn from(a: model::App) -> App {
        App {
            id: a.id,
            name: a.name,
            slug: a.slug,
            description: a.description,
            role_templates: a
                .role_templates
                .iter()
                .map(|t| RoleTemplate {
                    name: t.name.clone(),
                    scopes: t.scopes().iter().map(|s| s.as_str().to_string()).collect(),
                })
                .collect(),
            created_at: a.created_at,
        }
    }
}

/// `POST /api/apps` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApp {
    /// Product name, 1–120 characters.
    pub name: String,
    /// Slug; derived from the name when absent.
    pub slug: Option<String>,
    /// Up to 1000 characters.
    pub description: Option<String>,
    /// The role-template catalogue; absent: `tenant_admin`, `billing_admin`, `member`,
    /// `auditor`, `integration`.
    pub role_templates: Option<Vec<RoleTemplate>>,
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
    let input = AppDraft {
        name: body.name,
        slug: body.slug,
        description: body.description,
        role_templates: body
            .role_templates
            .map(|l| l.into_iter().map(|t| (t.name, t.scopes)).collect()),
    }
    .parse()?;
    let app = s
        .write(p.actor, move |ctx| service::create(ctx, &input))
        .await?;
    Ok((StatusCode::CREATED, Json(app.into())))
}

/// Lists apps in creation order.
#[utoipa::path(get, path = "/api/apps", tag = "apps", params(AppListQuery),
    responses((status = 200, body = AppPage), (status = 400, body = Problem)))]
async fn apps_list(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<AppListQuery>,
) -> ApiResult<Json<AppPage>> {
    let limit = page::limit(q.limit)?;
    let cursor = q.cursor.as_deref().map(Cursor::decode).transpose()?;
    let page = s
        .read(move |r| queries::list(r, cursor.as_ref(), limit))
        .await?;
    Ok(Json(AppPage {
        items: page.items.into_iter().map(App::from).collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

/// One app.
#[utoipa::path(get, path = "/api/apps/{id}", tag = "apps", params(("id" = String, Path, description = "App id")),
    responses((status = 200, body = App), (status = 404, body = Problem)))]
async fn apps_get(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<App>> {
    let uuid = crate::ids::parse_uuid(&id).ok_or_else(|| Error::not_found("app", &id))?;
    Ok(Json(s.read(move |r| queries::get(r, &uuid)).await?.into()))
}
