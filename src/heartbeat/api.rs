//! `/api/sync` (appliance): the outbox and sender metrics the console's sync page shows, "send
//! now", and acknowledging heartbeats the control plane imported from a bundle.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::outbox;
use super::sync::SenderMetrics;
use crate::error::Error;
use crate::http::extract::{ApiJson, Caller, OptionalJson};
use crate::http::problem::{ApiResult, Problem};
use crate::license::gate;
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sync_get))
        .routes(routes!(sync_flush))
        .routes(routes!(sync_ack))
}

/// The outbox.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutboxMetrics {
    /// Heartbeats waiting for delivery.
    pub depth: u64,
    /// The oldest waiting seq.
    pub oldest_seq: Option<u64>,
    /// When the oldest waiting heartbeat was written.
    pub oldest_created_at: Option<DateTime<Utc>>,
    /// Its age, seconds.
    pub oldest_age_s: Option<i64>,
    /// The newest waiting seq.
    pub newest_seq: Option<u64>,
    /// The bound (`[control_plane] backlog_max`).
    pub backlog_max: u32,
    /// Always `drop_oldest`: when full, the oldest waiting heartbeat is dropped for the new one.
    pub policy: String,
    /// Heartbeats dropped by the policy, in all.
    pub dropped_total: u64,
    /// The last seq dropped (0: none).
    pub last_dropped_seq: u64,
}

/// Heartbeat sync state.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SyncReport {
    /// `online` (a URL and an online license), `air_gapped` (the license says so), or `offline`
    /// (no URL configured: bundles only).
    pub mode: String,
    /// The control plane's base URL.
    pub control_plane_url: Option<String>,
    /// The control plane's id of this install (from the license).
    pub install_id: Option<Uuid>,
    /// The license heartbeats are sent under.
    pub license_id: Option<Uuid>,
    /// The outbox.
    pub outbox: OutboxMetrics,
    /// The seq of the next heartbeat.
    pub next_seq: u64,
    /// Highest seq the control plane acknowledged (online, or by `ack` after an import).
    pub last_delivered_seq: u64,
    /// When the control plane last acknowledged a delivery (kept across restarts).
    pub last_success_at: Option<DateTime<Utc>>,
    /// Heartbeats delivered online, in all.
    pub delivered_total: u64,
    /// Heartbeats removed by `ack` after a bundle import, in all.
    pub acknowledged_total: u64,
    /// The sender, as this process saw it.
    pub sender: SenderMetrics,
}

/// Builds the sync report.
pub async fn report(s: &AppState) -> crate::error::Result<SyncReport> {
    let (gate, counters, depth) = s
        .read(|r| Ok::<_, Error>((gate::load(r)?, outbox::counters(r)?, outbox::depth(r)?)))
        .await?;
    let now = s.clock().now();
    let url = s.onprem().sync().url().map(ToString::to_string);
    let air_gapped = gate.as_ref().is_some_and(|g| g.air_gapped);
    let mode = if air_gapped {
        "air_gapped"
    } else if url.is_some() {
        "online"
    } else {
        "offline"
    };
    Ok(SyncReport {
        mode: mode.into(),
        control_plane_url: url,
        install_id: gate.as_ref().and_then(|g| g.install_id),
        license_id: gate.as_ref().and_then(|g| g.license_id),
        outbox: OutboxMetrics {
            depth: depth.depth,
            oldest_seq: depth.oldest.map(|(s, _)| s),
            oldest_created_at: depth.oldest.map(|(_, t)| t),
            oldest_age_s: depth.oldest.map(|(_, t)| (now - t).num_seconds().max(0)),
            newest_seq: depth.newest,
            backlog_max: s
                .config()
                .control_plane
                .as_ref()
                .map_or(crate::config::DEFAULT_BACKLOG_MAX, |c| c.backlog_max),
            policy: "drop_oldest".into(),
            dropped_total: counters.dropped_total,
            last_dropped_seq: counters.last_dropped_seq,
        },
        next_seq: counters.next_seq,
        last_delivered_seq: counters.last_delivered_seq,
        last_success_at: counters.last_delivered_at,
        delivered_total: counters.delivered_total,
        acknowledged_total: counters.acknowledged_total,
        sender: s.onprem().sync().metrics(),
    })
}

/// Heartbeat sync: outbox depth, oldest age, last success, the sender's last error and next
/// attempt (appliance role).
#[utoipa::path(get, path = "/api/sync", tag = "on-prem",
    responses((status = 200, body = SyncReport), (status = 404, body = Problem)))]
async fn sync_get(State(s): State<AppState>) -> ApiResult<Json<SyncReport>> {
    s.onprem().require_appliance("GET /api/sync")?;
    Ok(Json(report(&s).await?))
}

/// What a flush did.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct FlushAccepted {
    /// Heartbeats waiting when the sender was woken.
    pub depth: u64,
    /// Whether a sender runs (false without a control-plane URL or with an air-gapped license).
    pub sender_running: bool,
}

/// Send now: wakes the sender even while it backs off. No body, or `{}` (appliance role).
#[utoipa::path(post, path = "/api/sync/flush", tag = "on-prem",
    responses((status = 202, body = FlushAccepted), (status = 404, body = Problem)))]
async fn sync_flush(
    State(s): State<AppState>,
    OptionalJson(body): OptionalJson<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<(StatusCode, Json<FlushAccepted>)> {
    if !body.is_empty() {
        return Err(Error::invalid("body", "flush takes no members: send no body, or {}").into());
    }
    s.onprem().require_appliance("POST /api/sync/flush")?;
    let depth = s.read(outbox::depth).await?.depth;
    s.onprem().sync().flush();
    Ok((
        StatusCode::ACCEPTED,
        Json(FlushAccepted {
            depth,
            sender_running: s.onprem().sync().metrics().running,
        }),
    ))
}

/// `POST /api/sync/ack` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// Remove every waiting heartbeat up to this seq: the control plane imported them (its
    /// import answers `last_seq`).
    pub through: u64,
}

/// What an acknowledgement removed.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct AckResult {
    /// Heartbeats removed from the outbox.
    pub removed: u64,
    /// Heartbeats still waiting.
    pub depth: u64,
}

/// Acknowledges heartbeats the control plane imported from a bundle, removing them from the
/// outbox (writes `heartbeat.acknowledged.v1`; appliance role).
#[utoipa::path(post, path = "/api/sync/ack", tag = "on-prem", request_body = AckRequest,
    responses((status = 200, body = AckResult), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn sync_ack(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> ApiResult<Json<AckResult>> {
    // Parsed from a value so only an object is accepted (serde would take `[5]` for a struct).
    if !body.is_object() {
        return Err(Error::invalid("body", "expected {\"through\": <seq>}").into());
    }
    let body: AckRequest =
        serde_json::from_value(body).map_err(|e| Error::invalid("body", e.to_string()))?;
    s.onprem().require_appliance("POST /api/sync/ack")?;
    Ok(Json(acknowledge(&s, p.actor, body.through).await?))
}

/// Shared by the route and the admin socket.
pub async fn acknowledge(
    s: &AppState,
    actor: crate::actor::Actor,
    through: u64,
) -> crate::error::Result<AckResult> {
    let removed = s
        .write(actor, move |ctx| outbox::acknowledge(ctx, through))
        .await?;
    let depth = s.read(outbox::depth).await?.depth;
    Ok(AckResult { removed, depth })
}
