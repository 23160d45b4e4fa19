//! Kubernetes Ingress through the ingress gateway (issue 15, item 3): the
//! gateway's listeners, routes and SDS secret for an Ingress with paths of
//! each type, a default backend, a wildcard host and TLS from a Secret,
//! validated by `envoy --mode validate`.

mod support;

use std::{path::Path, sync::Arc};

use rudder_model::{NodeId, NodeMetadata, Snapshot};
use rudder_registry::{build::build_snapshot, load::load_str};
use rudder_xds::{fixtures::test_credential, resolve_proxy};
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
    let block = |t: String| {
        let lines: Vec<String> = t.lines().map(|l| format!("    {l}")).collect();
        format!("|\n{}", lines.join("\n"))
    };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: {}\n  tls.key: {}\n",
        block(test_credential(&format!("{stem}.crt"))),
        block(test_credential(&format!("{stem}.key")))
    )
}

fn snapshot(files: &[String]) -> Arc<Snapshot> {
    let mut objects = Vec::new();
    for (i, text) in files.iter().enumerate() {
        let l = load_str(text, &format!("file{i}.yaml"), &format!("file{i}.yaml"));
        assert!(
            l.problems.is_empty() && l.rejected.is_empty() && l.unsupported.is_empty(),
            "{:?} {:?} {:?}",
            l.problems,
            l.rejected,
            l.unsupported
        );
        objects.extend(l.objects);
    }
    Arc::new(build_snapshot(&objects, vec![]))
}

fn gateway_proxy(s: &Snapshot) -> rudder_model::Proxy {
    resolve_proxy(
        s,
        NodeId::router(
            "198.18.3.2".parse().unwrap(),
            "istio-ingressgateway-0",
            "istio-system",
        ),
        &NodeMetadata::default(),
    )
}

fn vhost<'a>(rds: &'a Value, domain: &str) -> &'a Value {
    rds["virtualHosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["domains"].as_array().unwrap().iter().any(|d| d == domain))
        .unwrap_or_else(|| panic!("no virtual host {domain}: {rds}"))
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
    let s = snapshot(&[
        testdata("gateway", "platform.yaml"),
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
