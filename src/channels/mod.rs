//! Notification channels ("connectors", tenant admin guide §6, as far as an on-prem appliance
//! reaches them; HQ PRD §6 `alert_dispatcher`; issue 11).
//!
//! - [`model`]: kinds (email, Slack, Teams, generic), records, tables, codes, message formats.
//! - [`service`]: the rules (channels, Test, Reconnect, the router's and the alerts' writes,
//!   the outcome of a try).
//! - [`queries`]: the read model shared by the API and the pages.
//! - [`delivery`]: the loop that routes tenant chains into the queue and sends what is due.
//! - [`api`]: `/api/notification-channels...` and `/api/tenants/{id}/notification-channels...`.
//! - [`views`]: the operator's and the Tenant console's Notification channels pages.
//!
//! OAuth-based SaaS connectors (Slack apps, Salesforce, Microsoft 365...) are out of scope: an
//! on-prem appliance cannot count on reaching an OAuth provider or being reached by its
//! redirect. Slack and Teams are reached through their incoming webhooks instead; email through
//! `[smtp]`; anything else through the generic signed POST.
//!
//! **Routing from the ledger** (like webhooks): each tenant with a channel has a durable cursor
//! into its chain; one write reads the entries after it, queues the messages and moves the
//! cursor. Platform alerts are queued by the `alert_dispatcher` job the same way. A message is
//! deleted in the write that records its successful send; a process killed between the send
//! and that write sends it again (at-least-once, like webhooks).

pub mod api;
pub mod delivery;
pub mod model;
pub mod queries;
pub mod service;
pub mod views;

use uuid::Uuid;

use crate::error::{Error, Result, Validator};
use crate::http::context::{Context, NavItem};
use crate::rbac::{Access, Permission, Principal, Route, Scope};
use crate::state::AppState;
use model::{Channel, ChannelRecord, Kind, Target};
use service::{ChannelInput, PatchInput};

/// The channels context: its routes, pages, permission entries, sidebar items and events.
pub const CONTEXT: Context = Context {
    name: "channels",
    tags: &[(
        "notification-channels",
        "Notification channels: email, Slack, Teams and signed generic webhooks, per tenant and for platform alerts (tenant admin guide §6, HQ PRD §6)",
    )],
    api: api::router,
    views: views::router,
    routes: ROUTES,
    nav: &[
        NavItem::new(
            "/platform/notification-channels",
            "Notification channels",
            Permission::Read,
        )
        .order(61),
        NavItem::tenant(
            "/tenant/{tenant_id}/notification-channels",
            "Notification channels",
            Scope::WebhooksRead,
        )
        .order(31),
    ],
    events: &[
        "notification_channel.created.v1",
        "notification_channel.updated.v1",
        "notification_channel.deleted.v1",
        "notification_channel.tested.v1",
        "notification_channel.reconnected.v1",
        "notification_channel.disabled.v1",
    ],
    on_shred: &[service::shred],
    ..Context::EMPTY
};

/// The permission entry of every route of this context. Operators manage platform channels
/// with `WebhooksManage` (outgoing notifications are webhook settings); tenants read with the
/// `webhooks:read` scope and write as tenant admins.
const ROUTES: &[Route] = {
    use Access::*;
    use Permission::*;
    use Scope::*;
    &[
        ("GET", "/api/notification-channels", Requires(Read)),
        (
            "POST",
            "/api/notification-channels",
            Requires(WebhooksManage),
        ),
        ("GET", "/api/notification-channels/{cid}", Requires(Read)),
        (
            "PATCH",
            "/api/notification-channels/{cid}",
            Requires(WebhooksManage),
        ),
        (
            "DELETE",
            "/api/notification-channels/{cid}",
            Requires(WebhooksManage),
        ),
        (
            "POST",
            "/api/notification-channels/{cid}/test",
            Requires(WebhooksManage),
        ),
        (
            "POST",
            "/api/notification-channels/{cid}/reconnect",
            Requires(WebhooksManage),
        ),
        (
            "GET",
            "/api/tenants/{id}/notification-channels",
            Tenant(WebhooksRead, Read),
        ),
        (
            "POST",
            "/api/tenants/{id}/notification-channels",
            Tenant(TenantAdmin, WebhooksManage),
        ),
        (
            "GET",
            "/api/tenants/{id}/notification-channels/{cid}",
            Tenant(WebhooksRead, Read),
        ),
        (
            "PATCH",
            "/api/tenants/{id}/notification-channels/{cid}",
            Tenant(TenantAdmin, WebhooksManage),
        ),
        (
            "DELETE",
            "/api/tenants/{id}/notification-channels/{cid}",
            Tenant(TenantAdmin, WebhooksManage),
        ),
        (
            "POST",
            "/api/tenants/{id}/notification-channels/{cid}/test",
            Tenant(TenantAdmin, WebhooksManage),
        ),
        (
            "POST",
            "/api/tenants/{id}/notification-channels/{cid}/reconnect",
            Tenant(TenantAdmin, WebhooksManage),
        ),
        ("GET", "/platform/notification-channels", Requires(Read)),
        (
            "POST",
            "/platform/notification-channels",
            Requires(WebhooksManage),
        ),
        (
            "POST",
            "/platform/notification-channels/{cid}/{action}",
            Requires(WebhooksManage),
        ),
        (
            "GET",
            "/tenant/{tenant_id}/notification-channels",
            Tenant(WebhooksRead, Read),
        ),
        (
            "POST",
            "/tenant/{tenant_id}/notification-channels",
            Tenant(TenantAdmin, WebhooksManage),
        ),
        (
            "POST",
            "/tenant/{tenant_id}/notification-channels/{cid}/{action}",
            Tenant(TenantAdmin, WebhooksManage),
        ),
    ]
};

/// A channel as asked for, unchecked (the API body, the console form, the demo).
#[derive(Clone, Debug, Default)]
pub struct ChannelDraft {
    /// Name, e.g. "#finance".
    pub name: String,
    /// `email`, `slack`, `teams` or `generic`.
    pub kind: String,
    /// Email recipients (email only).
    pub recipients: Vec<String>,
    /// The incoming webhook URL (slack, teams, generic).
    pub url: Option<String>,
    /// Subscribed event types: the event catalogue's names for a tenant channel, the platform
    /// alerts ([`model::platform_alerts`]) for a platform channel.
    pub event_types: Vec<String>,
    /// Default true.
    pub enabled: Option<bool>,
}

/// A change to a channel, unchecked: absent fields stay (the kind never changes).
#[derive(Clone, Debug, Default)]
pub struct ChannelPatch {
    /// New name.
    pub name: Option<String>,
    /// New recipients (email).
    pub recipients: Option<Vec<String>>,
    /// New URL (webhook kinds).
    pub url: Option<String>,
    /// New event types.
    pub event_types: Option<Vec<String>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// The event types a channel of `tenant` may subscribe to: the published catalogue for a
/// tenant channel, the platform alerts for a platform channel.
pub fn allowed_events(tenant: Option<Uuid>, catalogue: &[String]) -> Vec<String> {
    match tenant {
        Some(_) => catalogue.to_vec(),
        None => model::platform_alerts(),
    }
}

fn parse_url(state: &AppState, url: &str) -> std::result::Result<String, String> {
    let policy = state.webhooks().policy();
    crate::webhooks::model::parse_url(url, policy.http_allowed_for(url))
}

/// Seals a webhook kind's target with the install's webhook key.
///
/// Errors: `Internal` (no randomness).
pub fn seal(state: &AppState, tenant: Option<Uuid>, id: &Uuid, target: &Target) -> Result<Vec<u8>> {
    let bytes = serde_json::to_vec(target).map_err(|e| Error::Internal(e.to_string()))?;
    state
        .webhooks()
        .sealer()
        .seal(&model::owner(tenant), id, &bytes)
        .map_err(Error::Internal)
}

/// Opens a channel's sealed target.
///
/// Errors: `Internal` when it does not open with this install's webhook key.
pub fn open(state: &AppState, tenant: Option<Uuid>, id: &Uuid, sealed: &[u8]) -> Result<Target> {
    let bytes = state
        .webhooks()
        .sealer()
        .open(&model::owner(tenant), id, sealed)
        .map_err(Error::Internal)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Internal(e.to_string()))
}

/// Checks and creates a channel; returns it, with the generic kind's signing secret
/// (`whsec_…`, shown once). `catalogue` is the published event catalogue's names.
///
/// Errors: 422 `validation_failed` listing each bad field (nothing is written); 404 unknown
/// tenant; 409 `tenant_read_only`, `channel_limit`.
pub async fn create(
    state: &AppState,
    p: &Principal,
    tenant: Option<Uuid>,
    draft: ChannelDraft,
    catalogue: &[String],
) -> Result<(Channel, Option<String>)> {
    let mut v = Validator::new();
    let name = v.take("name", model::parse_name(&draft.name));
    let kind = v.take("kind", Kind::parse(&draft.kind));
    let events = v.take(
        "event_types",
        model::parse_event_types(&draft.event_types, &allowed_events(tenant, catalogue)),
    );
    let mut recipients = Vec::new();
    let mut url = None;
    match kind {
        Some(Kind::Email) => {
            if let Some(r) = v.take("recipients", model::parse_recipients(&draft.recipients)) {
                recipients = r;
            }
            if draft.url.as_deref().is_some_and(|u| !u.trim().is_empty()) {
                v.add("url", "an email channel has recipients, not a url");
            }
        }
        Some(_) => {
            url = v.take("url", parse_url(state, draft.url.as_deref().unwrap_or("")));
            if !draft.recipients.iter().all(|r| r.trim().is_empty()) {
                v.add("recipients", "only an email channel has recipients");
            }
        }
        None => {}
    }
    v.finish()?;
    let missing = || Error::Internal("validated field missing".into());
    let kind = kind.ok_or_else(missing)?;
    let id = crate::ids::new_id(state.clock().now());
    let mut shown = None;
    let (sealed, url_hint) = match url {
        Some(u) => {
            let secret = if kind == Kind::Generic {
                let b = crate::webhooks::signing::new_secret().map_err(Error::Internal)?;
                shown = Some(crate::webhooks::signing::format_secret(&b));
                Some(b)
            } else {
                None
            };
            let hint = model::mask_url(&u);
            let target = Target { url: u, secret };
            (Some(seal(state, tenant, &id, &target)?), Some(hint))
        }
        None => (None, None),
    };
    let input = ChannelInput {
        name: name.ok_or_else(missing)?,
        kind,
        recipients,
        sealed,
        url_hint,
        event_types: events.ok_or_else(missing)?,
        enabled: draft.enabled.unwrap_or(true),
    };
    let c = state
        .write(p.actor.clone(), move |ctx| {
            service::create(ctx, tenant, &id, &input)
        })
        .await?;
    Ok((c, shown))
}

/// Checks and applies a change to a channel.
///
/// Errors: 422 `validation_failed` (nothing is written); 404; 409 `tenant_read_only`.
pub async fn update(
    state: &AppState,
    p: &Principal,
    tenant: Option<Uuid>,
    id: Uuid,
    patch: ChannelPatch,
    catalogue: &[String],
) -> Result<Channel> {
    let rec = state.read(move |r| service::load(r, tenant, &id)).await?;
    let mut v = Validator::new();
    let name = patch
        .name
        .as_deref()
        .and_then(|n| v.take("name", model::parse_name(n)));
    let event_types = patch.event_types.as_deref().and_then(|t| {
        v.take(
            "event_types",
            model::parse_event_types(t, &allowed_events(tenant, catalogue)),
        )
    });
    let mut recipients = None;
    let mut url = None;
    if let Some(r) = &patch.recipients {
        if rec.kind == Kind::Email {
            recipients = v.take("recipients", model::parse_recipients(r));
        } else {
            v.add("recipients", "only an email channel has recipients");
        }
    }
    if let Some(u) = &patch.url {
        if rec.kind.has_url() {
            url = v.take("url", parse_url(state, u));
        } else {
            v.add("url", "an email channel has recipients, not a url");
        }
    }
    v.finish()?;
    let sealed = match url {
        Some(u) => {
            let secret = match &rec.sealed {
                Some(s) => open(state, tenant, &id, s)?.secret,
                None => None,
            };
            let hint = model::mask_url(&u);
            Some((seal(state, tenant, &id, &Target { url: u, secret })?, hint))
        }
        None => None,
    };
    let input = PatchInput {
        name,
        recipients,
        sealed,
        event_types,
        enabled: patch.enabled,
    };
    state
        .write(p.actor.clone(), move |ctx| {
            service::update(ctx, tenant, &id, &input)
        })
        .await
}

/// Deletes a channel.
///
/// Errors: 404; 409 `tenant_read_only`.
pub async fn delete(state: &AppState, p: &Principal, tenant: Option<Uuid>, id: Uuid) -> Result<()> {
    state
        .write(p.actor.clone(), move |ctx| {
            service::delete(ctx, tenant, &id)
        })
        .await
}

/// Sends a test message to the channel now (even a disabled one: that is how one checks a fix
/// before Reconnect), and records the result as its health (`notification_channel.tested.v1`).
/// A failed send is not an error here: the returned channel carries it.
///
/// Errors: 404.
pub async fn test(
    state: &AppState,
    p: &Principal,
    tenant: Option<Uuid>,
    id: Uuid,
) -> Result<Channel> {
    let rec = state.read(move |r| service::load(r, tenant, &id)).await?;
    let now = state.clock().now();
    let m = model::Message {
        id: crate::ids::new_id(now),
        event_type: model::TEST_EVENT.to_string(),
        title: format!("Test message for {}", rec.name),
        text: "If you read this, Tenantry reaches this channel.".to_string(),
        timestamp: crate::clock::rfc3339_micros(now),
        data: "{}".to_string(),
    };
    let error = match state.webhooks().clients() {
        Ok(clients) => delivery::send(state, clients, tenant, id, &rec, &m)
            .await
            .err(),
        Err(e) => Some(e),
    };
    state
        .write(p.actor.clone(), move |ctx| {
            service::record_test(ctx, tenant, &id, error.clone())
        })
        .await
}

/// Re-enables a channel and clears its error.
///
/// Errors: 404; 409 `tenant_read_only`.
pub async fn reconnect(
    state: &AppState,
    p: &Principal,
    tenant: Option<Uuid>,
    id: Uuid,
) -> Result<Channel> {
    state
        .write(p.actor.clone(), move |ctx| {
            service::reconnect(ctx, tenant, &id)
        })
        .await
}

/// The `alert_dispatcher` job (HQ PRD §6, every minute): queues the platform alerts raised
/// since its last run for the platform channels (one bounded write), and the delivery loop
/// sends them. Returns the jobs monitor's summary.
///
/// Errors: storage errors.
pub async fn alert_dispatcher(
    state: &AppState,
    now: chrono::DateTime<chrono::Utc>,
    runs_of: service::RunSource,
) -> Result<String> {
    let r = state
        .store()
        .write(
            now,
            crate::actor::Actor::job("alert_dispatcher"),
            move |ctx| service::alerts(ctx, model::DISPATCH_BATCH, runs_of),
        )
        .await?;
    Ok(format!(
        "queued {} alert message{} ({} run{} and entries looked at{})",
        r.queued,
        if r.queued == 1 { "" } else { "s" },
        r.seen,
        if r.seen == 1 { "" } else { "s" },
        if r.more { "; more next run" } else { "" }
    ))
}

/// A record's stored view, for the demo and tests.
pub fn view(rec: &ChannelRecord, tenant: Option<Uuid>, id: Uuid) -> Channel {
    let ChannelRecord::V1(c) = rec;
    c.view(tenant, id)
}
