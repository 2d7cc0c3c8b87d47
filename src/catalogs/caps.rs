//! The soft caps a tenant is over in the current billing period, kept in memory so that every
//! tenant-scoped API answer can carry its `Warning: 299` headers (API.md "Tenant-scoped routes")
//! without a read. Data only: `metering` fills it at each ingest and at start from the stored
//! crossings; a new pin clears the tenant's entry (its caps changed) until its next event.
//!
//! Bounded by the number of tenants over a cap, each with at most one line per SKU of its
//! version.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

/// One SKU over its cap: `<sku> <used>/<cap>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Over {
    /// SKU code.
    pub sku: String,
    /// Units used this period.
    pub used: u64,
    /// The cap.
    pub cap: u64,
}

impl Over {
    /// The `Warning` header value: `299 tenantry "soft cap exceeded: <sku> <used>/<cap>"`.
    pub fn warning(&self) -> String {
        format!(
            "299 tenantry \"soft cap exceeded: {} {}/{}\"",
            self.sku, self.used, self.cap
        )
    }
}

/// What each tenant is over, with the period (`yyyymm`) it was computed for.
type Board = HashMap<Uuid, (u32, Vec<Over>)>;

/// Tenants over a soft cap, by period (`yyyymm`).
#[derive(Clone, Default)]
pub struct CapBoard {
    inner: Arc<Mutex<Board>>,
}

impl CapBoard {
    /// Sets what `tenant` is over in `period` (an empty list removes it).
    pub fn set(&self, tenant: Uuid, period: u32, over: Vec<Over>) {
        if let Ok(mut m) = self.inner.lock() {
            if over.is_empty() {
                m.remove(&tenant);
            } else {
                m.insert(tenant, (period, over));
            }
        }
    }

    /// Forgets `tenant` (its pin changed).
    pub fn clear(&self, tenant: &Uuid) {
        if let Ok(mut m) = self.inner.lock() {
            m.remove(tenant);
        }
    }

    /// What `tenant` is over at `now` (in the calendar month of `now`, the billing period).
    pub fn over_at(&self, tenant: &Uuid, now: chrono::DateTime<chrono::Utc>) -> Vec<Over> {
        use chrono::Datelike;
        let period = u32::try_from(now.year()).unwrap_or(0) * 100 + now.month();
        self.over(tenant, period)
    }

    /// What `tenant` is over in `period`.
    pub fn over(&self, tenant: &Uuid, period: u32) -> Vec<Over> {
        self.inner
            .lock()
            .ok()
            .and_then(|m| {
                m.get(tenant)
                    .filter(|(p, _)| *p == period)
                    .map(|(_, o)| o.clone())
            })
            .unwrap_or_default()
    }
}
