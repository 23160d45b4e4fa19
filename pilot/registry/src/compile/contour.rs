//! Contour `projectcontour.io/v1` HTTPProxy → an Istio Gateway and a
//! VirtualService, served by the ingress gateway (Istio's `istio:
//! ingressgateway` pods, as an Ingress is); the build compiles what this
//! makes like any other Gateway and VirtualService.
//!
//! ```text
//!  root HTTPProxy ns/NAME (spec.virtualhost; class none|istio|rudder, as an Ingress)
//!   ─► Gateway ROOT/NAME-httpproxy-ns, selector istio: ingressgateway
//!        port 80 HTTP hosts [fqdn] (httpsRedirect when tls.secretName is set, as Contour redirects)
//!        port 443 HTTPS SIMPLE credentialName = tls.secretName  |  443 TLS PASSTHROUGH (tcpproxy)
//!   ─► VirtualService ns/FQDN-httpproxy-NAME, hosts [fqdn]:
//!        routes of the root, then of each include (recursively, across namespaces), each under
//!        the include's conditions: prefixes concatenated (`//` → `/`, empty → `/`, the last
//!        path condition decides prefix or exact), header conditions ANDed;
//!        longest path first (exact before prefix), then more header conditions;
//!        services ─► weighted destinations (unset weights 0 when any is set, else equal);
//!        mirror ─► mirror; pathRewritePolicy ─► rewrite.uri; header policies ─► headers;
//!        timeoutPolicy.response ─► timeout (default Envoy's 15s; infinity: none);
//!        retryPolicy ─► retries (none without it)
//!        tcpproxy (passthrough) ─► tls route on sniHosts [fqdn]
//! ```

use std::collections::{BTreeMap, BTreeSet};

use rudder_config::{
    contour::{self as cc, CLASS_ANNOTATION},
    kube::{IngressClass, INGRESS_CLASS_ANNOTATION},
};
use rudder_model::Diagnostic;
use serde_json::{json, Map, Value};

use super::edge;
use crate::{
    check::Checker,
    object::{Body, Object, ObjectKey},
};

/// The suffix of the Gateway and VirtualService made for an HTTPProxy.
pub const SUFFIX: &str = "httpproxy";

/// Contour's response timeout when a route sets none (Envoy's route default).
pub const DEFAULT_RESPONSE_TIMEOUT: &str = "15s";

/// The retry conditions Contour accepts in `retryOn`.
const RETRY_ON: [&str; 13] = [
    "5xx",
    "gateway-error",
    "reset",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

// ---- one HTTPProxy alone ----

/// Checks an HTTPProxy alone: every error names its field.
pub fn validate(spec: &cc::HttpProxySpec, ck: &mut Checker) {
    if spec.routes.is_empty() && spec.includes.is_empty() && spec.tcpproxy.is_none() {
        ck.error(
            "spec",
            "an HTTPProxy needs at least one route, include or tcpproxy",
        );
    }
    if let Some(vh) = &spec.virtualhost {
        if !edge::valid_host(&vh.fqdn) {
            ck.error(
                "spec.virtualhost.fqdn",
                format!(
                    "invalid fqdn {:?}: a DNS name, optionally with a leading \"*.\" label",
                    vh.fqdn
                ),
            );
        }
        if let Some(t) = &vh.tls {
            let passthrough = t.passthrough == Some(true);
            match (&t.secret_name, passthrough) {
                (Some(_), true) => ck.error(
                    "spec.virtualhost.tls",
                    "set one of secretName and passthrough, not both",
                ),
                (None, false) => ck.error(
                    "spec.virtualhost.tls",
                    "required: secretName or passthrough: true",
                ),
                (Some(s), false) if s.contains('/') => ck.error(
                    "spec.virtualhost.tls.secretName",
                    format!(
                        "{s:?}: not served: a Secret of another namespace (TLSCertificateDelegation); \
                         name a Secret of the ingress gateway's namespace"
                    ),
                ),
                _ => {}
            }
            if passthrough && spec.tcpproxy.is_none() {
                ck.error(
                    "spec.virtualhost.tls.passthrough",
                    "passthrough needs a tcpproxy to send the TLS stream to",
                );
            }
        }
    }
    if let Some(tcp) = &spec.tcpproxy {
        let passthrough = spec
            .virtualhost
            .as_ref()
            .and_then(|v| v.tls.as_ref())
            .is_some_and(|t| t.passthrough == Some(true));
        if !passthrough {
            ck.error(
                "spec.tcpproxy",
                "not served: a tcpproxy behind TLS terminated at the gateway; \
                 Rudder serves tcpproxy with virtualhost.tls.passthrough: true",
            );
        }
        if !spec.routes.is_empty() || !spec.includes.is_empty() {
            ck.error(
                "spec.routes",
                "not served beside a tcpproxy (Contour ignores them)",
            );
        }
        services(&tcp.services, "spec.tcpproxy.services", ck);
        // What only HTTP carries has no meaning for a TCP stream.
        for (i, s) in tcp.services.iter().enumerate() {
            for (field, set) in [
                ("mirror", s.mirror.is_some()),
                ("requestHeadersPolicy", s.request_headers_policy.is_some()),
                ("responseHeadersPolicy", s.response_headers_policy.is_some()),
            ] {
                if set {
                    ck.error(
                        format!("spec.tcpproxy.services[{i}].{field}"),
                        "not served: an HTTP setting on a tcpproxy service",
                    );
                }
            }
        }
    }
    for (i, r) in spec.routes.iter().enumerate() {
        route(r, &format!("spec.routes[{i}]"), spec, ck);
    }
    for (i, inc) in spec.includes.iter().enumerate() {
        let at = format!("spec.includes[{i}]");
        if inc.name.is_empty() {
            ck.error(format!("{at}.name"), "required");
        }
        for (j, c) in inc.conditions.iter().enumerate() {
            if c.exact.is_some() {
                ck.error(
                    format!("{at}.conditions[{j}].exact"),
                    "exact conditions are not allowed in includes (as Contour)",
                );
            }
        }
        conditions(&inc.conditions, &format!("{at}.conditions"), ck);
    }
}

fn route(r: &cc::Route, at: &str, spec: &cc::HttpProxySpec, ck: &mut Checker) {
    conditions(&r.conditions, &format!("{at}.conditions"), ck);
    services(&r.services, &format!("{at}.services"), ck);
    if r.services.iter().filter(|s| s.mirror == Some(true)).count() > 1 {
        ck.error(format!("{at}.services"), "only one service may be a mirror");
    }
    if r.permit_insecure == Some(true) {
        let tls = spec
            .virtualhost
            .as_ref()
            .and_then(|v| v.tls.as_ref())
            .is_some_and(|t| t.secret_name.is_some());
        if tls {
            ck.error(
                format!("{at}.permitInsecure"),
                "not served: plain HTTP beside TLS on one host; the host redirects HTTP to HTTPS",
            );
        }
    }
    if let Some(p) = &r.path_rewrite_policy {
        let at = format!("{at}.pathRewritePolicy.replacePrefix");
        if r.conditions.iter().any(|c| c.exact.is_some()) {
            ck.error(&at, "not served on a route with an exact condition");
        }
        if p.replace_prefix
            .iter()
            .filter(|x| x.prefix.is_none())
            .count()
            > 1
        {
            ck.error(&at, "at most one replacement without a prefix");
        }
        for (i, x) in p.replace_prefix.iter().enumerate() {
            if !x.replacement.starts_with('/') {
                ck.error(
                    format!("{at}[{i}].replacement"),
                    format!("{:?} must start with \"/\"", x.replacement),
                );
            }
            if x.prefix.as_deref().is_some_and(|p| !p.starts_with('/')) {
                ck.error(format!("{at}[{i}].prefix"), "must start with \"/\"");
            }
        }
    }
    for (field, h) in [
        ("requestHeadersPolicy", &r.request_headers_policy),
        ("responseHeadersPolicy", &r.response_headers_policy),
    ] {
        if let Some(h) = h {
            headers_policy(h, &format!("{at}.{field}"), ck);
        }
    }
    if let Some(t) = r
        .timeout_policy
        .as_ref()
        .and_then(|t| t.response.as_deref())
    {
        if !is_infinite(t) {
            ck.duration(format!("{at}.timeoutPolicy.response"), t);
        }
    }
    if let Some(rp) = &r.retry_policy {
        let at = format!("{at}.retryPolicy");
        if rp.count.is_some_and(|c| c < 0) {
            ck.error(format!("{at}.count"), "must not be negative");
        }
        ck.opt_duration(format!("{at}.perTryTimeout"), rp.per_try_timeout.as_ref());
        for (i, on) in rp.retry_on.iter().enumerate() {
            if !RETRY_ON.contains(&on.as_str()) {
                ck.error(
                    format!("{at}.retryOn[{i}]"),
                    format!("{on:?} is not one of {}", RETRY_ON.join(", ")),
                );
            }
        }
        for (i, c) in rp.retriable_status_codes.iter().enumerate() {
            if !(100..=599).contains(c) {
                ck.error(
                    format!("{at}.retriableStatusCodes[{i}]"),
                    format!("{c} is not an HTTP status code"),
                );
            }
        }
    }
}

fn conditions(conds: &[cc::MatchCondition], at: &str, ck: &mut Checker) {
    let mut paths = 0;
    for (i, c) in conds.iter().enumerate() {
        let at = format!("{at}[{i}]");
        let set = [c.prefix.is_some(), c.exact.is_some(), c.header.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if set != 1 {
            ck.error(&at, "set exactly one of prefix, exact and header");
        }
        for (field, v) in [("prefix", &c.prefix), ("exact", &c.exact)] {
            if let Some(v) = v {
                paths += 1;
                if !v.starts_with('/') {
                    ck.error(
                        format!("{at}.{field}"),
                        format!("{v:?} must start with \"/\""),
                    );
                }
            }
        }
        if let Some(h) = &c.header {
            if h.name.is_empty() {
                ck.error(format!("{at}.header.name"), "required");
            }
            let ops = [
                h.present == Some(true),
                h.notpresent == Some(true),
                h.contains.is_some(),
                h.notcontains.is_some(),
                h.exact.is_some(),
                h.notexact.is_some(),
            ];
            if ops.iter().filter(|b| **b).count() != 1 {
                ck.error(
                    format!("{at}.header"),
                    "set exactly one of present, notpresent, contains, notcontains, exact and notexact",
                );
            }
        }
    }
    if paths > 1 {
        ck.error(at, "more than one prefix or exact condition in one block");
    }
}

fn services(list: &[cc::Service], at: &str, ck: &mut Checker) {
    if list.is_empty() {
        ck.error(at, "required: at least one service");
    }
    for (i, s) in list.iter().enumerate() {
        let at = format!("{at}[{i}]");
        if s.name.is_empty() {
            ck.error(format!("{at}.name"), "required");
        }
        if !(1..=65535).contains(&s.port) {
            ck.error(
                format!("{at}.port"),
                format!("{} is not a port number (1-65535)", s.port),
            );
        }
        if s.weight.is_some_and(|w| w < 0) {
            ck.error(format!("{at}.weight"), "must not be negative");
        }
        for (field, h) in [
            ("requestHeadersPolicy", &s.request_headers_policy),
            ("responseHeadersPolicy", &s.response_headers_policy),
        ] {
            if let Some(h) = h {
                headers_policy(h, &format!("{at}.{field}"), ck);
            }
        }
    }
}

fn headers_policy(h: &cc::HeadersPolicy, at: &str, ck: &mut Checker) {
    for (i, s) in h.set.iter().enumerate() {
        if s.name.is_empty() {
            ck.error(format!("{at}.set[{i}].name"), "required");
        }
    }
    for (i, r) in h.remove.iter().enumerate() {
        if r.is_empty() {
            ck.error(format!("{at}.remove[{i}]"), "must not be empty");
        }
    }
}

fn is_infinite(t: &str) -> bool {
    matches!(t, "infinity" | "infinite")
}

// ---- translation (with the other HTTPProxies known) ----

/// A route gathered from a root or an included HTTPProxy.
struct Gathered<'a> {
    /// The namespace of the HTTPProxy that wrote it (its services live there).
    namespace: &'a str,
    /// Include conditions, outermost first, then the route's own.
    conditions: Vec<&'a cc::MatchCondition>,
    route: &'a cc::Route,
    /// Its path, for findings on the root (`spec.routes[1]`, or
    /// `spec.routes[1] of included HTTPProxy ns/name`).
    at: String,
}

/// The Gateways and VirtualServices the served root HTTPProxies stand for,
/// each with its HTTPProxy's origin. Findings (a class that is not
/// Rudder's, a missing or cyclic include, an fqdn claimed twice, an
/// orphaned HTTPProxy) are warnings on the HTTPProxy concerned.
pub fn translate(
    objects: Vec<&Object>,
    classes: &BTreeMap<String, IngressClass>,
    domain: &str,
    gateway_namespace: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<Object> {
    let by_key: BTreeMap<(&str, &str), (&Object, &cc::HttpProxySpec)> = objects
        .iter()
        .filter_map(|o| match &o.body {
            Body::HttpProxy(s) => Some(((o.key.namespace.as_str(), o.key.name.as_str()), (*o, s))),
            _ => None,
        })
        .collect();
    let mut roots: Vec<(&Object, &cc::HttpProxySpec, &cc::VirtualHost)> = Vec::new();
    for o in crate::build::by_age(objects.clone()) {
        let Body::HttpProxy(s) = &o.body else {
            continue;
        };
        let Some(vh) = &s.virtualhost else { continue };
        let annotation = [CLASS_ANNOTATION, INGRESS_CLASS_ANNOTATION]
            .into_iter()
            .find_map(|a| o.meta.annotations.get(a).map(|v| (a, v.as_str())));
        match super::ingress::served_class(annotation, s.ingress_class_name.as_deref(), classes) {
            Ok(()) => roots.push((o, s, vh)),
            Err(class) => {
                let mut ck = Checker::new(&o.key, &o.origin);
                ck.warn(
                    "spec.ingressClassName",
                    format!("class {class} is not Rudder's (istio or rudder): this HTTPProxy is left to its controller"),
                );
                diagnostics.extend(ck.diagnostics);
            }
        }
    }
    let mut fqdns: BTreeMap<&str, Vec<&ObjectKey>> = BTreeMap::new();
    for (o, _, vh) in &roots {
        fqdns.entry(vh.fqdn.as_str()).or_default().push(&o.key);
    }
    let mut out = Vec::new();
    let mut included: BTreeSet<(&str, &str)> = BTreeSet::new();
    for (o, spec, vh) in roots {
        let mut ck = Checker::new(&o.key, &o.origin);
        let claimants = &fqdns[vh.fqdn.as_str()];
        if claimants.len() > 1 {
            let names: Vec<String> = claimants.iter().map(|k| k.to_string()).collect();
            ck.warn(
                "spec.virtualhost.fqdn",
                format!(
                    "{} is claimed by {}: none of them is served (as Contour does)",
                    vh.fqdn,
                    names.join(", ")
                ),
            );
            diagnostics.extend(ck.diagnostics);
            continue;
        }
        let mut routes = Vec::new();
        let mut stack = vec![(o.key.namespace.as_str(), o.key.name.as_str())];
        gather(
            &o.key.namespace,
            spec,
            &[],
            &by_key,
            &mut stack,
            &mut included,
            &mut routes,
            &mut ck,
            diagnostics,
        );
        out.extend(root_objects(
            o,
            spec,
            vh,
            routes,
            domain,
            gateway_namespace,
            &mut ck,
        ));
        diagnostics.extend(ck.diagnostics);
    }
    for ((ns, name), (o, s)) in &by_key {
        if s.virtualhost.is_none() && !included.contains(&(*ns, *name)) {
            let mut ck = Checker::new(&o.key, &o.origin);
            ck.warn(
                "spec",
                "orphaned: no root HTTPProxy includes it, so its routes are not served (as Contour does)",
            );
            diagnostics.extend(ck.diagnostics);
        }
    }
    out
}

/// Collects the routes of `spec` (under `inherited` conditions) and of its
/// includes, depth first, in the order they are written.
#[allow(clippy::too_many_arguments)]
fn gather<'a>(
    namespace: &'a str,
    spec: &'a cc::HttpProxySpec,
    inherited: &[&'a cc::MatchCondition],
    by_key: &BTreeMap<(&'a str, &'a str), (&'a Object, &'a cc::HttpProxySpec)>,
    stack: &mut Vec<(&'a str, &'a str)>,
    included: &mut BTreeSet<(&'a str, &'a str)>,
    out: &mut Vec<Gathered<'a>>,
    root_ck: &mut Checker,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let (this_ns, this_name) = *stack.last().expect("the including HTTPProxy");
    for (j, r) in spec.routes.iter().enumerate() {
        let mut conditions = inherited.to_vec();
        conditions.extend(r.conditions.iter());
        let at = match stack.len() {
            1 => format!("spec.routes[{j}]"),
            _ => format!("spec.routes[{j}] of included HTTPProxy {this_ns}/{this_name}"),
        };
        out.push(Gathered {
            namespace,
            conditions,
            route: r,
            at,
        });
    }
    for (i, inc) in spec.includes.iter().enumerate() {
        let ns = inc.namespace.as_deref().unwrap_or(namespace);
        let at = format!("spec.includes[{i}]");
        let warn =
            |why: String, diagnostics: &mut Vec<Diagnostic>, root_ck: &mut Checker| match by_key
                .get(&(this_ns, this_name))
            {
                Some((o, _)) if stack.len() > 1 => {
                    let mut ck = Checker::new(&o.key, &o.origin);
                    ck.warn(&at, why);
                    diagnostics.extend(ck.diagnostics);
                }
                _ => root_ck.warn(&at, why),
            };
        let Some(((child_ns, child_name), (_, child))) =
            by_key.get_key_value(&(ns, inc.name.as_str()))
        else {
            warn(
                format!(
                    "HTTPProxy {ns}/{} not found: its routes are not served",
                    inc.name
                ),
                diagnostics,
                root_ck,
            );
            continue;
        };
        let (child_ns, child_name): (&'a str, &'a str) = (child_ns, child_name);
        if child.virtualhost.is_some() {
            warn(
                format!(
                    "HTTPProxy {ns}/{} is a root (it has a virtualhost) and cannot be included",
                    inc.name
                ),
                diagnostics,
                root_ck,
            );
            continue;
        }
        if stack.contains(&(child_ns, child_name)) {
            warn(
                format!(
                    "including HTTPProxy {ns}/{} makes a cycle: not served",
                    inc.name
                ),
                diagnostics,
                root_ck,
            );
            continue;
        }
        included.insert((child_ns, child_name));
        let mut conds = inherited.to_vec();
        conds.extend(inc.conditions.iter());
        stack.push((child_ns, child_name));
        gather(
            child_ns,
            child,
            &conds,
            by_key,
            stack,
            included,
            out,
            root_ck,
            diagnostics,
        );
        stack.pop();
    }
}

/// The merged path of a chain of conditions, as Contour merges them:
/// concatenated, `//` collapsed, empty → prefix `/`; the last path
/// condition decides whether it is a prefix or an exact path.
pub fn merged_path(conds: &[&cc::MatchCondition]) -> (String, bool) {
    let mut path = String::new();
    let mut exact = false;
    for c in conds {
        if let Some(p) = &c.prefix {
            path.push_str(p);
            exact = false;
        } else if let Some(e) = &c.exact {
            path.push_str(e);
            exact = true;
        }
    }
    while path.contains("//") {
        path = path.replace("//", "/");
    }
    if path.is_empty() {
        return ("/".into(), false);
    }
    (path, exact)
}

/// A route's match: the merged path and its header conditions.
fn route_match(conds: &[&cc::MatchCondition], ck: &mut Checker, at: &str) -> (Value, usize) {
    let (path, exact) = merged_path(conds);
    let mut m = Map::new();
    m.insert(
        "uri".into(),
        json!({ if exact { "exact" } else { "prefix" }: path }),
    );
    let (mut with, mut without) = (Map::new(), Map::new());
    let mut count = 0;
    for h in conds.iter().filter_map(|c| c.header.as_ref()) {
        count += 1;
        let contains = |v: &str| json!({"regex": format!(".*{}.*", regex::escape(v))});
        let (map, value) = if h.present == Some(true) {
            (&mut with, json!({}))
        } else if h.notpresent == Some(true) {
            (&mut without, json!({}))
        } else if let Some(v) = &h.exact {
            (&mut with, json!({ "exact": v }))
        } else if let Some(v) = &h.notexact {
            (&mut without, json!({ "exact": v }))
        } else if let Some(v) = &h.contains {
            (&mut with, contains(v))
        } else if let Some(v) = &h.notcontains {
            (&mut without, contains(v))
        } else {
            continue;
        };
        let name = h.name.to_ascii_lowercase();
        if map.insert(name.clone(), value).is_some() {
            ck.warn(
                format!("{at}.conditions"),
                format!("header {name}: only one positive and one negative condition per header are served; the later one is used"),
            );
        }
    }
    if !with.is_empty() {
        m.insert("headers".into(), Value::Object(with));
    }
    if !without.is_empty() {
        m.insert("withoutHeaders".into(), Value::Object(without));
    }
    (Value::Object(m), count)
}

fn headers_ops(h: &cc::HeadersPolicy) -> Value {
    let mut ops = Map::new();
    if !h.set.is_empty() {
        let set: Map<String, Value> = h
            .set
            .iter()
            .map(|s| (s.name.clone(), Value::from(s.value.clone())))
            .collect();
        ops.insert("set".into(), Value::Object(set));
    }
    if !h.remove.is_empty() {
        ops.insert("remove".into(), json!(h.remove));
    }
    Value::Object(ops)
}

/// `{request, response}` header operations, `None` when there are none.
fn headers(req: &Option<cc::HeadersPolicy>, resp: &Option<cc::HeadersPolicy>) -> Option<Value> {
    let mut h = Map::new();
    if let Some(r) = req {
        h.insert("request".into(), headers_ops(r));
    }
    if let Some(r) = resp {
        h.insert("response".into(), headers_ops(r));
    }
    (!h.is_empty()).then_some(Value::Object(h))
}

/// Weighted destinations (Contour: unset weights are 0 when any service of
/// the route sets one; all unset, or all 0, is an equal split).
pub fn weighted(services: &[&cc::Service], host: impl Fn(&cc::Service) -> String) -> Vec<Value> {
    let any = services.iter().any(|s| s.weight.unwrap_or(0) > 0);
    services
        .iter()
        .map(|s| {
            let mut d = json!({"destination": edge::destination(&host(s), s.port)});
            if services.len() > 1 {
                d["weight"] = json!(if any { s.weight.unwrap_or(0) } else { 1 });
            }
            if let Some(h) = headers(&s.request_headers_policy, &s.response_headers_policy) {
                d["headers"] = h;
            }
            d
        })
        .collect()
}

/// The VirtualService route of a gathered route (`tls`: the root's host
/// has a certificate, so plain HTTP is redirected).
fn http_route(
    g: &Gathered<'_>,
    tls: bool,
    domain: &str,
    at: &str,
    ck: &mut Checker,
) -> (Value, (bool, usize, usize)) {
    let r = g.route;
    if r.permit_insecure == Some(true) {
        ck.warn(
            format!("{at}.permitInsecure"),
            if tls {
                "not served: plain HTTP beside TLS on one host (an included route); HTTP is redirected to HTTPS"
            } else {
                "no effect: the host has no TLS, so HTTP is served anyway (as in Contour)"
            },
        );
    }
    let (m, header_count) = route_match(&g.conditions, ck, at);
    let (path, exact) = merged_path(&g.conditions);
    let host = |s: &cc::Service| format!("{}.{}.svc.{domain}", s.name, g.namespace);
    let (mirrors, routed): (Vec<&cc::Service>, Vec<&cc::Service>) =
        r.services.iter().partition(|s| s.mirror == Some(true));
    let mut v = json!({"match": [m], "route": weighted(&routed, host)});
    if let Some(mirror) = mirrors.first() {
        v["mirror"] = edge::destination(&host(mirror), mirror.port);
        v["mirrorPercentage"] = json!({"value": 100.0});
    }
    if let Some(p) = &r.path_rewrite_policy {
        let chosen = p
            .replace_prefix
            .iter()
            .find(|x| x.prefix.as_deref() == Some(path.as_str()))
            .or_else(|| p.replace_prefix.iter().find(|x| x.prefix.is_none()));
        if let Some(x) = chosen {
            v["rewrite"] = json!({"uri": x.replacement});
        }
    }
    if let Some(h) = headers(&r.request_headers_policy, &r.response_headers_policy) {
        v["headers"] = h;
    }
    match r
        .timeout_policy
        .as_ref()
        .and_then(|t| t.response.as_deref())
    {
        Some(t) if is_infinite(t) => {}
        Some(t) => v["timeout"] = json!(t),
        None => v["timeout"] = json!(DEFAULT_RESPONSE_TIMEOUT),
    }
    v["retries"] = match &r.retry_policy {
        None => edge::no_retries(),
        Some(rp) => {
            let mut on: Vec<String> = if rp.retry_on.is_empty() {
                vec!["5xx".into()]
            } else {
                rp.retry_on.clone()
            };
            on.extend(rp.retriable_status_codes.iter().map(|c| c.to_string()));
            let mut retries = json!({"attempts": rp.count.unwrap_or(1), "retryOn": on.join(",")});
            if let Some(t) = &rp.per_try_timeout {
                retries["perTryTimeout"] = json!(t);
            }
            retries
        }
    };
    (v, (!exact, path.len(), header_count))
}

/// The Gateway and VirtualService of one served root.
fn root_objects(
    o: &Object,
    spec: &cc::HttpProxySpec,
    vh: &cc::VirtualHost,
    routes: Vec<Gathered<'_>>,
    domain: &str,
    gateway_namespace: &str,
    ck: &mut Checker,
) -> Vec<Object> {
    let (name, ns) = (o.key.name.as_str(), o.key.namespace.as_str());
    let created = o.meta.creation_timestamp.clone();
    let gateway_name = format!("{name}-{SUFFIX}-{ns}");
    let tls = vh.tls.as_ref();
    let mut servers = Vec::new();
    let mut vs = json!({
        "hosts": [vh.fqdn],
        "gateways": [format!("{gateway_namespace}/{gateway_name}")],
    });
    if let Some(tcp) = &spec.tcpproxy {
        servers.push(json!({
            "port": {"number": 443, "protocol": "TLS", "name": format!("tls-443-{SUFFIX}-{name}-{ns}")},
            "hosts": [vh.fqdn],
            "tls": {"mode": "PASSTHROUGH"},
        }));
        let services: Vec<&cc::Service> = tcp.services.iter().collect();
        let route = weighted(&services, |s| format!("{}.{ns}.svc.{domain}", s.name));
        vs["tls"] = json!([{"match": [{"sniHosts": [vh.fqdn], "port": 443}], "route": route}]);
    } else {
        let secret = tls.and_then(|t| t.secret_name.as_deref());
        let mut http = json!({
            "port": {"number": 80, "protocol": "HTTP", "name": format!("http-80-{SUFFIX}-{name}-{ns}")},
            "hosts": [vh.fqdn],
        });
        if let Some(secret) = secret {
            http["tls"] = json!({"httpsRedirect": true});
            servers.push(json!({
                "port": {"number": 443, "protocol": "HTTPS", "name": format!("https-443-{SUFFIX}-{name}-{ns}")},
                "hosts": [vh.fqdn],
                "tls": {"mode": "SIMPLE", "credentialName": secret},
            }));
        }
        servers.insert(0, http);
        let mut sorted: Vec<(Value, (bool, usize, usize), usize)> = routes
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let (v, key) = http_route(g, secret.is_some(), domain, &g.at, ck);
                (v, key, i)
            })
            .collect();
        // Exact before prefix, longer paths first, more header conditions
        // first, then as written.
        sorted.sort_by(|a, b| {
            (
                a.1 .0,
                std::cmp::Reverse(a.1 .1),
                std::cmp::Reverse(a.1 .2),
                a.2,
            )
                .cmp(&(
                    b.1 .0,
                    std::cmp::Reverse(b.1 .1),
                    std::cmp::Reverse(b.1 .2),
                    b.2,
                ))
        });
        vs["http"] = Value::Array(sorted.into_iter().map(|(v, _, _)| v).collect());
    }
    vec![
        edge::gateway(
            gateway_name,
            gateway_namespace,
            created.clone(),
            servers,
            &o.origin,
        ),
        edge::virtual_service(
            format!("{}-{SUFFIX}-{name}", edge::host_label(&vh.fqdn)),
            ns,
            created,
            vs,
            &o.origin,
        ),
    ]
}
