//! Start-up and shutdown: `Application::build(config, clock)` then
//! `run_until_stopped(shutdown)`, used by `main` and by tests alike (zero-to-production's
//! `startup.rs`). The listener is bound in `build`, so a test asks for `127.0.0.1:0` and reads
//! the port back.
//!
//! Shutdown order: stop accepting, let in-flight requests finish, stop the scheduler and the
//! admin socket, drain the writer, close the store.

use std::net::SocketAddr;
use uuid::Uuid;

use crate::actor::Actor;
use crate::audit::signing::{InstallKey, KeyError};
use crate::clock::Clock;
use crate::config::Config;
use crate::error::Error;
use crate::http::context::{Context, Registry};
use crate::onprem::{LICENSE_KEY_META, OnPrem};
use crate::rbac::Route;
use crate::scheduler::Scheduler;
use crate::state::{AppState, Parts};
use crate::store::{self, Store};

/// Every context of the binary, in sidebar order. Adding a context is one line here (and one
/// more, in `scheduler::job`, only when it adds a scheduled job).
pub const ALL: &[&Context] = &[
    &crate::http::health::CONTEXT,
    &crate::console::CONTEXT,
    &crate::dashboard::CONTEXT,
    &crate::tenants::CONTEXT,
    &crate::apps::CONTEXT,
    &crate::plans::CONTEXT,
    &crate::catalogs::CONTEXT,
    &crate::metering::CONTEXT,
    &crate::invoices::CONTEXT,
    &crate::revenue::CONTEXT,
    &crate::pools::CONTEXT,
    &crate::audit::CONTEXT,
    &crate::scheduler::CONTEXT,
    &crate::operators::CONTEXT,
    &crate::tenant_console::CONTEXT,
    &crate::members::CONTEXT,
    &crate::api_keys::CONTEXT,
    &crate::webhooks::CONTEXT,
    &crate::channels::CONTEXT,
    &crate::approvals::CONTEXT,
    &crate::impersonations::CONTEXT,
    &crate::installs::CONTEXT,
    &crate::heartbeat::CONTEXT,
    &crate::license::CONTEXT,
    &crate::backup::CONTEXT,
    &crate::upgrade::CONTEXT,
];

/// The whole HTTP application for `state`: every context's routes behind one middleware stack.
pub fn router(state: AppState) -> axum::Router {
    crate::http::app(state, ALL)
}

/// The OpenAPI document of every context's routes (`GET /api/openapi.json`, `tenantry openapi`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    crate::http::openapi(ALL)
}

/// What the contexts declared, merged: the permission table, the sidebar, the event names.
pub fn registry() -> &'static Registry {
    static REGISTRY: std::sync::LazyLock<Registry> =
        std::sync::LazyLock::new(|| Registry::new(ALL));
    &REGISTRY
}

/// Every route's permission entry, in context order: the one list a security review reads
/// (a snapshot test keeps a copy of it in `tests/snapshots/routes.txt`).
pub fn routes() -> &'static [Route] {
    static ROUTES: std::sync::LazyLock<Vec<Route>> =
        std::sync::LazyLock::new(|| ALL.iter().flat_map(|c| c.routes.iter().copied()).collect());
    &ROUTES
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
    /// A configured outside service (the SMTP server) could not be set up.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
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
        mut config: Config,
        clock: Clock,
    ) -> std::result::Result<Application, StartError> {
        crate::demo::prepare_config(&mut config).map_err(|e| {
            StartError::Config(crate::config::ConfigError::Invalid(format!(
                "cannot prepare the demo's backup key: {e}"
            )))
        })?;
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
        if let Ok(bound) = listener.local_addr() {
            state.set_bound(bound);
        }
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
        let flusher = tokio::spawn(crate::api_keys::flush_loop(state.clone(), stop_rx.clone()));
        let webhooks = tokio::spawn(crate::webhooks::delivery::run(
            state.clone(),
            stop_rx.clone(),
        ));
        let channels = tokio::spawn(crate::channels::delivery::run(
            state.clone(),
            stop_rx.clone(),
        ));
        let admin_task = admin.map(|a| tokio::spawn(a.serve(state.clone(), stop_rx)));
        let router = router(state.clone());
        release_freed_heap();
        let http = state.config().http.clone();
        let served = crate::http::server::serve(listener, tls, router, &http, shutdown).await;
        tracing::info!("stopping: requests drained; stopping the scheduler and admin socket");
        let _ = stop_tx.send(true);
        let _ = scheduler.await;
        let _ = sender.await;
        let _ = flusher.await;
        let _ = webhooks.await;
        let _ = channels.await;
        if let Some(t) = admin_task {
            let _ = t.await;
        }
        state.store().close().await;
        tracing::info!("stopped: the writer drained and the store is closed");
        served
    }
}

/// Gives the heap that start-up freed back to the kernel. Building the route table and its
/// OpenAPI document (and seeding the demo) peaks at about 9 MiB of heap, nearly all freed once
/// built, but glibc returns freed memory only from the top of its heap: the holes under the
/// long-lived allocations made after them stay resident. `malloc_trim(0)` also releases the
/// whole free pages inside the heap. Measured by `scripts/footprint.sh` on the 2-core machine:
/// idle RSS from 33.4–34.7 MiB to 26.7 MiB, its heap from 9.7 to 4.3 MiB (issue 13's goal is 30
/// MiB idle). Nothing to do on other C
/// libraries, which have no such call.
fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: `malloc_trim` takes no pointer and touches only glibc's own free lists, under
    // the arenas' locks that every other allocator call takes too.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Opens the store and key, runs first-start initialisation, and builds the shared state,
/// without binding anything (the CLI uses this when no server holds the store).
pub async fn open_state(config: Config, clock: Clock) -> std::result::Result<AppState, StartError> {
    let store = Store::open_with_cache(&config.data_dir, config.store.cache_bytes())?;
    store.set_min_free(config.store.min_free_bytes());
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
        .read(|r| store::meta_get(r, LICENSE_KEY_META))
        .await?
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let onprem = OnPrem::new(&config, license_key_recorded.is_none())?;
    let key_id = key.key_id().to_string();
    let layout = config.pools.clone();
    let plan_codes = config.plans.clone();
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
            crate::plans::service::seed(ctx, &plan_codes)?;
            Ok::<_, Error>(id)
        })
        .await?;
    let tokens = crate::api_keys::tokens::TokenKeys::load_or_create(&config.data_dir)?;
    let webhooks = crate::webhooks::runtime::Webhooks::load(&config.data_dir, &config.webhooks)?;
    let mailer = config
        .smtp
        .as_ref()
        .map(crate::mail::Mailer::new)
        .transpose()?;
    let state = AppState::new(Parts {
        store,
        clock,
        config,
        key,
        scheduler,
        install_id,
        onprem,
        mailer,
        tokens,
        hooks: Registry::tenant_hooks(ALL),
        webhooks,
    });
    start_onprem(&state, license_key_recorded).await?;
    crate::metering::load_caps(&state).await?;
    Ok(state)
}

/// Starts the roles on a freshly opened state: a control plane records (or checks) its license
/// key's id; an appliance verifies its license (a refusal is logged and runs degraded, it does
/// not stop the process); a process that no longer plays the appliance keeps the license gate
/// its data dir held (`license::gate`: the role never lifts it). `recorded` is the license key
/// id the store already knew.
///
/// Errors: a license key that is not the one recorded; storage errors.
async fn start_onprem(
    state: &AppState,
    recorded: Option<String>,
) -> std::result::Result<(), StartError> {
    let onprem = state.onprem();
    if let Ok(key) = onprem.license_key() {
        let found = key.key_id().to_string();
        match recorded {
            Some(expected) if expected != found => {
                return Err(StartError::LicenseKeyMismatch {
                    path: OnPrem::license_key_path(&state.config().data_dir)
                        .display()
                        .to_string(),
                    found,
                    expected,
                });
            }
            Some(_) => {}
            None => {
                state
                    .write(Actor::system("init"), move |ctx| {
                        crate::store::meta_put(ctx, LICENSE_KEY_META, found.as_bytes())?;
                        Ok::<_, Error>(())
                    })
                    .await?;
            }
        }
    }
    if onprem.role().is_appliance() {
        crate::license::refresh(state).await?;
    } else if state.read(crate::license::gate::load).await?.is_some() {
        // The gate follows the data, not the role (license::gate): it stays.
        tracing::warn!(
            "this data dir was licensed as an appliance: provisioning stays within its last verified license under role control_plane; start it as role = \"appliance\" to renew the license"
        );
    }
    Ok(())
}
