//! DestinationRule → [`DestinationPolicy`].

use std::collections::BTreeMap;

use rudder_config::destination_rule as dr;
use rudder_model::{
    ClientTls, ConnectionPool, DestinationPolicy, HashKey, LoadBalancer, OutlierDetection, RuleRef,
    Subset, TrafficPolicy,
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
            .map(|p| traffic_policy(p, &format!("{at}.trafficPolicy"), ck));
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
    let mut out = TrafficPolicy {
        load_balancer: p
            .load_balancer
            .as_ref()
            .and_then(|lb| load_balancer(lb, &format!("{at}.loadBalancer"), ck)),
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
        let tp = TrafficPolicy {
            load_balancer: pl
                .load_balancer
                .as_ref()
                .and_then(|lb| load_balancer(lb, &format!("{f}.loadBalancer"), ck)),
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
        };
        out.port_level.insert(port, tp);
    }
    out
}

fn load_balancer(
    lb: &dr::LoadBalancerSettings,
    at: &str,
    ck: &mut Checker,
) -> Option<LoadBalancer> {
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
            dr::SimpleLb::Passthrough => {
                ck.warn(
                    format!("{at}.simple"),
                    "PASSTHROUGH is not supported yet; Envoy's default (round robin) is used",
                );
                None
            }
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
                let ttl = ck.opt_duration(format!("{at}.httpCookie.ttl"), c.ttl.as_ref());
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
            if keys.len() != 1 {
                ck.error(at, "exactly one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName is required");
                return None;
            }
            keys.pop().map(|key| LoadBalancer::ConsistentHash {
                key,
                // Istio reads 0 as unset (Envoy's minimum is 1).
                minimum_ring_size: h.minimum_ring_size.filter(|&n| n > 0),
            })
        }
        (None, None) => None,
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
        out.idle_timeout =
            ck.opt_duration(format!("{at}.http.idleTimeout"), h.idle_timeout.as_ref());
    }
    out
}

fn outlier(o: &dr::OutlierDetection, at: &str, ck: &mut Checker) -> OutlierDetection {
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
    }
}

fn tls(t: &dr::ClientTlsSettings, at: &str, ck: &mut Checker) -> Option<ClientTls> {
    Some(match t.mode.unwrap_or(dr::TlsMode::Disable) {
        dr::TlsMode::Disable => ClientTls::Disable,
        dr::TlsMode::IstioMutual => ClientTls::IstioMutual,
        dr::TlsMode::Simple => ClientTls::Simple {
            sni: t.sni.clone(),
            ca_certificates: t.ca_certificates.clone(),
            subject_alt_names: t.subject_alt_names.clone(),
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
            }
        }
    })
}
