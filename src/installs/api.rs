//! `/api/installs` routes (control plane) and what the console's installs pages read: the
//! registry (red for silent or expired), an install's detail (heartbeat history, witnessed heads,
//! contradictions), delivery, and the bundle upload.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::model::*;
use super::service::{self, IntakeResult, NewInstall, NewLicense};
use crate::audit::ChainId;
use crate::clock::from_micros;
use crate::error::{Error, Result};
use crate::heartbeat::{Health, LlmProbe};
use crate::http::extract::{ApiJson, ApiQuery, Caller};
use crate::http::problem::{ApiResult, Problem};
use crate::license::Limits;
use crate::state::AppState;
use crate::store::{Dir, Range, Reader, Table, codec};

/// Path of the bundle upload, whose body limit is `[installs] bundle_limit_bytes`.
pub const BUNDLES_PATH: &str = "/api/installs/heartbeat-bundles";

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    // The bundle upload has its own, larger limit; `http::limit_body` enforces it.
    let bundles = OpenApiRouter::new()
        .routes(routes!(bundles_import))
        .layer(DefaultBodyLimit::disable());
    OpenApiRouter::new()
        .routes(routes!(installs_register, installs_list))
        .routes(routes!(installs_get))
        .routes(routes!(licenses_renew))
        .routes(routes!(heartbeats_list, heartbeats_deliver))
        .routes(routes!(audit_heads_list))
        .merge(bundles)
}

fn install_id(id: &str) -> Result<Uuid> {
    crate::ids::parse_uuid(id).ok_or_else(|| Error::not_found("install", id))
}

/// Parses a `cursor` query value with `parse`.
///
/// Errors: 400 `invalid_cursor`.
fn cursor<T>(c: Option<&str>, parse: impl FnOnce(&str) -> Option<T>) -> Result<Option<T>> {
    c.map(|c| {
        parse(c).ok_or_else(|| {
            Error::bad_request(
                "invalid_cursor",
                "the cursor is not valid: start again without it",
            )
        })
    })
    .transpose()
}

/// One page of `table` over `range` in `dir`: each row goes through `f` (`None` skips it) until
/// `limit` items are kept. Returns the items and, when rows remain, the key of the last row
/// looked at (the next page starts after it).
fn page<T>(
    r: &impl Reader,
    table: Table,
    range: &Range,
    dir: Dir,
    limit: usize,
    mut f: impl FnMut(&[u8], &[u8]) -> crate::store::Result<Option<T>>,
) -> Result<(Vec<T>, Option<Vec<u8>>)> {
    let mut items = Vec::new();
    let mut last: Option<Vec<u8>> = None;
    let mut more = false;
    r.scan(table, range, dir, &mut |k, v| {
        if items.len() >= limit {
            more = true;
            return Ok(ControlFlow::Break(()));
        }
        last = Some(k.to_vec());
        if let Some(item) = f(k, v)? {
            items.push(item);
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok((items, if more { last } else { None }))
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
}

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
    let r = register(&s, p.actor, body).await?;
    let location = format!("/api/installs/{}", r.install_id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(r)).into_response())
}

/// Registers an install and issues its license (the API route and the console form).
///
/// Errors: 404 off the control-plane role; 422 for bad input.
pub async fn register(
    s: &AppState,
    actor: crate::actor::Actor,
    body: NewInstall,
) -> Result<RegisteredInstall> {
    s.onprem().require_control_plane("POST /api/installs")?;
    let input = body.parse()?;
    let state = s.clone();
    let r = s
        .write(actor, move |ctx| {
            let key = state.onprem().license_key()?;
            service::register(ctx, &input, key)
        })
        .await?;
    Ok(RegisteredInstall {
        install_id: r.install_id,
        license: r.license,
    })
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
    let r = renew(&s, p.actor, id, body).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/installs/{id}"))],
        Json(r),
    )
        .into_response())
}

/// Issues a new license to an install (the API route and the console form).
///
/// Errors: 404 off the control-plane role or for an unknown install; 422 for bad input.
pub async fn renew(
    s: &AppState,
    actor: crate::actor::Actor,
    id: Uuid,
    body: NewLicense,
) -> Result<RegisteredInstall> {
    s.onprem()
        .require_control_plane("POST /api/installs/{id}/licenses")?;
    let input = body.parse()?;
    let state = s.clone();
    let r = s
        .write(actor, move |ctx| {
            let key = state.onprem().license_key()?;
            service::renew(ctx, &id, &input, key)
        })
        .await?;
    Ok(RegisteredInstall {
        install_id: r.install_id,
        license: r.license,
    })
}

/// The witness check's verdict on an install.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct WitnessSummary {
    /// `consistent`, or `contradicted` once any later heads contradicted earlier ones.
    pub status: String,
    /// Contradictions found.
    pub contradictions: u64,
}

/// An install in the registry.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct InstallView {
    /// The install.
    pub install_id: Uuid,
    /// The customer.
    pub customer: String,
    /// `pending`, `healthy`, `silent` or `expired`.
    pub status: InstallStatus,
    /// Show it red: silent, expired, or its witness check was contradicted.
    pub alert: bool,
    /// Its license.
    pub license_id: Uuid,
    /// Heartbeats travel only as bundles.
    pub air_gapped: bool,
    /// License issue time.
    pub issued_at: DateTime<Utc>,
    /// License expiry.
    pub expires_at: DateTime<Utc>,
    /// License limits.
    pub limits: Limits,
    /// License features.
    pub features: Vec<String>,
    /// When it was registered.
    pub registered_at: DateTime<Utc>,
    /// When a new heartbeat was last accepted.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Highest seq received.
    pub last_seq: u64,
    /// `sent_at` of that heartbeat.
    pub last_sent_at: Option<DateTime<Utc>>,
    /// Distinct heartbeats received.
    pub heartbeats_received: u64,
    /// Seqs below `last_seq` never received (dropped by the appliance's backlog policy, or in a
    /// bundle not imported yet).
    pub missing_seqs: u64,
    /// Tenantry version of the newest heartbeat.
    pub version: Option<String>,
    /// LLM probe of the newest heartbeat; null when the install runs none.
    pub llm_probe: Option<LlmProbe>,
    /// `key_id` of the install's bound key; null until bound.
    pub install_key_id: Option<String>,
    /// The bound key itself (standard base64): the appliance's audit checkpoints verify with it
    /// (`scripts/verify_export.py`), as its heartbeats do.
    pub install_public_key: Option<String>,
    /// When the key was bound.
    pub key_bound_at: Option<DateTime<Utc>>,
    /// How it was bound.
    pub key_binding: Option<KeyBinding>,
    /// Silent since (cleared when heartbeats return).
    pub silent_since: Option<DateTime<Utc>>,
    /// The witness check.
    pub witness: WitnessSummary,
    /// Tenants by state, from the newest heartbeat.
    pub tenants: Option<BTreeMap<String, u64>>,
    /// Health, from the newest heartbeat.
    pub health: Option<Health>,
}

fn view(id: Uuid, i: &InstallV1, now: DateTime<Utc>) -> InstallView {
    let status = i.status(now);
    let key = i
        .key
        .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok());
    InstallView {
        install_id: id,
        customer: i.customer.clone(),
        status,
        alert: matches!(status, InstallStatus::Silent | InstallStatus::Expired)
            || i.contradictions > 0,
        license_id: i.license_id,
        air_gapped: i.air_gapped,
        issued_at: from_micros(i.issued_at),
        expires_at: from_micros(i.expires_at),
        limits: Limits {
            max_tenants: i.max_tenants,
        },
        features: i.features.clone(),
        registered_at: from_micros(i.registered_at),
        last_seen_at: i.last_seen_at.map(from_micros),
        last_seq: i.last_seq,
        last_sent_at: i.last_sent_at.map(from_micros),
        heartbeats_received: i.received,
        missing_seqs: i.last_seq.saturating_sub(i.received),
        version: i.version.clone(),
        llm_probe: match (&i.llm_status, i.llm_checked_at) {
            (Some(status), Some(at)) => Some(LlmProbe {
                status: status.clone(),
                checked_at: from_micros(at),
            }),
            _ => None,
        },
        install_key_id: key.as_ref().map(crate::audit::signing::key_id_of),
        install_public_key: key.as_ref().map(crate::onprem::signed::public_key_b64),
        key_bound_at: i.key_bound_at.map(from_micros),
        key_binding: i.key_binding,
        silent_since: i.silent_since.map(from_micros),
        witness: WitnessSummary {
            status: if i.contradictions > 0 {
                "contradicted".into()
            } else {
                "consistent".into()
            },
            contradictions: i.contradictions,
        },
        tenants: service::tenants_map(i),
        health: i
            .health
            .map(|(store_ok, failed_jobs_24h, free_disk_bytes)| Health {
                store_ok,
                failed_jobs_24h,
                free_disk_bytes,
            }),
    }
}

/// Query of the registry.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InstallsQuery {
    /// Only installs in this status: `pending`, `healthy`, `silent` or `expired`.
    pub status: Option<String>,
    /// Only installs to show red (`true`).
    pub alert: Option<bool>,
    /// Page size, 1–500 (default 50).
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of the registry.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InstallList {
    /// Installs, newest registration first.
    pub items: Vec<InstallView>,
    /// Where the next page starts; null on the last page.
    pub next_cursor: Option<String>,
}

/// The install registry, newest first: status (red for silent or expired), last seen, version,
/// LLM-probe status (control-plane role).
#[utoipa::path(get, path = "/api/installs", tag = "on-prem", params(InstallsQuery),
    responses((status = 200, body = InstallList), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn installs_list(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<InstallsQuery>,
) -> ApiResult<Json<InstallList>> {
    Ok(Json(list(&s, q).await?))
}

/// A page of the registry (the API route and the console page).
///
/// Errors: 404 off the control-plane role; 400 for a bad query.
pub async fn list(s: &AppState, q: InstallsQuery) -> Result<InstallList> {
    s.onprem().require_control_plane("GET /api/installs")?;
    let limit = crate::store::page::limit(q.limit)?;
    let status = match q.status.as_deref() {
        None => None,
        Some(x) => Some(InstallStatus::parse(x).ok_or_else(|| {
            Error::bad_request(
                "invalid_query",
                format!("status '{x}' is unknown: use pending, healthy, silent or expired"),
            )
        })?),
    };
    let cursor = cursor(q.cursor.as_deref(), crate::ids::parse_uuid)?;
    let now = s.clock().now();
    let alert = q.alert;
    let (items, next) = s
        .read(move |r| {
            let mut range = Range::all();
            if let Some(c) = cursor {
                range = range.before(&install_key(&c));
            }
            page(r, INSTALLS, &range, Dir::Desc, limit, |k, v| {
                let Ok(id) = Uuid::from_slice(k) else {
                    return Ok(None);
                };
                let InstallRecord::V1(i) = codec::decode(INSTALLS.name(), v)?;
                let v = view(id, &i, now);
                let keep =
                    status.is_none_or(|st| v.status == st) && alert.is_none_or(|a| v.alert == a);
                Ok(keep.then_some(v))
            })
        })
        .await?;
    let next = next.and_then(|k| Uuid::from_slice(&k).ok());
    Ok(InstallList {
        items,
        next_cursor: next.map(|u| u.to_string()),
    })
}

/// One witness contradiction.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ContradictionView {
    /// The chain.
    pub chain: String,
    /// `rewritten` (same seq, another hash) or `went_backwards` (a later heartbeat reports a
    /// lower head).
    pub kind: ContradictionKind,
    /// The seq now reported.
    pub reported_seq: u64,
    /// The hash now reported.
    pub reported_hash: String,
    /// The heartbeat reporting it.
    pub reported_in_heartbeat: u64,
    /// The earlier witnessed seq it contradicts.
    pub witnessed_seq: u64,
    /// The earlier witnessed hash.
    pub witnessed_hash: String,
    /// The heartbeat that reported it.
    pub witnessed_in_heartbeat: u64,
    /// When it was found.
    pub detected_at: DateTime<Utc>,
}

/// An install's detail.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InstallDetail {
    /// The registry row.
    #[serde(flatten)]
    pub install: InstallView,
    /// The signed license as issued (to hand to the customer again).
    #[schema(value_type = Object)]
    pub license: Value,
    /// Witness contradictions, newest first (at most 100).
    pub contradictions: Vec<ContradictionView>,
    /// Chains with witnessed heads (`GET /api/installs/{id}/audit-heads` lists them).
    pub witnessed_chains: u64,
}

/// One install: registry row, signed license, witness contradictions (control-plane role).
#[utoipa::path(get, path = "/api/installs/{id}", tag = "on-prem", params(("id" = String, Path, description = "Install id")),
    responses((status = 200, body = InstallDetail), (status = 404, body = Problem)))]
async fn installs_get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<InstallDetail>> {
    let id = install_id(&id)?;
    Ok(Json(detail(&s, id).await?))
}

/// One install's detail (the API route and the console page).
///
/// Errors: 404 off the control-plane role or for an unknown install.
pub async fn detail(s: &AppState, id: Uuid) -> Result<InstallDetail> {
    s.onprem().require_control_plane("GET /api/installs/{id}")?;
    let now = s.clock().now();
    let detail = s
        .read(move |r| {
            let i = service::load(r, &id)?;
            let license: Value = serde_json::from_slice(&i.license)
                .map_err(|e| Error::Internal(format!("stored license: {e}")))?;
            let mut contradictions = Vec::new();
            r.scan(
                CONTRADICTIONS,
                &Range::prefix(&install_key(&id)),
                Dir::Desc,
                &mut |_, v| {
                    let ContradictionRecord::V1 {
                        chain,
                        kind,
                        reported_seq,
                        reported_hash,
                        reported_in,
                        witnessed_seq,
                        witnessed_hash,
                        witnessed_in,
                        detected_at,
                    } = codec::decode(CONTRADICTIONS.name(), v)?;
                    contradictions.push(ContradictionView {
                        chain,
                        kind,
                        reported_seq,
                        reported_hash: hex::encode(reported_hash),
                        reported_in_heartbeat: reported_in,
                        witnessed_seq,
                        witnessed_hash: hex::encode(witnessed_hash),
                        witnessed_in_heartbeat: witnessed_in,
                        detected_at: from_micros(detected_at),
                    });
                    Ok(if contradictions.len() >= 100 {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    })
                },
            )?;
            let mut chains = 0u64;
            r.scan(
                HEADS,
                &Range::prefix(&install_key(&id)),
                Dir::Asc,
                &mut |_, _| {
                    chains += 1;
                    Ok(ControlFlow::Continue(()))
                },
            )?;
            Ok::<_, Error>(InstallDetail {
                install: view(id, &i, now),
                license,
                contradictions,
                witnessed_chains: chains,
            })
        })
        .await?;
    Ok(detail)
}

/// Paging by seq or chain.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size, 1–500 (default 50).
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A received heartbeat.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReceivedHeartbeat {
    /// Its seq.
    pub seq: u64,
    /// When the appliance wrote it.
    pub sent_at: Option<String>,
    /// When the control plane accepted it.
    pub received_at: DateTime<Utc>,
    /// Its place in the install's arrival order (1 = first accepted).
    pub arrival: u64,
    /// `online` or `bundle`.
    pub via: Via,
    /// Audit heads it carried.
    pub audit_heads: u64,
    /// The signed heartbeat exactly as received: `{"heartbeat": {...}, "key_id", "sig"}`.
    #[schema(value_type = Object)]
    pub document: Value,
}

/// The seq of an `(install, seq)` key.
fn seq_of(key: &[u8]) -> u64 {
    key.get(16..24)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_be_bytes)
}

/// A page of heartbeats.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HeartbeatList {
    /// Heartbeats, newest seq first.
    pub items: Vec<ReceivedHeartbeat>,
    /// Where the next page starts; null on the last page.
    pub next_cursor: Option<String>,
}

/// An install's received heartbeats, newest first (the last 10,000 are kept; control-plane
/// role).
#[utoipa::path(get, path = "/api/installs/{id}/heartbeats", tag = "on-prem",
    params(("id" = String, Path, description = "Install id"), PageQuery),
    responses((status = 200, body = HeartbeatList), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn heartbeats_list(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<HeartbeatList>> {
    let id = install_id(&id)?;
    Ok(Json(heartbeats(&s, id, q).await?))
}

/// A page of an install's received heartbeats (the API route and the console page).
///
/// Errors: 404 off the control-plane role or for an unknown install; 400 for a bad cursor.
pub async fn heartbeats(s: &AppState, id: Uuid, q: PageQuery) -> Result<HeartbeatList> {
    s.onprem()
        .require_control_plane("GET /api/installs/{id}/heartbeats")?;
    let limit = crate::store::page::limit(q.limit)?;
    let cursor = cursor(q.cursor.as_deref(), |c| c.parse::<u64>().ok())?;
    let (items, next) = s
        .read(move |r| {
            service::load(r, &id)?;
            let mut range = Range::prefix(&install_key(&id));
            if let Some(c) = cursor {
                range = range.before(&seq_key(&id, c));
            }
            page(r, HEARTBEATS, &range, Dir::Desc, limit, |k, v| {
                let HeartbeatRecord::V1 {
                    received_at,
                    arrival,
                    via,
                    signed,
                } = codec::decode(HEARTBEATS.name(), v)?;
                let document: Value = serde_json::from_slice(&signed).unwrap_or(Value::Null);
                Ok(Some(ReceivedHeartbeat {
                    seq: seq_of(k),
                    sent_at: document["heartbeat"]["sent_at"]
                        .as_str()
                        .map(str::to_string),
                    received_at: from_micros(received_at),
                    arrival,
                    via,
                    audit_heads: document["heartbeat"]["audit_heads"]
                        .as_array()
                        .map_or(0, |a| a.len() as u64),
                    document,
                }))
            })
        })
        .await?;
    let next = next.map(|k| seq_of(&k).to_string());
    Ok(HeartbeatList {
        items,
        next_cursor: next,
    })
}

/// Heartbeat delivery: `{"heartbeats": [{"heartbeat": {...}, "key_id", "sig"}, ...],
/// "install_public_key": "<base64>"}`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct DeliveryBody {
    /// 1–500 signed heartbeats.
    #[schema(value_type = Vec<Object>)]
    pub heartbeats: Vec<Value>,
    /// The install's public key (bound on first use when registration gave none).
    pub install_public_key: Option<String>,
}

/// Delivers signed heartbeats (the appliance's sender). Authenticated by the install's
/// signature, not a token. Idempotent per seq: a repeat answers 200 marked `duplicate`; a forged
/// or altered heartbeat is 401 and nothing of the request is stored (control-plane role).
#[utoipa::path(post, path = "/api/installs/{id}/heartbeats", tag = "on-prem", security(()),
    params(("id" = String, Path, description = "Install id")), request_body = DeliveryBody,
    responses((status = 200, body = IntakeResult), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 413, body = Problem), (status = 422, body = Problem)))]
async fn heartbeats_deliver(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<IntakeResult>> {
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
    Ok(Json(super::deliver(&s, id, body).await?))
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
        super::import_bundle(&s, p.actor, body.to_vec()).await?,
    ))
}

/// A witnessed head.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WitnessedHead {
    /// The chain.
    pub chain: String,
    /// The highest seq witnessed.
    pub seq: u64,
    /// Its hash, as witnessed.
    pub hash: String,
    /// The heartbeat that reported it.
    pub heartbeat_seq: u64,
    /// When.
    pub witnessed_at: DateTime<Utc>,
}

/// A page of witnessed heads.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WitnessedHeadList {
    /// Heads, platform first, then tenant chains by id.
    pub items: Vec<WitnessedHead>,
    /// Where the next page starts; null on the last page.
    pub next_cursor: Option<String>,
}

/// The highest witnessed audit head of each of the install's chains: what an auditor checks an
/// export of the appliance's ledger against (control-plane role).
#[utoipa::path(get, path = "/api/installs/{id}/audit-heads", tag = "on-prem",
    params(("id" = String, Path, description = "Install id"), PageQuery),
    responses((status = 200, body = WitnessedHeadList), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn audit_heads_list(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<WitnessedHeadList>> {
    let id = install_id(&id)?;
    Ok(Json(audit_heads(&s, id, q).await?))
}

/// A page of an install's witnessed heads (the API route and the console page).
///
/// Errors: 404 off the control-plane role or for an unknown install; 400 for a bad cursor.
pub async fn audit_heads(s: &AppState, id: Uuid, q: PageQuery) -> Result<WitnessedHeadList> {
    s.onprem()
        .require_control_plane("GET /api/installs/{id}/audit-heads")?;
    let limit = crate::store::page::limit(q.limit)?;
    let cursor = cursor(q.cursor.as_deref(), |c| ChainId::parse(c).ok())?;
    let (items, next) = s
        .read(move |r| {
            service::load(r, &id)?;
            let mut range = Range::prefix(&install_key(&id));
            if let Some(c) = cursor {
                range = range.after(&chain_key(&id, &c.key()));
            }
            page(r, HEADS, &range, Dir::Asc, limit, |k, v| {
                let Some(chain) = k.get(16..).and_then(ChainId::from_key) else {
                    return Ok(None);
                };
                let HeadWitness::V1 {
                    seq,
                    hash,
                    heartbeat_seq,
                    witnessed_at,
                } = codec::decode(HEADS.name(), v)?;
                Ok(Some(WitnessedHead {
                    chain: chain.to_string(),
                    seq,
                    hash: hex::encode(hash),
                    heartbeat_seq,
                    witnessed_at: from_micros(witnessed_at),
                }))
            })
        })
        .await?;
    let next = next
        .and_then(|k| k.get(16..).and_then(ChainId::from_key))
        .map(|c| c.to_string());
    Ok(WitnessedHeadList {
        items,
        next_cursor: next,
    })
}
