//! Control-plane pages (operator guide §9, "On-Prem installs"): the install registry, red for
//! silent, expired or contradicted installs; registering an install and handing out its signed
//! license; an install's detail (heartbeat history, witnessed audit heads, contradictions,
//! license renewal); and the air-gap bundle upload. The pages call the same functions as the
//! `/api/installs` routes. On an appliance they answer 404, like those routes.

use axum::Router;
use axum::extract::{Multipart, Path, Query, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use crate::console::fmt::{self, when};
use crate::console::layout::{
    Ctx, Tone, badge, empty, field, header, page, page_with_status, redirect,
};
use crate::console::{ConsoleError, PageResult, urlencode};
use crate::error::Error;
use crate::installs::model::InstallStatus;
use crate::installs::queries::{self, InstallView, InstallsFilter, PageFilter};
use crate::installs::service::{InstallDraft, LicenseDraft};
use crate::rbac::Permission;
use crate::state::AppState;

/// The installs pages (control plane).
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/platform/installs",
            get(view_installs_get).post(view_install_register_post),
        )
        .route(
            UPLOAD_PATH,
            post(view_bundle_upload_post).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/platform/installs/{id}", get(view_install_get))
        .route(
            "/platform/installs/{id}/license.json",
            get(view_install_license_get),
        )
        .route(
            "/platform/installs/{id}/licenses",
            post(view_install_renew_post),
        )
        .route(
            "/platform/installs/{id}/enrollment",
            post(view_install_enrollment_post),
        )
}

/// Path of the bundle upload form's target (its body limit is the bundle limit).
pub const UPLOAD_PATH: &str = "/platform/installs/bundles";

fn status_badge(v: &InstallView) -> Markup {
    let tone = match v.status {
        InstallStatus::Healthy => Tone::Ok,
        InstallStatus::Pending => Tone::Info,
        InstallStatus::Silent | InstallStatus::Expired => Tone::Critical,
    };
    html! {
        (badge(tone, v.status.as_str()))
        @if v.witness.contradictions > 0 { " " (badge(Tone::Critical, "chain rewritten")) }
    }
}

fn install_id(id: &str) -> Result<uuid::Uuid, ConsoleError> {
    crate::ids::parse_uuid(id).ok_or_else(|| ConsoleError(Error::not_found("install", id)))
}

/// The registry's filters.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RegistryFilter {
    status: String,
    alert: String,
    cursor: String,
}

fn forms(ctx: &Ctx, f: &RegisterForm, error: Option<&str>) -> Markup {
    html! {
        @if ctx.can(Permission::InstallsManage) {
            div.grid2 {
                form.card.form method="post" action="/platform/installs" novalidate {
                    h2 { "Register an install" }
                    p.small.muted { "Issues a signed license for a customer's on-prem or sovereign install. Give it to the customer as their license_file." }
                    @if let Some(e) = error { div.flash.critical role="alert" { (e) } }
                    (ctx.csrf())
                    (field("Customer", "customer", html! { input #customer name="customer" required maxlength="200" value=(f.customer); }, None, None))
                    (field("License expires", "expires_at", html! { input #expires_at name="expires_at" type="date" value=(f.expires_at); }, None, Some("One year from today when empty.")))
                    (field("Most tenants", "max_tenants", html! { input #max_tenants name="max_tenants" type="number" min="1" value=(f.max_tenants); }, None, Some("Empty: no limit.")))
                    (field("Install public key", "install_public_key", html! { input #install_public_key name="install_public_key" value=(f.install_public_key) placeholder="base64, from the appliance's /api/audit/public-key"; }, None, Some("Binds the license to that key. Empty: an enrollment secret is shown once; the appliance's first heartbeat proves its key with it.")))
                    label.check { input type="checkbox" name="air_gapped" value="yes" checked[f.air_gapped == "yes"]; " Air-gapped: heartbeats only as bundle files" }
                    div.form-actions { button.primary type="submit" { "Register and issue license" } }
                }
                form.card.form method="post" action=(UPLOAD_PATH) enctype="multipart/form-data" {
                    h2 { "Import a heartbeat bundle" }
                    p.small.muted { "From an air-gapped install: the file written by tenantry heartbeat export. Every signature is checked; an altered bundle is refused whole; importing twice changes nothing." }
                    (ctx.csrf())
                    (field("Bundle file", "bundle", html! { input #bundle name="bundle" type="file" required accept=".json,application/json"; }, None, None))
                    div.form-actions { button.primary type="submit" { "Import bundle" } }
                }
            }
        }
    }
}

/// The registry.
pub async fn view_installs_get(
    State(state): State<AppState>,
    ctx: Ctx,
    RawQuery(raw): RawQuery,
    Query(f): Query<RegistryFilter>,
) -> PageResult {
    registry(
        &state,
        &ctx,
        raw,
        &f,
        &RegisterForm::default(),
        None,
        StatusCode::OK,
    )
    .await
}

async fn registry(
    state: &AppState,
    ctx: &Ctx,
    raw: Option<String>,
    f: &RegistryFilter,
    form: &RegisterForm,
    error: Option<&str>,
    status: StatusCode,
) -> PageResult {
    let q = InstallsFilter {
        status: Some(f.status.clone()).filter(|s| !s.is_empty()),
        alert: (f.alert == "yes").then_some(true),
        limit: Some(50),
        cursor: Some(f.cursor.clone()).filter(|c| !c.is_empty()),
    };
    let list = queries::list(state, q).await.map_err(ConsoleError)?;
    let now = state.clock().now();
    let base = crate::console::without_cursor(raw);
    let body = html! {
        (header("Installs", Some("On-prem and sovereign installs that report to this control plane. Red: silent, expired, or its audit chain contradicts what it reported before."), html! {}))
        form.filters method="get" action="/platform/installs" role="search" {
            div.field.inline {
                label for="status" { "Status" }
                select #status name="status" {
                    option value="" selected[f.status.is_empty()] { "Any" }
                    @for s in ["pending", "healthy", "silent", "expired"] { option value=(s) selected[f.status == s] { (s) } }
                }
            }
            label.check { input type="checkbox" name="alert" value="yes" checked[f.alert == "yes"]; " Only red" }
            div.field.inline.buttons { button type="submit" { "Filter" } a href="/platform/installs" { "Reset" } }
        }
        @if list.items.is_empty() {
            (empty("No install matches.", html! { @if ctx.can(Permission::InstallsManage) { "Register one below." } }))
        } @else {
            div.table-wrap { table {
                thead { tr {
                    th scope="col" { "Customer" } th scope="col" { "Status" } th scope="col" { "Last seen" } th scope="col" { "Version" }
                    th scope="col" { "LLM probe" } th scope="col" { "License" } th scope="col" { "Heartbeats" }
                } }
                tbody {
                    @for i in &list.items {
                        tr class=[i.alert.then_some("broken")] {
                            td { a href={"/platform/installs/" (i.install_id)} { (i.customer) } br; span.small.muted { code { (i.install_id) } } }
                            td { (status_badge(i)) @if i.air_gapped { br; span.small.muted { "air-gapped" } } }
                            td { @if let Some(t) = i.last_seen_at { (fmt::relative(t, now)) } @else { span.muted { "never" } } }
                            td { (i.version.as_deref().unwrap_or("—")) }
                            td { @if let Some(p) = &i.llm_probe { (p.status) br; span.small.muted { (fmt::relative(p.checked_at, now)) } } @else { span.muted { "not run" } } }
                            td { "expires " (fmt::relative(i.expires_at, now)) br; span.small.muted { (i.limits.max_tenants.map_or("no tenant limit".to_string(), |m| format!("up to {m} tenants"))) } }
                            td { (i.heartbeats_received) @if i.missing_seqs > 0 { br; span.small { (i.missing_seqs) " missing" } } }
                        }
                    }
                }
            } }
            nav.pager aria-label="Pages" {
                @if !f.cursor.is_empty() { a href={"/platform/installs?" (base)} { "← First page" } }
                @if let Some(c) = &list.next_cursor { a href={"/platform/installs?" (base) @if !base.is_empty() { "&" } "cursor=" (urlencode(c))} { "Next page →" } }
            }
        }
        (forms(ctx, form, error))
    };
    Ok(page_with_status(ctx, status, "Installs", body))
}

/// The register form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RegisterForm {
    customer: String,
    expires_at: String,
    max_tenants: String,
    install_public_key: String,
    air_gapped: String,
}

fn expiry(date: &str) -> Result<Option<String>, Error> {
    let d = date.trim();
    if d.is_empty() {
        return Ok(None);
    }
    if chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok() {
        return Ok(Some(format!("{d}T23:59:59Z")));
    }
    Err(Error::invalid(
        "expires_at",
        format!("'{d}' is not a date (YYYY-MM-DD)"),
    ))
}

fn limits(max: &str) -> Result<Option<i64>, Error> {
    let m = max.trim();
    if m.is_empty() {
        return Ok(None);
    }
    let n: i64 = m
        .parse()
        .map_err(|_| Error::invalid("max_tenants", format!("'{m}' is not a whole number")))?;
    Ok(Some(n))
}

fn license_page(
    ctx: &Ctx,
    title: &str,
    id: uuid::Uuid,
    license: &serde_json::Value,
    enrollment_secret: Option<&str>,
    intro: &str,
) -> Response {
    let text = serde_json::to_string_pretty(license).unwrap_or_default();
    let body = html! {
        (header(title, Some(intro), html! {
            a.button.primary href={"/platform/installs/" (id) "/license.json"} { "Download license.json" }
            a.button href={"/platform/installs/" (id)} { "Open the install" }
        }))
        div.verdict.ok role="status" {
            p { "Give this file to the customer. On the appliance, set " code { "[control_plane] license_file" } " to its path and " code { "license_public_key" } " to this control plane's key (" code { "GET /api/license/public-key" } ")." }
        }
        @if let Some(secret) = enrollment_secret {
            div.verdict.critical role="status" {
                p { strong { "Enrollment secret, shown only now: " } code #enrollment-secret { (secret) } }
                p { "Give it to the customer apart from the license, for the appliance's " code { "[control_plane] enrollment_secret" } ". Its first heartbeat proves the install's key with it, which uses it up. Only a verifier is stored: if it is lost, issue a new one from the install's page." }
            }
        }
        pre { code { (text) } }
    };
    page(ctx, title, body)
}

/// Registers an install and shows its license.
pub async fn view_install_register_post(
    State(state): State<AppState>,
    ctx: Ctx,
    axum::Form(f): axum::Form<RegisterForm>,
) -> PageResult {
    let built = (|| -> Result<InstallDraft, Error> {
        Ok(InstallDraft {
            customer: f.customer.clone(),
            air_gapped: Some(f.air_gapped == "yes"),
            expires_at: expiry(&f.expires_at)?,
            max_tenants: limits(&f.max_tenants)?,
            features: None,
            install_public_key: Some(f.install_public_key.trim().to_string())
                .filter(|k| !k.is_empty()),
        })
    })();
    let result = match built {
        Ok(body) => crate::installs::register(&state, ctx.principal.actor.clone(), body).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(r) => Ok(license_page(
            &ctx,
            &format!("{} registered", f.customer.trim()),
            r.install_id,
            &r.license,
            r.enrollment_secret.as_deref(),
            "Its signed license is below.",
        )),
        Err(e @ Error::Validation(_)) => {
            let msg = e.to_string();
            registry(
                &state,
                &ctx,
                None,
                &RegistryFilter::default(),
                &f,
                Some(&msg),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => Err(ConsoleError(e)),
    }
}

/// An install's detail.
pub async fn view_install_get(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> PageResult {
    let id = install_id(&id)?;
    let d = queries::detail(&state, id).await.map_err(ConsoleError)?;
    let beats = queries::heartbeats(
        &state,
        id,
        PageFilter {
            limit: Some(20),
            cursor: None,
        },
    )
    .await
    .map_err(ConsoleError)?;
    let heads = queries::audit_heads(
        &state,
        id,
        PageFilter {
            limit: Some(50),
            cursor: None,
        },
    )
    .await
    .map_err(ConsoleError)?;
    let now = state.clock().now();
    let i = &d.install;
    let body = html! {
        (header(&i.customer, Some(&format!("Install {} · license {}", i.install_id, i.license_id)), html! {
            a.button href={"/platform/installs/" (i.install_id) "/license.json"} { "Download license.json" }
        }))
        @if i.alert {
            div.verdict.critical role="alert" {
                (status_badge(i))
                p {
                    @match i.status {
                        InstallStatus::Silent => { "No heartbeat since " (i.last_seen_at.map(|t| fmt::relative(t, now)).unwrap_or_default()) ". Check the appliance's sync page and its network path to this control plane." }
                        InstallStatus::Expired => { "Its license expired " (fmt::relative(i.expires_at, now)) ": the appliance refuses new tenants until it gets a new one (renew below)." }
                        _ => {}
                    }
                    @if i.witness.contradictions > 0 { " Its audit heads contradict what it reported earlier: its ledger was rewritten on site." }
                }
            }
        }
        section.grid3 {
            div.card {
                h2 { "Status" }
                p.big { (status_badge(i)) }
                dl {
                    dt { "Last seen" } dd { @if let Some(t) = i.last_seen_at { (when(t)) } @else { "never" } }
                    dt { "Version" } dd { (i.version.as_deref().unwrap_or("—")) }
                    dt { "Heartbeats" } dd { (i.heartbeats_received) " received, last seq " (i.last_seq) @if i.missing_seqs > 0 { ", " strong { (i.missing_seqs) " missing" } } }
                    dt { "LLM probe" } dd { @if let Some(p) = &i.llm_probe { (p.status) " · " (fmt::relative(p.checked_at, now)) } @else { "not run" } }
                    @if let Some(h) = &i.health {
                        dt { "Health" } dd { @if h.store_ok { (badge(Tone::Ok, "store ok")) } @else { (badge(Tone::Critical, "store failing")) } " " (h.failed_jobs_24h) " failed jobs (24 h)" }
                    }
                }
            }
            div.card {
                h2 { "License" }
                dl {
                    dt { "Expires" } dd { (when(i.expires_at)) " (" (fmt::relative(i.expires_at, now)) ")" }
                    dt { "Limits" } dd { (i.limits.max_tenants.map_or("no tenant limit".to_string(), |m| format!("up to {m} tenants"))) }
                    dt { "Air-gapped" } dd { (if i.air_gapped { "yes: bundles only" } else { "no" }) }
                    dt { "Install key" } dd { @if let Some(k) = &i.install_key_id { code.small { (k.get(..16).unwrap_or(k)) "…" } } @else { "not bound yet" } }
                    @if let Some(e) = &d.enrollment {
                        dt { "Enrollment" } dd { "secret issued " (when(e.issued_at)) ", not used yet" }
                    }
                }
                @if ctx.can(Permission::InstallsManage) {
                    form.form method="post" action={"/platform/installs/" (i.install_id) "/licenses"} {
                        (ctx.csrf())
                        (field("New expiry", "renew_expires", html! { input #renew_expires name="expires_at" type="date"; }, None, Some("One year from today when empty.")))
                        (field("Most tenants", "renew_max", html! { input #renew_max name="max_tenants" type="number" min="1" placeholder=(i.limits.max_tenants.map(|m| m.to_string()).unwrap_or_default()); }, None, Some("Empty: keep the current limit.")))
                        button type="submit" { "Issue a new license" }
                    }
                    @if i.install_key_id.is_none() {
                        form.form method="post" action={"/platform/installs/" (i.install_id) "/enrollment"} {
                            (ctx.csrf())
                            p.small.muted { "The key is bound by the first heartbeat that proves it with the enrollment secret. A new secret (with a new license naming it) replaces the one given before." }
                            button type="submit" { "Issue a new enrollment secret" }
                        }
                    }
                }
            }
            div.card {
                h2 { "Tenants reported" }
                @if let Some(t) = &i.tenants {
                    dl { @for (state_name, n) in t { dt { (state_name) } dd { (n) } } }
                } @else { p.muted { "No heartbeat yet." } }
            }
        }
        @if !d.contradictions.is_empty() {
            section.card {
                h2 { "Witness contradictions" }
                div.table-wrap { table {
                    thead { tr { th scope="col" { "Chain" } th scope="col" { "Kind" } th scope="col" { "Witnessed" } th scope="col" { "Reported later" } th scope="col" { "Found" } } }
                    tbody {
                        @for c in &d.contradictions {
                            tr.broken {
                                td { (c.chain) }
                                td { (badge(Tone::Critical, &format!("{:?}", c.kind).to_lowercase())) }
                                td { "seq " (c.witnessed_seq) " " code.small { (c.witnessed_hash.get(..12).unwrap_or("")) "…" } br; span.small.muted { "heartbeat " (c.witnessed_in_heartbeat) } }
                                td { "seq " (c.reported_seq) " " code.small { (c.reported_hash.get(..12).unwrap_or("")) "…" } br; span.small.muted { "heartbeat " (c.reported_in_heartbeat) } }
                                td { (when(c.detected_at)) }
                            }
                        }
                    }
                } }
            }
        }
        section.grid2 {
            div.card {
                h2 { "Heartbeat history" }
                @if beats.items.is_empty() { p.muted { "No heartbeat received yet." } } @else {
                    table {
                        thead { tr { th scope="col" { "Seq" } th scope="col" { "Sent" } th scope="col" { "Received" } th scope="col" { "Via" } th scope="col" { "Heads" } } }
                        tbody {
                            @for b in &beats.items {
                                tr {
                                    td { (b.seq) }
                                    td { (b.sent_at.as_deref().map(|s| s.get(..19).unwrap_or(s).replace('T', " ")).unwrap_or_default()) }
                                    td { (fmt::relative(b.received_at, now)) }
                                    td { (format!("{:?}", b.via).to_lowercase()) }
                                    td { (b.audit_heads) }
                                }
                            }
                        }
                    }
                }
            }
            div.card {
                h2 { "Witnessed audit heads" }
                p.small.muted { "The highest head this control plane has seen for each of the install's chains: an export of the appliance's ledger must still contain them." }
                @if heads.items.is_empty() { p.muted { "None yet." } } @else {
                    table {
                        thead { tr { th scope="col" { "Chain" } th scope="col" { "Seq" } th scope="col" { "Hash" } th scope="col" { "Seen" } } }
                        tbody {
                            @for h in &heads.items {
                                tr { td { (h.chain) } td { (h.seq) } td { code.small { (h.hash.get(..16).unwrap_or("")) "…" } } td { (fmt::relative(h.witnessed_at, now)) } }
                            }
                        }
                    }
                    @if heads.next_cursor.is_some() { p.small.muted { "More chains: GET /api/installs/" (i.install_id) "/audit-heads" } }
                }
            }
        }
    };
    Ok(page(&ctx, &i.customer, body))
}

/// The install's signed license as a file.
pub async fn view_install_license_get(
    State(state): State<AppState>,
    _ctx: Ctx,
    Path(id): Path<String>,
) -> PageResult {
    let id = install_id(&id)?;
    let d = queries::detail(&state, id).await.map_err(ConsoleError)?;
    let text = serde_json::to_string_pretty(&d.license)
        .map_err(|e| ConsoleError(Error::Internal(e.to_string())))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"license-{id}.json\""),
            ),
        ],
        text,
    )
        .into_response())
}

/// The renewal form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RenewForm {
    expires_at: String,
    max_tenants: String,
}

/// Issues a new license and shows it.
pub async fn view_install_renew_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<RenewForm>,
) -> PageResult {
    let id = install_id(&id)?;
    let back = format!("/platform/installs/{id}");
    let body = match (expiry(&f.expires_at), limits(&f.max_tenants)) {
        (Ok(expires_at), Ok(limits)) => LicenseDraft {
            expires_at,
            limits: limits.map(Some),
            features: None,
        },
        (Err(e), _) | (_, Err(e)) => {
            return Ok(redirect(
                &back,
                Tone::Critical,
                &format!("{e}. Nothing was changed."),
            ));
        }
    };
    match crate::installs::renew(&state, ctx.principal.actor.clone(), id, body).await {
        Ok(r) => Ok(license_page(
            &ctx,
            "New license issued",
            r.install_id,
            &r.license,
            None,
            "Heartbeats sent under the previous license stay acceptable.",
        )),
        Err(e @ Error::Validation(_)) => Ok(redirect(
            &back,
            Tone::Critical,
            &format!("{e}. Nothing was changed."),
        )),
        Err(e) => Err(ConsoleError(e)),
    }
}

/// Issues a new enrollment secret and a license naming it, and shows both once.
pub async fn view_install_enrollment_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> PageResult {
    let id = install_id(&id)?;
    match crate::installs::reissue_enrollment(&state, ctx.principal.actor.clone(), id).await {
        Ok(r) => Ok(license_page(
            &ctx,
            "New enrollment secret issued",
            r.install_id,
            &r.license,
            r.enrollment_secret.as_deref(),
            "The previous secret no longer binds a key; the new license names the new secret.",
        )),
        Err(e @ Error::Conflict { .. }) => Ok(redirect(
            &format!("/platform/installs/{id}"),
            Tone::Critical,
            &format!("{e}. Nothing was changed."),
        )),
        Err(e) => Err(ConsoleError(e)),
    }
}

/// Imports an uploaded bundle.
pub async fn view_bundle_upload_post(
    State(state): State<AppState>,
    ctx: Ctx,
    mut form: Multipart,
) -> PageResult {
    let mut bytes = None;
    loop {
        match form.next_field().await {
            Ok(Some(field)) if field.name() == Some("bundle") => {
                bytes = Some(field.bytes().await.map_err(|e| {
                    ConsoleError(Error::bad_request(
                        crate::error::BAD_REQUEST,
                        format!("reading the upload: {e}"),
                    ))
                })?);
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                return Ok(redirect(
                    "/platform/installs",
                    Tone::Critical,
                    &format!("The upload could not be read: {e}"),
                ));
            }
        }
    }
    let Some(bytes) = bytes.filter(|b| !b.is_empty()) else {
        return Ok(redirect(
            "/platform/installs",
            Tone::Critical,
            "Choose the bundle file to import.",
        ));
    };
    match crate::installs::import_bundle(&state, ctx.principal.actor.clone(), bytes.to_vec()).await
    {
        Ok(r) => Ok(redirect(
            &format!("/platform/installs/{}", r.install_id),
            if r.contradictions > 0 {
                Tone::Critical
            } else {
                Tone::Ok
            },
            &format!(
                "Bundle imported: {} new heartbeat(s), {} already here, up to seq {}{}. On the appliance, run: tenantry heartbeat ack --through {}",
                r.accepted,
                r.duplicates,
                r.last_seq,
                if r.contradictions > 0 {
                    format!("; {} witness contradiction(s)", r.contradictions)
                } else {
                    String::new()
                },
                r.last_seq
            ),
        )),
        Err(e) if e.is_client_safe() => Ok(redirect(
            "/platform/installs",
            Tone::Critical,
            &format!("The bundle was refused as a whole: {e}"),
        )),
        Err(e) => Err(ConsoleError(e)),
    }
}
