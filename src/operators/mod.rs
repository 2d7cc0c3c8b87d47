//! Operators: accounts with roles (HQ PRD §2), operator tokens for automation, console sessions,
//! and sign-in throttling (PRODUCT.md D15).
//!
//! - [`model`]: types, stored records, username and password rules.
//! - [`service`]: rules and storage (inside write requests).
//! - [`throttle`]: failed sign-ins per username and client.
//! - [`api`]: `/api/operators` routes.
//!
//! The async functions here are the entry points shared by the API, the console and the CLI:
//! they hash passwords and make token secrets off the writer thread, then write.

pub mod api;
pub mod model;
pub mod queries;
pub mod service;
pub mod throttle;
pub mod views;

use uuid::Uuid;

use crate::actor::Actor;
use crate::error::{Error, Result, Validator};
use crate::rbac::Role;
use crate::state::AppState;
use model::{Operator, TokenInfo, check_password, parse_username};
use service::NewOperator;

use crate::http::context::{Context, NavItem};
use crate::rbac::{Access, Permission, Route};

/// The operators context: its routes, pages, permission entries, sidebar items and events.
pub const CONTEXT: Context = Context {
    name: "operators",
    tags: &[("operators", "Operator accounts and tokens")],
    api: api::router,
    views: views::router,
    routes: ROUTES,
    nav: &[NavItem::new(
        "/platform/operators",
        "Operators",
        Permission::OperatorsManage,
    )],
    events: &[
        "operator.created.v1",
        "operator.role_changed.v1",
        "operator.disabled.v1",
        "operator.enabled.v1",
        "operator.password_changed.v1",
        "operator.token.created.v1",
        "operator.token.revoked.v1",
        "operator.signed_in.v1",
        "operator.signed_out.v1",
        "operator.signin_failures.v1",
    ],
    ..Context::EMPTY
};

/// The permission entry of every route of this context.
const ROUTES: &[Route] = {
    use Access::*;
    use Permission::*;
    &[
        ("GET", "/api/operators", Requires(OperatorsManage)),
        ("POST", "/api/operators", Requires(OperatorsManage)),
        ("GET", "/api/operators/{id}", Requires(OperatorsManage)),
        (
            "POST",
            "/api/operators/{id}/role",
            Requires(OperatorsManage),
        ),
        (
            "POST",
            "/api/operators/{id}/disable",
            Requires(OperatorsManage),
        ),
        (
            "POST",
            "/api/operators/{id}/enable",
            Requires(OperatorsManage),
        ),
        (
            "GET",
            "/api/operators/{id}/tokens",
            Requires(OperatorsManage),
        ),
        (
            "POST",
            "/api/operators/{id}/tokens",
            Requires(OperatorsManage),
        ),
        (
            "POST",
            "/api/operators/{id}/tokens/{token_id}/revoke",
            Requires(OperatorsManage),
        ),
        ("GET", "/platform/operators", Requires(OperatorsManage)),
        ("POST", "/platform/operators", Requires(OperatorsManage)),
        (
            "POST",
            "/platform/operators/{id}/role",
            Requires(OperatorsManage),
        ),
        (
            "POST",
            "/platform/operators/{id}/disable",
            Requires(OperatorsManage),
        ),
        (
            "POST",
            "/platform/operators/{id}/enable",
            Requires(OperatorsManage),
        ),
        (
            "POST",
            "/platform/operators/{id}/tokens",
            Requires(OperatorsManage),
        ),
        (
            "POST",
            "/platform/operators/{id}/tokens/{token_id}/revoke",
            Requires(OperatorsManage),
        ),
        ("GET", "/platform/account", Requires(Read)),
        ("POST", "/platform/account/password", Requires(Read)),
    ]
};

/// A new operator, unchecked (the API body, the console form, the CLI).
#[derive(Clone, Debug, Default)]
pub struct OperatorDraft {
    /// 3–32 characters of `a-z 0-9 . _ -`.
    pub username: String,
    /// Human name; the username when absent.
    pub display_name: Option<String>,
    /// `super_admin`, `technical_admin`, `business_admin`, `compliance` or `support`.
    pub role: String,
    /// At least 12 characters.
    pub password: String,
}

/// Hashes a password on the password pool ([`crate::passwords`]).
///
/// Errors: 503 `busy`.
pub async fn hash(password: String) -> Result<String> {
    crate::passwords::hash(password).await
}

/// Validates, hashes the password, and creates the operator.
///
/// Errors: 422 `validation_failed` per field; 409 `username_taken`.
pub async fn add(state: &AppState, actor: Actor, req: OperatorDraft) -> Result<Operator> {
    let mut v = Validator::new();
    let username = v.take("username", parse_username(&req.username));
    let display_name = match req
        .display_name
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        Some(d) => v.take("display_name", crate::tenants::model::parse_display_name(d)),
        None => username.clone(),
    };
    let role = v.take("role", Role::parse(req.role.trim()));
    if let Err(m) = check_password(&req.password, username.as_deref().unwrap_or_default()) {
        v.add("password", m);
    }
    v.finish()?;
    let (Some(username), Some(display_name), Some(role)) = (username, display_name, role) else {
        return Err(Error::Internal("validated field missing".into()));
    };
    let password_hash = hash(req.password).await?;
    let input = NewOperator {
        username,
        display_name,
        role,
        password_hash,
    };
    state
        .write(actor, move |ctx| service::create(ctx, &input))
        .await
}

/// Changes a role (and ends the operator's sessions).
pub async fn set_role(state: &AppState, actor: Actor, who: &str, role: &str) -> Result<Operator> {
    let role = Role::parse(role.trim()).map_err(|m| Error::invalid("role", m))?;
    let id = resolve(state, who).await?;
    state
        .write(actor, move |ctx| service::set_role(ctx, &id, role))
        .await
}

/// Disables (and ends the sessions of) or re-enables an operator.
pub async fn set_disabled(
    state: &AppState,
    actor: Actor,
    who: &str,
    disabled: bool,
) -> Result<Operator> {
    let id = resolve(state, who).await?;
    state
        .write(actor, move |ctx| service::set_disabled(ctx, &id, disabled))
        .await
}

/// Sets a new password (ends the operator's sessions).
///
/// Errors: 422 for a weak password.
pub async fn set_password(
    state: &AppState,
    actor: Actor,
    who: &str,
    password: String,
) -> Result<Operator> {
    let id = resolve(state, who).await?;
    let op = state.read(move |r| queries::get(r, &id)).await?;
    check_password(&password, &op.username).map_err(|m| Error::invalid("password", m))?;
    let phc = hash(password).await?;
    state
        .write(actor, move |ctx| service::set_password(ctx, &id, &phc))
        .await
}

/// Creates a token for an operator; the secret is in the result and nowhere else.
///
/// Errors: 422 for a bad name; 404; 409 when the operator is disabled.
pub async fn create_token(
    state: &AppState,
    actor: Actor,
    who: &str,
    name: &str,
) -> Result<(String, TokenInfo)> {
    let name = name.trim().to_string();
    if name.is_empty() || name.chars().count() > 80 || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "name",
            "a token needs a name of 1-80 characters saying what it is for",
        ));
    }
    let id = resolve(state, who).await?;
    let token = service::new_token(state.clock().now())?;
    let secret = token.secret.clone();
    let info = state
        .write(actor, move |ctx| {
            service::create_token(ctx, &id, &name, &token)
        })
        .await?;
    Ok((secret, info))
}

/// Resolves a username or id.
pub async fn resolve(state: &AppState, who: &str) -> Result<Uuid> {
    let who = who.to_string();
    state.read(move |r| queries::resolve(r, &who)).await
}
