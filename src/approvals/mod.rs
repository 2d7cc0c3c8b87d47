//! Approvals (issue 11; operator guide §6, tenant admin guide §5, HQ PRD §3 "Change Approval";
//! PRODUCT.md 19): routes that hold destructive or high-risk actions until a second person (or
//! N people) approves them, with an SLA whose breach pages an escalation target.
//!
//! The contexts that own the actions guard them with [`guarded`] (offboarding, tenant export,
//! plan downgrade, API key issue today) and declare how to run them once approved
//! ([`model::Approvable`], their descriptors' `approvables`), so this context runs them without
//! depending on their code.
//!
//! - [`model`]: routes, requests, decisions, states, tables, limits.
//! - [`service`]: guard, decide (the last approval executes), SLA timers, routes.
//! - [`queries`]: pages of requests for the caller (`mine=decide|requested`, breaches).
//! - [`api`]: `/api/approvals...` and `/api/tenants/{id}/approvals...`.
//! - [`views`]: the Approvals pages of both consoles.

pub mod api;
pub mod model;
pub mod queries;
pub mod service;
pub mod views;

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::http::context::{Context, NavItem};
use crate::rbac::{Access, Permission, Principal, PrincipalKind, Route, Scope};
use crate::state::AppState;
use crate::store::WriteCtx;
use model::{Decider, Held, Request, RouteV1};
use service::{Guarded, Requester, RouteDraft};

/// The approvals context: its routes, pages, permission entries and events.
pub const CONTEXT: Context = Context {
    name: "approvals",
    tags: &[(
        "approvals",
        "Approval routes, requests and decisions (two-person rule, SLAs, breaches)",
    )],
    api: api::router,
    views: views::router,
    routes: ROUTES,
    nav: &[
        NavItem::new("/platform/approvals", "Approvals", Permission::Read),
        NavItem::tenant(
            "/tenant/{tenant_id}/approvals",
            "Approvals",
            Scope::ApprovalsRead,
        ),
    ],
    events: &[
        "approval.requested.v1",
        "approval.approved.v1",
        "approval.rejected.v1",
        "approval.executed.v1",
        "approval.failed.v1",
        "approval.breached.v1",
        "approval.expired.v1",
        "approval.route.created.v1",
        "approval.route.updated.v1",
        "approval.route.deleted.v1",
    ],
    on_shred: &[service::shred],
    ..Context::EMPTY
};

/// The permission entry of every route of this context. Deciding needs the permission (or
/// scope) to decide at all; whether the caller is among a request's approvers is the request's
/// own check ([`service::decide`]).
const ROUTES: &[Route] = {
    use Access::*;
    use Permission::*;
    &[
        ("GET", "/api/approvals/routes", Requires(Read)),
        ("POST", "/api/approvals/routes", Requires(ApprovalsManage)),
        (
            "PUT",
            "/api/approvals/routes/{route_id}",
            Requires(ApprovalsManage),
        ),
        (
            "DELETE",
            "/api/approvals/routes/{route_id}",
            Requires(ApprovalsManage),
        ),
        ("GET", "/api/approvals", Requires(Read)),
        ("GET", "/api/approvals/{approval_id}", Requires(Read)),
        (
            "POST",
            "/api/approvals/{approval_id}/approve",
            Requires(ApprovalsDecide),
        ),
        (
            "POST",
            "/api/approvals/{approval_id}/reject",
            Requires(ApprovalsDecide),
        ),
        (
            "GET",
            "/api/tenants/{id}/approvals/routes",
            Tenant(Scope::ApprovalsRead, Read),
        ),
        (
            "POST",
            "/api/tenants/{id}/approvals/routes",
            Tenant(Scope::TenantAdmin, ApprovalsManage),
        ),
        (
            "PUT",
            "/api/tenants/{id}/approvals/routes/{route_id}",
            Tenant(Scope::TenantAdmin, ApprovalsManage),
        ),
        (
            "DELETE",
            "/api/tenants/{id}/approvals/routes/{route_id}",
            Tenant(Scope::TenantAdmin, ApprovalsManage),
        ),
        (
            "GET",
            "/api/tenants/{id}/approvals",
            Tenant(Scope::ApprovalsRead, Read),
        ),
        (
            "GET",
            "/api/tenants/{id}/approvals/{approval_id}",
            Tenant(Scope::ApprovalsRead, Read),
        ),
        (
            "POST",
            "/api/tenants/{id}/approvals/{approval_id}/approve",
            Tenant(Scope::ApprovalsDecide, ApprovalsDecide),
        ),
        (
            "POST",
            "/api/tenants/{id}/approvals/{approval_id}/reject",
            Tenant(Scope::ApprovalsDecide, ApprovalsDecide),
        ),
        ("GET", "/platform/approvals", Requires(Read)),
        ("GET", "/platform/approvals/breaches", Requires(Read)),
        ("GET", "/platform/approvals/routes", Requires(Read)),
        (
            "POST",
            "/platform/approvals/routes",
            Requires(ApprovalsManage),
        ),
        (
            "POST",
            "/platform/approvals/routes/{route_id}/delete",
            Requires(ApprovalsManage),
        ),
        ("GET", "/platform/approvals/{approval_id}", Requires(Read)),
        (
            "POST",
            "/platform/approvals/{approval_id}/decide",
            Requires(ApprovalsDecide),
        ),
        (
            "GET",
            "/tenant/{tenant_id}/approvals",
            Tenant(Scope::ApprovalsRead, Read),
        ),
        (
            "GET",
            "/tenant/{tenant_id}/approvals/breaches",
            Tenant(Scope::ApprovalsRead, Read),
        ),
        (
            "GET",
            "/tenant/{tenant_id}/approvals/routes",
            Tenant(Scope::ApprovalsRead, Read),
        ),
        (
            "POST",
            "/tenant/{tenant_id}/approvals/routes",
            Tenant(Scope::TenantAdmin, ApprovalsManage),
        ),
        (
            "POST",
            "/tenant/{tenant_id}/approvals/routes/{route_id}/delete",
            Tenant(Scope::TenantAdmin, ApprovalsManage),
        ),
        (
            "GET",
            "/tenant/{tenant_id}/approvals/{approval_id}",
            Tenant(Scope::ApprovalsRead, Read),
        ),
        (
            "POST",
            "/tenant/{tenant_id}/approvals/{approval_id}/decide",
            Tenant(Scope::ApprovalsDecide, ApprovalsDecide),
        ),
    ]
};

/// Who `p` is as a requester: its actor, the person behind it (an operator account, a persona,
/// or a shared token), and its tenant.
pub fn requester(p: &Principal) -> Requester {
    let (person, tenant) = match &p.kind {
        PrincipalKind::Operator {
            operator_id: Some(id),
            ..
        } => (format!("operator:{id}"), None),
        PrincipalKind::Operator { .. } => (format!("token:{}", p.actor.id), None),
        PrincipalKind::Tenant(t) => (format!("persona:{}", t.persona_id), Some(t.tenant_id)),
    };
    Requester {
        actor: p.actor.clone(),
        person,
        tenant,
    }
}

/// Who `p` is as a decider: its person, names and roles (a persona's member roles are read).
///
/// Errors: 403 for the shared admin token (a decision is personal).
pub async fn decider(state: &AppState, p: &Principal) -> Result<Decider> {
    match &p.kind {
        PrincipalKind::Operator {
            operator_id: Some(id),
            role,
            ..
        } => Ok(Decider {
            person: format!("operator:{id}"),
            actor: Some(p.actor.clone()),
            names: vec![format!("operator:{}", p.actor.id)],
            roles: vec![role.as_str().to_string()],
            tenant: None,
        }),
        PrincipalKind::Operator { .. } => Err(Error::Forbidden(
            "decisions are personal: sign in as an operator (or use an operator token), not the admin_ops_token".into(),
        )),
        PrincipalKind::Tenant(t) => {
            let (tenant, persona) = (t.tenant_id, t.persona_id);
            let roles = state
                .read(move |r| {
                    Ok(crate::members::queries::load_persona(r, &tenant, &persona)
                        .map(|x| x.roles)
                        .unwrap_or_default())
                })
                .await?;
            Ok(Decider {
                person: format!("persona:{persona}"),
                actor: Some(p.actor.clone()),
                names: vec![format!("persona:{persona}")],
                roles,
                tenant: Some(tenant),
            })
        }
    }
}

/// A viewer of lists who decides nothing (the bootstrap token): matches no approver.
pub fn onlooker(p: &Principal) -> Decider {
    let r = requester(p);
    Decider {
        person: r.person,
        actor: None,
        names: Vec::new(),
        roles: Vec::new(),
        tenant: r.tenant,
    }
}

/// The decider for lists: [`decider`], or an onlooker for the shared token.
pub async fn viewer(state: &AppState, p: &Principal) -> Result<Decider> {
    match decider(state, p).await {
        Ok(d) => Ok(d),
        Err(Error::Forbidden(_)) => Ok(onlooker(p)),
        Err(e) => Err(e),
    }
}

/// Runs a guarded action for `p` in one write: held as an approval request when a route
/// matches `held` and `facts` (after `check` passes), else `run`. See [`service::guard`].
///
/// Errors: `check`'s and `run`'s; 409 `approval_queue_full`.
pub async fn guarded<T, C, R>(
    state: &AppState,
    p: &Principal,
    held: Held,
    facts: Vec<(String, i64)>,
    check: C,
    mut run: R,
) -> Result<Guarded<T>>
where
    T: Send + 'static,
    C: Fn(&WriteCtx<'_>) -> Result<()> + Send + 'static,
    R: FnMut(&mut WriteCtx<'_>) -> Result<T> + Send + 'static,
{
    let who = requester(p);
    state
        .write(p.actor.clone(), move |ctx| {
            service::guard(ctx, held.clone(), facts.clone(), &who, &check, &mut run)
        })
        .await
}

/// Records `p`'s decision on request `id` (of `tenant` when given); see [`service::decide`].
///
/// Errors: as [`service::decide`]; 403 for the shared admin token.
pub async fn decide(
    state: &AppState,
    p: &Principal,
    tenant: Option<Uuid>,
    id: Uuid,
    approve: bool,
    comment: String,
) -> Result<Request> {
    // An unknown request is 404 whoever asks; then the caller must be a person.
    state
        .read(move |r| queries::get(r, &id, tenant.as_ref()))
        .await?;
    let who = decider(state, p).await?;
    let approvables = state.tenant_hooks().approvables.clone();
    state
        .write(p.actor.clone(), move |ctx| {
            service::decide(
                ctx,
                &approvables,
                &id,
                tenant.as_ref(),
                &who,
                approve,
                &comment,
            )
        })
        .await
}

/// Checks `draft` and creates a route of the platform or of `tenant`.
///
/// Errors: 422; 404; 409 `route_limit`.
pub async fn create_route(
    state: &AppState,
    p: &Principal,
    tenant: Option<Uuid>,
    draft: RouteDraft,
) -> Result<model::Route> {
    write_route(state, p, tenant, draft, None).await
}

/// Checks `draft` and replaces route `id`.
///
/// Errors: 422; 404.
pub async fn replace_route(
    state: &AppState,
    p: &Principal,
    tenant: Option<Uuid>,
    id: Uuid,
    draft: RouteDraft,
) -> Result<model::Route> {
    write_route(state, p, tenant, draft, Some(id)).await
}

/// Parses `draft` in the write (persona approvers are looked up there) and creates the route,
/// or replaces route `id`.
async fn write_route(
    state: &AppState,
    p: &Principal,
    tenant: Option<Uuid>,
    draft: RouteDraft,
    id: Option<Uuid>,
) -> Result<model::Route> {
    let approvables = state.tenant_hooks().approvables.clone();
    state
        .write(p.actor.clone(), move |ctx| {
            let now = crate::clock::to_micros(ctx.now);
            let route: RouteV1 = draft
                .clone()
                .parse(ctx, &approvables, tenant.as_ref(), now)?;
            match id {
                None => service::create_route(ctx, tenant.as_ref(), route),
                Some(id) => service::replace_route(ctx, tenant.as_ref(), &id, route),
            }
        })
        .await
}

/// Deletes route `id`.
///
/// Errors: 404.
pub async fn delete_route(
    state: &AppState,
    p: &Principal,
    tenant: Option<Uuid>,
    id: Uuid,
) -> Result<()> {
    state
        .write(p.actor.clone(), move |ctx| {
            service::delete_route(ctx, tenant.as_ref(), &id)
        })
        .await
}

/// Runs the SLA timers due now (the `approval_sla` job): breaches, then expiries.
///
/// Errors: storage errors.
pub async fn run_timers(state: &AppState, now: chrono::DateTime<chrono::Utc>) -> Result<String> {
    let (mut breached, mut expired) = (0u64, 0u64);
    loop {
        let (b, e, more) = state
            .store()
            .write(now, crate::actor::Actor::job("approval_sla"), |ctx| {
                service::run_timers(ctx, 200)
            })
            .await?;
        breached += b;
        expired += e;
        if !more {
            break;
        }
    }
    Ok(format!(
        "{breached} approval request{} breached its SLA, {expired} expired",
        if breached == 1 { "" } else { "s" }
    ))
}
