//! Snapshot building from fixtures: both rule APIs, endpoints, and the store's
//! last-good and reset semantics.

mod common;

use std::net::IpAddr;

use common::{mk_pod, mk_service, objects};
use pretty_assertions::assert_eq;
use rudder_model::{HttpAction, HttpRoute, Snapshot};
use rudder_registry::{load::load_str, Batch, Kind, ObjectKey, Store};

const HOST: &str = "reviews.default.svc.cluster.local";

fn snapshot(yaml: &str) -> Snapshot {
    let mut store = Store::new();
    for o in objects(yaml) {
        assert!(store.apply(o).is_empty());
    }
    store.snapshot()
}

fn platform() -> String {
    [
        mk_service("reviews", "http", 9080, "9080"),
        mk_pod("reviews-v1", "reviews", "v1", "10.0.0.1", true),
        mk_pod("reviews-v2", "reviews", "v2", "10.0.0.2", true),
    ]
    .join("---\n")
}

const DR: &str = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec:\n  host: reviews\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n";

fn unnamed(routes: &[HttpRoute]) -> Vec<HttpRoute> {
    routes
        .iter()
        .cloned()
        .map(|r| HttpRoute { name: None, ..r })
        .collect()
}

#[test]
fn route_rule_and_virtual_service_forms_of_99_1_are_equivalent() {
    let rr =
        std::fs::read_to_string(common::testdata("variants/reviews-99-1-route-rule.yaml")).unwrap();
    let vs = std::fs::read_to_string(common::testdata(
        "variants/reviews-99-1-virtual-service.yaml",
    ))
    .unwrap();
    let a = snapshot(&format!("{}---\n{DR}---\n{rr}", platform()));
    let b = snapshot(&format!("{}---\n{DR}---\n{vs}", platform()));
    assert_eq!(a.route_tables.len(), 1);
    assert_eq!(a.route_tables[0].hosts, vec![HOST.to_string()]);
    assert_eq!(
        unnamed(&a.route_tables[0].http),
        unnamed(&b.route_tables[0].http)
    );
    let HttpAction::Route(d) = &a.route_tables[0].http[0].action else {
        panic!("not a route")
    };
    let got: Vec<_> = d.iter().map(|d| (d.subset.as_deref(), d.weight)).collect();
    assert_eq!(got, vec![(Some("v1"), 99), (Some("v2"), 1)]);
    assert_eq!(
        a.destination_rules, b.destination_rules,
        "DestinationRule subsets were reused, none added"
    );
}

#[test]
fn route_rule_labels_without_destination_rule_get_synthetic_subsets() {
    let rr =
        std::fs::read_to_string(common::testdata("variants/reviews-99-1-route-rule.yaml")).unwrap();
    let s = snapshot(&format!("{}---\n{rr}", platform()));
    let p = s
        .destination_policy("default", HOST)
        .expect("a policy for the host");
    let subsets: Vec<_> = p
        .subsets
        .values()
        .map(|s| (s.name.as_str(), s.labels["version"].as_str()))
        .collect();
    assert_eq!(subsets, vec![("version-v1", "v1"), ("version-v2", "v2")]);
    assert!(s.diagnostics.is_empty(), "{:?}", s.diagnostics);
}

#[test]
fn route_rules_merge_by_precedence_and_source_service_becomes_labels() {
    let rr = std::fs::read_to_string(common::testdata(
        "variants/reviews-jason-v2-route-rule.yaml",
    ))
    .unwrap();
    let extra = "apiVersion: config.istio.io/v1alpha2\nkind: RouteRule\nmetadata: {name: from-productpage}\nspec:\n  destination: {name: reviews}\n  precedence: 3\n  match: {source: {name: productpage, labels: {version: v1}}, request: {headers: {uri: {prefix: /api}}}}\n  route: [{labels: {version: v2}}]\n";
    let s = snapshot(&format!(
        "{}---\n{}---\n{rr}---\n{extra}",
        platform(),
        mk_service("productpage", "http", 9080, "9080")
    ));
    assert_eq!(s.route_tables.len(), 1);
    let t = &s.route_tables[0];
    let names: Vec<_> = t.http.iter().map(|r| r.name.clone().unwrap()).collect();
    assert_eq!(
        names,
        vec!["from-productpage", "reviews-test-v2", "reviews-default"]
    );
    let m = &t.http[0].matches[0];
    assert_eq!(
        m.source_labels,
        [
            ("app".to_string(), "productpage".to_string()),
            ("version".into(), "v1".into())
        ]
        .into()
    );
    assert_eq!(
        m.uri,
        Some(rudder_model::StringMatch::Prefix("/api".into()))
    );
    assert_eq!(
        t.http[1].matches[0].headers["end-user"],
        rudder_model::StringMatch::Exact("jason".into())
    );
}

#[test]
fn endpoints_from_selector_and_from_endpoint_slice() {
    let s = snapshot(&platform());
    let eps: Vec<_> = s
        .endpoints_of(HOST, 9080)
        .iter()
        .map(|e| (e.address.to_string(), e.port, e.labels["version"].clone()))
        .collect();
    assert_eq!(
        eps,
        vec![
            ("10.0.0.1".into(), 9080, "v1".into()),
            ("10.0.0.2".into(), 9080, "v2".into())
        ]
    );

    let slice = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: reviews-abc, labels: {kubernetes.io/service-name: reviews}}\naddressType: IPv4\nports: [{name: http, port: 9090}]\nendpoints:\n- addresses: [10.0.0.2]\n  conditions: {ready: true}\n  targetRef: {kind: Pod, name: reviews-v2}\n- addresses: [10.0.0.9]\n  conditions: {ready: false}\n";
    let s = snapshot(&format!("{}---\n{slice}", platform()));
    let eps: Vec<_> = s
        .endpoints_of(HOST, 9080)
        .iter()
        .map(|e| (e.address.to_string(), e.port, e.pod_name.clone(), e.ready))
        .collect();
    assert_eq!(
        eps,
        vec![
            ("10.0.0.2".into(), 9090, Some("reviews-v2".into()), true),
            ("10.0.0.9".into(), 9090, None, false)
        ],
        "the slice wins over the selector"
    );
}

#[test]
fn named_target_port_resolves_through_container_ports() {
    let s = snapshot(
        &[
            mk_service("reviews", "http-web", 80, "web"),
            mk_pod("reviews-v1", "reviews", "v1", "10.0.0.1", true),
        ]
        .join("---\n"),
    );
    let e = &s.endpoints_of(HOST, 80)[0];
    assert_eq!(
        (e.address, e.port),
        ("10.0.0.1".parse::<IpAddr>().unwrap(), 8080)
    );
    assert_eq!(
        s.services[HOST].ports[0].protocol,
        rudder_model::Protocol::Http
    );
}

#[test]
fn not_ready_pods_are_not_ready_endpoints() {
    let s = snapshot(
        &[
            mk_service("reviews", "http", 9080, "9080"),
            mk_pod("reviews-v1", "reviews", "v1", "10.0.0.1", false),
        ]
        .join("---\n"),
    );
    assert!(!s.endpoints_of(HOST, 9080)[0].ready);
    assert!(!s.workloads["default/reviews-v1"].ready);
    assert_eq!(
        s.workload_by_ip(&"10.0.0.1".parse().unwrap()).unwrap().name,
        "reviews-v1"
    );
}

#[test]
fn last_good_version_keeps_serving_and_new_invalid_objects_are_skipped() {
    let good = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews}}]\n    timeout: 2s\n";
    let mut store = Store::new();
    for o in objects(&platform()) {
        store.apply(o);
    }
    store.apply(objects(good).remove(0));
    let before = store.snapshot();
    let bad = good.replace("2s", "2 seconds");
    let diags = store.apply(objects(&bad).remove(0));
    assert_eq!(diags[0].field, "spec.http[0].timeout");
    let after = store.snapshot();
    assert_eq!(
        after.version, before.version,
        "the last good version keeps serving"
    );
    assert_eq!(
        after.route_tables[0].http[0].timeout,
        Some(std::time::Duration::from_secs(2))
    );
    assert!(
        after
            .diagnostics
            .iter()
            .any(|d| d.field == "spec.http[0].timeout"),
        "the rejection is reported"
    );

    let new_bad = bad.replace("name: reviews}", "name: other}");
    store.apply(objects(&new_bad).remove(0));
    let s = store.snapshot();
    assert_eq!(s.route_tables.len(), 1, "a new invalid object is skipped");
    assert_eq!(s.version, before.version);

    // A fixed version replaces it and clears the report.
    store.apply(objects(&good.replace("2s", "3s")).remove(0));
    let s = store.snapshot();
    assert_eq!(
        s.route_tables[0].http[0].timeout,
        Some(std::time::Duration::from_secs(3))
    );
    assert_eq!(
        s.diagnostics
            .iter()
            .filter(|d| d.object == "VirtualService default/reviews")
            .count(),
        0
    );
}

#[test]
fn reset_removes_stale_objects_of_its_scope_only() {
    let mut store = Store::new();
    let a = load_str(&platform(), "a.yaml", "a.yaml");
    let b = load_str(DR, "b.yaml", "b.yaml");
    store.reset(
        "a.yaml",
        Batch {
            objects: a.objects,
            ..Default::default()
        },
    );
    store.reset(
        "b.yaml",
        Batch {
            objects: b.objects,
            ..Default::default()
        },
    );
    assert_eq!(store.objects().count(), 4);
    let a2 = load_str(
        &mk_service("reviews", "http", 9080, "9080"),
        "a.yaml",
        "a.yaml",
    );
    store.reset(
        "a.yaml",
        Batch {
            objects: a2.objects,
            ..Default::default()
        },
    );
    let keys: Vec<_> = store.objects().map(|o| o.key.clone()).collect();
    assert_eq!(
        keys,
        vec![
            ObjectKey::new(Kind::Service, "default", "reviews"),
            ObjectKey::new(Kind::DestinationRule, "default", "reviews")
        ]
    );
    // An unparseable file (report, no reset) keeps its objects.
    let broken = load_str("kind: [", "b.yaml", "b.yaml");
    store.report("b.yaml", broken.problems);
    assert!(store
        .get(&ObjectKey::new(Kind::DestinationRule, "default", "reviews"))
        .is_some());
    assert_eq!(store.diagnostics().len(), 1);
}

/// The README's rule: for sidecars, one VirtualService per host, the oldest
/// wins whole, each younger one naming the host gets a warning naming the
/// one in use (the generators take the first table: see pilot's
/// tests/rules_as_documented.rs for the routes a sidecar gets).
#[test]
fn virtual_services_for_one_host_the_oldest_wins_and_the_others_are_named() {
    let vs = |name: &str, ts: &str, extra: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, creationTimestamp: \"{ts}\"}}\nspec:\n  hosts: [ratings, reviews]\n{extra}  http:\n  - route: [{{destination: {{host: reviews}}}}]\n")
    };
    let s = snapshot(
        &[
            platform(),
            vs("a-new", "2024-02-01T00:00:00Z", ""),
            vs("z-old", "2024-01-01T00:00:00Z", ""),
        ]
        .join("---\n"),
    );
    let order: Vec<_> = s
        .route_tables_for(HOST, "default")
        .map(|t| t.source.name.as_str())
        .collect();
    assert_eq!(order, vec!["z-old", "a-new"], "the oldest first");
    let warnings: Vec<(&str, &str, &str)> = s
        .diagnostics
        .iter()
        .map(|d| (d.object.as_str(), d.field.as_str(), d.message.as_str()))
        .collect();
    let shadowed = |i: usize, host: &str| {
        (
            "VirtualService default/a-new",
            format!("spec.hosts[{i}]"),
            format!("{host} is already routed by the older VirtualService default/z-old: sidecars use one VirtualService per host (the oldest), so this one's routes for it are ignored"),
        )
    };
    let want = [
        shadowed(0, "ratings.default.svc.cluster.local"),
        shadowed(1, HOST),
    ];
    assert_eq!(
        warnings,
        want.iter()
            .map(|(o, f, m)| (*o, f.as_str(), m.as_str()))
            .collect::<Vec<_>>(),
        "one warning per shared host, on the younger rule only"
    );

    // Without creation times (files): namespace/name order, same rule.
    let s = snapshot(&[platform(), vs("b", "", ""), vs("a", "", "")].join("---\n"));
    assert_eq!(
        s.route_tables_for(HOST, "default")
            .next()
            .unwrap()
            .source
            .name,
        "a"
    );
    assert!(
        s.diagnostics
            .iter()
            .all(|d| d.object == "VirtualService default/b"),
        "{:?}",
        s.diagnostics
    );

    // Rules no namespace sees together do not shadow each other.
    let s = snapshot(
        &[
            platform(),
            vs("a-new", "2024-02-01T00:00:00Z", "  exportTo: [other]\n"),
            vs("z-old", "2024-01-01T00:00:00Z", "  exportTo: [\".\"]\n"),
        ]
        .join("---\n"),
    );
    assert_eq!(
        s.diagnostics,
        vec![],
        "exportTo . (default) and other do not overlap"
    );
    let s = snapshot(
        &[
            platform(),
            vs("a-new", "2024-02-01T00:00:00Z", "  exportTo: [default]\n"),
            vs("z-old", "2024-01-01T00:00:00Z", "  exportTo: [\"*\"]\n"),
        ]
        .join("---\n"),
    );
    assert_eq!(
        s.diagnostics.len(),
        2,
        "* and default overlap: {:?}",
        s.diagnostics
    );
}

#[test]
fn destination_rules_for_one_host_merge_as_istio_merges_them() {
    let dr = |name: &str, ts: &str, body: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, creationTimestamp: \"{ts}\"}}\nspec:\n  host: reviews\n{body}")
    };
    // The older rule: subsets v1, v2 and a load balancer; the newer: its own
    // v2 (other labels), v3 and another load balancer.
    let older = dr("a-old", "2024-01-01T00:00:00Z", "  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n");
    let newer = dr("b-new", "2024-02-01T00:00:00Z", "  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}\n  subsets:\n  - {name: v2, labels: {version: v2-canary}}\n  - {name: v3, labels: {version: v3}}\n");
    let s = snapshot(&[platform(), newer.clone(), older.clone()].join("---\n"));
    let p = s
        .destination_policy("default", HOST)
        .expect("a policy for the host");
    assert_eq!(p.source.name, "a-old");
    assert_eq!(
        p.subsets.keys().collect::<Vec<_>>(),
        ["v1", "v2", "v3"],
        "subsets merged"
    );
    assert_eq!(
        p.subsets["v2"].labels.get("version").map(String::as_str),
        Some("v2"),
        "the older v2 is kept"
    );
    assert_eq!(
        p.traffic_policy.load_balancer,
        Some(rudder_model::LoadBalancer::Random),
        "the older policy is kept"
    );
    let warnings: Vec<String> = s
        .diagnostics
        .iter()
        .map(|d| format!("{} {}: {}", d.object, d.field, d.message))
        .collect();
    assert!(
        warnings.iter().any(|w| w.contains("b-new spec.subsets: subset \"v2\" of reviews.default.svc.cluster.local is already defined by")),
        "{warnings:#?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("b-new spec.trafficPolicy:")),
        "{warnings:#?}"
    );

    // An older rule with subsets only: the newer rule's traffic policy applies.
    let older = dr(
        "a-old",
        "2024-01-01T00:00:00Z",
        "  subsets:\n  - {name: v1, labels: {version: v1}}\n",
    );
    let s = snapshot(&[platform(), older, newer].join("---\n"));
    let p = s
        .destination_policy("default", HOST)
        .expect("a policy for the host");
    assert_eq!(
        p.traffic_policy.load_balancer,
        Some(rudder_model::LoadBalancer::LeastRequest)
    );
    assert_eq!(p.subsets.keys().collect::<Vec<_>>(), ["v1", "v2", "v3"]);
}

#[test]
fn per_destination_headers_stay_with_their_destination() {
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n      weight: 90\n      headers: {request: {set: {x-canary: stable}}}\n    - destination: {host: reviews, subset: v2}\n      weight: 10\n      headers: {request: {set: {x-canary: canary}}, response: {remove: [x-internal]}}\n  - route:\n    - destination: {host: reviews, subset: v1}\n      headers: {request: {add: {x-single: one}}}\n";
    let s = snapshot(&[platform(), DR.to_string(), vs.to_string()].join("---\n"));
    let table = s.route_tables_for(HOST, "default").next().unwrap();
    let HttpAction::Route(dests) = &table.http[0].action else {
        panic!("a forwarding route")
    };
    assert_eq!(dests[0].headers.request.set["x-canary"], "stable");
    assert_eq!(dests[1].headers.request.set["x-canary"], "canary");
    assert_eq!(dests[1].headers.response.remove, ["x-internal"]);
    assert!(
        table.http[0].headers.request.is_empty(),
        "nothing route-wide"
    );
    // One destination: its edits are the route's.
    let HttpAction::Route(one) = &table.http[1].action else {
        panic!("a forwarding route")
    };
    assert!(one[0].headers.request.is_empty());
    assert_eq!(table.http[1].headers.request.add["x-single"], "one");
    assert!(
        s.diagnostics.iter().all(|d| !d.field.contains("headers")),
        "no warning: {:?}",
        s.diagnostics
    );
}

/// A build after pod changes alone keeps the configuration and equals a full
/// build: readiness flips, a pod added, a pod removed, a pod that moves to
/// another IP.
#[test]
fn an_endpoints_build_equals_a_full_build() {
    let vs = std::fs::read_to_string(common::testdata(
        "variants/reviews-99-1-virtual-service.yaml",
    ))
    .unwrap();
    let mut store = Store::new();
    for o in objects(&format!("{}---\n{DR}---\n{vs}", platform())) {
        assert!(store.apply(o).is_empty());
    }
    let mut previous = store.snapshot();
    assert!(rudder_registry::build::endpoints_rebuildable(&previous));
    let edits = [
        mk_pod("reviews-v1", "reviews", "v1", "10.0.0.1", false),
        mk_pod("reviews-v3", "reviews", "v3", "10.0.0.3", true),
        mk_pod("reviews-v2", "reviews", "v2", "10.0.0.9", true),
    ];
    for pod in edits {
        for o in objects(&pod) {
            assert!(store.apply(o).is_empty());
        }
        let fast = store
            .snapshot_after_endpoints(&previous, &store.diagnostics())
            .0;
        let full = store.snapshot();
        assert_eq!(fast, full);
        assert_ne!(fast.version, previous.version, "{pod}");
        assert_eq!(fast.config_version, previous.config_version);
        previous = full;
    }
    store.delete(&ObjectKey {
        kind: Kind::Pod,
        namespace: "default".into(),
        name: "reviews-v3".into(),
    });
    let fast = store
        .snapshot_after_endpoints(&previous, &store.diagnostics())
        .0;
    assert_eq!(fast, store.snapshot());
    assert!(!fast.workloads.contains_key("default/reviews-v3"));
}

/// An AuthorizationPolicy with an HTTP-only rule is warned about against the
/// pods it selects, so a pod change rebuilds everything.
#[test]
fn an_http_only_authorization_rule_makes_every_build_full() {
    let ap = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a, namespace: default}\nspec:\n  rules:\n  - to:\n    - operation: {methods: [GET]}\n";
    let s = snapshot(&format!("{}---\n{ap}", platform()));
    assert!(!rudder_registry::build::endpoints_rebuildable(&s));
    let plain = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a, namespace: default}\nspec:\n  rules:\n  - from:\n    - source: {namespaces: [default]}\n";
    let s = snapshot(&format!("{}---\n{plain}", platform()));
    assert!(rudder_registry::build::endpoints_rebuildable(&s));
    // Before the first build there is no configuration to keep.
    assert!(!rudder_registry::build::endpoints_rebuildable(
        &Snapshot::default()
    ));
}

#[test]
fn dual_stack_services_and_pods_keep_every_address() {
    let s = snapshot(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec:\n  clusterIP: 10.96.0.9\n  clusterIPs: [10.96.0.9, \"fd00:10::9\"]\n  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: web-0, namespace: default, labels: {app: web}}\nstatus:\n  phase: Running\n  podIP: 10.0.0.9\n  podIPs: [{ip: 10.0.0.9}, {ip: \"fd00::9\"}]\n  conditions: [{type: Ready, status: \"True\"}]\n",
    );
    let svc = &s.services["web.default.svc.cluster.local"];
    let vips: Vec<IpAddr> = svc.vips().collect();
    assert_eq!(
        vips,
        [
            "10.96.0.9".parse::<IpAddr>().unwrap(),
            "fd00:10::9".parse().unwrap()
        ]
    );
    let pod = &s.workloads["default/web-0"];
    assert_eq!(
        pod.ips,
        [
            "10.0.0.9".parse::<IpAddr>().unwrap(),
            "fd00::9".parse().unwrap()
        ]
    );
    let mut store = Store::new();
    let bad = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec:\n  clusterIP: 10.96.0.9\n  clusterIPs: [10.96.0.9, nope]\n  ports: [{name: http, port: 80}]\n";
    let diags: Vec<_> = objects(bad)
        .into_iter()
        .flat_map(|o| store.apply(o))
        .collect();
    assert!(
        diags
            .iter()
            .any(|d| d.field == "spec.clusterIPs[1]" && d.message == "invalid IP address \"nope\""),
        "{diags:?}"
    );
}

/// A headless Service's endpoints are in its listeners (one chain per pod
/// address), so they enter the configuration's version: a pod change there
/// changes it (the generators build anew), and the endpoints build still
/// equals a full one.
#[test]
fn headless_endpoints_are_configuration() {
    let headless = mk_service("reviews", "tcp", 9080, "9080").replace("198.19.0.1", "None");
    assert!(headless.contains("clusterIP: None"), "{headless}");
    let mut store = Store::new();
    let platform = [
        headless,
        mk_pod("reviews-v1", "reviews", "v1", "10.0.0.1", true),
    ]
    .join("---\n");
    for o in objects(&platform) {
        assert!(store.apply(o).is_empty());
    }
    let previous = store.snapshot();
    assert!(previous.has_headless());
    for o in objects(&mk_pod("reviews-v2", "reviews", "v2", "10.0.0.2", true)) {
        assert!(store.apply(o).is_empty());
    }
    let fast = store
        .snapshot_after_endpoints(&previous, &store.diagnostics())
        .0;
    assert_eq!(fast, store.snapshot());
    assert_ne!(fast.config_version, previous.config_version);
}
