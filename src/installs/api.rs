//! `/api/installs` routes (control plane) and their wire types: registration and renewal, the
//! registry and an install's detail (read from [`super::queries`]), delivery, and the bundle
//! upload.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::model::{ContradictionKind, InstallStatus, KeyBinding, Via};
use super::queries;
use super::queries::{
    HeartbeatList, InstallDetail, InstallList, InstallsFilter, PageFilter, WitnessedHeadList,
};
use super::service::{self, InstallDraft, LicenseDraft};
use crate::error::{Error, Result};
use crate::http::extract::{ApiJson, ApiQuery, Caller};
use crate::http::problem::{ApiResult, Problem};
use crate::state::AppState;

/// Path of the bundle upload, whose body limit is `[installs] bundle_limit_bytes`.
pub const BUNDLES_PATH: &str = "/api/installs/heartbeat-bundles";

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    // The bundle upload has its own, larger limit; `http::body::bound` enforces it.
    let bundles = OpenApiRouter::new()
        .routes(routes!(bundles_import))
        .layer(DefaultBodyLimit::disable());
    OpenApiRouter::new()
        .routes(routes!(installs_register, installs_list))
        .routes(routes!(installs_get))
        .routes(routes!(licenses_renew))
        .routes(routes!(enrollment_reissue))
        .routes(routes!(heartbeats_list, heartbeats_deliver))
        .routes(routes!(audit_heads_list))
        .merge(bundles)
}

fn install_id(id: &str) -> Result<Uuid> {
    crate::ids::parse_uuid(id).ok_or_else(|| Error::not_found("install", id))
}

/// `POST /api/installs` body (HEARTBEATS.md "Control-plane routes").
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInstall {
    /// The customer, 1–200 characters.
    pub customer: String,
    /// The install may never reach the control plane: heartbeats only as bundles.
    pub air_gapped: Option<bool>,
    /// License expiry (RFC 3339), in the future; one year from now by default.
    pub expires_at: Option<String>,
    /// Limits, e.g. `{"max_tenants": 50}`; none by default.
    pub limits: Option<NewLimits>,
    /// Feature names (a-z, 0-9, `_`, `-`, `.`; at most 32).
    pub features: Option<Vec<String>>,
    /// The install's public key (standard base64, from the appliance's
    /// `GET /api/audit/public-key`), when known: the license is then bound to it, and heartbeats
    /// must be signed with it. Otherwise the answer carries a one-time `enrollment_secret`, and
    /// the key is bound by the first delivery or bundle that proves it with that secret.
    pub install_public_key: Option<String>,
}

/// `limits` of [`NewInstall`].
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLimits {
    /// Most tenants at once, 1–1,000,000.
    pub max_tenants: Option<i64>,
}

impl From<NewInstall> for InstallDraft {
    fn from(b: NewInstall) -> InstallDraft {
        InstallDraft {
            customer: b.customer,
            air_gapped: b.air_gapped,
            expires_at: b.expires_at,
            max_tenants: b.limits.and_then(|l| l.max_tenants),
            features: b.features,
            install_public_key: b.install_public_key,
        }
    }
}

/// `POST /api/installs/{id}/licenses` body: a renewal. Members left out keep the current
/// license's terms.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLicense {
    /// New expiry (RFC 3339), in the future; one year from now by default.
    pub expires_at: Option<String>,
    /// New limits; the current ones by default.
    pub limits: Option<NewLimits>,
    /// New features; the current ones by default.
    pub features: Option<Vec<String>>,
}

impl From<NewLicense> for LicenseDraft {
    fn from(b: NewLicense) -> LicenseDraft {
        LicenseDraft {
            expires_at: b.expires_at,
            limits: b.limits.map(|l| l.max_tenants),
            features: b.features,
        }
    }
}

/// What registration returns.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RegisteredInstall {
    /// The new install.
    pub install_id: Uuid,
    /// The signed license `{"license": {...}, "key_id", "sig"}`: save it on the appliance as its
    /// `license_file`.
    #[schema(value_type = Object)]
    pub license: Value,
    /// `tenroll_...`, when the install's key is not bound: shown this once (only its verifier is
    /// stored). Give it to the appliance as `[control_plane] enrollment_secret`; its first
    /// delivery or bundle proves its key with it, which uses it up. Null otherwise.
    pub enrollment_secret: Option<String>,
}

impl From<service::Registered> for RegisteredInstall {
    fn from(r: service::Registered) -> RegisteredInstall {
        RegisteredInstall {
            install_id: r.install_id,
            license: r.license,
            enrollment_secret: r.enrollment_secret,
        }
    }
}

/// What happened to one heartbeat.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ItemResult {
    /// Its seq.
    pub seq: u64,
    /// `accepted`, or `duplicate` (already received: nothing changed).
    pub status: String,
}

/// The answer to a delivery or import.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IntakeResult {
    /// The install.
    pub install_id: Uuid,
    /// One entry per heartbeat, in seq order.
    pub results: Vec<ItemResult>,
    /// Newly stored.
    pub accepted: u64,
    /// Already received before (idempotent: a repeat is not an error).
    pub duplicates: u64,
    /// Highest seq received from this install: `tenantry heartbeat ack --through` takes it.
    pub last_seq: u64,
    /// Witness contradictions found in these heartbeats.
    pub contradictions: u64,
}

impl From<service::IntakeResult> for IntakeResult {
    fn from(r: service::IntakeResult) -> IntakeResult {
        IntakeResult {
            install_id: r.install_id,
            results: r
                .results
                .into_iter()
                .map(|i| ItemResult {
                    seq: i.seq,
                    status: i.status,
                })
                .collect(),
            accepted: r.accepted,
            duplicates: r.duplicates,
            last_seq: r.last_seq,
            contradictions: r.contradictions,
        }
    }
}

crate::string_enum_schema!(
    InstallStatus,
    "pending until the first heartbeat, then healthy, silent or expired."
);
crate::string_enum_schema!(Via, "How a heartbeat arrived: online or in a bundle.");
crate::string_enum_schema!(KeyBinding, "How the install's key became known.");
crate::string_enum_schema!(
    ContradictionKind,
    "rewritten (same seq, another hash) or went_backwards."
);

/// Registers an install and issues its signed license (writes `install.registered.v1`;
/// control-plane role).
#[utoipa::path(post, path = "/api/installs", tag = "on-prem", request_body = NewInstall,
    responses((status = 201, body = RegisteredInstall), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn installs_register(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiJson(body): ApiJson<NewInstall>,
) -> ApiResult<Response> {
    let r = RegisteredInstall::from(super::register(&s, p.actor, body.into()).await?);
    let location = format!("/api/installs/{}", r.install_id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(r)).into_response())
}

/// Issues a new license to an install (renewal: a new `license_id`, the same install; terms
/// left out are kept). Heartbeats written under the previous license stay acceptable. Writes
/// `license.issued.v1` (control-plane role).
#[utoipa::path(post, path = "/api/installs/{id}/licenses", tag = "on-prem",
    params(("id" = String, Path, description = "Install id")), request_body = NewLicense,
    responses((status = 201, body = RegisteredInstall), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn licenses_renew(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewLicense>,
) -> ApiResult<Response> {
    let id = install_id(&id)?;
    let r = RegisteredInstall::from(super::renew(&s, p.actor, id, body.into()).await?);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/installs/{id}"))],
        Json(r),
    )
        .into_response())
}

/// Issues a new enrollment secret to an install whose key is not bound yet (the previous one
/// stops working), with a new license naming it (same terms). The secret is in this answer
/// only. Writes `install.enrollment.issued.v1` and `license.issued.v1` (control-plane role).
#[utoipa::path(post, path = "/api/installs/{id}/enrollment", tag = "on-prem",
    params(("id" = String, Path, description = "Install id")),
    responses((status = 201, body = RegisteredInstall), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
async fn enrollment_reissue(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = install_id(&id)?;
    let r = RegisteredInstall::from(super::reissue_enrollment(&s, p.actor, id).await?);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/installs/{id}"))],
        Json(r),
    )
        .into_response())
}

/// The install registry, newest first: status (red for silent or expired), last seen, version,
/// LLM-probe status (control-plane role).
#[utoipa::path(get, path = "/api/installs", tag = "on-prem", params(InstallsFilter),
    responses((status = 200, body = InstallList), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn installs_list(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<InstallsFilter>,
) -> ApiResult<Json<InstallList>> {
    Ok(Json(queries::list(&s, q).await?))
}

/// One install: registry row, signed license, witness contradictions (control-plane role).
#[utoipa::path(get, path = "/api/installs/{id}", tag = "on-prem", params(("id" = String, Path, description = "Install id")),
    responses((status = 200, body = InstallDetail), (status = 404, body = Problem)))]
async fn installs_get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<InstallDetail>> {
    let id = install_id(&id)?;
    Ok(Json(queries::detail(&s, id).await?))
}

/// An install's received heartbeats, newest first (the last 10,000 are kept; control-plane
/// role).
#[utoipa::path(get, path = "/api/installs/{id}/heartbeats", tag = "on-prem",
    params(("id" = String, Path, description = "Install id"), PageFilter),
    responses((status = 200, body = HeartbeatList), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn heartbeats_list(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageFilter>,
) -> ApiResult<Json<HeartbeatList>> {
    let id = install_id(&id)?;
    Ok(Json(queries::heartbeats(&s, id, q).await?))
}

/// Heartbeat delivery: `{"heartbeats": [{"heartbeat": {...}, "key_id", "sig"}, ...],
/// "install_public_key": "<base64>", "enrollment_proof": "<base64>"}`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct DeliveryBody {
    /// 1–500 signed heartbeats, each within the receiver's caps (at most 200 audit heads, 64 KiB).
    #[schema(value_type = Vec<Object>)]
    pub heartbeats: Vec<Value>,
    /// The install's public key (bound with `enrollment_proof` when registration gave none).
    pub install_public_key: Option<String>,
    /// The enrollment secret's signature over the install id and `install_public_key`
    /// (`onprem::enroll`): required to bind the key of an install that has none yet.
    pub enrollment_proof: Option<String>,
}

/// Code of the 429 answer to an install over its delivery rate.
pub const HEARTBEAT_RATE_LIMITED: &str = "heartbeat_rate_limited";

/// 429 `heartbeat_rate_limited` with `Retry-After: {secs}`, as problem+json.
fn rate_limited(id: &str, secs: u64) -> Response {
    let p = Problem {
        type_: format!("urn:tenantry:problem:{HEARTBEAT_RATE_LIMITED}"),
        title: "Heartbeat rate limited".into(),
        status: StatusCode::TOO_MANY_REQUESTS.as_u16(),
        detail: format!(
            "install {id} sent more than {} deliveries in a burst (one more is allowed every {} s): retry after {secs} s",
            crate::onprem::rate::BURST,
            crate::onprem::rate::REFILL.as_secs()
        ),
        code: HEARTBEAT_RATE_LIMITED.into(),
        request_id: crate::http::problem::current_request_id(),
        errors: None,
        allowed: None,
    };
    let mut res = (StatusCode::TOO_MANY_REQUESTS, Json(p)).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/problem+json"),
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
    res
}

/// Delivers signed heartbeats (the appliance's sender). Authenticated by the install's
/// signature, not a token; the first delivery of an install without a key binds it with
/// `enrollment_proof`. Idempotent per seq: a repeat answers 200 marked `duplicate`; a forged
/// or altered heartbeat is 401 and nothing of the request is stored. At most 60 deliveries per
/// install in a burst, then one per 5 s: 429 with `Retry-After` (control-plane role).
#[utoipa::path(post, path = "/api/installs/{id}/heartbeats", tag = "on-prem", security(()),
    params(("id" = String, Path, description = "Install id")), request_body = DeliveryBody,
    responses((status = 200, body = IntakeResult), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 413, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
async fn heartbeats_deliver(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    s.onprem()
        .require_control_plane("POST /api/installs/{id}/heartbeats")?;
    if !body.is_object() {
        return Err(Error::invalid(
            "body",
            "expected {\"heartbeats\": [signed heartbeats], \"install_public_key\": \"<base64>\"}",
        )
        .into());
    }
    let id = install_id(&id)?;
    // Before the install is looked up or any signature checked: the route is public.
    if let Err(secs) = s.onprem().deliveries().take(id, s.clock().now()) {
        return Ok(rate_limited(&id.to_string(), secs));
    }
    Ok(Json(IntakeResult::from(super::deliver(&s, id, body).await?)).into_response())
}

/// Imports an air-gap heartbeat bundle (the file `tenantry heartbeat export` writes). Every
/// signature is checked first; an altered bundle is refused as a whole; a repeat import changes
/// nothing (control-plane role).
#[utoipa::path(post, path = "/api/installs/heartbeat-bundles", tag = "on-prem",
    request_body(content = Object, description = "The bundle file, as written by `tenantry heartbeat export`", content_type = "application/json"),
    responses((status = 200, body = IntakeResult), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem),
        (status = 415, body = Problem), (status = 422, body = Problem)))]
async fn bundles_import(
    State(s): State<AppState>,
    Caller(p): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<IntakeResult>> {
    // The file's own bytes are kept (their SHA-256 is audited), so the body is read raw.
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .is_some_and(|m| m == "application/json" || m.ends_with("+json"));
    if !json {
        return Err(crate::http::problem::Transport::UnsupportedMediaType.into());
    }
    s.onprem()
        .require_control_plane("POST /api/installs/heartbeat-bundles")?;
    Ok(Json(
        super::import_bundle(&s, p.actor, body.to_vec())
            .await?
            .into(),
    ))
}

/// The highest witnessed audit head of each of the install's chains: what an auditor checks an
/// export of the appliance's ledger against (control-plane role).
#[utoipa::path(get, path = "/api/installs/{id}/audit-heads", tag = "on-prem",
    params(("id" = String, Path, description = "Install id"), PageFilter),
    responses((status = 200, body = WitnessedHeadList), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn audit_heads_list(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageFilter>,
) -> ApiResult<Json<WitnessedHeadList>> {
    let id = install_id(&id)?;
    Ok(Json(queries::audit_heads(&s, id, q).await?))
}
