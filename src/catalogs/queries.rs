//! The read model of pricing catalogs: catalogs, versions, pins and their counts.

use std::ops::ControlFlow;
use uuid::Uuid;

use super::model::*;
use crate::error::{Error, Result};
use crate::store::keys::{Key, KeyReader};
use crate::store::{Dir, Range, Reader, codec};

/// One catalog.
///
/// Errors: 404.
pub fn get(r: &impl Reader, id: &Uuid) -> Result<Catalog> {
    r.get_record::<CatalogRecord>(CATALOGS, id.as_bytes())?
        .map(|rec| Catalog::from_record(*id, rec))
        .ok_or_else(|| Error::not_found("catalog", id.to_string()))
}

/// Every catalog in creation order (at most [`MAX_CATALOGS`]).
pub fn list(r: &impl Reader) -> Result<Vec<Catalog>> {
    let mut out = Vec::new();
    r.scan(CATALOGS, &Range::all(), Dir::Asc, &mut |k, v| {
        if let Ok(id) = Uuid::from_slice(k) {
            out.push(Catalog::from_record(id, codec::decode(CATALOGS.name(), v)?));
        }
        Ok(if out.len() >= MAX_CATALOGS {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })?;
    Ok(out)
}

/// One version.
///
/// Errors: 404.
pub fn version(r: &impl Reader, catalog: &Uuid, v: u32) -> Result<Version> {
    r.get_record::<VersionRecord>(CATALOG_VERSIONS, &version_key(catalog, v))?
        .map(|rec| Version::from_record(*catalog, v, rec))
        .ok_or_else(|| Error::not_found("catalog version", format!("{catalog}/{v}")))
}

/// The versions of a catalog, newest first (at most [`MAX_VERSIONS`]).
pub fn versions(r: &impl Reader, catalog: &Uuid) -> Result<Vec<Version>> {
    let prefix = Key::new().uuid(catalog).into_bytes();
    let mut out = Vec::new();
    r.scan(
        CATALOG_VERSIONS,
        &Range::prefix(&prefix),
        Dir::Desc,
        &mut |k, val| {
            let mut kr = KeyReader::new(k);
            let _ = kr.uuid();
            let v = u32::try_from(kr.u64().unwrap_or_default()).unwrap_or_default();
            out.push(Version::from_record(
                *catalog,
                v,
                codec::decode(CATALOG_VERSIONS.name(), val)?,
            ));
            Ok(ControlFlow::Continue(()))
        },
    )?;
    Ok(out)
}

/// A tenant's pin, if any.
pub fn pin(r: &impl Reader, tenant: &Uuid) -> Result<Option<Pin>> {
    Ok(r.get_record::<PinRecord>(CATALOG_PINS, tenant.as_bytes())?
        .map(|rec| Pin::from_record(*tenant, rec)))
}

/// A tenant's pin with its version, if it has one.
pub fn pinned_version(r: &impl Reader, tenant: &Uuid) -> Result<Option<(Pin, Catalog, Version)>> {
    let Some(p) = pin(r, tenant)? else {
        return Ok(None);
    };
    let c = get(r, &p.catalog_id)?;
    let v = version(r, &p.catalog_id, p.version)?;
    Ok(Some((p, c, v)))
}

/// How many tenants are pinned to a version (a maintained counter).
pub fn pinned_count(r: &impl Reader, catalog: &Uuid, v: u32) -> Result<u64> {
    Ok(r.get(CATALOG_PIN_COUNTS, &version_key(catalog, v))?
        .and_then(|b| b.try_into().ok().map(u64::from_be_bytes))
        .unwrap_or(0))
}

/// Up to `limit` tenants pinned to a version, in id order.
pub fn pinned_tenants(r: &impl Reader, catalog: &Uuid, v: u32, limit: usize) -> Result<Vec<Uuid>> {
    let prefix = version_key(catalog, v);
    let mut out = Vec::new();
    r.scan(
        CATALOG_PINNED,
        &Range::prefix(&prefix),
        Dir::Asc,
        &mut |k, _| {
            if let Some(t) = KeyReader::new(&k[prefix.len()..]).uuid() {
                out.push(t);
            }
            Ok(if out.len() >= limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        },
    )?;
    Ok(out)
}
