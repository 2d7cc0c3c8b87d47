//! Heartbeats, appliance side (HEARTBEATS.md "Heartbeat", "Air gap").
//!
//! The `heartbeat` job ([`generate`]) writes one signed heartbeat into the durable outbox, in the
//! same write transaction that takes its `seq`. The sender delivers the outbox in order; the
//! export writes it as one signed bundle for air-gapped installs.
//!
//! - [`document`]: what a heartbeat says, built inside the write transaction.
//! - [`outbox`]: the outbox tables, the bounded-backlog policy, acknowledgement, metrics.
//! - [`sender`]: ordered delivery over HTTPS (rustls) with exponential backoff and full jitter.
//! - [`bundle`]: the signed bundle format, written here and read by the control plane.
//! - [`api`]: `GET /api/sync`, `POST /api/sync/flush`, `POST /api/sync/ack`.
//!
//! The heartbeat is signed with the install key, the same Ed25519 key that signs the appliance's
//! audit checkpoints ([`crate::audit::signing::InstallKey`]): one identity per install, made at
//! first start, never sent anywhere. A control plane that knows it can also check the
//! checkpoints of the appliance's audit exports.

pub mod api;
pub mod bundle;
pub mod document;
pub mod outbox;
pub mod queries;
pub mod sender;
pub mod sync;
pub mod views;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::actor::Actor;
use crate::error::Result;
use crate::state::AppState;

use crate::config::Role as InstallRole;
use crate::http::context::{Context, NavItem};
use crate::rbac::{Access, Permission, Route};

/// The heartbeat context (appliance): its routes, pages, permission entries, sidebar items and events.
pub const CONTEXT: Context = Context {
    name: "heartbeat",
    tags: &[],
    api: api::router,
    views: views::router,
    routes: ROUTES,
    nav: &[
        NavItem::new("/platform/sync", "Heartbeat sync", Permission::Read)
            .in_role(InstallRole::is_appliance),
    ],
    events: &["heartbeat.acknowledged.v1"],
    ..Context::EMPTY
};

/// The permission entry of every route of this context.
const ROUTES: &[Route] = {
    use Access::*;
    use Permission::*;
    &[
        ("GET", "/api/sync", Requires(Read)),
        ("POST", "/api/sync/flush", Requires(SyncManage)),
        ("POST", "/api/sync/ack", Requires(SyncManage)),
        ("GET", "/platform/sync", Requires(Read)),
        ("POST", "/platform/sync/flush", Requires(SyncManage)),
        ("POST", "/platform/sync/ack", Requires(SyncManage)),
        ("GET", "/platform/sync/bundle", Requires(SyncManage)),
    ]
};

/// Member name of a signed heartbeat.
pub const MEMBER: &str = "heartbeat";

/// A heartbeat as the control plane reads it (HEARTBEATS.md). Members it does not know are kept
/// in the signed bytes and ignored here, so a newer appliance can add some.
#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct HeartbeatDoc {
    /// The control plane's id of the install (from its license).
    pub install_id: Uuid,
    /// The license in force when it was written.
    pub license_id: Uuid,
    /// Rises by one per heartbeat of an install and never repeats, from 1.
    pub seq: u64,
    /// When the appliance wrote it (RFC 3339 UTC).
    pub sent_at: chrono::DateTime<chrono::Utc>,
    /// The appliance's Tenantry version.
    pub version: String,
    /// Seconds since the appliance process started.
    pub uptime_s: u64,
    /// Tenants by lifecycle state.
    pub tenants: BTreeMap<String, u64>,
    /// Totals of the current period.
    pub usage: Usage,
    /// Store, jobs and disk.
    pub health: Health,
    /// The LLM probe's last result, or null when no probe runs.
    pub llm_probe: Option<LlmProbe>,
    /// Heads of the platform chain and of the tenant chains that moved since the previous
    /// heartbeat: the outside witness of the ledger.
    pub audit_heads: Vec<AuditHead>,
}

/// `usage`: totals of the current period.
#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Usage {
    /// The calendar month, `YYYY-MM` (UTC).
    pub period: String,
    /// Tenants that count against the license (every state but `offboarded`).
    pub tenants_in_use: u64,
}

/// `health`.
#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// The store answered (a heartbeat is written by the store, so always true when written).
    pub store_ok: bool,
    /// Failed job runs in the 24 hours before the heartbeat.
    pub failed_jobs_24h: u64,
    /// Free bytes on the data dir's file system (for unprivileged users).
    pub free_disk_bytes: u64,
}

/// `llm_probe`: `{status, checked_at}`.
#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct LlmProbe {
    /// The probe's verdict, e.g. `green`, `red`.
    pub status: String,
    /// When it last ran.
    pub checked_at: chrono::DateTime<chrono::Utc>,
}

/// One witnessed head: `{chain, seq, hash}`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AuditHead {
    /// `platform` or `tenant:{uuid}`.
    pub chain: String,
    /// The head's seq.
    pub seq: u64,
    /// Lowercase hex SHA-256 of the head entry.
    pub hash: String,
}

/// Runs the `heartbeat` job: writes the next heartbeat into the outbox and wakes the sender.
/// Without a verified license there is no install id to send for: the run says so and writes
/// nothing.
///
/// Errors: storage errors.
pub async fn generate(state: &AppState) -> Result<String> {
    let snapshot = document::snapshot(state).await?;
    let key = state.install_key().clone();
    let started_at = state.started_at();
    let backlog_max = state
        .config()
        .control_plane
        .as_ref()
        .map_or(crate::config::DEFAULT_BACKLOG_MAX, |c| c.backlog_max);
    let written = state
        .write(Actor::job("heartbeat"), move |ctx| {
            outbox::enqueue(ctx, &key, &snapshot, started_at, backlog_max)
        })
        .await?;
    match written {
        Some(w) => {
            state.onprem().sync().wake();
            let dropped = if w.dropped > 0 {
                format!(
                    "; backlog full, dropped the oldest ({} in all)",
                    w.dropped_total
                )
            } else {
                String::new()
            };
            Ok(format!(
                "queued heartbeat {} ({} audit head(s)); outbox holds {}{dropped}",
                w.seq, w.heads, w.depth
            ))
        }
        None => Ok(
            "no heartbeat: the license is missing or refused, so there is no install id to report for (see GET /api/license)"
                .to_string(),
        ),
    }
}

/// What an acknowledgement removed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AckResult {
    /// Heartbeats removed from the outbox.
    pub removed: u64,
    /// Heartbeats still waiting.
    pub depth: u64,
}

/// Removes the heartbeats through `through` from the outbox, once the control plane imported
/// them (writes `heartbeat.acknowledged.v1`); the route, the console and the admin socket share it.
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
