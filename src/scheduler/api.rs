//! `/api/jobs` routes: the jobs monitor (HQ PRD §6, PRODUCT.md F28).

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Job, JobRun, JobView, Trigger};
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
    let items = super::overview(&s).await?;
    Ok(Json(JobList {
        items,
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
    let items = s.read(move |r| super::runs(r, job, limit)).await?;
    Ok(Json(RunList {
        items,
        next_cursor: None,
    }))
}

/// Runs a job now (after any run in progress) and returns the run.
#[utoipa::path(post, path = "/api/jobs/{name}/run", tag = "jobs", params(("name" = String, Path, description = "Job name")),
    responses((status = 200, body = JobRun), (status = 404, body = Problem)))]
async fn jobs_run_now(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<JobRun>> {
    let job = job(&s, &name)?;
    Ok(Json(super::run_job(&s, job, Trigger::Manual).await?))
}
