//! The in-memory route cache (operator guide §2: every gateway keeps routes for
//! `ROUTE_CACHE_TTL`, 5 minutes by default).
//!
//! Entries expire after the TTL. A pool flip clears the whole cache, and a tenant change clears
//! that tenant's entries, from the writer's commit notice, before the flip's caller gets its
//! answer: in this process a flip takes effect at once. A lookup that raced with a flip cannot
//! re-insert a stale answer, because inserts carry the generation they started in and are
//! dropped when it has moved.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::model::Route;
use crate::store::{CommitNotice, Topic};

/// Most entries kept; past this the cache starts over (a bound, not an LRU: lookups are cheap).
const MAX_ENTRIES: usize = 100_000;

/// Cached routes by `(tenant, module)`.
#[derive(Debug)]
pub struct RouteCache {
    ttl: Duration,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    generation: u64,
    map: HashMap<(Uuid, String), (Route, Instant)>,
    hits: u64,
    misses: u64,
}

impl RouteCache {
    /// An empty cache whose entries live `ttl`.
    pub fn new(ttl: Duration) -> RouteCache {
        RouteCache {
            ttl,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh cached route, or the generation to pass to [`RouteCache::insert`] after a
    /// lookup.
    pub fn get(&self, tenant: &Uuid, module: &str) -> Result<Route, u64> {
        let mut inner = self.lock();
        let key = (*tenant, module.to_string());
        match inner.map.get(&key) {
            Some((route, at)) if at.elapsed() < self.ttl => {
                let route = route.clone();
                inner.hits += 1;
                Ok(route)
            }
            _ => {
                inner.misses += 1;
                Err(inner.generation)
            }
        }
    }

    /// Caches `route` if nothing was invalidated since `generation`.
    pub fn insert(&self, generation: u64, route: Route) {
        if self.ttl.is_zero() {
            return;
        }
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.map.len() >= MAX_ENTRIES {
            inner.map.clear();
        }
        inner.map.insert(
            (route.tenant_id, route.module.clone()),
            (route, Instant::now()),
        );
    }

    /// Applies a commit notice: any pool change clears everything, a tenant change clears that
    /// tenant.
    pub fn on_commit(&self, notice: &CommitNotice) {
        let pools_changed = notice.touched.iter().any(|t| matches!(t, Topic::Pool(_)));
        let tenants: Vec<Uuid> = notice
            .touched
            .iter()
            .filter_map(|t| {
                if let Topic::Tenant(id) = t {
                    Some(*id)
                } else {
                    None
                }
            })
            .collect();
        if !pools_changed && tenants.is_empty() {
            return;
        }
        let mut inner = self.lock();
        inner.generation += 1;
        if pools_changed {
            inner.map.clear();
        } else {
            inner.map.retain(|(t, _), _| !tenants.contains(t));
        }
    }

    /// `(entries, hits, misses)` for metrics.
    pub fn stats(&self) -> (usize, u64, u64) {
        let inner = self.lock();
        (inner.map.len(), inner.hits, inner.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenants::model::State;

    fn route(t: Uuid) -> Route {
        Route {
            tenant_id: t,
            module: "core".into(),
            admin_pool: "admin-1".into(),
            app_pool: "app-1".into(),
            rerouted: false,
            tenant_state: State::Active,
        }
    }

    #[test]
    fn a_pool_change_clears_the_cache_and_a_racing_insert_is_dropped() {
        let cache = RouteCache::new(Duration::from_secs(300));
        let t = Uuid::now_v7();
        let generation = cache.get(&t, "core").unwrap_err();
        cache.insert(generation, route(t));
        assert!(cache.get(&t, "core").is_ok());

        let before_flip = cache.get(&Uuid::now_v7(), "core").unwrap_err();
        let mut notice = CommitNotice::default();
        notice.touched.insert(Topic::Pool("app-1".into()));
        cache.on_commit(&notice);
        assert!(cache.get(&t, "core").is_err(), "flip cleared the cache");
        cache.insert(before_flip, route(t));
        assert!(
            cache.get(&t, "core").is_err(),
            "a lookup from before the flip was not cached"
        );
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = RouteCache::new(Duration::from_millis(1));
        let t = Uuid::now_v7();
        cache.insert(0, route(t));
        std::thread::sleep(Duration::from_millis(5));
        assert!(cache.get(&t, "core").is_err());
    }
}
