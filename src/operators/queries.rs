//! The read model of operators: accounts, tokens, sessions and failed sign-ins, shared by the
//! API, the console, the CLI and the authentication middleware.

use std::ops::ControlFlow;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::model::*;
use super::service::secret_key;
use crate::clock::from_micros;
use crate::error::{Error, Result};
use crate::store::keys::Key;
use crate::store::{Dir, Range, Reader, codec};

pub(super) fn load(r: &impl Reader, id: &Uuid) -> Result<OperatorV1> {
    match r.get_record::<OperatorRecord>(OPERATORS, id.as_bytes())? {
        Some(OperatorRecord::V1(v)) => Ok(v),
        None => Err(Error::not_found("operator", id.to_string())),
    }
}

/// The operator with `id`.
///
/// Errors: 404.
pub fn get(r: &impl Reader, id: &Uuid) -> Result<Operator> {
    Ok(load(r, id)?.view(*id))
}

/// The operator named `username`, with its record (password hash included).
pub fn by_username(r: &impl Reader, username: &str) -> Result<Option<(Uuid, OperatorV1)>> {
    let Some(id) = r
        .get(USERNAMES, username.as_bytes())?
        .and_then(|b| Uuid::from_slice(&b).ok())
    else {
        return Ok(None);
    };
    Ok(Some((id, load(r, &id)?)))
}

/// Resolves a username or an id.
///
/// Errors: 404.
pub fn resolve(r: &impl Reader, who: &str) -> Result<Uuid> {
    if let Some(id) = crate::ids::parse_uuid(who)
        && r.contains(OPERATORS, id.as_bytes())?
    {
        return Ok(id);
    }
    let name = who.trim().to_ascii_lowercase();
    by_username(r, &name)?
        .map(|(id, _)| id)
        .ok_or_else(|| Error::not_found("operator", who))
}

/// Every operator, in creation order.
pub fn list(r: &impl Reader) -> Result<Vec<Operator>> {
    let mut out = Vec::new();
    r.scan(OPERATORS, &Range::all(), Dir::Asc, &mut |k, v| {
        if let (Ok(id), OperatorRecord::V1(rec)) = (
            Uuid::from_slice(k),
            codec::decode::<OperatorRecord>(OPERATORS.name(), v)?,
        ) {
            out.push(rec.view(id));
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(out)
}

/// How many operators exist (the first one may be created without credentials, from the CLI).
pub fn count(r: &impl Reader) -> Result<u64> {
    Ok(r.len(OPERATORS)?)
}

/// The tokens of `operator`.
pub fn tokens(r: &impl Reader, operator: &Uuid) -> Result<Vec<TokenInfo>> {
    let mut hashes = Vec::new();
    r.scan(
        TOKENS_BY_OPERATOR,
        &Range::prefix(operator.as_bytes()),
        Dir::Asc,
        &mut |_, v| {
            hashes.push(v.to_vec());
            Ok(ControlFlow::Continue(()))
        },
    )?;
    let mut out = Vec::new();
    for h in hashes {
        if let Some(t) = r.get_record::<TokenRecord>(TOKENS, &h)? {
            out.push(t.view());
        }
    }
    Ok(out)
}

/// The enabled operator a token acts as, if the token is valid.
pub fn token_operator(r: &impl Reader, secret: &str) -> Result<Option<(Uuid, OperatorV1)>> {
    let Some(TokenRecord::V1 { operator_id, .. }) =
        r.get_record::<TokenRecord>(TOKENS, &secret_key(secret))?
    else {
        return Ok(None);
    };
    let id = Uuid::from_bytes(operator_id);
    let rec = load(r, &id)?;
    Ok((!rec.disabled).then_some((id, rec)))
}

/// The live session for `key` with its enabled operator; `None` when unknown, expired (idle or
/// absolute limit) or the operator is disabled.
pub fn session(
    r: &impl Reader,
    key: &[u8; 32],
    now: DateTime<Utc>,
    limits: SessionLimits,
) -> Result<Option<(Session, OperatorV1)>> {
    let Some(SessionRecord::V1 {
        operator_id,
        created_at,
        last_seen,
        csrf,
    }) = r.get_record::<SessionRecord>(SESSIONS, key)?
    else {
        return Ok(None);
    };
    let (created, seen) = (from_micros(created_at), from_micros(last_seen));
    if now - seen > limits.idle || now - created > limits.absolute {
        return Ok(None);
    }
    let id = Uuid::from_bytes(operator_id);
    let rec = match load(r, &id) {
        Ok(rec) if !rec.disabled => rec,
        _ => return Ok(None),
    };
    Ok(Some((
        Session {
            key: *key,
            operator_id: id,
            csrf: B64URL.encode(csrf),
            created_at: created,
            last_seen: seen,
        },
        rec,
    )))
}

/// Failed sign-ins on `day` (`YYYY-MM-DD`) by username, most first.
pub fn failures_on(r: &impl Reader, day: &str) -> Result<Vec<(String, u64)>> {
    let prefix = Key::new().str(day).into_bytes();
    let mut out = Vec::new();
    r.scan(
        SIGNIN_FAILURES,
        &Range::prefix(&prefix),
        Dir::Asc,
        &mut |k, v| {
            let name = crate::store::keys::KeyReader::new(&k[prefix.len()..])
                .str()
                .unwrap_or_default();
            out.push((name, <[u8; 8]>::try_from(v).map_or(0, u64::from_be_bytes)));
            Ok(ControlFlow::Continue(()))
        },
    )?;
    out.sort_by_key(|f| std::cmp::Reverse(f.1));
    Ok(out)
}
