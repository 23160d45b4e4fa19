//! Golden tests of route features (RDS), one per feature: the whole ProxyResources as canonical JSON in
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

fn m_header(name: &str, v: StringMatch) -> HttpMatch {
    HttpMatch {
        headers: [(name.to_string(), v)].into(),
        ..Default::default()
    }
}

#[test]
fn default_routing() {
    let s = bookinfo().build();
    let j = golden("default_routing", &s, &proxy(&s, "productpage-v1"));
    let routes = vhost_routes(&j, 9080, &host("reviews"));
    assert_eq!(routes.len(), 1);
    assert_eq!(
        routes[0]["route"]["cluster"],
        "outbound|9080||reviews.default.svc.cluster.local"
    );
    assert_eq!(routes[0]["route"]["timeout"], "0s");
    // reviews has a VIP: its own configuration, reached through its VIP's
    // listener, answers every Host; the port's table keeps only allow_any
    // (Istio's domain set for hosts without a VIP: tests/generator.rs).
    let own = &j["rds"]["reviews.default.svc.cluster.local:9080"]["virtualHosts"];
    assert_eq!(own[0]["domains"], json!(["*"]));
    assert_eq!(
        j["rds"]["9080"]["virtualHosts"],
        json!([{
            "domains": ["*"],
            "name": "allow_any",
            "routes": [{
                "match": {"prefix": "/"},
                "name": "allow_any",
                "route": {"cluster": "PassthroughCluster", "timeout": "0s"}
            }]
        }])
    );
    let eds = &j["eds"]["outbound|9080||reviews.default.svc.cluster.local"]["endpoints"][0]
        ["lbEndpoints"];
    assert_eq!(eds.as_array().unwrap().len(), 3);
}

#[test]
fn split_99_1_by_subsets() {
    let s = reviews_route(vec![mk_http_route(vec![
        dest(&host("reviews"), Some("v1"), 99),
        dest(&host("reviews"), Some("v2"), 1),
    ])]);
    let j = golden("split_99_1", &s, &proxy(&s, "productpage-v1"));
    let wc = &vhost_routes(&j, 9080, &host("reviews"))[0]["route"]["weightedClusters"]["clusters"];
    assert_eq!(
        wc[0],
        json!({"name": "outbound|9080|v1|reviews.default.svc.cluster.local", "weight": 99})
    );
    assert_eq!(
        wc[1],
        json!({"name": "outbound|9080|v2|reviews.default.svc.cluster.local", "weight": 1})
    );
    let v2 = &j["eds"]["outbound|9080|v2|reviews.default.svc.cluster.local"]["endpoints"][0]
        ["lbEndpoints"];
    assert_eq!(v2.as_array().unwrap().len(), 1);
    assert_eq!(
        v2[0]["endpoint"]["address"]["socketAddress"]["address"],
        "198.18.0.12"
    );
}

#[test]
fn header_match_to_v2() {
    let jason = HttpRoute {
        matches: vec![m_header("end-user", StringMatch::Exact("jason".into()))],
        ..mk_http_route(vec![dest(&host("reviews"), Some("v2"), 100)])
    };
    let s = reviews_route(vec![
        jason,
        mk_http_route(vec![dest(&host("reviews"), Some("v1"), 100)]),
    ]);
    let j = golden("header_match_v2", &s, &proxy(&s, "productpage-v1"));
    let routes = vhost_routes(&j, 9080, &host("reviews"));
    assert_eq!(
        routes[0]["match"]["headers"][0],
        json!({"name": "end-user", "stringMatch": {"exact": "jason"}})
    );
    assert_eq!(
        routes[0]["route"]["cluster"],
        "outbound|9080|v2|reviews.default.svc.cluster.local"
    );
    assert_eq!(
        routes[1]["route"]["cluster"],
        "outbound|9080|v1|reviews.default.svc.cluster.local"
    );
}

#[test]
fn uri_matches() {
    let r = HttpRoute {
        matches: vec![
            HttpMatch {
                uri: Some(StringMatch::Prefix("/api".into())),
                ignore_uri_case: true,
                ..Default::default()
            },
            HttpMatch {
                uri: Some(StringMatch::Regex("/v[0-9]+/.*".into())),
                method: Some(StringMatch::Exact("GET".into())),
                query_params: [("debug".to_string(), StringMatch::Exact("1".into()))].into(),
                ..Default::default()
            },
            HttpMatch {
                uri: Some(StringMatch::Exact("/health".into())),
                ..Default::default()
            },
        ],
        ..mk_http_route(vec![dest(&host("reviews"), Some("v3"), 100)])
    };
    let s = reviews_route(vec![r]);
    let j = golden("uri_match", &s, &proxy(&s, "productpage-v1"));
    let routes = vhost_routes(&j, 9080, &host("reviews"));
    assert_eq!(
        routes[0]["match"],
        json!({"prefix": "/api", "caseSensitive": false})
    );
    assert_eq!(
        routes[1]["match"]["safeRegex"],
        json!({"regex": "/v[0-9]+/.*"})
    );
    assert_eq!(routes[1]["match"]["headers"][0]["name"], ":method");
    assert_eq!(routes[1]["match"]["queryParameters"][0]["name"], "debug");
    assert_eq!(routes[2]["match"], json!({"path": "/health"}));
}

#[test]
fn retries() {
    let (retry_on, status_codes) = Retries::parse_retry_on("gateway-error, 503,429").unwrap();
    let routes = vec![HttpRoute {
        retries: Some(Retries {
            attempts: 3,
            per_try_timeout: Some(Duration::from_secs(2)),
            retry_on: Some("5xx".into()),
            status_codes: Vec::new(),
            remote_localities: false,
            ignore_previous_hosts: None,
            backoff: None,
        }),
        ..mk_http_route(vec![dest(&host("reviews"), Some("v1"), 100)])
    }];
    let s = reviews_route(routes);
    let j = golden("retries", &s, &proxy(&s, "productpage-v1"));
    let previous_hosts = json!([{
        "name": "envoy.retry_host_predicates.previous_hosts",
        "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}
    }]);
    let rp = &vhost_routes(&j, 9080, &host("reviews"))[0]["route"]["retryPolicy"];
    // Istio's ConvertPolicy: the rule's fields over the default policy; a
    // retryOn without codes names no codes.
    assert_eq!(
        rp,
        &json!({"numRetries": 3, "perTryTimeout": "2s", "retryOn": "5xx",
                "retryHostPredicate": previous_hosts, "hostSelectionRetryMaxAttempts": "5"})
    );
    // Without a rule: Istio's default policy, 503 retried.
    let ratings = &vhost_routes(&j, 9080, &host("ratings"))[0]["route"]["retryPolicy"];
    assert_eq!(
        ratings,
        &json!({"numRetries": 2,
                "retryOn": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
                "retriableStatusCodes": [503],
                "retryHostPredicate": previous_hosts, "hostSelectionRetryMaxAttempts": "5"})
    );

    // Status codes in retryOn become retriable_status_codes (Envoy ignores
    // unknown retry_on tokens, so copying "503" verbatim would retry nothing).
    assert_eq!(
        retry_on.as_deref(),
        Some("gateway-error,retriable-status-codes")
    );
    assert_eq!(status_codes, vec![503, 429]);
    let codes = HttpRoute {
        retries: Some(Retries {
            attempts: 2,
            per_try_timeout: None,
            retry_on,
            status_codes,
            remote_localities: false,
            ignore_previous_hosts: None,
            backoff: None,
        }),
        ..mk_http_route(vec![dest(&host("reviews"), Some("v1"), 100)])
    };
    let s = reviews_route(vec![codes]);
    let j = golden("retries_status_codes", &s, &proxy(&s, "productpage-v1"));
    let rp = &vhost_routes(&j, 9080, &host("reviews"))[0]["route"]["retryPolicy"];
    assert_eq!(rp["retryOn"], "gateway-error,retriable-status-codes");
    assert_eq!(rp["retriableStatusCodes"], json!([503, 429]));
    assert_eq!(
        Retries::parse_retry_on("503").unwrap(),
        (Some("retriable-status-codes".to_string()), vec![503])
    );
    assert!(Retries::parse_retry_on("5xx,teapot")
        .unwrap_err()
        .contains("\"teapot\""));
    assert!(Retries::parse_retry_on("600").is_err());
}

#[test]
fn timeout() {
    let r = HttpRoute {
        timeout: Some(Duration::from_millis(1500)),
        ..mk_http_route(vec![dest(&host("reviews"), Some("v1"), 100)])
    };
    let s = reviews_route(vec![r]);
    let j = golden("timeout", &s, &proxy(&s, "productpage-v1"));
    assert_eq!(
        vhost_routes(&j, 9080, &host("reviews"))[0]["route"]["timeout"],
        "1.500s"
    );
}

#[test]
fn fault_delay_and_abort() {
    let delay = HttpRoute {
        matches: vec![m_header("end-user", StringMatch::Exact("jason".into()))],
        fault: Some(Fault {
            delay: Some(DelayFault {
                fixed_delay: Duration::from_secs(7),
                percent: Percent::ALL,
            }),
            abort: None,
        }),
        ..mk_http_route(vec![dest(&host("reviews"), Some("v2"), 100)])
    };
    let abort = HttpRoute {
        fault: Some(Fault {
            delay: None,
            abort: Some(AbortFault {
                status: AbortStatus::Http(500),
                percent: Percent::from_f64(10.0),
            }),
        }),
        ..mk_http_route(vec![dest(&host("reviews"), Some("v1"), 100)])
    };
    let s = reviews_route(vec![delay, abort]);
    let j = golden("fault", &s, &proxy(&s, "productpage-v1"));
    let routes = vhost_routes(&j, 9080, &host("reviews"));
    let f = &routes[0]["typedPerFilterConfig"]["envoy.filters.http.fault"];
    assert_eq!(f["delay"]["fixedDelay"], "7s");
    assert_eq!(
        f["delay"]["percentage"],
        json!({"numerator": 1000000, "denominator": "MILLION"})
    );
    let a = &routes[1]["typedPerFilterConfig"]["envoy.filters.http.fault"]["abort"];
    assert_eq!(a["httpStatus"], 500);
    assert_eq!(a["percentage"]["numerator"], 100000);
    let hcm = &chain(&j, "virtual", "outbound|9080")["filters"][0]["typedConfig"];
    assert_eq!(hcm["httpFilters"][0]["name"], "envoy.filters.http.fault");
    assert_eq!(hcm["httpFilters"][1]["name"], "envoy.filters.http.cors");
    assert_eq!(hcm["httpFilters"][2]["name"], "envoy.filters.http.router");
}

#[test]
fn mirror_with_percentage() {
    let r = HttpRoute {
        mirrors: vec![Mirror {
            destination: dest(&host("reviews"), Some("v2"), 0),
            percent: Percent::from_f64(25.0),
        }],
        ..mk_http_route(vec![dest(&host("reviews"), Some("v1"), 100)])
    };
    let s = reviews_route(vec![r]);
    let j = golden("mirror", &s, &proxy(&s, "productpage-v1"));
    let m = &vhost_routes(&j, 9080, &host("reviews"))[0]["route"]["requestMirrorPolicies"][0];
    assert_eq!(
        m["cluster"],
        "outbound|9080|v2|reviews.default.svc.cluster.local"
    );
    assert_eq!(m["runtimeFraction"]["defaultValue"]["numerator"], 250000);
}

#[test]
fn rewrite() {
    let r = HttpRoute {
        matches: vec![HttpMatch {
            uri: Some(StringMatch::Prefix("/old".into())),
            ..Default::default()
        }],
        rewrite: Some(Rewrite {
            uri: Some("/new".into()),
            authority: Some("reviews.internal".into()),
            uri_regex: None,
        }),
        ..mk_http_route(vec![dest(&host("reviews"), Some("v1"), 100)])
    };
    let s = reviews_route(vec![r]);
    let j = golden("rewrite", &s, &proxy(&s, "productpage-v1"));
    let a = &vhost_routes(&j, 9080, &host("reviews"))[0]["route"];
    assert_eq!(a["prefixRewrite"], "/new");
    assert_eq!(a["hostRewriteLiteral"], "reviews.internal");
}

#[test]
fn redirect() {
    let r = HttpRoute {
        action: HttpAction::Redirect(Redirect {
            uri: Some("/v2/reviews".into()),
            authority: Some("reviews.example.com".into()),
            scheme: Some("https".into()),
            port: Some(8443),
            port_from_request: false,
            redirect_code: 302,
        }),
        ..mk_http_route(vec![])
    };
    let s = reviews_route(vec![r]);
    let j = golden("redirect", &s, &proxy(&s, "productpage-v1"));
    let rd = &vhost_routes(&j, 9080, &host("reviews"))[0]["redirect"];
    assert_eq!(
        rd,
        &json!({"hostRedirect": "reviews.example.com", "pathRedirect": "/v2/reviews", "portRedirect": 8443, "responseCode": "FOUND", "schemeRedirect": "https"})
    );
}

#[test]
fn direct_response() {
    let r = HttpRoute {
        action: HttpAction::DirectResponse(DirectResponse {
            status: 418,
            body: Some(Body::Text("teapot".into())),
        }),
        ..mk_http_route(vec![])
    };
    let s = reviews_route(vec![r]);
    let j = golden("direct_response", &s, &proxy(&s, "productpage-v1"));
    let dr = &vhost_routes(&j, 9080, &host("reviews"))[0]["directResponse"];
    assert_eq!(
        dr,
        &json!({"status": 418, "body": {"inlineString": "teapot"}})
    );
}

#[test]
fn header_manipulation() {
    let ops = |k: &str| HeaderOps {
        set: [(format!("x-{k}-set"), "1".to_string())].into(),
        add: [(format!("x-{k}-add"), "2".to_string())].into(),
        remove: vec![format!("x-{k}-remove")],
    };
    let r = HttpRoute {
        headers: Headers {
            request: ops("req"),
            response: ops("resp"),
        },
        ..mk_http_route(vec![dest(&host("reviews"), Some("v1"), 100)])
    };
    let s = reviews_route(vec![r]);
    let j = golden("header_manipulation", &s, &proxy(&s, "productpage-v1"));
    let route = &vhost_routes(&j, 9080, &host("reviews"))[0];
    assert_eq!(
        route["requestHeadersToAdd"][0]["appendAction"],
        "OVERWRITE_IF_EXISTS_OR_ADD"
    );
    assert_eq!(
        route["requestHeadersToAdd"][1]["header"]["key"],
        "x-req-add"
    );
    assert_eq!(route["requestHeadersToRemove"], json!(["x-req-remove"]));
    assert_eq!(
        route["responseHeadersToAdd"][0]["header"]["key"],
        "x-resp-set"
    );
    assert_eq!(route["responseHeadersToRemove"], json!(["x-resp-remove"]));
}

#[test]
fn per_destination_headers_go_on_their_weighted_cluster() {
    let tag = |v: &str| Headers {
        request: HeaderOps {
            set: [("x-canary".to_string(), v.to_string())].into(),
            ..Default::default()
        },
        response: HeaderOps {
            remove: vec!["x-internal".to_string()],
            ..Default::default()
        },
    };
    let s = reviews_route(vec![mk_http_route(vec![
        Destination {
            headers: tag("stable"),
            ..dest(&host("reviews"), Some("v1"), 90)
        },
        Destination {
            headers: tag("canary"),
            ..dest(&host("reviews"), Some("v2"), 10)
        },
    ])]);
    let j = golden("per_destination_headers", &s, &proxy(&s, "productpage-v1"));
    let route = &vhost_routes(&j, 9080, &host("reviews"))[0];
    assert!(
        route.get("requestHeadersToAdd").is_none(),
        "not route-wide: {route}"
    );
    let wc = &route["route"]["weightedClusters"]["clusters"];
    for (i, v) in ["stable", "canary"].iter().enumerate() {
        assert_eq!(
            wc[i]["requestHeadersToAdd"][0]["header"],
            json!({"key": "x-canary", "value": v})
        );
        assert_eq!(wc[i]["responseHeadersToRemove"], json!(["x-internal"]));
    }

    // Only one destination left with weight (the other weighs 0): its edits
    // still apply, through a single weighted cluster.
    let s = reviews_route(vec![mk_http_route(vec![
        Destination {
            headers: tag("stable"),
            ..dest(&host("reviews"), Some("v1"), 100)
        },
        Destination {
            headers: tag("canary"),
            ..dest(&host("reviews"), Some("v2"), 0)
        },
    ])]);
    let j = golden(
        "per_destination_headers_one_weighted",
        &s,
        &proxy(&s, "productpage-v1"),
    );
    let wc = &vhost_routes(&j, 9080, &host("reviews"))[0]["route"]["weightedClusters"]["clusters"];
    assert_eq!(wc.as_array().map(Vec::len), Some(1));
    assert_eq!(
        wc[0]["requestHeadersToAdd"][0]["header"],
        json!({"key": "x-canary", "value": "stable"})
    );
}

#[test]
fn source_labels_route_only_for_matching_proxy() {
    let from_productpage = HttpRoute {
        matches: vec![HttpMatch {
            source_labels: labels(&[("app", "productpage")]),
            ..Default::default()
        }],
        ..mk_http_route(vec![dest(&host("reviews"), Some("v2"), 100)])
    };
    let s = reviews_route(vec![
        from_productpage,
        mk_http_route(vec![dest(&host("reviews"), Some("v1"), 100)]),
    ]);
    let j = golden("source_labels_match", &s, &proxy(&s, "productpage-v1"));
    let routes = vhost_routes(&j, 9080, &host("reviews"));
    assert_eq!(routes.len(), 2);
    assert_eq!(
        routes[0]["route"]["cluster"],
        "outbound|9080|v2|reviews.default.svc.cluster.local"
    );
    let j = golden("source_labels_other", &s, &proxy(&s, "sleep"));
    let routes = vhost_routes(&j, 9080, &host("reviews"));
    assert_eq!(routes.len(), 1);
    assert_eq!(
        routes[0]["route"]["cluster"],
        "outbound|9080|v1|reviews.default.svc.cluster.local"
    );
}
