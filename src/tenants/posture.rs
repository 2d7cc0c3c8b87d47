//! The revenue-posture counters of the tenant directory (platform dashboard spec §3.4): tenants
//! by plan, paying tenants by plan, and daily buckets of trials started, converted and ending.
//! They are maintained by [`super::directory::save`] in the same write as every tenant change,
//! so the revenue posture (`crate::revenue`) is a handful of point reads, never a scan.
//!
//! `tenant_posture_counts` holds `dimension\0value -> u64` (big-endian), like `tenant_counts`,
//! but in its own table so the dashboard's `tenant_counts` scan never walks the daily buckets:
//!
//! | dimension | value | counts |
//! |---|---|---|
//! | `plan` | plan code | tenants on the plan that are not `offboarded` |
//! | `paying` | plan code | tenants on the plan in state `active` (not trial, suspended or leaving) |
//! | `trial_started` | `yyyymmdd` | `provisioned → trial` transitions that day |
//! | `trial_converted` | `yyyymmdd` | `trial → active` transitions that day |
//! | `trial_ends` | `yyyymmdd` | tenants in `trial` whose trial ends that day (UTC) |
//!
//! `plan`, `paying` and `trial_ends` describe the tenant as it is (a change moves it from one
//! key to another); `trial_started` and `trial_converted` count transitions and only grow.

use std::ops::ControlFlow;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::model::{State, Tenant};
use crate::error::Result;
use crate::store::{Dir, Range, Reader, Table, WriteCtx};

/// The counters: `dimension\0value -> u64` (see the module doc).
pub const POSTURE: Table = Table::new("tenant_posture_counts");

/// Tenants by plan code, offboarded excluded.
pub const PLAN: &str = "plan";
/// Active (paying) tenants by plan code.
pub const PAYING: &str = "paying";
/// Trials started per UTC day.
pub const TRIAL_STARTED: &str = "trial_started";
/// Trials converted to `active` per UTC day.
pub const TRIAL_CONVERTED: &str = "trial_converted";
/// Running trials by the UTC day they end.
pub const TRIAL_ENDS: &str = "trial_ends";

/// Most values a by-plan read returns (plans are capped at 100; codes of removed plans may
/// linger with a count of zero).
const MAX_VALUES: usize = 1_000;

/// The `yyyymmdd` bucket of an instant (UTC).
pub fn day_key(t: DateTime<Utc>) -> String {
    t.format("%Y%m%d").to_string()
}

fn key(dim: &str, value: &str) -> Vec<u8> {
    format!("{dim}\0{value}").into_bytes()
}

/// The keys that describe `t` as it is (each counts 1).
fn state_keys(t: &Tenant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if let Some(plan) = &t.plan
        && t.state != State::Offboarded
    {
        out.push(key(PLAN, plan));
        if t.state == State::Active {
            out.push(key(PAYING, plan));
        }
    }
    if let (State::Trial, Some(end)) = (t.state, t.trial_ends_at) {
        out.push(key(TRIAL_ENDS, &day_key(end)));
    }
    out
}

fn bump(ctx: &mut WriteCtx<'_>, k: &[u8], delta: i64) -> Result<()> {
    let cur = ctx
        .get(POSTURE, k)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes);
    let next = (cur as i64).saturating_add(delta).max(0) as u64;
    ctx.put(POSTURE, k, &next.to_be_bytes())?;
    Ok(())
}

/// Keeps the counters right for a tenant moving from `old` (absent when provisioned) to `new`,
/// in the caller's write. Transitions are stamped with `new.state_since` (the write's `now`).
pub fn update(ctx: &mut WriteCtx<'_>, old: Option<&Tenant>, new: &Tenant) -> Result<()> {
    let before = old.map(state_keys).unwrap_or_default();
    let after = state_keys(new);
    for k in before.iter().filter(|k| !after.contains(k)) {
        bump(ctx, k, -1)?;
    }
    for k in after.iter().filter(|k| !before.contains(k)) {
        bump(ctx, k, 1)?;
    }
    let from = old.map(|o| o.state);
    if from != Some(State::Trial) && new.state == State::Trial && from != Some(State::Offboarding) {
        // `provisioned → trial` (cancelling an offboarding back to trial is not a new trial).
        bump(ctx, &key(TRIAL_STARTED, &day_key(new.state_since)), 1)?;
    }
    if from == Some(State::Trial) && new.state == State::Active {
        bump(ctx, &key(TRIAL_CONVERTED, &day_key(new.state_since)), 1)?;
    }
    Ok(())
}

/// Recounts every counter from `tenants` (the upgrade's one pass over the primary table): the
/// describing counters exactly, `trial_started` from running trials by the day they entered
/// `trial`. Conversions before the upgrade are not recorded anywhere but the ledger, so
/// `trial_converted` starts empty. Returns how many keys it wrote.
pub fn rebuild<'a>(
    ctx: &mut WriteCtx<'_>,
    tenants: impl IntoIterator<Item = &'a Tenant>,
) -> Result<usize> {
    ctx.delete_range(POSTURE, &Range::all())?;
    let mut counts = std::collections::BTreeMap::<Vec<u8>, u64>::new();
    for t in tenants {
        for k in state_keys(t) {
            *counts.entry(k).or_default() += 1;
        }
        if t.state == State::Trial {
            *counts
                .entry(key(TRIAL_STARTED, &day_key(t.state_since)))
                .or_default() += 1;
        }
    }
    for (k, n) in &counts {
        ctx.put(POSTURE, k, &n.to_be_bytes())?;
    }
    Ok(counts.len())
}

/// One counter; 0 when never set.
pub fn get(r: &impl Reader, dim: &str, value: &str) -> Result<u64> {
    Ok(r.get(POSTURE, &key(dim, value))?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes))
}

/// The non-zero counters of a by-plan dimension ([`PLAN`] or [`PAYING`]), by plan code.
pub fn by_plan(r: &impl Reader, dim: &str) -> Result<Vec<(String, u64)>> {
    let prefix = key(dim, "");
    let mut out = Vec::new();
    let mut seen = 0usize;
    r.scan(POSTURE, &Range::prefix(&prefix), Dir::Asc, &mut |k, v| {
        seen += 1;
        let n = <[u8; 8]>::try_from(v).map_or(0, u64::from_be_bytes);
        if n > 0 {
            let code = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            out.push((code, n));
        }
        Ok(if seen >= MAX_VALUES {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })?;
    Ok(out)
}

/// The sum of a daily dimension over `days` days from `first` on: `days` point reads.
pub fn days_sum(r: &impl Reader, dim: &str, first: NaiveDate, days: u32) -> Result<u64> {
    let mut total = 0u64;
    for i in 0..days {
        let d = first + Duration::days(i64::from(i));
        total = total.saturating_add(get(r, dim, &d.format("%Y%m%d").to_string())?);
    }
    Ok(total)
}
