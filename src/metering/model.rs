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

/// The deduplication set: `event_id, tenant -> ()`, pruned with the raw events that hold the
/// ids, and removed with them when the tenant is shredded (its per-tenant log rows at once,
/// its events in shared receipt rows by the scrub).
///
/// Keyed by the id first, not the tenant (schema v7), so that the ids of one request, which
/// clients make in order (a batch number and a position, a sequence, UUIDv7 or ULID), are
/// neighbours in the B-tree: a batch of 100 events over 100 tenants dirtied 100 leaves with the
/// tenant first, and dirties one or two now. On `peers/ingest.sql`'s work the deduplication set
/// was about half of the pages each commit writes (issue 10, stop 32). Random ids (UUIDv4) land
/// at random either way. The tenant in the key keeps the same id of two tenants apart.
pub const USAGE_DEDUPE: Table = Table::new("usage_dedupe");
/// The deduplication set before schema v7 (`tenant, event_id -> ()`): the v6 to v7 migration
/// moves its keys into [`USAGE_DEDUPE`]; never written since.
pub const USAGE_EVENT_IDS: Table = Table::new("usage_event_ids");
/// Raw events by receipt, one row per request and period:
/// `period, received (µs), n -> ReceiptRecord` (pruned after the period closes).
///
/// Keyed by receipt, not by tenant, so that a request appends one row at the end of its period
/// instead of writing a row into each of its tenants' ranges. On the work of
/// `peers/ingest.sql` (100 events over 100 tenants per request), the per-tenant rows of
/// [`USAGE_EVENT_LOG`] dirtied one B-tree leaf per event: about 30% of the writer's time
/// (issue 10, stop 27). A shredded tenant's events are removed from these rows in bounded
/// writes after the shred ([`USAGE_EVENT_SCRUBS`]).
pub const USAGE_EVENT_RECEIPTS: Table = Table::new("usage_event_receipts");
/// Shredded tenants whose events are still in [`USAGE_EVENT_RECEIPTS`]:
/// `tenant -> ScrubRecord` (how far the scrub has come).
pub const USAGE_EVENT_SCRUBS: Table = Table::new("usage_event_scrubs");
/// Raw events as written before [`USAGE_EVENT_RECEIPTS`], one row per request, period and
/// tenant: `period, tenant, received (µs), n -> EventLogRecord`. Never written again; pruned
/// and shredded until empty.
pub const USAGE_EVENT_LOG: Table = Table::new("usage_event_log");
/// Raw events as written before the event log (`tenant, event_id -> the event`, never decoded):
/// still a deduplication set while it holds rows, never written again, emptied by pruning.
pub const USAGE_EVENTS: Table = Table::new("usage_events");
/// The legacy [`USAGE_EVENTS`] by period, for pruning: `period, tenant, event_id -> ()`.
pub const USAGE_EVENT_PERIODS: Table = Table::new("usage_event_periods");
/// Totals and their daily rollups: `tenant, period, sku -> ` a [`Total`] (its quantity, then
/// the quantity of each day of the period with usage, for charts).
///
/// The daily rollup lives in the total's row (schema v6) so that an event updates one row, not
/// two: on the work of `peers/ingest.sql` the separate `tenant, day, sku` rows of [`USAGE_DAILY`]
/// dirtied a second B-tree leaf per event, about a fifth of the writer's time (issue 10,
/// stop 27). A reader of the quantity alone takes the first 8 bytes ([`counter`]).
pub const USAGE_TOTALS: Table = Table::new("usage_totals");
/// By business unit: `tenant, period, sku, bu -> u64` (events without a BU are not in it).
pub const USAGE_BY_BU: Table = Table::new("usage_by_bu");
/// By source: `tenant, period, sku, kind (0 API key, 1 persona), id -> u64`.
pub const USAGE_BY_SOURCE: Table = Table::new("usage_by_source");
/// Daily rollups as written before schema v6: `tenant, day (yyyymmdd), sku -> u64`. The v5 to
/// v6 migration moves them into [`USAGE_TOTALS`]; never written since.
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

/// The date of day `day` of period `p` (`None` when the period has no such day).
pub fn date_of(p: u32, day: u8) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::from_ymd_opt(i32::try_from(p / 100).ok()?, p % 100, u32::from(day))
}

/// The number of days in period `p` (28 to 31).
pub fn days_in(p: u32) -> u32 {
    u32::try_from((period_end(p) - period_start(p)).num_days()).unwrap_or(0)
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

/// An accepted event as kept in the raw events (its tenant, period and time of receipt are
/// given by the row).
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

/// Key of a [`USAGE_EVENT_LOG`] row (the format before [`USAGE_EVENT_RECEIPTS`]).
pub fn log_key(period: u32, tenant: &Uuid, received: i64, n: u64) -> Vec<u8> {
    Key::new()
        .u64(u64::from(period))
        .uuid(tenant)
        .i64(received)
        .u64(n)
        .into_bytes()
}

/// One request's accepted events of one period, in [`USAGE_EVENT_RECEIPTS`], grouped by
/// tenant. Its variant order is the file format.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ReceiptRecord {
    /// Version 1.
    V1 {
        /// Each tenant's events, tenants in key order, events in the request's order.
        tenants: Vec<TenantEvents>,
    },
}

/// One tenant's events within a [`ReceiptRecord`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TenantEvents {
    /// The tenant.
    pub tenant: Uuid,
    /// Its events (never empty).
    pub events: Vec<LoggedEvent>,
}

/// Key of a [`USAGE_EVENT_RECEIPTS`] row: `n` tells apart the requests of one commit, which
/// share its time.
pub fn receipt_key(period: u32, received: i64, n: u64) -> Vec<u8> {
    Key::new()
        .u64(u64::from(period))
        .i64(received)
        .u64(n)
        .into_bytes()
}

/// How far the scrub of a shredded tenant has come through [`USAGE_EVENT_RECEIPTS`]. Its
/// variant order is the file format.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ScrubRecord {
    /// Version 1.
    V1 {
        /// The receipt key to go on from (empty: from the start).
        from: Vec<u8>,
    },
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

/// Key of an event in the tables before schema v7 ([`USAGE_EVENTS`], [`USAGE_EVENT_IDS`]).
pub fn event_key(tenant: &Uuid, event_id: &str) -> Vec<u8> {
    Key::new().uuid(tenant).str(event_id).into_bytes()
}

/// Key of an event id in [`USAGE_DEDUPE`].
pub fn dedupe_key(tenant: &Uuid, event_id: &str) -> Vec<u8> {
    Key::new().str(event_id).uuid(tenant).into_bytes()
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

/// Reads a `u64` counter value: the first 8 bytes, big-endian (a [`USAGE_TOTALS`] value goes
/// on with its daily rollup); 0 when absent or shorter.
pub fn counter(bytes: Option<Vec<u8>>) -> u64 {
    bytes.as_deref().map_or(0, quantity)
}

/// The quantity at the head of a counter or [`Total`] value (0 when too short).
pub fn quantity(bytes: &[u8]) -> u64 {
    bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// A [`USAGE_TOTALS`] value: the period's quantity of a SKU and its daily rollup.
///
/// Encoded as the quantity (`u64`, big-endian), then `(day of the month: u8, quantity: u64
/// big-endian)` for each day with usage, in day order: at most 8 + 31 × 9 = 287 bytes. The
/// encoding is the file format.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Total {
    /// Units in the period.
    pub quantity: u64,
    /// `(day of the month, units)` for the days with usage, in day order.
    pub days: Vec<(u8, u64)>,
}

impl Total {
    /// Decodes a stored value (absent: zero). Errors: a value that is not 8 bytes plus whole
    /// day entries ([`crate::store::Error::Corrupt`]).
    pub fn decode(bytes: Option<&[u8]>) -> crate::store::Result<Total> {
        let Some(bytes) = bytes else {
            return Ok(Total::default());
        };
        let corrupt = || crate::store::Error::Corrupt {
            table: USAGE_TOTALS.name(),
            detail: format!("a total of {} bytes", bytes.len()),
        };
        let (head, rest) = bytes.split_first_chunk::<8>().ok_or_else(corrupt)?;
        if rest.len() % 9 != 0 {
            return Err(corrupt());
        }
        let days = rest
            .chunks_exact(9)
            .map(|c| {
                let (day, n) = c.split_first().unwrap_or((&0, &[]));
                let n: [u8; 8] = n.try_into().unwrap_or_default();
                (*day, u64::from_be_bytes(n))
            })
            .collect();
        Ok(Total {
            quantity: u64::from_be_bytes(*head),
            days,
        })
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 9 * self.days.len());
        out.extend_from_slice(&self.quantity.to_be_bytes());
        for (day, n) in &self.days {
            out.push(*day);
            out.extend_from_slice(&n.to_be_bytes());
        }
        out
    }

    /// Adds `n` units on `day` (of the month) to the quantity and to that day (saturating).
    pub fn add(&mut self, day: u8, n: u64) {
        self.quantity = self.quantity.saturating_add(n);
        self.add_day(day, n);
    }

    /// Adds `n` units to `day` only (the migration of a v5 daily row, whose units the quantity
    /// already counts).
    pub fn add_day(&mut self, day: u8, n: u64) {
        match self.days.binary_search_by_key(&day, |(d, _)| *d) {
            Ok(i) => self.days[i].1 = self.days[i].1.saturating_add(n),
            Err(i) => self.days.insert(i, (day, n)),
        }
    }

    /// Adds another total (a batch's sums) to this one.
    pub fn merge(&mut self, other: &Total) {
        self.quantity = self.quantity.saturating_add(other.quantity);
        for (day, n) in &other.days {
            self.add_day(*day, *n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// The total's encoding is the file format: pinned bytes, a round trip, days kept in order
    /// and summed, and a damaged value refused.
    #[test]
    fn a_total_keeps_its_daily_rollup_in_day_order() {
        let mut t = Total::default();
        t.add(21, 5);
        t.add(3, 2);
        t.add(21, 1);
        assert_eq!(
            t,
            Total {
                quantity: 8,
                days: vec![(3, 2), (21, 6)]
            }
        );
        let bytes = t.encode();
        assert_eq!(
            bytes,
            [
                &8u64.to_be_bytes()[..],
                &[3],
                &2u64.to_be_bytes(),
                &[21],
                &6u64.to_be_bytes()
            ]
            .concat()
        );
        assert_eq!(Total::decode(Some(&bytes)).unwrap(), t);
        assert_eq!(counter(Some(bytes.clone())), 8);
        // A v5 total (the quantity alone) reads as a total without days.
        assert_eq!(
            Total::decode(Some(&7u64.to_be_bytes())).unwrap(),
            Total {
                quantity: 7,
                days: vec![]
            }
        );
        assert_eq!(Total::decode(None).unwrap(), Total::default());
        assert!(Total::decode(Some(&bytes[..bytes.len() - 1])).is_err());
        assert!(Total::decode(Some(&[1, 2, 3])).is_err());
        let mut sum = Total::default();
        sum.add(3, 1);
        t.merge(&sum);
        assert_eq!(t.days, vec![(3, 3), (21, 6)]);
        assert_eq!(t.quantity, 9);
    }

    /// The design of [`USAGE_DEDUPE`]: the ids of one request, over as many tenants as events,
    /// are one run of neighbouring keys, whatever other requests hold; and the same id of two
    /// tenants is two keys.
    #[test]
    fn a_requests_ids_are_neighbours_in_the_deduplication_set() {
        let tenant =
            |n: u128| Uuid::from_u128(n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835));
        let mut keys: Vec<(Vec<u8>, u32)> = Vec::new();
        for (request, batch) in [(1, "7-81723"), (2, "7-5"), (3, "12-81723"), (4, "7-817")] {
            for k in 0..100u128 {
                let id = format!("{batch}-{k}");
                keys.push((
                    dedupe_key(&tenant(k * 7 + u128::from(request)), &id),
                    request,
                ));
            }
        }
        keys.sort();
        let runs = keys.windows(2).filter(|w| w[0].1 != w[1].1).count() + 1;
        assert_eq!(runs, 4, "each request's ids are one run");
        assert_ne!(dedupe_key(&tenant(1), "a"), dedupe_key(&tenant(2), "a"));
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
