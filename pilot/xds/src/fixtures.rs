//! Small builders for test snapshots and proxies (`mk_service`, `mk_pod`,
//! `mk_route_table` ...), in the manner of linkerd's index tests. Tests here,
//! the lead's end-to-end goldens and the benchmark build model data directly
//! rather than from YAML, so they exercise generation alone.

use std::{net::IpAddr, sync::Arc};

use rudder_model::{
    node::{NodeId, NodeMetadata},
    selects, Destination, DestinationPolicy, DestinationRules, EgressHost, EgressNamespace,
    Endpoint, HttpAction, HttpRoute, Labels, Protocol, Proxy, RouteTable, RuleRef, Service,
    ServicePort, Sidecar, Snapshot, Subset, TargetPort, TcpRoute, TrafficPolicy, Workload,
};

use crate::resolve_proxy;

/// Labels from pairs.
pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A service port; the protocol follows from the name as Istio detects it.
pub fn mk_port(name: &str, port: u16, target: u16) -> ServicePort {
    ServicePort {
        name: name.to_string(),
        port,
        target_port: TargetPort::Number(target),
        protocol: Protocol::detect(None, Some(name)),
    }
}

/// A ClusterIP service in `namespace` selecting pods with `selector`.
pub fn mk_service(
    name: &str,
    namespace: &str,
    vip: &str,
    ports: Vec<ServicePort>,
    selector: &[(&str, &str)],
) -> Service {
    Service {
        name: name.to_string(),
        namespace: namespace.to_string(),
        hostname: fqdn(name, namespace),
        cluster_ip: Some(vip.parse().expect("fixture VIP parses")),
        ports,
        selector: labels(selector),
        export_to: Vec::new(),
        other_vips: Vec::new(),
        external_name: None,
        entry: None,
    }
}

/// A `type: ExternalName` Service in `namespace` standing for `external_name`.
pub fn mk_external_name_service(
    name: &str,
    namespace: &str,
    external_name: &str,
    ports: Vec<ServicePort>,
) -> Service {
    Service {
        cluster_ip: None,
        other_vips: Vec::new(),
        external_name: Some(external_name.to_string()),
        ..mk_service(name, namespace, "0.0.0.0", ports, &[])
    }
}

/// `name.namespace.svc.cluster.local`.
pub fn fqdn(name: &str, namespace: &str) -> String {
    format!("{name}.{namespace}.svc.cluster.local")
}

/// A ready pod.
pub fn mk_pod(name: &str, namespace: &str, ip: &str, pod_labels: &[(&str, &str)]) -> Workload {
    Workload {
        name: name.to_string(),
        namespace: namespace.to_string(),
        labels: labels(pod_labels),
        ips: vec![ip.parse().expect("fixture pod IP parses")],
        service_account: "default".into(),
        ready: true,
        named_ports: Default::default(),
    }
}

/// A weighted destination (`port: None`: the port the request came in on).
pub fn dest(host: &str, subset: Option<&str>, weight: u32) -> Destination {
    Destination {
        host: host.to_string(),
        subset: subset.map(str::to_string),
        port: None,
        weight,
        headers: Default::default(),
    }
}

/// An HTTP route to `destinations` matching everything, no extras.
pub fn mk_http_route(destinations: Vec<Destination>) -> HttpRoute {
    HttpRoute {
        name: None,
        matches: Vec::new(),
        action: HttpAction::Route(destinations),
        timeout: None,
        retries: None,
        fault: None,
        mirrors: Vec::new(),
        rewrite: None,
        headers: Default::default(),
        cors: None,
    }
}

/// A route table (as a VirtualService `namespace/name` compiles to).
pub fn mk_route_table(
    namespace: &str,
    name: &str,
    hosts: &[&str],
    http: Vec<HttpRoute>,
    tcp: Vec<TcpRoute>,
) -> RouteTable {
    RouteTable {
        source: RuleRef {
            kind: "VirtualService".into(),
            namespace: namespace.into(),
            name: name.into(),
        },
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        export_to: Vec::new(),
        http,
        tcp,
        tls: Vec::new(),
        gateways: Vec::new(),
    }
}

/// A destination policy with subsets selecting `version=<subset name>`.
pub fn mk_policy(
    namespace: &str,
    host: &str,
    subsets: &[&str],
    traffic_policy: TrafficPolicy,
) -> DestinationPolicy {
    DestinationPolicy {
        source: RuleRef {
            kind: "DestinationRule".into(),
            namespace: namespace.into(),
            name: host.into(),
        },
        host: host.to_string(),
        traffic_policy,
        subsets: subsets
            .iter()
            .map(|s| {
                (
                    s.to_string(),
                    Subset {
                        name: s.to_string(),
                        labels: labels(&[("version", s)]),
                        traffic_policy: None,
                    },
                )
            })
            .collect(),
        export_to: Vec::new(),
    }
}

/// A Sidecar `namespace/name` with one egress listener importing `hosts`
/// (`ns/host`, `.` = the proxy's namespace), for pods with `selector`
/// (`None`: the namespace default).
pub fn mk_sidecar(
    namespace: &str,
    name: &str,
    selector: Option<&[(&str, &str)]>,
    hosts: &[&str],
) -> Sidecar {
    let egress = hosts
        .iter()
        .map(|h| {
            let (ns, host) = h.split_once('/').expect("fixture egress host is ns/host");
            let namespace = match ns {
                "*" => EgressNamespace::Any,
                "~" => EgressNamespace::None,
                "." => EgressNamespace::Own,
                n => EgressNamespace::Named(n.into()),
            };
            EgressHost {
                namespace,
                host: host.into(),
            }
        })
        .collect();
    Sidecar {
        source: RuleRef {
            kind: "Sidecar".into(),
            namespace: namespace.into(),
            name: name.into(),
        },
        selector: selector.map(labels),
        egress: vec![egress],
        outbound: None,
    }
}

/// Collects model objects and computes endpoints from service selectors over
/// the pods, as the registry does when no Endpoints objects are given.
#[derive(Debug, Default)]
pub struct SnapshotBuilder {
    snapshot: Snapshot,
}

impl SnapshotBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a service.
    pub fn service(mut self, s: Service) -> Self {
        self.snapshot
            .namespaces
            .entry(s.namespace.clone())
            .or_insert_with(|| rudder_model::Namespace {
                name: s.namespace.clone(),
                labels: Labels::new(),
            });
        self.snapshot.services.insert(s.hostname.clone(), s);
        self
    }

    /// Adds a pod.
    pub fn pod(mut self, w: Workload) -> Self {
        self.snapshot
            .workloads
            .insert(format!("{}/{}", w.namespace, w.name), w);
        self
    }

    /// Adds a route table (after the ones already added: lower precedence).
    pub fn route_table(mut self, t: RouteTable) -> Self {
        self.snapshot.route_tables.push(t);
        self
    }

    /// Adds a destination policy to the pools its `exportTo` puts it in
    /// (replacing one for the same host there; the registry merges instead).
    pub fn policy(mut self, p: DestinationPolicy) -> Self {
        let ns = p.source.namespace.clone();
        let (local, exported) =
            DestinationRules::pools(&p.export_to, &ns, &self.snapshot.mesh.root_namespace);
        let rules = Arc::make_mut(&mut self.snapshot.destination_rules);
        if local {
            let pool = rules.local.entry(ns.clone()).or_default();
            pool.insert(p.host.clone(), Arc::new(p.clone()));
        }
        if exported {
            let pool = rules.exported.entry(ns).or_default();
            pool.insert(p.host.clone(), Arc::new(p));
        }
        self
    }

    /// Adds a Sidecar (after the ones already added: younger).
    pub fn sidecar(mut self, s: Sidecar) -> Self {
        self.snapshot.sidecars.push(s);
        self
    }

    /// Adds a PeerAuthentication (after the ones already added: younger).
    pub fn peer_authentication(mut self, p: rudder_model::PeerAuthn) -> Self {
        self.snapshot.security.peer_authentications.push(p);
        self
    }

    /// Adds an AuthorizationPolicy (after the ones already added).
    pub fn authorization_policy(mut self, p: rudder_model::AuthzPolicy) -> Self {
        self.snapshot.security.authorization_policies.push(p);
        self
    }

    /// Adds a RequestAuthentication (after the ones already added).
    pub fn request_authentication(mut self, p: rudder_model::RequestAuthn) -> Self {
        self.snapshot.security.request_authentications.push(p);
        self
    }

    /// A key set pilot fetched from `uri`.
    pub fn jwks(mut self, uri: &str, jwks: &str) -> Self {
        self.snapshot
            .security
            .jwks
            .insert(uri.to_string(), jwks.to_string());
        self
    }

    /// Adds a TLS credential (a Secret).
    pub fn secret(mut self, s: rudder_model::TlsSecret) -> Self {
        self.snapshot.secrets.insert(s.key(), s);
        self
    }

    /// Endpoints from selectors, then sealed.
    pub fn build(mut self) -> Arc<Snapshot> {
        let s = &mut self.snapshot;
        for svc in s.services.values() {
            let ports = s.endpoints.entry(svc.hostname.clone()).or_default();
            for sp in &svc.ports {
                let eps = s
                    .workloads
                    .values()
                    .filter(|w| {
                        w.namespace == svc.namespace
                            && !svc.selector.is_empty()
                            && selects(&svc.selector, &w.labels)
                    })
                    .flat_map(|w| {
                        let port = match &sp.target_port {
                            TargetPort::Number(n) => Some(*n),
                            TargetPort::Name(n) => w.named_ports.get(n).copied(),
                        };
                        w.ips.iter().filter_map(move |ip| {
                            port.map(|port| Endpoint {
                                address: *ip,
                                port,
                                labels: w.labels.clone(),
                                pod_name: Some(w.name.clone()),
                                namespace: w.namespace.clone(),
                                service_account: Some(w.service_account.clone()),
                                ready: w.ready,
                                locality: rudder_model::Locality::from_labels(&w.labels),
                                weight: 0,
                            })
                        })
                    })
                    .collect();
                ports.insert(sp.port, eps);
            }
        }
        Arc::new(self.snapshot.seal())
    }
}

/// The test credentials in `pilot/testdata/credentials` (never used outside
/// tests): `file` is e.g. `bookinfo.crt`, `ca.crt`.
pub fn test_credential(file: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/credentials")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A TLS credential from the test credentials: certificate and key
/// `<stem>.crt`/`<stem>.key`, with the test CA when `with_ca`.
pub fn mk_test_secret(
    namespace: &str,
    name: &str,
    stem: &str,
    with_ca: bool,
) -> rudder_model::TlsSecret {
    rudder_model::TlsSecret {
        namespace: namespace.into(),
        name: name.into(),
        cert_chain: test_credential(&format!("{stem}.crt")),
        private_key: test_credential(&format!("{stem}.key")),
        ca: with_ca.then(|| test_credential("ca.crt")),
    }
}

/// The proxy of pod `namespace/name` as pilot would resolve it (node id from
/// the pod, empty metadata, so everything comes from the store).
pub fn mk_proxy(snapshot: &Snapshot, namespace: &str, name: &str) -> Proxy {
    let w = snapshot
        .workloads
        .get(&format!("{namespace}/{name}"))
        .expect("fixture pod exists");
    let ip: IpAddr = w.ips[0];
    resolve_proxy(
        snapshot,
        NodeId::sidecar(ip, name, namespace),
        &NodeMetadata::default(),
    )
}

/// `envoy --mode validate` on a bootstrap: `Ok` or Envoy's complaint. The
/// bootstrap goes to a file of its own under the temporary directory, named by
/// `case`, the process and a counter (tests run in parallel), removed after.
pub fn envoy_validate_bootstrap(
    bin: &std::path::Path,
    case: &str,
    bootstrap: &envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap,
) -> Result<(), String> {
    use prost::Message;
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = std::env::temp_dir().join(format!(
        "rudder-validate-{}-{n}-{}.pb",
        std::process::id(),
        case.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
    ));
    std::fs::write(&file, bootstrap.encode_to_vec())
        .map_err(|e| format!("writing {}: {e}", file.display()))?;
    let out = std::process::Command::new(bin)
        .args(["--mode", "validate", "--log-level", "error", "-c"])
        .arg(&file)
        .output();
    let _ = std::fs::remove_file(&file);
    let out = out.map_err(|e| format!("running {}: {e}", bin.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && text.contains(" OK") {
        Ok(())
    } else {
        Err(text)
    }
}

/// Collects every resource generated in a test process and checks, for each
/// new one against all before it, that same version ⇔ same canonical JSON
/// (per type): two different resources never share a version, identical ones
/// always do. The golden helpers record every case into one ledger, so every
/// pair of golden resources is compared (issue 12).
#[derive(Debug, Default)]
pub struct VersionLedger {
    /// (type, version) → canonical JSON.
    by_version: std::collections::HashMap<(crate::TypeUrl, String), String>,
    /// (type, canonical JSON) → (version, first case seen in).
    by_json: std::collections::HashMap<(crate::TypeUrl, String), (String, String)>,
}

impl VersionLedger {
    /// Records every resource of `res` (generated for golden case `case`);
    /// returns one line per violation.
    pub fn record(&mut self, case: &str, res: &crate::ProxyResources) -> Vec<String> {
        let mut problems = Vec::new();
        for (&t, m) in &res.by_type {
            for (name, r) in m.iter() {
                let json = crate::resource_to_json(r)
                    .map(|v| v.to_string())
                    .unwrap_or_else(|e| panic!("{case}: {name}: {e}"));
                let key = (t, r.version.clone());
                match self.by_version.get(&key) {
                    Some(other) if *other != json => problems.push(format!(
                        "{case}: {} {name}: version {} already names different content",
                        t.short(),
                        r.version
                    )),
                    _ => {
                        self.by_version.insert(key, json.clone());
                    }
                }
                match self.by_json.get(&(t, json.clone())) {
                    Some((v, first)) if *v != r.version => problems.push(format!(
                        "{case}: {} {name}: version {} but identical content in {first} has {v}",
                        t.short(),
                        r.version
                    )),
                    Some(_) => {}
                    None => {
                        self.by_json
                            .insert((t, json), (r.version.clone(), case.to_string()));
                    }
                }
            }
        }
        problems
    }
}
