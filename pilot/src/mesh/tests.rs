//! The page's model from a real snapshot (the registry's bookinfo test
//! data and the sample's 50/50 rule), the rates from Envoy's stats text
//! and from Prometheus answers, and the embedded assets.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use rudder_ads::{ConnectionStatus, Nack, Sent, TypeStatus};
use rudder_model::{Diagnostic, Snapshot};

use super::traffic::{self, ClusterRate};
use super::view::{self, EdgeRate, MetricsStatus};

fn bookinfo() -> Arc<Snapshot> {
    let files = [
        (
            "platform/services.yaml",
            include_str!("../../registry/testdata/bookinfo/platform/services.yaml"),
        ),
        (
            "platform/pods.yaml",
            include_str!("../../registry/testdata/bookinfo/platform/pods.yaml"),
        ),
        (
            "rules/destination-rules.yaml",
            include_str!("../../registry/testdata/bookinfo/rules/destination-rules.yaml"),
        ),
        (
            "reviews-50-50.yaml",
            include_str!("../../../samples/bookinfo/rules/reviews-50-50.yaml"),
        ),
    ];
    let mut objects = Vec::new();
    for (name, text) in files {
        let l = rudder_registry::load::load_str(text, name, name);
        assert!(l.problems.is_empty(), "{name}: {:?}", l.problems);
        objects.extend(l.objects);
    }
    Arc::new(rudder_registry::build::build_snapshot(&objects, vec![]))
}

fn rate(pod: &str, cluster: &str, rps: f64, error_rps: f64) -> ClusterRate {
    ClusterRate {
        namespace: "default".into(),
        pod: pod.into(),
        cluster: cluster.into(),
        rps,
        error_rps,
    }
}

const REVIEWS_V1: &str = "outbound|9080|v1|reviews.default.svc.cluster.local";
const REVIEWS_V3: &str = "outbound|9080|v3|reviews.default.svc.cluster.local";

#[test]
fn nodes_have_their_versions_and_edges_their_split_and_errors() {
    let snapshot = bookinfo();
    let rates = traffic::edge_rates(
        &snapshot,
        &[
            rate("productpage-v1", REVIEWS_V1, 3.0, 0.0),
            rate("productpage-v1", REVIEWS_V3, 1.0, 0.5),
            rate(
                "productpage-v1",
                "outbound|9080||details.default.svc.cluster.local",
                4.0,
                0.0,
            ),
            rate(
                "reviews-v3",
                "outbound|9080||ratings.default.svc.cluster.local",
                1.0,
                0.0,
            ),
            // Not edges: an inbound cluster, an unknown pod.
            rate("reviews-v3", "inbound|9080||", 9.0, 0.0),
            rate("gone-pod", REVIEWS_V1, 9.0, 0.0),
        ],
    );
    assert_eq!(rates.len(), 4, "{rates:?}");
    let m = view::build(&snapshot, &[], &[], &rates, MetricsStatus::default());

    let reviews = m.nodes.iter().find(|n| n.id == "default/reviews").unwrap();
    assert_eq!(reviews.versions, ["v1", "v2", "v3"]);
    assert_eq!(reviews.kind, "service");
    for svc in ["productpage", "details", "ratings"] {
        assert!(m.nodes.iter().any(|n| n.id == format!("default/{svc}")));
    }

    let edge = |dest: &str, version: &str| {
        m.edges
            .iter()
            .find(|e| e.destination == dest && e.destination_version == version)
            .unwrap_or_else(|| panic!("no edge to {dest} {version}: {:?}", m.edges))
    };
    let v1 = edge("default/reviews", "v1");
    assert_eq!(
        (v1.source.as_str(), v1.source_version.as_str()),
        ("default/productpage", "v1")
    );
    assert_eq!(v1.share, Some(0.75));
    assert_eq!(v1.error_rate, Some(0.0));
    let v3 = edge("default/reviews", "v3");
    assert_eq!(v3.share, Some(0.25));
    assert_eq!(v3.error_rate, Some(0.5));
    // Shares are per destination service: details is 100% of its own.
    assert_eq!(edge("default/details", "").share, Some(1.0));
    let ratings = edge("default/ratings", "");
    assert_eq!(ratings.source, "default/reviews");
    assert_eq!(ratings.source_version, "v3");
}

#[test]
fn an_edge_without_requests_has_no_split() {
    let snapshot = bookinfo();
    let rates = traffic::edge_rates(&snapshot, &[rate("productpage-v1", REVIEWS_V1, 0.0, 0.0)]);
    let m = view::build(&snapshot, &[], &[], &rates, MetricsStatus::default());
    assert_eq!(m.edges.len(), 1);
    assert_eq!(m.edges[0].share, None);
    assert_eq!(m.edges[0].error_rate, None);
}

#[test]
fn a_source_no_service_selects_is_a_workload_node() {
    let snapshot = bookinfo();
    let rates = vec![EdgeRate {
        source_namespace: "client".into(),
        source_app: "sleep".into(),
        source_version: String::new(),
        host: "productpage.default.svc.cluster.local".into(),
        subset: String::new(),
        rps: 2.0,
        error_rps: 0.0,
    }];
    let m = view::build(&snapshot, &[], &[], &rates, MetricsStatus::default());
    let sleep = m.nodes.iter().find(|n| n.id == "client/sleep").unwrap();
    assert_eq!(sleep.kind, "workload");
    assert_eq!(m.edges[0].destination, "default/productpage");
}

#[test]
fn route_rules_show_each_route_with_its_percentages() {
    let m = view::build(&bookinfo(), &[], &[], &[], MetricsStatus::default());
    let reviews = m
        .services
        .iter()
        .find(|s| s.id == "default/reviews")
        .unwrap();
    assert_eq!(reviews.rules.len(), 1, "{reviews:?}");
    assert_eq!(reviews.rules[0].source, "VirtualService default/reviews");
    assert_eq!(
        reviews.rules[0].routes,
        ["any request → reviews.default v1 50%, reviews.default v3 50%"]
    );
    let details = m
        .services
        .iter()
        .find(|s| s.id == "default/details")
        .unwrap();
    assert!(details.rules.is_empty());
}

fn stream(node: &str, types: &[(&'static str, TypeStatus)]) -> ConnectionStatus {
    ConnectionStatus {
        node_id: node.into(),
        stream_id: 1,
        mode: "delta",
        user_agent: "envoy/1.40.0".into(),
        connected_at_unix_ms: 0,
        types: types
            .iter()
            .map(|(t, s)| (*t, Box::new(s.clone())))
            .collect(),
    }
}

fn sent(version: &str, nonce: &str) -> Option<Sent> {
    Some(Sent {
        version: version.into(),
        nonce: nonce.into(),
        at_unix_ms: 0,
    })
}

#[test]
fn proxies_show_the_sync_state_of_proxy_status_and_the_nack_error() {
    let synced = TypeStatus {
        last_sent: sent("a", "1"),
        last_acked_version: Some("a".into()),
        ..Default::default()
    };
    let nacked = TypeStatus {
        last_sent: sent("b", "2"),
        last_acked_version: Some("a".into()),
        last_nack: Some(Nack {
            version: "a".into(),
            nonce: "2".into(),
            error: "regex too big\n".into(),
            at_unix_ms: 0,
        }),
        ..Default::default()
    };
    let stale = TypeStatus {
        last_sent: sent("c", "3"),
        ..Default::default()
    };
    let streams = [
        stream(
            "router~198.18.0.9~gw-0.rudder-system~rudder-system.svc.cluster.local",
            &[("cds", synced.clone()), ("rds", nacked)],
        ),
        stream(
            "sidecar~198.18.0.10~productpage-v1.default~default.svc.cluster.local",
            &[("cds", synced.clone()), ("lds", synced), ("eds", stale)],
        ),
    ];
    let m = view::build(&bookinfo(), &streams, &[], &[], MetricsStatus::default());
    assert_eq!(m.proxies.len(), 2);
    let pp = &m.proxies[0];
    assert_eq!(pp.name, "default/productpage-v1");
    assert_eq!(pp.kind, "sidecar");
    assert_eq!(pp.version, "1.40.0");
    assert_eq!(
        pp.states,
        BTreeMap::from([
            ("CDS", "SYNCED"),
            ("LDS", "SYNCED"),
            ("EDS", "STALE"),
            ("RDS", "NOT SENT")
        ])
    );
    let gw = &m.proxies[1];
    assert_eq!(gw.name, "rudder-system/gw-0");
    assert_eq!(gw.kind, "router");
    assert_eq!(gw.states["RDS"], "STALE (NACK)");
    assert_eq!(gw.nacks.len(), 1);
    assert_eq!(gw.nacks[0].type_name, "RDS");
    assert_eq!(gw.nacks[0].error, "regex too big");
}

#[test]
fn findings_carry_file_and_line() {
    let mut with_line = Diagnostic::error(
        "VirtualService default/reviews",
        "spec.http[0].route[1].weight",
        "weight -3 must not be negative",
    );
    with_line.file = Some("rules/bad.yaml:12".into());
    let mut without_line = Diagnostic::warning("DestinationRule default/x", "", "no pods");
    without_line.file = Some("dr.yaml".into());
    let m = view::build(
        &bookinfo(),
        &[],
        &[with_line, without_line],
        &[],
        MetricsStatus::default(),
    );
    let json = serde_json::to_value(&m.findings).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"severity": "error", "file": "rules/bad.yaml", "line": 12,
             "object": "VirtualService default/reviews", "field": "spec.http[0].route[1].weight",
             "message": "weight -3 must not be negative"},
            {"severity": "warning", "file": "dr.yaml", "line": null,
             "object": "DestinationRule default/x", "field": "", "message": "no pods"},
        ])
    );
}

#[test]
fn the_model_serializes_as_the_page_reads_it() {
    let snapshot = bookinfo();
    let rates = traffic::edge_rates(&snapshot, &[rate("productpage-v1", REVIEWS_V1, 2.0, 0.0)]);
    let m = view::build(
        &snapshot,
        &[],
        &[],
        &rates,
        MetricsStatus {
            source: "sidecars".into(),
            window_seconds: 6.0,
            error: None,
        },
    );
    let v = serde_json::to_value(&m).unwrap();
    // The names mesh.js uses.
    for key in [
        "configVersion",
        "metrics",
        "nodes",
        "edges",
        "proxies",
        "findings",
        "services",
    ] {
        assert!(v.get(key).is_some(), "{key} missing");
    }
    let e = &v["edges"][0];
    for key in [
        "source",
        "sourceVersion",
        "destination",
        "destinationVersion",
        "host",
        "rps",
        "share",
        "errorRate",
    ] {
        assert!(e.get(key).is_some(), "edge.{key} missing: {e}");
    }
    assert_eq!(v["metrics"]["windowSeconds"], 6.0);
}

/// Envoy's own exposition (as `/stats/prometheus` prints it with its
/// default tags: the cluster name's tag stops at the first dot).
const ENVOY_STATS: &str = r#"# TYPE envoy_cluster_default_svc_cluster_local_upstream_rq_total counter
envoy_cluster_default_svc_cluster_local_upstream_rq_total{envoy_cluster_name="outbound|9080|v1|reviews"} 30
envoy_cluster_default_svc_cluster_local_upstream_rq_total{envoy_cluster_name="outbound|9080|v3|reviews"} 10
envoy_cluster_default_svc_cluster_local_upstream_rq_total{envoy_cluster_name="outbound|9080|v2|reviews"} 0
envoy_cluster_rudder_system_svc_cluster_local_upstream_rq_total{envoy_cluster_name="outbound|80||rudder-ingressgateway"} 7
envoy_cluster_upstream_rq_total{envoy_cluster_name="inbound|9080||"} 55
envoy_cluster_upstream_rq_total{envoy_cluster_name="xds-grpc"} 3
# TYPE envoy_cluster_default_svc_cluster_local_upstream_rq_xx counter
envoy_cluster_default_svc_cluster_local_upstream_rq_xx{envoy_response_code_class="2",envoy_cluster_name="outbound|9080|v3|reviews"} 6
envoy_cluster_default_svc_cluster_local_upstream_rq_xx{envoy_response_code_class="5",envoy_cluster_name="outbound|9080|v3|reviews"} 4
envoy_cluster_default_svc_cluster_local_external_upstream_rq_xx{envoy_response_code_class="5",envoy_cluster_name="outbound|9080|v3|reviews"} 4
envoy_cluster_default_svc_cluster_local_upstream_rq_time_bucket{envoy_cluster_name="outbound|9080|v1|reviews",le="0.5"} 2
# Istio's tag regex: the whole name in the label.
envoy_cluster_upstream_rq_total{envoy_cluster_name="outbound|9080||details.default.svc.cluster.local"} 5
"#;

#[test]
fn envoy_stats_give_requests_and_5xx_per_outbound_cluster() {
    let hosts = [
        "reviews.default.svc.cluster.local",
        "details.default.svc.cluster.local",
        "rudder-ingressgateway.rudder-system.svc.cluster.local",
    ];
    assert_eq!(
        traffic::cluster_counters(&traffic::text_samples(ENVOY_STATS), hosts),
        vec![
            (
                "outbound|80||rudder-ingressgateway.rudder-system.svc.cluster.local".to_string(),
                7.0,
                0.0
            ),
            (REVIEWS_V1.to_string(), 30.0, 0.0),
            (REVIEWS_V3.to_string(), 10.0, 4.0),
            (
                "outbound|9080||details.default.svc.cluster.local".to_string(),
                5.0,
                0.0
            ),
        ]
    );
}

/// The same counters as a sidecar with Rudder's bootstrap exposes them:
/// the destination tags take the cluster name out of the metric name
/// (`envoy_cluster_name` keeps Envoy's short form).
const TAGGED_STATS: &str = r#"# TYPE envoy_cluster_upstream_rq_total counter
envoy_cluster_upstream_rq_total{source_workload="productpage-v1",envoy_cluster_name="outbound|9080|v1|reviews",destination_port="9080",destination_version="v1",destination_service="reviews.default.svc.cluster.local"} 30
envoy_cluster_upstream_rq_total{source_workload="productpage-v1",envoy_cluster_name="outbound|9080|v3|reviews",destination_port="9080",destination_version="v3",destination_service="reviews.default.svc.cluster.local"} 10
envoy_cluster_upstream_rq_total{source_workload="productpage-v1",envoy_cluster_name="outbound|9080||details",destination_port="9080",destination_version="",destination_service="details.default.svc.cluster.local"} 5
envoy_cluster_upstream_rq_total{source_workload="productpage-v1",envoy_cluster_name="inbound|9080||"} 55
# TYPE envoy_cluster_upstream_rq_xx counter
envoy_cluster_upstream_rq_xx{source_workload="productpage-v1",envoy_response_code_class="5",envoy_cluster_name="outbound|9080|v3|reviews",destination_port="9080",destination_version="v3",destination_service="reviews.default.svc.cluster.local"} 4
envoy_cluster_external_upstream_rq_xx{source_workload="productpage-v1",envoy_response_code_class="5",envoy_cluster_name="outbound|9080|v3|reviews",destination_port="9080",destination_version="v3",destination_service="reviews.default.svc.cluster.local"} 4
"#;

#[test]
fn tagged_envoy_stats_give_the_same_counters() {
    let hosts = [
        "reviews.default.svc.cluster.local",
        "details.default.svc.cluster.local",
    ];
    assert_eq!(
        traffic::cluster_counters(&traffic::text_samples(TAGGED_STATS), hosts),
        vec![
            (REVIEWS_V1.to_string(), 30.0, 0.0),
            (REVIEWS_V3.to_string(), 10.0, 4.0),
            (
                "outbound|9080||details.default.svc.cluster.local".to_string(),
                5.0,
                0.0
            ),
        ]
    );
}

#[test]
fn rates_are_the_counters_increase_over_the_window() {
    let mut samples = BTreeMap::<(String, String), VecDeque<_>>::new();
    let t0 = Instant::now();
    let pod = "default/productpage-v1".to_string();
    let read = |total: f64, errors: f64| vec![(pod.clone(), REVIEWS_V1.to_string(), total, errors)];
    // First reading: no rate yet.
    let r = traffic::record_for_test(&mut samples, t0, read(10.0, 0.0));
    assert_eq!((r[0].rps, r[0].error_rps), (0.0, 0.0));
    // 2 s later 20 more, 2 of them 5xx: 10 rps, 1 error/s.
    let r = traffic::record_for_test(&mut samples, t0 + Duration::from_secs(2), read(30.0, 2.0));
    assert_eq!((r[0].rps, r[0].error_rps), (10.0, 1.0));
    assert_eq!(
        (r[0].namespace.as_str(), r[0].pod.as_str()),
        ("default", "productpage-v1")
    );
    // Later readings age the oldest out of the window: 4..10 s → 12 per 6 s.
    let _ = traffic::record_for_test(&mut samples, t0 + Duration::from_secs(4), read(30.0, 2.0));
    let r = traffic::record_for_test(&mut samples, t0 + Duration::from_secs(10), read(42.0, 2.0));
    assert_eq!(r[0].rps, 2.0);
    // The proxy restarted: its counter starts again from zero.
    let r = traffic::record_for_test(&mut samples, t0 + Duration::from_secs(12), read(4.0, 0.0));
    assert!(r[0].rps >= 0.0 && r[0].error_rps >= 0.0, "{r:?}");
    // A counter not read this round is forgotten.
    let _ = traffic::record_for_test(&mut samples, t0 + Duration::from_secs(14), vec![]);
    assert!(samples.is_empty());
}

#[test]
fn prometheus_answers_become_edges() {
    let body = r#"{"status":"success","data":{"resultType":"vector","result":[
      {"metric":{"source_workload_namespace":"default","source_app":"productpage","source_version":"v1",
                 "destination_service":"reviews.default.svc.cluster.local","destination_version":"v1","response_code":"200"},
       "value":[1700000000.0,"3"]},
      {"metric":{"source_workload_namespace":"default","source_app":"productpage","source_version":"v1",
                 "destination_service":"reviews.default.svc.cluster.local","destination_version":"v1","response_code":"503"},
       "value":[1700000000.0,"1"]},
      {"metric":{"source_workload_namespace":"default","source_app":"productpage","source_version":"v1",
                 "destination_service":"details.default.svc.cluster.local","destination_version":"unknown","response_code":"200"},
       "value":[1700000000.0,"4"]}]}}"#;
    let rows = traffic::parse_query_response(body).unwrap();
    let edges = traffic::istio_edge_rates(&rows);
    assert_eq!(edges.len(), 2);
    let reviews = edges
        .iter()
        .find(|e| e.host.starts_with("reviews"))
        .unwrap();
    assert_eq!((reviews.rps, reviews.error_rps), (4.0, 1.0));
    assert_eq!(reviews.subset, "v1");
    let details = edges
        .iter()
        .find(|e| e.host.starts_with("details"))
        .unwrap();
    assert_eq!(details.subset, "", "unknown version is no subset");

    let err = traffic::parse_query_response(r#"{"status":"error","error":"parse error"}"#);
    assert_eq!(err.unwrap_err(), "query failed: parse error");
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_from_the_binary() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, super::routes::<()>()).await });
    let get = |path: &'static str| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    for path in ["/", "/ui"] {
        let page = get(path).await;
        assert!(page.starts_with("HTTP/1.0 200"), "{page}");
        assert!(page.contains("content-type: text/html"), "{page}");
        assert!(page.contains(r#"<script src="/ui/mesh.js" defer></script>"#));
        // Nothing from elsewhere.
        assert!(!page.contains("https://"), "no external assets");
    }
    let js = get("/ui/mesh.js").await;
    assert!(js.contains("text/javascript") && js.contains("/debug/mesh"));
    let css = get("/ui/mesh.css").await;
    assert!(css.contains("text/css"));
}
