//! TLS of the secure port (15012) that can change while serving: pilot's
//! serving certificate and the roots client certificates must chain to are
//! swapped when the plug-in CA rotates, without closing a connection
//! (established ones keep their session; new handshakes use the new set).
//!
//! ```text
//!  TcpListener ─accept─► handshake task (current ServerConfig, 10 s bound) ─► tonic (TlsConnectInfo: peer certs)
//!                                  ▲ ReloadableTls::set(chain, key, roots)  (identity.rs, on rotation)
//! ```

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use anyhow::Context;
use rustls::{server::WebPkiClientVerifier, RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{server::TlsStream, TlsAcceptor};

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The current TLS settings of the secure port.
#[derive(Clone)]
pub struct ReloadableTls {
    config: Arc<RwLock<Arc<ServerConfig>>>,
}

/// A server config presenting `chain_pem`/`key_pem` and asking clients,
/// optionally, for a certificate chaining to one of `roots_pem`.
pub fn server_config(
    chain_pem: &str,
    key_pem: &str,
    roots_pem: &str,
) -> anyhow::Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = rustls_pemfile::certs(&mut chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("pilot's serving certificate chain")?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .context("pilot's serving key")?
        .context("pilot's serving key: no private key found")?;
    let mut roots = RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut roots_pem.as_bytes()) {
        roots
            .add(c.context("the mesh root(s)")?)
            .context("the mesh root(s)")?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .context("client certificate verifier")?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .context("pilot's serving certificate")?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

impl ReloadableTls {
    /// Starts with the given set.
    pub fn new(chain_pem: &str, key_pem: &str, roots_pem: &str) -> anyhow::Result<Self> {
        Ok(ReloadableTls {
            config: Arc::new(RwLock::new(Arc::new(server_config(
                chain_pem, key_pem, roots_pem,
            )?))),
        })
    }

    /// New handshakes use this set from now on.
    pub fn set(&self, chain_pem: &str, key_pem: &str, roots_pem: &str) -> anyhow::Result<()> {
        let c = Arc::new(server_config(chain_pem, key_pem, roots_pem)?);
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = c;
        Ok(())
    }

    fn current(&self) -> Arc<ServerConfig> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The stream of established TLS connections on `listener`: each
    /// handshake runs in its own task, so a slow client delays nobody.
    pub fn incoming(
        self,
        listener: TcpListener,
    ) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(error) => {
                        tracing::warn!(%error, "secure port: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = TlsAcceptor::from(self.current());
                let conn_tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = conn_tx.send(Ok(tls)).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "secure port: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "secure port: TLS handshake timed out"),
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }
}
