//! The per-snapshot generator: `generate(&Proxy) -> ProxyResources`, building
//! each resource once and sharing it (`Arc<Resource>`) among every proxy for
//! which it is identical.
//!
//! ```text
//!  Generator (one per Snapshot)
//!   ├─ scopes        key: scope key (namespace, Sidecar)           what a proxy sees (services, route tables)
//!   ├─ clusters      key: (cluster name, policy, cert mode)        shared by all scopes using the same policy
//!   ├─ endpoints     key: (cluster name, subset labels[, policy, proxy locality])  shared by everyone
//!   │                (the locality part only for clusters whose policy balances by locality)
//!   ├─ views         key: (scope key, cert mode[, proxy locality]) → CDS + EDS  one per scope and cert mode
//!   │                (the locality part only when some policy of the snapshot balances by locality)
//!   │                (views and proxy_clusters keep the previous generator's value where equal;
//!   │                after a change of endpoints alone they are the previous ones patched with
//!   │                the changed hosts' entries, see `Generator::patched_view`)
//!   ├─ port_routes   key: (port, scope key, source-selector bits)  one per "kind" of proxy
//!   ├─ service_routes key: (host, port, scope key, selector bits)  `<host>:<port>` per VIP service
//!   ├─ chains        key: (scope key, selector bits, capture ports)
//!   ├─ whole maps:   proxy_clusters (scope key, cert mode, inbound ports) and
//!   │                routes (the chains key) → one `Arc<Content>` per key
//!   ├─ own_listeners key: (proxy, inbound ports, chains and inbound security by content)  the capture
//!   │                listeners; listener_maps key: (own listeners, service listeners) the listener map (the capture
//!   │                listener holds the pod's IPs), and what its own listeners reference
//!   ├─ inbound_ports key: (namespace, labels, pod's named ports)  the ports a proxy's pod serves
//!   └─ checks        key: the shared maps by pointer; eds_checks (cluster map, assignment map);
//!                    resource_refs (listener or route configuration by pointer): what it references
//! ```
//!
//! A generator that follows another with the same configuration
//! ([`Generator::after`]) takes over what depends on configuration alone;
//! one whose configuration differs only in the sidecars' routes takes over
//! everything those routes do not reach; any
//! generator that follows another takes over each proxy's listener map whose
//! inputs stay the same (by content); so a pod change costs its load
//! assignments and clusters, and a route change its route configurations,
//! not the mesh's listeners.
//!
//! Proxies with identical resources of a type share that type's map, not
//! just its resources: per-proxy memory is the listener map and the ADS
//! server's protocol state, which holds these maps rather than copies.
//!
//! Every cache key holds every input its resource depends on beyond the
//! snapshot: a proxy's labels matter only through the route rules' source
//! selectors and the Sidecar that selects it, so the keys carry, for each
//! distinct selector in the snapshot, whether it selects the proxy, and the
//! scope key (namespace and applicable Sidecar). A cache keyed on part of its
//! inputs would hand one proxy another's routes. A policy is identified by
//! its address in the snapshot (one generator reads one immutable snapshot),
//! since two namespaces may resolve one host to different DestinationRules.
//!
//! A scoped proxy's resources are built from its scope alone, so a change to
//! a host outside it leaves every version the same and the ADS server sends
//! that proxy nothing.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    hash::Hash,
    sync::{Arc, Mutex},
};

use rudder_model::{
    names::{service_route_name, ClusterName},
    node::CertMode,
    selects, DestinationPolicy, EffectiveTelemetry, Labels, LoadBalancer, Locality, LocalityLb,
    Proxy, Scope, ScopeKey, Snapshot,
};

use crate::{
    cluster::{effective_policy, fixed_clusters, inbound_cluster, outbound_cluster, Peers},
    consistency::{
        eds_problems_with, eds_service, reference_problems, report_inconsistent, RefNames, Refs,
    },
    endpoint::{eds_resource, members, LocalityFor},
    gateway::gateway_resources,
    inbound::InboundSecurity,
    listener::{capture_ports, listeners, outbound_chains, OutboundChains},
    proxy::{inbound_ports, InboundPort},
    rds::{outbound_route_config, service_route_config},
    resources::{same_content, Content},
    sds::namespace_secrets,
    version::Version,
    ProxyResources, Resource, TypeUrl,
};

type Named = Content;

/// The outbound clusters and their load assignments as one scope sees them.
#[derive(Debug, Default)]
struct NamespaceView {
    clusters: Arc<Named>,
    endpoints: Arc<Named>,
    /// Set when the view is the previous generator's with the clusters of
    /// the hosts whose endpoints changed built again (see
    /// [`Generator::patched_view`]): those clusters, so a cluster map
    /// holding the previous view's clusters is patched the same way.
    cluster_changes: Option<Changes>,
}

/// Entries of a map built again, in a fixed order (see [`Generator::patched`]).
type Changes = Vec<(String, Arc<Resource>)>;

/// Changes applied to a map, and the map they made.
type Patched = (Changes, Arc<Named>);

/// A thread-safe memo table: build outside the lock, first insert wins (equal
/// inputs build equal resources, so a lost race only costs time).
#[derive(Debug)]
struct Memo<K, V> {
    live: Mutex<HashMap<K, Arc<V>>>,
    /// The previous generator's entries not yet looked up by this one (see
    /// [`Memo::handed_over`]).
    older: Mutex<HashMap<K, Arc<V>>>,
}

impl<K: Eq + Hash, V> Memo<K, V> {
    fn new() -> Self {
        Memo {
            live: Mutex::new(HashMap::new()),
            older: Mutex::new(HashMap::new()),
        }
    }

    fn get_or(&self, key: K, build: impl FnOnce() -> Arc<V>) -> Arc<V> {
        if let Some(v) = lock(&self.live).get(&key) {
            return v.clone();
        }
        let v = match lock(&self.older).remove(&key) {
            Some(v) => v,
            None => build(),
        };
        lock(&self.live).entry(key).or_insert(v).clone()
    }

    /// Looks up or builds, like [`Memo::get_or`], but a value built anew
    /// is replaced by the previous generator's value for the key (offered by
    /// [`Memo::handed_over`]) when `same` says they are equal: an unchanged
    /// map keeps its pointer from push to push, so pilot's publish and the
    /// ADS server's diffs see it unchanged without a walk per proxy.
    fn get_or_same(
        &self,
        key: K,
        build: impl FnOnce() -> Arc<V>,
        same: impl FnOnce(&V, &V) -> bool,
    ) -> Arc<V> {
        self.get_or_from(key, |old| kept_if_same(old, build(), same))
    }

    /// Looks up or builds from the previous generator's value for the key
    /// (offered by [`Memo::handed_over`]), if any.
    fn get_or_from(&self, key: K, build: impl FnOnce(Option<Arc<V>>) -> Arc<V>) -> Arc<V> {
        if let Some(v) = lock(&self.live).get(&key) {
            return v.clone();
        }
        let old = lock(&self.older).remove(&key);
        let v = build(old);
        lock(&self.live).entry(key).or_insert(v).clone()
    }

    /// A table holding what this one holds (the values shared).
    fn carried(&self) -> Self
    where
        K: Clone,
    {
        Memo {
            live: Mutex::new(lock(&self.live).clone()),
            older: Mutex::new(HashMap::new()),
        }
    }

    /// A table holding what this one holds and `keep` accepts (the values
    /// shared).
    fn carried_where(&self, keep: impl Fn(&K) -> bool) -> Self
    where
        K: Clone,
    {
        let live = lock(&self.live)
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Memo {
            live: Mutex::new(live),
            older: Mutex::new(HashMap::new()),
        }
    }

    /// A table offering what this one built or used and `keep` accepts,
    /// moved out of it, like [`Memo::handed_over`] but without a rebuild to
    /// compare with: the next generator takes an offered value as it is.
    fn offered_where(&self, keep: impl Fn(&K) -> bool) -> Self {
        let offered = lock(&self.live).drain().filter(|(k, _)| keep(k)).collect();
        Memo {
            live: Mutex::new(HashMap::new()),
            older: Mutex::new(offered),
        }
    }

    /// A table offering what this one built or used, moved out of it (a
    /// later lookup here builds again): what the next generator does not
    /// look up is dropped with it, so entries of proxies that went away do
    /// not pile up from push to push.
    fn handed_over(&self) -> Self {
        Memo {
            live: Mutex::new(HashMap::new()),
            older: Mutex::new(std::mem::take(&mut *lock(&self.live))),
        }
    }
}

/// `old` when `same` finds `new` equal to it, else `new`: an unchanged value
/// keeps its pointer from generator to generator.
fn kept_if_same<V>(old: Option<Arc<V>>, new: Arc<V>, same: impl FnOnce(&V, &V) -> bool) -> Arc<V> {
    match old {
        Some(old) if same(&old, &new) => old,
        _ => new,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while building never leaves a map half-updated: recover it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Which of the snapshot's distinct source selectors select a proxy.
type SelectorBits = Vec<bool>;

/// What a proxy's outbound chains and routes depend on: scope, selector
/// bits, capture ports.
type ChainsKey = (ScopeKey, SelectorBits, Vec<u16>);

/// An `Arc` compared and hashed by pointer; holding it keeps the pointer
/// from being reused while the key lives.
#[derive(Debug)]
struct ByPtr<T>(Arc<T>);

impl<T> PartialEq for ByPtr<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<T> Eq for ByPtr<T> {}

impl<T> Hash for ByPtr<T> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        Arc::as_ptr(&self.0).hash(h)
    }
}

/// The cluster and route maps and the chains a reference check is for (not
/// the assignments: a pod change gives every proxy a new assignment map,
/// and the service listeners and routes reference none of it).
type CheckKey = (ByPtr<Named>, ByPtr<Named>, ByPtr<OutboundChains>);

/// Everything a proxy's own listeners (the capture listeners, not the
/// service listeners other proxies share) are built from (`listeners`'
/// inputs): the proxy, the ports its app serves, its outbound chains (by
/// version) and its inbound security (by hash). Keyed by content, they are
/// carried from generator to generator whatever else the configuration
/// changed.
type OwnListenersKey = (Proxy, Vec<InboundPort>, String, String);

/// A proxy's own listeners, and what they reference, decoded once for the
/// consistency check.
#[derive(Debug)]
struct OwnListeners {
    listeners: Vec<(String, Arc<Resource>)>,
    /// Shared by the proxies whose own listeners reference the same names.
    refs: Arc<RefNames>,
    /// Problems decoding them (none, unless a generator bug).
    problems: Vec<String>,
}

/// A proxy's listener map: its own listeners (by pointer) and the service
/// listeners of its chains (by content version). A service added on a port
/// that already has services adds a service listener, not a chain: the own
/// listeners stay, only the map is assembled again.
type ListenersKey = (ByPtr<OwnListeners>, String);

/// A proxy's listener map and its own listeners.
#[derive(Debug)]
struct ProxyListeners {
    map: Arc<Named>,
    own: Arc<OwnListeners>,
}

/// What a proxy's load assignments depend on beyond its scope when some
/// policy of the snapshot balances by locality: the proxy's locality and
/// its values (locality labels added) of every label some
/// `failoverPriority` names; `None` when no policy does, so the maps of a
/// mesh without locality settings are shared as they always were.
type LocalityKey = Option<(Locality, Labels)>;

/// Load assignments: cluster name, subset labels and, for a cluster whose
/// policy balances by locality, the policy (by address) and the proxy's
/// [`LocalityKey`].
type EndpointsKey = (
    String,
    Option<Labels>,
    Option<(Option<usize>, Locality, Labels)>,
);

/// The locality load balancing settings (enabled) of a policy, at every
/// level (host, ports, subsets and their ports).
fn locality_settings(p: &DestinationPolicy) -> Vec<&LocalityLb> {
    let mut policies = vec![&p.traffic_policy];
    policies.extend(
        p.subsets
            .values()
            .filter_map(|s| s.traffic_policy.as_deref()),
    );
    let mut out = Vec::new();
    for tp in policies {
        out.extend(tp.locality_lb());
        out.extend(tp.port_level.values().filter_map(|t| t.locality_lb()));
    }
    out
}

/// What [`inbound_ports`] reads of a proxy: its namespace, its labels and
/// its pod's named ports (the Services selecting it are configuration).
type InboundPortsKey = (String, Labels, BTreeMap<String, u16>);

/// What a proxy's cluster map depends on: scope, cert mode, inbound ports
/// and their protocols.
type ClustersKey = (ScopeKey, CertMode, Vec<(u16, rudder_model::Protocol)>);

/// Generates the resources of every proxy for one snapshot; create one per
/// snapshot and call [`Generator::generate`] for each connected proxy
/// (from any thread).
#[derive(Debug)]
pub struct Generator {
    snapshot: Arc<Snapshot>,
    /// Distinct non-empty `sourceLabels` of HTTP and TCP matches.
    selectors: Vec<Labels>,
    fixed: Vec<(String, Arc<Resource>)>,
    scopes: Memo<ScopeKey, Scope>,
    /// Outbound clusters: (name, address of the policy used, cert mode).
    clusters: Memo<(String, Option<usize>, CertMode), Resource>,
    /// Load assignments (see [`EndpointsKey`]).
    endpoints: Memo<EndpointsKey, Resource>,
    /// The labels `failoverPriority` names (without `=value`), when some
    /// policy balances by locality (see [`LocalityKey`]).
    failover_labels: Option<Vec<String>>,
    inbound: Memo<(u16, rudder_model::Protocol), Resource>,
    /// The ports a proxy's pod serves (see [`InboundPortsKey`]).
    inbound_ports: Memo<InboundPortsKey, Vec<InboundPort>>,
    views: Memo<(ScopeKey, CertMode, LocalityKey), NamespaceView>,
    port_routes: Memo<(u16, ScopeKey, SelectorBits), Resource>,
    /// Per-service route configurations: (host, port, scope key, selector bits).
    service_routes: Memo<(String, u16, ScopeKey, SelectorBits), Resource>,
    chains: Memo<ChainsKey, OutboundChains>,
    /// Whole per-type maps, shared by every proxy with the same key.
    proxy_clusters: Memo<ClustersKey, Named>,
    routes: Memo<ChainsKey, Named>,
    /// Per proxy: its listener map (the capture listener holds the pod's IPs).
    listener_maps: Memo<ListenersKey, ProxyListeners>,
    /// Per proxy: its own listeners.
    own_listeners: Memo<OwnListenersKey, OwnListeners>,
    /// One of each distinct cluster or assignment map (see
    /// [`Generator::distinct`]).
    distinct_maps: Mutex<Vec<Arc<Named>>>,
    /// Set when this generator follows one whose snapshot had the same
    /// services, policies and scopes: the hosts whose endpoints changed
    /// since (see [`Generator::patched_view`]).
    changed_hosts: Option<HashSet<String>>,
    /// Maps patched from a previous generator's (by pointer), with the
    /// changes applied and the result (see [`Generator::patched`]).
    patched_maps: Mutex<HashMap<ByPtr<Named>, Vec<Patched>>>,
    /// One of each set of names own listeners reference.
    ref_names: Mutex<HashSet<Arc<RefNames>>>,
    /// Problems of the references of a set's shared part (service
    /// listeners and route maps, against its cluster and route maps),
    /// checked once per combination.
    checks: Memo<CheckKey, Vec<String>>,
    /// Problems between a cluster map and an assignment map (by pointer).
    eds_checks: Memo<(ByPtr<Named>, ByPtr<Named>), Vec<String>>,
    /// The EDS service name of a cluster (by pointer; see
    /// [`eds_service`]): decoded once while it lives, not once per cluster
    /// and assignment map pair.
    eds_services: Memo<ByPtr<Resource>, Result<Option<String>, String>>,
    /// What a shared listener or route configuration references (by
    /// pointer), and the problems decoding it.
    resource_refs: Memo<ByPtr<Resource>, (Refs, Vec<String>)>,
    /// SDS: the credentials a proxy of a namespace may read, per namespace.
    secrets: Memo<String, Named>,
    /// The mesh default telemetry (listeners are built with it).
    default_telemetry: EffectiveTelemetry,
    /// Listener maps with a proxy's telemetry applied (see [`TelemetryKey`]).
    telemetry_listeners: Memo<TelemetryKey, Named>,
}

/// A listener map (by pointer), the telemetry applied to it and, per
/// tracing side, whether the proxy has the collector's cluster.
type TelemetryKey = (ByPtr<Named>, EffectiveTelemetry, Vec<bool>);

impl Generator {
    /// A generator (and empty caches) for `snapshot`.
    pub fn new(snapshot: Arc<Snapshot>) -> Self {
        let mut selectors = BTreeSet::new();
        for t in &snapshot.route_tables {
            selectors.extend(
                t.http
                    .iter()
                    .flat_map(|r| r.matches.iter().map(|m| &m.source_labels)),
            );
            selectors.extend(
                t.tcp
                    .iter()
                    .flat_map(|r| r.matches.iter().map(|m| &m.source_labels)),
            );
        }
        let selectors = selectors
            .into_iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect();
        let settings: Vec<&LocalityLb> = snapshot
            .destination_rules
            .all()
            .flat_map(locality_settings)
            .collect();
        let failover_labels = (!settings.is_empty()).then(|| {
            let names: BTreeSet<String> = settings
                .iter()
                .flat_map(|l| &l.failover_priority)
                .map(|f| f.split('=').next().unwrap_or_default().to_string())
                .collect();
            names.into_iter().collect()
        });
        let snapshot_default_telemetry = snapshot.telemetry.mesh_default();
        Self {
            failover_labels,
            snapshot,
            selectors,
            fixed: fixed_clusters(),
            scopes: Memo::new(),
            clusters: Memo::new(),
            endpoints: Memo::new(),
            inbound: Memo::new(),
            inbound_ports: Memo::new(),
            views: Memo::new(),
            port_routes: Memo::new(),
            service_routes: Memo::new(),
            chains: Memo::new(),
            proxy_clusters: Memo::new(),
            routes: Memo::new(),
            listener_maps: Memo::new(),
            own_listeners: Memo::new(),
            ref_names: Mutex::new(HashSet::new()),
            distinct_maps: Mutex::new(Vec::new()),
            changed_hosts: None,
            patched_maps: Mutex::new(HashMap::new()),
            checks: Memo::new(),
            eds_checks: Memo::new(),
            eds_services: Memo::new(),
            resource_refs: Memo::new(),
            secrets: Memo::new(),
            default_telemetry: snapshot_default_telemetry,
            telemetry_listeners: Memo::new(),
        }
    }

    /// A generator for `snapshot` that follows `previous`: when the two
    /// snapshots differ only in pods and endpoints (same
    /// [`Snapshot::config_version`]), what depends on configuration alone
    /// (scopes, route configurations, outbound chains and service
    /// listeners, inbound clusters) is taken over instead of rebuilt; what endpoints reach (outbound clusters, whose peers they
    /// name, load assignments, the maps holding them, consistency results)
    /// is built anew: the changed hosts' entries, patched into the previous
    /// maps ([`Generator::patched_view`]). A pod change thus costs its assignments, not the
    /// mesh's routes. Whatever changed, a cluster or assignment map built
    /// anew that equals `previous`'s for the same key is `previous`'s map
    /// (the same pointer), so a route change leaves them untouched.
    ///
    /// When only the sidecars' routes changed (the same
    /// [`Snapshot::base_version`], so the same services, policies, scopes
    /// and route tables naming the same hosts), the scopes, clusters,
    /// assignments and, with the same endpoints, the cluster and
    /// assignment maps are taken over too, and so are the per-service route
    /// configurations of every host no changed route table names, and the
    /// outbound chains when only HTTP routes changed: a VirtualService
    /// change costs its own routes, the port routes and the checks of the
    /// new route maps, not the mesh's clusters and listeners.
    ///
    /// A proxy's listener map is keyed by the content of everything it is
    /// built from, so it is carried whatever changed, while that stays: a
    /// route change rebuilds route configurations, not 2000 capture
    /// listeners.
    ///
    /// The listener maps and those candidate maps move out of `previous`
    /// (a later lookup there builds again): let one generator follow
    /// another once, as pushes do.
    pub fn after(previous: &Generator, snapshot: Arc<Snapshot>) -> Self {
        let mut next = Generator::new(snapshot);
        let (a, b) = (previous.snapshot.clone(), next.snapshot.clone());
        let same_config = a.config_version == b.config_version && !b.config_version.is_empty();
        // Only the sidecars' routes changed: the same base, the same
        // policies by address (the registry shares them while equal) and
        // the same source selectors (the meaning of selector bits).
        let routes_only = !same_config
            && a.base_version == b.base_version
            && !b.base_version.is_empty()
            && Arc::ptr_eq(&a.destination_rules, &b.destination_rules)
            && previous.selectors == next.selectors;
        // Read only when something is carried (a full config change
        // carries nothing that depends on endpoints).
        let changed_hosts = if same_config || routes_only {
            changed_endpoints(&a, &b)
        } else {
            HashSet::new()
        };
        // Views and cluster maps read no routes: with the same endpoints
        // they are what they were.
        let views_stay = routes_only && changed_hosts.is_empty();
        if same_config || routes_only {
            // Scopes read the route tables' shape alone (in the base).
            next.scopes = previous.scopes.carried();
            next.inbound = previous.inbound.carried();
            next.inbound_ports = previous.inbound_ports.carried();
            // The clusters and assignments of services whose endpoints did
            // not change are built from equal inputs: the same policies (an
            // endpoint-only rebuild shares them, so their addresses in the
            // keys still match) and the same endpoints.
            let unchanged = |name: &String| !changed_hosts.contains(cluster_host(name));
            next.clusters = previous.clusters.offered_where(|k| unchanged(&k.0));
            next.endpoints = previous.endpoints.offered_where(|k| unchanged(&k.0));
        }
        if same_config {
            next.port_routes = previous.port_routes.carried();
            next.service_routes = previous.service_routes.carried();
            next.chains = previous.chains.carried();
            next.routes = previous.routes.carried();
        } else if routes_only {
            // A service's route configuration reads the first route table
            // naming its host (by exact name) and the services and policies
            // of the table's destinations (in the base): only hosts of a
            // changed table get new ones.
            let changed: HashSet<&str> = a
                .route_tables
                .iter()
                .zip(&b.route_tables)
                .filter(|(x, y)| x != y)
                .flat_map(|(_, y)| y.hosts.iter().map(String::as_str))
                .collect();
            next.service_routes = previous
                .service_routes
                .carried_where(|k| !changed.contains(k.0.as_str()));
            // Outbound chains read the tables' TCP and TLS routes, not HTTP.
            let http_alone = a
                .route_tables
                .iter()
                .zip(&b.route_tables)
                .all(|(x, y)| x.tcp == y.tcp && x.tls == y.tls);
            if http_alone {
                next.chains = previous.chains.carried();
            }
        }
        next.listener_maps = previous.listener_maps.handed_over();
        next.own_listeners = previous.own_listeners.handed_over();
        if views_stay {
            next.views = previous.views.carried();
            next.proxy_clusters = previous.proxy_clusters.carried();
        } else {
            if same_config || routes_only {
                // The same services, policies and scopes: a view is the
                // previous one with the changed hosts' entries built again.
                next.changed_hosts = Some(changed_hosts.iter().map(|h| h.to_string()).collect());
            }
            // Candidates only: rebuilt, then kept where equal.
            next.proxy_clusters = previous.proxy_clusters.handed_over();
            next.views = previous.views.handed_over();
        }
        // Keyed by pointer (the keys hold what they point to): valid in
        // any generator.
        next.checks = previous.checks.handed_over();
        next.eds_checks = previous.eds_checks.handed_over();
        next.eds_services = previous.eds_services.handed_over();
        next.resource_refs = previous.resource_refs.handed_over();
        next.secrets = previous.secrets.handed_over();
        next.telemetry_listeners = previous.telemetry_listeners.handed_over();
        next
    }

    /// The proxy's telemetry when it is not the mesh default the builders
    /// wrote (see [`crate::telemetry`]), with, per tracing side, whether the
    /// proxy has the collector's cluster.
    fn telemetry_of(
        &self,
        proxy: &Proxy,
        clusters: &Named,
    ) -> Option<(EffectiveTelemetry, Vec<bool>)> {
        let t = self.snapshot.telemetry_for(&proxy.namespace, &proxy.labels);
        if t == self.default_telemetry {
            return None;
        }
        let collectors = [t.client_tracing.as_ref(), t.server_tracing.as_ref()]
            .into_iter()
            .flatten()
            .map(|tr| {
                clusters.contains_key(
                    &ClusterName::outbound(tr.tracer.port, None, &tr.tracer.service).to_string(),
                )
            })
            .collect();
        Some((t, collectors))
    }

    /// A sidecar's listener map with its telemetry applied (memoised: the
    /// map is shared by pointer).
    fn with_telemetry(&self, proxy: &Proxy, listeners: Arc<Named>, clusters: &Named) -> Arc<Named> {
        let Some((t, collectors)) = self.telemetry_of(proxy, clusters) else {
            return listeners;
        };
        self.telemetry_listeners.get_or(
            (ByPtr(listeners.clone()), t.clone(), collectors.clone()),
            || {
                Arc::new(crate::telemetry::apply(&listeners, &t, &collectors, &|c| {
                    clusters.contains_key(c)
                }))
            },
        )
    }

    /// The snapshot this generator reads.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    /// Everything `proxy` should have: CDS, EDS, LDS, RDS and, when its
    /// namespace has TLS credentials, SDS.
    pub fn generate(&self, proxy: &Proxy) -> ProxyResources {
        if proxy.id.is_router() {
            return self.generate_gateway(proxy);
        }
        self.generate_parts(proxy).0
    }

    /// The proxy's locality key (see [`LocalityKey`]).
    fn locality_key(&self, proxy: &Proxy) -> LocalityKey {
        self.failover_labels.as_ref().map(|names| {
            let labels = proxy.locality.augment(&proxy.labels);
            let values = names
                .iter()
                .filter_map(|n| labels.get(n).map(|v| (n.clone(), v.clone())))
                .collect();
            (proxy.locality.clone(), values)
        })
    }

    /// A gateway (`router` node): its listeners and routes from the
    /// Gateways that select it, clusters and assignments of its namespace's
    /// scope (no inbound clusters), its namespace's secrets. Gateways are
    /// few: their listeners and routes are built per proxy, off the
    /// sidecars' shared maps; clusters and assignments are shared.
    fn generate_gateway(&self, proxy: &Proxy) -> ProxyResources {
        let snapshot = &*self.snapshot;
        let key = Scope::key_of(snapshot, &proxy.namespace, &proxy.labels);
        let scope = self
            .scopes
            .get_or(key.clone(), || Arc::new(Scope::for_key(snapshot, &key)));
        let locality = self.locality_key(proxy);
        let view = self.view(&key, &scope, proxy.cert_mode, locality);
        let clusters = self.proxy_clusters(&key, proxy, &view, &[]);
        let built = gateway_resources(snapshot, proxy, &scope);
        let mut out = ProxyResources::default();
        // Built per gateway anyway: applied without a memo.
        let listeners = match self.telemetry_of(proxy, &clusters) {
            Some((t, collectors)) => {
                crate::telemetry::apply(&built.listeners, &t, &collectors, &|c| {
                    clusters.contains_key(c)
                })
            }
            None => built.listeners,
        };
        out.insert(TypeUrl::Cluster, clusters);
        out.insert(TypeUrl::Endpoint, view.endpoints.clone());
        out.insert(TypeUrl::Listener, listeners);
        out.insert(TypeUrl::Route, built.routes);
        let secrets = self.secrets.get_or_same(
            proxy.namespace.clone(),
            || Arc::new(namespace_secrets(snapshot, &proxy.namespace)),
            same_content,
        );
        if !secrets.is_empty() {
            out.insert(TypeUrl::Secret, secrets);
        }
        tracing::debug!(proxy = %proxy.id, snapshot = %snapshot.version, "generated gateway xDS");
        out
    }

    /// [`Generator::generate`], plus the outbound chains the listeners were
    /// built from (their service listeners are shared) and the proxy's
    /// listeners (the rest are its own).
    fn generate_parts(
        &self,
        proxy: &Proxy,
    ) -> (ProxyResources, Arc<OutboundChains>, Arc<ProxyListeners>) {
        let snapshot = &*self.snapshot;
        let bits: SelectorBits = self
            .selectors
            .iter()
            .map(|s| selects(s, &proxy.labels))
            .collect();
        let key = Scope::key_of(snapshot, &proxy.namespace, &proxy.labels);
        let scope = self
            .scopes
            .get_or(key.clone(), || Arc::new(Scope::for_key(snapshot, &key)));
        let locality = self.locality_key(proxy);
        let view = self.view(&key, &scope, proxy.cert_mode, locality);

        let inbound = self.inbound_ports_of(proxy);
        let clusters = self.proxy_clusters(&key, proxy, &view, &inbound);
        let capture = capture_ports(proxy);
        let chains_key = (key.clone(), bits.clone(), capture.clone());
        // The service listener and route maps of scopes that see the same
        // services are one map each (`distinct`), as the cluster and
        // assignment maps are: the ten namespaces of an unscoped mesh held
        // ten equal maps, and a first response encoded each one whole.
        let chains = self.chains.get_or(chains_key.clone(), || {
            let mut chains = outbound_chains(snapshot, &scope, &proxy.labels, &capture);
            chains.vip_map = self.distinct(Arc::unwrap_or_clone(chains.vip_map));
            Arc::new(chains)
        });
        let listeners = self.proxy_listeners(proxy, &inbound, &chains);
        let routes = self.routes.get_or(chains_key, || {
            self.distinct(self.proxy_routes(proxy, &scope, &key, &bits, &chains))
        });

        tracing::debug!(
            proxy = %proxy.id,
            snapshot = %snapshot.version,
            clusters = clusters.len(),
            endpoints = view.endpoints.len(),
            listeners = listeners.map.len(),
            routes = routes.len(),
            "generated xDS"
        );
        let listener_map = self.with_telemetry(proxy, listeners.map.clone(), &clusters);
        let mut out = ProxyResources::default();
        out.insert(TypeUrl::Cluster, clusters);
        out.insert(TypeUrl::Endpoint, view.endpoints.clone());
        out.insert(TypeUrl::Listener, listener_map);
        out.insert(TypeUrl::Route, routes);
        let secrets = self.secrets.get_or_same(
            proxy.namespace.clone(),
            || Arc::new(namespace_secrets(snapshot, &proxy.namespace)),
            same_content,
        );
        if !secrets.is_empty() {
            out.insert(TypeUrl::Secret, secrets);
        }
        (out, chains, listeners)
    }

    /// [`inbound_ports`], memoised: a push does not match every Service's
    /// selector against each of thousands of proxies.
    fn inbound_ports_of(&self, proxy: &Proxy) -> Arc<Vec<InboundPort>> {
        let stored = proxy
            .ips
            .iter()
            .find_map(|ip| self.snapshot.workload_by_ip(ip));
        let key = (
            proxy.namespace.clone(),
            proxy.labels.clone(),
            stored.map(|w| w.named_ports.clone()).unwrap_or_default(),
        );
        self.inbound_ports
            .get_or(key, || Arc::new(inbound_ports(&self.snapshot, proxy)))
    }

    /// The proxy's clusters: its namespace view's, the fixed ones and one per
    /// inbound port (memoised by scope, cert mode and inbound ports).
    fn proxy_clusters(
        &self,
        key: &ScopeKey,
        proxy: &Proxy,
        view: &NamespaceView,
        inbound: &[InboundPort],
    ) -> Arc<Named> {
        let inbound_key: Vec<(u16, rudder_model::Protocol)> =
            inbound.iter().map(|p| (p.port, p.protocol)).collect();
        let build = || {
            let mut clusters = (*view.clusters).clone();
            clusters.extend(self.fixed.iter().cloned());
            for p in inbound {
                let name = ClusterName::inbound(p.port).to_string();
                let r = self
                    .inbound
                    .get_or((p.port, p.protocol), || inbound_cluster(&name, p.protocol));
                clusters.insert(name, r);
            }
            self.distinct(clusters)
        };
        self.proxy_clusters
            .get_or_from((key.clone(), proxy.cert_mode, inbound_key), |old| {
                match (old, &view.cluster_changes) {
                    // The previous map held the previous view's clusters
                    // (clusters do not depend on locality), the same fixed
                    // and inbound ones (configuration alone).
                    (Some(old), Some(changes)) => self.patched(&old, changes),
                    (old, _) => kept_if_same(old, build(), same_content),
                }
            })
    }

    /// The proxy's listener map (memoised by the content of its inputs, see
    /// [`ListenersKey`]), with what its own listeners reference.
    fn proxy_listeners(
        &self,
        proxy: &Proxy,
        inbound: &[InboundPort],
        chains: &Arc<OutboundChains>,
    ) -> Arc<ProxyListeners> {
        let security = InboundSecurity::of(&self.snapshot, proxy, inbound);
        let own_key = (
            proxy.clone(),
            inbound.to_vec(),
            chains.version.clone(),
            Version::new("inbound-security").with(&security).to_string(),
        );
        let own = self.own_listeners.get_or(own_key, || {
            let mut built = listeners(proxy, inbound, chains, &security);
            // `listeners` returns the proxy's own listeners first, then the
            // shared service listeners.
            built.truncate(built.len() - chains.vip_listeners.len());
            // Kept for the generator's life, once per proxy: not with the
            // capacity of the whole listener list.
            built.shrink_to_fit();
            let (refs, problems) = Refs::of(built.iter().map(|(n, r)| (n, r)), []);
            let refs = self.ref_names(refs.names());
            Arc::new(OwnListeners {
                listeners: built,
                refs,
                problems,
            })
        });
        let map_key = (ByPtr(own.clone()), chains.content_version.clone());
        self.listener_maps.get_or(map_key, || {
            // The scope's shared service listeners as the map's base, the
            // proxy's own beside them: a pointer and one or two entries per
            // proxy, not a copy of a thousand entries (see `Content`).
            let map = Content::layered(chains.vip_map.clone(), own.listeners.iter().cloned());
            Arc::new(ProxyListeners {
                map: Arc::new(map),
                own,
            })
        })
    }

    /// The route configurations the outbound chains name: one per HTTP port,
    /// one per HTTP service port (each memoised by scope and selector bits).
    fn proxy_routes(
        &self,
        proxy: &Proxy,
        scope: &Scope,
        key: &ScopeKey,
        bits: &SelectorBits,
        chains: &OutboundChains,
    ) -> Named {
        let snapshot = &*self.snapshot;
        let mut routes: Named = chains
            .http_ports
            .iter()
            .map(|&port| {
                let r = self
                    .port_routes
                    .get_or((port, key.clone(), bits.clone()), || {
                        outbound_route_config(snapshot, port, scope, &proxy.labels)
                    });
                (rudder_model::names::outbound_route_name(port), r)
            })
            .collect();
        for (host, port) in &chains.service_routes {
            let Some(svc) = snapshot.services.get(host) else {
                continue;
            };
            let memo_key = (host.clone(), *port, key.clone(), bits.clone());
            let r = self.service_routes.get_or(memo_key, || {
                service_route_config(snapshot, svc, *port, scope, &proxy.labels)
            });
            routes.insert(service_route_name(host, *port), r);
        }
        routes
    }

    /// [`Generator::generate`], then [`check_consistency`]: `None` when the
    /// set references names it does not hold (a generator bug), which is
    /// logged and counted ([`crate::internal_errors`]); the caller keeps
    /// publishing what it published before. What pilot runs before every
    /// publish.
    ///
    /// The check is split by what is shared: the cluster, assignment and
    /// route maps and the service listeners are checked once per
    /// combination (by pointer; proxies share them), and only the proxy's
    /// own listeners (the capture listener) are decoded for each proxy,
    /// once while they stay the same.
    pub fn generate_checked(&self, proxy: &Proxy) -> Option<ProxyResources> {
        if proxy.id.is_router() {
            // Gateways are few: their whole set is checked.
            let res = self.generate_gateway(proxy);
            return match crate::check_consistency(&res) {
                Ok(()) => Some(res),
                Err(problems) => {
                    report_inconsistent(&proxy.id.to_string(), &problems);
                    None
                }
            };
        }
        let (res, chains, own) = self.generate_parts(proxy);
        let empty = Arc::new(Named::new());
        let map = |t| res.shared(t).cloned().unwrap_or_else(|| empty.clone());
        let (clusters, endpoints, routes) = (
            map(TypeUrl::Cluster),
            map(TypeUrl::Endpoint),
            map(TypeUrl::Route),
        );
        let key = (
            ByPtr(clusters.clone()),
            ByPtr(routes.clone()),
            ByPtr(chains.clone()),
        );
        let shared = self.checks.get_or(key, || {
            Arc::new(self.shared_problems(&clusters, &routes, &chains.vip_listeners))
        });
        let mut problems = (*self.eds_problems(&clusters, &endpoints)).clone();
        problems.extend(shared.iter().cloned());
        problems.extend(own.own.problems.iter().cloned());
        if !own.own.refs.present(&clusters, &routes) {
            // Say who references what is missing (decoding again: a bug).
            problems.extend(reference_problems(own.map.iter(), [], &clusters, &routes));
        }
        if problems.is_empty() {
            Some(res)
        } else {
            report_inconsistent(&proxy.id.to_string(), &problems);
            None
        }
    }

    /// The problems between a cluster map and an assignment map (once per
    /// pair, by pointer).
    fn eds_problems(&self, clusters: &Arc<Named>, endpoints: &Arc<Named>) -> Arc<Vec<String>> {
        self.eds_checks
            .get_or((ByPtr(clusters.clone()), ByPtr(endpoints.clone())), || {
                Arc::new(eds_problems_with(clusters, endpoints, |_, r| {
                    self.eds_services
                        .get_or(ByPtr(r.clone()), || Arc::new(eds_service(r)))
                }))
            })
    }

    /// The problems of the references of a set's shared part: its service
    /// listeners and route configurations (each decoded once while it
    /// lives: a route change decodes its own routes alone), judged against
    /// its cluster and route maps.
    fn shared_problems(
        &self,
        clusters: &Arc<Named>,
        routes: &Arc<Named>,
        vip_listeners: &[(String, Arc<Resource>)],
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let listeners = vip_listeners.iter().map(|(n, r)| (n, r, true));
        let route_configs = routes.iter().map(|(n, r)| (n, r, false));
        for (name, r, listener) in listeners.chain(route_configs) {
            let refs = self.resource_refs.get_or(ByPtr(r.clone()), || {
                let one = std::iter::once((name, r));
                Arc::new(if listener {
                    Refs::of(one, [])
                } else {
                    Refs::of([], one)
                })
            });
            problems.extend(refs.1.iter().cloned());
            problems.extend(refs.0.missing(clusters, routes));
        }
        problems
    }

    /// The generator's one map with `map`'s content: scopes that see the
    /// same services (every namespace of a mesh without Sidecars or
    /// `exportTo`) share one cluster and one assignment map, so the ADS
    /// server compares and selects from one map where it would walk one per
    /// namespace.
    fn distinct(&self, map: Named) -> Arc<Named> {
        let mut maps = lock(&self.distinct_maps);
        if let Some(m) = maps.iter().find(|m| same_content(m, &map)) {
            return m.clone();
        }
        let m = Arc::new(map);
        maps.push(m.clone());
        m
    }

    /// The generator's one copy of `names`.
    fn ref_names(&self, names: RefNames) -> Arc<RefNames> {
        let mut set = lock(&self.ref_names);
        if let Some(shared) = set.get(&names) {
            return shared.clone();
        }
        let shared = Arc::new(names);
        set.insert(shared.clone());
        shared
    }

    /// The scope's view for `cert_mode` and `locality` (memoised): patched
    /// from the previous generator's when this one follows one with the
    /// same services, policies and scopes (see [`Generator::patched_view`]),
    /// else built, and the previous one kept when equal.
    fn view(
        &self,
        key: &ScopeKey,
        scope: &Scope,
        cert_mode: CertMode,
        locality: LocalityKey,
    ) -> Arc<NamespaceView> {
        let build = || Arc::new(self.scope_view(scope, cert_mode, locality.as_ref()));
        self.views
            .get_or_from((key.clone(), cert_mode, locality.clone()), |old| {
                match (old, &self.changed_hosts) {
                    (Some(old), Some(hosts)) => Arc::new(self.patched_view(
                        &old,
                        scope,
                        cert_mode,
                        locality.as_ref(),
                        hosts,
                    )),
                    (old, _) => kept_if_same(old, build(), |old, new| {
                        same_content(&old.clusters, &new.clusters)
                            && same_content(&old.endpoints, &new.endpoints)
                    }),
                }
            })
    }

    /// Outbound clusters (per service port in the scope, per subset of the
    /// policy the scope's namespace uses) and their EDS; those of clusters
    /// balanced by locality as a proxy at `locality` sees them (built from
    /// the key alone, so the memo key holds every input).
    fn scope_view(
        &self,
        scope: &Scope,
        cert_mode: CertMode,
        locality: Option<&(Locality, Labels)>,
    ) -> NamespaceView {
        let services = scope.services(&self.snapshot);
        let (clusters, endpoints) = self.entries(scope, services, cert_mode, locality);
        NamespaceView {
            clusters: self.distinct(clusters.into_iter().collect()),
            endpoints: self.distinct(endpoints.into_iter().collect()),
            cluster_changes: None,
        }
    }

    /// `old` (the previous generator's view for the same key, built from
    /// the same services, policies and scope) with the entries of the
    /// visible `hosts` built again: the names of a host's clusters and
    /// assignments, and whether it has assignments, follow from its
    /// service and policy alone, so the new entries replace the old ones
    /// name for name, and every other entry was built from equal inputs.
    /// A pod change costs its host's entries and one copy of each map, not
    /// a lookup of every cluster of the mesh per scope.
    fn patched_view(
        &self,
        old: &NamespaceView,
        scope: &Scope,
        cert_mode: CertMode,
        locality: Option<&(Locality, Labels)>,
        hosts: &HashSet<String>,
    ) -> NamespaceView {
        // The set's order, the same for every view of this generator.
        let services = hosts
            .iter()
            .filter(|h| scope.sees(h))
            .filter_map(|h| self.snapshot.services.get(h));
        let (clusters, endpoints) = self.entries(scope, services, cert_mode, locality);
        let clusters = kept_where_equal(&old.clusters, clusters);
        let endpoints = kept_where_equal(&old.endpoints, endpoints);
        NamespaceView {
            clusters: self.patched(&old.clusters, &clusters),
            endpoints: self.patched(&old.endpoints, &endpoints),
            cluster_changes: Some(clusters),
        }
    }

    /// `old` with `changes` inserted: `old` itself when they change
    /// nothing; built once per generator for the same map and changes (the
    /// scopes of a mesh without Sidecars share their maps), and one map per
    /// content (see [`Generator::distinct`]).
    fn patched(&self, old: &Arc<Named>, changes: &Changes) -> Arc<Named> {
        let unchanged = changes
            .iter()
            .all(|(n, r)| old.get(n).is_some_and(|o| Arc::ptr_eq(o, r)));
        if unchanged {
            return old.clone();
        }
        let same = |a: &Changes| {
            a.len() == changes.len()
                && a.iter()
                    .zip(changes)
                    .all(|((na, ra), (nb, rb))| na == nb && Arc::ptr_eq(ra, rb))
        };
        let key = ByPtr(old.clone());
        if let Some(done) = lock(&self.patched_maps).get(&key) {
            if let Some((_, m)) = done.iter().find(|(c, _)| same(c)) {
                return m.clone();
            }
        }
        let mut map = (**old).clone();
        for (name, r) in changes {
            map.insert(name.clone(), r.clone());
        }
        let map = self.distinct(map);
        lock(&self.patched_maps)
            .entry(key)
            .or_default()
            .push((changes.clone(), map.clone()));
        map
    }

    /// The clusters and load assignments of `services` (visible in
    /// `scope`), in their order.
    fn entries<'s>(
        &self,
        scope: &Scope,
        services: impl Iterator<Item = &'s rudder_model::Service>,
        cert_mode: CertMode,
        locality: Option<&(Locality, Labels)>,
    ) -> (Changes, Changes) {
        let (mut clusters, mut endpoints) = (Vec::new(), Vec::new());
        for svc in services {
            self.service_view(
                scope,
                svc,
                cert_mode,
                locality,
                &mut clusters,
                &mut endpoints,
            );
        }
        (clusters, endpoints)
    }

    /// The clusters (per service port, per subset of the policy the scope's
    /// namespace uses) and load assignments of one visible service, pushed
    /// onto `clusters` and `endpoints`.
    fn service_view(
        &self,
        scope: &Scope,
        svc: &rudder_model::Service,
        cert_mode: CertMode,
        locality: Option<&(Locality, Labels)>,
        clusters: &mut Changes,
        endpoints_of_view: &mut Changes,
    ) {
        let snapshot = &*self.snapshot;
        let policy = snapshot.destination_policy(&scope.namespace, &svc.hostname);
        let policy_id = policy.map(|p| p as *const DestinationPolicy as usize);
        for sp in &svc.ports {
            let endpoints = snapshot.endpoints_of(&svc.hostname, sp.port);
            let subsets = policy
                .into_iter()
                .flat_map(|p| p.subsets.values().map(Some));
            for subset in std::iter::once(None).chain(subsets) {
                let name =
                    ClusterName::outbound(sp.port, subset.map(|s| s.name.as_str()), &svc.hostname)
                        .to_string();
                let cluster = self
                    .clusters
                    .get_or((name.clone(), policy_id, cert_mode), || {
                        let members = members(endpoints, subset.map(|s| &s.labels));
                        let peers = Peers {
                            endpoints: &members,
                            trust_domain: &snapshot.mesh.trust_domain,
                            cert_mode,
                        };
                        outbound_cluster(&name, svc, sp, policy, subset, peers)
                    });
                clusters.push((name.clone(), cluster));
                let entry_without_eds = svc
                    .entry
                    .as_ref()
                    .is_some_and(|e| e.resolution != rudder_model::Resolution::Static);
                if svc.external_name.is_some() || svc.is_headless() || entry_without_eds {
                    // Resolved by DNS, or ORIGINAL_DST: no EDS.
                    continue;
                }
                // The policy as merged for this port and subset, once.
                let tp = policy.map(|_| effective_policy(policy, subset, sp.port));
                if tp
                    .as_ref()
                    .is_some_and(|t| t.load_balancer == Some(LoadBalancer::Passthrough))
                {
                    // PASSTHROUGH: ORIGINAL_DST, no EDS.
                    continue;
                }
                let labels = subset.map(|s| s.labels.clone());
                // Only where a policy balances by locality (else
                // `locality` is None and nothing is computed).
                let lb = locality.zip(tp.as_ref()).and_then(|((at, labels), tp)| {
                    tp.locality_lb().map(|setting| LocalityFor {
                        setting,
                        failover: tp.outlier_detection.is_some(),
                        proxy: at,
                        proxy_labels: labels,
                    })
                });
                let per_proxy = lb.map(|l| (policy_id, l.proxy.clone(), l.proxy_labels.clone()));
                let eds = self
                    .endpoints
                    .get_or((name.clone(), labels, per_proxy), || {
                        eds_resource(&name, endpoints, subset.map(|s| &s.labels), lb)
                    });
                endpoints_of_view.push((name, eds));
            }
        }
    }
}

/// `changes` with each resource equal to `old`'s of the same name (by
/// version) replaced by `old`'s: a host's entries are built again when its
/// endpoints change, and most of them (its clusters, the assignments of
/// subsets the pod is not in) come out the same.
fn kept_where_equal(old: &Named, changes: Changes) -> Changes {
    changes
        .into_iter()
        .map(|(name, r)| match old.get(&name) {
            Some(o) if o.version == r.version => (name, o.clone()),
            _ => (name, r),
        })
        .collect()
}

/// The hosts whose endpoints differ between two snapshots.
fn changed_endpoints<'a>(a: &'a Snapshot, b: &'a Snapshot) -> HashSet<&'a str> {
    let mut changed: HashSet<&str> = HashSet::new();
    for (host, ports) in &a.endpoints {
        if b.endpoints.get(host) != Some(ports) {
            changed.insert(host);
        }
    }
    for host in b.endpoints.keys() {
        if !a.endpoints.contains_key(host) {
            changed.insert(host);
        }
    }
    changed
}

/// The host of an outbound cluster name (`outbound|port|subset|host`).
fn cluster_host(name: &str) -> &str {
    name.rsplit('|').next().unwrap_or(name)
}

/// One-shot generation without sharing (tests, tools): equal to
/// `Generator::new(snapshot).generate(proxy)`.
pub fn generate(snapshot: Arc<Snapshot>, proxy: &Proxy) -> ProxyResources {
    Generator::new(snapshot).generate(proxy)
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::route::v3::{
        route::Action, route_action::ClusterSpecifier, Route, RouteAction, RouteConfiguration,
        VirtualHost,
    };

    use super::*;

    #[test]
    fn shared_checks_decode_a_route_once_and_judge_it_against_each_cluster_map() {
        let g = Generator::new(Arc::new(Snapshot::default()));
        let config = RouteConfiguration {
            name: "r".into(),
            virtual_hosts: vec![VirtualHost {
                name: "r".into(),
                domains: vec!["*".into()],
                routes: vec![Route {
                    action: Some(Action::Route(RouteAction {
                        cluster_specifier: Some(ClusterSpecifier::Cluster("c".into())),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let route = crate::common::resource(Version::new("test").with(&"r"), &config);
        let routes = Arc::new(Named::from([("r".to_string(), route)]));
        let empty = Arc::new(Named::new());
        let problems = g.shared_problems(&empty, &routes, &[]);
        assert_eq!(
            problems,
            vec!["route configuration r virtual host r route \"\": cluster c does not exist"]
        );
        // The same route against a map holding `c` (its decoded references
        // are kept; the verdict is not).
        let (_, cluster) = g.fixed.first().unwrap().clone();
        let with_c = Arc::new(Named::from([("c".to_string(), cluster)]));
        assert_eq!(
            g.shared_problems(&with_c, &routes, &[]),
            Vec::<String>::new()
        );
        assert_eq!(lock(&g.resource_refs.live).len(), 1, "decoded once");
    }
}
