//! `tenantry jobs ...`: list the scheduled jobs, run one now.

use std::process::ExitCode;

use clap::Subcommand;

use super::{Outcome, StoreArgs, call};
use crate::admin::AdminRequest;

/// `tenantry jobs ...`.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs with their schedule and last run.
    List {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Run a job now.
    Run {
        /// Job name (every job of the closed set; those of the other on-prem role answer 404).
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(
            crate::scheduler::job::Job::ALL.map(|j| j.name())
        ))]
        name: String,
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Runs `tenantry jobs ...`.
pub(super) async fn run(cmd: JobsCommand) -> ExitCode {
    match cmd {
        JobsCommand::List { store } => match call(&store, AdminRequest::JobsList).await {
            Ok(Outcome::Json(v)) => {
                for job in v["items"].as_array().into_iter().flatten() {
                    let last = &job["last_run"];
                    println!(
                        "{:<20} {:<16} next {:<28} last {} {}",
                        job["name"].as_str().unwrap_or(""),
                        job["schedule"].as_str().unwrap_or(""),
                        job["next_run_at"].as_str().unwrap_or("-"),
                        last["started_at"].as_str().unwrap_or("never"),
                        last["outcome"].as_str().unwrap_or(""),
                    );
                }
                ExitCode::SUCCESS
            }
            Ok(Outcome::Stream) => ExitCode::SUCCESS,
            Err(code) => code,
        },
        JobsCommand::Run { name, store } => {
            match call(&store, AdminRequest::JobRun { name }).await {
                Ok(Outcome::Json(v)) => {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                    if v["outcome"] == "failed" {
                        ExitCode::from(1)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Ok(Outcome::Stream) => ExitCode::SUCCESS,
                Err(code) => code,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use crate::cli::Cli;
    use crate::scheduler::job::Job;

    #[test]
    fn jobs_run_names_every_job_and_refuses_others() {
        let mut cmd = Cli::command();
        let help = cmd
            .find_subcommand_mut("jobs")
            .and_then(|j| j.find_subcommand_mut("run"))
            .map(|r| r.render_long_help().to_string())
            .unwrap_or_default();
        for job in Job::ALL {
            assert!(
                help.contains(job.name()),
                "{} missing from:\n{help}",
                job.name()
            );
        }
        assert!(Cli::try_parse_from(["tenantry", "jobs", "run", "backup_daily"]).is_ok());
        assert!(Cli::try_parse_from(["tenantry", "jobs", "run", "no_such_job"]).is_err());
    }
}
