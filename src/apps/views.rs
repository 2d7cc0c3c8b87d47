//! `/platform/apps`: the parent product surfaces, and creating one.

use axum::Router;
use axum::routing::get;
use std::collections::HashMap;

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use maud::{Markup, html};
use serde::Deserialize;

use super::model::{App, AppDraft};
use super::{queries, service};
use crate::console::fmt::when;
use crate::console::layout::{Ctx, Tone, empty, field, header, page, page_with_status, redirect};
use crate::console::{ConsoleError, PageResult};
use crate::error::Error;
use crate::rbac::Permission;
use crate::state::AppState;

/// The apps page.
pub fn router() -> Router<AppState> {
    Router::new().route("/platform/apps", get(view_apps_get).post(view_apps_post))
}

/// The new-app form.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct AppForm {
    name: String,
    slug: String,
    description: String,
}

fn body(ctx: &Ctx, apps: &[App], f: &AppForm, errors: &HashMap<String, String>) -> Markup {
    let err = |k: &str| errors.get(k).map(String::as_str);
    html! {
        (header("Apps", Some("The parent product surfaces. Every tenant belongs to one."), html! {}))
        @if apps.is_empty() {
            (empty("No app yet.", html! { @if ctx.can(Permission::AppsWrite) { "Create the first one below." } }))
        } @else {
            div.table-wrap { table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Slug" } th scope="col" { "Description" } th scope="col" { "Created" } th scope="col" { "Tenants" } } }
                tbody {
                    @for a in apps {
                        tr {
                            td { strong { (a.name) } br; span.muted.small { code { (a.id) } } }
                            td { (a.slug) }
                            td { (a.description.as_deref().unwrap_or("—")) }
                            td { (when(a.created_at)) }
                            td { a href={"/platform/tenants?app_id=" (a.id)} { "View tenants" } }
                        }
                    }
                }
            } }
        }
        @if ctx.can(Permission::AppsWrite) {
            form.card.form method="post" action="/platform/apps" novalidate {
                h2 { "New app" }
                @if let Some(e) = err("form") { div.flash.critical role="alert" { (e) } }
                (ctx.csrf())
                (field("Name", "name", html! { input #name name="name" required maxlength="120" value=(f.name); }, err("name"), None))
                (field("Slug", "slug", html! { input #slug name="slug" maxlength="63" value=(f.slug); }, err("slug"), Some("Leave empty to derive it from the name.")))
                (field("Description", "description", html! { textarea #description name="description" maxlength="1000" rows="2" { (f.description) } }, err("description"), None))
                div.form-actions { button.primary type="submit" { "Create app" } }
            }
        }
    }
}

async fn list(state: &AppState) -> Result<Vec<App>, ConsoleError> {
    state
        .read(|r| Ok(queries::list(r, None, crate::store::page::MAX_LIMIT)?.items))
        .await
        .map_err(ConsoleError)
}

/// The apps page.
pub async fn view_apps_get(State(state): State<AppState>, ctx: Ctx) -> PageResult {
    let apps = list(&state).await?;
    Ok(page(
        &ctx,
        "Apps",
        body(&ctx, &apps, &AppForm::default(), &HashMap::new()),
    ))
}

/// Creates an app (`app.created.v1`).
pub async fn view_apps_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(f): Form<AppForm>,
) -> PageResult {
    let req = AppDraft {
        name: f.name.clone(),
        slug: Some(f.slug.clone()),
        description: Some(f.description.clone()),
        role_templates: None,
    };
    let result = match req.parse() {
        Ok(input) => {
            state
                .write(ctx.principal.actor.clone(), move |c| {
                    service::create(c, &input)
                })
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(a) => Ok(redirect(
            "/platform/apps",
            Tone::Ok,
            &format!("App {} created.", a.name),
        )),
        Err(e @ (Error::Validation(_) | Error::Conflict { .. })) => {
            let errors = crate::console::field_errors(&e, "slug");
            let apps = list(&state).await?;
            Ok(page_with_status(
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                "Apps",
                body(&ctx, &apps, &f, &errors),
            ))
        }
        Err(e) => Err(ConsoleError(e)),
    }
}
