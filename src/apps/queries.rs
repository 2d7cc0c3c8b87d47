//! The read model of apps, shared by `/api/apps`, the console and the tenant pages.

use uuid::Uuid;

use super::model::{APPS, App, AppRecord};
use crate::error::{Error, Result};
use crate::store::page::{Cursor, Page, Scan, Step, page};
use crate::store::{Dir, Range, Reader, codec};

/// One app.
///
/// Errors: 404 when unknown.
pub fn get(r: &impl Reader, id: &Uuid) -> Result<App> {
    r.get_record::<AppRecord>(APPS, id.as_bytes())?
        .map(|rec| App::from_record(*id, rec))
        .ok_or_else(|| Error::not_found("app", id.to_string()))
}

/// Does the app exist?
pub fn exists(r: &impl Reader, id: &Uuid) -> Result<bool> {
    Ok(r.contains(APPS, id.as_bytes())?)
}

/// A page of apps in creation order (UUIDv7 ids sort by creation).
///
/// Errors: 400 `invalid_cursor`; storage errors.
pub fn list(r: &impl Reader, cursor: Option<&Cursor>, limit: usize) -> Result<Page<App>> {
    let scan = Scan {
        table: APPS,
        range: Range::all(),
        dir: Dir::Asc,
        limit,
        cursor,
        budget: None,
    };
    page(r, scan, |k, v| {
        Ok(match Uuid::from_slice(k) {
            Ok(id) => Step::Keep(App::from_record(id, codec::decode(APPS.name(), v)?)),
            Err(_) => Step::Skip,
        })
    })
}
