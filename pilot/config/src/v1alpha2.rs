//! `config.istio.io/v1alpha2` RouteRule and DestinationPolicy: the API of
//! Istio 0.2-0.7, the 99/1-split era. Routes pick endpoints by `labels`; there
//! were no subsets yet (the registry synthesises them).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::StringMatch;

/// A service reference: name (short, resolved in the rule's namespace, or
/// FQDN), optional namespace and labels.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct IstioService {
    /// Service name.
    pub name: String,
    /// Namespace (default: the rule's).
    pub namespace: Option<String>,
    /// DNS domain (default: the mesh's).
    pub domain: Option<String>,
    /// Endpoint labels (a version).
    pub labels: BTreeMap<String, String>,
}

/// RouteRule spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RouteRuleSpec {
    /// The service whose traffic this rule routes.
    pub destination: IstioService,
    /// Higher precedence is evaluated first.
    pub precedence: i32,
    /// When the rule applies.
    #[serde(rename = "match")]
    pub matches: Option<MatchCondition>,
    /// Weighted label sets (weights sum to 100).
    pub route: Vec<DestinationWeight>,
    /// Redirect instead of routing.
    pub redirect: Option<HttpRedirect>,
    /// Rewrite before routing.
    pub rewrite: Option<HttpRewrite>,
    /// Timeout.
    pub http_req_timeout: Option<HttpTimeout>,
    /// Retries.
    pub http_req_retries: Option<HttpRetry>,
    /// Fault injection.
    pub http_fault: Option<HttpFaultInjection>,
    /// Mirror to this service version.
    pub mirror: Option<IstioService>,
    /// Request headers to add.
    pub append_headers: BTreeMap<String, String>,
    /// WebSocket upgrades for this route. Every HTTP connection manager
    /// allows them (as in Istio since 1.0), so `true` always holds; `false`
    /// cannot be honoured and is warned about.
    pub websocket_upgrade: Option<bool>,
}

/// Match condition of a RouteRule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MatchCondition {
    /// The calling service (its pods' labels), plus labels.
    pub source: Option<IstioService>,
    /// Request attributes.
    pub request: Option<MatchRequest>,
}

/// Request match: headers by name; `uri`, `scheme`, `method`, `authority` are
/// pseudo-header names, as in Istio 0.x.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MatchRequest {
    /// Header (or pseudo-header) matches.
    pub headers: BTreeMap<String, StringMatch>,
}

/// A weighted label set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DestinationWeight {
    /// Endpoint labels of this share.
    pub labels: BTreeMap<String, String>,
    /// Percentage (0-100; all weights sum to 100).
    pub weight: Option<i32>,
    /// Another service (default: the rule's destination).
    pub destination: Option<IstioService>,
}

/// Redirect.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRedirect {
    /// New path.
    pub uri: Option<String>,
    /// New authority.
    pub authority: Option<String>,
}

/// Rewrite.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRewrite {
    /// New path prefix.
    pub uri: Option<String>,
    /// New authority.
    pub authority: Option<String>,
}

/// Timeout policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpTimeout {
    /// Simple timeout.
    pub simple_timeout: Option<SimpleTimeout>,
}

/// Simple timeout.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SimpleTimeout {
    /// Duration.
    pub timeout: Option<String>,
    /// Header that may override it (accepted, unused).
    pub override_header_name: Option<String>,
}

/// Retry policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRetry {
    /// Simple retry.
    pub simple_retry: Option<SimpleRetry>,
}

/// Simple retry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SimpleRetry {
    /// Attempts.
    pub attempts: i32,
    /// Timeout per try.
    pub per_try_timeout: Option<String>,
    /// Header that may override it (accepted, unused).
    pub override_header_name: Option<String>,
}

/// Fault injection.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpFaultInjection {
    /// Delay.
    pub delay: Option<Delay>,
    /// Abort.
    pub abort: Option<Abort>,
}

/// Delay.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Delay {
    /// Percentage of requests (0-100).
    pub percent: Option<f64>,
    /// How long.
    pub fixed_delay: Option<String>,
}

/// Abort.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Abort {
    /// Percentage of requests (0-100).
    pub percent: Option<f64>,
    /// HTTP status.
    pub http_status: Option<i32>,
}

/// DestinationPolicy spec: load balancing and circuit breaking for a service
/// (or one version of it, by labels).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DestinationPolicySpec {
    /// The service (and labels of a version).
    pub destination: IstioService,
    /// Load balancing.
    pub load_balancing: Option<LoadBalancing>,
    /// Circuit breaker.
    pub circuit_breaker: Option<CircuitBreaker>,
}

/// Load balancing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LoadBalancing {
    /// Algorithm.
    pub name: Option<SimpleLbPolicy>,
}

/// v1alpha2 load-balancing algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SimpleLbPolicy {
    /// Round robin.
    RoundRobin,
    /// Least connections (Envoy least request).
    LeastConn,
    /// Random.
    Random,
}

/// Circuit breaker.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CircuitBreaker {
    /// Simple circuit breaker.
    pub simple_cb: Option<SimpleCircuitBreakerPolicy>,
}

/// Simple circuit breaker.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SimpleCircuitBreakerPolicy {
    /// Max connections.
    pub max_connections: Option<i32>,
    /// Max pending requests.
    pub http_max_pending_requests: Option<i32>,
    /// Max requests.
    pub http_max_requests: Option<i32>,
    /// Ejection time.
    pub sleep_window: Option<String>,
    /// Consecutive errors before ejection.
    pub http_consecutive_errors: Option<i32>,
    /// Detection interval.
    pub http_detection_interval: Option<String>,
    /// Max requests per connection.
    pub http_max_requests_per_connection: Option<i32>,
    /// Max ejected share.
    pub http_max_ejection_percent: Option<i32>,
}
