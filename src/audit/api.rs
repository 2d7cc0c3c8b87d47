//! `/api/audit` routes (API.md first slice; operator guide §7).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::queries::{self, AuditFilter, parse_chain};
use super::{ChainId, Mode, model, verify};
use crate::actor::ActorKind;
use crate::error::Error;
use crate::http::extract::{ApiJson, ApiQuery, OptionalJson};
use crate::http::problem::{ApiResult, Problem};
use crate::state::AppState;

/// `{"kind", "id"}`: the principal a change is attributed to.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Actor {
    /// What sort of principal acted.
    pub kind: ActorKind,
    /// Its stable id: an operator's username, a job name (`job:shred_due_tenants`)...
    pub id: String,
}

/// `{"kind", "id"}`: what an entry is about.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Target {
    /// `tenant`, `app`, `pool`, `operator`...
    pub kind: String,
    /// Its id.
    pub id: String,
}

/// One entry: the envelope's members (AUDIT.md), its hash, and its `data` (null once shredded).
#[derive(Serialize, utoipa::ToSchema)]
pub struct EntryView {
    /// Chain id.
    pub chain: String,
    /// Position in the chain, from 1.
    pub seq: u64,
    /// RFC 3339 UTC with microseconds.
    pub ts: String,
    /// Versioned event name, e.g. `tenant.suspended.v1`.
    pub action: String,
    /// Who acted.
    pub actor: Actor,
    /// What it was about.
    pub target: Target,
    /// The tenant, or null on the platform chain.
    pub tenant_id: Option<String>,
    /// Lowercase hex SHA-256 of the canonical `data`.
    pub data_sha256: String,
    /// Hash of the previous entry.
    pub prev: String,
    /// Hash of this entry's envelope.
    pub hash: String,
    /// Details (reasons, field diffs); null when shredded.
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
}

impl From<model::EntryView> for EntryView {
    fn from(e: model::EntryView) -> EntryView {
        EntryView {
            chain: e.chain,
            seq: e.seq,
            ts: e.ts,
            action: e.action,
            actor: Actor {
                kind: e.actor.kind,
                id: e.actor.id,
            },
            target: Target {
                kind: e.target.kind,
                id: e.target.id,
            },
            tenant_id: e.tenant_id,
            data_sha256: e.data_sha256,
            prev: e.prev,
            hash: e.hash,
            data: e.data,
        }
    }
}

/// A signed checkpoint (AUDIT.md "Checkpoints").
#[derive(Serialize, utoipa::ToSchema)]
pub struct Checkpoint {
    /// `platform` or `tenant:{uuid}`.
    pub chain: String,
    /// Signed seq.
    pub seq: u64,
    /// Lowercase hex hash of the entry at `seq`.
    pub hash: String,
    /// Signing time, RFC 3339 with microseconds.
    pub ts: String,
    /// Lowercase hex SHA-256 of the raw public key.
    pub key_id: String,
    /// Standard base64 (padded) Ed25519 signature.
    pub sig: String,
}

impl From<model::Checkpoint> for Checkpoint {
    fn from(c: model::Checkpoint) -> Checkpoint {
        Checkpoint {
            chain: c.chain,
            seq: c.seq,
            hash: c.hash,
            ts: c.ts,
            key_id: c.key_id,
            sig: c.sig,
        }
    }
}

/// The outcome for one chain.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ChainReport {
    /// `platform` or `tenant:{uuid}`.
    pub chain: String,
    /// Whether every check passed.
    pub ok: bool,
    /// The seq the walk started from: the anchoring checkpoint's seq, or 1.
    pub verified_from_seq: u64,
    /// The recorded head seq.
    pub head_seq: u64,
    /// The recorded head hash (lowercase hex).
    pub head_hash: String,
    /// The first seq that failed, when not ok.
    pub first_bad_seq: Option<u64>,
    /// What failed, in a sentence, when not ok.
    pub problem: Option<String>,
    /// Entries whose hash was recomputed.
    pub entries_checked: u64,
    /// Envelope and data bytes hashed.
    pub bytes_checked: u64,
}

impl From<verify::ChainReport> for ChainReport {
    fn from(r: verify::ChainReport) -> ChainReport {
        ChainReport {
            chain: r.chain,
            ok: r.ok,
            verified_from_seq: r.verified_from_seq,
            head_seq: r.head_seq,
            head_hash: r.head_hash,
            first_bad_seq: r.first_bad_seq,
            problem: r.problem,
            entries_checked: r.entries_checked,
            bytes_checked: r.bytes_checked,
        }
    }
}

crate::string_enum_schema!(
    ActorKind,
    "operator, persona, api_key, system or install (AUDIT.md)."
);

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(tenant_audit_list))
        .routes(routes!(tenant_audit_verify))
        .routes(routes!(audit_list))
        .routes(routes!(audit_verify))
        .routes(routes!(audit_checkpoint, audit_checkpoints_list))
        .routes(routes!(audit_export))
        .routes(routes!(audit_public_key))
}

/// A page of entries.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Entries, newest first.
    pub items: Vec<EntryView>,
    /// Cursor of the next page, or null.
    pub next_cursor: Option<String>,
}

/// Browses the ledger newest first, by chain or tenant, actor, action and time range.
#[utoipa::path(get, path = "/api/audit", tag = "audit", params(AuditFilter),
    responses((status = 200, body = AuditPage), (status = 400, body = Problem)))]
async fn audit_list(
    State(s): State<AppState>,
    ApiQuery(filter): ApiQuery<AuditFilter>,
) -> ApiResult<Json<AuditPage>> {
    let q = filter.parse()?;
    let page = queries::browse(&s, q).await?;
    Ok(Json(AuditPage {
        items: page.items.into_iter().map(EntryView::from).collect(),
        next_cursor: page.next_cursor.map(|c| c.encode()),
    }))
}

/// Body of `POST /api/audit/verify`.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// One chain; every chain when absent.
    pub chain: Option<String>,
    /// Walk from seq 1 instead of from the last good checkpoint.
    pub full: Option<bool>,
}

/// Verify results.
#[derive(Serialize, utoipa::ToSchema)]
pub struct VerifyResponse {
    /// One row per chain.
    pub results: Vec<ChainReport>,
}

/// Verifies chains from their last good checkpoint (or from seq 1 with `full`), then signs a
/// checkpoint at the head of each chain that verified.
#[utoipa::path(post, path = "/api/audit/verify", tag = "audit", request_body(content = Option<VerifyRequest>),
    responses((status = 200, body = VerifyResponse), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn audit_verify(
    State(s): State<AppState>,
    OptionalJson(body): OptionalJson<VerifyRequest>,
) -> ApiResult<Json<VerifyResponse>> {
    let chain = body
        .chain
        .as_deref()
        .map(|c| ChainId::parse(c).map_err(|m| Error::invalid("chain", m)))
        .transpose()?;
    let mode = if body.full.unwrap_or(false) {
        Mode::Full
    } else {
        Mode::FromCheckpoint
    };
    let results =
        super::verify_and_checkpoint(s.store(), s.clock().now(), s.install_key(), chain, mode)
            .await?;
    Ok(Json(VerifyResponse {
        results: results.into_iter().map(ChainReport::from).collect(),
    }))
}

/// Body of `POST /api/audit/checkpoints`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointRequest {
    /// The chain to sign.
    pub chain: String,
}

/// Verifies `chain` since its last checkpoint and signs its current head.
#[utoipa::path(post, path = "/api/audit/checkpoints", tag = "audit", request_body = CheckpointRequest,
    responses((status = 201, body = Checkpoint), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn audit_checkpoint(
    State(s): State<AppState>,
    ApiJson(body): ApiJson<CheckpointRequest>,
) -> ApiResult<(StatusCode, Json<Checkpoint>)> {
    let chain = ChainId::parse(&body.chain).map_err(|m| Error::invalid("chain", m))?;
    let cp = super::checkpoint(s.store(), s.clock().now(), s.install_key(), chain).await?;
    Ok((StatusCode::CREATED, Json(cp.into())))
}

/// `?chain=` of checkpoint listing and export.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ChainParam {
    /// `platform` or `tenant:{uuid}`.
    pub chain: String,
}

/// The signed checkpoints of a chain, oldest first.
#[utoipa::path(get, path = "/api/audit/checkpoints", tag = "audit", params(ChainParam),
    responses((status = 200, body = Vec<Checkpoint>), (status = 400, body = Problem)))]
async fn audit_checkpoints_list(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ChainParam>,
) -> ApiResult<Json<Vec<Checkpoint>>> {
    let chain = parse_chain(&q.chain)?;
    Ok(Json(
        super::list_checkpoints(s.store(), chain)
            .await?
            .into_iter()
            .map(Checkpoint::from)
            .collect(),
    ))
}

/// NDJSON export of a chain (AUDIT.md "Export"): one `{"entry", "hash", "data"}` line per entry
/// in seq order, then its `{"checkpoint"}` lines.
#[utoipa::path(get, path = "/api/audit/export", tag = "audit", params(ChainParam),
    responses((status = 200, content_type = "application/x-ndjson", body = String), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn audit_export(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ChainParam>,
) -> ApiResult<Response> {
    let chain = parse_chain(&q.chain)?;
    let rx = super::export(s.store(), s.exports(), chain).await?;
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let stream = tokio_stream::StreamExt::map(stream, |r| {
        r.map_err(|e| std::io::Error::other(e.to_string()))
    });
    let file = format!(
        "attachment; filename=\"audit-{}.ndjson\"",
        chain.to_string().replace(':', "-")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_string()),
            (header::CONTENT_DISPOSITION, file),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// The install's checkpoint-signing key.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublicKey {
    /// Lowercase hex SHA-256 of the raw public key.
    pub key_id: String,
    /// Standard base64 of the raw 32-byte Ed25519 public key.
    pub public_key: String,
}

/// The public key that verifies checkpoint signatures.
#[utoipa::path(get, path = "/api/audit/public-key", tag = "audit", responses((status = 200, body = PublicKey)))]
async fn audit_public_key(State(s): State<AppState>) -> Json<PublicKey> {
    let key = s.install_key();
    Json(PublicKey {
        key_id: key.key_id().to_string(),
        public_key: key.public_b64(),
    })
}

/// The filters of `GET /api/tenants/{id}/audit`: the tenant's own chain.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TenantAuditFilter {
    /// An actor id (a persona or API key id, an operator's username...).
    pub actor_id: Option<String>,
    /// An event name, e.g. `persona.created.v1`.
    pub action: Option<String>,
    /// RFC 3339: entries at or after.
    pub from: Option<String>,
    /// RFC 3339: entries at or before.
    pub to: Option<String>,
    /// Page size, 1–500 (default 50).
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The tenant's own chain, newest first (tenant admin guide: "your own auditors can verify").
#[utoipa::path(get, path = "/api/tenants/{id}/audit", tag = "audit",
    params(("id" = String, Path, description = "Tenant id"), TenantAuditFilter),
    responses((status = 200, body = AuditPage), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn tenant_audit_list(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(f): ApiQuery<TenantAuditFilter>,
) -> ApiResult<Json<AuditPage>> {
    let tenant = crate::error::path_id("tenant", &id)?;
    s.read(move |r| crate::tenants::queries::get(r, &tenant))
        .await?;
    let q = AuditFilter {
        chain: None,
        tenant_id: Some(tenant.to_string()),
        actor_id: f.actor_id,
        action: f.action,
        from: f.from,
        to: f.to,
        limit: f.limit,
        cursor: f.cursor,
    }
    .parse()?;
    let page = queries::browse(&s, q).await?;
    Ok(Json(AuditPage {
        items: page.items.into_iter().map(EntryView::from).collect(),
        next_cursor: page.next_cursor.map(|c| c.encode()),
    }))
}

/// Body of `POST /api/tenants/{id}/audit/verify`.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantVerifyRequest {
    /// Walk from seq 1 instead of from the last good checkpoint.
    pub full: Option<bool>,
}

/// Verifies the tenant's chain from its last good checkpoint (or from seq 1 with `full`), then
/// signs a checkpoint at its head if it verified.
#[utoipa::path(post, path = "/api/tenants/{id}/audit/verify", tag = "audit",
    params(("id" = String, Path, description = "Tenant id")),
    request_body(content = Option<TenantVerifyRequest>),
    responses((status = 200, body = ChainReport), (status = 404, body = Problem)))]
async fn tenant_audit_verify(
    State(s): State<AppState>,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<Option<TenantVerifyRequest>>,
) -> ApiResult<Json<ChainReport>> {
    let body = body.unwrap_or_default();
    let tenant = crate::error::path_id("tenant", &id)?;
    s.read(move |r| crate::tenants::queries::get(r, &tenant))
        .await?;
    let mode = if body.full.unwrap_or(false) {
        Mode::Full
    } else {
        Mode::FromCheckpoint
    };
    let report = super::verify_and_checkpoint(
        s.store(),
        s.clock().now(),
        s.install_key(),
        Some(ChainId::Tenant(tenant)),
        mode,
    )
    .await?
    .into_iter()
    .next()
    .ok_or_else(|| Error::not_found("chain", format!("tenant:{tenant}")))?;
    Ok(Json(report.into()))
}
