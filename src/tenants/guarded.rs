//! The tenant actions approval routes may hold (issue 11; HQ PRD §3 "two-step review for
//! destructive operations (tenant deletion, downgrade)"; tenant admin guide §5 "export-all"):
//!
//! - `tenant.offboard` (fact `grace_days`): the lifecycle's offboard;
//! - `plan.downgrade` (fact `price_drop_minor`, the monthly price decrease in minor units): a
//!   tenant edit that moves it to a cheaper plan (or none), held whole;
//! - `tenant.export` (fact `size_bytes`): a data export of the tenant (its record and every
//!   context's export section), downloadable for 24 hours by whoever may export.
//!
//! Each runs through [`crate::approvals::guarded`] when asked, and through its `execute` once a
//! request is approved, with the same service function either way.

use chrono::Duration;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::model::{Action, Tenant};
use super::service::{self, PatchInput, TenantChanges, TransitionInput};
use crate::approvals::model::{Approvable, Held};
use crate::approvals::service::Guarded;
use crate::audit::ledger::{Audit, Subject};
use crate::clock::{from_micros, rfc3339_micros, to_micros};
use crate::error::{Error, Result};
use crate::rbac::Principal;
use crate::state::AppState;
use crate::store::keys::Key;
use crate::store::{ReadCtx, Reader, Table, WriteCtx};

/// The actions of this context that routes may hold.
pub const APPROVABLES: &[Approvable] = &[
    Approvable {
        action: "tenant.offboard",
        label: "Offboard a tenant",
        facts: &["grace_days"],
        execute: execute_offboard,
    },
    Approvable {
        action: "tenant.export",
        label: "Export a tenant's data",
        facts: &["size_bytes"],
        execute: execute_export,
    },
    Approvable {
        action: "plan.downgrade",
        label: "Move a tenant to a cheaper plan",
        facts: &["price_drop_minor"],
        execute: execute_downgrade,
    },
];

#[derive(Serialize, Deserialize)]
struct OffboardInputs {
    tenant_id: Uuid,
    reason: Option<String>,
    grace_days: Option<u32>,
}

/// Offboards tenant `id` for `p`, or holds it for approval.
///
/// Errors: as [`service::transition`]; 409 `approval_queue_full`.
pub async fn offboard(
    state: &AppState,
    p: &Principal,
    id: Uuid,
    input: TransitionInput,
) -> Result<Guarded<Tenant>> {
    let t = state.read(move |r| super::queries::get(r, &id)).await?;
    let (held, facts) = offboard_held(&t, &input)?;
    crate::approvals::guarded(
        state,
        p,
        held,
        facts,
        move |r| service::check_transition(r, id, Action::Offboard).map(|_| ()),
        move |ctx| service::transition(ctx, id, Action::Offboard, &input),
    )
    .await
}

/// The held action and facts of offboarding `t` with `input`.
///
/// Errors: 500 when the inputs do not serialize (a bug).
pub fn offboard_held(t: &Tenant, input: &TransitionInput) -> Result<(Held, Vec<(String, i64)>)> {
    let days = input.grace_days.unwrap_or(service::DEFAULT_GRACE_DAYS);
    let held = Held::new(
        "tenant.offboard",
        Some(t.id),
        &OffboardInputs {
            tenant_id: t.id,
            reason: input.reason.clone(),
            grace_days: input.grace_days,
        },
        format!("Offboard {} (grace {days} days)", t.display_name),
    )?;
    Ok((held, vec![("grace_days".into(), i64::from(days))]))
}

fn execute_offboard(ctx: &mut WriteCtx<'_>, held: &Held) -> Result<Value> {
    let i: OffboardInputs = held.inputs()?;
    let input = TransitionInput {
        reason: i.reason,
        grace_days: i.grace_days,
        trial_days: None,
    };
    let t = service::transition(ctx, i.tenant_id, Action::Offboard, &input)?;
    Ok(json!({
        "tenant_id": t.id,
        "state": t.state,
        "deadline_at": t.deadline_at.map(rfc3339_micros),
    }))
}

#[derive(Serialize, Deserialize)]
struct DowngradeInputs {
    tenant_id: Uuid,
    changes: TenantChanges,
}

/// The monthly price of `plan` (none: 0), in minor units.
fn monthly(r: &impl Reader, plan: Option<&str>) -> Result<i64> {
    Ok(match plan {
        Some(code) => {
            let p = crate::plans::queries::get(r, code)?;
            crate::revenue::model::monthly_minor(p.amount_minor, p.interval)
        }
        None => 0,
    })
}

/// Edits tenant `id` for `p`; an edit that moves it to a cheaper plan (or to none) is a plan
/// downgrade, held whole when a route matches.
///
/// Errors: as [`service::update`] and [`TenantChanges::parse`]; 409 `approval_queue_full`.
pub async fn update(
    state: &AppState,
    p: &Principal,
    id: Uuid,
    changes: TenantChanges,
) -> Result<Guarded<Tenant>> {
    let c = changes.clone();
    let (plans, t, drop) = state
        .read(move |r| {
            let plans = crate::plans::queries::codes(r)?;
            let t = super::queries::get(r, &id)?;
            let drop = match &c.plan {
                Some(new) if new.as_deref() != t.plan.as_deref() => {
                    let new = new.as_deref().map(str::trim).filter(|s| !s.is_empty());
                    let (old, new) = (monthly(r, t.plan.as_deref())?, monthly(r, new).unwrap_or(0));
                    old - new
                }
                _ => 0,
            };
            Ok((plans, t, drop))
        })
        .await?;
    let input: PatchInput = changes.clone().parse(&plans)?;
    if drop <= 0 {
        return Ok(Guarded::Done(
            state
                .write(p.actor.clone(), move |ctx| service::update(ctx, id, &input))
                .await?,
        ));
    }
    let to = changes
        .plan
        .clone()
        .flatten()
        .unwrap_or_else(|| "no plan".into());
    let held = Held::new(
        "plan.downgrade",
        Some(id),
        &DowngradeInputs {
            tenant_id: id,
            changes,
        },
        format!(
            "Downgrade {} from {} to {to}",
            t.display_name,
            t.plan.clone().unwrap_or_else(|| "no plan".into())
        ),
    )?;
    crate::approvals::guarded(
        state,
        p,
        held,
        vec![("price_drop_minor".into(), drop)],
        move |r| super::queries::get(r, &id)?.ensure_writable(),
        move |ctx| service::update(ctx, id, &input),
    )
    .await
}

fn execute_downgrade(ctx: &mut WriteCtx<'_>, held: &Held) -> Result<Value> {
    let i: DowngradeInputs = held.inputs()?;
    let plans = crate::plans::queries::codes(ctx)?;
    let input = i.changes.parse(&plans)?;
    let t = service::update(ctx, i.tenant_id, &input)?;
    Ok(json!({"tenant_id": t.id, "plan": t.plan}))
}

/// Tenant data exports: `(tenant, export id) -> ExportRecord`.
pub const EXPORTS: Table = Table::new("tenant_exports");
/// How long an export can be downloaded, hours.
pub const EXPORT_HOURS: i64 = 24;
/// The export document's format name.
pub const EXPORT_FORMAT: &str = "tenantry.tenant-export.v1";

/// An export as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ExportRecord {
    /// Version 1.
    V1(ExportV1),
}

/// Version 1 of an export: who asked, when, until when it can be downloaded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExportV1 {
    /// Who asked (its actor id).
    pub requested_by: String,
    /// Creation, µs.
    pub created_at: i64,
    /// End of the download window, µs.
    pub expires_at: i64,
    /// The document's size when asked, bytes.
    pub size_bytes: i64,
}

/// An export with its ids.
#[derive(Clone, Debug, PartialEq)]
pub struct Export {
    /// UUIDv7.
    pub id: Uuid,
    /// The tenant.
    pub tenant_id: Uuid,
    /// Its fields.
    pub export: ExportV1,
}

#[derive(Serialize, Deserialize)]
struct ExportInputs {
    tenant_id: Uuid,
    size_bytes: i64,
}

/// The tenant's export section: its directory record.
pub fn export_section(r: &ReadCtx, tenant: &Uuid) -> Result<(&'static str, Value)> {
    let t = super::queries::get(r, tenant)?;
    Ok((
        "tenant",
        json!({
            "id": t.id,
            "display_name": t.display_name,
            "slug": t.slug,
            "state": t.state,
            "plan": t.plan,
            "country": t.country,
            "contact_email": t.contact_email,
            "created_at": rfc3339_micros(t.created_at),
        }),
    ))
}

/// The export document of `tenant`, read from one snapshot: every context's section.
///
/// Errors: 404; storage errors.
pub fn document(
    r: &ReadCtx,
    hooks: &[crate::state::ExportHook],
    tenant: &Uuid,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<u8>> {
    super::queries::get(r, tenant)?;
    let mut sections = serde_json::Map::new();
    for h in hooks {
        let (name, value) = h(r, tenant)?;
        sections.insert(name.to_string(), value);
    }
    serde_json::to_vec_pretty(&json!({
        "format": EXPORT_FORMAT,
        "tenant_id": tenant,
        "generated_at": rfc3339_micros(now),
        "sections": sections,
    }))
    .map_err(|e| Error::Internal(format!("export document: {e}")))
}

fn create_export(ctx: &mut WriteCtx<'_>, tenant: Uuid, size_bytes: i64) -> Result<Export> {
    super::queries::get(ctx, &tenant)?;
    let id = crate::ids::new_id(ctx.now);
    let rec = ExportV1 {
        requested_by: ctx.actor.id.clone(),
        created_at: to_micros(ctx.now),
        expires_at: to_micros(ctx.now + Duration::hours(EXPORT_HOURS)),
        size_bytes,
    };
    ctx.put_record(
        EXPORTS,
        &Key::new().uuid(&tenant).uuid(&id).into_bytes(),
        &ExportRecord::V1(rec.clone()),
    )?;
    ctx.audit(
        "tenant.export.created.v1",
        &Subject::in_tenant(tenant, "tenant_export", id),
        json!({"size_bytes": size_bytes, "expires_at": rfc3339_micros(from_micros(rec.expires_at))}),
    )?;
    Ok(Export {
        id,
        tenant_id: tenant,
        export: rec,
    })
}

fn execute_export(ctx: &mut WriteCtx<'_>, held: &Held) -> Result<Value> {
    let i: ExportInputs = held.inputs()?;
    let e = create_export(ctx, i.tenant_id, i.size_bytes)?;
    Ok(json!({
        "export_id": e.id,
        "download_url": format!("/api/tenants/{}/exports/{}", e.tenant_id, e.id),
        "expires_at": rfc3339_micros(from_micros(e.export.expires_at)),
    }))
}

/// Asks for a data export of `tenant`: made at once, or held when a route matches its size.
///
/// Errors: 404; 409 `approval_queue_full`.
pub async fn export(state: &AppState, p: &Principal, tenant: Uuid) -> Result<Guarded<Export>> {
    let hooks = state.tenant_hooks().on_export.clone();
    let now = state.clock().now();
    let (t, size) = state
        .read(move |r| {
            let t = super::queries::get(r, &tenant)?;
            let size = document(r, &hooks, &tenant, now)?.len();
            Ok((t, i64::try_from(size).unwrap_or(i64::MAX)))
        })
        .await?;
    let held = Held::new(
        "tenant.export",
        Some(tenant),
        &ExportInputs {
            tenant_id: tenant,
            size_bytes: size,
        },
        format!("Export {}'s data ({size} bytes)", t.display_name),
    )?;
    crate::approvals::guarded(
        state,
        p,
        held,
        vec![("size_bytes".into(), size)],
        move |r| super::queries::get(r, &tenant).map(|_| ()),
        move |ctx| create_export(ctx, tenant, size),
    )
    .await
}

/// The export `id` of `tenant`, while it can be downloaded.
///
/// Errors: 404; 410 `export_expired`.
pub fn load_export(r: &impl Reader, tenant: &Uuid, id: &Uuid, now: i64) -> Result<Export> {
    let rec =
        r.get_record::<ExportRecord>(EXPORTS, &Key::new().uuid(tenant).uuid(id).into_bytes())?;
    let Some(ExportRecord::V1(export)) = rec else {
        return Err(Error::not_found("export", id.to_string()));
    };
    if now >= export.expires_at {
        return Err(Error::Gone {
            code: "export_expired",
            detail: format!(
                "export {id} could be downloaded for {EXPORT_HOURS} hours; ask for a new one"
            ),
        });
    }
    Ok(Export {
        id: *id,
        tenant_id: *tenant,
        export,
    })
}

/// Deletes a shredded tenant's exports.
pub fn shred_exports(ctx: &mut WriteCtx<'_>, tenant: &Uuid) -> Result<u64> {
    Ok(ctx.delete_range(EXPORTS, &crate::store::Range::prefix(tenant.as_bytes()))?)
}
