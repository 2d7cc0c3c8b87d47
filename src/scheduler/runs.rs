//! Run records of the jobs monitor: `job_runs`, keyed by job name, the last [`RUNS_KEPT`] per
//! job. Data only: the heartbeat document and the dashboard read these without depending on the
//! scheduler loop.

use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::job::Job;
use crate::clock::from_micros;
use crate::error::Result;
use crate::store::{Dir, Range, Reader, Table, WriteCtx, codec};

/// Run history: `(job name, started_at micros, nonce) -> JobRunRecord`.
///
/// Keyed by the job's name, which is stable, rather than by its position in [`Job`] (schema v1
/// did that, so adding or reordering a job would have moved old runs under another job; schema
/// v2 re-keys them, see [`crate::upgrade`]).
pub const JOB_RUNS: Table = Table::new("job_runs");

/// Runs kept per job; older ones are pruned when a run is recorded.
pub const RUNS_KEPT: usize = 200;

/// How a run was started.
///
/// REMEMBER: the variant order is the file format (stored in run records): never reorder; add
/// at the end (`disk_format_codes_are_pinned` checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Trigger {
    /// By its cron schedule.
    Schedule = 0,
    /// By an operator (API, CLI).
    Manual = 1,
}

impl Trigger {
    /// Both triggers.
    pub const ALL: [Trigger; 2] = [Trigger::Schedule, Trigger::Manual];
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
        }
    }
}

/// Outcome of a run.
///
/// REMEMBER: the variant order is the file format (stored in run records): never reorder; add
/// at the end (`disk_format_codes_are_pinned` checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Outcome {
    /// Still running (or the process stopped during the run).
    Running = 0,
    /// Finished without error.
    Ok = 1,
    /// Finished with an error.
    Failed = 2,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 3] = [Outcome::Running, Outcome::Ok, Outcome::Failed];
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
        }
    }
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

/// A run, as the monitor shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

pub(crate) fn run_view(job: Job, r: JobRunRecord) -> JobRun {
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

pub(crate) fn prune(ctx: &mut WriteCtx<'_>, job: Job) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_format_codes_are_pinned() {
        for (t, code) in [(Trigger::Schedule, 0u8), (Trigger::Manual, 1)] {
            assert_eq!(codec::encode(&t).unwrap(), [code], "{t:?}");
        }
        for (o, code) in [
            (Outcome::Running, 0u8),
            (Outcome::Ok, 1),
            (Outcome::Failed, 2),
        ] {
            assert_eq!(codec::encode(&o).unwrap(), [code], "{o:?}");
        }
    }
}
