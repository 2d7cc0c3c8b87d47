//! `/platform/sync` (appliance): heartbeat sync (the outbox's depth, oldest age and last success;
//! the sender's last error and next attempt; send now; export a bundle for an air gap;
//! acknowledge an import). On a control plane it answers 404, like `/api/sync`.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use maud::html;
use serde::Deserialize;

use crate::console::fmt::{self, when};
use crate::console::layout::{Ctx, Tone, badge, header, page, redirect};
use crate::console::{ConsoleError, PageResult};
use crate::rbac::Permission;
use crate::state::AppState;

/// The heartbeat sync pages (appliance).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/platform/sync", get(view_sync_get))
        .route("/platform/sync/flush", post(view_sync_flush_post))
        .route("/platform/sync/ack", post(view_sync_ack_post))
        .route("/platform/sync/bundle", get(view_sync_bundle_get))
}

/// The sync page.
pub async fn view_sync_get(State(state): State<AppState>, ctx: Ctx) -> PageResult {
    state
        .onprem()
        .require_appliance("GET /platform/sync")
        .map_err(ConsoleError)?;
    let r = crate::heartbeat::queries::report(&state)
        .await
        .map_err(ConsoleError)?;
    let now = state.clock().now();
    let o = &r.outbox;
    let healthy = r.sender.last_error.is_none() && o.depth <= 2;
    let body = html! {
        (header("Heartbeat sync", Some("Signed heartbeats to the control plane: written to a durable outbox, sent in order, retried with backoff."), html! {}))
        section.tiles {
            div.tile {
                span.tile-label { "Mode" }
                span.tile-value { (badge(if r.mode == "online" { Tone::Info } else { Tone::Neutral }, &r.mode)) }
                span.tile-note { (r.control_plane_url.as_deref().unwrap_or("no control-plane URL: bundles only")) }
            }
            div.tile {
                span.tile-label { "Outbox" }
                span.tile-value { (o.depth) }
                span.tile-note { "waiting · bound " (o.backlog_max) ", drop oldest" }
            }
            div.tile {
                span.tile-label { "Oldest waiting" }
                span.tile-value { @if let Some(a) = o.oldest_age_s { (fmt::human_span(u64::try_from(a).unwrap_or(0))) } @else { "—" } }
                span.tile-note { @if let Some(s) = o.oldest_seq { "seq " (s) } }
            }
            div.tile {
                span.tile-label { "Last success" }
                span.tile-value { @if healthy { (badge(Tone::Ok, "in sync")) } @else { (badge(Tone::Warn, "behind")) } }
                span.tile-note { @if let Some(t) = r.last_success_at { (fmt::relative(t, now)) } @else { "never" } }
            }
        }
        section.grid2 {
            div.card {
                h2 { "Sender" }
                dl {
                    dt { "Running" } dd { (if r.sender.running { "yes" } else { "no (offline or air-gapped)" }) }
                    dt { "Last attempt" } dd { @if let Some(t) = r.sender.last_attempt_at { (when(t)) } @else { "—" } }
                    dt { "Last error" } dd { @if let Some(e) = &r.sender.last_error { span.error { (e) } } @else { "none" } }
                    dt { "Failures in a row" } dd { (r.sender.consecutive_failures) }
                    dt { "Next attempt" } dd { @if let Some(t) = r.sender.next_attempt_at { (fmt::relative(t, now)) } @else { "—" } }
                    dt { "Delivered" } dd { (r.delivered_total) " online · " (r.acknowledged_total) " by bundle · last seq " (r.last_delivered_seq) }
                    dt { "Dropped" } dd { (o.dropped_total) @if o.last_dropped_seq > 0 { " (last seq " (o.last_dropped_seq) ")" } }
                    dt { "Install" } dd { @if let Some(i) = r.install_id { code { (i) } } @else { "—" } }
                }
                @if ctx.can(Permission::SyncManage) && r.sender.running {
                    form method="post" action="/platform/sync/flush" { (ctx.csrf()) button type="submit" { "Send now" } }
                }
            }
            div.card {
                h2 { "Air gap" }
                p.small.muted { "Carry the waiting heartbeats to the control plane as a file, import it there, then acknowledge here what it imported." }
                @if ctx.can(Permission::SyncManage) {
                    p { a.button href="/platform/sync/bundle" { "Download bundle (" (o.depth) " heartbeats)" } }
                    form.form method="post" action="/platform/sync/ack" {
                        (ctx.csrf())
                        label { "Imported through seq " input name="through" type="number" min="1" required placeholder=(o.newest_seq.map(|s| s.to_string()).unwrap_or_default()); }
                        button type="submit" { "Acknowledge" }
                    }
                } @else {
                    p.muted { "Your role cannot export or acknowledge bundles." }
                }
            }
        }
    };
    Ok(page(&ctx, "Heartbeat sync", body))
}

/// Wakes the sender.
pub async fn view_sync_flush_post(State(state): State<AppState>, _ctx: Ctx) -> PageResult {
    state
        .onprem()
        .require_appliance("POST /platform/sync/flush")
        .map_err(ConsoleError)?;
    state.onprem().sync().flush();
    Ok(redirect(
        "/platform/sync",
        Tone::Info,
        "The sender was woken: waiting heartbeats are being sent.",
    ))
}

/// The acknowledge form.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct AckForm {
    through: String,
}

/// Removes what the control plane imported from the outbox.
pub async fn view_sync_ack_post(
    State(state): State<AppState>,
    ctx: Ctx,
    axum::Form(f): axum::Form<AckForm>,
) -> PageResult {
    state
        .onprem()
        .require_appliance("POST /platform/sync/ack")
        .map_err(ConsoleError)?;
    let Ok(through) = f.through.trim().parse::<u64>() else {
        return Ok(redirect(
            "/platform/sync",
            Tone::Critical,
            "Give the highest seq the control plane imported (its import shows it).",
        ));
    };
    match crate::heartbeat::acknowledge(&state, ctx.principal.actor.clone(), through).await {
        Ok(r) => Ok(redirect(
            "/platform/sync",
            Tone::Ok,
            &format!(
                "Acknowledged through seq {through}: {} heartbeat(s) removed from the outbox.",
                r.removed
            ),
        )),
        Err(e) if e.is_client_safe() => Ok(redirect(
            "/platform/sync",
            Tone::Critical,
            &format!("{e}. Nothing was changed."),
        )),
        Err(e) => Err(ConsoleError(e)),
    }
}

/// The waiting heartbeats as a signed bundle file (what `tenantry heartbeat export` writes).
pub async fn view_sync_bundle_get(State(state): State<AppState>, _ctx: Ctx) -> PageResult {
    state
        .onprem()
        .require_appliance("GET /platform/sync/bundle")
        .map_err(ConsoleError)?;
    let bytes = crate::heartbeat::bundle::export(&state)
        .await
        .map_err(ConsoleError)?;
    let name = format!(
        "heartbeats-{}.json",
        state.clock().now().format("%Y%m%dT%H%M%SZ")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}
