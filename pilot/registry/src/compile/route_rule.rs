//! config.istio.io/v1alpha2 RouteRule and DestinationPolicy → the model.
//!
//! The old API picked endpoints by `labels`, with no subsets. Each distinct
//! label set becomes a subset of the destination's policy, as Istio's own
//! converter did: a DestinationRule subset with identical labels is reused,
//! otherwise a synthetic one named from the labels (`version-v1`) is added
//! (creating the host's policy if needed).

use std::{collections::BTreeMap, sync::Arc};

use rudder_config::v1alpha2 as v2;
use rudder_model::{
    AbortFault, AbortStatus, ConnectionPool, DelayFault, Destination, DestinationPolicy, Fault,
    HeaderOps, Headers, Hostname, HttpAction, HttpMatch, HttpRoute, Labels, LoadBalancer, Mirror,
    OutlierDetection, Percent, Redirect, Retries, Rewrite, RuleRef, Subset, TrafficPolicy,
};

use super::Ctx;
use crate::{check::Checker, object::ObjectKey};

/// Destination policies by host, which RouteRules may extend with synthetic subsets.
pub type Policies = rudder_model::policy::PolicyMap;

/// Compiles one RouteRule into `(destination host, route)`; `None` on errors.
pub fn compile(
    spec: &v2::RouteRuleSpec,
    key: &ObjectKey,
    cx: &Ctx<'_>,
    policies: &mut Policies,
    ck: &mut Checker,
) -> Option<(Hostname, HttpRoute)> {
    let rule = RuleRef {
        kind: "RouteRule".into(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
    };
    no_labels(&spec.destination, "spec.destination", ck);
    let host = service_host(
        &spec.destination,
        "spec.destination",
        &key.namespace,
        cx,
        ck,
    );
    if spec.websocket_upgrade == Some(false) {
        ck.warn(
            "spec.websocketUpgrade",
            "WebSocket upgrades are allowed on every connection (as in Istio since 1.0); false does not turn them off",
        );
    }
    let m = route_match(spec, &key.namespace, cx, ck);
    let action = action(
        spec,
        host.as_deref(),
        &key.namespace,
        &rule,
        cx,
        policies,
        ck,
    );
    let timeout = spec
        .http_req_timeout
        .as_ref()
        .and_then(|t| t.simple_timeout.as_ref())
        .and_then(|t| {
            if t.override_header_name.is_some() {
                ck.error(
                    "spec.httpReqTimeout.simpleTimeout.overrideHeaderName",
                    OVERRIDE_HEADER,
                );
            }
            ck.opt_duration(
                "spec.httpReqTimeout.simpleTimeout.timeout",
                t.timeout.as_ref(),
            )
        });
    let retries = retries(spec, ck);
    let fault = spec.http_fault.as_ref().map(|f| fault(f, ck));
    let mirrors = mirrors(spec, &key.namespace, &rule, cx, policies, ck);
    let rewrite = spec.rewrite.as_ref().map(|r| Rewrite {
        uri: r.uri.clone(),
        authority: r.authority.clone(),
        uri_regex: None,
    });
    let headers = append_headers(spec, ck);
    if ck.has_errors() {
        return None;
    }
    let route = HttpRoute {
        name: Some(key.name.clone()),
        matches: if m == HttpMatch::default() {
            vec![]
        } else {
            vec![m]
        },
        action,
        timeout,
        retries,
        fault,
        mirrors,
        rewrite,
        headers,
        cors: None,
    };
    Some((host?, route))
}

/// `redirect` (exclusive with `route`), else the weighted `route`.
fn action(
    spec: &v2::RouteRuleSpec,
    host: Option<&str>,
    ns: &str,
    rule: &RuleRef,
    cx: &Ctx<'_>,
    policies: &mut Policies,
    ck: &mut Checker,
) -> HttpAction {
    if let Some(rd) = &spec.redirect {
        if !spec.route.is_empty() {
            ck.error("spec.redirect", "redirect and route are mutually exclusive");
        }
        HttpAction::Redirect(Redirect {
            uri: rd.uri.clone(),
            authority: rd.authority.clone(),
            scheme: None,
            port: None,
            port_from_request: false,
            redirect_code: 301,
        })
    } else {
        HttpAction::Route(routes(spec, host, ns, rule, cx, policies, ck))
    }
}

/// `match`: the source (a Service's selector and labels) and request headers
/// (`uri`, `scheme`, `method` and `authority` are the pseudo-headers).
fn route_match(spec: &v2::RouteRuleSpec, ns: &str, cx: &Ctx<'_>, ck: &mut Checker) -> HttpMatch {
    let mut m = HttpMatch::default();
    let Some(mc) = &spec.matches else {
        return m;
    };
    if let Some(src) = &mc.source {
        if !src.name.is_empty() {
            let src_host = istio_host(src, ns, cx);
            match cx.services.map(|s| s.get(&src_host)) {
                Some(Some(svc)) => m.source_labels.extend(svc.selector.clone()),
                Some(None) => ck.warn(
                    "spec.match.source.name",
                    format!("no Service backs host {src_host}; matching on source labels only"),
                ),
                None => {}
            }
        }
        m.source_labels.extend(src.labels.clone());
    }
    if let Some(req) = &mc.request {
        for (name, sm) in &req.headers {
            let Some(v) = ck.string_match(format!("spec.match.request.headers.{name}"), sm) else {
                continue;
            };
            match name.to_ascii_lowercase().as_str() {
                "uri" => m.uri = Some(v),
                "scheme" => m.scheme = Some(v),
                "method" => m.method = Some(v),
                "authority" => m.authority = Some(v),
                other => {
                    m.headers.insert(other.to_string(), v);
                }
            }
        }
    }
    m
}

/// A RouteRule's destinations are hosts; their `labels` would select nothing.
fn no_labels(s: &v2::IstioService, at: &str, ck: &mut Checker) {
    if !s.labels.is_empty() {
        ck.error(
            format!("{at}.labels"),
            "the labels of a route destination select nothing; name the version with the route's labels (route[].labels)",
        );
    }
}

/// Why `overrideHeaderName` is refused.
const OVERRIDE_HEADER: &str = "Envoy reads only its own x-envoy-upstream-rq-timeout-ms and x-envoy-max-retries headers; another header name cannot be served";

/// `httpReqRetries.simpleRetry`; `None` when absent or invalid.
fn retries(spec: &v2::RouteRuleSpec, ck: &mut Checker) -> Option<Retries> {
    let r = spec
        .http_req_retries
        .as_ref()
        .and_then(|r| r.simple_retry.as_ref())?;
    if r.attempts < 0 {
        ck.error(
            "spec.httpReqRetries.simpleRetry.attempts",
            format!("attempts {} must not be negative", r.attempts),
        );
        return None;
    }
    let per_try_timeout = ck.opt_duration(
        "spec.httpReqRetries.simpleRetry.perTryTimeout",
        r.per_try_timeout.as_ref(),
    );
    if r.override_header_name.is_some() {
        ck.error(
            "spec.httpReqRetries.simpleRetry.overrideHeaderName",
            OVERRIDE_HEADER,
        );
    }
    Some(Retries {
        attempts: r.attempts as u32,
        per_try_timeout,
        retry_on: None,
        status_codes: Vec::new(),
        remote_localities: false,
        ignore_previous_hosts: None,
        backoff: None,
    })
}

/// `mirror`: its labels become a subset, as the route's do.
fn mirrors(
    spec: &v2::RouteRuleSpec,
    ns: &str,
    rule: &RuleRef,
    cx: &Ctx<'_>,
    policies: &mut Policies,
    ck: &mut Checker,
) -> Vec<Mirror> {
    let mut mirrors = Vec::new();
    if let Some(mi) = &spec.mirror {
        if let Some(mhost) = service_host(mi, "spec.mirror", ns, cx, ck) {
            let subset = subset_for(policies, &mhost, &mi.labels, rule);
            mirrors.push(Mirror {
                destination: Destination {
                    host: mhost,
                    subset,
                    port: None,
                    weight: 0,
                    headers: Default::default(),
                },
                percent: Percent::ALL,
            });
        }
    }
    mirrors
}

/// `appendHeaders`. As the VirtualService rules: `host`/`:authority` is the
/// host rewrite, no other pseudo-header can be added.
fn append_headers(spec: &v2::RouteRuleSpec, ck: &mut Checker) -> Headers {
    for name in spec.append_headers.keys() {
        if rudder_model::is_internal_header(name) && !rudder_model::is_authority_header(name) {
            ck.error(
                format!("spec.appendHeaders.{name}"),
                format!("invalid header {name:?}: header cannot have \":\" prefix"),
            );
        }
    }
    Headers {
        request: HeaderOps {
            add: spec.append_headers.clone(),
            ..Default::default()
        },
        response: HeaderOps::default(),
    }
}

/// `route[]`: weights must sum to 100 (the v1alpha2 rule); labels become subsets.
fn routes(
    spec: &v2::RouteRuleSpec,
    host: Option<&str>,
    ns: &str,
    rule: &RuleRef,
    cx: &Ctx<'_>,
    policies: &mut Policies,
    ck: &mut Checker,
) -> Vec<Destination> {
    let host = host.unwrap_or_default();
    if spec.route.is_empty() {
        return vec![Destination {
            host: host.into(),
            subset: None,
            port: None,
            weight: 100,
            headers: Default::default(),
        }];
    }
    let single = spec.route.len() == 1;
    let mut total = 0i64;
    let mut out = Vec::new();
    for (i, r) in spec.route.iter().enumerate() {
        let at = format!("spec.route[{i}]");
        let w = match r.weight {
            None if single => 100,
            None => 0,
            Some(w) if !(0..=100).contains(&w) => {
                ck.error(
                    format!("{at}.weight"),
                    format!("weight {w} must be between 0 and 100"),
                );
                0
            }
            Some(w) => w,
        };
        total += i64::from(w);
        let dhost = match &r.destination {
            Some(d) => {
                no_labels(d, &format!("{at}.destination"), ck);
                service_host(d, &format!("{at}.destination"), ns, cx, ck).unwrap_or_default()
            }
            None => host.to_string(),
        };
        let subset = subset_for(policies, &dhost, &r.labels, rule);
        out.push(Destination {
            host: dhost,
            subset,
            port: None,
            weight: w as u32,
            headers: Default::default(),
        });
    }
    if total != 100 && !ck.has_errors() {
        ck.error(
            "spec.route",
            format!("weights must sum to 100 (they sum to {total})"),
        );
    }
    out
}

fn service_host(
    s: &v2::IstioService,
    at: &str,
    ns: &str,
    cx: &Ctx<'_>,
    ck: &mut Checker,
) -> Option<Hostname> {
    if s.name.trim().is_empty() {
        ck.error(format!("{at}.name"), "service name must not be empty");
        return None;
    }
    let host = istio_host(s, ns, cx);
    cx.check_host(ck, &format!("{at}.name"), &host);
    Some(host)
}

/// The hostname an `IstioService` names: `name.namespace.svc.domain` with its
/// own namespace and domain where set, else the rule's.
fn istio_host(s: &v2::IstioService, ns: &str, cx: &Ctx<'_>) -> Hostname {
    let ns = s.namespace.as_deref().unwrap_or(ns);
    match &s.domain {
        Some(d) if !s.name.contains('.') => format!("{}.{ns}.svc.{d}", s.name),
        _ => cx.resolve(&s.name, ns),
    }
}

/// The subset of `host` selecting exactly `labels` (see the module doc).
pub fn subset_for(
    policies: &mut Policies,
    host: &str,
    labels: &Labels,
    rule: &RuleRef,
) -> Option<String> {
    if labels.is_empty() || host.is_empty() {
        return None;
    }
    let shared = policies.entry(host.to_string()).or_insert_with(|| {
        Arc::new(DestinationPolicy {
            source: rule.clone(),
            host: host.to_string(),
            traffic_policy: TrafficPolicy::default(),
            subsets: BTreeMap::new(),
            export_to: vec![],
        })
    });
    if let Some(s) = shared.subsets.values().find(|s| &s.labels == labels) {
        return Some(s.name.clone());
    }
    let policy = Arc::make_mut(shared);
    let base: String = labels
        .iter()
        .map(|(k, v)| format!("{k}-{v}"))
        .collect::<Vec<_>>()
        .join("-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut name = base.clone();
    let mut n = 2;
    while policy.subsets.contains_key(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    policy.subsets.insert(
        name.clone(),
        Subset {
            name: name.clone(),
            labels: labels.clone(),
            traffic_policy: None,
        },
    );
    Some(name)
}

fn fault(f: &v2::HttpFaultInjection, ck: &mut Checker) -> Fault {
    let pct = |ck: &mut Checker, at: &str, p: Option<f64>| match p {
        Some(p) => ck.percent(at, p),
        None => Some(Percent::ALL),
    };
    let delay = f.delay.as_ref().and_then(|d| {
        let percent = pct(ck, "spec.httpFault.delay.percent", d.percent);
        let fixed = match &d.fixed_delay {
            Some(s) => ck.duration("spec.httpFault.delay.fixedDelay", s),
            None => {
                ck.error("spec.httpFault.delay.fixedDelay", "fixedDelay is required");
                None
            }
        };
        Some(DelayFault {
            fixed_delay: fixed?,
            percent: percent?,
        })
    });
    let abort = f.abort.as_ref().and_then(|a| {
        let percent = pct(ck, "spec.httpFault.abort.percent", a.percent);
        let status = ck.abort_status("spec.httpFault.abort.httpStatus", a.http_status);
        Some(AbortFault {
            status: AbortStatus::Http(status?),
            percent: percent?,
        })
    });
    Fault { delay, abort }
}

/// Applies a DestinationPolicy: host-level when it has no labels (filling what
/// a DestinationRule left unset), else to the subset selecting its labels.
pub fn apply_destination_policy(
    spec: &v2::DestinationPolicySpec,
    key: &ObjectKey,
    cx: &Ctx<'_>,
    policies: &mut Policies,
    ck: &mut Checker,
) {
    let rule = RuleRef {
        kind: "DestinationPolicy".into(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
    };
    let Some(host) = service_host(
        &spec.destination,
        "spec.destination",
        &key.namespace,
        cx,
        ck,
    ) else {
        return;
    };
    let mut tp = TrafficPolicy {
        load_balancer: spec
            .load_balancing
            .as_ref()
            .and_then(|l| l.name)
            .map(|n| match n {
                v2::SimpleLbPolicy::RoundRobin => LoadBalancer::RoundRobin,
                v2::SimpleLbPolicy::LeastConn => LoadBalancer::LeastRequest,
                v2::SimpleLbPolicy::Random => LoadBalancer::Random,
            }),
        ..Default::default()
    };
    if let Some(cb) = spec
        .circuit_breaker
        .as_ref()
        .and_then(|c| c.simple_cb.as_ref())
    {
        circuit_breaker(cb, &mut tp, ck);
    }
    if ck.has_errors() {
        return;
    }
    let subset = subset_for(policies, &host, &spec.destination.labels, &rule);
    let policy = Arc::make_mut(policies.entry(host.clone()).or_insert_with(|| {
        Arc::new(DestinationPolicy {
            source: rule,
            host,
            traffic_policy: TrafficPolicy::default(),
            subsets: BTreeMap::new(),
            export_to: vec![],
        })
    }));
    let target = match subset {
        Some(name) => policy
            .subsets
            .get_mut(&name)
            .map(|s| &mut **s.traffic_policy.get_or_insert_with(Default::default)),
        None => Some(&mut policy.traffic_policy),
    };
    if let Some(t) = target {
        fill(t, tp);
    }
}

/// `circuitBreaker.simpleCb`: the connection pool, and outlier detection
/// when any of its fields is set.
fn circuit_breaker(cb: &v2::SimpleCircuitBreakerPolicy, tp: &mut TrafficPolicy, ck: &mut Checker) {
    let at = "spec.circuitBreaker.simpleCb";
    tp.connection_pool = Some(ConnectionPool {
        max_connections: ck.count(format!("{at}.maxConnections"), cb.max_connections),
        http1_max_pending_requests: ck.count(
            format!("{at}.httpMaxPendingRequests"),
            cb.http_max_pending_requests,
        ),
        http2_max_requests: ck.count(format!("{at}.httpMaxRequests"), cb.http_max_requests),
        max_requests_per_connection: ck.count(
            format!("{at}.httpMaxRequestsPerConnection"),
            cb.http_max_requests_per_connection,
        ),
        ..Default::default()
    });
    let errors = ck.count(
        format!("{at}.httpConsecutiveErrors"),
        cb.http_consecutive_errors,
    );
    let interval = ck.opt_duration(
        format!("{at}.httpDetectionInterval"),
        cb.http_detection_interval.as_ref(),
    );
    let sleep = ck.opt_duration(format!("{at}.sleepWindow"), cb.sleep_window.as_ref());
    let max_ej = ck.int_percent(
        format!("{at}.httpMaxEjectionPercent"),
        cb.http_max_ejection_percent,
    );
    if errors.is_some() || interval.is_some() || sleep.is_some() || max_ej.is_some() {
        tp.outlier_detection = Some(OutlierDetection {
            consecutive_5xx_errors: errors,
            interval,
            base_ejection_time: sleep,
            max_ejection_percent: max_ej,
            ..Default::default()
        });
    }
}

/// Sets the fields of `into` that are still unset.
fn fill(into: &mut TrafficPolicy, from: TrafficPolicy) {
    into.load_balancer = into.load_balancer.take().or(from.load_balancer);
    into.connection_pool = into.connection_pool.take().or(from.connection_pool);
    into.outlier_detection = into.outlier_detection.take().or(from.outlier_detection);
}
