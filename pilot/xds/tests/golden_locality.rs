//! Golden tests of DestinationRule `localityLbSetting` (issue 14): Istio's
//! failover priorities for a proxy in a zone, `distribute` weights,
//! `failoverPriority` by label, and the sharing of load assignments: per
//! proxy locality only where a policy balances by locality. Each case is
//! validated by `envoy --mode validate`.

mod support;

use std::{sync::Arc, time::Duration};

use rudder_model::*;
use rudder_xds::{fixtures::*, Generator, TypeUrl};
use serde_json::Value;
use support::*;

const ZONE_A: &str = "us-east.us-east-1a.r1";

/// reviews in four localities (v1 in the proxy's subzone, v2 in another
/// zone of its region, v3 in us-west, v1 again in eu-central), sleep
/// clients in us-east-1a and in us-west.
fn mesh() -> SnapshotBuilder {
    let pod = |name: &str, ip: &str, version: &str, locality: &str| {
        mk_pod(
            name,
            NS,
            ip,
            &[
                ("app", "reviews"),
                ("version", version),
                (locality::LOCALITY_LABEL, locality),
            ],
        )
    };
    SnapshotBuilder::new()
        .service(mk_service(
            "reviews",
            NS,
            "198.19.0.11",
            vec![mk_port("http", 9080, 9080)],
            &[("app", "reviews")],
        ))
        .pod(pod("reviews-a", "198.18.0.11", "v1", ZONE_A))
        .pod(pod("reviews-b", "198.18.0.12", "v2", "us-east.us-east-1b"))
        .pod(pod("reviews-c", "198.18.0.13", "v3", "us-west.us-west-1a"))
        .pod(pod("reviews-d", "198.18.0.14", "v1", "eu-central.eu-1a"))
        .pod(mk_pod(
            "sleep",
            NS,
            "198.18.0.20",
            &[("app", "sleep"), (locality::LOCALITY_LABEL, ZONE_A)],
        ))
        .pod(mk_pod(
            "sleep-west",
            NS,
            "198.18.0.21",
            &[
                ("app", "sleep"),
                (locality::LOCALITY_LABEL, "us-west.us-west-1a"),
            ],
        ))
}

fn with_locality(lb: Option<LocalityLb>, outlier: bool) -> Arc<Snapshot> {
    let tp = TrafficPolicy {
        locality_lb: lb,
        outlier_detection: outlier.then(|| OutlierDetection {
            consecutive_5xx_errors: Some(5),
            interval: Some(Duration::from_secs(10)),
            ..Default::default()
        }),
        ..Default::default()
    };
    mesh()
        .policy(mk_policy(NS, &host("reviews"), &["v1"], tp))
        .build()
}

fn enabled() -> LocalityLb {
    LocalityLb {
        enabled: true,
        ..Default::default()
    }
}

fn cla(j: &Value) -> &Value {
    let c = &j["eds"][format!("outbound|9080||{}", host("reviews"))];
    assert!(!c.is_null(), "no assignment: {j}");
    c
}

/// (zone, priority, weight, endpoint count) of each locality group.
fn groups(c: &Value) -> Vec<(String, u64, Option<u64>, usize)> {
    c["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["locality"]["zone"].as_str().unwrap_or("").to_string(),
                g["priority"].as_u64().unwrap_or(0),
                g["loadBalancingWeight"].as_u64(),
                g["lbEndpoints"].as_array().map_or(0, Vec::len),
            )
        })
        .collect()
}

fn weighted(j: &Value) -> bool {
    let c = &j["cds"][format!("outbound|9080||{}", host("reviews"))];
    !c["commonLbConfig"]["localityWeightedLbConfig"].is_null()
}

#[test]
fn endpoints_are_grouped_by_locality_without_settings() {
    let s = mesh().build();
    let j = golden("locality_none", &s, &proxy(&s, "sleep"));
    assert_eq!(
        groups(cla(&j)),
        vec![
            ("eu-1a".into(), 0, None, 1),
            ("us-east-1a".into(), 0, None, 1),
            ("us-east-1b".into(), 0, None, 1),
            ("us-west-1a".into(), 0, None, 1),
        ]
    );
    assert_eq!(cla(&j)["endpoints"][1]["locality"]["region"], "us-east");
    assert_eq!(cla(&j)["endpoints"][1]["locality"]["subZone"], "r1");
    assert!(!weighted(&j));
}

#[test]
fn failover_priorities_follow_the_proxy_locality() {
    let lb = LocalityLb {
        failover: vec![("us-east".into(), "us-west".into())],
        ..enabled()
    };
    let s = with_locality(Some(lb), true);
    let j = golden("locality_failover", &s, &proxy(&s, "sleep"));
    // Same subzone 0, same region 1 (2 compacted), the failover region 2,
    // any other region last.
    assert_eq!(
        groups(cla(&j)),
        vec![
            ("eu-1a".into(), 3, Some(1), 1),
            ("us-east-1a".into(), 0, Some(1), 1),
            ("us-east-1b".into(), 1, Some(1), 1),
            ("us-west-1a".into(), 2, Some(1), 1),
        ]
    );
    assert!(weighted(&j));
    // From us-west: its own zone first, then every other region alike.
    let west = golden("locality_failover_west", &s, &proxy(&s, "sleep-west"));
    assert_eq!(
        groups(cla(&west)),
        vec![
            ("eu-1a".into(), 1, Some(1), 1),
            ("us-east-1a".into(), 1, Some(1), 1),
            ("us-east-1b".into(), 1, Some(1), 1),
            ("us-west-1a".into(), 0, Some(1), 1),
        ]
    );
}

#[test]
fn failover_needs_outlier_detection() {
    let s = with_locality(Some(enabled()), false);
    let j = generate(&s, &proxy(&s, "sleep"));
    let j = rudder_xds::to_json(&j);
    assert!(groups(cla(&j)).iter().all(|g| g.1 == 0), "{j}");
    assert!(!weighted(&j));
}

#[test]
fn distribute_weights_localities() {
    let lb = LocalityLb {
        distribute: vec![(
            "us-east/us-east-1a/*".into(),
            [("us-east/us-east-1b".into(), 80), ("us-west/*".into(), 20)].into(),
        )],
        ..enabled()
    };
    let s = with_locality(Some(lb), false);
    let j = golden("locality_distribute", &s, &proxy(&s, "sleep"));
    assert_eq!(
        groups(cla(&j)),
        vec![
            ("eu-1a".into(), 0, Some(1), 0),
            ("us-east-1a".into(), 0, Some(1), 0),
            ("us-east-1b".into(), 0, Some(80), 1),
            ("us-west-1a".into(), 0, Some(20), 1),
        ]
    );
    assert!(weighted(&j));
    // A proxy no `from` covers keeps every locality, weighted by endpoints.
    let west = golden("locality_distribute_west", &s, &proxy(&s, "sleep-west"));
    assert!(groups(cla(&west))
        .iter()
        .all(|g| g.2 == Some(1) && g.3 == 1));
}

#[test]
fn failover_priority_orders_by_labels() {
    let lb = LocalityLb {
        failover_priority: vec![locality::REGION_LABEL.into(), "version=v1".into()],
        ..enabled()
    };
    let s = with_locality(Some(lb), true);
    let j = golden("locality_failover_priority", &s, &proxy(&s, "sleep"));
    // Same region and v1: 0; same region, not v1: 1; another region: 2.
    assert_eq!(
        groups(cla(&j)),
        vec![
            ("eu-1a".into(), 2, Some(1), 1),
            ("us-east-1a".into(), 0, Some(1), 1),
            ("us-east-1b".into(), 1, Some(1), 1),
            ("us-west-1a".into(), 2, Some(1), 1),
        ]
    );
}

#[test]
fn subset_and_port_settings_apply_to_their_clusters() {
    let mut policy = mk_policy(NS, &host("reviews"), &["v1"], TrafficPolicy::default());
    policy.traffic_policy.outlier_detection = Some(OutlierDetection::default());
    policy.subsets.get_mut("v1").unwrap().traffic_policy = Some(Box::new(TrafficPolicy {
        locality_lb: Some(enabled()),
        ..Default::default()
    }));
    let s = mesh().policy(policy).build();
    let j = rudder_xds::to_json(&generate(&s, &proxy(&s, "sleep")));
    let v1 = &j["eds"][format!("outbound|9080|v1|{}", host("reviews"))];
    // v1 runs in us-east-1a (the proxy's subzone) and eu-central.
    assert_eq!(
        groups(v1),
        vec![
            ("eu-1a".into(), 1, Some(1), 1),
            ("us-east-1a".into(), 0, Some(1), 1)
        ]
    );
    assert!(groups(cla(&j)).iter().all(|g| g.1 == 0 && g.2.is_none()));

    // Port level: the host-level setting disabled at the port.
    let mut tp = TrafficPolicy {
        locality_lb: Some(enabled()),
        outlier_detection: Some(OutlierDetection::default()),
        ..Default::default()
    };
    tp.port_level.insert(
        9080,
        TrafficPolicy {
            locality_lb: Some(LocalityLb::default()),
            ..Default::default()
        },
    );
    let s = mesh()
        .policy(mk_policy(NS, &host("reviews"), &[], tp))
        .build();
    let j = rudder_xds::to_json(&generate(&s, &proxy(&s, "sleep")));
    assert!(groups(cla(&j)).iter().all(|g| g.1 == 0 && g.2.is_none()));
}

#[test]
fn assignments_are_per_proxy_locality_only_where_locality_applies() {
    let eds = |s: &Arc<Snapshot>, g: &Generator, pod: &str| {
        g.generate(&proxy(s, pod))
            .shared(TypeUrl::Endpoint)
            .cloned()
            .unwrap()
    };
    // No settings: one map for both localities.
    let s = mesh().build();
    let g = Generator::new(s.clone());
    assert!(Arc::ptr_eq(
        &eds(&s, &g, "sleep"),
        &eds(&s, &g, "sleep-west")
    ));
    // Failover: one map per locality, shared within it.
    let s = with_locality(Some(enabled()), true);
    let g = Generator::new(s.clone());
    let east = eds(&s, &g, "sleep");
    assert!(!Arc::ptr_eq(&east, &eds(&s, &g, "sleep-west")));
    let s2 = {
        let mut b = mesh();
        b = b.pod(mk_pod(
            "sleep-2",
            NS,
            "198.18.0.22",
            &[("app", "sleep"), (locality::LOCALITY_LABEL, ZONE_A)],
        ));
        let tp = TrafficPolicy {
            locality_lb: Some(enabled()),
            outlier_detection: Some(OutlierDetection::default()),
            ..Default::default()
        };
        b.policy(mk_policy(NS, &host("reviews"), &["v1"], tp))
            .build()
    };
    let g = Generator::new(s2.clone());
    assert!(Arc::ptr_eq(
        &eds(&s2, &g, "sleep"),
        &eds(&s2, &g, "sleep-2")
    ));
    // A generator following with other endpoint localities rebuilds them.
    let moved = {
        let mut b = mesh();
        b = b.pod(mk_pod(
            "reviews-b",
            NS,
            "198.18.0.12",
            &[
                ("app", "reviews"),
                ("version", "v2"),
                (locality::LOCALITY_LABEL, ZONE_A),
            ],
        ));
        let tp = TrafficPolicy {
            locality_lb: Some(enabled()),
            outlier_detection: Some(OutlierDetection::default()),
            ..Default::default()
        };
        b.policy(mk_policy(NS, &host("reviews"), &["v1"], tp))
            .build()
    };
    let next = Generator::after(&g, moved.clone());
    let j = rudder_xds::to_json(&next.generate(&proxy(&moved, "sleep")));
    assert_eq!(
        groups(cla(&j))
            .iter()
            .find(|g| g.0 == "us-east-1a")
            .map(|g| (g.1, g.3)),
        Some((0, 2))
    );
}
