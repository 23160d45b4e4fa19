//! VirtualService → [`RouteTable`], with Istio's validation rules.

use rudder_config::virtual_service as vs;
use rudder_model::{
    is_authority_header, is_internal_header, AbortFault, AbortStatus, Body, Cors, DelayFault,
    Destination, DirectResponse, Fault, HeaderOps, Headers, HttpAction, HttpMatch, HttpRoute,
    Mirror, Percent, Redirect, Retries, Rewrite, RouteTable, RuleRef, StringMatch, TcpMatch,
    TcpRoute, TlsMatch, TlsRoute, MESH_GATEWAY,
};

use super::Ctx;
use crate::{check::Checker, object::ObjectKey};

/// Compiles a VirtualService. `None` when it has errors (see the checker)
/// or is a delegate. The table's `gateways` say whether it applies to
/// sidecars (`mesh`, or none named) and which gateways it binds to.
pub fn compile(
    spec: &vs::VirtualServiceSpec,
    key: &ObjectKey,
    cx: &Ctx<'_>,
    ck: &mut Checker,
) -> Option<RouteTable> {
    let ns = key.namespace.as_str();
    // Istio: a VirtualService without hosts is a delegate, whose HTTP routes
    // a root's `delegate` takes; it routes nothing itself.
    let delegate = super::delegate::is_delegate(spec);
    if delegate {
        if !spec.gateways.is_empty() {
            ck.error(
                "spec.gateways",
                "a delegate VirtualService (no hosts) must have no gateways",
            );
        }
        if !spec.tcp.is_empty() {
            ck.error(
                "spec.tcp",
                "a delegate VirtualService (no hosts) must have no tcp routes",
            );
        }
        for (i, r) in spec.http.iter().enumerate() {
            if r.delegate.is_some() {
                ck.error(
                    format!("spec.http[{i}].delegate"),
                    "a delegate VirtualService (no hosts) cannot delegate again",
                );
            }
        }
    }
    // Bound to gateways only, a host with a dot is the Host header as
    // written (Istio expands only dotless short names): `bar.com` at a
    // gateway is not a Service `bar` in namespace `com`.
    let gateway_only = !spec.gateways.is_empty()
        && !spec
            .gateways
            .iter()
            .any(|g| g == rudder_model::MESH_GATEWAY);
    let mut hosts = Vec::new();
    for (i, h) in spec.hosts.iter().enumerate() {
        if h.trim().is_empty() {
            ck.error(format!("spec.hosts[{i}]"), "host must not be empty");
        } else if gateway_only && h.contains('.') {
            hosts.push(h.clone());
        } else {
            hosts.push(cx.resolve(h, ns));
        }
    }
    let http = spec
        .http
        .iter()
        .enumerate()
        .map(|(i, r)| http_route(r, &format!("spec.http[{i}]"), ns, cx, ck))
        .collect::<Vec<_>>();
    let tcp = spec
        .tcp
        .iter()
        .enumerate()
        .map(|(i, r)| tcp_route(r, &format!("spec.tcp[{i}]"), ns, cx, ck))
        .collect::<Vec<_>>();
    let tls = spec
        .tls
        .iter()
        .enumerate()
        .map(|(i, r)| tls_route(r, &format!("spec.tls[{i}]"), &spec.hosts, ns, cx, ck))
        .collect::<Vec<_>>();
    // Istio: a rule naming gateways but not `mesh` is not applied to
    // sidecars; bare gateway names are in the rule's namespace.
    let mut gateways = Vec::new();
    for (i, g) in spec.gateways.iter().enumerate() {
        let q = rudder_model::gateway::qualify_gateway(g, ns);
        if q != MESH_GATEWAY && q.split('/').any(str::is_empty) {
            ck.error(
                format!("spec.gateways[{i}]"),
                format!("{g:?} is not a gateway name (NAME, NAMESPACE/NAME or mesh)"),
            );
        } else if !gateways.contains(&q) {
            gateways.push(q);
        }
    }
    ck.export_to("spec.exportTo", &spec.export_to);
    if ck.has_errors() || delegate {
        return None;
    }
    Some(RouteTable {
        source: RuleRef {
            kind: "VirtualService".into(),
            namespace: ns.into(),
            name: key.name.clone(),
        },
        hosts,
        export_to: spec.export_to.clone(),
        http: http.into_iter().flatten().collect(),
        tcp: tcp.into_iter().flatten().collect(),
        tls: tls.into_iter().flatten().collect(),
        gateways,
    })
}

fn http_route(
    r: &vs::HttpRoute,
    at: &str,
    ns: &str,
    cx: &Ctx<'_>,
    ck: &mut Checker,
) -> Option<HttpRoute> {
    let matches = r
        .matches
        .iter()
        .enumerate()
        .map(|(i, m)| http_match(m, &format!("{at}.match[{i}]"), ck))
        .collect::<Vec<_>>();
    if let Some(d) = &r.delegate {
        // Merged with its delegate's routes in the snapshot build.
        let f = format!("{at}.delegate");
        if d.name.trim().is_empty() {
            ck.error(format!("{f}.name"), "delegate name must be specified");
        }
        for (set, what) in [
            (!r.route.is_empty(), "route"),
            (r.redirect.is_some(), "redirect"),
            (r.direct_response.is_some(), "directResponse"),
        ] {
            if set {
                ck.error(&f, format!("delegate and {what} are mutually exclusive"));
            }
        }
        return None;
    }
    if let Some(h) = &r.headers {
        let rewrite = r.rewrite.as_ref().and_then(|rw| rw.authority.as_deref());
        check_header_names(h, rewrite, &format!("{at}.headers"), ck);
    }
    let mut headers = r.headers.as_ref().map(headers_of).unwrap_or_default();
    let action = if let Some(rd) = &r.redirect {
        redirect_action(r, rd, at, ck)
    } else if let Some(dr) = &r.direct_response {
        direct_response_action(r, dr, at, ck)
    } else {
        route_action(r, at, ns, cx, &mut headers, ck)
    };
    let timeout = ck.opt_duration(format!("{at}.timeout"), r.timeout.as_ref());
    let retries = r.retries.as_ref().and_then(|rt| retries(rt, at, ck));
    let fault = r
        .fault
        .as_ref()
        .map(|f| fault(f, &format!("{at}.fault"), ck));
    let mirrors = mirrors(r, at, ns, cx, ck);
    let rewrite = r
        .rewrite
        .as_ref()
        .map(|rw| rewrite(rw, &format!("{at}.rewrite"), ck));
    let cors = r
        .cors_policy
        .as_ref()
        .map(|c| cors(c, &format!("{at}.corsPolicy"), ck));
    Some(HttpRoute {
        name: r.name.clone(),
        matches: matches.into_iter().flatten().collect(),
        action,
        timeout,
        retries,
        fault,
        mirrors,
        rewrite,
        headers,
        cors,
    })
}

/// `rewrite`, with Istio's rules: `uri` and `uriRegexRewrite` exclude each
/// other, something must be rewritten, and a regex rewrite needs both parts.
fn rewrite(rw: &vs::HttpRewrite, at: &str, ck: &mut Checker) -> Rewrite {
    let uri = rw.uri.clone().filter(|u| !u.is_empty());
    if uri.is_some() && rw.uri_regex_rewrite.is_some() {
        ck.error(
            format!("{at}.uriRegexRewrite"),
            "rewrite may only contain one of uri or uriRegexRewrite",
        );
    }
    let authority = rw.authority.clone().filter(|a| !a.is_empty());
    if uri.is_none() && rw.uri_regex_rewrite.is_none() && authority.is_none() {
        ck.error(
            at,
            "rewrite must specify at least one of uri, uriRegexRewrite or authority",
        );
    }
    let uri_regex = rw.uri_regex_rewrite.as_ref().and_then(|re| {
        let f = format!("{at}.uriRegexRewrite");
        if re.pattern.is_empty() || re.rewrite.is_empty() {
            ck.error(
                &f,
                "uriRegexRewrite requires both rewrite and match to be specified",
            );
            return None;
        }
        ck.string_match(
            format!("{f}.match"),
            &rudder_config::StringMatch::Regex(re.pattern.clone()),
        )?;
        Some((re.pattern.clone(), re.rewrite.clone()))
    });
    Rewrite {
        uri,
        authority,
        uri_regex,
    }
}

/// The methods Istio's validation accepts in `allowMethods`.
const CORS_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// `corsPolicy`, with Istio's validation: origins non-empty (regexes valid),
/// methods from [`CORS_METHODS`], header names tokens or `*`, `maxAge` in
/// whole seconds, `unmatchedPreflights` `FORWARD` or `IGNORE`. The deprecated
/// `allowOrigin` are exact origins, used when `allowOrigins` is unset.
fn cors(c: &vs::CorsPolicy, at: &str, ck: &mut Checker) -> Cors {
    let mut allow_origins = Vec::new();
    for (i, o) in c.allow_origins.iter().enumerate() {
        let f = format!("{at}.allowOrigins[{i}]");
        let (rudder_config::StringMatch::Exact(v)
        | rudder_config::StringMatch::Prefix(v)
        | rudder_config::StringMatch::Regex(v)) = o;
        if v.is_empty() {
            ck.error(&f, "an empty match is not a valid CORS origin");
        } else if let Some(m) = ck.string_match(&f, o) {
            allow_origins.push(m);
        }
    }
    if c.allow_origins.is_empty() {
        allow_origins.extend(c.allow_origin.iter().map(|o| StringMatch::Exact(o.clone())));
    }
    for (i, m) in c.allow_methods.iter().enumerate() {
        if !CORS_METHODS.contains(&m.as_str()) {
            ck.error(
                format!("{at}.allowMethods[{i}]"),
                format!(
                    "{m:?} is not a supported HTTP method ({})",
                    CORS_METHODS.join(", ")
                ),
            );
        }
    }
    for (list, name) in [
        (&c.allow_headers, "allowHeaders"),
        (&c.expose_headers, "exposeHeaders"),
    ] {
        for (i, h) in list.iter().enumerate() {
            if h != "*" && !is_header_name(h) {
                ck.error(
                    format!("{at}.{name}[{i}]"),
                    format!("{h:?} is not a valid header name"),
                );
            }
        }
    }
    let max_age = c.max_age.as_ref().and_then(|s| {
        let f = format!("{at}.maxAge");
        let d = ck.duration(&f, s)?;
        if d.subsec_nanos() != 0 {
            ck.error(&f, "maxAge is accurate only to seconds precision");
            return None;
        }
        Some(d.as_secs())
    });
    let forward_unmatched_preflights = match c.unmatched_preflights.as_deref() {
        None | Some("UNSPECIFIED" | "FORWARD") => true,
        Some("IGNORE") => false,
        Some(other) => {
            ck.error(
                format!("{at}.unmatchedPreflights"),
                format!("{other:?} is not FORWARD or IGNORE"),
            );
            true
        }
    };
    Cors {
        allow_origins,
        allow_methods: c.allow_methods.clone(),
        allow_headers: c.allow_headers.clone(),
        expose_headers: c.expose_headers.clone(),
        max_age,
        allow_credentials: c.allow_credentials,
        forward_unmatched_preflights,
    }
}

/// An HTTP header name: a non-empty RFC 7230 token.
fn is_header_name(h: &str) -> bool {
    !h.is_empty()
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `redirect` (exclusive with `route` and `directResponse`).
fn redirect_action(
    r: &vs::HttpRoute,
    rd: &vs::HttpRedirect,
    at: &str,
    ck: &mut Checker,
) -> HttpAction {
    if !r.route.is_empty() {
        ck.error(
            format!("{at}.redirect"),
            "redirect and route are mutually exclusive",
        );
    }
    if r.direct_response.is_some() {
        ck.error(
            format!("{at}.redirect"),
            "redirect and directResponse are mutually exclusive",
        );
    }
    let port = rd
        .port
        .and_then(|p| ck.port(format!("{at}.redirect.port"), p.into()));
    // Istio: `port` and `derivePort` are one field (a oneof);
    // FROM_PROTOCOL_DEFAULT is Envoy's default (no port), FROM_REQUEST_PORT
    // the port the route serves.
    let port_from_request = match rd.derive_port.as_deref() {
        None | Some("FROM_PROTOCOL_DEFAULT") => false,
        Some("FROM_REQUEST_PORT") => true,
        Some(other) => {
            ck.error(
                format!("{at}.redirect.derivePort"),
                format!("{other:?} is not FROM_PROTOCOL_DEFAULT or FROM_REQUEST_PORT"),
            );
            false
        }
    };
    if rd.port.is_some() && rd.derive_port.is_some() {
        ck.error(
            format!("{at}.redirect.derivePort"),
            "port and derivePort are mutually exclusive",
        );
    }
    let code = rd.redirect_code.unwrap_or(301);
    if ![301, 302, 303, 307, 308].contains(&code) {
        ck.error(
            format!("{at}.redirect.redirectCode"),
            format!("redirect code {code} must be one of 301, 302, 303, 307, 308"),
        );
    }
    HttpAction::Redirect(Redirect {
        uri: rd.uri.clone(),
        authority: rd.authority.clone(),
        scheme: rd.scheme.clone(),
        port,
        port_from_request,
        redirect_code: code,
    })
}

/// `directResponse` (exclusive with `route`).
fn direct_response_action(
    r: &vs::HttpRoute,
    dr: &vs::HttpDirectResponse,
    at: &str,
    ck: &mut Checker,
) -> HttpAction {
    if !r.route.is_empty() {
        ck.error(
            format!("{at}.directResponse"),
            "directResponse and route are mutually exclusive",
        );
    }
    if !(200..=599).contains(&dr.status) {
        ck.error(
            format!("{at}.directResponse.status"),
            format!("HTTP status {} must be between 200 and 599", dr.status),
        );
    }
    HttpAction::DirectResponse(DirectResponse {
        status: dr.status,
        body: dr
            .body
            .as_ref()
            .and_then(|b| body(b, &format!("{at}.directResponse.body"), ck)),
    })
}

/// Istio's limit on a direct response body (its validation's 1 MiB).
const MAX_BODY: usize = 1024 * 1024;

/// A direct response body: `string`, or `bytes` in base64 (standard or
/// URL-safe alphabet, padded or not, as protobuf's JSON mapping reads it).
fn body(b: &vs::HttpBody, at: &str, ck: &mut Checker) -> Option<Body> {
    use base64::Engine as _;
    let body = match (&b.string, &b.bytes) {
        (Some(_), Some(_)) => {
            ck.error(
                format!("{at}.bytes"),
                "string and bytes are mutually exclusive",
            );
            return None;
        }
        (Some(s), None) => Body::Text(s.clone()),
        (None, Some(s)) => {
            let cfg = base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent);
            let text = s.trim_end_matches('=');
            let url_safe = text.contains(['-', '_']);
            let alphabet = if url_safe {
                &base64::alphabet::URL_SAFE
            } else {
                &base64::alphabet::STANDARD
            };
            match base64::engine::GeneralPurpose::new(alphabet, cfg).decode(text) {
                Ok(bytes) => Body::Bytes(bytes),
                Err(e) => {
                    ck.error(format!("{at}.bytes"), format!("invalid base64: {e}"));
                    return None;
                }
            }
        }
        (None, None) => return None,
    };
    let len = match &body {
        Body::Text(s) => s.len(),
        Body::Bytes(b) => b.len(),
    };
    if len > MAX_BODY {
        ck.error(
            at,
            format!("direct response body of {len} bytes is larger than 1MiB"),
        );
        return None;
    }
    Some(body)
}

/// `route`: weighted destinations. A lone destination's header edits go to
/// the route's `headers`.
fn route_action(
    r: &vs::HttpRoute,
    at: &str,
    ns: &str,
    cx: &Ctx<'_>,
    headers: &mut Headers,
    ck: &mut Checker,
) -> HttpAction {
    if r.route.is_empty() {
        ck.error(at, "one of route, redirect or directResponse is required");
    }
    let weights: Vec<_> = r.route.iter().map(|d| d.weight).collect();
    let ws = weights_of(&weights, &format!("{at}.route"), ck);
    let mut dests = Vec::new();
    for (i, (d, w)) in r.route.iter().zip(ws).enumerate() {
        let f = format!("{at}.route[{i}]");
        if let Some(h) = &d.headers {
            check_header_names(h, None, &format!("{f}.headers"), ck);
        }
        // Istio applies a destination's header edits to the requests sent
        // to it: with one destination that is the route's; with several,
        // each weighted cluster carries its own.
        let own = match &d.headers {
            Some(h) if r.route.len() > 1 => headers_of(h),
            Some(h) => {
                merge_headers(headers, headers_of(h));
                Headers::default()
            }
            None => Headers::default(),
        };
        if let Some(dest) = destination(&d.destination, &format!("{f}.destination"), ns, cx, ck) {
            dests.push(Destination {
                weight: w,
                headers: own,
                ..dest
            });
        }
    }
    HttpAction::Route(dests)
}

/// `retries`; `None` when invalid.
fn retries(rt: &vs::HttpRetry, at: &str, ck: &mut Checker) -> Option<Retries> {
    if rt.attempts < 0 {
        ck.error(
            format!("{at}.retries.attempts"),
            format!("attempts {} must not be negative", rt.attempts),
        );
        return None;
    }
    let per_try_timeout = ck.opt_duration(
        format!("{at}.retries.perTryTimeout"),
        rt.per_try_timeout.as_ref(),
    );
    // Istio: an empty retryOn keeps the default conditions.
    let (retry_on, status_codes) = match rt.retry_on.as_deref().map(Retries::parse_retry_on) {
        None => (None, Vec::new()),
        Some(Ok(parsed)) => parsed,
        Some(Err(why)) => {
            ck.error(format!("{at}.retries.retryOn"), why);
            return None;
        }
    };
    let backoff = ck.opt_duration(format!("{at}.retries.backoff"), rt.backoff.as_ref());
    Some(Retries {
        attempts: rt.attempts as u32,
        per_try_timeout,
        retry_on,
        status_codes,
        remote_localities: rt.retry_remote_localities.unwrap_or(false),
        ignore_previous_hosts: rt.retry_ignore_previous_hosts,
        backoff,
    })
}

/// The legacy `mirror` (with `mirrorPercentage` or `mirrorPercent`), then
/// `mirrors`.
fn mirrors(r: &vs::HttpRoute, at: &str, ns: &str, cx: &Ctx<'_>, ck: &mut Checker) -> Vec<Mirror> {
    let mut mirrors = Vec::new();
    if let Some(m) = &r.mirror {
        let pct = match (&r.mirror_percentage, r.mirror_percent) {
            (Some(p), _) => ck.percent(format!("{at}.mirrorPercentage.value"), p.value),
            (None, Some(p)) => ck
                .int_percent(
                    format!("{at}.mirrorPercent"),
                    i32::try_from(p).ok().or(Some(i32::MAX)),
                )
                .map(|p| Percent::from_f64(p.into())),
            (None, None) => Some(Percent::ALL),
        };
        if let (Some(d), Some(percent)) = (destination(m, &format!("{at}.mirror"), ns, cx, ck), pct)
        {
            mirrors.push(Mirror {
                destination: Destination { weight: 0, ..d },
                percent,
            });
        }
    }
    for (i, m) in r.mirrors.iter().enumerate() {
        let f = format!("{at}.mirrors[{i}]");
        let pct = match &m.percentage {
            Some(p) => ck.percent(format!("{f}.percentage.value"), p.value),
            None => Some(Percent::ALL),
        };
        if let (Some(d), Some(percent)) = (
            destination(&m.destination, &format!("{f}.destination"), ns, cx, ck),
            pct,
        ) {
            mirrors.push(Mirror {
                destination: Destination { weight: 0, ..d },
                percent,
            });
        }
    }
    mirrors
}

/// Istio's weight rules: relative weights; a lone destination without weight
/// gets 100; negative weights, or a zero total over several destinations, are errors.
pub(crate) fn weights_of(weights: &[Option<i32>], at: &str, ck: &mut Checker) -> Vec<u32> {
    if let [None] = weights {
        return vec![100];
    }
    let mut out = Vec::new();
    for (i, w) in weights.iter().enumerate() {
        let w = w.unwrap_or(0);
        if w < 0 {
            ck.error(
                format!("{at}[{i}].weight"),
                format!("weight {w} must not be negative"),
            );
        }
        out.push(w.max(0) as u32);
    }
    if weights.len() > 1 && out.iter().sum::<u32>() == 0 && !ck.has_errors() {
        ck.error(at, "total weight of the destinations is 0");
    }
    out
}

fn http_match(m: &vs::HttpMatchRequest, at: &str, ck: &mut Checker) -> Option<HttpMatch> {
    let sm = |ck: &mut Checker, f: &str, v: &Option<rudder_config::StringMatch>| {
        v.as_ref()
            .and_then(|v| ck.string_match(format!("{at}.{f}"), v))
    };
    // Istio: an empty match (`{}`) means "present" (`present_match`).
    let present = |ck: &mut Checker, f: String, m: &rudder_config::meta::PresenceMatch| match &m.0 {
        None => Some(StringMatch::Present),
        Some(m) => ck.string_match(f, m),
    };
    let map =
        |ck: &mut Checker,
         f: &str,
         v: &std::collections::BTreeMap<String, rudder_config::meta::PresenceMatch>| {
            v.iter()
                .filter_map(|(k, m)| {
                    present(ck, format!("{at}.{f}.{k}"), m).map(|m| (k.to_ascii_lowercase(), m))
                })
                .collect()
        };
    let port = m.port.and_then(|p| ck.port(format!("{at}.port"), p.into()));
    Some(HttpMatch {
        name: m.name.clone(),
        uri: sm(ck, "uri", &m.uri),
        scheme: sm(ck, "scheme", &m.scheme),
        method: sm(ck, "method", &m.method),
        authority: sm(ck, "authority", &m.authority),
        headers: map(ck, "headers", &m.headers),
        without_headers: map(ck, "withoutHeaders", &m.without_headers),
        query_params: m
            .query_params
            .iter()
            .filter_map(|(k, v)| {
                present(ck, format!("{at}.queryParams.{k}"), v).map(|m| (k.clone(), m))
            })
            .collect(),
        port,
        source_labels: m.source_labels.clone(),
        source_namespace: m.source_namespace.clone(),
        ignore_uri_case: m.ignore_uri_case,
        gateways: m.gateways.clone(),
    })
}

/// A destination, resolved and checked (weight left 0).
pub(crate) fn destination(
    d: &vs::Destination,
    at: &str,
    ns: &str,
    cx: &Ctx<'_>,
    ck: &mut Checker,
) -> Option<Destination> {
    if d.host.trim().is_empty() {
        ck.error(format!("{at}.host"), "host must not be empty");
        return None;
    }
    let host = cx.resolve(&d.host, ns);
    cx.check_host(ck, &format!("{at}.host"), &host);
    if let Some(s) = &d.subset {
        cx.check_subset(ck, &format!("{at}.subset"), &host, s);
    }
    let port = match &d.port {
        Some(p) => Some(ck.port(format!("{at}.port.number"), p.number.into())?),
        None => None,
    };
    Some(Destination {
        host,
        subset: d.subset.clone(),
        port,
        weight: 0,
        headers: Headers::default(),
    })
}

fn fault(f: &vs::HttpFaultInjection, at: &str, ck: &mut Checker) -> Fault {
    let delay = f.delay.as_ref().and_then(|d| {
        let fixed = match &d.fixed_delay {
            Some(s) => ck.duration(format!("{at}.delay.fixedDelay"), s),
            None => {
                ck.error(format!("{at}.delay.fixedDelay"), "fixedDelay is required");
                None
            }
        };
        let percent = match (&d.percentage, d.percent) {
            (Some(p), _) => ck.percent(format!("{at}.delay.percentage.value"), p.value),
            (None, Some(p)) => ck
                .int_percent(format!("{at}.delay.percent"), Some(p))
                .map(|p| Percent::from_f64(p.into())),
            (None, None) => Some(Percent::ALL),
        };
        Some(DelayFault {
            fixed_delay: fixed?,
            percent: percent?,
        })
    });
    let abort = f.abort.as_ref().and_then(|a| {
        // Istio: `httpStatus` and `grpcStatus` are one field (a oneof).
        let status = match (&a.grpc_status, a.http_status) {
            (Some(_), Some(_)) => {
                ck.error(
                    format!("{at}.abort.grpcStatus"),
                    "httpStatus and grpcStatus are mutually exclusive",
                );
                None
            }
            (Some(g), None) => match grpc_code(g) {
                Some(code) => Some(AbortStatus::Grpc(code)),
                None => {
                    ck.error(
                        format!("{at}.abort.grpcStatus"),
                        format!("{g:?} is not a valid gRPC code"),
                    );
                    None
                }
            },
            (None, h) => ck
                .abort_status(format!("{at}.abort.httpStatus"), h)
                .map(AbortStatus::Http),
        };
        let percent = match &a.percentage {
            Some(p) => ck.percent(format!("{at}.abort.percentage.value"), p.value),
            None => Some(Percent::ALL),
        };
        Some(AbortFault {
            status: status?,
            percent: percent?,
        })
    });
    if f.delay.is_none() && f.abort.is_none() {
        ck.error(at, "fault needs a delay or an abort");
    }
    Fault { delay, abort }
}

/// The gRPC status names Istio accepts (`grpc.SupportedGRPCStatus`) and
/// their codes.
fn grpc_code(name: &str) -> Option<u32> {
    const CODES: &[&str] = &[
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    CODES.iter().position(|c| *c == name).map(|i| i as u32)
}

/// Istio's header-name rules: a request may set or add `host` or
/// `:authority` (served as the host rewrite), no other pseudo-header; a
/// request removal and every response edit may touch neither `host` nor a
/// pseudo-header (Envoy cannot); and the authority is rewritten in one place
/// only (`rewrite.authority` or one header edit).
fn check_header_names(h: &vs::Headers, rewrite: Option<&str>, at: &str, ck: &mut Checker) {
    let prefix = |name: &str| format!("invalid header {name:?}: header cannot have \":\" prefix");
    if let Some(req) = &h.request {
        let mut authority = rewrite.map(str::to_string);
        for (op, map) in [("set", &req.set), ("add", &req.add)] {
            for (name, value) in map {
                let field = format!("{at}.request.{op}.{name}");
                if is_authority_header(name) {
                    if let Some(have) = authority.replace(value.clone()) {
                        ck.error(field, format!("authority header cannot be set multiple times: have {have:?}, attempting to set {value:?}"));
                    }
                } else if is_internal_header(name) {
                    ck.error(field, prefix(name));
                }
            }
        }
    }
    let fixed = |name: &str| {
        if name.eq_ignore_ascii_case("host") {
            Some(format!("invalid header {name:?}: cannot set Host header"))
        } else {
            is_internal_header(name).then(|| prefix(name))
        }
    };
    let request_removes = h.request.iter().flat_map(|o| {
        o.remove
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("request.remove[{i}]"), n))
    });
    let response = h.response.iter().flat_map(|o| {
        let edits = [("set", &o.set), ("add", &o.add)]
            .into_iter()
            .flat_map(|(op, m)| m.keys().map(move |k| (format!("response.{op}.{k}"), k)));
        edits.chain(
            o.remove
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("response.remove[{i}]"), n)),
        )
    });
    for (field, name) in request_removes.chain(response) {
        if let Some(why) = fixed(name) {
            ck.error(format!("{at}.{field}"), why);
        }
    }
}

fn headers_of(h: &vs::Headers) -> Headers {
    let ops = |o: &Option<vs::HeaderOperations>| {
        o.as_ref()
            .map(|o| HeaderOps {
                set: o.set.clone(),
                add: o.add.clone(),
                remove: o.remove.clone(),
            })
            .unwrap_or_default()
    };
    Headers {
        request: ops(&h.request),
        response: ops(&h.response),
    }
}

fn merge_headers(into: &mut Headers, from: Headers) {
    for (into, from) in [
        (&mut into.request, from.request),
        (&mut into.response, from.response),
    ] {
        into.set.extend(from.set);
        into.add.extend(from.add);
        into.remove.extend(from.remove);
    }
}

fn tcp_route(
    r: &vs::TcpRoute,
    at: &str,
    ns: &str,
    cx: &Ctx<'_>,
    ck: &mut Checker,
) -> Option<TcpRoute> {
    let matches = r
        .matches
        .iter()
        .enumerate()
        .map(|(i, m)| l4_match(&format!("{at}.match[{i}]"), m, ck))
        .collect();
    let destinations = l4_destinations(&r.route, at, ns, cx, ck);
    Some(TcpRoute {
        matches,
        destinations,
    })
}

/// A TLS route: Istio's rules are those of a TCP route, plus at least one
/// match, each with SNI names that a host of the rule covers.
fn tls_route(
    r: &vs::TlsRoute,
    at: &str,
    hosts: &[String],
    ns: &str,
    cx: &Ctx<'_>,
    ck: &mut Checker,
) -> Option<TlsRoute> {
    if r.matches.is_empty() {
        ck.error(
            format!("{at}.match"),
            "a TLS route needs at least one match (sniHosts)",
        );
    }
    let mut matches = Vec::new();
    for (i, m) in r.matches.iter().enumerate() {
        let f = format!("{at}.match[{i}]");
        if m.sni_hosts.is_empty() {
            ck.error(format!("{f}.sniHosts"), "at least one SNI host is required");
        }
        for (j, sni) in m.sni_hosts.iter().enumerate() {
            let fqdn = |h: &str| cx.resolve(h, ns);
            if !hosts.iter().any(|h| {
                rudder_model::scope::host_matches(&fqdn(h), &fqdn(sni))
                    || rudder_model::scope::host_matches(h, sni)
            }) {
                ck.error(
                    format!("{f}.sniHosts[{j}]"),
                    format!(
                        "{sni:?} is not covered by any host of the rule ({})",
                        hosts.join(", ")
                    ),
                );
            }
        }
        let tcp = l4_match(&f, &m.l4(), ck);
        matches.push(TlsMatch {
            sni_hosts: m.sni_hosts.clone(),
            tcp,
        });
    }
    let destinations = l4_destinations(&r.route, at, ns, cx, ck);
    Some(TlsRoute {
        matches,
        destinations,
    })
}

/// The conditions a TCP or TLS match shares.
fn l4_match(f: &str, m: &vs::L4MatchAttributes, ck: &mut Checker) -> TcpMatch {
    let mut subnets = Vec::new();
    for (j, cidr) in m.destination_subnets.iter().enumerate() {
        match rudder_model::Cidr::parse(cidr) {
            Some(c) => subnets.push(c),
            None => ck.error(
                format!("{f}.destinationSubnets[{j}]"),
                format!("invalid CIDR {cidr:?}"),
            ),
        }
    }
    let port = m.port.and_then(|p| ck.port(format!("{f}.port"), p.into()));
    TcpMatch {
        port,
        destination_subnets: subnets,
        source_labels: m.source_labels.clone(),
        source_namespace: m.source_namespace.clone(),
        gateways: m.gateways.clone(),
    }
}

/// The weighted destinations of a TCP or TLS route (at least one).
fn l4_destinations(
    route: &[vs::RouteDestination],
    at: &str,
    ns: &str,
    cx: &Ctx<'_>,
    ck: &mut Checker,
) -> Vec<Destination> {
    if route.is_empty() {
        ck.error(format!("{at}.route"), "at least one route is required");
    }
    let weights: Vec<_> = route.iter().map(|d| d.weight).collect();
    let ws = weights_of(&weights, &format!("{at}.route"), ck);
    route
        .iter()
        .zip(ws)
        .enumerate()
        .filter_map(|(i, (d, w))| {
            destination(
                &d.destination,
                &format!("{at}.route[{i}].destination"),
                ns,
                cx,
                ck,
            )
            .map(|d| Destination { weight: w, ..d })
        })
        .collect()
}
