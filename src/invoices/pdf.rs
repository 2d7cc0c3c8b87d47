//! The PDF of a finalized invoice (operator guide §4), drawn with `krilla` in Liberation Mono
//! (SIL OFL 1.1, `fonts/`), which is compiled into the binary and embedded (subset) in every
//! document: the PDF renders the same on an air-gapped host, and its text extracts exactly
//! (`pdftotext` finds the number, every line and the total). A monospaced face keeps the
//! columns aligned without measuring glyphs.

use krilla::Document;
use krilla::geom::Point;
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use krilla::text::{Font, TextDirection};

use super::model::{Invoice, LineKind};
use crate::console::fmt::money;
use crate::error::{Error, Result};

/// Liberation Mono Regular 2.1.5 (SIL Open Font License 1.1, `fonts/OFL.txt`).
static FONT: &[u8] = include_bytes!("../../fonts/LiberationMono-Regular.ttf");

/// A4 in points.
const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const MARGIN: f32 = 48.0;
/// Body size; Liberation Mono's advance is 0.6 em, so a line holds `COLS` characters.
const SIZE: f32 = 9.0;
const LEADING: f32 = 13.0;
const COLS: usize = 83;

/// One printed row: its text and size.
struct Row(String, f32);

fn rule() -> Row {
    Row("-".repeat(COLS), SIZE)
}

/// Pads `left` and right-aligns `right` within `COLS`.
fn spread(left: &str, right: &str) -> String {
    let room = COLS.saturating_sub(right.chars().count() + 1);
    let l: String = left.chars().take(room).collect();
    format!("{l:<room$} {right}")
}

fn columns(desc: &str, qty: &str, incl: &str, amount: &str) -> String {
    let d: String = desc.chars().take(38).collect();
    format!("{d:<38} {qty:>12} {incl:>12} {amount:>18}")
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn rows(inv: &Invoice, tenant_name: &str) -> Vec<Row> {
    let number = inv.number.as_deref().unwrap_or("(draft)");
    let mut r = vec![
        Row(format!("INVOICE {number}"), 16.0),
        Row(String::new(), SIZE),
    ];
    for l in &inv.issuer {
        r.push(Row(l.clone(), SIZE));
    }
    r.push(Row(String::new(), SIZE));
    r.push(Row("Bill to:".into(), SIZE));
    if let Some(b) = &inv.bill_to {
        r.push(Row(format!("  {}", b.name), SIZE));
        for l in &b.address {
            r.push(Row(format!("  {l}"), SIZE));
        }
        if let Some(e) = &b.email {
            r.push(Row(format!("  {e}"), SIZE));
        }
        if let Some(t) = &b.tax_id {
            r.push(Row(format!("  Tax id: {t}"), SIZE));
        }
        if let Some(po) = &b.po_number {
            r.push(Row(format!("  PO: {po}"), SIZE));
        }
    } else {
        r.push(Row(format!("  {tenant_name}"), SIZE));
    }
    r.push(Row(String::new(), SIZE));
    let day = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or("-".to_string(), |t| t.format("%Y-%m-%d").to_string())
    };
    for (k, v) in [
        ("Invoice number", number.to_string()),
        ("Invoice id", inv.id.to_string()),
        ("Tenant id", inv.tenant_id.to_string()),
        (
            "Billing period",
            format!("{}-{:02}", inv.period / 100, inv.period % 100),
        ),
        ("Issued", day(inv.issued_at)),
        ("Due", day(inv.due_at)),
        ("Status", inv.status.as_str().to_string()),
    ] {
        r.push(Row(format!("{k:<16} {v}"), SIZE));
    }
    r.push(Row(String::new(), SIZE));
    r.push(Row(
        columns("Description", "Quantity", "Included", "Amount"),
        SIZE,
    ));
    r.push(rule());
    for l in &inv.lines {
        let (qty, incl) = match l.kind {
            LineKind::Plan => (String::new(), String::new()),
            LineKind::Usage => (thousands(l.quantity), thousands(l.included)),
        };
        r.push(Row(
            columns(
                &l.description,
                &qty,
                &incl,
                &money(l.amount_minor, &inv.currency),
            ),
            SIZE,
        ));
        if let (Some(c), Some(v)) = (l.catalog_id, l.catalog_version) {
            r.push(Row(format!("  priced by catalog {c} version {v}"), 7.5));
        }
    }
    r.push(rule());
    r.push(Row(
        spread("Total", &money(inv.total_minor, &inv.currency)),
        SIZE,
    ));
    if inv.amount_paid_minor > 0 {
        r.push(Row(
            spread("Paid", &money(inv.amount_paid_minor, &inv.currency)),
            SIZE,
        ));
        r.push(Row(
            spread("Amount due", &money(inv.due(), &inv.currency)),
            SIZE,
        ));
    }
    r.push(Row(String::new(), SIZE));
    if let Some(sha) = &inv.content_sha256 {
        r.push(Row(format!("Content SHA-256: {sha}"), 7.0));
        r.push(Row(
            "(the same digest is in this invoice's finalization entry of the audit ledger)".into(),
            7.0,
        ));
    }
    r
}

/// Renders `inv` (finalized, paid or void) as PDF bytes; long invoices run onto more A4 pages.
///
/// Errors: `Internal` if the embedded font does not load or krilla fails (neither happens with
/// the bundled font).
pub fn render(inv: &Invoice, tenant_name: &str) -> Result<Vec<u8>> {
    let font = Font::new(FONT.into(), 0)
        .ok_or_else(|| Error::Internal("the bundled invoice font does not load".into()))?;
    let mut doc = Document::new();
    doc.set_metadata(
        Metadata::new()
            .title(format!(
                "Invoice {}",
                inv.number.as_deref().unwrap_or("(draft)")
            ))
            .creator("Tenantry".into()),
    );
    let rows = rows(inv, tenant_name);
    let per_page = ((PAGE_H - 2.0 * MARGIN) / LEADING) as usize;
    let settings =
        PageSettings::from_wh(PAGE_W, PAGE_H).ok_or_else(|| Error::Internal("page size".into()))?;
    let pages = rows.chunks(per_page.max(1));
    let count = pages.len();
    for (n, chunk) in pages.enumerate() {
        let mut page = doc.start_page_with(settings.clone());
        let mut surface = page.surface();
        let mut y = MARGIN;
        for Row(text, size) in chunk {
            y += if *size > SIZE { *size + 4.0 } else { LEADING };
            if !text.is_empty() {
                surface.draw_text(
                    Point::from_xy(MARGIN, y),
                    font.clone(),
                    *size,
                    text,
                    false,
                    TextDirection::Auto,
                );
            }
        }
        if count > 1 {
            surface.draw_text(
                Point::from_xy(MARGIN, PAGE_H - MARGIN / 2.0),
                font.clone(),
                7.0,
                &format!("Page {} of {count}", n + 1),
                false,
                TextDirection::Auto,
            );
        }
        surface.finish();
        page.finish();
    }
    doc.finish()
        .map_err(|e| Error::Internal(format!("invoice PDF: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_in_the_page_width() {
        assert_eq!(columns("a", "1", "2", "USD 3.00").chars().count(), COLS);
        assert_eq!(spread("Total", "USD 12.00").chars().count(), COLS);
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }
}
