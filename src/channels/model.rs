//! Notification channels (tenant admin guide §6 "Connectors", HQ PRD §6 `alert_dispatcher`;
//! issue 11): domain types, their parsing, stored records, tables, codes, and the message
//! formats each kind sends.
//!
//! A channel belongs to the platform (operators; it gets platform alerts) or to one tenant
//! (tenant admins; it gets events of the tenant's chain). Webhook URLs and the generic kind's
//! signing secret are secrets: they are stored sealed ([`crate::webhooks::signing::Sealer`])
//! and only a mask of the URL is ever shown.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::clock::from_micros;
use crate::store::Table;
use crate::store::keys::Key;

/// Channels: `(owner, channel) -> ChannelRecord`; the owner is the tenant id, or the nil UUID
/// for a platform channel.
pub const CHANNELS: Table = Table::new("notification_channels");
/// Durable cursors and markers of the dispatchers: `(consumer, id) -> CursorRecord`, see
/// [`CURSOR_TENANT`], [`CURSOR_PLATFORM`], [`CURSOR_ALERTS`] and [`MARK_JOB`].
pub const CURSORS: Table = Table::new("notification_cursors");
/// The bounded send queue: `(due µs, owner, channel, message) -> MessageRecord`. A message is
/// deleted once sent or given up.
pub const OUTBOX: Table = Table::new("notification_outbox");

/// Cursor kind: a tenant chain's last seq routed to the tenant's channels (`id` = tenant).
pub const CURSOR_TENANT: u8 = 0;
/// Cursor kind: the platform chain's last seq looked at by `alert_dispatcher` (`id` = nil).
pub const CURSOR_PLATFORM: u8 = 1;
/// Cursor kind: a tenant chain's last seq looked at by `alert_dispatcher` for platform alerts
/// ([`TENANT_ALERTS`]) (`id` = tenant).
pub const CURSOR_ALERTS: u8 = 2;
/// Marker kind: the start (µs) of the last failed run of a job already alerted (`id` = nil,
/// then the job's name).
pub const MARK_JOB: u8 = 3;

/// The pseudo event type of a failed scheduled job (from the jobs' run records).
pub const JOB_FAILED: &str = "job.failed";
/// The event type of a Test message.
pub const TEST_EVENT: &str = "notification_channel.test";
/// Platform alerts written on the platform chain (HQ PRD §6 `alert_dispatcher`).
pub const PLATFORM_ALERTS: &[&str] = &["install.silent.v1"];
/// Platform alerts written on tenants' chains (soft caps, breached approvals).
pub const TENANT_ALERTS: &[&str] = &["usage.soft_cap.exceeded.v1", "approval.breached.v1"];

/// Every event type a platform channel may subscribe to.
pub fn platform_alerts() -> Vec<String> {
    std::iter::once(JOB_FAILED)
        .chain(PLATFORM_ALERTS.iter().copied())
        .chain(TENANT_ALERTS.iter().copied())
        .map(str::to_string)
        .collect()
}

/// Delays before the 2nd, 3rd and 4th try of a message, in seconds; after the 4th failed try
/// the message is given up (its error stays in the channel's health).
pub const RETRY_DELAYS: [i64; 3] = [5, 30, 120];
/// Consecutive failed tries after which a channel is disabled (Reconnect enables it again).
pub const DISABLE_AFTER: u32 = 10;
/// Most messages waiting in the queue; the routers stop moving their cursors while it is full
/// (nothing is lost: they pick up where they stopped).
pub const MAX_QUEUE: u64 = 10_000;
/// Most ledger entries or alerts one dispatcher write looks at.
pub const DISPATCH_BATCH: usize = 500;
/// Most channels an owner holds.
pub const MAX_CHANNELS: usize = 50;
/// Most recipients of an email channel.
pub const MAX_RECIPIENTS: usize = 20;
/// Longest name.
pub const MAX_NAME: usize = 100;

/// 409: the owner holds [`MAX_CHANNELS`] channels.
pub const CHANNEL_LIMIT: &str = "channel_limit";

/// A channel's kind.
///
/// REMEMBER: the numbers are the file format (a record stores the kind by code): never
/// renumber; add at the end (`disk_format_codes_are_pinned` checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum Kind {
    /// Email over SMTP (`[smtp]`) to a list of recipients.
    Email = 0,
    /// A Slack incoming webhook: `{"text", "blocks": [section]}`.
    Slack = 1,
    /// A Microsoft Teams incoming webhook (Workflows): an Adaptive Card message.
    Teams = 2,
    /// A JSON POST signed per Standard Webhooks, like webhook deliveries.
    Generic = 3,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 4] = [Kind::Email, Kind::Slack, Kind::Teams, Kind::Generic];

    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Slack => "slack",
            Kind::Teams => "teams",
            Kind::Generic => "generic",
        }
    }

    /// Parses a name.
    ///
    /// Errors: the name and the kinds there are.
    pub fn parse(s: &str) -> Result<Kind, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s.trim())
            .ok_or_else(|| {
                format!(
                    "kind '{s}' is unknown: use email, slack, teams or generic (OAuth connectors are not available on an on-prem appliance)"
                )
            })
    }

    /// Does it POST to a webhook URL?
    pub fn has_url(self) -> bool {
        self != Kind::Email
    }
}

/// The last send to a channel (its health).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastDelivery {
    /// When, µs.
    pub at: i64,
    /// The event type sent.
    pub event_type: String,
    /// Whether it was taken.
    pub ok: bool,
    /// What went wrong.
    pub error: Option<String>,
}

/// A channel as shown (never its URL in full, never its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channel {
    /// UUIDv7.
    pub id: Uuid,
    /// Its tenant; `None` for a platform channel.
    pub tenant_id: Option<Uuid>,
    /// What people call it, e.g. "#finance".
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Email recipients (empty for the other kinds).
    pub recipients: Vec<String>,
    /// The webhook URL masked (`https://hooks.slack.com/…`); `None` for email.
    pub url_hint: Option<String>,
    /// Subscribed event types.
    pub event_types: Vec<String>,
    /// Whether it gets messages.
    pub enabled: bool,
    /// Why the platform disabled it (repeated failures), if it did.
    pub disabled_reason: Option<String>,
    /// Consecutive failed tries.
    pub failures: u32,
    /// The last send.
    pub last: Option<LastDelivery>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Channel {
    /// Is its health red (the last send failed, or it is disabled by the platform)?
    pub fn unhealthy(&self) -> bool {
        self.disabled_reason.is_some() || self.last.as_ref().is_some_and(|l| !l.ok)
    }

    /// The last send's time.
    pub fn last_at(&self) -> Option<DateTime<Utc>> {
        self.last.as_ref().map(|l| from_micros(l.at))
    }
}

/// The stored channel: versioned. Add a version at the end; never reorder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ChannelRecord {
    /// Version 1.
    V1(ChannelV1),
}

/// Version 1 of the stored channel; instants in microseconds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ChannelV1 {
    pub name: String,
    pub kind: Kind,
    pub recipients: Vec<String>,
    /// [`Target`] as JSON, sealed with the webhook key; `None` for email.
    pub sealed: Option<Vec<u8>>,
    pub url_hint: Option<String>,
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub failures: u32,
    pub last: Option<LastDelivery>,
    /// For a tenant channel: the head seq of the tenant's chain at creation (it gets later
    /// entries). For a platform channel: unused (alerts after `created_at` reach it).
    pub since_seq: u64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ChannelV1 {
    /// The shown view.
    pub fn view(&self, tenant_id: Option<Uuid>, id: Uuid) -> Channel {
        Channel {
            id,
            tenant_id,
            name: self.name.clone(),
            kind: self.kind,
            recipients: self.recipients.clone(),
            url_hint: self.url_hint.clone(),
            event_types: self.event_types.clone(),
            enabled: self.enabled,
            disabled_reason: self.disabled_reason.clone(),
            failures: self.failures,
            last: self.last.clone(),
            created_at: from_micros(self.created_at),
            updated_at: from_micros(self.updated_at),
        }
    }

    /// Does it take a message of `event_type` now?
    pub fn wants(&self, event_type: &str) -> bool {
        self.enabled && self.event_types.iter().any(|e| e == event_type)
    }
}

/// What is sealed for a webhook kind: the URL, and the generic kind's signing secret.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Target {
    /// The webhook URL.
    pub url: String,
    /// The `whsec_` secret's bytes (generic kind only).
    pub secret: Option<Vec<u8>>,
}

/// A durable cursor or marker: versioned.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub enum CursorRecord {
    /// Version 1: a seq, or µs for a job marker.
    V1 {
        /// The value.
        at: u64,
    },
}

/// A queued message: versioned.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum MessageRecord {
    /// Version 1.
    V1(MessageV1),
}

/// Version 1 of a queued message.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct MessageV1 {
    pub message: Message,
    pub attempts: u32,
    pub created_at: i64,
}

/// One notification, whatever the kind renders it as.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Its id (`msg_<id>` is the generic kind's `webhook-id`).
    pub id: Uuid,
    /// The event type (ledger action, `job.failed`, or the test event).
    pub event_type: String,
    /// One line, e.g. "Job backup_daily failed".
    pub title: String,
    /// A few lines of detail.
    pub text: String,
    /// RFC 3339 time of the event.
    pub timestamp: String,
    /// The event's details (the generic kind's `data`), as JSON text.
    pub data: String,
}

impl Message {
    /// Slack's incoming webhook body (api.slack.com/messaging/webhooks): `text` is the
    /// notification fallback, `blocks` one `section` with `mrkdwn` text.
    pub fn slack(&self) -> serde_json::Value {
        json!({
            "text": format!("{}: {}", self.title, self.text),
            "blocks": [{
                "type": "section",
                "text": {"type": "mrkdwn", "text": format!("*{}*\n{}", self.title, self.text)}
            }]
        })
    }

    /// A Microsoft Teams incoming webhook body: a `message` with one Adaptive Card attachment
    /// (learn.microsoft.com, "Send Adaptive Cards using an Incoming Webhook"; the format the
    /// Workflows webhooks that replace Office 365 connectors take).
    pub fn teams(&self) -> serde_json::Value {
        json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {"type": "TextBlock", "text": self.title, "weight": "Bolder", "size": "Medium", "wrap": true},
                        {"type": "TextBlock", "text": self.text, "wrap": true},
                        {"type": "TextBlock", "text": self.event_type, "isSubtle": true, "spacing": "Small"}
                    ]
                }
            }]
        })
    }

    /// The generic kind's body, like a webhook delivery: `{type, timestamp, data}`.
    pub fn generic(&self) -> serde_json::Value {
        let data: serde_json::Value = serde_json::from_str(&self.data).unwrap_or(json!({}));
        json!({
            "type": self.event_type,
            "timestamp": self.timestamp,
            "data": {"title": self.title, "text": self.text, "details": data},
        })
    }
}

/// The key of a channel of `owner` (the nil UUID for the platform).
pub fn channel_key(owner: &Uuid, id: &Uuid) -> Vec<u8> {
    Key::new().uuid(owner).uuid(id).into_bytes()
}

/// The key of a cursor or marker.
pub fn cursor_key(kind: u8, id: &Uuid, name: &str) -> Vec<u8> {
    Key::new().u8(kind).uuid(id).str(name).into_bytes()
}

/// The key of a queued message.
pub fn outbox_key(due_micros: i64, owner: &Uuid, channel: &Uuid, msg: &Uuid) -> Vec<u8> {
    Key::new()
        .i64(due_micros)
        .uuid(owner)
        .uuid(channel)
        .uuid(msg)
        .into_bytes()
}

/// The owner key of a channel.
pub fn owner(tenant: Option<Uuid>) -> Uuid {
    tenant.unwrap_or_else(Uuid::nil)
}

/// A URL masked for display: scheme, host and `/…` (the path of a Slack or Teams webhook is
/// its secret).
pub fn mask_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}/…",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "…".into(),
    }
}

/// Parses a name: 1 to [`MAX_NAME`] characters, no control characters.
pub fn parse_name(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > MAX_NAME || t.chars().any(char::is_control) {
        Err(format!(
            "give the channel a name of 1 to {MAX_NAME} characters, e.g. '#finance' or 'On-call email'"
        ))
    } else {
        Ok(t.to_string())
    }
}

/// Parses email recipients: 1 to [`MAX_RECIPIENTS`] addresses, deduplicated.
pub fn parse_recipients(list: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for r in list.iter().map(|r| r.trim()).filter(|r| !r.is_empty()) {
        if r.parse::<lettre::Address>().is_err() {
            return Err(format!(
                "recipient '{r}' is not an email address (e.g. oncall@example.com)"
            ));
        }
        if !out.iter().any(|o| o.eq_ignore_ascii_case(r)) {
            out.push(r.to_string());
        }
    }
    if out.is_empty() || out.len() > MAX_RECIPIENTS {
        return Err(format!(
            "an email channel has 1 to {MAX_RECIPIENTS} recipients"
        ));
    }
    Ok(out)
}

/// Parses subscribed event types: 1 to 200 names from `allowed`, deduplicated.
pub fn parse_event_types(types: &[String], allowed: &[String]) -> Result<Vec<String>, String> {
    crate::webhooks::model::parse_event_types(types, allowed)
        .map_err(|e| e.replace("per endpoint", "per channel"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_format_codes_are_pinned() {
        assert_eq!(Kind::Email as u8, 0);
        assert_eq!(Kind::Slack as u8, 1);
        assert_eq!(Kind::Teams as u8, 2);
        assert_eq!(Kind::Generic as u8, 3);
        assert_eq!(
            (CURSOR_TENANT, CURSOR_PLATFORM, CURSOR_ALERTS, MARK_JOB),
            (0, 1, 2, 3)
        );
    }

    #[test]
    fn a_webhook_url_is_masked_to_its_host() {
        assert_eq!(
            mask_url("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(mask_url("http://127.0.0.1:9/x"), "http://127.0.0.1:9/…");
    }

    #[test]
    fn recipients_must_be_addresses() {
        assert!(parse_recipients(&["a@example.com".into()]).is_ok());
        assert!(parse_recipients(&["nope".into()]).is_err());
        assert!(parse_recipients(&[]).is_err());
    }

    #[test]
    fn slack_and_teams_bodies_have_their_documented_shapes() {
        let m = Message {
            id: Uuid::nil(),
            event_type: JOB_FAILED.into(),
            title: "T".into(),
            text: "x".into(),
            timestamp: "2026-01-01T00:00:00Z".into(),
            data: "{}".into(),
        };
        assert_eq!(m.slack()["blocks"][0]["type"], "section");
        assert_eq!(
            m.teams()["attachments"][0]["content"]["type"],
            "AdaptiveCard"
        );
        assert_eq!(m.generic()["type"], JOB_FAILED);
    }
}
