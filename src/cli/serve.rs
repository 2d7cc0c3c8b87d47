//! `tenantry serve`: builds the application and serves until SIGTERM or Ctrl-C; SIGHUP reloads
//! the TLS certificate; the demo platform and its token on `--demo`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::fail;
use crate::app::Application;
use crate::clock::Clock;
use crate::config::{Config, Overrides, Secret};

/// `tenantry serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default).
    #[arg(long, env = "TENANTRY_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Data directory.
    #[arg(long, env = "TENANTRY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Config file (TOML); default /etc/tenantry/tenantry.toml when present.
    #[arg(long, env = "TENANTRY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Seed a realistic demo platform on first start of an empty data dir.
    #[arg(long)]
    pub demo: bool,
    /// Role: `appliance`, `control_plane` (default) or `both`.
    #[arg(long, env = "TENANTRY_ROLE")]
    pub role: Option<crate::config::Role>,
    /// Serve HTTPS with a self-signed certificate kept in DATA_DIR/tls (made on first use);
    /// its SHA-256 fingerprint is logged at start.
    #[arg(long)]
    pub tls_self_signed: bool,
    /// Allow plain HTTP on a non-loopback address (only behind a TLS proxy on this host).
    #[arg(long)]
    pub insecure_http: bool,
}

/// File holding the token generated for `serve --demo` when none is configured.
pub const DEMO_TOKEN_FILE: &str = "demo-admin-token";

fn demo_token(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join(DEMO_TOKEN_FILE);
    if let Ok(t) = std::fs::read_to_string(&path)
        && t.trim().len() >= 16
    {
        return Ok(t.trim().to_string());
    }
    crate::store::ensure_private_dir(data_dir).map_err(std::io::Error::other)?;
    let mut raw = [0u8; 24];
    getrandom::fill(&mut raw).map_err(std::io::Error::other)?;
    let token = format!("demo-{}", hex::encode(raw));
    let _ = std::fs::remove_file(&path);
    crate::audit::signing::write_private(&path, format!("{token}\n").as_bytes())?;
    Ok(token)
}

/// Runs `tenantry serve` until SIGTERM or Ctrl-C.
pub(super) async fn run(args: ServeArgs) -> ExitCode {
    // Signal handlers first: from the first log line on, SIGTERM drains and SIGHUP reloads.
    let signalled = shutdown_signal();
    let hup = sighup();
    let token = std::env::var("TENANTRY_ADMIN_OPS_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .map(Secret::new);
    let mut config = match Config::load(Overrides {
        config: args.config,
        listen: args.listen,
        data_dir: args.data_dir,
        admin_ops_token: token,
        demo: args.demo,
        role: args.role,
        tls_self_signed: args.tls_self_signed,
        insecure_http: args.insecure_http,
    }) {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    if config.demo && config.admin_ops_token.is_none() {
        match demo_token(&config.data_dir) {
            Ok(t) => {
                tracing::info!(
                    "demo admin token (super_admin): {t}  (also in {})",
                    config.data_dir.join(DEMO_TOKEN_FILE).display()
                );
                config.admin_ops_token = Some(Secret::new(t));
            }
            Err(e) => return fail(&format!("cannot write the demo token: {e}")),
        }
    }
    if config.admin_ops_token.is_none() {
        tracing::warn!(
            "no admin_ops_token is configured: sign in with an operator account (create the first one with `echo <password> | tenantry operator add --data-dir {} --username <name> --role super_admin --password-stdin`), or set TENANTRY_ADMIN_OPS_TOKEN for the API",
            config.data_dir.display()
        );
    }
    let app = match Application::build(config, Clock::System).await {
        Ok(a) => a,
        Err(e) => return fail(&e.to_string()),
    };
    let addr = app.local_addr();
    let scheme = if app.tls().is_some() { "https" } else { "http" };
    if let Some(tls) = app.tls() {
        tracing::info!(
            cert = %tls.cert_file().display(),
            "TLS certificate{} SHA-256 fingerprint {}",
            if tls.is_self_signed() { " (self-signed)" } else { "" },
            tls.fingerprint()
        );
    }
    tracing::info!(
        data_file = %app.state().store().path().display(),
        role = app.state().onprem().role().as_str(),
        "tenantry {} listening on {scheme}://{addr} (API under /api, OpenAPI at /api/openapi.json)",
        env!("CARGO_PKG_VERSION")
    );
    let reloader = tokio::spawn(reload_on_sighup(hup, app.tls().cloned()));
    // The store is open, the listener bound, the signals handled: tell systemd (a no-op
    // outside it).
    crate::systemd::ready(&format!("serving on {scheme}://{addr}"));
    let watchdog = crate::systemd::spawn_watchdog(app.state().store().clone());
    let shutdown = async {
        signalled.await;
        crate::systemd::stopping();
    };
    let served = app.run_until_stopped(shutdown).await;
    reloader.abort();
    if let Some(w) = watchdog {
        w.abort();
    }
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("server error: {e}")),
    }
}

/// The SIGHUP handler, installed now (SIGHUP's default action would end the process).
fn sighup() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

/// SIGHUP (`systemctl reload tenantry`): re-reads the TLS certificate and key; the served one
/// stays when the new files are unusable. Other settings need a restart.
async fn reload_on_sighup(hup: Option<tokio::signal::unix::Signal>, tls: Option<crate::tls::Tls>) {
    let Some(mut hup) = hup else {
        return;
    };
    while hup.recv().await.is_some() {
        crate::systemd::reloading();
        match &tls {
            Some(tls) => match tls.reload() {
                Ok(fp) => tracing::info!(
                    "SIGHUP: TLS certificate reloaded, SHA-256 fingerprint {fp}; other settings need a restart"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: TLS reload failed; still serving the previous certificate")
                }
            },
            None => tracing::info!("SIGHUP: no TLS to reload; other settings need a restart"),
        }
        crate::systemd::ready("reloaded");
    }
}

/// Installs the SIGTERM and SIGINT (Ctrl-C) handlers now, and returns a future that resolves
/// on either. Installing them before readiness is announced matters: a SIGTERM that arrives
/// right after `READY=1` must still drain rather than kill the process.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate()).ok();
    let int = signal(SignalKind::interrupt()).ok();
    async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = wait(int) => tracing::info!("Ctrl-C received; shutting down gracefully"),
            _ = wait(term) => tracing::info!("SIGTERM received; shutting down gracefully"),
        }
    }
}
