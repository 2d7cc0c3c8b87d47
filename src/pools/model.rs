//! Pool domain types and their stored record (PRODUCT.md B8, operator guide §2).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::{from_micros, to_micros};
use crate::store::Table;
use crate::store::keys::{Key, KeyReader};

/// 503: no active pool can serve the tenant.
pub const NO_ACTIVE_POOL: &str = "no_active_pool";

/// Pools: `(kind, number) -> PoolRecord`.
pub const POOLS: Table = Table::new("pools");

/// Admin pools serve a tenant's admin plane; app pools serve one module (or, dedicated, every
/// module of one tenant).
///
/// REMEMBER: these numbers are the file format: the pool record stores the kind by variant
/// position and [`pool_key`] by this number. Never reorder or renumber; add at the end
/// (`disk_format_codes_are_pinned` checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum PoolKind {
    /// Numbered admin pool (`admin-N`).
    Admin = 0,
    /// Numbered app pool (`app-N`).
    App = 1,
}

impl PoolKind {
    /// Every kind.
    pub const ALL: [PoolKind; 2] = [PoolKind::Admin, PoolKind::App];
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolKind::Admin => "admin",
            PoolKind::App => "app",
        }
    }
}

/// Pool status; only `active` pools take new traffic.
///
/// REMEMBER: the variant order is the file format (stored in the pool record): never reorder;
/// add at the end (`disk_format_codes_are_pinned` checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum PoolStatus {
    /// Serving.
    Active = 0,
    /// Impaired (e.g. a lagging replica): existing traffic finishes, new traffic goes elsewhere.
    Degraded = 1,
    /// Being emptied for recycling: no new traffic.
    Drain = 2,
}

impl PoolStatus {
    /// Every status.
    pub const ALL: [PoolStatus; 3] = [PoolStatus::Active, PoolStatus::Degraded, PoolStatus::Drain];
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolStatus::Active => "active",
            PoolStatus::Degraded => "degraded",
            PoolStatus::Drain => "drain",
        }
    }
    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Result<PoolStatus, String> {
        match s {
            "active" => Ok(PoolStatus::Active),
            "degraded" => Ok(PoolStatus::Degraded),
            "drain" => Ok(PoolStatus::Drain),
            _ => Err(format!(
                "status '{s}' is invalid: use active, degraded or drain"
            )),
        }
    }
}

/// A pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    /// `admin-N` or `app-N`.
    pub id: String,
    /// Admin or app.
    pub kind: PoolKind,
    /// N.
    pub number: u32,
    /// The module a shared app pool serves; null for admin pools and dedicated app pools.
    pub module: Option<String>,
    /// The tenant a dedicated pool belongs to (`P` app pools, `G` admin and app pools).
    pub dedicated_to: Option<Uuid>,
    /// Current status.
    pub status: PoolStatus,
    /// Reason given for the current status.
    pub status_reason: Option<String>,
    /// When the status was set.
    pub status_since: DateTime<Utc>,
    /// Tenants assigned (a maintained counter).
    pub tenant_count: u64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// The stored pool: versioned. Add a version at the end; never reorder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PoolRecord {
    /// Version 1.
    V1(PoolV1),
}

/// Version 1 of the stored pool; instants in microseconds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct PoolV1 {
    pub kind: PoolKind,
    pub number: u32,
    pub module: Option<String>,
    pub dedicated_to: Option<[u8; 16]>,
    pub status: PoolStatus,
    pub status_reason: Option<String>,
    pub status_since: i64,
    pub tenant_count: u64,
    pub created_at: i64,
}

impl From<PoolRecord> for Pool {
    fn from(r: PoolRecord) -> Pool {
        let PoolRecord::V1(v) = r;
        Pool {
            id: pool_id(v.kind, v.number),
            kind: v.kind,
            number: v.number,
            module: v.module,
            dedicated_to: v.dedicated_to.map(Uuid::from_bytes),
            status: v.status,
            status_reason: v.status_reason,
            status_since: from_micros(v.status_since),
            tenant_count: v.tenant_count,
            created_at: from_micros(v.created_at),
        }
    }
}

impl From<&Pool> for PoolRecord {
    fn from(p: &Pool) -> PoolRecord {
        PoolRecord::V1(PoolV1 {
            kind: p.kind,
            number: p.number,
            module: p.module.clone(),
            dedicated_to: p.dedicated_to.map(Uuid::into_bytes),
            status: p.status,
            status_reason: p.status_reason.clone(),
            status_since: to_micros(p.status_since),
            tenant_count: p.tenant_count,
            created_at: to_micros(p.created_at),
        })
    }
}

/// `admin-3`, `app-7`.
pub fn pool_id(kind: PoolKind, number: u32) -> String {
    format!("{}-{number}", kind.as_str())
}

/// Parses `admin-N` / `app-N` into `(kind, N)`.
pub fn parse_pool_id(s: &str) -> Option<(PoolKind, u32)> {
    let (prefix, n) = s.rsplit_once('-')?;
    let kind = match prefix {
        "admin" => PoolKind::Admin,
        "app" => PoolKind::App,
        _ => return None,
    };
    let number: u32 = n.parse().ok()?;
    // `app-07` is not `app-7`: refuse leading zeros so every pool has one spelling.
    (number > 0 && number.to_string() == n).then_some((kind, number))
}

/// Store key of a pool: kind byte, then number big-endian (pools list in kind, number order).
pub fn pool_key(kind: PoolKind, number: u32) -> Vec<u8> {
    Key::new()
        .u8(kind as u8)
        .u64(u64::from(number))
        .into_bytes()
}

/// The inverse of [`pool_key`].
pub fn from_pool_key(k: &[u8]) -> Option<(PoolKind, u32)> {
    let mut r = KeyReader::new(k);
    let code = r.u8()?;
    let kind = PoolKind::ALL.into_iter().find(|k| *k as u8 == code)?;
    Some((kind, u32::try_from(r.u64()?).ok()?))
}

/// Which pools serve a tenant for a module right now (`GET /api/routes/{tenant_id}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The tenant.
    pub tenant_id: uuid::Uuid,
    /// The module asked for.
    pub module: String,
    /// The active admin pool to use.
    pub admin_pool: String,
    /// The active app pool to use.
    pub app_pool: String,
    /// True when an assigned pool is not active and new traffic goes to another shared pool.
    pub rerouted: bool,
    /// The tenant's lifecycle state (a gateway refuses traffic for suspended tenants).
    pub tenant_state: crate::tenants::model::State,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_format_codes_are_pinned() {
        for (k, code) in [(PoolKind::Admin, 0u8), (PoolKind::App, 1)] {
            assert_eq!(pool_key(k, 1)[0], code, "{k:?}");
            assert_eq!(crate::store::codec::encode(&k).unwrap(), [code], "{k:?}");
        }
        for (s, code) in [
            (PoolStatus::Active, 0u8),
            (PoolStatus::Degraded, 1),
            (PoolStatus::Drain, 2),
        ] {
            assert_eq!(crate::store::codec::encode(&s).unwrap(), [code], "{s:?}");
        }
    }

    #[test]
    fn pool_ids_round_trip() {
        assert_eq!(parse_pool_id("admin-3"), Some((PoolKind::Admin, 3)));
        assert_eq!(parse_pool_id("app-12"), Some((PoolKind::App, 12)));
        for bad in ["admin-0", "pool-1", "app-", "app-x", "admin"] {
            assert_eq!(parse_pool_id(bad), None, "{bad}");
        }
        assert_eq!(
            from_pool_key(&pool_key(PoolKind::App, 9)),
            Some((PoolKind::App, 9))
        );
    }
}
