//! `networking.istio.io` VirtualService (v1, v1beta1 and v1alpha3 share this spec).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{Percent, PortSelector, PresenceMatch, StringMatch};

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
    /// Cross-origin resource sharing (Envoy's CORS filter, per route).
    pub cors_policy: Option<CorsPolicy>,
    /// Take the HTTP routes of a delegate VirtualService (one without hosts)
    /// in place of this route, merged with it (exclusive with `route`,
    /// `redirect` and `directResponse`).
    pub delegate: Option<Delegate>,
}

/// A delegate VirtualService, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Delegate {
    /// Its name.
    pub name: String,
    /// Its namespace (default: the root VirtualService's).
    pub namespace: Option<String>,
}

/// CORS policy of a route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CorsPolicy {
    /// Origins allowed (`exact`, `prefix` or `regex`).
    pub allow_origins: Vec<StringMatch>,
    /// Deprecated exact origins (used when `allowOrigins` is unset).
    pub allow_origin: Vec<String>,
    /// `Access-Control-Allow-Methods`.
    pub allow_methods: Vec<String>,
    /// `Access-Control-Allow-Headers`.
    pub allow_headers: Vec<String>,
    /// `Access-Control-Expose-Headers`.
    pub expose_headers: Vec<String>,
    /// `Access-Control-Max-Age` (whole seconds, `"24h"`).
    pub max_age: Option<String>,
    /// `Access-Control-Allow-Credentials`.
    pub allow_credentials: Option<bool>,
    /// Preflights whose origin does not match: `FORWARD` (default) or `IGNORE`.
    pub unmatched_preflights: Option<String>,
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
    /// Request headers (`{}`: present).
    pub headers: BTreeMap<String, PresenceMatch>,
    /// Headers that must not match (`{}`: absent).
    pub without_headers: BTreeMap<String, PresenceMatch>,
    /// Query parameters (`{}`: present).
    pub query_params: BTreeMap<String, PresenceMatch>,
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
    /// Port from the request (`FROM_REQUEST_PORT`) or the scheme's default
    /// (`FROM_PROTOCOL_DEFAULT`); exclusive with `port`.
    pub derive_port: Option<String>,
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
    /// Body bytes, base64 (exclusive with `string`).
    pub bytes: Option<String>,
}

/// Rewrite.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRewrite {
    /// Replaces the matched prefix (or the whole path).
    pub uri: Option<String>,
    /// Replaces the authority.
    pub authority: Option<String>,
    /// Regex rewrite of the path (exclusive with `uri`).
    pub uri_regex_rewrite: Option<RegexRewrite>,
}

/// A path rewrite by regular expression.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RegexRewrite {
    /// RE2 pattern.
    #[serde(rename = "match")]
    pub pattern: String,
    /// Substitution (`\1` for groups).
    pub rewrite: String,
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
    /// Prefer other localities (priorities) on retries.
    pub retry_remote_localities: Option<bool>,
    /// Prefer hosts not tried yet (default true).
    pub retry_ignore_previous_hosts: Option<bool>,
    /// Base interval of the exponential back-off between retries.
    pub backoff: Option<String>,
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
    /// gRPC status to return (`UNAVAILABLE`); exclusive with `httpStatus`.
    pub grpc_status: Option<String>,
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

impl TlsMatchAttributes {
    /// The conditions a TLS match shares with a TCP one.
    pub fn l4(&self) -> L4MatchAttributes {
        L4MatchAttributes {
            port: self.port,
            source_labels: self.source_labels.clone(),
            source_namespace: self.source_namespace.clone(),
            destination_subnets: self.destination_subnets.clone(),
            gateways: self.gateways.clone(),
        }
    }
}
