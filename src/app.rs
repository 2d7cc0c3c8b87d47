//! Start-up and shutdown: `Application::build(config, clock)` then
//! `run_until_stopped(shutdown)`, used by `main` and by tests alike (zero-to-production's
//! `startup.rs`). The listener is bound in `build`, so a test asks for `127.0.0.1:0` and reads
//! the port back.
//!
//! Shutdown order: stop accepting, let in-flight requests finish, stop the scheduler and the
//! admin socket, drain the writer, close the store.

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::actor::Actor;
use crate::audit::signing::{InstallKey, KeyError};
use crate::clock::Clock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::pools::cache::RouteCache;
use crate::scheduler::Scheduler;
use crate::store::{self, ReadCtx, Store, WriteCtx};

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
    scheduler: Scheduler,
    throttle: crate::operators::throttle::Throttle,
    install_id: Uuid,
    started_at: DateTime<Utc>,
    onprem: crate::onprem::OnPrem,
}

impl AppState {
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
    /// The scheduler.
    pub fn scheduler(&self) -> &Scheduler {
        &self.inner.scheduler
    }
    /// The sign-in throttle.
    pub fn throttle(&self) -> &crate::operators::throttle::Throttle {
        &self.inner.throttle
    }
    /// Console session limits from config.
    pub fn session_limits(&self) -> crate::operators::service::SessionLimits {
        let c = self.config();
        let d =
            |s: std::time::Duration| chrono::Duration::from_std(s).unwrap_or(chrono::Duration::MAX);
        crate::operators::service::SessionLimits {
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
    pub fn onprem(&self) -> &crate::onprem::OnPrem {
        &self.inner.onprem
    }

    /// Runs a service in a write request as `actor`, at the clock's now.
    pub async fn write<T, F>(&self, actor: Actor, f: F) -> Result<T>
    where
        F: FnMut(&mut WriteCtx<'_>) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.inner
            .store
            .write(self.inner.clock.now(), actor, f)
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

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The install key could not be loaded or made.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The install key on disk is not the one the store knows.
    #[error(
        "the install key in {path} (key_id {found}) is not the key this data dir was created with (key_id {expected}); restore the original keys/ directory from backup"
    )]
    KeyMismatch {
        /// Key file.
        path: String,
        /// Its key id.
        found: String,
        /// The id recorded in the store.
        expected: String,
    },
    /// A scheduler expression is invalid.
    #[error("invalid configuration: {0}")]
    Schedule(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {detail}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        detail: String,
    },
    /// Initialisation failed.
    #[error("initialising the store failed: {0}")]
    Init(#[from] Error),
    /// The on-prem role could not start (license key, control-plane client).
    #[error(transparent)]
    OnPrem(#[from] crate::onprem::OnPremError),
    /// The license key on disk is not the one the store knows.
    #[error(
        "the license key in {path} (key_id {found}) is not the key this control plane was created with (key_id {expected}); restore the original keys/ directory from backup, or every license issued so far stops verifying"
    )]
    LicenseKeyMismatch {
        /// Key file.
        path: String,
        /// Its key id.
        found: String,
        /// The id recorded in the store.
        expected: String,
    },
    /// TLS could not be set up, or plain HTTP was refused on a non-loopback address.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The schema migration at start failed.
    #[error("upgrading the data file failed: {0}")]
    Upgrade(String),
}

/// A built application: the store is open, the listener is bound, nothing runs yet.
pub struct Application {
    state: AppState,
    listener: tokio::net::TcpListener,
    admin: Option<crate::admin::socket::Server>,
    tls: Option<crate::tls::Tls>,
}

impl Application {
    /// Opens the store (creating the install key and default pools on first start), seeds the
    /// demo platform when asked on an empty store, and binds the listener and admin socket.
    pub async fn build(
        config: Config,
        clock: Clock,
    ) -> std::result::Result<Application, StartError> {
        crate::tls::check_listen(config.listen, &config.tls, config.insecure_http)?;
        let tls = crate::tls::Tls::prepare(&config.tls, &config.data_dir, config.listen)?;
        let state = open_state(config, clock).await?;
        let config = state.config().clone();
        if config.demo {
            crate::demo::seed_if_empty(&state).await?;
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| StartError::Bind {
                addr: config.listen,
                detail: e.to_string(),
            })?;
        let admin = crate::admin::socket::Server::bind(&config.data_dir)
            .map_err(|e| StartError::Init(Error::Internal(format!("admin socket: {e}"))))?;
        Ok(Application {
            state,
            listener,
            admin: Some(admin),
            tls,
        })
    }

    /// The listener's TLS, when it serves HTTPS.
    pub fn tls(&self) -> Option<&crate::tls::Tls> {
        self.tls.as_ref()
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.config().listen)
    }

    /// The shared state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then shuts down in order.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Application {
            state,
            listener,
            admin,
            tls,
        } = self;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let scheduler = tokio::spawn(crate::scheduler::run_loop(state.clone(), stop_rx.clone()));
        let sender = tokio::spawn(crate::heartbeat::sender::run(
            state.clone(),
            stop_rx.clone(),
        ));
        let admin_task = admin.map(|a| tokio::spawn(a.serve(state.clone(), stop_rx)));
        let router = crate::http::app(state.clone());
        let served = match tls {
            None => {
                axum::serve(
                    listener,
                    router.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(shutdown)
                .await
            }
            Some(tls) => serve_tls(listener, &tls, router, shutdown).await,
        };
        tracing::info!("stopping: requests drained; stopping the scheduler and admin socket");
        let _ = stop_tx.send(true);
        let _ = scheduler.await;
        let _ = sender.await;
        if let Some(t) = admin_task {
            let _ = t.await;
        }
        state.store().close().await;
        tracing::info!("stopped: the writer drained and the store is closed");
        served
    }
}

/// Serves `router` over TLS (axum-server's rustls acceptor, whose configuration a SIGHUP swaps)
/// until `shutdown`, then drains like `axum::serve`: stop accepting, finish in-flight requests
/// (bounded at 30 s), close idle keep-alive connections.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: &crate::tls::Tls,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
    });
    axum_server::from_tcp_rustls(listener.into_std()?, tls.rustls())?
        .handle(handle)
        .serve(router.into_make_service_with_connect_info::<SocketAddr>())
        .await
}

/// Opens the store and key, runs first-start initialisation, and builds the shared state,
/// without binding anything (the CLI uses this when no server holds the store).
pub async fn open_state(config: Config, clock: Clock) -> std::result::Result<AppState, StartError> {
    let store = Store::open(&config.data_dir)?;
    if let Err(e) =
        crate::upgrade::run_pending(&store, &config.data_dir, &config.backup, clock.now()).await
    {
        store.close().await;
        return Err(StartError::Upgrade(e.to_string()));
    }
    let recorded = store
        .read(|r| store::meta_get(r, "install_key_id"))
        .await?
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let key = InstallKey::load_or_create(&config.data_dir, recorded.is_none())?;
    if let Some(expected) = &recorded
        && expected != key.key_id()
    {
        return Err(StartError::KeyMismatch {
            path: InstallKey::path(&config.data_dir).display().to_string(),
            found: key.key_id().to_string(),
            expected: expected.clone(),
        });
    }
    let scheduler =
        Scheduler::for_role(&config.schedules, config.role).map_err(StartError::Schedule)?;
    let license_key_recorded = store
        .read(|r| store::meta_get(r, crate::onprem::LICENSE_KEY_META))
        .await?
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let onprem = crate::onprem::OnPrem::new(&config, license_key_recorded.is_none())?;
    let key_id = key.key_id().to_string();
    let layout = config.pools.clone();
    // A fresh demo platform is born at the start of the replayed history, so that the replay's
    // entries follow the initial ones in time on the platform chain.
    let init_at = if config.demo && recorded.is_none() {
        (clock.now() - chrono::Duration::days(crate::demo::DEMO_DAYS))
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .map_or(clock.now(), |t| t.and_utc())
    } else {
        clock.now()
    };
    let install_id = store
        .write(init_at, Actor::system("init"), move |ctx| {
            let id = match store::meta_get(ctx, "install_id")? {
                Some(b) => {
                    Uuid::from_slice(&b).map_err(|e| Error::Internal(format!("install_id: {e}")))?
                }
                None => {
                    let id = crate::ids::new_id(ctx.now);
                    store::meta_put(ctx, "install_id", id.as_bytes())?;
                    store::meta_put(ctx, "install_key_id", key_id.as_bytes())?;
                    id
                }
            };
            crate::pools::service::ensure_layout(ctx, &layout)?;
            Ok::<_, Error>(id)
        })
        .await?;
    let state = AppState {
        inner: Arc::new(Inner {
            routes: RouteCache::new(config.route_cache_ttl),
            store,
            started_at: clock.now(),
            clock,
            config: Arc::new(config),
            key: Arc::new(key),
            scheduler,
            throttle: Default::default(),
            install_id,
            onprem,
        }),
    };
    crate::onprem::start(&state, license_key_recorded).await?;
    let weak = Arc::downgrade(&state.inner);
    state.store().on_commit(Arc::new(move |notice| {
        if let Some(inner) = weak.upgrade() {
            inner.routes.on_commit(notice);
        }
    }));
    Ok(state)
}
