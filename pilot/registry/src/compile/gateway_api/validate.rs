//! Checks of one Gateway API object alone (what decides whether the store
//! accepts it): every error names its field.

use std::collections::BTreeSet;

use rudder_config::gateway_api as gw;

use crate::{check::Checker, object::Body};

const PROTOCOLS: [&str; 4] = ["HTTP", "HTTPS", "TLS", "TCP"];

// ---- checks of one object alone (errors reject it) ----

/// Checks a Gateway API object alone: every error names its field.
pub fn validate(body: &Body, ck: &mut Checker) {
    match body {
        Body::GatewayClass(c) if c.controller_name.is_empty() => {
            ck.error("spec.controllerName", "required");
        }
        Body::KubeGateway(g) => validate_gateway(g, ck),
        Body::HttpRoute(r) => {
            parent_refs(&r.parent_refs, ck);
            hostnames(&r.hostnames, ck);
            for (i, rule) in r.rules.iter().enumerate() {
                let at = format!("spec.rules[{i}]");
                for (j, m) in rule.matches.iter().enumerate() {
                    http_match(m, &format!("{at}.matches[{j}]"), ck);
                }
                filters(&rule.filters, &at, true, ck);
                for (j, b) in rule.backend_refs.iter().enumerate() {
                    let bat = format!("{at}.backendRefs[{j}]");
                    backend_ref(&b.backend(), &bat, ck);
                    let fs: Vec<gw::HttpRouteFilter> = b.filters.iter().map(Into::into).collect();
                    filters(&fs, &bat, false, ck);
                }
                if let Some(t) = &rule.timeouts {
                    let req = t
                        .request
                        .as_deref()
                        .and_then(|d| ck.duration(format!("{at}.timeouts.request"), d));
                    let be = t
                        .backend_request
                        .as_deref()
                        .and_then(|d| ck.duration(format!("{at}.timeouts.backendRequest"), d));
                    if let (Some(r), Some(b)) = (req, be) {
                        if !r.is_zero() && b > r {
                            ck.error(
                                format!("{at}.timeouts.backendRequest"),
                                "must not be longer than timeouts.request",
                            );
                        }
                    }
                }
            }
        }
        Body::GrpcRoute(r) => {
            parent_refs(&r.parent_refs, ck);
            hostnames(&r.hostnames, ck);
            for (i, rule) in r.rules.iter().enumerate() {
                let at = format!("spec.rules[{i}]");
                for (j, m) in rule.matches.iter().enumerate() {
                    let mat = format!("{at}.matches[{j}]");
                    if let Some(mm) = &m.method {
                        match mm.type_.as_deref() {
                            None | Some("Exact" | "RegularExpression") => {}
                            Some(o) => ck.error(
                                format!("{mat}.method.type"),
                                format!("{o:?}: expected Exact or RegularExpression"),
                            ),
                        }
                        if mm.service.is_none() && mm.method.is_none() {
                            ck.error(
                                format!("{mat}.method"),
                                "one of service and method is required",
                            );
                        }
                    }
                    header_matches(&m.headers, &format!("{mat}.headers"), ck);
                }
                let fs: Vec<gw::HttpRouteFilter> = rule.filters.iter().map(Into::into).collect();
                filters(&fs, &at, false, ck);
                for (j, b) in rule.backend_refs.iter().enumerate() {
                    let bat = format!("{at}.backendRefs[{j}]");
                    backend_ref(&b.backend(), &bat, ck);
                    let fs: Vec<gw::HttpRouteFilter> = b.filters.iter().map(Into::into).collect();
                    filters(&fs, &bat, false, ck);
                }
            }
        }
        Body::TcpRoute(r) => {
            parent_refs(&r.parent_refs, ck);
            l4_rules(&r.rules, ck);
        }
        Body::TlsRoute(r) => {
            parent_refs(&r.parent_refs, ck);
            hostnames(&r.hostnames, ck);
            l4_rules(&r.rules, ck);
        }
        Body::ReferenceGrant(g) => {
            if g.from.is_empty() {
                ck.error("spec.from", "required: at least one entry");
            }
            if g.to.is_empty() {
                ck.error("spec.to", "required: at least one entry");
            }
        }
        _ => {}
    }
}

fn validate_gateway(g: &gw::KubeGatewaySpec, ck: &mut Checker) {
    if g.gateway_class_name.is_empty() {
        ck.error("spec.gatewayClassName", "required");
    }
    for (i, a) in g.addresses.iter().enumerate() {
        if a.type_.as_deref() != Some("Hostname") {
            ck.error(
                format!("spec.addresses[{i}].type"),
                format!(
                    "{:?}: only type Hostname (a gateway Service <svc>.<ns>.svc.<domain>) is served; \
                     Rudder does not assign addresses",
                    a.type_.as_deref().unwrap_or("IPAddress")
                ),
            );
        }
    }
    let mut names = BTreeSet::new();
    for (i, l) in g.listeners.iter().enumerate() {
        let at = format!("spec.listeners[{i}]");
        if l.name.is_empty() {
            ck.error(format!("{at}.name"), "required");
        } else if !names.insert(&l.name) {
            ck.error(
                format!("{at}.name"),
                format!("listener name {:?} is used twice", l.name),
            );
        }
        if !(1..=65535).contains(&l.port) {
            ck.error(
                format!("{at}.port"),
                format!("{} is not a port number", l.port),
            );
        }
        if let Some(h) = &l.hostname {
            hostname(h, &format!("{at}.hostname"), ck);
        }
        if !PROTOCOLS.contains(&l.protocol.as_str()) {
            ck.error(
                format!("{at}.protocol"),
                format!("{:?}: expected one of {}", l.protocol, PROTOCOLS.join(", ")),
            );
        }
        let mode = l
            .tls
            .as_ref()
            .map(|t| t.mode.as_deref().unwrap_or("Terminate"));
        match (l.protocol.as_str(), mode) {
            ("HTTP" | "TCP", Some(_)) => ck.error(
                format!("{at}.tls"),
                format!("a {} listener takes no tls", l.protocol),
            ),
            ("HTTPS", None) => ck.error(format!("{at}.tls"), "required for HTTPS"),
            ("HTTPS", Some(m)) if m != "Terminate" => ck.error(
                format!("{at}.tls.mode"),
                format!("{m:?}: an HTTPS listener terminates TLS (Terminate)"),
            ),
            ("TLS", None) => ck.error(format!("{at}.tls"), "required for TLS"),
            ("TLS", Some(m)) if m != "Passthrough" => ck.error(
                format!("{at}.tls.mode"),
                format!(
                    "{m:?}: a TLS listener is served with Passthrough (Terminate with TLSRoutes is not served)"
                ),
            ),
            _ => {}
        }
        if let Some(t) = &l.tls {
            if mode == Some("Terminate") && t.certificate_refs.is_empty() {
                ck.error(
                    format!("{at}.tls.certificateRefs"),
                    "required for Terminate",
                );
            }
            if mode == Some("Passthrough") && !t.certificate_refs.is_empty() {
                ck.error(
                    format!("{at}.tls.certificateRefs"),
                    "Passthrough does not terminate: no certificates",
                );
            }
            for (j, c) in t.certificate_refs.iter().enumerate() {
                let kind = c.kind.as_deref().unwrap_or("Secret");
                let group = c.group.as_deref().unwrap_or("");
                if kind != "Secret" || !group.is_empty() {
                    ck.error(
                        format!("{at}.tls.certificateRefs[{j}]"),
                        format!("{group}/{kind}: only core Secrets hold certificates"),
                    );
                }
            }
            if t.certificate_refs.len() > 1 {
                ck.error(
                    format!("{at}.tls.certificateRefs[1]"),
                    "one certificate per listener is served",
                );
            }
        }
        if let Some(ar) = &l.allowed_routes {
            if let Some(ns) = &ar.namespaces {
                match (ns.from.as_deref().unwrap_or("Same"), &ns.selector) {
                    ("Same" | "All", None) => {}
                    ("Selector", Some(s)) => {
                        selector(s, &format!("{at}.allowedRoutes.namespaces.selector"), ck)
                    }
                    ("Selector", None) => ck.error(
                        format!("{at}.allowedRoutes.namespaces.selector"),
                        "required with from: Selector",
                    ),
                    ("Same" | "All", Some(_)) => ck.error(
                        format!("{at}.allowedRoutes.namespaces.selector"),
                        "only with from: Selector",
                    ),
                    (o, _) => ck.error(
                        format!("{at}.allowedRoutes.namespaces.from"),
                        format!("{o:?}: expected Same, All or Selector"),
                    ),
                }
            }
        }
    }
}

fn selector(s: &gw::LabelSelector, at: &str, ck: &mut Checker) {
    for (i, e) in s.match_expressions.iter().enumerate() {
        match e.operator.as_str() {
            "In" | "NotIn" if e.values.is_empty() => ck.error(
                format!("{at}.matchExpressions[{i}].values"),
                "required with In and NotIn",
            ),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            o => ck.error(
                format!("{at}.matchExpressions[{i}].operator"),
                format!("{o:?}: expected In, NotIn, Exists or DoesNotExist"),
            ),
        }
    }
}

fn parent_refs(refs: &[gw::ParentReference], ck: &mut Checker) {
    for (i, p) in refs.iter().enumerate() {
        if p.name.is_empty() {
            ck.error(format!("spec.parentRefs[{i}].name"), "required");
        }
        if let Some(port) = p.port {
            if !(1..=65535).contains(&port) {
                ck.error(
                    format!("spec.parentRefs[{i}].port"),
                    format!("{port} is not a port number"),
                );
            }
        }
    }
}

fn hostnames(hs: &[String], ck: &mut Checker) {
    for (i, h) in hs.iter().enumerate() {
        hostname(h, &format!("spec.hostnames[{i}]"), ck);
    }
}

fn hostname(h: &str, at: &str, ck: &mut Checker) {
    let bare = h.strip_prefix("*.").unwrap_or(h);
    let ok = !bare.is_empty()
        && bare.parse::<std::net::IpAddr>().is_err()
        && bare.split('.').all(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        });
    if !ok {
        ck.error(
            at,
            format!("invalid hostname {h:?}: a lowercase DNS name, optionally with a leading \"*.\" label (no IP, no port)"),
        );
    }
}

fn http_match(m: &gw::HttpRouteMatch, at: &str, ck: &mut Checker) {
    if let Some(p) = &m.path {
        let v = p.value.as_deref().unwrap_or("/");
        match p.type_.as_deref() {
            None | Some("PathPrefix" | "Exact") => {
                if !v.starts_with('/') {
                    ck.error(
                        format!("{at}.path.value"),
                        format!("{v:?}: must start with \"/\""),
                    );
                }
            }
            Some("RegularExpression") => {
                if let Err(e) = regex::Regex::new(v) {
                    ck.error(
                        format!("{at}.path.value"),
                        format!("invalid regular expression: {e}"),
                    );
                }
            }
            Some(o) => ck.error(
                format!("{at}.path.type"),
                format!("{o:?}: expected Exact, PathPrefix or RegularExpression"),
            ),
        }
    }
    header_matches(&m.headers, &format!("{at}.headers"), ck);
    header_matches(&m.query_params, &format!("{at}.queryParams"), ck);
    if let Some(method) = &m.method {
        const METHODS: [&str; 9] = [
            "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
        ];
        if !METHODS.contains(&method.as_str()) {
            ck.error(
                format!("{at}.method"),
                format!("{method:?}: expected one of {}", METHODS.join(", ")),
            );
        }
    }
}

fn header_matches(hs: &[gw::HttpHeaderMatch], at: &str, ck: &mut Checker) {
    for (i, h) in hs.iter().enumerate() {
        if h.name.is_empty() {
            ck.error(format!("{at}[{i}].name"), "required");
        }
        match h.type_.as_deref() {
            None | Some("Exact") => {}
            Some("RegularExpression") => {
                if let Err(e) = regex::Regex::new(&h.value) {
                    ck.error(
                        format!("{at}[{i}].value"),
                        format!("invalid regular expression: {e}"),
                    );
                }
            }
            Some(o) => ck.error(
                format!("{at}[{i}].type"),
                format!("{o:?}: expected Exact or RegularExpression"),
            ),
        }
    }
}

/// Filters of a rule (`rule`: all five types) or of a backend / a GRPCRoute
/// (header modifiers and, on a GRPCRoute rule, mirrors).
fn filters(fs: &[gw::HttpRouteFilter], at: &str, rule: bool, ck: &mut Checker) {
    let mut redirect = false;
    let mut rewrite = false;
    for (i, f) in fs.iter().enumerate() {
        let fat = format!("{at}.filters[{i}]");
        let (present, field) = match f.type_.as_str() {
            "RequestHeaderModifier" => {
                (f.request_header_modifier.is_some(), "requestHeaderModifier")
            }
            "ResponseHeaderModifier" => (
                f.response_header_modifier.is_some(),
                "responseHeaderModifier",
            ),
            "RequestRedirect" if rule => (f.request_redirect.is_some(), "requestRedirect"),
            "URLRewrite" if rule => (f.url_rewrite.is_some(), "urlRewrite"),
            "RequestMirror" if !at.contains("backendRefs") => {
                (f.request_mirror.is_some(), "requestMirror")
            }
            other => {
                ck.error(
                    format!("{fat}.type"),
                    format!("{other:?} is not served here (Rudder serves RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect, URLRewrite and RequestMirror on HTTPRoute rules; header modifiers on backends; header modifiers and RequestMirror on GRPCRoute rules)"),
                );
                continue;
            }
        };
        if !present {
            ck.error(
                format!("{fat}.{field}"),
                format!("required with type {}", f.type_),
            );
        }
        let set_count = [
            f.request_header_modifier.is_some(),
            f.response_header_modifier.is_some(),
            f.request_redirect.is_some(),
            f.url_rewrite.is_some(),
            f.request_mirror.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if set_count > 1 {
            ck.error(
                fat.clone(),
                format!("only {field} may be set with type {}", f.type_),
            );
        }
        if let Some(r) = &f.request_redirect {
            redirect = true;
            if let Some(s) = &r.scheme {
                if s != "http" && s != "https" {
                    ck.error(
                        format!("{fat}.requestRedirect.scheme"),
                        format!("{s:?}: expected http or https"),
                    );
                }
            }
            if let Some(c) = r.status_code {
                if c != 301 && c != 302 {
                    ck.error(
                        format!("{fat}.requestRedirect.statusCode"),
                        format!("{c}: expected 301 or 302"),
                    );
                }
            }
            if let Some(p) = r.port {
                if !(1..=65535).contains(&p) {
                    ck.error(
                        format!("{fat}.requestRedirect.port"),
                        format!("{p} is not a port number"),
                    );
                }
            }
            if let Some(p) = &r.path {
                if p.type_ == "ReplacePrefixMatch" {
                    ck.error(
                        format!("{fat}.requestRedirect.path"),
                        "ReplacePrefixMatch in a redirect is not served yet (ReplaceFullPath is)",
                    );
                } else {
                    path_modifier(p, &format!("{fat}.requestRedirect.path"), ck);
                }
            }
        }
        if let Some(r) = &f.url_rewrite {
            rewrite = true;
            if let Some(p) = &r.path {
                path_modifier(p, &format!("{fat}.urlRewrite.path"), ck);
            }
            if let Some(h) = &r.hostname {
                hostname(h, &format!("{fat}.urlRewrite.hostname"), ck);
            }
        }
        if let Some(m) = &f.request_mirror {
            backend_ref(
                &m.backend_ref.backend(),
                &format!("{fat}.requestMirror.backendRef"),
                ck,
            );
            if let Some(p) = m.percent {
                if !(0..=100).contains(&p) {
                    ck.error(
                        format!("{fat}.requestMirror.percent"),
                        format!("{p}: expected 0 to 100"),
                    );
                }
            }
        }
        for (name, hm) in [
            ("requestHeaderModifier", &f.request_header_modifier),
            ("responseHeaderModifier", &f.response_header_modifier),
        ] {
            if let Some(hm) = hm {
                for (j, h) in hm.set.iter().chain(&hm.add).enumerate() {
                    if h.name.is_empty() {
                        ck.error(format!("{fat}.{name}.set[{j}].name"), "required");
                    }
                }
            }
        }
    }
    if redirect && rewrite {
        ck.error(
            format!("{at}.filters"),
            "RequestRedirect and URLRewrite cannot be used together",
        );
    }
}

fn path_modifier(p: &gw::HttpPathModifier, at: &str, ck: &mut Checker) {
    match (
        p.type_.as_str(),
        &p.replace_full_path,
        &p.replace_prefix_match,
    ) {
        ("ReplaceFullPath", Some(_), None) | ("ReplacePrefixMatch", None, Some(_)) => {}
        ("ReplaceFullPath" | "ReplacePrefixMatch", _, _) => ck.error(
            at,
            format!(
                "type {} needs its own field (replaceFullPath or replacePrefixMatch) and only it",
                p.type_
            ),
        ),
        (o, _, _) => ck.error(
            format!("{at}.type"),
            format!("{o:?}: expected ReplaceFullPath or ReplacePrefixMatch"),
        ),
    }
}

fn backend_ref(b: &gw::BackendRef, at: &str, ck: &mut Checker) {
    if b.name.is_empty() {
        ck.error(format!("{at}.name"), "required");
    }
    let is_service = b.group.as_deref().unwrap_or("").is_empty()
        && b.kind.as_deref().unwrap_or("Service") == "Service";
    match b.port {
        None if is_service => ck.error(format!("{at}.port"), "required for a Service"),
        Some(p) if !(1..=65535).contains(&p) => {
            ck.error(format!("{at}.port"), format!("{p} is not a port number"))
        }
        _ => {}
    }
    if let Some(w) = b.weight {
        if !(0..=1_000_000).contains(&w) {
            ck.error(
                format!("{at}.weight"),
                format!("{w}: expected 0 to 1000000"),
            );
        }
    }
}

fn l4_rules(rules: &[gw::L4RouteRule], ck: &mut Checker) {
    for (i, r) in rules.iter().enumerate() {
        for (j, b) in r.backend_refs.iter().enumerate() {
            backend_ref(b, &format!("spec.rules[{i}].backendRefs[{j}]"), ck);
        }
    }
}
