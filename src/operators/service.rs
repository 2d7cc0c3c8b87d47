//! Operator rules and storage: accounts, roles, disabling, tokens, sessions, sign-in failures.
//!
//! Password hashing (Argon2id, deliberately slow) happens before a write is queued, never on the
//! writer thread: callers hash with [`crate::passwords::hash`] and pass the PHC string in.
//!
//! Audit events (platform chain): `operator.created.v1`, `operator.role_changed.v1`,
//! `operator.disabled.v1`, `operator.enabled.v1`, `operator.password_changed.v1`,
//! `operator.token.created.v1`, `operator.token.revoked.v1`, `operator.signed_in.v1`,
//! `operator.signed_out.v1`, and once a day `operator.signin_failures.v1`. Changing a role or disabling an operator ends their sessions in the
//! same transaction.

use std::ops::ControlFlow;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use chrono::{DateTime, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::model::*;
use super::queries::{list, load};
use crate::audit::ledger::{Audit, Subject};
use crate::clock::from_micros;
use crate::error::{Error, Result};
use crate::rbac::Role;
use crate::store::keys::Key;
use crate::store::{Dir, Range, Reader, WriteCtx, codec};

pub use crate::passwords::{hash_password, verify_password};

/// 32 random bytes.
pub fn random32() -> Result<[u8; 32]> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(b)
}

/// SHA-256 of a secret (tokens and session cookies are 256-bit random, so a fast hash is the
/// right one: nothing to brute-force).
pub fn secret_key(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn subject(username: &str) -> Subject {
    Subject::platform("operator", username)
}

fn save(ctx: &mut WriteCtx<'_>, id: &Uuid, v: &OperatorV1) -> Result<()> {
    ctx.put_record(OPERATORS, id.as_bytes(), &OperatorRecord::V1(v.clone()))?;
    Ok(())
}

/// Validated input of a new operator.
#[derive(Clone, Debug)]
pub struct NewOperator {
    /// Parsed username.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// Argon2id PHC string of the password.
    pub password_hash: String,
}

/// Creates an operator, writing `operator.created.v1`.
///
/// Errors: 409 `username_taken`.
pub fn create(ctx: &mut WriteCtx<'_>, input: &NewOperator) -> Result<Operator> {
    if ctx.contains(USERNAMES, input.username.as_bytes())? {
        return Err(Error::conflict(
            crate::operators::model::USERNAME_TAKEN,
            format!(
                "username '{}' is already in use: choose another",
                input.username
            ),
        ));
    }
    let id = crate::ids::new_id(ctx.now);
    let now = micros(ctx.now);
    let rec = OperatorV1 {
        username: input.username.clone(),
        display_name: input.display_name.clone(),
        role: input.role,
        password_hash: input.password_hash.clone(),
        disabled: false,
        created_at: now,
        updated_at: now,
        last_sign_in_at: None,
    };
    save(ctx, &id, &rec)?;
    ctx.put(USERNAMES, input.username.as_bytes(), id.as_bytes())?;
    ctx.audit(
"operator.created.v1",
&subject(&input.username),
json!({"operator_id": id.to_string(), "username": input.username, "display_name": input.display_name, "role": input.role}),
    )?;
    Ok(rec.view(id))
}

/// Ends every session of `id` (role change, disabling, password change). Returns how many.
fn end_sessions(ctx: &mut WriteCtx<'_>, id: &Uuid) -> Result<u64> {
    let mut keys = Vec::new();
    ctx.scan(
        SESSIONS_BY_OPERATOR,
        &Range::prefix(id.as_bytes()),
        Dir::Asc,
        &mut |k, _| {
            keys.push(k[16..].to_vec());
            Ok(ControlFlow::Continue(()))
        },
    )?;
    for k in &keys {
        ctx.delete(SESSIONS, k)?;
    }
    ctx.delete_range(SESSIONS_BY_OPERATOR, &Range::prefix(id.as_bytes()))?;
    Ok(keys.len() as u64)
}

/// Changes an operator's role and ends their sessions (`operator.role_changed.v1`).
///
/// Errors: 404; 409 `conflict` when the role is unchanged, or when it would leave no active
/// super_admin.
pub fn set_role(ctx: &mut WriteCtx<'_>, id: &Uuid, role: Role) -> Result<Operator> {
    let mut rec = load(ctx, id)?;
    if rec.role == role {
        return Err(Error::conflict(
            crate::error::CONFLICT,
            format!("{} is already {}", rec.username, role.as_str()),
        ));
    }
    if rec.role == Role::SuperAdmin && !rec.disabled {
        ensure_another_super_admin(ctx, id)?;
    }
    let from = rec.role;
    rec.role = role;
    rec.updated_at = micros(ctx.now);
    save(ctx, id, &rec)?;
    let ended = end_sessions(ctx, id)?;
    ctx.audit(
        "operator.role_changed.v1",
        &subject(&rec.username),
        json!({"from": from, "to": role, "sessions_ended": ended}),
    )?;
    Ok(rec.view(*id))
}

fn ensure_another_super_admin(r: &impl Reader, except: &Uuid) -> Result<()> {
    let others = list(r)?
        .into_iter()
        .any(|o| o.id != *except && o.role == Role::SuperAdmin && !o.disabled);
    if others {
        Ok(())
    } else {
        Err(Error::conflict(
            crate::operators::model::LAST_SUPER_ADMIN,
            "this is the last active super_admin: make another operator super_admin first",
        ))
    }
}

/// Disables or re-enables an operator (`operator.disabled.v1` / `operator.enabled.v1`);
/// disabling ends their sessions, and their tokens stop working.
///
/// Errors: 404; 409 when already in that state or when it would disable the last super_admin.
pub fn set_disabled(ctx: &mut WriteCtx<'_>, id: &Uuid, disabled: bool) -> Result<Operator> {
    let mut rec = load(ctx, id)?;
    if rec.disabled == disabled {
        let state = if disabled { "disabled" } else { "enabled" };
        return Err(Error::conflict(
            crate::error::CONFLICT,
            format!("{} is already {state}", rec.username),
        ));
    }
    if disabled && rec.role == Role::SuperAdmin {
        ensure_another_super_admin(ctx, id)?;
    }
    rec.disabled = disabled;
    rec.updated_at = micros(ctx.now);
    save(ctx, id, &rec)?;
    let ended = if disabled { end_sessions(ctx, id)? } else { 0 };
    let action = if disabled {
        "operator.disabled.v1"
    } else {
        "operator.enabled.v1"
    };
    ctx.audit(
        action,
        &subject(&rec.username),
        json!({"sessions_ended": ended}),
    )?;
    Ok(rec.view(*id))
}

/// Sets a new password hash and ends the operator's sessions (`operator.password_changed.v1`).
pub fn set_password(ctx: &mut WriteCtx<'_>, id: &Uuid, password_hash: &str) -> Result<Operator> {
    let mut rec = load(ctx, id)?;
    rec.password_hash = password_hash.to_string();
    rec.updated_at = micros(ctx.now);
    save(ctx, id, &rec)?;
    let ended = end_sessions(ctx, id)?;
    ctx.audit(
        "operator.password_changed.v1",
        &subject(&rec.username),
        json!({"sessions_ended": ended}),
    )?;
    Ok(rec.view(*id))
}

/// A freshly made token: the secret is shown once and never stored.
#[derive(Clone, Debug)]
pub struct NewToken {
    /// Token id.
    pub id: Uuid,
    /// `tnt_` + 43 characters of base64url.
    pub secret: String,
}

/// Makes a token secret (off the writer: randomness only).
pub fn new_token(now: DateTime<Utc>) -> Result<NewToken> {
    Ok(NewToken {
        id: crate::ids::new_id(now),
        secret: format!("{TOKEN_PREFIX}{}", B64URL.encode(random32()?)),
    })
}

/// Stores a token for `operator` under the hash of `token.secret` (`operator.token.created.v1`).
///
/// Errors: 404; 422 for a bad name; 409 when the operator is disabled.
pub fn create_token(
    ctx: &mut WriteCtx<'_>,
    operator: &Uuid,
    name: &str,
    token: &NewToken,
) -> Result<TokenInfo> {
    let rec = load(ctx, operator)?;
    if rec.disabled {
        return Err(Error::conflict(
            crate::operators::model::OPERATOR_DISABLED,
            format!("{} is disabled: enable it first", rec.username),
        ));
    }
    let record = TokenRecord::V1 {
        id: token.id.into_bytes(),
        operator_id: operator.into_bytes(),
        name: name.to_string(),
        created_at: micros(ctx.now),
        prefix: token.secret.chars().take(8).collect(),
    };
    let hash = secret_key(&token.secret);
    ctx.put_record(TOKENS, &hash, &record)?;
    ctx.put(
        TOKENS_BY_OPERATOR,
        Key::new().uuid(operator).uuid(&token.id).as_bytes(),
        &hash,
    )?;
    ctx.audit(
        "operator.token.created.v1",
        &subject(&rec.username),
        json!({"token_id": token.id.to_string(), "name": name}),
    )?;
    Ok(record.view())
}

/// Revokes a token at once (`operator.token.revoked.v1`).
///
/// Errors: 404 unknown operator or token.
pub fn revoke_token(ctx: &mut WriteCtx<'_>, operator: &Uuid, token: &Uuid) -> Result<()> {
    let rec = load(ctx, operator)?;
    let index = Key::new().uuid(operator).uuid(token).into_bytes();
    let hash = ctx
        .get(TOKENS_BY_OPERATOR, &index)?
        .ok_or_else(|| Error::not_found("token", token.to_string()))?;
    ctx.delete(TOKENS, &hash)?;
    ctx.delete(TOKENS_BY_OPERATOR, &index)?;
    ctx.audit(
        "operator.token.revoked.v1",
        &subject(&rec.username),
        json!({"token_id": token.to_string()}),
    )?;
    Ok(())
}

/// Starts a session after a successful sign-in (`operator.signed_in.v1`).
pub fn start_session(
    ctx: &mut WriteCtx<'_>,
    operator: &Uuid,
    key: &[u8; 32],
    csrf: &[u8; 32],
    client: &str,
) -> Result<()> {
    let mut rec = load(ctx, operator)?;
    if rec.disabled {
        return Err(Error::Unauthorized("the account is disabled".into()));
    }
    let now = micros(ctx.now);
    ctx.put_record(
        SESSIONS,
        key,
        &SessionRecord::V1 {
            operator_id: operator.into_bytes(),
            created_at: now,
            last_seen: now,
            csrf: *csrf,
        },
    )?;
    ctx.put(
        SESSIONS_BY_OPERATOR,
        Key::new().uuid(operator).raw(key).as_bytes(),
        &[],
    )?;
    rec.last_sign_in_at = Some(now);
    save(ctx, operator, &rec)?;
    ctx.audit(
        "operator.signed_in.v1",
        &subject(&rec.username),
        json!({"client": client, "method": "password"}),
    )?;
    Ok(())
}

/// Ends one session (`operator.signed_out.v1`); a session that is already gone is a no-op.
pub fn end_session(ctx: &mut WriteCtx<'_>, key: &[u8; 32]) -> Result<()> {
    let Some(SessionRecord::V1 { operator_id, .. }) =
        ctx.get_record::<SessionRecord>(SESSIONS, key)?
    else {
        return Ok(());
    };
    let id = Uuid::from_bytes(operator_id);
    ctx.delete(SESSIONS, key)?;
    ctx.delete(
        SESSIONS_BY_OPERATOR,
        Key::new().uuid(&id).raw(key).as_bytes(),
    )?;
    if let Ok(rec) = load(ctx, &id) {
        ctx.audit("operator.signed_out.v1", &subject(&rec.username), json!({}))?;
    }
    Ok(())
}

/// Records activity on a session (called at most once a minute per session).
pub fn touch_session(ctx: &mut WriteCtx<'_>, key: &[u8; 32]) -> Result<()> {
    if let Some(SessionRecord::V1 {
        operator_id,
        created_at,
        csrf,
        last_seen: seen_before,
    }) = ctx.get_record::<SessionRecord>(SESSIONS, key)?
    {
        // Touches may land out of order; a session's last-seen time never goes back.
        let last_seen = micros(ctx.now).max(seen_before);
        ctx.put_record(
            SESSIONS,
            key,
            &SessionRecord::V1 {
                operator_id,
                created_at,
                last_seen,
                csrf,
            },
        )?;
    }
    Ok(())
}

/// Deletes expired sessions. Returns how many.
pub fn prune_sessions(ctx: &mut WriteCtx<'_>, limits: SessionLimits) -> Result<u64> {
    let now = ctx.now;
    let mut dead = Vec::new();
    ctx.scan(SESSIONS, &Range::all(), Dir::Asc, &mut |k, v| {
        let SessionRecord::V1 {
            operator_id,
            created_at,
            last_seen,
            ..
        } = codec::decode::<SessionRecord>(SESSIONS.name(), v)?;
        if now - from_micros(last_seen) > limits.idle
            || now - from_micros(created_at) > limits.absolute
        {
            dead.push((k.to_vec(), Uuid::from_bytes(operator_id)));
        }
        Ok(ControlFlow::Continue(()))
    })?;
    for (k, id) in &dead {
        ctx.delete(SESSIONS, k)?;
        ctx.delete(SESSIONS_BY_OPERATOR, Key::new().uuid(id).raw(k).as_bytes())?;
    }
    Ok(dead.len() as u64)
}

/// Counts a failed sign-in for `username` on the day of `ctx.now`: under the username when
/// an operator has it (`known`), else under [`UNKNOWN_USERNAME`], so a spray of made-up names
/// adds one row per day, not one per name.
pub fn record_failure(ctx: &mut WriteCtx<'_>, username: &str, known: bool) -> Result<()> {
    let key = Key::new()
        .str(&ctx.now.format("%Y-%m-%d").to_string())
        .str(if known { username } else { UNKNOWN_USERNAME })
        .into_bytes();
    let n = ctx
        .get(SIGNIN_FAILURES, &key)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes);
    ctx.put(SIGNIN_FAILURES, &key, &(n + 1).to_be_bytes())?;
    Ok(())
}

/// The meta key holding the last day (`YYYY-MM-DD`) whose failed sign-ins are in the ledger.
const FAILURES_SUMMARIZED: &str = "signin_failures_summarized_through";

/// Puts failed sign-ins on the ledger, one entry per whole day: for each day before
/// `ctx.now`'s with failures and no entry yet, `operator.signin_failures.v1` with
/// `{day, total, by_username: {name: count}}` (unknown names under `(unknown)`). Then deletes
/// the rows of days older than [`SIGNIN_FAILURE_DAYS`]. Returns the entries written.
pub fn summarize_failures(ctx: &mut WriteCtx<'_>) -> Result<u64> {
    let today = ctx.now.format("%Y-%m-%d").to_string();
    let done = crate::store::meta_get(ctx, FAILURES_SUMMARIZED)?
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let mut days: std::collections::BTreeMap<String, Vec<(String, u64)>> = Default::default();
    let mut old = Vec::new();
    let oldest = (ctx.now - chrono::Duration::days(SIGNIN_FAILURE_DAYS))
        .format("%Y-%m-%d")
        .to_string();
    ctx.scan(SIGNIN_FAILURES, &Range::all(), Dir::Asc, &mut |k, v| {
        let mut r = crate::store::keys::KeyReader::new(k);
        let (Some(day), Some(name)) = (r.str(), r.str()) else {
            return Ok(ControlFlow::Continue(()));
        };
        if day >= today {
            return Ok(ControlFlow::Break(()));
        }
        if day < oldest {
            old.push(k.to_vec());
        }
        if day > done {
            let n = <[u8; 8]>::try_from(v).map_or(0, u64::from_be_bytes);
            days.entry(day).or_default().push((name, n));
        }
        Ok(ControlFlow::Continue(()))
    })?;
    let mut written = 0;
    for (day, names) in &days {
        let total: u64 = names.iter().map(|(_, n)| n).sum();
        let by_username: serde_json::Map<String, serde_json::Value> =
            names.iter().map(|(k, n)| (k.clone(), json!(n))).collect();
        ctx.audit(
            "operator.signin_failures.v1",
            &Subject::platform("signin", day),
            json!({"day": day, "total": total, "by_username": by_username}),
        )?;
        written += 1;
    }
    if let Some(last) = days.keys().next_back() {
        crate::store::meta_put(ctx, FAILURES_SUMMARIZED, last.as_bytes())?;
    }
    for k in &old {
        ctx.delete(SIGNIN_FAILURES, k)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_and_wrong_ones_do_not() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", Some(&h)));
        assert!(!verify_password("correct horse batterY", Some(&h)));
        assert!(
            !verify_password("correct horse battery", None),
            "unknown users never verify"
        );
    }
}
