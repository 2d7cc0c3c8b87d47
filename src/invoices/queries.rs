//! The read model of invoices: one invoice (a draft priced live from the maintained usage
//! aggregates), pages of invoices from the indexes, the upcoming invoice, anomalies, showback by
//! business unit, delinquency, and the billing profile. Nothing here scans usage events: a draft
//! costs one read per SKU total (plus [`ANOMALY_PERIODS`] for its trailing average) whatever the
//! number of events behind it.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::model::*;
use crate::catalogs::model::price;
use crate::error::{Error, Result};
use crate::metering::model::{
    USAGE_BY_BU, USAGE_TOTALS, counter, period_of, period_prefix, previous, total_key,
};
use crate::metering::queries::MAX_LINES;
use crate::store::keys::{Key, KeyReader};
use crate::store::page::{Cursor, Page, Scan, Step, page};
use crate::store::{Dir, Range, Reader};
use crate::tenants::model::{State, Tenant};

/// Rows a filtered page may examine before it returns what it has.
pub const SCAN_BUDGET: usize = 5_000;

/// An invoice's lines, priced now.
#[derive(Clone, Debug, Default)]
pub struct Priced {
    /// ISO 4217 (the pinned catalog's, else the plan's; empty when neither).
    pub currency: String,
    /// Plan fee first, then usage by SKU.
    pub lines: Vec<Line>,
    /// Sum of the lines.
    pub total_minor: i64,
    /// Unusual usage.
    pub anomalies: Vec<Anomaly>,
    /// Why it cannot be finalized as it stands (the plan and the catalog bill in different
    /// currencies).
    pub mismatch: Option<String>,
}

/// Months since year 0 of period `p` (to compare periods a year apart).
fn months(p: u32) -> u32 {
    (p / 100) * 12 + (p % 100)
}

/// Does the plan fee fall in `period`? Monthly plans bill every period; yearly ones in the
/// period of the plan's assignment and every twelfth after it (billed in advance, as Stripe
/// does). Tenants that are not paying (provisioned, in a trial, offboarded) owe no fee.
fn fee_due(
    r: &impl Reader,
    t: &Tenant,
    plan: &crate::plans::model::Plan,
    period: u32,
) -> Result<bool> {
    if !matches!(
        t.state,
        State::Active | State::Suspended | State::Offboarding
    ) {
        return Ok(false);
    }
    Ok(match plan.interval {
        crate::plans::model::Interval::Month => true,
        crate::plans::model::Interval::Year => {
            let since = crate::plans::queries::history(r, &t.id, 1)?
                .first()
                .map_or(t.created_at, |a| a.at);
            months(period)
                .abs_diff(months(period_of(since)))
                .is_multiple_of(12)
        }
    })
}

/// Is `quantity` of `sku` in `period` an anomaly: over [`ANOMALY_FACTOR`]× the average of the
/// [`ANOMALY_PERIODS`] periods before (operator guide §4, "sudden 10× usage")? A SKU with no
/// usage before is not flagged.
pub fn anomaly(
    r: &impl Reader,
    tenant: &Uuid,
    period: u32,
    sku: &str,
    quantity: u64,
) -> Result<Option<Anomaly>> {
    let mut p = period;
    let mut sum: u64 = 0;
    for _ in 0..ANOMALY_PERIODS {
        p = previous(p);
        sum = sum.saturating_add(counter(r.get(USAGE_TOTALS, &total_key(tenant, p, sku))?));
    }
    let avg = sum / u64::from(ANOMALY_PERIODS);
    Ok(
        (avg > 0 && quantity > avg.saturating_mul(ANOMALY_FACTOR)).then(|| Anomaly {
            sku: sku.to_string(),
            quantity,
            trailing_average: avg,
        }),
    )
}

/// Prices `tenant`'s `period` now: the plan fee (when due) and each SKU's usage beyond the
/// plan's included quantity, with the tiers of the tenant's pinned catalog version (a tenant
/// moved mid-period is priced at its new version for the whole period). A SKU the version does
/// not rate is listed at 0.
pub fn price_period(r: &impl Reader, t: &Tenant, period: u32) -> Result<Priced> {
    let plan = match &t.plan {
        Some(code) => crate::plans::queries::get(r, code).ok(),
        None => None,
    };
    let pinned = crate::catalogs::queries::pinned_version(r, &t.id)?;
    let mut out = Priced {
        currency: pinned
            .as_ref()
            .map(|(_, c, _)| c.currency.clone())
            .or_else(|| plan.as_ref().map(|p| p.currency.clone()))
            .unwrap_or_default(),
        ..Priced::default()
    };
    if let Some(p) = &plan
        && fee_due(r, t, p, period)?
    {
        if p.currency != out.currency {
            out.mismatch = Some(format!(
                "plan '{}' bills in {} but the pinned catalog in {}: move the tenant to a catalog in {} or change its plan",
                p.code, p.currency, out.currency, p.currency
            ));
        }
        out.lines.push(Line {
            kind: LineKind::Plan,
            description: format!("{} plan ({})", p.name, p.interval.as_str()),
            sku: None,
            unit: None,
            quantity: 1,
            included: 0,
            amount_minor: p.amount_minor,
            catalog_id: None,
            catalog_version: None,
            plan: Some(p.code.clone()),
        });
    }
    for (sku, quantity) in crate::metering::queries::totals(r, &t.id, period)? {
        let rate = pinned.as_ref().and_then(|(_, _, v)| v.rate(&sku));
        let included = plan.as_ref().map_or(0, |p| p.included(&sku));
        let amount_minor = rate.map_or(0, |rt| price(rt, quantity.saturating_sub(included)));
        if let Some(a) = anomaly(r, &t.id, period, &sku, quantity)? {
            out.anomalies.push(a);
        }
        out.lines.push(Line {
            kind: LineKind::Usage,
            description: match rate {
                Some(rt) => format!("{sku} ({})", rt.unit),
                None => format!("{sku} (not rated by the pinned version)"),
            },
            unit: rate.map(|rt| rt.unit.clone()),
            sku: Some(sku),
            quantity,
            included,
            amount_minor,
            catalog_id: pinned.as_ref().map(|(p, _, _)| p.catalog_id),
            catalog_version: pinned.as_ref().map(|(p, _, _)| p.version),
            plan: None,
        });
    }
    out.total_minor = out
        .lines
        .iter()
        .fold(0i64, |acc, l| acc.saturating_add(l.amount_minor));
    Ok(out)
}

/// Reads a stored invoice as stored (a draft without its lines).
///
/// Errors: 404.
pub fn stored(r: &impl Reader, id: &Uuid) -> Result<Invoice> {
    r.get_record::<InvoiceRecord>(INVOICES, id.as_bytes())?
        .map(|InvoiceRecord::V1(i)| i)
        .ok_or_else(|| Error::not_found("invoice", id.to_string()))
}

/// Fills a draft's lines, total, currency and anomalies from the aggregates.
pub fn live(r: &impl Reader, mut inv: Invoice) -> Result<Invoice> {
    if inv.status == Status::Draft {
        let t = crate::tenants::directory::load(r, &inv.tenant_id)?;
        let p = price_period(r, &t, inv.period)?;
        inv.currency = p.currency;
        inv.lines = p.lines;
        inv.total_minor = p.total_minor;
        inv.anomalies = p.anomalies;
    }
    Ok(inv)
}

/// One invoice, a draft priced now.
///
/// Errors: 404.
pub fn get(r: &impl Reader, id: &Uuid) -> Result<Invoice> {
    live(r, stored(r, id)?)
}

/// The id of `tenant`'s invoice of `period`, if one is open.
pub fn of_period(r: &impl Reader, tenant: &Uuid, period: u32) -> Result<Option<Uuid>> {
    Ok(period_row(r, tenant, period)?.map(|(id, _)| id))
}

/// `tenant`'s invoice of `period` and whether it is a draft, from its period row alone.
pub fn period_row(r: &impl Reader, tenant: &Uuid, period: u32) -> Result<Option<(Uuid, bool)>> {
    Ok(r.get(INVOICE_PERIODS, &period_key(tenant, period))?
        .and_then(|b| parse_period_value(&b)))
}

/// The upcoming invoice: `tenant`'s draft of the period at `now`, priced now. Without a stored
/// draft yet (a tenant with no plan nor pin, or none opened) it is priced all the same, with a
/// nil id.
///
/// Errors: 404 for an unknown tenant.
pub fn upcoming(r: &impl Reader, tenant: &Uuid, now: DateTime<Utc>) -> Result<Invoice> {
    let t = crate::tenants::directory::load(r, tenant)?;
    let period = period_of(now);
    if let Some(id) = of_period(r, tenant, period)? {
        return get(r, &id);
    }
    let p = price_period(r, &t, period)?;
    Ok(Invoice {
        currency: p.currency,
        lines: p.lines,
        total_minor: p.total_minor,
        anomalies: p.anomalies,
        ..Invoice::draft(Uuid::nil(), *tenant, period, now)
    })
}

/// The filters of `GET /api/invoices` (API.md "Lists"): all optional.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InvoiceFilter {
    /// Only this tenant's.
    pub tenant_id: Option<String>,
    /// `draft`, `finalized`, `paid` or `void`.
    pub status: Option<String>,
    /// `yyyymm`.
    pub period: Option<String>,
    /// Only invoices past due (`true`).
    pub overdue: Option<bool>,
    /// From the previous page.
    pub cursor: Option<String>,
    /// 1–500 (50).
    pub limit: Option<usize>,
}

fn bad_query(msg: String) -> Error {
    Error::bad_request("invalid_query", msg)
}

/// Parses a `yyyymm` period.
///
/// Errors: 400 `invalid_query`.
pub fn parse_period(s: &str) -> Result<u32> {
    let s = s.trim();
    let p: u32 = s
        .parse()
        .ok()
        .filter(|p| s.len() == 6 && (1..=12).contains(&(p % 100)) && *p >= 197001)
        .ok_or_else(|| bad_query(format!("period '{s}' is not a month as yyyymm (202611)")))?;
    Ok(p)
}

/// A page of invoices, newest period first, from the index that fits the filters: by tenant,
/// else by status, else all; a period narrows each to a prefix. Drafts are priced live.
///
/// Errors: 400 `invalid_query`, `invalid_cursor`.
pub fn list(r: &impl Reader, tenant: Option<&Uuid>, f: &InvoiceFilter) -> Result<Page<Invoice>> {
    let tenant = match tenant {
        Some(t) => Some(*t),
        None => match f
            .tenant_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(s) => Some(
                crate::ids::parse_uuid(s)
                    .ok_or_else(|| bad_query(format!("tenant_id '{s}' is not a UUID")))?,
            ),
            None => None,
        },
    };
    let status = match f.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            bad_query(format!(
                "status '{s}' is invalid: use draft, finalized, paid or void"
            ))
        })?),
        None => None,
    };
    let period = match f.period.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(s) => Some(parse_period(s)?),
        None => None,
    };
    let cursor = f
        .cursor
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Cursor::decode)
        .transpose()?;
    let mut prefix = match (&tenant, status) {
        (Some(t), _) => Key::new().u8(IDX_TENANT).uuid(t),
        (None, Some(s)) => Key::new().u8(IDX_STATUS).u8(s.code()),
        (None, None) => Key::new().u8(IDX_ALL),
    };
    if let Some(p) = period {
        prefix = prefix.u64(u64::from(p));
    }
    let want_overdue = f.overdue;
    page(
        r,
        Scan {
            table: INVOICE_INDEX,
            range: Range::prefix(prefix.as_bytes()),
            dir: Dir::Desc,
            limit: crate::store::page::limit(f.limit)?,
            cursor: cursor.as_ref(),
            budget: Some(SCAN_BUDGET),
        },
        |k, _| {
            let Some(id) = k
                .len()
                .checked_sub(16)
                .and_then(|at| Uuid::from_slice(&k[at..]).ok())
            else {
                return Ok(Step::Skip);
            };
            let inv = stored(r, &id)?;
            if status.is_some_and(|s| s != inv.status)
                || want_overdue.is_some_and(|o| o != inv.overdue)
            {
                return Ok(Step::Skip);
            }
            Ok::<_, Error>(Step::Keep(live(r, inv)?))
        },
    )
}

/// Is `tenant` delinquent, and since when?
pub fn delinquent_since(r: &impl Reader, tenant: &Uuid) -> Result<Option<DateTime<Utc>>> {
    Ok(r.get(DELINQUENT, tenant.as_bytes())?.and_then(|b| {
        <[u8; 8]>::try_from(b.as_slice())
            .ok()
            .map(|a| crate::clock::from_micros(i64::from_be_bytes(a)))
    }))
}

/// How many tenants are delinquent (a maintained counter).
pub fn delinquent_count(r: &impl Reader) -> Result<u64> {
    Ok(counter(
        r.get(INVOICE_COUNTERS, DELINQUENT_COUNT.as_bytes())?,
    ))
}

/// `tenant`'s billing profile (the default one when none was saved).
pub fn profile(r: &impl Reader, tenant: &Uuid) -> Result<Profile> {
    Ok(
        r.get_record::<ProfileRecord>(BILLING_PROFILES, tenant.as_bytes())?
            .map(|ProfileRecord::V1(p)| p)
            .unwrap_or_default(),
    )
}

/// One row of showback: a business unit's usage and cost of one SKU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShowbackRow {
    /// The business unit (None: usage no business unit drove).
    pub business_unit_id: Option<Uuid>,
    /// Its name (`Unattributed` for None).
    pub business_unit: String,
    /// SKU.
    pub sku: String,
    /// Units.
    pub quantity: u64,
    /// Its share of the SKU line's amount, in minor units (the line's amount split by
    /// quantity, rounded half up; the unattributed row takes the remainder).
    pub amount_minor: i64,
}

/// Showback (tenant admin guide §1): a period's usage and cost by business unit, from the
/// maintained `(tenant, period, SKU, BU)` aggregates and the period's invoice (its stored lines
/// once finalized, else priced now).
///
/// Errors: 404 for an unknown tenant.
pub fn showback(r: &impl Reader, tenant: &Uuid, period: u32) -> Result<(String, Vec<ShowbackRow>)> {
    let t = crate::tenants::directory::load(r, tenant)?;
    let (currency, lines) = match of_period(r, tenant, period)? {
        Some(id) => {
            let inv = get(r, &id)?;
            (inv.currency, inv.lines)
        }
        None => {
            let p = price_period(r, &t, period)?;
            (p.currency, p.lines)
        }
    };
    let names: BTreeMap<Uuid, String> = crate::members::queries::business_units(r, tenant)?
        .into_iter()
        .map(|b| (b.id, b.name))
        .collect();
    let mut by_sku: BTreeMap<String, Vec<(Uuid, u64)>> = BTreeMap::new();
    let prefix = period_prefix(tenant, period);
    let mut seen = 0usize;
    r.scan(
        USAGE_BY_BU,
        &Range::prefix(&prefix),
        Dir::Asc,
        &mut |k, v| {
            let mut kr = KeyReader::new(&k[prefix.len()..]);
            if let (Some(sku), Some(bu)) = (kr.str(), kr.uuid()) {
                by_sku
                    .entry(sku)
                    .or_default()
                    .push((bu, counter(Some(v.to_vec()))));
            }
            seen += 1;
            Ok(if seen >= MAX_LINES * 20 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        },
    )?;
    let mut rows = Vec::new();
    for l in lines.iter().filter(|l| l.kind == LineKind::Usage) {
        let Some(sku) = &l.sku else { continue };
        let mut left_q = l.quantity;
        let mut left_a = l.amount_minor;
        for (bu, q) in by_sku.remove(sku).unwrap_or_default() {
            let share = share(l.amount_minor, q, l.quantity);
            left_q = left_q.saturating_sub(q);
            left_a = left_a.saturating_sub(share);
            rows.push(ShowbackRow {
                business_unit_id: Some(bu),
                business_unit: names
                    .get(&bu)
                    .cloned()
                    .unwrap_or_else(|| "(deleted unit)".into()),
                sku: sku.clone(),
                quantity: q,
                amount_minor: share,
            });
        }
        if left_q > 0 || left_a != 0 {
            rows.push(ShowbackRow {
                business_unit_id: None,
                business_unit: "Unattributed".into(),
                sku: sku.clone(),
                quantity: left_q,
                amount_minor: left_a,
            });
        }
    }
    rows.sort_by(|a, b| {
        (a.business_unit_id.is_none(), &a.business_unit, &a.sku).cmp(&(
            b.business_unit_id.is_none(),
            &b.business_unit,
            &b.sku,
        ))
    });
    Ok((currency, rows))
}

/// `amount × part / whole`, rounded half up (0 when `whole` is 0).
pub fn share(amount: i64, part: u64, whole: u64) -> i64 {
    if whole == 0 {
        return 0;
    }
    let n = i128::from(amount) * i128::from(part) * 2 + i128::from(whole);
    i64::try_from(n / (i128::from(whole) * 2)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_round_half_up_and_never_divide_by_zero() {
        assert_eq!(share(1000, 1, 3), 333);
        assert_eq!(share(1000, 2, 3), 667);
        assert_eq!(share(5, 1, 2), 3);
        assert_eq!(share(5, 1, 0), 0);
    }

    #[test]
    fn periods_parse_as_yyyymm_only() {
        assert_eq!(parse_period("202611").unwrap(), 202611);
        for bad in ["2026-11", "202613", "202600", "2026111", "abc"] {
            assert!(parse_period(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn yearly_fees_recur_every_twelve_months() {
        assert_eq!(months(202701) - months(202601), 12);
        assert_eq!(months(202612).abs_diff(months(202512)) % 12, 0);
    }
}
