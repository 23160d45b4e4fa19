//! Whether a pod gets a sidecar, as Istio documents it.
//!
//! Order of the rules (first match wins):
//! 1. never in `kube-system` / `kube-public`;
//! 2. never on `hostNetwork` pods (capture would rewrite the node's iptables);
//! 3. never twice: a pod carrying `sidecar.istio.io/status` or our containers
//!    is already injected;
//! 4. never a gateway pod (label `istio: ingressgateway` or `egressgateway`,
//!    or annotation `inject.istio.io/templates: gateway`): the agent runs
//!    there as the gateway itself (`agent router`), without capture;
//! 5. the pod's `sidecar.istio.io/inject` label, else its annotation;
//! 6. the namespace's `istio-injection` label. On a cluster the webhook's
//!    namespaceSelector has already decided this one, and offline there is no
//!    namespace object, so both pass [`NamespacePolicy::Unknown`], which injects.

use std::{collections::BTreeMap, fmt};

use rudder_model::well_known::{
    INJECTION_NAMESPACE_LABEL, INJECT_POD_KEY, INJECT_STATUS_ANNOTATION,
};
use serde_json::Value;

use crate::pod::{self, PodError};
use crate::sidecar::{INIT_CONTAINER_NAME, SIDECAR_CONTAINER_NAME};

/// Namespaces Istio never injects into.
pub const NEVER_INJECT_NAMESPACES: [&str; 2] = ["kube-system", "kube-public"];

/// What the namespace says about injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamespacePolicy {
    /// `istio-injection=enabled`.
    Enabled,
    /// Labelled otherwise, or not labelled.
    Disabled,
    /// Not known here (webhook: the selector decided; kube-inject: offline).
    Unknown,
}

impl NamespacePolicy {
    /// From a namespace's labels.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Self {
        match labels.get(INJECTION_NAMESPACE_LABEL).map(String::as_str) {
            Some("enabled") => NamespacePolicy::Enabled,
            _ => NamespacePolicy::Disabled,
        }
    }
}

/// Why a pod was left alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// The pod is in kube-system or kube-public.
    SystemNamespace(String),
    /// `spec.hostNetwork: true`.
    HostNetwork,
    /// Already has our sidecar or status annotation.
    AlreadyInjected,
    /// `sidecar.istio.io/inject` is false on the pod (`"label"` or `"annotation"`).
    OptedOut(&'static str),
    /// The namespace is not labelled `istio-injection=enabled`.
    NamespaceNotEnabled,
    /// A gateway pod (Istio's gateway labels or template).
    Gateway,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::SystemNamespace(ns) => write!(f, "namespace {ns} is never injected"),
            SkipReason::HostNetwork => f.write_str("pod uses hostNetwork"),
            SkipReason::AlreadyInjected => write!(f, "pod is already injected ({INJECT_STATUS_ANNOTATION} or {SIDECAR_CONTAINER_NAME} present)"),
            SkipReason::OptedOut(by) => write!(f, "pod {by} {INJECT_POD_KEY} is false"),
            SkipReason::NamespaceNotEnabled => write!(f, "namespace is not labelled {INJECTION_NAMESPACE_LABEL}=enabled"),
            SkipReason::Gateway => f.write_str("pod is a gateway (label istio: ingressgateway/egressgateway or template gateway); its agent runs as `agent router`"),
        }
    }
}

/// Parse an inject value the way Istio reads it (`true`/`false`, plus the
/// `y`/`yes`/`on` and `n`/`no`/`off` spellings its annotation accepted).
fn parse_inject(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "y" | "yes" | "on" => Some(true),
        "false" | "n" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Decide; `None` means inject. `namespace` is where the pod is created.
pub fn skip_reason(
    pod: &Value,
    namespace: Option<&str>,
    policy: NamespacePolicy,
) -> Result<Option<SkipReason>, PodError> {
    if let Some(ns) = namespace.filter(|ns| NEVER_INJECT_NAMESPACES.contains(ns)) {
        return Ok(Some(SkipReason::SystemNamespace(ns.to_string())));
    }
    let spec = pod::spec(pod)?;
    match spec.get("hostNetwork") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => return Ok(Some(SkipReason::HostNetwork)),
        Some(other) => {
            return Err(PodError::field(
                "spec.hostNetwork",
                format!("{other} is not a boolean"),
            ))
        }
    }
    let labels = pod::string_map(pod, "labels")?;
    let annotations = pod::string_map(pod, "annotations")?;
    if annotations.contains_key(INJECT_STATUS_ANNOTATION) || has_our_containers(spec)? {
        return Ok(Some(SkipReason::AlreadyInjected));
    }
    let gateway_label = labels
        .get("istio")
        .is_some_and(|v| v == "ingressgateway" || v == "egressgateway");
    let gateway_template = annotations
        .get("inject.istio.io/templates")
        .is_some_and(|v| v.split(',').any(|t| t.trim() == "gateway"));
    if gateway_label || gateway_template {
        return Ok(Some(SkipReason::Gateway));
    }
    for (by, map) in [("label", &labels), ("annotation", &annotations)] {
        if let Some(v) = map.get(INJECT_POD_KEY) {
            let field = format!("metadata.{by}s[\"{INJECT_POD_KEY}\"]");
            return match parse_inject(v) {
                Some(true) => Ok(None),
                Some(false) => Ok(Some(SkipReason::OptedOut(by))),
                None => Err(PodError::field(
                    &field,
                    format!("{v:?} is not \"true\" or \"false\""),
                )),
            };
        }
    }
    Ok(match policy {
        NamespacePolicy::Enabled | NamespacePolicy::Unknown => None,
        NamespacePolicy::Disabled => Some(SkipReason::NamespaceNotEnabled),
    })
}

fn has_our_containers(spec: &serde_json::Map<String, Value>) -> Result<bool, PodError> {
    for list in ["containers", "initContainers"] {
        for c in pod::containers(spec, list)? {
            let name = c.get("name").and_then(Value::as_str);
            if name == Some(SIDECAR_CONTAINER_NAME) || name == Some(INIT_CONTAINER_NAME) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: Value, annotations: Value, spec: Value) -> Value {
        json!({"metadata": {"labels": labels, "annotations": annotations}, "spec": spec})
    }
    fn app() -> Value {
        json!({"containers": [{"name": "app", "image": "app"}]})
    }

    #[test]
    fn label_beats_annotation_beats_namespace() {
        let p = pod(
            json!({INJECT_POD_KEY: "true"}),
            json!({INJECT_POD_KEY: "false"}),
            app(),
        );
        assert_eq!(
            skip_reason(&p, Some("default"), NamespacePolicy::Disabled).unwrap(),
            None
        );
        let p = pod(
            json!({INJECT_POD_KEY: "false"}),
            json!({INJECT_POD_KEY: "true"}),
            app(),
        );
        assert_eq!(
            skip_reason(&p, Some("default"), NamespacePolicy::Enabled).unwrap(),
            Some(SkipReason::OptedOut("label"))
        );
        let p = pod(json!({}), json!({INJECT_POD_KEY: "true"}), app());
        assert_eq!(
            skip_reason(&p, None, NamespacePolicy::Disabled).unwrap(),
            None
        );
        let p = pod(json!({}), json!({INJECT_POD_KEY: "no"}), app());
        assert_eq!(
            skip_reason(&p, None, NamespacePolicy::Enabled).unwrap(),
            Some(SkipReason::OptedOut("annotation"))
        );
        let p = pod(json!({}), json!({}), app());
        assert_eq!(
            skip_reason(&p, None, NamespacePolicy::Disabled).unwrap(),
            Some(SkipReason::NamespaceNotEnabled)
        );
        assert_eq!(
            skip_reason(&p, None, NamespacePolicy::Unknown).unwrap(),
            None
        );
    }

    #[test]
    fn gateway_pods_are_left_alone() {
        for (labels, annotations) in [
            (
                json!({"istio": "ingressgateway", INJECT_POD_KEY: "true"}),
                json!({}),
            ),
            (json!({"istio": "egressgateway"}), json!({})),
            (json!({}), json!({"inject.istio.io/templates": "gateway"})),
        ] {
            let p = pod(labels, annotations, app());
            assert_eq!(
                skip_reason(&p, Some("istio-system"), NamespacePolicy::Enabled).unwrap(),
                Some(SkipReason::Gateway)
            );
        }
        let p = pod(json!({"istio": "pilot"}), json!({}), app());
        assert_eq!(
            skip_reason(&p, Some("default"), NamespacePolicy::Enabled).unwrap(),
            None
        );
    }

    #[test]
    fn system_namespaces_and_host_network_win_over_opt_in() {
        let p = pod(json!({INJECT_POD_KEY: "true"}), json!({}), app());
        assert_eq!(
            skip_reason(&p, Some("kube-system"), NamespacePolicy::Enabled).unwrap(),
            Some(SkipReason::SystemNamespace("kube-system".into()))
        );
        let p = pod(
            json!({INJECT_POD_KEY: "true"}),
            json!({}),
            json!({"hostNetwork": true, "containers": []}),
        );
        assert_eq!(
            skip_reason(&p, None, NamespacePolicy::Enabled).unwrap(),
            Some(SkipReason::HostNetwork)
        );
    }

    #[test]
    fn bad_inject_value_names_the_field() {
        let p = pod(json!({INJECT_POD_KEY: "maybe"}), json!({}), app());
        let err = skip_reason(&p, None, NamespacePolicy::Enabled)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("metadata.labels[\"sidecar.istio.io/inject\"]"),
            "{err}"
        );
        assert!(err.contains("maybe"), "{err}");
    }

    #[test]
    fn namespace_policy_from_labels() {
        let mut l = BTreeMap::new();
        assert_eq!(NamespacePolicy::from_labels(&l), NamespacePolicy::Disabled);
        l.insert(INJECTION_NAMESPACE_LABEL.to_string(), "enabled".to_string());
        assert_eq!(NamespacePolicy::from_labels(&l), NamespacePolicy::Enabled);
        l.insert(
            INJECTION_NAMESPACE_LABEL.to_string(),
            "disabled".to_string(),
        );
        assert_eq!(NamespacePolicy::from_labels(&l), NamespacePolicy::Disabled);
    }
}
