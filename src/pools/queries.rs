//! The read model of pools, shared by `/api/pools`, `/api/routes`, the console and the
//! dashboard.

use std::ops::ControlFlow;

use uuid::Uuid;

use super::model::{POOLS, Pool, PoolRecord, Route, parse_pool_id, pool_key};
use crate::config::PoolLayout;
use crate::error::{Error, Result};
use crate::store::{Dir, Range, Reader, codec};

/// Every pool, admin pools first, in number order.
pub fn list(r: &impl Reader) -> Result<Vec<Pool>> {
    let mut out = Vec::new();
    r.scan(POOLS, &Range::all(), Dir::Asc, &mut |_, v| {
        out.push(Pool::from(codec::decode::<PoolRecord>(POOLS.name(), v)?));
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(out)
}

/// One pool by id (`admin-2`).
///
/// Errors: 404 when unknown or malformed.
pub fn get(r: &impl Reader, id: &str) -> Result<Pool> {
    let (kind, n) = parse_pool_id(id).ok_or_else(|| Error::not_found("pool", id))?;
    r.get_record::<PoolRecord>(POOLS, &pool_key(kind, n))?
        .map(Pool::from)
        .ok_or_else(|| Error::not_found("pool", id))
}

/// The route of tenant `id` for `module` (the cache's miss path of `GET /api/routes/{tenant_id}`).
///
/// Errors: 404 unknown tenant; as [`super::service::resolve`].
pub fn route(r: &impl Reader, id: &Uuid, module: &str, layout: &PoolLayout) -> Result<Route> {
    let tenant = crate::tenants::queries::get(r, id)?;
    super::service::resolve(r, &tenant, module, layout)
}
