//! `/api/approvals...` (operators: platform routes, every request) and
//! `/api/tenants/{id}/approvals...` (a tenant's routes and the requests concerning it), and the
//! 202 answer of a guarded action that a route held ([`accepted`]).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::model::{self, Decider, Request};
use super::queries::ApprovalFilter;
use super::service::RouteDraft;
use crate::clock::from_micros;
use crate::error::path_id;
use crate::http::extract::{ApiJson, ApiQuery, Caller};
use crate::http::problem::{ApiResult, Problem};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(routes_list, routes_create))
        .routes(routes!(routes_replace, routes_delete))
        .routes(routes!(approvals_list))
        .routes(routes!(approvals_get))
        .routes(routes!(approvals_approve))
        .routes(routes!(approvals_reject))
        .routes(routes!(tenant_routes_list, tenant_routes_create))
        .routes(routes!(tenant_routes_replace, tenant_routes_delete))
        .routes(routes!(tenant_approvals_list))
        .routes(routes!(tenant_approvals_get))
        .routes(routes!(tenant_approvals_approve))
        .routes(routes!(tenant_approvals_reject))
}

/// An approval route: which action it holds, when, who approves, how many, how fast.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApprovalRoute {
    /// UUIDv7.
    pub id: Uuid,
    /// The tenant it belongs to; null for a platform route.
    pub tenant_id: Option<Uuid>,
    /// Its name.
    pub name: String,
    /// The action type it holds (`tenant.offboard`, `tenant.export`, `plan.downgrade`,
    /// `api_key.issue`).
    pub action: String,
    /// `fact op number` (`size_bytes > 1073741824`); null: every request of the action.
    pub condition: Option<String>,
    /// `role:<name>`, `operator:<username>` (platform) or `persona:<id>` (tenant).
    pub approvers: Vec<String>,
    /// Approvals needed, from distinct people.
    pub required: u8,
    /// Hours to decide before the request is breached.
    pub sla_hours: u32,
    /// Who is paged on a breach.
    pub escalation: Option<String>,
    /// Off: it holds nothing.
    pub enabled: bool,
    /// Creation.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<model::Route> for ApprovalRoute {
    fn from(x: model::Route) -> ApprovalRoute {
        let r = x.route;
        ApprovalRoute {
            id: x.id,
            tenant_id: x.tenant_id,
            condition: r.condition.as_ref().map(model::Condition::text),
            name: r.name,
            action: r.action,
            approvers: r.approvers,
            required: r.required,
            sla_hours: r.sla_hours,
            escalation: r.escalation,
            enabled: r.enabled,
            created_at: from_micros(r.created_at),
            updated_at: from_micros(r.updated_at),
        }
    }
}

/// An action that routes may hold.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApprovableAction {
    /// Its type.
    pub action: String,
    /// What it is.
    pub label: String,
    /// The facts a condition may test.
    pub facts: Vec<String>,
}

/// Routes, and the actions they may hold.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApprovalRouteList {
    /// By action, then creation.
    pub items: Vec<ApprovalRoute>,
    /// Always null (at most 100 routes).
    pub next_cursor: Option<String>,
    /// The actions this build can hold.
    pub actions: Vec<ApprovableAction>,
}

/// A route to create, or the whole of one to replace.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApprovalRoute {
    /// 1–100 characters.
    pub name: String,
    /// An action type of `actions` in the routes list.
    pub action: String,
    /// `fact op number[unit]`, e.g. `size_bytes > 1 GB` (units KB MB GB TB, powers of 1024).
    pub condition: Option<String>,
    /// `role:<name>`, `operator:<username>` (platform) or `persona:<id>` (tenant); 1–20.
    pub approvers: Vec<String>,
    /// Approvals needed, 1–5 (default 1).
    #[schema(minimum = 1, maximum = 5)]
    pub required: Option<i64>,
    /// SLA in hours, 1–720 (default 24).
    #[schema(minimum = 1, maximum = 720)]
    pub sla_hours: Option<i64>,
    /// Who is paged on a breach (an approver spelling).
    pub escalation: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
}

impl From<NewApprovalRoute> for RouteDraft {
    fn from(b: NewApprovalRoute) -> RouteDraft {
        RouteDraft {
            name: b.name,
            action: b.action,
            condition: b.condition,
            approvers: b.approvers,
            required: b.required,
            sla_hours: b.sla_hours,
            escalation: b.escalation,
            enabled: b.enabled,
        }
    }
}

/// One decision.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApprovalDecision {
    /// The actor id of the decider.
    pub by: String,
    /// Approve (true) or reject.
    pub approve: bool,
    /// Its comment.
    pub comment: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// An approval request: the held action, its route's terms, the decisions, the outcome.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApprovalRequest {
    /// UUIDv7.
    pub id: Uuid,
    /// `pending`, `rejected`, `expired`, `executed` or `failed`.
    pub state: model::State,
    /// The action type.
    pub action: String,
    /// What it does.
    pub summary: String,
    /// The tenant it concerns.
    pub tenant_id: Option<Uuid>,
    /// The route that held it.
    pub route_id: Uuid,
    /// Its name then.
    pub route_name: String,
    /// The route's tenant; null for a platform route (operators decide).
    pub route_tenant_id: Option<Uuid>,
    /// The facts a condition tested (`size_bytes`...).
    pub facts: BTreeMap<String, i64>,
    /// The requester's actor id.
    pub requested_by: String,
    /// Its actor kind.
    pub requested_by_kind: String,
    /// When asked.
    pub requested_at: DateTime<Utc>,
    /// The SLA's end.
    pub due_at: DateTime<Utc>,
    /// When it expires undecided.
    pub expires_at: DateTime<Utc>,
    /// Past its SLA undecided.
    pub breached: bool,
    /// When the SLA ran out.
    pub breached_at: Option<DateTime<Utc>>,
    /// Approvals needed.
    pub required: u8,
    /// Approvals so far.
    pub approvals: u32,
    /// Who may approve.
    pub approvers: Vec<String>,
    /// Who is paged on a breach.
    pub escalation: Option<String>,
    /// Oldest first.
    pub decisions: Vec<ApprovalDecision>,
    /// When it left `pending`.
    pub closed_at: Option<DateTime<Utc>>,
    /// The action's result, once executed.
    pub result: Option<serde_json::Value>,
    /// `code: detail` of the re-check that refused it, once failed.
    pub failure: Option<String>,
    /// May the caller decide it now?
    pub can_decide: bool,
}

impl ApprovalRequest {
    /// The wire form of `x` for `who` at `now`.
    pub fn of(x: Request, who: Option<&Decider>, now: DateTime<Utc>) -> ApprovalRequest {
        let can_decide = who
            .is_some_and(|w| super::queries::awaits(&x.request, w, crate::clock::to_micros(now)));
        let r = x.request;
        let (result, failure) = match r.state {
            model::State::Executed => (
                r.outcome
                    .as_deref()
                    .and_then(|o| serde_json::from_str(o).ok()),
                None,
            ),
            model::State::Failed => (None, r.outcome.clone()),
            _ => (None, None),
        };
        ApprovalRequest {
            id: x.id,
            state: r.state,
            action: r.held.action,
            summary: r.held.summary,
            tenant_id: r.held.tenant_id,
            route_id: r.route_id,
            route_name: r.route_name,
            route_tenant_id: r.route_tenant,
            facts: r.facts.into_iter().collect(),
            requested_by: r.requested_by.id,
            requested_by_kind: r.requested_by.kind.as_str().to_string(),
            requested_at: from_micros(r.requested_at),
            due_at: from_micros(r.due_at),
            expires_at: from_micros(r.expires_at),
            breached: r.breached_at.is_some(),
            breached_at: r.breached_at.map(from_micros),
            required: r.required,
            approvals: u32::try_from(r.decisions.iter().filter(|d| d.approve).count())
                .unwrap_or(u32::MAX),
            approvers: r.approvers,
            escalation: r.escalation,
            decisions: r
                .decisions
                .into_iter()
                .map(|d| ApprovalDecision {
                    by: d.actor.id,
                    approve: d.approve,
                    comment: d.comment,
                    at: from_micros(d.at),
                })
                .collect(),
            closed_at: r.closed_at.map(from_micros),
            result,
            failure,
            can_decide,
        }
    }
}

/// The 202 answer of a guarded action that a route held: the request, with a `Location`.
pub fn accepted(req: Request, now: DateTime<Utc>) -> Response {
    let location = format!("/api/approvals/{}", req.id);
    (
        StatusCode::ACCEPTED,
        [(axum::http::header::LOCATION, location)],
        Json(ApprovalRequest::of(req, None, now)),
    )
        .into_response()
}

/// Requests.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApprovalList {
    /// Newest first.
    pub items: Vec<ApprovalRequest>,
    /// Where the next page starts; null on the last page.
    pub next_cursor: Option<String>,
}

/// A decision's comment.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// 1–1000 characters; it goes into the audit chain with the decision.
    pub comment: String,
}

async fn list_routes(s: &AppState, tenant: Option<Uuid>) -> ApiResult<Json<ApprovalRouteList>> {
    let items = s
        .read(move |r| {
            if let Some(t) = tenant {
                crate::tenants::queries::get(r, &t)?;
            }
            super::service::routes(r, tenant.as_ref(), None)
        })
        .await?;
    Ok(Json(ApprovalRouteList {
        items: items.into_iter().map(ApprovalRoute::from).collect(),
        next_cursor: None,
        actions: s
            .tenant_hooks()
            .approvables
            .iter()
            .map(|a| ApprovableAction {
                action: a.action.into(),
                label: a.label.into(),
                facts: a.facts.iter().map(|f| f.to_string()).collect(),
            })
            .collect(),
    }))
}

async fn list_requests(
    s: &AppState,
    p: &crate::rbac::Principal,
    tenant: Option<Uuid>,
    f: ApprovalFilter,
) -> ApiResult<Json<ApprovalList>> {
    let who = super::viewer(s, p).await?;
    let now = s.clock().now();
    let w = who.clone();
    let page = s
        .read(move |r| {
            if let Some(t) = tenant {
                crate::tenants::queries::get(r, &t)?;
            }
            super::queries::list(r, tenant.as_ref(), &f, &w, now)
        })
        .await?;
    Ok(Json(ApprovalList {
        items: page
            .items
            .into_iter()
            .map(|x| ApprovalRequest::of(x, Some(&who), now))
            .collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

async fn get_request(
    s: &AppState,
    p: &crate::rbac::Principal,
    tenant: Option<Uuid>,
    id: &str,
) -> ApiResult<Json<ApprovalRequest>> {
    let id = path_id("approval request", id)?;
    let who = super::viewer(s, p).await?;
    let x = s
        .read(move |r| super::queries::get(r, &id, tenant.as_ref()))
        .await?;
    Ok(Json(ApprovalRequest::of(x, Some(&who), s.clock().now())))
}

async fn decide(
    s: &AppState,
    p: &crate::rbac::Principal,
    tenant: Option<Uuid>,
    id: &str,
    approve: bool,
    body: DecisionBody,
) -> ApiResult<Json<ApprovalRequest>> {
    let id = path_id("approval request", id)?;
    let x = super::decide(s, p, tenant, id, approve, body.comment).await?;
    let who = super::viewer(s, p).await?;
    Ok(Json(ApprovalRequest::of(x, Some(&who), s.clock().now())))
}

/// The platform's approval routes (they hold operators' actions and every tenant's), and the
/// actions routes may hold.
#[utoipa::path(get, path = "/api/approvals/routes", tag = "approvals",
    responses((status = 200, body = ApprovalRouteList)))]
async fn routes_list(State(s): State<AppState>) -> ApiResult<Json<ApprovalRouteList>> {
    list_routes(&s, None).await
}

/// Creates a platform route (`approval.route.created.v1`).
#[utoipa::path(post, path = "/api/approvals/routes", tag = "approvals", request_body = NewApprovalRoute,
    responses((status = 201, body = ApprovalRoute), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn routes_create(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiJson(b): ApiJson<NewApprovalRoute>,
) -> ApiResult<(StatusCode, Json<ApprovalRoute>)> {
    let x = super::create_route(&s, &p, None, b.into()).await?;
    Ok((StatusCode::CREATED, Json(x.into())))
}

/// Replaces a platform route (`approval.route.updated.v1`); pending requests keep their terms.
#[utoipa::path(put, path = "/api/approvals/routes/{route_id}", tag = "approvals",
    params(("route_id" = String, Path, description = "Route id")), request_body = NewApprovalRoute,
    responses((status = 200, body = ApprovalRoute), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn routes_replace(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(route_id): Path<String>,
    ApiJson(b): ApiJson<NewApprovalRoute>,
) -> ApiResult<Json<ApprovalRoute>> {
    let id = path_id("approval route", &route_id)?;
    Ok(Json(
        super::replace_route(&s, &p, None, id, b.into())
            .await?
            .into(),
    ))
}

/// Deletes a platform route (`approval.route.deleted.v1`); its pending requests stay.
#[utoipa::path(delete, path = "/api/approvals/routes/{route_id}", tag = "approvals",
    params(("route_id" = String, Path, description = "Route id")),
    responses((status = 204), (status = 404, body = Problem)))]
async fn routes_delete(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(route_id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = path_id("approval route", &route_id)?;
    super::delete_route(&s, &p, None, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every approval request, newest first; `mine=decide` lists those waiting for the caller,
/// `mine=requested` the caller's own, `breached=true` the Breaches page.
#[utoipa::path(get, path = "/api/approvals", tag = "approvals", params(ApprovalFilter),
    responses((status = 200, body = ApprovalList), (status = 400, body = Problem)))]
async fn approvals_list(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiQuery(f): ApiQuery<ApprovalFilter>,
) -> ApiResult<Json<ApprovalList>> {
    list_requests(&s, &p, None, f).await
}

/// One approval request.
#[utoipa::path(get, path = "/api/approvals/{approval_id}", tag = "approvals",
    params(("approval_id" = String, Path, description = "Request id")),
    responses((status = 200, body = ApprovalRequest), (status = 404, body = Problem)))]
async fn approvals_get(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(approval_id): Path<String>,
) -> ApiResult<Json<ApprovalRequest>> {
    get_request(&s, &p, None, &approval_id).await
}

/// Approves a request (`approval.approved.v1`). The last approval needed runs the held action
/// in the same write, re-checked against the state of now: `executed`, or `failed` with the
/// refusal when the state no longer allows it.
#[utoipa::path(post, path = "/api/approvals/{approval_id}/approve", tag = "approvals",
    params(("approval_id" = String, Path, description = "Request id")), request_body = DecisionBody,
    responses((status = 200, body = ApprovalRequest), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn approvals_approve(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(approval_id): Path<String>,
    ApiJson(b): ApiJson<DecisionBody>,
) -> ApiResult<Json<ApprovalRequest>> {
    decide(&s, &p, None, &approval_id, true, b).await
}

/// Rejects a request (`approval.rejected.v1`); its action never runs.
#[utoipa::path(post, path = "/api/approvals/{approval_id}/reject", tag = "approvals",
    params(("approval_id" = String, Path, description = "Request id")), request_body = DecisionBody,
    responses((status = 200, body = ApprovalRequest), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn approvals_reject(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(approval_id): Path<String>,
    ApiJson(b): ApiJson<DecisionBody>,
) -> ApiResult<Json<ApprovalRequest>> {
    decide(&s, &p, None, &approval_id, false, b).await
}

/// The tenant's own approval routes (they hold its members' actions).
#[utoipa::path(get, path = "/api/tenants/{id}/approvals/routes", tag = "approvals",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = ApprovalRouteList), (status = 404, body = Problem)))]
async fn tenant_routes_list(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ApprovalRouteList>> {
    list_routes(&s, Some(path_id("tenant", &id)?)).await
}

/// Creates a tenant route (`approval.route.created.v1` on the tenant's chain).
#[utoipa::path(post, path = "/api/tenants/{id}/approvals/routes", tag = "approvals",
    params(("id" = String, Path, description = "Tenant id")), request_body = NewApprovalRoute,
    responses((status = 201, body = ApprovalRoute), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn tenant_routes_create(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<NewApprovalRoute>,
) -> ApiResult<(StatusCode, Json<ApprovalRoute>)> {
    let tenant = path_id("tenant", &id)?;
    let x = super::create_route(&s, &p, Some(tenant), b.into()).await?;
    Ok((StatusCode::CREATED, Json(x.into())))
}

/// Replaces a tenant route.
#[utoipa::path(put, path = "/api/tenants/{id}/approvals/routes/{route_id}", tag = "approvals",
    params(("id" = String, Path, description = "Tenant id"), ("route_id" = String, Path, description = "Route id")),
    request_body = NewApprovalRoute,
    responses((status = 200, body = ApprovalRoute), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn tenant_routes_replace(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, route_id)): Path<(String, String)>,
    ApiJson(b): ApiJson<NewApprovalRoute>,
) -> ApiResult<Json<ApprovalRoute>> {
    let (tenant, rid) = (
        path_id("tenant", &id)?,
        path_id("approval route", &route_id)?,
    );
    Ok(Json(
        super::replace_route(&s, &p, Some(tenant), rid, b.into())
            .await?
            .into(),
    ))
}

/// Deletes a tenant route.
#[utoipa::path(delete, path = "/api/tenants/{id}/approvals/routes/{route_id}", tag = "approvals",
    params(("id" = String, Path, description = "Tenant id"), ("route_id" = String, Path, description = "Route id")),
    responses((status = 204), (status = 404, body = Problem)))]
async fn tenant_routes_delete(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, route_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (tenant, rid) = (
        path_id("tenant", &id)?,
        path_id("approval route", &route_id)?,
    );
    super::delete_route(&s, &p, Some(tenant), rid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The requests concerning the tenant, newest first (filters as `/api/approvals`).
#[utoipa::path(get, path = "/api/tenants/{id}/approvals", tag = "approvals",
    params(("id" = String, Path, description = "Tenant id"), ApprovalFilter),
    responses((status = 200, body = ApprovalList), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn tenant_approvals_list(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiQuery(f): ApiQuery<ApprovalFilter>,
) -> ApiResult<Json<ApprovalList>> {
    list_requests(&s, &p, Some(path_id("tenant", &id)?), f).await
}

/// One request concerning the tenant.
#[utoipa::path(get, path = "/api/tenants/{id}/approvals/{approval_id}", tag = "approvals",
    params(("id" = String, Path, description = "Tenant id"), ("approval_id" = String, Path, description = "Request id")),
    responses((status = 200, body = ApprovalRequest), (status = 404, body = Problem)))]
async fn tenant_approvals_get(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, approval_id)): Path<(String, String)>,
) -> ApiResult<Json<ApprovalRequest>> {
    get_request(&s, &p, Some(path_id("tenant", &id)?), &approval_id).await
}

/// Approves a request concerning the tenant (see `/api/approvals/{approval_id}/approve`).
#[utoipa::path(post, path = "/api/tenants/{id}/approvals/{approval_id}/approve", tag = "approvals",
    params(("id" = String, Path, description = "Tenant id"), ("approval_id" = String, Path, description = "Request id")),
    request_body = DecisionBody,
    responses((status = 200, body = ApprovalRequest), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn tenant_approvals_approve(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, approval_id)): Path<(String, String)>,
    ApiJson(b): ApiJson<DecisionBody>,
) -> ApiResult<Json<ApprovalRequest>> {
    decide(&s, &p, Some(path_id("tenant", &id)?), &approval_id, true, b).await
}

/// Rejects a request concerning the tenant.
#[utoipa::path(post, path = "/api/tenants/{id}/approvals/{approval_id}/reject", tag = "approvals",
    params(("id" = String, Path, description = "Tenant id"), ("approval_id" = String, Path, description = "Request id")),
    request_body = DecisionBody,
    responses((status = 200, body = ApprovalRequest), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn tenant_approvals_reject(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, approval_id)): Path<(String, String)>,
    ApiJson(b): ApiJson<DecisionBody>,
) -> ApiResult<Json<ApprovalRequest>> {
    decide(
        &s,
        &p,
        Some(path_id("tenant", &id)?),
        &approval_id,
        false,
        b,
    )
    .await
}
