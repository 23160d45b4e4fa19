//! What README.md says pilot does, held to it:
//!
//! - `pilot validate` names each object of a routing API Rudder does not serve
//!   (a Gateway API UDPRoute, Contour's ExtensionService, Emissary's Host) on
//!   its own `unsupported:` line and exits 0 when nothing else is wrong, 1
//!   only for errors (docs/architecture.md, Contracts → Command lines);
//!   Contour's HTTPProxy and Emissary's Mapping are served, so they say
//!   nothing when valid and name the field Rudder does not translate.
//! - Two VirtualServices for one host: a sidecar gets the oldest one whole,
//!   and the other is named in a warning.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::Arc,
};

use rudder_model::{NodeId, NodeMetadata, Severity};
use rudder_registry::{
    load::{collect_files, load_file},
    Store,
};
use rudder_xds::{to_json, Generator};
use serde_json::Value;

const REVIEWS: &str = "reviews.default.svc.cluster.local";

fn pilot_validate(path: &Path) -> (Vec<String>, Option<i32>) {
    let Output { status, stdout, .. } = Command::new(env!("CARGO_BIN_EXE_pilot"))
        .arg("validate")
        .arg("-f")
        .arg(path)
        .output()
        .expect("run pilot validate");
    let lines = String::from_utf8_lossy(&stdout)
        .lines()
        .map(str::to_string)
        .collect();
    (lines, status.code())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write fixture");
    path
}

#[test]
fn pilot_validate_names_other_routing_apis_and_exits_as_the_readme_says() {
    let dir = tempfile::tempdir().unwrap();
    let route = write(
        dir.path(),
        "udproute.yaml",
        "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: UDPRoute\nmetadata: {name: web, namespace: shop}\nspec:\n  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{name: web, port: 80}]}]\n",
    );
    let proxy = write(
        dir.path(),
        "extension.yaml",
        "# Contour\napiVersion: projectcontour.io/v1alpha1\nkind: ExtensionService\nmetadata: {name: web}\nspec:\n  services: [{name: web, port: 80}]\n",
    );
    let mapping = write(
        dir.path(),
        "mapping.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: unrelated}\ndata: {a: b}\n---\napiVersion: getambassador.io/v3alpha1\nkind: Host\nmetadata: {name: web, namespace: shop}\nspec: {hostname: web.example.com}\n",
    );
    // Served kinds of those projects say nothing when valid (their Services exist).
    write(
        dir.path(),
        "served.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {ports: [{port: 80}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80}]}\n---\n\
         apiVersion: projectcontour.io/v1\nkind: HTTPProxy\nmetadata: {name: web}\nspec:\n  virtualhost: {fqdn: web.example.com}\n  routes: [{services: [{name: web, port: 80}]}]\n---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: web, namespace: shop}\nspec: {hostname: \"*\", prefix: /, service: web:80}\n",
    );
    let (lines, code) = pilot_validate(dir.path());
    assert_eq!(
        lines,
        vec![
            format!("unsupported: {}:2: ExtensionService default/web: ExtensionService (projectcontour.io/v1alpha1) is part of Contour's API, which Rudder does not serve; it has no effect on traffic", proxy.display()),
            format!("unsupported: {}:6: Host shop/web: Host (getambassador.io/v3alpha1) is part of Emissary-ingress's API, which Rudder does not serve; it has no effect on traffic", mapping.display()),
            format!("unsupported: {}:1: UDPRoute shop/web: UDPRoute (gateway.networking.k8s.io/v1alpha2) is part of the Gateway API, which Rudder does not serve yet; it has no effect on traffic", route.display()),
        ],
        "one line per object in file order, the ConfigMap silent"
    );
    assert_eq!(code, Some(0), "only unsupported objects: exit 0");

    // An error alongside them: exit 1, the unsupported lines still there.
    write(
        dir.path(),
        "vs.yaml",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bad}\nspec:\n  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews}, weight: -1}]\n",
    );
    let (lines, code) = pilot_validate(dir.path());
    assert_eq!(code, Some(1), "{lines:#?}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("unsupported: "))
            .count(),
        3,
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("error: ") && l.contains("weight -1 must not be negative")),
        "{lines:#?}"
    );
}

/// platform.yaml of the goldens (services, pods, DestinationRules with
/// subsets v1..v3) and two VirtualServices for reviews: the older sends to
/// v1, the younger (named first, so name order would pick it) to v3.
fn two_virtual_services(dir: &Path) {
    let platform =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/golden/inputs/platform.yaml");
    std::fs::copy(platform, dir.join("platform.yaml")).unwrap();
    let vs = |name: &str, ts: &str, subset: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: default, creationTimestamp: \"{ts}\"}}\nspec:\n  hosts: [reviews]\n  http:\n  - route: [{{destination: {{host: reviews, subset: {subset}}}}}]\n")
    };
    write(
        dir,
        "a-young.yaml",
        &vs("a-young", "2024-06-01T00:00:00Z", "v3"),
    );
    write(
        dir,
        "z-old.yaml",
        &vs("z-old", "2024-01-01T00:00:00Z", "v1"),
    );
}

#[test]
fn two_virtual_services_for_one_host_the_oldest_wins_and_the_other_is_named() {
    let dir = tempfile::tempdir().unwrap();
    two_virtual_services(dir.path());

    // What a sidecar gets: the store and generator `pilot serve` uses.
    let mut store = Store::new();
    for file in collect_files(dir.path()).unwrap() {
        let loaded = load_file(&file).unwrap();
        store.reset(&file.display().to_string(), loaded.into_batch());
    }
    let snapshot = Arc::new(store.snapshot());
    let node = NodeId::sidecar("198.18.0.10".parse().unwrap(), "productpage-v1", "default");
    let proxy = rudder_xds::resolve_proxy(&snapshot, node, &NodeMetadata::default());
    let json = to_json(&Generator::new(snapshot.clone()).generate(&proxy));
    // reviews has a VIP: its routes are in its own configuration.
    let vhosts = json["rds"][format!("{REVIEWS}:9080")]["virtualHosts"]
        .as_array()
        .expect("route configuration reviews:9080");
    let reviews = vhosts
        .iter()
        .find(|v| v["name"] == format!("{REVIEWS}:9080"))
        .expect("a virtual host for reviews");
    let clusters: Vec<&Value> = reviews["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["route"]["cluster"])
        .collect();
    assert_eq!(
        clusters,
        vec![&Value::from(format!("outbound|9080|v1|{REVIEWS}"))],
        "only the oldest VirtualService's route, whole: {reviews}"
    );

    // What the user is told: one warning, on the younger rule, naming the older.
    let warnings: Vec<String> = snapshot
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(|d| format!("{}: {}: {}", d.object, d.field, d.message))
        .collect();
    assert_eq!(
        warnings,
        vec![format!("VirtualService default/a-young: spec.hosts[0]: {REVIEWS} is already routed by the older VirtualService default/z-old: sidecars use one VirtualService per host (the oldest), so this one's routes for it are ignored")]
    );

    // `pilot validate` says the same and exits 0 (a warning is no error).
    let (lines, code) = pilot_validate(dir.path());
    assert_eq!(
        lines,
        vec![format!(
            "warning: {}:1: {}",
            dir.path().join("a-young.yaml").display(),
            warnings[0]
        )]
    );
    assert_eq!(code, Some(0));
}

#[test]
fn pilot_validate_names_the_httpproxy_and_mapping_fields_rudder_does_not_translate() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "edge.yaml",
        "apiVersion: projectcontour.io/v1\nkind: HTTPProxy\nmetadata: {name: web, namespace: shop}\nspec:\n  virtualhost: {fqdn: web.example.com}\n  routes:\n  - services: [{name: web, port: 80}]\n    loadBalancerPolicy: {strategy: Cookie}\n---\napiVersion: getambassador.io/v3alpha1\nkind: Mapping\nmetadata: {name: web, namespace: shop}\nspec: {prefix: /, service: \"https://web:443\"}\n",
    );
    let (lines, code) = pilot_validate(dir.path());
    assert_eq!(code, Some(1), "{lines:#?}");
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].starts_with(&format!("error: {}:", file.display()))
            && lines[0].contains("HTTPProxy shop/web: spec.routes[0]")
            && lines[0].contains("loadBalancerPolicy"),
        "{lines:#?}"
    );
    assert!(
        lines[1].contains("Mapping shop/web: spec.service")
            && lines[1].contains("not served: scheme https://"),
        "{lines:#?}"
    );
}
