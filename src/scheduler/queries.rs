//! The jobs monitor's read model (HQ PRD §6, PRODUCT.md F28), shared by `GET /api/jobs`, the
//! console's jobs page, the dashboard and `tenantry jobs list`.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::job::Job;
use super::runs::{JobRun, Outcome, RUNS_KEPT, runs};
use crate::error::Result;
use crate::state::AppState;

/// A job in the monitor (`GET /api/jobs`, the console's jobs page).
#[derive(Clone, Debug, Serialize, Deserialize)]
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

/// Every job of this process's role with its schedule, last and next run, and failures.
pub async fn overview(state: &AppState) -> Result<Vec<JobView>> {
    let now = state.clock().now();
    let jobs: Vec<Job> = state.scheduler().jobs().collect();
    let listed = jobs.clone();
    let history = state
        .read(move |r| {
            listed
                .iter()
                .map(|j| runs(r, *j, RUNS_KEPT))
                .collect::<Result<Vec<_>>>()
        })
        .await?;
    let sched = state.scheduler();
    Ok(jobs
        .iter()
        .zip(history)
        .map(|(job, runs)| {
            let day_ago = now - Duration::hours(24);
            let failures_24h = runs
                .iter()
                .filter(|r| r.outcome == Outcome::Failed && r.started_at >= day_ago)
                .count() as u32;
            let consecutive_failures = runs
                .iter()
                .filter(|r| r.outcome != Outcome::Running)
                .take_while(|r| r.outcome == Outcome::Failed)
                .count() as u32;
            JobView {
                name: job.name().into(),
                description: job.description().into(),
                schedule: sched.expression(*job).into(),
                last_run: runs.first().cloned(),
                next_run_at: sched.planned(*job, now),
                failures_24h,
                consecutive_failures,
                recent: runs.into_iter().take(10).collect(),
            }
        })
        .collect())
}
