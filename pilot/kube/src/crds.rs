//! The Istio CRDs, defined once: kube's `CustomResource` derive over the
//! kube-free specs of `rudder-config`, one derived type per served version,
//! merged into one CRD per kind with a single storage version.
//!
//! ```text
//!  rudder_config::VirtualServiceSpec ──(newtype, same schema)──► v1 / v1beta1 / v1alpha3 ──merge_crds──► CRD (storage v1)
//!  rudder_config::RouteRuleSpec      ─────────────────────────► v1alpha2 ─────────────────────────────► CRD (storage v1alpha2)
//!  rudder_config::PeerAuthenticationSpec ─────────────────────► v1 / v1beta1 ─────────────merge_crds──► CRD (storage v1)
//! ```
//!
//! Each schema is then made structural ([`make_structural`]) and its integer
//! formats rewritten to the ones the API server knows ([`use_known_formats`]:
//! `u32` is `int64` with `minimum: 0`, `maximum: 4294967295`), so applying the
//! CRDs is silent. `spec` and `status` keep unknown fields
//! (`x-kubernetes-preserve-unknown-fields`, [`PRESERVING_FIELDS`]).
//!
//! All versions of a kind share one schema, so conversion is `None` (the API
//! server only rewrites `apiVersion`), exactly as Istio's own CRDs do.
//! `manifests/crds.yaml` is [`crds_yaml`]'s output (`cargo run -p rudder-kube
//! --bin rudder-crds > manifests/crds.yaml`); a test keeps them equal.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{core::crd::merge_crds, CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{formats::use_known_formats, structural::make_structural};

/// The condition type pilot writes on route rules.
pub const VALID_CONDITION: &str = "Valid";

/// Errors generating CRDs.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// The per-version CRDs could not be merged (they disagree on names).
    #[error("merging the versions of {kind}: {source}")]
    Merge {
        /// Kind.
        kind: &'static str,
        /// Cause.
        source: kube::core::crd::MergeError,
    },
    /// YAML rendering failed.
    #[error("rendering CRD {name} as YAML: {message}")]
    Yaml {
        /// CRD name.
        name: String,
        /// Cause.
        message: String,
    },
}

/// A status condition, shaped like `metav1.Condition` so `kubectl describe`
/// and `kubectl wait --for=condition=Valid` understand it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct Condition {
    /// `Valid`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True` or `False`.
    pub status: String,
    /// CamelCase reason (`Accepted`, `Invalid`).
    pub reason: String,
    /// What is wrong, naming field and why.
    pub message: String,
    /// The spec generation this judges.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// RFC 3339 time of the last status change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// Status of a route rule: pilot's verdict on it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct RuleStatus {
    /// Conditions (`Valid`).
    pub conditions: Vec<Condition>,
}

/// One module per (kind, version): the derive names the generated type after
/// the kind, so versions of one kind cannot share a module.
macro_rules! crd_version {
    ($module:ident, $spec:ident, $inner:ty, $group:tt, $version:tt, $kind:tt, $plural:tt, [$($short:tt),*], [$($cat:tt),*]) => {
        #[doc = concat!("`", $group, "/", $version, "` ", $kind, ".")]
        pub mod $module {
            use super::*;

            #[doc = concat!("The ", $kind, " spec (same schema in every served version).")]
            #[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
            #[kube(group = $group, version = $version, kind = $kind, plural = $plural, namespaced)]
            #[kube(status = "RuleStatus")]
            $(#[kube(shortname = $short)])*
            $(#[kube(category = $cat)])*
            #[serde(transparent)]
            pub struct $spec(pub $inner);
        }
    };
}

crd_version!(
    vs_v1,
    VirtualServiceSpec,
    rudder_config::VirtualServiceSpec,
    "networking.istio.io",
    "v1",
    "VirtualService",
    "virtualservices",
    ["vs"],
    ["istio-io", "networking-istio-io"]
);
crd_version!(
    vs_v1beta1,
    VirtualServiceSpec,
    rudder_config::VirtualServiceSpec,
    "networking.istio.io",
    "v1beta1",
    "VirtualService",
    "virtualservices",
    ["vs"],
    ["istio-io", "networking-istio-io"]
);
crd_version!(
    vs_v1alpha3,
    VirtualServiceSpec,
    rudder_config::VirtualServiceSpec,
    "networking.istio.io",
    "v1alpha3",
    "VirtualService",
    "virtualservices",
    ["vs"],
    ["istio-io", "networking-istio-io"]
);
crd_version!(
    dr_v1,
    DestinationRuleSpec,
    rudder_config::DestinationRuleSpec,
    "networking.istio.io",
    "v1",
    "DestinationRule",
    "destinationrules",
    ["dr"],
    ["istio-io", "networking-istio-io"]
);
crd_version!(
    dr_v1beta1,
    DestinationRuleSpec,
    rudder_config::DestinationRuleSpec,
    "networking.istio.io",
    "v1beta1",
    "DestinationRule",
    "destinationrules",
    ["dr"],
    ["istio-io", "networking-istio-io"]
);
crd_version!(
    dr_v1alpha3,
    DestinationRuleSpec,
    rudder_config::DestinationRuleSpec,
    "networking.istio.io",
    "v1alpha3",
    "DestinationRule",
    "destinationrules",
    ["dr"],
    ["istio-io", "networking-istio-io"]
);
crd_version!(
    gw_v1,
    GatewaySpec,
    rudder_config::GatewaySpec,
    "networking.istio.io",
    "v1",
    "Gateway",
    "gateways",
    ["gw"],
    ["istio-io", "networking-istio-io"]
);
crd_version!(
    gw_v1beta1,
    GatewaySpec,
    rudder_config::GatewaySpec,
    "networking.istio.io",
    "v1beta1",
    "Gateway",
    "gateways",
    ["gw"],
    ["istio-io", "networking-istio-io"]
);
crd_version!(
    gw_v1alpha3,
    GatewaySpec,
    rudder_config::GatewaySpec,
    "networking.istio.io",
    "v1alpha3",
    "Gateway",
    "gateways",
    ["gw"],
    ["istio-io", "networking-istio-io"]
);
crd_version!(
    sc_v1,
    SidecarSpec,
    rudder_config::SidecarSpec,
    "networking.istio.io",
    "v1",
    "Sidecar",
    "sidecars",
    [],
    ["istio-io", "networking-istio-io"]
);
crd_version!(
    sc_v1beta1,
    SidecarSpec,
    rudder_config::SidecarSpec,
    "networking.istio.io",
    "v1beta1",
    "Sidecar",
    "sidecars",
    [],
    ["istio-io", "networking-istio-io"]
);
crd_version!(
    se_v1,
    ServiceEntrySpec,
    rudder_config::ServiceEntrySpec,
    "networking.istio.io",
    "v1",
    "ServiceEntry",
    "serviceentries",
    ["se"],
    ["istio-io", "networking-istio-io"]
);
crd_version!(
    se_v1beta1,
    ServiceEntrySpec,
    rudder_config::ServiceEntrySpec,
    "networking.istio.io",
    "v1beta1",
    "ServiceEntry",
    "serviceentries",
    ["se"],
    ["istio-io", "networking-istio-io"]
);
crd_version!(
    se_v1alpha3,
    ServiceEntrySpec,
    rudder_config::ServiceEntrySpec,
    "networking.istio.io",
    "v1alpha3",
    "ServiceEntry",
    "serviceentries",
    ["se"],
    ["istio-io", "networking-istio-io"]
);
crd_version!(
    we_v1,
    WorkloadEntrySpec,
    rudder_config::WorkloadEntrySpec,
    "networking.istio.io",
    "v1",
    "WorkloadEntry",
    "workloadentries",
    ["we"],
    ["istio-io", "networking-istio-io"]
);
crd_version!(
    we_v1beta1,
    WorkloadEntrySpec,
    rudder_config::WorkloadEntrySpec,
    "networking.istio.io",
    "v1beta1",
    "WorkloadEntry",
    "workloadentries",
    ["we"],
    ["istio-io", "networking-istio-io"]
);
crd_version!(
    we_v1alpha3,
    WorkloadEntrySpec,
    rudder_config::WorkloadEntrySpec,
    "networking.istio.io",
    "v1alpha3",
    "WorkloadEntry",
    "workloadentries",
    ["we"],
    ["istio-io", "networking-istio-io"]
);
crd_version!(
    sc_v1alpha3,
    SidecarSpec,
    rudder_config::SidecarSpec,
    "networking.istio.io",
    "v1alpha3",
    "Sidecar",
    "sidecars",
    [],
    ["istio-io", "networking-istio-io"]
);
crd_version!(
    pa_v1,
    PeerAuthenticationSpec,
    rudder_config::PeerAuthenticationSpec,
    "security.istio.io",
    "v1",
    "PeerAuthentication",
    "peerauthentications",
    ["pa"],
    ["istio-io", "security-istio-io"]
);
crd_version!(
    pa_v1beta1,
    PeerAuthenticationSpec,
    rudder_config::PeerAuthenticationSpec,
    "security.istio.io",
    "v1beta1",
    "PeerAuthentication",
    "peerauthentications",
    ["pa"],
    ["istio-io", "security-istio-io"]
);
crd_version!(
    ap_v1,
    AuthorizationPolicySpec,
    rudder_config::AuthorizationPolicySpec,
    "security.istio.io",
    "v1",
    "AuthorizationPolicy",
    "authorizationpolicies",
    ["ap"],
    ["istio-io", "security-istio-io"]
);
crd_version!(
    ap_v1beta1,
    AuthorizationPolicySpec,
    rudder_config::AuthorizationPolicySpec,
    "security.istio.io",
    "v1beta1",
    "AuthorizationPolicy",
    "authorizationpolicies",
    ["ap"],
    ["istio-io", "security-istio-io"]
);
crd_version!(
    ra_v1,
    RequestAuthenticationSpec,
    rudder_config::RequestAuthenticationSpec,
    "security.istio.io",
    "v1",
    "RequestAuthentication",
    "requestauthentications",
    ["ra"],
    ["istio-io", "security-istio-io"]
);
crd_version!(
    ra_v1beta1,
    RequestAuthenticationSpec,
    rudder_config::RequestAuthenticationSpec,
    "security.istio.io",
    "v1beta1",
    "RequestAuthentication",
    "requestauthentications",
    ["ra"],
    ["istio-io", "security-istio-io"]
);
crd_version!(
    rr_v1alpha2,
    RouteRuleSpec,
    rudder_config::RouteRuleSpec,
    "config.istio.io",
    "v1alpha2",
    "RouteRule",
    "routerules",
    [],
    ["istio-io", "config-istio-io"]
);
crd_version!(
    dp_v1alpha2,
    DestinationPolicySpec,
    rudder_config::DestinationPolicySpec,
    "config.istio.io",
    "v1alpha2",
    "DestinationPolicy",
    "destinationpolicies",
    [],
    ["istio-io", "config-istio-io"]
);
crd_version!(
    httpproxy_v1,
    HttpProxySpec,
    rudder_config::contour::HttpProxySpec,
    "projectcontour.io",
    "v1",
    "HTTPProxy",
    "httpproxies",
    ["proxy", "proxies"],
    []
);
crd_version!(
    mapping_v3alpha1,
    MappingSpec,
    rudder_config::emissary::MappingSpec,
    "getambassador.io",
    "v3alpha1",
    "Mapping",
    "mappings",
    [],
    ["ambassador-crds"]
);

/// The top-level fields that keep what their schema does not name. Istio's
/// CRDs keep unknown fields in `status` (and in free-form fields, which
/// [`make_structural`] marks); Rudder keeps them in `spec` too, because its
/// schemas name only the fields it serves: an Istio field it does not (say
/// `corsPolicy`) must reach the registry and be refused there by name (the
/// spec types deny unknown fields), not be pruned by the API server for a
/// client without strict field validation and the rest accepted.
const PRESERVING_FIELDS: [&str; 2] = ["spec", "status"];

fn preserve_unknown_fields(schema: &mut serde_json::Value) {
    for field in PRESERVING_FIELDS {
        if let Some(serde_json::Value::Object(node)) =
            schema.get_mut("properties").and_then(|p| p.get_mut(field))
        {
            node.insert(
                "x-kubernetes-preserve-unknown-fields".into(),
                serde_json::Value::Bool(true),
            );
        }
    }
}

/// Applies [`make_structural`] and [`use_known_formats`] to every version's
/// schema, so the API server accepts the CRD and applies it without warnings.
fn structural(mut crd: CustomResourceDefinition) -> Result<CustomResourceDefinition, CrdError> {
    let name = crd.metadata.name.clone().unwrap_or_default();
    for v in &mut crd.spec.versions {
        let Some(schema) = v
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        let mut value = serde_json::to_value(&*schema).map_err(|e| CrdError::Yaml {
            name: name.clone(),
            message: e.to_string(),
        })?;
        make_structural(&mut value);
        use_known_formats(&mut value);
        preserve_unknown_fields(&mut value);
        *schema = serde_json::from_value(value).map_err(|e| CrdError::Yaml {
            name: name.clone(),
            message: e.to_string(),
        })?;
    }
    Ok(crd)
}

crd_version!(
    tm_v1,
    TelemetrySpec,
    rudder_config::TelemetrySpec,
    "telemetry.istio.io",
    "v1",
    "Telemetry",
    "telemetries",
    ["telemetry"],
    ["istio-io", "telemetry-istio-io"]
);
crd_version!(
    tm_v1alpha1,
    TelemetrySpec,
    rudder_config::TelemetrySpec,
    "telemetry.istio.io",
    "v1alpha1",
    "Telemetry",
    "telemetries",
    ["telemetry"],
    ["istio-io", "telemetry-istio-io"]
);

/// The CRDs Rudder reads, in a stable order: VirtualService,
/// DestinationRule, Sidecar, ServiceEntry, WorkloadEntry and Gateway (v1
/// storage; v1beta1 and v1alpha3 served), RouteRule and
/// DestinationPolicy (v1alpha2), PeerAuthentication, AuthorizationPolicy and
/// RequestAuthentication (v1 storage; v1beta1 served), Telemetry (v1
/// storage; v1alpha1 served); then, for a cluster that has neither Contour
/// nor Emissary installed, Contour's HTTPProxy (v1) and Emissary's Mapping
/// (v3alpha1), which the ingress gateway serves.
pub fn crds() -> Result<Vec<CustomResourceDefinition>, CrdError> {
    let merge = |kind: &'static str, versions: Vec<CustomResourceDefinition>, storage: &str| {
        merge_crds(versions, storage).map_err(|source| CrdError::Merge { kind, source })
    };
    let all = vec![
        merge(
            "VirtualService",
            vec![
                vs_v1::VirtualService::crd(),
                vs_v1beta1::VirtualService::crd(),
                vs_v1alpha3::VirtualService::crd(),
            ],
            "v1",
        )?,
        merge(
            "DestinationRule",
            vec![
                dr_v1::DestinationRule::crd(),
                dr_v1beta1::DestinationRule::crd(),
                dr_v1alpha3::DestinationRule::crd(),
            ],
            "v1",
        )?,
        merge(
            "Sidecar",
            vec![
                sc_v1::Sidecar::crd(),
                sc_v1beta1::Sidecar::crd(),
                sc_v1alpha3::Sidecar::crd(),
            ],
            "v1",
        )?,
        merge(
            "ServiceEntry",
            vec![
                se_v1::ServiceEntry::crd(),
                se_v1beta1::ServiceEntry::crd(),
                se_v1alpha3::ServiceEntry::crd(),
            ],
            "v1",
        )?,
        merge(
            "WorkloadEntry",
            vec![
                we_v1::WorkloadEntry::crd(),
                we_v1beta1::WorkloadEntry::crd(),
                we_v1alpha3::WorkloadEntry::crd(),
            ],
            "v1",
        )?,
        merge(
            "Gateway",
            vec![
                gw_v1::Gateway::crd(),
                gw_v1beta1::Gateway::crd(),
                gw_v1alpha3::Gateway::crd(),
            ],
            "v1",
        )?,
        rr_v1alpha2::RouteRule::crd(),
        dp_v1alpha2::DestinationPolicy::crd(),
        merge(
            "PeerAuthentication",
            vec![
                pa_v1::PeerAuthentication::crd(),
                pa_v1beta1::PeerAuthentication::crd(),
            ],
            "v1",
        )?,
        merge(
            "AuthorizationPolicy",
            vec![
                ap_v1::AuthorizationPolicy::crd(),
                ap_v1beta1::AuthorizationPolicy::crd(),
            ],
            "v1",
        )?,
        merge(
            "RequestAuthentication",
            vec![
                ra_v1::RequestAuthentication::crd(),
                ra_v1beta1::RequestAuthentication::crd(),
            ],
            "v1",
        )?,
        merge(
            "Telemetry",
            vec![tm_v1::Telemetry::crd(), tm_v1alpha1::Telemetry::crd()],
            "v1",
        )?,
        httpproxy_v1::HTTPProxy::crd(),
        mapping_v3alpha1::Mapping::crd(),
    ];
    all.into_iter().map(structural).collect()
}

/// The CRDs as one multi-document YAML file (the content of
/// `manifests/crds.yaml`), with a header saying how to regenerate it.
pub fn crds_yaml() -> Result<String, CrdError> {
    let mut out = String::from(
        "# Generated by `cargo run -p rudder-kube --bin rudder-crds > manifests/crds.yaml`\n\
         # from the spec types in pilot/config; do not edit (a test compares them).\n",
    );
    for crd in crds()? {
        let name = crd.metadata.name.clone().unwrap_or_default();
        // Through serde_json first: k8s-openapi's Serialize is field-ordered
        // and skips None, which keeps the YAML stable and small.
        let value = serde_json::to_value(&crd).map_err(|e| CrdError::Yaml {
            name: name.clone(),
            message: e.to_string(),
        })?;
        let yaml = serde_saphyr::to_string(&value).map_err(|e| CrdError::Yaml {
            name,
            message: e.to_string(),
        })?;
        out.push_str("---\n");
        out.push_str(&yaml);
        if !yaml.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}
