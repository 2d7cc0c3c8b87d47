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
}
