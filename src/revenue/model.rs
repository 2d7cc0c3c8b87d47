//! The revenue posture's domain (platform dashboard spec §3.4, HQ PRD §6): monthly
//! normalization of plan prices, MRR snapshots, entitlement exceptions and their reasons, and
//! operators' enforcement overrides, with their stored records and tables.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Result, Validator};
use crate::plans::model::Interval;
use crate::store::Table;

/// MRR snapshots: `period yyyymm (u32) -> SnapshotRecord`, one per month.
pub const MRR_SNAPSHOTS: Table = Table::new("revenue_mrr_snapshots");
/// Open entitlement exceptions: `tenant, reason (u8) -> ExceptionRecord`.
pub const EXCEPTIONS: Table = Table::new("revenue_exceptions");
/// The same exceptions by reason: `reason (u8), tenant -> ()` (the `reason` filter's index).
pub const EXCEPTIONS_BY_REASON: Table = Table::new("revenue_exceptions_by_reason");
/// Enforcement overrides set by operators: `tenant -> OverrideRecord`.
pub const OVERRIDES: Table = Table::new("revenue_enforcement_overrides");

/// Snapshots shown in the MRR trend.
pub const TREND_MONTHS: usize = 12;
/// Longest override reason, in characters.
pub const MAX_REASON: usize = 500;

/// Why a tenant is an entitlement exception (platform dashboard spec §3.4: "usage exceeds plan
/// limit or enforcement override exists").
///
/// REMEMBER: these numbers are the file format (keys of [`EXCEPTIONS`] and
/// [`EXCEPTIONS_BY_REASON`]): never renumber; add at the end (`disk_format_codes_are_pinned`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum Reason {
    /// More personas (not revoked) than the plan's `max_personas`.
    PersonasOverLimit = 0,
    /// More API keys (not revoked) than the plan's `max_api_keys`.
    ApiKeysOverLimit = 1,
    /// An operator set an enforcement override that has not expired.
    Override = 2,
}

impl Reason {
    /// Every reason, in key order.
    pub const ALL: [Reason; 3] = [
        Reason::PersonasOverLimit,
        Reason::ApiKeysOverLimit,
        Reason::Override,
    ];

    /// The snake_case name of the API and the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::PersonasOverLimit => "personas_over_limit",
            Reason::ApiKeysOverLimit => "api_keys_over_limit",
            Reason::Override => "override",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> std::result::Result<Reason, String> {
        Reason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "reason '{s}' is invalid: use personas_over_limit, api_keys_over_limit or override"
                )
            })
    }

    /// Its key byte (the file format; see the type's note).
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The reason of a key byte.
    pub fn from_code(b: u8) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.code() == b)
    }
}

/// A plan's recurring price normalized to one month, in minor units: a monthly price as is, a
/// yearly one divided by 12 and rounded half up (dashboard spec §3.4 "MRR"; prices are never
/// negative, `plans::model::PlanDraft::parse` checks).
pub fn monthly_minor(amount_minor: i64, interval: Interval) -> i64 {
    match interval {
        Interval::Month => amount_minor,
        Interval::Year => amount_minor.max(0).saturating_add(6) / 12,
    }
}

/// An amount in one currency, in minor units.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// ISO 4217, upper case.
    pub currency: String,
    /// Minor units.
    pub amount_minor: i64,
}

/// A stored MRR snapshot. Its variant order is the file format: add new versions at the end.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SnapshotRecord {
    /// Version 1.
    V1 {
        /// When it was taken, µs.
        at: i64,
        /// MRR by currency.
        mrr: Vec<Money>,
        /// Paying tenants then.
        paying_tenants: u64,
    },
}

/// A stored open exception. Its variant order is the file format.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ExceptionRecord {
    /// Version 1.
    V1 {
        /// When it opened, µs.
        opened_at: i64,
        /// The tenant's plan then.
        plan: Option<String>,
        /// The count that exceeds the limit (none for an override).
        used: Option<u64>,
        /// The plan's limit (none for an override).
        limit: Option<u64>,
        /// What the operator wrote (an override), or a sentence for the limits.
        detail: String,
    },
}

/// A stored enforcement override. Its variant order is the file format.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum OverrideRecord {
    /// Version 1.
    V1 {
        /// Why the operator set it.
        reason: String,
        /// When it stops applying, µs (none: until cleared).
        expires_at: Option<i64>,
        /// Who set it (actor id).
        set_by: String,
        /// When, µs.
        set_at: i64,
    },
}

/// An enforcement override as asked for, unchecked (`PUT /api/tenants/{id}/enforcement/override`).
#[derive(Clone, Debug, Default)]
pub struct OverrideDraft {
    /// 1–500 characters.
    pub reason: String,
    /// RFC 3339, in the future; absent: until cleared.
    pub expires_at: Option<String>,
}

/// A checked [`OverrideDraft`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverrideInput {
    /// Why.
    pub reason: String,
    /// Until when.
    pub expires_at: Option<DateTime<Utc>>,
}

impl OverrideDraft {
    /// Checks every field at `now`.
    ///
    /// Errors: 422 `validation_failed` naming `reason` (empty or over 500 characters) and
    /// `expires_at` (not RFC 3339, or not after `now`).
    pub fn parse(self, now: DateTime<Utc>) -> Result<OverrideInput> {
        let mut v = Validator::new();
        let reason = self.reason.trim().to_string();
        if reason.is_empty() || reason.chars().count() > MAX_REASON {
            v.add(
                "reason",
                format!("reason must be 1-{MAX_REASON} characters: say why the tenant is exempt"),
            );
        }
        let expires_at = match self.expires_at.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => match DateTime::parse_from_rfc3339(s) {
                Ok(t) if t.to_utc() > now => Some(t.to_utc()),
                Ok(_) => {
                    v.add(
                        "expires_at",
                        format!("expires_at '{s}' is not in the future: omit it for no expiry"),
                    );
                    None
                }
                Err(_) => {
                    v.add(
                        "expires_at",
                        format!(
                            "expires_at '{s}' is not an RFC 3339 time such as 2026-12-31T00:00:00Z"
                        ),
                    );
                    None
                }
            },
        };
        v.finish()?;
        Ok(OverrideInput { reason, expires_at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_format_codes_are_pinned() {
        assert_eq!(Reason::PersonasOverLimit as u8, 0);
        assert_eq!(Reason::ApiKeysOverLimit as u8, 1);
        assert_eq!(Reason::Override as u8, 2);
    }

    fn check(amount: i64, interval: Interval, expected: i64) {
        assert_eq!(
            monthly_minor(amount, interval),
            expected,
            "{amount} per {interval:?}"
        );
    }

    #[test]
    fn monthly_prices_are_kept_and_yearly_ones_are_divided_by_twelve_rounded_half_up() {
        check(4_900, Interval::Month, 4_900);
        check(0, Interval::Month, 0);
        check(0, Interval::Year, 0);
        check(12_000, Interval::Year, 1_000);
        check(1_000, Interval::Year, 83); // 83.33
        check(1_002, Interval::Year, 84); // 83.5 rounds up
        check(1_001, Interval::Year, 83); // 83.41
        check(11, Interval::Year, 1); // 0.92
        check(5, Interval::Year, 0); // 0.42
        check(6, Interval::Year, 1); // 0.5 rounds up
        check(
            crate::plans::model::MAX_AMOUNT,
            Interval::Year,
            83_333_333_333,
        );
    }

    #[test]
    fn reasons_round_trip_through_names_and_codes() {
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Ok(r));
            assert_eq!(Reason::from_code(r.code()), Some(r));
        }
        assert!(Reason::parse("overdue").is_err());
    }

    #[test]
    fn an_override_needs_a_reason_and_a_future_expiry() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let err = OverrideDraft {
            reason: "  ".into(),
            expires_at: Some("tomorrow".into()),
        }
        .parse(now)
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("reason") && err.contains("expires_at"),
            "{err}"
        );
        let past = OverrideDraft {
            reason: "pilot".into(),
            expires_at: Some("2020-01-01T00:00:00Z".into()),
        }
        .parse(now);
        assert!(past.is_err());
        let ok = OverrideDraft {
            reason: " pilot until the contract is signed ".into(),
            expires_at: None,
        }
        .parse(now)
        .unwrap();
        assert_eq!(ok.reason, "pilot until the contract is signed");
    }
}
