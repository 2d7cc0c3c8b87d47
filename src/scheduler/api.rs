//! `/api/jobs` routes: the jobs monitor (HQ PRD §6, PRODUCT.md F28).

use crate::http::extract::Caller;
use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use chrono::{DateTime, Utc};

use super::runs::{self, Outcome};
use super::{Job, Trigger, queries};
use crate::error::Error;
use crate::http::extract::ApiQuery;
use crate::http::problem::{ApiResult, Problem};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(jobs_list))
        .routes(routes!(jobs_runs))
        .routes(routes!(jobs_run_now))
}

/// A run.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobRun {
    /// Job name.
    pub job: String,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End, when finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Outcome.
    pub outcome: Outcome,
    /// Error text when failed.
    pub error: Option<String>,
    /// What it did.
    pub summary: Option<String>,
    /// How it started.
    pub trigger: Trigger,
}

impl From<runs::JobRun> for JobRun {
    fn from(r: runs::JobRun) -> JobRun {
        JobRun {
            job: r.job,
            started_at: r.started_at,
            finished_at: r.finished_at,
            outcome: r.outcome,
            error: r.error,
            summary: r.summary,
            trigger: r.trigger,
        }
    }
}

/// A job in the monitor.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobView {
    /// Name, e.g. `shred_due_tenants`.
    pub name: String,
    /// What it does.
    pub description: String,
    /// 6-field cron expression in force.
    pub schedule: String,
    /// The latest run.
    pub last_run: Option<JobRun>,
    /// Next planned run.
    pub next_run_at: Option<DateTime<Utc>>,
    /// Failed runs in the last 24 hours.
    pub failures_24h: u32,
    /// Failed runs in a row, up to the latest.
    pub consecutive_failures: u32,
    /// The most recent runs, newest first (up to 10).
    pub recent: Vec<JobRun>,
}

impl From<queries::JobView> for JobView {
    fn from(j: queries::JobView) -> JobView {
        JobView {
            name: j.name,
            description: j.description,
            schedule: j.schedule,
            last_run: j.last_run.map(JobRun::from),
            next_run_at: j.next_run_at,
            failures_24h: j.failures_24h,
            consecutive_failures: j.consecutive_failures,
            recent: j.recent.into_iter().map(JobRun::from).collect(),
        }
    }
}

crate::string_enum_schema!(Trigger, "How a run started: by its schedule, or by hand.");
crate::string_enum_schema!(Outcome, "running, ok or failed.");

/// The job list.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobList {
    /// Every job.
    pub items: Vec<JobView>,
    /// Always null: the list is the closed set of jobs.
    pub next_cursor: Option<String>,
}

/// Every scheduled job with its schedule, last run, outcome, next run and failures.
#[utoipa::path(get, path = "/api/jobs", tag = "jobs", responses((status = 200, body = JobList)))]
async fn jobs_list(State(s): State<AppState>) -> ApiResult<Json<JobList>> {
    let items = queries::overview(&s).await?;
    Ok(Json(JobList {
        items: items.into_iter().map(JobView::from).collect(),
        next_cursor: None,
    }))
}

fn job(s: &AppState, name: &str) -> Result<Job, Error> {
    s.scheduler()
        .job(name)
        .ok_or_else(|| Error::not_found("job", name))
}

/// Paging of run history.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    /// Most runs, 1–500 (default 50).
    pub limit: Option<usize>,
}

/// A job's runs.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunList {
    /// Runs, newest first.
    pub items: Vec<JobRun>,
    /// Always null: history is capped at the last 200 runs.
    pub next_cursor: Option<String>,
}

/// A job's recent runs, newest first.
#[utoipa::path(get, path = "/api/jobs/{name}/runs", tag = "jobs", params(("name" = String, Path, description = "Job name"), RunsQuery),
    responses((status = 200, body = RunList), (status = 404, body = Problem)))]
async fn jobs_runs(
    State(s): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> ApiResult<Json<RunList>> {
    let job = job(&s, &name)?;
    let limit = crate::store::page::limit(q.limit)?;
    let items = s.read(move |r| runs::runs(r, job, limit)).await?;
    Ok(Json(RunList {
        items: items.into_iter().map(JobRun::from).collect(),
        next_cursor: None,
    }))
}

/// Runs a job now (after any run in progress) and returns the run.
#[utoipa::path(post, path = "/api/jobs/{name}/run", tag = "jobs", params(("name" = String, Path, description = "Job name")),
    responses((status = 200, body = JobRun), (status = 404, body = Problem)))]
async fn jobs_run_now(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<JobRun>> {
    let job = job(&s, &name)?;
    Ok(Json(super::run_job(&s, job, Some(p.actor)).await?.into()))
}
