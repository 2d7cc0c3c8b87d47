//! TLS for the HTTP listener, with rustls (aws-lc-rs provider).
//!
//! - `[tls] cert_file, key_file`: PEM files (the chain, leaf first; a PKCS#8, PKCS#1 or SEC1
//!   key), re-read on SIGHUP so a renewed certificate is served without a restart.
//! - `serve --tls-self-signed`: a self-signed certificate made with rcgen in
//!   `DATA_DIR/tls/` on first use and kept afterwards, so its fingerprint stays the one the
//!   operator pinned. For demos and first starts; it is not in backups (a restore makes a new
//!   one, with a new fingerprint).
//! - A non-loopback listener without TLS is refused unless `--insecure-http` is given, which
//!   is logged as a warning ([`check_listen`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// `[tls]` in the config file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
}

/// How the listener speaks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain HTTP (loopback, or with `--insecure-http`).
    #[default]
    Off,
    /// The operator's certificate.
    Files(TlsFiles),
    /// A self-signed certificate kept in the data dir (`--tls-self-signed`).
    SelfSigned,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("TLS: {path}: {detail}")]
    File {
        /// The file.
        path: String,
        /// What failed.
        detail: String,
    },
    /// The certificate and key do not make a usable server configuration.
    #[error("TLS: {0}")]
    Config(String),
    /// Plain HTTP on a non-loopback address without `--insecure-http`.
    #[error(
        "refusing to serve plain HTTP on {0}, which is not a loopback address: configure [tls] cert_file and key_file, or start with --tls-self-signed; pass --insecure-http only when a TLS proxy on this host terminates TLS"
    )]
    Insecure(SocketAddr),
}

/// Refuses plain HTTP on a non-loopback address unless `insecure_http`; warns when allowed.
///
/// Errors: [`TlsError::Insecure`].
pub fn check_listen(
    listen: SocketAddr,
    mode: &TlsMode,
    insecure_http: bool,
) -> Result<(), TlsError> {
    if *mode != TlsMode::Off || listen.ip().is_loopback() {
        return Ok(());
    }
    if !insecure_http {
        return Err(TlsError::Insecure(listen));
    }
    tracing::warn!(
        %listen,
        "serving plain HTTP on a non-loopback address (--insecure-http): tokens and tenant data cross the network in clear unless a TLS proxy terminates TLS in front"
    );
    Ok(())
}

/// The TLS state of a listener: the rustls configuration the acceptor reads (swapped on
/// reload) and where it came from.
#[derive(Clone)]
pub struct Tls {
    config: Arc<std::sync::RwLock<Arc<rustls::ServerConfig>>>,
    cert: PathBuf,
    key: PathBuf,
    fingerprint: Arc<std::sync::Mutex<String>>,
    self_signed: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.cert)
            .field("self_signed", &self.self_signed)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Sets up TLS for `mode` (making the self-signed certificate when needed). `None` for
    /// [`TlsMode::Off`].
    ///
    /// Errors: unreadable or unusable files.
    pub fn prepare(
        mode: &TlsMode,
        data_dir: &Path,
        listen: SocketAddr,
    ) -> Result<Option<Tls>, TlsError> {
        let (cert, key, self_signed) = match mode {
            TlsMode::Off => return Ok(None),
            TlsMode::Files(f) => (f.cert_file.clone(), f.key_file.clone(), false),
            TlsMode::SelfSigned => {
                let (cert, key) = ensure_self_signed(data_dir, listen)?;
                (cert, key, true)
            }
        };
        let (server, fp) = server_config(&cert, &key)?;
        Ok(Some(Tls {
            config: Arc::new(std::sync::RwLock::new(server)),
            cert,
            key,
            fingerprint: Arc::new(std::sync::Mutex::new(fp)),
            self_signed,
        }))
    }

    /// Re-reads the certificate and key; on failure the served certificate stays.
    ///
    /// Errors: the files are unreadable or unusable.
    pub fn reload(&self) -> Result<String, TlsError> {
        let (server, fp) = server_config(&self.cert, &self.key)?;
        *self
            .config
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = server;
        if let Ok(mut f) = self.fingerprint.lock() {
            f.clone_from(&fp);
        }
        Ok(fp)
    }

    /// SHA-256 fingerprint of the leaf certificate served now (`AB:CD:...`, as
    /// `openssl x509 -noout -fingerprint -sha256` prints it).
    pub fn fingerprint(&self) -> String {
        self.fingerprint
            .lock()
            .map(|f| f.clone())
            .unwrap_or_default()
    }

    /// The certificate file.
    pub fn cert_file(&self) -> &Path {
        &self.cert
    }

    /// Is this the self-signed certificate of `--tls-self-signed`?
    pub fn is_self_signed(&self) -> bool {
        self.self_signed
    }

    /// The configuration new connections are accepted with.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.config
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// `AB:CD:...`: SHA-256 of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn file_err(path: &Path, detail: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        detail: detail.to_string(),
    }
}

/// Builds the rustls server configuration from PEM files; returns it with the leaf's
/// fingerprint.
fn server_config(cert: &Path, key: &Path) -> Result<(Arc<rustls::ServerConfig>, String), TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err(cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(cert, format!("not a PEM certificate chain: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(file_err(cert, "holds no CERTIFICATE block"));
    };
    let fp = fingerprint(leaf);
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| file_err(key, format!("no usable PEM private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            TlsError::Config(format!(
                "{} and {} do not make a usable certificate: {e}",
                cert.display(),
                key.display()
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), fp))
}

/// Directory of the self-signed certificate inside the data dir.
pub const SELF_SIGNED_DIR: &str = "tls";

/// Returns `DATA_DIR/tls/{cert,key}.pem`, making them first when they do not exist: an ECDSA
/// P-256 key and a certificate for `localhost`, the loopback addresses, the listen address and
/// this host's name, valid for five years.
fn ensure_self_signed(data_dir: &Path, listen: SocketAddr) -> Result<(PathBuf, PathBuf), TlsError> {
    let dir = data_dir.join(SELF_SIGNED_DIR);
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    crate::store::ensure_private_dir(&dir).map_err(|e| file_err(&dir, e))?;
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if !listen.ip().is_unspecified() && !listen.ip().is_loopback() {
        names.push(listen.ip().to_string());
    }
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() && !names.iter().any(|n| n == host) {
            names.push(host.to_string());
        }
    }
    let mut params = rcgen::CertificateParams::new(names)
        .map_err(|e| TlsError::Config(format!("self-signed certificate: {e}")))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "tenantry self-signed");
    let year = chrono::Datelike::year(&chrono::Utc::now());
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 5, 1, 1);
    let pair = rcgen::KeyPair::generate()
        .map_err(|e| TlsError::Config(format!("self-signed key: {e}")))?;
    let made = params
        .self_signed(&pair)
        .map_err(|e| TlsError::Config(format!("self-signed certificate: {e}")))?;
    let _ = std::fs::remove_file(&key);
    let _ = std::fs::remove_file(&cert);
    crate::audit::signing::write_private(&key, pair.serialize_pem().as_bytes())
        .map_err(|e| file_err(&key, e))?;
    crate::audit::signing::write_private(&cert, made.pem().as_bytes())
        .map_err(|e| file_err(&cert, e))?;
    tracing::info!(cert = %cert.display(), "made a self-signed TLS certificate");
    Ok((cert, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn plain_http_off_loopback_needs_insecure_http() {
        let files = TlsMode::Files(TlsFiles {
            cert_file: "c".into(),
            key_file: "k".into(),
        });
        assert!(check_listen(addr("127.0.0.1:3500"), &TlsMode::Off, false).is_ok());
        assert!(check_listen(addr("[::1]:3500"), &TlsMode::Off, false).is_ok());
        let err = check_listen(addr("0.0.0.0:3500"), &TlsMode::Off, false).unwrap_err();
        assert!(err.to_string().contains("--insecure-http"), "{err}");
        assert!(check_listen(addr("0.0.0.0:3500"), &TlsMode::Off, true).is_ok());
        assert!(check_listen(addr("10.1.2.3:443"), &files, false).is_ok());
        assert!(check_listen(addr("10.1.2.3:443"), &TlsMode::SelfSigned, false).is_ok());
    }

    #[test]
    fn the_self_signed_certificate_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = Tls::prepare(&TlsMode::SelfSigned, dir.path(), addr("127.0.0.1:0"))
            .unwrap()
            .unwrap();
        let b = Tls::prepare(&TlsMode::SelfSigned, dir.path(), addr("127.0.0.1:0"))
            .unwrap()
            .unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 32 * 3 - 1);
        assert_eq!(b.reload().unwrap(), a.fingerprint());
    }

    #[test]
    fn a_bad_key_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tls::prepare(&TlsMode::SelfSigned, dir.path(), addr("127.0.0.1:0"))
            .unwrap()
            .unwrap();
        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, "not a key").unwrap();
        let mode = TlsMode::Files(TlsFiles {
            cert_file: t.cert_file().to_path_buf(),
            key_file: bad.clone(),
        });
        let err = Tls::prepare(&mode, dir.path(), addr("127.0.0.1:0")).unwrap_err();
        assert!(err.to_string().contains("bad.pem"), "{err}");
    }
}
