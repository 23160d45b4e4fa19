//! `networking.istio.io` DestinationRule (v1, v1beta1 and v1alpha3 share this spec).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::PortSelector;

/// DestinationRule spec: subsets and traffic policy of one host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DestinationRuleSpec {
    /// Service host (short names resolve in the rule's namespace).
    pub host: String,
    /// Host-level policy (boxed: it is most of the spec's size).
    pub traffic_policy: Option<Box<TrafficPolicy>>,
    /// Named subsets.
    pub subsets: Vec<Subset>,
    /// Namespaces that see this rule.
    pub export_to: Vec<String>,
}

/// A subset: endpoints with these labels, with an optional policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Subset {
    /// Name (`v1`).
    pub name: String,
    /// Endpoint labels.
    pub labels: BTreeMap<String, String>,
    /// Subset-level policy.
    pub traffic_policy: Option<TrafficPolicy>,
}

/// Traffic policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TrafficPolicy {
    /// Load balancing.
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection pool.
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Outlier detection.
    pub outlier_detection: Option<OutlierDetection>,
    /// Client TLS.
    pub tls: Option<ClientTlsSettings>,
    /// Per-port overrides.
    pub port_level_settings: Vec<PortTrafficPolicy>,
    /// PROXY protocol header sent upstream.
    pub proxy_protocol: Option<ProxyProtocol>,
}

/// Upstream PROXY protocol (`trafficPolicy.proxyProtocol`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ProxyProtocol {
    /// Version (`V1` when unset).
    pub version: Option<ProxyProtocolVersion>,
}

/// PROXY protocol versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ProxyProtocolVersion {
    /// Text header.
    V1,
    /// Binary header.
    V2,
}

/// A per-port policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PortTrafficPolicy {
    /// Which port.
    pub port: Option<PortSelector>,
    /// Load balancing.
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection pool.
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Outlier detection.
    pub outlier_detection: Option<OutlierDetection>,
    /// Client TLS.
    pub tls: Option<ClientTlsSettings>,
}

/// Load balancing: `simple` or `consistentHash`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LoadBalancerSettings {
    /// Simple algorithm.
    pub simple: Option<SimpleLb>,
    /// Consistent hashing.
    pub consistent_hash: Option<ConsistentHashLb>,
    /// Locality-aware load balancing.
    pub locality_lb_setting: Option<LocalityLbSetting>,
    /// Slow start window for new endpoints (ROUND_ROBIN, LEAST_REQUEST).
    pub warmup_duration_secs: Option<String>,
    /// Slow start with its curve (ROUND_ROBIN, LEAST_REQUEST).
    pub warmup: Option<WarmupConfiguration>,
}

/// Locality load balancing (`loadBalancer.localityLbSetting`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LocalityLbSetting {
    /// Weighted distribution from a locality to others.
    pub distribute: Vec<LocalityDistribute>,
    /// Failover from a region to another.
    pub failover: Vec<LocalityFailover>,
    /// Labels ordering failover priority.
    pub failover_priority: Vec<String>,
    /// Enables or disables locality load balancing.
    pub enabled: Option<bool>,
}

/// A `distribute` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LocalityDistribute {
    /// Origin locality (`region/zone/subzone`, `*` wildcards).
    pub from: String,
    /// Destination localities and their weights.
    pub to: BTreeMap<String, u32>,
}

/// A `failover` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LocalityFailover {
    /// Origin region.
    pub from: String,
    /// Failover region.
    pub to: String,
}

/// Slow start (`loadBalancer.warmup`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WarmupConfiguration {
    /// Window (required).
    pub duration: Option<String>,
    /// Weight a new endpoint starts from, in percent (Envoy's 10 when unset).
    pub minimum_percent: Option<serde_json::Number>,
    /// Curve of the ramp (1.0 linear, Envoy's default).
    pub aggression: Option<serde_json::Number>,
}

/// Simple load-balancing algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SimpleLb {
    /// Istio's `UNSPECIFIED` (Envoy default).
    Unspecified,
    /// Round robin.
    RoundRobin,
    /// Least request.
    LeastRequest,
    /// Deprecated alias of least request.
    LeastConn,
    /// Random.
    Random,
    /// Send to the original destination.
    Passthrough,
}

/// Consistent hashing key (exactly one).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ConsistentHashLb {
    /// Header name.
    pub http_header_name: Option<String>,
    /// Cookie.
    pub http_cookie: Option<HttpCookie>,
    /// Source IP.
    pub use_source_ip: Option<bool>,
    /// Query parameter name.
    pub http_query_parameter_name: Option<String>,
    /// Minimum ring size of the hash ring (Envoy's `minimum_ring_size`; 1024 when unset).
    /// Deprecated by Istio in favour of `ringHash.minimumRingSize`.
    pub minimum_ring_size: Option<u64>,
    /// Ring hash (Ketama).
    pub ring_hash: Option<RingHash>,
    /// Maglev.
    pub maglev: Option<MagLev>,
}

/// `consistentHash.ringHash`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RingHash {
    /// Minimum ring size (Envoy's 1024 when unset or 0).
    pub minimum_ring_size: Option<u64>,
}

/// `consistentHash.maglev`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MagLev {
    /// Lookup table size, a prime (Envoy's 65537 when unset or 0).
    pub table_size: Option<u64>,
}

/// Hash cookie.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpCookie {
    /// Name.
    pub name: String,
    /// Path.
    pub path: Option<String>,
    /// Lifetime (generated when missing).
    pub ttl: Option<String>,
}

/// Connection pool.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ConnectionPoolSettings {
    /// TCP settings.
    pub tcp: Option<TcpSettings>,
    /// HTTP settings.
    pub http: Option<HttpSettings>,
}

/// TCP connection pool.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TcpSettings {
    /// Max connections.
    pub max_connections: Option<i32>,
    /// Connect timeout.
    pub connect_timeout: Option<String>,
    /// TCP keepalive probes on upstream connections.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// Maximum lifetime of an upstream connection.
    pub max_connection_duration: Option<String>,
    /// Idle timeout of upstream connections (and, host-level, TCP proxying).
    pub idle_timeout: Option<String>,
}

/// `tcp.tcpKeepalive`: SO_KEEPALIVE, with the OS defaults for what is unset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TcpKeepalive {
    /// Probes without response before the connection is dead.
    pub probes: Option<u32>,
    /// Idle time before the first probe.
    pub time: Option<String>,
    /// Time between probes.
    pub interval: Option<String>,
}

/// `http.h2UpgradePolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum H2UpgradePolicy {
    /// The mesh's policy.
    Default,
    /// Keep HTTP/1.1.
    DoNotUpgrade,
    /// Speak HTTP/2 upstream.
    Upgrade,
}

/// HTTP connection pool.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Max pending HTTP/1 requests.
    pub http1_max_pending_requests: Option<i32>,
    /// Max concurrent HTTP/2 requests.
    pub http2_max_requests: Option<i32>,
    /// Max requests per connection.
    pub max_requests_per_connection: Option<i32>,
    /// Max concurrent retries.
    pub max_retries: Option<i32>,
    /// Idle timeout.
    pub idle_timeout: Option<String>,
    /// Upgrade HTTP/1.1 connections to HTTP/2.
    pub h2_upgrade_policy: Option<H2UpgradePolicy>,
    /// Speak upstream the protocol the client spoke.
    pub use_client_protocol: Option<bool>,
    /// Max concurrent streams per HTTP/2 connection.
    pub max_concurrent_streams: Option<i32>,
}

/// Outlier detection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct OutlierDetection {
    /// Consecutive 5xx before ejection.
    pub consecutive_5xx_errors: Option<i32>,
    /// Consecutive gateway errors before ejection.
    pub consecutive_gateway_errors: Option<i32>,
    /// Deprecated alias of `consecutive5xxErrors`.
    pub consecutive_errors: Option<i32>,
    /// Sweep interval.
    pub interval: Option<String>,
    /// Base ejection time.
    pub base_ejection_time: Option<String>,
    /// Max ejected share.
    pub max_ejection_percent: Option<i32>,
    /// Panic threshold.
    pub min_health_percent: Option<i32>,
    /// Count locally originated errors (connect failures, timeouts) apart.
    pub split_external_local_origin_errors: Option<bool>,
    /// Consecutive local-origin failures before ejection (with the split).
    pub consecutive_local_origin_failures: Option<i32>,
}

/// TLS modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TlsMode {
    /// Plaintext.
    Disable,
    /// TLS.
    Simple,
    /// mTLS with given files.
    Mutual,
    /// mTLS with mesh identity.
    IstioMutual,
}

/// Client TLS settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ClientTlsSettings {
    /// Mode.
    pub mode: Option<TlsMode>,
    /// Client certificate file (MUTUAL).
    pub client_certificate: Option<String>,
    /// Private key file (MUTUAL).
    pub private_key: Option<String>,
    /// CA file.
    pub ca_certificates: Option<String>,
    /// SNI.
    pub sni: Option<String>,
    /// Accepted server SANs.
    pub subject_alt_names: Vec<String>,
    /// Kubernetes Secret with the client credentials.
    pub credential_name: Option<String>,
    /// Skip verifying the server's certificate and SANs.
    pub insecure_skip_verify: Option<bool>,
}
