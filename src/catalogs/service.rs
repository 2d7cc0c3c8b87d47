//! The rules of pricing catalogs: create, edit a draft, publish, archive, clone, and pin or
//! migrate tenants. Each change writes its audit entry in the same write; a refused request
//! writes nothing.

use serde_json::{Value, json};
use uuid::Uuid;

use super::model::*;
use super::queries;
use crate::audit::ledger::{Audit, Subject};
use crate::error::{Error, Result};
use crate::store::keys::Key;
use crate::store::{Reader, WriteCtx};

fn rates_data(rates: &[Rate]) -> Value {
    json!(
        rates
            .iter()
            .map(|r| json!({
                "sku": r.sku,
                "unit": r.unit,
                "per_units": r.per_units,
                "soft_cap": r.soft_cap,
                "tiers": r.tiers.iter().map(|t| json!({"up_to": t.up_to, "unit_amount_minor": t.unit_amount_minor})).collect::<Vec<_>>(),
            }))
            .collect::<Vec<_>>()
    )
}

fn target(catalog: &Uuid, version: u32) -> Subject {
    Subject::platform("catalog_version", format!("{catalog}/{version}"))
}

/// Creates a catalog with its version 1 as a draft holding `rates` (`catalog.created.v1`).
///
/// Errors: 422 when the platform has [`MAX_CATALOGS`] catalogs.
pub fn create(
    ctx: &mut WriteCtx<'_>,
    name: &str,
    currency: &str,
    rates: &[Rate],
) -> Result<(Catalog, Version)> {
    if ctx.len(CATALOGS)? >= MAX_CATALOGS as u64 {
        return Err(Error::invalid(
            "name",
            format!(
                "the platform has {MAX_CATALOGS} catalogs, the most it keeps: archive versions of an existing one instead"
            ),
        ));
    }
    let id = crate::ids::new_id(ctx.now);
    let catalog = Catalog {
        id,
        name: name.to_string(),
        currency: currency.to_string(),
        latest_version: 1,
        created_at: ctx.now,
    };
    let version = Version {
        catalog_id: id,
        version: 1,
        status: Status::Draft,
        rates: rates.to_vec(),
        cloned_from: None,
        created_at: ctx.now,
        updated_at: ctx.now,
        published_at: None,
    };
    ctx.put_record(CATALOGS, id.as_bytes(), &catalog.to_record())?;
    ctx.put_record(CATALOG_VERSIONS, &version_key(&id, 1), &version.to_record())?;
    ctx.audit(
        "catalog.created.v1",
        &Subject::platform("catalog", id),
        json!({"name": name, "currency": currency, "version": 1, "rates": rates_data(rates)}),
    )?;
    Ok((catalog, version))
}

/// Replaces a draft's rate table (`catalog.version.updated.v1`).
///
/// Errors: 404; 409 `version_immutable` unless the version is a draft.
pub fn edit(ctx: &mut WriteCtx<'_>, catalog: &Uuid, v: u32, rates: &[Rate]) -> Result<Version> {
    let mut version = queries::version(ctx, catalog, v)?;
    if version.status != Status::Draft {
        return Err(Error::conflict(
            VERSION_IMMUTABLE,
            format!(
                "version {v} of catalog {catalog} is {} and immutable: clone it (POST /api/catalogs/{catalog}/versions/{v}/clone) and edit the new draft",
                version.status.as_str()
            ),
        ));
    }
    if version.rates == rates {
        return Ok(version);
    }
    let from = rates_data(&version.rates);
    version.rates = rates.to_vec();
    version.updated_at = ctx.now;
    ctx.put_record(
        CATALOG_VERSIONS,
        &version_key(catalog, v),
        &version.to_record(),
    )?;
    ctx.audit(
        "catalog.version.updated.v1",
        &target(catalog, v),
        json!({"changes": {"rates": {"from": from, "to": rates_data(rates)}}}),
    )?;
    Ok(version)
}

fn flip(
    ctx: &mut WriteCtx<'_>,
    catalog: &Uuid,
    v: u32,
    from: Status,
    to: Status,
    action: &'static str,
) -> Result<Version> {
    let mut version = queries::version(ctx, catalog, v)?;
    if version.status != from {
        return Err(Error::conflict(
            INVALID_STATUS,
            format!(
                "version {v} is {}: only a {} version can become {}",
                version.status.as_str(),
                from.as_str(),
                to.as_str()
            ),
        ));
    }
    if to == Status::Archived {
        let pinned = queries::pinned_count(ctx, catalog, v)?;
        if pinned > 0 {
            return Err(Error::conflict(
                VERSION_IN_USE,
                format!(
                    "{pinned} tenants are pinned to version {v}: migrate them to another version first"
                ),
            ));
        }
    }
    version.status = to;
    version.updated_at = ctx.now;
    if to == Status::Published {
        version.published_at = Some(ctx.now);
    }
    ctx.put_record(
        CATALOG_VERSIONS,
        &version_key(catalog, v),
        &version.to_record(),
    )?;
    ctx.audit(
        action,
        &target(catalog, v),
        json!({"from": from.as_str(), "to": to.as_str()}),
    )?;
    Ok(version)
}

/// Publishes a draft: from now on it is immutable and tenants may be pinned to it
/// (`catalog.version.published.v1`).
///
/// Errors: 404; 409 `invalid_status`.
pub fn publish(ctx: &mut WriteCtx<'_>, catalog: &Uuid, v: u32) -> Result<Version> {
    flip(
        ctx,
        catalog,
        v,
        Status::Draft,
        Status::Published,
        "catalog.version.published.v1",
    )
}

/// Archives a published version no tenant is pinned to (`catalog.version.archived.v1`).
///
/// Errors: 404; 409 `invalid_status`, `version_in_use`.
pub fn archive(ctx: &mut WriteCtx<'_>, catalog: &Uuid, v: u32) -> Result<Version> {
    flip(
        ctx,
        catalog,
        v,
        Status::Published,
        Status::Archived,
        "catalog.version.archived.v1",
    )
}

/// Clones a version into the catalog's next version, a draft (`catalog.version.cloned.v1`).
///
/// Errors: 404; 422 when the catalog has [`MAX_VERSIONS`] versions.
pub fn clone(ctx: &mut WriteCtx<'_>, catalog: &Uuid, v: u32) -> Result<Version> {
    let mut cat = queries::get(ctx, catalog)?;
    let source = queries::version(ctx, catalog, v)?;
    if cat.latest_version >= MAX_VERSIONS {
        return Err(Error::invalid(
            "version",
            format!("catalog {catalog} has {MAX_VERSIONS} versions, the most it keeps"),
        ));
    }
    let next = cat.latest_version + 1;
    let version = Version {
        catalog_id: *catalog,
        version: next,
        status: Status::Draft,
        rates: source.rates,
        cloned_from: Some(v),
        created_at: ctx.now,
        updated_at: ctx.now,
        published_at: None,
    };
    cat.latest_version = next;
    ctx.put_record(CATALOGS, catalog.as_bytes(), &cat.to_record())?;
    ctx.put_record(
        CATALOG_VERSIONS,
        &version_key(catalog, next),
        &version.to_record(),
    )?;
    ctx.audit(
        "catalog.version.cloned.v1",
        &target(catalog, next),
        json!({"from_version": v, "version": next}),
    )?;
    Ok(version)
}

fn pinned_key(catalog: &Uuid, v: u32, tenant: &Uuid) -> Vec<u8> {
    Key::new()
        .uuid(catalog)
        .u64(u64::from(v))
        .uuid(tenant)
        .into_bytes()
}

fn bump(ctx: &mut WriteCtx<'_>, catalog: &Uuid, v: u32, up: bool) -> Result<()> {
    let key = version_key(catalog, v);
    let n = queries::pinned_count(ctx, catalog, v)?;
    let n = if up { n + 1 } else { n.saturating_sub(1) };
    ctx.put(CATALOG_PIN_COUNTS, &key, &n.to_be_bytes())?;
    Ok(())
}

/// Checks that `tenant` may be pinned to (`catalog`, `v`) with `soft_caps`: the tenant exists
/// and is writable, the version is published and rates every overridden SKU.
fn check_pin(
    r: &impl Reader,
    tenant: &Uuid,
    version: &Version,
    soft_caps: &[(String, u64)],
) -> Result<()> {
    crate::tenants::directory::load(r, tenant)?.ensure_writable()?;
    if version.status != Status::Published {
        return Err(Error::conflict(
            VERSION_NOT_PUBLISHED,
            format!(
                "version {} is {}: tenants are pinned only to published versions",
                version.version,
                version.status.as_str()
            ),
        ));
    }
    for (sku, _) in soft_caps {
        if version.rate(sku).is_none() {
            return Err(Error::invalid(
                "soft_caps",
                format!(
                    "sku '{sku}' is not in version {} of the catalog",
                    version.version
                ),
            ));
        }
    }
    Ok(())
}

/// Writes a pin that [`check_pin`] accepted, with `catalog.tenant.pinned.v1` on the tenant's
/// chain. Returns false when nothing changed.
fn write_pin(ctx: &mut WriteCtx<'_>, pin: &Pin, reason: &str) -> Result<bool> {
    let old = queries::pin(ctx, &pin.tenant_id)?;
    if let Some(o) = &old
        && o.catalog_id == pin.catalog_id
        && o.version == pin.version
        && o.soft_caps == pin.soft_caps
    {
        return Ok(false);
    }
    if let Some(o) = &old {
        ctx.delete(
            CATALOG_PINNED,
            &pinned_key(&o.catalog_id, o.version, &o.tenant_id),
        )?;
        bump(ctx, &o.catalog_id, o.version, false)?;
    }
    ctx.put(
        CATALOG_PINNED,
        &pinned_key(&pin.catalog_id, pin.version, &pin.tenant_id),
        &[],
    )?;
    bump(ctx, &pin.catalog_id, pin.version, true)?;
    ctx.put_record(CATALOG_PINS, pin.tenant_id.as_bytes(), &pin.to_record())?;
    ctx.audit(
        "catalog.tenant.pinned.v1",
        &Subject::tenant(pin.tenant_id),
        json!({
            "reason": reason,
            "from": old.as_ref().map(|o| json!({"catalog_id": o.catalog_id.to_string(), "version": o.version})),
            "to": {"catalog_id": pin.catalog_id.to_string(), "version": pin.version},
            "soft_caps": pin.soft_caps.iter().map(|(s, c)| json!({"sku": s, "cap": c})).collect::<Vec<_>>(),
        }),
    )?;
    // A pinned tenant is billable: its upcoming invoice exists from now on.
    let period = crate::metering::model::period_of(ctx.now);
    crate::invoices::service::ensure_draft(ctx, &pin.tenant_id, period)?;
    Ok(true)
}

/// Pins one tenant to a published version, with its soft-cap overrides.
///
/// Errors: 404 (tenant, catalog, version); 409 `tenant_read_only`, `version_not_published`;
/// 422 an override of a SKU the version does not rate.
pub fn pin(
    ctx: &mut WriteCtx<'_>,
    tenant: &Uuid,
    catalog: &Uuid,
    v: u32,
    soft_caps: &[(String, u64)],
) -> Result<Pin> {
    let version = queries::version(ctx, catalog, v)?;
    check_pin(ctx, tenant, &version, soft_caps)?;
    let pin = Pin {
        tenant_id: *tenant,
        catalog_id: *catalog,
        version: v,
        soft_caps: soft_caps.to_vec(),
        since: ctx.now,
    };
    write_pin(ctx, &pin, "pinned")?;
    queries::pin(ctx, tenant)?.ok_or_else(|| Error::Internal("pin just written is missing".into()))
}

/// Moves tenants to a published version (the explicit bulk action of a price bump): either the
/// listed tenants, or up to [`MAX_MIGRATE`] tenants pinned to `from_version` of the same
/// catalog. Every tenant moved gets `catalog.tenant.pinned.v1` on its chain, and the platform
/// chain gets one `catalog.tenants.migrated.v1` with the count. Overrides of SKUs the new
/// version still rates are kept. All tenants are checked before the first write.
///
/// Errors: 404; 409 `version_not_published`, `tenant_read_only`; 422 an empty list.
pub fn migrate(
    ctx: &mut WriteCtx<'_>,
    catalog: &Uuid,
    to: u32,
    tenants: &[Uuid],
    from_version: Option<u32>,
) -> Result<Vec<Uuid>> {
    let version = queries::version(ctx, catalog, to)?;
    let ids: Vec<Uuid> = match from_version {
        Some(f) => queries::pinned_tenants(ctx, catalog, f, MAX_MIGRATE)?,
        None => tenants.to_vec(),
    };
    if ids.is_empty() && from_version.is_none() {
        return Err(Error::invalid(
            "tenant_ids",
            "name at least one tenant, or from_version",
        ));
    }
    let mut pins = Vec::with_capacity(ids.len());
    for t in &ids {
        let kept: Vec<(String, u64)> = queries::pin(ctx, t)?
            .map(|p| p.soft_caps)
            .unwrap_or_default()
            .into_iter()
            .filter(|(s, _)| version.rate(s).is_some())
            .collect();
        check_pin(ctx, t, &version, &kept)?;
        pins.push(Pin {
            tenant_id: *t,
            catalog_id: *catalog,
            version: to,
            soft_caps: kept,
            since: ctx.now,
        });
    }
    let mut moved = Vec::new();
    for p in &pins {
        if write_pin(ctx, p, "migrated")? {
            moved.push(p.tenant_id);
        }
    }
    if !moved.is_empty() {
        ctx.audit(
            "catalog.tenants.migrated.v1",
            &target(catalog, to),
            json!({"to_version": to, "from_version": from_version, "count": moved.len()}),
        )?;
    }
    Ok(moved)
}

/// Shredding a tenant removes its pin (and its place in its version's count).
pub fn shred_pin(ctx: &mut WriteCtx<'_>, tenant: &Uuid) -> Result<u64> {
    let Some(p) = queries::pin(ctx, tenant)? else {
        return Ok(0);
    };
    ctx.delete(
        CATALOG_PINNED,
        &pinned_key(&p.catalog_id, p.version, tenant),
    )?;
    bump(ctx, &p.catalog_id, p.version, false)?;
    ctx.delete(CATALOG_PINS, tenant.as_bytes())?;
    Ok(1)
}
