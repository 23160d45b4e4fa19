//! Shared by the integration tests: the bookinfo-like fixture, golden files and
//! `envoy --mode validate`.
#![allow(dead_code)]

pub mod loopback;

use std::{path::PathBuf, sync::Arc};

use prost::Message;
use rudder_model::{Proxy, RouteTable, Snapshot, TrafficPolicy};
use rudder_xds::{
    check_consistency, fixtures::*, to_json, to_static_bootstrap, Generator, ProxyResources,
};
use serde_json::Value;

pub const NS: &str = "default";

/// The snapshot of YAML files (each its own file, in order) as the registry
/// builds it; every object must load (no problems, rejections or
/// unsupported kinds).
pub fn yaml_snapshot(files: &[String]) -> Arc<Snapshot> {
    let mut objects = Vec::new();
    for (i, text) in files.iter().enumerate() {
        let name = format!("file{i}.yaml");
        let l = rudder_registry::load::load_str(text, &name, &name);
        assert!(
            l.problems.is_empty() && l.rejected.is_empty() && l.unsupported.is_empty(),
            "{:?} {:?} {:?}",
            l.problems,
            l.rejected,
            l.unsupported
        );
        objects.extend(l.objects);
    }
    Arc::new(rudder_registry::build::build_snapshot(&objects, vec![]))
}

pub fn host(name: &str) -> String {
    fqdn(name, NS)
}

/// productpage → reviews (v1, v2, v3) → ratings; mysql over TCP; a sleep client.
pub fn bookinfo() -> SnapshotBuilder {
    SnapshotBuilder::new()
        .service(mk_service(
            "productpage",
            NS,
            "198.19.0.10",
            vec![mk_port("http", 9080, 9080)],
            &[("app", "productpage")],
        ))
        .service(mk_service(
            "reviews",
            NS,
            "198.19.0.11",
            vec![mk_port("http", 9080, 9080)],
            &[("app", "reviews")],
        ))
        .service(mk_service(
            "ratings",
            NS,
            "198.19.0.12",
            vec![mk_port("http", 9080, 9080)],
            &[("app", "ratings")],
        ))
        .service(mk_service(
            "mysql",
            NS,
            "198.19.0.13",
            vec![mk_port("tcp-mysql", 3306, 3306)],
            &[("app", "mysql")],
        ))
        .pod(mk_pod(
            "productpage-v1",
            NS,
            "198.18.0.10",
            &[("app", "productpage"), ("version", "v1")],
        ))
        .pod(mk_pod(
            "reviews-v1",
            NS,
            "198.18.0.11",
            &[("app", "reviews"), ("version", "v1")],
        ))
        .pod(mk_pod(
            "reviews-v2",
            NS,
            "198.18.0.12",
            &[("app", "reviews"), ("version", "v2")],
        ))
        .pod(mk_pod(
            "reviews-v3",
            NS,
            "198.18.0.13",
            &[("app", "reviews"), ("version", "v3")],
        ))
        .pod(mk_pod(
            "ratings-v1",
            NS,
            "198.18.0.14",
            &[("app", "ratings"), ("version", "v1")],
        ))
        .pod(mk_pod(
            "mysql-v1",
            NS,
            "198.18.0.15",
            &[("app", "mysql"), ("version", "v1")],
        ))
        .pod(mk_pod(
            "mysql-v2",
            NS,
            "198.18.0.16",
            &[("app", "mysql"), ("version", "v2")],
        ))
        .pod(mk_pod("sleep", NS, "198.18.0.20", &[("app", "sleep")]))
}

/// Bookinfo with subsets v1..v3 on reviews and `tables` added.
pub fn with_reviews_rules(tables: Vec<RouteTable>) -> Arc<Snapshot> {
    let mut b = bookinfo().policy(mk_policy(
        NS,
        &host("reviews"),
        &["v1", "v2", "v3"],
        TrafficPolicy::default(),
    ));
    for t in tables {
        b = b.route_table(t);
    }
    b.build()
}

/// A VirtualService for reviews with these HTTP routes.
pub fn reviews_vs(http: Vec<rudder_model::HttpRoute>) -> RouteTable {
    mk_route_table(NS, "reviews", &[&host("reviews")], http, vec![])
}

pub fn proxy(snapshot: &Snapshot, pod: &str) -> Proxy {
    mk_proxy(snapshot, NS, pod)
}

pub fn generate(snapshot: &Arc<Snapshot>, proxy: &Proxy) -> ProxyResources {
    Generator::new(snapshot.clone()).generate(proxy)
}

/// Generates, checks consistency, compares with `testdata/<case>.json`
/// (rewritten with REFRESH_GOLDEN=1), validates with Envoy; returns the JSON.
pub fn golden(case: &str, snapshot: &Arc<Snapshot>, proxy: &Proxy) -> Value {
    let res = generate(snapshot, proxy);
    if let Err(problems) = check_consistency(&res) {
        panic!("{case}: inconsistent resources:\n{}", problems.join("\n"));
    }
    record_versions(case, &res);
    let json = to_json(&res);
    let text = serde_json::to_string_pretty(&json).unwrap() + "\n";
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(format!("{case}.json"));
    rudder_test_support::assert_golden(&path, &text);
    envoy_validate(case, &res);
    json
}

/// Records a case's resources in this test binary's [`VersionLedger`] and
/// fails on a version shared by different content or identical content under
/// two versions, against every case recorded before it.
pub fn record_versions(case: &str, res: &ProxyResources) {
    static LEDGER: std::sync::Mutex<Option<VersionLedger>> = std::sync::Mutex::new(None);
    let problems = LEDGER
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(VersionLedger::default)
        .record(case, res);
    assert!(
        problems.is_empty(),
        "same version must mean same content:\n{}",
        problems.join("\n")
    );
}

/// Runs `envoy --mode validate` on the resources as a static bootstrap.
pub fn envoy_validate(case: &str, res: &ProxyResources) {
    if let Some(Err(text)) = envoy_check(case, res) {
        panic!("{case}: Envoy rejects the generated config:\n{text}");
    }
}

/// `envoy --mode validate`: `None` when Envoy is missing (outside CI),
/// else `Ok` or Envoy's complaint.
pub fn envoy_check(case: &str, res: &ProxyResources) -> Option<Result<(), String>> {
    let bin = rudder_test_support::envoy_bin(case)?;
    let mut bootstrap = to_static_bootstrap(res).unwrap_or_else(|e| panic!("{case}: {e}"));
    add_test_secrets(&mut bootstrap);
    Some(envoy_validate_bootstrap(&bin, case, &bootstrap))
}

/// The routes of a virtual host in an outbound route configuration: the
/// service's own `<host>:<port>` (services with a VIP), else the port's.
pub fn vhost_routes<'a>(json: &'a Value, port: u16, host: &str) -> &'a Vec<Value> {
    let own = &json["rds"][format!("{host}:{port}")];
    let table = if own.is_null() {
        &json["rds"][port.to_string()]
    } else {
        own
    };
    let vhosts = table["virtualHosts"]
        .as_array()
        .expect("route config has virtual hosts");
    let vh = vhosts
        .iter()
        .find(|v| v["name"] == format!("{host}:{port}"))
        .unwrap_or_else(|| panic!("no vhost {host}"));
    vh["routes"].as_array().expect("routes")
}

/// The names of a listener's chains, in order.
pub fn chain_names(j: &Value, listener: &str) -> Vec<String> {
    j["lds"][listener]["filterChains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// The filter chain of a listener with this name.
pub fn chain<'a>(json: &'a Value, listener: &str, name: &str) -> &'a Value {
    json["lds"][listener]["filterChains"]
        .as_array()
        .expect("filter chains")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no chain {name} in {listener}"))
}

/// Where the test certificate files live (fixed, so DestinationRule SIMPLE and
/// MUTUAL goldens can name them and `envoy --mode validate` can read them).
pub const TEST_CERT_DIR: &str = "/tmp/rudder-xds-test-certs";

/// A self-signed CA certificate and key made with rcgen (PEM), once per test
/// process, also written to [`TEST_CERT_DIR`] as `cert-chain.pem`, `key.pem`
/// and `root-cert.pem` (atomically: tests run in parallel).
pub fn test_pems() -> &'static (String, String) {
    static PEMS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    PEMS.get_or_init(|| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["rudder-test".to_string()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        let pems = (cert.pem(), key.serialize_pem());
        std::fs::create_dir_all(TEST_CERT_DIR).unwrap();
        for (name, text) in [
            ("cert-chain.pem", &pems.0),
            ("key.pem", &pems.1),
            ("root-cert.pem", &pems.0),
        ] {
            let tmp = format!("{TEST_CERT_DIR}/.{name}.{}", std::process::id());
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, format!("{TEST_CERT_DIR}/{name}")).unwrap();
        }
        pems
    })
}

/// What the agent's bootstrap provides beside pilot's resources: the static
/// secrets `default` and `ROOTCA` (file mode) and the `sds-grpc` cluster to
/// the agent's socket (SDS mode), so TLS contexts naming them validate.
pub fn add_test_secrets(bootstrap: &mut envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap) {
    use envoy_types::pb::envoy::{
        config::{
            cluster::v3::{cluster, Cluster},
            core::v3::{
                address, data_source::Specifier, Address, DataSource, Http2ProtocolOptions, Pipe,
            },
            endpoint::v3::{
                lb_endpoint, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
            },
        },
        extensions::{
            transport_sockets::tls::v3::{
                secret, CertificateValidationContext, Secret, TlsCertificate,
            },
            upstreams::http::v3::http_protocol_options::{
                explicit_http_config::ProtocolConfig, ExplicitHttpConfig, UpstreamProtocolOptions,
            },
            upstreams::http::v3::HttpProtocolOptions,
        },
    };
    use rudder_model::{names, well_known};
    let (cert, key) = test_pems();
    // SDS subscriptions need a node identity, as the agent's bootstrap has.
    bootstrap
        .node
        .get_or_insert_with(|| envoy_types::pb::envoy::config::core::v3::Node {
            id: "sidecar~198.18.0.1~test.default~default.svc.cluster.local".into(),
            cluster: "test.default".into(),
            ..Default::default()
        });
    let inline = |s: &str| {
        Some(DataSource {
            specifier: Some(Specifier::InlineString(s.to_string())),
            ..Default::default()
        })
    };
    let sr = bootstrap
        .static_resources
        .get_or_insert_with(Default::default);
    sr.secrets.push(Secret {
        name: names::SECRET_DEFAULT.into(),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: inline(cert),
            private_key: inline(key),
            ..Default::default()
        })),
    });
    sr.secrets.push(Secret {
        name: names::SECRET_ROOTCA.into(),
        r#type: Some(secret::Type::ValidationContext(
            CertificateValidationContext {
                trusted_ca: inline(cert),
                ..Default::default()
            },
        )),
    });
    let h2 = HttpProtocolOptions {
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
            ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(
                    Http2ProtocolOptions::default(),
                )),
            },
        )),
        ..Default::default()
    };
    sr.clusters.push(Cluster {
        name: names::SDS_CLUSTER.into(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32,
        )),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: names::SDS_CLUSTER.into(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                        address: Some(Address {
                            address: Some(address::Address::Pipe(Pipe {
                                path: well_known::SDS_SOCKET_PATH.into(),
                                mode: 0,
                            })),
                        }),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        typed_extension_protocol_options: [(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_string(),
            envoy_types::pb::google::protobuf::Any {
                type_url: <HttpProtocolOptions as prost::Name>::type_url(),
                value: h2.encode_to_vec(),
            },
        )]
        .into(),
        ..Default::default()
    });
}

/// A `kubernetes.io/tls` Secret of the test credentials (`STEM.crt`,
/// `STEM.key`, and the CA when `with_ca`), in stringData.
pub fn tls_secret_yaml(ns: &str, name: &str, stem: &str, with_ca: bool) -> String {
    let block = |t: String| {
        let lines: Vec<String> = t.lines().map(|l| format!("    {l}")).collect();
        format!("|\n{}", lines.join("\n"))
    };
    let mut s = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: {}\n  tls.key: {}\n",
        block(test_credential(&format!("{stem}.crt"))),
        block(test_credential(&format!("{stem}.key")))
    );
    if with_ca {
        s.push_str(&format!("  ca.crt: {}\n", block(test_credential("ca.crt"))));
    }
    s
}

/// The ingress gateway of `testdata/gateway/platform.yaml`
/// (`istio-ingressgateway-0` in istio-system).
pub fn ingress_gateway_proxy(s: &Snapshot) -> Proxy {
    rudder_xds::resolve_proxy(
        s,
        rudder_model::NodeId::router(
            "198.18.3.2".parse().unwrap(),
            "istio-ingressgateway-0",
            "istio-system",
        ),
        &rudder_model::NodeMetadata::default(),
    )
}

/// The virtual host of a route configuration that serves `domain`.
pub fn vhost<'a>(rds: &'a Value, domain: &str) -> &'a Value {
    rds["virtualHosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["domains"].as_array().unwrap().iter().any(|d| d == domain))
        .unwrap_or_else(|| panic!("no virtual host {domain}: {rds}"))
}
