//! Emissary-ingress `getambassador.io/v3alpha1` Mapping → VirtualServices
//! bound to one Gateway of the ingress gateway (Istio's `istio:
//! ingressgateway` pods, port 80 → 8080, where Emissary's default
//! Listener is); the build compiles them like any other VirtualService.
//!
//! ```text
//!  Mappings (ambassador_id none or "default")
//!   ─► Gateway ROOT/emissary-mappings, selector istio: ingressgateway, port 80 HTTP hosts *
//!   ─► per hostname (default *): VirtualService ROOT/HOST-emissary-mappings, hosts [hostname]
//!        one route per group (same hostname, prefix, prefix_regex, headers, regex_headers),
//!        longest prefix first, then more headers:
//!        prefix ─► uri prefix (prefix_regex: uri regex); headers ─► exact; regex_headers ─► regex
//!        rewrite ─► rewrite.uri (default "/"; "" keeps the path)
//!        service [http://]name[.ns][:port] ─► name.ns.svc.<domain>:port (default port 80)
//!        weight ─► a share of the group (weighted Mappings get theirs, the others split the rest)
//!        shadow ─► mirror (weight: its percentage)
//!        timeout_ms ─► timeout (default 3000; 0: none); retry_policy ─► retries (none without it)
//! ```

use std::collections::BTreeMap;

use rudder_config::emissary::{MappingSpec, DEFAULT_AMBASSADOR_ID};
use rudder_model::Diagnostic;
use serde_json::{json, Map, Value};

use super::edge;
use crate::{
    check::Checker,
    object::{Body, Object},
};

/// The Gateway all Mappings are served by, in the root namespace.
pub const GATEWAY_NAME: &str = "emissary-mappings";

/// Emissary's request timeout when a Mapping sets none.
pub const DEFAULT_TIMEOUT_MS: i64 = 3000;

/// Checks a Mapping alone: every error names its field.
pub fn validate(m: &MappingSpec, ck: &mut Checker) {
    if m.prefix.is_empty() {
        ck.error("spec.prefix", "required");
    } else if m.prefix_regex == Some(true) {
        if let Err(e) = regex::Regex::new(&m.prefix) {
            ck.error("spec.prefix", format!("invalid regular expression: {e}"));
        }
    } else if !m.prefix.starts_with('/') {
        ck.error(
            "spec.prefix",
            format!("{:?} must start with \"/\"", m.prefix),
        );
    }
    if let Some(h) = &m.hostname {
        if h != "*" && !edge::valid_host(h) {
            ck.error(
                "spec.hostname",
                format!("invalid hostname {h:?}: \"*\" or a DNS name, optionally with a leading \"*.\" label (no port)"),
            );
        }
    }
    if let Some(r) = &m.rewrite {
        if !r.is_empty() && !r.starts_with('/') {
            ck.error("spec.rewrite", format!("{r:?} must start with \"/\""));
        }
    }
    if let Err(why) = parse_service(&m.service, "default", "cluster.local") {
        ck.error("spec.service", why);
    }
    if let Some(w) = m.weight {
        if !(0..=100).contains(&w) {
            ck.error("spec.weight", format!("{w} is not a percentage (0-100)"));
        }
    }
    for (name, re) in &m.regex_headers {
        if let Err(e) = regex::Regex::new(re) {
            ck.error(
                format!("spec.regex_headers.{name}"),
                format!("invalid regular expression: {e}"),
            );
        }
    }
    if m.timeout_ms.is_some_and(|t| t < 0) {
        ck.error("spec.timeout_ms", "must not be negative");
    }
    if let Some(rp) = &m.retry_policy {
        if rp.num_retries.is_some_and(|n| n < 0) {
            ck.error("spec.retry_policy.num_retries", "must not be negative");
        }
        if let Some(on) = &rp.retry_on {
            if let Err(why) = rudder_model::route::Retries::parse_retry_on(on) {
                ck.error("spec.retry_policy.retry_on", why);
            }
        }
        ck.opt_duration(
            "spec.retry_policy.per_try_timeout",
            rp.per_try_timeout.as_ref(),
        );
    }
}

/// The host and port a Mapping's `service` names: `[http://]name[.ns][:port]`
/// (a name without a dot is in the Mapping's namespace; `name.ns` is a
/// Service of `ns`; a longer name is used as written, `.svc` completed
/// with the domain). `https://` (TLS to the upstream) is not served.
pub fn parse_service(
    service: &str,
    namespace: &str,
    domain: &str,
) -> Result<(String, i64), String> {
    let rest = match service.split_once("://") {
        None => service,
        Some(("http", rest)) => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "{service:?}: not served: scheme {scheme}:// (Rudder serves http:// upstreams)"
            ))
        }
    };
    let (host, port) = match rest.rsplit_once(':') {
        None => (rest, 80),
        Some((h, p)) => match p.parse::<i64>() {
            Ok(n) if (1..=65535).contains(&n) => (h, n),
            _ => return Err(format!("{service:?}: {p:?} is not a port number (1-65535)")),
        },
    };
    if host.is_empty() || !edge::valid_host(host) || host.starts_with("*.") {
        return Err(format!(
            "{service:?}: expected [http://]name[.namespace][:port]"
        ));
    }
    let host = match host.split('.').count() {
        1 => format!("{host}.{namespace}.svc.{domain}"),
        2 => format!("{host}.svc.{domain}"),
        _ if host.ends_with(".svc") => format!("{host}.{domain}"),
        _ => host.to_string(),
    };
    Ok((host, port))
}

/// Whether Rudder serves a Mapping: no `ambassador_id`, or one naming
/// Emissary's default installation.
pub fn served(m: &MappingSpec) -> bool {
    m.ambassador_id
        .as_ref()
        .is_none_or(|ids| ids.ids().contains(&DEFAULT_AMBASSADOR_ID))
}

/// What groups Mappings into one route.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct GroupKey {
    prefix: String,
    regex: bool,
    headers: BTreeMap<String, String>,
    regex_headers: BTreeMap<String, String>,
}

/// The Mappings of one hostname by group, oldest first.
type Groups<'a> = BTreeMap<GroupKey, Vec<(&'a Object, &'a MappingSpec)>>;

/// The Gateway and VirtualServices the served Mappings stand for; a
/// Mapping of another `ambassador_id` is named with a warning.
pub fn translate(
    objects: Vec<&Object>,
    domain: &str,
    gateway_namespace: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<Object> {
    // hostname → group → Mappings, oldest first.
    let mut hosts: BTreeMap<String, Groups<'_>> = BTreeMap::new();
    for o in crate::build::by_age(objects) {
        let Body::Mapping(m) = &o.body else { continue };
        if !served(m) {
            let mut ck = Checker::new(&o.key, &o.origin);
            ck.warn(
                "spec.ambassador_id",
                "no id is \"default\": this Mapping is left to the Emissary installation it names",
            );
            diagnostics.extend(ck.diagnostics);
            continue;
        }
        let key = GroupKey {
            prefix: m.prefix.clone(),
            regex: m.prefix_regex == Some(true),
            headers: m.headers.clone(),
            regex_headers: m.regex_headers.clone(),
        };
        hosts
            .entry(m.hostname.clone().unwrap_or_else(|| "*".into()))
            .or_default()
            .entry(key)
            .or_default()
            .push((o, m));
    }
    let Some(first) = hosts
        .values()
        .flat_map(|g| g.values())
        .flat_map(|v| v.iter())
        .map(|(o, _)| *o)
        .min_by(|a, b| a.meta.creation_timestamp.cmp(&b.meta.creation_timestamp))
    else {
        return Vec::new();
    };
    let mut out = vec![edge::gateway(
        GATEWAY_NAME.into(),
        gateway_namespace,
        first.meta.creation_timestamp.clone(),
        vec![json!({
            "port": {"number": 80, "protocol": "HTTP", "name": format!("http-80-{GATEWAY_NAME}")},
            "hosts": ["*"],
        })],
        &first.origin,
    )];
    // A `*` Mapping serves every host (Emissary attaches it to each Host):
    // its groups join those of each named host; findings are said once.
    let wildcard = hosts.get("*").cloned().unwrap_or_default();
    for (host, mut groups) in hosts {
        let mut routes: Vec<((bool, usize, usize), Value)> = Vec::new();
        let mut origin = None;
        let own: Vec<GroupKey> = groups.keys().cloned().collect();
        if host != "*" {
            for (key, members) in &wildcard {
                groups.entry(key.clone()).or_insert_with(|| members.clone());
            }
        }
        for (key, members) in groups {
            origin.get_or_insert_with(|| members[0].0);
            let mut scratch = Vec::new();
            let findings = if own.contains(&key) {
                &mut *diagnostics
            } else {
                &mut scratch
            };
            if let Some(r) = group_route(&key, &members, domain, findings) {
                let sort = (
                    key.regex,
                    key.prefix.len(),
                    key.headers.len() + key.regex_headers.len(),
                );
                routes.push((sort, r));
            }
        }
        // Longest prefix first, then more headers (Emissary's order); regex
        // prefixes after plain ones.
        routes.sort_by(|a, b| {
            (a.0 .0, std::cmp::Reverse(a.0 .1), std::cmp::Reverse(a.0 .2)).cmp(&(
                b.0 .0,
                std::cmp::Reverse(b.0 .1),
                std::cmp::Reverse(b.0 .2),
            ))
        });
        if routes.is_empty() {
            continue;
        }
        let o = origin.expect("a group");
        out.push(edge::virtual_service(
            format!("{}-{GATEWAY_NAME}", edge::host_label(&host)),
            gateway_namespace,
            first.meta.creation_timestamp.clone(),
            json!({
                "hosts": [host],
                "gateways": [format!("{gateway_namespace}/{GATEWAY_NAME}")],
                "http": routes.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
            }),
            &o.origin,
        ));
    }
    out
}

/// Weights of the routed Mappings of a group, as Emissary splits them: a
/// weighted Mapping gets its weight, the unweighted ones share what is left
/// of 100 equally (the first ones get the remainder).
pub fn group_weights(weights: &[Option<i64>]) -> Vec<i64> {
    let given: i64 = weights.iter().flatten().sum();
    let unweighted = weights.iter().filter(|w| w.is_none()).count() as i64;
    let rest = (100 - given).max(0);
    let mut extra = if unweighted > 0 { rest % unweighted } else { 0 };
    weights
        .iter()
        .map(|w| match w {
            Some(w) => *w,
            None => {
                let share = rest / unweighted + i64::from(extra > 0);
                extra -= 1;
                share
            }
        })
        .collect()
}

/// The route of one group: its settings (rewrite, timeout, retries) come
/// from its oldest routed Mapping; a later one that differs is warned about.
fn group_route(
    key: &GroupKey,
    members: &[(&Object, &MappingSpec)],
    domain: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Value> {
    let (shadows, routed): (Vec<_>, Vec<_>) =
        members.iter().partition(|(_, m)| m.shadow == Some(true));
    let Some((lead_obj, lead)) = routed.first().copied() else {
        for (o, _) in &shadows {
            let mut ck = Checker::new(&o.key, &o.origin);
            ck.warn(
                "spec.shadow",
                "no Mapping routes this prefix, so there is nothing to shadow",
            );
            diagnostics.extend(ck.diagnostics);
        }
        return None;
    };
    let settings = |m: &MappingSpec| (m.rewrite.clone(), m.timeout_ms, m.retry_policy.clone());
    for (o, m) in routed.iter().skip(1) {
        if settings(m) != settings(lead) {
            let mut ck = Checker::new(&o.key, &o.origin);
            ck.warn(
                "spec",
                format!(
                    "rewrite, timeout_ms and retry_policy of a group (same prefix and headers) come from its oldest Mapping, {}; this Mapping's differ and are not used",
                    lead_obj.key
                ),
            );
            diagnostics.extend(ck.diagnostics);
        }
    }
    let dest = |o: &Object, m: &MappingSpec| {
        let (host, port) = parse_service(&m.service, &o.key.namespace, domain).ok()?;
        Some(edge::destination(&host, port))
    };
    let weights = group_weights(&routed.iter().map(|(_, m)| m.weight).collect::<Vec<_>>());
    let route: Vec<Value> = routed
        .iter()
        .zip(weights)
        .filter_map(|((o, m), w)| {
            let mut d = json!({"destination": dest(o, m)?});
            if routed.len() > 1 {
                d["weight"] = json!(w);
            }
            Some(d)
        })
        .collect();
    let mut uri = Map::new();
    uri.insert(
        if key.regex { "regex" } else { "prefix" }.into(),
        json!(key.prefix),
    );
    let mut m = json!({"uri": uri});
    let mut headers: Map<String, Value> = key
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), json!({"exact": v})))
        .collect();
    headers.extend(
        key.regex_headers
            .iter()
            .map(|(k, v)| (k.clone(), json!({"regex": v}))),
    );
    if !headers.is_empty() {
        m["headers"] = Value::Object(headers);
    }
    let mut r = json!({"match": [m], "route": route});
    if let Some((o, s)) = shadows.first() {
        if let Some(d) = dest(o, s) {
            r["mirror"] = d;
            r["mirrorPercentage"] = json!({"value": s.weight.unwrap_or(100) as f64});
        }
    }
    match lead.rewrite.as_deref() {
        Some("") => {}
        Some(rw) => r["rewrite"] = json!({"uri": rw}),
        None => r["rewrite"] = json!({"uri": "/"}),
    }
    match lead.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS) {
        0 => {}
        ms => r["timeout"] = json!(format!("{ms}ms")),
    }
    r["retries"] = match &lead.retry_policy {
        None => edge::no_retries(),
        Some(rp) => {
            let mut v = json!({"attempts": rp.num_retries.unwrap_or(1)});
            if let Some(on) = &rp.retry_on {
                v["retryOn"] = json!(on);
            }
            if let Some(t) = &rp.per_try_timeout {
                v["perTryTimeout"] = json!(t);
            }
            v
        }
    };
    Some(r)
}
