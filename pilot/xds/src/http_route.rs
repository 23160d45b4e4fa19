//! One model [`HttpRoute`] → Envoy routes: matches, forwarding action and the
//! per-route features (timeouts, retries, faults, mirrors, rewrites, header
//! edits, consistent-hash policy).

use std::{collections::HashMap, time::Duration};

use envoy_types::pb::{
    envoy::{
        config::{
            core::v3::{
                data_source, header_value_option::HeaderAppendAction, DataSource, HeaderValue,
                HeaderValueOption, RuntimeFractionalPercent,
            },
            route::v3::{
                header_matcher, query_parameter_matcher, redirect_action, route, route_action,
                route_match, weighted_cluster, DirectResponseAction, HeaderMatcher,
                QueryParameterMatcher, RedirectAction, RetryPolicy, Route, RouteAction, RouteMatch,
                WeightedCluster,
            },
        },
        extensions::filters::{
            common::fault::v3::{fault_delay, FaultDelay},
            http::{
                cors::v3::CorsPolicy,
                fault::v3::{fault_abort, FaultAbort, HttpFault},
            },
        },
        r#type::{
            matcher::v3::{string_matcher, RegexMatchAndSubstitute, RegexMatcher, StringMatcher},
            v3::{fractional_percent::DenominatorType, FractionalPercent},
        },
    },
    google::protobuf::BoolValue,
};
use rudder_model::{
    is_internal_header,
    names::{ClusterName, BLACKHOLE_CLUSTER},
    AbortStatus, Body, Cors, Destination, DirectResponse, Fault, HashKey, HeaderOps, Headers,
    HttpAction, HttpMatch, HttpRoute, LoadBalancer, Redirect, Scope, Snapshot, StringMatch,
};

use crate::{
    cluster::effective_policy,
    common::{any, duration, fraction, u32v, CORS_FILTER, FAULT_FILTER},
    version::Version,
};

/// Istio's retry conditions when a rule sets none.
pub(crate) const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";
/// Istio's retry attempts when a route has no retry policy.
pub(crate) const DEFAULT_RETRY_ATTEMPTS: u32 = 2;

/// What a proxy with one scope sees when a route names a destination.
pub(crate) struct Destinations<'a> {
    pub(crate) snapshot: &'a Snapshot,
    pub(crate) scope: &'a Scope,
}

impl Destinations<'_> {
    /// The service port a destination means: its own port, else the port
    /// the request came in on, else the service's only port.
    fn port(&self, d: &Destination, route_port: u16) -> Option<u16> {
        if !self.scope.sees(&d.host) {
            return None;
        }
        let svc = self.snapshot.services.get(&d.host)?;
        let wanted = d.port.unwrap_or(route_port);
        if svc.port(wanted).is_some() {
            Some(wanted)
        } else if let ([only], None) = (svc.ports.as_slice(), d.port) {
            Some(only.port)
        } else {
            None
        }
    }

    /// The cluster a destination routes to. A destination without a cluster
    /// (no such service, port or subset, or a service outside the proxy's
    /// scope: Istio serves it and Envoy answers 503)
    /// goes to BlackHoleCluster, which also answers 503 but keeps every
    /// reference resolvable, so the consistency check can stay strict.
    pub(crate) fn cluster(&self, d: &Destination, route_port: u16) -> String {
        let Some(port) = self.port(d, route_port) else {
            return BLACKHOLE_CLUSTER.into();
        };
        if let Some(subset) = &d.subset {
            let defined = self
                .snapshot
                .destination_policy(&self.scope.namespace, &d.host)
                .is_some_and(|p| p.subsets.contains_key(subset));
            if !defined {
                return BLACKHOLE_CLUSTER.into();
            }
        }
        ClusterName::outbound(port, d.subset.as_deref(), &d.host).to_string()
    }

    /// The consistent-hash key of a destination's effective policy.
    fn hash_key(&self, d: &Destination, route_port: u16) -> Option<HashKey> {
        let port = self.port(d, route_port)?;
        let policy = self
            .snapshot
            .destination_policy(&self.scope.namespace, &d.host)?;
        let subset = d.subset.as_ref().and_then(|s| policy.subsets.get(s));
        match effective_policy(Some(policy), subset, port).load_balancer {
            Some(LoadBalancer::ConsistentHash { key, .. }) => key,
            _ => None,
        }
    }
}

/// The Envoy routes for one model route in the route configuration of
/// `route_port`: one per applicable match block (Envoy routes have a single
/// match; the model's OR becomes consecutive routes with the same action).
pub(crate) fn envoy_routes(
    route: &HttpRoute,
    matches: &[&HttpMatch],
    route_port: u16,
    dests: &Destinations<'_>,
    version: &mut Version,
) -> Vec<Route> {
    let base = Route {
        name: route.name.clone().unwrap_or_default(),
        action: Some(action(route, route_port, dests, version)),
        typed_per_filter_config: route
            .fault
            .as_ref()
            .map(|f| (FAULT_FILTER.to_string(), any(&fault(f))))
            .into_iter()
            .chain(
                route
                    .cors
                    .as_ref()
                    .map(|c| (CORS_FILTER.to_string(), any(&cors(c)))),
            )
            .collect::<HashMap<_, _>>(),
        request_headers_to_add: header_adds(&route.headers.request),
        request_headers_to_remove: header_removes(&route.headers.request),
        response_headers_to_add: header_adds(&route.headers.response),
        response_headers_to_remove: header_removes(&route.headers.response),
        ..Default::default()
    };
    if matches.is_empty() {
        return vec![Route {
            r#match: Some(catch_all()),
            ..base
        }];
    }
    // Istio names a route `<route name>.<match name>` when the match has a name.
    matches
        .iter()
        .map(|m| Route {
            name: match &m.name {
                Some(n) => format!("{}.{n}", base.name),
                None => base.name.clone(),
            },
            r#match: Some(route_match(m)),
            ..base.clone()
        })
        .collect()
}

/// `prefix: /`.
pub(crate) fn catch_all() -> RouteMatch {
    RouteMatch {
        path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
        ..Default::default()
    }
}

fn string_matcher(m: &StringMatch, ignore_case: bool) -> StringMatcher {
    let pattern = match m {
        StringMatch::Exact(s) => string_matcher::MatchPattern::Exact(s.clone()),
        StringMatch::Prefix(s) => string_matcher::MatchPattern::Prefix(s.clone()),
        StringMatch::Regex(r) => string_matcher::MatchPattern::SafeRegex(regex(r)),
        // Not reached: header and query-parameter matches use `present_match`.
        StringMatch::Present => string_matcher::MatchPattern::SafeRegex(regex(".*")),
    };
    StringMatcher {
        match_pattern: Some(pattern),
        ignore_case,
    }
}

fn regex(r: &str) -> RegexMatcher {
    // engine_type stays unset: Envoy's default is RE2 (GoogleRe2 is deprecated).
    RegexMatcher {
        regex: r.to_string(),
        ..Default::default()
    }
}

/// Istio's header matcher: an empty match is `present_match`; an inverted
/// value match (`withoutHeaders`) also holds when the header is missing
/// (`treat_missing_header_as_empty`, which Envoy refuses beside `present_match`).
fn header(name: &str, m: &StringMatch, invert: bool) -> HeaderMatcher {
    use header_matcher::HeaderMatchSpecifier as Spec;
    let present = *m == StringMatch::Present;
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(if present {
            Spec::PresentMatch(true)
        } else {
            Spec::StringMatch(string_matcher(m, false))
        }),
        invert_match: invert,
        treat_missing_header_as_empty: invert && !present,
    }
}

fn route_match(m: &HttpMatch) -> RouteMatch {
    use route_match::PathSpecifier;
    let path = match &m.uri {
        None => PathSpecifier::Prefix("/".into()),
        Some(StringMatch::Exact(p)) => PathSpecifier::Path(p.clone()),
        Some(StringMatch::Prefix(p)) => PathSpecifier::Prefix(p.clone()),
        Some(StringMatch::Regex(r)) => PathSpecifier::SafeRegex(regex(r)),
        Some(StringMatch::Present) => PathSpecifier::Prefix("/".into()),
    };
    let mut headers: Vec<HeaderMatcher> = Vec::new();
    for (pseudo, value) in [
        (":method", &m.method),
        (":scheme", &m.scheme),
        (":authority", &m.authority),
    ] {
        if let Some(v) = value {
            headers.push(header(pseudo, v, false));
        }
    }
    headers.extend(m.headers.iter().map(|(n, v)| header(n, v, false)));
    headers.extend(m.without_headers.iter().map(|(n, v)| header(n, v, true)));
    RouteMatch {
        path_specifier: Some(path),
        case_sensitive: m.ignore_uri_case.then_some(BoolValue { value: false }),
        headers,
        query_parameters: m
            .query_params
            .iter()
            .map(|(name, v)| {
                use query_parameter_matcher::QueryParameterMatchSpecifier as Spec;
                QueryParameterMatcher {
                    name: name.clone(),
                    query_parameter_match_specifier: Some(match v {
                        StringMatch::Present => Spec::PresentMatch(true),
                        v => Spec::StringMatch(string_matcher(v, false)),
                    }),
                }
            })
            .collect(),
        ..Default::default()
    }
}

fn action(
    route: &HttpRoute,
    route_port: u16,
    dests: &Destinations<'_>,
    version: &mut Version,
) -> route::Action {
    match &route.action {
        HttpAction::Route(destinations) => {
            route::Action::Route(forward(route, destinations, route_port, dests, version))
        }
        HttpAction::Redirect(r) => route::Action::Redirect(redirect(r, route_port)),
        HttpAction::DirectResponse(d) => route::Action::DirectResponse(direct_response(d)),
    }
}

fn forward(
    route: &HttpRoute,
    destinations: &[Destination],
    route_port: u16,
    dests: &Destinations<'_>,
    version: &mut Version,
) -> RouteAction {
    let weighted: Vec<(String, u32, &Headers)> = destinations
        .iter()
        .filter(|d| d.weight > 0 || destinations.len() == 1)
        .map(|d| (dests.cluster(d, route_port), d.weight, &d.headers))
        .collect();
    version.add(&weighted);
    let cluster_specifier = cluster_specifier(&weighted);
    let mirrors: Vec<_> = route
        .mirrors
        .iter()
        .map(|m| route_action::RequestMirrorPolicy {
            cluster: dests.cluster(&m.destination, route_port),
            runtime_fraction: Some(RuntimeFractionalPercent {
                default_value: Some(fraction(m.percent)),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    version.add(
        &mirrors
            .iter()
            .map(|m| m.cluster.as_str())
            .collect::<Vec<_>>(),
    );
    let hash_key = destinations
        .first()
        .and_then(|d| dests.hash_key(d, route_port));
    version.add(&hash_key);
    let rewrite = route.rewrite.clone().unwrap_or_default();
    // Istio: a `host` edit of the request headers is the host rewrite
    // (validation refuses it beside `rewrite.authority`, which wins here).
    let authority = rewrite
        .authority
        .or_else(|| route.headers.request.authority().map(str::to_string));
    RouteAction {
        cluster_specifier: Some(cluster_specifier),
        // Istio: no timeout unless the rule sets one (0 disables Envoy's 15 s).
        timeout: Some(duration(route.timeout.unwrap_or(Duration::ZERO))),
        retry_policy: retry_policy(route, hash_key.is_some()),
        request_mirror_policies: mirrors,
        prefix_rewrite: rewrite.uri.unwrap_or_default(),
        regex_rewrite: rewrite
            .uri_regex
            .map(|(pattern, substitution)| RegexMatchAndSubstitute {
                pattern: Some(regex(&pattern)),
                substitution,
            }),
        host_rewrite_specifier: authority
            .map(route_action::HostRewriteSpecifier::HostRewriteLiteral),
        hash_policy: hash_key.map(|k| vec![hash_policy(&k)]).unwrap_or_default(),
        ..Default::default()
    }
}

/// One cluster, the black hole, or weighted clusters each with its own
/// header edits.
fn cluster_specifier(weighted: &[(String, u32, &Headers)]) -> route_action::ClusterSpecifier {
    match weighted {
        [] => route_action::ClusterSpecifier::Cluster(BLACKHOLE_CLUSTER.into()),
        [(one, _, h)] if **h == Headers::default() => {
            route_action::ClusterSpecifier::Cluster(one.clone())
        }
        // Several destinations, or one left with its own header edits (the
        // others weigh 0): weighted clusters, each with its edits.
        many => route_action::ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: many
                .iter()
                .map(|(name, w, h)| weighted_cluster::ClusterWeight {
                    name: name.clone(),
                    weight: u32v(*w),
                    request_headers_to_add: header_adds(&h.request),
                    request_headers_to_remove: header_removes(&h.request),
                    response_headers_to_add: header_adds(&h.response),
                    response_headers_to_remove: header_removes(&h.response),
                    // Istio: a destination's `host` edit rewrites the
                    // authority of the requests sent to it.
                    host_rewrite_specifier: h.request.authority().map(|a| {
                        weighted_cluster::cluster_weight::HostRewriteSpecifier::HostRewriteLiteral(
                            a.to_string(),
                        )
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    }
}

/// Istio's retries (its `retry.ConvertPolicy`): the default policy is 2
/// attempts on connection-level failures and 503, preferring hosts not tried
/// yet (previous-hosts predicate, 5 host selection attempts); a rule's
/// attempts, per-try timeout and `retryOn` (conditions and status codes)
/// override it field by field; `attempts: 0` turns retries off. With a
/// consistent hash the predicate is left out (Istio's
/// `DefaultConsistentHashPolicy`): a retry must not leave the hashed host;
/// `retryIgnorePreviousHosts` decides it when set. Host selection is tried
/// 5 times either way, as in Istio's default policy.
fn retry_policy(route: &HttpRoute, consistent_hash: bool) -> Option<RetryPolicy> {
    let (attempts, per_try, retry_on, codes) = match &route.retries {
        Some(r) => match &r.retry_on {
            Some(on) => (
                r.attempts,
                r.per_try_timeout,
                on.clone(),
                r.status_codes.clone(),
            ),
            None => (
                r.attempts,
                r.per_try_timeout,
                DEFAULT_RETRY_ON.into(),
                vec![503],
            ),
        },
        None => (
            DEFAULT_RETRY_ATTEMPTS,
            None,
            DEFAULT_RETRY_ON.into(),
            vec![503],
        ),
    };
    let rule = route.retries.as_ref();
    // Istio: `retryIgnorePreviousHosts` decides the predicate when set.
    let previous = rule
        .and_then(|r| r.ignore_previous_hosts)
        .unwrap_or(!consistent_hash);
    (attempts > 0).then(|| RetryPolicy {
        retry_on,
        num_retries: u32v(attempts),
        per_try_timeout: per_try.map(duration),
        retriable_status_codes: codes,
        retry_host_predicate: if previous {
            vec![previous_hosts()]
        } else {
            Vec::new()
        },
        // Istio's default policy, consistent hash or not.
        host_selection_retry_max_attempts: 5,
        retry_priority: rule
            .is_some_and(|r| r.remote_localities)
            .then(previous_priorities),
        retry_back_off: rule.and_then(|r| r.backoff).map(|b| {
            envoy_types::pb::envoy::config::route::v3::retry_policy::RetryBackOff {
                base_interval: Some(duration(b)),
                ..Default::default()
            }
        }),
        ..Default::default()
    })
}

/// Envoy's `previous_priorities` retry priority with Istio's update
/// frequency (2): retries move on to localities (priorities) not tried yet.
fn previous_priorities() -> envoy_types::pb::envoy::config::route::v3::retry_policy::RetryPriority {
    use envoy_types::pb::envoy::{
        config::route::v3::retry_policy::{retry_priority::ConfigType, RetryPriority},
        extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig,
    };
    RetryPriority {
        name: "envoy.retry_priorities.previous_priorities".into(),
        config_type: Some(ConfigType::TypedConfig(any(&PreviousPrioritiesConfig {
            update_frequency: 2,
        }))),
    }
}

/// Envoy's `previous_hosts` retry predicate: a retry picks a host it has not
/// tried yet.
fn previous_hosts() -> envoy_types::pb::envoy::config::route::v3::retry_policy::RetryHostPredicate {
    use envoy_types::pb::envoy::{
        config::route::v3::retry_policy::{retry_host_predicate::ConfigType, RetryHostPredicate},
        extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate,
    };
    RetryHostPredicate {
        name: "envoy.retry_host_predicates.previous_hosts".into(),
        config_type: Some(ConfigType::TypedConfig(any(&PreviousHostsPredicate {}))),
    }
}

fn hash_policy(key: &HashKey) -> route_action::HashPolicy {
    use route_action::hash_policy::{self, PolicySpecifier};
    let spec = match key {
        HashKey::Header(name) => PolicySpecifier::Header(hash_policy::Header {
            header_name: name.clone(),
            ..Default::default()
        }),
        HashKey::Cookie { name, path, ttl } => PolicySpecifier::Cookie(hash_policy::Cookie {
            name: name.clone(),
            path: path.clone().unwrap_or_default(),
            ttl: ttl.map(duration),
            ..Default::default()
        }),
        HashKey::SourceIp => {
            PolicySpecifier::ConnectionProperties(hash_policy::ConnectionProperties {
                source_ip: true,
            })
        }
        HashKey::QueryParameter(name) => {
            PolicySpecifier::QueryParameter(hash_policy::QueryParameter { name: name.clone() })
        }
    };
    route_action::HashPolicy {
        policy_specifier: Some(spec),
        terminal: false,
    }
}

/// Istio's `ApplyRedirect` for sidecars: `derivePort: FROM_REQUEST_PORT` is
/// the route's port; a port that is the scheme's default (80 for http, the
/// sidecar's scheme when unset; 443 for https) is left out.
fn redirect(r: &Redirect, route_port: u16) -> RedirectAction {
    use redirect_action::RedirectResponseCode as Code;
    let code = match r.redirect_code {
        302 => Code::Found,
        303 => Code::SeeOther,
        307 => Code::TemporaryRedirect,
        308 => Code::PermanentRedirect,
        _ => Code::MovedPermanently,
    };
    RedirectAction {
        host_redirect: r.authority.clone().unwrap_or_default(),
        port_redirect: match r.port.or(r.port_from_request.then_some(route_port)) {
            Some(80) if matches!(r.scheme.as_deref(), None | Some("http")) => 0,
            Some(443) if r.scheme.as_deref() == Some("https") => 0,
            p => p.map(u32::from).unwrap_or_default(),
        },
        scheme_rewrite_specifier: r
            .scheme
            .clone()
            .map(redirect_action::SchemeRewriteSpecifier::SchemeRedirect),
        path_rewrite_specifier: r
            .uri
            .clone()
            .map(redirect_action::PathRewriteSpecifier::PathRedirect),
        response_code: code as i32,
        ..Default::default()
    }
}

fn direct_response(d: &DirectResponse) -> DirectResponseAction {
    DirectResponseAction {
        status: d.status,
        body: d.body.clone().map(|b| DataSource {
            specifier: Some(match b {
                Body::Text(s) => data_source::Specifier::InlineString(s),
                Body::Bytes(b) => data_source::Specifier::InlineBytes(b),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn fault(f: &Fault) -> HttpFault {
    HttpFault {
        delay: f.delay.as_ref().map(|d| FaultDelay {
            percentage: Some(fraction(d.percent)),
            fault_delay_secifier: Some(fault_delay::FaultDelaySecifier::FixedDelay(duration(
                d.fixed_delay,
            ))),
        }),
        abort: f.abort.as_ref().map(|a| FaultAbort {
            percentage: Some(fraction(a.percent)),
            error_type: Some(match a.status {
                AbortStatus::Http(s) => fault_abort::ErrorType::HttpStatus(s),
                AbortStatus::Grpc(s) => fault_abort::ErrorType::GrpcStatus(s),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Istio's `TranslateCORSPolicy`: the filter enabled for every request
/// (100%), lists joined with commas, `max_age` in seconds.
fn cors(c: &Cors) -> CorsPolicy {
    CorsPolicy {
        allow_origin_string_match: c
            .allow_origins
            .iter()
            .map(|o| string_matcher(o, false))
            .collect(),
        allow_methods: c.allow_methods.join(","),
        allow_headers: c.allow_headers.join(","),
        expose_headers: c.expose_headers.join(","),
        max_age: c.max_age.map(|s| s.to_string()).unwrap_or_default(),
        allow_credentials: c.allow_credentials.map(|value| BoolValue { value }),
        filter_enabled: Some(RuntimeFractionalPercent {
            default_value: Some(FractionalPercent {
                numerator: 100,
                denominator: DenominatorType::Hundred as i32,
            }),
            ..Default::default()
        }),
        forward_not_matching_preflights: Some(BoolValue {
            value: c.forward_unmatched_preflights,
        }),
        ..Default::default()
    }
}

/// Envoy refuses edits of `host` and pseudo-headers in header lists (the
/// whole route configuration is NACKed), so, as Istio does, they are left
/// out: a request `host` edit is served as a host rewrite instead.
fn header_adds(ops: &HeaderOps) -> Vec<HeaderValueOption> {
    let one = |(k, v): (&String, &String), action: HeaderAppendAction| HeaderValueOption {
        header: Some(HeaderValue {
            key: k.clone(),
            value: v.clone(),
            ..Default::default()
        }),
        append_action: action as i32,
        ..Default::default()
    };
    let editable = |(k, _): &(&String, &String)| !is_internal_header(k);
    let set = ops
        .set
        .iter()
        .filter(editable)
        .map(|kv| one(kv, HeaderAppendAction::OverwriteIfExistsOrAdd));
    let add = ops
        .add
        .iter()
        .filter(editable)
        .map(|kv| one(kv, HeaderAppendAction::AppendIfExistsOrAdd));
    set.chain(add).collect()
}

/// The removals Envoy accepts (see [`header_adds`]).
fn header_removes(ops: &HeaderOps) -> Vec<String> {
    ops.remove
        .iter()
        .filter(|k| !is_internal_header(k))
        .cloned()
        .collect()
}
