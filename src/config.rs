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
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq, Eq, utoipa::ToSchema)]
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
    /// `[pools]`: the default layout.
    pub pools: Option<PoolLayout>,
    /// `[[regions]]`: the regions offered (replaces the defaults).
    pub regions: Option<Vec<Region>>,
    /// `plans = ["free", "pro"]`: plan names accepted at provisioning.
    pub plans: Option<Vec<String>>,
    /// `[tls] cert_file, key_file`: serve HTTPS with these PEM files.
    pub tls: Option<crate::tls::TlsFiles>,
    /// `[backup] dir, keep, recipients`.
    pub backup: Option<crate::backup::BackupConfig>,
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
    pub backup: crate::backup::BackupConfig,
    /// The file that was read, if any.
    pub source: Option<PathBuf>,
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
            pools: PoolLayout::default(),
            regions: default_regions(),
            plans: default_plans(),
            demo: false,
            tls: crate::tls::TlsMode::Off,
            insecure_http: false,
            backup: crate::backup::BackupConfig::default(),
            source: None,
        }
    }
}

impl Config {
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
        let cfg = Config {
            listen: f.listen.unwrap_or(d.listen),
            data_dir: f.data_dir.unwrap_or(d.data_dir),
            admin_ops_token: f.admin_ops_token,
            route_cache_ttl: f
                .route_cache_ttl_secs
                .map_or(d.route_cache_ttl, Duration::from_secs),
            body_limit_bytes: f.body_limit_bytes.unwrap_or(d.body_limit_bytes),
            schedules: f.schedules,
            pools: f.pools.unwrap_or(d.pools),
            regions: f.regions.unwrap_or(d.regions),
            plans: f.plans.unwrap_or(d.plans),
            demo: false,
            tls: f
                .tls
                .map_or(crate::tls::TlsMode::Off, crate::tls::TlsMode::Files),
            insecure_http: false,
            backup: f.backup.unwrap_or_default(),
            source: None,
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
        Ok(())
    }

    /// The region with `code`.
    pub fn region(&self, code: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.code == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
