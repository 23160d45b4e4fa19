//! The Kubernetes side of `pilot serve`, in one call: connect, watch, and
//! write status under the Lease.
//!
//! ```text
//!  pilot serve (no --config-dir) ─► KubeRuntime::start ─► connect (KUBECONFIG | in-cluster, /version)
//!                                                      ├► KubeSource   ─Sink─► registry
//!                                                      ├► StatusWriter ◄─diagnostics─ registry
//!                                                      └► Ingress status (gateway Service address, Lease holder)
//!  /ready waits for KubeRuntime::wait_synced (every kind listed once)
//!  identity (pilot/src/identity.rs): ca_root ─► Secret rudder-ca-root (created under the Lease)
//!                                    publish_root_cert ─► ConfigMap rudder-ca-root-cert in every namespace
//!                                    token_reviewer ─► TokenReview for 15012
//! ```

use std::sync::Arc;

use kube::Client;
use rudder_model::Diagnostic;
use rudder_registry::Sink;
use tokio::sync::watch;

use crate::{
    ca_root::{CaRoot, CaRootError, CaRootOptions},
    lease::LeaseOptions,
    root_cert::RootCertPublisher,
    source::{connect, KubeOptions, KubeSource, SourceError},
    status::{StatusOptions, StatusWriter},
    token_review::KubeTokenReviewer,
};

/// The running Kubernetes source and status writer; both stop when dropped.
pub struct KubeRuntime {
    source: KubeSource,
    status: StatusWriter,
    ingress_status: tokio::task::JoinHandle<()>,
    client: Client,
    install_namespace: String,
}

impl KubeRuntime {
    /// Connects (KUBECONFIG or in-cluster) and starts watching and writing
    /// status. `diagnostics` are the registry's (its latest build's).
    pub async fn start<S: Sink + Clone + 'static>(
        sink: S,
        diagnostics: watch::Receiver<Arc<Vec<Diagnostic>>>,
        options: &KubeOptions,
    ) -> Result<KubeRuntime, SourceError> {
        let client = connect().await?;
        Ok(Self::with_client(client, sink, diagnostics, options))
    }

    /// Same, with a given client (tests point one at a fake API server).
    pub fn with_client<S: Sink + Clone + 'static>(
        client: Client,
        sink: S,
        diagnostics: watch::Receiver<Arc<Vec<Diagnostic>>>,
        options: &KubeOptions,
    ) -> KubeRuntime {
        let source = KubeSource::spawn(client.clone(), options, sink);
        let lease = LeaseOptions {
            duration: options.lease_duration,
            renew_every: options.lease_renew,
            ..LeaseOptions::new(&options.install_namespace, &options.identity)
        };
        let status = StatusWriter::spawn(
            client.clone(),
            StatusOptions {
                lease,
                resync: options.status_resync,
            },
            source.rules(),
            diagnostics,
        );
        let ingress_status = crate::ingress_status::spawn(
            client.clone(),
            options.install_namespace.clone(),
            options.status_resync,
            status.leader(),
        );
        KubeRuntime {
            source,
            status,
            ingress_status,
            client,
            install_namespace: options.install_namespace.clone(),
        }
    }

    /// Completes once every watched kind has been listed once.
    pub async fn wait_synced(&self) {
        self.source.wait_synced().await
    }

    /// Whether every watched kind has been listed once.
    pub fn initial_sync(&self) -> bool {
        self.source.initial_sync()
    }

    /// Whether this replica holds the status Lease.
    pub fn is_status_leader(&self) -> bool {
        self.status.is_leader()
    }

    /// Whether this replica holds the status Lease, as it changes (the same
    /// Lease decides who creates the CA root Secret and writes ConfigMaps).
    pub fn leader(&self) -> watch::Receiver<bool> {
        self.status.leader()
    }

    /// The client (for callers needing one more API).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The mesh root from Secret `rudder-ca-root` in the install namespace:
    /// created by the Lease holder when absent, waited for by the others.
    pub async fn ca_root(&self, trust_domain: &str) -> Result<CaRoot, CaRootError> {
        let options = CaRootOptions::new(&self.install_namespace, trust_domain);
        crate::ca_root::load_or_create(self.client.clone(), &options, self.leader()).await
    }

    /// Starts writing ConfigMap `rudder-ca-root-cert` with `root_pem` into
    /// every namespace (the Lease holder writes; every 60 s a full check).
    pub fn publish_root_cert(&self, root_pem: &str) -> RootCertPublisher {
        RootCertPublisher::spawn(
            self.client.clone(),
            root_pem.to_string(),
            self.leader(),
            std::time::Duration::from_secs(60),
        )
    }

    /// A TokenReview client for the certificate service.
    pub fn token_reviewer(&self) -> KubeTokenReviewer {
        KubeTokenReviewer::new(self.client.clone())
    }
}

impl Drop for KubeRuntime {
    fn drop(&mut self) {
        self.ingress_status.abort();
    }
}
