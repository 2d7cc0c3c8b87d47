//! Tenant pages: the directory (state in the URL, so a view can be bookmarked), the guided
//! "new tenant" form, the tenant detail with its lifecycle actions and activity, and the edit
//! form (operator guide §1; tenant-management seed).

use axum::Router;
use axum::routing::{get, post};
use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use crate::approvals::service::Guarded;
use crate::audit::ChainId;
use crate::audit::ledger::{self, AuditQuery};
use crate::console::fmt::{self, when};
use crate::console::layout::{
    Ctx, Tone, badge, empty, field, header, page, page_with_status, redirect,
};
use crate::console::{ConsoleError, PageResult, urlencode};
use crate::error::{Error, FieldError};
use crate::pools::model::Pool;
use crate::rbac::Permission;
use crate::state::AppState;
use crate::tenants::directory::{self, DirectoryRow};
use crate::tenants::model::{Action, AppPools, State as TenantState, Tenant, Tier, slug_from_name};
use crate::tenants::queries::DirectoryFilter;
use crate::tenants::service::{self, TenantChanges, TenantDraft, TransitionDraft};

/// The tenant pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/platform/tenants",
            get(view_tenants_get).post(view_tenant_create_post),
        )
        .route("/platform/tenants/new", get(view_tenant_new_get))
        .route("/platform/tenants/{id}", get(view_tenant_get))
        .route(
            "/platform/tenants/{id}/edit",
            get(view_tenant_edit_get).post(view_tenant_edit_post),
        )
        .route(
            "/platform/tenants/{id}/lifecycle/{action}",
            post(view_tenant_lifecycle_post),
        )
}

fn tenant_id(id: &str) -> Result<Uuid, ConsoleError> {
    crate::ids::parse_uuid(id).ok_or_else(|| ConsoleError(Error::not_found("tenant", id)))
}

fn errors_by_field(err: &Error) -> HashMap<String, String> {
    match err {
        Error::AppNotFound(_) => crate::console::field_errors(err, "app_id"),
        Error::Conflict {
            code: crate::tenants::model::SLUG_TAKEN,
            ..
        } => crate::console::field_errors(err, "slug"),
        other => crate::console::field_errors(other, "form"),
    }
}

/// Apps for the select and names in tables.
async fn app_names(state: &AppState) -> Result<Vec<(Uuid, String)>, ConsoleError> {
    let apps = state
        .read(|r| Ok(crate::apps::queries::list(r, None, crate::store::page::MAX_LIMIT)?.items))
        .await
        .map_err(ConsoleError)?;
    Ok(apps.into_iter().map(|a| (a.id, a.name)).collect())
}

// ---- Directory ----

fn select(name: &str, label: &str, current: &str, options: &[(String, String)]) -> Markup {
    html! {
        div.field.inline {
            label for=(name) { (label) }
            select #(name) name=(name) {
                option value="" selected[current.is_empty()] { "Any" }
                @for (v, text) in options {
                    option value=(v) selected[current == v] { (text) }
                }
            }
        }
    }
}

/// The directory: filters, sort, cursor pages, CSV link.
pub async fn view_tenants_get(
    State(state): State<AppState>,
    ctx: Ctx,
    RawQuery(raw): RawQuery,
    Query(form): Query<DirectoryFilter>,
) -> PageResult {
    let shown = form.clone();
    let q = form.parse().map_err(ConsoleError)?;
    let apps = app_names(&state).await?;
    let page_rows = state
        .read(move |r| directory::query(r, &q))
        .await
        .map_err(ConsoleError)?;
    let config = state.config().clone();
    let now = state.clock().now();
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    let statuses: Vec<(String, String)> = TenantState::ALL
        .iter()
        .map(|s| (s.as_str().into(), s.as_str().into()))
        .collect();
    let regions: Vec<(String, String)> = config
        .regions
        .iter()
        .map(|r| (r.code.clone(), r.code.clone()))
        .collect();
    let tiers: Vec<(String, String)> = Tier::ALL
        .iter()
        .map(|t| (t.as_str().into(), t.as_str().into()))
        .collect();
    let app_opts: Vec<(String, String)> = apps
        .iter()
        .map(|(id, n)| (id.to_string(), n.clone()))
        .collect();
    let app_name = |id: &Uuid| {
        apps.iter()
            .find(|(a, _)| a == id)
            .map_or("?", |(_, n)| n.as_str())
            .to_string()
    };
    // The same query without the cursor, for "first page" and the CSV link.
    let base_query = crate::console::without_cursor(raw);
    let body = html! {
        (header("Tenants", Some("Every tenant of the platform. Filters, sort and paging run on the server."), html! {
            @if ctx.can(Permission::TenantsExport) {
                a.button href={"/api/tenants/export.csv?" (base_query)} { "Export CSV" }
            }
            @if ctx.can(Permission::TenantsWrite) {
                a.button.primary href="/platform/tenants/new" { "New tenant" }
            }
        }))
        form.filters method="get" action="/platform/tenants" role="search" {
            div.field.inline {
                label for="q" { "Search" }
                input #q type="search" name="q" value=(v(&shown.q)) placeholder="name, slug or contact";
            }
            (select("state", "State", &v(&shown.state.clone().or(shown.status.clone())), &statuses))
            (select("region", "Region", &v(&shown.region), &regions))
            (select("isolation_tier", "Tier", &v(&shown.isolation_tier), &tiers))
            (select("app_id", "App", &v(&shown.app_id), &app_opts))
            div.field.inline {
                label for="sort" { "Sort by" }
                select #sort name="sort" {
                    @for (val, text) in [("created_at", "Created"), ("display_name", "Name"), ("state", "State")] {
                        option value=(val) selected[shown.sort.as_deref().unwrap_or("created_at") == val] { (text) }
                    }
                }
            }
            div.field.inline {
                label for="order" { "Order" }
                select #order name="order" {
                    option value="" selected[shown.order.is_none()] { "Default" }
                    option value="asc" selected[shown.order.as_deref() == Some("asc")] { "Ascending" }
                    option value="desc" selected[shown.order.as_deref() == Some("desc")] { "Descending" }
                }
            }
            div.field.inline.buttons {
                button type="submit" { "Apply" }
                a href="/platform/tenants" { "Reset" }
            }
        }
        @if page_rows.rows.is_empty() {
            (empty("No tenant matches these filters.", html! {
                @if ctx.can(Permission::TenantsWrite) { a href="/platform/tenants/new" { "Provision a tenant" } }
            }))
        } @else {
            div.table-wrap {
                table {
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Status" } th scope="col" { "Tier" } th scope="col" { "Region" }
                        th scope="col" { "App" } th scope="col" { "Plan" } th scope="col" { "Primary contact" } th scope="col" { "Created" }
                    } }
                    tbody {
                        @for row in &page_rows.rows {
                            @match row {
                                DirectoryRow::Tenant(t) => {
                                    tr {
                                        td {
                                            a href={"/platform/tenants/" (t.id)} { @if t.display_name.is_empty() { "(shredded)" } @else { (t.display_name) } }
                                            br; span.muted.small { (t.slug) }
                                        }
                                        td { (state_badge(t.state))
                                            @if let (TenantState::Offboarding, Some(d)) = (t.state, t.deadline_at) { br; span.small { "shred " (fmt::relative(d, now)) } }
                                        }
                                        td { (t.isolation_tier.as_str()) }
                                        td { (t.region) }
                                        td { (app_name(&t.app_id)) }
                                        td { (t.plan.as_deref().unwrap_or("—")) }
                                        td { (t.contact_email.as_deref().unwrap_or("—")) }
                                        td { (when(t.created_at)) }
                                    }
                                }
                                DirectoryRow::Broken { id, error } => {
                                    tr.broken {
                                        td colspan="8" { (badge(Tone::Critical, "unreadable")) " Tenant " code { (id) } ": " (error) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            nav.pager aria-label="Pages" {
                @if shown.cursor.is_some() { a href={"/platform/tenants?" (base_query)} { "← First page" } }
                @if let Some(c) = &page_rows.next_cursor {
                    a href={"/platform/tenants?" (base_query) @if !base_query.is_empty() { "&" } "cursor=" (urlencode(&c.encode()))} { "Next page →" }
                }
            }
        }
    };
    Ok(page(&ctx, "Tenants", body))
}

// ---- New tenant ----

/// The new-tenant form's fields, as typed (kept on errors).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct TenantForm {
    app_id: String,
    display_name: String,
    slug: String,
    region: String,
    isolation_tier: String,
    contact_email: String,
    country: String,
    brand_domain: String,
    plan: String,
    trial_days: String,
    hierarchy_depth: String,
}

fn opt(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn number(field: &str, s: &str, errors: &mut Vec<FieldError>) -> Option<i64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    match t.parse() {
        Ok(n) => Some(n),
        Err(_) => {
            errors.push(FieldError {
                field: field.into(),
                message: format!("'{t}' is not a whole number"),
            });
            None
        }
    }
}

fn new_tenant_form(
    ctx: &Ctx,
    state: &AppState,
    apps: &[(Uuid, String)],
    f: &TenantForm,
    errors: &HashMap<String, String>,
    plans: &[String],
) -> Markup {
    let config = state.config();
    let err = |k: &str| errors.get(k).map(String::as_str);
    let tier = if f.isolation_tier.is_empty() {
        "S"
    } else {
        f.isolation_tier.as_str()
    };
    html! {
        (header("New tenant", Some("Provision a tenant for a customer who signed, or for a pilot or demo. It starts in state provisioned."), html! {}))
        @if let Some(e) = err("form") { div.flash.critical role="alert" { (e) } }
        @if apps.is_empty() {
            (empty("No app exists yet: a tenant needs its parent app.", html! { a href="/platform/apps" { "Create an app first" } }))
        } @else {
            form.card.form method="post" action="/platform/tenants" novalidate {
                (ctx.csrf())
                fieldset {
                    legend { "Customer" }
                    (field("App", "app_id", html! {
                        select #app_id name="app_id" required aria-describedby="app_id-help" {
                            @for (id, name) in apps {
                                option value=(id) selected[f.app_id == id.to_string()] { (name) }
                            }
                        }
                    }, err("app_id"), Some("The parent product surface. A tenant cannot exist without one.")))
                    (field("Display name", "display_name", html! {
                        input #display_name name="display_name" required maxlength="120" value=(f.display_name) data-slug-source="slug";
                    }, err("display_name"), Some("What the customer sees in their workspace.")))
                    (field("Slug", "slug", html! {
                        input #slug name="slug" maxlength="63" pattern="[a-z0-9](?:[a-z0-9-]*[a-z0-9])?" value=(f.slug)
                            placeholder=(if f.display_name.is_empty() { "derived from the name".to_string() } else { slug_from_name(&f.display_name) });
                    }, err("slug"), Some("a-z, 0-9 and '-'. Leave it empty to derive it from the name.")))
                    (field("Primary contact email", "contact_email", html! {
                        input #contact_email name="contact_email" type="email" value=(f.contact_email) autocomplete="off";
                    }, err("contact_email"), Some("The customer's IT lead; the onboarding email goes here.")))
                    (field("Country", "country", html! {
                        input #country name="country" maxlength="2" value=(f.country) placeholder="BE";
                    }, err("country"), Some("ISO 3166-1 alpha-2.")))
                    (field("Brand domain", "brand_domain", html! {
                        input #brand_domain name="brand_domain" value=(f.brand_domain) placeholder="app.customer.com";
                    }, err("brand_domain"), Some("Optional vanity hostname.")))
                }
                fieldset {
                    legend { "Placement" }
                    (field("Region", "region", html! {
                        select #region name="region" required {
                            @for r in &config.regions {
                                option value=(r.code) selected[f.region == r.code] {
                                    (r.code) " — " (r.name) @if r.sovereign { " (sovereign)" }
                                }
                            }
                        }
                    }, err("region"), Some("Must match any residency policy you attach later.")))
                    div class={"field" @if err("isolation_tier").is_some() { " invalid" }} role="radiogroup" aria-labelledby="tier-label" {
                        span #tier-label.label { "Isolation tier" }
                        @for (t, name, explain) in [
                            ("S", "S — shared", "Shares admin and app pools with other tenants. The default."),
                            ("P", "P — premium", "Gets a dedicated app pool; shares an admin pool."),
                            ("G", "G — sovereign", "Fully isolated: dedicated admin and app pools. Needs a sovereign region."),
                        ] {
                            label.radio {
                                input type="radio" name="isolation_tier" value=(t) checked[tier == t];
                                span { strong { (name) } " " span.muted { (explain) } }
                            }
                        }
                        @if let Some(e) = err("isolation_tier") { p.error role="alert" { (e) } }
                    }
                }
                fieldset {
                    legend { "Plan" }
                    (field("Plan", "plan", html! {
                        select #plan name="plan" {
                            option value="" selected[f.plan.is_empty()] { "None yet" }
                            @for p in plans { option value=(p) selected[&f.plan == p] { (p) } }
                        }
                    }, err("plan"), None))
                    (field("Trial length (days)", "trial_days", html! {
                        input #trial_days name="trial_days" type="number" min="1" max="365" value=(f.trial_days) placeholder="14";
                    }, err("trial_days"), Some("Used when the trial starts. 1–365.")))
                    (field("Hierarchy depth", "hierarchy_depth", html! {
                        input #hierarchy_depth name="hierarchy_depth" type="number" min="1" max="5" value=(f.hierarchy_depth);
                    }, err("hierarchy_depth"), Some("Levels of the customer's org tree (flat = 1).")))
                }
                div.form-actions {
                    button.primary type="submit" { "Provision tenant" }
                    a href="/platform/tenants" { "Cancel" }
                }
            }
        }
    }
}

/// The guided form.
pub async fn view_tenant_new_get(State(state): State<AppState>, ctx: Ctx) -> PageResult {
    let apps = app_names(&state).await?;
    let body = new_tenant_form(
        &ctx,
        &state,
        &apps,
        &TenantForm::default(),
        &HashMap::new(),
        &plan_codes(&state).await?,
    );
    Ok(page(&ctx, "New tenant", body))
}

/// Provisions from the form; on errors the form comes back with each next to its field.
pub async fn view_tenant_create_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(f): Form<TenantForm>,
) -> PageResult {
    let mut extra = Vec::new();
    let body = TenantDraft {
        app_id: f.app_id.clone(),
        display_name: f.display_name.clone(),
        slug: opt(&f.slug),
        region: f.region.clone(),
        isolation_tier: opt(&f.isolation_tier),
        brand_domain: opt(&f.brand_domain),
        country: opt(&f.country),
        contact_email: opt(&f.contact_email),
        plan: opt(&f.plan),
        trial_days: number("trial_days", &f.trial_days, &mut extra),
        hierarchy_depth: number("hierarchy_depth", &f.hierarchy_depth, &mut extra),
    };
    let config = state.config().clone();
    let plans = plan_codes(&state).await?;
    let result = match body.parse(&config, &plans) {
        Ok(input) if extra.is_empty() => {
            let cfg = config.clone();
            let hooks = state.tenant_hooks().clone();
            state
                .write(ctx.principal.actor.clone(), move |c| {
                    service::provision(c, &cfg, &input, &hooks)
                })
                .await
        }
        Ok(_) => Err(Error::Validation(extra.clone())),
        Err(Error::Validation(mut fields)) => {
            fields.extend(extra);
            Err(Error::Validation(fields))
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(t) => Ok(redirect(
            "/platform/tenants",
            Tone::Ok,
            &format!(
                "{} was provisioned (slug {}, pools {}). It is in state provisioned.",
                t.display_name,
                t.slug,
                t.pools.pool_ids().join(", ")
            ),
        )),
        Err(
            e @ (Error::Validation(_)
            | Error::AppNotFound(_)
            | Error::Conflict { .. }
            | Error::Unavailable { .. }),
        ) => {
            let apps = app_names(&state).await?;
            let errors = errors_by_field(&e);
            let markup = new_tenant_form(&ctx, &state, &apps, &f, &errors, &plans);
            Ok(page_with_status(
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                "New tenant",
                markup,
            ))
        }
        Err(e) => Err(ConsoleError(e)),
    }
}

// ---- Detail ----

fn pool_badge(pools: &[Pool], id: &str) -> Markup {
    match pools.iter().find(|p| p.id == id) {
        Some(p) => html! { code { (p.id) } " " (crate::pools::views::status_badge(p.status)) },
        None => html! { code { (id) } },
    }
}

fn action_form(ctx: &Ctx, t: &Tenant, action: Action) -> Markup {
    let url = format!("/platform/tenants/{}/lifecycle/{}", t.id, action.as_str());
    html! {
        form.action-form method="post" action=(url) data-confirm=[(action == Action::Offboard).then_some("Offboard this tenant? It becomes read-only and is shredded at the deadline.")] {
            (ctx.csrf())
            @match action {
                Action::StartTrial => {
                    h3 { "Start trial" }
                    label { "Trial length (days) " input name="trial_days" type="number" min="1" max="365" value=(t.trial_days.unwrap_or(service::DEFAULT_TRIAL_DAYS)); }
                    button type="submit" { "Start trial" }
                }
                Action::Activate => {
                    h3 { "Activate" }
                    label { "Note (optional) " input name="reason" maxlength="500"; }
                    button type="submit" { "Activate" }
                }
                Action::Suspend => {
                    h3 { "Suspend" }
                    label { "Reason (required) " input name="reason" required maxlength="500" placeholder="non-payment, abuse, breach hold…"; }
                    button.warn type="submit" { "Suspend" }
                }
                Action::Reinstate => {
                    h3 { "Reinstate" }
                    label { "Note (optional) " input name="reason" maxlength="500" placeholder="payment received"; }
                    button type="submit" { "Reinstate" }
                }
                Action::Offboard => {
                    h3 { "Offboard" }
                    p.small.muted { "Writes stop at once; reads stay live until the deadline; then the data is shredded. Reversible until then." }
                    label { "Reason (required) " input name="reason" required maxlength="500" placeholder="customer left"; }
                    label { "Grace period (days) " input name="grace_days" type="number" min="0" max="3650" value=(service::DEFAULT_GRACE_DAYS); }
                    label.check { input type="checkbox" name="confirm" value="yes" required; " I understand this tenant's data will be shredded at the deadline." }
                    button.danger type="submit" { "Offboard" }
                }
                Action::CancelOffboarding => {
                    h3 { "Cancel offboarding" }
                    label { "Note (optional) " input name="reason" maxlength="500" placeholder="customer renewed"; }
                    button type="submit" { "Cancel offboarding" }
                }
            }
        }
    }
}

/// A tenant's detail: config, pools, state and deadline, allowed actions, activity.
pub async fn view_tenant_get(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> PageResult {
    let id = tenant_id(&id)?;
    let now = state.clock().now();
    let registry = ctx.registry.clone();
    let principal = ctx.principal.clone();
    let (t, pools, entries, app, panels) = state
        .read(move |r| {
            let t = crate::tenants::queries::get(r, &id)?;
            let entries = ledger::browse(
                r,
                &AuditQuery {
                    chain: Some(ChainId::Tenant(id)),
                    limit: 50,
                    ..AuditQuery::default()
                },
            )?;
            let app = crate::apps::queries::get(r, &t.app_id).ok();
            // The sections other contexts add (members, API keys, visits).
            let panels = registry
                .tenant_panels()
                .iter()
                .map(|panel| panel(r, &id, &principal, now))
                .collect::<crate::error::Result<Vec<Markup>>>()?;
            Ok((
                t,
                crate::pools::queries::list(r)?,
                entries.items,
                app,
                panels,
            ))
        })
        .await
        .map_err(ConsoleError)?;
    let allowed = crate::tenants::model::allowed_actions(t.state, t.offboarding_from);
    let name = if t.display_name.is_empty() {
        "(shredded tenant)".to_string()
    } else {
        t.display_name.clone()
    };
    let chain = format!("tenant:{}", t.id);
    let body = html! {
        (header(&name, Some(&format!("{} · {} · tier {} · {}", t.slug, t.region, t.isolation_tier.as_str(), t.id)), html! {
            @if ctx.can(Permission::TenantsWrite) && !t.state.is_read_only() {
                a.button href={"/platform/tenants/" (t.id) "/edit"} { "Edit" }
            }
            a.button href={"/platform/audit?chain=" (urlencode(&chain))} { "Audit entries" }
            @if ctx.can(Permission::AuditExport) {
                a.button href={"/api/audit/export?chain=" (urlencode(&chain))} { "Export chain (NDJSON)" }
            }
        }))
        section.grid3 {
            div.card {
                h2 { "State" }
                p.big { (state_badge(t.state)) }
                dl {
                    dt { "Since" } dd { (when(t.state_since)) " (" (fmt::relative(t.state_since, now)) ")" }
                    @if let Some(r) = &t.state_reason { dt { "Reason" } dd { (r) } }
                    @if let Some(d) = t.deadline_at {
                        dt { "Deadline" } dd { (when(d)) br; strong { "Shredded " (fmt::countdown(d, now)) } }
                    }
                    @if let Some(e) = t.trial_ends_at { dt { "Trial ends" } dd { (when(e)) " (" (fmt::relative(e, now)) ")" } }
                    @if let Some(s) = t.shredded_at { dt { "Shredded" } dd { (when(s)) } }
                }
            }
            div.card {
                h2 { "Configuration" }
                dl {
                    dt { "App" } dd { (app.map_or_else(|| t.app_id.to_string(), |a| a.name)) }
                    dt { "Plan" } dd { (t.plan.as_deref().unwrap_or("—")) }
                    dt { "Primary contact" } dd { (t.contact_email.as_deref().unwrap_or("—")) }
                    dt { "Country" } dd { (t.country.as_deref().unwrap_or("—")) }
                    dt { "Brand domain" } dd { (t.brand_domain.as_deref().unwrap_or("—")) }
                    dt { "Trial length" } dd { (t.trial_days.map_or("—".to_string(), |d| format!("{d} days"))) }
                    dt { "Hierarchy depth" } dd { (t.hierarchy_depth.map_or("—".to_string(), |d| d.to_string())) }
                    dt { "Created" } dd { (when(t.created_at)) }
                    dt { "Updated" } dd { (when(t.updated_at)) }
                }
            }
            div.card {
                h2 { "Pools" }
                dl {
                    dt { "Admin pool" } dd { (pool_badge(&pools, &t.pools.admin)) }
                    @match &t.pools.app {
                        AppPools::Dedicated(p) => { dt { "App pool (dedicated)" } dd { (pool_badge(&pools, p)) } }
                        AppPools::Shared(m) => {
                            @for (module, p) in m { dt { "App pool · " (module) } dd { (pool_badge(&pools, p)) } }
                        }
                    }
                }
            }
        }
        section.card {
            h2 { "Lifecycle" }
            @if allowed.is_empty() {
                p.muted { "No lifecycle action is possible in state " (t.state.as_str()) "." }
            } @else if !ctx.can(Permission::TenantsLifecycle) {
                p.muted { "Allowed now: " (allowed.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")) ". Your role cannot run lifecycle actions." }
            } @else {
                div.actions-grid {
                    @for a in &allowed { (action_form(&ctx, &t, *a)) }
                }
            }
        }
        @for panel in &panels { (panel) }
        section.card {
            h2 { "Recent activity" }
            (crate::audit::views::feed(&entries, now))
        }
    };
    Ok(page(&ctx, &name, body))
}

/// A lifecycle form's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LifecycleForm {
    reason: String,
    grace_days: String,
    trial_days: String,
    confirm: String,
}

/// Runs a lifecycle action from the detail page.
pub async fn view_tenant_lifecycle_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<LifecycleForm>,
) -> PageResult {
    let id = tenant_id(&id)?;
    let action = Action::ALL
        .into_iter()
        .find(|a| a.as_str() == action)
        .ok_or_else(|| ConsoleError(Error::not_found("action", &action)))?;
    let back = format!("/platform/tenants/{id}");
    if action == Action::Offboard && (f.confirm != "yes" || f.reason.trim().is_empty()) {
        return Ok(redirect(
            &back,
            Tone::Critical,
            "Offboarding needs a reason and the confirmation box ticked. Nothing was changed.",
        ));
    }
    let mut bad = Vec::new();
    let req = TransitionDraft {
        reason: opt(&f.reason),
        grace_days: number("grace_days", &f.grace_days, &mut bad)
            .filter(|_| action == Action::Offboard),
        trial_days: number("trial_days", &f.trial_days, &mut bad)
            .filter(|_| action == Action::StartTrial),
    };
    if let Some(b) = bad.first() {
        return Ok(redirect(
            &back,
            Tone::Critical,
            &format!("{}: {}. Nothing was changed.", b.field, b.message),
        ));
    }
    let input = match req.parse(action) {
        Ok(i) => i,
        Err(e) => {
            return Ok(redirect(
                &back,
                Tone::Critical,
                &format!("{e}. Nothing was changed."),
            ));
        }
    };
    let ran = if action == Action::Offboard {
        super::guarded::offboard(&state, &ctx.principal, id, input).await
    } else {
        state
            .write(ctx.principal.actor.clone(), move |c| {
                service::transition(c, id, action, &input)
            })
            .await
            .map(Guarded::Done)
    };
    match ran {
        Ok(Guarded::Held(req)) => Ok(held(&back, &req)),
        Ok(Guarded::Done(t)) => {
            let done = match action {
                Action::StartTrial => "Trial started",
                Action::Activate => "Activated",
                Action::Suspend => "Suspended",
                Action::Reinstate => "Reinstated",
                Action::Offboard => "Offboarding started",
                Action::CancelOffboarding => "Offboarding cancelled",
            };
            let mut msg = format!("{done}: {} is now {}.", t.display_name, t.state.as_str());
            if let Some(d) = t.deadline_at {
                msg.push_str(&format!(
                    " Data is shredded at {}.",
                    d.format("%Y-%m-%d %H:%M UTC")
                ));
            }
            Ok(redirect(&back, Tone::Ok, &msg))
        }
        Err(
            e @ (Error::InvalidTransition { .. }
            | Error::TenantReadOnly { .. }
            | Error::Validation(_)),
        ) => Ok(redirect(
            &back,
            Tone::Critical,
            &format!("{e}. Nothing was changed."),
        )),
        Err(e) => Err(ConsoleError(e)),
    }
}

/// Back to `to` with a flash saying an approval route held the action.
fn held(to: &str, req: &crate::approvals::model::Request) -> axum::response::Response {
    redirect(
        to,
        Tone::Info,
        &format!(
            "Held for approval: \"{}\" needs {} approval(s) under route {} (request {}, Approvals page). Nothing was changed yet.",
            req.request.held.summary, req.request.required, req.request.route_name, req.id
        ),
    )
}

// ---- Edit ----

/// The edit form's fields.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct EditForm {
    display_name: String,
    contact_email: String,
    country: String,
    brand_domain: String,
    plan: String,
    trial_days: String,
    hierarchy_depth: String,
}

fn edit_form(
    ctx: &Ctx,
    t: &Tenant,
    f: &EditForm,
    errors: &HashMap<String, String>,
    plans: &[String],
) -> Markup {
    let err = |k: &str| errors.get(k).map(String::as_str);
    html! {
        (header(&format!("Edit {}", t.display_name), Some("Changes are recorded in the tenant's audit chain with a field diff."), html! {}))
        @if let Some(e) = err("form") { div.flash.critical role="alert" { (e) } }
        form.card.form method="post" action={"/platform/tenants/" (t.id) "/edit"} novalidate {
            (ctx.csrf())
            (field("Display name", "display_name", html! { input #display_name name="display_name" required value=(f.display_name); }, err("display_name"), None))
            (field("Primary contact email", "contact_email", html! { input #contact_email name="contact_email" type="email" value=(f.contact_email); }, err("contact_email"), Some("Empty clears it.")))
            (field("Country", "country", html! { input #country name="country" maxlength="2" value=(f.country); }, err("country"), None))
            (field("Brand domain", "brand_domain", html! { input #brand_domain name="brand_domain" value=(f.brand_domain); }, err("brand_domain"), None))
            (field("Plan", "plan", html! {
                select #plan name="plan" {
                    option value="" selected[f.plan.is_empty()] { "None" }
                    @for p in plans { option value=(p) selected[&f.plan == p] { (p) } }
                }
            }, err("plan"), None))
            (field("Trial length (days)", "trial_days", html! { input #trial_days name="trial_days" type="number" min="1" max="365" value=(f.trial_days); }, err("trial_days"), None))
            (field("Hierarchy depth", "hierarchy_depth", html! { input #hierarchy_depth name="hierarchy_depth" type="number" min="1" max="5" value=(f.hierarchy_depth); }, err("hierarchy_depth"), None))
            div.form-actions {
                button.primary type="submit" { "Save" }
                a href={"/platform/tenants/" (t.id)} { "Cancel" }
            }
        }
    }
}

/// The edit form, filled with the tenant's values.
pub async fn view_tenant_edit_get(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> PageResult {
    let id = tenant_id(&id)?;
    let t = state
        .read(move |r| crate::tenants::queries::get(r, &id))
        .await
        .map_err(ConsoleError)?;
    let f = EditForm {
        display_name: t.display_name.clone(),
        contact_email: t.contact_email.clone().unwrap_or_default(),
        country: t.country.clone().unwrap_or_default(),
        brand_domain: t.brand_domain.clone().unwrap_or_default(),
        plan: t.plan.clone().unwrap_or_default(),
        trial_days: t.trial_days.map(|d| d.to_string()).unwrap_or_default(),
        hierarchy_depth: t.hierarchy_depth.map(|d| d.to_string()).unwrap_or_default(),
    };
    let body = edit_form(&ctx, &t, &f, &HashMap::new(), &plan_codes(&state).await?);
    Ok(page(&ctx, "Edit tenant", body))
}

/// Saves the edit form (`tenant.updated.v1` with a field diff).
pub async fn view_tenant_edit_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(f): Form<EditForm>,
) -> PageResult {
    let id = tenant_id(&id)?;
    let mut extra = Vec::new();
    let patch = TenantChanges {
        display_name: Some(f.display_name.clone()),
        contact_email: Some(opt(&f.contact_email)),
        brand_domain: Some(opt(&f.brand_domain)),
        country: Some(opt(&f.country)),
        plan: Some(opt(&f.plan)),
        trial_days: number("trial_days", &f.trial_days, &mut extra),
        hierarchy_depth: number("hierarchy_depth", &f.hierarchy_depth, &mut extra),
    };
    let plans = plan_codes(&state).await?;
    let result = match patch.clone().parse(&plans) {
        Ok(_) if extra.is_empty() => {
            super::guarded::update(&state, &ctx.principal, id, patch).await
        }
        Ok(_) => Err(Error::Validation(extra)),
        Err(e) => Err(e),
    };
    match result {
        Ok(Guarded::Held(req)) => Ok(held(&format!("/platform/tenants/{id}"), &req)),
        Ok(Guarded::Done(t)) => Ok(redirect(
            &format!("/platform/tenants/{id}"),
            Tone::Ok,
            &format!("Saved {}.", t.display_name),
        )),
        Err(e @ (Error::Validation(_) | Error::TenantReadOnly { .. })) => {
            let t = state
                .read(move |r| crate::tenants::queries::get(r, &id))
                .await
                .map_err(ConsoleError)?;
            let errors = errors_by_field(&e);
            Ok(page_with_status(
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                "Edit tenant",
                edit_form(&ctx, &t, &f, &errors, &plans),
            ))
        }
        Err(e) => Err(ConsoleError(e)),
    }
}

/// The badge of a lifecycle state.
pub fn state_badge(s: TenantState) -> Markup {
    let tone = match s {
        TenantState::Active => Tone::Ok,
        TenantState::Trial | TenantState::Provisioned => Tone::Info,
        TenantState::Suspended | TenantState::Offboarding => Tone::Warn,
        TenantState::Offboarded => Tone::Neutral,
    };
    badge(tone, s.as_str())
}

/// The plan codes offered (the plan pickers and the parse of a plan).
async fn plan_codes(state: &AppState) -> Result<Vec<String>, ConsoleError> {
    state
        .read(crate::plans::queries::codes)
        .await
        .map_err(ConsoleError)
}
