//! Golden tests of the DestinationRule fields Istio's meshes use (issue 14):
//! PASSTHROUGH, slow start, Maglev and the ring hash, keepalives, connection
//! lifetimes, the upstream protocol choices, local-origin outlier errors,
//! `insecureSkipVerify` and the upstream PROXY protocol. Each case is
//! validated by `envoy --mode validate`.

mod support;

use std::time::Duration;

use rudder_model::*;
use rudder_xds::fixtures::*;
use serde_json::{json, Value};
use support::*;

const OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

fn cluster<'a>(j: &'a Value, name: &str) -> &'a Value {
    let c = &j["cds"][name];
    assert!(!c.is_null(), "no cluster {name}");
    c
}

fn outbound(port: u16, svc: &str) -> String {
    format!("outbound|{port}||{}", host(svc))
}

fn with_policies(policies: Vec<(&str, TrafficPolicy)>) -> std::sync::Arc<Snapshot> {
    policies
        .into_iter()
        .fold(bookinfo(), |b, (svc, tp)| {
            b.policy(mk_policy(NS, &host(svc), &["v1"], tp))
        })
        .build()
}

#[test]
fn passthrough_is_an_original_dst_cluster() {
    let tp = TrafficPolicy {
        load_balancer: Some(LoadBalancer::Passthrough),
        ..Default::default()
    };
    let s = with_policies(vec![("reviews", tp)]);
    let j = golden("dr_passthrough", &s, &proxy(&s, "sleep"));
    for name in [
        outbound(9080, "reviews"),
        format!("outbound|9080|v1|{}", host("reviews")),
    ] {
        let c = cluster(&j, &name);
        assert_eq!(c["type"], "ORIGINAL_DST", "{name}");
        assert_eq!(c["lbPolicy"], "CLUSTER_PROVIDED", "{name}");
        assert!(c.get("edsClusterConfig").is_none(), "{c}");
    }
}

#[test]
fn slow_start_maglev_and_ring_hash() {
    let warm = |lb| TrafficPolicy {
        load_balancer: lb,
        slow_start: Some(SlowStart {
            window: Duration::from_secs(30),
            aggression: Some("1.5".into()),
            min_weight_percent: Some("10".into()),
        }),
        ..Default::default()
    };
    let hash = |minimum_ring_size, maglev| TrafficPolicy {
        load_balancer: Some(LoadBalancer::ConsistentHash {
            key: Some(HashKey::Header("x-user".into())),
            minimum_ring_size,
            maglev,
        }),
        ..Default::default()
    };
    let s = with_policies(vec![
        ("reviews", warm(Some(LoadBalancer::LeastRequest))),
        ("productpage", warm(None)),
        ("ratings", hash(None, Some(Some(65537)))),
        ("mysql", hash(Some(2048), None)),
    ]);
    let j = golden("dr_slow_start_hashing", &s, &proxy(&s, "sleep"));
    let slow = json!({
        "slowStartWindow": "30s",
        "aggression": {"defaultValue": 1.5, "runtimeKey": "upstream.slow_start.aggression"},
        "minWeightPercent": {"value": 10.0}
    });
    let reviews = cluster(&j, &outbound(9080, "reviews"));
    assert_eq!(reviews["lbPolicy"], "LEAST_REQUEST");
    assert_eq!(reviews["leastRequestLbConfig"]["slowStartConfig"], slow);
    let productpage = cluster(&j, &outbound(9080, "productpage"));
    assert_eq!(productpage["roundRobinLbConfig"]["slowStartConfig"], slow);
    let ratings = cluster(&j, &outbound(9080, "ratings"));
    assert_eq!(ratings["lbPolicy"], "MAGLEV");
    assert_eq!(ratings["maglevLbConfig"]["tableSize"], "65537");
    let mysql = cluster(&j, &outbound(3306, "mysql"));
    assert_eq!(mysql["lbPolicy"], "RING_HASH");
    assert_eq!(mysql["ringHashLbConfig"]["minimumRingSize"], "2048");
}

#[test]
fn keepalive_lifetimes_and_upstream_protocols() {
    let pool = |p: ConnectionPool| TrafficPolicy {
        connection_pool: Some(p),
        ..Default::default()
    };
    let s = with_policies(vec![
        (
            "reviews",
            pool(ConnectionPool {
                tcp_keepalive: Some(TcpKeepalive {
                    probes: Some(3),
                    time_secs: Some(600),
                    interval_secs: Some(75),
                }),
                max_connection_duration: Some(Duration::from_secs(3600)),
                use_client_protocol: true,
                ..Default::default()
            }),
        ),
        (
            "ratings",
            TrafficPolicy {
                tls: Some(ClientTls::IstioMutual),
                ..pool(ConnectionPool {
                    h2_upgrade: Some(H2Upgrade::Upgrade),
                    max_concurrent_streams: Some(200),
                    ..Default::default()
                })
            },
        ),
        (
            "mysql",
            pool(ConnectionPool {
                idle_timeout: Some(Duration::from_secs(300)),
                tcp_idle_timeout: Some(Duration::from_secs(300)),
                max_connection_duration: Some(Duration::from_secs(7200)),
                tcp_keepalive: Some(TcpKeepalive::default()),
                ..Default::default()
            }),
        ),
    ]);
    let j = golden("dr_connection_pool", &s, &proxy(&s, "sleep"));
    let reviews = cluster(&j, &outbound(9080, "reviews"));
    assert_eq!(
        reviews["upstreamConnectionOptions"]["tcpKeepalive"],
        json!({"keepaliveProbes": 3, "keepaliveTime": 600, "keepaliveInterval": 75})
    );
    let opts = &reviews["typedExtensionProtocolOptions"][OPTIONS];
    assert_eq!(
        opts["commonHttpProtocolOptions"],
        json!({"maxConnectionDuration": "3600s"})
    );
    assert_eq!(
        opts["useDownstreamProtocolConfig"],
        json!({"httpProtocolOptions": {}, "http2ProtocolOptions": {}})
    );
    let ratings =
        &cluster(&j, &outbound(9080, "ratings"))["typedExtensionProtocolOptions"][OPTIONS];
    assert_eq!(
        ratings["explicitHttpConfig"],
        json!({"http2ProtocolOptions": {"maxConcurrentStreams": 200}})
    );
    // Upgraded to HTTP/2: the mesh TLS offers h2 as on an http2 port.
    let alpn = &cluster(&j, &outbound(9080, "ratings"))["transportSocket"]["typedConfig"]
        ["commonTlsContext"]["alpnProtocols"];
    assert_eq!(alpn, &json!(["istio", "h2"]));
    let mysql = cluster(&j, &outbound(3306, "mysql"));
    assert_eq!(
        mysql["upstreamConnectionOptions"]["tcpKeepalive"],
        json!({})
    );
    assert_eq!(
        mysql["typedExtensionProtocolOptions"][OPTIONS]["commonHttpProtocolOptions"],
        json!({"idleTimeout": "300s", "maxConnectionDuration": "7200s"})
    );
    // Istio also sets the host-level TCP timeouts on the service's tcp_proxy.
    let tcp = &chain(&j, "198.19.0.13_3306", &outbound(3306, "mysql"))["filters"][0]["typedConfig"];
    assert_eq!(tcp["idleTimeout"], "300s");
    assert_eq!(tcp["maxDownstreamConnectionDuration"], "7200s");
}

#[test]
fn local_origin_errors_counted_apart() {
    let tp = TrafficPolicy {
        outlier_detection: Some(OutlierDetection {
            consecutive_5xx_errors: Some(5),
            split_external_local_origin_errors: true,
            consecutive_local_origin_failures: Some(3),
            ..Default::default()
        }),
        ..Default::default()
    };
    let s = with_policies(vec![("reviews", tp)]);
    let j = golden("dr_local_origin", &s, &proxy(&s, "sleep"));
    let od = &cluster(&j, &outbound(9080, "reviews"))["outlierDetection"];
    assert_eq!(od["splitExternalLocalOriginErrors"], true);
    assert_eq!(od["consecutiveLocalOriginFailure"], 3);
    assert_eq!(od["enforcingConsecutiveLocalOriginFailure"], 100);
    assert_eq!(od["enforcingLocalOriginSuccessRate"], 0);
}

#[test]
fn insecure_skip_verify_drops_the_validation_context() {
    let simple = |insecure_skip_verify| TrafficPolicy {
        tls: Some(ClientTls::Simple {
            sni: Some("ratings.example.com".into()),
            ca_certificates: Some(format!("{TEST_CERT_DIR}/root-cert.pem")),
            subject_alt_names: vec!["ratings.example.com".into()],
            insecure_skip_verify,
        }),
        ..Default::default()
    };
    test_pems();
    let s = with_policies(vec![("ratings", simple(true)), ("reviews", simple(false))]);
    let j = golden("dr_insecure_skip_verify", &s, &proxy(&s, "sleep"));
    let ctx = |svc| {
        cluster(&j, &outbound(9080, svc))["transportSocket"]["typedConfig"]["commonTlsContext"]
            .clone()
    };
    assert!(
        ctx("ratings").get("validationContext").is_none(),
        "{}",
        ctx("ratings")
    );
    assert!(ctx("reviews").get("validationContext").is_some());
}

#[test]
fn proxy_protocol_wraps_the_transport_socket() {
    let pp = |v| TrafficPolicy {
        proxy_protocol: Some(v),
        ..Default::default()
    };
    let tls = TrafficPolicy {
        tls: Some(ClientTls::IstioMutual),
        ..pp(ProxyProtocol::V2)
    };
    let s = with_policies(vec![("mysql", pp(ProxyProtocol::V1)), ("reviews", tls)]);
    let j = golden("dr_proxy_protocol", &s, &proxy(&s, "sleep"));
    let socket = |svc, port| cluster(&j, &outbound(port, svc))["transportSocket"].clone();
    let mysql = socket("mysql", 3306);
    assert_eq!(
        mysql["name"],
        "envoy.transport_sockets.upstream_proxy_protocol"
    );
    assert_eq!(
        mysql["typedConfig"]["config"],
        json!({}),
        "V1 is the default"
    );
    assert_eq!(
        mysql["typedConfig"]["transportSocket"]["name"],
        "envoy.transport_sockets.raw_buffer"
    );
    let reviews = socket("reviews", 9080);
    assert_eq!(reviews["typedConfig"]["config"], json!({"version": "V2"}));
    assert_eq!(
        reviews["typedConfig"]["transportSocket"]["name"],
        "envoy.transport_sockets.tls"
    );
}
