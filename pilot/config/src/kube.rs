//! Kubernetes kinds, trimmed to the fields Rudder uses. Unknown fields are
//! ignored: these come from the API server (or a user's full manifests), and a
//! store that keeps only what is used stays small.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;

/// core/v1 Namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Namespace {
    /// Metadata (labels such as `istio-injection`).
    pub metadata: ObjectMeta,
}

/// core/v1 ConfigMap.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ConfigMap {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Data.
    pub data: BTreeMap<String, String>,
}

/// core/v1 Service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Service {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    pub spec: ServiceSpec,
}

/// Service spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceSpec {
    /// VIP, `None` (string) for headless.
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    /// Every VIP of a dual-stack Service (the first is `clusterIP`).
    #[serde(rename = "clusterIPs")]
    pub cluster_ips: Vec<String>,
    /// Ports.
    pub ports: Vec<ServicePort>,
    /// Pod selector.
    pub selector: BTreeMap<String, String>,
    /// `ClusterIP` (default), `NodePort`, `LoadBalancer` or `ExternalName`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// The DNS name an `ExternalName` Service stands for.
    pub external_name: Option<String>,
}

/// A Service port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ServicePort {
    /// Name (protocol prefix: `http`, `grpc-foo`, ...).
    pub name: Option<String>,
    /// Port clients dial.
    pub port: i32,
    /// Container port (number or name); defaults to `port`.
    pub target_port: Option<IntOrString>,
    /// `TCP` (default), `UDP`, `SCTP`.
    pub protocol: Option<String>,
    /// Application protocol (wins over the name prefix).
    pub app_protocol: Option<String>,
}

/// A port number or a port name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum IntOrString {
    /// Number.
    Int(i32),
    /// Name.
    String(String),
}

/// core/v1 Pod.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Pod {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    pub spec: PodSpec,
    /// Status.
    pub status: PodStatus,
}

/// Pod spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSpec {
    /// Service account (identity); `default` when unset.
    pub service_account_name: Option<String>,
    /// Containers (only their ports matter).
    pub containers: Vec<Container>,
    /// Host-network pods are never meshed.
    pub host_network: bool,
}

/// A container, trimmed to its ports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Container {
    /// Name.
    pub name: String,
    /// Ports.
    pub ports: Vec<ContainerPort>,
}

/// A container port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerPort {
    /// Name (target of named `targetPort`s).
    pub name: Option<String>,
    /// Port.
    pub container_port: i32,
}

/// Pod status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct PodStatus {
    /// Primary IP.
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
    /// All IPs.
    #[serde(rename = "podIPs")]
    pub pod_ips: Vec<PodIp>,
    /// `Pending`, `Running`, `Succeeded`, `Failed`.
    pub phase: Option<String>,
    /// Conditions (`Ready`).
    pub conditions: Vec<PodCondition>,
}

/// One pod IP.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct PodIp {
    /// Address.
    pub ip: String,
}

/// A pod condition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct PodCondition {
    /// `Ready`, ...
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False`, `Unknown`.
    pub status: String,
}

/// A reference to the object behind an endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectReference {
    /// `Pod`.
    pub kind: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Namespace.
    pub namespace: Option<String>,
}

/// core/v1 Endpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Endpoints {
    /// Metadata (same name as the Service).
    pub metadata: ObjectMeta,
    /// Subsets.
    pub subsets: Vec<EndpointSubset>,
}

/// An Endpoints subset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointSubset {
    /// Ready addresses.
    pub addresses: Vec<EndpointAddress>,
    /// Not-ready addresses.
    pub not_ready_addresses: Vec<EndpointAddress>,
    /// Ports.
    pub ports: Vec<EndpointPort>,
}

/// An Endpoints address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointAddress {
    /// IP.
    pub ip: String,
    /// Pod behind it.
    pub target_ref: Option<ObjectReference>,
}

/// An endpoint port (Endpoints and EndpointSlice).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointPort {
    /// Name (matches the Service port's name).
    pub name: Option<String>,
    /// Port.
    pub port: Option<i32>,
}

/// discovery.k8s.io/v1 EndpointSlice (label `kubernetes.io/service-name`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointSlice {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// `IPv4`, `IPv6`, `FQDN`.
    pub address_type: Option<String>,
    /// Endpoints.
    pub endpoints: Vec<SliceEndpoint>,
    /// Ports.
    pub ports: Vec<EndpointPort>,
}

/// One EndpointSlice endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct SliceEndpoint {
    /// Addresses (the first one is used, as kube-proxy does).
    pub addresses: Vec<String>,
    /// Conditions.
    pub conditions: SliceConditions,
    /// Pod behind it.
    pub target_ref: Option<ObjectReference>,
    /// The zone it runs in (its locality when its pod gives none).
    pub zone: Option<String>,
}

/// EndpointSlice endpoint conditions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct SliceConditions {
    /// Ready (absent means ready).
    pub ready: Option<bool>,
}

/// The label naming an EndpointSlice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Service annotation naming the namespaces that see it (Istio's):
/// comma-separated `.`, `*`, `~` or namespace names.
pub const EXPORT_TO_ANNOTATION: &str = "networking.istio.io/exportTo";

/// core/v1 Secret: only TLS credentials are used (`kubernetes.io/tls`, or
/// generic/Opaque with the same keys or Istio's `cert`/`key`/`cacert`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Secret {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// `kubernetes.io/tls`, `Opaque` (the default), ...
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Values, base64-encoded.
    pub data: BTreeMap<String, String>,
    /// Values in plain text (they win over `data`, as the API server merges them).
    pub string_data: BTreeMap<String, String>,
}

/// networking.k8s.io/v1 Ingress: served by the ingress gateway when its
/// class is Istio's or Rudder's (see the registry's `compile::ingress`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Ingress {
    /// Metadata (annotation `kubernetes.io/ingress.class`).
    pub metadata: ObjectMeta,
    /// Spec.
    pub spec: IngressSpec,
}

/// The legacy annotation naming an Ingress's class.
pub const INGRESS_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// The IngressClass `spec.controller` of Istio's ingress (Rudder serves it).
pub const ISTIO_INGRESS_CONTROLLER: &str = "istio.io/ingress-controller";

/// Ingress spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct IngressSpec {
    /// The IngressClass (cluster-scoped) that decides who serves it.
    pub ingress_class_name: Option<String>,
    /// The backend of requests no rule matches.
    pub default_backend: Option<IngressBackend>,
    /// TLS: hosts and the Secret with their certificate.
    pub tls: Vec<IngressTls>,
    /// Host rules.
    pub rules: Vec<IngressRule>,
}

/// One `tls` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct IngressTls {
    /// Hosts of the certificate (all hosts when empty).
    pub hosts: Vec<String>,
    /// The `kubernetes.io/tls` Secret.
    pub secret_name: Option<String>,
}

/// One rule: a host (or every host) and its paths.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct IngressRule {
    /// Host (`foo.com`, `*.foo.com`; every host when absent).
    pub host: Option<String>,
    /// HTTP paths.
    pub http: Option<HttpIngressRuleValue>,
}

/// The paths of a rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpIngressRuleValue {
    /// Paths.
    pub paths: Vec<HttpIngressPath>,
}

/// One path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpIngressPath {
    /// Path (starts with `/`).
    pub path: Option<String>,
    /// `Exact`, `Prefix` or `ImplementationSpecific`.
    pub path_type: Option<String>,
    /// Where matching requests go.
    pub backend: IngressBackend,
}

/// An Ingress backend: a Service port or a resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct IngressBackend {
    /// A Service of the Ingress's namespace.
    pub service: Option<IngressServiceBackend>,
    /// Another object (not served: only its presence is kept).
    pub resource: Option<serde_json::Value>,
}

/// A Service backend.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct IngressServiceBackend {
    /// Service name.
    pub name: String,
    /// Its port, by number or name.
    pub port: ServiceBackendPort,
}

/// A Service port by number or by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceBackendPort {
    /// Port name.
    pub name: Option<String>,
    /// Port number.
    pub number: Option<i32>,
}

/// networking.k8s.io/v1 IngressClass (cluster-scoped).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct IngressClass {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    pub spec: IngressClassSpec,
}

/// IngressClass spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct IngressClassSpec {
    /// The controller (`istio.io/ingress-controller` for Istio's).
    pub controller: Option<String>,
}
