//! The read model of heartbeat sync (appliance), shared by `GET /api/sync`, the console's sync
//! page and `tenantry heartbeat status`: the outbox and the sender's state.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::outbox;
use super::sync::SenderMetrics;
use crate::error::Error;
use crate::license::gate;
use crate::state::AppState;

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
