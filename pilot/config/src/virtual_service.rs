//! `networking.istio.io` VirtualService (v1, v1beta1 and v1alpha3 share this spec).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{Percent, PortSelector, StringMatch};

/// VirtualService spec: routing rules for a set of hosts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct VirtualServiceSpec {
    /// Destination hosts the rules apply to (short names resolve in the rule's namespace).
    pub hosts: Vec<String>,
    /// Gateways the rules apply to; empty or containing `mesh` means sidecars.
    pub gateways: Vec<String>,
    /// Namespaces that see this rule (`.` = own, `*` = all; empty = all).
    pub export_to: Vec<String>,
    /// HTTP routes, first match wins.
    pub http: Vec<HttpRoute>,
    /// TCP routes, first match wins.
    pub tcp: Vec<TcpRoute>,
    /// TLS routes by SNI (TLS and HTTPS ports), first match wins.
    pub tls: Vec<TlsRoute>,
}

/// One HTTP route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRoute {
    /// Name (debugging).
    pub name: Option<String>,
    /// OR of match blocks.
    #[serde(rename = "match")]
    pub matches: Vec<HttpMatchRequest>,
    /// Weighted destinations.
    pub route: Vec<HttpRouteDestination>,
    /// Redirect (exclusive with `route` and `directResponse`).
    pub redirect: Option<HttpRedirect>,
    /// Fixed response (exclusive with `route` and `redirect`).
    pub direct_response: Option<HttpDirectResponse>,
    /// URI/authority rewrite.
    pub rewrite: Option<HttpRewrite>,
    /// Request timeout (`"10s"`).
    pub timeout: Option<String>,
    /// Retries.
    pub retries: Option<HttpRetry>,
    /// Fault injection.
    pub fault: Option<HttpFaultInjection>,
    /// Mirror destination.
    pub mirror: Option<Destination>,
    /// Share of requests mirrored (default 100%).
    pub mirror_percentage: Option<Percent>,
    /// Deprecated integer mirror percentage.
    pub mirror_percent: Option<u32>,
    /// Several mirrors, each with its own percentage.
    pub mirrors: Vec<HttpMirrorPolicy>,
    /// Header manipulation.
    pub headers: Option<Headers>,
}

/// One HTTP match block (all conditions must hold).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpMatchRequest {
    /// Name (debugging).
    pub name: Option<String>,
    /// Path.
    pub uri: Option<StringMatch>,
    /// `:scheme`.
    pub scheme: Option<StringMatch>,
    /// `:method`.
    pub method: Option<StringMatch>,
    /// `:authority`.
    pub authority: Option<StringMatch>,
    /// Request headers.
    pub headers: BTreeMap<String, StringMatch>,
    /// Headers that must not match.
    pub without_headers: BTreeMap<String, StringMatch>,
    /// Query parameters.
    pub query_params: BTreeMap<String, StringMatch>,
    /// Service port the request was sent to.
    pub port: Option<u32>,
    /// Source pod labels.
    pub source_labels: BTreeMap<String, String>,
    /// Source namespace.
    pub source_namespace: Option<String>,
    /// Gateways this match applies to.
    pub gateways: Vec<String>,
    /// Case-insensitive URI match.
    pub ignore_uri_case: bool,
}

/// A destination: host, subset, port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Destination {
    /// Service host (short names resolve in the rule's namespace).
    pub host: String,
    /// DestinationRule subset name.
    pub subset: Option<String>,
    /// Service port (needed when the service has several).
    pub port: Option<PortSelector>,
}

/// A weighted destination of an HTTP route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRouteDestination {
    /// Where.
    pub destination: Destination,
    /// Relative weight (a destination alone without weight gets 100).
    pub weight: Option<i32>,
    /// Header edits for this destination.
    pub headers: Option<Headers>,
}

/// Redirect.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRedirect {
    /// New path.
    pub uri: Option<String>,
    /// New authority.
    pub authority: Option<String>,
    /// New port.
    pub port: Option<u32>,
    /// New scheme.
    pub scheme: Option<String>,
    /// Status (301 default).
    pub redirect_code: Option<u32>,
}

/// Fixed response.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpDirectResponse {
    /// Status.
    pub status: u32,
    /// Body.
    pub body: Option<HttpBody>,
}

/// Direct response body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpBody {
    /// Body text.
    pub string: Option<String>,
}

/// Rewrite.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRewrite {
    /// Replaces the matched prefix (or the whole path).
    pub uri: Option<String>,
    /// Replaces the authority.
    pub authority: Option<String>,
}

/// Retries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRetry {
    /// Number of retries.
    pub attempts: i32,
    /// Timeout per try.
    pub per_try_timeout: Option<String>,
    /// Envoy retry conditions, comma-separated.
    pub retry_on: Option<String>,
}

/// Fault injection.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpFaultInjection {
    /// Delay.
    pub delay: Option<FaultDelay>,
    /// Abort.
    pub abort: Option<FaultAbort>,
}

/// Delay fault.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FaultDelay {
    /// How long.
    pub fixed_delay: Option<String>,
    /// Share of requests.
    pub percentage: Option<Percent>,
    /// Deprecated integer percentage.
    pub percent: Option<i32>,
}

/// Abort fault.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FaultAbort {
    /// Status to return.
    pub http_status: Option<i32>,
    /// Share of requests.
    pub percentage: Option<Percent>,
}

/// One of several mirrors.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpMirrorPolicy {
    /// Where.
    pub destination: Destination,
    /// Share of requests (default 100%).
    pub percentage: Option<Percent>,
}

/// Request and response header edits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Headers {
    /// On the request.
    pub request: Option<HeaderOperations>,
    /// On the response.
    pub response: Option<HeaderOperations>,
}

/// Header edits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HeaderOperations {
    /// Overwrite.
    pub set: BTreeMap<String, String>,
    /// Append.
    pub add: BTreeMap<String, String>,
    /// Remove.
    pub remove: Vec<String>,
}

/// One TCP route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TcpRoute {
    /// OR of match blocks.
    #[serde(rename = "match")]
    pub matches: Vec<L4MatchAttributes>,
    /// Weighted destinations.
    pub route: Vec<RouteDestination>,
}

/// One TCP match block.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct L4MatchAttributes {
    /// Destination port.
    pub port: Option<u32>,
    /// Source pod labels.
    pub source_labels: BTreeMap<String, String>,
    /// Source namespace.
    pub source_namespace: Option<String>,
    /// Destination CIDRs.
    pub destination_subnets: Vec<String>,
    /// Gateways.
    pub gateways: Vec<String>,
}

/// A weighted TCP destination.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RouteDestination {
    /// Where.
    pub destination: Destination,
    /// Relative weight.
    pub weight: Option<i32>,
}

/// One TLS route: matched by SNI, sent on without terminating TLS.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TlsRoute {
    /// OR of match blocks (at least one).
    #[serde(rename = "match")]
    pub matches: Vec<TlsMatchAttributes>,
    /// Weighted destinations.
    pub route: Vec<RouteDestination>,
}

/// One TLS match block.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TlsMatchAttributes {
    /// SNI names (at least one; each must match a host of the rule).
    pub sni_hosts: Vec<String>,
    /// Destination CIDRs.
    pub destination_subnets: Vec<String>,
    /// Destination port.
    pub port: Option<u32>,
    /// Source pod labels.
    pub source_labels: BTreeMap<String, String>,
    /// Source namespace.
    pub source_namespace: Option<String>,
    /// Gateways.
    pub gateways: Vec<String>,
}
