//! The Kubernetes side of `pilot serve`, in one call: connect, watch, and
//! write status under the Lease.
//!
//! ```text
//!  pilot serve (no --config-dir) ─► KubeRuntime::start ─► connect (KUBECONFIG | in-cluster, /version)
//!                                                      ├► KubeSource   ─Sink─► registry
//!                                                      └► StatusWriter ◄─diagnostics─ registry
//!  /ready waits for KubeRuntime::wait_synced (every kind listed once)
//! ```

use std::sync::Arc;

use kube::Client;
use rudder_model::Diagnostic;
use rudder_registry::Sink;
use tokio::sync::watch;

use crate::{
    lease::LeaseOptions,
    source::{connect, KubeOptions, KubeSource, SourceError},
    status::{StatusOptions, StatusWriter},
};

/// The running Kubernetes source and status writer; both stop when dropped.
pub struct KubeRuntime {
    source: KubeSource,
    status: StatusWriter,
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
        let status = StatusWriter::spawn(client, StatusOptions { lease, resync: options.status_resync }, source.rules(), diagnostics);
        KubeRuntime { source, status }
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
}
