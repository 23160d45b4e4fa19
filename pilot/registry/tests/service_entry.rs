//! ServiceEntry and WorkloadEntry in the registry: every refusal with its
//! path and reason, the versions read, what a host compiles to (VIPs,
//! ports, resolution, location), endpoints from STATIC entries, selected
//! pods and WorkloadEntries (also through a Kubernetes Service selector),
//! and `outboundTrafficPolicy` mesh-wide and per Sidecar.

mod common;

use common::{errors, objects, validate, warnings};
use pretty_assertions::assert_eq;
use rudder_model::{Labels, Location, OutboundMode, Resolution, Scope, Snapshot};
use rudder_registry::Store;

const SE: &str = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: se, namespace: default}\nspec:\n";
const WE: &str = "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: we, namespace: default}\nspec:\n";

fn snapshot(yaml: &str) -> Snapshot {
    let mut store = Store::new();
    for o in objects(yaml) {
        assert!(store.apply(o).is_empty());
    }
    store.snapshot()
}

#[test]
fn service_entry_errors_name_the_field_and_why() {
    let p80 = "  ports: [{number: 80, name: http, protocol: HTTP}]\n";
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("no hosts", format!("{SE}  hosts: []\n{p80}"), "spec.hosts", "at least one host is required"),
        ("bad host", format!("{SE}  hosts: [\"a..b\"]\n{p80}"), "spec.hosts[0]", "\"a..b\" is not a DNS name (`api.example.com`, `*.example.com`)"),
        ("host *", format!("{SE}  hosts: [\"*\"]\n{p80}"), "spec.hosts[0]", "the host `*` would take every destination; name a domain (`*.example.com`)"),
        ("bad address", format!("{SE}  hosts: [a.example.com]\n  addresses: [not-an-ip]\n{p80}"), "spec.addresses[0]", "\"not-an-ip\" is not an IP address or CIDR"),
        ("CIDR host bits", format!("{SE}  hosts: [a.example.com]\n  addresses: [10.0.0.1/24]\n{p80}"), "spec.addresses[0]", "CIDR \"10.0.0.1/24\" has host bits set: write its network address"),
        ("no ports", format!("{SE}  hosts: [a.example.com]\n"), "spec.ports", "at least one port is required"),
        ("bad port", format!("{SE}  hosts: [a.example.com]\n  ports: [{{number: 70000, name: http}}]\n"), "spec.ports[0].number", "port 70000 must be between 1 and 65535"),
        ("port name", format!("{SE}  hosts: [a.example.com]\n  ports: [{{number: 80, name: Http}}]\n"), "spec.ports[0].name", "port name \"Http\" must be a DNS label (`http`, `tls-api`)"),
        ("duplicate port", format!("{SE}  hosts: [a.example.com]\n  ports: [{{number: 80, name: a}}, {{number: 80, name: b}}]\n"), "spec.ports[1].number", "port 80 is already defined"),
        ("protocol", format!("{SE}  hosts: [a.example.com]\n  ports: [{{number: 53, name: dns, protocol: UDP}}]\n"), "spec.ports[0].protocol", "unknown protocol \"UDP\": expected one of HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP, TLS"),
        ("location", format!("{SE}  hosts: [a.example.com]\n{p80}  location: MESH_NEARBY\n"), "spec.location", "unknown location \"MESH_NEARBY\": expected MESH_EXTERNAL or MESH_INTERNAL"),
        ("resolution", format!("{SE}  hosts: [a.example.com]\n{p80}  resolution: MAGIC\n"), "spec.resolution", "unknown resolution \"MAGIC\": expected NONE, STATIC, DNS or DNS_ROUND_ROBIN"),
        ("NONE with endpoints", format!("{SE}  hosts: [a.example.com]\n{p80}  endpoints: [{{address: 1.2.3.4}}]\n"), "spec.endpoints", "no endpoints may be given with resolution NONE (connections keep their destination); use STATIC or DNS"),
        ("STATIC without endpoints", format!("{SE}  hosts: [a.example.com]\n{p80}  resolution: STATIC\n"), "spec.endpoints", "resolution STATIC needs endpoints (or a workloadSelector)"),
        ("STATIC name", format!("{SE}  hosts: [a.example.com]\n{p80}  resolution: STATIC\n  endpoints: [{{address: b.example.com}}]\n"), "spec.endpoints[0].address", "\"b.example.com\" is not an IP address: STATIC endpoints are IP addresses (use resolution DNS for names)"),
        ("DNS wildcard", format!("{SE}  hosts: [\"*.example.com\"]\n{p80}  resolution: DNS\n"), "spec.hosts[0]", "wildcard host \"*.example.com\" cannot be resolved by DNS: give endpoints, or use resolution NONE"),
        ("DNS_ROUND_ROBIN two", format!("{SE}  hosts: [a.example.com]\n{p80}  resolution: DNS_ROUND_ROBIN\n  endpoints: [{{address: b.example.com}}, {{address: c.example.com}}]\n"), "spec.endpoints", "resolution DNS_ROUND_ROBIN takes at most one endpoint (Envoy's LOGICAL_DNS)"),
        ("endpoint port name", format!("{SE}  hosts: [a.example.com]\n{p80}  resolution: STATIC\n  endpoints: [{{address: 1.2.3.4, ports: {{grpc: 9000}}}}]\n"), "spec.endpoints[0].ports.grpc", "the ServiceEntry has no port named \"grpc\""),
        ("endpoint weight", format!("{SE}  hosts: [a.example.com]\n{p80}  resolution: STATIC\n  endpoints: [{{address: 1.2.3.4, weight: -1}}]\n"), "spec.endpoints[0].weight", "weight -1 must be between 0 and 4294967295"),
        ("endpoint locality", format!("{SE}  hosts: [a.example.com]\n{p80}  resolution: STATIC\n  endpoints: [{{address: 1.2.3.4, locality: a//b}}]\n"), "spec.endpoints[0].locality", "locality \"a//b\" must be region, region/zone or region/zone/subzone"),
        ("unix socket", format!("{SE}  hosts: [a.example.com]\n{p80}  resolution: DNS\n  endpoints: [{{address: \"unix:///var/run/a.sock\"}}]\n"), "spec.endpoints[0].address", "Unix domain socket endpoints are not served (sidecars proxy TCP)"),
        ("selector and endpoints", format!("{SE}  hosts: [a.example.com]\n{p80}  resolution: STATIC\n  endpoints: [{{address: 1.2.3.4}}]\n  workloadSelector: {{labels: {{app: a}}}}\n"), "spec.workloadSelector", "only one of workloadSelector and endpoints may be set"),
        ("selector with NONE", format!("{SE}  hosts: [a.example.com]\n{p80}  workloadSelector: {{labels: {{app: a}}}}\n"), "spec.workloadSelector", "selected workloads are endpoints only with resolution STATIC (NONE keeps the client's destination; DNS resolves names)"),
        ("exportTo", format!("{SE}  hosts: [a.example.com]\n{p80}  exportTo: [Bad_NS]\n"), "spec.exportTo[0]", "\"Bad_NS\" is not `.`, `*`, `~` or a namespace name"),
        ("unknown field", format!("{SE}  hosts: [a.example.com]\n{p80}  resolutoin: DNS\n"), "spec", ""),
        ("WorkloadEntry name", format!("{WE}  address: vm.example.com\n"), "spec.address", "\"vm.example.com\" is not an IP address: Rudder serves WorkloadEntries by IP (STATIC endpoints)"),
        ("WorkloadEntry port", format!("{WE}  address: 10.0.0.1\n  ports: {{http: 0}}\n"), "spec.ports.http", "port 0 must be between 1 and 65535"),
    ];
    for (name, yaml, field, message) in cases {
        let r = validate(&[("rule.yaml", &yaml)]);
        let errs = errors(&r);
        assert_eq!(errs.len(), 1, "{name}: {:#?}", r.diagnostics);
        if name == "unknown field" {
            assert!(
                errs[0].message.contains("resolutoin"),
                "{name}: {:?}",
                errs[0]
            );
            continue;
        }
        assert_eq!(
            (errs[0].field.as_str(), errs[0].message.as_str()),
            (field, message),
            "{name}"
        );
    }
}

#[test]
fn every_version_is_read_and_network_is_warned() {
    for v in ["v1", "v1beta1", "v1alpha3"] {
        let yaml = format!("apiVersion: networking.istio.io/{v}\nkind: ServiceEntry\nmetadata: {{name: se}}\nspec:\n  hosts: [a.example.com]\n  ports: [{{number: 443, name: https, protocol: HTTPS}}]\n  resolution: DNS\n---\napiVersion: networking.istio.io/{v}\nkind: WorkloadEntry\nmetadata: {{name: we}}\nspec:\n  address: 10.0.0.1\n");
        let r = validate(&[("se.yaml", &yaml)]);
        assert!(r.diagnostics.is_empty(), "{v}: {:#?}", r.diagnostics);
        assert_eq!(r.objects, 2, "{v}");
        assert!(r.unsupported().is_empty(), "{v}");
    }
    let yaml = format!("{WE}  address: 10.0.0.1\n  network: west\n");
    let r = validate(&[("we.yaml", &yaml)]);
    let w = warnings(&r);
    assert_eq!(w.len(), 1, "{:#?}", r.diagnostics);
    assert_eq!(w[0].field, "spec.network");
}

#[test]
fn hosts_compile_to_services_with_their_resolution_and_endpoints() {
    let yaml = format!(
        "{SE}  hosts: [a.example.com, b.example.com]\n  addresses: [240.0.0.1, 240.0.0.2/32]\n  ports: [{{number: 80, name: http, protocol: HTTP, targetPort: 8080}}, {{number: 443, name: tls, protocol: TLS}}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  endpoints:\n  - {{address: 10.0.0.1, ports: {{http: 9000}}, serviceAccount: api, weight: 2}}\n  - {{address: 10.0.0.2, labels: {{version: v2}}}}\n"
    );
    let s = snapshot(&yaml);
    let a = &s.services["a.example.com"];
    assert_eq!(a.cluster_ip, Some("240.0.0.1".parse().unwrap()));
    assert_eq!(
        a.other_vips,
        vec!["240.0.0.2".parse::<std::net::IpAddr>().unwrap()]
    );
    let e = a.entry.as_ref().unwrap();
    assert!(e.cidrs.is_empty());
    assert_eq!(
        (e.location, e.resolution),
        (Location::MeshInternal, Resolution::Static)
    );
    assert!(s.services.contains_key("b.example.com"));
    let eps = s.endpoints_of("a.example.com", 80);
    let ports: Vec<(String, u16, u32, bool)> = eps
        .iter()
        .map(|e| {
            (
                e.address.to_string(),
                e.port,
                e.weight,
                e.labels.contains_key("security.istio.io/tlsMode"),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("10.0.0.1".to_string(), 9000, 2, true),
            ("10.0.0.2".to_string(), 8080, 0, false)
        ],
        "a service account makes an endpoint meshed (Istio's tlsMode)"
    );
    assert_eq!(s.endpoints_of("a.example.com", 443)[1].port, 443);
}

#[test]
fn cidr_addresses_are_networks_not_vips() {
    let yaml = format!(
        "{SE}  hosts: [cache.example.com]\n  addresses: [10.40.0.0/16, 240.0.0.9/32]\n  ports: [{{number: 6379, name: tcp, protocol: TCP}}]\n"
    );
    let s = snapshot(&yaml);
    let svc = &s.services["cache.example.com"];
    assert_eq!(svc.cluster_ip, Some("240.0.0.9".parse().unwrap()));
    assert_eq!(
        svc.entry.as_ref().unwrap().cidrs,
        vec![("10.40.0.0".parse::<std::net::IpAddr>().unwrap(), 16)]
    );
}

#[test]
fn workload_selectors_pick_pods_and_workload_entries() {
    let yaml = format!(
        "{SE}  hosts: [vm.internal]\n  ports: [{{number: 9090, name: http, targetPort: 8080}}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  workloadSelector: {{labels: {{app: vm}}}}\n---\n{WE}  address: 10.1.0.1\n  labels: {{app: vm}}\n  serviceAccount: vm\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: other, namespace: default}}\nspec: {{address: 10.1.0.2, labels: {{app: other}}, ports: {{http: 7070}}}}\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: elsewhere, namespace: prod}}\nspec: {{address: 10.1.0.3, labels: {{app: vm}}}}\n---\n{}---\napiVersion: v1\nkind: Service\nmetadata: {{name: other, namespace: default}}\nspec:\n  clusterIP: 198.19.0.50\n  selector: {{app: other}}\n  ports: [{{name: http, port: 80, targetPort: 7000}}]\n",
        common::mk_pod("vm-pod", "vm", "v1", "198.18.0.50", true)
    );
    let s = snapshot(&yaml);
    let addrs = |host: &str, port: u16| -> Vec<(String, u16)> {
        s.endpoints_of(host, port)
            .iter()
            .map(|e| (e.address.to_string(), e.port))
            .collect()
    };
    assert_eq!(
        addrs("vm.internal", 9090),
        [
            ("10.1.0.1".to_string(), 8080),
            ("198.18.0.50".to_string(), 8080)
        ],
        "the namespace's pod and WorkloadEntry, not prod's"
    );
    assert_eq!(
        addrs("other.default.svc.cluster.local", 80),
        [("10.1.0.2".to_string(), 7070)],
        "a Kubernetes Service selector picks WorkloadEntries too (their port by name)"
    );
}

#[test]
fn a_host_defined_twice_keeps_the_first_definition() {
    let yaml = format!(
        "{}---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: clash, namespace: default}}\nspec:\n  hosts: [reviews.default.svc.cluster.local]\n  ports: [{{number: 80, name: http}}]\n",
        common::mk_service("reviews", "http", 9080, "9080")
    );
    let mut store = Store::new();
    for o in objects(&yaml) {
        store.apply(o);
    }
    let s = store.snapshot();
    assert!(s.services["reviews.default.svc.cluster.local"]
        .entry
        .is_none());
    let w: Vec<_> = s
        .diagnostics
        .iter()
        .filter(|d| d.field == "spec.hosts[0]")
        .map(|d| d.message.clone())
        .collect();
    assert_eq!(
        w,
        ["host reviews.default.svc.cluster.local is already defined by Service default/reviews; that definition is kept"]
    );
}

#[test]
fn outbound_traffic_policy_mesh_wide_and_per_sidecar() {
    let mesh = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: rudder-mesh, namespace: rudder-system}\ndata:\n  mesh: |\n    outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n";
    let sidecar = |ns: &str, mode: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: default, namespace: {ns}}}\nspec:\n  outboundTrafficPolicy: {{mode: {mode}}}\n")
    };
    let s = snapshot(&[mesh.to_string(), sidecar("open", "ALLOW_ANY")].join("---\n"));
    let mode = |s: &Snapshot, ns: &str| Scope::of(s, ns, &Labels::new()).outbound;
    assert_eq!(mode(&s, "default"), OutboundMode::RegistryOnly);
    assert_eq!(mode(&s, "open"), OutboundMode::AllowAny, "the Sidecar wins");
    let s = snapshot(&sidecar("closed", "REGISTRY_ONLY"));
    assert_eq!(mode(&s, "closed"), OutboundMode::RegistryOnly);
    assert_eq!(
        mode(&s, "default"),
        OutboundMode::AllowAny,
        "Istio's default"
    );
    let r = validate(&[("s.yaml", &sidecar("closed", "REGISTRY_ONLY"))]);
    assert!(r.diagnostics.is_empty(), "{:#?}", r.diagnostics);
}
