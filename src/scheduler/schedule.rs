//! The schedules in force and the loop's shared state (which jobs, their cron expressions, the
//! next planned run of each, whether the loop runs). Data only: [`crate::state::AppState`] holds
//! one, and the loop in [`super::run_loop`] drives it.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};

use super::job::Job;

/// The schedules in force and the loop's state.
pub struct Scheduler {
    schedules: BTreeMap<Job, (String, cron::Schedule)>,
    /// The next planned run of each job, as the loop sees it.
    pub(super) next: Mutex<BTreeMap<Job, DateTime<Utc>>>,
    /// Whether the loop runs (`/readyz`).
    pub(super) running: AtomicBool,
    /// Held by a run, so runs never overlap.
    pub(super) run_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("jobs", &self.schedules.keys())
            .finish()
    }
}

impl Scheduler {
    /// Builds the schedules of every job from config overrides (a process of both roles).
    ///
    /// Errors: a message naming the job and the bad expression, or an unknown job name.
    pub fn new(overrides: &BTreeMap<String, String>) -> std::result::Result<Scheduler, String> {
        Self::for_role(overrides, crate::config::Role::Both)
    }

    /// Builds the schedules of the jobs that run in `role`, from config overrides.
    ///
    /// Errors: a message naming the job and the bad expression, or an unknown job name.
    pub fn for_role(
        overrides: &BTreeMap<String, String>,
        role: crate::config::Role,
    ) -> std::result::Result<Scheduler, String> {
        for name in overrides.keys() {
            if Job::parse(name).is_none() {
                let names: Vec<&str> = Job::ALL.iter().map(|j| j.name()).collect();
                return Err(format!(
                    "[schedules] names unknown job '{name}': jobs are {}",
                    names.join(", ")
                ));
            }
        }
        let mut schedules = BTreeMap::new();
        for job in Job::ALL.into_iter().filter(|j| j.runs_in(role)) {
            let expr = overrides
                .get(job.name())
                .map_or(job.default_schedule(), String::as_str);
            let schedule =
                parse_cron(expr).map_err(|e| format!("schedule of job {}: {e}", job.name()))?;
            schedules.insert(job, (expr.to_string(), schedule));
        }
        Ok(Scheduler {
            schedules,
            next: Mutex::new(BTreeMap::new()),
            running: AtomicBool::new(false),
            run_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The jobs that run in this process, in [`Job::ALL`] order.
    pub fn jobs(&self) -> impl Iterator<Item = Job> + '_ {
        self.schedules.keys().copied()
    }

    /// Parses the name of a job that runs in this process.
    pub fn job(&self, name: &str) -> Option<Job> {
        Job::parse(name).filter(|j| self.schedules.contains_key(j))
    }

    /// The cron expression of `job`.
    pub fn expression(&self, job: Job) -> &str {
        self.schedules.get(&job).map_or("", |(e, _)| e.as_str())
    }

    /// The next firing of `job` after `now`.
    pub fn next_after(&self, job: Job, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedules.get(&job)?.1.after(&now).next()
    }

    /// The next planned run of `job` (as the loop sees it), or the next firing after `now`.
    pub fn planned(&self, job: Job, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        next.get(&job)
            .copied()
            .or_else(|| self.next_after(job, now))
    }

    /// Is the loop running? (`/readyz`)
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }
}

/// Parses a 6-field cron expression (seconds first), with a message that says so when 5 fields
/// are given.
pub fn parse_cron(expr: &str) -> std::result::Result<cron::Schedule, String> {
    let fields = expr.split_whitespace().count();
    if fields == 5 {
        return Err(format!(
            "'{expr}' has 5 fields; tenantry uses 6 (seconds first), e.g. '0 {expr}'"
        ));
    }
    cron::Schedule::from_str(expr)
        .map_err(|e| format!("'{expr}' is not a valid cron expression: {e}"))
}
