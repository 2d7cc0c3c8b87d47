//! CSV documents of invoices (RFC 4180, written by the `csv` crate): one invoice's line items,
//! the reconciliation export of finalized invoices (the fields an accountant matches Stripe
//! payouts or bank statements on), and showback by business unit. Column names are the JSON
//! field names.

use super::model::Invoice;
use super::queries::ShowbackRow;
use crate::clock::rfc3339_micros;
use crate::error::{Error, Result};
use crate::tenants::api::cell;

/// Columns of an invoice's CSV: one row per line item.
pub const LINE_COLUMNS: [&str; 16] = [
    "number",
    "invoice_id",
    "tenant_id",
    "period",
    "status",
    "currency",
    "line",
    "kind",
    "description",
    "sku",
    "unit",
    "quantity",
    "included",
    "amount_minor",
    "catalog_id",
    "catalog_version",
];

/// Columns of the reconciliation export.
pub const RECONCILIATION_COLUMNS: [&str; 16] = [
    "number",
    "invoice_id",
    "tenant_id",
    "tenant_name",
    "period",
    "status",
    "currency",
    "total_minor",
    "amount_paid_minor",
    "amount_due_minor",
    "issued_at",
    "due_at",
    "paid_at",
    "payment_reference",
    "overdue",
    "content_sha256",
];

/// Columns of showback.
pub const SHOWBACK_COLUMNS: [&str; 7] = [
    "period",
    "business_unit_id",
    "business_unit",
    "sku",
    "quantity",
    "currency",
    "amount_minor",
];

fn finish(w: csv::Writer<Vec<u8>>) -> Result<Vec<u8>> {
    w.into_inner().map_err(|e| Error::Internal(e.to_string()))
}

fn internal(e: csv::Error) -> Error {
    Error::Internal(e.to_string())
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// One invoice's line items.
pub fn invoice(inv: &Invoice) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(LINE_COLUMNS).map_err(internal)?;
    for (i, l) in inv.lines.iter().enumerate() {
        w.write_record([
            opt(&inv.number),
            inv.id.to_string(),
            inv.tenant_id.to_string(),
            inv.period.to_string(),
            inv.status.as_str().to_string(),
            inv.currency.clone(),
            (i + 1).to_string(),
            l.kind.as_str().to_string(),
            cell(&l.description),
            opt(&l.sku),
            opt(&l.unit),
            l.quantity.to_string(),
            l.included.to_string(),
            l.amount_minor.to_string(),
            opt(&l.catalog_id),
            opt(&l.catalog_version),
        ])
        .map_err(internal)?;
    }
    finish(w)
}

/// The reconciliation export: one row per invoice with its tenant's name.
pub fn reconciliation(rows: &[(Invoice, String)]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(RECONCILIATION_COLUMNS).map_err(internal)?;
    for (inv, name) in rows {
        w.write_record([
            opt(&inv.number),
            inv.id.to_string(),
            inv.tenant_id.to_string(),
            cell(name),
            inv.period.to_string(),
            inv.status.as_str().to_string(),
            inv.currency.clone(),
            inv.total_minor.to_string(),
            inv.amount_paid_minor.to_string(),
            inv.due().to_string(),
            inv.issued_at.map(rfc3339_micros).unwrap_or_default(),
            inv.due_at.map(rfc3339_micros).unwrap_or_default(),
            inv.paid_at.map(rfc3339_micros).unwrap_or_default(),
            cell(&opt(&inv.payment_reference)),
            inv.overdue.to_string(),
            opt(&inv.content_sha256),
        ])
        .map_err(internal)?;
    }
    finish(w)
}

/// Showback of a period.
pub fn showback(period: u32, currency: &str, rows: &[ShowbackRow]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(SHOWBACK_COLUMNS).map_err(internal)?;
    for r in rows {
        w.write_record([
            period.to_string(),
            opt(&r.business_unit_id),
            cell(&r.business_unit),
            r.sku.clone(),
            r.quantity.to_string(),
            currency.to_string(),
            r.amount_minor.to_string(),
        ])
        .map_err(internal)?;
    }
    finish(w)
}
