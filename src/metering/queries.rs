//! The read model of metering: the live meter of a tenant's current period, priced by its pinned
//! catalog version, read from the maintained aggregates only. Its cost does not depend on the
//! number of events: it reads one total per SKU and at most [`MAX_SOURCES_SCANNED`] attribution
//! rows per SKU.

use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::model::*;
use crate::catalogs::model::price;
use crate::error::Result;
use crate::store::keys::{Key, KeyReader};
use crate::store::{Dir, Range, Reader, codec};

/// Most SKU totals a meter reads.
pub const MAX_LINES: usize = 500;
/// Most attribution rows read per SKU.
pub const MAX_SOURCES_SCANNED: usize = 1000;
/// Attribution rows shown per SKU (the largest).
pub const MAX_SOURCES: usize = 20;

/// An API key or persona that drove a SKU's usage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// `api_key` or `persona`.
    pub kind: &'static str,
    /// Its id.
    pub id: Uuid,
    /// Units this period.
    pub quantity: u64,
}

/// One SKU of the meter.
#[derive(Clone, Debug)]
pub struct Line {
    /// SKU.
    pub sku: String,
    /// Its unit (empty when the pinned version no longer rates it).
    pub unit: String,
    /// Units this period.
    pub quantity: u64,
    /// Units the plan includes.
    pub included: u64,
    /// Accrued cost in minor units (tiers applied to the units beyond the included ones).
    pub amount_minor: i64,
    /// The tenant's soft cap.
    pub soft_cap: Option<u64>,
    /// Over the cap?
    pub over_cap: bool,
    /// The largest API keys and personas behind it.
    pub sources: Vec<Source>,
    /// `(day of the month, units)` for each day of the period with usage, in day order: the
    /// daily rollup kept in the same row as the quantity, so it costs no further read.
    pub days: Vec<(u8, u64)>,
}

/// A tenant's live meter.
#[derive(Clone, Debug)]
pub struct Meter {
    /// `yyyymm`.
    pub period: u32,
    /// Period start.
    pub period_start: DateTime<Utc>,
    /// Period end (exclusive).
    pub period_end: DateTime<Utc>,
    /// `(catalog id, name, version, currency)` of the pin, if any.
    pub pinned: Option<(Uuid, String, u32, String)>,
    /// The plan's code.
    pub plan: Option<String>,
    /// SKUs.
    pub lines: Vec<Line>,
    /// Sum of the lines.
    pub total_minor: i64,
}

/// The live meter of `tenant` at `now`.
///
/// Errors: 404 for an unknown tenant.
pub fn live(r: &impl Reader, tenant: &Uuid, now: DateTime<Utc>) -> Result<Meter> {
    let t = crate::tenants::directory::load(r, tenant)?;
    let period = period_of(now);
    let pinned = crate::catalogs::queries::pinned_version(r, tenant)?;
    let plan = match &t.plan {
        Some(code) => crate::plans::queries::get(r, code).ok(),
        None => None,
    };
    let totals = scan_totals(r, tenant, period, |v| Total::decode(Some(v)))?;
    let mut lines = Vec::with_capacity(totals.len());
    let mut total_minor: i64 = 0;
    for (sku, Total { quantity, days }) in totals {
        let rate = pinned.as_ref().and_then(|(_, _, v)| v.rate(&sku));
        let included = plan.as_ref().map_or(0, |p| p.included(&sku));
        let amount_minor = rate.map_or(0, |r| price(r, quantity.saturating_sub(included)));
        let soft_cap = match (&pinned, rate) {
            (Some((p, _, _)), Some(r)) => p.soft_cap(r),
            _ => None,
        };
        total_minor = total_minor.saturating_add(amount_minor);
        lines.push(Line {
            unit: rate.map(|r| r.unit.clone()).unwrap_or_default(),
            over_cap: soft_cap.is_some_and(|c| quantity > c),
            sources: sources(r, tenant, period, &sku)?,
            sku,
            quantity,
            included,
            amount_minor,
            soft_cap,
            days,
        });
    }
    Ok(Meter {
        period,
        period_start: period_start(period),
        period_end: period_end(period),
        pinned: pinned.map(|(p, c, _)| (c.id, c.name, p.version, c.currency)),
        plan: t.plan,
        lines,
        total_minor,
    })
}

/// The usage totals of a tenant's period by SKU, in SKU order (at most [`MAX_LINES`]).
pub fn totals(r: &impl Reader, tenant: &Uuid, period: u32) -> Result<Vec<(String, u64)>> {
    scan_totals(r, tenant, period, |v| Ok(quantity(v)))
}

/// The rows of a tenant's period in [`USAGE_TOTALS`], each read by `read`, in SKU order (at
/// most [`MAX_LINES`]).
fn scan_totals<T>(
    r: &impl Reader,
    tenant: &Uuid,
    period: u32,
    read: impl Fn(&[u8]) -> crate::store::Result<T>,
) -> Result<Vec<(String, T)>> {
    let prefix = period_prefix(tenant, period);
    let mut out = Vec::new();
    r.scan(
        USAGE_TOTALS,
        &Range::prefix(&prefix),
        Dir::Asc,
        &mut |k, v| {
            let sku = KeyReader::new(&k[prefix.len()..]).str().unwrap_or_default();
            out.push((sku, read(v)?));
            Ok(if out.len() >= MAX_LINES {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        },
    )?;
    Ok(out)
}

/// The largest API keys and personas behind a SKU in a period.
pub fn sources(r: &impl Reader, tenant: &Uuid, period: u32, sku: &str) -> Result<Vec<Source>> {
    let prefix = Key::new()
        .uuid(tenant)
        .u64(u64::from(period))
        .str(sku)
        .into_bytes();
    let mut out = Vec::new();
    let mut seen = 0usize;
    r.scan(
        USAGE_BY_SOURCE,
        &Range::prefix(&prefix),
        Dir::Asc,
        &mut |k, v| {
            let mut kr = KeyReader::new(&k[prefix.len()..]);
            let kind = match kr.u8() {
                Some(SOURCE_API_KEY) => "api_key",
                _ => "persona",
            };
            if let Some(id) = kr.uuid() {
                out.push(Source {
                    kind,
                    id,
                    quantity: counter(Some(v.to_vec())),
                });
            }
            seen += 1;
            Ok(if seen >= MAX_SOURCES_SCANNED {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        },
    )?;
    out.sort_by_key(|s| std::cmp::Reverse(s.quantity));
    out.truncate(MAX_SOURCES);
    Ok(out)
}

/// The soft caps crossed in `period`, by tenant (the board's state at start). Bounded by the
/// crossings of one period.
pub fn crossings(r: &impl Reader, period: u32) -> Result<Vec<(Uuid, String, u64, u64)>> {
    let prefix = Key::new().u64(u64::from(period)).into_bytes();
    let mut out = Vec::new();
    r.scan(
        USAGE_CAP_CROSSINGS,
        &Range::prefix(&prefix),
        Dir::Asc,
        &mut |k, v| {
            let mut kr = KeyReader::new(&k[prefix.len()..]);
            if let (Some(t), Some(sku)) = (kr.uuid(), kr.str()) {
                let CrossingRecord::V1 { used, cap, .. } =
                    codec::decode(USAGE_CAP_CROSSINGS.name(), v)?;
                out.push((t, sku, used, cap));
            }
            Ok(ControlFlow::Continue(()))
        },
    )?;
    Ok(out)
}

/// The total of one SKU of a tenant in a period.
pub fn total(r: &impl Reader, tenant: &Uuid, period: u32, sku: &str) -> Result<u64> {
    Ok(counter(
        r.get(USAGE_TOTALS, &total_key(tenant, period, sku))?,
    ))
}

/// The daily rollup of one SKU of a tenant in a period, for charts: `(day as yyyymmdd, units)`
/// for each day with usage, in day order (at most 31; one row read, whatever the events).
pub fn daily(r: &impl Reader, tenant: &Uuid, period: u32, sku: &str) -> Result<Vec<(u32, u64)>> {
    let row = r.get(USAGE_TOTALS, &total_key(tenant, period, sku))?;
    let total = Total::decode(row.as_deref())?;
    Ok(total
        .days
        .into_iter()
        .map(|(day, n)| (period * 100 + u32::from(day), n))
        .collect())
}

/// How many raw events are kept for deduplication (for tests and the jobs page): the ids of
/// the receipt rows and the event log, plus any legacy events.
pub fn raw_events(r: &impl Reader) -> Result<u64> {
    Ok(r.len(USAGE_DEDUPE)? + r.len(USAGE_EVENTS)?)
}
