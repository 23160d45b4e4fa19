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
    /// Host-level policy.
    pub traffic_policy: Option<TrafficPolicy>,
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
    pub minimum_ring_size: Option<u64>,
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
}
