//! The scheduler: a closed set of jobs, each on a 6-field cron expression (seconds first; the
//! `cron` crate refuses 5 fields), overridable in config under `[schedules]`.
//!
//! Every run records its start, end, outcome and error in `job_runs` (the jobs monitor reads
//! them). The loop sleeps through [`Clock::sleep_until`], so tests move a manual clock instead of
//! sleeping; a jump over many firings runs each due job once (missed runs coalesce).
//!
//! - [`job`]: the closed `Job` enum, its names and default schedules.
//! - [`schedule`]: the schedules in force and the loop's state (held by `AppState`).
//! - [`runs`]: the run records.
//! - [`queries`]: the monitor's read model (every job with its schedule, runs and failures).
//! - [`jobs`]: what each job does.
//! - [`api`], [`views`]: `GET /api/jobs`, run history and run-now; the jobs monitor page.

pub mod api;
pub mod job;
pub mod jobs;
pub mod queries;
pub mod runs;
pub mod schedule;
pub mod views;

use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Duration, Utc};

pub use job::Job;
pub use runs::{JOB_RUNS, JobRun, JobRunRecord, Outcome, RUNS_KEPT, Trigger, runs};
use runs::{prune, run_view};
pub use schedule::{Scheduler, parse_cron};

use crate::actor::Actor;
use crate::clock::{Clock, to_micros};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::keys::Key;

use crate::http::context::{Context, NavItem};
use crate::rbac::{Access, Permission, Route};

/// The jobs context: its routes, pages, permission entries, sidebar items and events.
pub const CONTEXT: Context = Context {
    name: "scheduler",
    tags: &[("jobs", "Scheduled jobs")],
    api: api::router,
    views: views::router,
    routes: ROUTES,
    nav: &[NavItem::new("/platform/jobs", "Jobs", Permission::Read)],
    events: &[],
    ..Context::EMPTY
};

/// The permission entry of every route of this context.
const ROUTES: &[Route] = {
    use Access::*;
    use Permission::*;
    &[
        ("GET", "/api/jobs", Requires(Read)),
        ("GET", "/api/jobs/{name}/runs", Requires(Read)),
        ("POST", "/api/jobs/{name}/run", Requires(JobsRun)),
        ("GET", "/platform/jobs", Requires(Read)),
        ("POST", "/platform/jobs/{name}/run", Requires(JobsRun)),
    ]
};

/// Runs `job` now and records the run. Runs never overlap: a run waits for one in progress.
///
/// A manual run (`by` is `Some`) is recorded, and its changes audited, as `by`'s.
pub async fn run_job(state: &AppState, job: Job, by: Option<Actor>) -> Result<JobRun> {
    let sched = state.scheduler();
    let _guard = sched.run_lock.lock().await;
    let started = state.clock().now();
    match by {
        Some(actor) => {
            Actor::run_as_job(actor, record_run(state, job, Trigger::Manual, started)).await
        }
        None => record_run(state, job, Trigger::Schedule, started).await,
    }
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
    let actor = Actor::job(job.name());
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
            if let Err(e) = run_job(&state, job, None).await {
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
    use std::collections::BTreeMap;

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
            | Job::BackupDaily
            | Job::EndExpiredVisits
            | Job::VerifyLedger
            | Job::PruneWebhooks
            | Job::PruneUsageEvents
            | Job::PlanEnforcer
            | Job::FinalizeInvoices
            | Job::MarkDelinquent
            | Job::SnapshotMrr
            | Job::AlertDispatcher
            | Job::ApprovalSla => j,
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
            Job::EndExpiredVisits,
            Job::VerifyLedger,
            Job::PruneWebhooks,
            Job::PruneUsageEvents,
            Job::PlanEnforcer,
            Job::FinalizeInvoices,
            Job::MarkDelinquent,
            Job::SnapshotMrr,
            Job::AlertDispatcher,
            Job::ApprovalSla,
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
