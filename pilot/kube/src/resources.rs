//! Trimmed watch types: what the API server sends, reduced on arrival to what
//! the registry uses.
//!
//! The API server cannot project fields, so every watch event carries whole
//! objects. Memory stays bounded because nothing keeps them: each event is
//! deserialised straight into a trimmed type (`rudder_config::kube::*`, which
//! ignore unknown fields, so `managedFields`, container images, env, volumes
//! and the like are skipped by the parser and never allocated), and
//! [`Trimmed::into_object`] drops annotations outside the mesh's own domains
//! (the `kubectl.kubernetes.io/last-applied-configuration` copy of every
//! object is the usual bulk) before the object reaches the store.
//!
//! [`Watched`] wraps a trimmed type so kube-rs can list and watch it: kube's
//! `Resource` trait wants a `k8s_openapi` `ObjectMeta`, of which we keep only
//! name, namespace and resourceVersion (the watcher resumes from the latter).

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta as KubeMeta;
use kube::{
    core::{ApiResource, DynamicResourceScope},
    Resource,
};
use rudder_config::{
    kube as k,
    mesh::{MESH_CONFIGMAP_KEY, MESH_CONFIGMAP_NAME},
    AuthorizationPolicySpec, DestinationPolicySpec, DestinationRuleSpec, MeshConfigSpec,
    ObjectMeta, PeerAuthenticationSpec, RequestAuthenticationSpec, RouteRuleSpec, ServiceEntrySpec,
    SidecarSpec, VirtualServiceSpec, WorkloadEntrySpec,
};
use rudder_model::Diagnostic;
use rudder_registry::{Body, Kind, Object, ObjectKey, Origin, Rejected};
use serde::{de::DeserializeOwned, Deserialize, Deserializer};

/// Annotation domains kept on stored objects; everything else is dropped.
pub const KEPT_ANNOTATION_DOMAINS: [&str; 1] = ["istio.io/"];

/// What a watched object becomes in the registry.
#[derive(Clone, Debug, PartialEq)]
pub enum Converted {
    /// A typed object to apply (boxed: it is much larger than a rejection).
    Good(Box<Object>),
    /// A rejection naming the field and why (the last good version stays).
    Bad(Rejected),
}

impl Converted {
    /// The object, if it converted.
    pub fn good(self) -> Option<Object> {
        match self {
            Converted::Good(o) => Some(*o),
            Converted::Bad(_) => None,
        }
    }

    /// The rejection, if it did not.
    pub fn bad(self) -> Option<Rejected> {
        match self {
            Converted::Good(_) => None,
            Converted::Bad(r) => Some(r),
        }
    }
}

/// A trimmed object type the source can watch.
pub trait Trimmed: DeserializeOwned + Clone + std::fmt::Debug + Send + Sync + 'static {
    /// Its metadata.
    fn metadata(&self) -> &ObjectMeta;
    /// Converts into the registry's typed object (or a rejection naming the
    /// field and why), keeping only what the registry reads.
    fn into_object(self, kind: Kind, origin: Origin) -> Converted;
    /// For route rules: what the status writer compares against.
    fn rule_state(&self) -> Option<RuleState> {
        None
    }
}

/// A trimmed object as kube-rs lists and watches it (see the module docs).
#[derive(Clone, Debug)]
pub struct Watched<T> {
    meta: KubeMeta,
    /// The trimmed object.
    pub object: T,
}

impl<'de, T: Trimmed> Deserialize<'de> for Watched<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let object = T::deserialize(d)?;
        let m = object.metadata();
        let meta = KubeMeta {
            name: m.name.clone(),
            namespace: m.namespace.clone(),
            resource_version: m.resource_version.clone(),
            ..KubeMeta::default()
        };
        Ok(Self { meta, object })
    }
}

impl<T> Resource for Watched<T> {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        Cow::Borrowed(&dt.kind)
    }
    fn group(dt: &ApiResource) -> Cow<'_, str> {
        Cow::Borrowed(&dt.group)
    }
    fn version(dt: &ApiResource) -> Cow<'_, str> {
        Cow::Borrowed(&dt.version)
    }
    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        Cow::Borrowed(&dt.api_version)
    }
    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        Cow::Borrowed(&dt.plural)
    }
    fn meta(&self) -> &KubeMeta {
        &self.meta
    }
    fn meta_mut(&mut self) -> &mut KubeMeta {
        &mut self.meta
    }
}

/// The API resource (group, version, kind, plural) of a kind as Rudder
/// watches it: core and discovery kinds at their GA versions, the Istio
/// kinds at their storage versions (`v1`; `v1alpha2` for `config.istio.io`).
pub fn api_resource(kind: Kind) -> ApiResource {
    const GW: &str = rudder_config::gateway_api::GROUP;
    let (group, version, kind_name, plural) = match kind {
        Kind::Namespace => ("", "v1", "Namespace", "namespaces"),
        Kind::MeshConfig => ("", "v1", "ConfigMap", "configmaps"),
        Kind::Service => ("", "v1", "Service", "services"),
        Kind::Pod => ("", "v1", "Pod", "pods"),
        Kind::Endpoints => ("", "v1", "Endpoints", "endpoints"),
        Kind::Secret => ("", "v1", "Secret", "secrets"),
        Kind::EndpointSlice => ("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
        Kind::VirtualService => (
            "networking.istio.io",
            "v1",
            "VirtualService",
            "virtualservices",
        ),
        Kind::DestinationRule => (
            "networking.istio.io",
            "v1",
            "DestinationRule",
            "destinationrules",
        ),
        Kind::Sidecar => ("networking.istio.io", "v1", "Sidecar", "sidecars"),
        Kind::ServiceEntry => (
            "networking.istio.io",
            "v1",
            "ServiceEntry",
            "serviceentries",
        ),
        Kind::WorkloadEntry => (
            "networking.istio.io",
            "v1",
            "WorkloadEntry",
            "workloadentries",
        ),
        Kind::Gateway => ("networking.istio.io", "v1", "Gateway", "gateways"),
        Kind::Ingress => ("networking.k8s.io", "v1", "Ingress", "ingresses"),
        Kind::IngressClass => ("networking.k8s.io", "v1", "IngressClass", "ingressclasses"),
        Kind::GatewayClass => (GW, "v1", "GatewayClass", "gatewayclasses"),
        Kind::KubeGateway => (GW, "v1", "Gateway", "gateways"),
        Kind::HttpRoute => (GW, "v1", "HTTPRoute", "httproutes"),
        Kind::GrpcRoute => (GW, "v1", "GRPCRoute", "grpcroutes"),
        Kind::TcpRoute => (GW, "v1alpha2", "TCPRoute", "tcproutes"),
        Kind::TlsRoute => (GW, "v1alpha2", "TLSRoute", "tlsroutes"),
        Kind::ReferenceGrant => (GW, "v1beta1", "ReferenceGrant", "referencegrants"),
        Kind::HttpProxy => (
            rudder_config::contour::GROUP,
            rudder_config::contour::VERSION,
            "HTTPProxy",
            "httpproxies",
        ),
        Kind::Mapping => (
            rudder_config::emissary::GROUP,
            rudder_config::emissary::VERSION,
            "Mapping",
            "mappings",
        ),
        Kind::RouteRule => ("config.istio.io", "v1alpha2", "RouteRule", "routerules"),
        Kind::DestinationPolicy => (
            "config.istio.io",
            "v1alpha2",
            "DestinationPolicy",
            "destinationpolicies",
        ),
        Kind::PeerAuthentication => (
            "security.istio.io",
            "v1",
            "PeerAuthentication",
            "peerauthentications",
        ),
        Kind::AuthorizationPolicy => (
            "security.istio.io",
            "v1",
            "AuthorizationPolicy",
            "authorizationpolicies",
        ),
        Kind::RequestAuthentication => (
            "security.istio.io",
            "v1",
            "RequestAuthentication",
            "requestauthentications",
        ),
        Kind::Telemetry => ("telemetry.istio.io", "v1", "Telemetry", "telemetries"),
    };
    let api_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version,
        kind: kind_name.into(),
        plural: plural.into(),
    }
}

/// Drops annotations outside [`KEPT_ANNOTATION_DOMAINS`].
fn trim(mut meta: ObjectMeta) -> ObjectMeta {
    meta.annotations.retain(|k, _| {
        let domain = k.split_once('/').map_or("", |(d, _)| d);
        KEPT_ANNOTATION_DOMAINS.iter().any(|kept| {
            let kept = kept.trim_end_matches('/');
            domain == kept || domain.ends_with(&format!(".{kept}"))
        })
    });
    meta
}

fn rejected(key: ObjectKey, origin: Origin, field: String, message: String) -> Rejected {
    let d = Diagnostic::error(key.to_string(), field, message);
    Rejected {
        key,
        origin,
        diagnostics: vec![d],
    }
}

macro_rules! platform_kind {
    ($ty:ty, $variant:ident) => {
        impl Trimmed for $ty {
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn into_object(mut self, _kind: Kind, origin: Origin) -> Converted {
                self.metadata = trim(std::mem::take(&mut self.metadata));
                Converted::Good(Box::new(Object::new(
                    self.metadata.clone(),
                    Body::$variant(self),
                    origin,
                )))
            }
        }
    };
}

platform_kind!(k::Namespace, Namespace);
platform_kind!(k::Service, Service);
platform_kind!(k::Pod, Pod);
platform_kind!(k::Endpoints, Endpoints);
platform_kind!(k::EndpointSlice, EndpointSlice);
platform_kind!(k::IngressClass, IngressClass);

impl Trimmed for k::Ingress {
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    /// Keeps the legacy class annotation (`kubernetes.io/ingress.class`)
    /// beside the mesh's own: it decides whether Rudder serves the Ingress.
    fn into_object(mut self, _kind: Kind, origin: Origin) -> Converted {
        let class = self
            .metadata
            .annotations
            .remove(k::INGRESS_CLASS_ANNOTATION);
        self.metadata = trim(std::mem::take(&mut self.metadata));
        if let Some(class) = class {
            self.metadata
                .annotations
                .insert(k::INGRESS_CLASS_ANNOTATION.to_string(), class);
        }
        Converted::Good(Box::new(Object::new(
            self.metadata.clone(),
            Body::Ingress(self),
            origin,
        )))
    }
}

/// The Secret keys a TLS credential uses (Istio's both spellings); every
/// other key (and its value) is dropped on arrival.
pub const CREDENTIAL_KEYS: [&str; 6] = ["tls.crt", "tls.key", "ca.crt", "cert", "key", "cacert"];

/// The field selector of the Secret watch: the types that never hold a TLS
/// credential stay on the API server (as istiod's secret controller).
pub const SECRET_FIELD_SELECTOR: &str =
    "type!=kubernetes.io/service-account-token,type!=helm.sh/release.v1";

impl Trimmed for k::Secret {
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    /// Only the credential keys are kept; a Secret without them is stored
    /// empty (metadata only), so the registry sees it is no credential.
    fn into_object(mut self, _kind: Kind, origin: Origin) -> Converted {
        self.metadata = trim(std::mem::take(&mut self.metadata));
        self.data
            .retain(|k, _| CREDENTIAL_KEYS.contains(&k.as_str()));
        self.string_data
            .retain(|k, _| CREDENTIAL_KEYS.contains(&k.as_str()));
        Converted::Good(Box::new(Object::new(
            self.metadata.clone(),
            Body::Secret(self),
            origin,
        )))
    }
}

impl Trimmed for k::ConfigMap {
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    /// The `rudder-mesh` ConfigMap: `data.mesh` parsed as mesh config (the
    /// watch selects it by name; anything else is a caller's mistake).
    fn into_object(self, kind: Kind, origin: Origin) -> Converted {
        let meta = trim(self.metadata);
        let key = ObjectKey::from_meta(kind, &meta);
        if meta.name.as_deref() != Some(MESH_CONFIGMAP_NAME) {
            return Converted::Bad(rejected(
                key,
                origin,
                "metadata.name".into(),
                format!("only ConfigMap {MESH_CONFIGMAP_NAME} is read"),
            ));
        }
        let text = self
            .data
            .get(MESH_CONFIGMAP_KEY)
            .map(String::as_str)
            .unwrap_or("");
        let mesh = if text.trim().is_empty() {
            MeshConfigSpec::default()
        } else {
            match serde_saphyr::from_str::<MeshConfigSpec>(text) {
                Ok(m) => m,
                Err(e) => {
                    let msg = e.without_snippet().to_string();
                    return Converted::Bad(rejected(
                        key,
                        origin,
                        format!("data.{MESH_CONFIGMAP_KEY}"),
                        msg.trim().to_string(),
                    ));
                }
            }
        };
        Converted::Good(Box::new(Object::new(meta, Body::MeshConfig(mesh), origin)))
    }
}

/// An Istio config object (route rule or security policy) as watched: metadata, the spec kept as JSON until
/// [`Trimmed::into_object`] parses it (a spec that does not parse is a
/// rejection naming the field, not a watch error that would stall the list),
/// and our own conditions, so status writes can be level-based.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct RuleObject {
    /// Metadata.
    pub metadata: RuleMeta,
    /// Spec, unparsed.
    pub spec: serde_json::Value,
    /// Status as last written.
    pub status: RuleStatusSeen,
}

/// Rule metadata: the common fields plus `generation` (which the directory
/// source has no use for, so `rudder_config::ObjectMeta` lacks it).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct RuleMeta {
    /// Common fields.
    #[serde(flatten)]
    pub common: ObjectMeta,
    /// Spec generation (status conditions report which one they judged).
    pub generation: Option<i64>,
}

/// The part of a rule's status the status writer compares against.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RuleStatusSeen {
    /// Conditions, as written.
    pub conditions: Vec<crate::crds::Condition>,
}

/// What the status writer needs to know of a rule in the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleState {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Our `Valid` condition as the cluster has it now.
    pub valid: Option<crate::crds::Condition>,
}

impl Trimmed for RuleObject {
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata.common
    }

    fn rule_state(&self) -> Option<RuleState> {
        let valid = self
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == crate::crds::VALID_CONDITION)
            .cloned();
        Some(RuleState {
            generation: self.metadata.generation,
            valid,
        })
    }

    fn into_object(self, kind: Kind, origin: Origin) -> Converted {
        // An HTTPProxy's class annotations decide whether Rudder serves it.
        let classes: Vec<(String, String)> = match kind {
            Kind::HttpProxy => [
                rudder_config::contour::CLASS_ANNOTATION,
                k::INGRESS_CLASS_ANNOTATION,
            ]
            .into_iter()
            .filter_map(|a| {
                let v = self.metadata.common.annotations.get(a)?;
                Some((a.to_string(), v.clone()))
            })
            .collect(),
            _ => Vec::new(),
        };
        let mut meta = trim(self.metadata.common);
        meta.annotations.extend(classes);
        let key = ObjectKey::from_meta(kind, &meta);
        let body = match kind {
            Kind::VirtualService => {
                parse_spec::<VirtualServiceSpec>(self.spec).map(Body::VirtualService)
            }
            Kind::DestinationRule => {
                parse_spec::<DestinationRuleSpec>(self.spec).map(Body::DestinationRule)
            }
            Kind::Sidecar => parse_spec::<SidecarSpec>(self.spec).map(Body::Sidecar),
            Kind::ServiceEntry => parse_spec::<ServiceEntrySpec>(self.spec).map(Body::ServiceEntry),
            Kind::WorkloadEntry => {
                parse_spec::<WorkloadEntrySpec>(self.spec).map(Body::WorkloadEntry)
            }
            Kind::Gateway => parse_spec::<rudder_config::GatewaySpec>(self.spec).map(Body::Gateway),
            Kind::RouteRule => {
                parse_spec::<RouteRuleSpec>(self.spec).map(|s| Body::RouteRule(Box::new(s)))
            }
            Kind::DestinationPolicy => {
                parse_spec::<DestinationPolicySpec>(self.spec).map(Body::DestinationPolicy)
            }
            Kind::PeerAuthentication => {
                parse_spec::<PeerAuthenticationSpec>(self.spec).map(Body::PeerAuthentication)
            }
            Kind::AuthorizationPolicy => {
                parse_spec::<AuthorizationPolicySpec>(self.spec).map(Body::AuthorizationPolicy)
            }
            Kind::RequestAuthentication => {
                parse_spec::<RequestAuthenticationSpec>(self.spec).map(Body::RequestAuthentication)
            }
            Kind::Telemetry => {
                parse_spec::<rudder_config::TelemetrySpec>(self.spec).map(Body::Telemetry)
            }
            Kind::GatewayClass => parse_spec(self.spec).map(Body::GatewayClass),
            Kind::KubeGateway => parse_spec(self.spec).map(Body::KubeGateway),
            Kind::HttpRoute => parse_spec(self.spec).map(Body::HttpRoute),
            Kind::GrpcRoute => parse_spec(self.spec).map(Body::GrpcRoute),
            Kind::TcpRoute => parse_spec(self.spec).map(Body::TcpRoute),
            Kind::TlsRoute => parse_spec(self.spec).map(Body::TlsRoute),
            Kind::ReferenceGrant => parse_spec(self.spec).map(Body::ReferenceGrant),
            Kind::HttpProxy => parse_spec(self.spec).map(Body::HttpProxy),
            Kind::Mapping => parse_spec(self.spec).map(Body::Mapping),
            other => Err((
                "kind".to_string(),
                format!("{other} is not an Istio config kind"),
            )),
        };
        match body {
            Ok(body) => Converted::Good(Box::new(Object::new(meta, body, origin))),
            Err((field, message)) => Converted::Bad(rejected(key, origin, field, message)),
        }
    }
}

/// Parses a spec, naming the first bad field as `spec.<path>`.
fn parse_spec<S: DeserializeOwned>(spec: serde_json::Value) -> Result<S, (String, String)> {
    let spec = if spec.is_null() {
        serde_json::Value::Object(Default::default())
    } else {
        spec
    };
    serde_path_to_error::deserialize(spec).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." || path.is_empty() {
            "spec".to_string()
        } else {
            format!("spec.{path}")
        };
        (field, e.into_inner().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin {
            scope: "kubernetes/test".into(),
            ..Origin::default()
        }
    }

    #[test]
    fn secrets_keep_only_credential_keys() {
        let json = serde_json::json!({
            "metadata": {"name": "s", "namespace": "ns", "resourceVersion": "3"},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5", "password": "aHVudGVyMg=="},
        });
        let w: Watched<k::Secret> = serde_json::from_value(json).unwrap();
        let o = w.object.into_object(Kind::Secret, origin()).good().unwrap();
        let Body::Secret(s) = o.body else {
            panic!("not a Secret")
        };
        let keys: Vec<&String> = s.data.keys().collect();
        assert_eq!(keys, ["tls.crt", "tls.key"]);
        assert_eq!(o.key, ObjectKey::new(Kind::Secret, "ns", "s"));
    }

    #[test]
    fn pods_keep_only_mesh_annotations_and_used_fields() {
        let json = serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "resourceVersion": "7",
                "labels": {"app": "a"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...big...}",
                                "sidecar.istio.io/inject": "true", "example.com/x": "y"},
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"serviceAccountName": "sa", "containers": [{"name": "c", "image": "i", "env": [{"name": "A", "value": "B"}],
                      "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"podIP": "10.0.0.1", "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        });
        let w: Watched<k::Pod> = serde_json::from_value(json).unwrap();
        assert_eq!(w.meta().resource_version.as_deref(), Some("7"));
        assert_eq!(w.meta().namespace.as_deref(), Some("ns"));
        let o = w.object.into_object(Kind::Pod, origin()).good().unwrap();
        assert_eq!(o.key, ObjectKey::new(Kind::Pod, "ns", "p"));
        assert_eq!(
            o.meta.annotations.keys().collect::<Vec<_>>(),
            vec!["sidecar.istio.io/inject"]
        );
        let Body::Pod(p) = o.body else {
            panic!("not a pod")
        };
        assert_eq!(p.metadata.annotations.len(), 1);
        assert_eq!(p.spec.service_account_name.as_deref(), Some("sa"));
        assert_eq!(p.spec.containers[0].ports[0].container_port, 8080);
    }

    #[test]
    fn a_bad_rule_spec_is_a_rejection_naming_the_field() {
        let json = serde_json::json!({
            "metadata": {"name": "reviews", "namespace": "default", "resourceVersion": "3"},
            "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}, "wieght": 3}]}]}
        });
        let w: Watched<RuleObject> = serde_json::from_value(json).unwrap();
        let r = w
            .object
            .into_object(Kind::VirtualService, origin())
            .bad()
            .unwrap();
        assert_eq!(
            r.key,
            ObjectKey::new(Kind::VirtualService, "default", "reviews")
        );
        let d = &r.diagnostics[0];
        assert_eq!(d.field, "spec.http[0].route[0].wieght");
        assert!(d.message.contains("wieght"), "{}", d.message);
    }

    #[test]
    fn mesh_config_parses_data_mesh_or_names_it() {
        let cm: k::ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "rudder-mesh", "namespace": "rudder-system"},
            "data": {"mesh": "rootNamespace: istio-system\ntrustDomain: example.org\n"}
        }))
        .unwrap();
        let o = cm.into_object(Kind::MeshConfig, origin()).good().unwrap();
        let Body::MeshConfig(m) = o.body else {
            panic!()
        };
        assert_eq!(m.root_namespace.as_deref(), Some("istio-system"));
        let bad: k::ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "rudder-mesh", "namespace": "rudder-system"},
            "data": {"mesh": "rootNamespace: [unclosed\n"}
        }))
        .unwrap();
        let r = bad.into_object(Kind::MeshConfig, origin()).bad().unwrap();
        assert_eq!(r.diagnostics[0].field, "data.mesh");
    }

    #[test]
    fn watched_kinds_use_storage_versions() {
        assert_eq!(
            api_resource(Kind::VirtualService).api_version,
            "networking.istio.io/v1"
        );
        assert_eq!(
            api_resource(Kind::RouteRule).api_version,
            "config.istio.io/v1alpha2"
        );
        assert_eq!(api_resource(Kind::Pod).api_version, "v1");
        assert_eq!(
            Watched::<k::Pod>::url_path(&api_resource(Kind::EndpointSlice), None),
            "/apis/discovery.k8s.io/v1/endpointslices"
        );
    }
}
