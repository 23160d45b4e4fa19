//! Golden tests of mTLS and authorization (issue 9): outbound TLS (auto mTLS,
//! DestinationRule modes), inbound chains per PeerAuthentication mode, RBAC
//! per AuthorizationPolicy shape, and SDS-mode secret references. Each writes
//! `testdata/<case>.json` (REFRESH_GOLDEN=1), is accepted by `envoy --mode
//! validate` (with the static secrets and `sds-grpc` cluster an agent's
//! bootstrap has), and asserts the fields that carry the feature.
//!
//! Policies are written as Istio YAML and compiled by the registry, so these
//! tests cover the whole pipeline from a user's policy to Envoy's config.

mod support;

use rudder_config::{AuthorizationPolicySpec, PeerAuthenticationSpec};
use rudder_model::{node::CertMode, *};
use rudder_registry::{check::Checker, compile::security, Kind, ObjectKey, Origin};
use rudder_xds::fixtures::*;
use serde_json::{json, Value};
use support::*;

const ROOT: &str = "rudder-system";

fn meshed(mut w: Workload, sa: &str) -> Workload {
    w.labels
        .insert(well_known::TLS_MODE_LABEL.into(), "istio".into());
    w.service_account = sa.into();
    w
}

/// httpbin (HTTP 8000), tcp-echo (TCP 9000), details (HTTP 9080 + TCP 9090);
/// every pod meshed, each with its own service account; a meshed sleep client.
fn mesh() -> SnapshotBuilder {
    SnapshotBuilder::new()
        .service(mk_service(
            "httpbin",
            NS,
            "198.19.1.1",
            vec![mk_port("http", 8000, 8000)],
            &[("app", "httpbin")],
        ))
        .service(mk_service(
            "tcp-echo",
            NS,
            "198.19.1.2",
            vec![mk_port("tcp", 9000, 9000)],
            &[("app", "tcp-echo")],
        ))
        .service(mk_service(
            "details",
            NS,
            "198.19.1.3",
            vec![
                mk_port("http", 9080, 9080),
                mk_port("tcp-admin", 9090, 9090),
            ],
            &[("app", "details")],
        ))
        .pod(meshed(
            mk_pod(
                "httpbin-v1",
                NS,
                "198.18.1.1",
                &[("app", "httpbin"), ("version", "v1")],
            ),
            "httpbin",
        ))
        .pod(meshed(
            mk_pod("tcp-echo-0", NS, "198.18.1.2", &[("app", "tcp-echo")]),
            "tcp-echo",
        ))
        .pod(meshed(
            mk_pod("details-0", NS, "198.18.1.3", &[("app", "details")]),
            "details",
        ))
        .pod(meshed(
            mk_pod("sleep", NS, "198.18.1.9", &[("app", "sleep")]),
            "sleep",
        ))
}

fn authz(ns: &str, name: &str, yaml: &str) -> AuthzPolicy {
    let spec: AuthorizationPolicySpec = serde_saphyr::from_str(yaml).expect("policy YAML parses");
    let key = ObjectKey::new(Kind::AuthorizationPolicy, ns, name);
    let mut ck = Checker::new(&key, &Origin::default());
    let p = security::authorization_policy(&spec, &key, &mut ck);
    assert!(!ck.has_errors(), "{:#?}", ck.diagnostics);
    p.expect("policy compiles")
}

fn peer(ns: &str, name: &str, yaml: &str) -> PeerAuthn {
    let spec: PeerAuthenticationSpec = serde_saphyr::from_str(yaml).expect("policy YAML parses");
    let key = ObjectKey::new(Kind::PeerAuthentication, ns, name);
    let mut ck = Checker::new(&key, &Origin::default());
    let p = security::peer_authentication(&spec, &key, Some(ROOT), &mut ck);
    assert!(!ck.has_errors(), "{:#?}", ck.diagnostics);
    p.expect("policy compiles")
}

fn tls_of(j: &Value, cluster: &str) -> Value {
    let ts = &j["cds"][cluster]["transportSocket"];
    assert_eq!(ts["name"], "envoy.transport_sockets.tls", "{cluster}: {ts}");
    ts["typedConfig"].clone()
}

/// The HTTP filter configs (by name, in order) of the HCM of a chain.
fn http_filters(chain: &Value) -> Vec<Value> {
    chain["filters"][0]["typedConfig"]["httpFilters"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn auto_mtls_to_meshed_destinations() {
    let s = mesh().build();
    let j = golden("sec_auto_mtls", &s, &proxy(&s, "sleep"));
    let t = tls_of(&j, "outbound|8000||httpbin.default.svc.cluster.local");
    assert_eq!(
        t["sni"],
        "outbound_.8000_._.httpbin.default.svc.cluster.local"
    );
    let common = &t["commonTlsContext"];
    assert_eq!(common["alpnProtocols"], json!(["istio"]));
    assert_eq!(
        common["tlsCertificateSdsSecretConfigs"],
        json!([{"name": "default"}])
    );
    let combined = &common["combinedValidationContext"];
    assert_eq!(
        combined["validationContextSdsSecretConfig"],
        json!({"name": "ROOTCA"})
    );
    assert_eq!(
        combined["defaultValidationContext"]["matchTypedSubjectAltNames"],
        json!([{"sanType": "URI", "matcher": {"exact": "spiffe://cluster.local/ns/default/sa/httpbin"}}])
    );
    // TCP destinations get mTLS too, and EDS marks the meshed endpoints.
    tls_of(&j, "outbound|9000||tcp-echo.default.svc.cluster.local");
    let ep = &j["eds"]["outbound|8000||httpbin.default.svc.cluster.local"]["endpoints"][0]
        ["lbEndpoints"][0];
    assert_eq!(
        ep["metadata"]["filterMetadata"]["envoy.transport_socket_match"],
        json!({"tlsMode": "istio"})
    );
    // Fixed clusters stay plaintext.
    assert!(j["cds"]["PassthroughCluster"]
        .get("transportSocket")
        .is_none());
}

#[test]
fn auto_mtls_with_some_endpoints_unmeshed_uses_socket_matches() {
    let s = mesh()
        .pod(mk_pod(
            "httpbin-legacy",
            NS,
            "198.18.1.20",
            &[("app", "httpbin"), ("version", "v0")],
        ))
        .build();
    let j = golden("sec_auto_mtls_mixed", &s, &proxy(&s, "sleep"));
    let c = &j["cds"]["outbound|8000||httpbin.default.svc.cluster.local"];
    assert!(c.get("transportSocket").is_none(), "{c}");
    let m = c["transportSocketMatches"].as_array().unwrap();
    assert_eq!(m[0]["match"], json!({"tlsMode": "istio"}));
    assert_eq!(
        m[0]["transportSocket"]["name"],
        "envoy.transport_sockets.tls"
    );
    assert_eq!(m[1]["match"], json!({}));
    assert_eq!(
        m[1]["transportSocket"]["name"],
        "envoy.transport_sockets.raw_buffer"
    );
    let eps = j["eds"]["outbound|8000||httpbin.default.svc.cluster.local"]["endpoints"][0]
        ["lbEndpoints"]
        .as_array()
        .unwrap()
        .clone();
    let legacy = eps
        .iter()
        .find(|e| e["endpoint"]["address"]["socketAddress"]["address"] == "198.18.1.20")
        .unwrap();
    assert!(
        legacy.get("metadata").is_none(),
        "unmeshed endpoints carry no tlsMode"
    );
}

#[test]
fn destination_rule_tls_modes() {
    let dir = TEST_CERT_DIR;
    test_pems();
    let tp = |tls| TrafficPolicy {
        tls: Some(tls),
        ..Default::default()
    };
    let s = mesh()
        .service(mk_service(
            "legacy-db",
            NS,
            "198.19.1.4",
            vec![mk_port("tcp", 5432, 5432)],
            &[("app", "legacy-db")],
        ))
        .pod(mk_pod(
            "legacy-db-0",
            NS,
            "198.18.1.4",
            &[("app", "legacy-db")],
        ))
        .policy(mk_policy(
            NS,
            &host("httpbin"),
            &["v1"],
            tp(ClientTls::IstioMutual),
        ))
        .policy(mk_policy(
            NS,
            &host("tcp-echo"),
            &[],
            tp(ClientTls::Disable),
        ))
        .policy(mk_policy(
            NS,
            &host("details"),
            &[],
            tp(ClientTls::Simple {
                sni: Some("details.example.com".into()),
                ca_certificates: Some(format!("{dir}/root-cert.pem")),
                subject_alt_names: vec!["details.example.com".into()],
                insecure_skip_verify: false,
            }),
        ))
        .policy(mk_policy(
            NS,
            &host("legacy-db"),
            &[],
            tp(ClientTls::Mutual {
                client_certificate: format!("{dir}/cert-chain.pem"),
                private_key: format!("{dir}/key.pem"),
                ca_certificates: Some(format!("{dir}/root-cert.pem")),
                sni: None,
                subject_alt_names: vec![],
                insecure_skip_verify: false,
            }),
        ))
        .build();
    let j = golden("sec_dr_tls", &s, &proxy(&s, "sleep"));
    let v1 = tls_of(&j, "outbound|8000|v1|httpbin.default.svc.cluster.local");
    assert_eq!(
        v1["sni"],
        "outbound_.8000_.v1_.httpbin.default.svc.cluster.local"
    );
    assert!(
        j["cds"]["outbound|9000||tcp-echo.default.svc.cluster.local"]
            .get("transportSocket")
            .is_none(),
        "DISABLE wins over auto mTLS"
    );
    let simple = tls_of(&j, "outbound|9080||details.default.svc.cluster.local");
    assert_eq!(simple["sni"], "details.example.com");
    assert_eq!(
        simple["commonTlsContext"]["validationContext"],
        json!({"trustedCa": {"filename": format!("{dir}/root-cert.pem")},
               "matchTypedSubjectAltNames": [{"sanType": "DNS", "matcher": {"exact": "details.example.com"}}]})
    );
    let mutual = tls_of(&j, "outbound|5432||legacy-db.default.svc.cluster.local");
    assert_eq!(
        mutual["commonTlsContext"]["tlsCertificates"],
        json!([{"certificateChain": {"filename": format!("{dir}/cert-chain.pem")}, "privateKey": {"filename": format!("{dir}/key.pem")}}])
    );
}

#[test]
fn inbound_permissive_by_default_splits_by_transport() {
    let s = mesh().build();
    let j = golden("sec_inbound_permissive", &s, &proxy(&s, "httpbin-v1"));
    let names = chain_names(&j, "virtual");
    let at = names
        .iter()
        .position(|n| n == "inbound|8000|mtls")
        .expect("mtls chain");
    assert_eq!(
        names[at..at + 3],
        ["inbound|8000|mtls", "inbound|8000|tls", "inbound|8000"]
    );
    let mtls = chain(&j, "virtual", "inbound|8000|mtls");
    assert_eq!(mtls["filterChainMatch"]["transportProtocol"], "tls");
    assert!(mtls["filterChainMatch"]["applicationProtocols"]
        .as_array()
        .unwrap()
        .contains(&json!("istio")));
    let ctx = &mtls["transportSocket"]["typedConfig"];
    assert_eq!(ctx["requireClientCertificate"], true);
    let hcm = &mtls["filters"][0]["typedConfig"];
    assert_eq!(hcm["forwardClientCertDetails"], "APPEND_FORWARD");
    assert_eq!(hcm["setCurrentClientCertDetails"], json!({"uri": true}));
    assert!(
        chain(&j, "virtual", "inbound|8000")["filterChainMatch"]
            .get("transportProtocol")
            .is_none(),
        "plaintext chain takes raw_buffer and inspector timeouts alike"
    );
    assert_eq!(j["lds"]["virtual"]["listenerFiltersTimeout"], "1s");
    assert_eq!(
        j["lds"]["virtual"]["continueOnListenerFiltersTimeout"],
        true
    );
    let app_tls = chain(&j, "virtual", "inbound|8000|tls");
    assert_eq!(
        app_tls["filters"][0]["name"],
        "envoy.filters.network.tcp_proxy"
    );
    let lf = j["lds"]["virtual"]["listenerFilters"].as_array().unwrap();
    assert_eq!(lf[1]["name"], "envoy.filters.listener.tls_inspector");
    assert_eq!(
        lf[1]["filterDisabled"],
        json!({"notMatch": {"destinationPortRange": {"start": 8000, "end": 8001}}})
    );
}

#[test]
fn inbound_strict_requires_mtls() {
    let s = mesh()
        .peer_authentication(peer(NS, "default", "mtls: {mode: STRICT}"))
        .build();
    let j = golden("sec_inbound_strict", &s, &proxy(&s, "httpbin-v1"));
    let names = chain_names(&j, "virtual");
    assert!(names.contains(&"inbound|8000|mtls".to_string()));
    assert!(
        !names.contains(&"inbound|8000".to_string()),
        "no plaintext chain: {names:?}"
    );
    let mtls = chain(&j, "virtual", "inbound|8000|mtls");
    assert!(
        mtls["filterChainMatch"].get("transportProtocol").is_none(),
        "any transport: plaintext fails the handshake"
    );
    assert_eq!(
        mtls["transportSocket"]["typedConfig"]["requireClientCertificate"],
        true
    );
    assert!(
        j["lds"]["virtual"]["listenerFilters"]
            .as_array()
            .unwrap()
            .len()
            == 1,
        "no TLS inspector needed"
    );
    // Ports no Service declares are STRICT too.
    let pass = chain(&j, "virtual", "inbound-passthrough");
    assert_eq!(
        pass["transportSocket"]["typedConfig"]["requireClientCertificate"],
        true
    );
    assert_eq!(
        pass["filters"][0]["typedConfig"]["cluster"],
        "InboundPassthroughCluster"
    );
}

#[test]
fn inbound_disable_is_plaintext_even_under_strict_mesh() {
    let s = mesh()
        .peer_authentication(peer(ROOT, "mesh", "mtls: {mode: STRICT}"))
        .peer_authentication(peer(NS, "default", "mtls: {mode: DISABLE}"))
        .build();
    let j = golden("sec_inbound_disable", &s, &proxy(&s, "httpbin-v1"));
    let plain = chain(&j, "virtual", "inbound|8000");
    assert!(plain.get("transportSocket").is_none());
    assert!(plain["filterChainMatch"].get("transportProtocol").is_none());
    assert!(!chain_names(&j, "virtual").contains(&"inbound|8000|mtls".to_string()));
}

#[test]
fn port_level_mtls_overrides_workload_mode() {
    let s = mesh()
        .peer_authentication(peer(
            NS,
            "details",
            "selector: {matchLabels: {app: details}}\nmtls: {mode: STRICT}\nportLevelMtls:\n  9090: {mode: DISABLE}\n",
        ))
        .build();
    let j = golden("sec_port_level_mtls", &s, &proxy(&s, "details-0"));
    let names = chain_names(&j, "virtual");
    assert!(
        names.contains(&"inbound|9080|mtls".to_string())
            && !names.contains(&"inbound|9080".to_string())
    );
    assert!(
        names.contains(&"inbound|9090".to_string())
            && !names.contains(&"inbound|9090|mtls".to_string())
    );
}

/// The RBAC filter configs of a chain's HCM, in order: `(action, policies)`.
fn http_rbac(chain: &Value) -> Vec<(String, Value)> {
    http_filters(chain)
        .iter()
        .filter(|f| f["name"] == "envoy.filters.http.rbac")
        .map(|f| {
            let rules = &f["typedConfig"]["rules"];
            (
                rules["action"].as_str().unwrap_or("ALLOW").to_string(),
                rules["policies"].clone(),
            )
        })
        .collect()
}

#[test]
fn authz_allow_by_principal() {
    let p = authz(
        NS,
        "allow-sleep",
        "selector: {matchLabels: {app: httpbin}}\nrules:\n- from:\n  - source: {principals: [cluster.local/ns/default/sa/sleep]}\n",
    );
    let s = mesh().authorization_policy(p).build();
    let j = golden("sec_authz_allow_principal", &s, &proxy(&s, "httpbin-v1"));
    for name in ["inbound|8000|mtls", "inbound|8000"] {
        let rbac = http_rbac(chain(&j, "virtual", name));
        assert_eq!(rbac.len(), 1, "{name}");
        assert_eq!(rbac[0].0, "ALLOW");
        assert_eq!(
            rbac[0].1["ns[default]-policy[allow-sleep]-rule[0]"],
            json!({"permissions": [{"any": true}],
                   "principals": [{"authenticated": {"principalName": {"exact": "spiffe://cluster.local/ns/default/sa/sleep"}}}]})
        );
        assert_eq!(
            http_filters(chain(&j, "virtual", name))[0]["name"],
            "envoy.filters.http.rbac",
            "RBAC before router"
        );
    }
    // Ports no Service declares are guarded too (network RBAC), and stay plaintext under PERMISSIVE.
    let pass = chain(&j, "virtual", "inbound-passthrough");
    assert_eq!(pass["filters"][0]["name"], "envoy.filters.network.rbac");
    assert!(pass.get("transportSocket").is_none());
    // The policy selects httpbin only.
    let other = golden("sec_authz_not_selected", &s, &proxy(&s, "details-0"));
    assert!(http_rbac(chain(&other, "virtual", "inbound|9080|mtls")).is_empty());
}

#[test]
fn authz_allow_by_namespace() {
    let p = authz(
        ROOT,
        "from-prod",
        "rules:\n- from:\n  - source: {namespaces: [prod, \"test-*\"]}\n",
    );
    let s = mesh().authorization_policy(p).build();
    let j = golden("sec_authz_allow_namespace", &s, &proxy(&s, "httpbin-v1"));
    let rbac = http_rbac(chain(&j, "virtual", "inbound|8000|mtls"));
    let pol = &rbac[0].1["ns[rudder-system]-policy[from-prod]-rule[0]"];
    assert_eq!(
        pol["principals"][0]["orIds"]["ids"][0]["authenticated"]["principalName"]["safeRegex"]
            ["regex"],
        "spiffe://[^/]+/ns/prod/sa/[^/]+"
    );
    assert_eq!(
        pol["principals"][0]["orIds"]["ids"][1]["authenticated"]["principalName"]["safeRegex"]
            ["regex"],
        "spiffe://[^/]+/ns/test-[^/]*/sa/[^/]+"
    );
}

#[test]
fn authz_deny_by_path_comes_before_allow() {
    let deny = authz(
        NS,
        "no-admin",
        "action: DENY\nrules:\n- to:\n  - operation: {paths: [\"/admin*\"], methods: [POST]}\n",
    );
    let allow_nothing = authz(NS, "allow-nothing", "{}");
    let s = mesh()
        .authorization_policy(deny)
        .authorization_policy(allow_nothing)
        .build();
    let j = golden("sec_authz_deny_path", &s, &proxy(&s, "httpbin-v1"));
    let rbac = http_rbac(chain(&j, "virtual", "inbound|8000"));
    assert_eq!(
        rbac.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ["DENY", "ALLOW"]
    );
    let pol = &rbac[0].1["ns[default]-policy[no-admin]-rule[0]"];
    let and = &pol["permissions"][0]["andRules"]["rules"];
    assert_eq!(
        and[0],
        json!({"header": {"name": ":method", "stringMatch": {"exact": "POST"}}})
    );
    assert_eq!(and[1], json!({"urlPath": {"path": {"prefix": "/admin"}}}));
    assert_eq!(
        rbac[1].1,
        Value::Null,
        "ALLOW without rules: no policies, everything denied"
    );
}

#[test]
fn authz_ip_blocks() {
    let p = authz(
        NS,
        "ips",
        "rules:\n- from:\n  - source: {ipBlocks: [198.18.0.0/16], notIpBlocks: [198.18.1.66]}\n",
    );
    let s = mesh().authorization_policy(p).build();
    let j = golden("sec_authz_ip_blocks", &s, &proxy(&s, "httpbin-v1"));
    let rbac = http_rbac(chain(&j, "virtual", "inbound|8000"));
    let ids = &rbac[0].1["ns[default]-policy[ips]-rule[0]"]["principals"][0]["andIds"]["ids"];
    assert_eq!(
        ids[0],
        json!({"directRemoteIp": {"addressPrefix": "198.18.0.0", "prefixLen": 16}})
    );
    assert_eq!(
        ids[1],
        json!({"notId": {"directRemoteIp": {"addressPrefix": "198.18.1.66", "prefixLen": 32}}})
    );
}

#[test]
fn authz_when_request_header() {
    let p = authz(NS, "token", "rules:\n- when:\n  - {key: \"request.headers[X-Token]\", values: [secret], notValues: [\"bad*\"]}\n");
    let s = mesh().authorization_policy(p).build();
    let j = golden("sec_authz_when_header", &s, &proxy(&s, "httpbin-v1"));
    let rbac = http_rbac(chain(&j, "virtual", "inbound|8000"));
    let perms =
        &rbac[0].1["ns[default]-policy[token]-rule[0]"]["permissions"][0]["andRules"]["rules"];
    assert_eq!(
        perms[0],
        json!({"header": {"name": "x-token", "stringMatch": {"exact": "secret"}}})
    );
    assert_eq!(
        perms[1],
        json!({"notRule": {"header": {"name": "x-token", "stringMatch": {"prefix": "bad"}}}})
    );
}

#[test]
fn authz_audit_logs_first_and_destination_conditions() {
    // AUDIT is Envoy's RBAC LOG action, before DENY and ALLOW (Istio's order);
    // `destination.ip` and `connection.sni` are permissions.
    let audit = authz(NS, "audit", "action: AUDIT\nrules:\n- when:\n  - {key: destination.ip, values: [198.18.1.0/24]}\n  - {key: connection.sni, notValues: [\"*.internal\"]}\n");
    let deny = authz(
        NS,
        "no-admin",
        "action: DENY\nrules:\n- to:\n  - operation: {paths: [\"/admin\"]}\n",
    );
    let s = mesh()
        .authorization_policy(deny)
        .authorization_policy(audit)
        .build();
    let j = golden("sec_authz_audit", &s, &proxy(&s, "httpbin-v1"));
    let rbac = http_rbac(chain(&j, "virtual", "inbound|8000"));
    assert_eq!(
        rbac.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ["LOG", "DENY"]
    );
    let perms =
        &rbac[0].1["ns[default]-policy[audit]-rule[0]"]["permissions"][0]["andRules"]["rules"];
    assert_eq!(
        perms[0],
        json!({"destinationIp": {"addressPrefix": "198.18.1.0", "prefixLen": 24}})
    );
    assert_eq!(
        perms[1],
        json!({"notRule": {"requestedServerName": {"suffix": ".internal"}}})
    );
    // TCP chains get the network filter with its own stat prefix.
    let pass = chain(&j, "virtual", "inbound-passthrough");
    assert_eq!(
        pass["filters"][0]["typedConfig"]["statPrefix"],
        "tcp.rbac_audit."
    );
}

#[test]
fn authz_on_tcp_uses_network_rbac() {
    let allow = authz(
        NS,
        "tcp-allow",
        "rules:\n- from:\n  - source: {principals: [\"cluster.local/ns/default/sa/*\"]}\n  to:\n  - operation: {ports: [\"9000\"]}\n- to:\n  - operation: {methods: [GET]}\n",
    );
    let deny = authz(NS, "tcp-deny", "action: DENY\nrules:\n- from:\n  - source: {notNamespaces: [default]}\n  to:\n  - operation: {paths: [/x]}\n");
    let s = mesh()
        .authorization_policy(allow)
        .authorization_policy(deny)
        .build();
    let j = golden("sec_authz_tcp", &s, &proxy(&s, "tcp-echo-0"));
    for name in ["inbound|9000|mtls", "inbound|9000"] {
        let filters = chain(&j, "virtual", name)["filters"]
            .as_array()
            .unwrap()
            .clone();
        let names: Vec<&str> = filters
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "envoy.filters.network.rbac",
                "envoy.filters.network.rbac",
                "envoy.filters.network.tcp_proxy"
            ]
        );
        let deny = &filters[0]["typedConfig"]["rules"];
        assert_eq!(deny["action"], "DENY");
        assert_eq!(
            deny["policies"]["ns[default]-policy[tcp-deny]-rule[0]"]["permissions"],
            json!([{"any": true}]),
            "HTTP-only fields dropped from a DENY rule on TCP"
        );
        let allow = &filters[1]["typedConfig"]["rules"];
        let policies = allow["policies"].as_object().unwrap();
        assert_eq!(
            policies.keys().collect::<Vec<_>>(),
            ["ns[default]-policy[tcp-allow]-rule[0]"],
            "HTTP-only ALLOW rule dropped"
        );
        assert_eq!(
            policies["ns[default]-policy[tcp-allow]-rule[0]"],
            json!({"permissions": [{"destinationPort": 9000}],
                   "principals": [{"authenticated": {"principalName": {"prefix": "spiffe://cluster.local/ns/default/sa/"}}}]})
        );
    }
}

#[test]
fn sds_mode_points_secrets_at_the_agent() {
    let s = mesh().build();
    let mut p = proxy(&s, "httpbin-v1");
    p.cert_mode = CertMode::Sds;
    let j = golden("sec_sds_mode", &s, &p);
    let sds = json!({"name": "default", "sdsConfig": {"apiConfigSource": {
        "apiType": "GRPC", "transportApiVersion": "V3", "setNodeOnFirstMessageOnly": true,
        "grpcServices": [{"envoyGrpc": {"clusterName": "sds-grpc"}}]}, "resourceApiVersion": "V3"}});
    let t = tls_of(&j, "outbound|9000||tcp-echo.default.svc.cluster.local");
    assert_eq!(
        t["commonTlsContext"]["tlsCertificateSdsSecretConfigs"],
        json!([sds])
    );
    let root =
        &t["commonTlsContext"]["combinedValidationContext"]["validationContextSdsSecretConfig"];
    assert_eq!(root["name"], "ROOTCA");
    assert_eq!(root["sdsConfig"], sds["sdsConfig"]);
    let inbound = &chain(&j, "virtual", "inbound|8000|mtls")["transportSocket"]["typedConfig"]
        ["commonTlsContext"];
    assert_eq!(inbound["tlsCertificateSdsSecretConfigs"], json!([sds]));
}

#[test]
fn separate_inbound_listener_gets_the_same_security() {
    let p = authz(
        NS,
        "allow-sleep",
        "rules:\n- from:\n  - source: {principals: [cluster.local/ns/default/sa/sleep]}\n",
    );
    let s = mesh().authorization_policy(p).build();
    let mut px = proxy(&s, "httpbin-v1");
    px.inbound_capture_port = 15006;
    let j = golden("sec_virtual_inbound", &s, &px);
    assert_eq!(
        chain_names(&j, "virtualInbound")[..3],
        ["inbound|8000|mtls", "inbound|8000|tls", "inbound|8000"]
    );
    assert_eq!(
        j["lds"]["virtualInbound"]["listenerFilters"][1]["name"],
        "envoy.filters.listener.tls_inspector"
    );
    assert_eq!(
        j["lds"]["virtual"]["listenerFilters"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "outbound listener: no inspector"
    );
    let default = &j["lds"]["virtualInbound"]["defaultFilterChain"];
    assert_eq!(default["filters"][0]["name"], "envoy.filters.network.rbac");
    assert_eq!(
        http_rbac(chain(&j, "virtualInbound", "inbound|8000"))[0].0,
        "ALLOW"
    );
}
