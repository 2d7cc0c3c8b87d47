//! The rules of a tenant's members (tenant admin guide §2): seeding roles at provisioning,
//! personas (add with an invite, change, revoke), accepting an invite, Tenant-console sessions,
//! and the business-unit tree.
//!
//! Each function runs inside one write request: it checks everything, then writes the change and
//! records it with `ctx.audit` on the tenant's chain, so a refusal leaves no trace. A tenant that
//! is offboarding or offboarded refuses every change (409 `tenant_read_only`).

use std::ops::ControlFlow;

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::model::*;
use super::queries;
use crate::audit::ledger::{Audit, Subject};
use crate::error::{Error, Result, Validator};
use crate::rbac::Scopes;
use crate::store::keys::Key;
use crate::store::{Dir, Range, Reader, WriteCtx};
use crate::tenants::model::{Tenant, parse_display_name, parse_email};

/// A persona as asked for, unchecked (the API body, the console form, the demo).
#[derive(Clone, Debug, Default)]
pub struct PersonaDraft {
    /// `human` or `service`.
    pub kind: String,
    /// 1–120 characters.
    pub display_name: String,
    /// A human's email (required for humans, refused for services).
    pub email: Option<String>,
    /// Role names of the tenant.
    pub roles: Vec<String>,
    /// A business unit id.
    pub bu_id: Option<String>,
}

/// A checked [`PersonaDraft`] (the roles and business unit are checked against the tenant when
/// it is added).
#[derive(Clone, Debug)]
pub struct PersonaInput {
    kind: PersonaKind,
    display_name: String,
    email: Option<String>,
    roles: Vec<String>,
    bu_id: Option<Uuid>,
}

fn parse_roles(v: &mut Validator, roles: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if roles.len() > MAX_ROLES {
        v.add("roles", format!("at most {MAX_ROLES} roles"));
    }
    for r in roles {
        if let Some(name) = v.take("roles", parse_role_name(r))
            && !out.contains(&name)
        {
            out.push(name);
        }
    }
    out
}

fn parse_bu_id(v: &mut Validator, s: Option<&str>) -> Option<Uuid> {
    let s = s.map(str::trim).filter(|s| !s.is_empty())?;
    v.take(
        "bu_id",
        crate::ids::parse_uuid(s).ok_or_else(|| format!("bu_id '{s}' is not a UUID")),
    )
}

impl PersonaDraft {
    /// Checks every field at once.
    ///
    /// Errors: 422 `validation_failed` listing each bad field.
    pub fn parse(self) -> Result<PersonaInput> {
        let mut v = Validator::new();
        let kind = v.take("kind", PersonaKind::parse(self.kind.trim()));
        let display_name = v.take("display_name", parse_display_name(&self.display_name));
        let email = match (kind, self.email.as_deref().map(str::trim)) {
            (Some(PersonaKind::Human), Some(e)) if !e.is_empty() => {
                v.take("email", parse_email(e).map(|e| e.to_lowercase()))
            }
            (Some(PersonaKind::Human), _) => {
                v.add("email", "a human persona is invited by email: give one");
                None
            }
            (Some(PersonaKind::Service), Some(e)) if !e.is_empty() => {
                v.add("email", "a service persona has no email: leave it out");
                None
            }
            _ => None,
        };
        let roles = parse_roles(&mut v, &self.roles);
        if roles.is_empty() {
            v.add("roles", "give at least one role (GET .../roles lists them)");
        }
        let bu_id = parse_bu_id(&mut v, self.bu_id.as_deref());
        v.finish()?;
        let missing = || Error::Internal("validated field missing".into());
        Ok(PersonaInput {
            kind: kind.ok_or_else(missing)?,
            display_name: display_name.ok_or_else(missing)?,
            email,
            roles,
            bu_id,
        })
    }
}

/// Changes to a persona, unchecked: `None` leaves a field as is; `bu_id: Some(None)` moves it
/// out of any business unit.
#[derive(Clone, Debug, Default)]
pub struct PersonaChanges {
    /// New display name.
    pub display_name: Option<String>,
    /// New roles (replacing the old ones).
    pub roles: Option<Vec<String>>,
    /// New business unit; `Some(None)` clears it.
    pub bu_id: Option<Option<String>>,
}

/// A checked [`PersonaChanges`].
#[derive(Clone, Debug, Default)]
pub struct PersonaPatch {
    display_name: Option<String>,
    roles: Option<Vec<String>>,
    bu_id: Option<Option<Uuid>>,
}

impl PersonaChanges {
    /// Checks every given field.
    ///
    /// Errors: 422 `validation_failed`.
    pub fn parse(self) -> Result<PersonaPatch> {
        let mut v = Validator::new();
        let display_name = self
            .display_name
            .and_then(|d| v.take("display_name", parse_display_name(&d)));
        let roles = self.roles.map(|r| {
            let roles = parse_roles(&mut v, &r);
            if roles.is_empty() {
                v.add("roles", "a persona keeps at least one role");
            }
            roles
        });
        let bu_id = self.bu_id.map(|b| parse_bu_id(&mut v, b.as_deref()));
        v.finish()?;
        Ok(PersonaPatch {
            display_name,
            roles,
            bu_id,
        })
    }
}

fn persona_subject(tenant: &Uuid, id: &Uuid) -> Subject {
    Subject::in_tenant(*tenant, "persona", id)
}

/// The tenant, refusing changes while it is read-only.
///
/// Errors: 404; 409 `tenant_read_only`.
fn writable_tenant(ctx: &WriteCtx<'_>, tenant: &Uuid) -> Result<Tenant> {
    let t = crate::tenants::queries::get(ctx, tenant)?;
    t.ensure_writable()?;
    Ok(t)
}

/// Adds `delta` to the tenant's counter `name`.
pub fn bump(ctx: &mut WriteCtx<'_>, tenant: &Uuid, name: &str, delta: i64) -> Result<()> {
    let key = tenant_name_key(tenant, name);
    let cur = ctx
        .get(COUNTS, &key)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes);
    let next = (cur as i64 + delta).max(0) as u64;
    ctx.put(COUNTS, &key, &next.to_be_bytes())?;
    Ok(())
}

fn state_counter(s: PersonaState) -> &'static str {
    match s {
        PersonaState::Invited => counter::INVITED,
        PersonaState::Active => counter::MEMBERS,
        PersonaState::Revoked => counter::REVOKED,
    }
}

/// Keeps the counters right for a persona moving from `old` to `new` (either may be absent).
fn count(
    ctx: &mut WriteCtx<'_>,
    tenant: &Uuid,
    old: Option<PersonaState>,
    new: Option<PersonaState>,
) -> Result<()> {
    if old == new {
        return Ok(());
    }
    // `members` counts every persona that is not revoked, invited ones included.
    let member = |s: Option<PersonaState>| s.is_some_and(|s| s != PersonaState::Revoked);
    if member(old) != member(new) {
        bump(
            ctx,
            tenant,
            counter::MEMBERS,
            if member(new) { 1 } else { -1 },
        )?;
    }
    for (s, d) in [(old, -1), (new, 1)] {
        if let Some(s) = s
            && s != PersonaState::Active
        {
            bump(ctx, tenant, state_counter(s), d)?;
        }
    }
    Ok(())
}

fn save(ctx: &mut WriteCtx<'_>, tenant: &Uuid, id: &Uuid, rec: &PersonaV1) -> Result<()> {
    ctx.put_record(
        PERSONAS,
        &tenant_key(tenant, id),
        &PersonaRecord::V1(rec.clone()),
    )?;
    Ok(())
}

/// Seeds tenant `tenant`'s roles from an app's role templates and records
/// `tenant.roles.seeded.v1` on its chain (F21.05.03 `seed_system_roles`). Called by
/// provisioning, in the same write.
pub fn seed_roles(ctx: &mut WriteCtx<'_>, tenant: &Uuid, templates: &[RoleTemplate]) -> Result<()> {
    let mut listed = Map::new();
    for t in templates {
        ctx.put_record(
            ROLES,
            &tenant_name_key(tenant, &t.name),
            &RoleRecord::V1 {
                scopes: t.scopes.clone(),
                system: true,
            },
        )?;
        listed.insert(
            t.name.clone(),
            Value::from(
                t.scopes()
                    .iter()
                    .map(|s| s.as_str().to_string())
                    .collect::<Vec<_>>(),
            ),
        );
    }
    ctx.audit(
        "tenant.roles.seeded.v1",
        &Subject::tenant(*tenant),
        json!({ "roles": listed }),
    )?;
    Ok(())
}

/// Checks that every role exists in the tenant and, when a tenant principal grants them, that
/// it holds every scope they grant (no one hands out more than they hold).
fn check_roles(
    ctx: &WriteCtx<'_>,
    tenant: &Uuid,
    roles: &[String],
    grantor: Option<Scopes>,
) -> Result<()> {
    let known = queries::roles(ctx, tenant)?;
    if let Some(g) = grantor {
        let beyond: Vec<&str> = known
            .iter()
            .filter(|k| roles.contains(&k.name) && !g.covers(k.scopes))
            .map(|k| k.name.as_str())
            .collect();
        if !beyond.is_empty() {
            return Err(Error::invalid(
                "roles",
                format!(
                    "role(s) {} grant scopes you do not hold: ask a tenant admin",
                    beyond.join(", ")
                ),
            ));
        }
    }
    let unknown: Vec<&str> = roles
        .iter()
        .filter(|r| !known.iter().any(|k| &k.name == *r))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        let names: Vec<&str> = known.iter().map(|k| k.name.as_str()).collect();
        return Err(Error::invalid(
            "roles",
            format!(
                "unknown role(s) {}: this tenant's roles are {}",
                unknown.join(", "),
                names.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Checks that business unit `bu` (named by `field`) exists in `tenant`.
///
/// Errors: 422 on `field`.
fn check_bu(ctx: &WriteCtx<'_>, tenant: &Uuid, field: &str, bu: Option<&Uuid>) -> Result<()> {
    if let Some(b) = bu
        && !ctx.contains(BUSINESS_UNITS, &tenant_key(tenant, b))?
    {
        return Err(Error::invalid(
            field,
            format!("business unit {b} does not exist in this tenant"),
        ));
    }
    Ok(())
}

/// Adds a persona to `tenant` (`persona.created.v1`). A human starts `invited`, with the invite
/// whose token hashes to `invite` (SHA-256), good for [`INVITE_DAYS`]; a service starts
/// `active`.
///
/// Errors: 404 unknown tenant; 409 `tenant_read_only`, `email_taken`, `persona_limit`; 422 for
/// unknown roles, roles beyond the `grantor`'s scopes (a tenant principal adding the persona),
/// or an unknown business unit.
pub fn add_persona(
    ctx: &mut WriteCtx<'_>,
    tenant: &Uuid,
    input: &PersonaInput,
    invite: Option<[u8; 32]>,
    grantor: Option<Scopes>,
) -> Result<Persona> {
    writable_tenant(ctx, tenant)?;
    let have = queries::counter(ctx, tenant, counter::MEMBERS)?
        + queries::counter(ctx, tenant, counter::REVOKED)?;
    if have >= MAX_PERSONAS {
        return Err(Error::conflict(
            PERSONA_LIMIT,
            format!("this tenant holds {have} personas, the most a tenant can have"),
        ));
    }
    check_roles(ctx, tenant, &input.roles, grantor)?;
    check_bu(ctx, tenant, "bu_id", input.bu_id.as_ref())?;
    if let Some(e) = &input.email
        && let Some(owner) = ctx.get(PERSONA_EMAILS, &tenant_name_key(tenant, e))?
    {
        let owner = Uuid::from_slice(&owner).unwrap_or_default();
        return Err(Error::conflict(
            EMAIL_TAKEN,
            format!("{e} is already persona {owner} of this tenant: change that one instead"),
        ));
    }
    let id = crate::ids::new_id(ctx.now);
    let now = micros(ctx.now);
    let state = match input.kind {
        PersonaKind::Human => PersonaState::Invited,
        PersonaKind::Service => PersonaState::Active,
    };
    let rec = PersonaV1 {
        kind: input.kind,
        display_name: input.display_name.clone(),
        email: input.email.clone(),
        roles: input.roles.clone(),
        bu_id: input.bu_id.map(Uuid::into_bytes),
        state,
        password_hash: None,
        created_at: now,
        updated_at: now,
        last_sign_in_at: None,
    };
    save(ctx, tenant, &id, &rec)?;
    if let Some(e) = &input.email {
        ctx.put(PERSONA_EMAILS, &tenant_name_key(tenant, e), id.as_bytes())?;
    }
    let mut invite_expires = None;
    if let (PersonaKind::Human, Some(hash)) = (input.kind, invite) {
        let expires = ctx.now + chrono::Duration::days(INVITE_DAYS);
        ctx.put_record(
            INVITES,
            &hash,
            &InviteRecord::V1 {
                tenant_id: tenant.into_bytes(),
                persona_id: id.into_bytes(),
                created_at: now,
                expires_at: micros(expires),
            },
        )?;
        ctx.put(INVITES_BY_PERSONA, &tenant_key(tenant, &id), &hash)?;
        invite_expires = Some(crate::clock::rfc3339_micros(expires));
    }
    count(ctx, tenant, None, Some(state))?;
    ctx.audit(
        "persona.created.v1",
        &persona_subject(tenant, &id),
        json!({
            "kind": input.kind.as_str(),
            "display_name": input.display_name,
            "email": input.email,
            "roles": input.roles,
            "bu_id": input.bu_id.map(|b| b.to_string()),
            "state": state.as_str(),
            "invite_expires_at": invite_expires,
        }),
    )?;
    Ok(rec.view(*tenant, id))
}

/// Changes a persona's display name, roles or business unit (`persona.updated.v1` with a field
/// diff). A patch that changes nothing writes nothing.
///
/// Errors: 404; 409 `tenant_read_only`, `persona_revoked`; 422 for unknown roles or business
/// unit.
pub fn update_persona(
    ctx: &mut WriteCtx<'_>,
    tenant: &Uuid,
    id: &Uuid,
    patch: &PersonaPatch,
    grantor: Option<Scopes>,
) -> Result<Persona> {
    writable_tenant(ctx, tenant)?;
    let old = queries::load_persona(ctx, tenant, id)?;
    if old.state == PersonaState::Revoked {
        return Err(Error::conflict(
            PERSONA_REVOKED,
            format!("persona {id} is revoked: add a new persona instead"),
        ));
    }
    if let Some(r) = &patch.roles {
        check_roles(ctx, tenant, r, grantor)?;
    }
    if let Some(b) = &patch.bu_id {
        check_bu(ctx, tenant, "bu_id", b.as_ref())?;
    }
    let mut new = old.clone();
    let mut changes = Map::new();
    let mut diff = |field: &str, from: Value, to: Value| {
        if from != to {
            changes.insert(field.to_string(), json!({"from": from, "to": to}));
        }
    };
    if let Some(d) = &patch.display_name {
        diff("display_name", json!(old.display_name), json!(d));
        new.display_name = d.clone();
    }
    if let Some(r) = &patch.roles {
        diff("roles", json!(old.roles), json!(r));
        new.roles = r.clone();
    }
    if let Some(b) = &patch.bu_id {
        let id_of = |b: Option<[u8; 16]>| b.map(|b| Uuid::from_bytes(b).to_string());
        diff(
            "bu_id",
            json!(id_of(old.bu_id)),
            json!(b.map(|b| b.to_string())),
        );
        new.bu_id = b.map(Uuid::into_bytes);
    }
    if changes.is_empty() {
        return Ok(old.view(*tenant, *id));
    }
    new.updated_at = micros(ctx.now);
    save(ctx, tenant, id, &new)?;
    ctx.audit(
        "persona.updated.v1",
        &persona_subject(tenant, id),
        json!({ "changes": changes }),
    )?;
    Ok(new.view(*tenant, *id))
}

/// Deletes every Tenant-console session of a persona; returns how many.
fn end_sessions(ctx: &mut WriteCtx<'_>, tenant: &Uuid, id: &Uuid) -> Result<u64> {
    let prefix = tenant_key(tenant, id);
    let mut keys = Vec::new();
    ctx.scan(
        SESSIONS_BY_PERSONA,
        &Range::prefix(&prefix),
        Dir::Asc,
        &mut |k, _| {
            keys.push(k.to_vec());
            Ok(ControlFlow::Continue(()))
        },
    )?;
    for k in &keys {
        if let Some(session) = k.get(prefix.len()..) {
            ctx.delete(SESSIONS, session)?;
        }
        ctx.delete(SESSIONS_BY_PERSONA, k)?;
    }
    Ok(keys.len() as u64)
}

/// Revokes a persona (`persona.revoked.v1`): its sessions end now, its pending invite goes, and
/// its API keys and tokens fail on their next use (authentication checks the persona's state).
///
/// Errors: 404; 409 `tenant_read_only`, `persona_revoked` when already revoked.
pub fn revoke_persona(ctx: &mut WriteCtx<'_>, tenant: &Uuid, id: &Uuid) -> Result<Persona> {
    writable_tenant(ctx, tenant)?;
    let old = queries::load_persona(ctx, tenant, id)?;
    if old.state == PersonaState::Revoked {
        return Err(Error::conflict(
            PERSONA_REVOKED,
            format!("persona {id} is already revoked"),
        ));
    }
    let mut new = old.clone();
    new.state = PersonaState::Revoked;
    new.password_hash = None;
    new.updated_at = micros(ctx.now);
    let sessions = end_sessions(ctx, tenant, id)?;
    if let Some(hash) = ctx.get(INVITES_BY_PERSONA, &tenant_key(tenant, id))? {
        ctx.delete(INVITES, &hash)?;
        ctx.delete(INVITES_BY_PERSONA, &tenant_key(tenant, id))?;
    }
    // The email is free again: the person can be invited anew as a new persona.
    if let Some(e) = &old.email {
        ctx.delete(PERSONA_EMAILS, &tenant_name_key(tenant, e))?;
    }
    save(ctx, tenant, id, &new)?;
    count(ctx, tenant, Some(old.state), Some(PersonaState::Revoked))?;
    ctx.audit(
        "persona.revoked.v1",
        &persona_subject(tenant, id),
        json!({"from": old.state.as_str(), "sessions_ended": sessions}),
    )?;
    Ok(new.view(*tenant, *id))
}

/// Accepts the invite whose token hashes to `hash`: the persona gets its password (an Argon2id
/// PHC string) and becomes `active` (`persona.activated.v1`, by the persona itself). Returns the
/// persona.
///
/// Errors: 410 `invite_invalid` for an unknown, used or expired invite; 409 `tenant_read_only`.
pub fn accept_invite(
    ctx: &mut WriteCtx<'_>,
    hash: &[u8; 32],
    password_hash: &str,
) -> Result<Persona> {
    let (tenant, id) = queries::invite(ctx, hash, ctx.now)?.ok_or_else(invite_invalid)?;
    writable_tenant(ctx, &tenant)?;
    let old = queries::load_persona(ctx, &tenant, &id)?;
    if old.state != PersonaState::Invited {
        return Err(invite_invalid());
    }
    let mut new = old.clone();
    new.state = PersonaState::Active;
    new.password_hash = Some(password_hash.to_string());
    new.updated_at = micros(ctx.now);
    ctx.delete(INVITES, hash)?;
    ctx.delete(INVITES_BY_PERSONA, &tenant_key(&tenant, &id))?;
    save(ctx, &tenant, &id, &new)?;
    count(ctx, &tenant, Some(old.state), Some(PersonaState::Active))?;
    ctx.audit(
        "persona.activated.v1",
        &persona_subject(&tenant, &id),
        json!({"via": "invite"}),
    )?;
    Ok(new.view(tenant, id))
}

/// Replaces the invite of a persona that has not accepted yet with the one whose token hashes to
/// `hash` (the old link stops working), good for [`INVITE_DAYS`] from now
/// (`persona.invite.reissued.v1`). Returns the persona, `updated_at` being the new invite's
/// start.
///
/// Errors: 404; 409 `tenant_read_only`, `persona_not_invited`.
pub fn reissue_invite(
    ctx: &mut WriteCtx<'_>,
    tenant: &Uuid,
    id: &Uuid,
    hash: [u8; 32],
) -> Result<Persona> {
    writable_tenant(ctx, tenant)?;
    let mut rec = queries::load_persona(ctx, tenant, id)?;
    if rec.state != PersonaState::Invited {
        return Err(Error::conflict(
            PERSONA_NOT_INVITED,
            format!(
                "persona {id} is {}: only an invited persona gets a new invite link",
                rec.state.as_str()
            ),
        ));
    }
    if let Some(old) = ctx.get(INVITES_BY_PERSONA, &tenant_key(tenant, id))? {
        ctx.delete(INVITES, &old)?;
    }
    let expires = ctx.now + chrono::Duration::days(INVITE_DAYS);
    ctx.put_record(
        INVITES,
        &hash,
        &InviteRecord::V1 {
            tenant_id: tenant.into_bytes(),
            persona_id: id.into_bytes(),
            created_at: micros(ctx.now),
            expires_at: micros(expires),
        },
    )?;
    ctx.put(INVITES_BY_PERSONA, &tenant_key(tenant, id), &hash)?;
    rec.updated_at = micros(ctx.now);
    save(ctx, tenant, id, &rec)?;
    ctx.audit(
        "persona.invite.reissued.v1",
        &persona_subject(tenant, id),
        json!({"invite_expires_at": crate::clock::rfc3339_micros(expires)}),
    )?;
    Ok(rec.view(*tenant, *id))
}

/// The refusal of a bad invite link (the same for unknown, used and expired: a link says
/// nothing about others).
pub fn invite_invalid() -> Error {
    Error::Gone {
        code: INVITE_INVALID,
        detail: "this invite link is unknown, used or expired: ask your tenant admin for a new one"
            .into(),
    }
}

/// Starts a Tenant-console session after a successful sign-in (`persona.signed_in.v1`).
///
/// Errors: 404; 409 `persona_revoked`.
pub fn start_session(
    ctx: &mut WriteCtx<'_>,
    tenant: &Uuid,
    id: &Uuid,
    key: &[u8; 32],
    csrf: &[u8; 32],
) -> Result<()> {
    let mut rec = queries::load_persona(ctx, tenant, id)?;
    if rec.state != PersonaState::Active {
        return Err(Error::conflict(
            PERSONA_REVOKED,
            format!("persona {id} cannot sign in: it is {}", rec.state.as_str()),
        ));
    }
    let now = micros(ctx.now);
    ctx.put_record(
        SESSIONS,
        key,
        &TenantSessionRecord::V1 {
            tenant_id: tenant.into_bytes(),
            persona_id: id.into_bytes(),
            csrf: *csrf,
            created_at: now,
            last_seen: now,
        },
    )?;
    ctx.put(
        SESSIONS_BY_PERSONA,
        &Key::new().uuid(tenant).uuid(id).raw(key).into_bytes(),
        &[],
    )?;
    rec.last_sign_in_at = Some(now);
    save(ctx, tenant, id, &rec)?;
    ctx.audit(
        "persona.signed_in.v1",
        &persona_subject(tenant, id),
        json!({"console": "tenant"}),
    )?;
    Ok(())
}

/// Ends a session (`persona.signed_out.v1`); an unknown session is already gone.
pub fn end_session(ctx: &mut WriteCtx<'_>, key: &[u8; 32]) -> Result<()> {
    let Some(TenantSessionRecord::V1 {
        tenant_id,
        persona_id,
        ..
    }) = ctx.get_record::<TenantSessionRecord>(SESSIONS, key)?
    else {
        return Ok(());
    };
    let (tenant, id) = (Uuid::from_bytes(tenant_id), Uuid::from_bytes(persona_id));
    ctx.delete(SESSIONS, key)?;
    ctx.delete(
        SESSIONS_BY_PERSONA,
        &Key::new().uuid(&tenant).uuid(&id).raw(key).into_bytes(),
    )?;
    ctx.audit(
        "persona.signed_out.v1",
        &persona_subject(&tenant, &id),
        json!({"console": "tenant"}),
    )?;
    Ok(())
}

/// Refreshes a session's last-seen time to the request's (never backwards).
pub fn touch_session(ctx: &mut WriteCtx<'_>, key: &[u8; 32]) -> Result<()> {
    if let Some(TenantSessionRecord::V1 {
        tenant_id,
        persona_id,
        csrf,
        created_at,
        last_seen,
    }) = ctx.get_record::<TenantSessionRecord>(SESSIONS, key)?
    {
        ctx.put_record(
            SESSIONS,
            key,
            &TenantSessionRecord::V1 {
                tenant_id,
                persona_id,
                csrf,
                created_at,
                last_seen: micros(ctx.now).max(last_seen),
            },
        )?;
    }
    Ok(())
}

/// Deletes Tenant-console sessions past their idle or absolute limit; returns how many.
pub fn prune_sessions(
    ctx: &mut WriteCtx<'_>,
    limits: crate::operators::model::SessionLimits,
) -> Result<u64> {
    let now = ctx.now;
    let mut dead = Vec::new();
    ctx.scan(SESSIONS, &Range::all(), Dir::Asc, &mut |k, v| {
        let TenantSessionRecord::V1 {
            tenant_id,
            persona_id,
            created_at,
            last_seen,
            ..
        } = crate::store::codec::decode(SESSIONS.name(), v)?;
        let idle = now - crate::clock::from_micros(last_seen) >= limits.idle;
        let old = now - crate::clock::from_micros(created_at) >= limits.absolute;
        if idle || old {
            dead.push((k.to_vec(), tenant_id, persona_id));
        }
        Ok(ControlFlow::Continue(()))
    })?;
    for (k, t, p) in &dead {
        ctx.delete(SESSIONS, k)?;
        ctx.delete(
            SESSIONS_BY_PERSONA,
            &Key::new()
                .uuid(&Uuid::from_bytes(*t))
                .uuid(&Uuid::from_bytes(*p))
                .raw(k)
                .into_bytes(),
        )?;
    }
    Ok(dead.len() as u64)
}

/// Sets a persona's password (the account page), ending its other sessions
/// (`persona.password_changed.v1`).
///
/// Errors: 404; 409 `persona_revoked`, `tenant_read_only`.
pub fn set_password(
    ctx: &mut WriteCtx<'_>,
    tenant: &Uuid,
    id: &Uuid,
    password_hash: &str,
    keep_session: &[u8; 32],
) -> Result<()> {
    writable_tenant(ctx, tenant)?;
    let mut rec = queries::load_persona(ctx, tenant, id)?;
    if rec.state != PersonaState::Active {
        return Err(Error::conflict(
            PERSONA_REVOKED,
            format!("persona {id} is {}", rec.state.as_str()),
        ));
    }
    rec.password_hash = Some(password_hash.to_string());
    rec.updated_at = micros(ctx.now);
    save(ctx, tenant, id, &rec)?;
    // Other sessions end; the one that changed the password stays.
    let prefix = tenant_key(tenant, id);
    let mut others = Vec::new();
    ctx.scan(
        SESSIONS_BY_PERSONA,
        &Range::prefix(&prefix),
        Dir::Asc,
        &mut |k, _| {
            if k.get(prefix.len()..) != Some(keep_session.as_slice()) {
                others.push(k.to_vec());
            }
            Ok(ControlFlow::Continue(()))
        },
    )?;
    for k in &others {
        if let Some(s) = k.get(prefix.len()..) {
            ctx.delete(SESSIONS, s)?;
        }
        ctx.delete(SESSIONS_BY_PERSONA, k)?;
    }
    ctx.audit(
        "persona.password_changed.v1",
        &persona_subject(tenant, id),
        json!({"other_sessions_ended": others.len()}),
    )?;
    Ok(())
}

/// A business unit as asked for, unchecked.
#[derive(Clone, Debug, Default)]
pub struct BusinessUnitDraft {
    /// 1–120 characters.
    pub name: String,
    /// `cost_center`, `region`, `team`, or free text.
    pub kind: String,
    /// The parent unit's id.
    pub parent_id: Option<String>,
}

/// A checked [`BusinessUnitDraft`].
#[derive(Clone, Debug)]
pub struct BusinessUnitInput {
    name: String,
    kind: String,
    parent_id: Option<Uuid>,
}

impl BusinessUnitDraft {
    /// Checks every field.
    ///
    /// Errors: 422 `validation_failed`.
    pub fn parse(self) -> Result<BusinessUnitInput> {
        let mut v = Validator::new();
        let name = v.take(
            "name",
            parse_display_name(&self.name).map_err(|m| m.replace("display_name", "name")),
        );
        let kind = v.take("kind", parse_bu_kind(&self.kind));
        let parent_id = self
            .parent_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .and_then(|p| {
                v.take(
                    "parent_id",
                    crate::ids::parse_uuid(p)
                        .ok_or_else(|| format!("parent_id '{p}' is not a UUID")),
                )
            });
        v.finish()?;
        let missing = || Error::Internal("validated field missing".into());
        Ok(BusinessUnitInput {
            name: name.ok_or_else(missing)?,
            kind: kind.ok_or_else(missing)?,
            parent_id,
        })
    }
}

/// Changes to a business unit, unchecked: rename, change kind, or move (`parent_id:
/// Some(None)` moves it to the top).
#[derive(Clone, Debug, Default)]
pub struct BusinessUnitChanges {
    /// New name.
    pub name: Option<String>,
    /// New kind.
    pub kind: Option<String>,
    /// New parent; `Some(None)`: the top.
    pub parent_id: Option<Option<String>>,
}

fn bu_subject(tenant: &Uuid, id: &Uuid) -> Subject {
    Subject::in_tenant(*tenant, "business_unit", id)
}

fn load_bu(r: &impl Reader, tenant: &Uuid, id: &Uuid) -> Result<BusinessUnitRecord> {
    r.get_record::<BusinessUnitRecord>(BUSINESS_UNITS, &tenant_key(tenant, id))?
        .ok_or_else(|| Error::not_found("business unit", id.to_string()))
}

/// Creates a business unit (`business_unit.created.v1`).
///
/// Errors: 404 unknown tenant; 409 `tenant_read_only`, `business_unit_limit`; 422 unknown
/// parent.
pub fn create_bu(
    ctx: &mut WriteCtx<'_>,
    tenant: &Uuid,
    input: &BusinessUnitInput,
) -> Result<BusinessUnit> {
    writable_tenant(ctx, tenant)?;
    check_bu(ctx, tenant, "parent_id", input.parent_id.as_ref())?;
    let have = queries::counter(ctx, tenant, counter::BUSINESS_UNITS)?;
    if have >= MAX_BUSINESS_UNITS {
        return Err(Error::conflict(
            BUSINESS_UNIT_LIMIT,
            format!("this tenant already has {have} business units, the most a tenant can have"),
        ));
    }
    let id = crate::ids::new_id(ctx.now);
    let rec = BusinessUnitRecord::V1 {
        name: input.name.clone(),
        kind: input.kind.clone(),
        parent_id: input.parent_id.map(Uuid::into_bytes),
        created_at: micros(ctx.now),
    };
    ctx.put_record(BUSINESS_UNITS, &tenant_key(tenant, &id), &rec)?;
    bump(ctx, tenant, counter::BUSINESS_UNITS, 1)?;
    ctx.audit(
        "business_unit.created.v1",
        &bu_subject(tenant, &id),
        json!({"name": input.name, "kind": input.kind, "parent_id": input.parent_id.map(|p| p.to_string())}),
    )?;
    Ok(rec.view(*tenant, id))
}

/// Renames or moves a business unit (`business_unit.updated.v1` with a field diff). A move under
/// itself or one of its descendants is refused.
///
/// Errors: 404; 409 `tenant_read_only`; 422 for a bad field, an unknown parent or a cycle.
pub fn update_bu(
    ctx: &mut WriteCtx<'_>,
    tenant: &Uuid,
    id: &Uuid,
    changes: &BusinessUnitChanges,
) -> Result<BusinessUnit> {
    writable_tenant(ctx, tenant)?;
    let old = load_bu(ctx, tenant, id)?;
    let BusinessUnitRecord::V1 {
        name,
        kind,
        parent_id,
        created_at,
    } = old.clone();
    let mut v = Validator::new();
    let new_name = changes.name.as_deref().and_then(|n| {
        v.take(
            "name",
            parse_display_name(n).map_err(|m| m.replace("display_name", "name")),
        )
    });
    let new_kind = changes
        .kind
        .as_deref()
        .and_then(|k| v.take("kind", parse_bu_kind(k)));
    let new_parent = changes.parent_id.as_ref().map(|p| {
        p.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .and_then(|p| {
                v.take(
                    "parent_id",
                    crate::ids::parse_uuid(p)
                        .ok_or_else(|| format!("parent_id '{p}' is not a UUID")),
                )
            })
    });
    v.finish()?;
    if let Some(p) = new_parent.flatten() {
        check_bu(ctx, tenant, "parent_id", Some(&p))?;
        // Walk up from the new parent: meeting `id` would make a cycle.
        let mut at = Some(p);
        let mut steps = 0;
        while let Some(cur) = at {
            if cur == *id {
                return Err(Error::invalid(
                    "parent_id",
                    "a business unit cannot move under itself or one of its own units",
                ));
            }
            steps += 1;
            if steps > 10_000 {
                break;
            }
            let BusinessUnitRecord::V1 { parent_id, .. } = load_bu(ctx, tenant, &cur)?;
            at = parent_id.map(Uuid::from_bytes);
        }
    }
    let mut diff = Map::new();
    let next_name = new_name.unwrap_or_else(|| name.clone());
    let next_kind = new_kind.unwrap_or_else(|| kind.clone());
    let next_parent = match new_parent {
        Some(p) => p.map(Uuid::into_bytes),
        None => parent_id,
    };
    if next_name != name {
        diff.insert("name".into(), json!({"from": name, "to": next_name}));
    }
    if next_kind != kind {
        diff.insert("kind".into(), json!({"from": kind, "to": next_kind}));
    }
    if next_parent != parent_id {
        let s = |p: Option<[u8; 16]>| p.map(|p| Uuid::from_bytes(p).to_string());
        diff.insert(
            "parent_id".into(),
            json!({"from": s(parent_id), "to": s(next_parent)}),
        );
    }
    let rec = BusinessUnitRecord::V1 {
        name: next_name,
        kind: next_kind,
        parent_id: next_parent,
        created_at,
    };
    if diff.is_empty() {
        return Ok(rec.view(*tenant, *id));
    }
    ctx.put_record(BUSINESS_UNITS, &tenant_key(tenant, id), &rec)?;
    ctx.audit(
        "business_unit.updated.v1",
        &bu_subject(tenant, id),
        json!({ "changes": diff }),
    )?;
    Ok(rec.view(*tenant, *id))
}

/// Deletes a business unit that has no child units and no personas
/// (`business_unit.deleted.v1`).
///
/// Errors: 404; 409 `tenant_read_only`, `business_unit_in_use` naming what is left in it.
pub fn delete_bu(ctx: &mut WriteCtx<'_>, tenant: &Uuid, id: &Uuid) -> Result<()> {
    writable_tenant(ctx, tenant)?;
    let BusinessUnitRecord::V1 { name, .. } = load_bu(ctx, tenant, id)?;
    let children = queries::business_units(ctx, tenant)?
        .iter()
        .filter(|b| b.parent_id == Some(*id))
        .count();
    let members = queries::members_of_bu(ctx, tenant, id)?;
    if children > 0 || members > 0 {
        return Err(Error::conflict(
            BUSINESS_UNIT_IN_USE,
            format!(
                "business unit '{name}' still has {children} child unit(s) and {members} persona(s): move or delete them first"
            ),
        ));
    }
    ctx.delete(BUSINESS_UNITS, &tenant_key(tenant, id))?;
    bump(ctx, tenant, counter::BUSINESS_UNITS, -1)?;
    ctx.audit(
        "business_unit.deleted.v1",
        &bu_subject(tenant, id),
        json!({"name": name}),
    )?;
    Ok(())
}

/// The provisioning hook: seeds the new tenant's system roles from its app's role templates
/// (F21.05.03 `seed_system_roles`), in the provisioning write.
///
/// Errors: 422 `app_not_found` (never after provisioning checked the app); storage errors.
pub fn seed_system_roles(ctx: &mut WriteCtx<'_>, tenant: &Uuid, app: &Uuid) -> Result<()> {
    let templates = crate::apps::queries::get(ctx, app)
        .map_err(|_| Error::AppNotFound(app.to_string()))?
        .role_templates;
    seed_roles(ctx, tenant, &templates)
}

/// Deletes every row of `table` under `prefix`; returns how many.
fn delete_prefix(ctx: &mut WriteCtx<'_>, table: crate::store::Table, prefix: &[u8]) -> Result<u64> {
    let mut keys = Vec::new();
    ctx.scan(table, &Range::prefix(prefix), Dir::Asc, &mut |k, _| {
        keys.push(k.to_vec());
        Ok(ControlFlow::Continue(()))
    })?;
    for k in &keys {
        ctx.delete(table, k)?;
    }
    Ok(keys.len() as u64)
}

/// The shredding hook: deletes the tenant's personas (their emails and password hashes with
/// them), invites, sessions, roles, business units and counters, in the shredding write.
pub fn shred_members(ctx: &mut WriteCtx<'_>, tenant: &Uuid) -> Result<u64> {
    let p = tenant.as_bytes();
    // Sessions and invites are keyed by hashes: reach them through their per-persona indexes.
    let mut sessions = Vec::new();
    ctx.scan(
        SESSIONS_BY_PERSONA,
        &Range::prefix(p),
        Dir::Asc,
        &mut |k, _| {
            if let Some(s) = k.get(32..) {
                sessions.push(s.to_vec());
            }
            Ok(ControlFlow::Continue(()))
        },
    )?;
    for s in &sessions {
        ctx.delete(SESSIONS, s)?;
    }
    let mut invites = Vec::new();
    ctx.scan(
        INVITES_BY_PERSONA,
        &Range::prefix(p),
        Dir::Asc,
        &mut |_, v| {
            invites.push(v.to_vec());
            Ok(ControlFlow::Continue(()))
        },
    )?;
    for h in &invites {
        ctx.delete(INVITES, h)?;
    }
    let mut n = 0;
    for table in [
        PERSONAS,
        PERSONA_EMAILS,
        ROLES,
        BUSINESS_UNITS,
        INVITES_BY_PERSONA,
        SESSIONS_BY_PERSONA,
        COUNTS,
    ] {
        n += delete_prefix(ctx, table, p)?;
    }
    Ok(n)
}
