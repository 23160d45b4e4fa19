//! The certificate service tests run against: a fresh mesh root
//! (`cluster.local`), rudder-ca's `CertificateService` over TLS on a loopback
//! port (its serving certificate for 127.0.0.1 signed by that root), stopped
//! when the [`CaServer`] is dropped.

use std::{path::Path, sync::Arc, time::Duration};

use rudder_ca::{root, Authenticators, CaMetrics, CertificateAuthority, CertificateService};
use tokio_stream::wrappers::TcpListenerStream;

/// A running certificate service.
pub struct CaServer {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// The authority it signs with.
    pub ca: Arc<CertificateAuthority>,
    /// Its counters.
    pub metrics: CaMetrics,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl CaServer {
    /// Starts a service issuing certificates of at most `ttl`, accepting the
    /// credentials `auth` accepts. Needs a Tokio runtime.
    pub async fn start(ttl: Duration, auth: Authenticators) -> CaServer {
        let now = rudder_ca::unix_now();
        let (cert, key) = root::generate("cluster.local", now).expect("generate a root");
        let r = root::from_pem(
            Path::new("root-cert.pem"),
            &cert,
            Path::new("root-key.pem"),
            &key,
            now,
        )
        .expect("a fresh root is valid");
        let ca = Arc::new(CertificateAuthority::new(r, "cluster.local", ttl));
        let (chain, skey) = ca
            .serving_cert(&[], &["127.0.0.1".parse().expect("an IP")])
            .expect("a serving certificate");
        let svc = CertificateService::new(ca.clone(), auth);
        let metrics = svc.metrics();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("bound").to_string();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let router = tonic::transport::Server::builder()
            .tls_config(rudder_ca::server_tls(&chain, &skey))
            .expect("TLS config")
            .add_service(svc.into_server());
        tokio::spawn(router.serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            async {
                let _ = rx.await;
            },
        ));
        CaServer {
            addr,
            ca,
            metrics,
            _stop: tx,
        }
    }

    /// The mesh root, PEM.
    pub fn root_pem(&self) -> String {
        self.ca.root_pem().to_string()
    }
}
