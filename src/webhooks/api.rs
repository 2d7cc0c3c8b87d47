//! `GET /api/event-types`, the operator's `/api/webhooks` and `/api/webhooks/dlq`, and a
//! tenant's `/api/tenants/{id}/webhooks...` (issue 11, API.md conventions).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::model;
use super::queries::{DlqFilter, PageQuery};
use super::service::{EndpointDraft, EndpointPatch};
use crate::error::path_id;
use crate::http::context::Registry;
use crate::http::extract::{ApiJson, ApiQuery, Caller};
use crate::http::problem::{ApiResult, Problem};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(event_types_list))
        .routes(routes!(webhooks_list_all))
        .routes(routes!(webhooks_dlq_all))
        .routes(routes!(webhooks_dlq_replay_any))
        .routes(routes!(webhooks_list, webhooks_create))
        .routes(routes!(webhooks_dlq))
        .routes(routes!(webhooks_dlq_replay))
        .routes(routes!(webhooks_get, webhooks_update, webhooks_delete))
        .routes(routes!(webhooks_rotate))
        .routes(routes!(webhooks_test))
        .routes(routes!(webhooks_attempts))
        .routes(routes!(webhooks_replay_endpoint))
}

/// The catalogue's names, from the contexts' events.
pub fn catalogue_names(registry: &Registry) -> Vec<String> {
    super::queries::catalogue_names(registry.events())
}

/// One event type an endpoint may subscribe to.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventType {
    /// The name, e.g. `persona.created.v1`: the delivery's `type`.
    pub name: String,
    /// `ledger` (an audit ledger action), `billing` or `webhooks`.
    pub source: String,
    /// What it means, when the name does not say.
    pub description: Option<String>,
}

/// The event catalogue.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventTypeList {
    /// Sorted by name.
    pub items: Vec<EventType>,
    /// Always null: the catalogue is short.
    pub next_cursor: Option<String>,
}

/// The published catalogue of event types: the audit ledger's action names plus billing
/// events. An endpoint subscribes to names from it.
#[utoipa::path(get, path = "/api/event-types", tag = "webhooks",
    responses((status = 200, body = EventTypeList)))]
async fn event_types_list(Extension(registry): Extension<Arc<Registry>>) -> Json<EventTypeList> {
    Json(EventTypeList {
        items: super::queries::catalogue(registry.events())
            .into_iter()
            .map(|e| EventType {
                name: e.name,
                source: e.source.to_string(),
                description: e.description.map(str::to_string),
            })
            .collect(),
        next_cursor: None,
    })
}

/// An endpoint as listed: never its secret.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Endpoint {
    /// UUIDv7.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// Where deliveries are POSTed.
    pub url: String,
    /// What it is for.
    pub description: String,
    /// The event types it receives.
    pub event_types: Vec<String>,
    /// Whether it receives deliveries.
    pub enabled: bool,
    /// Why the platform disabled it (the endpoint answered 410 Gone), if it did.
    pub disabled_reason: Option<String>,
    /// `whsec_` and the first characters of the secret, to recognise it.
    pub secret_hint: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Last secret rotation.
    pub rotated_at: Option<DateTime<Utc>>,
    /// Until when the previous secret also signs (60 s after a rotation).
    pub previous_secret_valid_until: Option<DateTime<Utc>>,
}

impl Endpoint {
    fn of(e: model::Endpoint, now: DateTime<Utc>) -> Endpoint {
        Endpoint {
            previous_secret_valid_until: e.previous_valid_until.filter(|u| *u > now),
            id: e.id,
            tenant_id: e.tenant_id,
            url: e.url,
            description: e.description,
            event_types: e.event_types,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            secret_hint: e.secret_hint,
            created_at: e.created_at,
            updated_at: e.updated_at,
            rotated_at: e.rotated_at,
        }
    }
}

/// Endpoints.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EndpointList {
    /// The endpoints.
    pub items: Vec<Endpoint>,
    /// The next page's cursor, or null on the last page.
    pub next_cursor: Option<String>,
}

/// Every tenant's webhook endpoints (operator guide §5), by tenant then creation.
#[utoipa::path(get, path = "/api/webhooks", tag = "webhooks", params(PageQuery),
    responses((status = 200, body = EndpointList), (status = 400, body = Problem)))]
async fn webhooks_list_all(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<EndpointList>> {
    let now = s.clock().now();
    let p = s.read(move |r| super::queries::list_all(r, &q)).await?;
    Ok(Json(EndpointList {
        items: p.items.into_iter().map(|e| Endpoint::of(e, now)).collect(),
        next_cursor: p.next.map(|c| c.encode()),
    }))
}

/// A tenant's endpoints, oldest first (at most 50).
#[utoipa::path(get, path = "/api/tenants/{id}/webhooks", tag = "webhooks",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = EndpointList), (status = 404, body = Problem)))]
async fn webhooks_list(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<EndpointList>> {
    let tenant = path_id("tenant", &id)?;
    let now = s.clock().now();
    let items = s
        .read(move |r| {
            crate::tenants::queries::get(r, &tenant)?;
            super::queries::list(r, &tenant)
        })
        .await?;
    Ok(Json(EndpointList {
        items: items.into_iter().map(|e| Endpoint::of(e, now)).collect(),
        next_cursor: None,
    }))
}

/// `POST /api/tenants/{id}/webhooks` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// `https://…` (plain `http` only to the addresses in `[webhooks] allow_http`).
    pub url: String,
    /// Event types from `GET /api/event-types`: start narrow.
    pub event_types: Vec<String>,
    /// What it is for, at most 500 characters.
    pub description: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
}

/// An endpoint just created, or whose secret was just rotated: `secret` is here once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EndpointWithSecret {
    /// The signing secret, `whsec_<base64>`. Copy it now: it is never shown again.
    pub secret: String,
    /// The endpoint.
    pub endpoint: Endpoint,
}

/// Creates an endpoint (`webhook.endpoint.created.v1`) and returns its signing secret once. It
/// receives the events written after it.
#[utoipa::path(post, path = "/api/tenants/{id}/webhooks", tag = "webhooks",
    params(("id" = String, Path, description = "Tenant id")), request_body = NewEndpoint,
    responses((status = 201, body = EndpointWithSecret), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn webhooks_create(
    State(s): State<AppState>,
    Caller(p): Caller,
    Extension(registry): Extension<Arc<Registry>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewEndpoint>,
) -> ApiResult<(StatusCode, Json<EndpointWithSecret>)> {
    let tenant = path_id("tenant", &id)?;
    let draft = EndpointDraft {
        url: body.url,
        description: body.description,
        event_types: body.event_types,
        enabled: body.enabled,
    };
    let (e, secret) = super::create(&s, &p, tenant, draft, &catalogue_names(&registry)).await?;
    Ok((
        StatusCode::CREATED,
        Json(EndpointWithSecret {
            secret,
            endpoint: Endpoint::of(e, s.clock().now()),
        }),
    ))
}

/// One endpoint (never its secret).
#[utoipa::path(get, path = "/api/tenants/{id}/webhooks/{eid}", tag = "webhooks",
    params(("id" = String, Path, description = "Tenant id"), ("eid" = String, Path, description = "Endpoint id")),
    responses((status = 200, body = Endpoint), (status = 404, body = Problem)))]
async fn webhooks_get(
    State(s): State<AppState>,
    Path((id, eid)): Path<(String, String)>,
) -> ApiResult<Json<Endpoint>> {
    let (tenant, eid) = (path_id("tenant", &id)?, path_id("webhook endpoint", &eid)?);
    let e = s
        .read(move |r| super::queries::get(r, &tenant, &eid))
        .await?;
    Ok(Json(Endpoint::of(e, s.clock().now())))
}

/// `PATCH /api/tenants/{id}/webhooks/{eid}` body: absent fields stay.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointChange {
    /// New URL.
    pub url: Option<String>,
    /// New event types.
    pub event_types: Option<Vec<String>>,
    /// New description.
    pub description: Option<String>,
    /// Enable (clears a 410's disabling) or disable.
    pub enabled: Option<bool>,
}

/// Changes an endpoint (`webhook.endpoint.updated.v1` with the changed fields).
#[utoipa::path(patch, path = "/api/tenants/{id}/webhooks/{eid}", tag = "webhooks",
    params(("id" = String, Path, description = "Tenant id"), ("eid" = String, Path, description = "Endpoint id")),
    request_body = EndpointChange,
    responses((status = 200, body = Endpoint), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn webhooks_update(
    State(s): State<AppState>,
    Caller(p): Caller,
    Extension(registry): Extension<Arc<Registry>>,
    Path((id, eid)): Path<(String, String)>,
    ApiJson(body): ApiJson<EndpointChange>,
) -> ApiResult<Json<Endpoint>> {
    let (tenant, eid) = (path_id("tenant", &id)?, path_id("webhook endpoint", &eid)?);
    let patch = EndpointPatch {
        url: body.url,
        description: body.description,
        event_types: body.event_types,
        enabled: body.enabled,
    };
    let e = super::update(&s, &p, tenant, eid, patch, &catalogue_names(&registry)).await?;
    Ok(Json(Endpoint::of(e, s.clock().now())))
}

/// Deletes an endpoint and its attempts (`webhook.endpoint.deleted.v1`).
#[utoipa::path(delete, path = "/api/tenants/{id}/webhooks/{eid}", tag = "webhooks",
    params(("id" = String, Path, description = "Tenant id"), ("eid" = String, Path, description = "Endpoint id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn webhooks_delete(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, eid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (tenant, eid) = (path_id("tenant", &id)?, path_id("webhook endpoint", &eid)?);
    s.write(p.actor, move |ctx| {
        super::service::delete(ctx, &tenant, &eid)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotates the signing secret (`webhook.endpoint.secret_rotated.v1`): the new secret is
/// returned once; for 60 s every delivery carries both signatures, space-separated.
#[utoipa::path(post, path = "/api/tenants/{id}/webhooks/{eid}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path, description = "Tenant id"), ("eid" = String, Path, description = "Endpoint id")),
    responses((status = 200, body = EndpointWithSecret), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn webhooks_rotate(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, eid)): Path<(String, String)>,
) -> ApiResult<Json<EndpointWithSecret>> {
    let (tenant, eid) = (path_id("tenant", &id)?, path_id("webhook endpoint", &eid)?);
    let (e, secret) = super::rotate(&s, &p, tenant, eid).await?;
    Ok(Json(EndpointWithSecret {
        secret,
        endpoint: Endpoint::of(e, s.clock().now()),
    }))
}

/// A delivery: pending or in the DLQ (a delivered one is deleted; its attempts remain).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Delivery {
    /// UUIDv7.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// Its endpoint.
    pub endpoint_id: Uuid,
    /// The event type (`type` of the body).
    pub event_type: String,
    /// The `webhook-id` header, the same on every try and replay.
    pub msg_id: String,
    /// `pending` or `dead` (in the DLQ).
    pub state: String,
    /// Tries so far.
    pub attempts: u32,
    /// Replays so far.
    pub replays: u32,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Its next try, while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it entered the DLQ.
    pub dead_at: Option<DateTime<Utc>>,
    /// The last try's HTTP status.
    pub last_status: Option<u16>,
    /// The last try's error.
    pub last_error: Option<String>,
    /// The body as sent: `{type, timestamp, data}`.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

impl Delivery {
    fn of(d: model::Delivery) -> Delivery {
        Delivery {
            payload: serde_json::from_slice(&d.payload).unwrap_or(serde_json::Value::Null),
            id: d.id,
            tenant_id: d.tenant_id,
            endpoint_id: d.endpoint_id,
            event_type: d.event_type,
            msg_id: d.msg_id,
            state: d.state.as_str().to_string(),
            attempts: d.attempts,
            replays: d.replays,
            created_at: d.created_at,
            next_attempt_at: d.next_attempt_at,
            dead_at: d.dead_at,
            last_status: d.last_status,
            last_error: d.last_error,
        }
    }
}

/// Sends a test event (`webhook.test.v1`) to the endpoint now (`webhook.endpoint.tested.v1`);
/// its attempt shows under `.../attempts`.
#[utoipa::path(post, path = "/api/tenants/{id}/webhooks/{eid}/test", tag = "webhooks",
    params(("id" = String, Path, description = "Tenant id"), ("eid" = String, Path, description = "Endpoint id")),
    responses((status = 202, body = Delivery), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn webhooks_test(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, eid)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    let (tenant, eid) = (path_id("tenant", &id)?, path_id("webhook endpoint", &eid)?);
    let d = super::test(&s, &p, tenant, eid).await?;
    Ok((StatusCode::ACCEPTED, Json(Delivery::of(d))))
}

/// One try of a delivery.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Attempt {
    /// Its delivery.
    pub delivery_id: Uuid,
    /// The `webhook-id`.
    pub msg_id: String,
    /// The event type.
    pub event_type: String,
    /// Which try of the delivery, from 1.
    pub attempt: u32,
    /// When it started.
    pub at: DateTime<Utc>,
    /// `succeeded`, `failed` or `refused` (not sent: the SSRF guard, or a disabled endpoint).
    pub outcome: String,
    /// The HTTP status, when an answer came.
    pub status_code: Option<u16>,
    /// Milliseconds until the answer or the failure.
    pub latency_ms: u32,
    /// What went wrong.
    pub error: Option<String>,
    /// The next try it scheduled.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Whether the delivery went to the DLQ after it.
    pub dead_lettered: bool,
}

/// Attempts, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AttemptList {
    /// The attempts.
    pub items: Vec<Attempt>,
    /// The next page's cursor, or null on the last page.
    pub next_cursor: Option<String>,
}

impl Attempt {
    fn of(a: model::Attempt) -> Attempt {
        Attempt {
            delivery_id: a.delivery_id,
            msg_id: a.msg_id,
            event_type: a.event_type,
            attempt: a.attempt,
            at: a.at,
            outcome: a.outcome.as_str().to_string(),
            status_code: a.status,
            latency_ms: a.latency_ms,
            error: a.error,
            next_attempt_at: a.next_attempt_at,
            dead_lettered: a.dead_lettered,
        }
    }
}

/// The endpoint's delivery attempts, newest first: status code, latency, error, next try.
#[utoipa::path(get, path = "/api/tenants/{id}/webhooks/{eid}/attempts", tag = "webhooks",
    params(("id" = String, Path, description = "Tenant id"), ("eid" = String, Path, description = "Endpoint id"), PageQuery),
    responses((status = 200, body = AttemptList), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn webhooks_attempts(
    State(s): State<AppState>,
    Path((id, eid)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<AttemptList>> {
    let (tenant, eid) = (path_id("tenant", &id)?, path_id("webhook endpoint", &eid)?);
    let p = s
        .read(move |r| super::queries::attempts(r, &tenant, &eid, &q))
        .await?;
    Ok(Json(AttemptList {
        items: p.items.into_iter().map(Attempt::of).collect(),
        next_cursor: p.next.map(|c| c.encode()),
    }))
}

/// Dead-lettered deliveries, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryList {
    /// The deliveries.
    pub items: Vec<Delivery>,
    /// The next page's cursor, or null on the last page.
    pub next_cursor: Option<String>,
}

/// The cross-tenant DLQ (operator guide §5), newest first; filters `tenant_id`,
/// `endpoint_id`, `event_type`.
#[utoipa::path(get, path = "/api/webhooks/dlq", tag = "webhooks", params(DlqFilter),
    responses((status = 200, body = DeliveryList), (status = 400, body = Problem)))]
async fn webhooks_dlq_all(
    State(s): State<AppState>,
    ApiQuery(f): ApiQuery<DlqFilter>,
) -> ApiResult<Json<DeliveryList>> {
    let p = s.read(move |r| super::queries::dlq(r, None, &f)).await?;
    Ok(Json(DeliveryList {
        items: p.items.into_iter().map(Delivery::of).collect(),
        next_cursor: p.next.map(|c| c.encode()),
    }))
}

/// The tenant's DLQ, newest first; filters `endpoint_id`, `event_type` (`tenant_id` is the
/// path's).
#[utoipa::path(get, path = "/api/tenants/{id}/webhooks/dlq", tag = "webhooks",
    params(("id" = String, Path, description = "Tenant id"), DlqFilter),
    responses((status = 200, body = DeliveryList), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn webhooks_dlq(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(f): ApiQuery<DlqFilter>,
) -> ApiResult<Json<DeliveryList>> {
    let tenant = path_id("tenant", &id)?;
    let p = s
        .read(move |r| {
            crate::tenants::queries::get(r, &tenant)?;
            super::queries::dlq(r, Some(&tenant), &f)
        })
        .await?;
    Ok(Json(DeliveryList {
        items: p.items.into_iter().map(Delivery::of).collect(),
        next_cursor: p.next.map(|c| c.encode()),
    }))
}

/// Replays a dead-lettered delivery of any tenant (`webhook.delivery.replayed.v1`): the
/// original body with the same `webhook-id`, a fresh timestamp and signature, one try; if it
/// fails it lands back in the DLQ.
#[utoipa::path(post, path = "/api/webhooks/dlq/{delivery_id}/replay", tag = "webhooks",
    params(("delivery_id" = String, Path, description = "Delivery id")),
    responses((status = 202, body = Delivery), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn webhooks_dlq_replay_any(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(did): Path<String>,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    let did = path_id("webhook delivery", &did)?;
    let d = super::replay(&s, &p, None, did).await?;
    Ok((StatusCode::ACCEPTED, Json(Delivery::of(d))))
}

/// Replays one of the tenant's dead-lettered deliveries (`webhook.delivery.replayed.v1`).
#[utoipa::path(post, path = "/api/tenants/{id}/webhooks/dlq/{delivery_id}/replay", tag = "webhooks",
    params(("id" = String, Path, description = "Tenant id"), ("delivery_id" = String, Path, description = "Delivery id")),
    responses((status = 202, body = Delivery), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn webhooks_dlq_replay(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, did)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    let (tenant, did) = (path_id("tenant", &id)?, path_id("webhook delivery", &did)?);
    let d = super::replay(&s, &p, Some(tenant), did).await?;
    Ok((StatusCode::ACCEPTED, Json(Delivery::of(d))))
}

/// How many deliveries a bulk replay queued.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BulkReplay {
    /// Deliveries sent again (at most 1000 per call; call again for more).
    pub replayed: u64,
}

/// Replays the endpoint's whole DLQ after an outage (`webhook.dlq.replayed.v1`), oldest
/// first, up to 1000 deliveries per call.
#[utoipa::path(post, path = "/api/tenants/{id}/webhooks/{eid}/replay-dlq", tag = "webhooks",
    params(("id" = String, Path, description = "Tenant id"), ("eid" = String, Path, description = "Endpoint id")),
    responses((status = 202, body = BulkReplay), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn webhooks_replay_endpoint(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, eid)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<BulkReplay>)> {
    let (tenant, eid) = (path_id("tenant", &id)?, path_id("webhook endpoint", &eid)?);
    let replayed = super::replay_endpoint(&s, &p, tenant, eid).await?;
    Ok((StatusCode::ACCEPTED, Json(BulkReplay { replayed })))
}
