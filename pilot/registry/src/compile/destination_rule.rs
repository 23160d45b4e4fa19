//! DestinationRule → [`DestinationPolicy`].

use std::collections::BTreeMap;

use rudder_config::destination_rule as dr;
use std::time::Duration;

use rudder_model::{
    duration, locality, ClientTls, ConnectionPool, DestinationPolicy, H2Upgrade, HashKey,
    LoadBalancer, LocalityLb, OutlierDetection, ProxyProtocol, RuleRef, SlowStart, Subset,
    TcpKeepalive, TrafficPolicy,
};

use super::Ctx;
use crate::{check::Checker, object::ObjectKey};

/// Compiles a DestinationRule; `None` when it has errors.
pub fn compile(
    spec: &dr::DestinationRuleSpec,
    key: &ObjectKey,
    cx: &Ctx<'_>,
    ck: &mut Checker,
) -> Option<DestinationPolicy> {
    if spec.host.trim().is_empty() {
        ck.error("spec.host", "host must not be empty");
    }
    let host = cx.resolve(&spec.host, &key.namespace);
    if cx
        .services
        .is_some_and(|s| !host.contains('*') && !s.contains_key(&host))
    {
        ck.warn("spec.host", format!("no Service backs host {host}"));
    }
    let host_policy = spec
        .traffic_policy
        .as_ref()
        .map(|p| traffic_policy(p, "spec.trafficPolicy", ck))
        .unwrap_or_default();
    let mut subsets = BTreeMap::new();
    for (i, s) in spec.subsets.iter().enumerate() {
        let at = format!("spec.subsets[{i}]");
        if s.name.trim().is_empty() {
            ck.error(format!("{at}.name"), "subset name must not be empty");
            continue;
        }
        let tp = s
            .traffic_policy
            .as_ref()
            .map(|p| Box::new(traffic_policy(p, &format!("{at}.trafficPolicy"), ck)));
        let subset = Subset {
            name: s.name.clone(),
            labels: s.labels.clone(),
            traffic_policy: tp,
        };
        if subsets.insert(s.name.clone(), subset).is_some() {
            ck.error(
                format!("{at}.name"),
                format!("duplicate subset name {}", s.name),
            );
        }
    }
    ck.export_to("spec.exportTo", &spec.export_to);
    if ck.has_errors() {
        return None;
    }
    Some(DestinationPolicy {
        source: RuleRef {
            kind: "DestinationRule".into(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
        },
        host,
        traffic_policy: host_policy,
        subsets,
        export_to: spec.export_to.clone(),
    })
}

/// A traffic policy with its per-port settings.
pub fn traffic_policy(p: &dr::TrafficPolicy, at: &str, ck: &mut Checker) -> TrafficPolicy {
    let lb = p
        .load_balancer
        .as_ref()
        .map(|lb| lb_settings(lb, &format!("{at}.loadBalancer"), ck))
        .unwrap_or_default();
    let mut out = TrafficPolicy {
        load_balancer: lb.algorithm,
        slow_start: lb.slow_start,
        locality_lb: lb.locality_lb,
        connection_pool: p
            .connection_pool
            .as_ref()
            .map(|c| connection_pool(c, &format!("{at}.connectionPool"), ck)),
        outlier_detection: p
            .outlier_detection
            .as_ref()
            .map(|o| outlier(o, &format!("{at}.outlierDetection"), ck)),
        tls: p
            .tls
            .as_ref()
            .and_then(|t| tls(t, &format!("{at}.tls"), ck)),
        port_level: BTreeMap::new(),
        proxy_protocol: p.proxy_protocol.as_ref().map(|pp| match pp.version {
            Some(dr::ProxyProtocolVersion::V2) => ProxyProtocol::V2,
            Some(dr::ProxyProtocolVersion::V1) | None => ProxyProtocol::V1,
        }),
    };
    for (i, pl) in p.port_level_settings.iter().enumerate() {
        let f = format!("{at}.portLevelSettings[{i}]");
        let Some(port) = pl.port.as_ref().map(|p| p.number) else {
            ck.error(format!("{f}.port"), "port is required");
            continue;
        };
        let Some(port) = ck.port(format!("{f}.port.number"), port.into()) else {
            continue;
        };
        let lb = pl
            .load_balancer
            .as_ref()
            .map(|lb| lb_settings(lb, &format!("{f}.loadBalancer"), ck))
            .unwrap_or_default();
        let tp = TrafficPolicy {
            load_balancer: lb.algorithm,
            slow_start: lb.slow_start,
            locality_lb: lb.locality_lb,
            connection_pool: pl
                .connection_pool
                .as_ref()
                .map(|c| connection_pool(c, &format!("{f}.connectionPool"), ck)),
            outlier_detection: pl
                .outlier_detection
                .as_ref()
                .map(|o| outlier(o, &format!("{f}.outlierDetection"), ck)),
            tls: pl
                .tls
                .as_ref()
                .and_then(|t| tls(t, &format!("{f}.tls"), ck)),
            port_level: BTreeMap::new(),
            proxy_protocol: None,
        };
        out.port_level.insert(port, tp);
    }
    out
}

/// The algorithm and the slow start of `loadBalancer`.
fn lb_settings(lb: &dr::LoadBalancerSettings, at: &str, ck: &mut Checker) -> LbSettings {
    let locality_lb = lb
        .locality_lb_setting
        .as_ref()
        .and_then(|l| locality(l, &format!("{at}.localityLbSetting"), ck));
    let algorithm = algorithm(lb, at, ck);
    let slow_start = slow_start(lb, at, ck);
    if slow_start.is_some() {
        // Envoy has slow start for ROUND_ROBIN and LEAST_REQUEST only; Istio
        // drops it silently for the others.
        let simple = matches!(
            algorithm,
            None | Some(LoadBalancer::RoundRobin | LoadBalancer::LeastRequest)
        );
        if !simple {
            ck.error(
                format!("{at}.warmup"),
                "warmup (slow start) applies to ROUND_ROBIN and LEAST_REQUEST only",
            );
        }
    }
    LbSettings {
        algorithm,
        slow_start,
        locality_lb,
    }
}

/// What `loadBalancer` compiles to.
#[derive(Default)]
struct LbSettings {
    algorithm: Option<LoadBalancer>,
    slow_start: Option<SlowStart>,
    locality_lb: Option<LocalityLb>,
}

/// `localityLbSetting`, validated as Istio validates it
/// (`validateLocalityLbSetting`): `distribute` and `failover` are mutually
/// exclusive; each `distribute[].to` weighs 1 to 100 and sums to 100;
/// localities are `region/zone/subzone` with at most one `*`, at the end,
/// and do not overlap; `failover` names two different regions, without `/`
/// or `*`; `failover` with a topology label in `failoverPriority` is refused.
fn locality(l: &dr::LocalityLbSetting, at: &str, ck: &mut Checker) -> Option<LocalityLb> {
    let before = ck.error_count();
    if !l.distribute.is_empty() && !l.failover.is_empty() {
        ck.error(
            format!("{at}.failover"),
            "can not simultaneously specify 'distribute' and 'failover'",
        );
    }
    if !l.failover.is_empty() {
        for (i, label) in l.failover_priority.iter().enumerate() {
            let name = label.split('=').next().unwrap_or("");
            if TOPOLOGY_LABELS.contains(&name) {
                ck.error(
                    format!("{at}.failoverPriority[{i}]"),
                    format!(
                        "can not simultaneously set 'failover' and topology label '{name}' in \
                         'failoverPriority'"
                    ),
                );
            }
        }
    }
    let mut froms = Vec::new();
    for (i, d) in l.distribute.iter().enumerate() {
        let f = format!("{at}.distribute[{i}]");
        froms.push((format!("{f}.from"), d.from.as_str()));
        let mut total = 0u32;
        let mut bad = false;
        for (loc, w) in &d.to {
            if !(1..=100).contains(w) {
                ck.error(
                    format!("{f}.to"),
                    format!("locality weight of {loc} must be in range [1, 100], not {w}"),
                );
                bad = true;
            }
            total = total.saturating_add(*w);
        }
        if !bad && total != 100 {
            ck.error(
                format!("{f}.to"),
                format!("total locality weight {total} != 100"),
            );
        }
        let tos: Vec<(String, &str)> =
            d.to.keys()
                .map(|k| (format!("{f}.to"), k.as_str()))
                .collect();
        localities(&tos, ck);
    }
    localities(&froms, ck);
    for (i, fo) in l.failover.iter().enumerate() {
        let f = format!("{at}.failover[{i}]");
        if fo.from == fo.to {
            ck.error(
                &f,
                "locality lb failover settings must specify different regions",
            );
        }
        for (field, v) in [("from", &fo.from), ("to", &fo.to)] {
            if v.contains('/') {
                ck.error(
                    format!("{f}.{field}"),
                    "locality lb failover only specify region",
                );
            } else if v.contains('*') {
                ck.error(
                    format!("{f}.{field}"),
                    "locality lb failover region should not contain '*' wildcard",
                );
            }
        }
    }
    if ck.error_count() > before {
        return None;
    }
    Some(LocalityLb {
        enabled: l.enabled != Some(false),
        distribute: l
            .distribute
            .iter()
            .map(|d| (d.from.clone(), d.to.clone()))
            .collect(),
        failover: l
            .failover
            .iter()
            .map(|f| (f.from.clone(), f.to.clone()))
            .collect(),
        failover_priority: l.failover_priority.clone(),
    })
}

/// Labels `failoverPriority` may not name together with `failover`
/// (Istio's topology labels: network, cluster, region, zone, subzone).
const TOPOLOGY_LABELS: [&str; 5] = [
    "topology.istio.io/network",
    "topology.istio.io/cluster",
    locality::REGION_LABEL,
    locality::ZONE_LABEL,
    locality::SUBZONE_LABEL,
];

/// Istio's `validateLocalities`: each `region/zone/subzone` pattern has a
/// region, at most one `*` and only at the end, and none covers another.
fn localities(list: &[(String, &str)], ck: &mut Checker) {
    let mut seen: Vec<(&str, &str, &str)> = Vec::new();
    for (at, loc) in list {
        let stars = loc.matches('*').count();
        if stars > 1 || (stars == 1 && !loc.ends_with('*')) {
            ck.error(
                at.as_str(),
                format!(
                    "locality {loc}: wildcard '*' number can not exceed 1 and must be in the end"
                ),
            );
            continue;
        }
        let (region, zone, subzone) = locality::split_pattern(loc);
        if region.is_empty()
            || (zone.is_empty() && !subzone.is_empty())
            || loc.split('/').count() > 3
        {
            ck.error(
                at.as_str(),
                format!("locality {loc}: expected region, region/zone or region/zone/subzone"),
            );
            continue;
        }
        let covers = |a: &str, b: &str| a == "*" || a.is_empty() || a == b;
        let overlap = seen.iter().any(|&(r, z, s)| {
            (covers(r, region) && covers(z, zone) && covers(s, subzone))
                || (covers(region, r) && covers(zone, z) && covers(subzone, s))
        });
        if overlap {
            ck.error(
                at.as_str(),
                format!("locality {loc} overlaps with previously specified ones"),
            );
            continue;
        }
        seen.push((region, zone, subzone));
    }
}

fn slow_start(lb: &dr::LoadBalancerSettings, at: &str, ck: &mut Checker) -> Option<SlowStart> {
    if lb.warmup.is_some() && lb.warmup_duration_secs.is_some() {
        ck.error(
            format!("{at}.warmup"),
            "warmup and warmupDurationSecs are mutually exclusive",
        );
        return None;
    }
    if let Some(d) = &lb.warmup_duration_secs {
        return ck
            .duration(format!("{at}.warmupDurationSecs"), d)
            .map(|window| SlowStart {
                window,
                aggression: None,
                min_weight_percent: None,
            });
    }
    let w = lb.warmup.as_ref()?;
    let Some(d) = &w.duration else {
        ck.error(format!("{at}.warmup.duration"), "duration is required");
        return None;
    };
    let window = ck.duration(format!("{at}.warmup.duration"), d)?;
    let mut number =
        |field: &str, n: &Option<serde_json::Number>, ok: fn(f64) -> bool, why: &str| {
            let n = n.as_ref()?;
            if n.as_f64().is_some_and(ok) {
                Some(n.to_string())
            } else {
                ck.error(format!("{at}.warmup.{field}"), format!("{n} {why}"));
                None
            }
        };
    let aggression = number(
        "aggression",
        &w.aggression,
        |a| a >= 1.0,
        "must be at least 1.0 (1.0 is linear)",
    );
    let min_weight_percent = number(
        "minimumPercent",
        &w.minimum_percent,
        |p| (0.0..=100.0).contains(&p),
        "must be between 0 and 100",
    );
    Some(SlowStart {
        window,
        aggression,
        min_weight_percent,
    })
}

fn algorithm(lb: &dr::LoadBalancerSettings, at: &str, ck: &mut Checker) -> Option<LoadBalancer> {
    match (&lb.simple, &lb.consistent_hash) {
        (Some(_), Some(_)) => {
            ck.error(at, "simple and consistentHash are mutually exclusive");
            None
        }
        (Some(s), None) => match s {
            dr::SimpleLb::Unspecified => None,
            dr::SimpleLb::RoundRobin => Some(LoadBalancer::RoundRobin),
            dr::SimpleLb::LeastRequest | dr::SimpleLb::LeastConn => {
                Some(LoadBalancer::LeastRequest)
            }
            dr::SimpleLb::Random => Some(LoadBalancer::Random),
            dr::SimpleLb::Passthrough => Some(LoadBalancer::Passthrough),
        },
        (None, Some(h)) => {
            let at = format!("{at}.consistentHash");
            let mut keys = Vec::new();
            if let Some(hdr) = &h.http_header_name {
                keys.push(HashKey::Header(hdr.to_ascii_lowercase()));
            }
            if let Some(c) = &h.http_cookie {
                if c.name.is_empty() {
                    ck.error(format!("{at}.httpCookie.name"), "cookie name is required");
                }
                // 0s is a session cookie (Envoy's ttl 0), so no 1ms minimum here.
                let ttl = c.ttl.as_ref().and_then(|t| match duration::parse(t) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        ck.error(format!("{at}.httpCookie.ttl"), e.to_string());
                        None
                    }
                });
                keys.push(HashKey::Cookie {
                    name: c.name.clone(),
                    path: c.path.clone(),
                    ttl,
                });
            }
            if h.use_source_ip == Some(true) {
                keys.push(HashKey::SourceIp);
            }
            if let Some(q) = &h.http_query_parameter_name {
                keys.push(HashKey::QueryParameter(q.clone()));
            }
            // Istio accepts no key at all (Envoy then hashes nothing: random).
            if keys.len() > 1 {
                ck.error(at, "only one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName may be set");
                return None;
            }
            if h.ring_hash.is_some() && h.maglev.is_some() {
                ck.error(at, "ringHash and maglev are mutually exclusive");
                return None;
            }
            if (h.ring_hash.is_some() || h.maglev.is_some()) && h.minimum_ring_size.is_some() {
                ck.error(
                    format!("{at}.minimumRingSize"),
                    "the deprecated minimumRingSize cannot be combined with ringHash or maglev \
                     (use ringHash.minimumRingSize)",
                );
                return None;
            }
            let table_size = h.maglev.as_ref().map(|m| m.table_size.unwrap_or(0));
            if let Some(n) = table_size {
                // Istio's checks (Envoy's prime test: 1, 2, 3 pass).
                let why = if n == 0 {
                    Some("tableSize must be set for maglev".to_string())
                } else if n >= MAX_MAGLEV_TABLE {
                    Some(format!(
                        "tableSize {n} must be less than {MAX_MAGLEV_TABLE}"
                    ))
                } else if !is_prime(n) {
                    Some(format!("tableSize {n} must be a prime number"))
                } else {
                    None
                };
                if let Some(why) = why {
                    ck.error(format!("{at}.maglev.tableSize"), why);
                    return None;
                }
            }
            let ring = h
                .ring_hash
                .as_ref()
                .map_or(h.minimum_ring_size, |r| r.minimum_ring_size);
            Some(LoadBalancer::ConsistentHash {
                key: keys.pop(),
                // Istio reads 0 as unset (Envoy's minimum is 1).
                minimum_ring_size: ring.filter(|&n| n > 0),
                maglev: table_size.map(Some),
            })
        }
        (None, None) => None,
    }
}

/// Maglev tables must be smaller (Istio's and Envoy's bound).
const MAX_MAGLEV_TABLE: u64 = 5_000_011;

/// Envoy's (and Istio's copy of its) prime test: 1 counts as prime.
fn is_prime(n: u64) -> bool {
    n != 0
        && (n < 4
            || (2..)
                .take_while(|d| d * d <= n)
                .all(|d| !n.is_multiple_of(d)))
}

/// A keepalive duration in whole seconds, as Envoy counts them.
fn keepalive_secs(ck: &mut Checker, field: String, s: Option<&String>) -> Option<u32> {
    let d = ck.opt_duration(field.clone(), s)?;
    if d < Duration::from_secs(1) || d.subsec_nanos() != 0 {
        ck.error(
            field,
            format!("{d:?}: keepalive times are whole seconds (Envoy's unit), at least 1s"),
        );
        return None;
    }
    match u32::try_from(d.as_secs()) {
        Ok(n) => Some(n),
        Err(_) => {
            ck.error(field, "too large");
            None
        }
    }
}

fn connection_pool(c: &dr::ConnectionPoolSettings, at: &str, ck: &mut Checker) -> ConnectionPool {
    let mut out = ConnectionPool::default();
    if let Some(t) = &c.tcp {
        out.max_connections = ck.count(format!("{at}.tcp.maxConnections"), t.max_connections);
        out.connect_timeout = ck.opt_duration(
            format!("{at}.tcp.connectTimeout"),
            t.connect_timeout.as_ref(),
        );
        out.max_connection_duration = ck.opt_duration(
            format!("{at}.tcp.maxConnectionDuration"),
            t.max_connection_duration.as_ref(),
        );
        // 0s turns the timeout off (Istio skips its 1ms minimum for it).
        out.tcp_idle_timeout = match t.idle_timeout.as_deref().map(duration::parse) {
            Some(Ok(d)) if d.is_zero() => Some(d),
            _ => ck.opt_duration(format!("{at}.tcp.idleTimeout"), t.idle_timeout.as_ref()),
        };
        out.idle_timeout = out.tcp_idle_timeout;
        out.tcp_keepalive = t.tcp_keepalive.as_ref().map(|k| {
            let f = format!("{at}.tcp.tcpKeepalive");
            TcpKeepalive {
                probes: k.probes.filter(|&n| n > 0),
                time_secs: keepalive_secs(ck, format!("{f}.time"), k.time.as_ref()),
                interval_secs: keepalive_secs(ck, format!("{f}.interval"), k.interval.as_ref()),
            }
        });
    }
    if let Some(h) = &c.http {
        out.http1_max_pending_requests = ck.count(
            format!("{at}.http.http1MaxPendingRequests"),
            h.http1_max_pending_requests,
        );
        out.http2_max_requests =
            ck.count(format!("{at}.http.http2MaxRequests"), h.http2_max_requests);
        out.max_requests_per_connection = ck.count(
            format!("{at}.http.maxRequestsPerConnection"),
            h.max_requests_per_connection,
        );
        out.max_retries = ck.count(format!("{at}.http.maxRetries"), h.max_retries);
        // Istio: the HTTP idle timeout wins over the TCP one.
        if let Some(d) = ck.opt_duration(format!("{at}.http.idleTimeout"), h.idle_timeout.as_ref())
        {
            out.idle_timeout = Some(d);
        }
        out.h2_upgrade = match h.h2_upgrade_policy {
            Some(dr::H2UpgradePolicy::Upgrade) => Some(H2Upgrade::Upgrade),
            Some(dr::H2UpgradePolicy::DoNotUpgrade) => Some(H2Upgrade::DoNotUpgrade),
            Some(dr::H2UpgradePolicy::Default) | None => None,
        };
        out.use_client_protocol = h.use_client_protocol == Some(true);
        if out.use_client_protocol && out.h2_upgrade == Some(H2Upgrade::Upgrade) {
            ck.error(
                format!("{at}.http.useClientProtocol"),
                "useClientProtocol must not be true when h2UpgradePolicy is UPGRADE",
            );
        }
        out.max_concurrent_streams = ck
            .count(
                format!("{at}.http.maxConcurrentStreams"),
                h.max_concurrent_streams,
            )
            .filter(|&n| n > 0);
    }
    out
}

fn outlier(o: &dr::OutlierDetection, at: &str, ck: &mut Checker) -> OutlierDetection {
    if o.consecutive_local_origin_failures.is_some()
        && o.split_external_local_origin_errors != Some(true)
    {
        ck.error(
            format!("{at}.consecutiveLocalOriginFailures"),
            "counts only with splitExternalLocalOriginErrors: true (without the split, \
             local-origin failures count as 5xx errors)",
        );
    }
    let c5 = ck.count(
        format!("{at}.consecutive5xxErrors"),
        o.consecutive_5xx_errors,
    );
    let legacy = ck.count(format!("{at}.consecutiveErrors"), o.consecutive_errors);
    OutlierDetection {
        consecutive_5xx_errors: c5.or(legacy),
        consecutive_gateway_errors: ck.count(
            format!("{at}.consecutiveGatewayErrors"),
            o.consecutive_gateway_errors,
        ),
        interval: ck.opt_duration(format!("{at}.interval"), o.interval.as_ref()),
        base_ejection_time: ck.opt_duration(
            format!("{at}.baseEjectionTime"),
            o.base_ejection_time.as_ref(),
        ),
        max_ejection_percent: ck
            .int_percent(format!("{at}.maxEjectionPercent"), o.max_ejection_percent),
        min_health_percent: ck.int_percent(format!("{at}.minHealthPercent"), o.min_health_percent),
        split_external_local_origin_errors: o.split_external_local_origin_errors == Some(true),
        consecutive_local_origin_failures: ck.count(
            format!("{at}.consecutiveLocalOriginFailures"),
            o.consecutive_local_origin_failures,
        ),
    }
}

fn tls(t: &dr::ClientTlsSettings, at: &str, ck: &mut Checker) -> Option<ClientTls> {
    if let Some(name) = &t.credential_name {
        return credential_tls(t, name, at, ck);
    }
    let mode = t.mode.unwrap_or(dr::TlsMode::Disable);
    let insecure_skip_verify = t.insecure_skip_verify == Some(true);
    if insecure_skip_verify && !matches!(mode, dr::TlsMode::Simple | dr::TlsMode::Mutual) {
        ck.error(
            format!("{at}.insecureSkipVerify"),
            "insecureSkipVerify applies to SIMPLE and MUTUAL modes only",
        );
        return None;
    }
    Some(match mode {
        dr::TlsMode::Disable => ClientTls::Disable,
        dr::TlsMode::IstioMutual => ClientTls::IstioMutual,
        dr::TlsMode::Simple => ClientTls::Simple {
            sni: t.sni.clone(),
            ca_certificates: t.ca_certificates.clone(),
            subject_alt_names: t.subject_alt_names.clone(),
            insecure_skip_verify,
        },
        dr::TlsMode::Mutual => {
            let (Some(cert), Some(key)) = (&t.client_certificate, &t.private_key) else {
                ck.error(at, "MUTUAL mode requires clientCertificate and privateKey");
                return None;
            };
            ClientTls::Mutual {
                client_certificate: cert.clone(),
                private_key: key.clone(),
                ca_certificates: t.ca_certificates.clone(),
                sni: t.sni.clone(),
                subject_alt_names: t.subject_alt_names.clone(),
                insecure_skip_verify,
            }
        }
    })
}

/// SIMPLE or MUTUAL with `credentialName`: the certificate, key and CA come
/// from the Secret over SDS (Istio: they override the file fields).
fn credential_tls(
    t: &dr::ClientTlsSettings,
    name: &str,
    at: &str,
    ck: &mut Checker,
) -> Option<ClientTls> {
    let mutual = match t.mode.unwrap_or(dr::TlsMode::Disable) {
        dr::TlsMode::Simple => false,
        dr::TlsMode::Mutual => true,
        other => {
            ck.error(
                format!("{at}.credentialName"),
                format!("credentialName applies to SIMPLE and MUTUAL modes only, not {other:?}"),
            );
            return None;
        }
    };
    let r = rudder_model::secret::CredentialRef::parse(name);
    if r.name.is_empty() || r.namespace.as_deref() == Some("") || r.name.contains('/') {
        ck.error(
            format!("{at}.credentialName"),
            format!("{name:?} is not a Secret name (NAME or NAMESPACE/NAME)"),
        );
        return None;
    }
    Some(ClientTls::Credential {
        credential_name: name.to_string(),
        mutual,
        sni: t.sni.clone(),
        subject_alt_names: t.subject_alt_names.clone(),
        insecure_skip_verify: t.insecure_skip_verify == Some(true),
    })
}

/// Every `credentialName` of a DestinationRule with its field path.
pub fn credential_names(s: &dr::DestinationRuleSpec) -> Vec<(String, String)> {
    fn of_policy(p: &dr::TrafficPolicy, at: &str, out: &mut Vec<(String, String)>) {
        let tls = p.tls.iter().map(|t| (format!("{at}.tls"), t));
        let ports = p
            .port_level_settings
            .iter()
            .enumerate()
            .filter_map(|(i, pl)| {
                pl.tls
                    .as_ref()
                    .map(|t| (format!("{at}.portLevelSettings[{i}].tls"), t))
            });
        for (f, t) in tls.chain(ports) {
            if let Some(n) = &t.credential_name {
                out.push((format!("{f}.credentialName"), n.clone()));
            }
        }
    }
    let mut out = Vec::new();
    if let Some(p) = &s.traffic_policy {
        of_policy(p, "spec.trafficPolicy", &mut out);
    }
    for (i, sub) in s.subsets.iter().enumerate() {
        if let Some(p) = &sub.traffic_policy {
            of_policy(p, &format!("spec.subsets[{i}].trafficPolicy"), &mut out);
        }
    }
    out
}
