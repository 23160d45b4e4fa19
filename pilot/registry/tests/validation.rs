//! One table row per validation rule: each bad input must produce exactly the
//! expected field and message, and the object must be rejected.

mod common;

use common::{errors, validate, warnings};
use pretty_assertions::assert_eq;

const VS_HEAD: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: default}\nspec:\n";
const RR_HEAD: &str = "apiVersion: config.istio.io/v1alpha2\nkind: RouteRule\nmetadata: {name: r, namespace: default}\nspec:\n";
const DR_HEAD: &str = "apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\nmetadata: {name: r, namespace: default}\nspec:\n";

fn http(route: &str) -> String {
    format!("{VS_HEAD}  hosts: [reviews]\n  http:\n  - {route}\n")
}

#[test]
fn each_rule_reports_field_and_reason() {
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("negative weight", http("route: [{destination: {host: a}, weight: -1}, {destination: {host: b}, weight: 5}]"), "spec.http[0].route[0].weight", "weight -1 must not be negative"),
        ("zero total", http("route: [{destination: {host: a}, weight: 0}, {destination: {host: b}}]"), "spec.http[0].route", "total weight of the destinations is 0"),
        ("bad regex", http("match: [{uri: {regex: \"(a\"}}]\n    route: [{destination: {host: a}}]"), "spec.http[0].match[0].uri", "invalid regex \"(a\": unclosed group"),
        ("bad header regex", http("match: [{headers: {x: {regex: \"[\"}}}]\n    route: [{destination: {host: a}}]"), "spec.http[0].match[0].headers.x", "invalid regex \"[\": unclosed character class"),
        ("bad duration", http("route: [{destination: {host: a}}]\n    timeout: 5x"), "spec.http[0].timeout", "invalid duration \"5x\": unknown unit \"x\" (use h, m, s, ms, us, ns, e.g. 24h, 1h30m, 500ms)"),
        ("sub-ms duration", http("route: [{destination: {host: a}}]\n    retries: {attempts: 1, perTryTimeout: 100us}"), "spec.http[0].retries.perTryTimeout", "invalid duration \"100us\": must be at least 1ms"),
        ("unknown retryOn", http("route: [{destination: {host: a}}]\n    retries: {attempts: 2, retryOn: \"5xx,teapot\"}"), "spec.http[0].retries.retryOn", "\"teapot\" is not a retry condition (5xx, gateway-error, reset, connect-failure, retriable-4xx, refused-stream, retriable-status-codes, retriable-headers, envoy-ratelimited, http3-post-connect-failure, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable) or an HTTP status code"),
        ("retryOn code out of range", http("route: [{destination: {host: a}}]\n    retries: {attempts: 2, retryOn: \"gateway-error,600\"}"), "spec.http[0].retries.retryOn", "600 is not an HTTP status code (100-511)"),
        ("negative attempts", http("route: [{destination: {host: a}}]\n    retries: {attempts: -1}"), "spec.http[0].retries.attempts", "attempts -1 must not be negative"),
        ("percentage > 100", http("route: [{destination: {host: a}}]\n    fault: {delay: {fixedDelay: 1s, percentage: {value: 101}}}"), "spec.http[0].fault.delay.percentage.value", "percentage 101 must be between 0 and 100"),
        ("negative percentage", http("route: [{destination: {host: a}}]\n    mirror: {host: b}\n    mirrorPercentage: {value: -5}"), "spec.http[0].mirrorPercentage.value", "percentage -5 must be between 0 and 100"),
        ("abort status", http("route: [{destination: {host: a}}]\n    fault: {abort: {httpStatus: 600}}"), "spec.http[0].fault.abort.httpStatus", "HTTP status 600 must be between 200 and 599"),
        ("abort status low", http("route: [{destination: {host: a}}]\n    fault: {abort: {httpStatus: 100, percentage: {value: 5}}}"), "spec.http[0].fault.abort.httpStatus", "HTTP status 100 must be between 200 and 599"),
        ("empty destination host", http("route: [{destination: {host: \"\"}}]"), "spec.http[0].route[0].destination.host", "host must not be empty"),
        ("empty hosts entry", format!("{VS_HEAD}  hosts: [\"\"]\n  http:\n  - route: [{{destination: {{host: a}}}}]\n"), "spec.hosts[0]", "host must not be empty"),
        // No hosts: a delegate (Istio), which may have no TCP routes.
        ("delegate with tcp", format!("{VS_HEAD}  tcp:\n  - route: [{{destination: {{host: a}}}}]\n"), "spec.tcp", "a delegate VirtualService (no hosts) must have no tcp routes"),
        ("mirror without host", http("route: [{destination: {host: a}}]\n    mirror: {subset: v1}"), "spec.http[0].mirror.host", "host must not be empty"),
        ("redirect with route", http("route: [{destination: {host: a}}]\n    redirect: {uri: /x}"), "spec.http[0].redirect", "redirect and route are mutually exclusive"),
        ("delay without fixedDelay", http("route: [{destination: {host: a}}]\n    fault: {delay: {percentage: {value: 1}}}"), "spec.http[0].fault.delay.fixedDelay", "fixedDelay is required"),
        ("bad port", http("route: [{destination: {host: a, port: {number: 70000}}}]"), "spec.http[0].route[0].destination.port.number", "port 70000 must be between 1 and 65535"),
        ("tls sni outside the hosts", format!("{VS_HEAD}  hosts: [reviews]\n  tls:\n  - match: [{{sniHosts: [ratings.example.com]}}]\n    route: [{{destination: {{host: reviews}}}}]\n"), "spec.tls[0].match[0].sniHosts[0]", "\"ratings.example.com\" is not covered by any host of the rule (reviews)"),
        ("tls without match", format!("{VS_HEAD}  hosts: [reviews]\n  tls:\n  - route: [{{destination: {{host: reviews}}}}]\n"), "spec.tls[0].match", "a TLS route needs at least one match (sniHosts)"),
        ("tls bad subnet", format!("{VS_HEAD}  hosts: [reviews]\n  tls:\n  - match: [{{sniHosts: [reviews], destinationSubnets: [10.0.0.0/40]}}]\n    route: [{{destination: {{host: reviews}}}}]\n"), "spec.tls[0].match[0].destinationSubnets[0]", "invalid CIDR \"10.0.0.0/40\""),
        ("route rule weights", format!("{RR_HEAD}  destination: {{name: reviews}}\n  route:\n  - {{labels: {{version: v1}}, weight: 90}}\n  - {{labels: {{version: v2}}, weight: 5}}\n"), "spec.route", "weights must sum to 100 (they sum to 95)"),
        ("route rule empty destination", format!("{RR_HEAD}  destination: {{name: \"\"}}\n"), "spec.destination.name", "service name must not be empty"),
        ("route rule bad timeout", format!("{RR_HEAD}  destination: {{name: reviews}}\n  httpReqTimeout: {{simpleTimeout: {{timeout: 10}}}}\n"), "spec.httpReqTimeout.simpleTimeout.timeout", "invalid duration \"10\": missing unit (h, m, s, ms, us, ns)"),
        ("route rule abort", format!("{RR_HEAD}  destination: {{name: reviews}}\n  httpFault: {{abort: {{percent: 10, httpStatus: 700}}}}\n"), "spec.httpFault.abort.httpStatus", "HTTP status 700 must be between 200 and 599"),
        ("route rule redirect with route", format!("{RR_HEAD}  destination: {{name: reviews}}\n  redirect: {{uri: /x}}\n  route: [{{labels: {{version: v1}}}}]\n"), "spec.redirect", "redirect and route are mutually exclusive"),
        ("route rule negative attempts", format!("{RR_HEAD}  destination: {{name: reviews}}\n  httpReqRetries: {{simpleRetry: {{attempts: -2}}}}\n"), "spec.httpReqRetries.simpleRetry.attempts", "attempts -2 must not be negative"),
        ("rule empty host", format!("{DR_HEAD}  host: \"\"\n"), "spec.host", "host must not be empty"),
        ("dr bad duration", format!("{DR_HEAD}  host: reviews\n  trafficPolicy: {{outlierDetection: {{interval: 1.5}}}}\n"), "spec.trafficPolicy.outlierDetection.interval", "invalid duration \"1.5\": missing unit (h, m, s, ms, us, ns)"),
        ("dr ejection percent", format!("{DR_HEAD}  host: reviews\n  trafficPolicy: {{outlierDetection: {{maxEjectionPercent: 120}}}}\n"), "spec.trafficPolicy.outlierDetection.maxEjectionPercent", "percentage 120 must be between 0 and 100"),
        ("dr two hash keys", format!("{DR_HEAD}  host: reviews\n  trafficPolicy: {{loadBalancer: {{consistentHash: {{httpHeaderName: x, useSourceIp: true}}}}}}\n"), "spec.trafficPolicy.loadBalancer.consistentHash", "only one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName may be set"),
    ];
    for (name, yaml, field, message) in cases {
        let r = validate(&[("rule.yaml", &yaml)]);
        let errs = errors(&r);
        assert_eq!(errs.len(), 1, "{name}: {:#?}", r.diagnostics);
        assert_eq!(
            (errs[0].field.as_str(), errs[0].message.as_str()),
            (field, message),
            "{name}"
        );
        assert_eq!(errs[0].file.as_deref(), Some("rule.yaml:1"), "{name}");
        assert_eq!(r.objects, 0, "{name}: the object must be rejected");
    }
}

#[test]
fn istio_accepts_what_it_accepts() {
    // Relative weights (not summing to 100), a lone unweighted destination, several unweighted + one weighted.
    for route in [
        "route: [{destination: {host: a}, weight: 3}, {destination: {host: b}, weight: 1}]",
        "route: [{destination: {host: a}}]",
        "route: [{destination: {host: a}}, {destination: {host: b}, weight: 1}]",
    ] {
        let r = validate(&[("rule.yaml", &http(route))]);
        assert!(errors(&r).is_empty(), "{route}: {:?}", r.diagnostics);
        assert_eq!(r.objects, 1);
    }
}

#[test]
fn unknown_hosts_and_subsets_are_warnings() {
    let vs = http("route: [{destination: {host: reviews, subset: v9}}]");
    let dr = format!("{DR_HEAD}  host: nowhere\n");
    let r = validate(&[("vs.yaml", &vs), ("dr.yaml", &dr)]);
    assert!(!r.has_errors(), "{:?}", r.diagnostics);
    let w: Vec<(String, String)> = warnings(&r)
        .iter()
        .map(|d| (d.field.clone(), d.message.clone()))
        .collect();
    assert_eq!(
        w,
        vec![
            (
                "spec.host".to_string(),
                "no Service backs host nowhere.default.svc.cluster.local".to_string()
            ),
            (
                "spec.http[0].route[0].destination.host".to_string(),
                "no Service backs host reviews.default.svc.cluster.local".to_string()
            ),
            (
                "spec.http[0].route[0].destination.subset".to_string(),
                "no DestinationRule defines subset v9 of reviews.default.svc.cluster.local"
                    .to_string()
            ),
        ]
    );
    let line = r
        .lines()
        .into_iter()
        .find(|l| l.contains("subset v9"))
        .unwrap();
    assert_eq!(
        line,
        "warning: vs.yaml:1: VirtualService default/r: spec.http[0].route[0].destination.subset: no DestinationRule defines subset v9 of reviews.default.svc.cluster.local"
    );
}

#[test]
fn subset_defined_in_another_file_resolves() {
    let vs = http("route: [{destination: {host: reviews, subset: v1}}]");
    let dr =
        format!("{DR_HEAD}  host: reviews\n  subsets: [{{name: v1, labels: {{version: v1}}}}]\n");
    let r = validate(&[("a.yaml", &vs), ("b.yaml", &dr)]);
    assert!(
        !r.diagnostics.iter().any(|d| d.field.ends_with("subset")),
        "{:?}",
        r.diagnostics
    );
}
