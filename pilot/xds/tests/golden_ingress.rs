//! Kubernetes Ingress through the ingress gateway (issue 15, item 3): the
//! gateway's listeners, routes and SDS secret for an Ingress with paths of
//! each type, a default backend, a wildcard host and TLS from a Secret,
//! validated by `envoy --mode validate`.

mod support;

use std::{path::Path, sync::Arc};

use rudder_model::Snapshot;
use rudder_registry::load::load_str;
use serde_json::{json, Value};
use support::*;

fn testdata(dir: &str, file: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(dir)
        .join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn secret(ns: &str, name: &str, stem: &str) -> String {
    tls_secret_yaml(ns, name, stem, false)
}

fn gateway_proxy(s: &Snapshot) -> rudder_model::Proxy {
    ingress_gateway_proxy(s)
}

/// (path match, cluster) of each route of a virtual host.
fn routes(vh: &Value) -> Vec<(String, String)> {
    vh["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let m = &r["match"];
            let p = if let Some(p) = m["path"].as_str() {
                format!("={p}")
            } else {
                format!("^{}", m["prefix"].as_str().unwrap_or("?"))
            };
            (p, r["route"]["cluster"].as_str().unwrap_or("").to_string())
        })
        .collect()
}

#[test]
fn ingress_paths_default_backend_wildcard_host_and_tls() {
    let s = yaml_snapshot(&[
        testdata("gateway", "platform.yaml"),
        testdata("ingress", "platform.yaml"),
        testdata("ingress", "ingress.yaml"),
        // Istio reads an Ingress's TLS Secret where the gateway runs.
        secret("istio-system", "shop-credential", "bookinfo"),
    ]);
    assert!(s.diagnostics.is_empty(), "{:?}", s.diagnostics);
    let j = golden("ingress", &s, &gateway_proxy(&s));
    let listeners: Vec<&String> = j["lds"].as_object().unwrap().keys().collect();
    // Service ports 80 and 443 of the gateway become its target ports.
    assert_eq!(listeners, ["0.0.0.0_8080", "0.0.0.0_8443"]);

    let api = "outbound|9000||api.default.svc.cluster.local".to_string();
    let web = "outbound|8000||web.default.svc.cluster.local".to_string();
    let rds = &j["rds"]["http.8080"];
    let shop = vhost(rds, "shop.example.com");
    assert_eq!(
        routes(shop),
        vec![
            // Longest path first: ImplementationSpecific /static/* is
            // Istio's prefix /static, then Exact /exact, then Prefix /foo
            // (path elements: /foo and /foo/...), then the default backend.
            ("^/static".into(), web.clone()),
            ("=/exact".into(), api.clone()),
            ("=/foo".into(), api.clone()),
            ("^/foo/".into(), api.clone()),
            ("^/".into(), web.clone()),
        ]
    );
    let org = vhost(rds, "*.example.org");
    assert_eq!(
        routes(org),
        vec![("^/".into(), api.clone()), ("^/".into(), web.clone())]
    );
    assert_eq!(routes(vhost(rds, "*")), vec![("^/".into(), web.clone())]);

    // HTTPS: the tls entry's hosts by SNI, the Secret over SDS.
    let chains = j["lds"]["0.0.0.0_8443"]["filterChains"].as_array().unwrap();
    assert_eq!(chains.len(), 1);
    assert_eq!(
        chains[0]["filterChainMatch"]["serverNames"],
        json!(["shop.example.com"])
    );
    assert_eq!(
        chains[0]["transportSocket"]["typedConfig"]["commonTlsContext"]
            ["tlsCertificateSdsSecretConfigs"][0]["name"],
        "kubernetes://shop-credential"
    );
    assert!(j["sds"]["kubernetes://shop-credential"].is_object());
}

/// The gateway's xDS for an Ingress `spec` in namespace default, or the
/// errors that refused it.
fn gateway_xds(spec: &Value) -> Result<Value, Vec<String>> {
    let ingress = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                         "metadata": {"name": "fields", "namespace": "default"}, "spec": spec});
    let mut store = rudder_registry::Store::new();
    for (i, text) in [
        testdata("gateway", "platform.yaml"),
        testdata("ingress", "platform.yaml"),
        secret("istio-system", "shop-credential", "bookinfo"),
        serde_json::to_string(&ingress).unwrap(),
    ]
    .iter()
    .enumerate()
    {
        let name = format!("file{i}.yaml");
        store.reset(&name, load_str(text, &name, &name).into_batch());
    }
    let s = Arc::new(store.snapshot());
    let errors: Vec<String> = s
        .diagnostics
        .iter()
        .filter(|d| d.severity == rudder_model::Severity::Error)
        .map(|d| d.to_string())
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    let res = rudder_xds::Generator::new(s.clone()).generate(&gateway_proxy(&s));
    Ok(rudder_xds::to_json(&res))
}

/// The `field` cells of the Ingress table in docs/architecture.md.
fn documented_fields() -> Vec<(String, String)> {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/architecture.md");
    let text = std::fs::read_to_string(doc).unwrap();
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("Kubernetes Ingress"))
        .expect("a Kubernetes Ingress section");
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            (cells[0].trim_matches('`').to_string(), cells[1].to_string())
        })
        .collect()
}

/// Every Ingress field Rudder reads, as documented: a served one changes
/// the gateway's xDS (against the same Ingress without it), a refused one
/// is an error naming it. The docs list exactly these fields.
#[test]
fn every_documented_ingress_field_is_served_or_refused() {
    let path =
        |svc: Value| json!({"path": "/a", "pathType": "Prefix", "backend": {"service": svc}});
    let base = json!({"rules": [{"http": {"paths": [path(json!({"name": "web", "port": {"number": 8000}}))]}}]});
    let cases: Vec<(&str, Value, bool)> = vec![
        (
            "ingressClassName",
            json!({"ingressClassName": "nginx"}),
            true,
        ),
        (
            "defaultBackend.service",
            json!({"defaultBackend": {"service": {"name": "api", "port": {"number": 9000}}}}),
            true,
        ),
        (
            "tls[].hosts",
            json!({"tls": [{"secretName": "shop-credential", "hosts": ["shop.example.com"]}]}),
            true,
        ),
        (
            "tls[].secretName",
            json!({"tls": [{"secretName": "shop-credential"}]}),
            true,
        ),
        (
            "rules[].host",
            json!({"rules": [{"host": "shop.example.com"}]}),
            true,
        ),
        (
            "rules[].http.paths[].path",
            json!({"rules": [{"http": {"paths": [{"path": "/b"}]}}]}),
            true,
        ),
        (
            "rules[].http.paths[].pathType",
            json!({"rules": [{"http": {"paths": [{"pathType": "Exact"}]}}]}),
            true,
        ),
        (
            "rules[].http.paths[].backend.service.name",
            json!({"rules": [{"http": {"paths": [{"backend": {"service": {"name": "api", "port": {"number": 8000}}}}]}}]}),
            true,
        ),
        (
            "rules[].http.paths[].backend.service.port.number",
            json!({"rules": [{"http": {"paths": [{"backend": {"service": {"name": "web", "port": {"number": 8001}}}}]}}]}),
            true,
        ),
        (
            "rules[].http.paths[].backend.service.port.name",
            json!({"rules": [{"http": {"paths": [{"backend": {"service": {"name": "api", "port": {"number": null, "name": "http"}}}}]}}]}),
            true,
        ),
        (
            "metadata.annotations[kubernetes.io/ingress.class]",
            Value::Null,
            true,
        ),
        (
            "rules[].http.paths[].backend.resource",
            json!({"rules": [{"http": {"paths": [{"backend": {"service": null, "resource": {"kind": "StorageBucket", "name": "b"}}}]}}]}),
            false,
        ),
        (
            "defaultBackend.resource",
            json!({"defaultBackend": {"resource": {"kind": "StorageBucket", "name": "b"}}}),
            false,
        ),
    ];
    let before = gateway_xds(&base).expect("the base Ingress is valid");
    for (field, patch, served) in &cases {
        if field.starts_with("metadata.") {
            continue; // the annotation: covered by the registry's class tests
        }
        let mut spec = base.clone();
        merge(&mut spec, patch);
        match (gateway_xds(&spec), served) {
            (Ok(after), true) => assert_ne!(after, before, "{field}: changes no xDS"),
            (Err(e), false) => assert!(
                e.iter()
                    .any(|e| e.contains(&format!("spec.{}", field.replace("[]", "[0]")))),
                "{field}: {e:?}"
            ),
            (r, _) => panic!("{field}: want served {served}, got {:?}", r.map(|_| "xDS")),
        }
    }
    let mut documented: Vec<(String, bool)> = documented_fields()
        .into_iter()
        .map(|(f, fate)| (f, fate.starts_with("served")))
        .collect();
    let mut tested: Vec<(String, bool)> =
        cases.iter().map(|(f, _, s)| (f.to_string(), *s)).collect();
    documented.sort();
    tested.sort();
    assert_eq!(documented, tested, "docs/architecture.md's Ingress table");
}

/// JSON merge: objects key by key (null removes), lists element by element.
fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                if v.is_null() {
                    a.remove(k);
                } else {
                    merge(a.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, v) in b.iter().enumerate() {
                if i < a.len() {
                    merge(&mut a[i], v);
                } else {
                    a.push(v.clone());
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}
