//! The `rudder-mesh` ConfigMap: `data.mesh` holds YAML shaped like Istio's
//! MeshConfig (only the fields Rudder uses; Istio's others are ignored so an
//! Istio user's mesh config can be reused).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Name of the ConfigMap holding the mesh config.
pub const MESH_CONFIGMAP_NAME: &str = "rudder-mesh";
/// Key of the mesh config in the ConfigMap's `data`.
pub const MESH_CONFIGMAP_KEY: &str = "mesh";

/// Mesh config fields Rudder reads; absent fields take the model's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct MeshConfigSpec {
    /// Namespace of mesh-wide policies.
    pub root_namespace: Option<String>,
    /// SPIFFE trust domain.
    pub trust_domain: Option<String>,
    /// DNS domain suffix.
    pub domain_suffix: Option<String>,
    /// Namespaces pilot reads (a namespace any selector matches); empty:
    /// all. Objects in other namespaces are ignored entirely, as in Istio.
    pub discovery_selectors: Vec<LabelSelector>,
    /// What sidecars do with destinations outside the registry (a Sidecar's
    /// own `outboundTrafficPolicy` wins for its pods).
    pub outbound_traffic_policy: Option<MeshOutboundTrafficPolicy>,
}

/// `outboundTrafficPolicy: {mode}` of the mesh config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct MeshOutboundTrafficPolicy {
    /// `ALLOW_ANY` (default) or `REGISTRY_ONLY` (a string: validation lists the values).
    pub mode: Option<String>,
}

/// A Kubernetes label selector: every `matchLabels` pair and every
/// `matchExpressions` requirement must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LabelSelector {
    /// Labels that must be present with these values.
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// `{key, operator: In|NotIn|Exists|DoesNotExist, values}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LabelSelectorRequirement {
    /// Label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values for `In` and `NotIn`.
    pub values: Vec<String>,
}

impl LabelSelector {
    /// Whether `labels` satisfy the selector (an unknown operator selects nothing).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator.as_str() {
                    "In" => value.is_some_and(|v| r.values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }
}
