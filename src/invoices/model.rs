//! Invoices (operator guide §4, tenant admin guide §1, PRODUCT.md 14): the stored invoice, its
//! line items, states and indexes, and the billing profile a tenant is invoiced under.
//!
//! Vocabulary from Stripe Billing and Lago: each tenant has one **draft** (upcoming) invoice per
//! billing period that follows usage; **finalizing** it fixes its lines, gives it the next
//! number of the issuer's gapless sequence and records the SHA-256 of its canonical content in
//! the ledger; a finalized invoice is then **paid** or **void**, and nothing else about it ever
//! changes. A finalized invoice unpaid past its due date is **overdue**, which makes its tenant
//! **delinquent** until every overdue invoice is paid or voided.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::Table;
use crate::store::keys::Key;

/// Invoices: `id -> InvoiceRecord` (drafts hold no lines: theirs are computed from the
/// maintained usage aggregates when read).
pub const INVOICES: Table = Table::new("invoices");
/// A tenant's invoice of a period: `tenant, period -> id ‖ draft` (one per tenant and period):
/// the invoice id (16 bytes), then 1 while it is a draft and 0 once it is finalized, paid or
/// void ([`period_value`]). The byte (schema v7) lets usage ingest tell whether a period still
/// takes usage from this one row, without reading and decoding the invoice: on
/// `peers/ingest.sql`'s work, where each event is another tenant's, that second read was a
/// tenth of the writer's time (issue 10).
pub const INVOICE_PERIODS: Table = Table::new("invoice_periods");
/// Secondary indexes (the `IDX_*` families below) `-> ()`.
pub const INVOICE_INDEX: Table = Table::new("invoice_index");
/// Delinquent tenants: `tenant -> since (µs, i64 big-endian)`.
pub const DELINQUENT: Table = Table::new("invoice_delinquent");
/// Billing profiles: `tenant -> ProfileRecord`.
pub const BILLING_PROFILES: Table = Table::new("billing_profiles");
/// Counters and sequences: `name -> u64` (`seq\0<prefix>`, `delinquent`).
pub const INVOICE_COUNTERS: Table = Table::new("invoice_counters");

/// Every invoice, newest period first: `IDX_ALL, period, id`.
pub const IDX_ALL: u8 = 1;
/// By tenant: `IDX_TENANT, tenant, period, id`.
pub const IDX_TENANT: u8 = 2;
/// By status: `IDX_STATUS, status, period, id`.
pub const IDX_STATUS: u8 = 3;
/// Finalized, unpaid, not yet overdue, by due date: `IDX_OPEN_DUE, due µs, id`.
pub const IDX_OPEN_DUE: u8 = 4;
/// Overdue invoices of a tenant: `IDX_OVERDUE, tenant, id`.
pub const IDX_OVERDUE: u8 = 5;

/// The delinquent-tenant counter's name in [`INVOICE_COUNTERS`].
pub const DELINQUENT_COUNT: &str = "delinquent";

/// Stable problem codes.
pub const INVOICE_NOT_DRAFT: &str = "invoice_not_draft";
/// A payment or void of an invoice that is not finalized (draft, paid or void).
pub const INVOICE_NOT_OPEN: &str = "invoice_not_open";
/// The plan's currency differs from the pinned catalog's.
pub const CURRENCY_MISMATCH: &str = "currency_mismatch";
/// A payment larger than the amount due.
pub const OVERPAYMENT: &str = "overpayment";
/// A void of an invoice that has payments recorded.
pub const INVOICE_HAS_PAYMENTS: &str = "invoice_has_payments";

/// Longest reason, reference or profile field.
pub const MAX_TEXT: usize = 200;
/// Most address lines.
pub const MAX_ADDRESS_LINES: usize = 6;
/// Usage this many times the trailing average is an anomaly (operator guide §4: "sudden 10×
/// usage").
pub const ANOMALY_FACTOR: u64 = 10;
/// Periods the anomaly's trailing average covers.
pub const ANOMALY_PERIODS: u32 = 3;

/// An invoice's state. The numbers are the file format and index keys: never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Upcoming: follows usage, not yet numbered.
    Draft = 0,
    /// Numbered and immutable, awaiting payment.
    Finalized = 1,
    /// Paid in full.
    Paid = 2,
    /// Cancelled after finalization; keeps its number.
    Void = 3,
}

impl Status {
    /// Every state.
    pub const ALL: [Status; 4] = [Status::Draft, Status::Finalized, Status::Paid, Status::Void];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Finalized => "finalized",
            Status::Paid => "paid",
            Status::Void => "void",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Its index code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// What a line bills.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    /// The plan's recurring fee.
    Plan,
    /// Metered usage of one SKU.
    Usage,
}

impl LineKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            LineKind::Plan => "plan",
            LineKind::Usage => "usage",
        }
    }
}

/// One line item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Line {
    /// Plan fee or usage.
    pub kind: LineKind,
    /// What it is, as printed.
    pub description: String,
    /// The SKU (usage lines).
    pub sku: Option<String>,
    /// The SKU's unit (usage lines).
    pub unit: Option<String>,
    /// Units used in the period (1 for the plan fee).
    pub quantity: u64,
    /// Units the plan includes, not billed.
    pub included: u64,
    /// Minor units: the plan fee, or the tiers applied to `quantity - included`.
    pub amount_minor: i64,
    /// The catalog that priced it (usage lines).
    pub catalog_id: Option<Uuid>,
    /// The catalog version that priced it (usage lines).
    pub catalog_version: Option<u32>,
    /// The plan (plan fee lines).
    pub plan: Option<String>,
}

/// A SKU whose usage this period is more than [`ANOMALY_FACTOR`]× its trailing
/// [`ANOMALY_PERIODS`]-period average.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Anomaly {
    /// SKU.
    pub sku: String,
    /// Units this period.
    pub quantity: u64,
    /// Average units of the previous periods (rounded down).
    pub trailing_average: u64,
}

/// Who is invoiced, as printed on a finalized invoice.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BillTo {
    /// Legal name (the tenant's display name when the profile has none).
    pub name: String,
    /// Where invoices go.
    pub email: Option<String>,
    /// Address lines.
    pub address: Vec<String>,
    /// VAT or tax id.
    pub tax_id: Option<String>,
    /// The customer's purchase order reference.
    pub po_number: Option<String>,
}

/// A tenant's billing profile (F21.05.02): how it is invoiced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Profile {
    /// Printed as the invoice's recipient.
    pub bill_to: BillTo,
    /// Days to pay (None: the install's `[billing] net_days`).
    pub net_days: Option<u32>,
}

/// The stored profile. Its variant order is the file format.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ProfileRecord {
    /// Version 1.
    V1(Profile),
}

/// An invoice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Invoice {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// Tenant.
    pub tenant_id: Uuid,
    /// Billing period `yyyymm` (text on the wire, like the live meter's `period`).
    #[serde(with = "period_text")]
    #[schema(value_type = String, example = "202611")]
    pub period: u32,
    /// State.
    pub status: Status,
    /// `INV-000042`, from finalization on.
    pub number: Option<String>,
    /// ISO 4217 (empty on a draft with nothing to bill).
    pub currency: String,
    /// Line items (computed live on a draft).
    pub lines: Vec<Line>,
    /// Sum of the lines, minor units.
    pub total_minor: i64,
    /// Payments recorded, minor units.
    pub amount_paid_minor: i64,
    /// Still due: the total less payments while finalized, else 0.
    pub amount_due_minor: i64,
    /// Issuer name and address lines, from finalization on.
    pub issuer: Vec<String>,
    /// Recipient, from finalization on.
    pub bill_to: Option<BillTo>,
    /// Finalization time.
    pub issued_at: Option<DateTime<Utc>>,
    /// Payment due (finalization + net days).
    pub due_at: Option<DateTime<Utc>>,
    /// When it was paid in full.
    pub paid_at: Option<DateTime<Utc>>,
    /// The last payment's reference (bank transfer id, Stripe charge id).
    pub payment_reference: Option<String>,
    /// Failed payment attempts recorded.
    pub payment_failures: u32,
    /// The last failure's reason.
    pub last_payment_failure: Option<String>,
    /// When it was voided, and why.
    pub voided_at: Option<DateTime<Utc>>,
    /// Why it was voided.
    pub void_reason: Option<String>,
    /// Unpaid past its due date.
    pub overdue: bool,
    /// SKUs with unusual usage.
    pub anomalies: Vec<Anomaly>,
    /// Hex SHA-256 of the canonical content (see [`crate::invoices::service::canonical`]),
    /// from finalization on; the finalization's audit entry holds the same digest.
    pub content_sha256: Option<String>,
    /// When the draft was opened.
    pub created_at: DateTime<Utc>,
}

impl Invoice {
    /// A draft with nothing priced yet.
    pub fn draft(id: Uuid, tenant_id: Uuid, period: u32, created_at: DateTime<Utc>) -> Invoice {
        Invoice {
            id,
            tenant_id,
            period,
            status: Status::Draft,
            number: None,
            currency: String::new(),
            lines: Vec::new(),
            total_minor: 0,
            amount_paid_minor: 0,
            amount_due_minor: 0,
            issuer: Vec::new(),
            bill_to: None,
            issued_at: None,
            due_at: None,
            paid_at: None,
            payment_reference: None,
            payment_failures: 0,
            last_payment_failure: None,
            voided_at: None,
            void_reason: None,
            overdue: false,
            anomalies: Vec::new(),
            content_sha256: None,
            created_at,
        }
    }

    /// Minor units still due (what `amount_due_minor` holds once saved).
    pub fn due(&self) -> i64 {
        match self.status {
            Status::Finalized => self.total_minor.saturating_sub(self.amount_paid_minor),
            _ => 0,
        }
    }
}

/// The stored invoice (the wire type too: enums go to disk by variant index and to JSON by
/// name). Its variant order is the file format.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum InvoiceRecord {
    /// Version 1.
    V1(Invoice),
}

/// A period as its `yyyymm` text, on the wire and on disk alike.
mod period_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&p.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An [`INVOICE_PERIODS`] value: the invoice id, then whether it is a draft.
pub fn period_value(id: &Uuid, draft: bool) -> [u8; 17] {
    let mut v = [0u8; 17];
    v[..16].copy_from_slice(id.as_bytes());
    v[16] = u8::from(draft);
    v
}

/// Reads an [`INVOICE_PERIODS`] value: `(id, draft)`, or `None` when it is not 17 bytes.
pub fn parse_period_value(v: &[u8]) -> Option<(Uuid, bool)> {
    let v: &[u8; 17] = v.try_into().ok()?;
    Some((Uuid::from_slice(&v[..16]).ok()?, v[16] == 1))
}

/// Key of a tenant's invoice of a period.
pub fn period_key(tenant: &Uuid, period: u32) -> Vec<u8> {
    Key::new().uuid(tenant).u64(u64::from(period)).into_bytes()
}

/// Every index key of `inv`.
pub fn index_keys(inv: &Invoice) -> Vec<Vec<u8>> {
    let p = u64::from(inv.period);
    let mut keys = vec![
        Key::new().u8(IDX_ALL).u64(p).uuid(&inv.id).into_bytes(),
        Key::new()
            .u8(IDX_TENANT)
            .uuid(&inv.tenant_id)
            .u64(p)
            .uuid(&inv.id)
            .into_bytes(),
        Key::new()
            .u8(IDX_STATUS)
            .u8(inv.status.code())
            .u64(p)
            .uuid(&inv.id)
            .into_bytes(),
    ];
    if inv.status == Status::Finalized {
        if inv.overdue {
            keys.push(
                Key::new()
                    .u8(IDX_OVERDUE)
                    .uuid(&inv.tenant_id)
                    .uuid(&inv.id)
                    .into_bytes(),
            );
        } else if let Some(due) = inv.due_at {
            keys.push(
                Key::new()
                    .u8(IDX_OPEN_DUE)
                    .i64(crate::clock::to_micros(due))
                    .uuid(&inv.id)
                    .into_bytes(),
            );
        }
    }
    keys
}

/// Checks free text: trimmed, 1–[`MAX_TEXT`] characters, no control characters.
pub fn parse_text(field: &str, s: &str) -> std::result::Result<String, String> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > MAX_TEXT || t.chars().any(char::is_control) {
        return Err(format!(
            "{field} must be 1-{MAX_TEXT} characters without control characters"
        ));
    }
    Ok(t.to_string())
}

/// The invoice number of sequence value `seq`: `<prefix>-<seq, 6 digits at least>`.
pub fn number(prefix: &str, seq: u64) -> String {
    format!("{prefix}-{seq:06}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_format_codes_are_pinned() {
        let codes: Vec<u8> = Status::ALL.iter().map(|s| s.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3]);
        assert_eq!(
            [IDX_ALL, IDX_TENANT, IDX_STATUS, IDX_OPEN_DUE, IDX_OVERDUE],
            [1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn numbers_are_zero_padded_and_grow_past_six_digits() {
        assert_eq!(number("INV", 42), "INV-000042");
        assert_eq!(number("A-1", 1_234_567), "A-1-1234567");
    }

    #[test]
    fn free_text_is_bounded() {
        assert!(parse_text("reason", "  wire received ").is_ok());
        assert!(parse_text("reason", "").is_err());
        assert!(parse_text("reason", "a\u{7}b").is_err());
        assert!(parse_text("reason", &"x".repeat(MAX_TEXT + 1)).is_err());
    }
}
