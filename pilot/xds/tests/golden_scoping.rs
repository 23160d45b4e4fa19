//! Per-proxy scoping: Sidecar `egress[].hosts`, Service `exportTo`, and the
//! DestinationRule lookup order across namespaces (the client's namespace,
//! the service's, the root). Goldens in `testdata/<case>.json`
//! (REFRESH_GOLDEN=1 rewrites), consistency-checked and validated by Envoy,
//! plus the scoping rules asserted directly: a scoped proxy holds only its
//! hosts, and a change to a host outside its scope changes none of its
//! resources.

mod support;

use std::{collections::BTreeSet, sync::Arc};

use rudder_model::*;
use rudder_xds::{fixtures::*, Generator, ProxyResources, TypeUrl};
use support::*;

/// Bookinfo in `default`, plus `cart` in `shop`, `billing` in `billing`
/// (and a `ledger` there exported only to its own namespace), one pod each.
fn mesh() -> SnapshotBuilder {
    let mut ledger = mk_service(
        "ledger",
        "billing",
        "198.19.1.3",
        vec![mk_port("http", 9080, 9080)],
        &[("app", "ledger")],
    );
    ledger.export_to = vec![".".into()];
    bookinfo()
        .service(mk_service(
            "cart",
            "shop",
            "198.19.1.1",
            vec![mk_port("http", 9080, 9080)],
            &[("app", "cart")],
        ))
        .service(mk_service(
            "billing",
            "billing",
            "198.19.1.2",
            vec![mk_port("http-api", 8080, 8080)],
            &[("app", "billing")],
        ))
        .service(ledger)
        .pod(mk_pod("cart-v1", "shop", "198.18.1.1", &[("app", "cart")]))
        .pod(mk_pod(
            "cart-canary",
            "shop",
            "198.18.1.3",
            &[("app", "cart"), ("track", "canary")],
        ))
        .pod(mk_pod(
            "billing-v1",
            "billing",
            "198.18.1.2",
            &[("app", "billing")],
        ))
}

/// The shop namespace's default Sidecar: its own namespace and billing.
fn shop_sidecar() -> Sidecar {
    mk_sidecar("shop", "default", None, &["./*", "billing/*"])
}

fn hosts_in(res: &ProxyResources) -> BTreeSet<String> {
    res.by_type[&TypeUrl::Cluster]
        .keys()
        .filter(|n| n.starts_with("outbound|"))
        .map(|n| n.rsplit('|').next().unwrap().to_string())
        .collect()
}

fn versions(res: &ProxyResources) -> Vec<(TypeUrl, String, String)> {
    res.by_type
        .iter()
        .flat_map(|(t, m)| m.iter().map(|(n, r)| (*t, n.clone(), r.version.clone())))
        .collect()
}

fn lb_of(j: &serde_json::Value, cluster: &str) -> String {
    j["cds"][cluster]["lbPolicy"]
        .as_str()
        .unwrap_or("ROUND_ROBIN")
        .to_string()
}

#[test]
fn sidecar_scopes_clusters_endpoints_listeners_and_routes() {
    let s = mesh().sidecar(shop_sidecar()).build();
    let p = mk_proxy(&s, "shop", "cart-v1");
    let j = golden("sidecar_namespace_default", &s, &p);
    let res = generate(&s, &p);
    assert_eq!(
        hosts_in(&res),
        [
            "billing.billing.svc.cluster.local",
            "cart.shop.svc.cluster.local"
        ]
        .map(String::from)
        .into(),
        "its own namespace and billing; ledger is exported only to billing"
    );
    let eds: BTreeSet<&String> = res.by_type[&TypeUrl::Endpoint].keys().collect();
    assert!(eds.iter().all(|n| !n.contains(".default.")), "{eds:?}");
    let lds: Vec<&String> = res.by_type[&TypeUrl::Listener].keys().collect();
    assert_eq!(lds, ["198.19.1.1_9080", "198.19.1.2_8080", "virtual"]);
    let rds: Vec<&String> = res.by_type[&TypeUrl::Route].keys().collect();
    assert_eq!(
        rds,
        [
            "8080",
            "9080",
            "billing.billing.svc.cluster.local:8080",
            "cart.shop.svc.cluster.local:9080"
        ]
    );
    assert!(
        !j["rds"]["9080"].to_string().contains("reviews"),
        "the port table holds no invisible host"
    );
}

#[test]
fn a_workload_sidecar_beats_the_namespace_default_and_the_root_default_applies_elsewhere() {
    let s = mesh()
        .sidecar(mk_sidecar(
            "rudder-system",
            "mesh",
            None,
            &["./*", "default/*"],
        ))
        .sidecar(shop_sidecar())
        .sidecar(mk_sidecar(
            "shop",
            "canary",
            Some(&[("track", "canary")]),
            &["~/*"],
        ))
        .build();
    // One generator for all three: the caches must keep them apart.
    let g = Generator::new(s.clone());
    let canary = g.generate(&mk_proxy(&s, "shop", "cart-canary"));
    let cart = g.generate(&mk_proxy(&s, "shop", "cart-v1"));
    let billing = g.generate(&mk_proxy(&s, "billing", "billing-v1"));
    assert!(hosts_in(&canary).is_empty(), "`~/*` imports nothing");
    assert_eq!(hosts_in(&cart).len(), 2);
    let billing_hosts = hosts_in(&billing);
    assert!(
        billing_hosts.contains("ledger.billing.svc.cluster.local")
            && billing_hosts.contains("reviews.default.svc.cluster.local")
            && !billing_hosts.contains("cart.shop.svc.cluster.local"),
        "the root namespace's default applies to billing, `./*` meaning billing: {:?}",
        hosts_in(&billing)
    );
    for (name, res) in [("canary", &canary), ("cart", &cart), ("billing", &billing)] {
        let p = match name {
            "canary" => mk_proxy(&s, "shop", "cart-canary"),
            "cart" => mk_proxy(&s, "shop", "cart-v1"),
            _ => mk_proxy(&s, "billing", "billing-v1"),
        };
        let alone = generate(&s, &p);
        assert_eq!(
            versions(res),
            versions(&alone),
            "{name}: shared caches changed it"
        );
    }
    golden(
        "sidecar_workload_import_nothing",
        &s,
        &mk_proxy(&s, "shop", "cart-canary"),
    );
}

#[test]
fn changes_to_hosts_outside_the_scope_leave_every_resource_unchanged() {
    let before = mesh().sidecar(shop_sidecar()).build();
    let after = mesh()
        .sidecar(shop_sidecar())
        .pod(mk_pod(
            "reviews-v4",
            NS,
            "198.18.0.40",
            &[("app", "reviews"), ("version", "v4")],
        ))
        .service(mk_service(
            "details",
            NS,
            "198.19.0.20",
            vec![mk_port("http", 9080, 9080)],
            &[("app", "details")],
        ))
        .route_table(reviews_vs(vec![mk_http_route(vec![dest(
            &host("reviews"),
            None,
            100,
        )])]))
        .policy(mk_policy(
            NS,
            &host("reviews"),
            &["v1"],
            TrafficPolicy::default(),
        ))
        .build();
    assert_ne!(before.version, after.version);
    let scoped = |s: &Arc<Snapshot>| generate(s, &mk_proxy(s, "shop", "cart-v1"));
    assert_eq!(versions(&scoped(&before)), versions(&scoped(&after)));
    let unscoped = |s: &Arc<Snapshot>| generate(s, &mk_proxy(s, "billing", "billing-v1"));
    assert_ne!(
        versions(&unscoped(&before)),
        versions(&unscoped(&after)),
        "a proxy without a Sidecar sees the change"
    );
}

#[test]
fn service_export_to_hides_a_service_from_other_namespaces() {
    let s = mesh().build();
    let shop = generate(&s, &mk_proxy(&s, "shop", "cart-v1"));
    let billing = generate(&s, &mk_proxy(&s, "billing", "billing-v1"));
    let ledger = "ledger.billing.svc.cluster.local".to_string();
    assert!(!hosts_in(&shop).contains(&ledger));
    assert!(hosts_in(&billing).contains(&ledger));
    golden(
        "export_to_service_private",
        &s,
        &mk_proxy(&s, "shop", "cart-v1"),
    );
}

/// reviews has a public rule in its own namespace (RANDOM); shop has a
/// private one of its own (LEAST_REQUEST); the root namespace has one too.
#[test]
fn destination_rules_follow_client_then_service_then_root_namespace() {
    let (reviews, ratings) = (host("reviews"), host("ratings"));
    let rule = |ns: &str, host: &str, subsets: &[&str], lb: Option<LoadBalancer>, export: &str| {
        let policy = TrafficPolicy {
            load_balancer: lb,
            ..Default::default()
        };
        let mut p = mk_policy(ns, host, subsets, policy);
        p.export_to = vec![export.into()];
        p
    };
    // Everything but shop's private rule.
    let others = || {
        mesh()
            .policy(rule(NS, &reviews, &["v1"], Some(LoadBalancer::Random), "*"))
            .policy(rule("rudder-system", &reviews, &[], None, "*"))
            .policy(rule(
                "rudder-system",
                &ratings,
                &[],
                Some(LoadBalancer::LeastRequest),
                "*",
            ))
    };
    let s = others()
        .policy(rule(
            "shop",
            &reviews,
            &["v2"],
            Some(LoadBalancer::LeastRequest),
            ".",
        ))
        .build();
    let shop = golden(
        "dr_client_namespace_first",
        &s,
        &mk_proxy(&s, "shop", "cart-v1"),
    );
    let base = format!("outbound|9080||{reviews}");
    assert_eq!(
        lb_of(&shop, &base),
        "LEAST_REQUEST",
        "shop's own private rule"
    );
    assert!(shop["cds"][format!("outbound|9080|v2|{reviews}")].is_object());
    assert!(shop["cds"][format!("outbound|9080|v1|{reviews}")].is_null());
    let billing = golden(
        "dr_service_namespace",
        &s,
        &mk_proxy(&s, "billing", "billing-v1"),
    );
    assert_eq!(
        lb_of(&billing, &base),
        "RANDOM",
        "shop's private rule changes nothing for billing: reviews' own namespace answers before the root"
    );
    assert!(billing["cds"][format!("outbound|9080|v1|{reviews}")].is_object());
    assert!(billing["cds"][format!("outbound|9080|v2|{reviews}")].is_null());
    assert_eq!(
        lb_of(&billing, &format!("outbound|9080||{ratings}")),
        "LEAST_REQUEST",
        "no rule in the client's or the service's namespace: the root's"
    );
    // The private rule never hides or changes billing's view: without it,
    // billing's resources are the same.
    let without = others().build();
    assert_eq!(
        versions(&generate(
            &without,
            &mk_proxy(&without, "billing", "billing-v1")
        )),
        versions(&generate(&s, &mk_proxy(&s, "billing", "billing-v1")))
    );
}

/// A VirtualService in the Sidecar's imported namespace is selected and the
/// services it routes to come with it; one in a namespace not imported is not.
#[test]
fn selected_virtual_services_bring_their_destinations() {
    let reviews = host("reviews");
    let to_v1 = mk_http_route(vec![dest(&reviews, Some("v1"), 100)]);
    let s = mesh()
        .policy(mk_policy(NS, &reviews, &["v1"], TrafficPolicy::default()))
        // default's rule is older (first): it would win were it selected.
        .route_table(reviews_vs(vec![mk_http_route(vec![dest(
            &reviews, None, 100,
        )])]))
        .route_table(mk_route_table(
            "shop",
            "to-reviews",
            &[&reviews],
            vec![to_v1],
            vec![],
        ))
        .sidecar(shop_sidecar())
        .build();
    let res = generate(&s, &mk_proxy(&s, "shop", "cart-v1"));
    assert!(hosts_in(&res).contains(&reviews), "{:?}", hosts_in(&res));
    assert!(
        !hosts_in(&res).contains(&host("ratings")),
        "ratings is neither imported nor routed to"
    );
    let j = rudder_xds::to_json(&res);
    let rc = j["rds"][format!("{reviews}:9080")].to_string();
    assert!(
        rc.contains(&format!("outbound|9080|v1|{reviews}")),
        "shop's own rule, not default's (default's namespace is not imported): {rc}"
    );
}
