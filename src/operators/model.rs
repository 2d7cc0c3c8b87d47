//! Operator accounts, operator tokens and console sessions: types, stored records, parsing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::{from_micros, to_micros};
use crate::rbac::Role;
use crate::store::Table;

/// 409: the operator is disabled.
pub const OPERATOR_DISABLED: &str = "operator_disabled";

/// 409: the change would leave no enabled super_admin.
pub const LAST_SUPER_ADMIN: &str = "last_super_admin";

/// 409: the username is another operator's.
pub const USERNAME_TAKEN: &str = "username_taken";

/// Operators: `id -> OperatorRecord`.
pub const OPERATORS: Table = Table::new("operators");
/// Usernames: `username -> id`.
pub const USERNAMES: Table = Table::new("operator_usernames");
/// Tokens: `sha256(secret) -> TokenRecord`.
pub const TOKENS: Table = Table::new("operator_tokens");
/// Tokens by operator: `(operator id, token id) -> sha256(secret)`.
pub const TOKENS_BY_OPERATOR: Table = Table::new("operator_tokens_by_operator");
/// Sessions: `sha256(cookie) -> SessionRecord`.
pub const SESSIONS: Table = Table::new("operator_sessions");
/// Sessions by operator: `(operator id, session key) -> ()`.
pub const SESSIONS_BY_OPERATOR: Table = Table::new("operator_sessions_by_operator");
/// Failed sign-ins: `(day, username) -> u64`.
pub const SIGNIN_FAILURES: Table = Table::new("operator_signin_failures");
/// The row of [`SIGNIN_FAILURES`] that failures for usernames no operator has are counted
/// under (no username can hold parentheses).
pub const UNKNOWN_USERNAME: &str = "(unknown)";
/// Days of [`SIGNIN_FAILURES`] kept; older rows are pruned (after their day's ledger entry).
pub const SIGNIN_FAILURE_DAYS: i64 = 30;

/// Prefix of operator tokens, so they can be recognised (and found by secret scanners).
pub const TOKEN_PREFIX: &str = "tnt_";

/// A platform operator (PRODUCT.md D15; HQ PRD §2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Operator {
    /// UUIDv7.
    pub id: Uuid,
    /// Sign-in name: 3–32 characters of `a-z 0-9 . _ -`.
    pub username: String,
    /// Human name.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// Disabled operators cannot sign in, and their sessions and tokens stop working at once.
    pub disabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Last successful sign-in.
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

/// The stored operator.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum OperatorRecord {
    /// Version 1.
    V1(OperatorV1),
}

/// Version 1 of the stored operator; instants in microseconds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct OperatorV1 {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_sign_in_at: Option<i64>,
}

impl OperatorV1 {
    /// The domain view of this record.
    pub fn view(&self, id: Uuid) -> Operator {
        Operator {
            id,
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            role: self.role,
            disabled: self.disabled,
            created_at: from_micros(self.created_at),
            updated_at: from_micros(self.updated_at),
            last_sign_in_at: self.last_sign_in_at.map(from_micros),
        }
    }
}

/// An operator token as listed (never the secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    /// Token id.
    pub id: Uuid,
    /// The operator it acts as.
    pub operator_id: Uuid,
    /// What it is for, e.g. `ci-pipeline`.
    pub name: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// The first characters of the token, to recognise it (`tnt_AbCd…`).
    pub prefix: String,
}

/// The stored token, keyed by the SHA-256 of the secret.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum TokenRecord {
    /// Version 1.
    V1 {
        /// Token id.
        id: [u8; 16],
        /// Operator.
        operator_id: [u8; 16],
        /// Name.
        name: String,
        /// Microseconds.
        created_at: i64,
        /// First characters of the secret.
        prefix: String,
    },
}

impl TokenRecord {
    /// The listed view.
    pub fn view(&self) -> TokenInfo {
        let TokenRecord::V1 {
            id,
            operator_id,
            name,
            created_at,
            prefix,
        } = self;
        TokenInfo {
            id: Uuid::from_bytes(*id),
            operator_id: Uuid::from_bytes(*operator_id),
            name: name.clone(),
            created_at: from_micros(*created_at),
            prefix: prefix.clone(),
        }
    }
}

/// A console session, keyed by the SHA-256 of the cookie value.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SessionRecord {
    /// Version 1.
    V1 {
        /// Operator.
        operator_id: [u8; 16],
        /// Microseconds.
        created_at: i64,
        /// Last request, microseconds (refreshed at most once a minute).
        last_seen: i64,
        /// The session's CSRF token, sent in every form.
        csrf: [u8; 32],
    },
}

/// A live session, as the request sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the cookie value (the store key).
    pub key: [u8; 32],
    /// The operator.
    pub operator_id: Uuid,
    /// CSRF token (base64url), compared in constant time with each form's.
    pub csrf: String,
    /// Start.
    pub created_at: DateTime<Utc>,
    /// Last request.
    pub last_seen: DateTime<Utc>,
}

/// Parses a username: 3–32 characters of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn parse_username(s: &str) -> Result<String, String> {
    let t = s.trim().to_ascii_lowercase();
    let ok = (3..=32).contains(&t.len())
        && t.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
        && t.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(t)
    } else {
        Err(format!(
            "username '{s}' is invalid: use 3-32 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
        ))
    }
}

/// Shortest password accepted (NIST SP 800-63B allows 8; operators hold platform-wide power).
pub const PASSWORD_MIN: usize = 12;

/// Checks a new password: 12–256 characters, not the username.
pub fn check_password(password: &str, username: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < PASSWORD_MIN {
        return Err(format!(
            "the password needs at least {PASSWORD_MIN} characters"
        ));
    }
    if n > 256 {
        return Err("the password is longer than 256 characters".into());
    }
    if password.eq_ignore_ascii_case(username) {
        return Err("the password may not be the username".into());
    }
    Ok(())
}

/// Microseconds of `t`.
pub fn micros(t: DateTime<Utc>) -> i64 {
    to_micros(t)
}

/// Console session lifetimes (`session_idle_secs`, `session_max_secs` in config).
#[derive(Clone, Copy, Debug)]
pub struct SessionLimits {
    /// Ends after this long without a request.
    pub idle: chrono::Duration,
    /// Ends this long after sign-in, whatever the activity.
    pub absolute: chrono::Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_and_checked() {
        assert_eq!(parse_username(" Alice.Ops ").unwrap(), "alice.ops");
        for bad in [
            "ab",
            "-alice",
            "alice smith",
            "alice@example",
            &"a".repeat(33),
        ] {
            assert!(parse_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn short_or_username_passwords_are_refused() {
        assert!(check_password("short", "alice").is_err());
        assert!(check_password("alicealicealice", "alicealicealice").is_err());
        assert!(check_password("correct horse battery", "alice").is_ok());
    }
}
