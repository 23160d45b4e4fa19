//! Contour's `projectcontour.io/v1` HTTPProxy, trimmed to what Rudder
//! translates (`compile::contour` in the registry turns it into an Istio
//! Gateway and VirtualServices served by the ingress gateway).
//!
//! Like the Istio specs, these reject unknown fields by name: a field of
//! HTTPProxy that Rudder does not translate (`loadBalancerPolicy`,
//! `healthCheckPolicy`, `corsPolicy`, `rateLimitPolicy`, `authorization`,
//! ...) is not modelled, so it is an error naming its path instead of being
//! accepted and ignored. Field names are Contour's own (its header
//! conditions spell `notpresent`, `notcontains`, `notexact` in lower case).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group.
pub const GROUP: &str = "projectcontour.io";
/// The version read.
pub const VERSION: &str = "v1";
/// Contour's own class annotation (beside `kubernetes.io/ingress.class`).
pub const CLASS_ANNOTATION: &str = "projectcontour.io/ingress.class";

/// HTTPProxy spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpProxySpec {
    /// Present on a root HTTPProxy: the host it serves.
    pub virtualhost: Option<VirtualHost>,
    /// HTTP routes.
    pub routes: Vec<Route>,
    /// Other HTTPProxies whose routes are appended, under conditions.
    pub includes: Vec<Include>,
    /// TCP proxying (with `virtualhost.tls`); routes are then ignored.
    pub tcpproxy: Option<TcpProxy>,
    /// The ingress class (the annotations win, as in Contour).
    pub ingress_class_name: Option<String>,
}

/// The virtual host of a root HTTPProxy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct VirtualHost {
    /// Fully qualified domain name.
    pub fqdn: String,
    /// TLS.
    pub tls: Option<VirtualHostTls>,
}

/// TLS of a virtual host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct VirtualHostTls {
    /// The certificate Secret.
    pub secret_name: Option<String>,
    /// Pass TLS through to the tcpproxy services (SNI routing).
    pub passthrough: Option<bool>,
}

/// A route.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Route {
    /// Conditions (all must hold); none: prefix `/`.
    pub conditions: Vec<MatchCondition>,
    /// Upstream services, weighted.
    pub services: Vec<Service>,
    /// Prefix rewriting.
    pub path_rewrite_policy: Option<PathRewritePolicy>,
    /// Request header edits.
    pub request_headers_policy: Option<HeadersPolicy>,
    /// Response header edits.
    pub response_headers_policy: Option<HeadersPolicy>,
    /// Timeouts.
    pub timeout_policy: Option<TimeoutPolicy>,
    /// Retries.
    pub retry_policy: Option<RetryPolicy>,
    /// Serve this route over plain HTTP too when the host has TLS.
    pub permit_insecure: Option<bool>,
}

/// A match condition: one of `prefix`, `exact`, `header`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MatchCondition {
    /// Path prefix (string prefix, as Contour matches it).
    pub prefix: Option<String>,
    /// Exact path.
    pub exact: Option<String>,
    /// A header condition.
    pub header: Option<HeaderMatchCondition>,
}

/// A header condition: exactly one of the match fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HeaderMatchCondition {
    /// Header name.
    pub name: String,
    /// Present.
    pub present: Option<bool>,
    /// Absent.
    pub notpresent: Option<bool>,
    /// Value contains.
    pub contains: Option<String>,
    /// Value does not contain.
    pub notcontains: Option<String>,
    /// Value equals.
    pub exact: Option<String>,
    /// Value differs (or the header is absent).
    pub notexact: Option<String>,
}

/// An upstream Service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Service {
    /// Service name (the HTTPProxy's namespace).
    pub name: String,
    /// Service port.
    pub port: i64,
    /// Relative weight (unset: 0 when any service of the route has one,
    /// else an equal share).
    pub weight: Option<i64>,
    /// Mirror traffic to this service instead of routing to it.
    pub mirror: Option<bool>,
    /// Request header edits for this service.
    pub request_headers_policy: Option<HeadersPolicy>,
    /// Response header edits for this service.
    pub response_headers_policy: Option<HeadersPolicy>,
}

/// Prefix rewriting.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PathRewritePolicy {
    /// Prefix replacements (the one whose prefix the route's matches).
    pub replace_prefix: Vec<ReplacePrefix>,
}

/// One prefix replacement.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ReplacePrefix {
    /// The prefix it applies to (unset: the route's).
    pub prefix: Option<String>,
    /// Its replacement.
    pub replacement: String,
}

/// Header edits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HeadersPolicy {
    /// Set (replace) these headers.
    pub set: Vec<HeaderValue>,
    /// Remove these headers.
    pub remove: Vec<String>,
}

/// A header and its value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HeaderValue {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// Timeouts (Go durations, or `infinity`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TimeoutPolicy {
    /// Time for the whole response (default Envoy's 15s).
    pub response: Option<String>,
}

/// Retries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Retries (default 1).
    pub count: Option<i64>,
    /// Timeout of each try.
    pub per_try_timeout: Option<String>,
    /// Envoy retry conditions (default `5xx`).
    pub retry_on: Vec<String>,
    /// Status codes for `retriable-status-codes`.
    pub retriable_status_codes: Vec<i64>,
}

/// An included HTTPProxy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Include {
    /// Its name.
    pub name: String,
    /// Its namespace (default: this one).
    pub namespace: Option<String>,
    /// Conditions prefixed to each of its routes.
    pub conditions: Vec<MatchCondition>,
}

/// TCP proxying.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TcpProxy {
    /// Upstream services, weighted.
    pub services: Vec<Service>,
}
