//! What each job does. Jobs are thin adapters over the same services as the API; each tenant is
//! its own write request (so one failure touches one tenant), submitted together so the writer
//! commits them in a few group commits.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Job;
use crate::actor::Actor;
use crate::clock::to_micros;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::tenants::directory::{self, DEADLINES, TRIAL_ENDS};
use crate::tenants::model::Tenant;
use crate::tenants::service;

/// Most tenants handled per read of the due index.
const BATCH: usize = 256;

/// Runs `job` once; returns a one-line summary.
pub async fn execute(state: &AppState, job: Job, now: DateTime<Utc>) -> Result<String> {
    match job {
        Job::ShredDueTenants => {
            let hooks = state.tenant_hooks().clone();
            let shred =
                move |ctx: &mut crate::store::WriteCtx<'_>, id| service::shred(ctx, id, &hooks);
            let n = for_each_due(state, job, now, DEADLINES, shred).await?;
            // Their raw usage events share rows with other tenants' events: they leave them now,
            // in the same bounded writes as `prune_usage_events` would use.
            let shredded = format!("shredded {n} tenant{}", if n == 1 { "" } else { "s" });
            let scrubbed = scrub_usage_events(state, now, "shred_due_tenants").await?;
            Ok(match scrubbed {
                0 => shredded,
                1 => format!("{shredded}; removed 1 raw usage event of theirs"),
                k => format!("{shredded}; removed {k} raw usage events of theirs"),
            })
        }
        Job::ExpireTrials => {
            let n = for_each_due(state, job, now, TRIAL_ENDS, service::expire_trial).await?;
            Ok(format!(
                "suspended {n} expired trial{}",
                if n == 1 { "" } else { "s" }
            ))
        }
        Job::CheckpointChains => {
            let s = crate::audit::checkpoint_dirty(state.store(), now, state.install_key()).await?;
            if let Some(b) = s.broken.first() {
                return Err(Error::conflict(
                    crate::audit::model::CHAIN_BROKEN,
                    format!(
                        "signed {} chain(s); {} chain(s) do not verify and were not signed, first {} at seq {}: {}",
                        s.signed,
                        s.broken.len(),
                        b.chain,
                        b.first_bad_seq.unwrap_or(0),
                        b.problem.clone().unwrap_or_default()
                    ),
                ));
            }
            Ok(format!(
                "signed {} chain head{}",
                s.signed,
                if s.signed == 1 { "" } else { "s" }
            ))
        }
        Job::VerifyLedger => {
            crate::audit::verify_ledger(state.store(), now, state.install_key()).await
        }
        Job::PruneWebhooks => {
            let cutoff = now - crate::webhooks::model::RETENTION;
            let (dead, attempts) = state
                .store()
                .write(now, Actor::job("prune_webhooks"), move |ctx| {
                    crate::webhooks::service::prune(ctx, cutoff)
                })
                .await?;
            Ok(format!(
                "pruned {dead} DLQ entr{} and {attempts} attempt{} older than 7 days",
                if dead == 1 { "y" } else { "ies" },
                if attempts == 1 { "" } else { "s" }
            ))
        }
        Job::EndExpiredVisits => {
            let n = state
                .store()
                .write(now, Actor::job("end_expired_visits"), |ctx| {
                    crate::impersonations::service::end_expired(ctx)
                })
                .await?;
            Ok(format!("ended {n} visit{}", if n == 1 { "" } else { "s" }))
        }
        Job::PruneSessions => {
            let limits = state.session_limits();
            let (n, days) = state
                .store()
                .write(now, Actor::job("prune_sessions"), move |ctx| {
                    Ok::<_, crate::error::Error>((
                        crate::operators::service::prune_sessions(ctx, limits)?
                            + crate::members::service::prune_sessions(ctx, limits)?,
                        crate::operators::service::summarize_failures(ctx)?,
                    ))
                })
                .await?;
            Ok(format!(
                "pruned {n} expired session{}; {days} day{} of failed sign-ins put on the ledger",
                if n == 1 { "" } else { "s" },
                if days == 1 { "" } else { "s" }
            ))
        }
        Job::PruneUsageEvents => {
            use crate::metering::service as metering;
            let n = state
                .store()
                .write(
                    now,
                    Actor::job("prune_usage_events"),
                    metering::prune_events,
                )
                .await?;
            let scrubbed = scrub_usage_events(state, now, "prune_usage_events").await?;
            Ok(format!(
                "pruned {n} raw usage event{} of closed periods; removed {scrubbed} event{} of shredded tenants",
                if n == 1 { "" } else { "s" },
                if scrubbed == 1 { "" } else { "s" }
            ))
        }
        Job::FinalizeInvoices => crate::invoices::finalize_invoices(state, now).await,
        Job::MarkDelinquent => crate::invoices::mark_delinquent(state, now).await,
        Job::PlanEnforcer => crate::revenue::enforce(state, now).await,
        Job::SnapshotMrr => crate::revenue::snapshot(state, now).await,
        Job::AlertDispatcher => crate::channels::alert_dispatcher(state, now, finished_runs).await,
        Job::ApprovalSla => crate::approvals::run_timers(state, now).await,
        Job::Heartbeat => crate::heartbeat::generate(state).await,
        Job::VerifyLicense => {
            let s = crate::license::refresh(state).await?;
            match (s.state, &s.license) {
                (crate::license::LicenseState::Valid, Some(l)) => Ok(format!(
                    "license {} valid until {}",
                    l.license_id,
                    crate::clock::rfc3339_micros(l.expires_at)
                )),
                _ => Err(Error::denied(
                    match s.state {
                        crate::license::LicenseState::Expired => {
                            crate::license::model::LICENSE_EXPIRED
                        }
                        crate::license::LicenseState::Missing => {
                            crate::license::model::LICENSE_MISSING
                        }
                        _ => crate::license::model::LICENSE_INVALID,
                    },
                    s.problem.unwrap_or_default(),
                )),
            }
        }
        Job::SilentInstalls => crate::installs::silent_installs(state, now).await,
        Job::BackupDaily => crate::backup::daily(state, now).await,
    }
}

/// Applies `apply` to every tenant due in the time index `index` as of now. Returns how many
/// were changed; fails (after doing all it can) if any failed.
async fn for_each_due<F>(
    state: &AppState,
    job: Job,
    now: DateTime<Utc>,
    index: u8,
    apply: F,
) -> Result<usize>
where
    F: Fn(&mut crate::store::WriteCtx<'_>, Uuid) -> Result<Option<Tenant>>
        + Clone
        + Send
        + Sync
        + 'static,
{
    let actor = Actor::job(job.name());
    let mut changed = 0usize;
    let mut failures: Vec<String> = Vec::new();
    let mut handled: std::collections::HashSet<Uuid> = std::collections::HashSet::new();
    loop {
        let want = BATCH + handled.len();
        let ids = state
            .store()
            .read(move |r| directory::due(r, index, to_micros(now), want))
            .await?;
        let ids: Vec<Uuid> = ids
            .into_iter()
            .filter(|id| !handled.contains(id))
            .take(BATCH)
            .collect();
        if ids.is_empty() {
            break;
        }
        // Each id is tried once per run, whatever happens to it.
        handled.extend(ids.iter().copied());
        let mut set = tokio::task::JoinSet::new();
        for id in ids {
            let store = state.store().clone();
            let actor = actor.clone();
            let apply = apply.clone();
            set.spawn(
                async move { (id, store.write(now, actor, move |ctx| apply(ctx, id)).await) },
            );
        }
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((_, Ok(Some(_)))) => changed += 1,
                // No longer due (changed meanwhile): not a failure.
                Ok((_, Ok(None))) => {}
                Ok((id, Err(e))) => failures.push(format!("tenant {id}: {e}")),
                Err(e) => failures.push(format!("task failed: {e}")),
            }
        }
    }
    if let Some(first) = failures.first() {
        return Err(Error::Internal(format!(
            "{changed} done, {} failed; first failure: {first}",
            failures.len()
        )));
    }
    Ok(changed)
}

/// Every job's recent finished runs, newest first, for the alert dispatcher.
fn finished_runs(
    ctx: &crate::store::WriteCtx<'_>,
) -> Result<Vec<(String, Vec<crate::channels::service::FinishedRun>)>> {
    let mut out = Vec::new();
    for job in Job::ALL {
        let runs = super::runs(ctx, job, super::RUNS_KEPT)?
            .into_iter()
            .filter(|r| r.outcome != super::Outcome::Running)
            .map(|r| crate::channels::service::FinishedRun {
                job: r.job.to_string(),
                trigger: r.trigger.as_str().to_string(),
                started_at: r.started_at,
                finished_at: r.finished_at,
                failed: r.outcome == super::Outcome::Failed,
                error: r.error,
            })
            .collect();
        out.push((job.name().to_string(), runs));
    }
    Ok(out)
}

/// Removes shredded tenants' events from the shared raw-usage rows in bounded writes (at most
/// [`crate::metering::service::MAX_SCRUB_WRITES`]), so that other writes go between them; what
/// is left waits for the next run. Returns the events removed.
async fn scrub_usage_events(
    state: &AppState,
    now: DateTime<Utc>,
    job: &'static str,
) -> Result<u64> {
    use crate::metering::service::{MAX_SCRUB_WRITES, scrub_step};
    let mut scrubbed = 0u64;
    for _ in 0..MAX_SCRUB_WRITES {
        let step = state
            .store()
            .write(now, Actor::job(job), scrub_step)
            .await?;
        scrubbed += step.removed;
        if !step.pending {
            break;
        }
    }
    Ok(scrubbed)
}
