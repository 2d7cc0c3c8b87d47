//! Usage events and their aggregates (PRODUCT.md 13): the event as posted and parsed, billing
//! periods, the stored event (kept for deduplication and pruned), and the aggregates maintained
//! in the same write as each accepted event, so that no read ever scans events.
//!
//! Vocabulary from OpenMeter and Lago: an **event** (`event_id`, Lago's `transaction_id`, is the
//! idempotency key, unique per tenant) carries a `quantity` of one **SKU** (a billable metric),
//! attributed to an API key and a persona (and so to the persona's business unit).
//!
//! Billing periods are calendar months in UTC, named `yyyymm` (`202611`). An event may still be
//! posted for the previous period during the first [`LATE_GRACE_DAYS`] days of a period (late
//! arrivals); after that the previous period is **closed** (invoices will finalize it).

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::plans::model::parse_code;
use crate::store::Table;
use crate::store::keys::Key;

/// The deduplication set: `tenant, event_id -> ()` (pruned with [`USAGE_EVENT_LOG`]).
pub const USAGE_EVENT_IDS: Table = Table::new("usage_event_ids");
/// Raw events, one row per request, period and tenant:
/// `period, tenant, received (µs), n -> EventLogRecord` (pruned after the period closes).
/// One row per request instead of one per event: ingest writes one small key per event, and
/// pruning finds a closed period's ids in its rows.
pub const USAGE_EVENT_LOG: Table = Table::new("usage_event_log");
/// Raw events as written before the event log (`tenant, event_id -> the event`, never decoded):
/// still a deduplication set while it holds rows, never written again, emptied by pruning.
pub const USAGE_EVENTS: Table = Table::new("usage_events");
/// The legacy [`USAGE_EVENTS`] by period, for pruning: `period, tenant, event_id -> ()`.
pub const USAGE_EVENT_PERIODS: Table = Table::new("usage_event_periods");
/// Totals: `tenant, period, sku -> u64`.
pub const USAGE_TOTALS: Table = Table::new("usage_totals");
/// By business unit: `tenant, period, sku, bu -> u64` (events without a BU are not in it).
pub const USAGE_BY_BU: Table = Table::new("usage_by_bu");
/// By source: `tenant, period, sku, kind (0 API key, 1 persona), id -> u64`.
pub const USAGE_BY_SOURCE: Table = Table::new("usage_by_source");
/// Daily rollups: `tenant, day (yyyymmdd), sku -> u64`.
pub const USAGE_DAILY: Table = Table::new("usage_daily");
/// Soft caps crossed: `period, tenant, sku -> CrossingRecord` (one per SKU per period).
pub const USAGE_CAP_CROSSINGS: Table = Table::new("usage_cap_crossings");

/// Most events in one request.
pub const MAX_BATCH: usize = 1000;
/// Longest `event_id`.
pub const MAX_EVENT_ID: usize = 128;
/// Largest quantity of one event.
pub const MAX_EVENT_QUANTITY: u64 = 1_000_000_000_000;
/// Longest `properties`, as compact JSON.
pub const MAX_PROPERTIES: usize = 1024;
/// Days into a period during which the previous one still takes late events.
pub const LATE_GRACE_DAYS: i64 = 3;
/// How far ahead of the server's clock an event's `ts` may be (clock skew).
pub const MAX_SKEW_SECS: i64 = 300;
/// Source kinds in `USAGE_BY_SOURCE` keys.
///
/// REMEMBER: these numbers are the file format: never renumber.
pub const SOURCE_API_KEY: u8 = 0;
/// See [`SOURCE_API_KEY`].
pub const SOURCE_PERSONA: u8 = 1;

/// The period (`yyyymm`) of an instant.
pub fn period_of(t: DateTime<Utc>) -> u32 {
    let y = u32::try_from(t.year()).unwrap_or(0);
    y * 100 + t.month()
}

/// The period before `p`.
pub fn previous(p: u32) -> u32 {
    if p % 100 == 1 {
        (p / 100 - 1) * 100 + 12
    } else {
        p - 1
    }
}

/// The first instant of period `p`.
pub fn period_start(p: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(i32::try_from(p / 100).unwrap_or(1970), p % 100, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// The first instant after period `p`.
pub fn period_end(p: u32) -> DateTime<Utc> {
    let next = if p % 100 == 12 {
        (p / 100 + 1) * 100 + 1
    } else {
        p + 1
    };
    period_start(next)
}

/// The day (`yyyymmdd`) of an instant.
pub fn day_of(t: DateTime<Utc>) -> u32 {
    period_of(t) * 100 + t.day()
}

/// Is period `p` still open for events at `now`: the current one, or the previous one during
/// the late grace?
pub fn is_open(p: u32, now: DateTime<Utc>) -> bool {
    let current = period_of(now);
    p == current
        || (p == previous(current) && now < period_start(current) + Duration::days(LATE_GRACE_DAYS))
}

/// Why an event was rejected (its wire name is the `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Malformed: a bad `event_id`, SKU code, quantity, time or properties.
    InvalidEvent,
    /// No such tenant (or another tenant's, for a tenant credential).
    UnknownTenant,
    /// The tenant is offboarding or offboarded.
    OffboardedTenant,
    /// The tenant is pinned to no catalog version.
    NoCatalog,
    /// The pinned version does not rate the SKU.
    UnknownSku,
    /// The event's period is closed.
    ClosedPeriod,
    /// The event's time is ahead of the server's clock.
    FutureTimestamp,
    /// The `api_key_id` or `persona_id` is not the tenant's.
    UnknownAttribution,
}

impl Reason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidEvent => "invalid_event",
            Reason::UnknownTenant => "unknown_tenant",
            Reason::OffboardedTenant => "offboarded_tenant",
            Reason::NoCatalog => "no_catalog",
            Reason::UnknownSku => "unknown_sku",
            Reason::ClosedPeriod => "closed_period",
            Reason::FutureTimestamp => "future_timestamp",
            Reason::UnknownAttribution => "unknown_attribution",
        }
    }
}

/// An event as posted, unchecked.
#[derive(Clone, Debug, Default)]
pub struct EventDraft {
    /// Idempotency key, unique per tenant.
    pub event_id: String,
    /// Tenant id.
    pub tenant_id: String,
    /// SKU code.
    pub sku: String,
    /// Units, 1–10^12.
    pub quantity: i64,
    /// RFC 3339.
    pub ts: String,
    /// The API key that drove it.
    pub api_key_id: Option<String>,
    /// The persona that drove it.
    pub persona_id: Option<String>,
    /// Free-form JSON object, compact, up to [`MAX_PROPERTIES`] bytes.
    pub properties: Option<String>,
}

/// A checked event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Idempotency key.
    pub event_id: String,
    /// Tenant.
    pub tenant_id: Uuid,
    /// SKU.
    pub sku: String,
    /// Units.
    pub quantity: u64,
    /// When it happened.
    pub ts: DateTime<Utc>,
    /// Attribution.
    pub api_key_id: Option<Uuid>,
    /// Attribution.
    pub persona_id: Option<Uuid>,
    /// Properties (JSON text).
    pub properties: Option<String>,
}

impl EventDraft {
    /// Checks one event's shape; a bad one is rejected alone (`invalid_event`, or
    /// `unknown_tenant` for a tenant id that is not a UUID).
    pub fn parse(self) -> std::result::Result<Event, (Reason, String)> {
        let bad = |m: String| (Reason::InvalidEvent, m);
        let id = self.event_id.trim();
        if id.is_empty() || id.len() > MAX_EVENT_ID || id.chars().any(char::is_control) {
            return Err(bad(format!(
                "event_id must be 1-{MAX_EVENT_ID} printable characters"
            )));
        }
        let tenant_id = crate::ids::parse_uuid(&self.tenant_id).ok_or_else(|| {
            (
                Reason::UnknownTenant,
                format!("tenant '{}' not found", self.tenant_id),
            )
        })?;
        let sku = parse_code("sku", &self.sku).map_err(bad)?;
        let quantity = u64::try_from(self.quantity)
            .ok()
            .filter(|q| (1..=MAX_EVENT_QUANTITY).contains(q))
            .ok_or_else(|| bad(format!("quantity must be 1-{MAX_EVENT_QUANTITY}")))?;
        let ts = DateTime::parse_from_rfc3339(&self.ts)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| bad(format!("ts '{}' is not an RFC 3339 time", self.ts)))?;
        let uuid =
            |f: &str, s: Option<String>| -> std::result::Result<Option<Uuid>, (Reason, String)> {
                match s {
                    None => Ok(None),
                    Some(s) => crate::ids::parse_uuid(&s)
                        .map(Some)
                        .ok_or_else(|| bad(format!("{f} '{s}' is not an id"))),
                }
            };
        let api_key_id = uuid("api_key_id", self.api_key_id)?;
        let persona_id = uuid("persona_id", self.persona_id)?;
        if self
            .properties
            .as_ref()
            .is_some_and(|p| p.len() > MAX_PROPERTIES)
        {
            return Err(bad(format!(
                "properties are over {MAX_PROPERTIES} bytes of JSON"
            )));
        }
        Ok(Event {
            event_id: id.to_string(),
            tenant_id,
            sku,
            quantity,
            ts,
            api_key_id,
            persona_id,
            properties: self.properties,
        })
    }
}

/// One request's accepted events of one tenant and period, in [`USAGE_EVENT_LOG`]. Its variant
/// order is the file format.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum EventLogRecord {
    /// Version 1.
    V1 {
        /// The events, in the request's order.
        events: Vec<LoggedEvent>,
    },
}

/// An accepted event as kept in the log (its tenant, period and time of receipt are the
/// row's key).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoggedEvent {
    /// Idempotency key.
    pub event_id: String,
    /// SKU.
    pub sku: String,
    /// Units.
    pub quantity: u64,
    /// When it happened, µs.
    pub ts: i64,
    /// Attribution.
    pub api_key: Option<Uuid>,
    /// Attribution.
    pub persona: Option<Uuid>,
    /// The persona's business unit at ingest.
    pub bu: Option<Uuid>,
    /// JSON text.
    pub properties: Option<String>,
}

/// Key of a log row.
pub fn log_key(period: u32, tenant: &Uuid, received: i64, n: u64) -> Vec<u8> {
    Key::new()
        .u64(u64::from(period))
        .uuid(tenant)
        .i64(received)
        .u64(n)
        .into_bytes()
}

/// A soft cap crossed in a period. Its variant order is the file format.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum CrossingRecord {
    /// Version 1.
    V1 {
        /// Units used when it was crossed.
        used: u64,
        /// The cap.
        cap: u64,
        /// µs.
        at: i64,
    },
}

/// Key of an event.
pub fn event_key(tenant: &Uuid, event_id: &str) -> Vec<u8> {
    Key::new().uuid(tenant).str(event_id).into_bytes()
}

/// Key of a total.
pub fn total_key(tenant: &Uuid, period: u32, sku: &str) -> Vec<u8> {
    Key::new()
        .uuid(tenant)
        .u64(u64::from(period))
        .str(sku)
        .into_bytes()
}

/// Prefix of a tenant's totals of a period.
pub fn period_prefix(tenant: &Uuid, period: u32) -> Vec<u8> {
    Key::new().uuid(tenant).u64(u64::from(period)).into_bytes()
}

/// Key of a crossing.
pub fn crossing_key(period: u32, tenant: &Uuid, sku: &str) -> Vec<u8> {
    Key::new()
        .u64(u64::from(period))
        .uuid(tenant)
        .str(sku)
        .into_bytes()
}

/// Reads a `u64` counter value.
pub fn counter(bytes: Option<Vec<u8>>) -> u64 {
    bytes
        .and_then(|b| b.try_into().ok().map(u64::from_be_bytes))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn disk_format_codes_are_pinned() {
        assert_eq!(SOURCE_API_KEY, 0);
        assert_eq!(SOURCE_PERSONA, 1);
    }

    #[test]
    fn periods_are_calendar_months_and_the_previous_one_closes_after_the_grace() {
        assert_eq!(period_of(at("2026-11-21T10:00:00Z")), 202611);
        assert_eq!(previous(202601), 202512);
        assert_eq!(period_end(202612), at("2027-01-01T00:00:00Z"));
        let now = at("2026-12-02T00:00:00Z");
        assert!(is_open(202612, now));
        assert!(is_open(202611, now));
        assert!(!is_open(202610, now));
        assert!(!is_open(202611, at("2026-12-04T00:00:00Z")));
        assert_eq!(day_of(now), 20261202);
    }

    #[test]
    fn a_malformed_event_is_rejected_with_a_reason() {
        let ok = EventDraft {
            event_id: "e1".into(),
            tenant_id: uuid::Uuid::now_v7().to_string(),
            sku: "api_call".into(),
            quantity: 1,
            ts: "2026-11-21T10:00:00Z".into(),
            ..EventDraft::default()
        };
        assert!(ok.clone().parse().is_ok());
        for bad in [
            EventDraft {
                quantity: 0,
                ..ok.clone()
            },
            EventDraft {
                event_id: "".into(),
                ..ok.clone()
            },
            EventDraft {
                sku: "Bad SKU".into(),
                ..ok.clone()
            },
            EventDraft {
                ts: "yesterday".into(),
                ..ok.clone()
            },
        ] {
            assert_eq!(bad.parse().unwrap_err().0, Reason::InvalidEvent);
        }
        assert_eq!(
            EventDraft {
                tenant_id: "acme".into(),
                ..ok
            }
            .parse()
            .unwrap_err()
            .0,
            Reason::UnknownTenant
        );
    }
}
