//! Loader: multi-document files, nested dirs, Lists, bad YAML with line
//! numbers, wrong-typed fields naming the field, unsupported kinds.

mod common;

use common::{testdata, validate};
use pretty_assertions::assert_eq;
use rudder_registry::{
    load::{collect_files, load_str},
    validate_paths, Kind,
};

#[test]
fn multi_document_files_keep_origins() {
    let yaml = "# leading comment\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n";
    let l = load_str(yaml, "ns.yaml", "ns.yaml");
    assert!(l.problems.is_empty(), "{:?}", l.problems);
    let got: Vec<_> = l
        .objects
        .iter()
        .map(|o| (o.key.name.as_str(), o.origin.document, o.origin.line))
        .collect();
    assert_eq!(got, vec![("a", 0, Some(2)), ("b", 2, Some(8))]);
    assert_eq!(l.objects[0].key.kind, Kind::Namespace);
}

#[test]
fn list_items_are_objects() {
    let yaml = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: a}}\n- {apiVersion: v1, kind: Service, metadata: {name: s}, spec: {ports: [{port: x}]}}\n";
    let l = load_str(yaml, "list.yaml", "list.yaml");
    assert_eq!(l.objects.len(), 1);
    assert_eq!(l.rejected.len(), 1);
    let d = &l.rejected[0].diagnostics[0];
    assert_eq!(d.object, "Service default/s");
    assert_eq!(d.field, "items[1].spec.ports[0].port");
}

#[test]
fn bad_yaml_names_file_document_and_line() {
    let yaml = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: [b\n";
    let l = load_str(yaml, "bad.yaml", "bad.yaml");
    assert!(l.unparseable);
    assert_eq!(l.problems.len(), 1);
    let d = &l.problems[0];
    assert_eq!(d.object, "document 1");
    assert!(d.file.as_deref().unwrap().starts_with("bad.yaml:"), "{d}");
    let line: usize = d
        .file
        .as_deref()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((7..=8).contains(&line), "line {line}: {d}");
}

#[test]
fn wrong_typed_field_names_the_field_and_line() {
    let yaml = "apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n---\napiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [a]\n  http:\n  - route:\n    - destination: {host: a}\n      weight: heavy\n";
    let l = load_str(yaml, "vs.yaml", "vs.yaml");
    assert!(!l.unparseable);
    assert_eq!(l.objects.len(), 1, "the other document still loads");
    let d = &l.rejected[0].diagnostics[0];
    assert_eq!(d.object, "VirtualService default/r");
    assert_eq!(d.field, "spec.http[0].route[0].weight");
    assert_eq!(d.file.as_deref(), Some("vs.yaml:13"));
    assert!(d.message.contains("i32"), "{d}");
}

#[test]
fn unknown_istio_field_is_rejected_with_its_name() {
    let yaml = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n  host: a\n  subset: []\n";
    let l = load_str(yaml, "dr.yaml", "dr.yaml");
    let d = &l.rejected[0].diagnostics[0];
    assert!(d.message.contains("unknown field `subset`"), "{d}");
    assert_eq!(d.file.as_deref(), Some("dr.yaml:6"));
}

#[test]
fn nested_dirs_skip_hidden_and_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::create_dir_all(p.join("a/b")).unwrap();
    std::fs::create_dir_all(p.join(".git")).unwrap();
    for f in [
        "x.yaml",
        "a/y.yml",
        "a/b/z.json",
        ".hidden.yaml",
        "a/notes.txt",
        ".git/c.yaml",
        "a/.y.yml.swp",
    ] {
        std::fs::write(p.join(f), "{}").unwrap();
    }
    let files: Vec<String> = collect_files(p)
        .unwrap()
        .iter()
        .map(|f| f.strip_prefix(p).unwrap().display().to_string())
        .collect();
    assert_eq!(files, vec!["a/b/z.json", "a/y.yml", "x.yaml"]);
}

#[test]
fn validate_reports_unsupported_kinds_without_failing_the_file() {
    let bad = testdata("invalid/mixed.yaml");
    let report = validate_paths(std::slice::from_ref(&bad));
    let lines = report.lines();
    assert!(report.has_errors());
    let unsupported: Vec<String> = report.unsupported().iter().map(|d| d.to_string()).collect();
    assert_eq!(
        unsupported,
        vec![format!(
            "unsupported: {}:1: EnvoyFilter default/ef: Rudder does not serve EnvoyFilter (networking.istio.io/v1alpha3) yet; it has no effect on traffic",
            bad.display()
        )]
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("spec.http[0].route[0].weight: weight -1 must not be negative")),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("Deployment")),
        "other Kubernetes kinds are ignored"
    );
}

/// Routing and policy APIs Rudder does not serve are named, one line per
/// object with file, line, object and (for a version) field; plain Kubernetes
/// kinds Rudder has no use for stay silent; nothing here is an error.
#[test]
fn routing_apis_rudder_does_not_serve_are_named_and_plain_kinds_stay_silent() {
    let doc = |api: &str, kind: &str, meta: &str| {
        format!("apiVersion: {api}\nkind: {kind}\nmetadata: {meta}\nspec: {{}}\n")
    };
    let no_effect = "it has no effect on traffic";
    let cases: Vec<(String, &str, &str, String)> = vec![
        (doc("gateway.networking.k8s.io/v1", "UDPRoute", "{name: web, namespace: shop}"), "UDPRoute shop/web", "",
            format!("UDPRoute (gateway.networking.k8s.io/v1) is part of the Gateway API, which Rudder does not serve yet; {no_effect}")),
        (doc("gateway.networking.k8s.io/v1alpha1", "GatewayClass", "{name: cls}"), "GatewayClass cls", "apiVersion",
            format!("Rudder does not serve GatewayClass in gateway.networking.k8s.io/v1alpha1 (it reads v1, v1beta1); {no_effect}")),
        (doc("gateway.networking.x-k8s.io/v1alpha1", "XListenerSet", "{name: l}"), "XListenerSet default/l", "",
            format!("XListenerSet (gateway.networking.x-k8s.io/v1alpha1) is part of the Gateway API's experimental kinds, which Rudder does not serve; {no_effect}")),
        (doc("networking.x-k8s.io/v1alpha1", "HTTPRoute", "{name: old}"), "HTTPRoute default/old", "",
            format!("HTTPRoute (networking.x-k8s.io/v1alpha1) is part of the Service APIs (the Gateway API's predecessor), which Rudder does not serve; {no_effect}")),
        (doc("projectcontour.io/v1", "ExtensionService", "{name: p}"), "ExtensionService default/p", "",
            format!("ExtensionService (projectcontour.io/v1) is part of Contour's API, which Rudder does not serve; {no_effect}")),
        (doc("getambassador.io/v2", "Mapping", "{name: m}"), "Mapping default/m", "apiVersion",
            format!("Rudder does not serve Mapping in getambassador.io/v2 (it reads v3alpha1); {no_effect}")),
        (doc("getambassador.io/v3alpha1", "Host", "{name: h}"), "Host default/h", "",
            format!("Host (getambassador.io/v3alpha1) is part of Emissary-ingress's API, which Rudder does not serve; {no_effect}")),
        (doc("networking.istio.io/v1beta1", "ProxyConfig", "{name: pc}"), "ProxyConfig default/pc", "",
            format!("Rudder does not serve ProxyConfig (networking.istio.io/v1beta1) yet; {no_effect}")),
        (doc("telemetry.istio.io/v1beta1", "Telemetry", "{name: t}"), "Telemetry default/t", "apiVersion",
            format!("Rudder does not serve Telemetry in telemetry.istio.io/v1beta1 (it reads v1, v1alpha1); {no_effect}")),
        (doc("networking.istio.io/v2", "VirtualService", "{name: vs}"), "VirtualService default/vs", "apiVersion",
            format!("Rudder does not serve VirtualService in networking.istio.io/v2 (it reads v1, v1beta1, v1alpha3); {no_effect}")),
        (doc("security.istio.io/v1alpha1", "AuthorizationPolicy", "{name: a}"), "AuthorizationPolicy default/a", "apiVersion",
            format!("Rudder does not serve AuthorizationPolicy in security.istio.io/v1alpha1 (it reads v1, v1beta1); {no_effect}")),
        (doc("config.istio.io/v1", "RouteRule", "{name: r}"), "RouteRule default/r", "apiVersion",
            format!("Rudder does not serve RouteRule in config.istio.io/v1 (it reads v1alpha2); {no_effect}")),
    ];
    for (yaml, object, field, message) in &cases {
        let report = validate(&[("r.yaml", yaml)]);
        let got: Vec<(String, &str, &str, &str)> = report
            .diagnostics
            .iter()
            .map(|d| {
                (
                    format!("{:?}", d.severity),
                    d.object.as_str(),
                    d.field.as_str(),
                    d.message.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![("Unsupported".to_string(), *object, *field, message.as_str())],
            "{yaml}"
        );
        assert_eq!(report.diagnostics[0].file.as_deref(), Some("r.yaml:1"));
        assert!(!report.has_errors(), "{yaml}");
        assert_eq!(report.objects, 0, "{yaml}: nothing served");
    }
    // In a List, the item is named.
    let list = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: projectcontour.io/v1, kind: ExtensionService, metadata: {name: p}}\n";
    let report = validate(&[("list.yaml", list)]);
    assert_eq!(report.unsupported().len(), 1);
    assert_eq!(report.unsupported()[0].field, "items[0]");
    // Plain Kubernetes kinds Rudder has no use for, and the served Istio kinds
    // in every version Rudder reads, say nothing.
    let silent = [
        doc("apps/v1", "Deployment", "{name: d}"),
        doc("v1", "ConfigMap", "{name: settings}"),
        doc("networking.k8s.io/v1", "NetworkPolicy", "{name: np}"),
        doc("batch/v1", "Job", "{name: j}"),
        "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata: {name: vs}\nspec: {hosts: [reviews]}\n".to_string(),
        "apiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec: {}\n".to_string(),
    ];
    let files: Vec<(String, String)> = silent
        .iter()
        .enumerate()
        .map(|(i, y)| (format!("s{i}.yaml"), y.clone()))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, y)| (n.as_str(), y.as_str()))
        .collect();
    let report = validate(&refs);
    assert_eq!(report.lines(), Vec::<String>::new());
    assert_eq!(report.objects, 2);
}

#[test]
fn bookinfo_samples_validate_cleanly() {
    let mut paths = vec![testdata("bookinfo")];
    let report = validate_paths(&paths);
    assert_eq!(report.lines(), Vec::<String>::new());
    assert_eq!(report.objects, 1 + 4 + 6 + 4 + 3);
    for v in std::fs::read_dir(testdata("variants")).unwrap() {
        paths.truncate(1);
        let v = v.unwrap().path();
        paths.push(v.clone());
        let r = validate_paths(&paths);
        assert!(!r.has_errors(), "{}: {:#?}", v.display(), r.lines());
    }
}
