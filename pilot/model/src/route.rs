//! Route rules, compiled: what a VirtualService or a v1alpha2 RouteRule says,
//! in one shape. Both API generations compile to these types; the generators
//! never see which one a rule came from (except in its [`RuleRef`]).

use std::{collections::BTreeMap, net::IpAddr, time::Duration};

use crate::service::{Hostname, Labels};

/// A percentage in millionths (Envoy's `FractionalPercent` MILLION), so that
/// `0.1%` is exact and the type stays `Eq + Hash`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(pub u32);

impl Percent {
    /// 100%.
    pub const ALL: Percent = Percent(1_000_000);

    /// From a percentage (0.0..=100.0); out-of-range values are clamped.
    pub fn from_f64(p: f64) -> Self {
        Percent((p.clamp(0.0, 100.0) * 10_000.0).round() as u32)
    }

    /// As a percentage.
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 10_000.0
    }
}

/// Where a compiled rule came from (for debug output and diagnostics).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleRef {
    /// `VirtualService`, `RouteRule`, ...
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// A string match.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StringMatch {
    /// Equal.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// RE2 regular expression, matching the whole value (validated already).
    Regex(String),
    /// Any value, as long as there is one (Istio's empty match `{}` on a
    /// header or query parameter: Envoy's `present_match`; on a path, any path).
    Present,
}

/// One HTTP match block (all conditions must hold).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct HttpMatch {
    /// Optional name.
    pub name: Option<String>,
    /// Path.
    pub uri: Option<StringMatch>,
    /// `:scheme`.
    pub scheme: Option<StringMatch>,
    /// `:method`.
    pub method: Option<StringMatch>,
    /// `:authority`.
    pub authority: Option<StringMatch>,
    /// Request headers (lower-case names).
    pub headers: BTreeMap<String, StringMatch>,
    /// Headers that must be absent or not match (`Present`: must be absent).
    pub without_headers: BTreeMap<String, StringMatch>,
    /// Query parameters.
    pub query_params: BTreeMap<String, StringMatch>,
    /// The service port the request was sent to.
    pub port: Option<u16>,
    /// Applies only to proxies whose pod carries these labels.
    pub source_labels: Labels,
    /// Applies only to proxies in this namespace.
    pub source_namespace: Option<String>,
    /// Case-insensitive URI matching.
    pub ignore_uri_case: bool,
    /// Gateways the match applies to, as written (`mesh`: sidecars); empty
    /// means every gateway the rule applies to.
    pub gateways: Vec<String>,
}

/// The reserved gateway name that stands for every sidecar.
pub const MESH_GATEWAY: &str = "mesh";

/// Whether a match block applies to a sidecar with these labels and
/// namespace, as Istio's `sourceMatchHTTP` decides it: a match naming
/// gateways applies when they include `mesh` (its source conditions are then
/// not consulted, as in Istio); otherwise by source labels and namespace.
fn sidecar_match(
    gateways: &[String],
    source_labels: &Labels,
    source_namespace: Option<&str>,
    labels: &Labels,
    namespace: &str,
) -> bool {
    if !gateways.is_empty() {
        return gateways.iter().any(|g| g == MESH_GATEWAY);
    }
    crate::service::selects(source_labels, labels)
        && source_namespace.is_none_or(|ns| ns == namespace)
}

/// `applies_to_source` for the match types, which share their source fields.
macro_rules! sidecar_matching {
    ($($t:ty),*) => {$(
        impl $t {
            /// Whether this match can apply to a sidecar with these labels and namespace.
            pub fn applies_to_source(&self, labels: &Labels, namespace: &str) -> bool {
                sidecar_match(
                    &self.gateways,
                    &self.source_labels,
                    self.source_namespace.as_deref(),
                    labels,
                    namespace,
                )
            }
        }
    )*};
}
sidecar_matching!(HttpMatch, TcpMatch);

/// A weighted destination of a route.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Destination {
    /// Service FQDN (short names already resolved in the rule's namespace).
    pub host: Hostname,
    /// DestinationRule subset.
    pub subset: Option<String>,
    /// Service port; `None` means "the port the request came in on" (only
    /// valid when the service has that port, else its only port).
    pub port: Option<u16>,
    /// Relative weight: a destination gets weight / (sum of weights).
    pub weight: u32,
    /// Header edits for requests sent to this destination (and their
    /// responses), when a route splits across several.
    pub headers: Headers,
}

/// Retry policy.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Retries {
    /// Number of retries (0 disables retries).
    pub attempts: u32,
    /// Timeout per try.
    pub per_try_timeout: Option<Duration>,
    /// Envoy `retry_on` conditions, without status codes (Istio's default
    /// when unset: `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes`).
    /// Holds `retriable-status-codes` whenever `status_codes` is not empty.
    pub retry_on: Option<String>,
    /// HTTP status codes the rule's `retryOn` named (Envoy's
    /// `retriable_status_codes`); with `retry_on` unset, Istio's `[503]`.
    pub status_codes: Vec<u32>,
    /// Retries prefer other priorities (localities): Envoy's
    /// `previous_priorities` retry priority.
    pub remote_localities: bool,
    /// Whether retries prefer hosts not tried yet (`previous_hosts`);
    /// `None`: Istio's default (yes, except under a consistent hash).
    pub ignore_previous_hosts: Option<bool>,
    /// Base interval of Envoy's retry back-off (its default 25ms when unset).
    pub backoff: Option<Duration>,
}

/// The retry conditions Envoy's router takes (`x-envoy-retry-on` and
/// `x-envoy-retry-grpc-on`) that Istio's validation accepts in `retryOn`.
pub const RETRY_ON_CONDITIONS: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

impl Retries {
    /// Splits an Istio `retryOn` list as Istio does: HTTP status codes
    /// (100..=511) go to `status_codes`, everything else stays a condition,
    /// and `retriable-status-codes` is added when codes were named without it.
    /// The error names the first token that is neither.
    pub fn parse_retry_on(list: &str) -> Result<(Option<String>, Vec<u32>), String> {
        let mut conditions: Vec<&str> = Vec::new();
        let mut codes = Vec::new();
        for token in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match token.parse::<u32>() {
                Ok(code) if (100..=511).contains(&code) => codes.push(code),
                Ok(code) => return Err(format!("{code} is not an HTTP status code (100-511)")),
                Err(_) if RETRY_ON_CONDITIONS.contains(&token) => conditions.push(token),
                Err(_) => {
                    return Err(format!(
                        "{token:?} is not a retry condition ({}) or an HTTP status code",
                        RETRY_ON_CONDITIONS.join(", ")
                    ))
                }
            }
        }
        if !codes.is_empty() && !conditions.contains(&"retriable-status-codes") {
            conditions.push("retriable-status-codes");
        }
        Ok((
            (!conditions.is_empty()).then(|| conditions.join(",")),
            codes,
        ))
    }
}

/// A delay fault.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DelayFault {
    /// How long.
    pub fixed_delay: Duration,
    /// For which share of requests.
    pub percent: Percent,
}

/// What an abort fault answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AbortStatus {
    /// An HTTP status.
    Http(u32),
    /// A gRPC status code (0-16).
    Grpc(u32),
}

/// An abort fault.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AbortFault {
    /// Status to return.
    pub status: AbortStatus,
    /// For which share of requests.
    pub percent: Percent,
}

/// Fault injection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Fault {
    /// Delay.
    pub delay: Option<DelayFault>,
    /// Abort.
    pub abort: Option<AbortFault>,
}

/// Request mirroring (shadowing).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mirror {
    /// Where to copy requests (weight unused).
    pub destination: Destination,
    /// Which share of requests.
    pub percent: Percent,
}

/// URI/authority rewrite before forwarding.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rewrite {
    /// Replace the matched URI prefix (or the whole path for exact matches).
    pub uri: Option<String>,
    /// Replace the Host/authority.
    pub authority: Option<String>,
    /// Rewrite the path by regex: `(pattern, substitution)`.
    pub uri_regex: Option<(String, String)>,
}

/// Redirect instead of forwarding.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Redirect {
    /// New path.
    pub uri: Option<String>,
    /// New authority.
    pub authority: Option<String>,
    /// New scheme.
    pub scheme: Option<String>,
    /// New port.
    pub port: Option<u16>,
    /// The redirect keeps the port the request came in on (Istio's
    /// `derivePort: FROM_REQUEST_PORT`: the route's port).
    pub port_from_request: bool,
    /// 301 (default), 302, 303, 307, 308.
    pub redirect_code: u32,
}

/// A fixed response's body.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Body {
    /// Text.
    Text(String),
    /// Bytes (decoded from base64).
    Bytes(Vec<u8>),
}

/// Fixed response.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DirectResponse {
    /// Status.
    pub status: u32,
    /// Body.
    pub body: Option<Body>,
}

/// Header edits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HeaderOps {
    /// Overwrite.
    pub set: BTreeMap<String, String>,
    /// Append.
    pub add: BTreeMap<String, String>,
    /// Remove.
    pub remove: Vec<String>,
}

impl HeaderOps {
    /// No edits.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    /// The authority these edits give the request, as Istio reads it: a
    /// `host` or `:authority` in `set`, else in `add`. Envoy may not edit
    /// that header through header lists; Istio turns it into a host rewrite.
    pub fn authority(&self) -> Option<&str> {
        fn find(m: &BTreeMap<String, String>) -> Option<&str> {
            m.iter()
                .rev()
                .find(|(k, _)| is_authority_header(k))
                .map(|(_, v)| v.as_str())
        }
        find(&self.set).or_else(|| find(&self.add))
    }
}

/// `host` or `:authority`, in any case.
pub fn is_authority_header(name: &str) -> bool {
    name.eq_ignore_ascii_case("host") || name.eq_ignore_ascii_case(":authority")
}

/// A header Envoy's header lists may not touch (pseudo-headers and `host`);
/// Istio leaves these out of the lists it emits.
pub fn is_internal_header(name: &str) -> bool {
    name.starts_with(':') || name.eq_ignore_ascii_case("host")
}

/// Request and response header edits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Headers {
    /// On the request.
    pub request: HeaderOps,
    /// On the response.
    pub response: HeaderOps,
}

/// What a matched HTTP route does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HttpAction {
    /// Forward to weighted destinations.
    Route(Vec<Destination>),
    /// Redirect.
    Redirect(Redirect),
    /// Answer directly.
    DirectResponse(DirectResponse),
}

/// One HTTP route: the first one whose matches hold wins.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpRoute {
    /// Optional name.
    pub name: Option<String>,
    /// OR of match blocks; empty matches everything.
    pub matches: Vec<HttpMatch>,
    /// Action.
    pub action: HttpAction,
    /// Overall timeout (`None`: Envoy's default is disabled, as Istio does).
    pub timeout: Option<Duration>,
    /// Retries.
    pub retries: Option<Retries>,
    /// Faults.
    pub fault: Option<Fault>,
    /// Mirrors.
    pub mirrors: Vec<Mirror>,
    /// Rewrite.
    pub rewrite: Option<Rewrite>,
    /// Header edits.
    pub headers: Headers,
    /// CORS policy.
    pub cors: Option<Cors>,
}

/// A route's CORS policy (Envoy's CORS filter, per route).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Cors {
    /// Allowed origins.
    pub allow_origins: Vec<StringMatch>,
    /// Allowed methods.
    pub allow_methods: Vec<String>,
    /// Allowed request headers.
    pub allow_headers: Vec<String>,
    /// Response headers exposed to the page.
    pub expose_headers: Vec<String>,
    /// Seconds a preflight may be cached.
    pub max_age: Option<u64>,
    /// `Access-Control-Allow-Credentials`.
    pub allow_credentials: Option<bool>,
    /// Preflights whose origin does not match go on to the upstream
    /// (Istio's default, `FORWARD`) or are answered by Envoy (`IGNORE`).
    pub forward_unmatched_preflights: bool,
}

/// One TCP match block.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpMatch {
    /// Destination port.
    pub port: Option<u16>,
    /// Destination networks: the match holds for a service whose VIP is in
    /// one of them (empty: any).
    pub destination_subnets: Vec<crate::Cidr>,
    /// Source proxy labels.
    pub source_labels: Labels,
    /// Source proxy namespace.
    pub source_namespace: Option<String>,
    /// Gateways the match applies to, as written (see [`HttpMatch::gateways`]).
    pub gateways: Vec<String>,
}

/// One TCP route.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TcpRoute {
    /// OR of matches; empty matches everything.
    pub matches: Vec<TcpMatch>,
    /// Weighted destinations.
    pub destinations: Vec<Destination>,
}

/// One TLS route: by the SNI a client sends, to weighted destinations.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TlsRoute {
    /// OR of matches (at least one).
    pub matches: Vec<TlsMatch>,
    /// Weighted destinations.
    pub destinations: Vec<Destination>,
}

/// One TLS match: the SNI names, and the TCP conditions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TlsMatch {
    /// Server names (`*.example.com` allowed); at least one.
    pub sni_hosts: Vec<String>,
    /// Port, source, destination networks and gateways, as a TCP match.
    pub tcp: TcpMatch,
}

impl TcpMatch {
    /// Whether the match holds for a connection to `vips` on `port` from a
    /// sidecar with these labels and namespace.
    pub fn applies(&self, port: u16, vips: &[IpAddr], labels: &Labels, namespace: &str) -> bool {
        self.port.is_none_or(|p| p == port)
            && (self.destination_subnets.is_empty()
                || vips
                    .iter()
                    .any(|v| self.destination_subnets.iter().any(|c| c.contains(*v))))
            && self.applies_to_source(labels, namespace)
    }
}

/// All routes for the hosts of one rule (a VirtualService, or the RouteRules of
/// one destination merged by precedence).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RouteTable {
    /// Where it came from.
    pub source: RuleRef,
    /// Hosts (FQDNs for services; other names as written).
    pub hosts: Vec<Hostname>,
    /// Namespaces the rule is visible to (`exportTo`); empty = all.
    pub export_to: Vec<String>,
    /// HTTP routes in order.
    pub http: Vec<HttpRoute>,
    /// TCP routes in order.
    pub tcp: Vec<TcpRoute>,
    /// TLS routes in order (by SNI).
    pub tls: Vec<TlsRoute>,
    /// The gateways it binds to (`spec.gateways`), qualified `namespace/name`,
    /// `mesh` for sidecars; empty means `mesh` (Istio's default).
    pub gateways: Vec<String>,
}

impl RouteTable {
    /// Whether a proxy in `namespace` sees this rule.
    pub fn visible_to(&self, namespace: &str) -> bool {
        crate::scope::exported_to(&self.export_to, &self.source.namespace, namespace)
    }

    /// Whether it applies to sidecars (`gateways` empty or naming `mesh`).
    pub fn applies_to_mesh(&self) -> bool {
        self.gateways.is_empty() || self.gateways.iter().any(|g| g == MESH_GATEWAY)
    }

    /// Whether it binds to gateway `qualified` (`namespace/name`).
    pub fn binds_gateway(&self, qualified: &str) -> bool {
        self.gateways.iter().any(|g| g == qualified)
    }
}
