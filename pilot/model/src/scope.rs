//! Per-proxy scoping: what one sidecar may see, as Istio decides it.
//!
//! ```text
//!  Snapshot ──► Scope::of(snapshot, namespace, labels)
//!                 ├─ exportTo   Service annotation `networking.istio.io/exportTo`,
//!                 │             VirtualService/DestinationRule `exportTo`
//!                 └─ Sidecar    the pod's (workloadSelector) ▸ its namespace's default
//!                               ▸ the root namespace's default ▸ none (see everything exported)
//!                    ─► services + route tables the proxy sees ─► xDS (clusters, EDS, listeners, routes)
//! ```
//!
//! A Sidecar's `egress[].hosts` are `namespace/dnsName`: the namespace is `*`
//! (any), `.` (the proxy's namespace: the Sidecar's own, or any namespace for
//! the root namespace's default), `~` (none) or a name; the dnsName is `*`,
//! `*.suffix` or a host. Within one egress listener, hosts naming a namespace
//! hide the `*/...` ones for that namespace (Istio's `selectServices`). A
//! service is visible when it is exported to the proxy's namespace and some
//! listener imports it; a VirtualService when it is exported there and a
//! listener imports its namespace and overlaps one of its hosts (Istio's
//! `SelectVirtualServices`), and the services its routes name come with it.
//!
//! A [`Scope`] is identified by [`Scope::key`] (the proxy's namespace and the
//! applicable Sidecar): everything scoped is a function of the snapshot and
//! that key, so generators may cache by it.

use std::collections::BTreeSet;

use crate::{
    route::{HttpAction, RouteTable, RuleRef},
    service::{selects, Hostname, Labels, Service},
    snapshot::Snapshot,
};

/// Whether something owned by `owner` with this `exportTo` is visible in
/// `client` (empty = everywhere; `*` everywhere; `.` the owner's namespace;
/// `~` nowhere; otherwise the namespaces named).
pub fn exported_to(export_to: &[String], owner: &str, client: &str) -> bool {
    export_to.is_empty()
        || export_to
            .iter()
            .any(|ns| ns == "*" || ns == client || (ns == "." && owner == client))
}

/// The namespace part of an egress host.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EgressNamespace {
    /// `*`: any namespace without hosts of its own in the listener.
    Any,
    /// `.`: the namespace of the proxy the Sidecar applies to (its own, or
    /// any namespace for the root namespace's default), as Istio resolves it.
    Own,
    /// A namespace by name.
    Named(String),
    /// `~`: no namespace (imports nothing).
    None,
}

/// One `namespace/dnsName` entry of `egress[].hosts`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EgressHost {
    /// Namespace part.
    pub namespace: EgressNamespace,
    /// Host part: `*`, `*.suffix` or a host.
    pub host: String,
}

/// Whether the pattern `*`, `*.suffix` or `host` matches `host` (a wildcard
/// host of a rule matches when the pattern covers it).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => host.ends_with(suffix),
        None => pattern == host,
    }
}

/// Whether two hosts, either possibly a wildcard, have a name in common
/// (Istio's `host.Name.Matches`, used to select VirtualServices).
pub fn hosts_overlap(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(x), Some(y)) => x.ends_with(y) || y.ends_with(x),
        (Some(x), None) => b.ends_with(x),
        (None, Some(y)) => a.ends_with(y),
        (None, None) => a == b,
    }
}

/// `outboundTrafficPolicy.mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OutboundMode {
    /// Unknown destinations pass through (Istio's default): the capture
    /// listener's default chain and each HTTP port's `allow_any` virtual
    /// host go to PassthroughCluster.
    #[default]
    AllowAny,
    /// Only registry hosts: unknown destinations go to BlackHoleCluster
    /// (TCP closed) and the HTTP ports' catch-all answers 502 (`block_all`).
    RegistryOnly,
}

/// A compiled Sidecar.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sidecar {
    /// Where it came from.
    pub source: RuleRef,
    /// `workloadSelector.labels`; `None`: the namespace default (the mesh
    /// default in the root namespace).
    pub selector: Option<Labels>,
    /// The hosts of each egress listener (a Sidecar without `egress` has one
    /// listener importing `*/*`, as in Istio).
    pub egress: Vec<Vec<EgressHost>>,
    /// `outboundTrafficPolicy.mode`; `None`: the mesh config's.
    pub outbound: Option<OutboundMode>,
}

impl Sidecar {
    /// Whether, for a proxy in `proxy_ns`, it imports the service `host` of
    /// `namespace`.
    pub fn imports(&self, proxy_ns: &str, namespace: &str, host: &str) -> bool {
        self.egress
            .iter()
            .any(|listener| hosts_for(listener, proxy_ns, namespace).any(|p| host_matches(p, host)))
    }

    /// Whether, for a proxy in `proxy_ns`, it imports a route rule of
    /// `namespace` naming `hosts` (Istio's `SelectVirtualServices`).
    pub fn imports_rule(&self, proxy_ns: &str, namespace: &str, hosts: &[Hostname]) -> bool {
        self.egress.iter().any(|listener| {
            hosts_for(listener, proxy_ns, namespace)
                .any(|p| hosts.iter().any(|h| hosts_overlap(h, p)))
        })
    }
}

/// The host patterns one egress listener imports from `namespace`: those
/// naming it (`ns/...`, or `./...` in the proxy's namespace) when there are
/// any, else those of `*/...` (Istio's precedence: an explicit namespace
/// hides the wildcard one).
fn hosts_for<'a>(
    listener: &'a [EgressHost],
    proxy_ns: &'a str,
    namespace: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    let named = move |h: &&EgressHost| match &h.namespace {
        EgressNamespace::Own => proxy_ns == namespace,
        EgressNamespace::Named(n) => n == namespace,
        EgressNamespace::Any | EgressNamespace::None => false,
    };
    let explicit = listener.iter().any(|h| named(&h));
    listener
        .iter()
        .filter(move |h| {
            if explicit {
                named(h)
            } else {
                h.namespace == EgressNamespace::Any
            }
        })
        .map(|h| h.host.as_str())
}

/// The Sidecar that applies to a pod in `namespace` with `labels`, as an
/// index into `sidecars` (ordered oldest first): the oldest whose selector
/// matches, else the namespace's default, else the root namespace's default.
pub fn select_sidecar(
    sidecars: &[Sidecar],
    root_namespace: &str,
    namespace: &str,
    labels: &Labels,
) -> Option<usize> {
    let find = |ns: &str, f: &dyn Fn(&Sidecar) -> bool| {
        sidecars
            .iter()
            .position(|s| s.source.namespace == ns && f(s))
    };
    find(namespace, &|s| {
        s.selector.as_ref().is_some_and(|l| selects(l, labels))
    })
    .or_else(|| find(namespace, &|s| s.selector.is_none()))
    .or_else(|| find(root_namespace, &|s| s.selector.is_none()))
}

/// What a proxy sees: its namespace's exports narrowed by its Sidecar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// The proxy's namespace.
    pub namespace: String,
    /// The applicable Sidecar (index into [`Snapshot::sidecars`]).
    pub sidecar: Option<usize>,
    /// Hostnames of the visible services.
    pub services: BTreeSet<Hostname>,
    /// Indexes of the visible route tables (into [`Snapshot::route_tables`]), in order.
    pub route_tables: Vec<usize>,
    /// What happens to destinations outside the registry: the Sidecar's
    /// `outboundTrafficPolicy.mode`, else the mesh config's.
    pub outbound: OutboundMode,
}

/// The identity of a scope within one snapshot: (namespace, Sidecar index).
pub type ScopeKey = (String, Option<usize>);

impl Scope {
    /// The scope of a proxy in `namespace` with `labels`.
    pub fn of(snapshot: &Snapshot, namespace: &str, labels: &Labels) -> Self {
        Self::for_key(snapshot, &Self::key_of(snapshot, namespace, labels))
    }

    /// The key a proxy in `namespace` with `labels` has (cheap: no scope built).
    pub fn key_of(snapshot: &Snapshot, namespace: &str, labels: &Labels) -> ScopeKey {
        let sidecar = select_sidecar(
            &snapshot.sidecars,
            &snapshot.mesh.root_namespace,
            namespace,
            labels,
        );
        (namespace.to_string(), sidecar)
    }

    /// The scope with this key.
    pub fn for_key(snapshot: &Snapshot, key: &ScopeKey) -> Self {
        let (namespace, sidecar) = key;
        let sc = sidecar.and_then(|i| snapshot.sidecars.get(i));
        let exported = |s: &Service| exported_to(&s.export_to, &s.namespace, namespace);
        let route_tables: Vec<usize> = snapshot
            .route_tables
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                t.visible_to(namespace)
                    && sc.is_none_or(|sc| sc.imports_rule(namespace, &t.source.namespace, &t.hosts))
            })
            .map(|(i, _)| i)
            .collect();
        let mut services: BTreeSet<Hostname> = snapshot
            .services
            .values()
            .filter(|s| {
                exported(s) && sc.is_none_or(|sc| sc.imports(namespace, &s.namespace, &s.hostname))
            })
            .map(|s| s.hostname.clone())
            .collect();
        if sc.is_some() {
            // The services the selected rules route to come with them (Istio).
            for &i in &route_tables {
                for host in destinations(&snapshot.route_tables[i]) {
                    if snapshot.services.get(host).is_some_and(exported) {
                        services.insert(host.clone());
                    }
                }
            }
        }
        Self {
            namespace: namespace.clone(),
            sidecar: *sidecar,
            services,
            route_tables,
            outbound: sc
                .and_then(|s| s.outbound)
                .unwrap_or(snapshot.mesh.outbound_mode),
        }
    }

    /// This scope's key.
    pub fn key(&self) -> ScopeKey {
        (self.namespace.clone(), self.sidecar)
    }

    /// The visible services, by hostname.
    pub fn services<'a>(&'a self, snapshot: &'a Snapshot) -> impl Iterator<Item = &'a Service> {
        self.services
            .iter()
            .filter_map(|h| snapshot.services.get(h))
    }

    /// Whether `host` is a visible service.
    pub fn sees(&self, host: &str) -> bool {
        self.services.contains(host)
    }

    /// The route table for `host` this scope uses: the first visible one.
    pub fn route_table<'a>(&self, snapshot: &'a Snapshot, host: &str) -> Option<&'a RouteTable> {
        self.route_tables
            .iter()
            .map(|&i| &snapshot.route_tables[i])
            .find(|t| t.hosts.iter().any(|h| h == host))
    }
}

/// Hashes what [`Scope::for_key`] reads of a route table: its source,
/// hosts, visibility, gateways and the set of hosts its routes name (the
/// `Snapshot::base_version` part of it).
pub(crate) fn hash_shape(t: &RouteTable, h: &mut impl std::hash::Hasher) {
    use std::hash::Hash;
    t.source.hash(h);
    t.hosts.hash(h);
    t.export_to.hash(h);
    t.gateways.hash(h);
    destinations(t)
        .collect::<std::collections::BTreeSet<_>>()
        .hash(h);
}

/// Every host a route table's routes name (HTTP, mirrors and TCP).
fn destinations(t: &RouteTable) -> impl Iterator<Item = &Hostname> {
    let http = t.http.iter().flat_map(|r| {
        let routed = match &r.action {
            HttpAction::Route(ds) => ds.as_slice(),
            _ => &[],
        };
        routed
            .iter()
            .map(|d| &d.host)
            .chain(r.mirrors.iter().map(|m| &m.destination.host))
    });
    let tcp = t
        .tcp
        .iter()
        .flat_map(|r| r.destinations.iter().map(|d| &d.host));
    http.chain(tcp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::DestinationRules;

    #[test]
    fn export_to_follows_istio() {
        let e = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(exported_to(&[], "a", "b"), "empty: everywhere");
        assert!(exported_to(&e(&["*"]), "a", "b"));
        assert!(exported_to(&e(&["."]), "a", "a"));
        assert!(!exported_to(&e(&["."]), "a", "b"));
        assert!(!exported_to(&e(&["~"]), "a", "a"), "`~`: nowhere");
        assert!(exported_to(&e(&["b", "c"]), "a", "c"));
    }

    #[test]
    fn egress_hosts_follow_istio_namespace_precedence() {
        let h = |namespace, host: &str| EgressHost {
            namespace,
            host: host.into(),
        };
        let sidecar = |egress: Vec<Vec<EgressHost>>| Sidecar {
            source: RuleRef {
                kind: "Sidecar".into(),
                namespace: "rudder-system".into(),
                name: "s".into(),
            },
            selector: None,
            egress,
            outbound: None,
        };
        let s = sidecar(vec![vec![
            h(EgressNamespace::Any, "*.example.com"),
            h(EgressNamespace::Any, "*.svc.cluster.local"),
            h(
                EgressNamespace::Named("prod".into()),
                "a.prod.svc.cluster.local",
            ),
            h(EgressNamespace::Own, "*"),
        ]]);
        assert!(s.imports("dev", "x", "www.example.com"));
        assert!(!s.imports("dev", "x", "example.com"));
        assert!(s.imports("dev", "prod", "a.prod.svc.cluster.local"));
        assert!(
            !s.imports("dev", "prod", "b.prod.svc.cluster.local"),
            "prod/... hides */... for prod's services"
        );
        assert!(s.imports("dev", "qa", "b.qa.svc.cluster.local"));
        assert!(
            s.imports("dev", "dev", "anything"),
            "`.` is the proxy's namespace"
        );
        assert!(
            !s.imports("qa", "dev", "c.dev"),
            "c.dev is not under *.svc.cluster.local"
        );
        let nothing = sidecar(vec![vec![h(EgressNamespace::None, "*")]]);
        assert!(!nothing.imports("prod", "prod", "a"));
        let two = sidecar(vec![
            vec![h(EgressNamespace::Named("prod".into()), "a.prod")],
            vec![h(EgressNamespace::Any, "*")],
        ]);
        assert!(two.imports("dev", "prod", "b.prod"), "listeners are united");
        assert!(s.imports_rule("dev", "x", &["*.example.com".to_string()]));
        assert!(hosts_overlap("*.com", "*.example.com"));
        assert!(!hosts_overlap("*.org", "www.example.com"));
    }

    #[test]
    fn destination_rule_pools() {
        let e = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let root = "rudder-system";
        assert_eq!(DestinationRules::pools(&[], "a", root), (true, true));
        assert_eq!(
            DestinationRules::pools(&e(&["."]), "a", root),
            (true, false)
        );
        assert_eq!(
            DestinationRules::pools(&e(&["b"]), "a", root),
            (false, true)
        );
        assert_eq!(
            DestinationRules::pools(&e(&["a", "b"]), "a", root),
            (true, true)
        );
        assert_eq!(
            DestinationRules::pools(&e(&["*"]), root, root),
            (false, true),
            "the root namespace's local pool holds only private rules"
        );
        assert_eq!(
            DestinationRules::pools(&e(&["."]), root, root),
            (true, false)
        );
    }

    #[test]
    fn the_most_specific_wildcard_rule_applies() {
        let rule = |host: &str| crate::policy::DestinationPolicy {
            source: RuleRef {
                kind: "DestinationRule".into(),
                namespace: "prod".into(),
                name: host.into(),
            },
            host: host.into(),
            traffic_policy: Default::default(),
            subsets: Default::default(),
            export_to: vec![],
        };
        let mut rules = DestinationRules::default();
        let pool = rules.exported.entry("prod".into()).or_default();
        for h in [
            "*.svc.cluster.local",
            "*.prod.svc.cluster.local",
            "a.prod.svc.cluster.local",
        ] {
            pool.insert(h.into(), std::sync::Arc::new(rule(h)));
        }
        let found = |host: &str, service_ns: &str| {
            rules
                .lookup("rudder-system", "dev", host, Some(service_ns))
                .map(|p| p.host.as_str())
        };
        let a = "a.prod.svc.cluster.local";
        assert_eq!(found(a, "prod"), Some(a));
        assert_eq!(
            found("b.prod.svc.cluster.local", "prod"),
            Some("*.prod.svc.cluster.local")
        );
        assert_eq!(
            found("c.qa.svc.cluster.local", "qa"),
            None,
            "qa's service: prod's pool is not asked"
        );
    }
}
