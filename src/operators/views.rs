//! Operator pages: `/platform/operators` (super_admin: accounts, roles, disabling, and operator
//! tokens; a new token is shown once, on the page that created it, and never again) and
//! `/platform/account` (who you are, and changing your own password).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{Markup, html};
use serde::Deserialize;

use crate::console::fmt::when;
use crate::console::layout::{Ctx, Tone, badge, field, header, page, page_with_status, redirect};
use crate::console::{ConsoleError, PageResult};
use crate::error::Error;
use crate::operators::model::{Operator, TokenInfo};
use crate::operators::{self as ops, OperatorDraft, service};
use crate::rbac::Role;
use crate::state::AppState;

/// The operator pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/platform/operators",
            get(view_operators_get).post(view_operator_create_post),
        )
        .route(
            "/platform/operators/{id}/role",
            post(view_operator_role_post),
        )
        .route(
            "/platform/operators/{id}/disable",
            post(view_operator_disable_post),
        )
        .route(
            "/platform/operators/{id}/enable",
            post(view_operator_enable_post),
        )
        .route(
            "/platform/operators/{id}/tokens",
            post(view_operator_token_post),
        )
        .route(
            "/platform/operators/{id}/tokens/{token_id}/revoke",
            post(view_operator_token_revoke_post),
        )
        .route("/platform/account", get(view_account_get))
        .route(
            "/platform/account/password",
            post(view_account_password_post),
        )
}

/// The new-operator form.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct OperatorForm {
    username: String,
    display_name: String,
    role: String,
    password: String,
}

struct View {
    operators: Vec<(Operator, Vec<TokenInfo>)>,
}

async fn load(state: &AppState) -> Result<View, ConsoleError> {
    let operators = state
        .read(|r| {
            super::queries::list(r)?
                .into_iter()
                .map(|o| {
                    let t = super::queries::tokens(r, &o.id)?;
                    Ok((o, t))
                })
                .collect::<crate::error::Result<Vec<_>>>()
        })
        .await
        .map_err(ConsoleError)?;
    Ok(View { operators })
}

fn role_select(id: &str, current: Role) -> Markup {
    html! {
        select id=(id) name="role" {
            @for r in Role::ALL { option value=(r.as_str()) selected[r == current] { (r.as_str()) } }
        }
    }
}

fn body(
    ctx: &Ctx,
    v: &View,
    f: &OperatorForm,
    errors: &HashMap<String, String>,
    new_token: Option<(&str, &str)>,
) -> Markup {
    let err = |k: &str| errors.get(k).map(String::as_str);
    html! {
        (header("Operators", Some("Platform staff and their roles. Role changes and disabling end the operator's sessions at once."), html! {}))
        @if let Some((who, secret)) = new_token {
            div.verdict.ok role="status" {
                p { "New token for " strong { (who) } ". Copy it now: it is shown only once and only its hash is stored." }
                pre.token { code { (secret) } }
            }
        }
        @if v.operators.is_empty() {
            (crate::console::layout::empty("No operator account yet: only the admin ops token can act.", html! { "Create the first operator below." }))
        }
        div.table-wrap { table {
            thead { tr {
                th scope="col" { "Operator" } th scope="col" { "Role" } th scope="col" { "Status" } th scope="col" { "Last sign-in" } th scope="col" { "Tokens" } th scope="col" { "Actions" }
            } }
            tbody {
                @for (o, tokens) in &v.operators {
                    tr {
                        td { strong { (o.display_name) } br; span.muted.small { (o.username) } }
                        td {
                            form.inline-form method="post" action={"/platform/operators/" (o.id) "/role"} {
                                (ctx.csrf())
                                label.sr-only for={"role-" (o.id)} { "Role of " (o.username) }
                                (role_select(&format!("role-{}", o.id), o.role))
                                button type="submit" { "Change" }
                            }
                        }
                        td { @if o.disabled { (badge(Tone::Critical, "disabled")) } @else { (badge(Tone::Ok, "active")) } }
                        td { @if let Some(t) = o.last_sign_in_at { (when(t)) } @else { span.muted { "never" } } }
                        td {
                            @for t in tokens {
                                div.small {
                                    code { (t.prefix) "…" } " " (t.name)
                                    form.inline-form method="post" action={"/platform/operators/" (o.id) "/tokens/" (t.id) "/revoke"} {
                                        (ctx.csrf())
                                        button.link type="submit" { "revoke" }
                                    }
                                }
                            }
                            @if !o.disabled {
                                form.inline-form method="post" action={"/platform/operators/" (o.id) "/tokens"} {
                                    (ctx.csrf())
                                    label.sr-only for={"token-" (o.id)} { "Token name" }
                                    input id={"token-" (o.id)} name="name" required maxlength="80" placeholder="token name";
                                    button type="submit" { "New token" }
                                }
                            }
                        }
                        td {
                            @if o.disabled {
                                form method="post" action={"/platform/operators/" (o.id) "/enable"} { (ctx.csrf()) button type="submit" { "Enable" } }
                            } @else {
                                form method="post" action={"/platform/operators/" (o.id) "/disable"} data-confirm={"Disable " (o.username) "? Their sessions end now."} {
                                    (ctx.csrf()) button.danger type="submit" { "Disable" }
                                }
                            }
                        }
                    }
                }
            }
        } }
        form.card.form method="post" action="/platform/operators" novalidate {
            h2 { "New operator" }
            @if let Some(e) = err("form") { div.flash.critical role="alert" { (e) } }
            (ctx.csrf())
            (field("Username", "username", html! { input #username name="username" required value=(f.username) autocomplete="off"; }, err("username"), Some("3–32 characters: a-z, 0-9, '.', '_', '-'.")))
            (field("Display name", "display_name", html! { input #display_name name="display_name" value=(f.display_name); }, err("display_name"), None))
            (field("Role", "role", role_select("role", Role::parse(&f.role).unwrap_or(Role::Support)), err("role"),
                Some("support: read-only · compliance: audit verify and export · business_admin: apps, tenants, lifecycle · technical_admin: pools and jobs · super_admin: everything")))
            (field("Initial password", "password", html! { input #password name="password" type="password" required minlength="12" autocomplete="new-password"; }, err("password"), Some("At least 12 characters. The operator can change it under Account.")))
            div.form-actions { button.primary type="submit" { "Create operator" } }
        }
    }
}

fn render(
    ctx: &Ctx,
    status: StatusCode,
    v: &View,
    f: &OperatorForm,
    errors: &HashMap<String, String>,
    token: Option<(&str, &str)>,
) -> axum::response::Response {
    page_with_status(ctx, status, "Operators", body(ctx, v, f, errors, token))
}

/// The operators page.
pub async fn view_operators_get(State(state): State<AppState>, ctx: Ctx) -> PageResult {
    let v = load(&state).await?;
    Ok(render(
        &ctx,
        StatusCode::OK,
        &v,
        &OperatorForm::default(),
        &HashMap::new(),
        None,
    ))
}

/// Creates an operator.
pub async fn view_operator_create_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(f): Form<OperatorForm>,
) -> PageResult {
    let req = OperatorDraft {
        username: f.username.clone(),
        display_name: Some(f.display_name.clone()),
        role: f.role.clone(),
        password: f.password.clone(),
    };
    match ops::add(&state, ctx.principal.actor.clone(), req).await {
        Ok(o) => Ok(redirect(
            "/platform/operators",
            Tone::Ok,
            &format!(
                "Operator {} created with role {}.",
                o.username,
                o.role.as_str()
            ),
        )),
        Err(e @ (Error::Validation(_) | Error::Conflict { .. })) => {
            let errors = crate::console::field_errors(&e, "username");
            let v = load(&state).await?;
            let kept = OperatorForm {
                password: String::new(),
                ..f
            };
            Ok(render(
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                &v,
                &kept,
                &errors,
                None,
            ))
        }
        Err(e) => Err(ConsoleError(e)),
    }
}

fn outcome(r: crate::error::Result<Operator>, done: &str) -> PageResult {
    match r {
        Ok(o) => Ok(redirect(
            "/platform/operators",
            Tone::Ok,
            &format!("{} {done}.", o.username),
        )),
        Err(e @ (Error::Conflict { .. } | Error::Validation(_) | Error::NotFound { .. })) => Ok(
            redirect("/platform/operators", Tone::Critical, &e.to_string()),
        ),
        Err(e) => Err(ConsoleError(e)),
    }
}

/// The role form.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct RoleForm {
    role: String,
}

/// Changes a role.
pub async fn view_operator_role_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(f): Form<RoleForm>,
) -> PageResult {
    outcome(
        ops::set_role(&state, ctx.principal.actor.clone(), &id, &f.role).await,
        "has a new role; their sessions ended",
    )
}

/// Disables an operator.
pub async fn view_operator_disable_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> PageResult {
    outcome(
        ops::set_disabled(&state, ctx.principal.actor.clone(), &id, true).await,
        "is disabled; their sessions ended and their tokens stopped working",
    )
}

/// Re-enables an operator.
pub async fn view_operator_enable_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> PageResult {
    outcome(
        ops::set_disabled(&state, ctx.principal.actor.clone(), &id, false).await,
        "is enabled again",
    )
}

/// The token form.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct TokenForm {
    name: String,
}

/// Creates a token and shows it once.
pub async fn view_operator_token_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(f): Form<TokenForm>,
) -> PageResult {
    match ops::create_token(&state, ctx.principal.actor.clone(), &id, &f.name).await {
        Ok((secret, info)) => {
            let v = load(&state).await?;
            let who = v
                .operators
                .iter()
                .find(|(o, _)| o.id == info.operator_id)
                .map_or_else(String::new, |(o, _)| {
                    format!("{} ({})", o.username, info.name)
                });
            Ok(render(
                &ctx,
                StatusCode::OK,
                &v,
                &OperatorForm::default(),
                &HashMap::new(),
                Some((&who, &secret)),
            ))
        }
        Err(e @ (Error::Conflict { .. } | Error::Validation(_) | Error::NotFound { .. })) => Ok(
            redirect("/platform/operators", Tone::Critical, &e.to_string()),
        ),
        Err(e) => Err(ConsoleError(e)),
    }
}

/// Revokes a token.
pub async fn view_operator_token_revoke_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, token_id)): Path<(String, String)>,
) -> PageResult {
    let op = ops::resolve(&state, &id).await.map_err(ConsoleError)?;
    let token = crate::ids::parse_uuid(&token_id)
        .ok_or_else(|| ConsoleError(Error::not_found("token", &token_id)))?;
    match state
        .write(ctx.principal.actor.clone(), move |c| {
            service::revoke_token(c, &op, &token)
        })
        .await
    {
        Ok(()) => Ok(redirect("/platform/operators", Tone::Ok, "Token revoked.")),
        Err(e @ Error::NotFound { .. }) => Ok(redirect(
            "/platform/operators",
            Tone::Critical,
            &e.to_string(),
        )),
        Err(e) => Err(ConsoleError(e)),
    }
}

/// The account page.
pub async fn view_account_get(State(state): State<AppState>, ctx: Ctx) -> PageResult {
    let op = match ctx.principal.operator_id() {
        Some(id) => Some(
            state
                .read(move |r| super::queries::get(r, &id))
                .await
                .map_err(ConsoleError)?,
        ),
        None => None,
    };
    let body = html! {
        (header("Account", None, html! {}))
        div.card {
            dl {
                dt { "Name" } dd { (ctx.principal.display_name) }
                dt { "Role" } dd { (ctx.principal.label()) }
                @if let Some(o) = &op {
                    dt { "Username" } dd { (o.username) }
                    dt { "Last sign-in" } dd { @if let Some(t) = o.last_sign_in_at { (when(t)) } }
                }
                @if let Some(s) = &ctx.principal.session {
                    dt { "Session started" } dd { (when(s.created_at)) }
                }
            }
        }
        @if op.is_some() {
            form.card.form method="post" action="/platform/account/password" {
                h2 { "Change password" }
                (ctx.csrf())
                (field("Current password", "current", html! { input #current name="current" type="password" required autocomplete="current-password"; }, None, None))
                (field("New password", "new", html! { input #new name="new" type="password" required minlength="12" autocomplete="new-password"; }, None, Some("At least 12 characters. Changing it signs you out everywhere.")))
                div.form-actions { button.primary type="submit" { "Change password" } }
            }
        }
    };
    Ok(page(&ctx, "Account", body))
}

/// The password form.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct PasswordForm {
    current: String,
    new: String,
}

/// Changes the signed-in operator's password after checking the current one.
pub async fn view_account_password_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(f): Form<PasswordForm>,
) -> PageResult {
    let Some(id) = ctx.principal.operator_id() else {
        return Ok(redirect(
            "/platform/account",
            Tone::Critical,
            "Only operator accounts have a password.",
        ));
    };
    let rec = state
        .read(move |r| super::queries::by_username(r, &super::queries::get(r, &id)?.username))
        .await
        .map_err(ConsoleError)?;
    let phc = rec.map(|(_, r)| r.password_hash);
    let current = f.current.clone();
    let ok = crate::passwords::verify(current, phc)
        .await
        .map_err(ConsoleError)?;
    if !ok {
        return Ok(redirect(
            "/platform/account",
            Tone::Critical,
            "The current password is wrong. Nothing was changed.",
        ));
    }
    match crate::operators::set_password(
        &state,
        ctx.principal.actor.clone(),
        &id.to_string(),
        f.new,
    )
    .await
    {
        Ok(_) => Ok(redirect(
            "/signin",
            Tone::Ok,
            "Password changed. Sign in again.",
        )),
        Err(e @ Error::Validation(_)) => Ok(redirect(
            "/platform/account",
            Tone::Critical,
            &e.to_string(),
        )),
        Err(e) => Err(ConsoleError(e)),
    }
}
