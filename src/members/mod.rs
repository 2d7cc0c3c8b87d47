//! A tenant's members (tenant admin guide §2; PRODUCT.md D16): personas, roles seeded from the
//! app's role templates, business units, invites, and Tenant-console sessions.
//!
//! - [`model`]: types, stored records, tables, codes.
//! - [`service`]: the rules (inside write requests), each change on the tenant's chain.
//! - [`queries`]: the read model.
//! - [`api`]: `/api/tenants/{id}/personas`, `.../business-units`, `.../roles`, `/api/personas`.
//! - [`views`]: the Tenant console's Members pages, the invite page, the operators' Users page.
//! - [`mail`]: the invite email, over SMTP when `[smtp]` is configured.
//!
//! The async functions here are the entry points the API, the consoles and the demo share: they
//! make invite secrets and hash passwords off the writer thread, then write.

pub mod api;
pub mod mail;
pub mod model;
pub mod queries;
pub mod service;
pub mod views;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::actor::Actor;
use crate::error::{Error, Result};
use crate::http::context::{ChecklistStep, Context, NavItem};
use crate::operators::service::{random32, secret_key};
use crate::rbac::{Access, Permission, Principal, Route, Scope, Scopes};
use crate::state::AppState;
use model::Persona;
use service::{PersonaDraft, PersonaInput};

/// The members context: its routes, pages, permission entries, sidebar items and events.
pub const CONTEXT: Context = Context {
    name: "members",
    tags: &[(
        "members",
        "A tenant's personas, roles and business units (tenant admin guide §2)",
    )],
    api: api::router,
    views: views::router,
    routes: ROUTES,
    nav: &[
        NavItem::new("/platform/users", "Users", Permission::Read),
        NavItem::tenant("/tenant/{tenant_id}/members", "Members", Scope::MembersRead).order(10),
    ],
    events: &[
        "tenant.roles.seeded.v1",
        "persona.created.v1",
        "persona.updated.v1",
        "persona.revoked.v1",
        "persona.activated.v1",
        "persona.invite.reissued.v1",
        "persona.signed_in.v1",
        "persona.signed_out.v1",
        "persona.password_changed.v1",
        "business_unit.created.v1",
        "business_unit.updated.v1",
        "business_unit.deleted.v1",
    ],
    checklist: &[ChecklistStep {
        order: 1,
        title: "Invite your first admins, then your team",
        hint: "Add a second admin so you are never the only one who can manage the tenant; then invite your team.",
        path: "/tenant/{tenant_id}/members",
        done: has_team,
    }],
    tenant_panels: &[views::tenant_panel],
    on_provision: &[service::seed_system_roles],
    on_shred: &[service::shred_members],
    ..Context::EMPTY
};

/// Checklist step 1: the tenant has at least two members who are not revoked.
fn has_team(r: &crate::store::ReadCtx, tenant: &Uuid, _now: DateTime<Utc>) -> Result<bool> {
    Ok(queries::counter(r, tenant, model::counter::MEMBERS)? >= 2)
}

/// The permission entry of every route of this context.
const ROUTES: &[Route] = {
    use Access::*;
    use Permission::*;
    use Scope::*;
    &[
        ("GET", "/api/personas", Requires(Read)),
        (
            "GET",
            "/api/tenants/{id}/personas",
            Tenant(MembersRead, Read),
        ),
        (
            "POST",
            "/api/tenants/{id}/personas",
            Tenant(MembersWrite, MembersManage),
        ),
        (
            "GET",
            "/api/tenants/{id}/personas/{persona_id}",
            Tenant(MembersRead, Read),
        ),
        (
            "PATCH",
            "/api/tenants/{id}/personas/{persona_id}",
            Tenant(MembersWrite, MembersManage),
        ),
        (
            "POST",
            "/api/tenants/{id}/personas/{persona_id}/revoke",
            Tenant(MembersWrite, MembersManage),
        ),
        (
            "POST",
            "/api/tenants/{id}/personas/{persona_id}/invite",
            Tenant(MembersWrite, MembersManage),
        ),
        ("GET", "/api/tenants/{id}/roles", Tenant(MembersRead, Read)),
        (
            "GET",
            "/api/tenants/{id}/business-units",
            Tenant(MembersRead, Read),
        ),
        (
            "POST",
            "/api/tenants/{id}/business-units",
            Tenant(MembersWrite, MembersManage),
        ),
        (
            "PATCH",
            "/api/tenants/{id}/business-units/{bu_id}",
            Tenant(MembersWrite, MembersManage),
        ),
        (
            "DELETE",
            "/api/tenants/{id}/business-units/{bu_id}",
            Tenant(MembersWrite, MembersManage),
        ),
        ("GET", "/platform/users", Requires(Read)),
        (
            "POST",
            "/platform/tenants/{id}/personas",
            Requires(MembersManage),
        ),
        (
            "GET",
            "/tenant/{tenant_id}/members",
            Tenant(MembersRead, Read),
        ),
        (
            "POST",
            "/tenant/{tenant_id}/members",
            Tenant(MembersWrite, MembersManage),
        ),
        (
            "POST",
            "/tenant/{tenant_id}/members/{persona_id}",
            Tenant(MembersWrite, MembersManage),
        ),
        (
            "POST",
            "/tenant/{tenant_id}/members/{persona_id}/revoke",
            Tenant(MembersWrite, MembersManage),
        ),
        (
            "POST",
            "/tenant/{tenant_id}/members/{persona_id}/invite",
            Tenant(MembersWrite, MembersManage),
        ),
        (
            "GET",
            "/tenant/{tenant_id}/business-units",
            Tenant(MembersRead, Read),
        ),
        (
            "POST",
            "/tenant/{tenant_id}/business-units",
            Tenant(MembersWrite, MembersManage),
        ),
        (
            "POST",
            "/tenant/{tenant_id}/business-units/{bu_id}",
            Tenant(MembersWrite, MembersManage),
        ),
        (
            "POST",
            "/tenant/{tenant_id}/business-units/{bu_id}/delete",
            Tenant(MembersWrite, MembersManage),
        ),
        ("GET", "/tenant/{tenant_id}/invite/{token}", Public),
        ("POST", "/tenant/{tenant_id}/invite/{token}", Public),
    ]
};

/// A persona just added, with its invite link when it is a human: the link is shown once, to
/// the inviting admin, and mailed when `[smtp]` is configured.
#[derive(Clone, Debug)]
pub struct Added {
    /// The persona.
    pub persona: Persona,
    /// The invite link (humans only).
    pub invite: Option<Invite>,
}

/// An invite link, as shown once.
#[derive(Clone, Debug)]
pub struct Invite {
    /// `{public_url}/tenant/{tenant_id}/invite/{token}`.
    pub url: String,
    /// When it stops working ([`model::INVITE_DAYS`] after it was made).
    pub expires_at: DateTime<Utc>,
    /// Whether the email was handed to the SMTP server (`false` without `[smtp]`, or when the
    /// server refused it: the link is still valid, hand it over by other means).
    pub emailed: bool,
}

/// A new invite secret: the token for the link and its SHA-256, which is all that is stored.
fn invite_secret() -> Result<(String, [u8; 32])> {
    let token = B64URL.encode(random32()?);
    let hash = secret_key(&token);
    Ok((token, hash))
}

/// The invite link for `token`.
pub fn invite_url(state: &AppState, tenant: &Uuid, token: &str) -> String {
    format!("{}/tenant/{tenant}/invite/{token}", state.public_url())
}

/// Checks and adds a persona to `tenant`; a human gets an invite link, mailed when SMTP is
/// configured (a mail failure is logged and reported in [`Invite::emailed`], never a refusal).
///
/// Errors: 422 `validation_failed`; 404 unknown tenant; 409 `tenant_read_only`, `email_taken`.
pub async fn add(
    state: &AppState,
    p: &Principal,
    tenant: Uuid,
    draft: PersonaDraft,
) -> Result<Added> {
    let input: PersonaInput = draft.parse()?;
    let (token, hash) = invite_secret()?;
    let grantor = grantor(p);
    let persona = state
        .write(p.actor.clone(), move |ctx| {
            service::add_persona(ctx, &tenant, &input, Some(hash), grantor)
        })
        .await?;
    let invite = match persona.kind {
        model::PersonaKind::Human => Some(send_invite(state, &persona, &token).await),
        model::PersonaKind::Service => None,
    };
    Ok(Added { persona, invite })
}

/// The scopes a tenant principal may grant through roles (none for operators: their role
/// decides).
pub fn grantor(p: &Principal) -> Option<Scopes> {
    p.tenant().map(|t| t.scopes)
}

/// Checks and applies changes to a persona.
///
/// Errors: 422; 404; 409 `tenant_read_only`, `persona_revoked`.
pub async fn update(
    state: &AppState,
    p: &Principal,
    tenant: Uuid,
    id: Uuid,
    changes: service::PersonaChanges,
) -> Result<Persona> {
    let patch = changes.parse()?;
    let grantor = grantor(p);
    state
        .write(p.actor.clone(), move |ctx| {
            service::update_persona(ctx, &tenant, &id, &patch, grantor)
        })
        .await
}

/// Makes a new invite link for a persona that has not accepted yet (the old link stops
/// working), and mails it.
///
/// Errors: 404; 409 `tenant_read_only`, or `persona_not_invited` when it is not `invited`.
pub async fn reinvite(state: &AppState, actor: Actor, tenant: Uuid, id: Uuid) -> Result<Invite> {
    let (token, hash) = invite_secret()?;
    let persona = state
        .write(actor, move |ctx| {
            service::reissue_invite(ctx, &tenant, &id, hash)
        })
        .await?;
    Ok(send_invite(state, &persona, &token).await)
}

async fn send_invite(state: &AppState, persona: &Persona, token: &str) -> Invite {
    let url = invite_url(state, &persona.tenant_id, token);
    let expires_at = persona.updated_at + chrono::Duration::days(model::INVITE_DAYS);
    let emailed = match (&persona.email, state.mailer()) {
        (Some(to), Some(mailer)) => {
            let tenant = persona.tenant_id;
            let name = state
                .read(move |r| crate::tenants::queries::get(r, &tenant))
                .await
                .map(|t| t.display_name)
                .unwrap_or_else(|_| tenant.to_string());
            let msg = mail::invite(&persona.display_name, to, &name, &url, expires_at);
            match mailer.send(msg).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(persona = %persona.id, error = %e, "mailing an invite failed; the link was shown to the inviting admin");
                    false
                }
            }
        }
        _ => false,
    };
    Invite {
        url,
        expires_at,
        emailed,
    }
}

/// The persona an invite link is for, if the link is still good (the invite page).
pub async fn invited(state: &AppState, token: &str) -> Result<Option<(Persona, String)>> {
    let hash = secret_key(token);
    let now = state.clock().now();
    state
        .read(move |r| {
            let Some((tenant, id)) = queries::invite(r, &hash, now)? else {
                return Ok(None);
            };
            let p = queries::persona(r, &tenant, &id)?;
            let t = crate::tenants::queries::get(r, &tenant)?;
            Ok(Some((p, t.display_name)))
        })
        .await
}

/// Accepts an invite: checks the password, hashes it, and activates the persona.
///
/// Errors: 422 for a weak password; 410 `invite_invalid`.
pub async fn accept(state: &AppState, token: &str, password: String) -> Result<Persona> {
    let Some((persona, _)) = invited(state, token).await? else {
        return Err(service::invite_invalid());
    };
    crate::operators::model::check_password(
        &password,
        persona.email.as_deref().unwrap_or_default(),
    )
    .map_err(|m| Error::invalid("password", m))?;
    let phc = crate::passwords::hash(password).await?;
    let hash = secret_key(token);
    state
        .write(Actor::persona(persona.id.to_string()), move |ctx| {
            service::accept_invite(ctx, &hash, &phc)
        })
        .await
}

/// Changes a member's password after checking the current one; the member's other sessions end
/// (`persona.password_changed.v1`).
///
/// Errors: 422 for a wrong current password or a weak new one; 404; 409.
pub async fn change_password(
    state: &AppState,
    tenant: Uuid,
    id: Uuid,
    current: String,
    new: String,
    keep_session: [u8; 32],
) -> Result<()> {
    let rec = state
        .read(move |r| queries::load_persona(r, &tenant, &id))
        .await?;
    let phc = rec.password_hash.clone();
    let ok = crate::passwords::verify(current, phc).await?;
    if !ok {
        return Err(Error::invalid("current", "the current password is wrong"));
    }
    crate::operators::model::check_password(&new, rec.email.as_deref().unwrap_or_default())
        .map_err(|m| Error::invalid("password", m))?;
    let phc = crate::passwords::hash(new).await?;
    state
        .write(Actor::persona(id.to_string()), move |ctx| {
            service::set_password(ctx, &tenant, &id, &phc, &keep_session)
        })
        .await
}
