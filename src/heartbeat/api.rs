//! `/api/sync` (appliance): the outbox and sender metrics the console's sync page shows, "send
//! now", and acknowledging heartbeats the control plane imported from a bundle.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::outbox;
use super::queries::SyncReport;
use crate::error::Error;
use crate::http::extract::{ApiJson, Caller, OptionalJson};
use crate::http::problem::{ApiResult, Problem};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sync_get))
        .routes(routes!(sync_flush))
        .routes(routes!(sync_ack))
}

/// Heartbeat sync: outbox depth, oldest age, last success, the sender's last error and next
/// attempt (appliance role).
#[utoipa::path(get, path = "/api/sync", tag = "on-prem",
    responses((status = 200, body = SyncReport), (status = 404, body = Problem)))]
async fn sync_get(State(s): State<AppState>) -> ApiResult<Json<SyncReport>> {
    s.onprem().require_appliance("GET /api/sync")?;
    Ok(Json(super::queries::report(&s).await?))
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
    let r = super::acknowledge(&s, p.actor, body.through).await?;
    Ok(Json(AckResult {
        removed: r.removed,
        depth: r.depth,
    }))
}
