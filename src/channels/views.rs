//! Notification channels in the consoles: the operator's page (platform channels, which get
//! platform alerts) and the Tenant console's page (the tenant's channels). Both list the
//! channels with their health dot (red when the last send failed or the platform disabled the
//! channel), a form to add one, and Test / Reconnect / Delete buttons (CSRF-protected forms, no
//! JavaScript).

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;
use maud::{Markup, html};
use uuid::Uuid;

use super::ChannelDraft;
use super::model::{Channel, Kind};
use crate::console::fmt::when;
use crate::console::layout::{Ctx, Tone, badge, empty, header, page, page_with_status, redirect};
use crate::console::{ConsoleError, PageResult};
use crate::error::{Error, path_id};
use crate::rbac::{Permission, Scope};
use crate::state::AppState;

/// The channels pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/platform/notification-channels",
            axum::routing::get(view_platform_channels_get).post(view_platform_channel_create_post),
        )
        .route(
            "/platform/notification-channels/{cid}/{action}",
            post(view_platform_channel_action_post),
        )
        .route(
            "/tenant/{tenant_id}/notification-channels",
            axum::routing::get(view_tenant_channels_get).post(view_tenant_channel_create_post),
        )
        .route(
            "/tenant/{tenant_id}/notification-channels/{cid}/{action}",
            post(view_tenant_channel_action_post),
        )
}

/// Whose channels a page shows.
struct Owner {
    tenant: Option<Uuid>,
    base: String,
    subtitle: String,
    may: bool,
}

fn owner(ctx: &Ctx, tenant: bool) -> Result<Owner, ConsoleError> {
    if tenant {
        let t = ctx
            .tenant
            .clone()
            .ok_or_else(|| ConsoleError(Error::not_found("tenant", ctx.path.clone())))?;
        Ok(Owner {
            tenant: Some(t.id),
            base: t.at("/notification-channels"),
            subtitle: t.name.clone(),
            may: ctx.may(Scope::TenantAdmin, Permission::WebhooksManage),
        })
    } else {
        Ok(Owner {
            tenant: None,
            base: "/platform/notification-channels".into(),
            subtitle:
                "Platform alerts: job failures, silent installs, soft caps, breached approvals"
                    .into(),
            may: ctx.can(Permission::WebhooksManage),
        })
    }
}

fn dot(c: &Channel) -> Markup {
    if c.unhealthy() {
        html! { span.dot.critical title="Last send failed" aria-label="unhealthy" { "●" } " " }
    } else if c.last.is_some() {
        html! { span.dot.ok title="Last send succeeded" aria-label="healthy" { "●" } " " }
    } else {
        html! { span.dot.muted title="Nothing sent yet" aria-label="unknown" { "○" } " " }
    }
}

fn channels_page(ctx: &Ctx, o: &Owner, items: &[Channel], shown: Option<Markup>) -> Markup {
    let events = super::allowed_events(
        o.tenant,
        &crate::webhooks::api::catalogue_names(&ctx.registry),
    );
    html! {
        (header("Notification channels", Some(&o.subtitle), html! {}))
        @if let Some(s) = shown { (s) }
        @if items.is_empty() {
            (empty("No notification channels yet.", html! { p.muted { "Add an email list, a Slack or Microsoft Teams incoming webhook, or a signed generic webhook below. OAuth-based connectors are not available on an on-prem appliance." } }))
        } @else {
            table {
                thead { tr { th { "Channel" } th { "Kind" } th { "Target" } th { "Events" } th { "Last delivery" } th { "Actions" } } }
                tbody {
                    @for c in items {
                        tr {
                            td { (dot(c)) (c.name) @if !c.enabled { " " (badge(Tone::Critical, "disabled")) } }
                            td { (c.kind.as_str()) }
                            td.small { @if c.kind == Kind::Email { (c.recipients.join(", ")) } @else { code { (c.url_hint.clone().unwrap_or_default()) } } }
                            td.small { @for (i, ev) in c.event_types.iter().enumerate() { @if i > 0 { ", " } code { (ev) } } }
                            td.small {
                                @if let Some(l) = &c.last {
                                    (when(crate::clock::from_micros(l.at))) " "
                                    @if l.ok { (badge(Tone::Ok, "ok")) } @else { (badge(Tone::Critical, "failed")) " " (l.error.clone().unwrap_or_default()) }
                                } @else { "—" }
                                @if let Some(r) = &c.disabled_reason { br; span.muted { (r) } }
                            }
                            td {
                                @if o.may {
                                    @for (action, label) in [("test", "Test"), ("reconnect", "Reconnect"), ("delete", "Delete")] {
                                        form.inline method="post" action=(format!("{}/{}/{action}", o.base, c.id)) {
                                            (ctx.csrf())
                                            button type="submit" { (label) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section.card {
            h2 { "Add channel" }
            form.stack method="post" action=(o.base) {
                (ctx.csrf())
                fieldset.plain disabled[!o.may] {
                    label for="ch-name" { "Name" }
                    input #ch-name name="name" required maxlength="100" placeholder="#finance";
                    label for="ch-kind" { "Kind" }
                    select #ch-kind name="kind" {
                        option value="email" { "Email (SMTP)" }
                        option value="slack" { "Slack incoming webhook" }
                        option value="teams" { "Microsoft Teams incoming webhook" }
                        option value="generic" { "Generic signed webhook" }
                    }
                    label for="ch-recipients" { "Recipients (email; comma-separated)" }
                    input #ch-recipients name="recipients" placeholder="oncall@example.com, finance@example.com";
                    label for="ch-url" { "Webhook URL (Slack, Teams, generic; kept sealed, shown masked)" }
                    input #ch-url name="url" type="url" maxlength="2048" placeholder="https://hooks.slack.com/services/…";
                    label for="ch-events" { "Event types" }
                    select #ch-events name="event_types" multiple required size="8" {
                        @for ev in &events { option value=(ev) { (ev) } }
                    }
                    button.primary type="submit" { "Add channel" }
                }
            }
        }
    }
}

async fn show(
    state: &AppState,
    ctx: &Ctx,
    tenant: bool,
    shown: Option<(Markup, u16)>,
) -> PageResult {
    let o = owner(ctx, tenant)?;
    let t = o.tenant;
    let items = state.read(move |r| super::queries::list(r, t)).await?;
    let (markup, status) = match shown {
        Some((m, s)) => (Some(m), s),
        None => (None, 200),
    };
    let body = channels_page(ctx, &o, &items, markup);
    Ok(if status == 200 {
        page(ctx, "Notification channels", body)
    } else {
        page_with_status(
            ctx,
            axum::http::StatusCode::from_u16(status)
                .unwrap_or(axum::http::StatusCode::UNPROCESSABLE_ENTITY),
            "Notification channels",
            body,
        )
    })
}

async fn create_post(state: &AppState, ctx: &Ctx, tenant: bool, body: &[u8]) -> PageResult {
    let o = owner(ctx, tenant)?;
    let f: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let one = |n: &str| f.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let draft = ChannelDraft {
        name: one("name").unwrap_or_default(),
        kind: one("kind").unwrap_or_default(),
        recipients: one("recipients")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        url: one("url").filter(|u| !u.trim().is_empty()),
        event_types: f
            .iter()
            .filter(|(k, _)| k == "event_types")
            .map(|(_, v)| v.clone())
            .collect(),
        enabled: Some(true),
    };
    let cat = crate::webhooks::api::catalogue_names(&ctx.registry);
    match super::create(state, &ctx.principal, o.tenant, draft, &cat).await {
        Ok((c, secret)) => {
            let shown = html! {
                div.flash.ok role="status" { "Channel " (c.name) " added." }
                @if let Some(s) = secret {
                    section.card {
                        h2 { "Signing secret" }
                        input type="text" readonly value=(s) autocomplete="off" spellcheck="false";
                        p.help { "Shown once: verify the webhook-signature header with it (Standard Webhooks)." }
                    }
                }
            };
            show(state, ctx, tenant, Some((shown, 200))).await
        }
        Err(e) => {
            let status = crate::http::problem::status(&e).as_u16();
            let shown = html! { div.flash.critical role="alert" { (e.to_string()) ". Nothing was changed." } };
            show(state, ctx, tenant, Some((shown, status))).await
        }
    }
}

async fn action_post(
    state: &AppState,
    ctx: &Ctx,
    tenant: bool,
    cid: &str,
    action: &str,
) -> PageResult {
    let o = owner(ctx, tenant)?;
    let id = path_id("notification channel", cid)?;
    let p = &ctx.principal;
    let (tone, text) = match action {
        "test" => match super::test(state, p, o.tenant, id).await {
            Ok(c) => match c.last.and_then(|l| l.error) {
                None => (Tone::Ok, format!("Test message sent to {}.", c.name)),
                Some(e) => (
                    Tone::Critical,
                    format!("The test message to {} failed: {e}", c.name),
                ),
            },
            Err(e) => (Tone::Critical, format!("{e}. Nothing was sent.")),
        },
        "reconnect" => match super::reconnect(state, p, o.tenant, id).await {
            Ok(c) => (
                Tone::Ok,
                format!("{} reconnected: it gets messages again.", c.name),
            ),
            Err(e) => (Tone::Critical, format!("{e}. Nothing was changed.")),
        },
        "delete" => match super::delete(state, p, o.tenant, id).await {
            Ok(()) => (Tone::Ok, "Channel deleted.".to_string()),
            Err(e) => (Tone::Critical, format!("{e}. Nothing was changed.")),
        },
        _ => return Err(ConsoleError(Error::not_found("page", ctx.path.clone()))),
    };
    Ok(redirect(&o.base, tone, &text))
}

/// The operator's Notification channels page.
pub async fn view_platform_channels_get(State(state): State<AppState>, ctx: Ctx) -> PageResult {
    show(&state, &ctx, false, None).await
}

/// Adds a platform channel.
pub async fn view_platform_channel_create_post(
    State(state): State<AppState>,
    ctx: Ctx,
    body: axum::body::Bytes,
) -> PageResult {
    create_post(&state, &ctx, false, &body).await
}

/// Test, Reconnect or Delete a platform channel.
pub async fn view_platform_channel_action_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((cid, action)): Path<(String, String)>,
) -> PageResult {
    action_post(&state, &ctx, false, &cid, &action).await
}

/// The Tenant console's Notification channels page.
pub async fn view_tenant_channels_get(State(state): State<AppState>, ctx: Ctx) -> PageResult {
    show(&state, &ctx, true, None).await
}

/// Adds a tenant channel.
pub async fn view_tenant_channel_create_post(
    State(state): State<AppState>,
    ctx: Ctx,
    body: axum::body::Bytes,
) -> PageResult {
    create_post(&state, &ctx, true, &body).await
}

/// Test, Reconnect or Delete a tenant channel.
pub async fn view_tenant_channel_action_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, cid, action)): Path<(String, String, String)>,
) -> PageResult {
    action_post(&state, &ctx, true, &cid, &action).await
}
