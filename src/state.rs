//! [`AppState`]: what every handler, job and admin command shares: the store, the clock, the
//! effective configuration, the install key, and the process-local state (route cache, sign-in
//! throttle, the scheduler's schedule, the on-prem role's state).
//!
//! **Architecture Invariant:** this module is a leaf of the layering. It imports no context's
//! `api`, `views` or `service`, only data-only modules (the route cache, the throttle, the
//! schedule, the on-prem state), so every layer above it may hold an `AppState` and nothing here
//! reaches back up. The composition root ([`crate::app`]) builds it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::actor::Actor;
use crate::api_keys::tokens::TokenKeys;
use crate::api_keys::usage::LastUsed;
use crate::audit::signing::InstallKey;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::Result;
use crate::mail::Mailer;
use crate::onprem::OnPrem;
use crate::operators::model::SessionLimits;
use crate::operators::throttle::Throttle;
use crate::pools::cache::RouteCache;
use crate::scheduler::schedule::Scheduler;
use crate::store::{ReadCtx, Store, Topic, WriteCtx};
use crate::webhooks::runtime::{WEBHOOKS_TOPIC, Webhooks};

/// What a context does, inside the provisioning write, when a tenant is provisioned: `(tenant id,
/// app id)` (members seed the tenant's roles from the app's role templates, F21.05.03).
pub type ProvisionHook = fn(&mut WriteCtx<'_>, &Uuid, &Uuid) -> Result<()>;
/// What a context deletes, inside the shredding write, when a tenant is shredded; returns how
/// many records it deleted.
pub type ShredHook = fn(&mut WriteCtx<'_>, &Uuid) -> Result<u64>;

/// A section of a tenant's data export: its name and its JSON, read from one snapshot.
pub type ExportHook = fn(&ReadCtx, &Uuid) -> Result<(&'static str, serde_json::Value)>;

/// Every context's tenant hooks, gathered by the composition root from the contexts'
/// descriptors, so that `tenants` (and `approvals`) run them without depending on the contexts
/// that own them.
#[derive(Clone, Default)]
pub struct TenantHooks {
    /// Run after a tenant is provisioned.
    pub on_provision: Vec<ProvisionHook>,
    /// Run when a tenant is shredded.
    pub on_shred: Vec<ShredHook>,
    /// The sections of a tenant's data export, in context order.
    pub on_export: Vec<ExportHook>,
    /// The actions approval routes may hold.
    pub approvables: Vec<crate::approvals::model::Approvable>,
}

/// What every handler, job and admin command shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    clock: Clock,
    config: Arc<Config>,
    key: Arc<InstallKey>,
    routes: RouteCache,
    rendered_rows: crate::tenants::rendered::RenderedRows,
    scheduler: Scheduler,
    throttle: Throttle,
    exports: crate::export::Exports,
    install_id: Uuid,
    started_at: DateTime<Utc>,
    onprem: OnPrem,
    mailer: Option<Mailer>,
    tokens: TokenKeys,
    last_used: LastUsed,
    webhooks: Webhooks,
    caps: crate::catalogs::caps::CapBoard,
    hooks: Arc<TenantHooks>,
    bound: std::sync::OnceLock<std::net::SocketAddr>,
}

/// The parts [`AppState::new`] is built from; the composition root makes each of them.
pub struct Parts {
    /// The open store.
    pub store: Store,
    /// The clock.
    pub clock: Clock,
    /// The effective configuration.
    pub config: Config,
    /// The install's signing key.
    pub key: InstallKey,
    /// The schedules in force.
    pub scheduler: Scheduler,
    /// This install's id.
    pub install_id: Uuid,
    /// The on-prem role's state.
    pub onprem: OnPrem,
    /// The SMTP transport, when `[smtp]` is configured.
    pub mailer: Option<Mailer>,
    /// The tenant-token signing key.
    pub tokens: TokenKeys,
    /// The contexts' tenant hooks.
    pub hooks: TenantHooks,
    /// The webhooks' sealer, SSRF policy and wake-up signal.
    pub webhooks: Webhooks,
}

impl AppState {
    /// Builds the state and subscribes its caches to the store's commits (the route cache is
    /// invalid before any caller of a pool flip is answered).
    pub fn new(parts: Parts) -> AppState {
        let Parts {
            store,
            clock,
            config,
            key,
            scheduler,
            install_id,
            onprem,
            mailer,
            tokens,
            hooks,
            webhooks,
        } = parts;
        let exports = crate::export::Exports::new(
            config.http.max_exports,
            std::time::Duration::from_secs(config.http.export_send_timeout_secs),
        );
        let state = AppState {
            inner: Arc::new(Inner {
                routes: RouteCache::new(config.route_cache_ttl),
                rendered_rows: Default::default(),
                started_at: clock.now(),
                store,
                clock,
                config: Arc::new(config),
                key: Arc::new(key),
                scheduler,
                throttle: Throttle::default(),
                exports,
                install_id,
                onprem,
                mailer,
                tokens,
                last_used: LastUsed::default(),
                webhooks,
                caps: crate::catalogs::caps::CapBoard::default(),
                hooks: Arc::new(hooks),
                bound: std::sync::OnceLock::new(),
            }),
        };
        let weak = Arc::downgrade(&state.inner);
        state.store().on_commit(Arc::new(move |notice| {
            if let Some(inner) = weak.upgrade() {
                inner.routes.on_commit(notice);
                inner.rendered_rows.on_commit(notice);
                // A tenant's chain moved (or a webhook changed): the dispatcher may have work.
                if notice.touched.iter().any(|t| match t {
                    Topic::Chain(c) => c != "platform",
                    Topic::Other(name) => *name == WEBHOOKS_TOPIC,
                    _ => false,
                }) {
                    inner.webhooks.wake();
                }
            }
        }));
        state
    }

    /// The webhooks' process-local state.
    pub fn webhooks(&self) -> &Webhooks {
        &self.inner.webhooks
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }
    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }
    /// The effective configuration.
    pub fn config(&self) -> &Arc<Config> {
        &self.inner.config
    }
    /// The install's signing key.
    pub fn install_key(&self) -> &Arc<InstallKey> {
        &self.inner.key
    }
    /// The route cache.
    pub fn routes(&self) -> &RouteCache {
        &self.inner.routes
    }
    /// Directory rows as last written, checked against the stored record before each use.
    pub fn rendered_rows(&self) -> &crate::tenants::rendered::RenderedRows {
        &self.inner.rendered_rows
    }
    /// The scheduler's schedule and loop state.
    pub fn scheduler(&self) -> &Scheduler {
        &self.inner.scheduler
    }
    /// The sign-in throttle.
    pub fn throttle(&self) -> &Throttle {
        &self.inner.throttle
    }
    /// The export slots (`[http] max_exports`, `export_send_timeout_secs`).
    pub fn exports(&self) -> &crate::export::Exports {
        &self.inner.exports
    }
    /// Console session limits from config.
    pub fn session_limits(&self) -> SessionLimits {
        let c = self.config();
        let d =
            |s: std::time::Duration| chrono::Duration::from_std(s).unwrap_or(chrono::Duration::MAX);
        SessionLimits {
            idle: d(c.session_idle),
            absolute: d(c.session_max),
        }
    }
    /// This install's id (made at first start).
    pub fn install_id(&self) -> Uuid {
        self.inner.install_id
    }
    /// When this process started.
    pub fn started_at(&self) -> DateTime<Utc> {
        self.inner.started_at
    }
    /// The on-prem role state: license status, heartbeat sender, license key.
    pub fn onprem(&self) -> &OnPrem {
        &self.inner.onprem
    }

    /// The SMTP transport, when `[smtp]` is configured.
    pub fn mailer(&self) -> Option<&Mailer> {
        self.inner.mailer.as_ref()
    }
    /// The tenant-token signing key.
    pub fn tokens(&self) -> &TokenKeys {
        &self.inner.tokens
    }
    /// The contexts' tenant hooks (provisioning, shredding).
    pub fn tenant_hooks(&self) -> &Arc<TenantHooks> {
        &self.inner.hooks
    }
    /// API-key uses waiting to be written.
    pub fn last_used(&self) -> &LastUsed {
        &self.inner.last_used
    }

    /// The soft caps tenants are over this period (the `Warning` headers' source).
    pub fn caps(&self) -> &crate::catalogs::caps::CapBoard {
        &self.inner.caps
    }
    /// Records the address the listener is bound to (the real port when `listen` asked for 0).
    pub fn set_bound(&self, addr: std::net::SocketAddr) {
        let _ = self.inner.bound.set(addr);
    }
    /// The address people reach this server at, for links in emails: `public_url`, or the
    /// bound address with the scheme this process serves.
    pub fn public_url(&self) -> String {
        let c = self.config();
        match &c.public_url {
            Some(u) => u.clone(),
            None => {
                let scheme = if c.tls == crate::tls::TlsMode::Off {
                    "http"
                } else {
                    "https"
                };
                format!(
                    "{scheme}://{}",
                    self.inner.bound.get().copied().unwrap_or(c.listen)
                )
            }
        }
    }

    /// Runs a service in a write request as `actor`, at the clock's now.
    pub async fn write<T, F>(&self, actor: Actor, f: F) -> Result<T>
    where
        F: FnMut(&mut WriteCtx<'_>) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.write_weighted(actor, 1, f).await
    }

    /// [`AppState::write`] for a request of `weight` units of work (see
    /// [`crate::store::Store::write_weighted`]).
    pub async fn write_weighted<T, F>(&self, actor: Actor, weight: u64, f: F) -> Result<T>
    where
        F: FnMut(&mut WriteCtx<'_>) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.inner
            .store
            .write_weighted(self.inner.clock.now(), actor, weight, f)
            .await
    }

    /// Runs a read on a snapshot.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&ReadCtx) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.inner.store.read(f).await
    }
}
