//! `/api/tenants/{id}/api-keys` (tenant admin guide §3), `POST /api/auth/token` and
//! `GET /.well-known/jwks.json`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::model;
use super::queries::ApiKeyFilter;
use super::service::ApiKeyDraft;
use crate::error::path_id;
use crate::http::extract::{ApiJson, ApiQuery, Caller, OptionalJson};
use crate::http::problem::{ApiResult, Problem};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api_keys_list, api_keys_issue))
        .routes(routes!(api_keys_get))
        .routes(routes!(api_keys_rotate))
        .routes(routes!(api_keys_revoke))
        .routes(routes!(auth_token))
        .routes(routes!(jwks))
}

/// An API key as listed: never its secret.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    /// UUIDv7 (also inside the key: `tk_{id}_…`).
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// The persona it acts as.
    pub persona_id: Uuid,
    /// What it is for.
    pub name: String,
    /// Its scopes (within the persona's).
    pub scopes: Vec<String>,
    /// The start of the key, to recognise it (`tk_{id}_AbCd…`).
    pub prefix: String,
    /// `active`, `expired` or `revoked`.
    pub state: String,
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// When it stops working; null: no expiry (flagged in compliance reviews).
    pub expires_at: Option<DateTime<Utc>>,
    /// True when it has no expiry.
    pub no_expiry: bool,
    /// Last rotation.
    pub rotated_at: Option<DateTime<Utc>>,
    /// Until when the secret before the last rotation still works (10 minutes after it).
    pub old_key_valid_until: Option<DateTime<Utc>>,
    /// Revoke time.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last use, to about a minute.
    pub last_used_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    fn of(k: model::ApiKey, now: DateTime<Utc>) -> ApiKey {
        ApiKey {
            state: k.state(now).as_str().to_string(),
            no_expiry: k.expires_at.is_none(),
            scopes: k.scopes.iter().map(|s| s.as_str().to_string()).collect(),
            old_key_valid_until: k.previous_valid_until.filter(|u| *u > now),
            id: k.id,
            tenant_id: k.tenant_id,
            persona_id: k.persona_id,
            name: k.name,
            prefix: k.prefix,
            created_at: k.created_at,
            expires_at: k.expires_at,
            rotated_at: k.rotated_at,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
        }
    }
}

/// API keys.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiKeyList {
    /// Newest first.
    pub items: Vec<ApiKey>,
    /// Always null: a tenant holds at most 1000 keys.
    pub next_cursor: Option<String>,
}

/// The tenant's API keys (never their secrets), filtered by `persona_id`, `state` or
/// `no_expiry=true`.
#[utoipa::path(get, path = "/api/tenants/{id}/api-keys", tag = "api_keys",
    params(("id" = String, Path, description = "Tenant id"), ApiKeyFilter),
    responses((status = 200, body = ApiKeyList), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn api_keys_list(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(f): ApiQuery<ApiKeyFilter>,
) -> ApiResult<Json<ApiKeyList>> {
    let tenant = path_id("tenant", &id)?;
    let now = s.clock().now();
    let items = s
        .read(move |r| {
            crate::tenants::queries::get(r, &tenant)?;
            super::queries::list(r, &tenant, &f, now)
        })
        .await?;
    Ok(Json(ApiKeyList {
        items: items.into_iter().map(|k| ApiKey::of(k, now)).collect(),
        next_cursor: None,
    }))
}

/// `POST /api/tenants/{id}/api-keys` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// The persona it acts as (typically a service persona).
    pub persona_id: String,
    /// What it is for, 1–80 characters.
    pub name: String,
    /// Scopes, within the persona's: minimum privilege.
    pub scopes: Vec<String>,
    /// RFC 3339; absent: no expiry (flagged).
    pub expires_at: Option<String>,
}

/// A key just issued or rotated: `key` is here once and stored only as a hash.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IssuedApiKey {
    /// The key: `tk_{id}_{secret}`. Copy it now.
    pub key: String,
    /// Its listing.
    #[serde(flatten)]
    pub api_key: ApiKey,
}

/// Issues a key (`api_key.issued.v1`). Its scopes must be within the persona's (and within the
/// caller's, for a tenant caller). An approval route on `api_key.issue` holds it: 202 with the
/// key (refused until approved) and the request.
#[utoipa::path(post, path = "/api/tenants/{id}/api-keys", tag = "api_keys",
    params(("id" = String, Path, description = "Tenant id")), request_body = NewApiKey,
    responses((status = 201, body = IssuedApiKey), (status = 202, body = HeldApiKey), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn api_keys_issue(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewApiKey>,
) -> ApiResult<axum::response::Response> {
    let tenant = path_id("tenant", &id)?;
    let draft = ApiKeyDraft {
        persona_id: body.persona_id,
        name: body.name,
        scopes: body.scopes,
        expires_at: body.expires_at,
    };
    let now = s.clock().now();
    Ok(match super::issue(&s, &p, tenant, draft).await? {
        super::Issued::Done(k, key) => (
            StatusCode::CREATED,
            Json(IssuedApiKey {
                key,
                api_key: ApiKey::of(k, now),
            }),
        )
            .into_response(),
        super::Issued::Held(req, key) => (
            StatusCode::ACCEPTED,
            [(
                axum::http::header::LOCATION,
                format!("/api/approvals/{}", req.id),
            )],
            Json(HeldApiKey {
                key,
                approval: crate::approvals::api::ApprovalRequest::of(*req, None, now),
            }),
        )
            .into_response(),
    })
}

/// A key an approval route held: its full key (shown once), which works once the request is
/// approved, and the request.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HeldApiKey {
    /// The key: `tk_{id}_{secret}`. Copy it now; it is refused until the request is approved.
    pub key: String,
    /// The approval request holding it.
    pub approval: crate::approvals::api::ApprovalRequest,
}

/// One key (never its secret).
#[utoipa::path(get, path = "/api/tenants/{id}/api-keys/{key_id}", tag = "api_keys",
    params(("id" = String, Path, description = "Tenant id"), ("key_id" = String, Path, description = "Key id")),
    responses((status = 200, body = ApiKey), (status = 404, body = Problem)))]
async fn api_keys_get(
    State(s): State<AppState>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Json<ApiKey>> {
    let (tenant, key) = (path_id("tenant", &id)?, path_id("api key", &key)?);
    let k = s
        .read(move |r| super::queries::get(r, &tenant, &key))
        .await?;
    Ok(Json(ApiKey::of(k, s.clock().now())))
}

/// A rotated key: the new key (shown once) and the end of the old one's grace window.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RotatedApiKey {
    /// The new key. Copy it now.
    pub key: String,
    /// The old key keeps working until then (10 minutes), then fails.
    pub old_key_valid_until: DateTime<Utc>,
    /// Its listing.
    #[serde(flatten)]
    pub api_key: ApiKey,
}

/// Rotates a key (`api_key.rotated.v1`): a new secret now; the old one works for 10 more
/// minutes so configurations can be swapped without downtime.
#[utoipa::path(post, path = "/api/tenants/{id}/api-keys/{key_id}/rotate", tag = "api_keys",
    params(("id" = String, Path, description = "Tenant id"), ("key_id" = String, Path, description = "Key id")),
    responses((status = 200, body = RotatedApiKey), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn api_keys_rotate(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Json<RotatedApiKey>> {
    let (tenant, key) = (path_id("tenant", &id)?, path_id("api key", &key)?);
    let (k, secret, until) = super::rotate(&s, &p, tenant, key).await?;
    Ok(Json(RotatedApiKey {
        key: secret,
        old_key_valid_until: until,
        api_key: ApiKey::of(k, s.clock().now()),
    }))
}

/// Revokes a key at once, with no grace (`api_key.revoked.v1`); its tokens fail too.
#[utoipa::path(post, path = "/api/tenants/{id}/api-keys/{key_id}/revoke", tag = "api_keys",
    params(("id" = String, Path, description = "Tenant id"), ("key_id" = String, Path, description = "Key id")),
    responses((status = 200, body = ApiKey), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn api_keys_revoke(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Json<ApiKey>> {
    let (tenant, key) = (path_id("tenant", &id)?, path_id("api key", &key)?);
    let k = s
        .write(p.actor, move |ctx| {
            super::service::revoke(ctx, &tenant, &key)
        })
        .await?;
    Ok(Json(ApiKey::of(k, s.clock().now())))
}

/// `POST /api/auth/token` body: all optional.
#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Seconds the token lives: 60–900 (default 900).
    #[schema(minimum = 60, maximum = 900)]
    pub expires_in: Option<i64>,
    /// Space-separated scopes, within the key's (default: all of the key's).
    pub scope: Option<String>,
}

/// A tenant access token (RFC 6749 §5.1 shape).
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// The JWT (EdDSA), for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds it lives.
    pub expires_in: i64,
    /// Its scopes, space-separated.
    pub scope: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Its `jti`.
    pub jti: String,
}

/// Exchanges the API key in `Authorization: Bearer tk_…` for a short-lived tenant token: a JWT
/// signed with EdDSA, with `tenant_id`, `sub` (the persona), `scope`, `exp`, `jti`, verifiable
/// offline with `GET /.well-known/jwks.json`. Revoking the key or its persona stops its tokens.
#[utoipa::path(post, path = "/api/auth/token", tag = "auth", request_body(content = Option<TokenRequest>),
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn auth_token(
    State(s): State<AppState>,
    Caller(p): Caller,
    OptionalJson(body): OptionalJson<Option<TokenRequest>>,
) -> ApiResult<Json<TokenResponse>> {
    let body = body.unwrap_or_default();
    let t = super::exchange(&s, &p, body.expires_in, body.scope.as_deref())?;
    Ok(Json(TokenResponse {
        access_token: t.access_token,
        token_type: "Bearer".into(),
        expires_in: t.expires_in,
        scope: t.scope,
        tenant_id: t.claims.tenant_id,
        jti: t.claims.jti,
    }))
}

/// One verification key (RFC 8037 §2: an Ed25519 OKP key).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Jwk {
    /// `OKP`.
    pub kty: String,
    /// `Ed25519`.
    pub crv: String,
    /// The public key, base64url.
    pub x: String,
    /// Key id (the `kid` of tokens' headers).
    pub kid: String,
    /// `EdDSA`.
    pub alg: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: String,
}

/// A JWK Set (RFC 7517 §5).
#[derive(Serialize, utoipa::ToSchema)]
pub struct JwkSet {
    /// The keys tenant tokens are signed with.
    pub keys: Vec<Jwk>,
}

/// The keys that verify tenant tokens, for the platform's other services (the gateway).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, body = JwkSet)))]
async fn jwks(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(s.tokens().jwks())
}
