//! ConfigMap `rudder-ca-root-cert` (data `root-cert.pem`) in every
//! namespace, kept current, as istiod keeps `istio-ca-root-cert`: agents
//! mount it to verify pilot on 15012 and their peers.
//!
//! ```text
//!  watch Namespaces ─────────────────────────────────┐ reflector stores
//!  watch ConfigMaps (fieldSelector metadata.name=…) ─┤
//!  Lease rudder-pilot-status (holder only) ──────────┼─► reconcile: for each live namespace
//!  resync tick ──────────────────────────────────────┘     absent ─► POST   differs ─► PUT (resourceVersion)   same ─► nothing
//! ```
//!
//! Level-based, like the status writer: the desired state is computed from
//! the two stores on every change, so a namespace created later, a ConfigMap
//! a user edited or deleted, or a lease handover all converge without a
//! second write once the cluster shows the right content. Writes that race
//! (409) are dropped: the watch brings the winner's object and the next round
//! looks again. Terminating namespaces are skipped (the API server refuses
//! creates there).

use std::{collections::BTreeMap, time::Duration};

use futures::StreamExt;
use k8s_openapi::{
    api::core::v1::{ConfigMap, Namespace},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    api::PostParams,
    runtime::{
        reflector::{self, ObjectRef, Store},
        watcher, WatchStreamExt,
    },
    Api, Client, ResourceExt,
};
use tokio::{sync::watch, task::JoinHandle};

/// The ConfigMap every namespace gets (Istio's is `istio-ca-root-cert`).
pub const ROOT_CERT_CONFIGMAP: &str = "rudder-ca-root-cert";
/// Its data key (what agents read, as with `--ca-dir`).
pub const ROOT_CERT_KEY: &str = "root-cert.pem";

/// Why one namespace's ConfigMap could not be written (logged, retried).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The create or replace failed.
    #[error("writing ConfigMap {namespace}/{ROOT_CERT_CONFIGMAP}: {cause}")]
    Write {
        /// The namespace.
        namespace: String,
        /// The API error.
        cause: kube::Error,
    },
}

/// The running publisher; it stops when dropped.
pub struct RootCertPublisher {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for RootCertPublisher {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl RootCertPublisher {
    /// Starts watching and, while `leader` is true, writing `root_pem` into
    /// every namespace; everything is looked at again every `resync`.
    pub fn spawn(
        client: Client,
        root_pem: String,
        leader: watch::Receiver<bool>,
        resync: Duration,
    ) -> RootCertPublisher {
        let (changes_tx, changes) = watch::channel(0u64);
        let (namespaces, ns_writer) = reflector::store::<Namespace>();
        let (configmaps, cm_writer) = reflector::store::<ConfigMap>();
        let ns_stream = watcher(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default(),
        )
        .modify(|ns| ns.managed_fields_mut().clear())
        .reflect(ns_writer);
        let cm_config =
            watcher::Config::default().fields(&format!("metadata.name={ROOT_CERT_CONFIGMAP}"));
        let cm_stream = watcher(Api::<ConfigMap>::all(client.clone()), cm_config)
            .modify(|cm| cm.managed_fields_mut().clear())
            .reflect(cm_writer);
        let tasks = vec![
            tokio::spawn(drive("namespaces", ns_stream, changes_tx.clone())),
            tokio::spawn(drive("configmaps", cm_stream, changes_tx)),
            tokio::spawn(
                Reconciler {
                    client,
                    root_pem,
                    namespaces,
                    configmaps,
                    leader,
                    changes,
                }
                .run(resync),
            ),
        ];
        RootCertPublisher { tasks }
    }
}

/// Polls a reflecting watch stream (backing off on errors) and ticks on every event.
async fn drive<S, K>(what: &'static str, stream: S, changes: watch::Sender<u64>)
where
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    let mut stream = std::pin::pin!(stream.default_backoff());
    while let Some(event) = stream.next().await {
        if let Err(error) = event {
            tracing::warn!(watch = what, %error, "root certificate publisher: watch failed; retrying");
        }
        changes.send_modify(|n| *n += 1);
    }
}

struct Reconciler {
    client: Client,
    root_pem: String,
    namespaces: Store<Namespace>,
    configmaps: Store<ConfigMap>,
    leader: watch::Receiver<bool>,
    changes: watch::Receiver<u64>,
}

impl Reconciler {
    async fn run(mut self, resync: Duration) {
        // Both stores listed once, or a ConfigMap that exists would look absent.
        if self.namespaces.wait_until_ready().await.is_err()
            || self.configmaps.wait_until_ready().await.is_err()
        {
            return;
        }
        let mut tick = tokio::time::interval(resync);
        loop {
            tokio::select! {
                r = self.changes.changed() => if r.is_err() { return },
                r = self.leader.changed() => if r.is_err() { return },
                _ = tick.tick() => {}
            }
            if *self.leader.borrow_and_update() {
                self.reconcile().await;
            }
        }
    }

    async fn reconcile(&self) {
        for ns in self.namespaces.state() {
            let namespace = ns.name_any();
            let terminating = ns.metadata.deletion_timestamp.is_some()
                || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
            if terminating {
                continue;
            }
            let existing = self
                .configmaps
                .get(&ObjectRef::new(ROOT_CERT_CONFIGMAP).within(&namespace));
            let current = existing
                .as_ref()
                .and_then(|cm| cm.data.as_ref())
                .and_then(|d| d.get(ROOT_CERT_KEY));
            if current == Some(&self.root_pem) {
                continue;
            }
            match self.write(&namespace, existing.as_deref()).await {
                Ok(()) => {
                    tracing::info!(%namespace, configmap = ROOT_CERT_CONFIGMAP, "mesh root published")
                }
                Err(PublishError::Write {
                    cause: kube::Error::Api(e),
                    ..
                }) if e.code == 409 => {
                    tracing::debug!(%namespace, "root ConfigMap changed meanwhile; looking again on the next event")
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot publish the mesh root; retrying later")
                }
            }
        }
    }

    /// Creates the ConfigMap, or replaces `existing` (guarded by its resourceVersion).
    async fn write(
        &self,
        namespace: &str,
        existing: Option<&ConfigMap>,
    ) -> Result<(), PublishError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let mut cm = existing.cloned().unwrap_or_else(|| ConfigMap {
            metadata: ObjectMeta {
                name: Some(ROOT_CERT_CONFIGMAP.into()),
                namespace: Some(namespace.into()),
                labels: Some(BTreeMap::from([(
                    "app".to_string(),
                    "rudder-pilot".to_string(),
                )])),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        });
        cm.data
            .get_or_insert_with(BTreeMap::new)
            .insert(ROOT_CERT_KEY.into(), self.root_pem.clone());
        let pp = PostParams::default();
        let result = match existing {
            None => api.create(&pp, &cm).await,
            Some(_) => api.replace(ROOT_CERT_CONFIGMAP, &pp, &cm).await,
        };
        result.map(|_| ()).map_err(|cause| PublishError::Write {
            namespace: namespace.into(),
            cause,
        })
    }
}
