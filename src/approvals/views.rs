//! The Approvals pages of both consoles (operator guide §6, tenant admin guide §5): the queue
//! ("My pending decisions", "My open requests", recent requests), a request with its Approve /
//! Reject form (a comment is required; it goes into the audit chain), the Routes page (list, add,
//! delete) and the Breaches page for on-call. The operator's pages show the platform's routes and
//! every tenant's requests; the Tenant console's show the tenant's own.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use maud::{Markup, html};
use uuid::Uuid;

use super::api::ApprovalRequest;
use super::model::{Decider, State as ReqState};
use super::queries::ApprovalFilter;
use super::service::RouteDraft;
use crate::console::fmt::when;
use crate::console::layout::{Ctx, Tone, badge, empty, header, page, redirect};
use crate::console::{ConsoleError, PageResult};
use crate::error::{Error, path_id};
use crate::rbac::{Permission, Scope};
use crate::state::AppState;

/// The Approvals pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/platform/approvals", get(view_platform_approvals_get))
        .route(
            "/platform/approvals/breaches",
            get(view_platform_breaches_get),
        )
        .route(
            "/platform/approvals/routes",
            get(view_platform_routes_get).post(view_platform_route_create_post),
        )
        .route(
            "/platform/approvals/routes/{route_id}/delete",
            post(view_platform_route_delete_post),
        )
        .route(
            "/platform/approvals/{approval_id}",
            get(view_platform_approval_get),
        )
        .route(
            "/platform/approvals/{approval_id}/decide",
            post(view_platform_decide_post),
        )
        .route(
            "/tenant/{tenant_id}/approvals",
            get(view_tenant_approvals_get),
        )
        .route(
            "/tenant/{tenant_id}/approvals/breaches",
            get(view_tenant_breaches_get),
        )
        .route(
            "/tenant/{tenant_id}/approvals/routes",
            get(view_tenant_routes_get).post(view_tenant_route_create_post),
        )
        .route(
            "/tenant/{tenant_id}/approvals/routes/{route_id}/delete",
            post(view_tenant_route_delete_post),
        )
        .route(
            "/tenant/{tenant_id}/approvals/{approval_id}",
            get(view_tenant_approval_get),
        )
        .route(
            "/tenant/{tenant_id}/approvals/{approval_id}/decide",
            post(view_tenant_decide_post),
        )
}

/// Whose approvals a page shows.
struct Owner {
    tenant: Option<Uuid>,
    base: String,
    subtitle: String,
    may_manage: bool,
}

fn owner(ctx: &Ctx, tenant: bool) -> Result<Owner, ConsoleError> {
    if tenant {
        let t = ctx
            .tenant
            .clone()
            .ok_or_else(|| ConsoleError(Error::not_found("tenant", ctx.path.clone())))?;
        Ok(Owner {
            tenant: Some(t.id),
            base: t.at("/approvals"),
            subtitle: t.name.clone(),
            may_manage: ctx.may(Scope::TenantAdmin, Permission::ApprovalsManage),
        })
    } else {
        Ok(Owner {
            tenant: None,
            base: "/platform/approvals".into(),
            subtitle:
                "Destructive and high-risk actions held for a second person, across every tenant"
                    .into(),
            may_manage: ctx.can(Permission::ApprovalsManage),
        })
    }
}

fn state_badge(x: &ApprovalRequest) -> Markup {
    let tone = match x.state {
        ReqState::Pending if x.breached => Tone::Critical,
        ReqState::Pending => Tone::Warn,
        ReqState::Executed | ReqState::Approved => Tone::Ok,
        ReqState::Rejected | ReqState::Failed => Tone::Critical,
        ReqState::Expired => Tone::Neutral,
    };
    html! {
        (badge(tone, x.state.as_str()))
        @if x.breached && x.state == ReqState::Pending { " " (badge(Tone::Critical, "SLA breached")) }
    }
}

fn table(o: &Owner, items: &[ApprovalRequest], none: &str) -> Markup {
    html! {
        @if items.is_empty() {
            (empty(none, html! {}))
        } @else {
            table {
                thead { tr { th { "Request" } th { "Action" } th { "Requested by" } th { "Approvals" } th { "Due" } th { "State" } } }
                tbody {
                    @for x in items {
                        tr {
                            td { a href=(format!("{}/{}", o.base, x.id)) { (x.summary) } }
                            td { code { (x.action) } }
                            td { (x.requested_by) br; span.muted.small { (when(x.requested_at)) } }
                            td { (x.approvals) " / " (x.required) }
                            td { (when(x.due_at)) }
                            td { (state_badge(x)) }
                        }
                    }
                }
            }
        }
    }
}

async fn requests(
    state: &AppState,
    tenant: Option<Uuid>,
    who: &Decider,
    f: ApprovalFilter,
) -> Result<Vec<ApprovalRequest>, ConsoleError> {
    let now = state.clock().now();
    let w = who.clone();
    let page = state
        .read(move |r| super::queries::list(r, tenant.as_ref(), &f, &w, now))
        .await?;
    Ok(page
        .items
        .into_iter()
        .map(|x| ApprovalRequest::of(x, Some(who), now))
        .collect())
}

fn nav(o: &Owner) -> Markup {
    html! {
        a.button href=(o.base) { "Queue" } " "
        a.button href=(format!("{}/routes", o.base)) { "Routes" } " "
        a.button href=(format!("{}/breaches", o.base)) { "Breaches" }
    }
}

async fn queue(state: &AppState, ctx: &Ctx, tenant: bool) -> PageResult {
    let o = owner(ctx, tenant)?;
    let who = super::viewer(state, &ctx.principal).await?;
    let filter = |mine: Option<&str>, st: Option<&str>| ApprovalFilter {
        mine: mine.map(String::from),
        state: st.map(String::from),
        limit: Some(50),
        ..ApprovalFilter::default()
    };
    let decide = requests(state, o.tenant, &who, filter(Some("decide"), None)).await?;
    let mine = requests(
        state,
        o.tenant,
        &who,
        filter(Some("requested"), Some("pending")),
    )
    .await?;
    let recent = requests(state, o.tenant, &who, filter(None, None)).await?;
    let body = html! {
        (header("Approvals", Some(&o.subtitle), nav(&o)))
        section.card {
            h2 { "My pending decisions" }
            (table(&o, &decide, "Nothing waits for your decision."))
        }
        section.card {
            h2 { "My open requests" }
            (table(&o, &mine, "You have asked for nothing that needs approval."))
        }
        section.card {
            h2 { "All requests" }
            (table(&o, &recent, "No approval requests yet. Requests appear when an action matches a route."))
        }
    };
    Ok(page(ctx, "Approvals", body))
}

async fn breaches(state: &AppState, ctx: &Ctx, tenant: bool) -> PageResult {
    let o = owner(ctx, tenant)?;
    let who = super::viewer(state, &ctx.principal).await?;
    let items = requests(
        state,
        o.tenant,
        &who,
        ApprovalFilter {
            breached: Some(true),
            limit: Some(200),
            ..ApprovalFilter::default()
        },
    )
    .await?;
    let body = html! {
        (header("Approval breaches", Some("Pending requests past their SLA: chase the approvers or the escalation target"), nav(&o)))
        @if items.is_empty() {
            (empty("No breached requests.", html! { p.muted { "Requests past their SLA without a decision appear here, and their escalation target is paged." } }))
        } @else {
            table {
                thead { tr { th { "Request" } th { "Breached" } th { "Escalation" } th { "Approvers" } th { "Approvals" } } }
                tbody {
                    @for x in &items {
                        tr {
                            td { a href=(format!("{}/{}", o.base, x.id)) { (x.summary) } br; code.small { (x.action) } }
                            td { @if let Some(b) = x.breached_at { (when(b)) } }
                            td { (x.escalation.clone().unwrap_or_else(|| "—".into())) }
                            td.small { (x.approvers.join(", ")) }
                            td { (x.approvals) " / " (x.required) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(ctx, "Approval breaches", body))
}

async fn detail(state: &AppState, ctx: &Ctx, tenant: bool, id: &str) -> PageResult {
    let o = owner(ctx, tenant)?;
    let id = path_id("approval request", id)?;
    let who = super::viewer(state, &ctx.principal).await?;
    let t = o.tenant;
    let x = state
        .read(move |r| super::queries::get(r, &id, t.as_ref()))
        .await?;
    let x = ApprovalRequest::of(x, Some(&who), state.clock().now());
    let may_write = !ctx.read_only();
    let body = html! {
        (header(&x.summary, Some(&format!("Approval request · {}", x.route_name)), nav(&o)))
        section.card {
            dl.kv {
                dt { "State" } dd { (state_badge(&x)) }
                dt { "Action" } dd { code { (x.action) } }
                @if let Some(t) = x.tenant_id { dt { "Tenant" } dd { code { (t) } } }
                dt { "Requested by" } dd { (x.requested_by) " (" (x.requested_by_kind) "), " (when(x.requested_at)) }
                @for (k, v) in &x.facts { dt { (k) } dd { (v) } }
                dt { "Approvals" } dd { (x.approvals) " of " (x.required) " needed" }
                dt { "Approvers" } dd { (x.approvers.join(", ")) }
                dt { "SLA" } dd { "due " (when(x.due_at)) @if let Some(e) = &x.escalation { "; escalates to " (e) } }
                @if let Some(r) = &x.result { dt { "Result" } dd { code.small { (r.to_string()) } } }
                @if let Some(f) = &x.failure { dt { "Failed" } dd { (f) } }
            }
        }
        section.card {
            h2 { "Decisions" }
            @if x.decisions.is_empty() { p.muted { "No decision yet." } }
            @else {
                ul {
                    @for d in &x.decisions {
                        li {
                            @if d.approve { (badge(Tone::Ok, "approved")) } @else { (badge(Tone::Critical, "rejected")) }
                            " by " (d.by) ", " (when(d.at)) ": " (d.comment)
                        }
                    }
                }
            }
        }
        @if x.can_decide && may_write {
            section.card {
                h2 { "Decide" }
                form.stack method="post" action=(format!("{}/{}/decide", o.base, x.id)) {
                    (ctx.csrf())
                    label for="decision-comment" { "Comment (required; it goes into the audit chain)" }
                    textarea #decision-comment name="comment" required maxlength="1000" rows="3" {}
                    div {
                        button.primary type="submit" name="verdict" value="approve" { "Approve" } " "
                        button.danger type="submit" name="verdict" value="reject" { "Reject" }
                    }
                }
            }
        }
    };
    Ok(page(ctx, "Approval request", body))
}

async fn decide_post(
    state: &AppState,
    ctx: &Ctx,
    tenant: bool,
    id: &str,
    body: &[u8],
) -> PageResult {
    let o = owner(ctx, tenant)?;
    let rid = path_id("approval request", id)?;
    let f: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let one = |n: &str| f.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let approve = one("verdict").as_deref() == Some("approve");
    let comment = one("comment").unwrap_or_default();
    let back = format!("{}/{rid}", o.base);
    Ok(
        match super::decide(state, &ctx.principal, o.tenant, rid, approve, comment).await {
            Ok(x) => {
                let text = match x.request.state {
                    ReqState::Executed => "Approved: the action ran.".to_string(),
                    ReqState::Failed => format!(
                        "Approved, but the action's re-check refused it: {}",
                        x.request.outcome.unwrap_or_default()
                    ),
                    ReqState::Rejected => "Rejected: the action will not run.".to_string(),
                    _ => "Approval recorded: more approvals are needed.".to_string(),
                };
                redirect(&back, Tone::Ok, &text)
            }
            Err(e) => redirect(&back, Tone::Critical, &format!("{e}. Nothing was changed.")),
        },
    )
}

async fn routes_page(state: &AppState, ctx: &Ctx, tenant: bool) -> PageResult {
    let o = owner(ctx, tenant)?;
    let t = o.tenant;
    let items = state
        .read(move |r| super::service::routes(r, t.as_ref(), None))
        .await?;
    let actions = state.tenant_hooks().approvables.clone();
    let hint = if tenant {
        "role:<member role> or persona:<persona id>, one per line"
    } else {
        "role:super_admin, role:business_admin… or operator:<username>, one per line"
    };
    let body = html! {
        (header("Approval routes", Some(&o.subtitle), nav(&o)))
        @if items.is_empty() {
            (empty("No approval routes yet.", html! { p.muted { "A route holds an action (offboarding, export, downgrade, API key issue) until its approvers agree." } }))
        } @else {
            table {
                thead { tr { th { "Route" } th { "Action" } th { "Condition" } th { "Approvers" } th { "Needed" } th { "SLA" } th { "Escalation" } th {} } }
                tbody {
                    @for x in &items {
                        tr {
                            td { (x.route.name) @if !x.route.enabled { " " (badge(Tone::Neutral, "off")) } }
                            td { code { (x.route.action) } }
                            td { (x.route.condition.as_ref().map(super::model::Condition::text).unwrap_or_else(|| "always".into())) }
                            td.small { (x.route.approvers.join(", ")) }
                            td { (x.route.required) }
                            td { (x.route.sla_hours) " h" }
                            td { (x.route.escalation.clone().unwrap_or_else(|| "—".into())) }
                            td {
                                @if o.may_manage {
                                    form.inline method="post" action=(format!("{}/routes/{}/delete", o.base, x.id)) {
                                        (ctx.csrf())
                                        button.danger type="submit" { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section.card {
            h2 { "Add route" }
            form.stack method="post" action=(format!("{}/routes", o.base)) {
                (ctx.csrf())
                fieldset.plain disabled[!o.may_manage] {
                    label for="route-name" { "Name" }
                    input #route-name name="name" required maxlength="100" placeholder="Two-person offboarding";
                    label for="route-action" { "Trigger: action" }
                    select #route-action name="action" {
                        @for a in &actions { option value=(a.action) { (a.label) " (" (a.action) ")" } }
                    }
                    label for="route-condition" { "Condition (optional)" }
                    input #route-condition name="condition" placeholder="size_bytes > 1 GB";
                    label for="route-approvers" { "Approvers (" (hint) ")" }
                    textarea #route-approvers name="approvers" required rows="2" {}
                    label for="route-required" { "Approvals needed" }
                    input #route-required name="required" type="number" min="1" max="5" value="1";
                    label for="route-sla" { "SLA (hours)" }
                    input #route-sla name="sla_hours" type="number" min="1" max="720" value="24";
                    label for="route-escalation" { "Escalation (paged when the SLA is breached)" }
                    input #route-escalation name="escalation";
                    button.primary type="submit" { "Add route" }
                }
            }
        }
    };
    Ok(page(ctx, "Approval routes", body))
}

async fn route_create_post(state: &AppState, ctx: &Ctx, tenant: bool, body: &[u8]) -> PageResult {
    let o = owner(ctx, tenant)?;
    let f: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let one = |n: &str| {
        f.iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.trim().to_string())
    };
    let num = |n: &str| one(n).and_then(|v| v.parse::<i64>().ok());
    let draft = RouteDraft {
        name: one("name").unwrap_or_default(),
        action: one("action").unwrap_or_default(),
        condition: one("condition").filter(|c| !c.is_empty()),
        approvers: one("approvers")
            .unwrap_or_default()
            .split(['\n', ','])
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        required: num("required"),
        sla_hours: num("sla_hours"),
        escalation: one("escalation").filter(|e| !e.is_empty()),
        enabled: Some(true),
    };
    let to = format!("{}/routes", o.base);
    Ok(
        match super::create_route(state, &ctx.principal, o.tenant, draft).await {
            Ok(x) => redirect(&to, Tone::Ok, &format!("Route {} added.", x.route.name)),
            Err(e) => redirect(&to, Tone::Critical, &format!("{e}. Nothing was changed.")),
        },
    )
}

async fn route_delete_post(state: &AppState, ctx: &Ctx, tenant: bool, rid: &str) -> PageResult {
    let o = owner(ctx, tenant)?;
    let id = path_id("approval route", rid)?;
    let to = format!("{}/routes", o.base);
    Ok(
        match super::delete_route(state, &ctx.principal, o.tenant, id).await {
            Ok(()) => redirect(&to, Tone::Ok, "Route deleted; its pending requests stay."),
            Err(e) => redirect(&to, Tone::Critical, &format!("{e}. Nothing was changed.")),
        },
    )
}

/// The operator's approvals queue.
pub async fn view_platform_approvals_get(State(s): State<AppState>, ctx: Ctx) -> PageResult {
    queue(&s, &ctx, false).await
}

/// The operator's Breaches page.
pub async fn view_platform_breaches_get(State(s): State<AppState>, ctx: Ctx) -> PageResult {
    breaches(&s, &ctx, false).await
}

/// The platform's routes.
pub async fn view_platform_routes_get(State(s): State<AppState>, ctx: Ctx) -> PageResult {
    routes_page(&s, &ctx, false).await
}

/// Adds a platform route.
pub async fn view_platform_route_create_post(
    State(s): State<AppState>,
    ctx: Ctx,
    body: axum::body::Bytes,
) -> PageResult {
    route_create_post(&s, &ctx, false, &body).await
}

/// Deletes a platform route.
pub async fn view_platform_route_delete_post(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(route_id): Path<String>,
) -> PageResult {
    route_delete_post(&s, &ctx, false, &route_id).await
}

/// A request, with its decision form.
pub async fn view_platform_approval_get(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(approval_id): Path<String>,
) -> PageResult {
    detail(&s, &ctx, false, &approval_id).await
}

/// Approves or rejects a request.
pub async fn view_platform_decide_post(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(approval_id): Path<String>,
    body: axum::body::Bytes,
) -> PageResult {
    decide_post(&s, &ctx, false, &approval_id, &body).await
}

/// The Tenant console's approvals queue.
pub async fn view_tenant_approvals_get(State(s): State<AppState>, ctx: Ctx) -> PageResult {
    queue(&s, &ctx, true).await
}

/// The Tenant console's Breaches page.
pub async fn view_tenant_breaches_get(State(s): State<AppState>, ctx: Ctx) -> PageResult {
    breaches(&s, &ctx, true).await
}

/// The tenant's routes.
pub async fn view_tenant_routes_get(State(s): State<AppState>, ctx: Ctx) -> PageResult {
    routes_page(&s, &ctx, true).await
}

/// Adds a tenant route.
pub async fn view_tenant_route_create_post(
    State(s): State<AppState>,
    ctx: Ctx,
    body: axum::body::Bytes,
) -> PageResult {
    route_create_post(&s, &ctx, true, &body).await
}

/// Deletes a tenant route.
pub async fn view_tenant_route_delete_post(
    State(s): State<AppState>,
    ctx: Ctx,
    Path((_, route_id)): Path<(String, String)>,
) -> PageResult {
    route_delete_post(&s, &ctx, true, &route_id).await
}

/// A request concerning the tenant.
pub async fn view_tenant_approval_get(
    State(s): State<AppState>,
    ctx: Ctx,
    Path((_, approval_id)): Path<(String, String)>,
) -> PageResult {
    detail(&s, &ctx, true, &approval_id).await
}

/// Approves or rejects a request concerning the tenant.
pub async fn view_tenant_decide_post(
    State(s): State<AppState>,
    ctx: Ctx,
    Path((_, approval_id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> PageResult {
    decide_post(&s, &ctx, true, &approval_id, &body).await
}
