//! The pod's identity as the agent learns it: environment variables set by
//! the injector (`POD_NAME`, `POD_NAMESPACE`, `INSTANCE_IP`, `SERVICE_ACCOUNT`,
//! `POD_LABELS`) and the downward-API labels file, turned into the model's
//! [`NodeId`] and [`NodeMetadata`].
//!
//! Kubernetes cannot put all labels into one environment variable, so the
//! injector mounts them as a file (`key="value"` lines, values quoted as Go's
//! `strconv.Quote` does); `POD_LABELS` (JSON or `k=v,k=v`) stays accepted for
//! hand-run agents and wins over the file on conflicts.

use std::{collections::BTreeMap, net::IpAddr, path::Path};

use rudder_model::{node::CertMode, NodeId, NodeMetadata};

/// Where the injector's template mounts the downward-API labels file.
pub const DEFAULT_LABELS_FILE: &str = "/etc/rudder/pod/labels";

/// Problems with the pod's identity inputs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PodError {
    /// A required value is empty or missing.
    #[error("{0} is not set (set the environment variable or the flag)")]
    Missing(&'static str),
    /// `INSTANCE_IP` is not an IP address.
    #[error("INSTANCE_IP {0:?} is not an IP address")]
    BadIp(String),
    /// `POD_LABELS` could not be parsed.
    #[error("POD_LABELS: {0}")]
    BadLabelsEnv(String),
    /// A line of the labels file could not be parsed.
    #[error("{file}:{line}: {reason}")]
    BadLabelsFile {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// Why.
        reason: String,
    },
    /// The labels file could not be read.
    #[error("reading labels file {file}: {reason}")]
    ReadLabelsFile {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
}

/// Raw identity inputs (flags or environment).
#[derive(Clone, Debug, Default)]
pub struct PodInfo {
    /// `POD_NAME`.
    pub name: String,
    /// `POD_NAMESPACE`.
    pub namespace: String,
    /// `INSTANCE_IP`.
    pub ip: String,
    /// `SERVICE_ACCOUNT`.
    pub service_account: String,
    /// `WORKLOAD_NAME` (optional).
    pub workload_name: String,
    /// Labels, already merged.
    pub labels: BTreeMap<String, String>,
}

impl PodInfo {
    /// The node id and metadata this pod's Envoy sends. Capture ports go
    /// into the metadata so pilot builds listeners on the ports proxy-init
    /// redirects to.
    pub fn node(
        &self,
        capture_port: u16,
        inbound_capture_port: u16,
    ) -> Result<(NodeId, NodeMetadata), PodError> {
        for (name, v) in [
            ("POD_NAME", &self.name),
            ("POD_NAMESPACE", &self.namespace),
            ("INSTANCE_IP", &self.ip),
            ("SERVICE_ACCOUNT", &self.service_account),
        ] {
            if v.trim().is_empty() {
                return Err(PodError::Missing(name));
            }
        }
        let ip: IpAddr = self
            .ip
            .trim()
            .parse()
            .map_err(|_| PodError::BadIp(self.ip.clone()))?;
        let id = NodeId::sidecar(ip, &self.name, &self.namespace);
        let md = NodeMetadata {
            namespace: self.namespace.clone(),
            service_account: self.service_account.clone(),
            workload_name: self.workload_name.clone(),
            labels: self.labels.clone(),
            instance_ips: vec![ip],
            capture_port,
            inbound_capture_port,
            cert_mode: CertMode::File,
        };
        Ok((id, md))
    }
}

/// Parses `POD_LABELS`: a JSON object of strings, or `k=v,k=v`.
pub fn parse_labels_env(s: &str) -> Result<BTreeMap<String, String>, PodError> {
    let s = s.trim();
    if s.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(s)
            .map_err(|e| PodError::BadLabelsEnv(format!("invalid JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| PodError::BadLabelsEnv("not a JSON object".into()))?;
        return obj
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(v) => Ok((k.clone(), v.clone())),
                other => Err(PodError::BadLabelsEnv(format!(
                    "label {k:?} is {other}, not a string"
                ))),
            })
            .collect();
    }
    let mut out = BTreeMap::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| PodError::BadLabelsEnv(format!("{item:?} is not key=value")))?;
        if k.trim().is_empty() {
            return Err(PodError::BadLabelsEnv(format!("{item:?} has an empty key")));
        }
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

/// Reads a downward-API labels file.
pub fn read_labels_file(path: &Path) -> Result<BTreeMap<String, String>, PodError> {
    let text = std::fs::read_to_string(path).map_err(|e| PodError::ReadLabelsFile {
        file: path.display().to_string(),
        reason: e.to_string(),
    })?;
    parse_labels_file(&path.display().to_string(), &text)
}

/// Parses downward-API label lines: `key="value"`, values Go-quoted.
pub fn parse_labels_file(file: &str, text: &str) -> Result<BTreeMap<String, String>, PodError> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let bad = |reason: String| PodError::BadLabelsFile {
            file: file.to_string(),
            line: i + 1,
            reason,
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| bad(format!("{line:?} is not key=\"value\"")))?;
        if k.is_empty() {
            return Err(bad("empty key".into()));
        }
        let v = unquote(v).map_err(bad)?;
        out.insert(k.to_string(), v);
    }
    Ok(out)
}

/// Undoes Go's `strconv.Quote` (what the downward API writes).
fn unquote(s: &str) -> Result<String, String> {
    let inner = s
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .ok_or_else(|| format!("value {s:?} is not in double quotes"))?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let esc = chars.next().ok_or("dangling backslash")?;
        let hex = |chars: &mut std::str::Chars<'_>, n: usize| -> Result<u32, String> {
            let h: String = chars.take(n).collect();
            u32::from_str_radix(&h, 16).map_err(|_| format!("bad escape \\{esc}{h}"))
        };
        match esc {
            '"' | '\\' | '\'' => out.push(esc),
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            'x' => out.push(char::from_u32(hex(&mut chars, 2)?).ok_or("bad \\x escape")?),
            'u' => out.push(char::from_u32(hex(&mut chars, 4)?).ok_or("bad \\u escape")?),
            'U' => out.push(char::from_u32(hex(&mut chars, 8)?).ok_or("bad \\U escape")?),
            other => return Err(format!("unknown escape \\{other}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_env_json_and_pairs() {
        let a = parse_labels_env(r#"{"app":"reviews","version":"v1"}"#).unwrap();
        let b = parse_labels_env("app=reviews, version=v1").unwrap();
        assert_eq!(a, b);
        assert_eq!(a["version"], "v1");
        assert!(parse_labels_env("").unwrap().is_empty());
        assert!(parse_labels_env("app")
            .unwrap_err()
            .to_string()
            .contains("\"app\""));
        assert!(parse_labels_env(r#"{"a":1}"#)
            .unwrap_err()
            .to_string()
            .contains("\"a\""));
    }

    #[test]
    fn labels_file_downward_api() {
        let text = "app=\"reviews\"\npod-template-hash=\"7f\\\"q\\u00e9\"\n\nversion=\"v1\"\n";
        let l = parse_labels_file("labels", text).unwrap();
        assert_eq!(l["app"], "reviews");
        assert_eq!(l["pod-template-hash"], "7f\"qé");
        assert_eq!(l.len(), 3);
        let err = parse_labels_file("labels", "app=\"a\"\nversion=v1\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "labels:2: value \"v1\" is not in double quotes"
        );
    }

    #[test]
    fn node_from_pod() {
        let pod = PodInfo {
            name: "reviews-v1-0".into(),
            namespace: "default".into(),
            ip: "198.18.0.5".into(),
            service_account: "bookinfo".into(),
            ..Default::default()
        };
        let (id, md) = pod.node(15000, 15006).unwrap();
        assert_eq!(
            id.to_string(),
            "sidecar~198.18.0.5~reviews-v1-0.default~default.svc.cluster.local"
        );
        assert_eq!((md.capture_port, md.inbound_capture_port), (15000, 15006));
        let err = PodInfo {
            ip: "nope".into(),
            ..pod.clone()
        }
        .node(1, 1)
        .unwrap_err();
        assert_eq!(err, PodError::BadIp("nope".into()));
        let err = PodInfo {
            service_account: String::new(),
            ..pod
        }
        .node(1, 1)
        .unwrap_err();
        assert_eq!(err, PodError::Missing("SERVICE_ACCOUNT"));
    }
}
