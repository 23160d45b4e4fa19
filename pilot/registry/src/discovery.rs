//! Mesh config `discoverySelectors`: the namespaces pilot reads.
//!
//! ```text
//!  store objects ─► Selected::keeps ─► build (services, pods, rules of selected namespaces only)
//! ```
//!
//! As in Istio (`discoveryNamespacesFilter`), a namespace is selected when it
//! has a Namespace object and any selector matches its labels (no selectors:
//! every namespace, with or without an object). Objects of an unselected
//! namespace are ignored entirely, as if absent: its Services, Pods,
//! endpoints and rules. Cluster-scoped objects and the mesh config are
//! always read.

use std::collections::BTreeSet;

use rudder_config::MeshConfigSpec;

use crate::{
    check::Checker,
    object::{Body, Kind, Object},
};

/// The operators of `matchExpressions`.
const OPERATORS: [&str; 4] = ["In", "NotIn", "Exists", "DoesNotExist"];

/// Which objects the build reads.
#[derive(Debug)]
pub struct Selected {
    /// `None`: every namespace.
    namespaces: Option<BTreeSet<String>>,
}

impl Selected {
    /// The selection `mesh` makes among `objects`' namespaces.
    pub fn new(mesh: Option<&MeshConfigSpec>, objects: &[&Object]) -> Self {
        let selectors = mesh
            .map(|m| m.discovery_selectors.as_slice())
            .unwrap_or(&[]);
        if selectors.is_empty() {
            return Self { namespaces: None };
        }
        let namespaces = objects
            .iter()
            .filter(|o| matches!(o.body, Body::Namespace(_)))
            .filter(|o| selectors.iter().any(|s| s.matches(&o.meta.labels)))
            .map(|o| o.key.name.clone())
            .collect();
        Self {
            namespaces: Some(namespaces),
        }
    }

    /// Whether the build reads `o`.
    pub fn keeps(&self, o: &Object) -> bool {
        let Some(selected) = &self.namespaces else {
            return true;
        };
        match o.key.kind {
            Kind::MeshConfig => true,
            Kind::Namespace => selected.contains(&o.key.name),
            _ => selected.contains(&o.key.namespace),
        }
    }
}

/// Validates the selectors: an unknown operator, or values where the
/// operator takes none, is an error with its path.
pub fn validate(mesh: &MeshConfigSpec, ck: &mut Checker) {
    for (i, s) in mesh.discovery_selectors.iter().enumerate() {
        for (j, r) in s.match_expressions.iter().enumerate() {
            let at = format!("data.mesh.discoverySelectors[{i}].matchExpressions[{j}]");
            if !OPERATORS.contains(&r.operator.as_str()) {
                ck.error(
                    format!("{at}.operator"),
                    format!(
                        "unknown operator {:?}: expected one of {}",
                        r.operator,
                        OPERATORS.join(", ")
                    ),
                );
            }
            let takes_values = matches!(r.operator.as_str(), "In" | "NotIn");
            if takes_values == r.values.is_empty() {
                ck.error(
                    format!("{at}.values"),
                    if takes_values {
                        "In and NotIn need at least one value"
                    } else {
                        "Exists and DoesNotExist take no values"
                    },
                );
            }
        }
    }
    if let Some(m) = mesh
        .outbound_traffic_policy
        .as_ref()
        .and_then(|p| p.mode.as_deref())
    {
        if !matches!(m, "ALLOW_ANY" | "REGISTRY_ONLY") {
            ck.error(
                "data.mesh.outboundTrafficPolicy.mode",
                format!("unknown mode {m:?}: expected ALLOW_ANY or REGISTRY_ONLY"),
            );
        }
    }
}
