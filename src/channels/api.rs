//! `/api/notification-channels...` (operators: platform channels, which get platform alerts)
//! and `/api/tenants/{id}/notification-channels...` (a tenant's channels, which get its
//! chain's events), per API.md: problem+json with stable codes, `{items, next_cursor}` lists.

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
use super::{ChannelDraft, ChannelPatch};
use crate::error::path_id;
use crate::http::context::Registry;
use crate::http::extract::{ApiJson, Caller};
use crate::http::problem::{ApiResult, Problem};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(channels_list_platform, channels_create_platform))
        .routes(routes!(
            channels_get_platform,
            channels_update_platform,
            channels_delete_platform
        ))
        .routes(routes!(channels_test_platform))
        .routes(routes!(channels_reconnect_platform))
        .routes(routes!(channels_list, channels_create))
        .routes(routes!(channels_get, channels_update, channels_delete))
        .routes(routes!(channels_test))
        .routes(routes!(channels_reconnect))
}

fn catalogue(registry: &Registry) -> Vec<String> {
    crate::webhooks::api::catalogue_names(registry)
}

/// The last send to a channel.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// When.
    pub at: DateTime<Utc>,
    /// The event type sent (`notification_channel.test` for a Test).
    pub event_type: String,
    /// Whether it was taken (a 2xx, or the SMTP server took the mail).
    pub ok: bool,
    /// What went wrong.
    pub error: Option<String>,
}

/// A channel as shown: never its URL in full, never its secret.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Channel {
    /// UUIDv7.
    pub id: Uuid,
    /// Its tenant; null for a platform channel.
    pub tenant_id: Option<Uuid>,
    /// Name, e.g. "#finance".
    pub name: String,
    /// `email`, `slack`, `teams` or `generic`.
    pub kind: String,
    /// Email recipients.
    pub recipients: Vec<String>,
    /// The webhook URL masked to its host (`https://hooks.slack.com/…`).
    pub url: Option<String>,
    /// Subscribed event types.
    pub event_types: Vec<String>,
    /// Whether it gets messages.
    pub enabled: bool,
    /// Why the platform disabled it (repeated failures); Reconnect clears it.
    pub disabled_reason: Option<String>,
    /// Consecutive failed sends.
    pub failures: u32,
    /// `ok`, `failing` (the red dot) or `unknown` (nothing sent yet).
    pub health: String,
    /// The last send.
    pub last_delivery: Option<Health>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Channel {
    fn of(c: model::Channel) -> Channel {
        Channel {
            health: if c.unhealthy() {
                "failing"
            } else if c.last.is_some() {
                "ok"
            } else {
                "unknown"
            }
            .to_string(),
            last_delivery: c.last.as_ref().map(|l| Health {
                at: crate::clock::from_micros(l.at),
                event_type: l.event_type.clone(),
                ok: l.ok,
                error: l.error.clone(),
            }),
            id: c.id,
            tenant_id: c.tenant_id,
            name: c.name,
            kind: c.kind.as_str().to_string(),
            recipients: c.recipients,
            url: c.url_hint,
            event_types: c.event_types,
            enabled: c.enabled,
            disabled_reason: c.disabled_reason,
            failures: c.failures,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// Channels.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ChannelList {
    /// Oldest first (at most 50).
    pub items: Vec<Channel>,
    /// Always null: an owner holds at most 50 channels.
    pub next_cursor: Option<String>,
}

/// A new channel.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    /// 1 to 100 characters.
    pub name: String,
    /// `email`, `slack`, `teams` or `generic` (OAuth connectors are out of scope on-prem).
    pub kind: String,
    /// Email only: 1 to 20 addresses.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Slack, Teams, generic: the incoming webhook URL, `https://…` (plain `http` only to
    /// `[webhooks] allow_http`). A secret: it is stored sealed and shown masked.
    pub url: Option<String>,
    /// Tenant channel: names from `GET /api/event-types`. Platform channel: `job.failed`,
    /// `install.silent.v1`, `usage.soft_cap.exceeded.v1`, `approval.breached.v1`.
    pub event_types: Vec<String>,
    /// Default true.
    pub enabled: Option<bool>,
}

/// A channel just created; `secret` (generic kind: `whsec_…`) is here once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ChannelCreated {
    /// The generic kind's signing secret: copy it now, it is never shown again.
    pub secret: Option<String>,
    /// The channel.
    pub channel: Channel,
}

/// A change: absent fields stay; the kind never changes.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelChange {
    /// New name.
    pub name: Option<String>,
    /// New recipients (email).
    pub recipients: Option<Vec<String>>,
    /// New URL (webhook kinds).
    pub url: Option<String>,
    /// New event types.
    pub event_types: Option<Vec<String>>,
    /// Enable (clears a disabling, like Reconnect) or disable.
    pub enabled: Option<bool>,
}

async fn list(s: &AppState, tenant: Option<Uuid>) -> ApiResult<Json<ChannelList>> {
    let items = s.read(move |r| super::queries::list(r, tenant)).await?;
    Ok(Json(ChannelList {
        items: items.into_iter().map(Channel::of).collect(),
        next_cursor: None,
    }))
}

async fn create(
    s: &AppState,
    p: &crate::rbac::Principal,
    registry: &Registry,
    tenant: Option<Uuid>,
    body: NewChannel,
) -> ApiResult<(StatusCode, Json<ChannelCreated>)> {
    let draft = ChannelDraft {
        name: body.name,
        kind: body.kind,
        recipients: body.recipients,
        url: body.url,
        event_types: body.event_types,
        enabled: body.enabled,
    };
    let (c, secret) = super::create(s, p, tenant, draft, &catalogue(registry)).await?;
    Ok((
        StatusCode::CREATED,
        Json(ChannelCreated {
            secret,
            channel: Channel::of(c),
        }),
    ))
}

async fn update(
    s: &AppState,
    p: &crate::rbac::Principal,
    registry: &Registry,
    tenant: Option<Uuid>,
    id: Uuid,
    body: ChannelChange,
) -> ApiResult<Json<Channel>> {
    let patch = ChannelPatch {
        name: body.name,
        recipients: body.recipients,
        url: body.url,
        event_types: body.event_types,
        enabled: body.enabled,
    };
    let c = super::update(s, p, tenant, id, patch, &catalogue(registry)).await?;
    Ok(Json(Channel::of(c)))
}

fn cid(s: &str) -> crate::error::Result<Uuid> {
    path_id("notification channel", s)
}

/// The platform's channels (they get platform alerts), oldest first.
#[utoipa::path(get, path = "/api/notification-channels", tag = "notification-channels",
    responses((status = 200, body = ChannelList)))]
async fn channels_list_platform(State(s): State<AppState>) -> ApiResult<Json<ChannelList>> {
    list(&s, None).await
}

/// Creates a platform channel (`notification_channel.created.v1` on the platform chain).
#[utoipa::path(post, path = "/api/notification-channels", tag = "notification-channels",
    request_body = NewChannel,
    responses((status = 201, body = ChannelCreated), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn channels_create_platform(
    State(s): State<AppState>,
    Caller(p): Caller,
    Extension(registry): Extension<Arc<Registry>>,
    ApiJson(body): ApiJson<NewChannel>,
) -> ApiResult<(StatusCode, Json<ChannelCreated>)> {
    create(&s, &p, &registry, None, body).await
}

/// One platform channel.
#[utoipa::path(get, path = "/api/notification-channels/{cid}", tag = "notification-channels",
    params(("cid" = String, Path, description = "Channel id")),
    responses((status = 200, body = Channel), (status = 404, body = Problem)))]
async fn channels_get_platform(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Channel>> {
    let id = cid(&id)?;
    let c = s.read(move |r| super::queries::get(r, None, &id)).await?;
    Ok(Json(Channel::of(c)))
}

/// Changes a platform channel (`notification_channel.updated.v1`).
#[utoipa::path(patch, path = "/api/notification-channels/{cid}", tag = "notification-channels",
    params(("cid" = String, Path, description = "Channel id")), request_body = ChannelChange,
    responses((status = 200, body = Channel), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn channels_update_platform(
    State(s): State<AppState>,
    Caller(p): Caller,
    Extension(registry): Extension<Arc<Registry>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ChannelChange>,
) -> ApiResult<Json<Channel>> {
    update(&s, &p, &registry, None, cid(&id)?, body).await
}

/// Deletes a platform channel (`notification_channel.deleted.v1`).
#[utoipa::path(delete, path = "/api/notification-channels/{cid}", tag = "notification-channels",
    params(("cid" = String, Path, description = "Channel id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = Problem)))]
async fn channels_delete_platform(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    super::delete(&s, &p, None, cid(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a test message now and records the result as the channel's health
/// (`notification_channel.tested.v1`); a failed send is in `last_delivery`, not an error.
#[utoipa::path(post, path = "/api/notification-channels/{cid}/test", tag = "notification-channels",
    params(("cid" = String, Path, description = "Channel id")),
    responses((status = 200, body = Channel), (status = 404, body = Problem)))]
async fn channels_test_platform(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Channel>> {
    Ok(Json(Channel::of(
        super::test(&s, &p, None, cid(&id)?).await?,
    )))
}

/// Re-enables the channel and clears its error (`notification_channel.reconnected.v1`).
#[utoipa::path(post, path = "/api/notification-channels/{cid}/reconnect", tag = "notification-channels",
    params(("cid" = String, Path, description = "Channel id")),
    responses((status = 200, body = Channel), (status = 404, body = Problem)))]
async fn channels_reconnect_platform(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Channel>> {
    Ok(Json(Channel::of(
        super::reconnect(&s, &p, None, cid(&id)?).await?,
    )))
}

/// A tenant's channels (they get its chain's events), oldest first.
#[utoipa::path(get, path = "/api/tenants/{id}/notification-channels", tag = "notification-channels",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = ChannelList), (status = 404, body = Problem)))]
async fn channels_list(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ChannelList>> {
    list(&s, Some(path_id("tenant", &id)?)).await
}

/// Creates a tenant channel (`notification_channel.created.v1` on the tenant's chain); it gets
/// the events written after it.
#[utoipa::path(post, path = "/api/tenants/{id}/notification-channels", tag = "notification-channels",
    params(("id" = String, Path, description = "Tenant id")), request_body = NewChannel,
    responses((status = 201, body = ChannelCreated), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn channels_create(
    State(s): State<AppState>,
    Caller(p): Caller,
    Extension(registry): Extension<Arc<Registry>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewChannel>,
) -> ApiResult<(StatusCode, Json<ChannelCreated>)> {
    let tenant = path_id("tenant", &id)?;
    create(&s, &p, &registry, Some(tenant), body).await
}

/// One tenant channel.
#[utoipa::path(get, path = "/api/tenants/{id}/notification-channels/{cid}", tag = "notification-channels",
    params(("id" = String, Path, description = "Tenant id"), ("cid" = String, Path, description = "Channel id")),
    responses((status = 200, body = Channel), (status = 404, body = Problem)))]
async fn channels_get(
    State(s): State<AppState>,
    Path((id, c)): Path<(String, String)>,
) -> ApiResult<Json<Channel>> {
    let (tenant, c) = (path_id("tenant", &id)?, cid(&c)?);
    let ch = s
        .read(move |r| super::queries::get(r, Some(tenant), &c))
        .await?;
    Ok(Json(Channel::of(ch)))
}

/// Changes a tenant channel (`notification_channel.updated.v1`).
#[utoipa::path(patch, path = "/api/tenants/{id}/notification-channels/{cid}", tag = "notification-channels",
    params(("id" = String, Path, description = "Tenant id"), ("cid" = String, Path, description = "Channel id")),
    request_body = ChannelChange,
    responses((status = 200, body = Channel), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn channels_update(
    State(s): State<AppState>,
    Caller(p): Caller,
    Extension(registry): Extension<Arc<Registry>>,
    Path((id, c)): Path<(String, String)>,
    ApiJson(body): ApiJson<ChannelChange>,
) -> ApiResult<Json<Channel>> {
    let (tenant, c) = (path_id("tenant", &id)?, cid(&c)?);
    update(&s, &p, &registry, Some(tenant), c, body).await
}

/// Deletes a tenant channel (`notification_channel.deleted.v1`).
#[utoipa::path(delete, path = "/api/tenants/{id}/notification-channels/{cid}", tag = "notification-channels",
    params(("id" = String, Path, description = "Tenant id"), ("cid" = String, Path, description = "Channel id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn channels_delete(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, c)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (tenant, c) = (path_id("tenant", &id)?, cid(&c)?);
    super::delete(&s, &p, Some(tenant), c).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a test message now and records the result (`notification_channel.tested.v1`).
#[utoipa::path(post, path = "/api/tenants/{id}/notification-channels/{cid}/test", tag = "notification-channels",
    params(("id" = String, Path, description = "Tenant id"), ("cid" = String, Path, description = "Channel id")),
    responses((status = 200, body = Channel), (status = 404, body = Problem)))]
async fn channels_test(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, c)): Path<(String, String)>,
) -> ApiResult<Json<Channel>> {
    let (tenant, c) = (path_id("tenant", &id)?, cid(&c)?);
    Ok(Json(Channel::of(
        super::test(&s, &p, Some(tenant), c).await?,
    )))
}

/// Re-enables the channel and clears its error (`notification_channel.reconnected.v1`).
#[utoipa::path(post, path = "/api/tenants/{id}/notification-channels/{cid}/reconnect", tag = "notification-channels",
    params(("id" = String, Path, description = "Tenant id"), ("cid" = String, Path, description = "Channel id")),
    responses((status = 200, body = Channel), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn channels_reconnect(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, c)): Path<(String, String)>,
) -> ApiResult<Json<Channel>> {
    let (tenant, c) = (path_id("tenant", &id)?, cid(&c)?);
    Ok(Json(Channel::of(
        super::reconnect(&s, &p, Some(tenant), c).await?,
    )))
}
