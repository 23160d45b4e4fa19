//! The Kubernetes source: one kube-rs watcher per kind, feeding the
//! registry's [`Sink`] exactly as the directory source does.
//!
//! ```text
//!  watcher(kind) ─ Init ─ InitApply… ─ InitDone ─┬─► sink.reset("kubernetes/<plural>", batch)   (one atomic replace)
//!                                                └─► first time: this kind is synced (/ready)
//!                ─ Apply(obj) ─────────────────────► sink.apply / sink.reject
//!                ─ Delete(obj) ────────────────────► sink.delete
//!                ─ Err (disconnect, 410 Gone, …) ──► logged; the watcher re-watches or re-lists with backoff
//! ```
//!
//! Why buffer until `InitDone`: a re-list (initial list, 410 Gone after a
//! compaction, a reconnect too old to resume) must replace the kind's
//! objects atomically. Applying `InitApply`s one by one would push a
//! half-listed cluster; instead the whole list is one `reset`, which drops
//! objects deleted meanwhile and schedules exactly one rebuild.

use std::{collections::BTreeMap, time::Duration};

use futures::StreamExt;
use kube::{
    runtime::{watcher, WatchStreamExt},
    Api, Client,
};
use rudder_config::{kube as k, mesh::MESH_CONFIGMAP_NAME};
use rudder_registry::{Batch, Kind, ObjectKey, Origin, Sink};
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    resources::{
        api_resource, Converted, RuleObject, RuleState, Trimmed, Watched, SECRET_FIELD_SELECTOR,
    },
    status::RuleIndex,
};

/// Errors connecting to a cluster.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The configured API server does not answer.
    #[error("cannot reach the Kubernetes API server ({cause}); check KUBECONFIG or the pod's network, or pass --config-dir DIR")]
    Unreachable {
        /// Cause (in the message, not a `source`: kube's errors already
        /// print their own chain).
        cause: kube::Error,
    },
    /// Neither KUBECONFIG (or ~/.kube/config) nor the in-cluster service account worked.
    #[error(
        "no Kubernetes cluster to watch: set KUBECONFIG (or ~/.kube/config), run pilot in a pod with a \
         service account, or pass --config-dir DIR to serve a directory instead ({cause})"
    )]
    NoCluster {
        /// Cause (in the message only, as above).
        cause: kube::Error,
    },
}

/// Builds a client from KUBECONFIG / ~/.kube/config, else the in-cluster
/// service account, and checks the API server answers (`/version`), so a
/// wrong cluster is a clear error at start instead of a pilot that is never
/// ready.
pub async fn connect() -> Result<Client, SourceError> {
    let client = Client::try_default()
        .await
        .map_err(|cause| SourceError::NoCluster { cause })?;
    let version = client
        .apiserver_version()
        .await
        .map_err(|cause| SourceError::Unreachable { cause })?;
    tracing::info!(server = %version.git_version, "connected to Kubernetes");
    Ok(client)
}

/// Settings of the Kubernetes source and its status writer.
#[derive(Clone, Debug)]
pub struct KubeOptions {
    /// Where Rudder is installed: the `rudder-mesh` ConfigMap and the status
    /// Lease live here.
    pub install_namespace: String,
    /// This replica's name in the status Lease (unique per replica).
    pub identity: String,
    /// How long the status Lease lasts without renewal.
    pub lease_duration: Duration,
    /// How often the holder renews it (and others try to take it over).
    pub lease_renew: Duration,
    /// How often status is re-checked even without changes.
    pub status_resync: Duration,
}

impl Default for KubeOptions {
    fn default() -> Self {
        Self {
            install_namespace: crate::INSTALL_NAMESPACE.into(),
            identity: crate::lease::default_identity(),
            lease_duration: Duration::from_secs(15),
            lease_renew: Duration::from_secs(5),
            status_resync: Duration::from_secs(30),
        }
    }
}

/// The kinds the source watches, in start order.
pub const WATCHED_KINDS: [Kind; 29] = [
    Kind::Namespace,
    Kind::MeshConfig,
    Kind::Service,
    Kind::EndpointSlice,
    Kind::Pod,
    Kind::VirtualService,
    Kind::DestinationRule,
    Kind::Sidecar,
    Kind::ServiceEntry,
    Kind::WorkloadEntry,
    Kind::Gateway,
    Kind::RouteRule,
    Kind::DestinationPolicy,
    Kind::PeerAuthentication,
    Kind::AuthorizationPolicy,
    Kind::RequestAuthentication,
    Kind::Telemetry,
    Kind::Secret,
    Kind::Ingress,
    Kind::IngressClass,
    Kind::GatewayClass,
    Kind::KubeGateway,
    Kind::HttpRoute,
    Kind::GrpcRoute,
    Kind::TcpRoute,
    Kind::TlsRoute,
    Kind::ReferenceGrant,
    Kind::HttpProxy,
    Kind::Mapping,
];

/// The store scope a watched kind owns: `kubernetes/<plural>`.
pub fn scope_of(kind: Kind) -> String {
    format!("kubernetes/{}", api_resource(kind).plural)
}

/// Running watchers; they stop when this is dropped.
pub struct KubeSource {
    tasks: Vec<JoinHandle<()>>,
    synced: watch::Receiver<usize>,
    rules: RuleIndex,
}

impl KubeSource {
    /// Starts one watcher per kind in [`WATCHED_KINDS`] (needs a Tokio runtime).
    pub fn spawn<S: Sink + Clone + 'static>(
        client: Client,
        options: &KubeOptions,
        sink: S,
    ) -> KubeSource {
        let (synced_tx, synced) = watch::channel(0usize);
        let rules = RuleIndex::default();
        let mut tasks = Vec::new();
        for kind in WATCHED_KINDS {
            let ar = api_resource(kind);
            let w = Watch {
                kind,
                scope: scope_of(kind),
                sink: sink.clone(),
                synced: synced_tx.clone(),
                rules: rules.clone(),
            };
            let all = watcher::Config::default();
            let task = match kind {
                Kind::Namespace => tokio::spawn(w.run(
                    Api::<Watched<k::Namespace>>::all_with(client.clone(), &ar),
                    all,
                )),
                Kind::Service => tokio::spawn(w.run(
                    Api::<Watched<k::Service>>::all_with(client.clone(), &ar),
                    all,
                )),
                Kind::Pod => {
                    tokio::spawn(w.run(Api::<Watched<k::Pod>>::all_with(client.clone(), &ar), all))
                }
                Kind::Endpoints => tokio::spawn(w.run(
                    Api::<Watched<k::Endpoints>>::all_with(client.clone(), &ar),
                    all,
                )),
                Kind::EndpointSlice => tokio::spawn(w.run(
                    Api::<Watched<k::EndpointSlice>>::all_with(client.clone(), &ar),
                    all,
                )),
                Kind::Ingress => tokio::spawn(w.run(
                    Api::<Watched<k::Ingress>>::all_with(client.clone(), &ar),
                    all,
                )),
                Kind::IngressClass => tokio::spawn(w.run(
                    Api::<Watched<k::IngressClass>>::all_with(client.clone(), &ar),
                    all,
                )),
                Kind::Secret => {
                    // TLS credentials (credentialName); see `SECRET_FIELD_SELECTOR`.
                    let credentials = all.fields(SECRET_FIELD_SELECTOR);
                    tokio::spawn(w.run(
                        Api::<Watched<k::Secret>>::all_with(client.clone(), &ar),
                        credentials,
                    ))
                }
                Kind::MeshConfig => {
                    let api = Api::<Watched<k::ConfigMap>>::namespaced_with(
                        client.clone(),
                        &options.install_namespace,
                        &ar,
                    );
                    let one = all.fields(&format!("metadata.name={MESH_CONFIGMAP_NAME}"));
                    tokio::spawn(w.run(api, one))
                }
                Kind::VirtualService
                | Kind::DestinationRule
                | Kind::Sidecar
                | Kind::ServiceEntry
                | Kind::WorkloadEntry
                | Kind::Gateway
                | Kind::RouteRule
                | Kind::DestinationPolicy
                | Kind::PeerAuthentication
                | Kind::AuthorizationPolicy
                | Kind::RequestAuthentication
                | Kind::Telemetry
                | Kind::GatewayClass
                | Kind::KubeGateway
                | Kind::HttpRoute
                | Kind::GrpcRoute
                | Kind::TcpRoute
                | Kind::TlsRoute
                | Kind::ReferenceGrant
                | Kind::HttpProxy
                | Kind::Mapping => tokio::spawn(w.run(
                    Api::<Watched<RuleObject>>::all_with(client.clone(), &ar),
                    all,
                )),
            };
            tasks.push(task);
        }
        tracing::info!(kinds = WATCHED_KINDS.len(), namespace = %options.install_namespace, "watching Kubernetes");
        KubeSource {
            tasks,
            synced,
            rules,
        }
    }

    /// Whether every watcher has finished its first full list.
    pub fn initial_sync(&self) -> bool {
        *self.synced.borrow() >= self.tasks.len()
    }

    /// Completes once every watcher has finished its first full list (the
    /// moment `/ready` may turn true).
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.clone();
        let n = self.tasks.len();
        // The sender lives in the watcher tasks, which run until dropped.
        let _ = rx.wait_for(|done| *done >= n).await;
    }

    /// The route rules in the cluster with their current status (for the
    /// status writer).
    pub fn rules(&self) -> RuleIndex {
        self.rules.clone()
    }
}

impl Drop for KubeSource {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// One kind's watch loop.
struct Watch<S> {
    kind: Kind,
    scope: String,
    sink: S,
    synced: watch::Sender<usize>,
    rules: RuleIndex,
}

impl<S: Sink> Watch<S> {
    async fn run<T: Trimmed>(self, api: Api<Watched<T>>, config: watcher::Config) {
        let mut events = std::pin::pin!(watcher(api, config).default_backoff());
        let mut listing: Option<(Batch, BTreeMap<ObjectKey, RuleState>)> = None;
        let mut first_sync = true;
        let kind = self.kind;
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Init) => listing = Some(Default::default()),
                Ok(watcher::Event::InitApply(w)) => {
                    let (batch, rules) = listing.get_or_insert_with(Default::default);
                    if let Some(state) = w.object.rule_state() {
                        rules.insert(ObjectKey::from_meta(kind, w.object.metadata()), state);
                    }
                    match w.object.into_object(kind, self.origin()) {
                        Converted::Good(o) => batch.objects.push(*o),
                        Converted::Bad(r) => batch.rejected.push(r),
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    let (batch, rules) = listing.take().unwrap_or_default();
                    tracing::info!(kind = %kind, objects = batch.objects.len(), rejected = batch.rejected.len(), "listed");
                    if is_istio_config(kind) {
                        self.rules.reset(kind, rules);
                    }
                    self.sink.reset(&self.scope, batch);
                    if first_sync {
                        first_sync = false;
                        self.synced.send_modify(|n| *n += 1);
                    }
                }
                Ok(watcher::Event::Apply(w)) => {
                    let key = ObjectKey::from_meta(kind, w.object.metadata());
                    if let Some(state) = w.object.rule_state().filter(|_| is_istio_config(kind)) {
                        self.rules.set(key.clone(), state);
                    }
                    tracing::debug!(object = %key, "applied");
                    match w.object.into_object(kind, self.origin()) {
                        Converted::Good(o) => self.sink.apply(*o),
                        Converted::Bad(r) => self.sink.reject(r),
                    }
                }
                Ok(watcher::Event::Delete(w)) => {
                    let key = ObjectKey::from_meta(kind, w.object.metadata());
                    tracing::debug!(object = %key, "deleted");
                    self.rules.remove(&key);
                    self.sink.delete(&key);
                }
                // A Gateway API kind whose CRD the cluster lacks (the user
                // installs them, as with Istio): said once, counted as
                // synced (empty), and retried with backoff, so installing
                // the CRDs later needs no restart.
                Err(error) if optional_crd(kind) && missing_crd(&error) => {
                    if first_sync {
                        first_sync = false;
                        tracing::warn!(kind = %kind, "the cluster has no CRD for this kind; its objects are not served until it is installed");
                        self.synced.send_modify(|n| *n += 1);
                    }
                }
                // The backoff wrapper retries: a dropped connection re-watches
                // from the last resourceVersion, a 410 Gone re-lists.
                Err(error) => {
                    tracing::warn!(kind = %kind, %error, "watch interrupted; retrying with backoff")
                }
            }
        }
    }

    fn origin(&self) -> Origin {
        Origin {
            scope: self.scope.clone(),
            ..Origin::default()
        }
    }
}

/// Kinds whose CRDs a cluster may lack: the Gateway API's, Contour's
/// HTTPProxy and Emissary's Mapping.
fn optional_crd(kind: Kind) -> bool {
    rudder_registry::compile::gateway_api::KINDS.contains(&kind)
        || matches!(kind, Kind::HttpProxy | Kind::Mapping)
}

/// Whether a watch error says the API server does not know the resource.
fn missing_crd(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s)) => s.code == 404,
        watcher::Error::WatchError(s) => s.code == 404,
        _ => false,
    }
}

/// Istio config kinds (they get status conditions).
fn is_istio_config(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::VirtualService
            | Kind::DestinationRule
            | Kind::Sidecar
            | Kind::ServiceEntry
            | Kind::WorkloadEntry
            | Kind::Gateway
            | Kind::RouteRule
            | Kind::DestinationPolicy
            | Kind::PeerAuthentication
            | Kind::AuthorizationPolicy
            | Kind::RequestAuthentication
            | Kind::Telemetry
    )
}
