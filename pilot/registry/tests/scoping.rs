//! Per-proxy scoping in the registry: Sidecar validation (every refused field
//! with its path), Sidecar selection precedence, `exportTo`, Istio's
//! DestinationRule lookup order, and mesh config `discoverySelectors`.

mod common;

use common::{errors, objects, validate, warnings};
use pretty_assertions::assert_eq;
use rudder_model::{scope::select_sidecar, Labels, Scope, Snapshot};
use rudder_registry::Store;

const SC_HEAD: &str = "apiVersion: networking.istio.io/v1beta1\nkind: Sidecar\nmetadata: {name: s, namespace: default}\nspec:\n";

fn snapshot(yaml: &str) -> Snapshot {
    let mut store = Store::new();
    for o in objects(yaml) {
        assert!(store.apply(o).is_empty());
    }
    store.snapshot()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn service(name: &str, ns: &str, ip: &str, annotations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}, annotations: {{{annotations}}}}}\nspec:\n  clusterIP: {ip}\n  selector: {{app: {name}}}\n  ports:\n  - {{name: http, port: 9080}}\n"
    )
}

fn sidecar(name: &str, ns: &str, created: &str, selector: Option<&str>, hosts: &str) -> String {
    let sel = selector
        .map(|s| format!("  workloadSelector: {{labels: {{{s}}}}}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: {name}, namespace: {ns}, creationTimestamp: \"{created}\"}}\nspec:\n{sel}  egress:\n  - hosts: [{hosts}]\n"
    )
}

fn dr(name: &str, ns: &str, host: &str, export_to: &str, lb: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  host: {host}\n  exportTo: [{export_to}]\n  trafficPolicy: {{loadBalancer: {{simple: {lb}}}}}\n"
    )
}

#[test]
fn sidecar_fields_not_served_are_refused_with_path_and_reason() {
    let not_served = |what: &str| {
        format!("Rudder does not serve {what}; remove the field (the Sidecar is not applied while it is set)")
    };
    let cases: Vec<(&str, String, &str, String)> = vec![
        ("ingress", format!("{SC_HEAD}  ingress: [{{port: {{number: 9080}}}}]\n  egress: [{{hosts: [./*]}}]\n"), "spec.ingress", not_served("inbound listeners")),
        ("egress port", format!("{SC_HEAD}  egress:\n  - hosts: [./*]\n  - port: {{number: 9080, protocol: HTTP, name: http}}\n    hosts: [\"*/*\"]\n"), "spec.egress[1].port", not_served("port-specific egress listeners (every egress listener covers all ports)")),
        ("egress bind", format!("{SC_HEAD}  egress: [{{bind: 127.0.0.1, hosts: [./*]}}]\n"), "spec.egress[0].bind", not_served("egress bind addresses")),
        ("egress captureMode", format!("{SC_HEAD}  egress: [{{captureMode: NONE, hosts: [./*]}}]\n"), "spec.egress[0].captureMode", not_served("capture modes")),
        ("inboundConnectionPool", format!("{SC_HEAD}  egress: [{{hosts: [./*]}}]\n  inboundConnectionPool: {{http: {{http1MaxPendingRequests: 1}}}}\n"), "spec.inboundConnectionPool", not_served("inbound connection pool settings")),
        ("egressProxy", format!("{SC_HEAD}  egress: [{{hosts: [./*]}}]\n  outboundTrafficPolicy: {{mode: ALLOW_ANY, egressProxy: {{host: egress}}}}\n"), "spec.outboundTrafficPolicy.egressProxy", not_served("egress proxies")),
        ("unknown mode", format!("{SC_HEAD}  egress: [{{hosts: [./*]}}]\n  outboundTrafficPolicy: {{mode: SOMETIMES}}\n"), "spec.outboundTrafficPolicy.mode", "unknown mode \"SOMETIMES\": expected ALLOW_ANY or REGISTRY_ONLY".into()),
        ("host without namespace", format!("{SC_HEAD}  egress: [{{hosts: [./*, reviews.default.svc.cluster.local]}}]\n"), "spec.egress[0].hosts[1]", "\"reviews.default.svc.cluster.local\" must be namespace/dnsName (`./*`, `ns/*`, `*/host`, `~/*`)".into()),
        ("bad namespace", format!("{SC_HEAD}  egress: [{{hosts: [Prod/*]}}]\n"), "spec.egress[0].hosts[0]", "\"Prod\" is not `*`, `.`, `~` or a namespace name".into()),
        ("inner wildcard", format!("{SC_HEAD}  egress: [{{hosts: [\"*/a.*.com\"]}}]\n"), "spec.egress[0].hosts[0]", "host \"a.*.com\" must be `*`, `*.suffix` or a hostname (the wildcard only leftmost)".into()),
        ("empty configuration", format!("{SC_HEAD}  workloadSelector: {{labels: {{app: a}}}}\n"), "spec", "empty configuration: set egress hosts (or outboundTrafficPolicy)".into()),
        ("empty hosts", format!("{SC_HEAD}  egress: [{{hosts: []}}]\n"), "spec.egress[0].hosts", "at least one host is required".into()),
        ("empty selector", format!("{SC_HEAD}  workloadSelector: {{labels: {{}}}}\n  egress: [{{hosts: [./*]}}]\n"), "spec.workloadSelector.labels", "a workload selector needs at least one label (omit it for the namespace default)".into()),
        ("service exportTo", service("a", "default", "198.19.0.1", "networking.istio.io/exportTo: \"., Bad_NS\""), "metadata.annotations[\"networking.istio.io/exportTo\"][1]", "\"Bad_NS\" is not `.`, `*`, `~` or a namespace name".into()),
        ("dr exportTo ~ with others", dr("r", "default", "a", "\"~\", \".\"", "RANDOM"), "spec.exportTo", "`~` (exported nowhere) cannot be combined with other entries".into()),
        ("mesh outboundTrafficPolicy", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: rudder-mesh, namespace: rudder-system}\ndata:\n  mesh: |\n    outboundTrafficPolicy: {mode: ALLOW_SOME}\n".into(), "data.mesh.outboundTrafficPolicy.mode", "unknown mode \"ALLOW_SOME\": expected ALLOW_ANY or REGISTRY_ONLY".into()),
        ("discoverySelectors operator", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: rudder-mesh, namespace: rudder-system}\ndata:\n  mesh: |\n    discoverySelectors:\n    - matchExpressions: [{key: team, operator: Has}]\n".into(), "data.mesh.discoverySelectors[0].matchExpressions[0].operator", "unknown operator \"Has\": expected one of In, NotIn, Exists, DoesNotExist".into()),
    ];
    for (name, yaml, field, message) in cases {
        let r = validate(&[("rule.yaml", &yaml)]);
        let errs = errors(&r);
        assert_eq!(errs.len(), 1, "{name}: {:#?}", r.diagnostics);
        assert_eq!(
            (errs[0].field.as_str(), errs[0].message.as_str()),
            (field, message.as_str()),
            "{name}"
        );
    }
}

#[test]
fn every_sidecar_version_and_host_form_is_accepted() {
    for v in ["v1", "v1beta1", "v1alpha3"] {
        let yaml = format!("apiVersion: networking.istio.io/{v}\nkind: Sidecar\nmetadata: {{name: s}}\nspec:\n  workloadSelector: {{labels: {{app: a}}}}\n  egress:\n  - hosts: [./*, prod/*, \"*/reviews.prod.svc.cluster.local\", \"~/*\", \"*/*.example.com\", \"*/*\"]\n  outboundTrafficPolicy: {{mode: ALLOW_ANY}}\n");
        let r = validate(&[("s.yaml", &yaml)]);
        assert!(r.diagnostics.is_empty(), "{v}: {:#?}", r.diagnostics);
        assert_eq!(r.objects, 1, "{v}");
    }
}

#[test]
fn a_sidecar_without_egress_imports_everything_and_the_root_default_means_each_namespace() {
    let no_egress = format!("{SC_HEAD}  outboundTrafficPolicy: {{mode: ALLOW_ANY}}\n");
    let yaml = [
        service("a", "prod", "198.19.0.1", ""),
        service("b", "dev", "198.19.0.2", ""),
        service("c", "qa", "198.19.0.3", ""),
        no_egress,
        sidecar("root", "rudder-system", "2024-01-01T00:00:00Z", None, "./*"),
    ]
    .join("---\n");
    let s = snapshot(&yaml);
    let hosts = |ns: &str| -> Vec<String> {
        Scope::of(&s, ns, &Labels::new())
            .services
            .into_iter()
            .collect()
    };
    assert_eq!(hosts("default").len(), 3, "no egress: Istio's `*/*`");
    assert_eq!(
        hosts("dev"),
        ["b.dev.svc.cluster.local"],
        "`./*` of the root default is dev's own"
    );
    assert_eq!(hosts("qa"), ["c.qa.svc.cluster.local"]);
}

#[test]
fn sidecar_selection_prefers_the_workload_then_namespace_then_root() {
    let yaml = [
        sidecar(
            "root",
            "rudder-system",
            "2024-01-01T00:00:00Z",
            None,
            "\"*/*\"",
        ),
        sidecar("b-default", "prod", "2024-03-01T00:00:00Z", None, "./*"),
        sidecar("a-default", "prod", "2024-02-01T00:00:00Z", None, "./*"),
        sidecar(
            "web",
            "prod",
            "2024-04-01T00:00:00Z",
            Some("app: web"),
            "./*",
        ),
    ]
    .join("---\n");
    let s = snapshot(&yaml);
    let name = |ns: &str, l: &[(&str, &str)]| {
        select_sidecar(&s.sidecars, &s.mesh.root_namespace, ns, &labels(l))
            .map(|i| s.sidecars[i].source.name.clone())
    };
    assert_eq!(name("prod", &[("app", "web")]).as_deref(), Some("web"));
    assert_eq!(
        name("prod", &[("app", "db")]).as_deref(),
        Some("a-default"),
        "the oldest namespace default wins"
    );
    assert_eq!(name("dev", &[]).as_deref(), Some("root"), "mesh default");
    let w: Vec<String> = s
        .diagnostics
        .iter()
        .map(|d| format!("{}: {}", d.object, d.message))
        .collect();
    assert!(
        w.iter().any(|w| w.starts_with("Sidecar prod/b-default: namespace prod already has a default Sidecar (Sidecar prod/a-default, older)")),
        "{w:#?}"
    );

    let none = snapshot(&sidecar(
        "web",
        "prod",
        "2024-04-01T00:00:00Z",
        Some("app: web"),
        "./*",
    ));
    assert_eq!(
        select_sidecar(
            &none.sidecars,
            &none.mesh.root_namespace,
            "prod",
            &labels(&[])
        ),
        None,
        "no Sidecar applies: the proxy sees everything"
    );
}

#[test]
fn scope_follows_egress_hosts_and_service_export_to() {
    let yaml = [
        service("a", "prod", "198.19.0.1", ""),
        service("b", "shared", "198.19.0.2", ""),
        service("c", "other", "198.19.0.3", ""),
        service(
            "private",
            "shared",
            "198.19.0.4",
            "networking.istio.io/exportTo: \".\"",
        ),
        service(
            "to-prod",
            "other",
            "198.19.0.5",
            "networking.istio.io/exportTo: \"prod\"",
        ),
        sidecar(
            "s",
            "prod",
            "2024-01-01T00:00:00Z",
            None,
            "./*, shared/*, \"*/to-prod.other.svc.cluster.local\"",
        ),
    ]
    .join("---\n");
    let s = snapshot(&yaml);
    let hosts = |ns: &str| -> Vec<String> {
        Scope::of(&s, ns, &Labels::new())
            .services
            .into_iter()
            .map(|h| h.split('.').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(hosts("prod"), ["a", "b", "to-prod"]);
    assert_eq!(
        hosts("shared"),
        ["a", "b", "c", "private"],
        "no Sidecar: everything exported to the namespace"
    );
    assert_eq!(hosts("dev"), ["a", "b", "c"]);
}

#[test]
fn destination_rules_are_looked_up_in_client_then_service_then_root_namespace() {
    let host = "reviews.prod.svc.cluster.local";
    let yaml = [
        service("reviews", "prod", "198.19.0.1", ""),
        service("ratings", "prod", "198.19.0.2", ""),
        dr("client-private", "dev", host, "\".\"", "RANDOM"),
        dr("owner", "prod", host, "\"*\"", "LEAST_REQUEST"),
        dr("owner-private", "prod", host, "\".\"", "ROUND_ROBIN"),
        dr("root", "rudder-system", host, "\"*\"", "RANDOM"),
        dr(
            "for-qa",
            "prod",
            "ratings.prod.svc.cluster.local",
            "qa",
            "RANDOM",
        ),
        dr(
            "root-ratings",
            "rudder-system",
            "ratings.prod.svc.cluster.local",
            "\"*\"",
            "LEAST_REQUEST",
        ),
    ]
    .join("---\n");
    let s = snapshot(&yaml);
    let rule = |client: &str, host: &str| {
        s.destination_policy(client, host)
            .map(|p| p.source.name.clone())
    };
    assert_eq!(rule("dev", host).as_deref(), Some("client-private"));
    assert_eq!(
        rule("qa", host).as_deref(),
        Some("owner"),
        "the service's namespace before the root's"
    );
    let own = s.destination_policy("prod", host).expect("prod's own pool");
    assert_eq!(
        (own.source.name.as_str(), own.subsets.len()),
        ("owner", 0),
        "prod merges its public and private rules, oldest first"
    );
    let ratings = "ratings.prod.svc.cluster.local";
    assert_eq!(rule("qa", ratings).as_deref(), Some("for-qa"));
    assert_eq!(
        rule("dev", ratings).as_deref(),
        Some("root-ratings"),
        "a rule exported elsewhere does not answer dev: the root namespace does"
    );
    assert_eq!(
        rule("rudder-system", ratings).as_deref(),
        Some("root-ratings")
    );
    // Rules of one namespace for one host merge, exported where either is.
    let merged = snapshot(
        &[
            service("reviews", "prod", "198.19.0.1", ""),
            dr("a-to-qa", "prod", host, "qa", "RANDOM"),
            dr("b-to-dev", "prod", host, "dev", "LEAST_REQUEST"),
        ]
        .join("---\n"),
    );
    for client in ["qa", "dev"] {
        let p = merged.destination_policy(client, host).expect(client);
        assert_eq!(p.source.name, "a-to-qa", "{client}: the older rule leads");
    }
    assert!(merged.destination_policy("stage", host).is_none());
    // A private rule never changes another namespace's view.
    let without = snapshot(
        &[
            service("reviews", "prod", "198.19.0.1", ""),
            dr("owner", "prod", host, "\"*\"", "LEAST_REQUEST"),
        ]
        .join("---\n"),
    );
    assert_eq!(
        without.destination_policy("qa", host),
        s.destination_policy("qa", host)
    );
}

#[test]
fn discovery_selectors_ignore_unselected_namespaces_entirely() {
    let mesh = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: rudder-mesh, namespace: rudder-system}\ndata:\n  mesh: |\n    discoverySelectors:\n    - matchLabels: {mesh: \"on\"}\n    - matchExpressions: [{key: team, operator: In, values: [blue]}]\n    - matchExpressions: [{key: team, operator: NotIn, values: [red]}, {key: team, operator: Exists}]\n";
    let ns = |name: &str, labels: &str| {
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {{{labels}}}}}\n"
        )
    };
    let yaml = [
        mesh.to_string(),
        ns("meshed", "mesh: \"on\""),
        ns("blue", "team: blue"),
        ns("ignored", "team: red"),
        service("a", "meshed", "198.19.0.1", ""),
        service("b", "blue", "198.19.0.2", ""),
        service("c", "ignored", "198.19.0.3", ""),
        service("d", "nowhere", "198.19.0.4", ""),
        ns("green", "team: green"),
        service("e", "green", "198.19.0.5", ""),
        dr(
            "r",
            "ignored",
            "a.meshed.svc.cluster.local",
            "\"*\"",
            "RANDOM",
        ),
        sidecar("s", "ignored", "2024-01-01T00:00:00Z", None, "./*"),
    ]
    .join("---\n");
    let s = snapshot(&yaml);
    assert_eq!(
        s.services.keys().cloned().collect::<Vec<_>>(),
        [
            "a.meshed.svc.cluster.local",
            "b.blue.svc.cluster.local",
            "e.green.svc.cluster.local"
        ],
        "a namespace without a Namespace object is never selected"
    );
    assert_eq!(
        s.namespaces.keys().cloned().collect::<Vec<_>>(),
        ["blue", "green", "meshed"]
    );
    assert!(
        s.destination_rules.all().next().is_none(),
        "ignored's rule is ignored"
    );
    assert!(s.sidecars.is_empty());
    assert!(warnings(&validate(&[("m.yaml", &yaml)])).is_empty());

    let all = snapshot(&yaml.replace("discoverySelectors:", "unused:"));
    assert_eq!(all.services.len(), 5, "no selectors: every namespace");
}
