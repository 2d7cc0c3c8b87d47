//! The read model of notification channels, shared by the API and the pages.

use uuid::Uuid;

use super::model::Channel;
use crate::error::Result;
use crate::store::Reader;

/// The channels of `tenant` (`None`: the platform's), oldest first (at most 50).
///
/// Errors: 404 unknown tenant.
pub fn list(r: &impl Reader, tenant: Option<Uuid>) -> Result<Vec<Channel>> {
    if let Some(t) = &tenant {
        crate::tenants::queries::get(r, t)?;
    }
    Ok(super::service::channels_of(r, tenant)?
        .into_iter()
        .map(|(id, c)| c.view(tenant, id))
        .collect())
}

/// One channel.
///
/// Errors: 404.
pub fn get(r: &impl Reader, tenant: Option<Uuid>, id: &Uuid) -> Result<Channel> {
    Ok(super::service::load(r, tenant, id)?.view(tenant, *id))
}
