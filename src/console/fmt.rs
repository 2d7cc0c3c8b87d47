//! Formatting for pages: instants, relative times, countdowns, audit data summaries. (The badge
//! of each context's statuses lives in its `views.rs`.)

use chrono::{DateTime, Utc};
use maud::{Markup, html};

/// `2026-11-21 10:04 UTC`, in a `<time>` element with the exact instant.
pub fn when(t: DateTime<Utc>) -> Markup {
    html! { time datetime=(t.to_rfc3339()) title=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M UTC")) } }
}

/// "3 days ago", "in 2 hours".
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    if secs.abs() < 60 {
        return "just now".into();
    }
    let span = human_span(secs.unsigned_abs());
    if secs >= 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// "12 days 4 hours", "35 minutes", "just now".
pub fn human_span(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, (secs % 86_400) / 3600, (secs % 3600) / 60);
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match (d, h, m) {
        (0, 0, 0) => "less than a minute".into(),
        (0, 0, m) => plural(m, "minute"),
        (0, h, 0) => plural(h, "hour"),
        (0, h, m) => format!("{} {}", plural(h, "hour"), plural(m, "minute")),
        (d, 0, _) => plural(d, "day"),
        (d, h, _) => format!("{} {}", plural(d, "day"), plural(h, "hour")),
    }
}

/// A countdown to `deadline` that `console.js` keeps ticking (the text is right without it).
pub fn countdown(deadline: DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    let overdue = deadline <= now;
    html! {
        span.countdown data-deadline=(deadline.to_rfc3339()) {
            @if overdue { "due now (shredded at the next run of shred_due_tenants)" }
            @else { (relative(deadline, now)) }
        }
    }
}

/// A one-line summary of an audit entry's data: its reason, its changed fields, or its keys.
pub fn data_summary(data: Option<&serde_json::Value>) -> String {
    let Some(d) = data else {
        return "(data shredded)".into();
    };
    if let Some(r) = d.get("reason").and_then(|r| r.as_str()) {
        return r.to_string();
    }
    if let Some(c) = d.get("changes").and_then(|c| c.as_object()) {
        return format!(
            "changed {}",
            c.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    match d.as_object() {
        Some(o) if !o.is_empty() => o
            .iter()
            .filter(|(_, v)| !v.is_null())
            .take(3)
            .map(|(k, v)| {
                format!(
                    "{k}: {}",
                    v.as_str().map_or_else(|| v.to_string(), str::to_string)
                )
            })
            .collect::<Vec<_>>()
            .join(" · "),
        _ => String::new(),
    }
}

/// An amount in minor units with its currency, e.g. `USD 49.00` (two decimals: every currency
/// the platform bills in has cents; amounts stay integers everywhere else).
pub fn money(amount_minor: i64, currency: &str) -> String {
    let sign = if amount_minor < 0 { "-" } else { "" };
    let a = amount_minor.unsigned_abs();
    format!("{currency} {sign}{}.{:02}", a / 100, a % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_like_people_write_them() {
        assert_eq!(human_span(30), "less than a minute");
        assert_eq!(human_span(60), "1 minute");
        assert_eq!(human_span(3 * 3600 + 120), "3 hours 2 minutes");
        assert_eq!(human_span(12 * 86_400 + 4 * 3600), "12 days 4 hours");
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(relative(now + chrono::Duration::days(2), now), "in 2 days");
        assert_eq!(human_span(7200), "2 hours");
        assert_eq!(
            relative(now - chrono::Duration::minutes(5), now),
            "5 minutes ago"
        );
    }
}
