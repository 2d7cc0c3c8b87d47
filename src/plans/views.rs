//! `/platform/plans`: the plans, and creating one.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Form, Router};
use maud::{Markup, html};
use serde::Deserialize;

use super::model::{Plan, PlanDraft};
use super::{queries, service};
use crate::console::fmt::money;
use crate::console::layout::{Ctx, Tone, field, header, page, page_with_status, redirect};
use crate::console::{ConsoleError, PageResult};
use crate::error::Error;
use crate::rbac::Permission;
use crate::state::AppState;

/// The plans page.
pub fn router() -> Router<AppState> {
    Router::new().route("/platform/plans", get(view_plans_get).post(view_plans_post))
}

/// The new-plan form.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct PlanForm {
    code: String,
    name: String,
    amount_minor: String,
    currency: String,
    interval: String,
    trial_days: String,
    features: String,
}

fn body(ctx: &Ctx, plans: &[Plan], f: &PlanForm, errors: &HashMap<String, String>) -> Markup {
    let err = |k: &str| errors.get(k).map(String::as_str);
    html! {
        (header("Plans", Some("Plan templates: recurring price, trial, features and limits. Metered usage is priced by pricing catalogs."), html! {}))
        div.table-wrap { table {
            thead { tr { th scope="col" { "Plan" } th scope="col" { "Price" } th scope="col" { "Trial" } th scope="col" { "Features" } th scope="col" { "Limits" } th scope="col" { "Included" } } }
            tbody {
                @for p in plans {
                    tr {
                        td { strong { (p.name) } br; code.small { (p.code) } }
                        td { (money(p.amount_minor, &p.currency)) " / " (p.interval.as_str()) }
                        td { @if p.trial_days > 0 { (p.trial_days) " days" } @else { "—" } }
                        td { (p.features.join(", ")) }
                        td {
                            "personas: " (p.limits.max_personas.map_or("unlimited".to_string(), |n| n.to_string()))
                            br; "API keys: " (p.limits.max_api_keys.map_or("unlimited".to_string(), |n| n.to_string()))
                        }
                        td { @for (sku, q) in &p.limits.included { code { (sku) } " " (q) br; } }
                    }
                }
            }
        } }
        @if ctx.can(Permission::BillingManage) {
            form.card.form method="post" action="/platform/plans" novalidate {
                h2 { "New plan" }
                (ctx.csrf())
                (field("Code", "code", html! { input #code name="code" required maxlength="32" value=(f.code); }, err("code"), Some("a-z, 0-9, '_' and '-', e.g. team")))
                (field("Name", "name", html! { input #name name="name" required maxlength="80" value=(f.name); }, err("name"), None))
                (field("Price (minor units)", "amount_minor", html! { input #amount_minor name="amount_minor" inputmode="numeric" value=(f.amount_minor); }, err("amount_minor"), Some("4900 is 49.00")))
                (field("Currency", "currency", html! { input #currency name="currency" maxlength="3" value=(if f.currency.is_empty() { "USD" } else { &f.currency }); }, err("currency"), None))
                (field("Interval", "interval", html! { select #interval name="interval" { option value="month" selected[f.interval != "year"] { "month" } option value="year" selected[f.interval == "year"] { "year" } } }, err("interval"), None))
                (field("Trial days", "trial_days", html! { input #trial_days name="trial_days" inputmode="numeric" value=(f.trial_days); }, err("trial_days"), None))
                (field("Features", "features", html! { input #features name="features" value=(f.features); }, err("features"), Some("Flag keys separated by commas.")))
                div.form-actions { button.primary type="submit" { "Create plan" } }
            }
        }
    }
}

async fn list(state: &AppState) -> Result<Vec<Plan>, ConsoleError> {
    state.read(queries::list).await.map_err(ConsoleError)
}

/// The plans page.
pub async fn view_plans_get(State(state): State<AppState>, ctx: Ctx) -> PageResult {
    let plans = list(&state).await?;
    Ok(page(
        &ctx,
        "Plans",
        body(&ctx, &plans, &PlanForm::default(), &HashMap::new()),
    ))
}

/// Creates a plan (`plan.created.v1`).
pub async fn view_plans_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(f): Form<PlanForm>,
) -> PageResult {
    let mut bad = HashMap::new();
    let amount = f.amount_minor.trim().parse::<i64>().unwrap_or_else(|_| {
        bad.insert(
            "amount_minor".to_string(),
            "give a whole number of minor units".to_string(),
        );
        0
    });
    let trial = if f.trial_days.trim().is_empty() {
        Ok(0)
    } else {
        f.trial_days.trim().parse::<i64>()
    };
    let draft = PlanDraft {
        code: f.code.clone(),
        name: f.name.clone(),
        amount_minor: amount,
        currency: f.currency.clone(),
        interval: if f.interval.is_empty() {
            "month".into()
        } else {
            f.interval.clone()
        },
        trial_days: trial.unwrap_or(-1),
        features: f
            .features
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        ..PlanDraft::default()
    };
    let result = match draft.parse() {
        Ok(input) if bad.is_empty() => {
            state
                .write(ctx.principal.actor.clone(), move |c| {
                    service::create(c, &input)
                })
                .await
        }
        Ok(_) => Err(Error::invalid(
            "amount_minor",
            "give a whole number of minor units",
        )),
        Err(e) => Err(e),
    };
    match result {
        Ok(p) => Ok(redirect(
            "/platform/plans",
            Tone::Ok,
            &format!("Plan {} created.", p.name),
        )),
        Err(e @ (Error::Validation(_) | Error::Conflict { .. })) => {
            let mut errors = crate::console::field_errors(&e, "code");
            errors.extend(bad);
            let plans = list(&state).await?;
            Ok(page_with_status(
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                "Plans",
                body(&ctx, &plans, &f, &errors),
            ))
        }
        Err(e) => Err(ConsoleError(e)),
    }
}
