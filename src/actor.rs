//! Who is acting: the `actor` of every audit entry (AUDIT.md, envelope member `actor`).

use serde::{Deserialize, Serialize};

/// The kind of an actor, as the ledger spells it (AUDIT.md: `operator`, `persona`, `api_key`,
/// `system`, `install`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A platform operator (console account or operator token).
    Operator,
    /// A member of a tenant.
    Persona,
    /// A machine credential.
    ApiKey,
    /// Tenantry itself: scheduler jobs, start-up initialisation, the demo seeder.
    System,
    /// An on-prem install (heartbeats).
    Install,
}

impl ActorKind {
    /// Every kind.
    pub const ALL: [ActorKind; 5] = [
        ActorKind::Operator,
        ActorKind::Persona,
        ActorKind::ApiKey,
        ActorKind::System,
        ActorKind::Install,
    ];
    /// The ledger spelling, e.g. `"api_key"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Operator => "operator",
            ActorKind::Persona => "persona",
            ActorKind::ApiKey => "api_key",
            ActorKind::System => "system",
            ActorKind::Install => "install",
        }
    }
}

/// `{"kind", "id"}`: the principal a change is attributed to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// What sort of principal acted.
    pub kind: ActorKind,
    /// Its stable id: an operator id, a job name (`job:shred_due_tenants`), `admin-ops-token`...
    pub id: String,
}

tokio::task_local! {
    /// The actor of the job running in this task: who ran it by hand, or the job itself.
    static JOB_ACTOR: Actor;
}

impl Actor {
    /// The actor of job `name`'s changes: the operator (or CLI) who ran it by hand, when the
    /// run is inside [`Actor::run_as_job`], else the job itself, `job:<name>` (system). Issue
    /// 12, finding 8: a manual run is attributed to whoever asked for it.
    pub fn job(name: &str) -> Actor {
        JOB_ACTOR
            .try_with(Clone::clone)
            .unwrap_or_else(|_| Actor::system(format!("job:{name}")))
    }

    /// Runs `f` with `actor` as the actor [`Actor::job`] gives.
    pub async fn run_as_job<F: std::future::Future>(actor: Actor, f: F) -> F::Output {
        JOB_ACTOR.scope(actor, f).await
    }

    /// The system acting on its own behalf, e.g. `Actor::system("job:expire_trials")`.
    pub fn system(id: impl Into<String>) -> Actor {
        Actor {
            kind: ActorKind::System,
            id: id.into(),
        }
    }

    /// An operator, by id.
    pub fn operator(id: impl Into<String>) -> Actor {
        Actor {
            kind: ActorKind::Operator,
            id: id.into(),
        }
    }

    /// A persona of a tenant, by id.
    pub fn persona(id: impl Into<String>) -> Actor {
        Actor {
            kind: ActorKind::Persona,
            id: id.into(),
        }
    }

    /// An API key, by id.
    pub fn api_key(id: impl Into<String>) -> Actor {
        Actor {
            kind: ActorKind::ApiKey,
            id: id.into(),
        }
    }
}
