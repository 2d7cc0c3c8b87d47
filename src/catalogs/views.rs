//! `/platform/catalogs`: the catalogs list (and creating one), and a version's page with its
//! rate table and status flip; the tenant detail's "Pricing" panel.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::model::{Catalog, RateDraft, Status, Version, parse_catalog, parse_rates};
use super::{queries, service};
use crate::console::fmt::{money, when};
use crate::console::layout::{
    Ctx, Tone, badge, empty, field, header, page, page_with_status, redirect,
};
use crate::console::{ConsoleError, PageResult};
use crate::error::{Error, Result};
use crate::rbac::{Permission, Principal};
use crate::state::AppState;
use crate::store::ReadCtx;

/// The catalogs pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/platform/catalogs",
            get(view_catalogs_get).post(view_catalogs_post),
        )
        .route(
            "/platform/catalogs/{id}/versions/{v}",
            get(view_version_get),
        )
        .route(
            "/platform/catalogs/{id}/versions/{v}/rates",
            post(view_rate_post),
        )
        .route(
            "/platform/catalogs/{id}/versions/{v}/{action}",
            post(view_flip_post),
        )
}

/// One rate as a form (a single tier; the API takes graduated tiers).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct RateForm {
    name: String,
    currency: String,
    sku: String,
    unit: String,
    unit_amount_minor: String,
    per_units: String,
    soft_cap: String,
}

impl RateForm {
    fn draft(&self) -> std::result::Result<RateDraft, Error> {
        let num = |f: &str, s: &str| -> std::result::Result<Option<u64>, Error> {
            let t = s.trim();
            if t.is_empty() {
                return Ok(None);
            }
            t.parse::<u64>()
                .map(Some)
                .map_err(|_| Error::invalid(f, format!("{f} must be a whole number")))
        };
        let amount = num("unit_amount_minor", &self.unit_amount_minor)?.unwrap_or(0);
        Ok(RateDraft {
            sku: self.sku.clone(),
            unit: if self.unit.trim().is_empty() {
                self.sku.clone()
            } else {
                self.unit.clone()
            },
            per_units: num("per_units", &self.per_units)?,
            tiers: vec![(None, i64::try_from(amount).unwrap_or(i64::MAX))],
            soft_cap: num("soft_cap", &self.soft_cap)?,
        })
    }
}

fn rate_fields(f: &RateForm, errors: &HashMap<String, String>) -> Markup {
    let err = |k: &str| errors.get(k).map(String::as_str);
    html! {
        (field("SKU", "sku", html! { input #sku name="sku" required maxlength="32" value=(f.sku) placeholder="api_call"; }, err("sku"), None))
        (field("Unit", "unit", html! { input #unit name="unit" maxlength="32" value=(f.unit) placeholder="api_call"; }, err("unit"), Some("Defaults to the SKU.")))
        (field("Price (minor units)", "unit_amount_minor", html! { input #unit_amount_minor name="unit_amount_minor" inputmode="numeric" value=(f.unit_amount_minor); }, err("unit_amount_minor"), Some("Per 'per units' units.")))
        (field("Per units", "per_units", html! { input #per_units name="per_units" inputmode="numeric" value=(f.per_units) placeholder="1"; }, err("per_units"), Some("2 per 1000 is 0.002 minor units a unit.")))
        (field("Soft cap per period", "soft_cap", html! { input #soft_cap name="soft_cap" inputmode="numeric" value=(f.soft_cap); }, err("soft_cap"), Some("Crossing it warns; it never blocks.")))
    }
}

fn list_body(
    ctx: &Ctx,
    rows: &[(Catalog, Vec<Version>)],
    f: &RateForm,
    errors: &HashMap<String, String>,
) -> Markup {
    let err = |k: &str| errors.get(k).map(String::as_str);
    html! {
        (header("Pricing catalogs", Some("Versioned SKU rate tables. Published versions are immutable: clone, edit, publish, then migrate tenants."), html! {}))
        @if rows.is_empty() {
            (empty("No catalog yet.", html! { "Create one below." }))
        } @else {
            div.table-wrap { table {
                thead { tr { th scope="col" { "Catalog" } th scope="col" { "Currency" } th scope="col" { "Versions" } th scope="col" { "Created" } } }
                tbody {
                    @for (c, versions) in rows {
                        tr {
                            td { strong { (c.name) } br; code.small { (c.id) } }
                            td { (c.currency) }
                            td { @for v in versions {
                                a href={"/platform/catalogs/" (c.id) "/versions/" (v.version)} { "v" (v.version) } " " (status_badge(v.status)) " "
                            } }
                            td { (when(c.created_at)) }
                        }
                    }
                }
            } }
        }
        @if ctx.can(Permission::BillingManage) {
            form.card.form method="post" action="/platform/catalogs" novalidate {
                h2 { "New catalog" }
                @if let Some(e) = err("form") { div.flash.critical role="alert" { (e) } }
                (ctx.csrf())
                (field("Name", "name", html! { input #name name="name" required maxlength="80" value=(f.name); }, err("name"), None))
                (field("Currency", "currency", html! { input #currency name="currency" maxlength="3" value=(if f.currency.is_empty() { "USD" } else { &f.currency }); }, err("currency"), None))
                p.muted { "Its first SKU (add more on the draft's page):" }
                (rate_fields(f, errors))
                div.form-actions { button.primary type="submit" { "Create catalog (draft v1)" } }
            }
        }
    }
}

fn status_badge(s: Status) -> Markup {
    let tone = match s {
        Status::Draft => Tone::Info,
        Status::Published => Tone::Ok,
        Status::Archived => Tone::Neutral,
    };
    badge(tone, s.as_str())
}

async fn catalogs(
    state: &AppState,
) -> std::result::Result<Vec<(Catalog, Vec<Version>)>, ConsoleError> {
    state
        .read(|r| {
            let mut out = Vec::new();
            for c in queries::list(r)? {
                let v = queries::versions(r, &c.id)?;
                out.push((c, v));
            }
            Ok(out)
        })
        .await
        .map_err(ConsoleError)
}

/// The catalogs list.
pub async fn view_catalogs_get(State(state): State<AppState>, ctx: Ctx) -> PageResult {
    let rows = catalogs(&state).await?;
    Ok(page(
        &ctx,
        "Catalogs",
        list_body(&ctx, &rows, &RateForm::default(), &HashMap::new()),
    ))
}

/// Creates a catalog with one SKU (`catalog.created.v1`).
pub async fn view_catalogs_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(f): Form<RateForm>,
) -> PageResult {
    let parsed =
        parse_catalog(&f.name, &f.currency).and_then(|nc| Ok((nc, parse_rates(vec![f.draft()?])?)));
    let result = match parsed {
        Ok(((name, currency), rates)) => state
            .write(ctx.principal.actor.clone(), move |c| {
                service::create(c, &name, &currency, &rates)
            })
            .await
            .map(|(c, _)| c),
        Err(e) => Err(e),
    };
    match result {
        Ok(c) => Ok(redirect(
            &format!("/platform/catalogs/{}/versions/1", c.id),
            Tone::Ok,
            &format!("Catalog {} created as draft v1.", c.name),
        )),
        Err(e @ Error::Validation(_)) => {
            let errors = crate::console::field_errors(&e, "form");
            let rows = catalogs(&state).await?;
            Ok(page_with_status(
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                "Catalogs",
                list_body(&ctx, &rows, &f, &errors),
            ))
        }
        Err(e) => Err(ConsoleError(e)),
    }
}

fn ids(id: &str, v: &str) -> std::result::Result<(Uuid, u32), ConsoleError> {
    let c =
        crate::ids::parse_uuid(id).ok_or_else(|| ConsoleError(Error::not_found("catalog", id)))?;
    let n = v
        .parse::<u32>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| ConsoleError(Error::not_found("catalog version", v)))?;
    Ok((c, n))
}

fn version_body(
    ctx: &Ctx,
    c: &Catalog,
    v: &Version,
    pinned: u64,
    f: &RateForm,
    errors: &HashMap<String, String>,
) -> Markup {
    let err = |k: &str| errors.get(k).map(String::as_str);
    let base = format!("/platform/catalogs/{}/versions/{}", c.id, v.version);
    html! {
        (header(&format!("{} v{}", c.name, v.version), Some("The rate table of one version. Amounts are minor units."), html! { (status_badge(v.status)) }))
        p {
            (pinned) " tenant" @if pinned != 1 { "s" } " pinned."
            @if let Some(from) = v.cloned_from { " Cloned from v" (from) "." }
            @if let Some(at) = v.published_at { " Published " (when(at)) "." }
            " " a href="/platform/catalogs" { "All catalogs" }
        }
        div.table-wrap { table {
            thead { tr { th scope="col" { "SKU" } th scope="col" { "Unit" } th scope="col" { "Tiers (graduated)" } th scope="col" { "Soft cap / period" } } }
            tbody {
                @for r in &v.rates {
                    tr {
                        td { code { (r.sku) } }
                        td { (r.unit) }
                        td { @for t in &r.tiers {
                            (t.up_to.map_or("and beyond".to_string(), |u| format!("up to {u}"))) ": "
                            (money(t.unit_amount_minor, &c.currency)) @if r.per_units > 1 { " per " (r.per_units) } br;
                        } }
                        td { (r.soft_cap.map_or("—".to_string(), |c| c.to_string())) }
                    }
                }
            }
        } }
        @if ctx.can(Permission::BillingManage) {
            div.card {
                h2 { "Status" }
                @match v.status {
                    Status::Draft => {
                        form method="post" action={(base) "/publish"} { (ctx.csrf()) button.primary type="submit" { "Publish (makes it immutable)" } }
                    }
                    Status::Published => {
                        form method="post" action={(base) "/clone"} { (ctx.csrf()) button type="submit" { "Clone into a new draft" } }
                        form method="post" action={(base) "/archive"} { (ctx.csrf()) button type="submit" { "Archive" } }
                    }
                    Status::Archived => { p.muted { "Archived: kept for the invoices it priced." } }
                }
            }
            @if v.status == Status::Draft {
                form.card.form method="post" action={(base) "/rates"} novalidate {
                    h2 { "Set a SKU's rate" }
                    @if let Some(e) = err("form") { div.flash.critical role="alert" { (e) } }
                    (ctx.csrf())
                    (rate_fields(f, errors))
                    div.form-actions { button.primary type="submit" { "Save rate" } }
                }
            }
        }
    }
}

async fn load_version(
    state: &AppState,
    id: Uuid,
    v: u32,
) -> std::result::Result<(Catalog, Version, u64), ConsoleError> {
    state
        .read(move |r| {
            Ok((
                queries::get(r, &id)?,
                queries::version(r, &id, v)?,
                queries::pinned_count(r, &id, v)?,
            ))
        })
        .await
        .map_err(ConsoleError)
}

/// A version's page.
pub async fn view_version_get(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, v)): Path<(String, String)>,
) -> PageResult {
    let (id, v) = ids(&id, &v)?;
    let (c, ver, n) = load_version(&state, id, v).await?;
    Ok(page(
        &ctx,
        "Catalogs",
        version_body(&ctx, &c, &ver, n, &RateForm::default(), &HashMap::new()),
    ))
}

/// Sets one SKU's rate on a draft (`catalog.version.updated.v1`).
pub async fn view_rate_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, v)): Path<(String, String)>,
    Form(f): Form<RateForm>,
) -> PageResult {
    let (id, n) = ids(&id, &v)?;
    let (c, ver, pinned) = load_version(&state, id, n).await?;
    let mut drafts: Vec<RateDraft> = ver
        .rates
        .iter()
        .filter(|r| r.sku != f.sku.trim())
        .map(|r| RateDraft {
            sku: r.sku.clone(),
            unit: r.unit.clone(),
            per_units: Some(r.per_units),
            tiers: r
                .tiers
                .iter()
                .map(|t| (t.up_to, t.unit_amount_minor))
                .collect(),
            soft_cap: r.soft_cap,
        })
        .collect();
    let result = match f.draft() {
        Ok(d) => {
            drafts.push(d);
            match parse_rates(drafts) {
                Ok(rates) => state
                    .write(ctx.principal.actor.clone(), move |w| {
                        service::edit(w, &id, n, &rates)
                    })
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    let base = format!("/platform/catalogs/{id}/versions/{n}");
    match result {
        Ok(()) => Ok(redirect(&base, Tone::Ok, "Rate saved.")),
        Err(e @ (Error::Validation(_) | Error::Conflict { .. })) => {
            let errors = crate::console::field_errors(&e, "form");
            Ok(page_with_status(
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                "Catalogs",
                version_body(&ctx, &c, &ver, pinned, &f, &errors),
            ))
        }
        Err(e) => Err(ConsoleError(e)),
    }
}

/// Publishes, archives or clones a version.
pub async fn view_flip_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, v, action)): Path<(String, String, String)>,
) -> PageResult {
    let (id, n) = ids(&id, &v)?;
    let actor = ctx.principal.actor.clone();
    let result = match action.as_str() {
        "publish" => {
            state
                .write(actor, move |w| service::publish(w, &id, n))
                .await
        }
        "archive" => {
            state
                .write(actor, move |w| service::archive(w, &id, n))
                .await
        }
        "clone" => state.write(actor, move |w| service::clone(w, &id, n)).await,
        _ => Err(Error::not_found("action", &action)),
    };
    match result {
        Ok(ver) => Ok(redirect(
            &format!("/platform/catalogs/{id}/versions/{}", ver.version),
            Tone::Ok,
            &format!("Version {} is {}.", ver.version, ver.status.as_str()),
        )),
        Err(e @ Error::Conflict { .. }) => Ok(redirect(
            &format!("/platform/catalogs/{id}/versions/{n}"),
            Tone::Critical,
            &e.to_string(),
        )),
        Err(e) => Err(ConsoleError(e)),
    }
}

/// The tenant detail's "Pricing" panel: the pinned version and overrides.
pub fn tenant_panel(
    r: &ReadCtx,
    tenant: &Uuid,
    _p: &Principal,
    _now: DateTime<Utc>,
) -> Result<Markup> {
    let pinned = queries::pinned_version(r, tenant)?;
    Ok(html! {
        section.card #pricing {
            h2 { "Pricing" }
            @match &pinned {
                None => {
                    p.muted { "Not pinned to a catalog version: its usage events are rejected (no_catalog) until an operator pins it (PUT /api/tenants/{id}/catalog)." }
                }
                Some((pin, c, v)) => {
                    p {
                        "Priced by " a href={"/platform/catalogs/" (c.id) "/versions/" (v.version)} { (c.name) " v" (v.version) }
                        " since " (when(pin.since)) "."
                    }
                    @if !pin.soft_caps.is_empty() {
                        p { "Soft-cap overrides: " @for (sku, cap) in &pin.soft_caps { code { (sku) } " " (cap) " " } }
                    }
                }
            }
        }
    })
}
