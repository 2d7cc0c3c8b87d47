//! Webhooks (tenant admin guide §4, operator guide §5; issue 11), per Standard Webhooks.
//!
//! - [`model`]: endpoints, deliveries, attempts, the retry schedule, tables and codes.
//! - [`signing`]: `whsec_` secrets, HMAC-SHA256 signatures, and sealing secrets at rest.
//! - [`guard`]: the SSRF policy checked at delivery time.
//! - [`service`]: the rules (endpoints, the dispatcher's write, tries, replays, pruning).
//! - [`queries`]: endpoints, attempts, the DLQ, due deliveries, the event catalogue.
//! - [`delivery`]: the loop that dispatches from the ledger and sends deliveries.
//! - [`runtime`]: the process-local part `AppState` holds.
//! - [`api`]: `/api/event-types`, `/api/webhooks...`, `/api/tenants/{id}/webhooks...`.
//! - [`views`]: the Tenant console's Webhooks page and the operator's Webhooks page.
//!
//! **Dispatch from the ledger** (DESIGN.md "The ledger is the event log"): there is no outbox.
//! Each tenant with an endpoint has a durable cursor into its chain; one write reads the
//! entries after it, makes the deliveries, and moves the cursor, so an entry committed before a
//! crash is matched after the restart, once.

pub mod api;
pub mod delivery;
pub mod guard;
pub mod model;
pub mod queries;
pub mod runtime;
pub mod service;
pub mod signing;
pub mod views;

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::http::context::{ChecklistStep, Context, NavItem};
use crate::rbac::{Access, Permission, Principal, Route, Scope};
use crate::state::AppState;
use crate::store::ReadCtx;
use model::{Delivery, Endpoint};
use service::{EndpointDraft, EndpointPatch, SealedSecret};

/// The webhooks context: its routes, pages, permission entries, sidebar items and events.
pub const CONTEXT: Context = Context {
    name: "webhooks",
    tags: &[(
        "webhooks",
        "Webhook endpoints, deliveries, attempts and the DLQ (Standard Webhooks; tenant admin guide §4, operator guide §5)",
    )],
    api: api::router,
    views: views::router,
    routes: ROUTES,
    nav: &[
        NavItem::new("/platform/webhooks", "Webhooks", Permission::Read).order(60),
        NavItem::tenant(
            "/tenant/{tenant_id}/webhooks",
            "Webhooks",
            Scope::WebhooksRead,
        )
        .order(30),
    ],
    events: &[
        "webhook.endpoint.created.v1",
        "webhook.endpoint.updated.v1",
        "webhook.endpoint.deleted.v1",
        "webhook.endpoint.secret_rotated.v1",
        "webhook.endpoint.disabled.v1",
        "webhook.endpoint.tested.v1",
        "webhook.delivery.replayed.v1",
        "webhook.dlq.replayed.v1",
        "webhook.dlq.pruned.v1",
    ],
    checklist: &[ChecklistStep {
        order: 3,
        title: "Add a webhook endpoint",
        hint: "Point an HTTPS endpoint at the events you need (start narrow) and store its signing secret in your handler.",
        path: "/tenant/{tenant_id}/webhooks",
        done: has_endpoint,
    }],
    on_shred: &[service::shred],
    ..Context::EMPTY
};

/// The permission entry of every route of this context.
const ROUTES: &[Route] = {
    use Access::*;
    use Permission::*;
    use Scope::*;
    &[
        ("GET", "/api/event-types", Authenticated),
        ("GET", "/api/webhooks", Requires(Read)),
        ("GET", "/api/webhooks/dlq", Requires(Read)),
        (
            "POST",
            "/api/webhooks/dlq/{delivery_id}/replay",
            Requires(WebhooksManage),
        ),
        (
            "GET",
            "/api/tenants/{id}/webhooks",
            Tenant(WebhooksRead, Read),
        ),
        (
            "POST",
            "/api/tenants/{id}/webhooks",
            Tenant(WebhooksWrite, WebhooksManage),
        ),
        (
            "GET",
            "/api/tenants/{id}/webhooks/dlq",
            Tenant(WebhooksRead, Read),
        ),
        (
            "POST",
            "/api/tenants/{id}/webhooks/dlq/{delivery_id}/replay",
            Tenant(WebhooksWrite, WebhooksManage),
        ),
        (
            "GET",
            "/api/tenants/{id}/webhooks/{eid}",
            Tenant(WebhooksRead, Read),
        ),
        (
            "PATCH",
            "/api/tenants/{id}/webhooks/{eid}",
            Tenant(WebhooksWrite, WebhooksManage),
        ),
        (
            "DELETE",
            "/api/tenants/{id}/webhooks/{eid}",
            Tenant(WebhooksWrite, WebhooksManage),
        ),
        (
            "POST",
            "/api/tenants/{id}/webhooks/{eid}/rotate-secret",
            Tenant(WebhooksWrite, WebhooksManage),
        ),
        (
            "POST",
            "/api/tenants/{id}/webhooks/{eid}/test",
            Tenant(WebhooksWrite, WebhooksManage),
        ),
        (
            "GET",
            "/api/tenants/{id}/webhooks/{eid}/attempts",
            Tenant(WebhooksRead, Read),
        ),
        (
            "POST",
            "/api/tenants/{id}/webhooks/{eid}/replay-dlq",
            Tenant(WebhooksWrite, WebhooksManage),
        ),
        (
            "GET",
            "/tenant/{tenant_id}/webhooks",
            Tenant(WebhooksRead, Read),
        ),
        (
            "POST",
            "/tenant/{tenant_id}/webhooks",
            Tenant(WebhooksWrite, WebhooksManage),
        ),
        (
            "GET",
            "/tenant/{tenant_id}/webhooks/{eid}",
            Tenant(WebhooksRead, Read),
        ),
        (
            "POST",
            "/tenant/{tenant_id}/webhooks/{eid}/rotate-secret",
            Tenant(WebhooksWrite, WebhooksManage),
        ),
        (
            "POST",
            "/tenant/{tenant_id}/webhooks/{eid}/test",
            Tenant(WebhooksWrite, WebhooksManage),
        ),
        (
            "POST",
            "/tenant/{tenant_id}/webhooks/{eid}/enabled",
            Tenant(WebhooksWrite, WebhooksManage),
        ),
        (
            "POST",
            "/tenant/{tenant_id}/webhooks/{eid}/replay-dlq",
            Tenant(WebhooksWrite, WebhooksManage),
        ),
        (
            "POST",
            "/tenant/{tenant_id}/webhooks/dlq/{delivery_id}/replay",
            Tenant(WebhooksWrite, WebhooksManage),
        ),
        ("GET", "/platform/webhooks", Requires(Read)),
        (
            "POST",
            "/platform/webhooks/dlq/{delivery_id}/replay",
            Requires(WebhooksManage),
        ),
    ]
};

/// Checklist step 3: the tenant has an endpoint.
fn has_endpoint(r: &ReadCtx, tenant: &Uuid, _now: crate::http::context::Now) -> Result<bool> {
    Ok(!service::endpoints_of(r, tenant)?.is_empty())
}

fn seal(state: &AppState, tenant: &Uuid, id: &Uuid, bytes: &[u8]) -> Result<SealedSecret> {
    Ok(SealedSecret {
        sealed: state
            .webhooks()
            .sealer()
            .seal(tenant, id, bytes)
            .map_err(Error::Internal)?,
        hint: signing::hint(bytes),
    })
}

/// Checks and creates an endpoint; returns it with its signing secret (`whsec_…`), which is
/// shown once. `catalogue` is the published event catalogue's names.
///
/// Errors: 422 `validation_failed`; 404; 409 `tenant_read_only`, `webhook_limit`.
pub async fn create(
    state: &AppState,
    p: &Principal,
    tenant: Uuid,
    draft: EndpointDraft,
    catalogue: &[String],
) -> Result<(Endpoint, String)> {
    let input = draft.parse(catalogue, state.webhooks().policy())?;
    let id = crate::ids::new_id(state.clock().now());
    let bytes = signing::new_secret().map_err(Error::Internal)?;
    let sealed = seal(state, &tenant, &id, &bytes)?;
    let e = state
        .write(p.actor.clone(), move |ctx| {
            service::create(ctx, &tenant, &id, &input, &sealed)
        })
        .await?;
    Ok((e, signing::format_secret(&bytes)))
}

/// Checks and applies a change to an endpoint.
///
/// Errors: 422 `validation_failed`; 404; 409 `tenant_read_only`.
pub async fn update(
    state: &AppState,
    p: &Principal,
    tenant: Uuid,
    id: Uuid,
    patch: EndpointPatch,
    catalogue: &[String],
) -> Result<Endpoint> {
    let input = patch.parse(catalogue, state.webhooks().policy())?;
    state
        .write(p.actor.clone(), move |ctx| {
            service::update(ctx, &tenant, &id, &input)
        })
        .await
}

/// Rotates an endpoint's secret; returns it with the new secret (shown once). The old secret
/// keeps signing for 60 s.
///
/// Errors: 404; 409 `tenant_read_only`.
pub async fn rotate(
    state: &AppState,
    p: &Principal,
    tenant: Uuid,
    id: Uuid,
) -> Result<(Endpoint, String)> {
    let bytes = signing::new_secret().map_err(Error::Internal)?;
    let sealed = seal(state, &tenant, &id, &bytes)?;
    let e = state
        .write(p.actor.clone(), move |ctx| {
            service::rotate(ctx, &tenant, &id, &sealed)
        })
        .await?;
    Ok((e, signing::format_secret(&bytes)))
}

/// Sends a test delivery to an endpoint.
///
/// Errors: 404; 409 `webhook_disabled`.
pub async fn test(state: &AppState, p: &Principal, tenant: Uuid, id: Uuid) -> Result<Delivery> {
    state
        .write(p.actor.clone(), move |ctx| service::test(ctx, &tenant, &id))
        .await
}

/// Replays a dead-lettered delivery of `tenant`, or (for an operator's cross-tenant replay,
/// `tenant` = `None`) of whichever tenant holds it.
///
/// Errors: 404; 409 `delivery_not_dead`, `webhook_disabled`.
pub async fn replay(
    state: &AppState,
    p: &Principal,
    tenant: Option<Uuid>,
    id: Uuid,
) -> Result<Delivery> {
    let tenant = match tenant {
        Some(t) => t,
        None => state
            .read(move |r| service::tenant_of_delivery(r, &id))
            .await?
            .ok_or_else(|| Error::not_found("webhook delivery", id.to_string()))?,
    };
    state
        .write(p.actor.clone(), move |ctx| {
            service::replay(ctx, &tenant, &id)
        })
        .await
}

/// Replays an endpoint's DLQ (up to 1000 deliveries); returns how many.
///
/// Errors: 404; 409 `webhook_disabled`.
pub async fn replay_endpoint(
    state: &AppState,
    p: &Principal,
    tenant: Uuid,
    id: Uuid,
) -> Result<u64> {
    state
        .write(p.actor.clone(), move |ctx| {
            service::replay_endpoint(ctx, &tenant, &id)
        })
        .await
}
