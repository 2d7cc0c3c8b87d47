//! The Tenant console's Billing page (the live meter with its cap badges and a daily chart per
//! SKU, refreshed every 60 s by a meta refresh, so it works without JavaScript; then invoices
//! and showback), and the operator's tenant-detail panel "Usage this period" with the yellow
//! soft-cap badge.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use uuid::Uuid;

use super::model::days_in;
use super::queries::{self, Meter};
use crate::console::charts;
use crate::console::fmt::money;
use crate::console::layout::{Ctx, Tone, badge, empty, header, page};
use crate::console::{ConsoleError, PageResult};
use crate::error::{Error, Result};
use crate::rbac::Principal;
use crate::state::AppState;
use crate::store::ReadCtx;

/// The Billing page.
pub fn router() -> Router<AppState> {
    Router::new().route("/tenant/{tenant_id}/billing", get(view_billing_get))
}

fn amount(m: &Meter, minor: i64) -> String {
    match &m.pinned {
        Some((_, _, _, currency)) => money(minor, currency),
        None => "—".into(),
    }
}

fn meter_table(m: &Meter, drill: bool) -> Markup {
    html! {
        @if m.lines.is_empty() {
            (empty("No usage this period yet.", html! { "Events posted to POST /api/usage/events show here." }))
        } @else {
            div.table-wrap { table {
                thead { tr { th scope="col" { "SKU" } th scope="col" { "Used" } th scope="col" { "Included" } th scope="col" { "Soft cap" } th scope="col" { "Accrued" } } }
                tbody {
                    @for l in &m.lines {
                        tr {
                            td { code { (l.sku) } " " (l.unit) }
                            td { (l.quantity) }
                            td { (l.included) }
                            td {
                                (l.soft_cap.map_or("—".to_string(), |c| c.to_string()))
                                @if l.over_cap { " " (badge(Tone::Warn, "soft-cap exceeded")) }
                            }
                            td { (amount(m, l.amount_minor)) }
                        }
                        @if drill && !l.sources.is_empty() {
                            tr { td colspan="5" {
                                details {
                                    summary { "Who drove " (l.sku) }
                                    ul { @for s in &l.sources { li { (s.kind) " " code { (s.id) } ": " (s.quantity) } } }
                                }
                            } }
                        }
                    }
                }
                tfoot { tr { th scope="row" colspan="4" { "Total accrued" } td { strong { (amount(m, m.total_minor)) } } } }
            } }
        }
    }
}

/// Most SKUs charted day by day on the Billing page (those with the most units; the meter's
/// table lists every SKU).
const MAX_DAILY_CHARTS: usize = 12;

/// A chart per SKU of its units per day this period, from the daily rollup kept with each
/// total (no event is read).
fn daily_charts(m: &Meter) -> Markup {
    let mut lines: Vec<&queries::Line> = m.lines.iter().filter(|l| !l.days.is_empty()).collect();
    lines.sort_by(|a, b| b.quantity.cmp(&a.quantity).then_with(|| a.sku.cmp(&b.sku)));
    let first = m.period_start.date_naive();
    let days = usize::try_from(days_in(m.period)).unwrap_or(0);
    let per_day = |l: &queries::Line| {
        let mut values = vec![0u64; days];
        for &(day, units) in &l.days {
            if let Some(v) = values.get_mut(usize::from(day).wrapping_sub(1)) {
                *v = units;
            }
        }
        values
    };
    html! {
        @if !lines.is_empty() {
            h2 { "Daily usage" }
            @if lines.len() > MAX_DAILY_CHARTS {
                p.muted { "The " (MAX_DAILY_CHARTS) " SKUs with the most units; the table above lists all " (lines.len()) "." }
            }
            section.grid2 {
                @for l in lines.iter().take(MAX_DAILY_CHARTS) {
                    div.card {
                        h3 { code { (l.sku) } }
                        (charts::daily(&format!("{} per day (UTC)", l.sku), first, &per_day(l), &l.unit))
                    }
                }
            }
        }
    }
}

fn period_note(m: &Meter) -> Markup {
    html! {
        p.muted {
            "Period " (m.period_start.format("%Y-%m-%d")) " to " (m.period_end.format("%Y-%m-%d")) " (UTC)"
            @if let Some((_, name, v, _)) = &m.pinned { ", priced by " (name) " v" (v) }
            @if let Some(p) = &m.plan { ", plan " (p) }
            "."
        }
    }
}

/// The Tenant console's Billing page: the live meter.
pub async fn view_billing_get(State(state): State<AppState>, ctx: Ctx) -> PageResult {
    let t = ctx
        .tenant
        .clone()
        .ok_or_else(|| ConsoleError(Error::not_found("tenant", ctx.path.clone())))?;
    let now = state.clock().now();
    let id = t.id;
    let (m, sections) = state
        .read(move |r| {
            Ok((
                queries::live(r, &id, now)?,
                crate::invoices::views::tenant_sections(r, &id, now)?,
            ))
        })
        .await
        .map_err(ConsoleError)?;
    let over = m.lines.iter().any(|l| l.over_cap);
    Ok(page(
        &ctx,
        "Billing",
        html! {
            (header("Billing", Some("Live meter: this period's accrued usage by SKU."), html! { a.button href=(t.at("/billing")) { "Refresh" } }))
            @if over {
                div.flash.warn role="status" {
                    "A SKU is over its soft cap. Requests still succeed, but API answers carry a Warning header. Talk to your account representative about raising the cap or moving to a higher plan."
                }
            }
            // The meter refreshes itself about every 60 s, without JavaScript.
            meta http-equiv="refresh" content="60";
            (period_note(&m))
            (meter_table(&m, true))
            (daily_charts(&m))
            (sections)
        },
    ))
}

/// The operator's tenant detail: usage this period, with the yellow badge of caps exceeded.
pub fn tenant_panel(
    r: &ReadCtx,
    tenant: &Uuid,
    _p: &Principal,
    now: DateTime<Utc>,
) -> Result<Markup> {
    let m = queries::live(r, tenant, now)?;
    let over: Vec<&queries::Line> = m.lines.iter().filter(|l| l.over_cap).collect();
    Ok(html! {
        section.card #usage {
            h2 { "Usage this period " @if !over.is_empty() { (badge(Tone::Warn, "soft-cap exceeded")) } }
            @for l in &over {
                p { code { (l.sku) } " " (l.quantity) "/" (l.soft_cap.unwrap_or_default()) " — it never blocks; API answers carry a Warning." }
            }
            (period_note(&m))
            (meter_table(&m, false))
        }
    })
}
