//! Golden tests of fields that must mean what they mean in Istio (issue 14):
//! WebSocket upgrades, `host` header edits, match-level `gateways` and
//! ExternalName Services. Each is also validated by `envoy --mode validate`
//! (a `host` edit in a header list would be rejected there).

mod support;

use rudder_model::*;
use rudder_xds::fixtures::*;
use serde_json::{json, Value};
use support::*;

const HCM: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/// Every HTTP connection manager in the generated listeners.
fn hcms(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(m) => {
            if m.get("@type").and_then(Value::as_str) == Some(HCM) {
                out.push(v.clone());
            }
            m.values().for_each(|v| hcms(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| hcms(v, out)),
        _ => {}
    }
}

fn reviews_route(http: Vec<HttpRoute>) -> std::sync::Arc<Snapshot> {
    with_reviews_rules(vec![reviews_vs(http)])
}

#[test]
fn websocket_upgrades_on_every_http_connection_manager() {
    // reviews-v1 serves reviews (inbound HCM) and calls the others (a VIP
    // listener per HTTP service and the capture port's chain for 9080).
    let s = bookinfo().build();
    let j = golden("websocket", &s, &proxy(&s, "reviews-v1"));
    let mut found = Vec::new();
    hcms(&j["lds"], &mut found);
    let inbound = found
        .iter()
        .filter(|h| h["statPrefix"].as_str().unwrap().starts_with("inbound"))
        .count();
    assert!(inbound >= 1 && found.len() > inbound + 1, "{found:?}");
    for h in &found {
        assert_eq!(
            h["upgradeConfigs"],
            json!([{"upgradeType": "websocket"}]),
            "{}",
            h["statPrefix"]
        );
    }
}

#[test]
fn host_header_edits_become_host_rewrites() {
    let set_host = |key: &str, value: &str| Headers {
        request: HeaderOps {
            set: [
                (key.to_string(), value.to_string()),
                ("x-a".into(), "1".into()),
            ]
            .into(),
            ..Default::default()
        },
        ..Default::default()
    };
    // Route level: `set host`; per destination: `:authority` and `add host`.
    let route = HttpRoute {
        headers: set_host("Host", "reviews.internal"),
        ..mk_http_route(vec![
            Destination {
                headers: set_host(":authority", "v1.reviews.internal"),
                ..dest(&host("reviews"), Some("v1"), 60)
            },
            Destination {
                headers: Headers {
                    request: HeaderOps {
                        add: [("host".to_string(), "v2.reviews.internal".to_string())].into(),
                        remove: vec!["host".into(), "x-b".into()],
                        ..Default::default()
                    },
                    ..Default::default()
                },
                ..dest(&host("reviews"), Some("v2"), 40)
            },
        ])
    };
    // With `rewrite.authority` the rewrite wins over the header edit (a
    // VirtualService cannot say both: validation refuses it, as Istio's does).
    let rewritten = HttpRoute {
        matches: vec![HttpMatch {
            uri: Some(StringMatch::Prefix("/rewritten".into())),
            ..Default::default()
        }],
        rewrite: Some(Rewrite {
            uri: None,
            authority: Some("rewrite.internal".into()),
            uri_regex: None,
        }),
        headers: set_host("host", "ignored.internal"),
        ..mk_http_route(vec![dest(&host("reviews"), Some("v3"), 100)])
    };
    let s = reviews_route(vec![rewritten, route]);
    let j = golden("host_header_rewrite", &s, &proxy(&s, "productpage-v1"));
    let routes = vhost_routes(&j, 9080, &host("reviews"));
    assert_eq!(routes[0]["route"]["hostRewriteLiteral"], "rewrite.internal");
    let r = &routes[1];
    assert_eq!(r["route"]["hostRewriteLiteral"], "reviews.internal");
    assert_eq!(
        r["requestHeadersToAdd"],
        json!([{"appendAction": "OVERWRITE_IF_EXISTS_OR_ADD", "header": {"key": "x-a", "value": "1"}}])
    );
    let wc = &r["route"]["weightedClusters"]["clusters"];
    assert_eq!(wc[0]["hostRewriteLiteral"], "v1.reviews.internal");
    assert_eq!(wc[0]["requestHeadersToAdd"].as_array().unwrap().len(), 1);
    assert_eq!(wc[1]["hostRewriteLiteral"], "v2.reviews.internal");
    assert!(wc[1].get("requestHeadersToAdd").is_none(), "{wc}");
    assert_eq!(wc[1]["requestHeadersToRemove"], json!(["x-b"]));
    // Nowhere does a header list touch host or a pseudo-header.
    let text = j["rds"].to_string().to_ascii_lowercase();
    assert!(!text.contains(r#""key":"host""#) && !text.contains(r#""key":":authority""#));
}

#[test]
fn matches_for_gateways_only_are_dropped_for_sidecars() {
    let gw = |gateways: &[&str], prefix: &str| HttpMatch {
        uri: Some(StringMatch::Prefix(prefix.into())),
        gateways: gateways.iter().map(|g| g.to_string()).collect(),
        // Istio: a match naming `mesh` applies whatever its source labels.
        source_labels: labels(&[("app", "nobody")]),
        ..Default::default()
    };
    let routes = vec![
        // Only for a gateway: the whole route is gone for sidecars.
        HttpRoute {
            matches: vec![gw(&["istio-system/ingress"], "/edge")],
            ..mk_http_route(vec![dest(&host("reviews"), Some("v3"), 100)])
        },
        // One match for the mesh, one for a gateway: the mesh one stays.
        HttpRoute {
            matches: vec![gw(&["ingress"], "/both-edge"), gw(&["mesh"], "/both-mesh")],
            ..mk_http_route(vec![dest(&host("reviews"), Some("v2"), 100)])
        },
        mk_http_route(vec![dest(&host("reviews"), Some("v1"), 100)]),
    ];
    let tcp = TcpRoute {
        matches: vec![TcpMatch {
            gateways: vec!["ingress".into()],
            ..Default::default()
        }],
        destinations: vec![dest(&host("mysql"), None, 100)],
    };
    let s = with_reviews_rules(vec![
        reviews_vs(routes),
        mk_route_table(NS, "mysql", &[&host("mysql")], vec![], vec![tcp]),
    ]);
    let j = golden("match_gateways", &s, &proxy(&s, "productpage-v1"));
    let r = vhost_routes(&j, 9080, &host("reviews"));
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[0]["match"]["prefix"], "/both-mesh");
    assert_eq!(
        r[1]["route"]["cluster"],
        "outbound|9080|v1|reviews.default.svc.cluster.local"
    );
    // The TCP route for a gateway does not apply: mysql keeps its default.
    let c = chain(
        &j,
        "198.19.0.13_3306",
        "outbound|3306||mysql.default.svc.cluster.local",
    );
    assert_eq!(
        c["filters"][0]["typedConfig"]["cluster"],
        "outbound|3306||mysql.default.svc.cluster.local"
    );
}

#[test]
fn external_name_service_resolves_by_dns() {
    let s = bookinfo()
        .service(mk_external_name_service(
            "payments",
            NS,
            "payments.example.com",
            vec![mk_port("http", 8080, 8080)],
        ))
        .build();
    let j = golden("external_name", &s, &proxy(&s, "productpage-v1"));
    let name = format!("outbound|8080||{}", host("payments"));
    let c = &j["cds"][&name];
    assert_eq!(c["type"], "STRICT_DNS");
    assert_eq!(c["dnsLookupFamily"], "V4_ONLY");
    assert!(c.get("edsClusterConfig").is_none(), "{c}");
    assert_eq!(
        c["loadAssignment"]["endpoints"][0]["lbEndpoints"][0]["endpoint"]["address"]
            ["socketAddress"],
        json!({"address": "payments.example.com", "portValue": 8080})
    );
    assert!(j["eds"].get(&name).is_none(), "no EDS for a DNS cluster");
    // Without a VIP it is routed by Host on the port's table.
    assert_eq!(
        vhost_routes(&j, 8080, &host("payments"))[0]["route"]["cluster"],
        name
    );
}

fn on_prefix(prefix: &str, route: HttpRoute) -> HttpRoute {
    HttpRoute {
        matches: vec![HttpMatch {
            uri: Some(StringMatch::Prefix(prefix.into())),
            ..Default::default()
        }],
        ..route
    }
}

fn to_v1() -> HttpRoute {
    mk_http_route(vec![dest(&host("reviews"), Some("v1"), 100)])
}

#[test]
fn cors_policy_is_per_route_with_the_filter_on_every_connection_manager() {
    let cors = Cors {
        allow_origins: vec![
            StringMatch::Exact("https://example.com".into()),
            StringMatch::Regex(r"https://.*\.example\.org".into()),
        ],
        allow_methods: vec!["GET".into(), "POST".into()],
        allow_headers: vec!["x-a".into(), "x-b".into()],
        expose_headers: vec!["x-c".into()],
        max_age: Some(86400),
        allow_credentials: Some(true),
        forward_unmatched_preflights: false,
    };
    let s = reviews_route(vec![
        on_prefix(
            "/cors",
            HttpRoute {
                cors: Some(cors),
                ..to_v1()
            },
        ),
        to_v1(),
    ]);
    let j = golden("cors", &s, &proxy(&s, "productpage-v1"));
    let r = vhost_routes(&j, 9080, &host("reviews"));
    let c = &r[0]["typedPerFilterConfig"]["envoy.filters.http.cors"];
    assert_eq!(
        c["@type"],
        "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"
    );
    assert_eq!(
        c["allowOriginStringMatch"],
        json!([{"exact": "https://example.com"}, {"safeRegex": {"regex": r"https://.*\.example\.org"}}])
    );
    assert_eq!(c["allowMethods"], "GET,POST");
    assert_eq!(c["allowHeaders"], "x-a,x-b");
    assert_eq!(c["exposeHeaders"], "x-c");
    assert_eq!(c["maxAge"], "86400");
    assert_eq!(c["allowCredentials"], true);
    assert_eq!(c["forwardNotMatchingPreflights"], false);
    assert_eq!(
        c["filterEnabled"]["defaultValue"],
        json!({"numerator": 100})
    );
    assert!(r[1].get("typedPerFilterConfig").is_none(), "{}", r[1]);
    // Istio's filter order on every HCM, outbound and inbound: fault, cors, router.
    let s = bookinfo().build();
    let j = rudder_xds::to_json(&generate(&s, &proxy(&s, "reviews-v1")));
    let mut found = Vec::new();
    hcms(&j["lds"], &mut found);
    assert!(found.len() > 2);
    for h in &found {
        let names: Vec<_> = h["httpFilters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names[names.len() - 3..],
            [
                "envoy.filters.http.fault",
                "envoy.filters.http.cors",
                "envoy.filters.http.router"
            ],
            "{}",
            h["statPrefix"]
        );
    }
}

#[test]
fn empty_header_matches_are_presence_matches() {
    let m = HttpMatch {
        headers: [
            ("x-present".to_string(), StringMatch::Present),
            ("x-exact".to_string(), StringMatch::Exact("1".into())),
        ]
        .into(),
        without_headers: [
            ("x-absent".to_string(), StringMatch::Present),
            ("x-not-2".to_string(), StringMatch::Exact("2".into())),
        ]
        .into(),
        query_params: [("debug".to_string(), StringMatch::Present)].into(),
        name: Some("present".into()),
        ..Default::default()
    };
    let s = reviews_route(vec![
        HttpRoute {
            name: Some("r".into()),
            matches: vec![m],
            ..to_v1()
        },
        to_v1(),
    ]);
    let j = golden("header_presence", &s, &proxy(&s, "productpage-v1"));
    // Istio's route name: `<route name>.<match name>`.
    assert_eq!(
        vhost_routes(&j, 9080, &host("reviews"))[0]["name"],
        "r.present"
    );
    let r = &vhost_routes(&j, 9080, &host("reviews"))[0]["match"];
    assert_eq!(
        r["headers"],
        json!([
            {"name": "x-exact", "stringMatch": {"exact": "1"}},
            {"name": "x-present", "presentMatch": true},
            {"name": "x-absent", "presentMatch": true, "invertMatch": true},
            {"name": "x-not-2", "stringMatch": {"exact": "2"}, "invertMatch": true, "treatMissingHeaderAsEmpty": true},
        ])
    );
    assert_eq!(
        r["queryParameters"],
        json!([{"name": "debug", "presentMatch": true}])
    );
}

#[test]
fn grpc_aborts_byte_bodies_derived_ports_regex_rewrites_and_retry_options() {
    let grpc_abort = HttpRoute {
        fault: Some(Fault {
            delay: None,
            abort: Some(AbortFault {
                status: AbortStatus::Grpc(14),
                percent: Percent::ALL,
            }),
        }),
        ..to_v1()
    };
    let bytes = HttpRoute {
        action: HttpAction::DirectResponse(DirectResponse {
            status: 200,
            body: Some(Body::Bytes(vec![0, 159, 146, 150])),
        }),
        ..mk_http_route(vec![])
    };
    let redirect = |port: Option<u16>, from_request: bool, scheme: Option<&str>| HttpRoute {
        action: HttpAction::Redirect(Redirect {
            uri: Some("/moved".into()),
            authority: None,
            scheme: scheme.map(str::to_string),
            port,
            port_from_request: from_request,
            redirect_code: 301,
        }),
        ..mk_http_route(vec![])
    };
    let regex_rewrite = HttpRoute {
        rewrite: Some(Rewrite {
            uri: None,
            authority: None,
            uri_regex: Some(("^/service/([^/]+)(/.*)$".into(), r"\2/instance/\1".into())),
        }),
        ..to_v1()
    };
    let retries = HttpRoute {
        retries: Some(Retries {
            attempts: 3,
            per_try_timeout: None,
            retry_on: None,
            status_codes: Vec::new(),
            remote_localities: true,
            ignore_previous_hosts: Some(false),
            backoff: Some(std::time::Duration::from_millis(100)),
        }),
        ..to_v1()
    };
    let s = reviews_route(vec![
        on_prefix("/grpc", grpc_abort),
        on_prefix("/bytes", bytes),
        on_prefix("/from-request", redirect(None, true, None)),
        on_prefix("/http-80", redirect(Some(80), false, None)),
        on_prefix("/https-443", redirect(Some(443), false, Some("https"))),
        on_prefix("/regex", regex_rewrite),
        on_prefix("/retries", retries),
    ]);
    let j = golden("istio_route_options", &s, &proxy(&s, "productpage-v1"));
    let r = vhost_routes(&j, 9080, &host("reviews"));
    assert_eq!(
        r[0]["typedPerFilterConfig"]["envoy.filters.http.fault"]["abort"]["grpcStatus"],
        14
    );
    assert_eq!(
        r[1]["directResponse"]["body"],
        json!({"inlineBytes": "AJ+Slg=="})
    );
    // FROM_REQUEST_PORT: the route's port; a scheme's default port is left out.
    assert_eq!(r[2]["redirect"]["portRedirect"], 9080);
    assert!(r[3]["redirect"].get("portRedirect").is_none(), "{}", r[3]);
    assert!(r[4]["redirect"].get("portRedirect").is_none(), "{}", r[4]);
    assert_eq!(
        r[5]["route"]["regexRewrite"],
        json!({"pattern": {"regex": "^/service/([^/]+)(/.*)$"}, "substitution": r"\2/instance/\1"})
    );
    let p = &r[6]["route"]["retryPolicy"];
    assert_eq!(p["numRetries"], 3);
    assert_eq!(
        p["retryPriority"],
        json!({
            "name": "envoy.retry_priorities.previous_priorities",
            "typedConfig": {
                "@type": "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
                "updateFrequency": 2
            }
        })
    );
    assert!(p.get("retryHostPredicate").is_none(), "{p}");
    assert_eq!(p["retryBackOff"], json!({"baseInterval": "0.100s"}));
}

#[test]
fn unnamed_ports_are_sniffed_on_the_vip_listener() {
    // A port without a declared protocol gets Istio's sniffing: the VIP
    // listener runs the HTTP inspector, HTTP/1.x and h2c meet the service's
    // routes, anything else goes through as TCP. The capture listener has
    // no TCP chain for it (the hand-off reaches the VIP listener first).
    let s = bookinfo()
        .service(mk_service(
            "legacy",
            NS,
            "198.19.0.77",
            vec![mk_port("", 7070, 7070), mk_port("tcp-raw", 7071, 7071)],
            &[("app", "legacy")],
        ))
        .build();
    let j = golden("sniffed_port", &s, &proxy(&s, "productpage-v1"));
    let l = &j["lds"]["198.19.0.77_7070"];
    assert_eq!(
        l["listenerFilters"][0]["name"],
        "envoy.filters.listener.http_inspector"
    );
    assert_eq!(
        l["filterChains"][0]["filterChainMatch"]["applicationProtocols"],
        json!(["http/1.0", "http/1.1", "h2c"])
    );
    let cluster = format!("outbound|7070||{}", host("legacy"));
    assert_eq!(
        l["defaultFilterChain"]["filters"][0]["typedConfig"]["cluster"],
        cluster.as_str()
    );
    assert!(j["rds"][format!("{}:7070", host("legacy"))].is_object());
    // The declared TCP port gets a VIP listener with a tcp_proxy alone (no
    // inspector), and nothing in the capture listener.
    let tcp = &j["lds"]["198.19.0.77_7071"];
    assert!(tcp.get("listenerFilters").is_none(), "{tcp}");
    assert_eq!(
        tcp["filterChains"][0]["name"],
        format!("outbound|7071||{}", host("legacy"))
    );
    let names: Vec<&str> = j["lds"]["virtual"]["filterChains"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with("outbound|7071")));
    assert!(
        !names.iter().any(|n| n.starts_with("outbound|7070")),
        "{names:?}"
    );
}

#[test]
fn dual_stack_pods_and_services_get_ipv6_listeners_and_vips() {
    // proxy-init captures IPv6 as well: a pod with an IPv6 address gets
    // capture listeners on [::] too, its IPv6 address in the inbound chains,
    // and a dual-stack Service its IPv6 VIP beside the IPv4 one.
    let mut mysql = mk_service(
        "mysql-ds",
        NS,
        "198.19.0.88",
        vec![mk_port("tcp-db", 3306, 3306)],
        &[("app", "mysql")],
    );
    mysql.other_vips = vec!["fd00:10::88".parse().unwrap()];
    let mut web = mk_service(
        "web",
        NS,
        "198.19.0.89",
        vec![mk_port("http", 8080, 8080)],
        &[("app", "web")],
    );
    web.other_vips = vec!["fd00:10::89".parse().unwrap()];
    let mut pod = mk_pod("web-0", NS, "198.18.0.89", &[("app", "web")]);
    pod.ips.push("fd00::89".parse().unwrap());
    let s = bookinfo().service(mysql).service(web).pod(pod).build();
    let j = golden("dual_stack", &s, &proxy(&s, "web-0"));
    let virt = &j["lds"]["virtual"];
    assert_eq!(
        virt["additionalAddresses"][0]["address"]["socketAddress"],
        json!({"address": "::", "portValue": 15000})
    );
    let chains = virt["filterChains"].as_array().unwrap();
    let by_name = |n: &str| {
        chains
            .iter()
            .find(|c| c["name"] == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    let prefixes = |c: &Value| c["filterChainMatch"]["prefixRanges"].clone();
    // Each VIP of the dual-stack TCP Service has its listener.
    for vip in ["198.19.0.88_3306", "fd00:10::88_3306"] {
        assert_eq!(
            j["lds"][vip]["filterChains"][0]["name"],
            format!("outbound|3306||{}", host("mysql-ds")),
            "{vip}"
        );
    }
    assert_eq!(
        prefixes(by_name("inbound|8080")),
        json!([{"addressPrefix": "198.18.0.89", "prefixLen": 32},
               {"addressPrefix": "fd00::89", "prefixLen": 128}])
    );
    assert!(
        j["lds"]["fd00:10::89_8080"].is_object(),
        "the IPv6 VIP's listener"
    );
    // Inbound delivery binds ::6 for an IPv6 pod address (proxy-init puts it on lo).
    assert_eq!(
        j["cds"]["inbound|8080||"]["upstreamBindConfig"]["extraSourceAddresses"][0]["address"]
            ["address"],
        "::6"
    );
    // A pod without IPv6 listens on 0.0.0.0 only.
    let v4 = golden("single_stack", &s, &proxy(&s, "productpage-v1"));
    assert!(v4["lds"]["virtual"].get("additionalAddresses").is_none());
}

#[test]
fn headless_services_keep_the_pod_the_client_resolved() {
    // A headless Service (a StatefulSet's): its clusters are ORIGINAL_DST
    // (no EDS), mTLS when every pod is meshed, and its TCP port gets a chain
    // matching its pods' addresses, so STRICT peers get mTLS instead of a
    // plaintext passthrough. The proxy's own address stays inbound.
    let mut kafka = mk_service(
        "kafka",
        NS,
        "0.0.0.0",
        vec![mk_port("tcp-kafka", 9092, 9092)],
        &[("app", "kafka")],
    );
    kafka.cluster_ip = None;
    let mut b = bookinfo().service(kafka);
    for (i, ip) in ["198.18.0.50", "198.18.0.51", "198.18.0.52"]
        .iter()
        .enumerate()
    {
        b = b.pod(support::loopback::meshed(
            mk_pod(&format!("kafka-{i}"), NS, ip, &[("app", "kafka")]),
            "kafka",
        ));
    }
    let s = b.build();
    let j = golden("headless", &s, &proxy(&s, "kafka-0"));
    let name = format!("outbound|9092||{}", host("kafka"));
    let c = &j["cds"][&name];
    assert_eq!(c["type"], "ORIGINAL_DST");
    assert_eq!(c["lbPolicy"], "CLUSTER_PROVIDED");
    assert!(c.get("edsClusterConfig").is_none(), "{c}");
    assert_eq!(
        c["transportSocket"]["name"], "envoy.transport_sockets.tls",
        "all pods meshed: mTLS"
    );
    assert!(j["eds"].get(&name).is_none());
    let chain = |j: &Value| {
        j["lds"]["virtual"]["filterChains"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == format!("{name}|9092"))
            .cloned()
            .expect("the headless port's chain")
    };
    let ips = |c: &Value| -> Vec<String> {
        c["filterChainMatch"]["prefixRanges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["addressPrefix"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ips(&chain(&j)),
        ["198.18.0.51", "198.18.0.52"],
        "not its own address"
    );
    assert_eq!(
        chain(&j)["filters"][0]["typedConfig"]["cluster"],
        name.as_str()
    );
    let other = golden("headless_client", &s, &proxy(&s, "productpage-v1"));
    assert_eq!(
        ips(&chain(&other)),
        ["198.18.0.50", "198.18.0.51", "198.18.0.52"]
    );
}

#[test]
fn tls_routes_choose_by_sni_on_the_service_port() {
    // A VirtualService `tls` route: the capture listener's chain for the
    // service's VIP and port, matched by the SNI the TLS inspector reads,
    // goes to the route's destination; other names keep the service's own
    // cluster. A TCP match's destinationSubnets holds for a VIP inside them.
    let secure = host("secure");
    let sni = |names: &[&str], to: &str| TlsRoute {
        matches: vec![TlsMatch {
            sni_hosts: names.iter().map(|s| s.to_string()).collect(),
            tcp: TcpMatch::default(),
        }],
        destinations: vec![dest(&host(to), None, 100)],
    };
    let mut table = mk_route_table(NS, "secure", &[&secure], vec![], vec![]);
    table.tls = vec![
        sni(&[&secure, "api.example.com"], "reviews"),
        sni(&["api.example.com", "*.example.com"], "ratings"),
    ];
    let elsewhere = TcpRoute {
        matches: vec![TcpMatch {
            destination_subnets: vec![Cidr::parse("10.0.0.0/8").unwrap()],
            ..Default::default()
        }],
        destinations: vec![dest(&host("ratings"), None, 100)],
    };
    table.tcp = vec![elsewhere];
    let s = bookinfo()
        .service(mk_service(
            "secure",
            NS,
            "198.19.0.99",
            vec![mk_port("https", 443, 8443)],
            &[("app", "secure")],
        ))
        .route_table(table)
        .build();
    let j = golden("tls_routes", &s, &proxy(&s, "productpage-v1"));
    // The SNI chains sit on the VIP's own listener.
    let virt = &j["lds"]["198.19.0.99_443"];
    let chains = virt["filterChains"].as_array().unwrap();
    let find = |n: &str| {
        chains
            .iter()
            .find(|c| c["name"] == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    let base = format!("outbound|443||{secure}");
    let first = find(&format!("{base}|tls|0"));
    assert_eq!(
        first["filterChainMatch"]["serverNames"],
        json!([secure, "api.example.com"])
    );
    assert_eq!(first["filterChainMatch"]["transportProtocol"], "tls");
    assert_eq!(
        first["filters"][0]["typedConfig"]["cluster"],
        format!("outbound|9080||{}", host("reviews")),
        "its only port"
    );
    // api.example.com stays with the first route.
    let second = find(&format!("{base}|tls|1"));
    assert_eq!(
        second["filterChainMatch"]["serverNames"],
        json!(["*.example.com"])
    );
    // Other names: the service itself (the TCP route's subnet misses the VIP).
    assert_eq!(
        find(&base)["filters"][0]["typedConfig"]["cluster"],
        base.as_str()
    );
    // The TLS inspector runs on port 443.
    let inspector = virt["listenerFilters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "envoy.filters.listener.tls_inspector")
        .expect("TLS inspector");
    assert!(
        inspector["filterDisabled"].to_string().contains("443"),
        "{inspector}"
    );
}
