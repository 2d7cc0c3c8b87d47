//! The rules of invoices: opening drafts, finalizing (numbering, immutability, the content's
//! SHA-256 in the ledger), payments, failures, voids, overdue invoices and delinquent tenants,
//! and billing profiles. Each change is one write with its audit entry.

use std::ops::ControlFlow;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::model::*;
use super::queries;
use crate::audit::ledger::{Audit, Subject};
use crate::clock::{rfc3339_micros, to_micros};
use crate::config::BillingConfig;
use crate::error::{Error, Result};
use crate::metering::model::{counter, is_open, period_of};
use crate::store::keys::{Key, KeyReader};
use crate::store::{Dir, Range, Reader, WriteCtx};
use crate::tenants::model::{State, Tenant};

/// Stores `new` (replacing `old`) with its index entries, and its period row when it is new or
/// stops (or starts again) being a draft.
fn save(ctx: &mut WriteCtx<'_>, old: Option<&Invoice>, new: &mut Invoice) -> Result<()> {
    new.amount_due_minor = new.due();
    let old_keys = old.map(index_keys).unwrap_or_default();
    let new_keys = index_keys(new);
    for k in old_keys.iter().filter(|k| !new_keys.contains(k)) {
        ctx.delete(INVOICE_INDEX, k)?;
    }
    for k in new_keys.iter().filter(|k| !old_keys.contains(k)) {
        ctx.put(INVOICE_INDEX, k, &[])?;
    }
    let mut stored = new.clone();
    if stored.status == Status::Draft {
        // A draft's lines are computed when read.
        stored.lines.clear();
        stored.anomalies.clear();
        stored.total_minor = 0;
    }
    ctx.put_record(INVOICES, new.id.as_bytes(), &InvoiceRecord::V1(stored))?;
    let draft = new.status == Status::Draft;
    if old.is_none_or(|o| (o.status == Status::Draft) != draft) {
        ctx.put(
            INVOICE_PERIODS,
            &period_key(&new.tenant_id, new.period),
            &period_value(&new.id, draft),
        )?;
    }
    ctx.touch(crate::store::Topic::Tenant(new.tenant_id));
    Ok(())
}

/// Does `t` get invoices: not offboarded, and on a plan or pinned to a catalog version?
pub fn billable(r: &impl Reader, t: &Tenant) -> Result<bool> {
    Ok(t.state != State::Offboarded
        && (t.plan.is_some() || crate::catalogs::queries::pin(r, &t.id)?.is_some()))
}

/// Opens `tenant`'s draft invoice of `period` unless one exists; returns its id. Called in the
/// writes that make a tenant billable (plan assignment, catalog pin) and that meter usage, and
/// by the `finalize_invoices` job for every billable tenant at the start of a period.
pub fn ensure_draft(ctx: &mut WriteCtx<'_>, tenant: &Uuid, period: u32) -> Result<Uuid> {
    if let Some(id) = queries::of_period(ctx, tenant, period)? {
        return Ok(id);
    }
    open_draft(ctx, tenant, period)
}

/// Writes a new draft of `tenant`'s `period`, which has none.
fn open_draft(ctx: &mut WriteCtx<'_>, tenant: &Uuid, period: u32) -> Result<Uuid> {
    let id = Uuid::now_v7();
    let mut inv = Invoice::draft(id, *tenant, period, ctx.now);
    save(ctx, None, &mut inv)?;
    Ok(id)
}

/// Opens the current period's draft of `tenant` when it is billable (the hook of plan
/// assignments and catalog pins).
pub fn open_current(ctx: &mut WriteCtx<'_>, tenant: &Uuid) -> Result<()> {
    let t = crate::tenants::directory::load(ctx, tenant)?;
    if billable(ctx, &t)? {
        ensure_draft(ctx, tenant, period_of(ctx.now))?;
    }
    Ok(())
}

/// The canonical content of a finalized invoice, whose SHA-256 the finalization's audit entry
/// holds: every field that can never change after finalization, as RFC 8785 (JCS) JSON.
/// Payments and voids are not in it: they are later, separately audited facts.
pub fn canonical(inv: &Invoice) -> Value {
    let lines: Vec<Value> = inv
        .lines
        .iter()
        .map(|l| {
            json!({
                "kind": l.kind.as_str(),
                "description": l.description,
                "sku": l.sku,
                "unit": l.unit,
                "quantity": l.quantity,
                "included": l.included,
                "amount_minor": l.amount_minor,
                "catalog_id": l.catalog_id.map(|c| c.to_string()),
                "catalog_version": l.catalog_version,
                "plan": l.plan,
            })
        })
        .collect();
    json!({
        "id": inv.id.to_string(),
        "number": inv.number,
        "tenant_id": inv.tenant_id.to_string(),
        "period": inv.period,
        "currency": inv.currency,
        "issuer": inv.issuer,
        "bill_to": inv.bill_to.as_ref().map(|b| json!({
            "name": b.name, "email": b.email, "address": b.address,
            "tax_id": b.tax_id, "po_number": b.po_number,
        })),
        "lines": lines,
        "total_minor": inv.total_minor,
        "issued_at": inv.issued_at.map(rfc3339_micros),
        "due_at": inv.due_at.map(rfc3339_micros),
    })
}

/// Hex SHA-256 of [`canonical`].
///
/// Errors: `Internal` if the JSON cannot be canonicalized (it always can).
pub fn content_sha256(inv: &Invoice) -> Result<String> {
    let mut v = canonical(inv);
    crate::audit::canonical::safe_integers(&mut v);
    let bytes = crate::audit::canonical::to_vec_safe(&v)
        .map_err(|e| Error::Internal(format!("invoice canonical form: {e}")))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// Finalizes a draft (operator guide §4): prices it one last time, takes the next number of
/// the issuer's sequence (in this write, so numbers have no gaps), fixes the issuer and the
/// tenant's billing profile, sets the due date (net days) and writes `invoice.finalized.v1`
/// with the SHA-256 of the canonical content. An invoice of 0 is paid at once. From then on the
/// period takes no more usage events (`closed_period`).
///
/// Errors: 404; 409 `invoice_not_draft`, `currency_mismatch`.
pub fn finalize(ctx: &mut WriteCtx<'_>, cfg: &BillingConfig, id: &Uuid) -> Result<Invoice> {
    let old = queries::stored(ctx, id)?;
    if old.status != Status::Draft {
        return Err(Error::conflict(
            INVOICE_NOT_DRAFT,
            format!(
                "invoice {} is {}: only a draft can be finalized",
                old.number.as_deref().unwrap_or(&id.to_string()),
                old.status.as_str()
            ),
        ));
    }
    let t = crate::tenants::directory::load(ctx, &old.tenant_id)?;
    let priced = queries::price_period(ctx, &t, old.period)?;
    if let Some(m) = priced.mismatch {
        return Err(Error::conflict(CURRENCY_MISMATCH, m));
    }
    let seq_key = format!("seq\0{}", cfg.number_prefix);
    let seq = counter(ctx.get(INVOICE_COUNTERS, seq_key.as_bytes())?) + 1;
    ctx.put(INVOICE_COUNTERS, seq_key.as_bytes(), &seq.to_be_bytes())?;
    let profile = queries::profile(ctx, &t.id)?;
    let mut bill_to = profile.bill_to;
    if bill_to.name.is_empty() {
        bill_to.name = t.display_name.clone();
    }
    if bill_to.email.is_none() {
        bill_to.email = t.contact_email.clone();
    }
    let now = ctx.now;
    let net = profile.net_days.unwrap_or(cfg.net_days);
    let mut new = Invoice {
        status: Status::Finalized,
        number: Some(number(&cfg.number_prefix, seq)),
        currency: priced.currency,
        lines: priced.lines,
        total_minor: priced.total_minor,
        anomalies: priced.anomalies,
        issuer: std::iter::once(cfg.issuer.clone())
            .chain(cfg.issuer_address.iter().cloned())
            .collect(),
        bill_to: Some(bill_to),
        issued_at: Some(now),
        due_at: Some(now + Duration::days(i64::from(net))),
        ..old.clone()
    };
    let sha = content_sha256(&new)?;
    new.content_sha256 = Some(sha.clone());
    if new.total_minor <= 0 {
        new.status = Status::Paid;
        new.paid_at = Some(now);
    }
    save(ctx, Some(&old), &mut new)?;
    ctx.audit(
        "invoice.finalized.v1",
        &Subject::in_tenant(t.id, "invoice", id),
        json!({
            "number": new.number,
            "period": new.period,
            "currency": new.currency,
            "total_minor": new.total_minor,
            "lines": new.lines.len(),
            "due_at": new.due_at.map(rfc3339_micros),
            "content_sha256": sha,
        }),
    )?;
    Ok(new)
}

/// Loads a finalized, unpaid invoice.
fn open_invoice(r: &impl Reader, id: &Uuid) -> Result<Invoice> {
    let inv = queries::stored(r, id)?;
    if inv.status != Status::Finalized {
        return Err(Error::conflict(
            INVOICE_NOT_OPEN,
            format!(
                "invoice {} is {}: payments, failures and voids apply to a finalized, unpaid invoice",
                inv.number.as_deref().unwrap_or(&id.to_string()),
                inv.status.as_str()
            ),
        ));
    }
    Ok(inv)
}

/// After `inv` stopped being overdue: ends its tenant's delinquency when no overdue invoice is
/// left (`tenant.delinquency.cleared.v1`).
fn settle(ctx: &mut WriteCtx<'_>, tenant: &Uuid) -> Result<()> {
    let prefix = Key::new().u8(IDX_OVERDUE).uuid(tenant).into_bytes();
    let mut any = false;
    ctx.scan(
        INVOICE_INDEX,
        &Range::prefix(&prefix),
        Dir::Asc,
        &mut |_, _| {
            any = true;
            Ok(ControlFlow::Break(()))
        },
    )?;
    if !any && ctx.delete(DELINQUENT, tenant.as_bytes())? {
        bump_delinquent(ctx, -1)?;
        ctx.audit(
            "tenant.delinquency.cleared.v1",
            &Subject::tenant(*tenant),
            json!({}),
        )?;
    }
    Ok(())
}

fn bump_delinquent(ctx: &mut WriteCtx<'_>, delta: i64) -> Result<()> {
    let n = counter(ctx.get(INVOICE_COUNTERS, DELINQUENT_COUNT.as_bytes())?);
    let next = n.saturating_add_signed(delta);
    ctx.put(
        INVOICE_COUNTERS,
        DELINQUENT_COUNT.as_bytes(),
        &next.to_be_bytes(),
    )?;
    Ok(())
}

/// Records a payment of `amount_minor` (a bank transfer, a Stripe charge): a partial payment
/// lowers the amount due (`invoice.payment.recorded.v1`); the one that settles it marks the
/// invoice paid (`invoice.paid.v1`) and may end the tenant's delinquency.
///
/// Errors: 404; 409 `invoice_not_open`, `overpayment`; 422 a non-positive amount or a bad
/// reference.
pub fn record_payment(
    ctx: &mut WriteCtx<'_>,
    id: &Uuid,
    amount_minor: i64,
    reference: Option<&str>,
) -> Result<Invoice> {
    let reference = reference
        .map(|r| parse_text("reference", r).map_err(|m| Error::invalid("reference", m)))
        .transpose()?;
    if amount_minor <= 0 {
        return Err(Error::invalid(
            "amount_minor",
            "amount_minor must be a positive number of minor units",
        ));
    }
    let old = open_invoice(ctx, id)?;
    let due = old.due();
    if amount_minor > due {
        return Err(Error::conflict(
            OVERPAYMENT,
            format!("{amount_minor} is more than the {due} still due"),
        ));
    }
    let mut new = old.clone();
    new.amount_paid_minor += amount_minor;
    new.payment_reference = reference.clone().or(old.payment_reference.clone());
    let paid = new.amount_paid_minor >= new.total_minor;
    if paid {
        new.status = Status::Paid;
        new.paid_at = Some(ctx.now);
        new.overdue = false;
    }
    save(ctx, Some(&old), &mut new)?;
    ctx.audit(
        if paid {
            "invoice.paid.v1"
        } else {
            "invoice.payment.recorded.v1"
        },
        &Subject::in_tenant(new.tenant_id, "invoice", id),
        json!({
            "number": new.number,
            "amount_minor": amount_minor,
            "amount_paid_minor": new.amount_paid_minor,
            "currency": new.currency,
            "reference": reference,
        }),
    )?;
    if paid && old.overdue {
        settle(ctx, &new.tenant_id)?;
    }
    Ok(new)
}

/// Records a failed payment attempt (`invoice.payment_failed.v1`); the invoice stays open.
///
/// Errors: 404; 409 `invoice_not_open`; 422 a bad reason.
pub fn record_failure(ctx: &mut WriteCtx<'_>, id: &Uuid, reason: &str) -> Result<Invoice> {
    let reason = parse_text("reason", reason).map_err(|m| Error::invalid("reason", m))?;
    let old = open_invoice(ctx, id)?;
    let mut new = old.clone();
    new.payment_failures = new.payment_failures.saturating_add(1);
    new.last_payment_failure = Some(reason.clone());
    save(ctx, Some(&old), &mut new)?;
    ctx.audit(
        "invoice.payment_failed.v1",
        &Subject::in_tenant(new.tenant_id, "invoice", id),
        json!({"number": new.number, "reason": reason, "failures": new.payment_failures}),
    )?;
    Ok(new)
}

/// Voids a finalized invoice with no payment (`invoice.voided.v1`). It keeps its number, so
/// the sequence stays gapless; a voided invoice is no longer due.
///
/// Errors: 404; 409 `invoice_not_open`, `invoice_has_payments`; 422 a bad reason.
pub fn void(ctx: &mut WriteCtx<'_>, id: &Uuid, reason: &str) -> Result<Invoice> {
    let reason = parse_text("reason", reason).map_err(|m| Error::invalid("reason", m))?;
    let old = open_invoice(ctx, id)?;
    if old.amount_paid_minor > 0 {
        return Err(Error::conflict(
            INVOICE_HAS_PAYMENTS,
            "the invoice has payments recorded: refund them outside Tenantry and issue a credit instead",
        ));
    }
    let mut new = old.clone();
    new.status = Status::Void;
    new.voided_at = Some(ctx.now);
    new.void_reason = Some(reason.clone());
    new.overdue = false;
    save(ctx, Some(&old), &mut new)?;
    ctx.audit(
        "invoice.voided.v1",
        &Subject::in_tenant(new.tenant_id, "invoice", id),
        json!({"number": new.number, "reason": reason}),
    )?;
    if old.overdue {
        settle(ctx, &new.tenant_id)?;
    }
    Ok(new)
}

/// Meta key: the period whose drafts the job's walk last opened for every tenant.
pub const DRAFTS_OPENED: &str = "invoices.drafts_opened";

/// Most invoices one run of a job changes in one write.
pub const JOB_BATCH: usize = 200;

/// Marks finalized invoices past their due date overdue (`invoice.overdue.v1`), and their
/// tenants delinquent (`tenant.delinquent.v1`, once until cleared). At most [`JOB_BATCH`];
/// returns how many.
pub fn mark_overdue(ctx: &mut WriteCtx<'_>) -> Result<usize> {
    let now = ctx.now;
    let lo = Key::new().u8(IDX_OPEN_DUE).into_bytes();
    let hi = Key::new()
        .u8(IDX_OPEN_DUE)
        .i64(to_micros(now))
        .raw(&[0xff; 17])
        .into_bytes();
    let mut due: Vec<Uuid> = Vec::new();
    ctx.scan(
        INVOICE_INDEX,
        &Range::between(lo, hi),
        Dir::Asc,
        &mut |k, _| {
            let mut kr = KeyReader::new(&k[1..]);
            let _ = kr.i64();
            if let Some(id) = kr.uuid() {
                due.push(id);
            }
            Ok(if due.len() >= JOB_BATCH {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        },
    )?;
    for id in &due {
        let old = queries::stored(ctx, id)?;
        let mut new = old.clone();
        new.overdue = true;
        save(ctx, Some(&old), &mut new)?;
        ctx.audit(
            "invoice.overdue.v1",
            &Subject::in_tenant(new.tenant_id, "invoice", id),
            json!({
                "number": new.number,
                "amount_due_minor": new.due(),
                "currency": new.currency,
                "due_at": new.due_at.map(rfc3339_micros),
            }),
        )?;
        if !ctx.contains(DELINQUENT, new.tenant_id.as_bytes())? {
            ctx.put(
                DELINQUENT,
                new.tenant_id.as_bytes(),
                &to_micros(now).to_be_bytes(),
            )?;
            bump_delinquent(ctx, 1)?;
            ctx.audit(
                "tenant.delinquent.v1",
                &Subject::tenant(new.tenant_id),
                json!({"invoice": new.number, "amount_due_minor": new.due()}),
            )?;
        }
    }
    Ok(due.len())
}

/// Finalizes drafts of closed periods (a period closes once its late-event grace is over), at
/// most [`JOB_BATCH`] per write. A draft that cannot be finalized (its plan and catalog bill in
/// different currencies) is left as it is and reported. Returns `(finalized, problems)`.
pub fn finalize_closed(
    ctx: &mut WriteCtx<'_>,
    cfg: &BillingConfig,
    skip: &[Uuid],
) -> Result<(Vec<Uuid>, Vec<String>)> {
    let now = ctx.now;
    let current = period_of(now);
    let prefix = Key::new()
        .u8(IDX_STATUS)
        .u8(Status::Draft.code())
        .into_bytes();
    let mut drafts: Vec<Uuid> = Vec::new();
    ctx.scan(
        INVOICE_INDEX,
        &Range::prefix(&prefix),
        Dir::Asc,
        &mut |k, _| {
            let mut kr = KeyReader::new(&k[prefix.len()..]);
            let period = u32::try_from(kr.u64().unwrap_or(0)).unwrap_or(0);
            if period >= current || is_open(period, now) {
                return Ok(ControlFlow::Break(()));
            }
            if let Some(id) = kr.uuid()
                && !skip.contains(&id)
            {
                drafts.push(id);
            }
            Ok(if drafts.len() >= JOB_BATCH {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        },
    )?;
    let mut done = Vec::new();
    let mut problems = Vec::new();
    for id in drafts {
        let inv = queries::stored(ctx, &id)?;
        let t = crate::tenants::directory::load(ctx, &inv.tenant_id)?;
        if let Some(m) = queries::price_period(ctx, &t, inv.period)?.mismatch {
            problems.push(format!("{id}: {m}"));
            continue;
        }
        finalize(ctx, cfg, &id)?;
        done.push(id);
    }
    Ok((done, problems))
}

/// Opens the current period's draft for billable tenants after `after` (in id order), at most
/// [`JOB_BATCH`] tenants examined. Returns the last tenant examined (None: the walk is over)
/// and how many drafts were opened.
///
/// The walk runs once per period: its end is recorded (meta `invoices.drafts_opened`), and
/// tenants that become billable later get their draft in that write (plan, pin, first event).
pub fn open_drafts(ctx: &mut WriteCtx<'_>, after: Option<Uuid>) -> Result<(Option<Uuid>, usize)> {
    let period = period_of(ctx.now);
    if after.is_none() && crate::store::meta_u32(ctx, DRAFTS_OPENED)? == Some(period) {
        return Ok((None, 0));
    }
    let mut range = Range::all();
    if let Some(a) = after {
        range = range.after(a.as_bytes());
    }
    let mut ids: Vec<Uuid> = Vec::new();
    ctx.scan(
        crate::tenants::directory::TENANTS,
        &range,
        Dir::Asc,
        &mut |k, _| {
            if let Ok(id) = Uuid::from_slice(k) {
                ids.push(id);
            }
            Ok(if ids.len() >= JOB_BATCH {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        },
    )?;
    let mut opened = 0;
    for id in &ids {
        let t = crate::tenants::directory::load(ctx, id)?;
        if billable(ctx, &t)? && queries::of_period(ctx, id, period)?.is_none() {
            ensure_draft(ctx, id, period)?;
            opened += 1;
        }
    }
    let last = (ids.len() >= JOB_BATCH)
        .then(|| ids.last().copied())
        .flatten();
    if last.is_none() {
        crate::store::meta_put(ctx, DRAFTS_OPENED, &period.to_be_bytes())?;
    }
    Ok((last, opened))
}

/// A billing profile as asked for, unchecked.
#[derive(Clone, Debug, Default)]
pub struct ProfileDraft {
    /// Legal name (empty: the tenant's display name).
    pub name: Option<String>,
    /// Invoice email.
    pub email: Option<String>,
    /// Address lines.
    pub address: Vec<String>,
    /// Tax id.
    pub tax_id: Option<String>,
    /// PO number.
    pub po_number: Option<String>,
    /// Net days, 1–365.
    pub net_days: Option<u32>,
}

impl ProfileDraft {
    /// Checks every field, reporting all problems at once.
    ///
    /// Errors: 422 `validation_failed`.
    pub fn parse(self) -> Result<Profile> {
        let mut v = crate::error::Validator::new();
        let opt = |field: &str, s: Option<String>, v: &mut crate::error::Validator| {
            s.filter(|s| !s.trim().is_empty())
                .and_then(|s| v.take(field, parse_text(field, &s)))
        };
        let name = opt("name", self.name, &mut v).unwrap_or_default();
        let email = self
            .email
            .filter(|s| !s.trim().is_empty())
            .and_then(|s| v.take("email", crate::tenants::model::parse_email(&s)));
        if self.address.len() > MAX_ADDRESS_LINES {
            v.add(
                "address",
                format!("at most {MAX_ADDRESS_LINES} address lines"),
            );
        }
        let address: Vec<String> = self
            .address
            .iter()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| v.take("address", parse_text("address", l)))
            .collect();
        let tax_id = opt("tax_id", self.tax_id, &mut v);
        let po_number = opt("po_number", self.po_number, &mut v);
        if self.net_days.is_some_and(|d| !(1..=365).contains(&d)) {
            v.add("net_days", "net_days must be 1-365");
        }
        v.finish()?;
        Ok(Profile {
            bill_to: BillTo {
                name,
                email,
                address,
                tax_id,
                po_number,
            },
            net_days: self.net_days,
        })
    }
}

/// Replaces `tenant`'s billing profile (`tenant.billing_profile.updated.v1`). It applies to
/// invoices finalized from now on; finalized ones keep what they printed.
///
/// Errors: 404 for an unknown tenant.
pub fn set_profile(ctx: &mut WriteCtx<'_>, tenant: &Uuid, p: &Profile) -> Result<Profile> {
    crate::tenants::directory::load(ctx, tenant)?;
    if queries::profile(ctx, tenant)? == *p {
        return Ok(p.clone());
    }
    ctx.put_record(
        BILLING_PROFILES,
        tenant.as_bytes(),
        &ProfileRecord::V1(p.clone()),
    )?;
    ctx.audit(
        "tenant.billing_profile.updated.v1",
        &Subject::tenant(*tenant),
        json!({"net_days": p.net_days, "has_tax_id": p.bill_to.tax_id.is_some()}),
    )?;
    Ok(p.clone())
}

/// Shredding a tenant deletes its billing profile (contact details) and open drafts; finalized
/// invoices are accounting records and are kept, with what they printed.
pub fn shred(ctx: &mut WriteCtx<'_>, tenant: &Uuid) -> Result<u64> {
    let mut n = u64::from(ctx.delete(BILLING_PROFILES, tenant.as_bytes())?);
    if ctx.delete(DELINQUENT, tenant.as_bytes())? {
        bump_delinquent(ctx, -1)?;
        n += 1;
    }
    let prefix = Key::new().uuid(tenant).into_bytes();
    let mut drafts = Vec::new();
    ctx.scan(
        INVOICE_PERIODS,
        &Range::prefix(&prefix),
        Dir::Asc,
        &mut |_, v| {
            if let Some((id, true)) = parse_period_value(v) {
                drafts.push(id);
            }
            Ok(ControlFlow::Continue(()))
        },
    )?;
    for id in drafts {
        let inv = queries::stored(ctx, &id)?;
        if inv.status == Status::Draft {
            for k in index_keys(&inv) {
                ctx.delete(INVOICE_INDEX, &k)?;
            }
            ctx.delete(INVOICES, id.as_bytes())?;
            ctx.delete(INVOICE_PERIODS, &period_key(tenant, inv.period))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Whether `tenant`'s period `period` takes usage, opening its draft when it has none: a draft
/// takes events while its period is open, and a finalized (paid, void) invoice closes its period
/// at once. The ingest's check, with one read of the period's row (`INVOICE_PERIODS`), which
/// tells a draft.
pub fn take_usage(ctx: &mut WriteCtx<'_>, tenant: &Uuid, period: u32) -> Result<bool> {
    match queries::period_row(ctx, tenant, period)? {
        Some((_, draft)) => Ok(draft),
        None => open_draft(ctx, tenant, period).map(|_| true),
    }
}

/// The due instant's display for notices (`2026-12-31`).
pub fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Invoice {
        Invoice {
            id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            period: 202611,
            status: Status::Finalized,
            number: Some("INV-000001".into()),
            currency: "EUR".into(),
            lines: vec![Line {
                kind: LineKind::Usage,
                description: "api_call (api_call)".into(),
                sku: Some("api_call".into()),
                unit: Some("api_call".into()),
                quantity: 1500,
                included: 1000,
                amount_minor: 250,
                catalog_id: Some(Uuid::nil()),
                catalog_version: Some(2),
                plan: None,
            }],
            total_minor: 250,
            amount_paid_minor: 0,
            amount_due_minor: 0,
            issuer: vec!["Tenantry".into()],
            bill_to: Some(BillTo {
                name: "Acme".into(),
                ..BillTo::default()
            }),
            issued_at: Some(chrono::DateTime::from_timestamp(1_764_547_200, 0).unwrap()),
            due_at: None,
            paid_at: None,
            payment_reference: None,
            payment_failures: 0,
            last_payment_failure: None,
            voided_at: None,
            void_reason: None,
            overdue: false,
            anomalies: vec![],
            content_sha256: None,
            created_at: chrono::DateTime::from_timestamp(0, 0).unwrap(),
        }
    }

    #[test]
    fn the_content_digest_ignores_payments_and_sees_every_line_change() {
        let a = sample();
        let mut paid = a.clone();
        paid.status = Status::Paid;
        paid.amount_paid_minor = 250;
        assert_eq!(content_sha256(&a).unwrap(), content_sha256(&paid).unwrap());
        let mut edited = a.clone();
        edited.lines[0].amount_minor = 251;
        assert_ne!(
            content_sha256(&a).unwrap(),
            content_sha256(&edited).unwrap()
        );
        assert_eq!(content_sha256(&a).unwrap().len(), 64);
    }

    #[test]
    fn a_profile_is_checked_field_by_field() {
        let bad = ProfileDraft {
            email: Some("not-an-email".into()),
            net_days: Some(0),
            address: vec!["x".into(); MAX_ADDRESS_LINES + 1],
            ..ProfileDraft::default()
        };
        let err = bad.parse().unwrap_err().to_string();
        assert!(err.contains("email") || err.contains("validation"), "{err}");
        let ok = ProfileDraft {
            name: Some(" Acme GmbH ".into()),
            net_days: Some(14),
            ..ProfileDraft::default()
        }
        .parse()
        .unwrap();
        assert_eq!(ok.bill_to.name, "Acme GmbH");
    }
}
