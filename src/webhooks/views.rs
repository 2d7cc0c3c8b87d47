//! Webhooks in the consoles: the Tenant console's Webhooks page (endpoints, add one with its
//! secret shown once, the DLQ with Replay) and an endpoint's page (attempts, rotate the secret,
//! send a test, enable or disable, replay its DLQ); the operator's Webhooks page (every tenant's
//! endpoints and the cross-tenant DLQ with Replay, operator guide §5).

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use maud::{Markup, html};
use uuid::Uuid;

use super::model::{Attempt, Delivery, Endpoint, Outcome};
use super::queries::{DlqFilter, PageQuery};
use super::service::{EndpointDraft, EndpointPatch};
use crate::console::fmt::when;
use crate::console::layout::{
    Ctx, TenantShell, Tone, badge, empty, header, page, page_with_status, redirect,
};
use crate::console::{ConsoleError, PageResult};
use crate::error::{Error, path_id};
use crate::http::extract::ApiQuery;
use crate::rbac::{Permission, Scope};
use crate::state::AppState;

/// The webhooks pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/tenant/{tenant_id}/webhooks",
            get(view_webhooks_get).post(view_webhook_create_post),
        )
        .route("/tenant/{tenant_id}/webhooks/{eid}", get(view_webhook_get))
        .route(
            "/tenant/{tenant_id}/webhooks/{eid}/rotate-secret",
            post(view_webhook_rotate_post),
        )
        .route(
            "/tenant/{tenant_id}/webhooks/{eid}/test",
            post(view_webhook_test_post),
        )
        .route(
            "/tenant/{tenant_id}/webhooks/{eid}/enabled",
            post(view_webhook_enabled_post),
        )
        .route(
            "/tenant/{tenant_id}/webhooks/{eid}/replay-dlq",
            post(view_webhook_replay_dlq_post),
        )
        .route(
            "/tenant/{tenant_id}/webhooks/dlq/{delivery_id}/replay",
            post(view_tenant_replay_post),
        )
        .route("/platform/webhooks", get(view_platform_webhooks_get))
        .route(
            "/platform/webhooks/dlq/{delivery_id}/replay",
            post(view_platform_replay_post),
        )
}

fn shell(ctx: &Ctx) -> std::result::Result<TenantShell, ConsoleError> {
    ctx.tenant
        .clone()
        .ok_or_else(|| ConsoleError(Error::not_found("tenant", ctx.path.clone())))
}

fn catalogue(ctx: &Ctx) -> Vec<String> {
    super::api::catalogue_names(&ctx.registry)
}

fn secret_shown(title: &str, secret: &str) -> Markup {
    html! {
        section.card {
            h2 { (title) }
            div.field {
                label for="webhook-secret" { "Signing secret" }
                div.secret-once {
                    input #webhook-secret type="text" readonly value=(secret) autocomplete="off" spellcheck="false";
                    button type="button" data-copy="webhook-secret" hidden { "Copy" }
                }
                p.help { "Shown once: copy it into your handler's configuration now. Tenantry keeps it sealed and never shows it again." }
            }
        }
    }
}

fn state_badge(e: &Endpoint) -> Markup {
    if e.enabled {
        badge(Tone::Ok, "enabled")
    } else if e.disabled_reason.is_some() {
        badge(Tone::Critical, "disabled (410 Gone)")
    } else {
        badge(Tone::Neutral, "disabled")
    }
}

fn dlq_table(
    ctx: &Ctx,
    items: &[Delivery],
    replay_at: &dyn Fn(&Delivery) -> String,
    may: bool,
) -> Markup {
    html! {
        @if items.is_empty() {
            (empty("The DLQ is empty.", html! { p.muted { "Deliveries that fail every retry (about 42 hours) land here for 7 days." } }))
        } @else {
            table {
                thead { tr { th { "Dead since" } th { "Event" } th { "Endpoint" } th { "Tries" } th { "Last error" } th { "webhook-id" } th { "Actions" } } }
                tbody {
                    @for d in items {
                        tr {
                            td { (d.dead_at.map_or_else(|| html! { "—" }, when)) }
                            td { code { (d.event_type) } }
                            td { code.small { (d.endpoint_id) } }
                            td { (d.attempts) }
                            td.small { (d.last_error.clone().unwrap_or_default()) }
                            td { code.small { (d.msg_id) } }
                            td {
                                @if may {
                                    form.inline method="post" action=(replay_at(d)) {
                                        (ctx.csrf())
                                        button type="submit" { "Replay" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

struct Listing {
    endpoints: Vec<Endpoint>,
    dlq: Vec<Delivery>,
}

async fn listing(state: &AppState, tenant: Uuid) -> crate::error::Result<Listing> {
    state
        .read(move |r| {
            let endpoints = super::queries::list(r, &tenant)?;
            let dlq = super::queries::dlq(r, Some(&tenant), &DlqFilter::default())?.items;
            Ok(Listing { endpoints, dlq })
        })
        .await
}

fn webhooks_page(ctx: &Ctx, t: &TenantShell, l: &Listing, shown: Option<Markup>) -> Markup {
    let writable = ctx.may(Scope::WebhooksWrite, Permission::WebhooksManage);
    let cat = catalogue(ctx);
    html! {
        (header("Webhooks", Some(&t.name), html! {}))
        @if let Some(s) = shown { (s) }
        @if l.endpoints.is_empty() {
            (empty("No webhook endpoints yet.", html! { p.muted { "Add an HTTPS endpoint below and pick the events it needs. Every delivery is signed (Standard Webhooks)." } }))
        } @else {
            table {
                thead { tr { th { "URL" } th { "Events" } th { "State" } th { "Secret" } th { "Created" } } }
                tbody {
                    @for e in &l.endpoints {
                        tr {
                            td { a href=(t.at(&format!("/webhooks/{}", e.id))) { (e.url) } @if !e.description.is_empty() { br; span.small.muted { (e.description) } } }
                            td.small { @for (i, ev) in e.event_types.iter().enumerate() { @if i > 0 { ", " } code { (ev) } } }
                            td { (state_badge(e)) }
                            td { code { (e.secret_hint) } }
                            td { (when(e.created_at)) }
                        }
                    }
                }
            }
        }
        section.card {
            h2 { "Add endpoint" }
            form.stack method="post" action=(t.at("/webhooks")) {
                (ctx.csrf())
                fieldset.plain disabled[!writable] {
                    label for="wh-url" { "URL (HTTPS)" }
                    input #wh-url name="url" type="url" required maxlength="2048" placeholder="https://hooks.example.com/tenantry";
                    label for="wh-description" { "Description (optional)" }
                    input #wh-description name="description" maxlength="500";
                    label for="wh-events" { "Event types (start narrow)" }
                    select #wh-events name="event_types" multiple required size="8" {
                        @for ev in &cat { option value=(ev) { (ev) } }
                    }
                    button.primary type="submit" { "Add endpoint" }
                }
            }
        }
        section.card {
            h2 { "DLQ" }
            p.muted { "Failed deliveries, newest first. Replay re-sends the original payload with the same webhook-id and a fresh signature; if it fails again it lands back here." }
            (dlq_table(ctx, &l.dlq, &|d: &Delivery| t.at(&format!("/webhooks/dlq/{}/replay", d.id)), writable))
        }
    }
}

/// The Webhooks page.
pub async fn view_webhooks_get(State(state): State<AppState>, ctx: Ctx) -> PageResult {
    let t = shell(&ctx)?;
    let l = listing(&state, t.id).await?;
    Ok(page(&ctx, "Webhooks", webhooks_page(&ctx, &t, &l, None)))
}

fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

/// Adds an endpoint and shows its secret once.
pub async fn view_webhook_create_post(
    State(state): State<AppState>,
    ctx: Ctx,
    body: axum::body::Bytes,
) -> PageResult {
    let t = shell(&ctx)?;
    let f = form_fields(&body);
    let one = |n: &str| f.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let draft = EndpointDraft {
        url: one("url").unwrap_or_default(),
        description: one("description"),
        event_types: f
            .iter()
            .filter(|(k, _)| k == "event_types")
            .map(|(_, v)| v.clone())
            .collect(),
        enabled: Some(true),
    };
    match super::create(&state, &ctx.principal, t.id, draft, &catalogue(&ctx)).await {
        Ok((e, secret)) => {
            let l = listing(&state, t.id).await?;
            let shown = secret_shown(&format!("Endpoint added: {}", e.url), &secret);
            Ok(page(
                &ctx,
                "Webhooks",
                webhooks_page(&ctx, &t, &l, Some(shown)),
            ))
        }
        Err(e) => {
            let l = listing(&state, t.id).await?;
            let shown = html! { div.flash.critical role="alert" { (e.to_string()) ". Nothing was changed." } };
            Ok(page_with_status(
                &ctx,
                crate::http::problem::status(&e),
                "Webhooks",
                webhooks_page(&ctx, &t, &l, Some(shown)),
            ))
        }
    }
}

fn attempt_row(a: &Attempt) -> Markup {
    let tone = match a.outcome {
        Outcome::Succeeded => Tone::Ok,
        Outcome::Failed => Tone::Warn,
        Outcome::Refused => Tone::Critical,
    };
    html! {
        tr {
            td { (when(a.at)) }
            td { code { (a.event_type) } }
            td { (a.attempt) }
            td { (badge(tone, a.outcome.as_str())) }
            td { (a.status.map_or_else(|| "—".to_string(), |s| s.to_string())) }
            td { (a.latency_ms) " ms" }
            td.small { (a.error.clone().unwrap_or_default()) }
            td {
                @if let Some(n) = a.next_attempt_at { (when(n)) }
                @else if a.dead_lettered { (badge(Tone::Critical, "DLQ")) }
                @else { "—" }
            }
        }
    }
}

async fn endpoint_page(
    state: &AppState,
    ctx: &Ctx,
    t: &TenantShell,
    eid: Uuid,
    shown: Option<Markup>,
) -> PageResult {
    let tenant = t.id;
    let (e, attempts) = state
        .read(move |r| {
            let e = super::queries::get(r, &tenant, &eid)?;
            let a = super::queries::attempts(r, &tenant, &eid, &PageQuery::default())?;
            Ok((e, a.items))
        })
        .await?;
    let writable = ctx.may(Scope::WebhooksWrite, Permission::WebhooksManage);
    let base = t.at(&format!("/webhooks/{}", e.id));
    let body = html! {
        (header(&e.url, Some(&t.name), html! { a href=(t.at("/webhooks")) { "All endpoints" } }))
        @if let Some(s) = shown { (s) }
        section.card {
            p { (state_badge(&e)) " " @if let Some(r) = &e.disabled_reason { span.small { (r) } } }
            p { "Secret " code { (e.secret_hint) } @if let Some(u) = e.previous_valid_until.filter(|u| *u > ctx.now) { " (the previous secret also signs until " (when(u)) ")" } }
            p.small { "Events: " @for (i, ev) in e.event_types.iter().enumerate() { @if i > 0 { ", " } code { (ev) } } }
            @if writable {
                form.inline method="post" action=(format!("{base}/test")) { (ctx.csrf()) button type="submit" { "Send test event" } }
                form.inline method="post" action=(format!("{base}/rotate-secret"))
                    data-confirm="Rotate the signing secret? The old one keeps signing for 60 seconds." {
                    (ctx.csrf()) button type="submit" { "Rotate secret" }
                }
                form.inline method="post" action=(format!("{base}/enabled")) {
                    (ctx.csrf())
                    input type="hidden" name="enabled" value=(if e.enabled { "false" } else { "true" });
                    button type="submit" { @if e.enabled { "Disable" } @else { "Enable" } }
                }
                form.inline method="post" action=(format!("{base}/replay-dlq"))
                    data-confirm="Replay every dead-lettered delivery of this endpoint?" {
                    (ctx.csrf()) button type="submit" { "Replay its DLQ" }
                }
            }
        }
        section.card {
            h2 { "Attempts" }
            @if attempts.is_empty() {
                p.muted { "No attempts yet." }
            } @else {
                table {
                    thead { tr { th { "At" } th { "Event" } th { "Try" } th { "Outcome" } th { "Status" } th { "Latency" } th { "Error" } th { "Next try" } } }
                    tbody { @for a in &attempts { (attempt_row(a)) } }
                }
            }
        }
    };
    Ok(page(ctx, "Webhook endpoint", body))
}

/// An endpoint's page.
pub async fn view_webhook_get(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, eid)): Path<(String, String)>,
) -> PageResult {
    let t = shell(&ctx)?;
    let eid = path_id("webhook endpoint", &eid)?;
    endpoint_page(&state, &ctx, &t, eid, None).await
}

/// Rotates the secret and shows the new one once.
pub async fn view_webhook_rotate_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, eid)): Path<(String, String)>,
) -> PageResult {
    let t = shell(&ctx)?;
    let eid = path_id("webhook endpoint", &eid)?;
    match super::rotate(&state, &ctx.principal, t.id, eid).await {
        Ok((_, secret)) => {
            let shown = secret_shown(
                "Secret rotated: the old one keeps signing for 60 seconds",
                &secret,
            );
            endpoint_page(&state, &ctx, &t, eid, Some(shown)).await
        }
        Err(e) => Ok(redirect(
            &t.at(&format!("/webhooks/{eid}")),
            Tone::Critical,
            &format!("{e}. Nothing was changed."),
        )),
    }
}

/// Sends a test event.
pub async fn view_webhook_test_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, eid)): Path<(String, String)>,
) -> PageResult {
    let t = shell(&ctx)?;
    let eid = path_id("webhook endpoint", &eid)?;
    let back = t.at(&format!("/webhooks/{eid}"));
    Ok(match super::test(&state, &ctx.principal, t.id, eid).await {
        Ok(d) => redirect(
            &back,
            Tone::Ok,
            &format!("Test event {} sent: its attempt shows below.", d.msg_id),
        ),
        Err(e) => redirect(&back, Tone::Critical, &format!("{e}. Nothing was sent.")),
    })
}

/// Enables or disables an endpoint.
pub async fn view_webhook_enabled_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, eid)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> PageResult {
    let t = shell(&ctx)?;
    let eid = path_id("webhook endpoint", &eid)?;
    let enabled = form_fields(&body)
        .iter()
        .any(|(k, v)| k == "enabled" && v == "true");
    let back = t.at(&format!("/webhooks/{eid}"));
    let patch = EndpointPatch {
        enabled: Some(enabled),
        ..Default::default()
    };
    Ok(
        match super::update(&state, &ctx.principal, t.id, eid, patch, &catalogue(&ctx)).await {
            Ok(_) => redirect(
                &back,
                Tone::Ok,
                if enabled {
                    "Endpoint enabled."
                } else {
                    "Endpoint disabled."
                },
            ),
            Err(e) => redirect(&back, Tone::Critical, &format!("{e}. Nothing was changed.")),
        },
    )
}

/// Replays an endpoint's DLQ.
pub async fn view_webhook_replay_dlq_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, eid)): Path<(String, String)>,
) -> PageResult {
    let t = shell(&ctx)?;
    let eid = path_id("webhook endpoint", &eid)?;
    let back = t.at(&format!("/webhooks/{eid}"));
    Ok(
        match super::replay_endpoint(&state, &ctx.principal, t.id, eid).await {
            Ok(n) => redirect(&back, Tone::Ok, &format!("Replaying {n} deliveries.")),
            Err(e) => redirect(
                &back,
                Tone::Critical,
                &format!("{e}. Nothing was replayed."),
            ),
        },
    )
}

/// Replays one delivery of the tenant's DLQ.
pub async fn view_tenant_replay_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, did)): Path<(String, String)>,
) -> PageResult {
    let t = shell(&ctx)?;
    let did = path_id("webhook delivery", &did)?;
    let back = t.at("/webhooks");
    Ok(
        match super::replay(&state, &ctx.principal, Some(t.id), did).await {
            Ok(d) => redirect(
                &back,
                Tone::Ok,
                &format!(
                    "Replaying {}: if it fails again it lands back in the DLQ.",
                    d.msg_id
                ),
            ),
            Err(e) => redirect(
                &back,
                Tone::Critical,
                &format!("{e}. Nothing was replayed."),
            ),
        },
    )
}

/// The operator's Webhooks page: every tenant's endpoints and the cross-tenant DLQ.
pub async fn view_platform_webhooks_get(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiQuery(f): ApiQuery<DlqFilter>,
) -> PageResult {
    let filter = f.clone();
    let (endpoints, dlq) = state
        .read(move |r| {
            let e = super::queries::list_all(
                r,
                &PageQuery {
                    limit: Some(200),
                    cursor: None,
                },
            )?;
            let d = super::queries::dlq(r, None, &filter)?;
            Ok((e.items, d.items))
        })
        .await?;
    let may = ctx.can(Permission::WebhooksManage);
    let body = html! {
        (header("Webhooks", Some("Every tenant's subscriptions and the DLQ"), html! {}))
        section.card {
            h2 { "Subscriptions" }
            @if endpoints.is_empty() {
                p.muted { "No tenant has a webhook endpoint yet." }
            } @else {
                table {
                    thead { tr { th { "Tenant" } th { "URL" } th { "Events" } th { "State" } } }
                    tbody {
                        @for e in &endpoints {
                            tr {
                                td { a href=(format!("/platform/tenants/{}", e.tenant_id)) { code.small { (e.tenant_id) } } }
                                td { (e.url) }
                                td.small { (e.event_types.join(", ")) }
                                td { (state_badge(e)) }
                            }
                        }
                    }
                }
            }
        }
        section.card {
            h2 { "DLQ" }
            form.inline method="get" action="/platform/webhooks" {
                label for="dlq-tenant" { "Tenant id" }
                input #dlq-tenant name="tenant_id" value=(f.tenant_id.clone().unwrap_or_default());
                label for="dlq-event" { "Event type" }
                input #dlq-event name="event_type" value=(f.event_type.clone().unwrap_or_default());
                button type="submit" { "Search" }
            }
            (dlq_table(&ctx, &dlq, &|d: &Delivery| format!("/platform/webhooks/dlq/{}/replay", d.id), may))
        }
    };
    Ok(page(&ctx, "Webhooks", body))
}

/// Replays one delivery of any tenant's DLQ.
pub async fn view_platform_replay_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(did): Path<String>,
) -> PageResult {
    let did = path_id("webhook delivery", &did)?;
    Ok(
        match super::replay(&state, &ctx.principal, None, did).await {
            Ok(d) => redirect(
                "/platform/webhooks",
                Tone::Ok,
                &format!(
                    "Replaying {}: if it fails again it lands back in the DLQ.",
                    d.msg_id
                ),
            ),
            Err(e) => redirect(
                "/platform/webhooks",
                Tone::Critical,
                &format!("{e}. Nothing was replayed."),
            ),
        },
    )
}
