//! The scheduler: a closed set of jobs, each on a 6-field cron expression (seconds first; the
//! `cron` crate refuses 5 fields), overridable in config under `[schedules]`.
//!
//! Every run records its start, end, outcome and error in `job_runs` (the jobs monitor reads
//! them). The loop sleeps through [`Clock::sleep_until`], so tests move a manual clock instead of
//! sleeping; a jump over many firings runs each due job once (missed runs coalesce).
//!
//! - [`jobs`]: what each job does.
//! - [`api`]: `GET /api/jobs`, run history, and run-now.

pub mod api;
pub mod jobs;

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::actor::Actor;
use crate::app::AppState;
use crate::clock::{Clock, from_micros, to_micros};
use crate::error::{Error, Result};
use crate::store::keys::Key;
use crate::store::{Dir, Range, Reader, Table, codec};

/// Run history: `(job name, started_at micros, nonce) -> JobRunRecord`.
///
/// Keyed by the job's name, which is stable, rather than by its position in [`Job`] (schema v1
/// did that, so adding or reordering a job would have moved old runs under another job; schema
/// v2 re-keys them, see [`crate::upgrade`]).
pub const JOB_RUNS: Table = Table::new("job_runs");

/// Runs kept per job; older ones are pruned when a run is recorded.
pub const RUNS_KEPT: usize = 200;

/// The closed set of scheduled jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Job {
    /// Shreds offboarding tenants past `deadline_at`.
    ShredDueTenants,
    /// Suspends trials past their end with the reason "trial expired".
    ExpireTrials,
    /// Signs the head of every chain that moved since its last checkpoint.
    CheckpointChains,
    /// Deletes console sessions past their idle or absolute limit.
    PruneSessions,
    /// Appliance: writes a signed heartbeat into the outbox.
    Heartbeat,
    /// Appliance: re-reads and verifies the license file.
    VerifyLicense,
    /// Control plane: marks installs silent after missed heartbeats.
    SilentInstalls,
    /// Writes a backup into `backup.dir` and keeps the newest `backup.keep`.
    BackupDaily,
}

impl Job {
    /// Every job. `job_runs` is keyed by [`Job::name`], so the order here is free to change.
    pub const ALL: [Job; 8] = [
        Job::ShredDueTenants,
        Job::ExpireTrials,
        Job::CheckpointChains,
        Job::PruneSessions,
        Job::Heartbeat,
        Job::VerifyLicense,
        Job::SilentInstalls,
        Job::BackupDaily,
    ];

    /// Does `job` run in a process of `role`?
    pub fn runs_in(self, role: crate::config::Role) -> bool {
        match self {
            Job::Heartbeat | Job::VerifyLicense => role.is_appliance(),
            Job::SilentInstalls => role.is_control_plane(),
            _ => true,
        }
    }

    /// The snake_case name used in config, the API and logs.
    pub fn name(self) -> &'static str {
        match self {
            Job::ShredDueTenants => "shred_due_tenants",
            Job::ExpireTrials => "expire_trials",
            Job::CheckpointChains => "checkpoint_chains",
            Job::PruneSessions => "prune_sessions",
            Job::Heartbeat => "heartbeat",
            Job::VerifyLicense => "verify_license",
            Job::SilentInstalls => "silent_installs",
            Job::BackupDaily => "backup_daily",
        }
    }

    /// What the job does, for the jobs monitor.
    pub fn description(self) -> &'static str {
        match self {
            Job::ShredDueTenants => {
                "Shreds offboarding tenants whose grace period has ended (deadline_at passed)."
            }
            Job::ExpireTrials => {
                "Suspends trials past their end date with the reason \"trial expired\"."
            }
            Job::CheckpointChains => {
                "Verifies and signs the head of every audit chain that moved since its last checkpoint."
            }
            Job::PruneSessions => "Deletes console sessions past their idle or absolute limit.",
            Job::Heartbeat => {
                "Writes a signed heartbeat into the outbox for the control plane ([control_plane] heartbeat_schedule)."
            }
            Job::VerifyLicense => {
                "Re-reads the license file and verifies it offline; degrades provisioning when it is expired or refused."
            }
            Job::SilentInstalls => {
                "Marks installs silent when no heartbeat came for 3 intervals ([installs] silent_after_missed)."
            }
            Job::BackupDaily => {
                "Writes an online backup into backup.dir (encrypted to backup.recipients) and keeps the newest backup.keep."
            }
        }
    }

    /// The default schedule (6 fields: sec min hour day month weekday).
    pub fn default_schedule(self) -> &'static str {
        match self {
            Job::ShredDueTenants => "0 */15 * * * *",
            Job::ExpireTrials => "0 */15 * * * *",
            Job::CheckpointChains => "0 0 * * * *",
            Job::PruneSessions => "0 20 * * * *",
            Job::Heartbeat => crate::config::DEFAULT_HEARTBEAT_SCHEDULE,
            Job::VerifyLicense => "0 30 * * * *",
            Job::SilentInstalls => "30 * * * * *",
            Job::BackupDaily => "0 30 2 * * *",
        }
    }

    /// Parses a job name.
    pub fn parse(s: &str) -> Option<Job> {
        Job::ALL.into_iter().find(|j| j.name() == s)
    }

    /// The key prefix of this job's runs in [`JOB_RUNS`].
    fn key_prefix(self) -> Vec<u8> {
        Key::new().str(self.name()).into_bytes()
    }
}

/// How a run was started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// By its cron schedule.
    Schedule,
    /// By an operator (API, CLI).
    Manual,
}

/// Outcome of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Still running (or the process stopped during the run).
    Running,
    /// Finished without error.
    Ok,
    /// Finished with an error.
    Failed,
}

/// A stored run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum JobRunRecord {
    /// Version 1.
    V1 {
        /// Start, microseconds.
        started_at: i64,
        /// End, microseconds.
        finished_at: Option<i64>,
        /// Outcome.
        outcome: Outcome,
        /// Error text when failed.
        error: Option<String>,
        /// What it did, e.g. "shredded 2 tenants".
        summary: Option<String>,
        /// How it started.
        trigger: Trigger,
    },
}

/// A run, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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

fn run_view(job: Job, r: JobRunRecord) -> JobRun {
    let JobRunRecord::V1 {
        started_at,
        finished_at,
        outcome,
        error,
        summary,
        trigger,
    } = r;
    JobRun {
        job: job.name().to_string(),
        started_at: from_micros(started_at),
        finished_at: finished_at.map(from_micros),
        outcome,
        error,
        summary,
        trigger,
    }
}

/// A job in the monitor (`GET /api/jobs`, the console's jobs page).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
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

/// The schedules in force and the loop's state.
pub struct Scheduler {
    schedules: BTreeMap<Job, (String, cron::Schedule)>,
    next: Mutex<BTreeMap<Job, DateTime<Utc>>>,
    running: AtomicBool,
    run_lock: tokio::sync::Mutex<()>,
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

/// Runs `job` now and records the run. Runs never overlap: a run waits for one in progress.
pub async fn run_job(state: &AppState, job: Job, trigger: Trigger) -> Result<JobRun> {
    let sched = state.scheduler();
    let _guard = sched.run_lock.lock().await;
    let started = state.clock().now();
    record_run(state, job, trigger, started).await
}

/// Runs `job` as of `started` and records the run; its end is `started` plus the time it took.
/// The demo seeder replays history with this; everything else uses [`run_job`].
pub async fn record_run(
    state: &AppState,
    job: Job,
    trigger: Trigger,
    started: DateTime<Utc>,
) -> Result<JobRun> {
    let took = std::time::Instant::now();
    let nonce = crate::ids::new_id(started);
    let key = Key::new()
        .str(job.name())
        .i64(to_micros(started))
        .uuid(&nonce)
        .into_bytes();
    let record = |finished: Option<DateTime<Utc>>,
                  outcome,
                  error: Option<String>,
                  summary: Option<String>| JobRunRecord::V1 {
        started_at: to_micros(started),
        finished_at: finished.map(to_micros),
        outcome,
        error,
        summary,
        trigger,
    };
    let actor = Actor::system(format!("job:{}", job.name()));
    {
        let key = key.clone();
        let rec = record(None, Outcome::Running, None, None);
        state
            .store()
            .write(started, actor.clone(), move |ctx| {
                ctx.put_record(JOB_RUNS, &key, &rec)?;
                prune(ctx, job)?;
                Ok::<_, Error>(())
            })
            .await?;
    }
    tracing::debug!(job = job.name(), ?trigger, "job started");
    let result = jobs::execute(state, job, started).await;
    let finished = started + Duration::from_std(took.elapsed()).unwrap_or_default();
    let (outcome, error, summary) = match &result {
        Ok(s) => (Outcome::Ok, None, Some(s.clone())),
        Err(e) => (Outcome::Failed, Some(e.to_string()), None),
    };
    match &result {
        Ok(s) => tracing::debug!(job = job.name(), summary = %s, "job finished"),
        Err(e) => tracing::warn!(job = job.name(), error = %e, "job failed"),
    }
    let rec = record(Some(finished), outcome, error, summary);
    let stored = rec.clone();
    state
        .store()
        .write(finished, actor, move |ctx| {
            ctx.put_record(JOB_RUNS, &key, &stored)?;
            Ok::<_, Error>(())
        })
        .await?;
    Ok(run_view(job, rec))
}

fn prune(ctx: &mut crate::store::WriteCtx<'_>, job: Job) -> Result<()> {
    let mut old = Vec::new();
    let mut n = 0usize;
    ctx.scan(
        JOB_RUNS,
        &Range::prefix(&job.key_prefix()),
        Dir::Desc,
        &mut |k, _| {
            n += 1;
            if n > RUNS_KEPT {
                old.push(k.to_vec());
            }
            Ok(ControlFlow::Continue(()))
        },
    )?;
    for k in old {
        ctx.delete(JOB_RUNS, &k)?;
    }
    Ok(())
}

/// The most recent runs of `job`, newest first.
pub fn runs(r: &impl Reader, job: Job, limit: usize) -> Result<Vec<JobRun>> {
    let mut out = Vec::new();
    r.scan(
        JOB_RUNS,
        &Range::prefix(&job.key_prefix()),
        Dir::Desc,
        &mut |_, v| {
            out.push(run_view(job, codec::decode(JOB_RUNS.name(), v)?));
            Ok(if out.len() >= limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        },
    )?;
    Ok(out)
}

/// The loop: waits for the earliest due job on the clock, runs every due job once, repeats until
/// `stop` turns true.
pub async fn run_loop(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let sched = state.scheduler();
    let clock: Clock = state.clock().clone();
    {
        let now = clock.now();
        let mut next = sched.next.lock().unwrap_or_else(PoisonError::into_inner);
        for job in sched.jobs() {
            if let Some(t) = sched.next_after(job, now) {
                next.insert(job, t);
            }
        }
    }
    // Running (and so ready) once the first firings are planned.
    sched.running.store(true, Ordering::Relaxed);
    loop {
        let wake = {
            let next = sched.next.lock().unwrap_or_else(PoisonError::into_inner);
            next.values()
                .min()
                .copied()
                .unwrap_or_else(|| clock.now() + Duration::hours(1))
        };
        tokio::select! {
            _ = clock.sleep_until(wake) => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let now = clock.now();
        let due: Vec<Job> = {
            let next = sched.next.lock().unwrap_or_else(PoisonError::into_inner);
            next.iter()
                .filter(|(_, t)| **t <= now)
                .map(|(j, _)| *j)
                .collect()
        };
        for job in due {
            if let Err(e) = run_job(&state, job, Trigger::Schedule).await {
                tracing::error!(job = job.name(), error = %e, "could not record the job run");
            }
            let after = clock.now().max(now);
            let mut next = sched.next.lock().unwrap_or_else(PoisonError::into_inner);
            match sched.next_after(job, after) {
                Some(t) => next.insert(job, t),
                None => next.remove(&job),
            };
        }
    }
    sched.running.store(false, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_variant_is_in_all_and_named_uniquely() {
        // The compiler makes a new variant appear in this match; the assertion makes it appear in
        // `ALL`, without which it would never be scheduled.
        let variants = |j: Job| match j {
            Job::ShredDueTenants
            | Job::ExpireTrials
            | Job::CheckpointChains
            | Job::PruneSessions
            | Job::Heartbeat
            | Job::VerifyLicense
            | Job::SilentInstalls
            | Job::BackupDaily => j,
        };
        for j in [
            Job::ShredDueTenants,
            Job::ExpireTrials,
            Job::CheckpointChains,
            Job::PruneSessions,
            Job::Heartbeat,
            Job::VerifyLicense,
            Job::SilentInstalls,
            Job::BackupDaily,
        ] {
            assert!(
                Job::ALL.contains(&variants(j)),
                "{j:?} is missing from Job::ALL"
            );
            assert_eq!(Job::parse(j.name()), Some(j));
        }
    }

    #[test]
    fn five_field_expressions_are_refused_with_a_hint() {
        let err = parse_cron("*/5 * * * *").unwrap_err();
        assert!(err.contains("6 (seconds first)"), "{err}");
        assert!(parse_cron("0 */5 * * * *").is_ok());
    }

    #[test]
    fn overrides_must_name_real_jobs_and_valid_expressions() {
        let mut o = BTreeMap::new();
        o.insert("shred_due_tenant".to_string(), "0 * * * * *".to_string());
        assert!(Scheduler::new(&o).unwrap_err().contains("unknown job"));
        let mut o = BTreeMap::new();
        o.insert("expire_trials".to_string(), "bogus".to_string());
        assert!(Scheduler::new(&o).unwrap_err().contains("expire_trials"));
        let mut o = BTreeMap::new();
        o.insert("expire_trials".to_string(), "0 0 3 * * *".to_string());
        let s = Scheduler::new(&o).unwrap();
        assert_eq!(s.expression(Job::ExpireTrials), "0 0 3 * * *");
        assert_eq!(
            s.expression(Job::ShredDueTenants),
            Job::ShredDueTenants.default_schedule()
        );
    }
}
