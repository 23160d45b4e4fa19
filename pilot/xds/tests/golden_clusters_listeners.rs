//! Golden tests of clusters and listeners (CDS, EDS, LDS), one per feature: the whole ProxyResources as canonical JSON in
//! `testdata/<case>.json` (REFRESH_GOLDEN=1 rewrites), consistency-checked and
//! accepted by `envoy --mode validate`. Each test also asserts the feature's
//! key fields, so a careless refresh cannot hide a regression.

mod support;

use std::time::Duration;

use rudder_model::*;
use rudder_xds::fixtures::*;
use serde_json::json;
use support::*;

fn reviews_route(http: Vec<HttpRoute>) -> std::sync::Arc<Snapshot> {
    with_reviews_rules(vec![reviews_vs(http)])
}

#[test]
fn tcp_service_and_weighted_tcp_route() {
    let mysql = host("mysql");
    let tcp = TcpRoute {
        matches: vec![],
        destinations: vec![dest(&mysql, Some("v1"), 80), dest(&mysql, Some("v2"), 20)],
    };
    let s = bookinfo()
        .policy(mk_policy(
            NS,
            &mysql,
            &["v1", "v2"],
            TrafficPolicy::default(),
        ))
        .route_table(mk_route_table(NS, "mysql", &[&mysql], vec![], vec![tcp]))
        .build();
    let j = golden("tcp_weighted", &s, &proxy(&s, "productpage-v1"));
    // The VIP's own listener, reached by hand-off from `virtual` (as Istio's).
    let l = &j["lds"]["198.19.0.13_3306"];
    assert_eq!(l["bindToPort"], false);
    assert_eq!(
        l["address"]["socketAddress"],
        json!({"address": "198.19.0.13", "portValue": 3306})
    );
    let c = chain(
        &j,
        "198.19.0.13_3306",
        "outbound|3306||mysql.default.svc.cluster.local",
    );
    assert!(c.get("filterChainMatch").is_none(), "{c}");
    // Nothing of it stays in the capture listener.
    assert!(!j["lds"]["virtual"]["filterChains"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"].as_str().unwrap().contains("mysql")));
    let tp = &c["filters"][0]["typedConfig"];
    assert_eq!(
        tp["@type"],
        "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
    );
    assert_eq!(
        tp["weightedClusters"]["clusters"][1],
        json!({"name": "outbound|3306|v2|mysql.default.svc.cluster.local", "weight": 20})
    );
    assert!(
        j["rds"].get("3306").is_none(),
        "TCP ports get no route configuration"
    );
}

#[test]
fn consistent_hash_by_header_cookie_and_source_ip() {
    let hash = |key| TrafficPolicy {
        load_balancer: Some(LoadBalancer::ConsistentHash {
            minimum_ring_size: matches!(key, HashKey::SourceIp).then_some(4096),
            maglev: None,
            key: Some(key),
        }),
        ..Default::default()
    };
    let s = bookinfo()
        .policy(mk_policy(
            NS,
            &host("reviews"),
            &[],
            hash(HashKey::Header("x-user".into())),
        ))
        .policy(mk_policy(
            NS,
            &host("ratings"),
            &[],
            hash(HashKey::Cookie {
                name: "session".into(),
                path: Some("/".into()),
                ttl: Some(Duration::from_secs(60)),
            }),
        ))
        .policy(mk_policy(
            NS,
            &host("productpage"),
            &[],
            hash(HashKey::SourceIp),
        ))
        .build();
    let j = golden("consistent_hash", &s, &proxy(&s, "sleep"));
    let hp = |svc| vhost_routes(&j, 9080, &host(svc))[0]["route"]["hashPolicy"][0].clone();
    assert_eq!(hp("reviews"), json!({"header": {"headerName": "x-user"}}));
    assert_eq!(
        hp("ratings"),
        json!({"cookie": {"name": "session", "path": "/", "ttl": "60s"}})
    );
    assert_eq!(
        hp("productpage"),
        json!({"connectionProperties": {"sourceIp": true}})
    );
    assert_eq!(
        j["cds"]["outbound|9080||reviews.default.svc.cluster.local"]["lbPolicy"],
        "RING_HASH"
    );
    // `minimumRingSize` reaches Envoy; unset is Istio's 1024.
    let ring = |svc| {
        j["cds"][format!("outbound|9080||{}", host(svc))]["ringHashLbConfig"]["minimumRingSize"]
            .clone()
    };
    assert_eq!(ring("productpage"), json!("4096"));
    assert_eq!(ring("reviews"), json!("1024"));
    // Istio's DefaultConsistentHashPolicy: retries stay on the hashed host
    // (no previous-hosts predicate), unlike the default policy.
    let rp = vhost_routes(&j, 9080, &host("reviews"))[0]["route"]["retryPolicy"].clone();
    assert_eq!(rp["numRetries"], 2);
    assert_eq!(rp["retriableStatusCodes"], json!([503]));
    assert!(rp.get("retryHostPredicate").is_none(), "{rp}");
}

#[test]
fn least_request_and_random() {
    let lb = |l| TrafficPolicy {
        load_balancer: Some(l),
        ..Default::default()
    };
    let s = bookinfo()
        .policy(mk_policy(
            NS,
            &host("reviews"),
            &[],
            lb(LoadBalancer::LeastRequest),
        ))
        .policy(mk_policy(
            NS,
            &host("ratings"),
            &[],
            lb(LoadBalancer::Random),
        ))
        .build();
    let j = golden("load_balancers", &s, &proxy(&s, "sleep"));
    assert_eq!(
        j["cds"]["outbound|9080||reviews.default.svc.cluster.local"]["lbPolicy"],
        "LEAST_REQUEST"
    );
    assert_eq!(
        j["cds"]["outbound|9080||ratings.default.svc.cluster.local"]["lbPolicy"],
        "RANDOM"
    );
    assert!(
        j["cds"]["outbound|9080||productpage.default.svc.cluster.local"]
            .get("lbPolicy")
            .is_none(),
        "round robin is the default"
    );
}

#[test]
fn connection_pool_and_outlier_detection() {
    let tp = TrafficPolicy {
        connection_pool: Some(ConnectionPool {
            max_connections: Some(100),
            connect_timeout: Some(Duration::from_millis(250)),
            http1_max_pending_requests: Some(10),
            http2_max_requests: Some(1000),
            max_requests_per_connection: Some(5),
            max_retries: Some(3),
            idle_timeout: Some(Duration::from_secs(30)),
            ..Default::default()
        }),
        outlier_detection: Some(OutlierDetection {
            consecutive_5xx_errors: Some(5),
            consecutive_gateway_errors: None,
            interval: Some(Duration::from_secs(10)),
            base_ejection_time: Some(Duration::from_secs(30)),
            max_ejection_percent: Some(50),
            min_health_percent: Some(20),
            ..Default::default()
        }),
        ..Default::default()
    };
    let s = bookinfo()
        .policy(mk_policy(NS, &host("reviews"), &[], tp))
        .build();
    let j = golden("connection_pool_outlier", &s, &proxy(&s, "sleep"));
    let c = &j["cds"]["outbound|9080||reviews.default.svc.cluster.local"];
    assert_eq!(c["connectTimeout"], "0.250s");
    assert_eq!(
        c["circuitBreakers"]["thresholds"][0],
        json!({"maxConnections": 100, "maxPendingRequests": 10, "maxRequests": 1000, "maxRetries": 3})
    );
    assert_eq!(c["outlierDetection"]["consecutive5xx"], 5);
    assert_eq!(c["outlierDetection"]["maxEjectionPercent"], 50);
    assert_eq!(c["commonLbConfig"]["healthyPanicThreshold"]["value"], 20.0);
    let opts = &c["typedExtensionProtocolOptions"]
        ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    assert_eq!(
        opts["commonHttpProtocolOptions"],
        json!({"idleTimeout": "30s", "maxRequestsPerConnection": 5})
    );
}

#[test]
fn per_subset_and_per_port_policy() {
    let host_tp = TrafficPolicy {
        load_balancer: Some(LoadBalancer::RoundRobin),
        port_level: [(
            9080,
            TrafficPolicy {
                load_balancer: Some(LoadBalancer::LeastRequest),
                ..Default::default()
            },
        )]
        .into(),
        ..Default::default()
    };
    let mut p = mk_policy(NS, &host("reviews"), &["v1", "v2"], host_tp);
    p.subsets.get_mut("v2").unwrap().traffic_policy = Some(Box::new(TrafficPolicy {
        load_balancer: Some(LoadBalancer::Random),
        ..Default::default()
    }));
    let s = bookinfo().policy(p).build();
    let j = golden("subset_and_port_policy", &s, &proxy(&s, "sleep"));
    assert_eq!(
        j["cds"]["outbound|9080||reviews.default.svc.cluster.local"]["lbPolicy"],
        "LEAST_REQUEST"
    );
    assert_eq!(
        j["cds"]["outbound|9080|v1|reviews.default.svc.cluster.local"]["lbPolicy"],
        "LEAST_REQUEST"
    );
    assert_eq!(
        j["cds"]["outbound|9080|v2|reviews.default.svc.cluster.local"]["lbPolicy"],
        "RANDOM"
    );
}

#[test]
fn inbound_http_and_tcp_ports() {
    // One pod behind an HTTP service (9080 → 8080) and a TCP one (3307 → 3307).
    let s = bookinfo()
        .service(mk_service(
            "web",
            NS,
            "198.19.0.30",
            vec![mk_port("http-web", 9080, 8080)],
            &[("app", "web")],
        ))
        .service(mk_service(
            "webdb",
            NS,
            "198.19.0.31",
            vec![mk_port("tcp", 3307, 3307)],
            &[("app", "web")],
        ))
        .pod(mk_pod("web-0", NS, "198.18.0.30", &[("app", "web")]))
        .build();
    let j = golden("inbound", &s, &proxy(&s, "web-0"));
    let http = chain(&j, "virtual", "inbound|8080");
    assert_eq!(
        http["filterChainMatch"],
        json!({"destinationPort": 8080, "prefixRanges": [{"addressPrefix": "198.18.0.30", "prefixLen": 32}]})
    );
    let rc = &http["filters"][0]["typedConfig"]["routeConfig"];
    assert_eq!(
        rc["virtualHosts"][0]["routes"][0]["route"]["cluster"],
        "inbound|8080||"
    );
    let tcp = chain(&j, "virtual", "inbound|3307");
    assert_eq!(
        tcp["filters"][0]["typedConfig"]["cluster"],
        "inbound|3307||"
    );
    let c = &j["cds"]["inbound|8080||"];
    assert_eq!(c["type"], "ORIGINAL_DST");
    assert_eq!(
        c["upstreamBindConfig"]["sourceAddress"]["address"],
        "127.0.0.6"
    );
    // Outbound HTTP ports the pod does not serve (9080) still reach the pod
    // when dialled on its IP: Envoy never falls back to port-less chains. TCP
    // VIPs have listeners of their own, so their ports need no such chain.
    assert!(!chain_names(&j, "virtual").contains(&"inbound-passthrough|3306".to_string()));
    let pt = chain(&j, "virtual", "inbound-passthrough|9080");
    assert_eq!(
        pt["filters"][0]["typedConfig"]["cluster"],
        "InboundPassthroughCluster"
    );
    assert_eq!(
        chain(&j, "virtual", "inbound-passthrough")["filterChainMatch"]["prefixRanges"][0]
            ["addressPrefix"],
        "198.18.0.30"
    );
}

#[test]
fn unknown_destination_passes_through() {
    let s = bookinfo().build();
    let j = golden("passthrough", &s, &proxy(&s, "sleep"));
    let l = &j["lds"]["virtual"];
    assert_eq!(
        l["defaultFilterChain"]["filters"][0]["typedConfig"]["cluster"],
        "PassthroughCluster"
    );
    assert_eq!(
        l["listenerFilters"][0]["name"],
        "envoy.filters.listener.original_dst"
    );
    // Hands connections to a VIP over to that service's `<VIP>_<port>` listener.
    assert_eq!(l["useOriginalDst"], true);
    assert_eq!(l["address"]["socketAddress"]["portValue"], 15000);
    assert_eq!(
        j["cds"]["PassthroughCluster"]["lbPolicy"],
        "CLUSTER_PROVIDED"
    );
    let any = j["rds"]["9080"]["virtualHosts"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(any["routes"][0]["route"]["cluster"], "PassthroughCluster");
}

#[test]
fn http_service_with_a_vip_has_its_own_listener_and_route_configuration() {
    // reviews has a VIP; legacy (headless) has none and stays in the port's
    // table, routed by Host header.
    let mut legacy = mk_service(
        "legacy",
        NS,
        "198.19.0.99",
        vec![mk_port("http", 9080, 9080)],
        &[("app", "legacy")],
    );
    legacy.cluster_ip = None;
    let s = bookinfo()
        .service(legacy)
        .pod(mk_pod("legacy-v1", NS, "198.18.0.40", &[("app", "legacy")]))
        .build();
    let j = golden("per_service_routes", &s, &proxy(&s, "sleep"));

    let l = &j["lds"]["198.19.0.11_9080"];
    assert_eq!(l["bindToPort"], false);
    assert_eq!(
        l["address"]["socketAddress"],
        json!({"address": "198.19.0.11", "portValue": 9080})
    );
    assert_eq!(l["trafficDirection"], "OUTBOUND");
    let chains = l["filterChains"].as_array().unwrap();
    assert_eq!(chains.len(), 1);
    let hcm = &chains[0]["filters"][0]["typedConfig"];
    assert_eq!(
        hcm["rds"]["routeConfigName"],
        format!("{}:9080", host("reviews"))
    );
    assert_eq!(hcm["statPrefix"], "outbound_198.19.0.11_9080");
    // mysql is TCP: a listener of its own too, with a tcp_proxy, no HCM.
    assert_eq!(
        j["lds"]["198.19.0.13_3306"]["filterChains"][0]["filters"][0]["name"],
        "envoy.filters.network.tcp_proxy"
    );

    let own = &j["rds"][format!("{}:9080", host("reviews"))];
    let vhosts = own["virtualHosts"].as_array().unwrap();
    assert_eq!(vhosts.len(), 1);
    assert_eq!(vhosts[0]["domains"], json!(["*"]));
    assert_eq!(
        vhosts[0]["routes"][0]["route"]["cluster"],
        format!("outbound|9080||{}", host("reviews"))
    );

    // The port's table: legacy by Host header, then allow_any; no VIP host.
    let names: Vec<&str> = j["rds"]["9080"]["virtualHosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [format!("{}:9080", host("legacy")).as_str(), "allow_any"]
    );
    // Every service port with a VIP, and nothing else (legacy has none).
    let mut vip_listeners: Vec<&String> = j["lds"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.contains('_'))
        .collect();
    vip_listeners.sort();
    assert_eq!(
        vip_listeners,
        [
            "198.19.0.10_9080",
            "198.19.0.11_9080",
            "198.19.0.12_9080",
            "198.19.0.13_3306"
        ]
    );
}

#[test]
fn capture_port_is_blackholed() {
    let s = bookinfo().build();
    let j = golden("blackhole", &s, &proxy(&s, "reviews-v1"));
    let b = chain(&j, "virtual", "blackhole|15000");
    assert_eq!(b["filterChainMatch"], json!({"destinationPort": 15000}));
    assert_eq!(
        b["filters"][0]["typedConfig"]["cluster"],
        "BlackHoleCluster"
    );
    assert_eq!(j["cds"]["BlackHoleCluster"]["type"], "STATIC");
}

#[test]
fn separate_inbound_capture_port() {
    let s = bookinfo().build();
    let mut p = proxy(&s, "reviews-v1");
    p.inbound_capture_port = 15006;
    let j = golden("inbound_capture_port", &s, &p);
    let inbound = &j["lds"]["virtualInbound"];
    assert_eq!(inbound["address"]["socketAddress"]["portValue"], 15006);
    let c = chain(&j, "virtualInbound", "inbound|9080");
    assert_eq!(c["filterChainMatch"], json!({"destinationPort": 9080}));
    assert_eq!(
        inbound["defaultFilterChain"]["filters"][0]["typedConfig"]["cluster"],
        "InboundPassthroughCluster"
    );
    let outbound = j["lds"]["virtual"]["filterChains"].as_array().unwrap();
    assert!(
        outbound
            .iter()
            .all(|c| !c["name"].as_str().unwrap().starts_with("inbound")),
        "no inbound chains on the outbound port"
    );
    assert!(outbound.iter().any(|c| c["name"] == "blackhole|15006"));
}

#[test]
fn envoy_validation_can_fail() {
    // The harness must be able to say no: an invalid regex is rejected by Envoy.
    let r = HttpRoute {
        matches: vec![HttpMatch {
            uri: Some(StringMatch::Regex("(".into())),
            ..Default::default()
        }],
        ..mk_http_route(vec![dest(&host("reviews"), Some("v1"), 100)])
    };
    let s = reviews_route(vec![r]);
    let res = generate(&s, &proxy(&s, "productpage-v1"));
    if let Some(result) = envoy_check("bad_regex", &res) {
        let complaint = result.expect_err("Envoy accepted an invalid regex");
        assert!(complaint.contains("error"), "{complaint}");
    }
}
