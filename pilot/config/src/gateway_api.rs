//! Kubernetes Gateway API (`gateway.networking.k8s.io`): GatewayClass,
//! Gateway, HTTPRoute, GRPCRoute, ReferenceGrant (v1 and v1beta1, same
//! specs) and TCPRoute, TLSRoute (v1alpha2). The registry translates them
//! into Istio Gateways and VirtualServices (`compile::gateway_api`), as
//! Istio's `pilot/pkg/config/kube/gateway` does.
//!
//! Specs reject unknown fields by name, as the Istio specs do: a field of
//! the Gateway API that Rudder does not serve (`infrastructure`,
//! `sessionPersistence`, `retry`, `extensionRef`, ...) is not modelled, so
//! it is an error naming its path. Enumerations stay strings so that the
//! registry's error names the field and the accepted values.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group.
pub const GROUP: &str = "gateway.networking.k8s.io";
/// Versions read for GatewayClass, Gateway, HTTPRoute, GRPCRoute, ReferenceGrant.
pub const STANDARD_VERSIONS: [&str; 2] = ["v1", "v1beta1"];
/// Versions read for TCPRoute and TLSRoute (experimental channel).
pub const EXPERIMENTAL_VERSIONS: [&str; 1] = ["v1alpha2"];
/// GatewayClass controllers that are Rudder's.
pub const CONTROLLERS: [&str; 2] = [
    "rudder.io/gateway-controller",
    "istio.io/gateway-controller",
];
/// The pod label of a Gateway's (automated) deployment (Istio's).
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// GatewayClass spec (cluster-scoped).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct GatewayClassSpec {
    /// The controller that serves Gateways of this class.
    pub controller_name: String,
    /// Free text.
    pub description: Option<String>,
}

/// Gateway spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct KubeGatewaySpec {
    /// The GatewayClass.
    pub gateway_class_name: String,
    /// Listeners.
    pub listeners: Vec<Listener>,
    /// Addresses (type Hostname binds to a manually deployed gateway Service).
    pub addresses: Vec<GatewayAddress>,
}

/// A Gateway address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct GatewayAddress {
    /// `IPAddress` (default), `Hostname`, or a domain-prefixed type.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// The address.
    pub value: String,
}

/// A Gateway listener.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Listener {
    /// Name (routes bind to it with `sectionName`).
    pub name: String,
    /// Hostname (`*.example.com` allowed); none: any.
    pub hostname: Option<String>,
    /// Port.
    pub port: i64,
    /// HTTP, HTTPS, TLS, TCP.
    pub protocol: String,
    /// TLS.
    pub tls: Option<GatewayTlsConfig>,
    /// Which routes may bind.
    pub allowed_routes: Option<AllowedRoutes>,
}

/// Listener TLS.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct GatewayTlsConfig {
    /// `Terminate` (default) or `Passthrough`.
    pub mode: Option<String>,
    /// Secrets with the certificate.
    pub certificate_refs: Vec<SecretObjectReference>,
}

/// A reference to a Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SecretObjectReference {
    /// Group (`""`: core).
    pub group: Option<String>,
    /// Kind (default `Secret`).
    pub kind: Option<String>,
    /// Name.
    pub name: String,
    /// Namespace (default: the Gateway's; another needs a ReferenceGrant).
    pub namespace: Option<String>,
}

/// Which routes a listener accepts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AllowedRoutes {
    /// Namespaces.
    pub namespaces: Option<RouteNamespaces>,
    /// Kinds.
    pub kinds: Vec<RouteGroupKind>,
}

/// Namespaces routes may come from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RouteNamespaces {
    /// `Same` (default), `All`, `Selector`.
    pub from: Option<String>,
    /// For `Selector`: a label selector on Namespaces.
    pub selector: Option<LabelSelector>,
}

/// A Kubernetes label selector.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LabelSelector {
    /// Labels that must be equal.
    pub match_labels: BTreeMap<String, String>,
    /// Expressions (In, NotIn, Exists, DoesNotExist).
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One label selector expression.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LabelSelectorRequirement {
    /// Label key.
    pub key: String,
    /// In, NotIn, Exists, DoesNotExist.
    pub operator: String,
    /// Values.
    pub values: Vec<String>,
}

/// A route kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RouteGroupKind {
    /// Group (default `gateway.networking.k8s.io`).
    pub group: Option<String>,
    /// Kind.
    pub kind: String,
}

/// A route's parent: a Gateway (listener by `sectionName`/`port`) or, in
/// the mesh (GAMMA), a Service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ParentReference {
    /// Group (default `gateway.networking.k8s.io`; `""` for a Service).
    pub group: Option<String>,
    /// Kind (default `Gateway`; `Service`).
    pub kind: Option<String>,
    /// Namespace (default: the route's).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Listener name (Gateway) or port name (Service).
    pub section_name: Option<String>,
    /// Listener port (Gateway) or Service port.
    pub port: Option<i64>,
}

/// A backend: a Service port, with a weight.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct BackendRef {
    /// Group (default `""`).
    pub group: Option<String>,
    /// Kind (default `Service`).
    pub kind: Option<String>,
    /// Name.
    pub name: String,
    /// Namespace (default: the route's; another needs a ReferenceGrant).
    pub namespace: Option<String>,
    /// Service port (required for a Service).
    pub port: Option<i64>,
    /// Relative weight (default 1).
    pub weight: Option<i64>,
}

/// An HTTPRoute backend: a [`BackendRef`] with its own filters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpBackendRef {
    /// Group (default `""`).
    pub group: Option<String>,
    /// Kind (default `Service`).
    pub kind: Option<String>,
    /// Name.
    pub name: String,
    /// Namespace (default: the route's; another needs a ReferenceGrant).
    pub namespace: Option<String>,
    /// Service port (required for a Service).
    pub port: Option<i64>,
    /// Relative weight (default 1).
    pub weight: Option<i64>,
    /// Filters for this backend only (header modifiers).
    pub filters: Vec<BackendFilter>,
}

/// A filter of one backend: header modifiers only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct BackendFilter {
    /// RequestHeaderModifier or ResponseHeaderModifier.
    #[serde(rename = "type")]
    pub type_: String,
    /// Request headers.
    pub request_header_modifier: Option<HttpHeaderFilter>,
    /// Response headers.
    pub response_header_modifier: Option<HttpHeaderFilter>,
}

/// A GRPCRoute rule's filter: header modifiers and mirrors.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct GrpcRouteFilter {
    /// RequestHeaderModifier, ResponseHeaderModifier or RequestMirror.
    #[serde(rename = "type")]
    pub type_: String,
    /// Request headers.
    pub request_header_modifier: Option<HttpHeaderFilter>,
    /// Response headers.
    pub response_header_modifier: Option<HttpHeaderFilter>,
    /// Mirror.
    pub request_mirror: Option<HttpRequestMirrorFilter>,
}

impl From<&BackendFilter> for HttpRouteFilter {
    fn from(f: &BackendFilter) -> Self {
        HttpRouteFilter {
            type_: f.type_.clone(),
            request_header_modifier: f.request_header_modifier.clone(),
            response_header_modifier: f.response_header_modifier.clone(),
            ..HttpRouteFilter::default()
        }
    }
}

impl From<&GrpcRouteFilter> for HttpRouteFilter {
    fn from(f: &GrpcRouteFilter) -> Self {
        HttpRouteFilter {
            type_: f.type_.clone(),
            request_header_modifier: f.request_header_modifier.clone(),
            response_header_modifier: f.response_header_modifier.clone(),
            request_mirror: f.request_mirror.clone(),
            ..HttpRouteFilter::default()
        }
    }
}

/// A reference to a Service port without a weight (mirrors).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct BackendObjectReference {
    /// Group (default `""`).
    pub group: Option<String>,
    /// Kind (default `Service`).
    pub kind: Option<String>,
    /// Name.
    pub name: String,
    /// Namespace (default: the route's; another needs a ReferenceGrant).
    pub namespace: Option<String>,
    /// Service port.
    pub port: Option<i64>,
}

impl BackendObjectReference {
    /// As a backend of weight 1.
    pub fn backend(&self) -> BackendRef {
        BackendRef {
            group: self.group.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            port: self.port,
            weight: None,
        }
    }
}

impl HttpBackendRef {
    /// The reference part.
    pub fn backend(&self) -> BackendRef {
        BackendRef {
            group: self.group.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            port: self.port,
            weight: self.weight,
        }
    }
}

/// HTTPRoute spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRouteSpec {
    /// Gateways or Services (GAMMA) the route attaches to.
    pub parent_refs: Vec<ParentReference>,
    /// Hostnames (intersected with the listener's).
    pub hostnames: Vec<String>,
    /// Rules.
    pub rules: Vec<HttpRouteRule>,
}

/// An HTTPRoute rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRouteRule {
    /// Name.
    pub name: Option<String>,
    /// Matches (any); none: every request under `/`.
    pub matches: Vec<HttpRouteMatch>,
    /// Filters.
    pub filters: Vec<HttpRouteFilter>,
    /// Backends.
    pub backend_refs: Vec<HttpBackendRef>,
    /// Timeouts.
    pub timeouts: Option<HttpRouteTimeouts>,
}

/// An HTTP match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRouteMatch {
    /// Path (default PathPrefix `/`).
    pub path: Option<HttpPathMatch>,
    /// Headers (all must match).
    pub headers: Vec<HttpHeaderMatch>,
    /// Query parameters (all must match).
    pub query_params: Vec<HttpHeaderMatch>,
    /// Method.
    pub method: Option<String>,
}

/// A path match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpPathMatch {
    /// `Exact`, `PathPrefix` (default), `RegularExpression`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// The path (default `/`).
    pub value: Option<String>,
}

/// A header or query parameter match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpHeaderMatch {
    /// `Exact` (default) or `RegularExpression`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// An HTTPRoute filter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRouteFilter {
    /// RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect,
    /// URLRewrite, RequestMirror.
    #[serde(rename = "type")]
    pub type_: String,
    /// Request headers.
    pub request_header_modifier: Option<HttpHeaderFilter>,
    /// Response headers.
    pub response_header_modifier: Option<HttpHeaderFilter>,
    /// Redirect.
    pub request_redirect: Option<HttpRequestRedirectFilter>,
    /// Rewrite.
    #[serde(rename = "urlRewrite")]
    pub url_rewrite: Option<HttpUrlRewriteFilter>,
    /// Mirror.
    pub request_mirror: Option<HttpRequestMirrorFilter>,
}

/// Header modifications.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpHeaderFilter {
    /// Overwrite.
    pub set: Vec<HttpHeader>,
    /// Append.
    pub add: Vec<HttpHeader>,
    /// Remove.
    pub remove: Vec<String>,
}

/// A header name and value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpHeader {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// A redirect.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRequestRedirectFilter {
    /// `http` or `https`.
    pub scheme: Option<String>,
    /// Host.
    pub hostname: Option<String>,
    /// Path.
    pub path: Option<HttpPathModifier>,
    /// Port.
    pub port: Option<i64>,
    /// 301 or 302 (default).
    pub status_code: Option<i64>,
}

/// A rewrite.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpUrlRewriteFilter {
    /// Host.
    pub hostname: Option<String>,
    /// Path.
    pub path: Option<HttpPathModifier>,
}

/// A path modifier.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpPathModifier {
    /// `ReplaceFullPath` or `ReplacePrefixMatch`.
    #[serde(rename = "type")]
    pub type_: String,
    /// For ReplaceFullPath.
    pub replace_full_path: Option<String>,
    /// For ReplacePrefixMatch.
    pub replace_prefix_match: Option<String>,
}

/// A mirror.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRequestMirrorFilter {
    /// The Service port copies go to.
    pub backend_ref: BackendObjectReference,
    /// Percent of requests mirrored (default 100).
    pub percent: Option<i64>,
}

/// Timeouts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRouteTimeouts {
    /// The whole request, retries included.
    pub request: Option<String>,
    /// One try to a backend.
    pub backend_request: Option<String>,
}

/// GRPCRoute spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct GrpcRouteSpec {
    /// Gateways or Services (GAMMA).
    pub parent_refs: Vec<ParentReference>,
    /// Hostnames.
    pub hostnames: Vec<String>,
    /// Rules.
    pub rules: Vec<GrpcRouteRule>,
}

/// A GRPCRoute rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct GrpcRouteRule {
    /// Name.
    pub name: Option<String>,
    /// Matches (any).
    pub matches: Vec<GrpcRouteMatch>,
    /// Filters (header modifiers, mirror).
    pub filters: Vec<GrpcRouteFilter>,
    /// Backends.
    pub backend_refs: Vec<HttpBackendRef>,
}

/// A gRPC match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct GrpcRouteMatch {
    /// Service and method.
    pub method: Option<GrpcMethodMatch>,
    /// Headers.
    pub headers: Vec<HttpHeaderMatch>,
}

/// A gRPC method match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct GrpcMethodMatch {
    /// `Exact` (default) or `RegularExpression`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Service (`pkg.Service`).
    pub service: Option<String>,
    /// Method.
    pub method: Option<String>,
}

/// TCPRoute spec (v1alpha2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TcpRouteSpec {
    /// Gateways.
    pub parent_refs: Vec<ParentReference>,
    /// Rules (the first with backends is served).
    pub rules: Vec<L4RouteRule>,
}

/// TLSRoute spec (v1alpha2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TlsRouteSpec {
    /// Gateways.
    pub parent_refs: Vec<ParentReference>,
    /// SNI hostnames.
    pub hostnames: Vec<String>,
    /// Rules.
    pub rules: Vec<L4RouteRule>,
}

/// A TCP or TLS route rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct L4RouteRule {
    /// Backends.
    pub backend_refs: Vec<BackendRef>,
}

/// ReferenceGrant spec: lets objects of `from` refer to objects of `to`
/// in the grant's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ReferenceGrantSpec {
    /// Who may refer.
    pub from: Vec<ReferenceGrantFrom>,
    /// What may be referred to.
    pub to: Vec<ReferenceGrantTo>,
}

/// A ReferenceGrant source.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ReferenceGrantFrom {
    /// Group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
}

/// A ReferenceGrant target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ReferenceGrantTo {
    /// Group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Name (none: every object of the kind).
    pub name: Option<String>,
}
