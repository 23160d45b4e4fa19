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
    assert_eq!(w[0].field, "spec.gateways[0]");
    assert!(w[0].message.contains("no Gateway default/ingress"), "{w:?}");
    // Gateway-only: no sidecar gets it, the gateway's tables hold it.
    let s = snapshot(&[platform(), edge_only].join("---\n"));
    assert!(s.route_tables_for(HOST, "default").next().is_none());
    assert_eq!(s.gateway_route_tables.len(), 1);
    assert_eq!(s.gateway_route_tables[0].gateways, ["default/ingress"]);
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

/// A VirtualService for reviews with one HTTP route: `route` is the route's
/// YAML (flow mappings, one per line, indented by 4).
fn vs_route(route: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews, namespace: default}}\nspec:\n  hosts: [reviews]\n  http:\n  - {route}\n")
}

fn problems(route: &str) -> Vec<(String, String)> {
    let r = validate(&[
        ("platform.yaml", &platform()),
        ("vs.yaml", &vs_route(route)),
    ]);
    errors(&r)
        .iter()
        .map(|d| (d.field.clone(), d.message.clone()))
        .collect()
}

const TO_REVIEWS: &str = "route: [{destination: {host: reviews}}]";

#[test]
fn istio_route_fields_reach_the_model() {
    use rudder_model::{AbortStatus, Body, HttpAction, StringMatch};
    let route = format!(
        "{TO_REVIEWS}\n    match: [{{headers: {{x-a: {{}}, x-b: {{exact: \"1\"}}}}, withoutHeaders: {{x-c: {{}}}}, queryParams: {{debug: {{}}}}}}]\n    corsPolicy: {{allowOrigins: [{{exact: \"https://a.example\"}}, {{regex: \"https://.*\"}}], allowMethods: [GET, POST], allowHeaders: [x-a], exposeHeaders: [x-b], maxAge: 24h, allowCredentials: true, unmatchedPreflights: IGNORE}}\n    fault: {{abort: {{grpcStatus: UNAVAILABLE}}}}\n    rewrite: {{uriRegexRewrite: {{match: \"^/a/(.*)$\", rewrite: \"/b/\\\\1\"}}}}\n    retries: {{attempts: 2, retryRemoteLocalities: true, retryIgnorePreviousHosts: false, backoff: 50ms}}"
    );
    let s = snapshot(&[platform(), vs_route(&route)].join("---\n"));
    let t = s.route_tables_for(HOST, "default").next().expect("a table");
    let r = &t.http[0];
    let m = &r.matches[0];
    assert_eq!(m.headers["x-a"], StringMatch::Present);
    assert_eq!(m.headers["x-b"], StringMatch::Exact("1".into()));
    assert_eq!(m.without_headers["x-c"], StringMatch::Present);
    assert_eq!(m.query_params["debug"], StringMatch::Present);
    let c = r.cors.as_ref().expect("cors");
    assert_eq!(c.allow_origins.len(), 2);
    assert_eq!(c.allow_methods, ["GET", "POST"]);
    assert_eq!(c.max_age, Some(86400));
    assert_eq!(c.allow_credentials, Some(true));
    assert!(!c.forward_unmatched_preflights);
    let abort = r.fault.as_ref().unwrap().abort.as_ref().unwrap();
    assert_eq!(abort.status, AbortStatus::Grpc(14));
    let rw = r.rewrite.as_ref().unwrap();
    assert_eq!(
        rw.uri_regex,
        Some(("^/a/(.*)$".to_string(), "/b/\\1".to_string()))
    );
    let rt = r.retries.as_ref().unwrap();
    assert!(rt.remote_localities);
    assert_eq!(rt.ignore_previous_hosts, Some(false));
    assert_eq!(rt.backoff, Some(std::time::Duration::from_millis(50)));

    let direct = "directResponse: {status: 200, body: {bytes: \"AJ+Slg==\"}}";
    let s = snapshot(&[platform(), vs_route(direct)].join("---\n"));
    let t = s.route_tables_for(HOST, "default").next().unwrap();
    match &t.http[0].action {
        HttpAction::DirectResponse(d) => {
            assert_eq!(d.body, Some(Body::Bytes(vec![0, 159, 146, 150])))
        }
        other => panic!("{other:?}"),
    }
    let redirect = "redirect: {uri: /x, derivePort: FROM_REQUEST_PORT}";
    let s = snapshot(&[platform(), vs_route(redirect)].join("---\n"));
    let t = s.route_tables_for(HOST, "default").next().unwrap();
    match &t.http[0].action {
        HttpAction::Redirect(r) => assert!(r.port_from_request),
        other => panic!("{other:?}"),
    }
}

#[test]
fn istio_route_fields_are_refused_by_path_when_istio_refuses_them() {
    let at = "spec.http[0]";
    let one = |route: &str| {
        let p = problems(route);
        assert_eq!(p.len(), 1, "{route}: {p:?}");
        p.into_iter().next().unwrap()
    };
    let e = |f: &str, m: &str| (format!("{at}.{f}"), m.to_string());
    assert_eq!(
        one(&format!("{TO_REVIEWS}\n    corsPolicy: {{allowMethods: [FETCH]}}")),
        e(
            "corsPolicy.allowMethods[0]",
            "\"FETCH\" is not a supported HTTP method (GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH)"
        )
    );
    assert_eq!(
        one(&format!("{TO_REVIEWS}\n    corsPolicy: {{maxAge: 1500ms}}")),
        e(
            "corsPolicy.maxAge",
            "maxAge is accurate only to seconds precision"
        )
    );
    assert_eq!(
        one(&format!(
            "{TO_REVIEWS}\n    corsPolicy: {{allowOrigins: [{{exact: \"\"}}]}}"
        )),
        e(
            "corsPolicy.allowOrigins[0]",
            "an empty match is not a valid CORS origin"
        )
    );
    assert_eq!(
        one(&format!(
            "{TO_REVIEWS}\n    corsPolicy: {{allowHeaders: [\"x a\"]}}"
        )),
        e(
            "corsPolicy.allowHeaders[0]",
            "\"x a\" is not a valid header name"
        )
    );
    assert_eq!(
        one(&format!(
            "{TO_REVIEWS}\n    corsPolicy: {{unmatchedPreflights: DROP}}"
        )),
        e(
            "corsPolicy.unmatchedPreflights",
            "\"DROP\" is not FORWARD or IGNORE"
        )
    );
    assert_eq!(
        one(&format!(
            "{TO_REVIEWS}\n    fault: {{abort: {{grpcStatus: SOMETIMES}}}}"
        )),
        e(
            "fault.abort.grpcStatus",
            "\"SOMETIMES\" is not a valid gRPC code"
        )
    );
    assert_eq!(
        one(&format!(
            "{TO_REVIEWS}\n    fault: {{abort: {{grpcStatus: UNAVAILABLE, httpStatus: 503}}}}"
        )),
        e(
            "fault.abort.grpcStatus",
            "httpStatus and grpcStatus are mutually exclusive"
        )
    );
    assert_eq!(
        one("directResponse: {status: 200, body: {bytes: \"not base64!\"}}").0,
        format!("{at}.directResponse.body.bytes")
    );
    assert_eq!(
        one("directResponse: {status: 200, body: {bytes: \"AA==\", string: a}}"),
        e(
            "directResponse.body.bytes",
            "string and bytes are mutually exclusive"
        )
    );
    assert_eq!(
        one("redirect: {uri: /x, port: 8080, derivePort: FROM_REQUEST_PORT}"),
        e(
            "redirect.derivePort",
            "port and derivePort are mutually exclusive"
        )
    );
    assert_eq!(
        one("redirect: {uri: /x, derivePort: SOMEWHERE}"),
        e(
            "redirect.derivePort",
            "\"SOMEWHERE\" is not FROM_PROTOCOL_DEFAULT or FROM_REQUEST_PORT"
        )
    );
    assert_eq!(
        one(&format!(
            "{TO_REVIEWS}\n    rewrite: {{uri: /a, uriRegexRewrite: {{match: a, rewrite: b}}}}"
        )),
        e(
            "rewrite.uriRegexRewrite",
            "rewrite may only contain one of uri or uriRegexRewrite"
        )
    );
    assert_eq!(
        one(&format!(
            "{TO_REVIEWS}\n    rewrite: {{uriRegexRewrite: {{match: a}}}}"
        )),
        e(
            "rewrite.uriRegexRewrite",
            "uriRegexRewrite requires both rewrite and match to be specified"
        )
    );
    assert_eq!(
        one(&format!(
            "{TO_REVIEWS}\n    rewrite: {{uriRegexRewrite: {{match: \"(\", rewrite: b}}}}"
        ))
        .0,
        format!("{at}.rewrite.uriRegexRewrite.match")
    );
    assert_eq!(
        one(&format!(
            "{TO_REVIEWS}\n    retries: {{attempts: 2, backoff: 10}}"
        ))
        .0,
        format!("{at}.retries.backoff")
    );
    // Other bad matches keep their errors: `{}` is presence only for
    // headers and query parameters.
    let bad = problems(&format!(
        "{TO_REVIEWS}\n    match: [{{headers: {{x-a: {{suffix: a}}}}}}]"
    ));
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].1.contains("unknown variant `suffix`"), "{bad:?}");
    let uri = problems(&format!("{TO_REVIEWS}\n    match: [{{uri: {{}}}}]"));
    assert_eq!(uri.len(), 1, "{uri:?}");
    assert_eq!(
        one("delegate: {name: \"\"}"),
        e("delegate.name", "delegate name must be specified")
    );
    assert_eq!(
        one(&format!("{TO_REVIEWS}\n    delegate: {{name: d}}")),
        e("delegate", "delegate and route are mutually exclusive")
    );
}

const DELEGATE: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews-d, namespace: default}\nspec:\n  http:\n  - name: a\n    match: [{uri: {prefix: /r/a}}]\n    route: [{destination: {host: reviews, subset: v2}}]\n  - match: [{uri: {prefix: /x}}]\n    route: [{destination: {host: reviews, subset: v3}}]\n  - route: [{destination: {host: reviews, subset: v3}}]\n";

#[test]
fn delegate_routes_merge_into_the_root_as_istio_merges_them() {
    use rudder_model::{HttpAction, StringMatch};
    let root = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: default}\nspec:\n  hosts: [reviews]\n  http:\n  - name: root\n    match: [{uri: {prefix: /r}, headers: {x-a: {exact: \"1\"}}}]\n    timeout: 3s\n    delegate: {name: reviews-d}\n  - route: [{destination: {host: reviews, subset: v1}}]\n";
    let r = validate(&[
        ("platform.yaml", &platform()),
        ("root.yaml", root),
        ("delegate.yaml", DELEGATE),
    ]);
    assert!(errors(&r).is_empty(), "{:?}", errors(&r));
    let dropped: Vec<_> = warnings(&r)
        .into_iter()
        .filter(|w| w.field == "spec.http[0].delegate")
        .collect();
    assert_eq!(dropped.len(), 1, "the /x route conflicts: {dropped:?}");
    let s = snapshot(&[platform(), root.into(), DELEGATE.into()].join("---\n"));
    let tables: Vec<_> = s.route_tables_for(HOST, "default").collect();
    assert_eq!(tables.len(), 1, "the delegate routes nothing itself");
    let http = &tables[0].http;
    assert_eq!(http.len(), 3, "{http:#?}");
    let subset = |i: usize| match &http[i].action {
        HttpAction::Route(d) => d[0].subset.clone().unwrap(),
        other => panic!("{other:?}"),
    };
    // The delegate's route within the root's match: its own uri, the root's
    // header, the root's timeout, names joined.
    assert_eq!(http[0].name.as_deref(), Some("root-a"));
    assert_eq!(
        http[0].matches[0].uri,
        Some(StringMatch::Prefix("/r/a".into()))
    );
    assert_eq!(
        http[0].matches[0].headers["x-a"],
        StringMatch::Exact("1".into())
    );
    assert_eq!(http[0].timeout, Some(std::time::Duration::from_secs(3)));
    assert_eq!(subset(0), "v2");
    // A delegate route without matches takes the root's.
    assert_eq!(
        http[1].matches[0].uri,
        Some(StringMatch::Prefix("/r".into()))
    );
    assert_eq!(subset(1), "v3");
    assert_eq!(subset(2), "v1");

    // A missing delegate, or one not exported to the root, drops the route.
    let hidden = DELEGATE.replace("spec:\n", "spec:\n  exportTo: [other]\n");
    for (name, d) in [("missing", String::new()), ("hidden", hidden)] {
        let r = validate(&[
            ("platform.yaml", &platform()),
            ("root.yaml", root),
            ("d.yaml", &d),
        ]);
        let w: Vec<_> = warnings(&r)
            .into_iter()
            .filter(|w| w.field == "spec.http[0].delegate")
            .collect();
        assert_eq!(w.len(), 1, "{name}: {w:?}");
    }
    // A delegate may not have gateways, TCP routes or delegate again.
    let bad = DELEGATE.replace("spec:\n", "spec:\n  gateways: [mesh]\n");
    let r = validate(&[("d.yaml", &bad)]);
    assert_eq!(errors(&r)[0].field, "spec.gateways");
}
