//! `/healthz` (liveness), `/readyz` (readiness: store readable, writer open, scheduler running),
//! `/api/whoami`, and the permission entry of `/api/openapi.json` (which [`super::app`] serves).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::context::Context;
use super::extract::Caller;
use crate::actor::ActorKind;
use crate::rbac::{Access, Role, Route};
use crate::state::AppState;

/// Health, readiness, who-am-I and the OpenAPI document.
pub const CONTEXT: Context = Context {
    name: "health",
    tags: &[("health", "Liveness and readiness")],
    api: router,
    routes: ROUTES,
    ..Context::EMPTY
};

/// The permission entry of every route of this module.
const ROUTES: &[Route] = &[
    ("GET", "/healthz", Access::Public),
    ("GET", "/readyz", Access::Public),
    ("GET", "/api/openapi.json", Access::Public),
    ("GET", "/api/whoami", Access::Authenticated),
];

crate::string_enum_schema!(
    crate::config::Role as "InstallRole",
    "Which side of the on-prem contract this process plays (HEARTBEATS.md)."
);

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(whoami))
}

/// Liveness.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok` while the process serves.
    pub status: &'static str,
    /// Build version.
    pub version: &'static str,
}

/// Liveness: the process is serving.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()), responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Readiness. Anyone (a load balancer, systemd) sees the status and its checks; the details
/// that describe the install (its id, size, role, license) are for operators only and absent
/// otherwise (issue 12, finding 8).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// A read transaction opens.
    pub store: bool,
    /// The scheduler loop is running.
    pub scheduler: bool,
    /// Operators only: the install's details.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(inline)]
    pub details: Option<ReadinessDetails>,
}

/// What `/readyz` tells an operator beyond the checks.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReadinessDetails {
    /// Size of the data file, bytes.
    pub data_file_bytes: u64,
    /// This install.
    pub install_id: String,
    /// Seconds since start.
    pub uptime_s: i64,
    /// `appliance`, `control_plane` or `both`.
    pub role: crate::config::Role,
    /// The appliance's license state and limits; null on a control plane. A license that is
    /// expired or refused degrades provisioning but not readiness (`GET /api/license` says why).
    pub license: Option<crate::license::api::LicenseSummary>,
}

/// Readiness: 200 when the store is readable and the scheduler runs, else 503. With an
/// operator's credentials, also the install's details.
#[utoipa::path(get, path = "/readyz", tag = "health", security(()), responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
async fn readyz(
    State(state): State<AppState>,
    caller: Option<axum::Extension<crate::rbac::Principal>>,
) -> impl IntoResponse {
    let operator = caller.is_some_and(|p| p.role().is_some());
    let store_ok = state.read(|_| Ok(())).await.is_ok();
    let scheduler_ok = state.scheduler().is_running();
    let ready = store_ok && scheduler_ok;
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        store: store_ok,
        scheduler: scheduler_ok,
        details: if operator {
            Some(ReadinessDetails {
                data_file_bytes: state.store().file_size(),
                install_id: state.install_id().to_string(),
                uptime_s: (state.clock().now() - state.started_at())
                    .num_seconds()
                    .max(0),
                role: state.onprem().role(),
                license: if state.onprem().role().is_appliance() {
                    crate::license::queries::report(&state)
                        .await
                        .ok()
                        .map(Into::into)
                } else {
                    None
                },
            })
        } else {
            None
        },
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// The caller as the server sees it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// Actor id recorded in the ledger.
    pub actor_id: String,
    /// Actor kind: `operator`, `persona` or `api_key`.
    pub actor_kind: ActorKind,
    /// An operator's role; null for a tenant principal.
    pub role: Option<Role>,
    /// Display name.
    pub display_name: String,
    /// A tenant principal's tenant; null for an operator.
    pub tenant_id: Option<uuid::Uuid>,
    /// A tenant principal's persona; null for an operator.
    pub persona_id: Option<uuid::Uuid>,
    /// A tenant principal's scopes (dotted names); empty for an operator.
    pub scopes: Vec<String>,
}

/// Who am I: the authenticated principal, operator (with its role) or tenant (with its tenant
/// and scopes).
#[utoipa::path(get, path = "/api/whoami", tag = "health", responses((status = 200, body = WhoAmI), (status = 401, body = super::problem::Problem)))]
async fn whoami(Caller(p): Caller) -> Json<WhoAmI> {
    let tenant = p.tenant().cloned();
    Json(WhoAmI {
        actor_kind: p.actor.kind,
        role: p.role(),
        actor_id: p.actor.id,
        display_name: p.display_name,
        tenant_id: tenant.as_ref().map(|t| t.tenant_id),
        persona_id: tenant.as_ref().map(|t| t.persona_id),
        scopes: tenant
            .map(|t| t.scopes.iter().map(|s| s.as_str().to_string()).collect())
            .unwrap_or_default(),
    })
}
