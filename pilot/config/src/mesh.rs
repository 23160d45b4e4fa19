//! The `rudder-mesh` ConfigMap: `data.mesh` holds YAML shaped like Istio's
//! MeshConfig (only the fields Rudder uses; Istio's others are ignored so an
//! Istio user's mesh config can be reused).

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
}
