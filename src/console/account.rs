//! `/platform/account`: who you are, and changing your own password.

use axum::Form;
use axum::extract::State;
use maud::html;
use serde::Deserialize;

use super::fmt::when;
use super::layout::{Ctx, Tone, field, header, page, redirect};
use super::{ConsoleError, PageResult};
use crate::app::AppState;
use crate::error::Error;
use crate::operators::service;

/// The account page.
pub async fn view_account_get(State(state): State<AppState>, ctx: Ctx) -> PageResult {
    let op = match ctx.principal.operator_id {
        Some(id) => Some(
            state
                .read(move |r| service::get(r, &id))
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
                dt { "Role" } dd { (ctx.principal.role.as_str()) }
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
#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
}

/// Changes the signed-in operator's password after checking the current one.
pub async fn view_account_password_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Form(f): Form<PasswordForm>,
) -> PageResult {
    let Some(id) = ctx.principal.operator_id else {
        return Ok(redirect(
            "/platform/account",
            Tone::Critical,
            "Only operator accounts have a password.",
        ));
    };
    let rec = state
        .read(move |r| service::by_username(r, &service::get(r, &id)?.username))
        .await
        .map_err(ConsoleError)?;
    let phc = rec.map(|(_, r)| r.password_hash);
    let current = f.current.clone();
    let ok =
        tokio::task::spawn_blocking(move || service::verify_password(&current, phc.as_deref()))
            .await
            .unwrap_or(false);
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
