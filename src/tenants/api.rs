//! `/api/tenants` and `/api/tenant-lifecycle` routes (API.md first slice; operator guide §1).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::directory::{self, DirectoryQuery, DirectoryRow, Sort, Summary};
use super::model::{Action, AppPools, State as TenantState, Tenant, Tier};
use super::service::{self, NewTenant, StateView, TenantPatch, TransitionRequest};
use crate::error::{Error, Result};
use crate::http::extract::{ApiJson, ApiQuery, Caller, OptionalJson, page_limit};
use crate::http::problem::{ApiResult, Problem};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(tenants_provision, tenants_list))
        .routes(routes!(tenants_export_csv))
        .routes(routes!(tenants_summary))
        .routes(routes!(tenants_get, tenants_update))
        .routes(routes!(lifecycle_state))
        .routes(routes!(lifecycle_start_trial))
        .routes(routes!(lifecycle_activate))
        .routes(routes!(lifecycle_suspend))
        .routes(routes!(lifecycle_reinstate))
        .routes(routes!(lifecycle_offboard))
        .routes(routes!(lifecycle_cancel_offboarding))
}

fn tenant_id(id: &str) -> Result<Uuid> {
    crate::ids::parse_uuid(id).ok_or_else(|| Error::not_found("tenant", id))
}

/// Provisions a tenant in state `provisioned` (writes `tenant.created.v1` and
/// `tenant.pool.assigned.v1`).
#[utoipa::path(post, path = "/api/tenants", tag = "tenants", request_body = NewTenant,
    responses((status = 201, body = Tenant), (status = 400, body = Problem), (status = 409, body = Problem),
        (status = 413, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
async fn tenants_provision(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiJson(body): ApiJson<NewTenant>,
) -> ApiResult<Response> {
    let config = s.config().clone();
    let input = body.parse(&config)?;
    let t = s
        .write(p.actor, move |ctx| service::provision(ctx, &config, &input))
        .await?;
    let location = format!("/api/tenants/{}", t.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(t)).into_response())
}

/// Query of the directory (API.md: filters `status`, `region`, `isolation_tier`, `app_id`, `q`;
/// sort `created_at|display_name|status`).
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DirectoryParams {
    /// Lifecycle state.
    pub status: Option<String>,
    /// Region code.
    pub region: Option<String>,
    /// `S`, `P` or `G`.
    pub isolation_tier: Option<String>,
    /// App id.
    pub app_id: Option<String>,
    /// Case-insensitive substring of the name, slug or contact email.
    pub q: Option<String>,
    /// `created_at` (default), `display_name` or `status`.
    pub sort: Option<String>,
    /// `asc` or `desc` (default `desc` for `created_at`, `asc` otherwise).
    pub order: Option<String>,
    /// Page size, 1–500 (default 50).
    pub limit: Option<usize>,
    /// Cursor from a previous page.
    pub cursor: Option<String>,
}

impl DirectoryParams {
    /// Parses into a query.
    ///
    /// Errors: 400 `invalid_query` naming the bad parameter.
    pub fn parse(self) -> Result<DirectoryQuery> {
        let bad = |m: String| Error::bad_request("invalid_query", m);
        let sort = self
            .sort
            .as_deref()
            .map(Sort::parse)
            .transpose()
            .map_err(bad)?
            .unwrap_or(Sort::CreatedAt);
        let descending = match self.order.as_deref() {
            None => sort == Sort::CreatedAt,
            Some("asc") => false,
            Some("desc") => true,
            Some(o) => return Err(bad(format!("order '{o}' is invalid: use asc or desc"))),
        };
        let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        Ok(DirectoryQuery {
            status: nonempty(self.status)
                .map(|s| TenantState::parse(&s))
                .transpose()
                .map_err(bad)?,
            region: nonempty(self.region),
            tier: nonempty(self.isolation_tier)
                .map(|t| Tier::parse(&t))
                .transpose()
                .map_err(bad)?,
            app_id: nonempty(self.app_id)
                .map(|a| {
                    crate::ids::parse_uuid(&a)
                        .ok_or_else(|| bad(format!("app_id '{a}' is not a UUID")))
                })
                .transpose()?,
            q: nonempty(self.q).map(|q| q.trim().to_string()),
            sort,
            descending,
            limit: page_limit(self.limit)?,
            cursor: nonempty(self.cursor)
                .map(|c| directory::decode_cursor(&c))
                .transpose()?,
        })
    }
}

/// A page of the directory.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TenantPage {
    /// Tenants (or error rows for records that cannot be read).
    pub items: Vec<DirectoryRow>,
    /// Cursor of the next page, or null.
    pub next_cursor: Option<String>,
}

fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"))
}

/// The tenant directory: server-side filters, sort and cursor pages. `Accept: text/csv` gives
/// the CSV export of the same query.
#[utoipa::path(get, path = "/api/tenants", tag = "tenants", params(DirectoryParams),
    responses((status = 200, body = TenantPage), (status = 400, body = Problem)))]
async fn tenants_list(
    State(s): State<AppState>,
    Caller(p): Caller,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<DirectoryParams>,
) -> ApiResult<Response> {
    let q = params.parse()?;
    if wants_csv(&headers) {
        if !p.can(crate::rbac::Permission::TenantsExport) {
            return Err(crate::rbac::Refusal::Forbidden(format!(
                "your role '{}' may not GET /api/tenants/export.csv",
                p.role.as_str()
            ))
            .into());
        }
        return Ok(csv_response(&s, q));
    }
    let page = s.read(move |r| directory::query(r, &q)).await?;
    Ok(Json(TenantPage {
        items: page.rows,
        next_cursor: page.next_cursor.map(|c| directory::encode_cursor(&c)),
    })
    .into_response())
}

/// CSV export of the directory: the same filters and sort, every matching row, from one
/// snapshot (csv crate; cells that a spreadsheet would run as formulas are prefixed with `'`).
#[utoipa::path(get, path = "/api/tenants/export.csv", tag = "tenants", params(DirectoryParams),
    responses((status = 200, content_type = "text/csv", body = String), (status = 400, body = Problem)))]
async fn tenants_export_csv(
    State(s): State<AppState>,
    ApiQuery(params): ApiQuery<DirectoryParams>,
) -> ApiResult<Response> {
    let mut q = params.parse()?;
    q.limit = crate::http::extract::MAX_LIMIT;
    q.cursor = None;
    Ok(csv_response(&s, q))
}

/// Column names of the CSV export.
pub const CSV_COLUMNS: [&str; 18] = [
    "id",
    "display_name",
    "slug",
    "app_id",
    "status",
    "region",
    "isolation_tier",
    "plan",
    "contact_email",
    "country",
    "brand_domain",
    "created_at",
    "state_since",
    "state_reason",
    "deadline_at",
    "admin_pool",
    "app_pools",
    "error",
];

fn cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

fn csv_row(row: &DirectoryRow) -> Vec<String> {
    let opt = |v: &Option<String>| v.as_deref().map(cell).unwrap_or_default();
    match row {
        DirectoryRow::Tenant(t) => {
            let apps = match &t.pools.app {
                AppPools::Shared(m) => m
                    .iter()
                    .map(|(md, p)| format!("{md}:{p}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                AppPools::Dedicated(p) => format!("*:{p}"),
            };
            vec![
                t.id.to_string(),
                cell(&t.display_name),
                t.slug.clone(),
                t.app_id.to_string(),
                t.state.as_str().into(),
                t.region.clone(),
                t.isolation_tier.as_str().into(),
                opt(&t.plan),
                opt(&t.contact_email),
                opt(&t.country),
                opt(&t.brand_domain),
                crate::clock::rfc3339_micros(t.created_at),
                crate::clock::rfc3339_micros(t.state_since),
                opt(&t.state_reason),
                t.deadline_at
                    .map(crate::clock::rfc3339_micros)
                    .unwrap_or_default(),
                t.pools.admin.clone(),
                apps,
                String::new(),
            ]
        }
        DirectoryRow::Broken { id, error } => {
            let mut v = vec![String::new(); CSV_COLUMNS.len()];
            v[0] = id.to_string();
            v[CSV_COLUMNS.len() - 1] = cell(error);
            v
        }
    }
}

fn csv_response(s: &AppState, q: DirectoryQuery) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::result::Result<Bytes, std::io::Error>>(4);
    let store = s.store().clone();
    tokio::task::spawn_blocking(move || {
        let result = store.read_blocking(|r| -> Result<()> {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(CSV_COLUMNS)
                .map_err(|e| Error::Internal(e.to_string()))?;
            let mut q = q;
            loop {
                let page = directory::query(r, &q)?;
                for row in &page.rows {
                    w.write_record(csv_row(row))
                        .map_err(|e| Error::Internal(e.to_string()))?;
                }
                let chunk = w.into_inner().map_err(|e| Error::Internal(e.to_string()))?;
                if tx.blocking_send(Ok(Bytes::from(chunk))).is_err() {
                    return Ok(());
                }
                w = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(Vec::new());
                match page.next_cursor {
                    Some(c) => q.cursor = Some(c),
                    None => return Ok(()),
                }
            }
        });
        if let Err(e) = result {
            tracing::error!(error = %e, "CSV export failed midway");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"tenants.csv\"",
            ),
        ],
        body,
    )
        .into_response()
}

/// Tenant totals by state, tier and region (maintained counters; no scan).
#[utoipa::path(get, path = "/api/tenants/summary", tag = "tenants", responses((status = 200, body = Summary)))]
async fn tenants_summary(State(s): State<AppState>) -> ApiResult<Json<Summary>> {
    Ok(Json(s.read(directory::summary).await?))
}

/// One tenant, with its pool assignment.
#[utoipa::path(get, path = "/api/tenants/{id}", tag = "tenants", params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = Tenant), (status = 404, body = Problem)))]
async fn tenants_get(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Tenant>> {
    let id = tenant_id(&id)?;
    Ok(Json(s.read(move |r| service::get(r, &id)).await?))
}

/// Edits a tenant's fields (writes `tenant.updated.v1` with a field diff).
#[utoipa::path(patch, path = "/api/tenants/{id}", tag = "tenants", params(("id" = String, Path, description = "Tenant id")),
    request_body = TenantPatch,
    responses((status = 200, body = Tenant), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn tenants_update(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TenantPatch>,
) -> ApiResult<Json<Tenant>> {
    let id = tenant_id(&id)?;
    let input = body.parse(s.config())?;
    Ok(Json(
        s.write(p.actor, move |ctx| service::update(ctx, id, &input))
            .await?,
    ))
}

/// The lifecycle state, with the actions that would succeed now.
#[utoipa::path(get, path = "/api/tenant-lifecycle/{id}/state", tag = "lifecycle", params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = StateView), (status = 404, body = Problem)))]
async fn lifecycle_state(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<StateView>> {
    let id = tenant_id(&id)?;
    let t = s.read(move |r| service::get(r, &id)).await?;
    Ok(Json(StateView::from(&t)))
}

async fn run_action(
    s: AppState,
    p: crate::rbac::Principal,
    id: String,
    action: Action,
    body: TransitionRequest,
) -> ApiResult<Json<StateView>> {
    let id = tenant_id(&id)?;
    let input = body.parse(action)?;
    let t = s
        .write(p.actor, move |ctx| {
            service::transition(ctx, id, action, &input)
        })
        .await?;
    Ok(Json(StateView::from(&t)))
}

/// `provisioned -> trial`; `trial_days` overrides the tenant's trial length.
#[utoipa::path(post, path = "/api/tenant-lifecycle/{id}/start-trial", tag = "lifecycle", params(("id" = String, Path, description = "Tenant id")),
    request_body(content = Option<TransitionRequest>),
    responses((status = 200, body = StateView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn lifecycle_start_trial(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    OptionalJson(b): OptionalJson<TransitionRequest>,
) -> ApiResult<Json<StateView>> {
    run_action(s, p, id, Action::StartTrial, b).await
}

/// `provisioned | trial -> active`.
#[utoipa::path(post, path = "/api/tenant-lifecycle/{id}/activate", tag = "lifecycle", params(("id" = String, Path, description = "Tenant id")),
    request_body(content = Option<TransitionRequest>),
    responses((status = 200, body = StateView), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn lifecycle_activate(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    OptionalJson(b): OptionalJson<TransitionRequest>,
) -> ApiResult<Json<StateView>> {
    run_action(s, p, id, Action::Activate, b).await
}

/// `trial | active -> suspended`; `reason` is required (non-payment, abuse, breach hold).
#[utoipa::path(post, path = "/api/tenant-lifecycle/{id}/suspend", tag = "lifecycle", params(("id" = String, Path, description = "Tenant id")),
    request_body = TransitionRequest,
    responses((status = 200, body = StateView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn lifecycle_suspend(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    OptionalJson(b): OptionalJson<TransitionRequest>,
) -> ApiResult<Json<StateView>> {
    run_action(s, p, id, Action::Suspend, b).await
}

/// `suspended -> active`; only from `suspended`.
#[utoipa::path(post, path = "/api/tenant-lifecycle/{id}/reinstate", tag = "lifecycle", params(("id" = String, Path, description = "Tenant id")),
    request_body(content = Option<TransitionRequest>),
    responses((status = 200, body = StateView), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn lifecycle_reinstate(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    OptionalJson(b): OptionalJson<TransitionRequest>,
) -> ApiResult<Json<StateView>> {
    run_action(s, p, id, Action::Reinstate, b).await
}

/// `trial | active | suspended -> offboarding`, with `deadline_at = now + grace_days` (30 by
/// default); the tenant is read-only until then, and shredded at the deadline.
#[utoipa::path(post, path = "/api/tenant-lifecycle/{id}/offboard", tag = "lifecycle", params(("id" = String, Path, description = "Tenant id")),
    request_body(content = Option<TransitionRequest>),
    responses((status = 200, body = StateView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn lifecycle_offboard(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    OptionalJson(b): OptionalJson<TransitionRequest>,
) -> ApiResult<Json<StateView>> {
    run_action(s, p, id, Action::Offboard, b).await
}

/// `offboarding -> the state it came from`.
#[utoipa::path(post, path = "/api/tenant-lifecycle/{id}/cancel-offboarding", tag = "lifecycle", params(("id" = String, Path, description = "Tenant id")),
    request_body(content = Option<TransitionRequest>),
    responses((status = 200, body = StateView), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn lifecycle_cancel_offboarding(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    OptionalJson(b): OptionalJson<TransitionRequest>,
) -> ApiResult<Json<StateView>> {
    run_action(s, p, id, Action::CancelOffboarding, b).await
}
