//! Webhooks (tenant admin guide §4, operator guide §5; issue 11): a tenant's endpoints, the
//! deliveries the ledger dispatcher makes for them, their attempts, and the DLQ. Domain types,
//! their parsing, stored records, tables and codes.
//!
//! Deliveries follow Standard Webhooks: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` (see
//! [`super::signing`]), a JSON body `{type, timestamp, data}`, and retries on Svix's schedule
//! ([`RETRY_SCHEDULE`]) before the dead-letter queue.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::from_micros;
use crate::store::Table;
use crate::store::keys::Key;

/// Endpoints: `(tenant, endpoint) -> EndpointRecord`.
pub const ENDPOINTS: Table = Table::new("webhook_endpoints");
/// The dispatcher's durable cursor into each tenant's chain: `tenant -> CursorRecord` (the last
/// seq matched against the tenant's endpoints). Only tenants with endpoints have one.
pub const CURSORS: Table = Table::new("webhook_cursors");
/// Deliveries not yet delivered (pending or dead-lettered): `(tenant, delivery) ->
/// DeliveryRecord`. A delivered one is deleted; its attempts remain.
pub const DELIVERIES: Table = Table::new("webhook_deliveries");
/// Where each stored delivery lives: `delivery -> tenant id` (an operator's replay names only
/// the delivery).
pub const DELIVERY_TENANTS: Table = Table::new("webhook_delivery_tenants");
/// Pending deliveries by their next try: `(next try µs, tenant, endpoint, delivery) -> ()`
/// (the endpoint is in the key so the delivery loop applies its per-endpoint bound unread).
pub const DUE: Table = Table::new("webhook_due");
/// The DLQ, two indexes: `(0, dead µs, tenant, delivery)` for the cross-tenant list and
/// `(1, tenant, dead µs, delivery)` for a tenant's, both `-> ()`, newest first by scanning down.
pub const DLQ: Table = Table::new("webhook_dlq");
/// Attempts: `(tenant, endpoint, at µs, delivery, attempt) -> AttemptRecord`.
pub const ATTEMPTS: Table = Table::new("webhook_attempts");

/// The DLQ index across tenants.
pub const DLQ_ALL: u8 = 0;
/// The DLQ index of one tenant.
pub const DLQ_TENANT: u8 = 1;

/// The prefix of a signing secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes of a signing secret (Standard Webhooks: 24 to 64).
pub const SECRET_BYTES: usize = 32;
/// How long the secret before a rotation still signs (guide §4: "old one stays valid for 60 s").
pub const ROTATION_OVERLAP: Duration = Duration::seconds(60);
/// Delays before each try, from the first (Svix's schedule: immediately, 5 s, 5 min, 30 min,
/// 2 h, 5 h, 10 h, 10 h). After the last failed try the delivery goes to the DLQ.
pub const RETRY_SCHEDULE: [i64; 8] = [0, 5, 300, 1800, 7200, 18000, 36000, 36000];
/// Jitter added to a retry delay: up to this fraction of it (1/10).
pub const JITTER_DIVISOR: i64 = 10;
/// How long a dead-lettered delivery and an attempt are kept (guide §4: "pruned after 7 days").
pub const RETENTION: Duration = Duration::days(7);
/// Most endpoints a tenant holds.
pub const MAX_ENDPOINTS: usize = 50;
/// Most event types one endpoint subscribes to.
pub const MAX_EVENT_TYPES: usize = 200;
/// Longest URL.
pub const MAX_URL_LEN: usize = 2048;
/// Longest description.
pub const MAX_DESCRIPTION: usize = 500;
/// Most ledger entries one dispatcher write matches.
pub const DISPATCH_BATCH: usize = 500;
/// Most DLQ entries one bulk replay takes (repeat it for more).
pub const MAX_BULK_REPLAY: usize = 1000;
/// The event type of `POST .../test` deliveries.
pub const TEST_EVENT: &str = "webhook.test.v1";

/// 409: the tenant holds [`MAX_ENDPOINTS`] endpoints.
pub const WEBHOOK_LIMIT: &str = "webhook_limit";
/// 409: only a dead-lettered delivery is replayed.
pub const DELIVERY_NOT_DEAD: &str = "delivery_not_dead";
/// 409: the delivery's endpoint was deleted, so it cannot be replayed.
pub const WEBHOOK_DELETED: &str = "webhook_deleted";
/// 409: the endpoint is disabled (a test or replay is refused until it is enabled again).
pub const WEBHOOK_DISABLED: &str = "webhook_disabled";

/// Event types that are not ledger actions: billing's (issue 11: "the ledger's action names plus
/// billing events") and the test event. Billing events are published so endpoints can subscribe
/// ahead of the billing capability, which emits them.
pub const EXTRA_EVENTS: &[(&str, &str, &str)] = &[
    (
        "subscription.plan_changed.v1",
        "billing",
        "The tenant's plan changed.",
    ),
    (
        TEST_EVENT,
        "webhooks",
        "A test delivery sent from the console or POST .../test.",
    ),
];

/// An endpoint as listed (never its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// UUIDv7.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// Where deliveries are POSTed.
    pub url: String,
    /// What it is for.
    pub description: String,
    /// The event types it receives.
    pub event_types: Vec<String>,
    /// Whether it receives deliveries.
    pub enabled: bool,
    /// Why it was disabled by the platform (410 Gone), if it was.
    pub disabled_reason: Option<String>,
    /// `whsec_` and the first characters of the secret, to recognise it.
    pub secret_hint: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Last secret rotation.
    pub rotated_at: Option<DateTime<Utc>>,
    /// Until when the secret before the last rotation still signs.
    pub previous_valid_until: Option<DateTime<Utc>>,
}

/// The stored endpoint: versioned. Add a version at the end; never reorder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum EndpointRecord {
    /// Version 1.
    V1(EndpointV1),
}

/// Version 1 of the stored endpoint; instants in microseconds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct EndpointV1 {
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// The secret's bytes sealed with the install's webhook key ([`super::signing::Sealer`]).
    pub secret: Vec<u8>,
    pub secret_hint: String,
    /// The secret before the last rotation, sealed, while its overlap runs.
    pub previous_secret: Option<Vec<u8>>,
    pub previous_valid_until: Option<i64>,
    /// The head seq of the tenant's chain when the endpoint was made: it receives later entries.
    pub since_seq: u64,
    pub created_at: i64,
    pub updated_at: i64,
    pub rotated_at: Option<i64>,
}

impl EndpointV1 {
    /// The listed view.
    pub fn view(&self, tenant_id: Uuid, id: Uuid) -> Endpoint {
        Endpoint {
            id,
            tenant_id,
            url: self.url.clone(),
            description: self.description.clone(),
            event_types: self.event_types.clone(),
            enabled: self.enabled,
            disabled_reason: self.disabled_reason.clone(),
            secret_hint: self.secret_hint.clone(),
            created_at: from_micros(self.created_at),
            updated_at: from_micros(self.updated_at),
            rotated_at: self.rotated_at.map(from_micros),
            previous_valid_until: self.previous_valid_until.map(from_micros),
        }
    }

    /// Does it take an entry of `action` now?
    pub fn wants(&self, action: &str) -> bool {
        self.enabled && self.event_types.iter().any(|e| e == action)
    }
}

/// The dispatcher's cursor into a tenant's chain: versioned.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub enum CursorRecord {
    /// Version 1: the last seq matched.
    V1 {
        /// Seq.
        seq: u64,
    },
}

/// Where a delivery stands.
///
/// REMEMBER: the numbers are the file format (a delivery record stores its state by code):
/// never renumber; add at the end (`disk_format_codes_are_pinned` checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum DeliveryState {
    /// Waiting for its next try.
    Pending = 0,
    /// In the DLQ.
    Dead = 1,
}

impl DeliveryState {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Dead => "dead",
        }
    }
}

/// A delivery as shown (its payload is the exact bytes sent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// UUIDv7.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// Its endpoint.
    pub endpoint_id: Uuid,
    /// The event type.
    pub event_type: String,
    /// The `webhook-id` header: the same on every try and replay.
    pub msg_id: String,
    /// The body, exactly as sent.
    pub payload: Vec<u8>,
    /// Where it stands.
    pub state: DeliveryState,
    /// Tries so far.
    pub attempts: u32,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Its next try, while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it entered the DLQ, while dead.
    pub dead_at: Option<DateTime<Utc>>,
    /// The last try's HTTP status.
    pub last_status: Option<u16>,
    /// The last try's error.
    pub last_error: Option<String>,
    /// Replays so far.
    pub replays: u32,
}

/// The stored delivery: versioned. Add a version at the end; never reorder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum DeliveryRecord {
    /// Version 1.
    V1(DeliveryV1),
}

/// Version 1 of the stored delivery; instants in microseconds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct DeliveryV1 {
    pub endpoint_id: [u8; 16],
    pub event_type: String,
    pub msg_id: String,
    /// The body, exactly as sent (and re-sent by a replay).
    pub payload: Vec<u8>,
    pub state: DeliveryState,
    pub attempts: u32,
    pub created_at: i64,
    pub next_attempt_at: Option<i64>,
    pub dead_at: Option<i64>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub replays: u32,
    /// A replay gets one try: on failure it goes back to the DLQ.
    pub single_try: bool,
}

impl DeliveryV1 {
    /// The shown view.
    pub fn view(&self, tenant_id: Uuid, id: Uuid) -> Delivery {
        Delivery {
            id,
            tenant_id,
            endpoint_id: Uuid::from_bytes(self.endpoint_id),
            event_type: self.event_type.clone(),
            msg_id: self.msg_id.clone(),
            payload: self.payload.clone(),
            state: self.state,
            attempts: self.attempts,
            created_at: from_micros(self.created_at),
            next_attempt_at: self.next_attempt_at.map(from_micros),
            dead_at: self.dead_at.map(from_micros),
            last_status: self.last_status,
            last_error: self.last_error.clone(),
            replays: self.replays,
        }
    }
}

/// How one try ended.
///
/// REMEMBER: the numbers are the file format: never renumber; add at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum Outcome {
    /// A 2xx.
    Succeeded = 0,
    /// Another status, a timeout or a connection error.
    Failed = 1,
    /// Not sent: the SSRF guard refused the address, or the endpoint is disabled or gone.
    Refused = 2,
}

impl Outcome {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Refused => "refused",
        }
    }
}

/// One try as shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// Its endpoint.
    pub endpoint_id: Uuid,
    /// Its delivery.
    pub delivery_id: Uuid,
    /// The `webhook-id`.
    pub msg_id: String,
    /// The event type.
    pub event_type: String,
    /// Which try of the delivery (from 1; replays continue the count).
    pub attempt: u32,
    /// When it started.
    pub at: DateTime<Utc>,
    /// How it ended.
    pub outcome: Outcome,
    /// The HTTP status, when one came.
    pub status: Option<u16>,
    /// Milliseconds until the answer (or the failure).
    pub latency_ms: u32,
    /// What went wrong.
    pub error: Option<String>,
    /// The next try it scheduled, if any.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Whether it sent the delivery to the DLQ.
    pub dead_lettered: bool,
}

/// The stored attempt: versioned. Add a version at the end; never reorder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum AttemptRecord {
    /// Version 1.
    V1(AttemptV1),
}

/// Version 1 of the stored attempt.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct AttemptV1 {
    pub msg_id: String,
    pub event_type: String,
    pub outcome: Outcome,
    pub status: Option<u16>,
    pub latency_ms: u32,
    pub error: Option<String>,
    pub next_attempt_at: Option<i64>,
    pub dead_lettered: bool,
}

/// The key of a tenant's endpoint or delivery.
pub fn tenant_key(tenant: &Uuid, id: &Uuid) -> Vec<u8> {
    Key::new().uuid(tenant).uuid(id).into_bytes()
}

/// The key of a pending delivery in [`DUE`].
pub fn due_key(at_micros: i64, tenant: &Uuid, endpoint: &Uuid, delivery: &Uuid) -> Vec<u8> {
    Key::new()
        .i64(at_micros)
        .uuid(tenant)
        .uuid(endpoint)
        .uuid(delivery)
        .into_bytes()
}

/// The two [`DLQ`] keys of a dead delivery.
pub fn dlq_keys(dead_micros: i64, tenant: &Uuid, delivery: &Uuid) -> [Vec<u8>; 2] {
    [
        Key::new()
            .u8(DLQ_ALL)
            .i64(dead_micros)
            .uuid(tenant)
            .uuid(delivery)
            .into_bytes(),
        Key::new()
            .u8(DLQ_TENANT)
            .uuid(tenant)
            .i64(dead_micros)
            .uuid(delivery)
            .into_bytes(),
    ]
}

/// The key of an attempt.
pub fn attempt_key(
    tenant: &Uuid,
    endpoint: &Uuid,
    at_micros: i64,
    delivery: &Uuid,
    attempt: u32,
) -> Vec<u8> {
    Key::new()
        .uuid(tenant)
        .uuid(endpoint)
        .i64(at_micros)
        .uuid(delivery)
        .u64(u64::from(attempt))
        .into_bytes()
}

/// The `webhook-id` of a delivery: `msg_` and its id (unique, stable across tries and replays).
pub fn msg_id(delivery: &Uuid) -> String {
    format!("msg_{}", delivery.simple())
}

/// The delay before try `next` (from 0) with `random` jitter: the schedule's step plus up to a
/// tenth of it. `None` past the schedule: the delivery is dead.
pub fn retry_delay(next: u32, random: u64) -> Option<Duration> {
    let base = *RETRY_SCHEDULE.get(usize::try_from(next).ok()?)?;
    let jitter_ms = (base * 1000) / JITTER_DIVISOR;
    let extra = if jitter_ms > 0 {
        i64::try_from(random % u64::try_from(jitter_ms + 1).unwrap_or(1)).unwrap_or(0)
    } else {
        0
    };
    Some(Duration::seconds(base) + Duration::milliseconds(extra))
}

/// Parses an endpoint's URL: absolute `https` (or `http`, which the SSRF policy allows only to
/// `[webhooks] allow_http` addresses at delivery time), with a host, no credentials, at most
/// [`MAX_URL_LEN`] characters.
pub fn parse_url(s: &str, allow_http: bool) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() || t.len() > MAX_URL_LEN {
        return Err(format!(
            "give the endpoint's URL, at most {MAX_URL_LEN} characters (e.g. https://hooks.example.com/tenantry)"
        ));
    }
    let u = url::Url::parse(t)
        .map_err(|e| format!("url '{t}' is not an absolute URL ({e}): use https://host/path"))?;
    match u.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(format!(
                "url '{t}' is plain http: use https (plain http is allowed only to the addresses in [webhooks] allow_http)"
            ));
        }
        other => return Err(format!("url scheme '{other}' is not https")),
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("url '{t}' has no host"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("url must not carry credentials (user:password@): authenticate the delivery with its signature".into());
    }
    if u.fragment().is_some() {
        return Err("url must not have a #fragment".into());
    }
    Ok(u.to_string())
}

/// Parses a description: at most [`MAX_DESCRIPTION`] characters, no control characters.
pub fn parse_description(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.chars().count() > MAX_DESCRIPTION || t.chars().any(char::is_control) {
        Err(format!(
            "a description has at most {MAX_DESCRIPTION} characters and no control characters"
        ))
    } else {
        Ok(t.to_string())
    }
}

/// Parses the event types an endpoint subscribes to: 1 to [`MAX_EVENT_TYPES`] names from
/// `catalogue`, without duplicates (kept in the given order).
pub fn parse_event_types(types: &[String], catalogue: &[String]) -> Result<Vec<String>, String> {
    if types.is_empty() {
        return Err(
            "pick at least one event type from GET /api/event-types (start narrow: you can add more later)"
                .into(),
        );
    }
    if types.len() > MAX_EVENT_TYPES {
        return Err(format!(
            "at most {MAX_EVENT_TYPES} event types per endpoint"
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(types.len());
    for t in types {
        let t = t.trim();
        if !catalogue.iter().any(|c| c == t) {
            return Err(format!(
                "event type '{t}' is not in the catalogue: see GET /api/event-types"
            ));
        }
        if !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_format_codes_are_pinned() {
        assert_eq!(DeliveryState::Pending as u8, 0);
        assert_eq!(DeliveryState::Dead as u8, 1);
        assert_eq!(Outcome::Succeeded as u8, 0);
        assert_eq!(Outcome::Failed as u8, 1);
        assert_eq!(Outcome::Refused as u8, 2);
        assert_eq!(DLQ_ALL, 0);
        assert_eq!(DLQ_TENANT, 1);
    }

    #[test]
    fn retries_follow_svix_schedule_with_at_most_a_tenth_of_jitter() {
        let secs = [0, 5, 300, 1800, 7200, 18000, 36000, 36000];
        for (i, s) in secs.iter().enumerate() {
            let n = u32::try_from(i).unwrap_or(0);
            assert_eq!(retry_delay(n, 0), Some(Duration::seconds(*s)));
            let most = retry_delay(n, u64::MAX).unwrap_or_default();
            assert!(most >= Duration::seconds(*s));
            assert!(most <= Duration::seconds(*s) + Duration::milliseconds(s * 100));
        }
        assert_eq!(retry_delay(8, 0), None);
    }

    #[test]
    fn urls_must_be_https_unless_http_is_allowed() {
        assert!(parse_url("https://hooks.example.com/x", false).is_ok());
        assert!(parse_url("http://127.0.0.1:9/x", false).is_err());
        assert!(parse_url("http://127.0.0.1:9/x", true).is_ok());
        assert!(parse_url("ftp://example.com", true).is_err());
        assert!(parse_url("https://u:p@example.com", false).is_err());
        assert!(parse_url("not a url", false).is_err());
    }

    #[test]
    fn event_types_come_from_the_catalogue() {
        // (Built with format! so that the event catalogue test does not take them for events
        // the code writes.)
        let (ab, cd, xy) = (
            format!("a.b.v{}", 1),
            format!("c.d.v{}", 1),
            format!("x.y.v{}", 1),
        );
        let cat = vec![ab.clone(), cd];
        assert_eq!(
            parse_event_types(&[ab.clone(), ab.clone()], &cat),
            Ok(vec![ab])
        );
        assert!(parse_event_types(&[xy], &cat).is_err());
        assert!(parse_event_types(&[], &cat).is_err());
    }
}
