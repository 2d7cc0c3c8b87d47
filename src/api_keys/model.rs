//! API keys (tenant admin guide §3): long-lived credentials of a tenant's persona, with scopes
//! within the persona's, an optional expiry, rotation with a 10-minute grace window, and instant
//! revoke. Types, stored records, tables and the key format.
//!
//! A key reads `tk_{key id, 32 hex}_{secret, 43 base64url}`: the id finds the record, and the
//! SHA-256 of the secret (256 random bits) is compared in constant time with the stored hash.
//! Only hashes are stored.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::clock::from_micros;
use crate::rbac::{Scope, Scopes};
use crate::store::Table;

/// API keys: `(tenant, key id) -> ApiKeyRecord`.
pub const API_KEYS: Table = Table::new("api_keys");
/// Where each key lives: `key id -> tenant id` (a presented key names only its id).
pub const KEY_TENANTS: Table = Table::new("api_key_tenants");

/// The prefix of every API key.
pub const KEY_PREFIX: &str = "tk_";
/// How long the old secret keeps working after a rotation (guide §3: "10 minutes").
pub const ROTATION_GRACE: Duration = Duration::minutes(10);
/// Most keys a tenant holds, revoked ones included (the list is read whole).
pub const MAX_KEYS: u64 = 1_000;

/// 409: the key is revoked.
pub const API_KEY_REVOKED: &str = "api_key_revoked";
/// 409: the tenant holds [`MAX_KEYS`] keys.
pub const API_KEY_LIMIT: &str = "api_key_limit";
/// 422 (as a field error): scopes beyond the persona's.
pub const SCOPES_EXCEED_PERSONA: &str = "scopes_exceed_persona";

/// Names of the key counters kept per tenant in [`crate::members::model::COUNTS`].
pub mod counter {
    /// Keys that are not revoked.
    pub const ACTIVE: &str = "api_keys";
    /// Keys that are not revoked and have no expiry (guide §3: "flagged in compliance
    /// reviews").
    pub const NO_EXPIRY: &str = "api_keys_no_expiry";
}

/// An API key as listed (never its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    /// UUIDv7.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// The persona it acts as.
    pub persona_id: Uuid,
    /// What it is for, e.g. `ci-pipeline`.
    pub name: String,
    /// What it may do (within the persona's scopes).
    pub scopes: Scopes,
    /// `tk_{id}_` and the first characters of the secret, to recognise it.
    pub prefix: String,
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// When it stops working; none: no expiry (flagged).
    pub expires_at: Option<DateTime<Utc>>,
    /// Last rotation.
    pub rotated_at: Option<DateTime<Utc>>,
    /// Until when the secret before the last rotation still works.
    pub previous_valid_until: Option<DateTime<Utc>>,
    /// Revoke time.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last use (coalesced: exact to about a minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The state of a key at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Works.
    Active,
    /// Past its `expires_at`.
    Expired,
    /// Revoked.
    Revoked,
}

impl KeyState {
    /// The snake_case name (the `state` field and filter).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Expired => "expired",
            KeyState::Revoked => "revoked",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Result<KeyState, String> {
        match s {
            "active" => Ok(KeyState::Active),
            "expired" => Ok(KeyState::Expired),
            "revoked" => Ok(KeyState::Revoked),
            _ => Err(format!(
                "state '{s}' is invalid: use active, expired or revoked"
            )),
        }
    }
}

impl ApiKey {
    /// Its state at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> KeyState {
        if self.revoked_at.is_some() {
            KeyState::Revoked
        } else if self.expires_at.is_some_and(|e| now >= e) {
            KeyState::Expired
        } else {
            KeyState::Active
        }
    }
}

/// The stored key: versioned. Add a version at the end; never reorder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ApiKeyRecord {
    /// Version 1.
    V1(ApiKeyV1),
}

/// Version 1 of the stored key; instants in microseconds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ApiKeyV1 {
    pub persona_id: [u8; 16],
    pub name: String,
    /// Scope codes ([`Scope::code`]).
    pub scopes: Vec<u8>,
    /// SHA-256 of the current secret.
    pub secret_hash: [u8; 32],
    /// The first characters of the current secret.
    pub secret_hint: String,
    /// SHA-256 of the secret before the last rotation, while its grace runs.
    pub previous_hash: Option<[u8; 32]>,
    pub previous_valid_until: Option<i64>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub rotated_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl ApiKeyV1 {
    /// The listed view.
    pub fn view(&self, tenant_id: Uuid, id: Uuid) -> ApiKey {
        ApiKey {
            id,
            tenant_id,
            persona_id: Uuid::from_bytes(self.persona_id),
            name: self.name.clone(),
            scopes: scopes_of_codes(&self.scopes),
            prefix: format!("{KEY_PREFIX}{}_{}…", id.simple(), self.secret_hint),
            created_at: from_micros(self.created_at),
            expires_at: self.expires_at.map(from_micros),
            rotated_at: self.rotated_at.map(from_micros),
            previous_valid_until: self.previous_valid_until.map(from_micros),
            revoked_at: self.revoked_at.map(from_micros),
            last_used_at: self.last_used_at.map(from_micros),
        }
    }

    /// Does `secret` open this key at `now`: the current secret, or the previous one inside its
    /// grace window? Both hashes are compared in constant time, whichever matches.
    pub fn opens(&self, secret: &str, now: DateTime<Utc>) -> bool {
        let h: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let current: bool = h.ct_eq(&self.secret_hash).into();
        let previous: bool = match (self.previous_hash, self.previous_valid_until) {
            (Some(p), Some(until)) => {
                let m: bool = h.ct_eq(&p).into();
                m && now < from_micros(until)
            }
            _ => false,
        };
        current | previous
    }
}

/// The scopes of stored codes (unknown codes grant nothing).
pub fn scopes_of_codes(codes: &[u8]) -> Scopes {
    Scopes::of(codes.iter().filter_map(|c| Scope::from_code(*c)))
}

/// A key split into its id and secret, if it has the shape of one.
pub fn split_key(key: &str) -> Option<(Uuid, &str)> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 32 || secret.len() < 32 || secret.len() > 64 {
        return None;
    }
    Some((Uuid::try_parse(id).ok()?, secret))
}

/// SHA-256 of a secret.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Parses a key's name: 1–80 printable characters.
pub fn parse_name(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > 80 || t.chars().any(char::is_control) {
        Err("a key needs a name of 1-80 characters saying what it is for (e.g. ci-pipeline)".into())
    } else {
        Ok(t.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_splits_into_id_and_secret() {
        let id = Uuid::now_v7();
        let key = format!("tk_{}_{}", id.simple(), "a".repeat(43));
        assert_eq!(split_key(&key), Some((id, "a".repeat(43).as_str())));
        assert_eq!(split_key("tk_short_x"), None);
        assert_eq!(split_key("tnt_abc"), None);
    }

    #[test]
    fn the_previous_secret_opens_only_inside_its_grace() {
        let now = Utc::now();
        let rec = ApiKeyV1 {
            persona_id: [0; 16],
            name: "k".into(),
            scopes: vec![],
            secret_hash: hash_secret("new"),
            secret_hint: "new".into(),
            previous_hash: Some(hash_secret("old")),
            previous_valid_until: Some(crate::clock::to_micros(now + ROTATION_GRACE)),
            created_at: 0,
            expires_at: None,
            rotated_at: None,
            revoked_at: None,
            last_used_at: None,
        };
        assert!(rec.opens("new", now));
        assert!(rec.opens("old", now + Duration::seconds(599)));
        assert!(!rec.opens("old", now + Duration::seconds(600)));
        assert!(!rec.opens("other", now));
    }
}
