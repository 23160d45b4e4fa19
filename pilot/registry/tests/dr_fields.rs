//! DestinationRule fields Istio accepts and meshes use (issue 14): each
//! reaches the model with Istio's meaning, or is refused at its path with why.

mod common;

use std::time::Duration;

use common::{errors, mk_pod, mk_service, objects, validate};
use pretty_assertions::assert_eq;
use rudder_model::{
    ClientTls, H2Upgrade, HashKey, LoadBalancer, ProxyProtocol, SlowStart, Snapshot, TcpKeepalive,
};
use rudder_registry::Store;

const HOST: &str = "reviews.default.svc.cluster.local";

fn platform() -> String {
    [
        mk_service("reviews", "http", 9080, "9080"),
        mk_pod("reviews-v1", "reviews", "v1", "10.0.0.1", true),
    ]
    .join("---\n")
}

fn dr(spec: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: reviews, namespace: default}}\nspec:\n  host: reviews\n{spec}")
}

fn snapshot(spec: &str) -> Snapshot {
    let mut store = Store::new();
    for o in objects(&[platform(), dr(spec)].join("---\n")) {
        store.apply(o);
    }
    store.snapshot()
}

/// The errors of a rule with this spec, as (field, message).
fn refusals(spec: &str) -> Vec<(String, String)> {
    let r = validate(&[("platform.yaml", &platform()), ("dr.yaml", &dr(spec))]);
    errors(&r)
        .iter()
        .map(|d| (d.field.clone(), d.message.clone()))
        .collect()
}

const SERVED: &str = "  trafficPolicy:
    proxyProtocol: {version: V2}
    loadBalancer:
      simple: LEAST_REQUEST
      warmup: {duration: 30s, minimumPercent: 10, aggression: 1.5}
    connectionPool:
      tcp:
        tcpKeepalive: {probes: 3, time: 10m, interval: 75s}
        maxConnectionDuration: 1h
        idleTimeout: 5m
      http: {h2UpgradePolicy: UPGRADE, maxConcurrentStreams: 100}
    outlierDetection: {splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 4}
    tls: {mode: SIMPLE, caCertificates: /etc/ca.pem, insecureSkipVerify: true}
    portLevelSettings:
    - port: {number: 9080}
      loadBalancer: {warmupDurationSecs: 20s}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpCookie: {name: user, ttl: 0s}, maglev: {tableSize: 65537}}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {simple: PASSTHROUGH}
  - name: v3
    labels: {version: v3}
    trafficPolicy:
      loadBalancer:
        consistentHash: {useSourceIp: true, ringHash: {minimumRingSize: 4096}}
";

#[test]
fn istio_fields_reach_the_model() {
    assert_eq!(refusals(SERVED), vec![]);
    let s = snapshot(SERVED);
    let p = s.destination_policy("default", HOST).expect("policy");
    let tp = &p.traffic_policy;
    assert_eq!(tp.proxy_protocol, Some(ProxyProtocol::V2));
    assert_eq!(tp.load_balancer, Some(LoadBalancer::LeastRequest));
    assert_eq!(
        tp.slow_start,
        Some(SlowStart {
            window: Duration::from_secs(30),
            aggression: Some("1.5".into()),
            min_weight_percent: Some("10".into()),
        })
    );
    let pool = tp.connection_pool.as_ref().unwrap();
    assert_eq!(
        pool.tcp_keepalive,
        Some(TcpKeepalive {
            probes: Some(3),
            time_secs: Some(600),
            interval_secs: Some(75),
        })
    );
    assert_eq!(
        pool.max_connection_duration,
        Some(Duration::from_secs(3600))
    );
    assert_eq!(pool.idle_timeout, Some(Duration::from_secs(300)));
    assert_eq!(pool.h2_upgrade, Some(H2Upgrade::Upgrade));
    assert!(!pool.use_client_protocol);
    assert_eq!(pool.max_concurrent_streams, Some(100));
    let od = tp.outlier_detection.as_ref().unwrap();
    assert!(od.split_external_local_origin_errors);
    assert_eq!(od.consecutive_local_origin_failures, Some(4));
    assert!(matches!(
        tp.tls,
        Some(ClientTls::Simple {
            insecure_skip_verify: true,
            ..
        })
    ));
    // The port's loadBalancer replaces the host's algorithm and slow start.
    let port = tp.for_port(9080);
    assert_eq!(port.load_balancer, None);
    assert_eq!(port.slow_start.unwrap().window, Duration::from_secs(20));

    let subset = |name: &str| {
        p.subsets[name]
            .traffic_policy
            .as_ref()
            .unwrap()
            .load_balancer
            .clone()
    };
    assert_eq!(
        subset("v1"),
        Some(LoadBalancer::ConsistentHash {
            key: Some(HashKey::Cookie {
                name: "user".into(),
                path: None,
                ttl: Some(Duration::ZERO),
            }),
            minimum_ring_size: None,
            maglev: Some(Some(65537)),
        })
    );
    assert_eq!(subset("v2"), Some(LoadBalancer::Passthrough));
    assert_eq!(
        subset("v3"),
        Some(LoadBalancer::ConsistentHash {
            key: Some(HashKey::SourceIp),
            minimum_ring_size: Some(4096),
            maglev: None,
        })
    );
}

#[test]
fn what_cannot_be_served_is_refused_at_its_path() {
    let tp = "spec.trafficPolicy";
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "  trafficPolicy: {tls: {mode: ISTIO_MUTUAL, credentialName: reviews-cred}}\n",
            format!("{tp}.tls.credentialName"),
            "SIMPLE and MUTUAL",
        ),
        (
            "  trafficPolicy: {tls: {mode: ISTIO_MUTUAL, insecureSkipVerify: true}}\n",
            format!("{tp}.tls.insecureSkipVerify"),
            "SIMPLE and MUTUAL",
        ),
        (
            "  trafficPolicy: {loadBalancer: {simple: RANDOM, warmupDurationSecs: 10s}}\n",
            format!("{tp}.loadBalancer.warmup"),
            "ROUND_ROBIN and LEAST_REQUEST",
        ),
        (
            "  trafficPolicy: {loadBalancer: {warmup: {minimumPercent: 10}}}\n",
            format!("{tp}.loadBalancer.warmup.duration"),
            "required",
        ),
        (
            "  trafficPolicy: {loadBalancer: {warmup: {duration: 10s, aggression: 0.5}}}\n",
            format!("{tp}.loadBalancer.warmup.aggression"),
            "at least 1.0",
        ),
        (
            "  trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 1000}}}}\n",
            format!("{tp}.loadBalancer.consistentHash.maglev.tableSize"),
            "prime",
        ),
        (
            "  trafficPolicy: {loadBalancer: {consistentHash: {maglev: {}}}}\n",
            format!("{tp}.loadBalancer.consistentHash.maglev.tableSize"),
            "must be set",
        ),
        (
            "  trafficPolicy: {connectionPool: {http: {h2UpgradePolicy: UPGRADE, useClientProtocol: true}}}\n",
            format!("{tp}.connectionPool.http.useClientProtocol"),
            "UPGRADE",
        ),
        (
            "  trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 7}, ringHash: {}}}}\n",
            format!("{tp}.loadBalancer.consistentHash"),
            "mutually exclusive",
        ),
        (
            "  trafficPolicy: {connectionPool: {tcp: {tcpKeepalive: {time: 500ms}}}}\n",
            format!("{tp}.connectionPool.tcp.tcpKeepalive.time"),
            "whole seconds",
        ),
        (
            "  trafficPolicy: {outlierDetection: {consecutiveLocalOriginFailures: 3}}\n",
            format!("{tp}.outlierDetection.consecutiveLocalOriginFailures"),
            "splitExternalLocalOriginErrors",
        ),
        (
            "  trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: u, ttl: -1s}}}}\n",
            format!("{tp}.loadBalancer.consistentHash.httpCookie.ttl"),
            "negative",
        ),
    ];
    for (spec, field, why) in cases {
        let e = refusals(spec);
        assert_eq!(e.len(), 1, "{spec}: {e:?}");
        assert_eq!(e[0].0, field, "{spec}");
        assert!(e[0].1.contains(why), "{spec}: {}", e[0].1);
    }
}
