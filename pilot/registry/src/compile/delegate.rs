//! VirtualService delegation, as Istio merges it (its
//! `mergeVirtualServicesIfNeeded`): a root VirtualService's HTTP route with
//! `delegate` is replaced by the HTTP routes of the delegate VirtualService
//! (one without hosts, exported to the root's namespace), each merged with
//! the root route. A delegate route whose matches are not within the root
//! route's is dropped, and so is a root route whose delegate is missing or not
//! exported to it. The merge works on specs, so the merged root compiles
//! like any other VirtualService.
//!
//! ```text
//!  root spec ──┐
//!              ├─► merge (spec) ─► virtual_service::compile ─► RouteTable
//!  delegates ──┘   (delegate hosts resolved in the delegate's namespace)
//! ```

use std::collections::BTreeMap;

use rudder_config::{meta::PresenceMatch, virtual_service as vs, StringMatch};

use super::Ctx;
use crate::check::Checker;

/// A delegate VirtualService (no hosts) by (namespace, name).
pub type Delegates<'a> = BTreeMap<(String, String), &'a vs::VirtualServiceSpec>;

/// Whether a VirtualService is a delegate (Istio: it has no hosts).
pub fn is_delegate(spec: &vs::VirtualServiceSpec) -> bool {
    spec.hosts.is_empty()
}

/// `root` (of namespace `ns`) with its delegating routes replaced by the
/// merged routes of their delegates; a warning names each route dropped.
pub fn merge(
    root: &vs::VirtualServiceSpec,
    ns: &str,
    delegates: &Delegates<'_>,
    cx: &Ctx<'_>,
    ck: &mut Checker,
) -> vs::VirtualServiceSpec {
    let mut http = Vec::new();
    for (i, route) in root.http.iter().enumerate() {
        let Some(d) = &route.delegate else {
            http.push(route.clone());
            continue;
        };
        let at = format!("spec.http[{i}].delegate");
        let dns = d.namespace.clone().unwrap_or_else(|| ns.to_string());
        let Some(delegate) = delegates.get(&(dns.clone(), d.name.clone())) else {
            ck.warn(
                at,
                format!(
                    "no delegate VirtualService {dns}/{} (one without hosts); the route is dropped",
                    d.name
                ),
            );
            continue;
        };
        if !rudder_model::scope::exported_to(&delegate.export_to, &dns, ns) {
            ck.warn(
                at,
                format!(
                    "delegate VirtualService {dns}/{} is not exported to {ns}; the route is dropped",
                    d.name
                ),
            );
            continue;
        }
        for (j, sub) in delegate.http.iter().enumerate() {
            match merge_route(route, resolved(sub, &dns, cx)) {
                Some(r) => http.push(r),
                None => ck.warn(
                    &at,
                    format!(
                        "the matches of route {j} of {dns}/{} are not within this route's; that route is dropped",
                        d.name
                    ),
                ),
            }
        }
    }
    vs::VirtualServiceSpec {
        http,
        ..root.clone()
    }
}

/// A delegate's route with its destination hosts resolved in its own
/// namespace (the merged route compiles in the root's).
fn resolved(r: &vs::HttpRoute, ns: &str, cx: &Ctx<'_>) -> vs::HttpRoute {
    let mut r = r.clone();
    let fix = |d: &mut vs::Destination| {
        if !d.host.trim().is_empty() {
            d.host = cx.resolve(&d.host, ns);
        }
    };
    r.route.iter_mut().for_each(|d| fix(&mut d.destination));
    r.mirror.iter_mut().for_each(fix);
    r.mirrors.iter_mut().for_each(|m| fix(&mut m.destination));
    r
}

/// Istio's `mergeHTTPRoute`: the delegate route's own settings win, the
/// root's fill in what it leaves unset; `None` on a match conflict.
fn merge_route(root: &vs::HttpRoute, mut d: vs::HttpRoute) -> Option<vs::HttpRoute> {
    d.matches = merge_matches(&root.matches, &d.matches)?;
    d.name = match (&root.name, d.name) {
        (Some(r), Some(n)) => Some(format!("{r}-{n}")),
        (r, None) => r.clone(),
        (None, n) => n,
    };
    macro_rules! fill {
        ($($f:ident),*) => {$(
            if d.$f.is_none() {
                d.$f = root.$f.clone();
            }
        )*};
    }
    fill!(
        rewrite,
        direct_response,
        timeout,
        retries,
        fault,
        mirror,
        mirror_percent,
        mirror_percentage,
        cors_policy,
        headers
    );
    if d.mirrors.is_empty() {
        d.mirrors = root.mirrors.clone();
    }
    Some(d)
}

/// Istio's `mergeHTTPMatchRequests`: each delegate match merges with every
/// root match it does not conflict with, and must find one.
fn merge_matches(
    root: &[vs::HttpMatchRequest],
    delegate: &[vs::HttpMatchRequest],
) -> Option<Vec<vs::HttpMatchRequest>> {
    if root.is_empty() {
        return Some(delegate.to_vec());
    }
    if delegate.is_empty() {
        return Some(root.to_vec());
    }
    let mut out = Vec::new();
    for sub in delegate {
        let before = out.len();
        for r in root.iter().filter(|r| !conflicts(r, sub)) {
            out.push(merge_match(r, sub));
        }
        if out.len() == before {
            return None;
        }
    }
    Some(out)
}

fn merge_match(root: &vs::HttpMatchRequest, d: &vs::HttpMatchRequest) -> vs::HttpMatchRequest {
    let mut out = d.clone();
    out.name = match (&root.name, &d.name) {
        (Some(r), Some(n)) => Some(format!("{r}-{n}")),
        (r, None) => r.clone(),
        (None, n) => n.clone(),
    };
    out.uri = d.uri.clone().or_else(|| root.uri.clone());
    out.scheme = d.scheme.clone().or_else(|| root.scheme.clone());
    out.method = d.method.clone().or_else(|| root.method.clone());
    out.authority = d.authority.clone().or_else(|| root.authority.clone());
    let merged = |r: &BTreeMap<String, PresenceMatch>, d: &BTreeMap<String, PresenceMatch>| {
        let mut m = r.clone();
        m.extend(d.clone());
        m
    };
    out.headers = merged(&root.headers, &d.headers);
    out.without_headers = merged(&root.without_headers, &d.without_headers);
    out.query_params = merged(&root.query_params, &d.query_params);
    out.port = d.port.or(root.port);
    let mut labels = root.source_labels.clone();
    labels.extend(d.source_labels.clone());
    out.source_labels = labels;
    out.source_namespace = d
        .source_namespace
        .clone()
        .or_else(|| root.source_namespace.clone());
    if out.gateways.is_empty() {
        out.gateways = root.gateways.clone();
    }
    out
}

/// Istio's `hasConflict`: the delegate match must lie within the root's.
fn conflicts(root: &vs::HttpMatchRequest, leaf: &vs::HttpMatchRequest) -> bool {
    let pairs = [
        (&root.uri, &leaf.uri),
        (&root.scheme, &leaf.scheme),
        (&root.method, &leaf.method),
        (&root.authority, &leaf.authority),
    ];
    if pairs
        .iter()
        .any(|(r, l)| string_conflict(r.as_ref(), l.as_ref()))
    {
        return true;
    }
    let maps = [
        (&root.headers, &leaf.headers),
        (&root.without_headers, &leaf.without_headers),
        (&root.query_params, &leaf.query_params),
    ];
    for (r, l) in maps {
        for (k, lv) in l {
            // An empty match (`{}`, a StringMatch without a type in Istio)
            // conflicts with any match of the same key.
            if let Some(rv) = r.get(k) {
                match (&rv.0, &lv.0) {
                    (Some(a), Some(b)) if !string_conflict(Some(a), Some(b)) => {}
                    _ => return true,
                }
            }
        }
    }
    if root.ignore_uri_case != leaf.ignore_uri_case {
        return true;
    }
    if let (Some(r), Some(l)) = (root.port, leaf.port) {
        if r != l {
            return true;
        }
    }
    if let Some(ns) = &root.source_namespace {
        if leaf.source_namespace.as_ref() != Some(ns) {
            return true;
        }
    }
    if leaf
        .source_labels
        .iter()
        .any(|(k, v)| root.source_labels.get(k).is_some_and(|rv| rv != v))
    {
        return true;
    }
    if !root.gateways.is_empty() && !leaf.gateways.is_empty() {
        return leaf.gateways.iter().any(|g| !root.gateways.contains(g));
    }
    false
}

/// Istio's `stringMatchConflict`: no conflict when either is unset; a regex
/// on either side conflicts with any other match; an exact root takes only
/// the same exact; a prefix root takes prefixes and exacts under it.
fn string_conflict(root: Option<&StringMatch>, leaf: Option<&StringMatch>) -> bool {
    let (Some(root), Some(leaf)) = (root, leaf) else {
        return false;
    };
    match (root, leaf) {
        (StringMatch::Regex(_), _) | (_, StringMatch::Regex(_)) => true,
        (StringMatch::Exact(r), StringMatch::Exact(l)) => r != l,
        (StringMatch::Exact(_), StringMatch::Prefix(_)) => true,
        (StringMatch::Prefix(r), StringMatch::Prefix(l) | StringMatch::Exact(l)) => {
            !l.starts_with(r.as_str())
        }
    }
}
