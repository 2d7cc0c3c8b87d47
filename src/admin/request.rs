//! The requests of the admin socket (one JSON line each), shared by the server and the client.

use serde::{Deserialize, Serialize};

/// A request on the admin socket (one JSON line).
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AdminRequest {
    /// Is a server there?
    Ping,
    /// Verify one chain or all, from seq 1 (`full`) or from the last good checkpoint. Signs
    /// nothing.
    AuditVerify {
        /// `platform` or `tenant:{uuid}`; all chains when absent.
        chain: Option<String>,
        /// Walk from seq 1.
        full: bool,
    },
    /// Stream the NDJSON export of a chain.
    AuditExport {
        /// The chain.
        chain: String,
    },
    /// List jobs with their last run.
    JobsList,
    /// Run a job now.
    JobRun {
        /// Job name.
        name: String,
    },
    /// Create an operator.
    OperatorAdd {
        /// Username.
        username: String,
        /// Display name.
        display_name: Option<String>,
        /// Role name.
        role: String,
        /// Password (travels only over the owner-only socket).
        password: String,
    },
    /// List operators.
    OperatorList,
    /// Change an operator's role.
    OperatorSetRole {
        /// Username or id.
        username: String,
        /// Role name.
        role: String,
    },
    /// Disable or re-enable an operator.
    OperatorSetDisabled {
        /// Username or id.
        username: String,
        /// Disable (true) or enable (false).
        disabled: bool,
    },
    /// Set an operator's password.
    OperatorSetPassword {
        /// Username or id.
        username: String,
        /// The new password.
        password: String,
    },
    /// Create an operator token; the result holds the secret, once.
    OperatorTokenCreate {
        /// Username or id.
        username: String,
        /// What the token is for.
        name: String,
    },
    /// Appliance: stream the outbox as one signed heartbeat bundle.
    HeartbeatExport,
    /// Control plane: import a heartbeat bundle (the file's text).
    HeartbeatImport {
        /// The bundle file's content.
        bundle: String,
    },
    /// Appliance: remove heartbeats up to `through` from the outbox after an import.
    HeartbeatAck {
        /// Highest seq the control plane imported.
        through: u64,
    },
    /// Appliance: the outbox and sender state.
    SyncStatus,
    /// Stream a backup of the store (encrypted to these age recipients and the configured
    /// ones), then record it.
    BackupCreate {
        /// Extra age recipients (`age1...`).
        recipients: Vec<String>,
        /// Allow an unencrypted backup when there is no recipient at all (`--plaintext`);
        /// without it, such a request is refused (`backup_unencrypted`).
        #[serde(default)]
        plaintext: bool,
    },
    /// The recorded backups, newest first.
    BackupList,
}

impl AdminRequest {
    /// The operation's name (what logs show: never its arguments, which may hold a password or
    /// a whole bundle).
    pub fn name(&self) -> &'static str {
        match self {
            AdminRequest::Ping => "ping",
            AdminRequest::AuditVerify { .. } => "audit_verify",
            AdminRequest::AuditExport { .. } => "audit_export",
            AdminRequest::JobsList => "jobs_list",
            AdminRequest::JobRun { .. } => "job_run",
            AdminRequest::OperatorAdd { .. } => "operator_add",
            AdminRequest::OperatorList => "operator_list",
            AdminRequest::OperatorSetRole { .. } => "operator_set_role",
            AdminRequest::OperatorSetDisabled { .. } => "operator_set_disabled",
            AdminRequest::OperatorSetPassword { .. } => "operator_set_password",
            AdminRequest::OperatorTokenCreate { .. } => "operator_token_create",
            AdminRequest::HeartbeatExport => "heartbeat_export",
            AdminRequest::HeartbeatImport { .. } => "heartbeat_import",
            AdminRequest::HeartbeatAck { .. } => "heartbeat_ack",
            AdminRequest::SyncStatus => "sync_status",
            AdminRequest::BackupCreate { .. } => "backup_create",
            AdminRequest::BackupList => "backup_list",
        }
    }
}

impl std::fmt::Debug for AdminRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminRequest::{}", self.name())
    }
}

/// The actor of changes made through the admin socket or directly on the data dir: the local
/// administrator (the data dir's owner, or root), as `{"kind": "system", "id": "cli"}` so it can
/// never be mistaken for an operator account.
pub fn cli_actor() -> crate::actor::Actor {
    crate::actor::Actor::system("cli")
}
