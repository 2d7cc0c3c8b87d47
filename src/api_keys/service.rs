//! The rules of API keys (tenant admin guide §3): issue within the persona's scopes (and the
//! issuer's), rotate with a grace window, revoke at once, and the coalesced `last_used_at`.
//!
//! Each change runs inside one write request and is recorded on the tenant's chain with
//! `ctx.audit`; a refusal writes nothing. Secrets never reach this module: it gets their hashes.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::model::*;
use super::queries;
use crate::audit::ledger::{Audit, Subject};
use crate::clock::to_micros;
use crate::error::{Error, Result, Validator};
use crate::members::model::{PersonaState, tenant_key};
use crate::members::service::bump;
use crate::rbac::Scopes;
use crate::store::{Reader, WriteCtx};

/// A key as asked for, unchecked (the API body, the console form, the demo).
#[derive(Clone, Debug, Default)]
pub struct ApiKeyDraft {
    /// The persona it acts as.
    pub persona_id: String,
    /// What it is for.
    pub name: String,
    /// Dotted scope names.
    pub scopes: Vec<String>,
    /// RFC 3339; none: no expiry.
    pub expires_at: Option<String>,
}

/// A checked [`ApiKeyDraft`].
#[derive(Clone, Debug)]
pub struct ApiKeyInput {
    persona_id: Uuid,
    name: String,
    scopes: Scopes,
    expires_at: Option<DateTime<Utc>>,
}

impl ApiKeyDraft {
    /// Checks every field at once.
    ///
    /// Errors: 422 `validation_failed` listing each bad field.
    pub fn parse(self) -> Result<ApiKeyInput> {
        let mut v = Validator::new();
        let persona_id = v.take(
            "persona_id",
            crate::ids::parse_uuid(self.persona_id.trim())
                .ok_or_else(|| format!("persona_id '{}' is not a UUID", self.persona_id.trim())),
        );
        let name = v.take("name", parse_name(&self.name));
        let scopes = v.take("scopes", crate::members::model::parse_scopes(&self.scopes));
        if self.scopes.is_empty() {
            v.add(
                "scopes",
                "give at least one scope: minimum privilege (e.g. metrics.read for a key that only reads metrics)",
            );
        }
        let expires_at = self
            .expires_at
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .and_then(|s| {
                v.take(
                    "expires_at",
                    DateTime::parse_from_rfc3339(s)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|_| {
                            format!("expires_at '{s}' is not an RFC 3339 time (e.g. 2027-06-30T00:00:00Z)")
                        }),
                )
            });
        v.finish()?;
        let missing = || Error::Internal("validated field missing".into());
        Ok(ApiKeyInput {
            persona_id: persona_id.ok_or_else(missing)?,
            name: name.ok_or_else(missing)?,
            scopes: scopes.ok_or_else(missing)?,
            expires_at,
        })
    }
}

/// A new secret's stored parts: its SHA-256 and the first characters shown in lists.
#[derive(Clone, Debug)]
pub struct SecretParts {
    /// SHA-256 of the secret.
    pub hash: [u8; 32],
    /// Its first 4 characters.
    pub hint: String,
}

fn subject(tenant: &Uuid, id: &Uuid) -> Subject {
    Subject::in_tenant(*tenant, "api_key", id)
}

fn names(s: Scopes) -> Vec<&'static str> {
    s.iter().map(|s| s.as_str()).collect()
}

fn save(ctx: &mut WriteCtx<'_>, tenant: &Uuid, id: &Uuid, rec: &ApiKeyV1) -> Result<()> {
    ctx.put_record(
        API_KEYS,
        &tenant_key(tenant, id),
        &ApiKeyRecord::V1(rec.clone()),
    )?;
    Ok(())
}

/// Would [`issue`] succeed now? Every check of it, writing nothing (an approval request is
/// checked with it before it is held).
///
/// Errors: as [`issue`].
pub fn check_issue(
    ctx: &impl crate::store::Reader,
    now: DateTime<Utc>,
    tenant: &Uuid,
    input: &ApiKeyInput,
    issuer: Option<Scopes>,
) -> Result<()> {
    crate::tenants::queries::get(ctx, tenant)?.ensure_writable()?;
    let persona =
        crate::members::queries::load_persona(ctx, tenant, &input.persona_id).map_err(|_| {
            Error::invalid(
                "persona_id",
                format!("persona {} does not exist in this tenant", input.persona_id),
            )
        })?;
    if persona.state != PersonaState::Active {
        return Err(Error::conflict(
            crate::members::model::PERSONA_REVOKED,
            format!(
                "persona {} is {}: keys are issued only for active personas",
                input.persona_id,
                persona.state.as_str()
            ),
        ));
    }
    let held = crate::members::queries::scopes_of(ctx, tenant, &persona.roles)?;
    if !held.covers(input.scopes) {
        let beyond: Vec<&str> = input
            .scopes
            .iter()
            .filter(|s| !held.grants(*s))
            .map(|s| s.as_str())
            .collect();
        return Err(Error::invalid(
            "scopes",
            format!(
                "{} beyond the persona's scopes ({}): a key holds at most what its persona holds",
                beyond.join(", "),
                held.to_claim()
            ),
        ));
    }
    if let Some(i) = issuer
        && !i.covers(input.scopes)
    {
        let beyond: Vec<&str> = input
            .scopes
            .iter()
            .filter(|s| !i.grants(*s))
            .map(|s| s.as_str())
            .collect();
        return Err(Error::invalid(
            "scopes",
            format!(
                "{} beyond your own scopes: you cannot hand out more than you hold",
                beyond.join(", ")
            ),
        ));
    }
    if let Some(e) = input.expires_at
        && e <= now
    {
        return Err(Error::invalid(
            "expires_at",
            "expires_at is in the past: give a future time, or none",
        ));
    }
    let have = crate::members::queries::counter(ctx, tenant, counter::ACTIVE)?;
    if have >= MAX_KEYS {
        return Err(Error::conflict(
            API_KEY_LIMIT,
            format!(
                "this tenant holds {have} active keys, the most it can: revoke unused ones first"
            ),
        ));
    }
    Ok(())
}

/// Issues a key `id` for a persona of `tenant` (`api_key.issued.v1`). Its scopes must be within
/// the persona's, and within `issuer`'s when a tenant principal issues it (no one hands out more
/// than they hold).
///
/// Errors: 404 unknown tenant; 409 `tenant_read_only`, `persona_revoked` (the persona is not
/// active), `api_key_limit`; 422 for an unknown persona, scopes beyond the persona's or the
/// issuer's, or an expiry in the past.
pub fn issue(
    ctx: &mut WriteCtx<'_>,
    tenant: &Uuid,
    id: &Uuid,
    input: &ApiKeyInput,
    secret: &SecretParts,
    issuer: Option<Scopes>,
) -> Result<ApiKey> {
    check_issue(ctx, ctx.now, tenant, input, issuer)?;
    let rec = ApiKeyV1 {
        persona_id: input.persona_id.into_bytes(),
        name: input.name.clone(),
        scopes: input.scopes.iter().map(|s| s.code()).collect(),
        secret_hash: secret.hash,
        secret_hint: secret.hint.clone(),
        previous_hash: None,
        previous_valid_until: None,
        created_at: to_micros(ctx.now),
        expires_at: input.expires_at.map(to_micros),
        rotated_at: None,
        revoked_at: None,
        last_used_at: None,
    };
    save(ctx, tenant, id, &rec)?;
    ctx.put(KEY_TENANTS, id.as_bytes(), tenant.as_bytes())?;
    bump(ctx, tenant, counter::ACTIVE, 1)?;
    if input.expires_at.is_none() {
        bump(ctx, tenant, counter::NO_EXPIRY, 1)?;
    }
    ctx.audit(
        "api_key.issued.v1",
        &subject(tenant, id),
        json!({
            "persona_id": input.persona_id.to_string(),
            "name": input.name,
            "scopes": names(input.scopes),
            "expires_at": input.expires_at.map(crate::clock::rfc3339_micros),
        }),
    )?;
    Ok(rec.view(*tenant, *id))
}

fn live(ctx: &WriteCtx<'_>, tenant: &Uuid, id: &Uuid) -> Result<ApiKeyV1> {
    crate::tenants::queries::get(ctx, tenant)?.ensure_writable()?;
    let rec = queries::load(ctx, tenant, id)?;
    let view = rec.view(*tenant, *id);
    match view.state(ctx.now) {
        KeyState::Active => Ok(rec),
        s => Err(Error::conflict(
            API_KEY_REVOKED,
            format!("API key {id} is {}: issue a new key instead", s.as_str()),
        )),
    }
}

/// Rotates a key (`api_key.rotated.v1`): `secret` becomes its secret, and the old one keeps
/// working for [`ROTATION_GRACE`] (guide §3), then fails. Returns the key and the end of the
/// grace window. A second rotation inside a grace window ends the first one's old secret.
///
/// Errors: 404; 409 `tenant_read_only`, `api_key_revoked` (revoked or expired).
pub fn rotate(
    ctx: &mut WriteCtx<'_>,
    tenant: &Uuid,
    id: &Uuid,
    secret: &SecretParts,
) -> Result<(ApiKey, DateTime<Utc>)> {
    let mut rec = live(ctx, tenant, id)?;
    let until = ctx.now + ROTATION_GRACE;
    rec.previous_hash = Some(rec.secret_hash);
    rec.previous_valid_until = Some(to_micros(until));
    rec.secret_hash = secret.hash;
    rec.secret_hint = secret.hint.clone();
    rec.rotated_at = Some(to_micros(ctx.now));
    save(ctx, tenant, id, &rec)?;
    ctx.audit(
        "api_key.rotated.v1",
        &subject(tenant, id),
        json!({"old_key_valid_until": crate::clock::rfc3339_micros(until)}),
    )?;
    Ok((rec.view(*tenant, *id), until))
}

/// Revokes a key at once, its old secret's grace included (`api_key.revoked.v1`). Tokens issued
/// for it fail on their next use.
///
/// Errors: 404; 409 `tenant_read_only`, `api_key_revoked` when already revoked.
pub fn revoke(ctx: &mut WriteCtx<'_>, tenant: &Uuid, id: &Uuid) -> Result<ApiKey> {
    crate::tenants::queries::get(ctx, tenant)?.ensure_writable()?;
    let mut rec = queries::load(ctx, tenant, id)?;
    if rec.revoked_at.is_some() {
        return Err(Error::conflict(
            API_KEY_REVOKED,
            format!("API key {id} is already revoked"),
        ));
    }
    rec.revoked_at = Some(to_micros(ctx.now));
    rec.previous_hash = None;
    rec.previous_valid_until = None;
    save(ctx, tenant, id, &rec)?;
    bump(ctx, tenant, counter::ACTIVE, -1)?;
    if rec.expires_at.is_none() {
        bump(ctx, tenant, counter::NO_EXPIRY, -1)?;
    }
    ctx.audit(
        "api_key.revoked.v1",
        &subject(tenant, id),
        json!({"name": rec.name}),
    )?;
    Ok(rec.view(*tenant, *id))
}

/// Stores coalesced last-use times (one write for a whole batch; a key's time only moves
/// forward; keys gone since are skipped). Bookkeeping, not a change anyone asked for: no ledger
/// entry.
pub fn record_usage(ctx: &mut WriteCtx<'_>, used: &[(Uuid, Uuid, DateTime<Utc>)]) -> Result<()> {
    for (tenant, id, at) in used {
        let Ok(mut rec) = queries::load(ctx, tenant, id) else {
            continue;
        };
        let t = to_micros(*at);
        if rec.last_used_at.is_none_or(|old| old < t) {
            rec.last_used_at = Some(t);
            save(ctx, tenant, id, &rec)?;
        }
    }
    Ok(())
}

/// The shredding hook: deletes the tenant's API keys (their tokens fail with them), in the
/// shredding write.
pub fn shred_keys(ctx: &mut WriteCtx<'_>, tenant: &Uuid) -> Result<u64> {
    let mut ids = Vec::new();
    ctx.scan(
        API_KEYS,
        &crate::store::Range::prefix(tenant.as_bytes()),
        crate::store::Dir::Asc,
        &mut |k, _| {
            ids.push(k.to_vec());
            Ok(std::ops::ControlFlow::Continue(()))
        },
    )?;
    for k in &ids {
        if let Some(id) = k.get(16..32) {
            ctx.delete(KEY_TENANTS, id)?;
        }
        ctx.delete(API_KEYS, k)?;
    }
    Ok(ids.len() as u64)
}
