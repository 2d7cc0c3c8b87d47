//! `/api/operators` routes: operator accounts and their tokens, for `super_admin`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{OperatorDraft, model, service};
use crate::error::Error;
use crate::http::extract::{ApiJson, Caller};
use crate::http::problem::{ApiResult, Problem};
use crate::rbac::Role;
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(operators_list, operators_create))
        .routes(routes!(operators_get))
        .routes(routes!(operators_set_role))
        .routes(routes!(operators_disable))
        .routes(routes!(operators_enable))
        .routes(routes!(operators_tokens_list, operators_tokens_create))
        .routes(routes!(operators_tokens_revoke))
}

/// A platform operator (PRODUCT.md D15; HQ PRD §2).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Operator {
    /// UUIDv7.
    pub id: Uuid,
    /// Sign-in name: 3–32 characters of `a-z 0-9 . _ -`.
    pub username: String,
    /// Human name.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// Disabled operators cannot sign in, and their sessions and tokens stop working at once.
    pub disabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Last successful sign-in.
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

impl From<model::Operator> for Operator {
    fn from(o: model::Operator) -> Operator {
        Operator {
            id: o.id,
            username: o.username,
            display_name: o.display_name,
            role: o.role,
            disabled: o.disabled,
            created_at: o.created_at,
            updated_at: o.updated_at,
            last_sign_in_at: o.last_sign_in_at,
        }
    }
}

/// An operator token as listed (never the secret).
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    /// Token id.
    pub id: Uuid,
    /// The operator it acts as.
    pub operator_id: Uuid,
    /// What it is for, e.g. `ci-pipeline`.
    pub name: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// The first characters of the token, to recognise it (`tnt_AbCd…`).
    pub prefix: String,
}

impl From<model::TokenInfo> for TokenInfo {
    fn from(t: model::TokenInfo) -> TokenInfo {
        TokenInfo {
            id: t.id,
            operator_id: t.operator_id,
            name: t.name,
            created_at: t.created_at,
            prefix: t.prefix,
        }
    }
}

crate::string_enum_schema!(Role, "An operator role (HQ PRD §2).");

/// `POST /api/operators` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOperatorRequest {
    /// 3–32 characters of `a-z 0-9 . _ -`.
    pub username: String,
    /// Human name; the username when absent.
    pub display_name: Option<String>,
    /// `super_admin`, `technical_admin`, `business_admin`, `compliance` or `support`.
    pub role: String,
    /// At least 12 characters.
    pub password: String,
}

/// Operators.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OperatorList {
    /// In creation order.
    pub items: Vec<Operator>,
    /// Always null: operators are few.
    pub next_cursor: Option<String>,
}

/// Lists operators.
#[utoipa::path(get, path = "/api/operators", tag = "operators", responses((status = 200, body = OperatorList)))]
async fn operators_list(State(s): State<AppState>) -> ApiResult<Json<OperatorList>> {
    let items = s.read(super::queries::list).await?;
    Ok(Json(OperatorList {
        items: items.into_iter().map(Operator::from).collect(),
        next_cursor: None,
    }))
}

/// Creates an operator (writes `operator.created.v1`).
#[utoipa::path(post, path = "/api/operators", tag = "operators", request_body = NewOperatorRequest,
    responses((status = 201, body = Operator), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn operators_create(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiJson(body): ApiJson<NewOperatorRequest>,
) -> ApiResult<(StatusCode, Json<Operator>)> {
    Ok((
        StatusCode::CREATED,
        Json(
            super::add(
                &s,
                p.actor,
                OperatorDraft {
                    username: body.username,
                    display_name: body.display_name,
                    role: body.role,
                    password: body.password,
                },
            )
            .await?
            .into(),
        ),
    ))
}

/// An operator with its tokens.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OperatorDetail {
    /// The operator.
    #[serde(flatten)]
    pub operator: Operator,
    /// Its tokens (never the secrets).
    pub tokens: Vec<TokenInfo>,
}

/// One operator, by id or username.
#[utoipa::path(get, path = "/api/operators/{id}", tag = "operators", params(("id" = String, Path, description = "Operator id or username")),
    responses((status = 200, body = OperatorDetail), (status = 404, body = Problem)))]
async fn operators_get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<OperatorDetail>> {
    let id = super::resolve(&s, &id).await?;
    let (operator, tokens) = s
        .read(move |r| {
            Ok((
                super::queries::get(r, &id)?,
                super::queries::tokens(r, &id)?,
            ))
        })
        .await?;
    Ok(Json(OperatorDetail {
        operator: operator.into(),
        tokens: tokens.into_iter().map(TokenInfo::from).collect(),
    }))
}

/// A role change.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    /// The new role.
    pub role: String,
}

/// Changes an operator's role; their sessions end at once (`operator.role_changed.v1`).
#[utoipa::path(post, path = "/api/operators/{id}/role", tag = "operators", params(("id" = String, Path, description = "Operator id or username")),
    request_body = RoleRequest,
    responses((status = 200, body = Operator), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn operators_set_role(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RoleRequest>,
) -> ApiResult<Json<Operator>> {
    Ok(Json(
        super::set_role(&s, p.actor, &id, &body.role).await?.into(),
    ))
}

/// Disables an operator: sessions end and tokens stop working at once (`operator.disabled.v1`).
#[utoipa::path(post, path = "/api/operators/{id}/disable", tag = "operators", params(("id" = String, Path, description = "Operator id or username")),
    responses((status = 200, body = Operator), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn operators_disable(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Operator>> {
    Ok(Json(
        super::set_disabled(&s, p.actor, &id, true).await?.into(),
    ))
}

/// Re-enables an operator (`operator.enabled.v1`).
#[utoipa::path(post, path = "/api/operators/{id}/enable", tag = "operators", params(("id" = String, Path, description = "Operator id or username")),
    responses((status = 200, body = Operator), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn operators_enable(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Operator>> {
    Ok(Json(
        super::set_disabled(&s, p.actor, &id, false).await?.into(),
    ))
}

/// Tokens of an operator.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenList {
    /// Tokens (never the secrets).
    pub items: Vec<TokenInfo>,
    /// Always null.
    pub next_cursor: Option<String>,
}

/// Lists an operator's tokens.
#[utoipa::path(get, path = "/api/operators/{id}/tokens", tag = "operators", params(("id" = String, Path, description = "Operator id or username")),
    responses((status = 200, body = TokenList), (status = 404, body = Problem)))]
async fn operators_tokens_list(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TokenList>> {
    let id = super::resolve(&s, &id).await?;
    let items = s.read(move |r| super::queries::tokens(r, &id)).await?;
    Ok(Json(TokenList {
        items: items.into_iter().map(TokenInfo::from).collect(),
        next_cursor: None,
    }))
}

/// A new token's name.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// What the token is for, e.g. `ci-pipeline`.
    pub name: String,
}

/// A created token: the secret appears here once and is stored only as a hash.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// The bearer token (`tnt_…`); shown once.
    pub token: String,
    /// Its listing.
    #[serde(flatten)]
    pub info: TokenInfo,
}

/// Creates a token that acts with the operator's role (`operator.token.created.v1`).
#[utoipa::path(post, path = "/api/operators/{id}/tokens", tag = "operators", params(("id" = String, Path, description = "Operator id or username")),
    request_body = TokenRequest,
    responses((status = 201, body = CreatedToken), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn operators_tokens_create(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let (token, info) = super::create_token(&s, p.actor, &id, &body.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token,
            info: info.into(),
        }),
    ))
}

/// Revokes a token at once (`operator.token.revoked.v1`).
#[utoipa::path(post, path = "/api/operators/{id}/tokens/{token_id}/revoke", tag = "operators",
    params(("id" = String, Path, description = "Operator id or username"), ("token_id" = String, Path, description = "Token id")),
    responses((status = 204), (status = 404, body = Problem)))]
async fn operators_tokens_revoke(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, token_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let op = super::resolve(&s, &id).await?;
    let token =
        crate::ids::parse_uuid(&token_id).ok_or_else(|| Error::not_found("token", &token_id))?;
    s.write(p.actor, move |ctx| service::revoke_token(ctx, &op, &token))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
