//! Injection: a pure function from a pod (as JSON) to the injected pod.
//!
//! The webhook and kube-inject both call [`inject`]; the webhook then diffs
//! the result against the original into a JSON patch. Everything the pod
//! already had is kept as it was, in place: containers, unknown fields, order.

use std::collections::BTreeMap;

use rudder_model::well_known::{APP_PROBERS_ENV, INJECT_STATUS_ANNOTATION, TLS_MODE_LABEL};
use serde_json::{json, Map, Value};

use crate::capture::Capture;
use crate::decision::{self, NamespacePolicy, SkipReason};
use crate::pod::{self, PodError};
use crate::probes;
use crate::sidecar::{self, INIT_CONTAINER_NAME, SIDECAR_CONTAINER_NAME};
use crate::template::Values;

/// Annotation replacing the sidecar image of one pod.
pub const PROXY_IMAGE_ANNOTATION: &str = "sidecar.istio.io/proxyImage";
/// Annotation telling kubectl which container `logs`/`exec` mean by default;
/// set to the app's first container since the sidecar now comes first.
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// Everything besides the pod that decides what injection does.
#[derive(Clone, Copy, Debug)]
pub struct InjectContext<'a> {
    /// The template's values.
    pub values: &'a Values,
    /// Native sidecars, already resolved against the API server version.
    pub native_sidecars: bool,
    /// Where the pod is created (the AdmissionRequest's namespace, which is
    /// set even when the pod's own metadata has none); falls back to
    /// `metadata.namespace`.
    pub namespace: Option<&'a str>,
    /// What the namespace says.
    pub namespace_policy: NamespacePolicy,
}

impl<'a> InjectContext<'a> {
    /// A context with no namespace knowledge (webhook and kube-inject).
    pub fn new(values: &'a Values, native_sidecars: bool) -> Self {
        InjectContext {
            values,
            native_sidecars,
            namespace: None,
            namespace_policy: NamespacePolicy::Unknown,
        }
    }
}

/// The outcome of [`inject`].
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// The injected pod.
    Injected(Value),
    /// Left unchanged, and why.
    Skipped(SkipReason),
}

/// Inject a pod (a Pod object or a pod template: `metadata` + `spec`).
pub fn inject(pod: &Value, ctx: &InjectContext<'_>) -> Result<Decision, PodError> {
    let own_ns = pod
        .get("metadata")
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str);
    let namespace = ctx.namespace.or(own_ns);
    if let Some(reason) = decision::skip_reason(pod, namespace, ctx.namespace_policy)? {
        return Ok(Decision::Skipped(reason));
    }
    let values = ctx.values;
    let spec = pod::spec(pod)?;
    let annotations = pod::string_map(pod, "annotations")?;
    let capture = Capture::for_pod(values, &annotations, spec)?;
    // The identity comes from the token kubelet projects for this account;
    // a malformed name is still the pod's error, reported here.
    pod::service_account(spec)?;
    let app_containers = pod::containers(spec, "containers")?;
    pod::containers(spec, "initContainers")?;
    pod::containers(spec, "volumes")?;
    let first_app = app_containers
        .first()
        .and_then(|c| c.get("name"))
        .and_then(Value::as_str)
        .map(String::from);
    let image = proxy_image(&annotations, values)?;

    let rewrite_probes = probes::enabled(&annotations, values.rewrite_app_probers)?;

    let native = ctx.native_sidecars;
    let init = sidecar::init_container(values, capture.proxy_init_args(values));
    let mut proxy = sidecar::sidecar_container(values, &image, native);

    let mut out = pod.clone();
    let obj = out
        .as_object_mut()
        .expect("pod::spec checked it is an object");
    let spec = obj
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .expect("pod::spec checked it");

    if let (true, Some(Value::Array(app))) = (rewrite_probes, spec.get_mut("containers")) {
        let probers = probes::rewrite(app)?;
        if !probers.is_empty() {
            sidecar::add_env(
                &mut proxy,
                APP_PROBERS_ENV,
                &Value::Object(probers).to_string(),
            );
        }
    }

    add_sidecar(spec, init, proxy, native, ctx.values.proxy_gid);
    annotate(obj, native, first_app);
    Ok(Decision::Injected(out))
}

/// The sidecar's image: the `sidecar.istio.io/proxyImage` annotation, else
/// the template's agent image.
fn proxy_image(
    annotations: &BTreeMap<String, String>,
    values: &Values,
) -> Result<String, PodError> {
    Ok(match annotations.get(PROXY_IMAGE_ANNOTATION) {
        Some(i) if i.trim().is_empty() || i.contains(char::is_whitespace) => {
            return Err(PodError::field(
                &format!("metadata.annotations[{PROXY_IMAGE_ANNOTATION:?}]"),
                format!("{i:?} is not an image name"),
            ))
        }
        Some(i) => i.clone(),
        None => values.image_ref(&values.agent_image),
    })
}

/// Puts the init container first, the sidecar first among the init
/// containers (native sidecars) or the containers, adds its volumes, and
/// gives the pod an fsGroup unless it has one.
fn add_sidecar(
    spec: &mut Map<String, Value>,
    init: Value,
    proxy: Value,
    native: bool,
    proxy_gid: u32,
) {
    let mut inits = vec![init];
    if native {
        inits.push(proxy.clone());
    }
    inits.extend(take_list(spec, "initContainers"));
    spec.insert("initContainers".into(), Value::Array(inits));
    if !native {
        let mut containers = vec![proxy];
        containers.extend(take_list(spec, "containers"));
        spec.insert("containers".into(), Value::Array(containers));
    }
    let mut volumes = take_list(spec, "volumes");
    volumes.extend(sidecar::volumes());
    spec.insert("volumes".into(), Value::Array(volumes));
    // Kubelet writes the projected istio-ca token readable by root and the
    // pod's fsGroup only; the agent runs as the proxy UID/GID, so without an
    // fsGroup it could not read its credential (Istio's templates set
    // fsGroup 1337 for the same reason). A pod's own fsGroup is kept: then
    // the operator owns that choice.
    let security = object_entry(spec, "securityContext");
    security.entry("fsGroup").or_insert(json!(proxy_gid));
}

/// The labels and annotations an injected pod carries: the TLS mode, the
/// injection status and the default container (the first app container).
fn annotate(obj: &mut Map<String, Value>, native: bool, first_app: Option<String>) {
    let meta = obj.entry("metadata").or_insert_with(|| json!({}));
    if meta.is_null() {
        *meta = json!({});
    }
    let meta = meta
        .as_object_mut()
        .expect("pod::string_map checked metadata is an object");
    let labels = object_entry(meta, "labels");
    labels.insert(TLS_MODE_LABEL.into(), json!("istio"));
    let annotations = object_entry(meta, "annotations");
    annotations.insert(INJECT_STATUS_ANNOTATION.into(), json!(status(native)));
    if let Some(app) = first_app {
        annotations
            .entry(DEFAULT_CONTAINER_ANNOTATION)
            .or_insert(json!(app));
    }
}

/// What `sidecar.istio.io/status` records (a JSON string, as Istio writes it).
pub fn status(native: bool) -> String {
    let (inits, containers): (Vec<&str>, Vec<&str>) = if native {
        (vec![INIT_CONTAINER_NAME, SIDECAR_CONTAINER_NAME], vec![])
    } else {
        (vec![INIT_CONTAINER_NAME], vec![SIDECAR_CONTAINER_NAME])
    };
    json!({
        "initContainers": inits,
        "containers": containers,
        "volumes": sidecar::VOLUME_NAMES,
        "nativeSidecar": native,
        "version": env!("CARGO_PKG_VERSION"),
    })
    .to_string()
}

/// Remove and return a list field (absent or null = empty; shape was checked).
fn take_list(spec: &mut Map<String, Value>, key: &str) -> Vec<Value> {
    match spec.remove(key) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

/// `map[key]` as an object, created when absent or null (shape was checked).
fn object_entry<'m>(map: &'m mut Map<String, Value>, key: &str) -> &'m mut Map<String, Value> {
    let v = map.entry(key).or_insert_with(|| json!({}));
    if !v.is_object() {
        *v = json!({});
    }
    v.as_object_mut().expect("just made it an object")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::template::Values;

    fn injected(pod: Value) -> Value {
        let values = Values::default();
        let ctx = InjectContext::new(&values, false);
        match inject(&pod, &ctx).unwrap() {
            Decision::Injected(p) => p,
            Decision::Skipped(why) => panic!("skipped: {why:?}"),
        }
    }

    #[test]
    fn fs_group_lets_the_agent_read_its_token_unless_the_pod_chose_one() {
        let app = json!({"name": "app", "image": "app", "command": ["app"]});
        let p = injected(json!({"metadata": {"name": "p"}, "spec": {"containers": [app.clone()]}}));
        assert_eq!(p["spec"]["securityContext"]["fsGroup"], json!(1337));
        let p = injected(json!({"metadata": {"name": "p"}, "spec": {
            "securityContext": {"fsGroup": 2000, "runAsNonRoot": true},
            "containers": [app],
        }}));
        assert_eq!(
            p["spec"]["securityContext"],
            json!({"fsGroup": 2000, "runAsNonRoot": true})
        );
    }
}
