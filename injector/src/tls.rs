//! The webhook's serving certificate, reloaded when its files change.
//!
//! Certificates are rotated by replacing the files (kubelet updates a Secret
//! volume in place; cert-manager renews before expiry). Instead of a file
//! watcher, every handshake compares the files' (inode, size, mtime) with what
//! was loaded: a `stat` of two files per connection costs nothing next to the
//! handshake, and it cannot miss an event. A pair that fails to load (caught
//! mid-write, key not matching the certificate) is logged and the previous
//! pair keeps serving, so a bad rotation never takes the webhook down.
//!
//! Without files (on a cluster, the injector's own certificate), a
//! [`SwappableCert`] holds the pair in memory and is replaced when the
//! Secret changes.

use std::{
    fmt,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::SystemTime,
};

use rustls::{
    crypto::CryptoProvider,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
    ServerConfig,
};

/// Problems loading a certificate/key pair.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The PEM holds no usable certificate or key.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: String,
        /// What is missing.
        message: String,
    },
    /// rustls rejected the pair (unsupported key type, key does not match).
    #[error("{cert} + {key}: {source}")]
    Rustls {
        /// Certificate file.
        cert: String,
        /// Key file.
        key: String,
        /// Why.
        source: rustls::Error,
    },
}

type Stamp = (u64, u64, Option<SystemTime>);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.len(), m.modified().ok()))
}

/// Load a certificate chain and private key from PEM files.
pub fn load_pair(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.display().to_string(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: cert.display().to_string(),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: cert.display().to_string(),
            message: "no CERTIFICATE block".into(),
        });
    }
    let private = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| TlsError::Pem {
            path: key.display().to_string(),
            message: e.to_string(),
        })?
        .ok_or_else(|| TlsError::Pem {
            path: key.display().to_string(),
            message: "no PRIVATE KEY block".into(),
        })?;
    CertifiedKey::from_der(chain, private, provider).map_err(|source| TlsError::Rustls {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        source,
    })
}

struct Loaded {
    stamps: (Option<Stamp>, Option<Stamp>),
    key: Arc<CertifiedKey>,
}

/// A [`ResolvesServerCert`] that reloads the pair when the files change.
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    loaded: Mutex<Loaded>,
}

impl fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish()
    }
}

impl ReloadingCert {
    /// Load the pair now; fails if it cannot be loaded at start.
    pub fn new(cert: &Path, key: &Path, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let stamps = (stamp(cert), stamp(key));
        let loaded = load_pair(cert, key, &provider)?;
        Ok(ReloadingCert {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            provider,
            loaded: Mutex::new(Loaded {
                stamps,
                key: Arc::new(loaded),
            }),
        })
    }

    /// The pair to serve, reloading first if either file changed.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let now = (stamp(&self.cert), stamp(&self.key));
        if now != loaded.stamps {
            match load_pair(&self.cert, &self.key, &self.provider) {
                Ok(k) => {
                    tracing::info!(cert = %self.cert.display(), "serving certificate reloaded");
                    loaded.key = Arc::new(k);
                    loaded.stamps = now;
                }
                Err(error) => {
                    // Keep the stamps old so the next handshake tries again
                    // (the writer may be between the two files).
                    tracing::warn!(%error, "serving certificate changed but cannot be loaded; keeping the previous one");
                }
            }
        }
        loaded.key.clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A [`ResolvesServerCert`] whose pair is replaced in memory: on a cluster
/// the certificate comes from a Secret read through the API (see
/// [`crate::cluster_cert`]), not from files.
pub struct SwappableCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for SwappableCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SwappableCert").finish_non_exhaustive()
    }
}

impl SwappableCert {
    /// Serve `key` until [`SwappableCert::set`] replaces it.
    pub fn new(key: CertifiedKey) -> Self {
        SwappableCert {
            current: RwLock::new(Arc::new(key)),
        }
    }

    /// Serve `key` from the next handshake on.
    pub fn set(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
    }
}

impl ResolvesServerCert for SwappableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// Parse a PEM chain and key held in memory; `what` names them in errors.
pub fn pair_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    what: &str,
) -> Result<CertifiedKey, TlsError> {
    let pem_err = |message: String| TlsError::Pem {
        path: what.to_string(),
        message,
    };
    let chain = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(format!("certificate: {e}")))?;
    if chain.is_empty() {
        return Err(pem_err("no CERTIFICATE block".into()));
    }
    let private = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| pem_err(format!("key: {e}")))?
        .ok_or_else(|| pem_err("no PRIVATE KEY block".into()))?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|source| TlsError::Rustls {
        cert: what.to_string(),
        key: what.to_string(),
        source,
    })
}

fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// A rustls server config serving whatever `resolver` returns, offering h2
/// and http/1.1.
pub fn server_config_with(
    resolver: Arc<dyn ResolvesServerCert>,
) -> Result<ServerConfig, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A rustls server config serving the reloading pair, offering h2 and http/1.1.
pub fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, TlsError> {
    let resolver = ReloadingCert::new(cert, key, Arc::new(provider()))?;
    server_config_with(Arc::new(resolver)).map_err(|source| TlsError::Rustls {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        source,
    })
}
