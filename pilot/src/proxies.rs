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
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use rudder_ads::{NodeInfo, ProxyDirectory};
use rudder_model::{NodeId, NodeMetadata, Proxy, Snapshot};
use rudder_xds::{same_versions, Content, Generator, ProxyResources};
use tokio::sync::watch;

/// One connected stream.
struct Connection {
    node: NodeId,
    metadata: NodeMetadata,
    tx: watch::Sender<Arc<ProxyResources>>,
    /// The generation (push sequence number) the channel holds; a slower,
    /// older generation never overwrites a newer one.
    applied: Mutex<u64>,
}

impl Connection {
    /// Publishes resources generated from push `seq`, unless the channel
    /// already holds a newer generation or the same versions. A type whose
    /// versions did not change keeps the map the channel holds, so the ADS
    /// server sees it unchanged by pointer and streams keep sharing it.
    fn publish(&self, seq: u64, resources: ProxyResources) {
        self.publish_with(seq, resources, &mut Compared::default());
    }

    /// [`Connection::publish`], comparing maps through `compared` (a push
    /// compares the same pair of maps for thousands of proxies).
    fn publish_with(&self, seq: u64, mut resources: ProxyResources, compared: &mut Compared) {
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        if seq < *applied {
            return;
        }
        *applied = seq;
        self.tx.send_if_modified(|current| {
            let mut changed = current.by_type.len() != resources.by_type.len();
            for (t, m) in resources.by_type.iter_mut() {
                match current.by_type.get(t) {
                    Some(old) if compared.same(old, m) => *m = old.clone(),
                    _ => changed = true,
                }
            }
            if changed {
                *current = Arc::new(resources);
            }
            changed
        });
    }
}

/// Whether two maps hold the same versions, remembered per pair of maps
/// (by pointer, the maps held so an address is not reused while it is
/// remembered): a pod change gives thousands of proxies the same new
/// assignment map to compare with the same old one.
#[derive(Default)]
struct Compared(HashMap<(usize, usize), ComparedPair>);

/// The two maps compared (held) and whether their versions are the same.
type ComparedPair = (Arc<Content>, Arc<Content>, bool);

impl Compared {
    fn same(&mut self, a: &Arc<Content>, b: &Arc<Content>) -> bool {
        if Arc::ptr_eq(a, b) {
            return true;
        }
        let key = (Arc::as_ptr(a) as usize, Arc::as_ptr(b) as usize);
        self.0
            .entry(key)
            .or_insert_with(|| (a.clone(), b.clone(), same_versions(a, b)))
            .2
    }
}

/// The current snapshot, its generator, and the connected proxies.
///
/// The lock guards only this bookkeeping and is never held while generating:
/// a push generates from its own `Arc<Generator>` outside it, and a new
/// proxy's generation runs on the blocking pool, so neither waits for the
/// other and connecting proxies never wait for a push.
pub struct Proxies {
    state: Mutex<State>,
    next_id: AtomicU64,
}

struct State {
    generator: Arc<Generator>,
    /// Push sequence number of `generator` (starts at 1).
    seq: u64,
    connections: BTreeMap<u64, Arc<Connection>>,
}

impl Proxies {
    /// Starts with the first full snapshot.
    pub fn new(snapshot: Arc<Snapshot>) -> Self {
        Self {
            state: Mutex::new(State {
                generator: Arc::new(Generator::new(snapshot)),
                seq: 1,
                connections: BTreeMap::new(),
            }),
            next_id: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Who `node` is now, as [`ProxyDirectory::connect`] would serve it
    /// (namespace and service account from its pod in the store when the
    /// store knows it); for the TLS port's authorizer.
    pub fn resolve(&self, node: &NodeInfo) -> Result<Proxy, tonic::Status> {
        let id =
            NodeId::parse(&node.id).map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
        let metadata = NodeMetadata::from_json(&node.metadata)
            .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
        let generator = self.lock().generator.clone();
        Ok(rudder_xds::resolve_proxy(
            generator.snapshot(),
            id,
            &metadata,
        ))
    }

    /// A new snapshot: regenerate and publish for every connected proxy
    /// (blocking: call it off the async runtime).
    pub fn push(&self, snapshot: Arc<Snapshot>) {
        let started = std::time::Instant::now();
        let previous = self.lock().generator.clone();
        let generator = Arc::new(Generator::after(&previous, snapshot.clone()));
        drop(previous);
        let (seq, connections) = {
            let mut state = self.lock();
            state.generator = generator.clone();
            state.seq += 1;
            state.connections.retain(|_, c| !c.tx.is_closed());
            let connections: Vec<Arc<Connection>> = state.connections.values().cloned().collect();
            (state.seq, connections)
        };
        let mut compared = Compared::default();
        for c in &connections {
            if c.tx.is_closed() {
                continue;
            }
            let proxy = rudder_xds::resolve_proxy(&snapshot, c.node.clone(), &c.metadata);
            // Inconsistent (logged and counted by rudder-xds): keep the previous set.
            if let Some(resources) = generator.generate_checked(&proxy) {
                c.publish_with(seq, resources, &mut compared);
            }
        }
        tracing::debug!(
            version = %snapshot.version,
            proxies = connections.len(),
            millis = started.elapsed().as_millis() as u64,
            "pushed snapshot"
        );
    }

    /// The proxy a debug request names: a full node id, or `pod.namespace`
    /// (Istio's `proxyID`), among connected proxies first, then pods in the store.
    pub fn find(&self, proxy_id: &str) -> Option<(Proxy, Arc<ProxyResources>)> {
        let (generator, connection) = {
            let state = self.lock();
            let matches = |n: &NodeId| {
                n.to_string() == proxy_id || format!("{}.{}", n.pod_name, n.namespace) == proxy_id
            };
            let connection = state
                .connections
                .values()
                .find(|c| !c.tx.is_closed() && matches(&c.node))
                .cloned();
            (state.generator.clone(), connection)
        };
        let snapshot = generator.snapshot().clone();
        if let Some(c) = connection {
            let proxy = rudder_xds::resolve_proxy(&snapshot, c.node.clone(), &c.metadata);
            return Some((proxy, c.tx.borrow().clone()));
        }
        let node = match NodeId::parse(proxy_id) {
            Ok(node) => node,
            Err(_) => {
                let (pod, ns) = proxy_id.rsplit_once('.')?;
                let w = snapshot.workloads.get(&format!("{ns}/{pod}"))?;
                // A pod some Gateway selects is a gateway (`router`).
                if snapshot
                    .gateways
                    .iter()
                    .any(|g| !g.selector.is_empty() && g.selects(&w.labels))
                {
                    NodeId::router(*w.ips.first()?, pod, ns)
                } else {
                    NodeId::sidecar(*w.ips.first()?, pod, ns)
                }
            }
        };
        let proxy = rudder_xds::resolve_proxy(&snapshot, node, &NodeMetadata::default());
        let resources = Arc::new(generator.generate(&proxy));
        Some((proxy, resources))
    }

    /// Number of connected streams.
    pub fn connected(&self) -> usize {
        self.lock()
            .connections
            .values()
            .filter(|c| !c.tx.is_closed())
            .count()
    }
}

#[tonic::async_trait]
impl ProxyDirectory for Proxies {
    async fn connect(
        &self,
        node: &NodeInfo,
    ) -> Result<watch::Receiver<Arc<ProxyResources>>, tonic::Status> {
        let id =
            NodeId::parse(&node.id).map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
        let metadata = NodeMetadata::from_json(&node.metadata)
            .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
        // Registered before generating, so a push that lands meanwhile
        // reaches this proxy too; whichever generation is newer wins. The
        // receiver is handed out only once it holds generated resources.
        let (tx, rx) = watch::channel(Arc::new(ProxyResources::default()));
        let connection = Arc::new(Connection {
            node: id.clone(),
            metadata: metadata.clone(),
            tx,
            applied: Mutex::new(0),
        });
        let (generator, seq) = {
            let mut state = self.lock();
            let key = self.next_id.fetch_add(1, Ordering::Relaxed);
            state.connections.retain(|_, c| !c.tx.is_closed());
            state.connections.insert(key, connection.clone());
            (state.generator.clone(), state.seq)
        };
        let namespace = tokio::task::spawn_blocking(move || {
            let proxy = rudder_xds::resolve_proxy(generator.snapshot(), id, &metadata);
            // Nothing earlier to keep: fail the stream (Envoy retries), as Istio does.
            let resources = generator.generate_checked(&proxy)?;
            connection.publish(seq, resources);
            Some(proxy.namespace)
        })
        .await
        .map_err(|e| tonic::Status::internal(format!("generating the proxy's resources: {e}")))?
        .ok_or_else(|| tonic::Status::unavailable("inconsistent xDS for this proxy"))?;
        tracing::info!(proxy = %node.id, %namespace, "proxy connected");
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rudder_xds::{Resource, TypeUrl};

    fn clusters(version: &str) -> ProxyResources {
        let mut r = ProxyResources::default();
        r.make_mut(TypeUrl::Cluster).insert(
            "a".into(),
            Arc::new(Resource {
                version: version.into(),
                body: Default::default(),
            }),
        );
        r
    }

    #[test]
    fn an_older_generation_never_overwrites_a_newer_one() {
        // A push (generation 3) overtook a new proxy's own, slower
        // generation (2): the proxy keeps the newer resources.
        let (tx, mut rx) = watch::channel(Arc::new(ProxyResources::default()));
        let c = Connection {
            node: NodeId::parse("sidecar~10.0.0.1~p.default~default.svc.cluster.local").unwrap(),
            metadata: NodeMetadata::default(),
            tx,
            applied: Mutex::new(0),
        };
        c.publish(3, clusters("new"));
        c.publish(2, clusters("old"));
        assert_eq!(
            rx.borrow_and_update().of(TypeUrl::Cluster).unwrap()["a"].version,
            "new"
        );
        // The same versions again are not a change.
        c.publish(4, clusters("new"));
        assert!(!rx.has_changed().unwrap());
        // Another type changes: the unchanged cluster map is the one the
        // channel held (same pointer), so streams see it as unchanged.
        let before = rx.borrow().shared(TypeUrl::Cluster).unwrap().clone();
        let mut next = clusters("new");
        next.make_mut(TypeUrl::Route).insert(
            "r".into(),
            Arc::new(Resource {
                version: "1".into(),
                body: Default::default(),
            }),
        );
        c.publish(5, next);
        let after = rx.borrow_and_update().clone();
        assert!(Arc::ptr_eq(
            &before,
            after.shared(TypeUrl::Cluster).unwrap()
        ));
        assert_eq!(after.of(TypeUrl::Route).unwrap().len(), 1);
    }
}
