//! Reading a pod held as `serde_json::Value`, with errors that name the field.
//!
//! The injector never converts a pod into typed Kubernetes structs: fields it
//! does not know (new Kubernetes features, vendor extensions) must survive
//! injection byte for byte, and a diff-based JSON patch then touches only what
//! the injector added.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A pod field the injector needs is missing or has the wrong shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PodError {
    /// The field, as a path from the pod (`spec.containers[1].ports`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl PodError {
    pub(crate) fn field(field: &str, message: impl Into<String>) -> Self {
        PodError {
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// The same error, with `prefix` put in front of the field path (used when
    /// the pod is a template inside a workload: `spec.template.` + field).
    pub fn within(self, prefix: &str) -> Self {
        PodError {
            field: format!("{prefix}{}", self.field),
            message: self.message,
        }
    }
}

/// The pod itself as an object.
pub fn object(pod: &Value) -> Result<&Map<String, Value>, PodError> {
    pod.as_object().ok_or_else(|| {
        PodError::field("(pod)", format!("expected an object, got {}", kind_of(pod)))
    })
}

/// `spec`, which must be an object.
pub fn spec(pod: &Value) -> Result<&Map<String, Value>, PodError> {
    match object(pod)?.get("spec") {
        Some(Value::Object(m)) => Ok(m),
        None | Some(Value::Null) => Err(PodError::field("spec", "missing")),
        Some(other) => Err(PodError::field(
            "spec",
            format!("expected an object, got {}", kind_of(other)),
        )),
    }
}

/// `metadata.<which>` (labels or annotations) as strings; absent = empty.
pub fn string_map(pod: &Value, which: &str) -> Result<BTreeMap<String, String>, PodError> {
    let field = format!("metadata.{which}");
    let meta = match object(pod)?.get("metadata") {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(PodError::field(
                "metadata",
                format!("expected an object, got {}", kind_of(other)),
            ))
        }
    };
    match meta.get(which) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(PodError::field(
                    &format!("{field}[{k:?}]"),
                    format!("expected a string, got {}", kind_of(other)),
                )),
            })
            .collect(),
        Some(other) => Err(PodError::field(
            &field,
            format!("expected an object, got {}", kind_of(other)),
        )),
    }
}

/// `spec.<list>` (containers, initContainers): each entry must be an object.
pub fn containers<'a>(
    spec: &'a Map<String, Value>,
    list: &str,
) -> Result<Vec<&'a Map<String, Value>>, PodError> {
    match spec.get(list) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, c)| {
                c.as_object().ok_or_else(|| {
                    PodError::field(
                        &format!("spec.{list}[{i}]"),
                        format!("expected an object, got {}", kind_of(c)),
                    )
                })
            })
            .collect(),
        Some(other) => Err(PodError::field(
            &format!("spec.{list}"),
            format!("expected a list, got {}", kind_of(other)),
        )),
    }
}

/// The TCP ports the app containers declare (`containerPort`), sorted, unique.
pub fn container_ports(spec: &Map<String, Value>) -> Result<Vec<u16>, PodError> {
    let mut ports = Vec::new();
    for (i, c) in containers(spec, "containers")?.into_iter().enumerate() {
        let Some(list) = c.get("ports").filter(|p| !p.is_null()) else {
            continue;
        };
        let field = format!("spec.containers[{i}].ports");
        let list = list.as_array().ok_or_else(|| {
            PodError::field(&field, format!("expected a list, got {}", kind_of(list)))
        })?;
        for (j, p) in list.iter().enumerate() {
            let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            if protocol != "TCP" {
                continue;
            }
            let port = p
                .get("containerPort")
                .and_then(Value::as_u64)
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n != 0)
                .ok_or_else(|| {
                    PodError::field(
                        &format!("{field}[{j}].containerPort"),
                        "expected a port number (1-65535)",
                    )
                })?;
            ports.push(port);
        }
    }
    ports.sort_unstable();
    ports.dedup();
    Ok(ports)
}

/// `spec.serviceAccountName`, defaulting as Kubernetes does.
pub fn service_account(spec: &Map<String, Value>) -> Result<String, PodError> {
    match spec
        .get("serviceAccountName")
        .or_else(|| spec.get("serviceAccount"))
    {
        None | Some(Value::Null) => Ok("default".into()),
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(other) => Err(PodError::field(
            "spec.serviceAccountName",
            format!("expected a name, got {other}"),
        )),
    }
}

/// A short description of a JSON value's type, for messages.
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
