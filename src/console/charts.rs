//! Small inline-SVG charts, rendered on the server (no script, no external library). Each chart
//! has a `<title>` and a `<desc>` for screen readers, and its numbers are printed on it.

use maud::{Markup, html};

/// Horizontal bars: one row per `(label, value)`, scaled to the largest value.
pub fn bars(title: &str, rows: &[(String, u64)], tone: &str) -> Markup {
    let max = rows.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let row_h = 26u64;
    let height = row_h * rows.len().max(1) as u64 + 4;
    let desc: Vec<String> = rows.iter().map(|(l, v)| format!("{l}: {v}")).collect();
    html! {
        svg.chart viewBox={"0 0 360 " (height)} role="img" aria-label=(title) preserveAspectRatio="xMinYMin meet" {
            title { (title) }
            desc { (desc.join(", ")) }
            @for (i, (label, value)) in rows.iter().enumerate() {
                @let y = i as u64 * row_h + 2;
                @let w = (value * 200) / max;
                text x="0" y=(y + 17) class="label" { (label) }
                rect x="110" y=(y + 4) width=(w.max(1)) height="16" rx="3" class={"bar " (tone)} {}
                text x=(110 + w.max(1) + 6) y=(y + 17) class="value" { (value) }
            }
        }
    }
}

/// Columns over time: `(label, value)` left to right, e.g. tenants created per week.
pub fn columns(title: &str, cols: &[(String, u64)]) -> Markup {
    let max = cols.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let n = cols.len().max(1) as u64;
    let (width, height, base) = (360u64, 150u64, 120u64);
    let slot = width / n;
    let bar_w = slot.saturating_sub(6).max(4);
    let desc: Vec<String> = cols.iter().map(|(l, v)| format!("{l}: {v}")).collect();
    html! {
        svg.chart viewBox={"0 0 " (width) " " (height)} role="img" aria-label=(title) preserveAspectRatio="xMinYMin meet" {
            title { (title) }
            desc { (desc.join(", ")) }
            line x1="0" y1=(base) x2=(width) y2=(base) class="axis" {}
            @for (i, (label, value)) in cols.iter().enumerate() {
                @let x = i as u64 * slot + 3;
                @let h = (value * 100) / max;
                rect x=(x) y=(base - h) width=(bar_w) height=(h.max(1)) rx="2" class="bar info" {}
                @if *value > 0 {
                    text x=(x + bar_w / 2) y=(base - h - 4) text-anchor="middle" class="value" { (value) }
                }
                @if i % 2 == 0 || n <= 8 {
                    text x=(x + bar_w / 2) y=(base + 16) text-anchor="middle" class="label small" { (label) }
                }
            }
        }
    }
}

/// Daily columns: one per day from `first` (`values[0]` is `first`'s), e.g. a SKU's units per
/// day of a billing period. Each column has a `<title>` with its date and value (a tooltip, and
/// read by screen readers); the peak is printed, and every seventh day is labelled.
pub fn daily(title: &str, first: chrono::NaiveDate, values: &[u64], unit: &str) -> Markup {
    let peak = values.iter().copied().max().unwrap_or(0);
    let n = values.len().max(1) as u64;
    let (width, height, base) = (372u64, 96u64, 72u64);
    let slot = width / n;
    let bar_w = slot.saturating_sub(2).max(2);
    let date = |i: usize| first + chrono::Days::new(i as u64);
    let used: Vec<String> = values
        .iter()
        .enumerate()
        .filter(|(_, v)| **v > 0)
        .map(|(i, v)| format!("{}: {v}", date(i).format("%Y-%m-%d")))
        .collect();
    html! {
        svg.chart viewBox={"0 0 " (width) " " (height)} role="img" aria-label=(title) preserveAspectRatio="xMinYMin meet" {
            title { (title) }
            desc { @if used.is_empty() { "No usage." } @else { (used.join(", ")) " " (unit) } }
            line x1="0" y1=(base) x2=(width) y2=(base) class="axis" {}
            @for (i, value) in values.iter().enumerate() {
                @let x = i as u64 * slot + 1;
                // In u128: a SKU's units may exceed u64::MAX / 56.
                @let h = u64::try_from((u128::from(*value) * 56).checked_div(u128::from(peak)).unwrap_or(0)).unwrap_or(56);
                @if *value > 0 {
                    rect x=(x) y=(base - h.max(1)) width=(bar_w) height=(h.max(1)) rx="1" class="bar info" {
                        title { (date(i).format("%Y-%m-%d")) ": " (value) " " (unit) }
                    }
                }
                @if i % 7 == 0 {
                    text x=(x) y=(base + 16) class="label small" { (date(i).format("%b %-d")) }
                }
            }
            @if peak > 0 {
                text x=(width) y="10" text-anchor="end" class="value" { "peak " (peak) " " (unit) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_escape_labels_and_print_values() {
        let svg = bars(
            "States",
            &[("<script>".to_string(), 3), ("active".to_string(), 12)],
            "ok",
        )
        .into_string();
        assert!(svg.contains("&lt;script&gt;"));
        assert!(svg.contains(">12</text>"));
        let cols = columns("Per week", &[("W1".into(), 0), ("W2".into(), 5)]).into_string();
        assert!(cols.contains(">5</text>"));
    }

    #[test]
    fn a_daily_chart_has_a_column_per_day_with_usage_scaled_to_the_peak() {
        let first = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap_or_default();
        let mut values = vec![0; 30];
        values[19] = 10;
        values[20] = 40;
        let svg = daily("Daily <api_call>", first, &values, "api_call").into_string();
        assert!(svg.contains("Daily &lt;api_call&gt;"));
        assert_eq!(svg.matches("<rect").count(), 2, "{svg}");
        assert!(
            svg.contains("<title>2026-11-21: 40 api_call</title>"),
            "{svg}"
        );
        assert!(
            svg.contains("height=\"56\""),
            "the peak is full height: {svg}"
        );
        assert!(
            svg.contains("height=\"14\""),
            "a quarter of the peak: {svg}"
        );
        assert!(svg.contains("peak 40 api_call"));
        assert!(svg.contains(">Nov 1</text>") && svg.contains(">Nov 29</text>"));
        let huge = daily("Huge", first, &[u64::MAX - 3, (u64::MAX - 3) / 4], "x").into_string();
        assert!(
            huge.contains("height=\"56\"") && huge.contains("height=\"14\""),
            "{huge}"
        );
        let none = daily("Daily", first, &[0; 30], "x").into_string();
        assert!(none.contains("No usage.") && !none.contains("<rect"));
    }
}
