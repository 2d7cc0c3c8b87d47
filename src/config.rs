//! Configuration: CLI flags, then `TENANTRY_*` environment, then a TOML file, then defaults
//! (API.md "Process and configuration").
//!
//! The file is `--config PATH` (env `TENANTRY_CONFIG`), else `/etc/tenantry/tenantry.toml` when it
//! exists. Unknown keys are refused so a typo does not silently fall back to a default. Secrets
//! are wrapped in [`Secret`], which never prints.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Default listen address: loopback only (security by default).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3500";
/// Default data dir, relative to the working directory (systemd uses `/var/lib/tenantry`).
pub const DEFAULT_DATA_DIR: &str = "./tenantry-data";
/// Config file read when present and no `--config` is given.
pub const SYSTEM_CONFIG: &str = "/etc/tenantry/tenantry.toml";

/// A secret string: compared in constant time, never printed.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Constant-time equality with `candidate`.
    pub fn matches(&self, candidate: &str) -> bool {
        use subtle::ConstantTimeEq;
        let a = blake3::hash(self.0.as_bytes());
        let b = blake3::hash(candidate.as_bytes());
        a.as_bytes().ct_eq(b.as_bytes()).into()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A region tenants can be provisioned in.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// Cloud region code, e.g. `eu-west-1`.
    pub code: String,
    /// Human name.
    pub name: String,
    /// A sovereign region (hard residency); `G` tenants must use one (PRODUCT.md A2).
    #[serde(default)]
    pub sovereign: bool,
}

/// The default pool layout created on first start (PRODUCT.md B8).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PoolLayout {
    /// Numbered shared admin pools.
    pub admin_pools: u32,
    /// Modules served by app pools, e.g. `core`, `billing`.
    pub modules: Vec<String>,
    /// Shared app pools per module.
    pub app_pools_per_module: u32,
}

impl Default for PoolLayout {
    fn default() -> Self {
        PoolLayout {
            admin_pools: 4,
            modules: vec!["core".into(), "billing".into(), "reports".into()],
            app_pools_per_module: 2,
        }
    }
}

/// The TOML file's shape; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `listen = "127.0.0.1:3500"`.
    pub listen: Option<SocketAddr>,
    /// `data_dir = "/var/lib/tenantry"`.
    pub data_dir: Option<PathBuf>,
    /// `admin_ops_token = "..."`: the bootstrap `super_admin` token.
    pub admin_ops_token: Option<Secret>,
    /// `route_cache_ttl_secs = 300`.
    pub route_cache_ttl_secs: Option<u64>,
    /// `body_limit_bytes = 1048576`.
    pub body_limit_bytes: Option<usize>,
    /// `[schedules] shred_due_tenants = "0 */15 * * * *"`: 6-field cron overrides by job name.
    #[serde(default)]
    pub schedules: BTreeMap<String, String>,
    /// `session_idle_secs = 1800`: a console session ends after this long without a request.
    pub session_idle_secs: Option<u64>,
    /// `session_max_secs = 43200`: a console session ends this long after sign-in.
    pub session_max_secs: Option<u64>,
    /// `secure_cookies = true`: mark cookies `Secure` even when this process serves plain HTTP
    /// (behind a TLS-terminating proxy). Serving TLS itself always marks them.
    pub secure_cookies: Option<bool>,
    /// `[pools]`: the default layout.
    pub pools: Option<PoolLayout>,
    /// `[[regions]]`: the regions offered (replaces the defaults).
    pub regions: Option<Vec<Region>>,
    /// `plans = ["free", "pro"]`: plan names accepted at provisioning.
    pub plans: Option<Vec<String>>,
    /// `role = "appliance" | "control_plane" | "both"` (HEARTBEATS.md); `control_plane` by default.
    pub role: Option<Role>,
    /// `[control_plane]`: the appliance's link to its control plane (appliance and both roles).
    pub control_plane: Option<ControlPlaneFile>,
    /// `[installs]`: how the control plane judges the installs it registered.
    pub installs: Option<InstallsConfig>,
    /// `[tls] cert_file, key_file`: serve HTTPS with these PEM files.
    pub tls: Option<crate::tls::TlsFiles>,
    /// `[backup] dir, keep, recipients`.
    pub backup: Option<crate::backup::config::BackupConfig>,
    /// `public_url = "https://tenantry.example.com"`: the address people reach this server at,
    /// for links in emails (invites). Without it, links use `listen`.
    pub public_url: Option<String>,
    /// `[smtp] host, port, tls, from, username, password`: send invites by email.
    pub smtp: Option<SmtpConfig>,
    /// `[webhooks]`: where deliveries may go, and how many run at once.
    pub webhooks: Option<WebhooksConfig>,
    /// `[http]`: the HTTP edge's connection cap, timeouts, trusted proxies and export limits.
    pub http: Option<HttpConfig>,
    /// `[store] min_free_mib`: the free space kept on the data dir's disk.
    pub store: Option<StoreConfig>,
    /// `[billing] issuer, issuer_address, number_prefix, net_days`: who issues invoices.
    pub billing: Option<BillingConfig>,
}

/// `[store]`: the embedded store's limits.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Free space, in MiB, that writes leave on the file system of the data dir. Below it every
    /// write answers 503 `storage_full` before it touches the data file, and reads go on; writes
    /// resume by themselves once space is freed (issue 12, R6). A disk that fills inside a
    /// commit would fail the store until a restart, so the reserve is what keeps it running:
    /// keep it above the largest batch a commit writes (64 MiB, the largest upload, by default).
    /// 0 turns the check off.
    pub min_free_mib: u64,
    /// The store's page cache, in MiB (16 by default, at least 4). redb's own default is
    /// 1 GiB, which let the resident set grow past 160 MiB under load (issue 13: ≤ 64 MiB).
    /// A page missing from it is read from the kernel's page cache: compare.sh's lifecycle
    /// and directory loads ran as fast with 8 or 16 MiB as with 32, and the resident set
    /// after them fell from 72 to 55 MiB at 16. A larger cache saves those reads for a
    /// directory of many more tenants, at its size in memory.
    pub cache_mib: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            min_free_mib: 64,
            cache_mib: 16,
        }
    }
}

impl StoreConfig {
    /// The page cache in bytes.
    pub fn cache_bytes(&self) -> usize {
        usize::try_from(self.cache_mib.max(4).saturating_mul(1024 * 1024)).unwrap_or(usize::MAX)
    }

    /// The reserve in bytes.
    pub fn min_free_bytes(&self) -> u64 {
        self.min_free_mib.saturating_mul(1024 * 1024)
    }
}

/// `[billing]`: the issuer of invoices (operator guide §4). One issuer per install, so one
/// gapless number sequence: `<number_prefix>-<6-digit sequence>` (`INV-000042`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct BillingConfig {
    /// The seller's legal name, printed on every invoice.
    pub issuer: String,
    /// Address lines printed under it.
    pub issuer_address: Vec<String>,
    /// Prefix of invoice numbers: 1–12 characters of `A-Z 0-9 -`.
    pub number_prefix: String,
    /// Days from finalization to the due date (net 30 by default); a tenant's billing profile
    /// may set its own.
    pub net_days: u32,
}

impl Default for BillingConfig {
    fn default() -> Self {
        BillingConfig {
            issuer: "Tenantry".into(),
            issuer_address: Vec::new(),
            number_prefix: "INV".into(),
            net_days: 30,
        }
    }
}

impl BillingConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let p = &self.number_prefix;
        if p.is_empty()
            || p.len() > 12
            || !p
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(ConfigError::Invalid(
                "[billing] number_prefix must be 1-12 characters of A-Z, 0-9 and -".into(),
            ));
        }
        if self.issuer.trim().is_empty() || self.issuer.len() > 120 || self.issuer_address.len() > 6
        {
            return Err(ConfigError::Invalid(
                "[billing] issuer must be 1-120 characters, with at most 6 issuer_address lines"
                    .into(),
            ));
        }
        if !(1..=365).contains(&self.net_days) {
            return Err(ConfigError::Invalid(
                "[billing] net_days must be 1-365".into(),
            ));
        }
        Ok(())
    }
}

/// `[http]`: the limits of the HTTP edge. Every one is bounded so that an anonymous client
/// cannot pin memory, connections or threads (issue 12, finding 1).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Most connections served at once; further ones wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers (and that an idle keep-alive
    /// connection stays open), and to finish the TLS handshake.
    pub header_read_timeout_secs: u64,
    /// Seconds from a request's headers to its response's headers (body read included); past
    /// it the answer is 408 `request_timeout`.
    pub request_timeout_secs: u64,
    /// The same for the routes that take uploads (bundles), which are larger.
    pub upload_timeout_secs: u64,
    /// Peers whose `X-Forwarded-For`/`Forwarded` header names the client (a TLS proxy on
    /// this host: `["127.0.0.1/32", "::1/128"]`). Empty: the peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Most CSV and NDJSON exports streamed at once; more answer 503 `busy`.
    pub max_exports: usize,
    /// Seconds an export waits for the client to take its next chunk before it is cut off.
    pub export_send_timeout_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_connections: 512,
            header_read_timeout_secs: 10,
            request_timeout_secs: 30,
            upload_timeout_secs: 300,
            trusted_proxies: Vec::new(),
            max_exports: 4,
            export_send_timeout_secs: 30,
        }
    }
}

impl HttpConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("max_connections", self.max_connections as u64),
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("request_timeout_secs", self.request_timeout_secs),
            ("upload_timeout_secs", self.upload_timeout_secs),
            ("max_exports", self.max_exports as u64),
            ("export_send_timeout_secs", self.export_send_timeout_secs),
        ];
        match positive.iter().find(|(_, v)| *v == 0) {
            Some((name, _)) => Err(ConfigError::Invalid(format!(
                "[http] {name} must be at least 1"
            ))),
            None => Ok(()),
        }
    }

    /// The connection's header-read (and keep-alive idle, and TLS handshake) timeout.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs)
    }
}

/// How the connection to the SMTP server is secured.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain SMTP, then STARTTLS (required): port 587 by default.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS): port 465 by default.
    Tls,
    /// No TLS at all: only for a relay on the same host or a test sink. Port 25 by default.
    None,
}

/// `[smtp]`: the mail server invites are sent through.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Server host name.
    pub host: String,
    /// Port; by `tls`: 587, 465 or 25.
    pub port: Option<u16>,
    /// `starttls` (default), `tls` or `none`.
    #[serde(default)]
    pub tls: SmtpTls,
    /// The sender, e.g. `"Tenantry <no-reply@example.com>"`.
    pub from: String,
    /// SMTP AUTH user name, if the server needs one.
    pub username: Option<String>,
    /// SMTP AUTH password.
    pub password: Option<Secret>,
    /// Most seconds a send may take (connect included); 10 by default.
    pub timeout_secs: Option<u64>,
}

impl SmtpConfig {
    /// Checks the section (the sender parses, credentials come in pairs).
    ///
    /// Errors: [`ConfigError::Invalid`] naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.from.parse::<lettre::message::Mailbox>().map_err(|e| {
            ConfigError::Invalid(format!(
                "[smtp] from = \"{}\" is not a mailbox ({e}): use \"Name <address@domain>\"",
                self.from
            ))
        })?;
        if self.host.trim().is_empty() {
            return Err(ConfigError::Invalid("[smtp] host is empty".into()));
        }
        if self.username.is_some() != self.password.is_some() {
            return Err(ConfigError::Invalid(
                "[smtp] username and password go together: give both or neither".into(),
            ));
        }
        if self.timeout_secs == Some(0) {
            return Err(ConfigError::Invalid(
                "[smtp] timeout_secs must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Values given on the command line or in the environment (clap reads both).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config` / `TENANTRY_CONFIG`.
    pub config: Option<PathBuf>,
    /// `--listen` / `TENANTRY_LISTEN`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir` / `TENANTRY_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `TENANTRY_ADMIN_OPS_TOKEN`.
    pub admin_ops_token: Option<Secret>,
    /// `--demo`.
    pub demo: bool,
    /// `--role` / `TENANTRY_ROLE`.
    pub role: Option<Role>,
    /// `serve --tls-self-signed`.
    pub tls_self_signed: bool,
    /// `serve --insecure-http`.
    pub insecure_http: bool,
}

/// The effective configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory of the store, keys and admin socket.
    pub data_dir: PathBuf,
    /// Bootstrap operator token, acting as `super_admin` (API.md "Authentication").
    pub admin_ops_token: Option<Secret>,
    /// How long a route lookup is cached (`route_cache_ttl`, 5 minutes by default; operator
    /// guide §2 `ROUTE_CACHE_TTL_MS`).
    pub route_cache_ttl: Duration,
    /// Largest request body accepted, bytes (1 MiB by default, API.md).
    pub body_limit_bytes: usize,
    /// Cron overrides by job name.
    pub schedules: BTreeMap<String, String>,
    /// Console session idle limit (30 minutes by default).
    pub session_idle: Duration,
    /// Console session absolute limit (12 hours by default).
    pub session_max: Duration,
    /// Mark cookies `Secure` although this process serves plain HTTP (a TLS proxy is in front);
    /// read through [`Config::cookies_secure`], which also marks them whenever TLS is served.
    pub secure_cookies: bool,
    /// Default pool layout.
    pub pools: PoolLayout,
    /// Regions offered.
    pub regions: Vec<Region>,
    /// Plans accepted.
    pub plans: Vec<String>,
    /// Seed the demo platform on an empty data dir.
    pub demo: bool,
    /// How the listener speaks: plain, `[tls]` files, or self-signed.
    pub tls: crate::tls::TlsMode,
    /// Allow plain HTTP on a non-loopback address (`--insecure-http`).
    pub insecure_http: bool,
    /// Backups: directory, rotation, encryption.
    pub backup: crate::backup::config::BackupConfig,
    /// The address people reach this server at (no trailing slash), for links in emails.
    pub public_url: Option<String>,
    /// `[smtp]`: send invites by email.
    pub smtp: Option<SmtpConfig>,
    /// `[webhooks]`: the delivery policy.
    pub webhooks: WebhooksConfig,
    /// `[http]`: the HTTP edge's limits.
    pub http: HttpConfig,
    /// `[store]`: the free-space reserve.
    pub store: StoreConfig,
    /// `[billing]`: the invoices' issuer, numbering and payment terms.
    pub billing: BillingConfig,
    /// The file that was read, if any.
    pub source: Option<PathBuf>,
    /// Which side of the on-prem contract this process plays.
    pub role: Role,
    /// The appliance's link to its control plane; present exactly when `role` is `appliance` or
    /// `both`.
    pub control_plane: Option<ControlPlaneLink>,
    /// Control-plane judgement of installs (silence, bundle size).
    pub installs: InstallsConfig,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {detail}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        detail: String,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("config file {path} is invalid: {detail}")]
    Parse {
        /// File.
        path: String,
        /// Cause (names the key).
        detail: String,
    },
    /// A value breaks a rule.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The regions offered when the config names none.
pub fn default_regions() -> Vec<Region> {
    let r = |code: &str, name: &str, sovereign: bool| Region {
        code: code.into(),
        name: name.into(),
        sovereign,
    };
    vec![
        r("us-east-1", "US East (N. Virginia)", false),
        r("us-west-2", "US West (Oregon)", false),
        r("eu-west-1", "EU West (Ireland)", false),
        r("eu-central-1", "EU Central (Frankfurt)", false),
        r("ap-southeast-1", "Asia Pacific (Singapore)", false),
        r("me-central-1", "Middle East (UAE)", false),
        r("eu-sov-1", "EU Sovereign (Frankfurt)", true),
        r("us-gov-1", "US GovCloud", true),
    ]
}

/// The plans offered when the config names none (HQ PRD §4.2, dashboard spec §3.4).
pub fn default_plans() -> Vec<String> {
    ["free", "pro", "agency", "enterprise"]
        .map(String::from)
        .to_vec()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 3500))),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            admin_ops_token: None,
            route_cache_ttl: Duration::from_secs(300),
            body_limit_bytes: 1024 * 1024,
            schedules: BTreeMap::new(),
            session_idle: Duration::from_secs(30 * 60),
            session_max: Duration::from_secs(12 * 3600),
            secure_cookies: false,
            pools: PoolLayout::default(),
            regions: default_regions(),
            plans: default_plans(),
            demo: false,
            tls: crate::tls::TlsMode::Off,
            insecure_http: false,
            backup: crate::backup::config::BackupConfig::default(),
            public_url: None,
            smtp: None,
            webhooks: WebhooksConfig::default(),
            http: HttpConfig::default(),
            store: StoreConfig::default(),
            billing: BillingConfig::default(),
            source: None,
            role: Role::default(),
            control_plane: None,
            installs: InstallsConfig::default(),
        }
    }
}

impl Config {
    /// Whether cookies carry `Secure`: always when this process serves TLS (`[tls]` files or
    /// `--tls-self-signed`), and behind a TLS proxy when `secure_cookies = true`.
    pub fn cookies_secure(&self) -> bool {
        self.secure_cookies || self.tls != crate::tls::TlsMode::Off
    }

    /// Loads the effective configuration: `over` (flags and env), then the file, then defaults.
    pub fn load(over: Overrides) -> Result<Config, ConfigError> {
        let path = over.config.clone().or_else(|| {
            let p = Path::new(SYSTEM_CONFIG);
            p.exists().then(|| p.to_path_buf())
        });
        let file = match &path {
            Some(p) => Self::read_file(p)?,
            None => FileConfig::default(),
        };
        let mut file = file;
        if over.role.is_some() {
            file.role = over.role;
        }
        let mut cfg = Config::from_file(file)?;
        cfg.source = path;
        if let Some(l) = over.listen {
            cfg.listen = l;
        }
        if let Some(d) = over.data_dir {
            cfg.data_dir = d;
        }
        if over.admin_ops_token.is_some() {
            cfg.admin_ops_token = over.admin_ops_token;
        }
        cfg.demo = over.demo;
        if over.tls_self_signed {
            if let crate::tls::TlsMode::Files(f) = &cfg.tls {
                return Err(ConfigError::Invalid(format!(
                    "--tls-self-signed and [tls] cert_file = {} are both given: choose one",
                    f.cert_file.display()
                )));
            }
            cfg.tls = crate::tls::TlsMode::SelfSigned;
        }
        cfg.insecure_http = over.insecure_http;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses a TOML file.
    pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            detail: e.to_string(),
        })
    }

    /// Applies a parsed file over the defaults.
    pub fn from_file(f: FileConfig) -> Result<Config, ConfigError> {
        let d = Config::default();
        let mut schedules = f.schedules;
        let control_plane = match f.control_plane {
            Some(mut cp) => {
                let heartbeat_schedule = cp
                    .heartbeat_schedule
                    .take()
                    .unwrap_or_else(|| DEFAULT_HEARTBEAT_SCHEDULE.to_string());
                let link = ControlPlaneLink::parse(cp)?;
                if schedules.contains_key(HEARTBEAT_JOB) {
                    return Err(ConfigError::Invalid(
                        "set the heartbeat schedule as [control_plane] heartbeat_schedule, not in [schedules]".into(),
                    ));
                }
                schedules.insert(HEARTBEAT_JOB.into(), heartbeat_schedule);
                Some(link)
            }
            None => None,
        };
        let cfg = Config {
            listen: f.listen.unwrap_or(d.listen),
            data_dir: f.data_dir.unwrap_or(d.data_dir),
            admin_ops_token: f.admin_ops_token,
            route_cache_ttl: f
                .route_cache_ttl_secs
                .map_or(d.route_cache_ttl, Duration::from_secs),
            body_limit_bytes: f.body_limit_bytes.unwrap_or(d.body_limit_bytes),
            schedules,
            session_idle: f
                .session_idle_secs
                .map_or(d.session_idle, Duration::from_secs),
            session_max: f
                .session_max_secs
                .map_or(d.session_max, Duration::from_secs),
            secure_cookies: f.secure_cookies.unwrap_or(d.secure_cookies),
            pools: f.pools.unwrap_or(d.pools),
            regions: f.regions.unwrap_or(d.regions),
            plans: f.plans.unwrap_or(d.plans),
            demo: false,
            tls: f
                .tls
                .map_or(crate::tls::TlsMode::Off, crate::tls::TlsMode::Files),
            insecure_http: false,
            backup: f.backup.unwrap_or_default(),
            public_url: f
                .public_url
                .map(|u| u.trim().trim_end_matches('/').to_string()),
            smtp: f.smtp,
            webhooks: f.webhooks.unwrap_or_default(),
            http: f.http.unwrap_or_default(),
            store: f.store.unwrap_or_default(),
            billing: f.billing.unwrap_or_default(),
            source: None,
            role: f.role.unwrap_or_default(),
            control_plane,
            installs: f.installs.unwrap_or_default(),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks rules that types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.regions.is_empty() {
            return Err(ConfigError::Invalid(
                "at least one region is needed in [[regions]]".into(),
            ));
        }
        if self.pools.admin_pools == 0
            || self.pools.app_pools_per_module == 0
            || self.pools.modules.is_empty()
        {
            return Err(ConfigError::Invalid(
                "[pools] needs admin_pools >= 1, app_pools_per_module >= 1 and at least one module"
                    .into(),
            ));
        }
        if let Some(t) = &self.admin_ops_token
            && t.expose().len() < 16
        {
            return Err(ConfigError::Invalid(
                    "admin_ops_token must be at least 16 characters; generate one with `openssl rand -hex 32`".into(),
                ));
        }
        if self.session_idle.is_zero() || self.session_max < self.session_idle {
            return Err(ConfigError::Invalid(
                "session_idle_secs must be positive and no longer than session_max_secs".into(),
            ));
        }
        if let Some(u) = &self.public_url {
            match url::Url::parse(u) {
                Ok(p) if matches!(p.scheme(), "http" | "https") && p.host().is_some() => {}
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "public_url = \"{u}\" is not an http(s) URL such as https://tenantry.example.com"
                    )));
                }
            }
        }
        if let Some(smtp) = &self.smtp {
            smtp.validate()?;
        }
        self.http.validate()?;
        self.webhooks.validate()?;
        self.billing.validate()?;
        if self.backup.keep == 0 {
            return Err(ConfigError::Invalid(
                "[backup] keep must be at least 1 (the number of daily backups kept)".into(),
            ));
        }
        if self.body_limit_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "body_limit_bytes must be at least 1024".into(),
            ));
        }
        self.validate_role()
    }

    /// The role and the `[control_plane]` section must agree: an appliance needs its license and
    /// the control plane's key; a control plane must not carry an appliance's section (a
    /// forgotten `role` line would otherwise run unlicensed).
    fn validate_role(&self) -> Result<(), ConfigError> {
        match (self.role.is_appliance(), &self.control_plane) {
            (true, None) => Err(ConfigError::Invalid(format!(
                "role = \"{}\" needs a [control_plane] section with license_file and license_public_key (and url unless the install is air-gapped)",
                self.role.as_str()
            ))),
            (false, Some(_)) => Err(ConfigError::Invalid(
                "the [control_plane] section configures an appliance, but role is \"control_plane\": set role = \"appliance\" (or \"both\"), or TENANTRY_ROLE".into(),
            )),
            _ => {
                let i = &self.installs;
                if i.heartbeat_interval_secs < 10 || i.silent_after_missed == 0 {
                    return Err(ConfigError::Invalid(
                        "[installs] needs heartbeat_interval_secs >= 10 and silent_after_missed >= 1".into(),
                    ));
                }
                if i.bundle_limit_bytes < self.body_limit_bytes {
                    return Err(ConfigError::Invalid(
                        "[installs] bundle_limit_bytes must be at least body_limit_bytes".into(),
                    ));
                }
                Ok(())
            }
        }
    }

    /// The region with `code`.
    pub fn region(&self, code: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.code == code)
    }
}

/// The scheduler job that writes heartbeats; its schedule comes from
/// `[control_plane] heartbeat_schedule`.
pub const HEARTBEAT_JOB: &str = "heartbeat";

/// Default heartbeat schedule: every 5 minutes (6 fields, seconds first).
pub const DEFAULT_HEARTBEAT_SCHEDULE: &str = "0 */5 * * * *";

/// Default bound of the heartbeat outbox: 2016 heartbeats, one week at one every 5 minutes.
pub const DEFAULT_BACKLOG_MAX: u32 = 2016;

/// Which side of the on-prem contract a process plays (HEARTBEATS.md). Routes of the other side
/// answer 404.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An on-prem or sovereign install: verifies its license, sends heartbeats.
    Appliance,
    /// The vendor's side: registers installs, issues licenses, receives heartbeats. The default,
    /// so a laptop or demo runs unlicensed; on-prem packages set `role = "appliance"`.
    #[default]
    ControlPlane,
    /// Both in one process (demos, tests).
    Both,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Appliance, Role::ControlPlane, Role::Both];
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Appliance => "appliance",
            Role::ControlPlane => "control_plane",
            Role::Both => "both",
        }
    }
    /// Does this process play the appliance side?
    pub fn is_appliance(self) -> bool {
        matches!(self, Role::Appliance | Role::Both)
    }
    /// Does this process play the control-plane side?
    pub fn is_control_plane(self) -> bool {
        matches!(self, Role::ControlPlane | Role::Both)
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "appliance" => Ok(Role::Appliance),
            "control_plane" => Ok(Role::ControlPlane),
            "both" => Ok(Role::Both),
            other => Err(format!(
                "role '{other}' is unknown: use appliance, control_plane or both"
            )),
        }
    }
}

/// `[control_plane]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPlaneFile {
    /// `url = "https://cp.example.com"`: where heartbeats go; absent for air-gapped installs.
    pub url: Option<String>,
    /// `ca_file = "/etc/tenantry/cp-ca.pem"`: trust only this CA (PEM) for the control plane.
    pub ca_file: Option<PathBuf>,
    /// `license_file = "/etc/tenantry/license.json"`: the signed license.
    pub license_file: PathBuf,
    /// `license_public_key = "<base64>"`: the control plane's license-signing key
    /// (`GET /api/license/public-key`), configured at install time.
    pub license_public_key: String,
    /// `heartbeat_schedule = "0 */5 * * * *"`.
    pub heartbeat_schedule: Option<String>,
    /// `backlog_max = 2016`: most undelivered heartbeats kept (see `heartbeat::outbox`).
    pub backlog_max: Option<u32>,
    /// `enrollment_secret = "tenroll_..."`: the one-time secret the control plane showed when it
    /// registered this install without its public key (see `onprem::enroll`).
    pub enrollment_secret: Option<String>,
}

/// The appliance's link to its control plane, checked.
#[derive(Clone, Debug)]
pub struct ControlPlaneLink {
    /// Base URL of the control plane; `None` when heartbeats travel only as bundles.
    pub url: Option<reqwest::Url>,
    /// CA certificate (PEM) that alone is trusted for `url`.
    pub ca_file: Option<PathBuf>,
    /// The signed license file.
    pub license_file: PathBuf,
    /// The control plane's Ed25519 license key (raw 32 bytes).
    pub license_public_key: [u8; 32],
    /// Most undelivered heartbeats kept in the outbox, 10–20000.
    pub backlog_max: u32,
    /// The enrollment secret, when the install was registered without its public key: the
    /// first delivery or bundle proves with it that the install key is this appliance's
    /// (`onprem::enroll`), and a license naming `enrollment_key_id` needs it.
    pub enrollment_secret: Option<crate::onprem::enroll::EnrollmentSecret>,
}

impl ControlPlaneLink {
    /// Checks a `[control_plane]` section (its `heartbeat_schedule` becomes the `heartbeat` job's
    /// schedule, in [`Config::schedules`]).
    ///
    /// Errors: a message naming the key, the bad value and the fix.
    pub fn parse(f: ControlPlaneFile) -> Result<ControlPlaneLink, ConfigError> {
        use base64::Engine;
        let url = f
            .url
            .as_deref()
            .map(parse_control_plane_url)
            .transpose()
            .map_err(ConfigError::Invalid)?;
        let license_public_key: [u8; 32] = base64::engine::general_purpose::STANDARD
            .decode(f.license_public_key.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                ConfigError::Invalid(
                    "[control_plane] license_public_key must be the standard base64 of a 32-byte Ed25519 key: copy public_key from the control plane's GET /api/license/public-key".into(),
                )
            })?;
        let backlog_max = f.backlog_max.unwrap_or(DEFAULT_BACKLOG_MAX);
        if !(10..=20_000).contains(&backlog_max) {
            return Err(ConfigError::Invalid(format!(
                "[control_plane] backlog_max = {backlog_max} is out of range: use 10 to 20000"
            )));
        }
        let enrollment_secret = match f.enrollment_secret.as_deref() {
            None => None,
            Some(s) => Some(crate::onprem::enroll::EnrollmentSecret::parse(s).ok_or_else(|| {
                ConfigError::Invalid(
                    "[control_plane] enrollment_secret must be the tenroll_... secret the control plane showed when it registered this install".into(),
                )
            })?),
        };
        Ok(ControlPlaneLink {
            url,
            ca_file: f.ca_file,
            license_file: f.license_file,
            license_public_key,
            backlog_max,
            enrollment_secret,
        })
    }
}

/// Parses the control plane's base URL: `https://`, or plain `http://` only to a loopback
/// address (tests and demos).
///
/// Errors: a message naming the URL and what to change.
pub fn parse_control_plane_url(s: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(s.trim())
        .map_err(|e| format!("[control_plane] url '{s}' is not a URL: {e}"))?;
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!(
            "[control_plane] url '{s}' must be a base URL without credentials, query or fragment"
        ));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if loopback {
                Ok(url)
            } else {
                Err(format!(
                    "[control_plane] url '{s}' uses plain http to a non-loopback host: use https (plain http is accepted only to 127.0.0.1, ::1 or localhost)"
                ))
            }
        }
        other => Err(format!(
            "[control_plane] url '{s}' has scheme '{other}': use https"
        )),
    }
}

/// `[webhooks]`: where webhook deliveries may go (the SSRF policy) and how many run at once.
///
/// A delivery's host is resolved when it is sent, and every address is checked: loopback,
/// private, link-local (the cloud metadata address 169.254.169.254 among them), shared,
/// unspecified, multicast and documentation ranges are refused unless listed here.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Networks plain `http` endpoints may point to (e.g. `["127.0.0.1/8"]` for tests and
    /// demos); they are also exempt from the private-address refusal. Empty: https only.
    pub allow_http: Vec<ipnet::IpNet>,
    /// Further networks an `https` endpoint may resolve to although they are private (an
    /// on-prem receiver on the LAN).
    pub allow_private: Vec<ipnet::IpNet>,
    /// When not empty, deliveries go only to addresses in these networks, and hostnames other
    /// than `localhost` are refused without being resolved (closed test and fuzzing setups).
    pub restrict_to: Vec<ipnet::IpNet>,
    /// Seconds a delivery waits for its answer (10: Standard Webhooks' usual timeout).
    pub timeout_secs: u64,
    /// Deliveries in flight at once, across endpoints.
    pub max_in_flight: usize,
    /// Deliveries in flight at once to one endpoint, so a slow endpoint holds only its own.
    pub per_endpoint: usize,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            allow_http: Vec::new(),
            allow_private: Vec::new(),
            restrict_to: Vec::new(),
            timeout_secs: 10,
            max_in_flight: 64,
            per_endpoint: 4,
        }
    }
}

impl WebhooksConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.timeout_secs == 0 || self.timeout_secs > 60 {
            return Err(ConfigError::Invalid(
                "[webhooks] timeout_secs must be 1-60".into(),
            ));
        }
        if self.max_in_flight == 0 || self.per_endpoint == 0 || self.max_in_flight > 10_000 {
            return Err(ConfigError::Invalid(
                "[webhooks] max_in_flight (1-10000) and per_endpoint must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// `[installs]`: how the control plane judges the installs it registered.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct InstallsConfig {
    /// The heartbeat interval installs are expected to keep, seconds (300: the appliance's
    /// default schedule).
    pub heartbeat_interval_secs: u64,
    /// Missed intervals before an online install is marked silent (3, HEARTBEATS.md).
    pub silent_after_missed: u32,
    /// Largest heartbeat bundle accepted by `POST /api/installs/heartbeat-bundles`, bytes
    /// (64 MiB: a full week's backlog fits).
    pub bundle_limit_bytes: usize,
}

impl Default for InstallsConfig {
    fn default() -> Self {
        InstallsConfig {
            heartbeat_interval_secs: 300,
            silent_after_missed: 3,
            bundle_limit_bytes: 64 * 1024 * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_the_packaged_config_file_shows_is_a_real_key() {
        // packaging/tenantry.toml documents the settings as commented `#key = value` lines under
        // commented `#[section]` headers. Uncommented (but for placeholders), they must parse:
        // a renamed or misspelled key there would make an operator's edit refuse to start.
        let shipped = include_str!("../packaging/tenantry.toml");
        let uncommented: String = shipped
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
            .filter(|l| {
                let is_header = l.starts_with('[') && l.ends_with(']');
                let is_setting = l.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                });
                (is_header || is_setting) && !l.contains("...")
            })
            .map(|l| match l.split_once(" = ") {
                // `key = "<what to put here>"`: any string stands in for the placeholder.
                Some((k, v)) if v.starts_with("\"<") => format!("{k} = \"placeholder\"\n"),
                _ => format!("{l}\n"),
            })
            .collect();
        assert!(uncommented.contains("[control_plane]"), "{uncommented}");
        let f: FileConfig =
            toml::from_str(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        assert_eq!(f.schedules.len(), 7, "{:?}", f.schedules);
        for job in f.schedules.keys() {
            assert!(crate::scheduler::job::Job::parse(job).is_some(), "{job}");
        }
    }

    #[test]
    fn a_typo_in_the_file_is_refused_naming_the_key() {
        let err = toml::from_str::<FileConfig>("listne = \"1.2.3.4:5\"").unwrap_err();
        assert!(err.to_string().contains("listne"), "{err}");
    }

    #[test]
    fn flags_and_env_beat_the_file_which_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:4000\"\ndata_dir = \"/from/file\"\nroute_cache_ttl_secs = 9\n",
        )
        .unwrap();
        let cfg = Config::load(Overrides {
            config: Some(path),
            data_dir: Some("/from/flag".into()),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(cfg.listen.port(), 4000);
        assert_eq!(cfg.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(cfg.route_cache_ttl, Duration::from_secs(9));
        assert_eq!(cfg.pools, PoolLayout::default());
    }

    #[test]
    fn tls_and_backup_sections_parse_and_a_bad_recipient_is_named() {
        let f: FileConfig = toml::from_str(
            "[tls]\ncert_file = \"/etc/tenantry/cert.pem\"\nkey_file = \"/etc/tenantry/key.pem\"\n\
             [backup]\nkeep = 3\nrecipients = [\"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\"]\n",
        )
        .unwrap();
        let cfg = Config::from_file(f).unwrap();
        assert!(matches!(cfg.tls, crate::tls::TlsMode::Files(_)));
        assert_eq!(cfg.backup.keep, 3);
        assert_eq!(cfg.backup.recipients.len(), 1);
        let err =
            toml::from_str::<FileConfig>("[backup]\nrecipients = [\"age1nope\"]\n").unwrap_err();
        assert!(err.to_string().contains("age1nope"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("super-secret-token-value");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert!(s.matches("super-secret-token-value"));
        assert!(!s.matches("super-secret-token-valuX"));
    }

    #[test]
    fn plain_http_is_accepted_only_to_loopback() {
        for ok in [
            "https://cp.example.com",
            "https://10.0.0.5:8443/base/",
            "http://127.0.0.1:3500",
            "http://[::1]:80",
            "http://localhost:9",
        ] {
            assert!(parse_control_plane_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://cp.example.com",
            "http://10.0.0.5",
            "ftp://127.0.0.1",
            "https://user:pw@cp.example.com",
            "https://cp.example.com/?x=1",
            "not a url",
        ] {
            assert!(parse_control_plane_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_appliance_needs_its_section_and_a_control_plane_refuses_one() {
        let section = "[control_plane]\nlicense_file = \"/l.json\"\nlicense_public_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n";
        let appliance: FileConfig =
            toml::from_str(&format!("role = \"appliance\"\n{section}")).unwrap();
        let cfg = Config::from_file(appliance).unwrap();
        assert!(cfg.role.is_appliance() && !cfg.role.is_control_plane());
        assert_eq!(
            cfg.schedules.get(HEARTBEAT_JOB).map(String::as_str),
            Some(DEFAULT_HEARTBEAT_SCHEDULE)
        );
        let bare: FileConfig = toml::from_str("role = \"appliance\"\n").unwrap();
        let err = Config::from_file(bare).unwrap_err().to_string();
        assert!(err.contains("[control_plane]"), "{err}");
        let forgotten: FileConfig = toml::from_str(section).unwrap();
        let err = Config::from_file(forgotten).unwrap_err().to_string();
        assert!(err.contains("TENANTRY_ROLE"), "{err}");
        let bad_key: FileConfig = toml::from_str(
            "role = \"both\"\n[control_plane]\nlicense_file = \"/l\"\nlicense_public_key = \"nope\"\n",
        )
        .unwrap();
        let err = Config::from_file(bad_key).unwrap_err().to_string();
        assert!(err.contains("license_public_key"), "{err}");
    }
}
