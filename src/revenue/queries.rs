//! The read model of the revenue posture: MRR from the maintained counters, the MRR trend from
//! the monthly snapshots, plan distribution, trials, the entitlement exceptions (paged) and the
//! evaluation of one tenant against its plan. Every read is bounded: a few dozen point reads,
//! the plans (at most 100), the last 12 snapshots, or one page.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::model::{
    EXCEPTIONS, EXCEPTIONS_BY_REASON, ExceptionRecord, MRR_SNAPSHOTS, Money, OVERRIDES,
    OverrideRecord, Reason, SnapshotRecord, TREND_MONTHS, monthly_minor,
};
use crate::clock::from_micros;
use crate::error::{Error, INVALID_QUERY, Result};
use crate::plans::model::Plan;
use crate::store::keys::{Key, KeyReader};
use crate::store::page::{self, Cursor, Page, Scan, Step};
use crate::store::{Dir, Range, Reader, codec};
use crate::tenants::model::{State, Tenant};
use crate::tenants::posture;

/// Trials in the revenue posture (dashboard spec §3.4 "Trials (started, expiring soon,
/// converted)"), from daily buckets at UTC day granularity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trials {
    /// Trials started today or in the 29 days before (30 point reads).
    pub started_30d: u64,
    /// Running trials whose end falls today or in the next 7 days (8 point reads).
    pub expiring_7d: u64,
    /// `trial → active` conversions today or in the 29 days before (30 point reads).
    pub converted_30d: u64,
}

/// The revenue posture of the platform (`GET /api/platform/revenue`, the dashboard's revenue
/// section).
#[derive(Clone, Debug, Default)]
pub struct Posture {
    /// MRR now, by currency (every currency a plan is priced in, zero included).
    pub mrr: Vec<Money>,
    /// Tenants in state `active` that are on a plan.
    pub paying_tenants: u64,
    /// The last [`TREND_MONTHS`] snapshots, oldest first: `(period yyyymm, MRR then)`.
    pub mrr_trend: Vec<(u32, Vec<Money>)>,
    /// Every plan with its tenants (offboarded excluded), by plan code; then codes that are
    /// no plan record any more, if tenants still hold them.
    pub plan_distribution: Vec<(String, u64)>,
    /// Trials.
    pub trials: Trials,
    /// Open entitlement exceptions.
    pub exceptions_open: u64,
    /// Tenants with an overdue invoice (the invoices' maintained counter).
    pub delinquent_tenants: u64,
}

/// MRR now by currency, and the number of paying tenants: Σ over plans of the paying tenants
/// on it × its monthly-normalized price ([`monthly_minor`]). Reads the plans and one counter
/// prefix; never the tenants.
pub fn mrr(r: &impl Reader) -> Result<(Vec<Money>, u64)> {
    let plans = crate::plans::queries::list(r)?;
    let paying: HashMap<String, u64> = posture::by_plan(r, posture::PAYING)?.into_iter().collect();
    let mut by_currency = BTreeMap::<String, i64>::new();
    let mut tenants = 0u64;
    for p in &plans {
        let n = paying.get(&p.code).copied().unwrap_or(0);
        tenants += n;
        let add = i64::try_from(n)
            .unwrap_or(i64::MAX)
            .saturating_mul(monthly_minor(p.amount_minor, p.interval));
        let e = by_currency.entry(p.currency.clone()).or_default();
        *e = e.saturating_add(add);
    }
    Ok((
        by_currency
            .into_iter()
            .map(|(currency, amount_minor)| Money {
                currency,
                amount_minor,
            })
            .collect(),
        tenants,
    ))
}

/// The last [`TREND_MONTHS`] MRR snapshots, oldest first.
pub fn trend(r: &impl Reader) -> Result<Vec<(u32, Vec<Money>)>> {
    let mut out = Vec::new();
    r.scan(MRR_SNAPSHOTS, &Range::all(), Dir::Desc, &mut |k, v| {
        let period = <[u8; 4]>::try_from(k).map_or(0, u32::from_be_bytes);
        let SnapshotRecord::V1 { mrr, .. } = codec::decode(MRR_SNAPSHOTS.name(), v)?;
        out.push((period, mrr));
        Ok(if out.len() >= TREND_MONTHS {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })?;
    out.reverse();
    Ok(out)
}

/// The snapshot key of a period.
pub fn period_key(period: u32) -> [u8; 4] {
    period.to_be_bytes()
}

/// The trial counters at `now`.
pub fn trials(r: &impl Reader, now: DateTime<Utc>) -> Result<Trials> {
    let today = now.date_naive();
    let month_ago = today - Duration::days(29);
    Ok(Trials {
        started_30d: posture::days_sum(r, posture::TRIAL_STARTED, month_ago, 30)?,
        expiring_7d: posture::days_sum(r, posture::TRIAL_ENDS, today, 8)?,
        converted_30d: posture::days_sum(r, posture::TRIAL_CONVERTED, month_ago, 30)?,
    })
}

/// Tenants by plan (offboarded excluded): every plan record, zero included, then any other
/// code tenants still hold.
pub fn plan_distribution(r: &impl Reader) -> Result<Vec<(String, u64)>> {
    let mut counts: BTreeMap<String, u64> =
        posture::by_plan(r, posture::PLAN)?.into_iter().collect();
    let mut out: Vec<(String, u64)> = crate::plans::queries::codes(r)?
        .into_iter()
        .map(|c| {
            let n = counts.remove(&c).unwrap_or(0);
            (c, n)
        })
        .collect();
    out.extend(counts);
    Ok(out)
}

/// The whole posture at `now`.
pub fn posture(r: &impl Reader, now: DateTime<Utc>) -> Result<Posture> {
    let (mrr, paying_tenants) = mrr(r)?;
    Ok(Posture {
        mrr,
        paying_tenants,
        mrr_trend: trend(r)?,
        plan_distribution: plan_distribution(r)?,
        trials: trials(r, now)?,
        exceptions_open: r.len(EXCEPTIONS)?,
        delinquent_tenants: crate::invoices::queries::delinquent_count(r)?,
    })
}

/// An operator's enforcement override of a tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    /// The tenant.
    pub tenant_id: Uuid,
    /// Why.
    pub reason: String,
    /// Until when (none: until cleared).
    pub expires_at: Option<DateTime<Utc>>,
    /// Who set it.
    pub set_by: String,
    /// When.
    pub set_at: DateTime<Utc>,
}

impl Override {
    /// Does it apply at `now`?
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }
}

/// The override of `tenant`, if one is set (active or expired).
pub fn override_of(r: &impl Reader, tenant: &Uuid) -> Result<Option<Override>> {
    Ok(
        r.get_record::<OverrideRecord>(OVERRIDES, tenant.as_bytes())?
            .map(
                |OverrideRecord::V1 {
                     reason,
                     expires_at,
                     set_by,
                     set_at,
                 }| Override {
                    tenant_id: *tenant,
                    reason,
                    expires_at: expires_at.map(from_micros),
                    set_by,
                    set_at: from_micros(set_at),
                },
            ),
    )
}

/// Why a tenant should be an exception now: one per reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The reason.
    pub reason: Reason,
    /// The count over the limit (limits only).
    pub used: Option<u64>,
    /// The plan's limit (limits only).
    pub limit: Option<u64>,
    /// A sentence, or the override's reason.
    pub detail: String,
}

/// Evaluates `t` against its plan's limits (HQ PRD §6 `plan_enforcer_worker`) and its override
/// at `now`. `plans` holds the plan records by code. Personas and API keys are the maintained
/// per-tenant counters (not revoked), so this is a few point reads. An offboarded tenant has
/// no findings.
pub fn findings(
    r: &impl Reader,
    t: &Tenant,
    plans: &HashMap<String, Plan>,
    now: DateTime<Utc>,
) -> Result<Vec<Finding>> {
    let mut out = Vec::new();
    if t.state == State::Offboarded {
        return Ok(out);
    }
    if let Some(p) = t.plan.as_ref().and_then(|c| plans.get(c)) {
        let checks = [
            (
                Reason::PersonasOverLimit,
                p.limits.max_personas,
                crate::members::model::counter::MEMBERS,
                "personas",
            ),
            (
                Reason::ApiKeysOverLimit,
                p.limits.max_api_keys,
                crate::api_keys::model::counter::ACTIVE,
                "API keys",
            ),
        ];
        for (reason, limit, counter, what) in checks {
            let Some(max) = limit else { continue };
            let used = crate::members::queries::counter(r, &t.id, counter)?;
            if used > max {
                out.push(Finding {
                    reason,
                    used: Some(used),
                    limit: Some(max),
                    detail: format!("{used} {what} on plan {} (limit {max})", p.code),
                });
            }
        }
    }
    if let Some(o) = override_of(r, &t.id)?
        && o.is_active(now)
    {
        out.push(Finding {
            reason: Reason::Override,
            used: None,
            limit: None,
            detail: o.reason,
        });
    }
    Ok(out)
}

/// Every plan record by code (at most 100), for [`findings`].
pub fn plans_by_code(r: &impl Reader) -> Result<HashMap<String, Plan>> {
    Ok(crate::plans::queries::list(r)?
        .into_iter()
        .map(|p| (p.code.clone(), p))
        .collect())
}

/// An open entitlement exception.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exception {
    /// The tenant.
    pub tenant_id: Uuid,
    /// Its display name now (empty once shredded).
    pub tenant_name: String,
    /// Why.
    pub reason: Reason,
    /// Its plan when the exception opened.
    pub plan: Option<String>,
    /// The count over the limit when it opened (limits only).
    pub used: Option<u64>,
    /// The limit (limits only).
    pub limit: Option<u64>,
    /// A sentence, or the override's reason.
    pub detail: String,
    /// When it opened.
    pub opened_at: DateTime<Utc>,
}

/// The key of an exception.
pub fn exception_key(tenant: &Uuid, reason: Reason) -> Vec<u8> {
    Key::new().uuid(tenant).u8(reason.code()).into_bytes()
}

/// The index key of an exception.
pub fn reason_key(reason: Reason, tenant: &Uuid) -> Vec<u8> {
    Key::new().u8(reason.code()).uuid(tenant).into_bytes()
}

/// The open exceptions of one tenant (at most one per reason).
pub fn exceptions_of(r: &impl Reader, tenant: &Uuid) -> Result<Vec<(Reason, ExceptionRecord)>> {
    let prefix = Key::new().uuid(tenant).into_bytes();
    let mut out = Vec::new();
    r.scan(
        EXCEPTIONS,
        &Range::prefix(&prefix),
        Dir::Asc,
        &mut |k, v| {
            if let Some(reason) = k.get(prefix.len()).copied().and_then(Reason::from_code) {
                out.push((reason, codec::decode(EXCEPTIONS.name(), v)?));
            }
            Ok(ControlFlow::Continue(()))
        },
    )?;
    Ok(out)
}

fn exception(r: &impl Reader, tenant: Uuid, reason: Reason, rec: ExceptionRecord) -> Exception {
    let ExceptionRecord::V1 {
        opened_at,
        plan,
        used,
        limit,
        detail,
    } = rec;
    let tenant_name = crate::tenants::queries::get(r, &tenant)
        .map(|t| t.display_name)
        .unwrap_or_default();
    Exception {
        tenant_id: tenant,
        tenant_name,
        reason,
        plan,
        used,
        limit,
        detail,
        opened_at: from_micros(opened_at),
    }
}

/// The filters of `GET /api/platform/enforcement/exceptions` (API.md "Lists").
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExceptionFilter {
    /// `personas_over_limit`, `api_keys_over_limit` or `override`.
    pub reason: Option<String>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of open exceptions, by tenant id (creation order) then reason; with `reason`, from
/// that reason's index.
///
/// Errors: 400 `invalid_query` (unknown reason, bad limit), `invalid_cursor`.
pub fn exceptions(r: &impl Reader, f: &ExceptionFilter) -> Result<Page<Exception>> {
    let reason = match f.reason.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => Some(Reason::parse(s).map_err(|e| Error::bad_request(INVALID_QUERY, e))?),
        None => None,
    };
    let cursor = f.cursor.as_deref().map(Cursor::decode).transpose()?;
    let limit = page::limit(f.limit)?;
    match reason {
        None => page::page(
            r,
            Scan {
                table: EXCEPTIONS,
                range: Range::all(),
                dir: Dir::Asc,
                limit,
                cursor: cursor.as_ref(),
                budget: None,
            },
            |k, v| -> Result<Step<Exception>> {
                let mut kr = KeyReader::new(k);
                let (Some(tenant), Some(reason)) = (kr.uuid(), kr.u8().and_then(Reason::from_code))
                else {
                    return Ok(Step::Skip);
                };
                let rec = codec::decode(EXCEPTIONS.name(), v)?;
                Ok(Step::Keep(exception(r, tenant, reason, rec)))
            },
        ),
        Some(reason) => page::page(
            r,
            Scan {
                table: EXCEPTIONS_BY_REASON,
                range: Range::prefix(&[reason.code()]),
                dir: Dir::Asc,
                limit,
                cursor: cursor.as_ref(),
                budget: None,
            },
            |k, _| -> Result<Step<Exception>> {
                let Ok(tenant) = Uuid::from_slice(&k[1..]) else {
                    return Ok(Step::Skip);
                };
                match r
                    .get_record::<ExceptionRecord>(EXCEPTIONS, &exception_key(&tenant, reason))?
                {
                    Some(rec) => Ok(Step::Keep(exception(r, tenant, reason, rec))),
                    None => Ok(Step::Skip),
                }
            },
        ),
    }
}
