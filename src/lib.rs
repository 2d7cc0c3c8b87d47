//! Tenantry: the control plane of a multi-tenant SaaS platform in one binary.
//!
//! # Layout
//! - [`store`]: the embedded redb store, its codec, keys, and the group-commit writer.
//! - [`audit`]: the append-only SHA-256 hash-chained ledger (AUDIT.md), checkpoints, verify,
//!   export.
//! - [`apps`], [`tenants`], [`pools`]: bounded contexts, each with its model, service (the rules)
//!   and `api` (JSON routes).
//! - [`operators`]: operator accounts, roles, tokens, sessions, sign-in throttling.
//! - [`members`], [`api_keys`], [`impersonations`], [`tenant_console`]: the tenant side:
//!   personas, roles and business units; API keys and tenant tokens (EdDSA JWTs, JWKS); Visit
//!   tenant; the Tenant console's shell at `/tenant/{tenant_id}`.
//! - [`mail`]: outgoing email over SMTP (invites).
//! - [`console`]: the server-rendered operator console (maud) and its embedded assets.
//! - [`license`], [`heartbeat`], [`installs`]: on-prem installs (HEARTBEATS.md): the appliance's
//!   license and heartbeat outbox, sender and bundles; the control plane's install registry,
//!   heartbeat intake and witness check. [`onprem`] holds their share of the state and the role
//!   guards.
//! - [`scheduler`]: the closed set of cron jobs and their run records.
//! - [`http`]: the router, middleware, problem+json errors, authentication.
//! - [`rbac`]: roles, permissions and the one permission check.
//! - [`admin`]: operations shared by the CLI and the local admin socket.
//! - [`state`]: [`state::AppState`], what every handler, job and command shares (a leaf of the
//!   layering).
//! - [`app`]: the composition root: the list of every context ([`app::ALL`]),
//!   `Application::build` and `run_until_stopped`.
//! - [`dashboard`]: the platform dashboard page.
//! - [`config`], [`clock`], [`ids`], [`actor`], [`error`]: cross-cutting pieces.
//! - [`demo`]: the demo platform replayed by `serve --demo`.
//! - [`backup`]: online backups (age-encrypted, checksummed), verify and restore.
//! - [`upgrade`]: versioned schema migrations at start, each after a backup.
//! - [`tls`]: HTTPS with rustls, self-signed bootstrap, reload on SIGHUP.
//! - [`systemd`]: sd_notify readiness and watchdog, journald log lines.
//! - [`cli`]: the command line.

pub mod actor;
pub mod admin;
pub mod api_keys;
pub mod app;
pub mod approvals;
pub mod apps;
pub mod audit;
pub mod backup;
pub mod catalogs;
pub mod channels;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod dashboard;
pub mod demo;
pub mod error;
pub mod export;
pub mod heartbeat;
pub mod http;
pub mod ids;
pub mod impersonations;
pub mod installs;
pub mod invoices;
pub mod license;
pub mod mail;
pub mod members;
pub mod metering;
pub mod onprem;
pub mod operators;
pub mod passwords;
pub mod plans;
pub mod pools;
pub mod rbac;
pub mod revenue;
pub mod scheduler;
pub mod state;
pub mod store;
pub mod systemd;
pub mod tenant_console;
pub mod tenants;
pub mod tls;
pub mod upgrade;
pub mod webhooks;
