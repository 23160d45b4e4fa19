//! Fields that must mean what Istio makes of them (issue 14): each reaches
//! the model, or is refused with its field and why.

mod common;

use common::{errors, mk_pod, mk_service, objects, validate, warnings};
use pretty_assertions::assert_eq;
use rudder_model::{LoadBalancer, Snapshot};
use rudder_registry::Store;

const HOST: &str = "reviews.default.svc.cluster.local";

fn snapshot(yaml: &str) -> Snapshot {
    let mut store = Store::new();
    for o in objects(yaml) {
        store.apply(o);
    }
    store.snapshot()
}

fn platform() -> String {
    [
        mk_service("reviews", "http", 9080, "9080"),
        mk_pod("reviews-v1", "reviews", "v1", "10.0.0.1", true),
    ]
    .join("---\n")
}

const EXTERNAL: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: payments, namespace: default}\nspec:\n  type: ExternalName\n  externalName: Payments.Example.com.\n  ports:\n  - {name: http, port: 8080}\n";

#[test]
fn external_name_services_keep_their_dns_name_and_no_vip() {
    let s = snapshot(EXTERNAL);
    let svc = &s.services["payments.default.svc.cluster.local"];
    assert_eq!(svc.external_name.as_deref(), Some("payments.example.com"));
    assert_eq!(svc.cluster_ip, None);
    assert_eq!(svc.ports[0].port, 8080);

    let bad = EXTERNAL.replace("Payments.Example.com.", "10.0.0.9");
    let r = validate(&[("svc.yaml", &bad)]);
    let e = errors(&r);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].field, "spec.externalName");
    assert_eq!(
        e[0].message,
        "\"10.0.0.9\" is not a DNS name (required for type ExternalName)"
    );
}

#[test]
fn minimum_ring_size_reaches_the_model() {
    let dr = |size: u64| {
        format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: reviews}}\nspec:\n  host: reviews\n  trafficPolicy: {{loadBalancer: {{consistentHash: {{httpHeaderName: x-user, minimumRingSize: {size}}}}}}}\n")
    };
    for (size, want) in [(2048, Some(2048)), (0, None)] {
        let s = snapshot(&[platform(), dr(size)].join("---\n"));
        let p = s.destination_policy("default", HOST).expect("policy");
        match &p.traffic_policy.load_balancer {
            Some(LoadBalancer::ConsistentHash {
                minimum_ring_size, ..
            }) => assert_eq!(*minimum_ring_size, want, "minimumRingSize {size}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn gateways_reach_the_matches_and_gateway_only_rules_are_named() {
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  gateways: [mesh, ingress]\n  http:\n  - match: [{uri: {prefix: /edge}, gateways: [ingress]}, {uri: {prefix: /m}, gateways: [mesh]}]\n    route: [{destination: {host: reviews}}]\n  tcp:\n  - match: [{gateways: [ingress]}]\n    route: [{destination: {host: reviews}}]\n";
    let s = snapshot(&[platform(), vs.to_string()].join("---\n"));
    let t = s.route_tables_for(HOST, "default").next().expect("a table");
    assert_eq!(t.http[0].matches[0].gateways, ["ingress"]);
    assert_eq!(t.http[0].matches[1].gateways, ["mesh"]);
    assert_eq!(t.tcp[0].matches[0].gateways, ["ingress"]);

    let edge_only = vs.replace("gateways: [mesh, ingress]", "gateways: [ingress]");
    let r = validate(&[("platform.yaml", &platform()), ("vs.yaml", &edge_only)]);
    assert!(errors(&r).is_empty(), "{:?}", errors(&r));
    let w = warnings(&r);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].field, "spec.gateways");
}

#[test]
fn header_names_follow_istio_and_request_host_is_served() {
    let vs = |headers: &str, dest_headers: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews, namespace: default}}\nspec:\n  hosts: [reviews]\n  http:\n  - headers: {headers}\n    route:\n    - destination: {{host: reviews}}\n      weight: 50\n      headers: {dest_headers}\n    - destination: {{host: reviews}}\n      weight: 50\n")
    };
    let check = |yaml: String| {
        let r = validate(&[("platform.yaml", &platform()), ("vs.yaml", &yaml)]);
        errors(&r)
            .iter()
            .map(|d| (d.field.clone(), d.message.clone()))
            .collect::<Vec<_>>()
    };
    // Served: request host / :authority, once per place.
    assert_eq!(
        check(vs(
            "{request: {set: {Host: a.internal}}}",
            "{request: {add: {\":authority\": c.internal}}}"
        )),
        vec![]
    );
    let at = "spec.http[0].headers";
    assert_eq!(
        check(vs("{request: {set: {host: a}, add: {\":authority\": b, \":path\": /x}, remove: [host]}, response: {set: {\":status\": \"200\"}, remove: [Host]}}", "{}")),
        vec![
            (format!("{at}.request.add.:authority"), "authority header cannot be set multiple times: have \"a\", attempting to set \"b\"".to_string()),
            (format!("{at}.request.add.:path"), "invalid header \":path\": header cannot have \":\" prefix".to_string()),
            (format!("{at}.request.remove[0]"), "invalid header \"host\": cannot set Host header".to_string()),
            (format!("{at}.response.set.:status"), "invalid header \":status\": header cannot have \":\" prefix".to_string()),
            (format!("{at}.response.remove[0]"), "invalid header \"Host\": cannot set Host header".to_string()),
        ]
    );
    // rewrite.authority and a host edit: Istio refuses the second place.
    let both = vs("{request: {set: {host: a}}}", "{}")
        .replace("  - headers:", "  - rewrite: {authority: r}\n    headers:");
    assert_eq!(
        check(both),
        vec![(
            format!("{at}.request.set.host"),
            "authority header cannot be set multiple times: have \"r\", attempting to set \"a\""
                .to_string()
        )]
    );
}

#[test]
fn route_rule_websocket_upgrade_false_is_named() {
    let rr = |v: bool| {
        format!("apiVersion: config.istio.io/v1alpha2\nkind: RouteRule\nmetadata: {{name: r, namespace: default}}\nspec:\n  destination: {{name: reviews}}\n  websocketUpgrade: {v}\n")
    };
    let ok = validate(&[("platform.yaml", &platform()), ("rr.yaml", &rr(true))]);
    assert!(ok.diagnostics.is_empty(), "{:?}", ok.diagnostics);
    let off = validate(&[("platform.yaml", &platform()), ("rr.yaml", &rr(false))]);
    let w = warnings(&off);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].field, "spec.websocketUpgrade");
}

#[test]
fn route_rule_append_headers_follow_the_same_rules() {
    let rr = |h: &str| {
        format!("apiVersion: config.istio.io/v1alpha2\nkind: RouteRule\nmetadata: {{name: r, namespace: default}}\nspec:\n  destination: {{name: reviews}}\n  appendHeaders: {{{h}}}\n")
    };
    let host = validate(&[
        ("platform.yaml", &platform()),
        ("rr.yaml", &rr("host: a.internal")),
    ]);
    assert!(host.diagnostics.is_empty(), "{:?}", host.diagnostics);
    let path = validate(&[
        ("platform.yaml", &platform()),
        ("rr.yaml", &rr("\":path\": /x")),
    ]);
    let e = errors(&path);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].field, "spec.appendHeaders.:path");
}
