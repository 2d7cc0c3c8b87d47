//! `/api/tenants` and `/api/tenant-lifecycle` routes (API.md first slice; operator guide §1).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::directory::{self, DirectoryQuery};
use super::model::{self, Action, State as TenantState, Tier, allowed_actions};
use super::queries::{self, DirectoryFilter, Summary};
use super::service::{self, TenantChanges, TenantDraft, TransitionDraft};
use crate::error::{Error, Result};
use crate::http::extract::{ApiJson, ApiQuery, Caller, OptionalJson};
use crate::http::problem::{ApiResult, Problem};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(tenants_provision, tenants_list))
        .routes(routes!(tenants_export_csv))
        .routes(routes!(tenants_summary))
        .routes(routes!(tenants_get, tenants_update))
        .routes(routes!(lifecycle_state))
        .routes(routes!(lifecycle_start_trial))
        .routes(routes!(lifecycle_activate))
        .routes(routes!(lifecycle_suspend))
        .routes(routes!(lifecycle_reinstate))
        .routes(routes!(lifecycle_offboard))
        .routes(routes!(lifecycle_cancel_offboarding))
        .routes(routes!(plan_history_get))
        .routes(routes!(tenant_exports_create))
        .routes(routes!(tenant_exports_download))
}

/// The answer of a guarded action: the result when it ran, 202 with the approval request
/// when a route held it.
fn guarded_response<T>(
    s: &AppState,
    g: crate::approvals::service::Guarded<T>,
    done: impl FnOnce(T) -> Response,
) -> Response {
    match g {
        crate::approvals::service::Guarded::Done(t) => done(t),
        crate::approvals::service::Guarded::Held(req) => {
            crate::approvals::api::accepted(*req, s.clock().now())
        }
    }
}

/// An export of a tenant's data, made.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TenantExport {
    /// UUIDv7.
    pub id: Uuid,
    /// The tenant.
    pub tenant_id: Uuid,
    /// The document's size when asked, bytes.
    pub size_bytes: i64,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Until when it can be downloaded (24 hours).
    pub expires_at: DateTime<Utc>,
    /// Where to download it.
    pub download_url: String,
}

/// Asks for an export of the tenant's data (`tenant.export.created.v1`): its record and every
/// context's section, as one JSON document downloadable for 24 hours. An approval route on
/// `tenant.export` (e.g. `size_bytes > 1 GB`) holds it: 202 with the request.
#[utoipa::path(post, path = "/api/tenants/{id}/exports", tag = "tenants",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 201, body = TenantExport), (status = 202, body = crate::approvals::api::ApprovalRequest), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn tenant_exports_create(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = tenant_id(&id)?;
    let g = super::guarded::export(&s, &p, id).await?;
    Ok(guarded_response(&s, g, |e| {
        (
            StatusCode::CREATED,
            Json(TenantExport {
                download_url: format!("/api/tenants/{}/exports/{}", e.tenant_id, e.id),
                id: e.id,
                tenant_id: e.tenant_id,
                size_bytes: e.export.size_bytes,
                created_at: crate::clock::from_micros(e.export.created_at),
                expires_at: crate::clock::from_micros(e.export.expires_at),
            }),
        )
            .into_response()
    }))
}

/// Downloads an export: the tenant's data as of now, one JSON document
/// (`format: tenantry.tenant-export.v1`), while the export's 24 hours last.
#[utoipa::path(get, path = "/api/tenants/{id}/exports/{export_id}", tag = "tenants",
    params(("id" = String, Path, description = "Tenant id"), ("export_id" = String, Path, description = "Export id")),
    responses((status = 200, description = "The export document", content_type = "application/json"), (status = 404, body = Problem), (status = 410, body = Problem)))]
async fn tenant_exports_download(
    State(s): State<AppState>,
    Path((id, export_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = tenant_id(&id)?;
    let eid = crate::error::path_id("export", &export_id)?;
    let hooks = s.tenant_hooks().on_export.clone();
    let now = s.clock().now();
    let doc = s
        .read(move |r| {
            super::guarded::load_export(r, &id, &eid, crate::clock::to_micros(now))?;
            super::guarded::document(r, &hooks, &id, now)
        })
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"tenant-{id}-export.json\""),
            ),
        ],
        doc,
    )
        .into_response())
}

fn tenant_id(id: &str) -> Result<Uuid> {
    crate::ids::parse_uuid(id).ok_or_else(|| Error::not_found("tenant", id))
}

/// Provisions a tenant in state `provisioned` (writes `tenant.created.v1` and
/// `tenant.pool.assigned.v1`).
#[utoipa::path(post, path = "/api/tenants", tag = "tenants", request_body = NewTenant,
    responses((status = 201, body = Tenant), (status = 400, body = Problem), (status = 409, body = Problem),
        (status = 413, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
async fn tenants_provision(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiJson(body): ApiJson<NewTenant>,
) -> ApiResult<Response> {
    let config = s.config().clone();
    let plans = s.read(crate::plans::queries::codes).await?;
    let input = TenantDraft::from(body).parse(&config, &plans)?;
    let hooks = s.tenant_hooks().clone();
    let t = s
        .write(p.actor, move |ctx| {
            service::provision(ctx, &config, &input, &hooks)
        })
        .await?;
    let location = format!("/api/tenants/{}", t.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(Tenant::from(t)),
    )
        .into_response())
}

/// A tenant.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Tenant {
    /// UUIDv7; sorts by creation time.
    pub id: Uuid,
    /// The parent app.
    pub app_id: Uuid,
    /// What the customer sees.
    pub display_name: String,
    /// Unique, `a-z0-9-`, 1–63 characters.
    pub slug: String,
    /// Region code.
    pub region: String,
    /// `S`, `P` or `G`.
    pub isolation_tier: Tier,
    /// Vanity hostname.
    pub brand_domain: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    /// Primary contact email.
    pub contact_email: Option<String>,
    /// Plan name.
    pub plan: Option<String>,
    /// Trial length in days, used by start-trial.
    pub trial_days: Option<u32>,
    /// Depth of the org hierarchy (tenant-management seed: Norway 1, Sweden 2, France 3).
    pub hierarchy_depth: Option<u8>,
    /// Lifecycle state.
    pub state: TenantState,
    /// When the state was entered.
    #[serde(serialize_with = "crate::http::json::rfc3339")]
    pub state_since: DateTime<Utc>,
    /// Reason given for the last transition, if any.
    pub state_reason: Option<String>,
    /// Offboarding deadline: the data is shredded at this instant.
    #[serde(serialize_with = "crate::http::json::rfc3339_opt")]
    pub deadline_at: Option<DateTime<Utc>>,
    /// The state an offboarding tenant returns to when cancelled.
    pub offboarding_from: Option<TenantState>,
    /// End of the trial, while in trial.
    #[serde(serialize_with = "crate::http::json::rfc3339_opt")]
    pub trial_ends_at: Option<DateTime<Utc>>,
    /// Pool assignment.
    pub pools: PoolAssignment,
    /// Creation time.
    #[serde(serialize_with = "crate::http::json::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(serialize_with = "crate::http::json::rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// When the data was shredded.
    #[serde(serialize_with = "crate::http::json::rfc3339_opt")]
    pub shredded_at: Option<DateTime<Utc>>,
}

impl From<model::Tenant> for Tenant {
    fn from(t: model::Tenant) -> Tenant {
        Tenant {
            id: t.id,
            app_id: t.app_id,
            display_name: t.display_name,
            slug: t.slug,
            region: t.region,
            isolation_tier: t.isolation_tier,
            brand_domain: t.brand_domain,
            country: t.country,
            contact_email: t.contact_email,
            plan: t.plan,
            trial_days: t.trial_days,
            hierarchy_depth: t.hierarchy_depth,
            state: t.state,
            state_since: t.state_since,
            state_reason: t.state_reason,
            deadline_at: t.deadline_at,
            offboarding_from: t.offboarding_from,
            trial_ends_at: t.trial_ends_at,
            pools: t.pools.into(),
            created_at: t.created_at,
            updated_at: t.updated_at,
            shredded_at: t.shredded_at,
        }
    }
}

/// Pools a tenant is assigned to (PRODUCT.md B8).
#[derive(Serialize, utoipa::ToSchema)]
pub struct PoolAssignment {
    /// Admin pool id, e.g. `admin-2` (dedicated for `G`).
    pub admin: String,
    /// App pools.
    pub app: AppPools,
}

/// App pools of a tenant: `{"shared": [[module, pool], ...]}` or `{"dedicated": pool}`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppPools {
    /// Shared pools, one per module: `[(module, pool id)]`.
    Shared(Vec<(String, String)>),
    /// One dedicated pool serving every module (`P` and `G`).
    Dedicated(String),
}

impl From<model::PoolAssignment> for PoolAssignment {
    fn from(p: model::PoolAssignment) -> PoolAssignment {
        PoolAssignment {
            admin: p.admin,
            app: match p.app {
                model::AppPools::Shared(m) => AppPools::Shared(m),
                model::AppPools::Dedicated(d) => AppPools::Dedicated(d),
            },
        }
    }
}

/// Appends [`Tenant`]'s JSON for a record read in place ([`model::TenantV1Ref`]): the same
/// fields in the same order, written by hand without an owned copy of the row. A directory page
/// is 50 of these, and serde's derive spent a third of the page's CPU escaping the constant
/// field names and walking the serializer (issue 13's profile). `tenant_row_json_is_tenant_json`
/// checks it byte for byte against [`Tenant`]'s serde output.
fn push_tenant_row(buf: &mut Vec<u8>, t: &model::TenantV1Ref<'_>) {
    use crate::http::json::{
        push_key, push_micros_rfc3339 as push_time, push_opt_str, push_opt_u64, push_str, push_uuid,
    };
    let opt_time = |b: &mut Vec<u8>, t: Option<i64>| match t {
        Some(t) => push_time(b, t),
        None => b.extend_from_slice(b"null"),
    };
    let state =
        |b: &mut Vec<u8>, s: Option<TenantState>| push_opt_str(b, s.map(TenantState::as_str));
    push_key!(buf, first "id");
    push_uuid(buf, &Uuid::from_bytes(t.id));
    push_key!(buf, "app_id");
    push_uuid(buf, &Uuid::from_bytes(t.app_id));
    push_key!(buf, "display_name");
    push_str(buf, t.display_name);
    push_key!(buf, "slug");
    push_str(buf, t.slug);
    push_key!(buf, "region");
    push_str(buf, t.region);
    push_key!(buf, "isolation_tier");
    push_str(buf, t.tier.as_str());
    push_key!(buf, "brand_domain");
    push_opt_str(buf, t.brand_domain);
    push_key!(buf, "country");
    push_opt_str(buf, t.country);
    push_key!(buf, "contact_email");
    push_opt_str(buf, t.contact_email);
    push_key!(buf, "plan");
    push_opt_str(buf, t.plan);
    push_key!(buf, "trial_days");
    push_opt_u64(buf, t.trial_days.map(u64::from));
    push_key!(buf, "hierarchy_depth");
    push_opt_u64(buf, t.hierarchy_depth.map(u64::from));
    push_key!(buf, "state");
    state(buf, Some(t.state));
    push_key!(buf, "state_since");
    push_time(buf, t.state_since);
    push_key!(buf, "state_reason");
    push_opt_str(buf, t.state_reason);
    push_key!(buf, "deadline_at");
    opt_time(buf, t.deadline_at);
    push_key!(buf, "offboarding_from");
    state(buf, t.offboarding_from);
    push_key!(buf, "trial_ends_at");
    opt_time(buf, t.trial_ends_at);
    push_key!(buf, "pools");
    push_key!(buf, first "admin");
    push_str(buf, t.pools.admin);
    push_key!(buf, "app");
    match &t.pools.app {
        model::AppPoolsRef::Shared(modules) => {
            push_key!(buf, first "shared");
            buf.push(b'[');
            for (i, (module, pool)) in modules.iter().enumerate() {
                buf.extend_from_slice(if i == 0 { b"[" } else { b",[" });
                push_str(buf, module);
                buf.push(b',');
                push_str(buf, pool);
                buf.push(b']');
            }
            buf.extend_from_slice(b"]}}");
        }
        model::AppPoolsRef::Dedicated(pool) => {
            push_key!(buf, first "dedicated");
            push_str(buf, pool);
            buf.extend_from_slice(b"}}");
        }
    }
    push_key!(buf, "created_at");
    push_time(buf, t.created_at);
    push_key!(buf, "updated_at");
    push_time(buf, t.updated_at);
    push_key!(buf, "shredded_at");
    opt_time(buf, t.shredded_at);
    buf.push(b'}');
}

crate::string_enum_schema!(TenantState, "Lifecycle state (PRODUCT.md A3).");
crate::string_enum_schema!(
    Tier,
    "Isolation tier: S shared, P premium (dedicated app pool), G sovereign."
);
crate::string_enum_schema!(Action, "A lifecycle action: its route's path segment.");

/// `POST /api/tenants` body (API.md first-slice table).
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// UUID of an existing app.
    pub app_id: String,
    /// What the customer sees, 1–120 characters.
    pub display_name: String,
    /// Unique slug; derived from the name when absent.
    pub slug: Option<String>,
    /// A configured region code.
    pub region: String,
    /// `S` (default), `P` or `G`; `G` needs a sovereign region.
    pub isolation_tier: Option<String>,
    /// Vanity hostname.
    pub brand_domain: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    /// Primary contact email.
    pub contact_email: Option<String>,
    /// A configured plan.
    pub plan: Option<String>,
    /// Trial length, 1–365 days.
    pub trial_days: Option<i64>,
    /// Org hierarchy depth, 1–5.
    pub hierarchy_depth: Option<i64>,
}

impl From<NewTenant> for TenantDraft {
    fn from(b: NewTenant) -> TenantDraft {
        TenantDraft {
            app_id: b.app_id,
            display_name: b.display_name,
            slug: b.slug,
            region: b.region,
            isolation_tier: b.isolation_tier,
            brand_domain: b.brand_domain,
            country: b.country,
            contact_email: b.contact_email,
            plan: b.plan,
            trial_days: b.trial_days,
            hierarchy_depth: b.hierarchy_depth,
        }
    }
}

/// `PATCH /api/tenants/{id}` body: the editable fields. `null` clears an optional field; an
/// absent member leaves it as is.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    /// New display name.
    pub display_name: Option<String>,
    /// New contact email; `null` clears.
    #[serde(default, deserialize_with = "crate::http::extract::double_option")]
    #[schema(value_type = Option<String>)]
    pub contact_email: Option<Option<String>>,
    /// New brand domain; `null` clears.
    #[serde(default, deserialize_with = "crate::http::extract::double_option")]
    #[schema(value_type = Option<String>)]
    pub brand_domain: Option<Option<String>>,
    /// New country; `null` clears.
    #[serde(default, deserialize_with = "crate::http::extract::double_option")]
    #[schema(value_type = Option<String>)]
    pub country: Option<Option<String>>,
    /// New plan; `null` clears.
    #[serde(default, deserialize_with = "crate::http::extract::double_option")]
    #[schema(value_type = Option<String>)]
    pub plan: Option<Option<String>>,
    /// New trial length.
    pub trial_days: Option<i64>,
    /// New hierarchy depth.
    pub hierarchy_depth: Option<i64>,
}

impl From<TenantPatch> for TenantChanges {
    fn from(p: TenantPatch) -> TenantChanges {
        TenantChanges {
            display_name: p.display_name,
            contact_email: p.contact_email,
            brand_domain: p.brand_domain,
            country: p.country,
            plan: p.plan,
            trial_days: p.trial_days,
            hierarchy_depth: p.hierarchy_depth,
        }
    }
}

/// Body of the lifecycle routes; each action reads the members that apply to it.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    /// Why (required for suspend; recorded in the ledger for every action).
    pub reason: Option<String>,
    /// Offboard only: grace period in days, 0–3650 (default 30).
    pub grace_days: Option<i64>,
    /// Start-trial only: trial length in days, 1–365.
    pub trial_days: Option<i64>,
}

impl From<TransitionRequest> for TransitionDraft {
    fn from(t: TransitionRequest) -> TransitionDraft {
        TransitionDraft {
            reason: t.reason,
            grace_days: t.grace_days,
            trial_days: t.trial_days,
        }
    }
}

/// The state view of `GET /api/tenant-lifecycle/{id}/state`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StateView {
    /// The tenant.
    pub tenant_id: Uuid,
    /// Current state.
    pub state: TenantState,
    /// When it was entered.
    pub since: DateTime<Utc>,
    /// The reason given.
    pub reason: Option<String>,
    /// Offboarding deadline.
    pub deadline_at: Option<DateTime<Utc>>,
    /// Trial end.
    pub trial_ends_at: Option<DateTime<Utc>>,
    /// Actions that would succeed now (path segments).
    pub allowed: Vec<Action>,
}

impl From<&model::Tenant> for StateView {
    fn from(t: &model::Tenant) -> StateView {
        StateView {
            tenant_id: t.id,
            state: t.state,
            since: t.state_since,
            reason: t.state_reason.clone(),
            deadline_at: t.deadline_at,
            trial_ends_at: t.trial_ends_at,
            allowed: allowed_actions(t.state, t.offboarding_from),
        }
    }
}

/// One row of the directory: a tenant, or `{id, error}` for a record that does not decode.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum DirectoryRow {
    /// A tenant.
    Tenant(Box<Tenant>),
    /// A record that could not be read.
    Broken {
        /// Its id.
        id: Uuid,
        /// Why it could not be read.
        error: String,
    },
}

impl From<directory::DirectoryRow> for DirectoryRow {
    fn from(r: directory::DirectoryRow) -> DirectoryRow {
        match r {
            directory::DirectoryRow::Tenant(t) => DirectoryRow::Tenant(Box::new((*t).into())),
            directory::DirectoryRow::Broken { id, error } => DirectoryRow::Broken { id, error },
        }
    }
}

/// About the JSON size of one directory row, to size a page's buffer once.
const ROW_BYTES: usize = 900;

/// A page of the directory.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TenantPage {
    /// Tenants (or error rows for records that cannot be read).
    pub items: Vec<DirectoryRow>,
    /// Cursor of the next page, or null.
    pub next_cursor: Option<String>,
}

fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"))
}

/// The tenant directory: server-side filters, sort and cursor pages. `Accept: text/csv` gives
/// the CSV export of the same query.
#[utoipa::path(get, path = "/api/tenants", tag = "tenants", params(DirectoryFilter),
    responses((status = 200, body = TenantPage), (status = 400, body = Problem)))]
async fn tenants_list(
    State(s): State<AppState>,
    Caller(p): Caller,
    headers: HeaderMap,
    ApiQuery(filter): ApiQuery<DirectoryFilter>,
) -> ApiResult<Response> {
    let q = filter.parse()?;
    if wants_csv(&headers) {
        if !p.can(crate::rbac::Permission::TenantsExport) {
            return Err(crate::rbac::Refusal::Forbidden(format!(
                "your role '{}' may not GET /api/tenants/export.csv",
                p.label()
            ))
            .into());
        }
        return Ok(csv_response(&s, q));
    }
    // A page whose index applies every filter reads at most `INLINE_ROWS + 1` records from a
    // snapshot: cheaper to write here than to hand to the blocking pool and wake this task
    // again (the handoff was about a tenth of a directory request's CPU, issue 13). Any other
    // page, which may scan up to `SCAN_BUDGET` rows, goes to the pool.
    let body = if q.limit <= INLINE_ROWS && directory::reads_only_its_rows(&q) {
        s.store()
            .read_blocking(|r| page_json(r, &q, s.rendered_rows()))?
    } else {
        let rows = s.clone();
        s.read(move |r| page_json(r, &q, rows.rendered_rows()))
            .await?
    };
    Ok(crate::http::json::written(body))
}

/// The largest directory page written on the request's thread (see `tenants_list`).
const INLINE_ROWS: usize = 100;

/// A directory page as the JSON of [`TenantPage`], written row by row from the snapshot's
/// pages into one buffer sized for the page (issue 13: no owned row, no intermediate value).
/// A row already written from the same stored bytes is copied from `rows` instead of decoded
/// and written again; a newly written one is kept there ([`super::rendered`]).
///
/// Errors: as [`directory::query`].
pub fn page_json(
    r: &impl crate::store::Reader,
    q: &DirectoryQuery,
    rows: &super::rendered::RenderedRows,
) -> Result<Vec<u8>> {
    fn json<T: Serialize>(buf: &mut Vec<u8>, v: &T) -> Result<()> {
        serde_json::to_writer(buf, v)
            .map_err(|e| Error::Internal(format!("serializing a directory row: {e}")))
    }
    let mut buf =
        Vec::with_capacity(64 + q.limit.min(crate::store::page::DEFAULT_LIMIT) * ROW_BYTES);
    buf.extend_from_slice(b"{\"items\":[");
    let mut first = true;
    let next = directory::query_each(r, q, |id, bytes| {
        if !std::mem::take(&mut first) {
            buf.push(b',');
        }
        if rows.write(&id, bytes, &mut buf) {
            return Ok(());
        }
        match model::TenantRecordRef::decode(bytes) {
            Ok(model::TenantRecordRef::V1(t)) => {
                let start = buf.len();
                push_tenant_row(&mut buf, &t);
                rows.keep(id, bytes, &buf[start..]);
                Ok(())
            }
            Err(e) => json(
                &mut buf,
                &DirectoryRow::Broken {
                    id,
                    error: format!("record could not be decoded: {e}"),
                },
            ),
        }
    })?;
    buf.extend_from_slice(b"],\"next_cursor\":");
    json(&mut buf, &next.map(|c| c.encode()))?;
    buf.push(b'}');
    Ok(buf)
}

/// CSV export of the directory: the same filters and sort, every matching row, from one
/// snapshot (csv crate; cells that a spreadsheet would run as formulas are prefixed with `'`).
#[utoipa::path(get, path = "/api/tenants/export.csv", tag = "tenants", params(DirectoryFilter),
    responses((status = 200, content_type = "text/csv", body = String), (status = 400, body = Problem)))]
async fn tenants_export_csv(
    State(s): State<AppState>,
    ApiQuery(filter): ApiQuery<DirectoryFilter>,
) -> ApiResult<Response> {
    let mut q = filter.parse()?;
    q.limit = crate::store::page::MAX_LIMIT;
    q.cursor = None;
    Ok(csv_response(&s, q))
}

/// Column names of the CSV export.
pub const CSV_COLUMNS: [&str; 18] = [
    "id",
    "display_name",
    "slug",
    "app_id",
    "state",
    "region",
    "isolation_tier",
    "plan",
    "contact_email",
    "country",
    "brand_domain",
    "created_at",
    "state_since",
    "state_reason",
    "deadline_at",
    "admin_pool",
    "app_pools",
    "error",
];

/// A free-text CSV cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR
/// first) gets a leading `'` (OWASP "CSV injection"); other text is unchanged.
pub fn cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

fn csv_row(row: &directory::DirectoryRow) -> Vec<String> {
    let opt = |v: &Option<String>| v.as_deref().map(cell).unwrap_or_default();
    match row {
        directory::DirectoryRow::Tenant(t) => {
            let apps = match &t.pools.app {
                model::AppPools::Shared(m) => m
                    .iter()
                    .map(|(md, p)| format!("{md}:{p}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                model::AppPools::Dedicated(p) => format!("*:{p}"),
            };
            vec![
                t.id.to_string(),
                cell(&t.display_name),
                t.slug.clone(),
                t.app_id.to_string(),
                t.state.as_str().into(),
                t.region.clone(),
                t.isolation_tier.as_str().into(),
                opt(&t.plan),
                opt(&t.contact_email),
                opt(&t.country),
                opt(&t.brand_domain),
                crate::clock::rfc3339_micros(t.created_at),
                crate::clock::rfc3339_micros(t.state_since),
                opt(&t.state_reason),
                t.deadline_at
                    .map(crate::clock::rfc3339_micros)
                    .unwrap_or_default(),
                t.pools.admin.clone(),
                apps,
                String::new(),
            ]
        }
        directory::DirectoryRow::Broken { id, error } => {
            let mut v = vec![String::new(); CSV_COLUMNS.len()];
            v[0] = id.to_string();
            v[CSV_COLUMNS.len() - 1] = cell(error);
            v
        }
    }
}

fn csv_response(s: &AppState, q: DirectoryQuery) -> Response {
    let (tx, rx) = match s
        .exports()
        .channel::<std::result::Result<Bytes, std::io::Error>>()
    {
        Ok(c) => c,
        Err(e) => return crate::http::problem::ApiError::Domain(e).into_response(),
    };
    let store = s.store().clone();
    tokio::task::spawn_blocking(move || {
        let result = store.read_blocking(|r| -> Result<()> {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(CSV_COLUMNS)
                .map_err(|e| Error::Internal(e.to_string()))?;
            let mut q = q;
            loop {
                let page = directory::query(r, &q)?;
                for row in &page.rows {
                    w.write_record(csv_row(row))
                        .map_err(|e| Error::Internal(e.to_string()))?;
                }
                let chunk = w.into_inner().map_err(|e| Error::Internal(e.to_string()))?;
                if !tx.send_blocking(Ok(Bytes::from(chunk))) {
                    return Ok(());
                }
                w = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(Vec::new());
                match page.next_cursor {
                    Some(c) => q.cursor = Some(c),
                    None => return Ok(()),
                }
            }
        });
        if let Err(e) = result {
            tracing::error!(error = %e, "CSV export failed midway");
            let _ = tx.send_blocking(Err(std::io::Error::other(e.to_string())));
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"tenants.csv\"",
            ),
        ],
        body,
    )
        .into_response()
}

/// Tenant totals by state, tier and region (maintained counters; no scan).
#[utoipa::path(get, path = "/api/tenants/summary", tag = "tenants", responses((status = 200, body = Summary)))]
async fn tenants_summary(State(s): State<AppState>) -> ApiResult<Json<Summary>> {
    Ok(Json(s.read(queries::summary).await?))
}

/// One tenant, with its pool assignment.
#[utoipa::path(get, path = "/api/tenants/{id}", tag = "tenants", params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = Tenant), (status = 404, body = Problem)))]
async fn tenants_get(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Tenant>> {
    let id = tenant_id(&id)?;
    Ok(Json(s.read(move |r| queries::get(r, &id)).await?.into()))
}

/// Edits a tenant's fields (writes `tenant.updated.v1` with a field diff). A move to a cheaper
/// plan is a plan downgrade: an approval route on `plan.downgrade` holds the whole edit (202).
#[utoipa::path(patch, path = "/api/tenants/{id}", tag = "tenants", params(("id" = String, Path, description = "Tenant id")),
    request_body = TenantPatch,
    responses((status = 200, body = Tenant), (status = 202, body = crate::approvals::api::ApprovalRequest), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn tenants_update(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TenantPatch>,
) -> ApiResult<Response> {
    let id = tenant_id(&id)?;
    let g = super::guarded::update(&s, &p, id, TenantChanges::from(body)).await?;
    Ok(guarded_response(&s, g, |t| {
        Json(Tenant::from(t)).into_response()
    }))
}

/// The lifecycle state, with the actions that would succeed now.
#[utoipa::path(get, path = "/api/tenant-lifecycle/{id}/state", tag = "lifecycle", params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = StateView), (status = 404, body = Problem)))]
async fn lifecycle_state(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<StateView>> {
    let id = tenant_id(&id)?;
    let t = s.read(move |r| queries::get(r, &id)).await?;
    Ok(Json(StateView::from(&t)))
}

async fn run_action(
    s: AppState,
    p: crate::rbac::Principal,
    id: String,
    action: Action,
    body: TransitionRequest,
) -> ApiResult<Response> {
    let id = tenant_id(&id)?;
    let input = TransitionDraft::from(body).parse(action)?;
    if action == Action::Offboard {
        let g = super::guarded::offboard(&s, &p, id, input).await?;
        return Ok(guarded_response(&s, g, |t| {
            Json(StateView::from(&t)).into_response()
        }));
    }
    let t = s
        .write(p.actor, move |ctx| {
            service::transition(ctx, id, action, &input)
        })
        .await?;
    Ok(Json(StateView::from(&t)).into_response())
}

/// `provisioned -> trial`; `trial_days` overrides the tenant's trial length.
#[utoipa::path(post, path = "/api/tenant-lifecycle/{id}/start-trial", tag = "lifecycle", params(("id" = String, Path, description = "Tenant id")),
    request_body(content = Option<TransitionRequest>),
    responses((status = 200, body = StateView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn lifecycle_start_trial(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    OptionalJson(b): OptionalJson<TransitionRequest>,
) -> ApiResult<Response> {
    run_action(s, p, id, Action::StartTrial, b).await
}

/// `provisioned | trial -> active`.
#[utoipa::path(post, path = "/api/tenant-lifecycle/{id}/activate", tag = "lifecycle", params(("id" = String, Path, description = "Tenant id")),
    request_body(content = Option<TransitionRequest>),
    responses((status = 200, body = StateView), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn lifecycle_activate(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    OptionalJson(b): OptionalJson<TransitionRequest>,
) -> ApiResult<Response> {
    run_action(s, p, id, Action::Activate, b).await
}

/// `trial | active -> suspended`; `reason` is required (non-payment, abuse, breach hold).
#[utoipa::path(post, path = "/api/tenant-lifecycle/{id}/suspend", tag = "lifecycle", params(("id" = String, Path, description = "Tenant id")),
    request_body = TransitionRequest,
    responses((status = 200, body = StateView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn lifecycle_suspend(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    OptionalJson(b): OptionalJson<TransitionRequest>,
) -> ApiResult<Response> {
    run_action(s, p, id, Action::Suspend, b).await
}

/// `suspended -> active`; only from `suspended`.
#[utoipa::path(post, path = "/api/tenant-lifecycle/{id}/reinstate", tag = "lifecycle", params(("id" = String, Path, description = "Tenant id")),
    request_body(content = Option<TransitionRequest>),
    responses((status = 200, body = StateView), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn lifecycle_reinstate(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    OptionalJson(b): OptionalJson<TransitionRequest>,
) -> ApiResult<Response> {
    run_action(s, p, id, Action::Reinstate, b).await
}

/// `trial | active | suspended -> offboarding`, with `deadline_at = now + grace_days` (30 by
/// default); the tenant is read-only until then, and shredded at the deadline. An approval
/// route on `tenant.offboard` holds it: 202 with the request.
#[utoipa::path(post, path = "/api/tenant-lifecycle/{id}/offboard", tag = "lifecycle", params(("id" = String, Path, description = "Tenant id")),
    request_body(content = Option<TransitionRequest>),
    responses((status = 200, body = StateView), (status = 202, body = crate::approvals::api::ApprovalRequest), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn lifecycle_offboard(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    OptionalJson(b): OptionalJson<TransitionRequest>,
) -> ApiResult<Response> {
    run_action(s, p, id, Action::Offboard, b).await
}

/// `offboarding -> the state it came from`.
#[utoipa::path(post, path = "/api/tenant-lifecycle/{id}/cancel-offboarding", tag = "lifecycle", params(("id" = String, Path, description = "Tenant id")),
    request_body(content = Option<TransitionRequest>),
    responses((status = 200, body = StateView), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn lifecycle_cancel_offboarding(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    OptionalJson(b): OptionalJson<TransitionRequest>,
) -> ApiResult<Response> {
    run_action(s, p, id, Action::CancelOffboarding, b).await
}

/// One change of a tenant's plan.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PlanChange {
    /// When.
    pub at: DateTime<Utc>,
    /// The plan from then on (null: none).
    pub plan: Option<String>,
    /// The plan before.
    pub from: Option<String>,
    /// The actor id.
    pub by: String,
}

/// A tenant's plan history.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PlanHistory {
    /// Newest first (the last 100).
    pub items: Vec<PlanChange>,
    /// Always null.
    pub next_cursor: Option<String>,
}

/// A tenant's plan assignments, newest first.
#[utoipa::path(get, path = "/api/tenants/{id}/plan-history", tag = "tenants",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = PlanHistory), (status = 404, body = Problem)))]
async fn plan_history_get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<PlanHistory>> {
    let tenant = tenant_id(&id)?;
    let items = s
        .read(move |r| {
            directory::load(r, &tenant)?;
            crate::plans::queries::history(r, &tenant, 100)
        })
        .await?;
    Ok(Json(PlanHistory {
        items: items
            .into_iter()
            .map(|a| PlanChange {
                at: a.at,
                plan: a.plan,
                from: a.from,
                by: a.by,
            })
            .collect(),
        next_cursor: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::codec;
    use model::{AppPools as Pools, PoolAssignment as Assignment, State, TenantRecord};

    fn tenant(i: i64, full: bool) -> model::Tenant {
        let at = |us: i64| chrono::DateTime::from_timestamp_micros(us).unwrap();
        let some = |s: &str| full.then(|| s.to_string());
        model::Tenant {
            id: Uuid::now_v7(),
            app_id: Uuid::now_v7(),
            display_name: format!("Fjord \"Nord\" ÆØÅ \\ {i}\u{1}\n"),
            slug: format!("fjord-{i}"),
            region: "eu-north".into(),
            isolation_tier: Tier::ALL[i as usize % 3],
            brand_domain: some("portal.fjord.no"),
            country: some("NO"),
            contact_email: some("ops@fjord.no"),
            plan: some("pro"),
            trial_days: full.then_some(14),
            hierarchy_depth: full.then_some(3),
            state: State::ALL[i as usize % 6],
            state_since: at(1_780_000_000_123_456 + i),
            state_reason: some("payment <overdue>"),
            deadline_at: full.then(|| at(1_790_000_000_000_000)),
            offboarding_from: full.then_some(State::Active),
            trial_ends_at: full.then(|| at(1_785_000_000_100_000)),
            pools: Assignment {
                admin: "admin-2".into(),
                app: if full {
                    Pools::Shared(vec![
                        ("crm".into(), "app-1".into()),
                        ("erp".into(), "app-7".into()),
                    ])
                } else {
                    Pools::Dedicated("app-9".into())
                },
            },
            created_at: at(1_770_000_000_000_000),
            updated_at: at(1_780_000_000_000_001),
            shredded_at: full.then(|| at(1_791_000_000_000_000)),
        }
    }

    /// The row written in place is byte for byte the row [`Tenant`] serializes, for every
    /// optional field present and absent and both kinds of pool assignment.
    #[test]
    fn tenant_row_json_is_tenant_json() {
        for i in 0..12 {
            let t = tenant(i, i % 2 == 0);
            let bytes = codec::encode(&TenantRecord::from(&t)).unwrap();
            let model::TenantRecordRef::V1(view) = model::TenantRecordRef::decode(&bytes).unwrap();
            let mut fast = Vec::new();
            push_tenant_row(&mut fast, &view);
            let fast = String::from_utf8(fast).unwrap();
            let owned = serde_json::to_string(&Tenant::from(t)).unwrap();
            assert_eq!(fast, owned);
        }
    }
}
