//! Contour's HTTPProxy and Emissary's Mapping at the ingress gateway
//! (issue 16, item 6): goldens of the gateway's xDS, validated by `envoy
//! --mode validate`, and each translation held to its meaning: the
//! HTTPProxies (with an include across namespaces and a tcpproxy) and the
//! Mappings give the same xDS as the Istio Gateways and VirtualServices
//! written out by hand for the same intent.

mod support;

use std::{path::Path, sync::Arc};

use rudder_model::Snapshot;
use rudder_xds::{to_json, Generator};
use serde_json::{json, Value};
use support::*;

fn testdata(dir: &str, file: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(dir)
        .join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The ingress gateway, web and api (default), blog (its own namespace)
/// and the TLS Secret where the gateway runs.
fn platform() -> Vec<String> {
    vec![
        testdata("gateway", "platform.yaml"),
        testdata("ingress", "platform.yaml"),
        testdata("edge-apis", "platform.yaml"),
        tls_secret_yaml("istio-system", "shop-credential", "bookinfo", false),
    ]
}

fn snapshot(extra: &str) -> Arc<Snapshot> {
    let mut files = platform();
    files.push(extra.to_string());
    yaml_snapshot(&files)
}

fn xds(s: &Arc<Snapshot>) -> Value {
    to_json(&Generator::new(s.clone()).generate(&ingress_gateway_proxy(s)))
}

/// (path match, cluster) of each route of a virtual host.
fn routes(vh: &Value) -> Vec<(String, String)> {
    vh["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let m = &r["match"];
            let p = match (m["path"].as_str(), m["prefix"].as_str()) {
                (Some(p), _) => format!("={p}"),
                (None, Some(p)) => format!("^{p}"),
                _ => format!("~{}", m["safeRegex"]["regex"].as_str().unwrap_or("?")),
            };
            let cluster = r["route"]["cluster"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| r["route"]["weightedClusters"].to_string());
            (p, cluster)
        })
        .collect()
}

const WEB: &str = "outbound|8000||web.default.svc.cluster.local";
const API: &str = "outbound|9000||api.default.svc.cluster.local";
const BLOG: &str = "outbound|8080||blog.blog.svc.cluster.local";

/// One gateway serving the HTTPProxies and the Mappings (one golden: the
/// port-80 listener is the same for both).
#[test]
fn httpproxies_and_mappings_at_the_ingress_gateway() {
    let s = snapshot(&format!(
        "{}---\n{}",
        testdata("edge-apis", "httpproxy.yaml"),
        testdata("edge-apis", "mapping.yaml")
    ));
    assert!(s.diagnostics.is_empty(), "{:?}", s.diagnostics);
    let j = golden("edge_apis", &s, &ingress_gateway_proxy(&s));
    httpproxy_routes(&j);
    mapping_routes(&j);
}

fn httpproxy_routes(j: &Value) {
    let listeners: Vec<&String> = j["lds"].as_object().unwrap().keys().collect();
    assert_eq!(listeners, ["0.0.0.0_8080", "0.0.0.0_8443"]);
    // Port 80 redirects to HTTPS (the host has TLS), as Contour does.
    let insecure = vhost(&j["rds"]["http.8080"], "shop.example.com");
    assert_eq!(insecure["requireTls"], "ALL", "{insecure}");
    let vh = vhost(
        &j["rds"]
            ["https.443.https-443-httpproxy-shop-default.shop-httpproxy-default.rudder-system"],
        "shop.example.com",
    );
    assert_eq!(
        routes(vh)[..4],
        [
            // Exact first: the included /feed under the include's /blog.
            ("=/blog/feed".to_string(), BLOG.to_string()),
            ("^/internal".into(), WEB.into()),
            ("^/blog".into(), BLOG.into()),
            ("^/api".into(), API.into()),
        ]
    );
    let r = &vh["routes"];
    assert_eq!(r[3]["route"]["prefixRewrite"], "/v2");
    assert_eq!(r[3]["route"]["timeout"], "10s");
    assert_eq!(r[3]["route"]["retryPolicy"]["numRetries"], 3);
    assert_eq!(r[2]["route"]["timeout"], "15s", "Contour's default");
    assert!(
        r[2]["route"]["retryPolicy"].is_null(),
        "no retries unless asked"
    );
    assert_eq!(r[1]["route"]["timeout"], "0s", "infinity: no timeout");
    assert_eq!(r[1]["route"]["requestMirrorPolicies"][0]["cluster"], API);
    let split: Vec<u64> = r[4]["route"]["weightedClusters"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["weight"].as_u64().unwrap())
        .collect();
    assert_eq!(split, [90, 10]);
    // tcpproxy: TLS passed through by SNI.
    let tls = j["lds"]["0.0.0.0_8443"].to_string();
    assert!(tls.contains("secure.example.com"), "{tls}");
    assert!(
        tls.contains("outbound|8443||nginx.default.svc.cluster.local"),
        "{tls}"
    );
}

fn mapping_routes(j: &Value) {
    let rds = &j["rds"]["http.8080"];
    let any = vhost(rds, "*");
    let r = &any["routes"];
    assert_eq!(r[0]["match"]["prefix"], "/backend/");
    assert_eq!(
        r[0]["route"]["prefixRewrite"], "/",
        "Emissary's default rewrite"
    );
    assert_eq!(r[0]["route"]["timeout"], "3s", "Emissary's default timeout");
    let split: Vec<(String, u64)> = r[0]["route"]["weightedClusters"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["weight"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(split, [(API.to_string(), 10), (WEB.to_string(), 90)]);
    let mirror = &r[0]["route"]["requestMirrorPolicies"][0];
    assert_eq!(mirror["cluster"], API);
    assert_eq!(
        mirror["runtimeFraction"]["defaultValue"]["numerator"], 500000,
        "{mirror}"
    );
    assert_eq!(r[1]["match"]["safeRegex"]["regex"], "/items/[0-9]+");
    assert!(
        r[1]["route"]["prefixRewrite"].is_null(),
        "rewrite \"\" keeps the path"
    );
    // A named host gets its own Mappings and the `*` ones, longest prefix first.
    let api = vhost(rds, "api.example.com");
    let paths: Vec<String> = routes(api).into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, ["^/backend/", "^/v2/", "~/items/[0-9]+"]);
    assert_eq!(api["routes"][1]["route"]["timeout"], "5s");
    assert_eq!(api["routes"][1]["route"]["retryPolicy"]["numRetries"], 3);
    assert_eq!(
        api["routes"][1]["match"]["headers"][0]["stringMatch"],
        json!({"exact": "2"})
    );
}

/// What the HTTPProxies of httpproxy.yaml mean in Istio's terms.
const HTTPPROXY_EQUIVALENT: &str = r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop-httpproxy-default, namespace: rudder-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, protocol: HTTP, name: http-80-httpproxy-shop-default}
    hosts: [shop.example.com]
    tls: {httpsRedirect: true}
  - port: {number: 443, protocol: HTTPS, name: https-443-httpproxy-shop-default}
    hosts: [shop.example.com]
    tls: {mode: SIMPLE, credentialName: shop-credential}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop-example-com-httpproxy-shop, namespace: default}
spec:
  hosts: [shop.example.com]
  gateways: [rudder-system/shop-httpproxy-default]
  http:
  - match: [{uri: {exact: /blog/feed}, headers: {user-agent: {regex: ".*bot.*"}}}]
    route: [{destination: {host: blog.blog.svc.cluster.local, port: {number: 8080}}}]
    timeout: 15s
    retries: {attempts: 0}
  - match: [{uri: {prefix: /internal}, withoutHeaders: {x-debug: {}}}]
    route: [{destination: {host: web.default.svc.cluster.local, port: {number: 8000}}}]
    mirror: {host: api.default.svc.cluster.local, port: {number: 9000}}
    mirrorPercentage: {value: 100}
    retries: {attempts: 0}
  - match: [{uri: {prefix: /blog}}]
    route: [{destination: {host: blog.blog.svc.cluster.local, port: {number: 8080}}}]
    timeout: 15s
    retries: {attempts: 0}
  - match: [{uri: {prefix: /api}, headers: {x-version: {exact: "2"}}}]
    route: [{destination: {host: api.default.svc.cluster.local, port: {number: 9000}}}]
    rewrite: {uri: /v2}
    headers: {request: {set: {x-route: api}, remove: [x-remove]}}
    timeout: 10s
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: "5xx,reset,503"}
  - match: [{uri: {prefix: /}}]
    route:
    - {destination: {host: web.default.svc.cluster.local, port: {number: 8000}}, weight: 90}
    - destination: {host: api.default.svc.cluster.local, port: {number: 9000}}
      weight: 10
      headers: {request: {set: {x-canary: "true"}}}
    headers: {response: {set: {x-served-by: rudder}}}
    timeout: 15s
    retries: {attempts: 0}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: secure-httpproxy-default, namespace: rudder-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, protocol: TLS, name: tls-443-httpproxy-secure-default}
    hosts: [secure.example.com]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: secure-example-com-httpproxy-secure, namespace: default}
spec:
  hosts: [secure.example.com]
  gateways: [rudder-system/secure-httpproxy-default]
  tls:
  - match: [{sniHosts: [secure.example.com], port: 443}]
    route: [{destination: {host: nginx.default.svc.cluster.local, port: {number: 8443}}}]
"#;

/// What the Mappings of mapping.yaml mean in Istio's terms.
const MAPPING_EQUIVALENT: &str = r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: emissary-mappings, namespace: rudder-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, protocol: HTTP, name: http-80-emissary-mappings}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wildcard-emissary-mappings, namespace: rudder-system}
spec:
  hosts: ["*"]
  gateways: [rudder-system/emissary-mappings]
  http:
  - match: [{uri: {prefix: /backend/}}]
    route:
    - {destination: {host: api.default.svc.cluster.local, port: {number: 9000}}, weight: 10}
    - {destination: {host: web.default.svc.cluster.local, port: {number: 8000}}, weight: 90}
    mirror: {host: api.default.svc.cluster.local, port: {number: 9000}}
    mirrorPercentage: {value: 50}
    rewrite: {uri: /}
    timeout: 3s
    retries: {attempts: 0}
  - match: [{uri: {regex: "/items/[0-9]+"}}]
    route: [{destination: {host: api.default.svc.cluster.local, port: {number: 9000}}}]
    timeout: 3s
    retries: {attempts: 0}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api-example-com-emissary-mappings, namespace: rudder-system}
spec:
  hosts: [api.example.com]
  gateways: [rudder-system/emissary-mappings]
  http:
  - match: [{uri: {prefix: /backend/}}]
    route:
    - {destination: {host: api.default.svc.cluster.local, port: {number: 9000}}, weight: 10}
    - {destination: {host: web.default.svc.cluster.local, port: {number: 8000}}, weight: 90}
    mirror: {host: api.default.svc.cluster.local, port: {number: 9000}}
    mirrorPercentage: {value: 50}
    rewrite: {uri: /}
    timeout: 3s
    retries: {attempts: 0}
  - match: [{uri: {prefix: /v2/}, headers: {x-version: {exact: "2"}}}]
    route: [{destination: {host: api.default.svc.cluster.local, port: {number: 9000}}}]
    timeout: 5s
    retries: {attempts: 3, retryOn: 5xx, perTryTimeout: 1s}
  - match: [{uri: {regex: "/items/[0-9]+"}}]
    route: [{destination: {host: api.default.svc.cluster.local, port: {number: 9000}}}]
    timeout: 3s
    retries: {attempts: 0}
"#;

#[test]
fn an_httpproxy_and_its_virtual_service_give_the_same_xds() {
    let a = snapshot(&testdata("edge-apis", "httpproxy.yaml"));
    let b = snapshot(HTTPPROXY_EQUIVALENT);
    assert!(b.diagnostics.is_empty(), "{:?}", b.diagnostics);
    assert_eq!(xds(&a), xds(&b));
}

#[test]
fn mappings_and_their_virtual_services_give_the_same_xds() {
    let a = snapshot(&testdata("edge-apis", "mapping.yaml"));
    let b = snapshot(MAPPING_EQUIVALENT);
    assert!(b.diagnostics.is_empty(), "{:?}", b.diagnostics);
    assert_eq!(xds(&a), xds(&b));
}
