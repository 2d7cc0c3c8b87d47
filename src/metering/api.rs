//! `POST /api/usage/events` (ingest) and `GET /api/tenants/{id}/usage/live` (the live meter),
//! and their wire types.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::model::{EventDraft, MAX_BATCH};
use super::queries;
use super::service::Outcome;
use crate::error::{Error, path_id};
use crate::http::extract::{ApiJson, Caller};
use crate::http::problem::{ApiResult, Problem};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(usage_ingest))
        .routes(routes!(usage_live))
}

/// A usage event.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageEvent {
    /// Idempotency key, unique per tenant, 1–128 characters: a repeat is counted once. Ids
    /// made in order (UUIDv7, ULID, or a batch number and a position) are stored side by side
    /// and ingest faster than random ones.
    pub event_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// SKU code of the tenant's pinned catalog version.
    pub sku: String,
    /// Units, 1–10^12.
    pub quantity: i64,
    /// When it happened (RFC 3339); its month is its billing period.
    pub ts: String,
    /// The API key that drove it (default: the posting key).
    pub api_key_id: Option<String>,
    /// The persona that drove it (default: the posting key's persona).
    pub persona_id: Option<String>,
    /// A JSON object of up to 1024 bytes, kept with the raw event.
    #[schema(value_type = Option<Object>)]
    pub properties: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `POST /api/usage/events` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageBatch {
    /// 1–1000 events.
    pub events: Vec<UsageEvent>,
}

/// What happened to one event.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventResult {
    /// The event's id as posted.
    pub event_id: String,
    /// `accepted`, `duplicate` (counted once already) or `rejected`.
    #[schema(value_type = String)]
    pub status: &'static str,
    /// For a rejection: `invalid_event`, `unknown_tenant`, `offboarded_tenant`, `no_catalog`,
    /// `unknown_sku`, `closed_period`, `future_timestamp`, `unknown_attribution`.
    #[schema(value_type = Option<String>)]
    pub reason: Option<&'static str>,
    /// For a rejection: what is wrong.
    pub detail: Option<String>,
}

/// The answer to a batch: durable (committed) before it is sent.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IngestResult {
    /// Events counted now.
    pub accepted: usize,
    /// Events already counted.
    pub duplicates: usize,
    /// Events refused.
    pub rejected: usize,
    /// One result per event, in order.
    pub results: Vec<EventResult>,
}

/// Ingests a batch of usage events: each is accepted, a duplicate (idempotent by `event_id`)
/// or rejected with a reason, and a bad event never fails its neighbours. The batch is durable
/// before the answer. A soft cap crossed never blocks: the answer carries
/// `Warning: 299 tenantry "soft cap exceeded: <sku> <used>/<cap>"`.
#[utoipa::path(post, path = "/api/usage/events", tag = "usage", request_body = UsageBatch,
    responses((status = 200, body = IngestResult), (status = 422, body = Problem)))]
async fn usage_ingest(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiJson(body): ApiJson<UsageBatch>,
) -> ApiResult<Response> {
    if body.events.is_empty() || body.events.len() > MAX_BATCH {
        return Err(Error::invalid("events", format!("send 1-{MAX_BATCH} events")).into());
    }
    let ids: Vec<String> = body.events.iter().map(|e| e.event_id.clone()).collect();
    let events: Vec<_> = body
        .events
        .into_iter()
        .map(|e| {
            EventDraft {
                event_id: e.event_id,
                tenant_id: e.tenant_id,
                sku: e.sku,
                quantity: e.quantity,
                ts: e.ts,
                api_key_id: e.api_key_id,
                persona_id: e.persona_id,
                properties: e
                    .properties
                    .map(|m| serde_json::Value::Object(m).to_string()),
            }
            .parse()
        })
        .collect();
    let (done, warnings) = super::ingest(&s, &p, events).await?;
    let mut out = IngestResult {
        accepted: 0,
        duplicates: 0,
        rejected: 0,
        results: Vec::with_capacity(done.len()),
    };
    for (id, o) in ids.into_iter().zip(done) {
        let (status, reason, detail) = match o {
            Outcome::Accepted => {
                out.accepted += 1;
                ("accepted", None, None)
            }
            Outcome::Duplicate => {
                out.duplicates += 1;
                ("duplicate", None, None)
            }
            Outcome::Rejected(r, m) => {
                out.rejected += 1;
                ("rejected", Some(r.as_str()), Some(m))
            }
        };
        out.results.push(EventResult {
            event_id: id,
            status,
            reason,
            detail,
        });
    }
    let mut res = Json(out).into_response();
    for w in warnings {
        if let Ok(v) = HeaderValue::from_str(&w) {
            res.headers_mut().append(header::WARNING, v);
        }
    }
    Ok(res)
}

/// An API key or persona behind a SKU's usage.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UsageSource {
    /// `api_key` or `persona`.
    pub kind: String,
    /// Its id.
    pub id: Uuid,
    /// Units this period.
    pub quantity: u64,
}

/// The units of one day (UTC) of a SKU, for charts.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DailyUsage {
    /// The day, `YYYY-MM-DD` (UTC).
    pub date: chrono::NaiveDate,
    /// Units that day.
    pub quantity: u64,
}

/// One SKU of the live meter.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MeterLine {
    /// SKU code.
    pub sku: String,
    /// Its unit.
    pub unit: String,
    /// Units this period.
    pub quantity: u64,
    /// Units the tenant's plan includes.
    pub included: u64,
    /// Accrued cost in minor units (graduated tiers of the pinned version, beyond the
    /// included units).
    pub amount_minor: i64,
    /// The tenant's soft cap (null: none).
    pub soft_cap: Option<u64>,
    /// Over the soft cap.
    pub over_soft_cap: bool,
    /// The API keys and personas that drove it, largest first (up to 20).
    pub sources: Vec<UsageSource>,
    /// Units per day this period, for the days with usage, in date order (the daily rollup
    /// maintained with the total).
    pub daily: Vec<DailyUsage>,
}

/// The live meter: the current period's accrued usage and cost by SKU.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LiveMeter {
    /// The tenant.
    pub tenant_id: Uuid,
    /// `yyyymm`.
    pub period: String,
    /// Start of the period.
    pub period_start: DateTime<Utc>,
    /// End of the period (exclusive).
    pub period_end: DateTime<Utc>,
    /// The catalog pricing it (null: not pinned).
    pub catalog_id: Option<Uuid>,
    /// The catalog's name.
    pub catalog_name: Option<String>,
    /// The version pricing it.
    pub catalog_version: Option<u32>,
    /// ISO 4217 of every amount (null: not pinned).
    pub currency: Option<String>,
    /// The tenant's plan.
    pub plan: Option<String>,
    /// SKUs with usage this period.
    pub lines: Vec<MeterLine>,
    /// Sum of the lines' amounts, minor units.
    pub total_minor: i64,
}

impl LiveMeter {
    /// The wire form of a meter.
    pub fn of(tenant: Uuid, m: queries::Meter) -> LiveMeter {
        let (catalog_id, catalog_name, catalog_version, currency) = match m.pinned {
            Some((id, n, v, c)) => (Some(id), Some(n), Some(v), Some(c)),
            None => (None, None, None, None),
        };
        LiveMeter {
            tenant_id: tenant,
            period: m.period.to_string(),
            period_start: m.period_start,
            period_end: m.period_end,
            catalog_id,
            catalog_name,
            catalog_version,
            currency,
            plan: m.plan,
            lines: m
                .lines
                .into_iter()
                .map(|l| MeterLine {
                    daily: l
                        .days
                        .iter()
                        .filter_map(|&(day, quantity)| {
                            Some(DailyUsage {
                                date: super::model::date_of(m.period, day)?,
                                quantity,
                            })
                        })
                        .collect(),
                    sku: l.sku,
                    unit: l.unit,
                    quantity: l.quantity,
                    included: l.included,
                    amount_minor: l.amount_minor,
                    soft_cap: l.soft_cap,
                    over_soft_cap: l.over_cap,
                    sources: l
                        .sources
                        .into_iter()
                        .map(|s| UsageSource {
                            kind: s.kind.into(),
                            id: s.id,
                            quantity: s.quantity,
                        })
                        .collect(),
                })
                .collect(),
            total_minor: m.total_minor,
        }
    }
}

/// The live meter of a tenant: the current period's accrued quantity and cost by SKU, priced
/// by its pinned version, with the API keys and personas behind each SKU. Read from maintained
/// aggregates: the same cost at one event as at ten million.
#[utoipa::path(get, path = "/api/tenants/{id}/usage/live", tag = "usage",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = LiveMeter), (status = 404, body = Problem)))]
async fn usage_live(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<LiveMeter>> {
    let tenant = path_id("tenant", &id)?;
    let now = s.clock().now();
    let m = s.read(move |r| queries::live(r, &tenant, now)).await?;
    Ok(Json(LiveMeter::of(tenant, m)))
}
