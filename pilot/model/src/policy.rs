//! Destination policies (DestinationRule, and v1alpha2 DestinationPolicy):
//! subsets and traffic policy for a host.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use crate::{
    route::RuleRef,
    service::{Hostname, Labels},
};

/// Load balancing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LoadBalancer {
    /// Round robin (Envoy's default).
    RoundRobin,
    /// Least request.
    LeastRequest,
    /// Random.
    Random,
    /// Consistent hashing on a key.
    ConsistentHash {
        /// What is hashed (`None`: no hash policy on routes, so Envoy
        /// hashes randomly, as Istio leaves it).
        key: Option<HashKey>,
        /// `minimumRingSize` (`None`: Istio's 1024), for the ring hash.
        minimum_ring_size: Option<u64>,
        /// `maglev`: Maglev instead of the ring hash, with its table size
        /// (`Some(None)`: Envoy's 65537).
        maglev: Option<Option<u64>>,
    },
    /// `PASSTHROUGH`: an ORIGINAL_DST cluster, to wherever the client connected.
    Passthrough,
}

/// Slow start of new endpoints (`warmupDurationSecs`, `warmup`): Envoy's
/// `slow_start_config` of ROUND_ROBIN and LEAST_REQUEST.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SlowStart {
    /// Window.
    pub window: Duration,
    /// Ramp curve (`aggression`), as its decimal text (`None`: linear).
    pub aggression: Option<String>,
    /// Starting weight in percent (`minimumPercent`), as its decimal text.
    pub min_weight_percent: Option<String>,
}

/// `loadBalancer.localityLbSetting`: locality load balancing relative to
/// the client proxy's locality (Istio's `ApplyLocalityLoadBalancer`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LocalityLb {
    /// `enabled` (absent: enabled). A disabled setting still replaces the
    /// host's at a port or subset.
    pub enabled: bool,
    /// `distribute`: from a locality pattern, weights (summing to 100) per
    /// destination locality pattern.
    pub distribute: Vec<(String, BTreeMap<String, u32>)>,
    /// `failover`: (from region, to region).
    pub failover: Vec<(String, String)>,
    /// `failoverPriority`: labels (`label` or `label=value`) ordering
    /// priorities.
    pub failover_priority: Vec<String>,
}

/// `tcp.tcpKeepalive` (seconds, as Envoy counts them; `None`: OS default).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpKeepalive {
    /// `probes`.
    pub probes: Option<u32>,
    /// `time`, in seconds.
    pub time_secs: Option<u32>,
    /// `interval`, in seconds.
    pub interval_secs: Option<u32>,
}

/// `http.h2UpgradePolicy` (`DEFAULT` is the mesh's: no upgrade).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum H2Upgrade {
    /// `UPGRADE`: HTTP/2 upstream, whatever the port's protocol.
    Upgrade,
    /// `DO_NOT_UPGRADE`.
    DoNotUpgrade,
}

/// Upstream PROXY protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProxyProtocol {
    /// Text header.
    V1,
    /// Binary header.
    V2,
}

/// What consistent hashing hashes on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HashKey {
    /// A request header.
    Header(String),
    /// An HTTP cookie (generated when missing if `ttl` is set).
    Cookie {
        /// Cookie name.
        name: String,
        /// Cookie path.
        path: Option<String>,
        /// Cookie TTL.
        ttl: Option<Duration>,
    },
    /// The source IP.
    SourceIp,
    /// A query parameter.
    QueryParameter(String),
}

/// Connection pool limits (Envoy circuit breakers and protocol options).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConnectionPool {
    /// `tcp.maxConnections`.
    pub max_connections: Option<u32>,
    /// `tcp.connectTimeout`.
    pub connect_timeout: Option<Duration>,
    /// `http.http1MaxPendingRequests`.
    pub http1_max_pending_requests: Option<u32>,
    /// `http.http2MaxRequests`.
    pub http2_max_requests: Option<u32>,
    /// `http.maxRequestsPerConnection`.
    pub max_requests_per_connection: Option<u32>,
    /// `http.maxRetries`.
    pub max_retries: Option<u32>,
    /// `http.idleTimeout`, else `tcp.idleTimeout`.
    pub idle_timeout: Option<Duration>,
    /// `tcp.idleTimeout` alone (the `tcp_proxy` of the host's TCP ports).
    pub tcp_idle_timeout: Option<Duration>,
    /// `tcp.maxConnectionDuration`.
    pub max_connection_duration: Option<Duration>,
    /// `tcp.tcpKeepalive`.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// `http.h2UpgradePolicy`.
    pub h2_upgrade: Option<H2Upgrade>,
    /// `http.useClientProtocol`.
    pub use_client_protocol: bool,
    /// `http.maxConcurrentStreams` (HTTP/2 clusters).
    pub max_concurrent_streams: Option<u32>,
}

/// Outlier detection (passive health checking).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct OutlierDetection {
    /// `consecutive5xxErrors` (or the older `consecutiveErrors`).
    pub consecutive_5xx_errors: Option<u32>,
    /// `consecutiveGatewayErrors`.
    pub consecutive_gateway_errors: Option<u32>,
    /// `interval`.
    pub interval: Option<Duration>,
    /// `baseEjectionTime`.
    pub base_ejection_time: Option<Duration>,
    /// `maxEjectionPercent`.
    pub max_ejection_percent: Option<u32>,
    /// `minHealthPercent`.
    pub min_health_percent: Option<u32>,
    /// `splitExternalLocalOriginErrors`.
    pub split_external_local_origin_errors: bool,
    /// `consecutiveLocalOriginFailures` (with the split).
    pub consecutive_local_origin_failures: Option<u32>,
}

/// Client-side TLS towards a destination (DestinationRule `trafficPolicy.tls`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClientTls {
    /// Plaintext.
    Disable,
    /// TLS, server verified by CA file if given.
    Simple {
        /// SNI.
        sni: Option<String>,
        /// CA certificates file.
        ca_certificates: Option<String>,
        /// Accepted server SANs.
        subject_alt_names: Vec<String>,
        /// `insecureSkipVerify`: no CA or SAN check.
        insecure_skip_verify: bool,
    },
    /// Mutual TLS with the given files.
    Mutual {
        /// Client certificate file.
        client_certificate: String,
        /// Private key file.
        private_key: String,
        /// CA certificates file.
        ca_certificates: Option<String>,
        /// SNI.
        sni: Option<String>,
        /// Accepted server SANs.
        subject_alt_names: Vec<String>,
        /// `insecureSkipVerify`: no CA or SAN check.
        insecure_skip_verify: bool,
    },
    /// Mutual TLS with the mesh identity.
    IstioMutual,
    /// SIMPLE or MUTUAL with `credentialName`: the client certificate (MUTUAL)
    /// and the CA come over SDS from pilot (`kubernetes://NAME`,
    /// `kubernetes://NAME-cacert`), read from the proxy's own namespace.
    Credential {
        /// `credentialName` as written (`NAME` or `NAMESPACE/NAME`).
        credential_name: String,
        /// MUTUAL (present the Secret's certificate) rather than SIMPLE.
        mutual: bool,
        /// SNI.
        sni: Option<String>,
        /// Accepted server SANs.
        subject_alt_names: Vec<String>,
        /// `insecureSkipVerify`: no CA or SAN check.
        insecure_skip_verify: bool,
    },
}

/// Traffic policy of a host, subset or port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TrafficPolicy {
    /// Load balancer.
    pub load_balancer: Option<LoadBalancer>,
    /// Slow start; part of the load balancer settings (an override of
    /// `loadBalancer` replaces both).
    pub slow_start: Option<SlowStart>,
    /// Locality load balancing; part of the load balancer settings too.
    pub locality_lb: Option<LocalityLb>,
    /// Connection pool.
    pub connection_pool: Option<ConnectionPool>,
    /// Outlier detection.
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS.
    pub tls: Option<ClientTls>,
    /// Per-port overrides (each field replaces the host-level one).
    pub port_level: BTreeMap<u16, TrafficPolicy>,
    /// Upstream PROXY protocol (host and subset level only, as Istio).
    pub proxy_protocol: Option<ProxyProtocol>,
}

impl TrafficPolicy {
    /// The policy for one port: port-level fields override host-level ones.
    pub fn for_port(&self, port: u16) -> TrafficPolicy {
        let mut merged = TrafficPolicy {
            port_level: BTreeMap::new(),
            ..self.clone()
        };
        if let Some(p) = self.port_level.get(&port) {
            if p.load_balancer.is_some() || p.slow_start.is_some() || p.locality_lb.is_some() {
                merged.load_balancer = p.load_balancer.clone();
                merged.slow_start = p.slow_start.clone();
                merged.locality_lb = p.locality_lb.clone();
            }
            if p.connection_pool.is_some() {
                merged.connection_pool = p.connection_pool.clone();
            }
            if p.outlier_detection.is_some() {
                merged.outlier_detection = p.outlier_detection.clone();
            }
            if p.tls.is_some() {
                merged.tls = p.tls.clone();
            }
        }
        merged
    }

    /// The locality load balancing in effect (set and enabled).
    pub fn locality_lb(&self) -> Option<&LocalityLb> {
        self.locality_lb.as_ref().filter(|l| l.enabled)
    }

    /// `subset` (if any) layered over `self`, as Istio merges them: a subset's
    /// policy fields replace the host's, port by port.
    pub fn merged_with(&self, subset: Option<&TrafficPolicy>, port: u16) -> TrafficPolicy {
        let mut out = self.for_port(port);
        if let Some(s) = subset.map(|s| s.for_port(port)) {
            if s.load_balancer.is_some() || s.slow_start.is_some() || s.locality_lb.is_some() {
                out.load_balancer = s.load_balancer;
                out.slow_start = s.slow_start;
                out.locality_lb = s.locality_lb;
            }
            if s.connection_pool.is_some() {
                out.connection_pool = s.connection_pool;
            }
            if s.outlier_detection.is_some() {
                out.outlier_detection = s.outlier_detection;
            }
            if s.tls.is_some() {
                out.tls = s.tls;
            }
            if s.proxy_protocol.is_some() {
                out.proxy_protocol = s.proxy_protocol;
            }
        }
        out
    }
}

/// A named subset of a host's endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Subset {
    /// Name (`v1`).
    pub name: String,
    /// Endpoint labels selecting it.
    pub labels: Labels,
    /// Subset-level policy, boxed: a `TrafficPolicy` is about 600 bytes, and
    /// a `BTreeMap` node holds 11 subsets whether or not they have one (1000
    /// DestinationRules of three subsets kept 7.7 MB of node space per copy).
    pub traffic_policy: Option<Box<TrafficPolicy>>,
}

/// Everything a DestinationRule (or DestinationPolicy) says about a host.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DestinationPolicy {
    /// Where it came from.
    pub source: RuleRef,
    /// Host FQDN.
    pub host: Hostname,
    /// Host-level policy.
    pub traffic_policy: TrafficPolicy,
    /// Subsets by name.
    pub subsets: BTreeMap<String, Subset>,
    /// `exportTo` (empty = all namespaces).
    pub export_to: Vec<String>,
}

/// The policy of a pool for `host`: its own, else the most specific
/// wildcard host covering it (Istio's `MostSpecificHostMatch`). Wildcard
/// hosts sort first (`*` precedes letters and digits), so a pool without
/// them costs one lookup.
fn most_specific<'a>(pool: &'a PolicyMap, host: &str) -> Option<&'a DestinationPolicy> {
    pool.get(host)
        .or_else(|| {
            pool.iter()
                .take_while(|(k, _)| k.starts_with('*'))
                .filter(|(k, _)| crate::scope::host_matches(k, host))
                .max_by_key(|(k, _)| k.len())
                .map(|(_, p)| p)
        })
        .map(|p| &**p)
}

/// Policies by host. A rule usually sits in several maps (a namespace's
/// local and exported pools, the registry's merged map), so each is one
/// shared allocation, copied only when a later rule of its host merges in
/// (`Arc::make_mut`).
pub type PolicyMap = BTreeMap<Hostname, Arc<DestinationPolicy>>;

/// DestinationPolicies indexed as Istio looks them up for a client
/// (`PushContext.destinationRule`): the client's namespace first, then the
/// service's namespace, then the root namespace. A rule exported only to `.`
/// lives in its namespace's local pool alone, so it never hides or changes
/// another namespace's rule.
///
/// ```text
///  client ns ≠ root:  local[client] ─► exported[service ns] ─► exported[root]
///  client ns = root:  local[root] (private rules only) ─► exported[service ns] ─► exported[root]
///  (exported pools answer only clients their merged exportTo names; in each
///   pool the host's own rule, else the most specific wildcard rule covering it)
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DestinationRules {
    /// Per namespace, per host: the rules its proxies see first (exported to
    /// `.`, `*` or the namespace itself; in the root namespace only the
    /// rules exported to `.` alone), merged oldest first.
    pub local: BTreeMap<String, PolicyMap>,
    /// Per namespace, per host: the rules exported beyond the namespace (all
    /// but those exported to `.` alone), merged oldest first with their
    /// `exportTo` united.
    pub exported: BTreeMap<String, PolicyMap>,
    /// Hosts whose policy v1alpha2 RouteRules or DestinationPolicies made or
    /// extended: that API has no namespace scoping, so one mesh-wide policy
    /// (filtered by its `exportTo`) serves every client.
    pub mesh_wide: PolicyMap,
}

impl DestinationRules {
    /// The policy a client in `client` uses for `host`, a service of
    /// `service_ns` (when known), with `root` the mesh root namespace.
    pub fn lookup(
        &self,
        root: &str,
        client: &str,
        host: &str,
        service_ns: Option<&str>,
    ) -> Option<&DestinationPolicy> {
        if let Some(p) = self.mesh_wide.get(host) {
            return crate::scope::exported_to(&p.export_to, &p.source.namespace, client)
                .then_some(&**p);
        }
        let exported = |ns: &str| {
            self.exported
                .get(ns)
                .and_then(|m| most_specific(m, host))
                .filter(|p| {
                    p.export_to.is_empty() || p.export_to.iter().any(|e| e == "*" || e == client)
                })
        };
        self.local
            .get(client)
            .and_then(|m| most_specific(m, host))
            .or_else(|| service_ns.and_then(exported))
            .or_else(|| exported(root))
    }

    /// Every policy (each pool's), for diagnostics and counts.
    pub fn all(&self) -> impl Iterator<Item = &DestinationPolicy> {
        self.local
            .values()
            .chain(self.exported.values())
            .flat_map(|m| m.values())
            .chain(self.mesh_wide.values())
            .map(|p| &**p)
    }

    /// Whether a rule with this `exportTo`, owned by `namespace`, belongs in
    /// the namespace's local pool and in its exported pool (see the type doc).
    pub fn pools(export_to: &[String], namespace: &str, root: &str) -> (bool, bool) {
        let private_only = export_to.len() == 1 && export_to[0] == ".";
        let local = if namespace == root {
            private_only
        } else {
            export_to.is_empty()
                || export_to
                    .iter()
                    .any(|e| e == "." || e == "*" || e == namespace)
        };
        (local, !private_only)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_and_subset_policies_override_host_policy() {
        let host = TrafficPolicy {
            load_balancer: Some(LoadBalancer::RoundRobin),
            port_level: [(
                9080,
                TrafficPolicy {
                    load_balancer: Some(LoadBalancer::Random),
                    ..Default::default()
                },
            )]
            .into(),
            ..Default::default()
        };
        assert_eq!(
            host.for_port(9080).load_balancer,
            Some(LoadBalancer::Random)
        );
        assert_eq!(
            host.for_port(80).load_balancer,
            Some(LoadBalancer::RoundRobin)
        );
        let subset = TrafficPolicy {
            load_balancer: Some(LoadBalancer::LeastRequest),
            ..Default::default()
        };
        assert_eq!(
            host.merged_with(Some(&subset), 9080).load_balancer,
            Some(LoadBalancer::LeastRequest)
        );
        assert!(host.merged_with(None, 9080).port_level.is_empty());
    }
}
