//! `/api/tenants/{id}/personas`, `.../roles`, `.../business-units` (tenant admin guide §2), and
//! `/api/personas`, every tenant's personas for operators (seed 002's `/platform/users`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::model::{self, PersonaKind, PersonaState};
use super::queries::PersonaFilter;
use super::service::{BusinessUnitChanges, BusinessUnitDraft, PersonaChanges, PersonaDraft};
use crate::error::path_id;
use crate::http::extract::{ApiJson, ApiQuery, Caller};
use crate::http::problem::{ApiResult, Problem};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(personas_list, personas_add))
        .routes(routes!(personas_get, personas_update))
        .routes(routes!(personas_revoke))
        .routes(routes!(personas_invite))
        .routes(routes!(personas_all))
        .routes(routes!(roles_list))
        .routes(routes!(business_units_list, business_units_create))
        .routes(routes!(business_units_update, business_units_delete))
}

crate::string_enum_schema!(PersonaKind, "`human` (invited by email) or `service`.");
crate::string_enum_schema!(PersonaState, "`invited`, `active` or `revoked`.");

/// A persona of a tenant (tenant admin guide §2).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Persona {
    /// UUIDv7.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// `human` or `service`.
    pub kind: PersonaKind,
    /// What others see.
    pub display_name: String,
    /// A human's email (lowercased).
    pub email: Option<String>,
    /// Role names of the tenant.
    pub roles: Vec<String>,
    /// Its business unit.
    pub bu_id: Option<Uuid>,
    /// `invited`, `active` or `revoked`.
    pub state: PersonaState,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Last sign-in to the Tenant console.
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

impl From<model::Persona> for Persona {
    fn from(p: model::Persona) -> Persona {
        Persona {
            id: p.id,
            tenant_id: p.tenant_id,
            kind: p.kind,
            display_name: p.display_name,
            email: p.email,
            roles: p.roles,
            bu_id: p.bu_id,
            state: p.state,
            created_at: p.created_at,
            updated_at: p.updated_at,
            last_sign_in_at: p.last_sign_in_at,
        }
    }
}

/// Personas.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PersonaList {
    /// Oldest first.
    pub items: Vec<Persona>,
    /// Where the next page starts; null on the last page.
    pub next_cursor: Option<String>,
}

/// `POST /api/tenants/{id}/personas` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPersona {
    /// `human` or `service`.
    pub kind: String,
    /// 1–120 characters.
    pub display_name: String,
    /// A human's email (required for humans; refused for services).
    pub email: Option<String>,
    /// Role names of the tenant (`GET .../roles`).
    pub roles: Vec<String>,
    /// A business unit id.
    pub bu_id: Option<String>,
}

/// A persona just added. A human's invite link is here once: it is also mailed when SMTP is
/// configured, but sites without mail hand it over by other means.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AddedPersona {
    /// The persona.
    #[serde(flatten)]
    pub persona: Persona,
    /// The single-use invite link (humans only); shown once.
    pub invite_url: Option<String>,
    /// When the link stops working (7 days).
    pub invite_expires_at: Option<DateTime<Utc>>,
    /// Whether the invite was handed to the SMTP server.
    pub invite_emailed: bool,
}

fn added(a: super::Added) -> AddedPersona {
    AddedPersona {
        invite_url: a.invite.as_ref().map(|i| i.url.clone()),
        invite_expires_at: a.invite.as_ref().map(|i| i.expires_at),
        invite_emailed: a.invite.as_ref().is_some_and(|i| i.emailed),
        persona: a.persona.into(),
    }
}

/// A tenant's personas, filtered by `kind`, `state`, `bu_id`, `role` or text `q`.
#[utoipa::path(get, path = "/api/tenants/{id}/personas", tag = "members",
    params(("id" = String, Path, description = "Tenant id"), PersonaFilter),
    responses((status = 200, body = PersonaList), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn personas_list(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(f): ApiQuery<PersonaFilter>,
) -> ApiResult<Json<PersonaList>> {
    let tenant = path_id("tenant", &id)?;
    let q = f.parse()?;
    let page = s
        .read(move |r| {
            crate::tenants::queries::get(r, &tenant)?;
            super::queries::list(r, Some(&tenant), &q)
        })
        .await?;
    Ok(Json(PersonaList {
        items: page.items.into_iter().map(Persona::from).collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

/// Every tenant's personas (operators; seed 002's Users page), with the same filters.
#[utoipa::path(get, path = "/api/personas", tag = "members", params(PersonaFilter),
    responses((status = 200, body = PersonaList), (status = 400, body = Problem)))]
async fn personas_all(
    State(s): State<AppState>,
    ApiQuery(f): ApiQuery<PersonaFilter>,
) -> ApiResult<Json<PersonaList>> {
    let q = f.parse()?;
    let page = s.read(move |r| super::queries::list(r, None, &q)).await?;
    Ok(Json(PersonaList {
        items: page.items.into_iter().map(Persona::from).collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

/// Adds a persona (`persona.created.v1`). A human is `invited`: the answer carries the invite
/// link once, and it is mailed when `[smtp]` is configured. A service persona is `active`.
#[utoipa::path(post, path = "/api/tenants/{id}/personas", tag = "members",
    params(("id" = String, Path, description = "Tenant id")), request_body = NewPersona,
    responses((status = 201, body = AddedPersona), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn personas_add(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewPersona>,
) -> ApiResult<(StatusCode, Json<AddedPersona>)> {
    let tenant = path_id("tenant", &id)?;
    let draft = PersonaDraft {
        kind: body.kind,
        display_name: body.display_name,
        email: body.email,
        roles: body.roles,
        bu_id: body.bu_id,
    };
    let a = super::add(&s, &p, tenant, draft).await?;
    Ok((StatusCode::CREATED, Json(added(a))))
}

/// One persona.
#[utoipa::path(get, path = "/api/tenants/{id}/personas/{persona_id}", tag = "members",
    params(("id" = String, Path, description = "Tenant id"), ("persona_id" = String, Path, description = "Persona id")),
    responses((status = 200, body = Persona), (status = 404, body = Problem)))]
async fn personas_get(
    State(s): State<AppState>,
    Path((id, pid)): Path<(String, String)>,
) -> ApiResult<Json<Persona>> {
    let (tenant, pid) = (path_id("tenant", &id)?, path_id("persona", &pid)?);
    let p = s
        .read(move |r| super::queries::persona(r, &tenant, &pid))
        .await?;
    Ok(Json(p.into()))
}

/// `PATCH /api/tenants/{id}/personas/{persona_id}` body: absent members stay as they are.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonaPatch {
    /// New display name.
    pub display_name: Option<String>,
    /// New roles, replacing the old ones.
    pub roles: Option<Vec<String>>,
    /// New business unit; `null` moves the persona out of any.
    #[serde(default, deserialize_with = "crate::http::extract::double_option")]
    #[schema(value_type = Option<String>)]
    pub bu_id: Option<Option<String>>,
}

/// Changes a persona's name, roles or business unit (`persona.updated.v1` with the diff).
#[utoipa::path(patch, path = "/api/tenants/{id}/personas/{persona_id}", tag = "members",
    params(("id" = String, Path, description = "Tenant id"), ("persona_id" = String, Path, description = "Persona id")),
    request_body = PersonaPatch,
    responses((status = 200, body = Persona), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn personas_update(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, pid)): Path<(String, String)>,
    ApiJson(body): ApiJson<PersonaPatch>,
) -> ApiResult<Json<Persona>> {
    let (tenant, pid) = (path_id("tenant", &id)?, path_id("persona", &pid)?);
    let changes = PersonaChanges {
        display_name: body.display_name,
        roles: body.roles,
        bu_id: body.bu_id,
    };
    Ok(Json(
        super::update(&s, &p, tenant, pid, changes).await?.into(),
    ))
}

/// Revokes a persona (`persona.revoked.v1`): its sessions end now; its API keys and tokens fail
/// on their next request.
#[utoipa::path(post, path = "/api/tenants/{id}/personas/{persona_id}/revoke", tag = "members",
    params(("id" = String, Path, description = "Tenant id"), ("persona_id" = String, Path, description = "Persona id")),
    responses((status = 200, body = Persona), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn personas_revoke(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, pid)): Path<(String, String)>,
) -> ApiResult<Json<Persona>> {
    let (tenant, pid) = (path_id("tenant", &id)?, path_id("persona", &pid)?);
    let persona = s
        .write(p.actor, move |ctx| {
            super::service::revoke_persona(ctx, &tenant, &pid)
        })
        .await?;
    Ok(Json(persona.into()))
}

/// A new invite link.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InviteLink {
    /// The single-use link; shown once.
    pub invite_url: String,
    /// When it stops working.
    pub invite_expires_at: DateTime<Utc>,
    /// Whether it was handed to the SMTP server.
    pub invite_emailed: bool,
}

/// Makes a new invite link for a persona that has not accepted yet; the old link stops working
/// (`persona.invite.reissued.v1`).
#[utoipa::path(post, path = "/api/tenants/{id}/personas/{persona_id}/invite", tag = "members",
    params(("id" = String, Path, description = "Tenant id"), ("persona_id" = String, Path, description = "Persona id")),
    responses((status = 200, body = InviteLink), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn personas_invite(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, pid)): Path<(String, String)>,
) -> ApiResult<Json<InviteLink>> {
    let (tenant, pid) = (path_id("tenant", &id)?, path_id("persona", &pid)?);
    let i = super::reinvite(&s, p.actor, tenant, pid).await?;
    Ok(Json(InviteLink {
        invite_url: i.url,
        invite_expires_at: i.expires_at,
        invite_emailed: i.emailed,
    }))
}

/// A tenant role with its scopes.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = TenantRole)]
pub struct Role {
    /// Its name, e.g. `tenant_admin`.
    pub name: String,
    /// The scopes it grants (`tenant.admin` grants all).
    pub scopes: Vec<String>,
    /// Seeded from the app's role templates at provisioning.
    pub system: bool,
}

/// Roles.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RoleList {
    /// By name.
    pub items: Vec<Role>,
    /// Always null: a tenant has few roles.
    pub next_cursor: Option<String>,
}

/// The tenant's roles and their scopes.
#[utoipa::path(get, path = "/api/tenants/{id}/roles", tag = "members",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = RoleList), (status = 404, body = Problem)))]
async fn roles_list(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<RoleList>> {
    let tenant = path_id("tenant", &id)?;
    let roles = s
        .read(move |r| {
            crate::tenants::queries::get(r, &tenant)?;
            super::queries::roles(r, &tenant)
        })
        .await?;
    Ok(Json(RoleList {
        items: roles
            .into_iter()
            .map(|r| Role {
                scopes: r.scopes.iter().map(|s| s.as_str().to_string()).collect(),
                name: r.name,
                system: r.system,
            })
            .collect(),
        next_cursor: None,
    }))
}

/// A business unit: a node of the tenant's tree.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BusinessUnit {
    /// UUIDv7.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// 1–120 characters.
    pub name: String,
    /// `cost_center`, `region`, `team`, or free text.
    pub kind: String,
    /// The parent unit; null at the top.
    pub parent_id: Option<Uuid>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl From<model::BusinessUnit> for BusinessUnit {
    fn from(b: model::BusinessUnit) -> BusinessUnit {
        BusinessUnit {
            id: b.id,
            tenant_id: b.tenant_id,
            name: b.name,
            kind: b.kind,
            parent_id: b.parent_id,
            created_at: b.created_at,
        }
    }
}

/// Business units.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BusinessUnitList {
    /// In creation order (parents before their children).
    pub items: Vec<BusinessUnit>,
    /// Always null: the tree is read whole.
    pub next_cursor: Option<String>,
}

/// The tenant's business units.
#[utoipa::path(get, path = "/api/tenants/{id}/business-units", tag = "members",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = BusinessUnitList), (status = 404, body = Problem)))]
async fn business_units_list(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<BusinessUnitList>> {
    let tenant = path_id("tenant", &id)?;
    let items = s
        .read(move |r| {
            crate::tenants::queries::get(r, &tenant)?;
            super::queries::business_units(r, &tenant)
        })
        .await?;
    Ok(Json(BusinessUnitList {
        items: items.into_iter().map(BusinessUnit::from).collect(),
        next_cursor: None,
    }))
}

/// `POST /api/tenants/{id}/business-units` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBusinessUnit {
    /// 1–120 characters.
    pub name: String,
    /// `cost_center`, `region`, `team`, or free text (1–40 characters).
    pub kind: String,
    /// The parent unit; none for a top-level unit.
    pub parent_id: Option<String>,
}

/// Creates a business unit (`business_unit.created.v1`).
#[utoipa::path(post, path = "/api/tenants/{id}/business-units", tag = "members",
    params(("id" = String, Path, description = "Tenant id")), request_body = NewBusinessUnit,
    responses((status = 201, body = BusinessUnit), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn business_units_create(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewBusinessUnit>,
) -> ApiResult<(StatusCode, Json<BusinessUnit>)> {
    let tenant = path_id("tenant", &id)?;
    let input = BusinessUnitDraft {
        name: body.name,
        kind: body.kind,
        parent_id: body.parent_id,
    }
    .parse()?;
    let bu = s
        .write(p.actor, move |ctx| {
            super::service::create_bu(ctx, &tenant, &input)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(bu.into())))
}

/// `PATCH .../business-units/{bu_id}` body: absent members stay as they are.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BusinessUnitPatch {
    /// New name.
    pub name: Option<String>,
    /// New kind.
    pub kind: Option<String>,
    /// New parent; `null` moves it to the top.
    #[serde(default, deserialize_with = "crate::http::extract::double_option")]
    #[schema(value_type = Option<String>)]
    pub parent_id: Option<Option<String>>,
}

/// Renames or moves a business unit (`business_unit.updated.v1`); a move under itself or its
/// own units is refused.
#[utoipa::path(patch, path = "/api/tenants/{id}/business-units/{bu_id}", tag = "members",
    params(("id" = String, Path, description = "Tenant id"), ("bu_id" = String, Path, description = "Business unit id")),
    request_body = BusinessUnitPatch,
    responses((status = 200, body = BusinessUnit), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn business_units_update(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, bu)): Path<(String, String)>,
    ApiJson(body): ApiJson<BusinessUnitPatch>,
) -> ApiResult<Json<BusinessUnit>> {
    let (tenant, bu) = (path_id("tenant", &id)?, path_id("business unit", &bu)?);
    let changes = BusinessUnitChanges {
        name: body.name,
        kind: body.kind,
        parent_id: body.parent_id,
    };
    let b = s
        .write(p.actor, move |ctx| {
            super::service::update_bu(ctx, &tenant, &bu, &changes)
        })
        .await?;
    Ok(Json(b.into()))
}

/// Deletes a business unit with no child units and no personas (`business_unit.deleted.v1`);
/// 409 `business_unit_in_use` otherwise.
#[utoipa::path(delete, path = "/api/tenants/{id}/business-units/{bu_id}", tag = "members",
    params(("id" = String, Path, description = "Tenant id"), ("bu_id" = String, Path, description = "Business unit id")),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn business_units_delete(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((id, bu)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (tenant, bu) = (path_id("tenant", &id)?, path_id("business unit", &bu)?);
    s.write(p.actor, move |ctx| {
        super::service::delete_bu(ctx, &tenant, &bu)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
