//! Behaviour of the generator beyond the goldens: versions, sharing, cache
//! keys, the consistency check and proxy resolution.

mod support;

use std::{collections::BTreeMap, sync::Arc};

use rudder_model::{node::NodeMetadata, HttpMatch, NodeId, Snapshot, TcpRoute, TrafficPolicy};
use rudder_xds::{
    check_consistency, fixtures::*, resolve_proxy, Generator, ProxyResources, TypeUrl,
};
use support::*;

fn versions(r: &ProxyResources, t: TypeUrl) -> BTreeMap<String, String> {
    r.of(t)
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.version.clone()))
        .collect()
}

/// Names whose version differs between two generations (same name set required).
fn changed(a: &ProxyResources, b: &ProxyResources, t: TypeUrl) -> Vec<String> {
    let (va, vb) = (versions(a, t), versions(b, t));
    assert_eq!(
        va.keys().collect::<Vec<_>>(),
        vb.keys().collect::<Vec<_>>(),
        "{t:?} names changed"
    );
    va.iter()
        .filter(|(k, v)| vb[*k] != **v)
        .map(|(k, _)| k.clone())
        .collect()
}

/// `snapshot` with reviews' 9080 endpoints edited by `edit`, sealed again.
fn with_reviews_endpoints(
    snapshot: &Snapshot,
    edit: impl FnOnce(&mut Vec<rudder_model::Endpoint>),
) -> Arc<Snapshot> {
    let mut s = snapshot.clone();
    edit(
        s.endpoints
            .get_mut(&host("reviews"))
            .unwrap()
            .get_mut(&9080)
            .unwrap(),
    );
    Arc::new(s.seal())
}

fn split_rules() -> Vec<rudder_model::RouteTable> {
    vec![reviews_vs(vec![mk_http_route(vec![
        dest(&host("reviews"), Some("v1"), 90),
        dest(&host("reviews"), Some("v2"), 10),
    ])])]
}

#[test]
fn versions_are_stable_across_calls_and_generators() {
    let s1 = with_reviews_rules(split_rules());
    let s2 = with_reviews_rules(split_rules());
    let p = proxy(&s1, "productpage-v1");
    let g = Generator::new(s1.clone());
    let (a, b) = (g.generate(&p), g.generate(&p));
    let c = Generator::new(s2).generate(&p);
    for t in [
        TypeUrl::Cluster,
        TypeUrl::Endpoint,
        TypeUrl::Listener,
        TypeUrl::Route,
    ] {
        assert_eq!(versions(&a, t), versions(&b, t), "{t:?} across calls");
        assert_eq!(versions(&a, t), versions(&c, t), "{t:?} across generators");
        assert_eq!(a.type_version(t), c.type_version(t));
    }
    assert_eq!(rudder_xds::to_json(&a), rudder_xds::to_json(&c));
    // Every version is distinct within a type: they are not constants.
    let cds = versions(&a, TypeUrl::Cluster);
    let distinct: std::collections::BTreeSet<_> = cds.values().collect();
    assert_eq!(distinct.len(), cds.len());
}

#[test]
fn endpoint_only_change_changes_only_eds() {
    let before = with_reviews_rules(split_rules());
    let after = with_reviews_endpoints(&before, |eps| {
        let v2 = eps
            .iter_mut()
            .find(|e| e.labels.get("version").map(String::as_str) == Some("v2"))
            .unwrap();
        v2.ready = false;
    });
    let p = proxy(&before, "productpage-v1");
    let (a, b) = (generate(&before, &p), generate(&after, &p));
    for t in [TypeUrl::Cluster, TypeUrl::Listener, TypeUrl::Route] {
        assert_eq!(
            changed(&a, &b, t),
            Vec::<String>::new(),
            "{t:?} must not change"
        );
    }
    let mut eds = changed(&a, &b, TypeUrl::Endpoint);
    eds.sort();
    assert_eq!(
        eds,
        vec![
            "outbound|9080|v2|reviews.default.svc.cluster.local",
            "outbound|9080||reviews.default.svc.cluster.local"
        ]
    );
    // Unchanged resources are the same allocation across the two
    // generators (interned by version), changed ones are not.
    for t in [
        TypeUrl::Cluster,
        TypeUrl::Endpoint,
        TypeUrl::Listener,
        TypeUrl::Route,
    ] {
        for (name, r) in a.of(t).unwrap() {
            let other = &b.of(t).unwrap()[name];
            assert_eq!(
                Arc::ptr_eq(r, other),
                !eds.contains(name) || t != TypeUrl::Endpoint,
                "{t:?} {name}"
            );
        }
    }
}

/// Bookinfo with details on a port of its own (8080) and reviews' subsets.
fn two_ports() -> SnapshotBuilder {
    bookinfo()
        .service(mk_service(
            "details",
            NS,
            "198.19.0.14",
            vec![mk_port("http", 8080, 8080)],
            &[("app", "details")],
        ))
        .policy(mk_policy(
            NS,
            &host("reviews"),
            &["v1", "v2", "v3"],
            TrafficPolicy::default(),
        ))
}

/// Every type's versions of `carried` are `fresh`'s.
fn assert_same_versions(carried: &ProxyResources, fresh: &ProxyResources, what: &str) {
    for t in [
        TypeUrl::Cluster,
        TypeUrl::Endpoint,
        TypeUrl::Listener,
        TypeUrl::Route,
    ] {
        assert_eq!(versions(carried, t), versions(fresh, t), "{what} {t:?}");
    }
}

#[test]
fn route_change_changes_only_that_route_configuration() {
    let before = two_ports().route_table(split_rules().remove(0)).build();
    let after = two_ports()
        .route_table(reviews_vs(vec![mk_http_route(vec![dest(
            &host("reviews"),
            Some("v3"),
            100,
        )])]))
        .build();
    let p = proxy(&before, "productpage-v1");
    let (a, b) = (generate(&before, &p), generate(&after, &p));
    // Only the service's own route configuration: not the port's table, not
    // details' (issue 13: one small resource per affected proxy).
    assert_eq!(
        changed(&a, &b, TypeUrl::Route),
        vec![format!("{}:9080", host("reviews"))]
    );
    for t in [TypeUrl::Cluster, TypeUrl::Endpoint, TypeUrl::Listener] {
        assert_eq!(
            changed(&a, &b, t),
            Vec::<String>::new(),
            "{t:?} must not change"
        );
    }
}

#[test]
fn a_generator_after_a_change_of_routes_alone_keeps_what_they_do_not_reach() {
    let before = two_ports().route_table(split_rules().remove(0)).build();
    // The registry's build after a VirtualService edit: the same
    // DestinationRules (shared while equal), other routes for reviews.
    let mut edited = (*before).clone();
    edited.route_tables[0].http =
        vec![mk_http_route(vec![dest(&host("reviews"), Some("v3"), 100)])];
    let after = Arc::new(edited.seal());
    assert_eq!(after.base_version, before.base_version);
    assert_ne!(after.config_version, before.config_version);
    // A table that sends traffic to another host changes the base.
    let mut moved = (*before).clone();
    moved.route_tables[0].http = vec![mk_http_route(vec![dest(&host("details"), None, 100)])];
    assert_ne!(moved.seal().base_version, before.base_version);

    let reviews = format!("{}:9080", host("reviews"));
    let details = format!("{}:8080", host("details"));
    for pod in ["productpage-v1", "reviews-v1", "sleep"] {
        let p = proxy(&before, pod);
        let first = Generator::new(before.clone());
        let old = first.generate(&p);
        let carried = Generator::after(&first, after.clone()).generate(&p);
        let fresh = Generator::new(after.clone()).generate(&p);
        assert_same_versions(&carried, &fresh, pod);
        assert_eq!(
            changed(&old, &carried, TypeUrl::Route),
            vec![reviews.clone()]
        );
        // Taken over, not built again: the same maps and the same route
        // configuration for details.
        for t in [TypeUrl::Cluster, TypeUrl::Endpoint, TypeUrl::Listener] {
            assert!(
                Arc::ptr_eq(carried.shared(t).unwrap(), old.shared(t).unwrap()),
                "{pod} {t:?}"
            );
        }
        let route = |r: &ProxyResources, name: &str| {
            r.of(TypeUrl::Route).unwrap().get(name).unwrap().clone()
        };
        assert!(
            Arc::ptr_eq(&route(&carried, &details), &route(&old, &details)),
            "{pod}: details' routes are carried"
        );
    }
}

#[test]
fn a_generator_after_a_tcp_route_change_builds_the_listeners_again() {
    let mysql = host("mysql");
    let split = |v1| {
        vec![TcpRoute {
            matches: vec![],
            destinations: vec![
                dest(&mysql, Some("v1"), v1),
                dest(&mysql, Some("v2"), 100 - v1),
            ],
        }]
    };
    let before = bookinfo()
        .policy(mk_policy(
            NS,
            &mysql,
            &["v1", "v2"],
            TrafficPolicy::default(),
        ))
        .route_table(mk_route_table(NS, "mysql", &[&mysql], vec![], split(80)))
        .build();
    let mut edited = (*before).clone();
    edited.route_tables[0].tcp = split(50);
    let after = Arc::new(edited.seal());
    assert_eq!(after.base_version, before.base_version);
    let p = proxy(&before, "productpage-v1");
    let first = Generator::new(before.clone());
    let old = first.generate(&p);
    let carried = Generator::after(&first, after.clone()).generate(&p);
    let fresh = Generator::new(after.clone()).generate(&p);
    assert_eq!(
        versions(&carried, TypeUrl::Listener),
        versions(&fresh, TypeUrl::Listener)
    );
    // The weights live in the VIP listener's tcp_proxy.
    assert_eq!(
        changed(&old, &carried, TypeUrl::Listener),
        vec!["198.19.0.13_3306".to_string()]
    );
}

#[test]
fn consistency_check_catches_dangling_references() {
    let s = with_reviews_rules(split_rules());
    let good = generate(&s, &proxy(&s, "productpage-v1"));
    assert_eq!(check_consistency(&good), Ok(()));

    let mut no_cluster = good.clone();
    no_cluster
        .make_mut(TypeUrl::Cluster)
        .remove("outbound|9080|v2|reviews.default.svc.cluster.local");
    let problems = check_consistency(&no_cluster).unwrap_err();
    assert!(
        problems.iter().any(|p| p
            .contains("cluster outbound|9080|v2|reviews.default.svc.cluster.local does not exist")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("endpoints outbound|9080|v2|reviews")),
        "orphan EDS: {problems:?}"
    );

    let mut no_route = good.clone();
    no_route.make_mut(TypeUrl::Route).remove("9080");
    let problems = check_consistency(&no_route).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("route configuration 9080 does not exist")),
        "{problems:?}"
    );

    let mut no_eds = good.clone();
    no_eds
        .make_mut(TypeUrl::Endpoint)
        .remove("outbound|3306||mysql.default.svc.cluster.local");
    let problems = check_consistency(&no_eds).unwrap_err();
    assert!(
        problems.iter().any(|p| p.contains("without endpoints")),
        "{problems:?}"
    );

    let mut no_passthrough = good;
    no_passthrough
        .make_mut(TypeUrl::Cluster)
        .remove("PassthroughCluster");
    let problems = check_consistency(&no_passthrough).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("tcp_proxy PassthroughCluster")),
        "{problems:?}"
    );
}

#[test]
fn versions_are_salted_with_the_generator_hash_not_the_crate_version() {
    let h = rudder_xds::GENERATOR_HASH;
    assert_eq!(h.len(), 16, "{h}");
    assert!(h.chars().all(|c| c.is_ascii_hexdigit()), "{h}");
}

#[test]
fn version_ledger_flags_a_shared_version_and_a_split_one() {
    let s = with_reviews_rules(split_rules());
    let good = generate(&s, &proxy(&s, "productpage-v1"));
    let mut ledger = VersionLedger::default();
    assert_eq!(ledger.record("good", &good), Vec::<String>::new());
    assert_eq!(ledger.record("again", &good), Vec::<String>::new());

    // Identical content under another version.
    let mut split = good.clone();
    let r = split.make_mut(TypeUrl::Route).get_mut("9080").unwrap();
    *r = Arc::new(rudder_xds::Resource {
        version: "other".into(),
        body: r.body.clone(),
    });
    let problems = ledger.record("split", &split);
    assert!(
        problems.len() == 1 && problems[0].contains("identical content in good"),
        "{problems:?}"
    );

    // Other content under a version already used.
    let mut shared = good.clone();
    let clusters = shared.make_mut(TypeUrl::Cluster);
    let mysql = clusters["outbound|3306||mysql.default.svc.cluster.local"].clone();
    let reviews = clusters
        .get_mut("outbound|9080||reviews.default.svc.cluster.local")
        .unwrap();
    *reviews = Arc::new(rudder_xds::Resource {
        version: reviews.version.clone(),
        body: mysql.body.clone(),
    });
    let problems = ledger.record("shared", &shared);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("already names different content")),
        "{problems:?}"
    );
}

#[test]
fn generate_checked_publishes_consistent_sets_and_counts_nothing() {
    let s = with_reviews_rules(split_rules());
    let g = Generator::new(s.clone());
    let before = rudder_xds::internal_errors();
    for pod in ["productpage-v1", "productpage-v1", "reviews-v1"] {
        let p = proxy(&s, pod);
        assert_eq!(g.generate_checked(&p), Some(g.generate(&p)));
    }
    assert_eq!(rudder_xds::internal_errors(), before);
}

#[test]
fn missing_subset_routes_to_blackhole_and_stays_consistent() {
    // Istio serves a route to an undefined subset (Envoy answers 503): so do we,
    // through BlackHoleCluster, keeping every reference resolvable.
    let s = bookinfo()
        .route_table(reviews_vs(vec![mk_http_route(vec![dest(
            &host("reviews"),
            Some("v9"),
            100,
        )])]))
        .build();
    let res = generate(&s, &proxy(&s, "productpage-v1"));
    assert_eq!(check_consistency(&res), Ok(()));
    let j = rudder_xds::to_json(&res);
    assert_eq!(
        vhost_routes(&j, 9080, &host("reviews"))[0]["route"]["cluster"],
        "BlackHoleCluster"
    );
}

#[test]
fn cache_keys_split_by_source_labels_only_when_a_rule_uses_them() {
    // No sourceLabels anywhere: every proxy in the namespace shares the same Arc.
    let s = with_reviews_rules(split_rules());
    let g = Generator::new(s.clone());
    let (a, b) = (
        g.generate(&proxy(&s, "productpage-v1")),
        g.generate(&proxy(&s, "sleep")),
    );
    let rc = |r: &ProxyResources| {
        r.of(TypeUrl::Route).unwrap()["reviews.default.svc.cluster.local:9080"].clone()
    };
    assert!(
        Arc::ptr_eq(&rc(&a), &rc(&b)),
        "identical route configs must be shared"
    );
    let cl = |r: &ProxyResources| {
        r.of(TypeUrl::Cluster).unwrap()["outbound|9080|v1|reviews.default.svc.cluster.local"]
            .clone()
    };
    assert!(Arc::ptr_eq(&cl(&a), &cl(&b)));

    // A sourceLabels rule: the proxies it selects and the others differ.
    let from_pp = rudder_model::HttpRoute {
        matches: vec![HttpMatch {
            source_labels: labels(&[("app", "productpage")]),
            ..Default::default()
        }],
        ..mk_http_route(vec![dest(&host("reviews"), Some("v2"), 100)])
    };
    let s = with_reviews_rules(vec![reviews_vs(vec![
        from_pp,
        mk_http_route(vec![dest(&host("reviews"), Some("v1"), 100)]),
    ])]);
    let g = Generator::new(s.clone());
    let pp = g.generate(&proxy(&s, "productpage-v1"));
    let sleep = g.generate(&proxy(&s, "sleep"));
    let reviews = g.generate(&proxy(&s, "reviews-v1"));
    assert!(!Arc::ptr_eq(&rc(&pp), &rc(&sleep)));
    assert_ne!(rc(&pp).version, rc(&sleep).version);
    assert_ne!(
        rudder_xds::resource_to_json(&rc(&pp)).unwrap(),
        rudder_xds::resource_to_json(&rc(&sleep)).unwrap()
    );
    // Two proxies the selector does not select share one.
    assert!(Arc::ptr_eq(&rc(&sleep), &rc(&reviews)));

    // Another namespace, same rules: a service's own config (domains `*`) is
    // the same content, so the same version and the same Arc...
    let mut headless = mk_service(
        "legacy",
        NS,
        "198.19.0.99",
        vec![mk_port("http", 9080, 9080)],
        &[("app", "legacy")],
    );
    headless.cluster_ip = None;
    let s = bookinfo()
        .service(headless)
        .pod(mk_pod("client", "other", "198.18.1.1", &[("app", "sleep")]))
        .build();
    let g = Generator::new(s.clone());
    let here = g.generate(&proxy(&s, "sleep"));
    let there = g.generate(&mk_proxy(&s, "other", "client"));
    assert!(Arc::ptr_eq(&rc(&here), &rc(&there)) || rc(&here) == rc(&there));
    assert_eq!(rc(&here).version, rc(&there).version);
    // Both namespaces see the same services and neither proxy serves a
    // port: one assignment map and one cluster map, shared by pointer.
    for t in [TypeUrl::Endpoint, TypeUrl::Cluster] {
        assert!(
            Arc::ptr_eq(here.shared(t).unwrap(), there.shared(t).unwrap()),
            "{t:?}"
        );
    }
    // ...while the port's table (hosts without a VIP, by Host header) has other
    // domains there (no short names), so another version.
    let port = |r: &ProxyResources| r.of(TypeUrl::Route).unwrap()["9080"].clone();
    assert_ne!(port(&here).version, port(&there).version);
    let j = rudder_xds::to_json(&there);
    let vhosts = j["rds"]["9080"]["virtualHosts"].as_array().unwrap();
    assert!(
        !vhosts
            .iter()
            .any(|v| v["name"] == "reviews.default.svc.cluster.local:9080"),
        "a host with a VIP has its own configuration, not a virtual host in the port's"
    );
    let vh = vhosts
        .iter()
        .find(|v| v["name"] == "legacy.default.svc.cluster.local:9080")
        .unwrap();
    assert!(vh["domains"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("legacy.default")));
    assert!(!vh["domains"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("legacy")));
}

#[test]
fn store_wins_over_node_metadata() {
    let s = bookinfo().build();
    let md = NodeMetadata {
        namespace: "stale".into(),
        labels: labels(&[("app", "old")]),
        service_account: "old".into(),
        inbound_capture_port: 15006,
        ..Default::default()
    };
    let p = resolve_proxy(
        &s,
        NodeId::sidecar("198.18.0.11".parse().unwrap(), "reviews-v1", NS),
        &md,
    );
    assert_eq!(p.namespace, NS);
    assert_eq!(p.labels, labels(&[("app", "reviews"), ("version", "v1")]));
    assert_eq!(p.service_account, "default");
    assert_eq!(
        p.inbound_capture_port, 15006,
        "capture ports come from the metadata"
    );
    // Unknown to the store: the metadata is all we have.
    let p = resolve_proxy(
        &s,
        NodeId::sidecar("198.18.9.9".parse().unwrap(), "ghost", NS),
        &md,
    );
    assert_eq!(p.namespace, "stale");
    assert_eq!(p.labels, labels(&[("app", "old")]));
    assert_eq!(
        rudder_xds::inbound_ports(&s, &proxy(&s, "reviews-v1")).len(),
        1
    );
}

#[test]
fn generator_is_shared_across_threads() {
    let s = with_reviews_rules(split_rules());
    let g = Arc::new(Generator::new(s.clone()));
    let pods = ["productpage-v1", "reviews-v1", "reviews-v2", "sleep"];
    let handles: Vec<_> = pods
        .iter()
        .map(|pod| {
            let (g, p) = (g.clone(), proxy(&s, pod));
            std::thread::spawn(move || g.generate(&p))
        })
        .collect();
    for (h, pod) in handles.into_iter().zip(pods) {
        let res = h.join().unwrap();
        assert_eq!(
            res,
            Generator::new(s.clone()).generate(&proxy(&s, pod)),
            "{pod}"
        );
    }
}

#[test]
fn proxies_with_identical_config_share_whole_maps() {
    // reviews-v1 and reviews-v2: same namespace, same inbound ports, no
    // source selectors: one cluster map, one assignment map, one route map.
    let s = with_reviews_rules(split_rules());
    let g = Generator::new(s.clone());
    let a = g.generate(&proxy(&s, "reviews-v1"));
    let b = g.generate(&proxy(&s, "reviews-v2"));
    for t in [TypeUrl::Cluster, TypeUrl::Endpoint, TypeUrl::Route] {
        assert!(
            Arc::ptr_eq(a.shared(t).unwrap(), b.shared(t).unwrap()),
            "{t:?}: identical maps must be one map"
        );
    }
    // The capture listener matches each pod's own addresses: a map per
    // proxy, but every service listener in it is the same resource.
    let (la, lb) = (
        a.of(TypeUrl::Listener).unwrap(),
        b.of(TypeUrl::Listener).unwrap(),
    );
    assert!(!Arc::ptr_eq(
        a.shared(TypeUrl::Listener).unwrap(),
        b.shared(TypeUrl::Listener).unwrap()
    ));
    let shared: Vec<&String> = la
        .iter()
        .filter(|(n, r)| lb.get(n).is_some_and(|o| Arc::ptr_eq(o, r)))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        shared.len(),
        la.len() - 1,
        "all but the capture listener: {shared:?}"
    );

    // sleep serves no port: its cluster map differs (no inbound clusters),
    // its assignments and routes are the namespace's.
    let c = g.generate(&proxy(&s, "sleep"));
    assert!(!Arc::ptr_eq(
        a.shared(TypeUrl::Cluster).unwrap(),
        c.shared(TypeUrl::Cluster).unwrap()
    ));
    for t in [TypeUrl::Endpoint, TypeUrl::Route] {
        assert!(
            Arc::ptr_eq(a.shared(t).unwrap(), c.shared(t).unwrap()),
            "{t:?}"
        );
    }
}

#[test]
fn namespaces_that_see_the_same_services_share_route_and_service_listener_maps() {
    // No Sidecar, no exportTo: a pod in another namespace sees every
    // service, so its route map and the base of its listener map (the
    // `<VIP>_<port>` listeners) are the default namespace's maps, one
    // allocation each, encoded once for a first response.
    let mut b = bookinfo()
        .policy(mk_policy(
            NS,
            &host("reviews"),
            &["v1", "v2", "v3"],
            TrafficPolicy::default(),
        ))
        .pod(mk_pod("sleep", "tenant", "10.9.0.7", &[("app", "sleep")]));
    for t in split_rules() {
        b = b.route_table(t);
    }
    let s = b.build();
    let g = Generator::new(s.clone());
    let here = g.generate(&proxy(&s, "sleep"));
    let there = g.generate(&mk_proxy(&s, "tenant", "sleep"));
    for t in [TypeUrl::Cluster, TypeUrl::Endpoint, TypeUrl::Route] {
        assert!(
            Arc::ptr_eq(here.shared(t).unwrap(), there.shared(t).unwrap()),
            "{t:?}: one map for both namespaces"
        );
    }
    let base = |r: &ProxyResources| r.shared(TypeUrl::Listener).unwrap().base().unwrap().clone();
    assert!(Arc::ptr_eq(&base(&here), &base(&there)));
    assert!(base(&here).len() > 2, "the service listeners");
    // The capture listeners stay each proxy's own.
    assert!(!Arc::ptr_eq(
        here.shared(TypeUrl::Listener).unwrap(),
        there.shared(TypeUrl::Listener).unwrap()
    ));
}

#[test]
fn a_generator_after_a_pod_change_carries_config_and_equals_a_fresh_one() {
    let before = with_reviews_rules(split_rules());
    let pod_change =
        with_reviews_endpoints(&before, |eps| eps.iter_mut().for_each(|e| e.ready = false));
    assert_eq!(pod_change.config_version, before.config_version);
    let route_change = with_reviews_rules(vec![reviews_vs(vec![mk_http_route(vec![dest(
        &host("reviews"),
        Some("v3"),
        100,
    )])])]);
    assert_ne!(route_change.config_version, before.config_version);

    for pod in ["productpage-v1", "reviews-v1", "sleep"] {
        let p = proxy(&before, pod);
        for next in [pod_change.clone(), route_change.clone()] {
            // One generator follows another once (it takes over what the
            // previous one holds).
            let first = Generator::new(before.clone());
            let old = first.generate(&p);
            let carried = Generator::after(&first, next.clone()).generate(&p);
            let fresh = Generator::new(next.clone()).generate(&p);
            assert_same_versions(&carried, &fresh, pod);
            // Only a pod change carries the route map over (the same map).
            let same_routes = Arc::ptr_eq(
                carried.shared(TypeUrl::Route).unwrap(),
                old.shared(TypeUrl::Route).unwrap(),
            );
            assert_eq!(
                same_routes,
                next.config_version == before.config_version,
                "{pod}"
            );
            // A route change leaves clusters and assignments as they were:
            // the previous generator's maps are kept (the same pointers).
            if next.config_version != before.config_version {
                for t in [TypeUrl::Cluster, TypeUrl::Endpoint] {
                    assert!(
                        Arc::ptr_eq(carried.shared(t).unwrap(), old.shared(t).unwrap()),
                        "{pod} {t:?}"
                    );
                }
            } else {
                // The pod change moved reviews' assignments.
                assert!(!Arc::ptr_eq(
                    carried.shared(TypeUrl::Endpoint).unwrap(),
                    old.shared(TypeUrl::Endpoint).unwrap()
                ));
            }
            // The proxy's listener map is kept (the same pointer) exactly
            // when its listeners are the same.
            let same_listeners = Arc::ptr_eq(
                carried.shared(TypeUrl::Listener).unwrap(),
                old.shared(TypeUrl::Listener).unwrap(),
            );
            assert_eq!(
                same_listeners,
                versions(&old, TypeUrl::Listener) == versions(&fresh, TypeUrl::Listener),
                "{pod}"
            );
            // A change of routes alone does not touch listeners: kept.
            if next.config_version != before.config_version {
                assert!(same_listeners, "a route change keeps {pod}'s listener map");
            }
        }
    }
}

#[test]
fn pod_changes_patch_the_previous_maps_entry_for_entry() {
    let before = with_reviews_rules(split_rules());
    let down = with_reviews_endpoints(&before, |eps| eps[0].ready = false);
    let up = with_reviews_endpoints(&down, |eps| eps[0].ready = true);
    assert_eq!(up.version, before.version);
    let reviews = host("reviews");
    for pod in ["productpage-v1", "reviews-v1", "sleep"] {
        let p = proxy(&before, pod);
        let g1 = Generator::new(before.clone());
        let r1 = g1.generate(&p);
        let g2 = Generator::after(&g1, down.clone());
        let r2 = g2.generate(&p);
        let g3 = Generator::after(&g2, up.clone());
        let r3 = g3.generate(&p);
        // Each equals a fresh generation of its snapshot.
        assert_same_versions(&r2, &Generator::new(down.clone()).generate(&p), pod);
        assert_same_versions(&r3, &r1, pod);
        // The pod left some of reviews' assignments, and nothing else.
        let moved = changed(&r1, &r2, TypeUrl::Endpoint);
        assert!(!moved.is_empty(), "{pod}");
        assert!(
            moved.iter().all(|n| n.ends_with(&reviews)),
            "{pod}: {moved:?}"
        );
        // Every entry that did not change is the previous resource itself.
        for t in [TypeUrl::Cluster, TypeUrl::Endpoint] {
            let (a, b) = (r1.of(t).unwrap(), r2.of(t).unwrap());
            for (name, r) in a.iter() {
                if !moved.contains(name) {
                    assert!(Arc::ptr_eq(r, &b[name]), "{pod} {t:?} {name}");
                }
            }
        }
        // The clusters did not change (no peer's mTLS mode did): the map is
        // the previous one.
        assert!(
            Arc::ptr_eq(
                r1.shared(TypeUrl::Cluster).unwrap(),
                r2.shared(TypeUrl::Cluster).unwrap()
            ),
            "{pod}"
        );
        // Two proxies of one scope share the patched maps.
        let q = proxy(&before, "reviews-v2");
        let rq = g2.generate(&q);
        assert!(Arc::ptr_eq(
            rq.shared(TypeUrl::Endpoint).unwrap(),
            r2.shared(TypeUrl::Endpoint).unwrap()
        ));
        // Their listener maps are their own (the capture listener holds the
        // pod's address), layered on one shared map of service listeners:
        // the part the ADS server encodes once for every stream.
        let (lq, l2) = (
            rq.shared(TypeUrl::Listener).unwrap(),
            r2.shared(TypeUrl::Listener).unwrap(),
        );
        assert!(!Arc::ptr_eq(lq, l2) && lq.get("virtual") != l2.get("virtual"));
        let base = l2.base().expect("a layered listener map");
        assert!(Arc::ptr_eq(lq.base().unwrap(), base));
        assert_eq!(l2.len(), base.len() + l2.own().len());
        assert!(l2.own().contains_key("virtual") && !base.contains_key("virtual"));
    }
}

#[test]
fn a_listener_map_is_carried_only_while_its_proxy_looks_it_up() {
    let before = with_reviews_rules(split_rules());
    let pod_change =
        with_reviews_endpoints(&before, |eps| eps.iter_mut().for_each(|e| e.ready = false));
    let p = proxy(&before, "productpage-v1");
    let first = Generator::new(before.clone());
    let map = first
        .generate(&p)
        .shared(TypeUrl::Listener)
        .unwrap()
        .clone();
    let held = Arc::downgrade(&map);
    drop(map);

    // Looked up by the next generator: the same map.
    let second = Generator::after(&first, pod_change.clone());
    let again = second.generate(&p);
    assert!(Arc::ptr_eq(
        again.shared(TypeUrl::Listener).unwrap(),
        &held.upgrade().unwrap()
    ));
    drop(again);

    // `third` never looks it up: `fourth` does not keep it, and once the
    // older generators are gone nothing holds it.
    let third = Generator::after(&second, before.clone());
    let fifth = Generator::after(&third, pod_change.clone());
    assert!(held.upgrade().is_some(), "second still holds it");
    drop((first, second, third));
    assert!(
        held.upgrade().is_none(),
        "a map no generator looked up is dropped"
    );
    // A proxy with another IP (a new pod) gets its own map.
    let mut moved = p.clone();
    moved.ips = vec!["10.9.9.9".parse().unwrap()];
    let a = fifth.generate(&p);
    let b = fifth.generate(&moved);
    assert!(!Arc::ptr_eq(
        a.shared(TypeUrl::Listener).unwrap(),
        b.shared(TypeUrl::Listener).unwrap()
    ));
}
