//! Offline injection of a YAML stream (`injector kube-inject -f FILE`).
//!
//! Every document is read as plain JSON-like data, so fields the injector does
//! not know survive; only pod templates of workloads (and bare Pods, and the
//! items of a `kind: List`) are injected, every other object comes out as it
//! went in. Offline there is no Namespace object, so as `istioctl kube-inject`
//! it injects unless the pod opts out. Output keys are sorted (stable,
//! reviewable diffs); YAML comments do not survive.

use serde_json::Value;

use crate::inject::{inject, Decision, InjectContext};
use crate::pod::{kind_of, PodError};

/// Why a stream could not be injected.
#[derive(Debug, thiserror::Error)]
pub enum KubeInjectError {
    /// The stream is not YAML.
    #[error("input is not valid YAML: {0}")]
    Yaml(String),
    /// A document could not be read or injected.
    #[error("document {index} ({what}): {source}")]
    Document {
        /// 1-based position in the stream.
        index: usize,
        /// `Kind namespace/name` of the document.
        what: String,
        /// The field and problem.
        source: PodError,
    },
    /// The output could not be written as YAML.
    #[error("cannot write YAML: {0}")]
    Serialize(String),
}

/// Where a workload kind keeps its pod template.
pub fn pod_template_path(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "Job"
        | "ReplicaSet"
        | "ReplicationController" => Some(&["spec", "template"]),
        "CronJob" => Some(&["spec", "jobTemplate", "spec", "template"]),
        "Pod" => Some(&[]),
        _ => None,
    }
}

fn describe(doc: &Value) -> String {
    let s = |k: &str| doc.get(k).and_then(Value::as_str);
    let m = |k: &str| {
        doc.get("metadata")
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
    };
    let kind = s("kind").unwrap_or("object without kind");
    match (m("namespace"), m("name")) {
        (Some(ns), Some(n)) => format!("{kind} {ns}/{n}"),
        (None, Some(n)) => format!("{kind} {n}"),
        _ => kind.to_string(),
    }
}

/// Inject one document in place; returns how many pods were injected.
/// Errors name the field relative to the document (`items[2].spec.template.spec...`).
pub fn inject_document(doc: &mut Value, ctx: &InjectContext<'_>) -> Result<usize, PodError> {
    let kind = doc
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if kind == "List" || kind.ends_with("List") && doc.get("items").is_some() {
        let items = match doc.get_mut("items") {
            Some(Value::Array(items)) => items,
            None | Some(Value::Null) => return Ok(0),
            Some(other) => {
                return Err(PodError::field(
                    "items",
                    format!("expected a list, got {}", kind_of(other)),
                ))
            }
        };
        let mut n = 0;
        for (i, item) in items.iter_mut().enumerate() {
            n += inject_document(item, ctx).map_err(|e| e.within(&format!("items[{i}].")))?;
        }
        return Ok(n);
    }
    let Some(path) = pod_template_path(&kind) else {
        return Ok(0);
    };
    // The workload's namespace applies to its pods (templates have none).
    let namespace = doc
        .get("metadata")
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .map(String::from);
    let mut target = &mut *doc;
    let mut walked = String::new();
    for key in path {
        walked.push_str(key);
        target = match target.get_mut(*key) {
            Some(v @ Value::Object(_)) => v,
            None | Some(Value::Null) => return Err(PodError::field(&walked, "missing")),
            Some(other) => {
                return Err(PodError::field(
                    &walked,
                    format!("expected an object, got {}", kind_of(other)),
                ))
            }
        };
        walked.push('.');
    }
    let mut pctx = *ctx;
    if pctx.namespace.is_none() {
        pctx.namespace = namespace.as_deref();
    }
    match inject(target, &pctx).map_err(|e| e.within(&walked))? {
        Decision::Injected(pod) => {
            *target = pod;
            Ok(1)
        }
        Decision::Skipped(reason) => {
            tracing::debug!(object = %describe(doc), %reason, "not injected");
            Ok(0)
        }
    }
}

/// Inject every document of a YAML stream; returns the output stream.
pub fn kube_inject(input: &str, ctx: &InjectContext<'_>) -> Result<String, KubeInjectError> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(input).map_err(|e| KubeInjectError::Yaml(e.to_string()))?;
    let mut out = Vec::with_capacity(docs.len());
    for (i, mut doc) in docs.into_iter().enumerate() {
        if doc.is_null() {
            continue;
        }
        let what = describe(&doc);
        if !doc.is_object() {
            let source = PodError::field(
                "(document)",
                format!("expected a Kubernetes object, got {}", kind_of(&doc)),
            );
            return Err(KubeInjectError::Document {
                index: i + 1,
                what,
                source,
            });
        }
        inject_document(&mut doc, ctx).map_err(|source| KubeInjectError::Document {
            index: i + 1,
            what,
            source,
        })?;
        out.push(doc);
    }
    to_yaml_stream(&out)
}

/// Write documents as one YAML stream, each starting with `---`.
pub fn to_yaml_stream(docs: &[Value]) -> Result<String, KubeInjectError> {
    let mut s = String::new();
    for doc in docs {
        s.push_str("---\n");
        let text =
            serde_saphyr::to_string(doc).map_err(|e| KubeInjectError::Serialize(e.to_string()))?;
        s.push_str(&text);
        if !text.ends_with('\n') {
            s.push('\n');
        }
    }
    Ok(s)
}
