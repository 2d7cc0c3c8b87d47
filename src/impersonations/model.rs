//! Visits ("Visit tenant", tenant-management F21.05.05; PRODUCT.md A6): an operator opens a
//! tenant's console read-only for a bounded time, and may elevate it to write access with a
//! reason, for at most an hour. Types, stored records, tables, limits.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::from_micros;
use crate::rbac::{Role, Visit};
use crate::store::Table;

/// Visits: `(tenant, visit id) -> ImpersonationRecord`.
pub const IMPERSONATIONS: Table = Table::new("impersonations");
/// Every visit by time: `visit id (UUIDv7) -> tenant id`, for the platform's recent list.
pub const BY_TIME: Table = Table::new("impersonations_by_time");
/// Active visits: `(operator, tenant) -> visit id`; at most one per operator and tenant.
pub const ACTIVE: Table = Table::new("impersonations_active");

/// How long a visit lasts (read-only unless elevated), in minutes.
pub const VISIT_MINUTES: i64 = 60;
/// Default elevation, in minutes (issue 9: "default 15 min").
pub const ELEVATE_DEFAULT_MINUTES: i64 = 15;
/// Longest elevation, in minutes ("at most 60").
pub const ELEVATE_MAX_MINUTES: i64 = 60;

/// 409: the visit already ended.
pub const VISIT_ENDED: &str = "visit_ended";

/// Why a visit ended.
///
/// REMEMBER: the variant order is the file format: never reorder; add at the end
/// (`disk_format_codes_are_pinned` checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum EndCause {
    /// The operator ended it.
    Operator = 0,
    /// Its time ran out (the `end_expired_visits` job).
    Expired = 1,
}

impl EndCause {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            EndCause::Operator => "operator",
            EndCause::Expired => "expired",
        }
    }
}

/// A visit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Impersonation {
    /// UUIDv7.
    pub id: Uuid,
    /// The tenant visited.
    pub tenant_id: Uuid,
    /// The visiting operator.
    pub operator_id: Uuid,
    /// Its username.
    pub operator: String,
    /// Its role when the visit started.
    pub role: Role,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// When it ends by itself.
    pub expires_at: DateTime<Utc>,
    /// Until when writes are allowed, if it was elevated.
    pub elevated_until: Option<DateTime<Utc>>,
    /// The reason of the last elevation.
    pub reason: Option<String>,
    /// How many times it was elevated.
    pub elevations: u32,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Why.
    pub end_cause: Option<EndCause>,
}

impl Impersonation {
    /// Is it going on at `now`?
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.ended_at.is_none() && now < self.expires_at
    }

    /// The visit as the permission check sees it.
    pub fn visit(&self) -> Visit {
        Visit {
            id: self.id,
            tenant_id: self.tenant_id,
            expires_at: self.expires_at,
            elevated_until: self.elevated_until,
        }
    }

    /// `active`, `elevated` or `ended` at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> &'static str {
        if !self.is_active(now) {
            "ended"
        } else if self.elevated_until.is_some_and(|u| now < u) {
            "elevated"
        } else {
            "read_only"
        }
    }
}

/// The stored visit: versioned. Add a version at the end; never reorder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ImpersonationRecord {
    /// Version 1.
    V1(ImpersonationV1),
}

/// Version 1; instants in microseconds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ImpersonationV1 {
    pub operator_id: [u8; 16],
    pub operator: String,
    pub role: Role,
    pub started_at: i64,
    pub expires_at: i64,
    pub elevated_until: Option<i64>,
    pub reason: Option<String>,
    pub elevations: u32,
    pub ended_at: Option<i64>,
    pub end_cause: Option<EndCause>,
}

impl ImpersonationV1 {
    /// The domain view.
    pub fn view(&self, tenant_id: Uuid, id: Uuid) -> Impersonation {
        Impersonation {
            id,
            tenant_id,
            operator_id: Uuid::from_bytes(self.operator_id),
            operator: self.operator.clone(),
            role: self.role,
            started_at: from_micros(self.started_at),
            expires_at: from_micros(self.expires_at),
            elevated_until: self.elevated_until.map(from_micros),
            reason: self.reason.clone(),
            elevations: self.elevations,
            ended_at: self.ended_at.map(from_micros),
            end_cause: self.end_cause,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_format_codes_are_pinned() {
        for (c, code) in [(EndCause::Operator, 0u8), (EndCause::Expired, 1)] {
            assert_eq!(crate::store::codec::encode(&c).unwrap(), [code], "{c:?}");
        }
    }
}
