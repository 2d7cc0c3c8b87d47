//! `/platform`: the platform dashboard's first iteration (dashboard spec §2–3): tenants by state,
//! tier and region, tenants created per week, recent admin activity, job health, pool status and
//! the chain-verification badge. Everything comes from maintained counters and bounded reads;
//! nothing scans all tenants.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::{Datelike, Duration};
use maud::html;

use crate::actor::ActorKind;
use crate::audit::ledger::{self, AuditQuery};
use crate::console::charts;
use crate::console::fmt::{self, when};
use crate::console::layout::{Ctx, Tone, badge, header, page};
use crate::console::{ConsoleError, PageResult};
use crate::pools::model::PoolStatus;
use crate::rbac::Permission;
use crate::scheduler::Outcome;
use crate::state::AppState;
use crate::tenants::directory;
use crate::tenants::model::State as TenantState;

/// The platform dashboard.
pub fn router() -> Router<AppState> {
    Router::new().route("/platform", get(view_home_get))
}

/// Weeks shown in the "created per week" chart.
const WEEKS: i64 = 12;

/// The dashboard.
pub async fn view_home_get(State(state): State<AppState>, ctx: Ctx) -> PageResult {
    let now = state.clock().now();
    let today = now.format("%Y-%m-%d").to_string();
    let (summary, activity, pools, last_verify, failures, (posture, exceptions)) = state
        .read(move |r| {
            let activity = ledger::browse(
                r,
                &AuditQuery {
                    actor_kind: Some(ActorKind::Operator),
                    limit: 20,
                    ..AuditQuery::default()
                },
            )?;
            Ok((
                crate::tenants::queries::summary(r)?,
                activity.items,
                crate::pools::queries::list(r)?,
                crate::audit::last_verify(r)?,
                crate::operators::queries::failures_on(r, &today)?,
                (
                    crate::revenue::queries::posture(r, now)?,
                    crate::revenue::queries::exceptions(
                        r,
                        &crate::revenue::queries::ExceptionFilter {
                            limit: Some(5),
                            ..Default::default()
                        },
                    )?
                    .items,
                ),
            ))
        })
        .await
        .map_err(ConsoleError)?;
    let jobs = crate::scheduler::queries::overview(&state)
        .await
        .map_err(ConsoleError)?;

    let count = |s: TenantState| summary.by_state.get(s.as_str()).copied().unwrap_or(0);
    let states: Vec<(String, u64)> = TenantState::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), count(*s)))
        .collect();
    let tiers: Vec<(String, u64)> = summary
        .by_tier
        .iter()
        .map(|(k, v)| (format!("{k} tier"), *v))
        .collect();
    let regions: Vec<(String, u64)> = summary
        .by_region
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let weeks: Vec<(String, u64)> = (0..WEEKS)
        .rev()
        .map(|i| {
            let t = now - Duration::weeks(i);
            let key = directory::week_of(t);
            (
                format!("W{}", t.iso_week().week()),
                summary.created_by_week.get(&key).copied().unwrap_or(0),
            )
        })
        .collect();
    let failing_jobs = jobs.iter().filter(|j| j.consecutive_failures > 0).count();
    let degraded = pools
        .iter()
        .filter(|p| p.status == PoolStatus::Degraded)
        .count();
    let drained = pools
        .iter()
        .filter(|p| p.status == PoolStatus::Drain)
        .count();
    let failed_signins: u64 = failures.iter().map(|(_, n)| n).sum();
    // Red while backups cannot be encrypted: backup_daily refuses to run (issue 12, finding 7).
    let backup_recipients = state.config().backup.recipients.len();

    let revenue = revenue_section(&ctx, &posture, &exceptions);
    let body = html! {
        (header("Platform dashboard", Some("Health of the platform at a glance. Every tile links to its page."), html! {}))
        section.tiles aria-label="Health" {
            a.tile href="/platform/tenants" {
                span.tile-label { "Tenants" }
                span.tile-value { (summary.total) }
                span.tile-note { (count(TenantState::Active)) " active · " (count(TenantState::Trial)) " in trial" }
            }
            a.tile href="/platform/tenants?state=suspended" {
                span.tile-label { "Suspended" }
                span.tile-value { (count(TenantState::Suspended)) }
                span.tile-note { @if count(TenantState::Suspended) > 0 { (badge(Tone::Warn, "needs review")) } @else { (badge(Tone::Ok, "none")) } }
            }
            a.tile href="/platform/tenants?state=offboarding&sort=state" {
                span.tile-label { "Offboarding" }
                span.tile-value { (count(TenantState::Offboarding)) }
                span.tile-note { "read-only until their deadline" }
            }
            a.tile href="/platform/audit" {
                span.tile-label { "Audit ledger" }
                @match &last_verify {
                    None => {
                        span.tile-value { (badge(Tone::Neutral, "not verified yet")) }
                        span.tile-note { "Run Verify on the audit page" }
                    }
                    Some(v) if v.broken == 0 => {
                        span.tile-value { (badge(Tone::Ok, "verified")) }
                        span.tile-note { (v.chains) " chains OK · " (fmt::relative(v.at, now)) }
                    }
                    Some(v) => {
                        span.tile-value { (badge(Tone::Critical, "BROKEN")) }
                        span.tile-note {
                            (v.broken) " of " (v.chains) " chains fail"
                            @if let Some((c, seq)) = &v.first_broken { " · " (c) " at seq " (seq) }
                        }
                    }
                }
            }
            a.tile href="/platform/jobs" {
                span.tile-label { "Jobs" }
                span.tile-value {
                    @if failing_jobs == 0 { (badge(Tone::Ok, "healthy")) } @else { (badge(Tone::Critical, &format!("{failing_jobs} failing"))) }
                }
                span.tile-note { (jobs.len()) " scheduled jobs" }
            }
            a.tile href="/platform/jobs" {
                span.tile-label { "Backups" }
                span.tile-value {
                    @if backup_recipients == 0 { (badge(Tone::Critical, "no recipients")) } @else { (badge(Tone::Ok, "encrypted")) }
                }
                span.tile-note {
                    @if backup_recipients == 0 { "backup_daily is refused: set [backup] recipients" }
                    @else { "to " (backup_recipients) " age recipient" @if backup_recipients > 1 { "s" } }
                }
            }
            a.tile href="/platform/pools" {
                span.tile-label { "Pools" }
                span.tile-value {
                    @if degraded + drained == 0 { (badge(Tone::Ok, "all active")) }
                    @else if drained == 0 { (badge(Tone::Warn, &format!("{degraded} degraded"))) }
                    @else if degraded == 0 { (badge(Tone::Warn, &format!("{drained} draining"))) }
                    @else { (badge(Tone::Warn, &format!("{} not active", degraded + drained))) }
                }
                span.tile-note { (pools.len()) " pools" }
            }
        }
        section.grid2 {
            div.card {
                h2 { "Tenants by state" }
                (charts::bars("Tenants by state", &states, "info"))
            }
            div.card {
                h2 { "Tenants created per week" }
                (charts::columns("Tenants created per week, last 12 weeks", &weeks))
            }
            div.card {
                h2 { "By isolation tier" }
                @if tiers.is_empty() { p.muted { "No tenants yet." } } @else { (charts::bars("Tenants by tier", &tiers, "ok")) }
            }
            div.card {
                h2 { "By region" }
                @if regions.is_empty() { p.muted { "No tenants yet." } } @else { (charts::bars("Tenants by region", &regions, "neutral")) }
            }
        }
        (revenue)
        section.grid2 {
            div.card {
                h2 { "Recent admin activity" }
                @if activity.is_empty() {
                    p.muted { "No operator has changed anything yet." }
                } @else {
                    table {
                        thead { tr { th scope="col" { "When" } th scope="col" { "Actor" } th scope="col" { "Action" } th scope="col" { "Target" } } }
                        tbody {
                            @for e in &activity {
                                tr {
                                    td { (fmt::relative(chrono::DateTime::parse_from_rfc3339(&e.ts).map(|t| t.to_utc()).unwrap_or(now), now)) }
                                    td { (e.actor.id) }
                                    td { code { (e.action) } }
                                    td {
                                        @if e.target.kind == "tenant" {
                                            a href={"/platform/tenants/" (e.target.id)} { "tenant " (e.target.id.get(..8).unwrap_or(&e.target.id)) "…" }
                                        } @else {
                                            (e.target.kind) " " (e.target.id)
                                        }
                                    }
                                }
                            }
                        }
                    }
                    p { a href="/platform/audit" { "All entries →" } }
                }
            }
            div.card {
                h2 { "Job health" }
                table {
                    thead { tr { th scope="col" { "Job" } th scope="col" { "Last run" } th scope="col" { "Outcome" } th scope="col" { "Next" } } }
                    tbody {
                        @for j in &jobs {
                            tr {
                                td { a href="/platform/jobs" { (j.name) } }
                                td { @if let Some(r) = &j.last_run { (when(r.started_at)) } @else { span.muted { "never" } } }
                                td {
                                    @if let Some(r) = &j.last_run { (crate::scheduler::views::outcome_badge(r.outcome)) } @else { (badge(Tone::Neutral, "—")) }
                                    @if j.consecutive_failures > 1 { " " (badge(Tone::Critical, &format!("{} in a row", j.consecutive_failures))) }
                                }
                                td { @if let Some(t) = j.next_run_at { (fmt::relative(t, now)) } }
                            }
                        }
                    }
                }
                @if ctx.can(Permission::Read) {
                    p.muted.small {
                        "Failed sign-ins today: " (failed_signins)
                        @if let Some((u, n)) = failures.first() { " (most: " (u) ", " (n) ")" }
                    }
                }
                @if jobs.iter().any(|j| j.last_run.as_ref().is_some_and(|r| r.outcome == Outcome::Failed)) {
                    p { (badge(Tone::Critical, "attention")) " A job's last run failed: see the jobs page." }
                }
            }
        }
    };
    Ok(page(&ctx, "Platform dashboard", body))
}

/// Revenue and plan enforcement (dashboard spec §3.4): MRR and its monthly trend, plan
/// distribution, trials and the entitlement exceptions, from `revenue::queries` (maintained
/// counters, the last 12 snapshots, one short page). Delinquent tenants join here when the
/// invoices context provides them.
fn revenue_section(
    ctx: &Ctx,
    p: &crate::revenue::queries::Posture,
    exceptions: &[crate::revenue::queries::Exception],
) -> maud::Markup {
    let mrr_text: Vec<String> = p
        .mrr
        .iter()
        .map(|m| fmt::money(m.amount_minor, &m.currency))
        .collect();
    // The trend chart shows the main currency (the one with the largest MRR now) in major units.
    let main = p
        .mrr
        .iter()
        .max_by_key(|m| m.amount_minor)
        .map(|m| m.currency.clone());
    let trend: Vec<(String, u64)> = p
        .mrr_trend
        .iter()
        .map(|(period, mrr)| {
            let amount = mrr
                .iter()
                .find(|m| Some(&m.currency) == main.as_ref())
                .map_or(0, |m| m.amount_minor);
            (
                format!("{:04}-{:02}", period / 100, period % 100),
                u64::try_from(amount / 100).unwrap_or(0),
            )
        })
        .collect();
    let plans: Vec<(String, u64)> = p.plan_distribution.clone();
    html! {
        section.tiles aria-label="Revenue and plan enforcement" {
            div.tile {
                span.tile-label { "MRR" }
                span.tile-value { @if mrr_text.is_empty() { "—" } @else { (mrr_text.join(" · ")) } }
                span.tile-note { (p.paying_tenants) " paying tenant" @if p.paying_tenants != 1 { "s" } }
            }
            a.tile href="/platform/tenants?state=trial" {
                span.tile-label { "Trials" }
                span.tile-value { (p.trials.started_30d) " started" }
                span.tile-note { (p.trials.expiring_7d) " expiring in 7 days · " (p.trials.converted_30d) " converted (30 days)" }
            }
            a.tile href="/platform/enforcement" {
                span.tile-label { "Entitlement exceptions" }
                span.tile-value {
                    @if p.exceptions_open == 0 { (badge(Tone::Ok, "none")) } @else { (badge(Tone::Warn, &format!("{} open", p.exceptions_open))) }
                }
                span.tile-note { "over plan limits or overridden" }
            }
            a.tile href="/platform/invoices?status=finalized&overdue=true" {
                span.tile-label { "Delinquent tenants" }
                span.tile-value {
                    @if p.delinquent_tenants == 0 { (badge(Tone::Ok, "none")) } @else { (badge(Tone::Critical, &format!("{}", p.delinquent_tenants))) }
                }
                span.tile-note { "an invoice unpaid past its due date" }
            }
        }
        section.grid2 {
            div.card {
                h2 { "MRR trend" }
                @if trend.is_empty() {
                    p.muted { "No monthly snapshot yet: the snapshot_mrr job writes one each month." }
                } @else {
                    (charts::columns(&format!("MRR per month ({}), last 12 snapshots", main.as_deref().unwrap_or("")), &trend))
                }
            }
            div.card {
                h2 { "Plan distribution" }
                @if plans.is_empty() { p.muted { "No plans yet." } } @else { (charts::bars("Tenants by plan", &plans, "info")) }
            }
        }
        @if !exceptions.is_empty() {
            section.card {
                h2 { "Entitlement exceptions" }
                (crate::revenue::views::exceptions_table(ctx, exceptions, false))
                p { a href="/platform/enforcement" { "All exceptions →" } }
            }
        }
    }
}
