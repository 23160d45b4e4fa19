//! The connected sidecars and what each should have.
//!
//! For every ADS stream the ADS server asks [`Proxies::connect`] for a watch
//! channel; we resolve who the sidecar is (node id + metadata, the pod in the
//! store wins), generate its resources from the current snapshot and publish
//! them. When a new snapshot arrives, [`Proxies::push`] regenerates for every
//! connected stream from one shared [`Generator`] (so resources that many
//! proxies share are built once) and publishes; the ADS server then sends only
//! what changed. A stream that ended drops its receiver and is forgotten here.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use rudder_ads::{NodeInfo, ProxyDirectory};
use rudder_model::{NodeId, NodeMetadata, Proxy, Snapshot};
use rudder_xds::{Generator, ProxyResources};
use tokio::sync::watch;

/// One connected stream.
struct Connection {
    node: NodeId,
    metadata: NodeMetadata,
    tx: watch::Sender<Arc<ProxyResources>>,
}

/// The current snapshot, its generator, and the connected proxies.
pub struct Proxies {
    state: Mutex<State>,
    next_id: AtomicU64,
}

struct State {
    generator: Arc<Generator>,
    connections: BTreeMap<u64, Connection>,
}

impl Proxies {
    /// Starts with the first full snapshot.
    pub fn new(snapshot: Arc<Snapshot>) -> Self {
        Self {
            state: Mutex::new(State {
                generator: Arc::new(Generator::new(snapshot)),
                connections: BTreeMap::new(),
            }),
            next_id: AtomicU64::new(1),
        }
    }

    /// A new snapshot: regenerate and publish for every connected proxy.
    pub fn push(&self, snapshot: Arc<Snapshot>) {
        let generator = Arc::new(Generator::new(snapshot.clone()));
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.generator = generator.clone();
        state.connections.retain(|_, c| !c.tx.is_closed());
        for c in state.connections.values() {
            let proxy = rudder_xds::resolve_proxy(&snapshot, c.node.clone(), &c.metadata);
            // Inconsistent (logged and counted by rudder-xds): keep the previous set.
            let Some(resources) = generator.generate_checked(&proxy).map(Arc::new) else {
                continue;
            };
            c.tx.send_if_modified(|current| {
                if same_versions(current, &resources) {
                    false
                } else {
                    *current = resources;
                    true
                }
            });
        }
        tracing::debug!(version = %snapshot.version, proxies = state.connections.len(), "pushed snapshot");
    }

    /// The proxy a debug request names: a full node id, or `pod.namespace`
    /// (Istio's `proxyID`), among connected proxies first, then pods in the store.
    pub fn find(&self, proxy_id: &str) -> Option<(Proxy, Arc<ProxyResources>)> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let snapshot = state.generator.snapshot().clone();
        let matches = |n: &NodeId| {
            n.to_string() == proxy_id || format!("{}.{}", n.pod_name, n.namespace) == proxy_id
        };
        if let Some(c) = state
            .connections
            .values()
            .find(|c| !c.tx.is_closed() && matches(&c.node))
        {
            let proxy = rudder_xds::resolve_proxy(&snapshot, c.node.clone(), &c.metadata);
            return Some((proxy, c.tx.borrow().clone()));
        }
        let node = match NodeId::parse(proxy_id) {
            Ok(node) => node,
            Err(_) => {
                let (pod, ns) = proxy_id.rsplit_once('.')?;
                let w = snapshot.workloads.get(&format!("{ns}/{pod}"))?;
                NodeId::sidecar(*w.ips.first()?, pod, ns)
            }
        };
        let proxy = rudder_xds::resolve_proxy(&snapshot, node, &NodeMetadata::default());
        let resources = Arc::new(state.generator.generate(&proxy));
        Some((proxy, resources))
    }

    /// Number of connected streams.
    pub fn connected(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .connections
            .values()
            .filter(|c| !c.tx.is_closed())
            .count()
    }
}

/// Whether two resource sets hold the same names at the same versions (versions
/// are content hashes, so this is content equality without comparing bodies).
fn same_versions(a: &ProxyResources, b: &ProxyResources) -> bool {
    a.by_type.len() == b.by_type.len()
        && a.by_type
            .iter()
            .zip(b.by_type.iter())
            .all(|((ta, ra), (tb, rb))| {
                ta == tb
                    && ra.len() == rb.len()
                    && ra
                        .iter()
                        .zip(rb.iter())
                        .all(|((na, va), (nb, vb))| na == nb && va.version == vb.version)
            })
}

impl ProxyDirectory for Proxies {
    fn connect(
        &self,
        node: &NodeInfo,
    ) -> Result<watch::Receiver<Arc<ProxyResources>>, tonic::Status> {
        let id =
            NodeId::parse(&node.id).map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
        let metadata = NodeMetadata::from_json(&node.metadata)
            .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let proxy = rudder_xds::resolve_proxy(state.generator.snapshot(), id.clone(), &metadata);
        // Nothing earlier to keep: fail the stream (Envoy retries), as Istio does.
        let resources = state.generator.generate_checked(&proxy).map(Arc::new);
        let resources = resources.ok_or_else(|| tonic::Status::internal("inconsistent xDS"))?;
        let (tx, rx) = watch::channel(resources);
        let key = self.next_id.fetch_add(1, Ordering::Relaxed);
        state.connections.retain(|_, c| !c.tx.is_closed());
        state.connections.insert(
            key,
            Connection {
                node: id,
                metadata,
                tx,
            },
        );
        tracing::info!(proxy = %node.id, namespace = %proxy.namespace, "proxy connected");
        Ok(rx)
    }
}
