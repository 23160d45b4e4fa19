//! Typed objects as the store keeps them: a key, where the object came from,
//! its metadata and its typed body.

use std::fmt;

use rudder_config::{
    contour, emissary, gateway_api as gw, kube, meta::ObjectMeta, AuthorizationPolicySpec,
    DestinationPolicySpec, DestinationRuleSpec, GatewaySpec, MeshConfigSpec,
    PeerAuthenticationSpec, RequestAuthenticationSpec, RouteRuleSpec, ServiceEntrySpec,
    SidecarSpec, TelemetrySpec, VirtualServiceSpec, WorkloadEntrySpec,
};

/// The kinds Rudder serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// core/v1 Namespace (cluster-scoped: key namespace is empty).
    Namespace,
    /// core/v1 ConfigMap `rudder-mesh` (other ConfigMaps are ignored).
    MeshConfig,
    /// core/v1 Service.
    Service,
    /// core/v1 Pod.
    Pod,
    /// core/v1 Endpoints.
    Endpoints,
    /// discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice,
    /// networking.istio.io VirtualService.
    VirtualService,
    /// networking.istio.io DestinationRule.
    DestinationRule,
    /// networking.istio.io Sidecar.
    Sidecar,
    /// networking.istio.io ServiceEntry.
    ServiceEntry,
    /// networking.istio.io WorkloadEntry (endpoints of the services selecting it).
    WorkloadEntry,
    /// config.istio.io/v1alpha2 RouteRule.
    RouteRule,
    /// config.istio.io/v1alpha2 DestinationPolicy.
    DestinationPolicy,
    /// security.istio.io PeerAuthentication.
    PeerAuthentication,
    /// security.istio.io AuthorizationPolicy.
    AuthorizationPolicy,
    /// security.istio.io RequestAuthentication.
    RequestAuthentication,
    /// telemetry.istio.io Telemetry.
    Telemetry,
    /// core/v1 Secret (TLS credentials only; see `compile::secret`).
    Secret,
    /// networking.istio.io Gateway.
    Gateway,
    /// networking.k8s.io/v1 Ingress (served as a Gateway and VirtualServices).
    Ingress,
    /// networking.k8s.io/v1 IngressClass (cluster-scoped).
    IngressClass,
    /// gateway.networking.k8s.io GatewayClass (cluster-scoped).
    GatewayClass,
    /// gateway.networking.k8s.io Gateway (served as an Istio Gateway).
    KubeGateway,
    /// gateway.networking.k8s.io HTTPRoute (served as VirtualServices).
    HttpRoute,
    /// gateway.networking.k8s.io GRPCRoute.
    GrpcRoute,
    /// gateway.networking.k8s.io TCPRoute (v1alpha2).
    TcpRoute,
    /// gateway.networking.k8s.io TLSRoute (v1alpha2).
    TlsRoute,
    /// gateway.networking.k8s.io ReferenceGrant.
    ReferenceGrant,
    /// projectcontour.io/v1 HTTPProxy (served as a Gateway and a VirtualService).
    HttpProxy,
    /// getambassador.io/v3alpha1 Mapping (served as VirtualService routes).
    Mapping,
}

impl Kind {
    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::MeshConfig => "ConfigMap",
            Kind::Service => "Service",
            Kind::Pod => "Pod",
            Kind::Endpoints => "Endpoints",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::VirtualService => "VirtualService",
            Kind::DestinationRule => "DestinationRule",
            Kind::Sidecar => "Sidecar",
            Kind::ServiceEntry => "ServiceEntry",
            Kind::WorkloadEntry => "WorkloadEntry",
            Kind::RouteRule => "RouteRule",
            Kind::DestinationPolicy => "DestinationPolicy",
            Kind::PeerAuthentication => "PeerAuthentication",
            Kind::AuthorizationPolicy => "AuthorizationPolicy",
            Kind::RequestAuthentication => "RequestAuthentication",
            Kind::Telemetry => "Telemetry",
            Kind::Secret => "Secret",
            Kind::Gateway => "Gateway",
            Kind::Ingress => "Ingress",
            Kind::IngressClass => "IngressClass",
            Kind::GatewayClass => "GatewayClass",
            Kind::KubeGateway => "Gateway",
            Kind::HttpRoute => "HTTPRoute",
            Kind::GrpcRoute => "GRPCRoute",
            Kind::TcpRoute => "TCPRoute",
            Kind::TlsRoute => "TLSRoute",
            Kind::ReferenceGrant => "ReferenceGrant",
            Kind::HttpProxy => "HTTPProxy",
            Kind::Mapping => "Mapping",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identity of an object in the store: (kind, namespace, name).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// Kind.
    pub kind: Kind,
    /// Namespace (empty for cluster-scoped kinds).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// A key.
    pub fn new(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of an object of `kind` with this metadata: the namespace
    /// defaults to `default` (as kubectl does) and is empty for Namespaces.
    pub fn from_meta(kind: Kind, meta: &ObjectMeta) -> Self {
        let namespace = match kind {
            Kind::Namespace | Kind::IngressClass | Kind::GatewayClass => String::new(),
            _ => meta.namespace.clone().unwrap_or_else(|| "default".into()),
        };
        Self::new(kind, namespace, meta.name.clone().unwrap_or_default())
    }
}

impl fmt::Display for ObjectKey {
    /// `VirtualService default/reviews` (`Namespace default` when cluster-scoped),
    /// the object part of a diagnostic.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Where an object came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// The source scope that owns it (a file path for the directory source, a
    /// watched kind for Kubernetes). `reset` of this scope replaces it.
    pub scope: String,
    /// File, when it came from one.
    pub file: Option<String>,
    /// Index of the YAML document in the file (0-based).
    pub document: usize,
    /// 1-based line where the object starts, when known.
    pub line: Option<usize>,
}

impl Origin {
    /// `file:line` (or `file`), for diagnostics.
    pub fn location(&self) -> Option<String> {
        self.file.as_ref().map(|f| match self.line {
            Some(l) => format!("{f}:{l}"),
            None => f.clone(),
        })
    }
}

/// The typed body of an object.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// Namespace.
    Namespace(kube::Namespace),
    /// Mesh config (already parsed out of the ConfigMap's `data.mesh`).
    MeshConfig(MeshConfigSpec),
    /// Service.
    Service(kube::Service),
    /// Pod.
    Pod(kube::Pod),
    /// Endpoints.
    Endpoints(kube::Endpoints),
    /// EndpointSlice.
    EndpointSlice(kube::EndpointSlice),
    /// VirtualService.
    VirtualService(VirtualServiceSpec),
    /// DestinationRule.
    DestinationRule(DestinationRuleSpec),
    /// Sidecar.
    Sidecar(SidecarSpec),
    /// ServiceEntry.
    ServiceEntry(ServiceEntrySpec),
    /// WorkloadEntry.
    WorkloadEntry(WorkloadEntrySpec),
    /// RouteRule.
    RouteRule(Box<RouteRuleSpec>),
    /// DestinationPolicy.
    DestinationPolicy(DestinationPolicySpec),
    /// PeerAuthentication.
    PeerAuthentication(PeerAuthenticationSpec),
    /// AuthorizationPolicy.
    AuthorizationPolicy(AuthorizationPolicySpec),
    /// RequestAuthentication.
    RequestAuthentication(RequestAuthenticationSpec),
    /// Telemetry.
    Telemetry(TelemetrySpec),
    /// Secret.
    Secret(kube::Secret),
    /// Gateway.
    Gateway(GatewaySpec),
    /// Ingress.
    Ingress(kube::Ingress),
    /// IngressClass.
    IngressClass(kube::IngressClass),
    /// Gateway API GatewayClass.
    GatewayClass(gw::GatewayClassSpec),
    /// Gateway API Gateway.
    KubeGateway(gw::KubeGatewaySpec),
    /// HTTPRoute.
    HttpRoute(gw::HttpRouteSpec),
    /// GRPCRoute.
    GrpcRoute(gw::GrpcRouteSpec),
    /// TCPRoute.
    TcpRoute(gw::TcpRouteSpec),
    /// TLSRoute.
    TlsRoute(gw::TlsRouteSpec),
    /// ReferenceGrant.
    ReferenceGrant(gw::ReferenceGrantSpec),
    /// Contour HTTPProxy.
    HttpProxy(contour::HttpProxySpec),
    /// Emissary Mapping.
    Mapping(emissary::MappingSpec),
}

impl Body {
    /// The kind of this body.
    pub fn kind(&self) -> Kind {
        match self {
            Body::Namespace(_) => Kind::Namespace,
            Body::MeshConfig(_) => Kind::MeshConfig,
            Body::Service(_) => Kind::Service,
            Body::Pod(_) => Kind::Pod,
            Body::Endpoints(_) => Kind::Endpoints,
            Body::EndpointSlice(_) => Kind::EndpointSlice,
            Body::VirtualService(_) => Kind::VirtualService,
            Body::DestinationRule(_) => Kind::DestinationRule,
            Body::Sidecar(_) => Kind::Sidecar,
            Body::ServiceEntry(_) => Kind::ServiceEntry,
            Body::WorkloadEntry(_) => Kind::WorkloadEntry,
            Body::RouteRule(_) => Kind::RouteRule,
            Body::DestinationPolicy(_) => Kind::DestinationPolicy,
            Body::PeerAuthentication(_) => Kind::PeerAuthentication,
            Body::AuthorizationPolicy(_) => Kind::AuthorizationPolicy,
            Body::RequestAuthentication(_) => Kind::RequestAuthentication,
            Body::Telemetry(_) => Kind::Telemetry,
            Body::Secret(_) => Kind::Secret,
            Body::Gateway(_) => Kind::Gateway,
            Body::Ingress(_) => Kind::Ingress,
            Body::IngressClass(_) => Kind::IngressClass,
            Body::GatewayClass(_) => Kind::GatewayClass,
            Body::KubeGateway(_) => Kind::KubeGateway,
            Body::HttpRoute(_) => Kind::HttpRoute,
            Body::GrpcRoute(_) => Kind::GrpcRoute,
            Body::TcpRoute(_) => Kind::TcpRoute,
            Body::TlsRoute(_) => Kind::TlsRoute,
            Body::ReferenceGrant(_) => Kind::ReferenceGrant,
            Body::HttpProxy(_) => Kind::HttpProxy,
            Body::Mapping(_) => Kind::Mapping,
        }
    }
}

/// One typed object.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    /// Identity.
    pub key: ObjectKey,
    /// Where it came from.
    pub origin: Origin,
    /// Metadata (labels, creation time, ...).
    pub meta: ObjectMeta,
    /// Typed body.
    pub body: Body,
}

impl Object {
    /// An object from its metadata and body; the key comes from both
    /// (namespace defaults to `default`, as kubectl does).
    pub fn new(meta: ObjectMeta, body: Body, origin: Origin) -> Self {
        let key = ObjectKey::from_meta(body.kind(), &meta);
        Self {
            key,
            origin,
            meta,
            body,
        }
    }
}

/// An object whose latest version was rejected (it failed to parse into its
/// type, or validation found errors). The store keeps serving its last good
/// version, if any.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejected {
    /// Identity.
    pub key: ObjectKey,
    /// Where it came from.
    pub origin: Origin,
    /// Why (at least one error).
    pub diagnostics: Vec<rudder_model::Diagnostic>,
}
