//! Gateway proxies (issue 15): a `router` node selected by Istio Gateways
//! gets listeners on their server ports, route configurations per port
//! (`http.PORT`, `https.PORT.<port name>.<gateway>.<namespace>`), TLS from
//! Secrets over SDS, SNI passthrough and TCP, from the VirtualServices bound
//! to the Gateways. Istio's bookinfo-gateway.yaml is applied unchanged. Each
//! case is validated by `envoy --mode validate`.

mod support;

use std::path::Path;

use rudder_model::Snapshot;
use serde_json::Value;
use support::*;

fn testdata(file: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/gateway")
        .join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn secret(ns: &str, name: &str, stem: &str, with_ca: bool) -> String {
    tls_secret_yaml(ns, name, stem, with_ca)
}

fn gateway_proxy(s: &Snapshot) -> rudder_model::Proxy {
    ingress_gateway_proxy(s)
}

fn chain<'a>(j: &'a Value, listener: &str, name: &str) -> &'a Value {
    j["lds"][listener]["filterChains"]
        .as_array()
        .unwrap_or_else(|| panic!("no listener {listener}: {}", j["lds"]))
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no chain {name} in {listener}"))
}

#[test]
fn bookinfo_gateway_unchanged_routes_productpage() {
    let s = yaml_snapshot(&[testdata("platform.yaml"), testdata("bookinfo-gateway.yaml")]);
    assert!(s.diagnostics.is_empty(), "{:?}", s.diagnostics);
    let j = golden("gateway_bookinfo", &s, &gateway_proxy(&s));
    let listeners: Vec<&String> = j["lds"].as_object().unwrap().keys().collect();
    assert_eq!(
        listeners,
        ["0.0.0.0_8080"],
        "no capture listener on a gateway"
    );
    let l = &j["lds"]["0.0.0.0_8080"];
    assert_eq!(l["address"]["socketAddress"]["portValue"], 8080);
    let rds = &j["rds"]["http.8080"];
    let vh = &rds["virtualHosts"][0];
    assert_eq!(vh["domains"], serde_json::json!(["*"]));
    let routes = vh["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 5, "one Envoy route per match: {routes:?}");
    assert_eq!(routes[0]["match"]["path"], "/productpage");
    assert_eq!(
        routes[0]["route"]["cluster"],
        "outbound|9080||productpage.default.svc.cluster.local"
    );
    // Auto mTLS to the meshed productpage, with the gateway's own certificate.
    let c = &j["cds"]["outbound|9080||productpage.default.svc.cluster.local"];
    assert_eq!(c["transportSocket"]["name"], "envoy.transport_sockets.tls");
    // Sidecars never see the gateway-only VirtualService.
    assert!(s.route_tables.is_empty(), "{:?}", s.route_tables);
}

#[test]
fn https_sni_redirect_passthrough_and_tcp() {
    let s = yaml_snapshot(&[
        testdata("platform.yaml"),
        testdata("gateways.yaml"),
        secret("istio-system", "bookinfo-credential", "bookinfo", false),
        secret("istio-system", "httpbin-credential", "httpbin", true),
    ]);
    assert!(s.diagnostics.is_empty(), "{:?}", s.diagnostics);
    let j = golden("gateway_secure", &s, &gateway_proxy(&s));
    let listeners: Vec<&String> = j["lds"].as_object().unwrap().keys().collect();
    assert_eq!(
        listeners,
        [
            "0.0.0.0_31400",
            "0.0.0.0_8081",
            "0.0.0.0_8443",
            "0.0.0.0_9443"
        ]
    );
    // HTTPS: one chain per host, each with its own Secret over ADS.
    let simple = chain(
        &j,
        "0.0.0.0_8443",
        "https.8443.https-bookinfo.secure-gateway.default",
    );
    assert_eq!(
        simple["filterChainMatch"]["serverNames"],
        serde_json::json!(["bookinfo.example.com"])
    );
    let ctx = &simple["transportSocket"]["typedConfig"];
    assert_eq!(
        ctx["commonTlsContext"]["tlsCertificateSdsSecretConfigs"][0]["name"],
        "kubernetes://bookinfo-credential"
    );
    assert_eq!(
        ctx["commonTlsContext"]["tlsParams"]["tlsMinimumProtocolVersion"],
        "TLSv1_2"
    );
    let chains = j["lds"]["0.0.0.0_8443"]["filterChains"].as_array().unwrap();
    let mutual = chains
        .iter()
        .find(|c| c["filterChainMatch"]["serverNames"][0] == "httpbin.example.com")
        .expect("httpbin chain");
    let m = &mutual["transportSocket"]["typedConfig"];
    assert_eq!(m["requireClientCertificate"], true);
    assert_eq!(
        m["commonTlsContext"]["combinedValidationContext"]["validationContextSdsSecretConfig"]
            ["name"],
        "kubernetes://httpbin-credential-cacert"
    );
    // The gateway's SDS holds both credentials (its own namespace's).
    assert!(j["sds"]["kubernetes://bookinfo-credential"].is_object());
    assert!(j["sds"]["kubernetes://httpbin-credential-cacert"].is_object());
    // httpsRedirect: the virtual host requires TLS (Envoy answers 301).
    let names: Vec<&String> = j["rds"].as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        [
            "http.8081",
            "https.8443.https-bookinfo.secure-gateway.default",
            "https.8443.https-httpbin.secure-gateway.default"
        ],
        "one route configuration per HTTPS server"
    );
    let vh = &j["rds"]["http.8081"]["virtualHosts"][0];
    assert_eq!(vh["requireTls"], "ALL");
    // PASSTHROUGH: by SNI to the TLS server, no termination.
    let pt = &j["lds"]["0.0.0.0_9443"]["filterChains"][0];
    assert_eq!(
        pt["filterChainMatch"]["serverNames"],
        serde_json::json!(["nginx.example.com"])
    );
    assert!(pt.get("transportSocket").is_none());
    assert_eq!(
        pt["filters"][0]["typedConfig"]["cluster"],
        "outbound|8443||nginx.default.svc.cluster.local"
    );
    // TCP.
    let tcp = &j["lds"]["0.0.0.0_31400"]["filterChains"][0];
    assert_eq!(
        tcp["filters"][0]["typedConfig"]["cluster"],
        "outbound|9000||tcp-echo.default.svc.cluster.local"
    );
}

#[test]
fn a_missing_secret_is_a_warning_and_the_other_servers_keep_serving() {
    let s = yaml_snapshot(&[
        testdata("platform.yaml"),
        testdata("gateways.yaml"),
        secret("istio-system", "bookinfo-credential", "bookinfo", false),
    ]);
    let warnings: Vec<String> = s.diagnostics.iter().map(|d| d.to_string()).collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("Gateway default/secure-gateway")
                && w.contains("spec.servers[1].tls.credentialName")
                && w.contains("istio-system/httpbin-credential")),
        "{warnings:#?}"
    );
    let res = rudder_xds::Generator::new(s.clone())
        .generate_checked(&gateway_proxy(&s))
        .expect("consistent");
    let lds = res.of(rudder_xds::TypeUrl::Listener).unwrap();
    assert!(lds.contains_key("0.0.0.0_8080") || lds.contains_key("0.0.0.0_8443"));
    assert_eq!(lds.len(), 4, "every server keeps its listener");
}

#[test]
fn a_gateway_selecting_no_pod_leaves_the_gateway_empty() {
    let other = testdata("bookinfo-gateway.yaml").replace("istio: ingressgateway", "istio: other");
    let s = yaml_snapshot(&[testdata("platform.yaml"), other]);
    let res = generate(&s, &gateway_proxy(&s));
    assert!(res.of(rudder_xds::TypeUrl::Listener).unwrap().is_empty());
    assert!(res.of(rudder_xds::TypeUrl::Route).unwrap().is_empty());
}
