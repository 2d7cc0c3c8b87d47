//! `/platform/jobs`: the jobs monitor (HQ PRD §6): schedule, last and next run, outcome,
//! failures, recent runs, and run-now.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use maud::{Markup, html};

use crate::console::fmt::{self, when};
use crate::console::layout::{Ctx, Tone, badge, header, page, redirect};
use crate::console::{ConsoleError, PageResult};
use crate::error::Error;
use crate::rbac::Permission;
use crate::scheduler::{self, Job, Outcome, Trigger};
use crate::state::AppState;

/// The jobs monitor.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/platform/jobs", get(view_jobs_get))
        .route("/platform/jobs/{name}/run", post(view_job_run_post))
}

/// The monitor.
pub async fn view_jobs_get(State(state): State<AppState>, ctx: Ctx) -> PageResult {
    let jobs = scheduler::queries::overview(&state)
        .await
        .map_err(ConsoleError)?;
    let now = state.clock().now();
    let body = html! {
        (header("Jobs", Some("Scheduled jobs (6-field cron, UTC). Every run records its start, end, outcome and error."), html! {}))
        @for j in &jobs {
            section.card {
                div.row {
                    h2 { (j.name) }
                    @match (&j.last_run, j.consecutive_failures) {
                        (None, _) => (badge(Tone::Neutral, "never ran")),
                        (Some(_), n) if n > 0 => (badge(Tone::Critical, &format!("failing ({n} in a row)"))),
                        (Some(r), _) if r.outcome == Outcome::Running => (badge(Tone::Info, "running")),
                        (Some(_), _) => (badge(Tone::Ok, "healthy")),
                    }
                }
                p.muted { (j.description) }
                dl.inline {
                    dt { "Schedule" } dd { code { (j.schedule) } }
                    dt { "Next run" } dd { @if let Some(t) = j.next_run_at { (when(t)) " (" (fmt::relative(t, now)) ")" } @else { "—" } }
                    dt { "Last run" } dd {
                        @if let Some(r) = &j.last_run {
                            (when(r.started_at)) " " (outcome_badge(r.outcome)) " "
                            @if let Some(s) = &r.summary { (s) }
                            @if let Some(e) = &r.error { span.error { (e) } }
                        } @else { "never" }
                    }
                    dt { "Failures (24 h)" } dd { (j.failures_24h) }
                }
                @if ctx.can(Permission::JobsRun) {
                    form method="post" action={"/platform/jobs/" (j.name) "/run"} {
                        (ctx.csrf())
                        button type="submit" { "Run now" }
                    }
                }
                @if !j.recent.is_empty() {
                    details {
                        summary { "Recent runs" }
                        table {
                            thead { tr { th scope="col" { "Started" } th scope="col" { "Took" } th scope="col" { "Trigger" } th scope="col" { "Outcome" } th scope="col" { "Result" } } }
                            tbody {
                                @for r in &j.recent {
                                    tr {
                                        td { (when(r.started_at)) }
                                        td { @if let Some(f) = r.finished_at { ((f - r.started_at).num_milliseconds()) " ms" } }
                                        td { (if r.trigger == Trigger::Manual { "manual" } else { "schedule" }) }
                                        td { (outcome_badge(r.outcome)) }
                                        td { (r.summary.as_deref().or(r.error.as_deref()).unwrap_or("")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&ctx, "Jobs", body))
}

/// Runs a job now.
pub async fn view_job_run_post(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
) -> PageResult {
    let job = Job::parse(&name).ok_or_else(|| ConsoleError(Error::not_found("job", &name)))?;
    let run = scheduler::run_job(&state, job, Some(ctx.principal.actor.clone()))
        .await
        .map_err(ConsoleError)?;
    Ok(match run.outcome {
        Outcome::Failed => redirect(
            "/platform/jobs",
            Tone::Critical,
            &format!("{} failed: {}", job.name(), run.error.unwrap_or_default()),
        ),
        _ => redirect(
            "/platform/jobs",
            Tone::Ok,
            &format!("{} ran: {}", job.name(), run.summary.unwrap_or_default()),
        ),
    })
}

/// The badge of a job outcome.
pub fn outcome_badge(o: Outcome) -> Markup {
    match o {
        Outcome::Ok => badge(Tone::Ok, "ok"),
        Outcome::Failed => badge(Tone::Critical, "failed"),
        Outcome::Running => badge(Tone::Info, "running"),
    }
}
