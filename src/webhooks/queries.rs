//! The read model of webhooks: endpoints (a tenant's, or every tenant's paged), attempts per
//! endpoint (newest first, paged), the DLQ (newest first, filtered, paged), deliveries, the next
//! due deliveries for the delivery loop, and the event catalogue.

use std::ops::ControlFlow;

use serde::Deserialize;
use uuid::Uuid;

use super::model::*;
use super::service::{endpoints_of, load, load_delivery};
use crate::error::{Error, INVALID_QUERY, Result};
use crate::store::keys::{Key, KeyReader};
use crate::store::page::{Cursor, Page, Scan, Step, limit, page};
use crate::store::{Dir, Range, Reader, codec};

/// One event type of the catalogue (`GET /api/event-types`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventType {
    /// The name, e.g. `persona.created.v1`.
    pub name: String,
    /// `ledger` (an action of the audit ledger), `billing` or `webhooks`.
    pub source: &'static str,
    /// What it means, when known.
    pub description: Option<&'static str>,
}

/// The published catalogue: the ledger's event names (every context's `events`) plus
/// [`EXTRA_EVENTS`], sorted by name.
pub fn catalogue(ledger_events: &[&'static str]) -> Vec<EventType> {
    let mut out: Vec<EventType> = ledger_events
        .iter()
        .map(|e| EventType {
            name: (*e).to_string(),
            source: "ledger",
            description: None,
        })
        .chain(EXTRA_EVENTS.iter().map(|(n, s, d)| EventType {
            name: (*n).to_string(),
            source: s,
            description: Some(d),
        }))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    out
}

/// The names of [`catalogue`].
pub fn catalogue_names(ledger_events: &[&'static str]) -> Vec<String> {
    catalogue(ledger_events)
        .into_iter()
        .map(|e| e.name)
        .collect()
}

/// The endpoint `id` of `tenant`.
///
/// Errors: 404.
pub fn get(r: &impl Reader, tenant: &Uuid, id: &Uuid) -> Result<Endpoint> {
    Ok(load(r, tenant, id)?.view(*tenant, *id))
}

/// Every endpoint of `tenant`, oldest first (at most [`MAX_ENDPOINTS`]).
pub fn list(r: &impl Reader, tenant: &Uuid) -> Result<Vec<Endpoint>> {
    Ok(endpoints_of(r, tenant)?
        .into_iter()
        .map(|(id, e)| e.view(*tenant, id))
        .collect())
}

/// The paging query of cross-tenant lists.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size, 1–500 (default 50).
    pub limit: Option<usize>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

fn cursor_of(s: Option<&str>) -> Result<Option<Cursor>> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Cursor::decode)
        .transpose()
        .map_err(Error::from)
}

/// Every tenant's endpoints, by tenant then creation (operator guide §5: "every configured
/// webhook subscription across all tenants").
///
/// Errors: 400 `invalid_query`, `invalid_cursor`.
pub fn list_all(r: &impl Reader, q: &PageQuery) -> Result<Page<Endpoint>> {
    let cursor = cursor_of(q.cursor.as_deref())?;
    page(
        r,
        Scan {
            table: ENDPOINTS,
            range: Range::all(),
            dir: Dir::Asc,
            limit: limit(q.limit)?,
            cursor: cursor.as_ref(),
            budget: None,
        },
        |k, v| {
            let mut kr = KeyReader::new(k);
            let (Some(t), Some(id)) = (kr.uuid(), kr.uuid()) else {
                return Ok::<_, Error>(Step::Skip);
            };
            let EndpointRecord::V1(e) = codec::decode(ENDPOINTS.name(), v)?;
            Ok(Step::Keep(e.view(t, id)))
        },
    )
}

/// Attempts of an endpoint, newest first.
///
/// Errors: 404 unknown endpoint; 400 `invalid_query`, `invalid_cursor`.
pub fn attempts(
    r: &impl Reader,
    tenant: &Uuid,
    endpoint: &Uuid,
    q: &PageQuery,
) -> Result<Page<Attempt>> {
    load(r, tenant, endpoint)?;
    let cursor = cursor_of(q.cursor.as_deref())?;
    page(
        r,
        Scan {
            table: ATTEMPTS,
            range: Range::prefix(Key::new().uuid(tenant).uuid(endpoint).as_bytes()),
            dir: Dir::Desc,
            limit: limit(q.limit)?,
            cursor: cursor.as_ref(),
            budget: None,
        },
        |k, v| {
            let mut kr = KeyReader::new(k);
            let (_, _) = (kr.uuid(), kr.uuid());
            let (Some(at), Some(d), Some(n)) = (kr.i64(), kr.uuid(), kr.u64()) else {
                return Ok::<_, Error>(Step::Skip);
            };
            let AttemptRecord::V1(a) = codec::decode(ATTEMPTS.name(), v)?;
            Ok(Step::Keep(Attempt {
                endpoint_id: *endpoint,
                delivery_id: d,
                msg_id: a.msg_id,
                event_type: a.event_type,
                attempt: u32::try_from(n).unwrap_or(u32::MAX),
                at: crate::clock::from_micros(at),
                outcome: a.outcome,
                status: a.status,
                latency_ms: a.latency_ms,
                error: a.error,
                next_attempt_at: a.next_attempt_at.map(crate::clock::from_micros),
                dead_lettered: a.dead_lettered,
            }))
        },
    )
}

/// The filters of the DLQ lists (operator guide §5: "search by tenant or event type").
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DlqFilter {
    /// Only this tenant's (cross-tenant list only; the tenant's own list is of its tenant).
    pub tenant_id: Option<String>,
    /// Only this endpoint's.
    pub endpoint_id: Option<String>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Page size, 1–500 (default 50).
    pub limit: Option<usize>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// Rows a DLQ page examines at most before it returns what it has, with a cursor to go on.
pub const DLQ_SCAN_BUDGET: usize = 5_000;

fn uuid_filter(name: &str, v: Option<&str>) -> Result<Option<Uuid>> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => Ok(Some(crate::ids::parse_uuid(s).ok_or_else(|| {
            Error::bad_request(INVALID_QUERY, format!("{name} '{s}' is not a UUID"))
        })?)),
        None => Ok(None),
    }
}

/// The DLQ, newest first: every tenant's, or `tenant`'s (which then overrides the filter's).
///
/// Errors: 400 `invalid_query`, `invalid_cursor`.
pub fn dlq(r: &impl Reader, tenant: Option<&Uuid>, f: &DlqFilter) -> Result<Page<Delivery>> {
    let tenant = match tenant {
        Some(t) => Some(*t),
        None => uuid_filter("tenant_id", f.tenant_id.as_deref())?,
    };
    let endpoint = uuid_filter("endpoint_id", f.endpoint_id.as_deref())?;
    let event_type = f
        .event_type
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let cursor = cursor_of(f.cursor.as_deref())?;
    let range = match &tenant {
        Some(t) => Range::prefix(Key::new().u8(DLQ_TENANT).uuid(t).as_bytes()),
        None => Range::prefix(&[DLQ_ALL]),
    };
    page(
        r,
        Scan {
            table: DLQ,
            range,
            dir: Dir::Desc,
            limit: limit(f.limit)?,
            cursor: cursor.as_ref(),
            budget: Some(DLQ_SCAN_BUDGET),
        },
        |k, _| {
            let mut kr = KeyReader::new(k);
            let (t, d) = match kr.u8() {
                Some(DLQ_ALL) => {
                    let _ = kr.i64();
                    (kr.uuid(), kr.uuid())
                }
                _ => {
                    let t = kr.uuid();
                    let _ = kr.i64();
                    (t, kr.uuid())
                }
            };
            let (Some(t), Some(d)) = (t, d) else {
                return Ok::<_, Error>(Step::Skip);
            };
            let Some(rec) = load_delivery(r, &t, &d)? else {
                return Ok(Step::Skip);
            };
            if endpoint.is_some_and(|e| e.as_bytes() != &rec.endpoint_id)
                || event_type.as_ref().is_some_and(|e| *e != rec.event_type)
            {
                return Ok(Step::Skip);
            }
            Ok(Step::Keep(rec.view(t, d)))
        },
    )
}

/// The delivery `id` of `tenant`.
///
/// Errors: 404.
pub fn delivery(r: &impl Reader, tenant: &Uuid, id: &Uuid) -> Result<Delivery> {
    load_delivery(r, tenant, id)?
        .map(|d| d.view(*tenant, *id))
        .ok_or_else(|| Error::not_found("webhook delivery", id.to_string()))
}

/// A pending delivery whose time has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Due {
    /// Its tenant.
    pub tenant: Uuid,
    /// Its endpoint.
    pub endpoint: Uuid,
    /// The delivery.
    pub delivery: Uuid,
    /// When it is due (µs).
    pub at: i64,
}

/// Up to `max` pending deliveries due at `now_micros` or before, earliest first, and the time
/// of the earliest one not yet due (for the loop's sleep).
pub fn due(r: &impl Reader, now_micros: i64, max: usize) -> Result<(Vec<Due>, Option<i64>)> {
    let mut out = Vec::new();
    let mut next = None;
    r.scan(DUE, &Range::all(), Dir::Asc, &mut |k, _| {
        let mut kr = KeyReader::new(k);
        let (Some(at), Some(t), Some(e), Some(d)) = (kr.i64(), kr.uuid(), kr.uuid(), kr.uuid())
        else {
            return Ok(ControlFlow::Continue(()));
        };
        if at > now_micros {
            next = Some(at);
            return Ok(ControlFlow::Break(()));
        }
        if out.len() >= max {
            return Ok(ControlFlow::Break(()));
        }
        out.push(Due {
            tenant: t,
            endpoint: e,
            delivery: d,
            at,
        });
        Ok(ControlFlow::Continue(()))
    })?;
    Ok((out, next))
}

/// What the delivery loop needs to send a delivery: its record and its endpoint's (if the
/// endpoint still exists).
pub fn for_sending(
    r: &impl Reader,
    tenant: &Uuid,
    delivery: &Uuid,
) -> Result<Option<(DeliveryV1, Option<EndpointV1>)>> {
    let Some(d) = load_delivery(r, tenant, delivery)? else {
        return Ok(None);
    };
    let ep = match load(r, tenant, &Uuid::from_bytes(d.endpoint_id)) {
        Ok(e) => Some(e),
        Err(Error::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    Ok(Some((d, ep)))
}

/// Counts of a tenant's webhooks for its pages: endpoints, and DLQ entries (up to 1000).
pub fn counts(r: &impl Reader, tenant: &Uuid) -> Result<(usize, usize)> {
    let eps = endpoints_of(r, tenant)?.len();
    let mut dead = 0usize;
    r.scan(
        DLQ,
        &Range::prefix(Key::new().u8(DLQ_TENANT).uuid(tenant).as_bytes()),
        Dir::Asc,
        &mut |_, _| {
            dead += 1;
            Ok(if dead >= 1000 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        },
    )?;
    Ok((eps, dead))
}
