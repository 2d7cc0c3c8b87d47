//! `/api/catalogs`, `/api/catalogs/{id}/versions/{v}` (with `publish`, `archive`, `clone`,
//! `migrate`) and `/api/tenants/{id}/catalog`, and their wire types.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::model::{self, RateDraft, parse_catalog, parse_rates, parse_soft_caps};
use super::{queries, service};
use crate::error::{Error, path_id};
use crate::http::extract::{ApiJson, Caller};
use crate::http::problem::{ApiResult, Problem};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(catalogs_list, catalogs_create))
        .routes(routes!(catalogs_get))
        .routes(routes!(versions_get, versions_edit))
        .routes(routes!(versions_publish))
        .routes(routes!(versions_archive))
        .routes(routes!(versions_clone))
        .routes(routes!(versions_migrate))
        .routes(routes!(tenant_catalog_get, tenant_catalog_put))
}

/// A graduated tier.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Last unit of the tier, counted from the period's first unit; null: the last, unbounded
    /// tier.
    pub up_to: Option<u64>,
    /// Minor units per `per_units` units in this tier.
    pub unit_amount_minor: i64,
}

/// A SKU's rate.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// SKU code, e.g. `api_call`.
    pub sku: String,
    /// Unit, e.g. `api_call`, `mb_processed`, `ai_token`.
    pub unit: String,
    /// Tier amounts are per this many units (default 1).
    pub per_units: Option<u64>,
    /// Graduated tiers; the last has `up_to: null`.
    pub tiers: Vec<Tier>,
    /// Soft cap per billing period (null: none). Crossing it never blocks.
    pub soft_cap: Option<u64>,
}

impl From<&model::Rate> for Rate {
    fn from(r: &model::Rate) -> Rate {
        Rate {
            sku: r.sku.clone(),
            unit: r.unit.clone(),
            per_units: Some(r.per_units),
            tiers: r
                .tiers
                .iter()
                .map(|t| Tier {
                    up_to: t.up_to,
                    unit_amount_minor: t.unit_amount_minor,
                })
                .collect(),
            soft_cap: r.soft_cap,
        }
    }
}

fn drafts(rates: Vec<Rate>) -> Vec<RateDraft> {
    rates
        .into_iter()
        .map(|r| RateDraft {
            sku: r.sku,
            unit: r.unit,
            per_units: r.per_units,
            tiers: r
                .tiers
                .into_iter()
                .map(|t| (t.up_to, t.unit_amount_minor))
                .collect(),
            soft_cap: r.soft_cap,
        })
        .collect()
}

/// A catalog version with its rate table.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Version {
    /// Its catalog.
    pub catalog_id: Uuid,
    /// 1, 2, ...
    pub version: u32,
    /// `draft`, `published` or `archived`.
    pub status: String,
    /// ISO 4217 of every amount.
    pub currency: String,
    /// The rate table.
    pub rates: Vec<Rate>,
    /// The version it was cloned from.
    pub cloned_from: Option<u32>,
    /// Tenants pinned to it.
    pub tenants_pinned: u64,
    /// Creation.
    pub created_at: DateTime<Utc>,
    /// Last edit or flip.
    pub updated_at: DateTime<Utc>,
    /// When it was published.
    pub published_at: Option<DateTime<Utc>>,
}

fn version_of(v: model::Version, currency: &str, pinned: u64) -> Version {
    Version {
        catalog_id: v.catalog_id,
        version: v.version,
        status: v.status.as_str().into(),
        currency: currency.into(),
        rates: v.rates.iter().map(Rate::from).collect(),
        cloned_from: v.cloned_from,
        tenants_pinned: pinned,
        created_at: v.created_at,
        updated_at: v.updated_at,
        published_at: v.published_at,
    }
}

/// A version in a catalog's list.
#[derive(Serialize, utoipa::ToSchema)]
pub struct VersionSummary {
    /// 1, 2, ...
    pub version: u32,
    /// `draft`, `published` or `archived`.
    pub status: String,
    /// SKUs rated.
    pub skus: usize,
    /// Tenants pinned to it.
    pub tenants_pinned: u64,
    /// When it was published.
    pub published_at: Option<DateTime<Utc>>,
}

/// A catalog.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Catalog {
    /// UUIDv7.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// ISO 4217.
    pub currency: String,
    /// Its newest version.
    pub latest_version: u32,
    /// Creation.
    pub created_at: DateTime<Utc>,
    /// Its versions, newest first (in `GET /api/catalogs/{id}`; empty in lists).
    pub versions: Vec<VersionSummary>,
}

fn catalog_of(c: model::Catalog, versions: Vec<VersionSummary>) -> Catalog {
    Catalog {
        id: c.id,
        name: c.name,
        currency: c.currency,
        latest_version: c.latest_version,
        created_at: c.created_at,
        versions,
    }
}

/// Every catalog.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CatalogList {
    /// In creation order.
    pub items: Vec<Catalog>,
    /// Always null: a platform keeps at most 200 catalogs.
    pub next_cursor: Option<String>,
}

/// `POST /api/catalogs` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCatalog {
    /// 1–80 characters.
    pub name: String,
    /// ISO 4217 of every amount.
    pub currency: String,
    /// Version 1's rate table (a draft).
    pub rates: Vec<Rate>,
}

/// `PUT /api/catalogs/{id}/versions/{v}` body: the draft's new rate table.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateTable {
    /// The rates.
    pub rates: Vec<Rate>,
}

fn version_param(s: &str) -> Result<u32, Error> {
    s.parse::<u32>()
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| Error::not_found("catalog version", s))
}

fn ids(id: &str, v: &str) -> Result<(Uuid, u32), Error> {
    Ok((path_id("catalog", id)?, version_param(v)?))
}

/// Lists the catalogs.
#[utoipa::path(get, path = "/api/catalogs", tag = "catalogs",
    responses((status = 200, body = CatalogList)))]
async fn catalogs_list(State(s): State<AppState>) -> ApiResult<Json<CatalogList>> {
    let items = s.read(queries::list).await?;
    Ok(Json(CatalogList {
        items: items
            .into_iter()
            .map(|c| catalog_of(c, Vec::new()))
            .collect(),
        next_cursor: None,
    }))
}

/// Creates a catalog with version 1 as a draft (`catalog.created.v1`).
#[utoipa::path(post, path = "/api/catalogs", tag = "catalogs", request_body = NewCatalog,
    responses((status = 201, body = Version), (status = 422, body = Problem)))]
async fn catalogs_create(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiJson(body): ApiJson<NewCatalog>,
) -> ApiResult<(StatusCode, Json<Version>)> {
    let (name, currency) = parse_catalog(&body.name, &body.currency)?;
    let rates = parse_rates(drafts(body.rates))?;
    let (c, v) = s
        .write(p.actor, move |ctx| {
            service::create(ctx, &name, &currency, &rates)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(version_of(v, &c.currency, 0))))
}

/// One catalog with its versions.
#[utoipa::path(get, path = "/api/catalogs/{id}", tag = "catalogs",
    params(("id" = String, Path, description = "Catalog id")),
    responses((status = 200, body = Catalog), (status = 404, body = Problem)))]
async fn catalogs_get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Catalog>> {
    let id = path_id("catalog", &id)?;
    let c = s
        .read(move |r| {
            let c = queries::get(r, &id)?;
            let mut out = Vec::new();
            for v in queries::versions(r, &id)? {
                out.push(VersionSummary {
                    version: v.version,
                    status: v.status.as_str().into(),
                    skus: v.rates.len(),
                    tenants_pinned: queries::pinned_count(r, &id, v.version)?,
                    published_at: v.published_at,
                });
            }
            Ok(catalog_of(c, out))
        })
        .await?;
    Ok(Json(c))
}

async fn read_version(s: &AppState, id: Uuid, v: u32) -> Result<Version, Error> {
    s.read(move |r| {
        let c = queries::get(r, &id)?;
        let ver = queries::version(r, &id, v)?;
        let n = queries::pinned_count(r, &id, v)?;
        Ok(version_of(ver, &c.currency, n))
    })
    .await
}

/// One version with its rate table.
#[utoipa::path(get, path = "/api/catalogs/{id}/versions/{v}", tag = "catalogs",
    params(("id" = String, Path, description = "Catalog id"), ("v" = String, Path, description = "Version number")),
    responses((status = 200, body = Version), (status = 404, body = Problem)))]
async fn versions_get(
    State(s): State<AppState>,
    Path((id, v)): Path<(String, String)>,
) -> ApiResult<Json<Version>> {
    let (id, v) = ids(&id, &v)?;
    Ok(Json(read_version(&s, id, v).await?))
}

/// Replaces a draft's rate table (`catalog.version.updated.v1`). A published or archived
/// version is immutable: 409 `version_immutable`.
#[utoipa::path(put, path = "/api/catalogs/{id}/versions/{v}", tag = "catalogs",
    params(("id" = String, Path, description = "Catalog id"), ("v" = String, Path, description = "Version number")),
    request_body = RateTable,
    responses((status = 200, body = Version), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn versions_edit(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, v)): Path<(String, String)>,
    ApiJson(body): ApiJson<RateTable>,
) -> ApiResult<Json<Version>> {
    let (id, v) = ids(&id, &v)?;
    let rates = parse_rates(drafts(body.rates))?;
    s.write(p.actor, move |ctx| service::edit(ctx, &id, v, &rates))
        .await?;
    Ok(Json(read_version(&s, id, v).await?))
}

/// Publishes a draft (`catalog.version.published.v1`): it becomes immutable and tenants can be
/// pinned to it.
#[utoipa::path(post, path = "/api/catalogs/{id}/versions/{v}/publish", tag = "catalogs",
    params(("id" = String, Path, description = "Catalog id"), ("v" = String, Path, description = "Version number")),
    responses((status = 200, body = Version), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn versions_publish(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, v)): Path<(String, String)>,
) -> ApiResult<Json<Version>> {
    let (id, v) = ids(&id, &v)?;
    s.write(p.actor, move |ctx| service::publish(ctx, &id, v))
        .await?;
    Ok(Json(read_version(&s, id, v).await?))
}

/// Archives a published version no tenant is pinned to (`catalog.version.archived.v1`).
#[utoipa::path(post, path = "/api/catalogs/{id}/versions/{v}/archive", tag = "catalogs",
    params(("id" = String, Path, description = "Catalog id"), ("v" = String, Path, description = "Version number")),
    responses((status = 200, body = Version), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn versions_archive(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, v)): Path<(String, String)>,
) -> ApiResult<Json<Version>> {
    let (id, v) = ids(&id, &v)?;
    s.write(p.actor, move |ctx| service::archive(ctx, &id, v))
        .await?;
    Ok(Json(read_version(&s, id, v).await?))
}

/// Clones a version into the catalog's next version, a draft (`catalog.version.cloned.v1`):
/// "quarterly price bump: clone, edit rates, publish".
#[utoipa::path(post, path = "/api/catalogs/{id}/versions/{v}/clone", tag = "catalogs",
    params(("id" = String, Path, description = "Catalog id"), ("v" = String, Path, description = "Version number")),
    responses((status = 201, body = Version), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn versions_clone(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, v)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Version>)> {
    let (id, v) = ids(&id, &v)?;
    let new = s
        .write(p.actor, move |ctx| service::clone(ctx, &id, v))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(read_version(&s, id, new.version).await?),
    ))
}

/// `POST /api/catalogs/{id}/versions/{v}/migrate` body: exactly one of the two.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Migration {
    /// The tenants to move (up to 1000).
    pub tenant_ids: Option<Vec<String>>,
    /// Move (up to 1000) tenants pinned to this version of the same catalog.
    pub from_version: Option<u32>,
}

/// The tenants a migration moved.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Migrated {
    /// Tenants moved (those already on the version are left out).
    pub moved: Vec<Uuid>,
    /// Tenants pinned to the target version now.
    pub tenants_pinned: u64,
}

/// Moves tenants to a published version: the explicit, audited bulk action of a price bump.
/// Each tenant moved gets `catalog.tenant.pinned.v1`; the platform chain gets
/// `catalog.tenants.migrated.v1`. Tenants not named stay where they are.
#[utoipa::path(post, path = "/api/catalogs/{id}/versions/{v}/migrate", tag = "catalogs",
    params(("id" = String, Path, description = "Catalog id"), ("v" = String, Path, description = "Version number")),
    request_body = Migration,
    responses((status = 200, body = Migrated), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn versions_migrate(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, v)): Path<(String, String)>,
    ApiJson(body): ApiJson<Migration>,
) -> ApiResult<Json<Migrated>> {
    let (id, v) = ids(&id, &v)?;
    let tenants: Vec<Uuid> = match (&body.tenant_ids, body.from_version) {
        (Some(list), None) => {
            if list.is_empty() || list.len() > model::MAX_MIGRATE {
                return Err(Error::invalid(
                    "tenant_ids",
                    format!("name 1-{} tenants", model::MAX_MIGRATE),
                )
                .into());
            }
            let mut out = Vec::with_capacity(list.len());
            for t in list {
                let u = crate::ids::parse_uuid(t).ok_or_else(|| {
                    Error::invalid("tenant_ids", format!("'{t}' is not a tenant id"))
                })?;
                if !out.contains(&u) {
                    out.push(u);
                }
            }
            out
        }
        (None, Some(_)) => Vec::new(),
        _ => {
            return Err(
                Error::invalid("tenant_ids", "give either tenant_ids or from_version").into(),
            );
        }
    };
    let from = body.from_version;
    let moved = s
        .write(p.actor, move |ctx| {
            service::migrate(ctx, &id, v, &tenants, from)
        })
        .await?;
    let n = s.read(move |r| queries::pinned_count(r, &id, v)).await?;
    Ok(Json(Migrated {
        moved,
        tenants_pinned: n,
    }))
}

/// A per-tenant soft cap.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SoftCap {
    /// SKU code.
    pub sku: String,
    /// Units per billing period.
    pub cap: u64,
}

/// A tenant's pinned catalog version.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TenantCatalog {
    /// The tenant.
    pub tenant_id: Uuid,
    /// The catalog.
    pub catalog_id: Uuid,
    /// Its name.
    pub catalog_name: String,
    /// The version that prices the tenant's usage.
    pub version: u32,
    /// ISO 4217.
    pub currency: String,
    /// The tenant's soft-cap overrides (they replace the version's caps for these SKUs).
    pub soft_caps: Vec<SoftCap>,
    /// Pinned since.
    pub since: DateTime<Utc>,
}

/// The catalog version a tenant is pinned to.
#[utoipa::path(get, path = "/api/tenants/{id}/catalog", tag = "catalogs",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = TenantCatalog), (status = 404, body = Problem)))]
async fn tenant_catalog_get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TenantCatalog>> {
    let tenant = path_id("tenant", &id)?;
    Ok(Json(read_pin(&s, tenant).await?))
}

async fn read_pin(s: &AppState, tenant: Uuid) -> Result<TenantCatalog, Error> {
    s.read(move |r| {
        crate::tenants::directory::load(r, &tenant)?;
        let (p, c, _) = queries::pinned_version(r, &tenant)?
            .ok_or_else(|| Error::not_found("catalog pin of tenant", tenant.to_string()))?;
        Ok(TenantCatalog {
            tenant_id: tenant,
            catalog_id: c.id,
            catalog_name: c.name,
            version: p.version,
            currency: c.currency,
            soft_caps: p
                .soft_caps
                .into_iter()
                .map(|(sku, cap)| SoftCap { sku, cap })
                .collect(),
            since: p.since,
        })
    })
    .await
}

/// `PUT /api/tenants/{id}/catalog` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinBody {
    /// The catalog.
    pub catalog_id: String,
    /// A published version of it.
    pub version: u32,
    /// Per-tenant soft caps (replacing the version's for these SKUs).
    #[serde(default)]
    pub soft_caps: Vec<SoftCap>,
}

/// Pins a tenant to a published catalog version, with its soft-cap overrides
/// (`catalog.tenant.pinned.v1` on the tenant's chain).
#[utoipa::path(put, path = "/api/tenants/{id}/catalog", tag = "catalogs",
    params(("id" = String, Path, description = "Tenant id")), request_body = PinBody,
    responses((status = 200, body = TenantCatalog), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn tenant_catalog_put(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PinBody>,
) -> ApiResult<Json<TenantCatalog>> {
    let tenant = path_id("tenant", &id)?;
    let catalog = crate::ids::parse_uuid(&body.catalog_id).ok_or_else(|| {
        Error::invalid(
            "catalog_id",
            format!("'{}' is not a catalog id", body.catalog_id),
        )
    })?;
    let caps = parse_soft_caps(body.soft_caps.into_iter().map(|c| (c.sku, c.cap)).collect())?;
    let v = body.version;
    s.write(p.actor, move |ctx| {
        service::pin(ctx, &tenant, &catalog, v, &caps)
    })
    .await?;
    s.caps().clear(&tenant);
    Ok(Json(read_pin(&s, tenant).await?))
}
