//! The closed set of scheduled jobs (vaultwarden's `jobs.rs`): each job's name, description,
//! default schedule and the roles it runs in. Adding a job is a variant here plus its arm in
//! [`super::jobs::execute`].

use serde::{Deserialize, Serialize};

use crate::store::keys::Key;

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
    /// Ends operators' visits of tenants whose time ran out.
    EndExpiredVisits,
    /// Verifies every audit chain from seq 1, data included (the checkpoint job only walks
    /// what moved since the last checkpoint).
    VerifyLedger,
    /// Deletes webhook DLQ entries and attempts older than 7 days.
    PruneWebhooks,
    /// Deletes raw usage events of closed periods (aggregates are kept).
    PruneUsageEvents,
    /// Finalizes draft invoices of closed periods and opens the current period's drafts.
    FinalizeInvoices,
    /// Marks invoices past due overdue and their tenants delinquent.
    MarkDelinquent,
    /// Keeps the entitlement exceptions: tenants over their plan's limits or holding an
    /// enforcement override (HQ PRD §6 `plan_enforcer_worker`).
    PlanEnforcer,
    /// Writes the month's MRR snapshot on its first run of the month (the MRR trend).
    SnapshotMrr,
    /// Delivers platform alerts (job failures, silent installs, soft caps, breached approvals)
    /// through the platform's notification channels (HQ PRD §6 `alert_dispatcher`).
    AlertDispatcher,
    /// Marks approval requests past their SLA breached (paging the escalation target) and
    /// expires those past their expiry (issue 11, operator guide §6 "Breaches").
    ApprovalSla,
}

impl Job {
    /// Every job. `job_runs` is keyed by [`Job::name`], so the order here is free to change.
    pub const ALL: [Job; 18] = [
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
        Job::FinalizeInvoices,
        Job::MarkDelinquent,
        Job::PlanEnforcer,
        Job::SnapshotMrr,
        Job::AlertDispatcher,
        Job::ApprovalSla,
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
            Job::EndExpiredVisits => "end_expired_visits",
            Job::VerifyLedger => "verify_ledger",
            Job::PruneWebhooks => "prune_webhooks",
            Job::PruneUsageEvents => "prune_usage_events",
            Job::FinalizeInvoices => "finalize_invoices",
            Job::MarkDelinquent => "mark_delinquent",
            Job::PlanEnforcer => "plan_enforcer",
            Job::SnapshotMrr => "snapshot_mrr",
            Job::AlertDispatcher => "alert_dispatcher",
            Job::ApprovalSla => "approval_sla",
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
            Job::PruneSessions => {
                "Deletes console sessions (operators' and tenant members') past their idle or absolute limit."
            }
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
            Job::EndExpiredVisits => {
                "Ends operators' visits of tenants (Visit tenant) whose time ran out, on each tenant's chain."
            }
            Job::VerifyLedger => {
                "Verifies every audit chain from seq 1, data and shreds included, and records the result the dashboard shows."
            }
            Job::PruneWebhooks => {
                "Deletes webhook deliveries that have been in the DLQ for more than 7 days, and attempts older than 7 days."
            }
            Job::PruneUsageEvents => {
                "Deletes raw usage events of periods before the previous one (they can no longer be posted, so need no deduplication); aggregates are kept."
            }
            Job::FinalizeInvoices => {
                "Finalizes draft invoices of closed periods (numbered, immutable, digest in the ledger), then opens the current period's draft of every billable tenant."
            }
            Job::MarkDelinquent => {
                "Marks finalized invoices unpaid past their due date overdue, and their tenants delinquent."
            }
            Job::PlanEnforcer => {
                "Re-checks every tenant against its plan's limits (personas, API keys) and its enforcement override; opens and closes entitlement exceptions (plan.limit.exceeded.v1, plan.limit.resolved.v1)."
            }
            Job::SnapshotMrr => {
                "Writes this month's MRR snapshot on its first run of the month (revenue.mrr.snapshot.v1), so the revenue posture has a trend; later runs write nothing."
            }
            Job::AlertDispatcher => {
                "Queues platform alerts raised since its last run (failed job runs, install.silent.v1, usage.soft_cap.exceeded.v1, approval.breached.v1) for the platform notification channels that subscribe to them; each alert once."
            }
            Job::ApprovalSla => {
                "Marks pending approval requests past their SLA breached (approval.breached.v1, paging the escalation target through the notification channels) and expires those still undecided 7 days later (approval.expired.v1)."
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
            Job::EndExpiredVisits => "15 * * * * *",
            Job::VerifyLedger => "0 45 3 * * *",
            Job::PruneWebhooks => "0 10 4 * * *",
            Job::PruneUsageEvents => "0 40 * * * *",
            Job::FinalizeInvoices => "0 5 * * * *",
            Job::MarkDelinquent => "0 15 6 * * *",
            Job::PlanEnforcer => "0 50 * * * *",
            Job::SnapshotMrr => "0 5 0 * * *",
            Job::AlertDispatcher => "45 * * * * *",
            Job::ApprovalSla => "50 * * * * *",
        }
    }

    /// Parses a job name.
    pub fn parse(s: &str) -> Option<Job> {
        Job::ALL.into_iter().find(|j| j.name() == s)
    }

    /// The key prefix of this job's runs in [`super::runs::JOB_RUNS`].
    pub(crate) fn key_prefix(self) -> Vec<u8> {
        Key::new().str(self.name()).into_bytes()
    }
}
