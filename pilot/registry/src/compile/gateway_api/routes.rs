//! HTTPRoute and GRPCRoute rules as VirtualService routes: matches, filters,
//! backends, and the tables (one VirtualService per namespace and host)
//! ordered by the spec's precedence.

use std::collections::{BTreeMap, BTreeSet};

use rudder_config::{gateway_api as gw, meta::ObjectMeta, VirtualServiceSpec};
use serde_json::{json, Value};

use super::{Attached, RouteCx, GATEWAY_SUFFIX};
use crate::{
    check::Checker,
    object::{Body, Object, Origin},
};

/// HTTP routes collected per VirtualService.
#[derive(Default)]
pub(super) struct HttpTables {
    /// (namespace of the VirtualService, host, exportTo `.`) ─► its routes
    gateway: BTreeMap<(String, String), Table>,
    mesh: BTreeMap<(String, String, bool), Table>,
}

#[derive(Default)]
pub(super) struct Table {
    gateways: BTreeSet<String>,
    entries: Vec<Entry>,
    oldest: Option<String>,
    origin: Origin,
}

pub(super) struct Entry {
    key: SortKey,
    route: Value,
}

/// Precedence (Istio's `sortHTTPRoutes`, the spec's rules): exact before
/// prefix before regex, longer first, a method, more headers, more query
/// parameters, then the route's age and name, rule and match order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct SortKey {
    rank: std::cmp::Reverse<u8>,
    len: std::cmp::Reverse<usize>,
    no_method: bool,
    headers: std::cmp::Reverse<usize>,
    query: std::cmp::Reverse<usize>,
    order: (usize, usize, usize, usize),
}

impl Table {
    fn add(&mut self, o: &Object, entry: Entry) {
        let ts = o.meta.creation_timestamp.clone().unwrap_or_default();
        if self.entries.is_empty() || self.oldest.as_ref().is_some_and(|t| &ts < t) {
            if self.entries.is_empty() {
                self.origin = o.origin.clone();
            }
            self.oldest = Some(ts);
        }
        self.entries.push(entry);
    }

    fn into_vs(mut self, name: String, ns: &str, hosts: Vec<String>, export_local: bool) -> Object {
        self.entries.sort_by(|a, b| a.key.cmp(&b.key));
        let mut spec = json!({
            "hosts": hosts,
            "http": self.entries.into_iter().map(|e| e.route).collect::<Vec<_>>(),
        });
        if !self.gateways.is_empty() {
            spec["gateways"] = json!(self.gateways);
        }
        if export_local {
            spec["exportTo"] = json!(["."]);
        }
        let vs: VirtualServiceSpec =
            serde_json::from_value(spec).expect("the VirtualService made for routes parses");
        Object::new(
            ObjectMeta {
                name: Some(name),
                namespace: Some(ns.to_string()),
                creation_timestamp: self.oldest.filter(|t| !t.is_empty()),
                ..ObjectMeta::default()
            },
            Body::VirtualService(vs),
            self.origin,
        )
    }
}

impl HttpTables {
    pub(super) fn into_virtual_services(self) -> Vec<Object> {
        let mut out = Vec::new();
        for ((ns, host), t) in self.gateway {
            let label = host.replace('*', "wildcard").replace('.', "-");
            out.push(t.into_vs(format!("{label}-{GATEWAY_SUFFIX}"), &ns, vec![host], false));
        }
        for ((ns, host, local), t) in self.mesh {
            let label = host.replace('.', "-");
            out.push(t.into_vs(
                format!("{label}-{GATEWAY_SUFFIX}-mesh"),
                &ns,
                vec![host],
                local,
            ));
        }
        out
    }
}

/// One match of a rule, as the VirtualService match (without binding)
/// and its sort key's match part.
pub(super) struct Match {
    value: Value,
    rank: u8,
    len: usize,
    method: bool,
    headers: usize,
    query: usize,
    /// For a PathPrefix (split into an exact and a `/`-ended prefix match):
    /// which half this is, for the prefix rewrite.
    prefix: Option<(String, bool)>,
}

fn header_json(hs: &[gw::HttpHeaderMatch], lowercase: bool) -> Value {
    let mut m = serde_json::Map::new();
    for h in hs {
        let name = if lowercase {
            h.name.to_ascii_lowercase()
        } else {
            h.name.clone()
        };
        // The first of repeated names wins (the spec).
        if m.contains_key(&name) {
            continue;
        }
        let v = match h.type_.as_deref() {
            Some("RegularExpression") => json!({"regex": h.value}),
            _ => json!({"exact": h.value}),
        };
        m.insert(name, v);
    }
    Value::Object(m)
}

pub(super) fn http_matches(m: &gw::HttpRouteMatch) -> Vec<Match> {
    let mut base = json!({});
    if !m.headers.is_empty() {
        base["headers"] = header_json(&m.headers, true);
    }
    if !m.query_params.is_empty() {
        base["queryParams"] = header_json(&m.query_params, false);
    }
    if let Some(method) = &m.method {
        base["method"] = json!({"exact": method});
    }
    let mk = |uri: Value, rank: u8, len: usize, prefix: Option<(String, bool)>| {
        let mut v = base.clone();
        v["uri"] = uri;
        Match {
            value: v,
            rank,
            len,
            method: m.method.is_some(),
            headers: m.headers.len(),
            query: m.query_params.len(),
            prefix,
        }
    };
    let path = m.path.clone().unwrap_or_default();
    let value = path.value.unwrap_or_else(|| "/".into());
    match path.type_.as_deref() {
        Some("Exact") => vec![mk(json!({"exact": value}), 3, value.len(), None)],
        Some("RegularExpression") => vec![mk(json!({"regex": value}), 1, value.len(), None)],
        _ => {
            let trimmed = value.trim_end_matches('/');
            if trimmed.is_empty() {
                vec![mk(json!({"prefix": "/"}), 2, 1, Some(("/".into(), false)))]
            } else {
                // Path elements: /foo matches /foo and /foo/..., never /foobar.
                vec![
                    mk(
                        json!({"exact": trimmed}),
                        2,
                        trimmed.len(),
                        Some((trimmed.into(), true)),
                    ),
                    mk(
                        json!({"prefix": format!("{trimmed}/")}),
                        2,
                        trimmed.len(),
                        Some((format!("{trimmed}/"), false)),
                    ),
                ]
            }
        }
    }
}

pub(super) fn grpc_matches(m: &gw::GrpcRouteMatch) -> Vec<Match> {
    let mut v = json!({});
    if !m.headers.is_empty() {
        v["headers"] = header_json(&m.headers, true);
    }
    let (uri, rank, len) = match &m.method {
        None => (json!({"prefix": "/"}), 2, 1),
        Some(mm) => {
            let regex = mm.type_.as_deref() == Some("RegularExpression");
            match (&mm.service, &mm.method, regex) {
                (Some(s), Some(me), false) => {
                    let p = format!("/{s}/{me}");
                    (json!({"exact": p}), 3, p.len())
                }
                (Some(s), None, false) => {
                    let p = format!("/{s}/");
                    (json!({"prefix": p}), 2, p.len())
                }
                (None, Some(me), false) => (
                    json!({"regex": format!("/[^/]+/{}", regex_escape(me))}),
                    1,
                    me.len(),
                ),
                (s, me, _) => {
                    let p = format!(
                        "/{}/{}",
                        s.as_deref().unwrap_or("[^/]+"),
                        me.as_deref().unwrap_or("[^/]+")
                    );
                    (json!({"regex": p}), 1, p.len())
                }
            }
        }
    };
    v["uri"] = uri;
    vec![Match {
        value: v,
        rank,
        len,
        method: false,
        headers: m.headers.len(),
        query: 0,
        prefix: None,
    }]
}

pub(super) fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(super) fn headers_op(hm: &gw::HttpHeaderFilter) -> Value {
    let mut v = json!({});
    if !hm.set.is_empty() {
        v["set"] = hm
            .set
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), json!(h.value)))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    if !hm.add.is_empty() {
        v["add"] = hm
            .add
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), json!(h.value)))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    if !hm.remove.is_empty() {
        v["remove"] = json!(hm
            .remove
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect::<Vec<_>>());
    }
    v
}

/// The actions of one rule (route or redirect, filters, timeouts), shared
/// by its matches; `None` prefix rewrite fixed per match later.
pub(super) struct Action {
    pub(super) value: Value,
    rewrite_prefix: Option<String>,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn rule_action(
    cx: &RouteCx<'_>,
    o: &Object,
    route_kind: &str,
    at: &str,
    filters: &[gw::HttpRouteFilter],
    backends: &[gw::HttpBackendRef],
    timeouts: Option<&gw::HttpRouteTimeouts>,
    ck: &mut Checker,
) -> Action {
    let mut v = json!({});
    let mut rewrite_prefix = None;
    let mut headers = json!({});
    let mut redirect = None;
    let mut mirrors = Vec::new();
    for (i, f) in filters.iter().enumerate() {
        if let Some(h) = &f.request_header_modifier {
            headers["request"] = headers_op(h);
        }
        if let Some(h) = &f.response_header_modifier {
            headers["response"] = headers_op(h);
        }
        if let Some(r) = &f.request_redirect {
            let mut rd = json!({"redirectCode": r.status_code.unwrap_or(302)});
            if let Some(s) = &r.scheme {
                rd["scheme"] = json!(s);
            }
            if let Some(h) = &r.hostname {
                rd["authority"] = json!(h);
            }
            match (r.port, r.scheme.as_deref()) {
                (Some(p), _) => rd["port"] = json!(p),
                // A scheme without a port: the scheme's well-known port
                // (the spec), which Envoy then leaves out of Location.
                (None, Some("https")) => rd["port"] = json!(443),
                (None, Some("http")) => rd["port"] = json!(80),
                _ => {}
            }
            if let Some(p) = r.path.as_ref().and_then(|p| p.replace_full_path.clone()) {
                rd["uri"] = json!(p);
            }
            redirect = Some(rd);
        }
        if let Some(r) = &f.url_rewrite {
            let mut rw = json!({});
            if let Some(h) = &r.hostname {
                rw["authority"] = json!(h);
            }
            if let Some(p) = &r.path {
                if let Some(full) = &p.replace_full_path {
                    rw["uriRegexRewrite"] = json!({"match": "^/.*$", "rewrite": full});
                } else if let Some(pre) = &p.replace_prefix_match {
                    rewrite_prefix = Some(pre.clone());
                }
            }
            if rw.as_object().is_some_and(|m| !m.is_empty()) || rewrite_prefix.is_some() {
                v["rewrite"] = rw;
            }
        }
        if let Some(m) = &f.request_mirror {
            let mat = format!("{at}.filters[{i}].requestMirror.backendRef");
            if let Some(d) = cx.backend(o, route_kind, &m.backend_ref.backend(), &mat, ck) {
                let mut mv = json!({"destination": d});
                if let Some(p) = m.percent {
                    mv["percentage"] = json!({"value": p as f64});
                }
                mirrors.push(mv);
            }
        }
    }
    if headers.as_object().is_some_and(|m| !m.is_empty()) {
        v["headers"] = headers;
    }
    if !mirrors.is_empty() {
        v["mirrors"] = json!(mirrors);
    }
    if let Some(t) = timeouts {
        if let Some(r) = &t.request {
            if r != "0s" {
                v["timeout"] = json!(r);
            }
        }
        if let Some(b) = &t.backend_request {
            v["retries"] = json!({"attempts": 2, "perTryTimeout": b});
        }
    }
    if let Some(rd) = redirect {
        v["redirect"] = rd;
        return Action {
            value: v,
            rewrite_prefix,
        };
    }
    let mut dests = Vec::new();
    for (j, b) in backends.iter().enumerate() {
        let bat = format!("{at}.backendRefs[{j}]");
        let weight = b.weight.unwrap_or(1);
        let Some(d) = cx.backend(o, route_kind, &b.backend(), &bat, ck) else {
            continue;
        };
        if weight == 0 {
            continue;
        }
        let mut dv = json!({"destination": d, "weight": weight});
        let mut hdrs = json!({});
        for f in &b.filters {
            if let Some(h) = &f.request_header_modifier {
                hdrs["request"] = headers_op(h);
            }
            if let Some(h) = &f.response_header_modifier {
                hdrs["response"] = headers_op(h);
            }
        }
        if hdrs.as_object().is_some_and(|m| !m.is_empty()) {
            dv["headers"] = hdrs;
        }
        dests.push(dv);
    }
    if dests.is_empty() {
        // No usable backend (none given, all weights 0, or all refused):
        // the spec's 500. (With some usable, the refused ones' share goes
        // to the others: a deviation from the spec's 500 for that share.)
        v["directResponse"] = json!({"status": 500});
    } else {
        v["route"] = json!(dests);
    }
    Action {
        value: v,
        rewrite_prefix,
    }
}

pub(super) fn push_http(
    o: &Object,
    order: usize,
    tables: &mut HttpTables,
    attached: &[Attached],
    rules: Vec<(Vec<Match>, Action)>,
) {
    for (ri, (matches, action)) in rules.into_iter().enumerate() {
        for (mi, m) in matches.into_iter().enumerate() {
            let mut route = action.value.clone();
            if let (Some(pre), Some((matched, exact))) = (&action.rewrite_prefix, &m.prefix) {
                let uri = if *exact || matched == "/" && pre.ends_with('/') {
                    pre.clone()
                } else if matched.ends_with('/') && !pre.ends_with('/') {
                    format!("{pre}/")
                } else {
                    pre.clone()
                };
                route["rewrite"]["uri"] = json!(uri);
            }
            let key = |ai: usize| SortKey {
                rank: std::cmp::Reverse(m.rank),
                len: std::cmp::Reverse(m.len),
                no_method: !m.method,
                headers: std::cmp::Reverse(m.headers),
                query: std::cmp::Reverse(m.query),
                order: (order, ri, mi, ai),
            };
            for (ai, a) in attached.iter().enumerate() {
                match a {
                    Attached::Gateway(listeners) => {
                        for (gw_name, hosts) in listeners {
                            let gw_ns = gw_name.split('/').next().unwrap_or("").to_string();
                            for h in hosts {
                                let mut r = route.clone();
                                let mut mv = m.value.clone();
                                mv["gateways"] = json!([gw_name]);
                                r["match"] = json!([mv]);
                                let t = tables
                                    .gateway
                                    .entry((gw_ns.clone(), h.clone()))
                                    .or_default();
                                t.gateways.insert(gw_name.clone());
                                t.add(
                                    o,
                                    Entry {
                                        key: key(ai),
                                        route: r,
                                    },
                                );
                            }
                        }
                    }
                    Attached::Mesh(host, port) => {
                        let mut r = route.clone();
                        let mut mv = m.value.clone();
                        if let Some(p) = port {
                            mv["port"] = json!(p);
                        }
                        r["match"] = json!([mv]);
                        let svc_ns = host.split('.').nth(1).unwrap_or("").to_string();
                        let local = svc_ns != o.key.namespace;
                        let t = tables
                            .mesh
                            .entry((o.key.namespace.clone(), host.to_string(), local))
                            .or_default();
                        t.add(
                            o,
                            Entry {
                                key: key(ai),
                                route: r,
                            },
                        );
                    }
                }
            }
        }
    }
}
